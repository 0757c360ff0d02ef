/**
 * Which configuration format a file is in, so that `halo config check FILE…` works on whatever
 * the user has: crm shell text, Pacemaker CIB XML, Heartbeat's ha.cf / haresources / authkeys,
 * or drbd.conf. The file name decides when it is conventional (`ha.cf`, `drbd.conf`, `*.crm`,
 * `*.xml`, `*.res`); otherwise the first meaningful word does. `--format` overrides both.
 */
export const CONFIG_FORMATS = ['crm', 'xml', 'heartbeat', 'drbd'] as const;
export type ConfigFormat = (typeof CONFIG_FORMATS)[number];
export type HeartbeatFileKind = 'ha.cf' | 'haresources' | 'authkeys';

export interface Detection {
  readonly format: ConfigFormat;
  /** For Heartbeat files: which of the three this is. */
  readonly heartbeatFile?: HeartbeatFileKind;
  /** Why, for `--verbose` style messages: "file name", "starts with '<'", … */
  readonly reason: string;
}

/** Words that start crm shell statements. */
const CRM_WORDS = new Set([
  'node',
  'primitive',
  'group',
  'clone',
  'ms',
  'master',
  'location',
  'colocation',
  'collocation',
  'order',
  'property',
  'rsc_defaults',
  'op_defaults',
  'rsc_template',
  'rsc_ticket',
  'fencing_topology',
  'tag',
]);

/** ha.cf directives that never start a crm statement. */
const HACF_WORDS = new Set([
  'keepalive',
  'deadtime',
  'warntime',
  'initdead',
  'udpport',
  'bcast',
  'mcast',
  'ucast',
  'serial',
  'baud',
  'auto_failback',
  'nice_failback',
  'logfile',
  'logfacility',
  'debugfile',
  'debug',
  'use_logd',
  'crm',
  'respawn',
  'ping',
  'ping_group',
  'apiauth',
  'watchdog',
  'compression',
]);

const DRBD_WORDS = new Set(['global', 'common', 'resource', 'include', 'skip']);

/** The last segment of a POSIX path, lower-cased: node:path's `basename`, kept pure here. */
function fileNameOf(file: string): string {
  const trimmed = file.replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1).toLowerCase();
}

function firstWords(text: string, max: number): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    out.push(line.split(/\s+/)[0]!);
    if (out.length >= max) break;
  }
  return out;
}

/** Which Heartbeat file `text` is, by name then content. */
export function heartbeatFileKind(text: string, file: string): HeartbeatFileKind | undefined {
  const name = fileNameOf(file);
  if (name === 'ha.cf' || name.endsWith('.ha.cf')) return 'ha.cf';
  if (name === 'haresources') return 'haresources';
  if (name === 'authkeys') return 'authkeys';
  const words = firstWords(text, 20);
  if (words[0] === 'auth' || /^\s*\d+\s+(md5|sha1|crc)\b/m.test(text)) return 'authkeys';
  if (words.some((w) => HACF_WORDS.has(w.toLowerCase()))) return 'ha.cf';
  if (/::/.test(text)) return 'haresources';
  return undefined;
}

/**
 * Detects the format of one file. `forced` (from `--format`) wins; for Heartbeat it still
 * decides which of the three files this is. Returns undefined when nothing matches.
 */
export function detectFormat(text: string, file: string, forced?: ConfigFormat): Detection | undefined {
  if (forced !== undefined) {
    if (forced !== 'heartbeat') return { format: forced, reason: '--format' };
    const kind = heartbeatFileKind(text, file) ?? 'ha.cf';
    return { format: 'heartbeat', heartbeatFile: kind, reason: '--format' };
  }
  const name = fileNameOf(file);
  if (name === 'ha.cf' || name === 'haresources' || name === 'authkeys') {
    return { format: 'heartbeat', heartbeatFile: heartbeatFileKind(text, file)!, reason: 'file name' };
  }
  if (name.endsWith('.xml')) return { format: 'xml', reason: 'file name' };
  if (name.endsWith('.crm')) return { format: 'crm', reason: 'file name' };
  if (
    name === 'drbd.conf' ||
    name.endsWith('.res') ||
    name.endsWith('drbd.conf') ||
    name === 'global_common.conf'
  ) {
    return { format: 'drbd', reason: 'file name' };
  }
  const trimmed = text.replace(/^\uFEFF/, '').trimStart();
  if (trimmed.startsWith('<')) return { format: 'xml', reason: "starts with '<'" };
  const words = firstWords(text, 20);
  if (words.length === 0) return undefined;
  if (DRBD_WORDS.has(words[0]!) && /\{/.test(text))
    return { format: 'drbd', reason: `starts with '${words[0]}' and has blocks` };
  const hb = heartbeatFileKind(text, file);
  if (hb === 'authkeys' || hb === 'ha.cf')
    return { format: 'heartbeat', heartbeatFile: hb, reason: 'Heartbeat directives' };
  if (CRM_WORDS.has(words[0]!)) return { format: 'crm', reason: `starts with '${words[0]}'` };
  if (hb === 'haresources')
    return { format: 'heartbeat', heartbeatFile: hb, reason: "'::' resource arguments" };
  return undefined;
}
