/**
 * Heartbeat v1 configuration: `ha.cf` (timings, links, nodes), `haresources` (resource groups)
 * and `authkeys` (message authentication), and their conversion to the cluster model.
 *
 * How haresources becomes a CIB (the choices, and why):
 * - Each line becomes one group, members in the order written, because Heartbeat started a
 *   line's resources left to right and stopped them right to left — exactly a group.
 * - The line's first word, the node that "owns" the group, becomes a location preference of
 *   `HEARTBEAT_HOME_NODE_SCORE` for that node.
 * - `auto_failback off` becomes `resource-stickiness=INFINITY` in rsc_defaults: Heartbeat then
 *   never moved resources back to their home node on its own, and an infinite stickiness is
 *   the only value that outweighs every finite preference in the same way. `on` (and the
 *   deprecated `legacy`) become 0: resources follow the preference home.
 * - Heartbeat v1 had no fencing and ran a two-node cluster without quorum, so the converted
 *   CIB sets `stonith-enabled=false` and `no-quorum-policy=ignore`; `halo config show` says so.
 * - `IPaddr::…`, `IPaddr2::…` and bare addresses map to `ocf:heartbeat:IPaddr2` (params ip,
 *   cidr_netmask, nic, broadcast); `Filesystem::dev::dir::fstype[::options]` to
 *   `ocf:heartbeat:Filesystem`. `drbddisk::r0`, `drbdlinks` and the other scripts Heartbeat
 *   kept in /etc/ha.d/resource.d have no OCF agent, so they stay class `heartbeat` with their
 *   `::` arguments as positional params `1`, `2`, … — Pacemaker's own convention for that class;
 *   the executor runs `/etc/ha.d/resource.d/NAME ARGS… start|stop|status`, or, where that script
 *   is absent, the agent src/executor/heartbeat_compat.ts maps it to (drbddisk → halo:volume,
 *   drbdlinks → halo:links). Named params beside the positional ones (`halo import` adds
 *   `config=` when drbd.conf or drbdlinks.conf is elsewhere) go to that agent. Any other name is
 *   an init script: `lsb:NAME`.
 */
import type { Diagnostic, SourcePos } from '../lib/errors.ts';
import { parseDuration } from './duration.ts';
import type { Cib, ClusterNode, Constraint, Group, NvPair, NvSet, Primitive } from './model.ts';
import { emptyCib } from './model.ts';
import type { CibParseResult } from './parse_result.ts';

/** Score of a haresources line's home node. Any finite value loses to INFINITY stickiness. */
export const HEARTBEAT_HOME_NODE_SCORE = '100';

/** Defaults from Heartbeat's sample ha.cf, used when a directive is absent. */
export const HEARTBEAT_DEFAULTS = {
  /** Interval between heartbeats. */
  keepaliveMs: 2_000,
  /** Silence after which a node is declared dead. */
  deadtimeMs: 30_000,
  /** Silence after which a "late heartbeat" warning is logged. */
  warntimeMs: 10_000,
  /** deadtime used while the cluster starts (networks come up slowly after boot). */
  initdeadMs: 120_000,
  /** Heartbeat's registered UDP port. */
  udpPort: 694,
} as const;

/** Scripts Heartbeat shipped (or that packages like drbd and drbdlinks put) in /etc/ha.d/resource.d. */
export const HEARTBEAT_RESOURCE_D_SCRIPTS: readonly string[] = [
  'AudibleAlarm',
  'Delay',
  'drbddisk',
  'drbdlinks',
  'ICP',
  'IPsrcaddr',
  'IPv6addr',
  'LinuxSCSI',
  'LVM',
  'LVSSyncDaemonSwap',
  'MailTo',
  'OCF',
  'portblock',
  'Raid1',
  'SendArp',
  'ServeRAID',
  'WAS',
  'WinPopup',
  'Xinetd',
  'apache',
  'db2',
  'hto-mapfuncs',
  'ids',
];

/** ha.cf directives halo knows; others are kept in `other` with a warning. */
const KNOWN_DIRECTIVES = new Set([
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
  'node',
  'logfile',
  'logfacility',
  'debugfile',
  'debug',
  'use_logd',
  'crm',
  'pacemaker',
  'respawn',
  'ping',
  'ping_group',
  'deadping',
  'apiauth',
  'hopfudge',
  'watchdog',
  'compression',
  'compression_threshold',
  'traditional_compression',
  'realtime',
  'autojoin',
  'uuidfrom',
  'coredumps',
  'conn_logd_time',
  'max_rexmit_delay',
  'msgfmt',
  'stonith',
  'stonith_host',
]);

export type HeartbeatLink =
  | { readonly kind: 'bcast'; readonly interface: string }
  | {
      readonly kind: 'mcast';
      readonly interface: string;
      readonly group: string;
      readonly port: number;
      readonly ttl: number;
      readonly loop: number;
    }
  | { readonly kind: 'ucast'; readonly interface: string; readonly peer: string }
  | { readonly kind: 'serial'; readonly device: string };

/** ha.cf as a value, for membership (timings, links, nodes) and for conversion. */
export interface HeartbeatConfig {
  readonly keepaliveMs: number;
  readonly deadtimeMs: number;
  readonly warntimeMs: number;
  readonly initdeadMs: number;
  readonly udpPort: number;
  readonly links: readonly HeartbeatLink[];
  readonly autoFailback: 'on' | 'off' | 'legacy';
  readonly nodes: readonly string[];
  readonly logfile?: string;
  readonly logfacility?: string;
  readonly debugfile?: string;
  /** `crm on|respawn|yes` means Heartbeat ran Pacemaker; haresources is then ignored. */
  readonly crm?: string;
  readonly respawn: readonly { readonly user: string; readonly command: string }[];
  readonly pingNodes: readonly string[];
  /** Every directive as written, in order (including the known ones), for round trips. */
  readonly directives: readonly HaCfDirective[];
}

export interface HaCfDirective {
  readonly key: string;
  readonly value: string;
  readonly pos: SourcePos;
}

export type HeartbeatParse<T> =
  | { readonly ok: true; readonly value: T; readonly warnings: readonly Diagnostic[] }
  | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };

class Sink {
  readonly list: Diagnostic[] = [];
  constructor(readonly file: string) {}
  error(line: number, column: number, code: string, message: string): void {
    this.list.push({ severity: 'error', code, message, pos: { file: this.file, line, column } });
  }
  warn(line: number, column: number, code: string, message: string): void {
    this.list.push({ severity: 'warning', code, message, pos: { file: this.file, line, column } });
  }
  result<T>(value: T): HeartbeatParse<T> {
    if (this.list.some((d) => d.severity === 'error')) {
      return { ok: false, diagnostics: [...this.list].sort((a, b) => rank(a) - rank(b)) };
    }
    return { ok: true, value, warnings: this.list };
  }
}

function rank(d: Diagnostic): number {
  return d.severity === 'error' ? 0 : 1;
}

interface Line {
  readonly no: number;
  readonly words: readonly { text: string; col: number }[];
}

/** Splits a Heartbeat file into lines of words; `#` starts a comment, `\` continues a line. */
function lines(text: string): Line[] {
  const out: Line[] = [];
  const raw = text.split(/\r?\n/);
  let pending: { text: string; col: number }[] = [];
  let start = 0;
  for (let i = 0; i < raw.length; i++) {
    let l = raw[i]!;
    const hash = l.indexOf('#');
    if (hash >= 0) l = l.slice(0, hash);
    const cont = /\\\s*$/.test(l);
    if (cont) l = l.replace(/\\\s*$/, '');
    if (pending.length === 0) start = i + 1;
    for (const m of l.matchAll(/\S+/g)) pending.push({ text: m[0], col: (m.index ?? 0) + 1 });
    if (!cont) {
      if (pending.length > 0) out.push({ no: start, words: pending });
      pending = [];
    }
  }
  if (pending.length > 0) out.push({ no: start, words: pending });
  return out;
}

// ---------------------------------------------------------------------------------------------
// ha.cf

function durationMs(v: string, key: string, l: Line, s: Sink): number | undefined {
  const r = parseDuration(v);
  if (!r.ok) {
    s.error(l.no, l.words[1]?.col ?? 1, 'hacf-bad-time', `${key}: ${r.reason}`);
    return undefined;
  }
  return r.ms;
}

/** Fewest bare directive names in a row that make `twoColumnLayout` speak up. */
const MIN_COLUMN_ROWS = 3;

/**
 * A table of directives and values read column by column, as text copied from a slide or a
 * two-column web page comes out (seed 004's ha.cf: twelve names, then twelve values): a run of
 * lines that are each a bare known directive, followed by as many lines that are each one word
 * and no directive. Returns the two runs' line numbers, or undefined for any other text.
 */
function twoColumnLayout(all: readonly Line[]): { names: Line[]; values: Line[] } | undefined {
  const directive = (l: Line) => KNOWN_DIRECTIVES.has(l.words[0]!.text.toLowerCase());
  const bareDirective = (l: Line) => l.words.length === 1 && directive(l);
  const loneValue = (l: Line) => l.words.length === 1 && !directive(l);
  // The table may come under its title (the slide's `/etc/heartbeat/ha.cf:`).
  let start = 0;
  while (start < all.length && loneValue(all[start]!)) start++;
  let end = start;
  while (end < all.length && bareDirective(all[end]!)) end++;
  const k = end - start;
  if (k < MIN_COLUMN_ROWS || all.length < end + k) return undefined;
  const values = all.slice(end, end + k);
  if (!values.every(loneValue)) return undefined;
  return { names: all.slice(start, end), values };
}

/** Parses ha.cf. Directives are case-insensitive in spelling checks but kept as written. */
export function parseHaCf(text: string, file: string): HeartbeatParse<HeartbeatConfig> {
  const s = new Sink(file);
  const columns = twoColumnLayout(lines(text));
  if (columns !== undefined) {
    // One error that says what happened, instead of one per directive and per value.
    const first = columns.names[0]!;
    const [n0, n1, v0, v1] = [first, columns.names.at(-1)!, columns.values[0]!, columns.values.at(-1)!];
    s.error(
      first.no,
      1,
      'hacf-two-columns',
      `lines ${n0.no}-${n1.no} are directive names without values and lines ${v0.no}-${v1.no} are ${columns.values.length} lone values: a table copied column by column (from a slide or a web page); put each value on its directive's line, e.g. '${first.words[0]!.text} ${v0.words[0]!.text}'`,
    );
    return { ok: false, diagnostics: s.list };
  }
  const t: { -readonly [K in keyof HeartbeatConfig]?: HeartbeatConfig[K] } = {};
  let keepaliveMs: number = HEARTBEAT_DEFAULTS.keepaliveMs;
  let deadtimeMs: number = HEARTBEAT_DEFAULTS.deadtimeMs;
  let warntimeMs: number | undefined;
  let initdeadMs: number | undefined;
  let udpPort: number = HEARTBEAT_DEFAULTS.udpPort;
  let autoFailback: 'on' | 'off' | 'legacy' = 'legacy';
  let failbackSet = false;
  const links: HeartbeatLink[] = [];
  const nodes: string[] = [];
  const respawn: { user: string; command: string }[] = [];
  const pingNodes: string[] = [];
  const directives: HaCfDirective[] = [];
  const seen = new Map<string, number>();
  for (const l of lines(text)) {
    const w0 = l.words[0]!;
    const key = w0.text.toLowerCase();
    const args = l.words.slice(1).map((w) => w.text);
    const value = args.join(' ');
    directives.push({ key: w0.text, value, pos: { file, line: l.no, column: w0.col } });
    if (!KNOWN_DIRECTIVES.has(key)) {
      s.warn(
        l.no,
        w0.col,
        'hacf-unknown-directive',
        `unknown ha.cf directive '${w0.text}' (kept, but halo ignores it)`,
      );
      continue;
    }
    if (key !== w0.text) {
      s.warn(
        l.no,
        w0.col,
        'hacf-spelling',
        `ha.cf directive written '${w0.text}'; Heartbeat spells it '${key}'`,
      );
    }
    const needsArg = !['crm', 'pacemaker'].includes(key);
    if (needsArg && args.length === 0) {
      s.error(l.no, w0.col, 'hacf-missing-value', `'${key}' needs a value`);
      continue;
    }
    const once = ['keepalive', 'deadtime', 'warntime', 'initdead', 'udpport', 'auto_failback'];
    if (once.includes(key)) {
      const prev = seen.get(key);
      if (prev !== undefined)
        s.warn(l.no, w0.col, 'hacf-repeated', `'${key}' was already set on line ${prev}; this one wins`);
      seen.set(key, l.no);
    }
    switch (key) {
      case 'keepalive':
        keepaliveMs = durationMs(value, key, l, s) ?? keepaliveMs;
        break;
      case 'deadtime':
        deadtimeMs = durationMs(value, key, l, s) ?? deadtimeMs;
        break;
      case 'warntime':
        warntimeMs = durationMs(value, key, l, s) ?? warntimeMs;
        break;
      case 'initdead':
        initdeadMs = durationMs(value, key, l, s) ?? initdeadMs;
        break;
      case 'udpport': {
        const n = Number(value);
        if (!/^\d+$/.test(value) || n < 1 || n > 65535) {
          s.error(
            l.no,
            l.words[1]!.col,
            'hacf-bad-port',
            `udpport '${value}' is not a port number from 1 to 65535`,
          );
        } else udpPort = n;
        break;
      }
      case 'bcast':
        for (const i of args) links.push({ kind: 'bcast', interface: i });
        break;
      case 'mcast': {
        const [iface, group, port, ttl, loop] = args;
        const nums = [port, ttl, loop].map((x) =>
          x !== undefined && /^\d+$/.test(x) ? Number(x) : Number.NaN,
        );
        if (args.length !== 5 || nums.some((n) => Number.isNaN(n))) {
          s.error(
            l.no,
            w0.col,
            'hacf-bad-mcast',
            `mcast needs INTERFACE GROUP PORT TTL LOOP, e.g. 'mcast eth0 225.0.0.1 694 1 0'; found '${value}'`,
          );
        } else {
          links.push({
            kind: 'mcast',
            interface: iface!,
            group: group!,
            port: nums[0]!,
            ttl: nums[1]!,
            loop: nums[2]!,
          });
        }
        break;
      }
      case 'ucast':
        if (args.length !== 2) {
          s.error(
            l.no,
            w0.col,
            'hacf-bad-ucast',
            `ucast needs INTERFACE PEER-ADDRESS, e.g. 'ucast eth1 10.0.0.2'; found '${value}'`,
          );
        } else links.push({ kind: 'ucast', interface: args[0]!, peer: args[1]! });
        break;
      case 'serial':
        for (const d of args) links.push({ kind: 'serial', device: d });
        break;
      case 'auto_failback':
        if (value !== 'on' && value !== 'off' && value !== 'legacy') {
          s.error(
            l.no,
            l.words[1]!.col,
            'hacf-bad-value',
            `auto_failback must be on, off or legacy, found '${value}'`,
          );
        } else {
          autoFailback = value;
          failbackSet = true;
        }
        break;
      case 'nice_failback':
        if (!failbackSet) autoFailback = value === 'on' ? 'off' : 'on';
        s.warn(
          l.no,
          w0.col,
          'hacf-deprecated',
          "nice_failback is deprecated; it means 'auto_failback off' when on",
        );
        break;
      case 'node':
        for (const n of args) {
          if (nodes.includes(n)) s.warn(l.no, w0.col, 'hacf-repeated', `node '${n}' is listed twice`);
          else nodes.push(n);
        }
        break;
      case 'logfile':
        t.logfile = value;
        break;
      case 'logfacility':
        t.logfacility = value;
        break;
      case 'debugfile':
        t.debugfile = value;
        break;
      case 'crm':
      case 'pacemaker':
        t.crm = value || 'on';
        break;
      case 'respawn':
        if (args.length < 2)
          s.error(l.no, w0.col, 'hacf-bad-respawn', `respawn needs USER COMMAND, found '${value}'`);
        else respawn.push({ user: args[0]!, command: args.slice(1).join(' ') });
        break;
      case 'ping':
        pingNodes.push(...args);
        break;
      case 'ping_group':
        pingNodes.push(...args.slice(1));
        break;
      default:
        break;
    }
  }
  if (nodes.length === 0)
    s.error(1, 1, 'hacf-no-nodes', "ha.cf lists no 'node'; Heartbeat needs every cluster node named");
  if (links.length === 0) {
    s.warn(
      1,
      1,
      'hacf-no-links',
      'ha.cf has no bcast, mcast, ucast or serial line; halo will use its own default link',
    );
  }
  if (deadtimeMs <= keepaliveMs) {
    s.error(
      seen.get('deadtime') ?? 1,
      1,
      'hacf-bad-timing',
      `deadtime (${deadtimeMs} ms) must be longer than keepalive (${keepaliveMs} ms)`,
    );
  }
  const warn = warntimeMs ?? Math.min(HEARTBEAT_DEFAULTS.warntimeMs, Math.floor(deadtimeMs / 2));
  if (warntimeMs !== undefined && warntimeMs >= deadtimeMs) {
    s.warn(
      seen.get('warntime') ?? 1,
      1,
      'hacf-bad-timing',
      `warntime (${warntimeMs} ms) is not shorter than deadtime (${deadtimeMs} ms), so it never warns`,
    );
  }
  if (!failbackSet && !seen.has('nice_failback')) {
    s.warn(
      1,
      1,
      'hacf-no-failback',
      "ha.cf does not set auto_failback; Heartbeat's default 'legacy' is treated as 'on'",
    );
  }
  const cfg: HeartbeatConfig = {
    keepaliveMs,
    deadtimeMs,
    warntimeMs: warn,
    initdeadMs: initdeadMs ?? Math.max(HEARTBEAT_DEFAULTS.initdeadMs, 2 * deadtimeMs),
    udpPort,
    links,
    autoFailback,
    nodes,
    ...t,
    respawn,
    pingNodes,
    directives,
  };
  return s.result(cfg);
}

// ---------------------------------------------------------------------------------------------
// haresources

export interface HaResource {
  /** As written: `IPaddr::10.0.0.1/24/eth0`. */
  readonly spec: string;
  readonly name: string;
  readonly args: readonly string[];
  readonly pos: SourcePos;
}

export interface HaResourceGroup {
  readonly node: string;
  readonly resources: readonly HaResource[];
  readonly pos: SourcePos;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
/** Tutorials write `192.168.xxx.xxx` for "your address here"; recognise it to say so. */
const IPV4_PLACEHOLDER = /^([0-9x]{1,3})\.([0-9x]{1,3})\.([0-9x]{1,3})\.([0-9x]{1,3})$/i;

function isAddress(s: string): boolean {
  const m = IPV4.exec(s);
  return m ? m.slice(1).every((o) => Number(o) <= 255) : false;
}

export function parseHaresources(text: string, file: string): HeartbeatParse<readonly HaResourceGroup[]> {
  const s = new Sink(file);
  const groups: HaResourceGroup[] = [];
  for (const l of lines(text)) {
    const [node, ...rest] = l.words;
    if (rest.length === 0) {
      s.error(
        l.no,
        node!.col,
        'haresources-empty',
        `haresources line for '${node!.text}' names no resources`,
      );
      continue;
    }
    const resources: HaResource[] = [];
    for (const w of rest) {
      const parts = w.text.split('::');
      const name = parts[0]!;
      if (name === '' || parts.some((p, i) => i > 0 && p === '' && i < parts.length - 1)) {
        s.error(
          l.no,
          w.col,
          'haresources-bad-resource',
          `'${w.text}' is not a resource (expected NAME or NAME::ARG::…)`,
        );
        continue;
      }
      if (/^IPaddr2?$/.test(name) || parts.length === 1) {
        const ip = (parts.length === 1 ? name : (parts[1] ?? '')).split('/')[0]!;
        const looksIp = IPV4_PLACEHOLDER.test(ip);
        if (/^IPaddr2?$/.test(name) && !looksIp) {
          s.error(l.no, w.col, 'haresources-bad-address', `'${ip}' in '${w.text}' is not an IPv4 address`);
          continue;
        }
        if (looksIp && !isAddress(ip)) {
          s.warn(
            l.no,
            w.col,
            'haresources-placeholder-address',
            `'${ip}' is a placeholder, not an address; put the real virtual IP here before running`,
          );
        }
      }
      const near = parts.length > 1 ? nearScriptName(name) : undefined;
      if (near !== undefined)
        s.warn(
          l.no,
          w.col,
          'haresources-unknown-script',
          `'${name}' is not a resource script Heartbeat ships (did you mean '${near}'?); as written it runs /etc/ha.d/resource.d/${name} or /etc/init.d/${name}`,
        );
      resources.push({ spec: w.text, name, args: parts.slice(1), pos: { file, line: l.no, column: w.col } });
    }
    groups.push({ node: node!.text, resources, pos: { file, line: l.no, column: node!.col } });
  }
  return s.result(groups);
}

// ---------------------------------------------------------------------------------------------
// authkeys

export type AuthMethod = 'md5' | 'sha1' | 'crc';

export interface AuthKeys {
  /** The key index named by `auth N`: the one used to sign outgoing messages. */
  readonly active: number;
  readonly keys: readonly { readonly index: number; readonly method: AuthMethod; readonly secret: string }[];
}

/**
 * Parses authkeys. `mode` is the file's permission bits when it came from disk: like
 * Heartbeat, a key file readable or writable by group or others is refused.
 */
export function parseAuthkeys(text: string, file: string, mode?: number): HeartbeatParse<AuthKeys> {
  const s = new Sink(file);
  if (mode !== undefined && (mode & 0o077) !== 0) {
    s.error(
      1,
      1,
      'authkeys-permissions',
      `authkeys has mode ${(mode & 0o777).toString(8).padStart(3, '0')}; it holds the cluster's secret, so it must not be readable by group or others (chmod 600 ${file})`,
    );
  }
  let active: { index: number; line: number; col: number } | undefined;
  const keys: { index: number; method: AuthMethod; secret: string }[] = [];
  for (const l of lines(text)) {
    const [a, b, ...rest] = l.words;
    if (a!.text === 'auth') {
      if (!b || !/^\d+$/.test(b.text)) {
        s.error(l.no, (b ?? a)!.col, 'authkeys-syntax', "'auth' needs a key number, e.g. 'auth 1'");
        continue;
      }
      if (active)
        s.error(l.no, a!.col, 'authkeys-syntax', `'auth' appears twice (first on line ${active.line})`);
      active = { index: Number(b.text), line: l.no, col: b.col };
      continue;
    }
    if (!/^\d+$/.test(a!.text) || Number(a!.text) < 1 || Number(a!.text) > 15) {
      s.error(
        l.no,
        a!.col,
        'authkeys-syntax',
        `expected 'auth N' or 'N METHOD SECRET' with N from 1 to 15, found '${a!.text}'`,
      );
      continue;
    }
    const index = Number(a!.text);
    const method = b?.text.toLowerCase();
    if (method !== 'md5' && method !== 'sha1' && method !== 'crc') {
      s.error(
        l.no,
        (b ?? a)!.col,
        'authkeys-bad-method',
        `key ${index}: method '${b?.text ?? ''}' is not md5, sha1 or crc`,
      );
      continue;
    }
    const secret = rest.map((w) => w.text).join(' ');
    if (method !== 'crc' && secret === '') {
      s.error(l.no, b!.col, 'authkeys-no-secret', `key ${index}: ${method} needs a secret after the method`);
      continue;
    }
    if (method === 'crc') {
      s.warn(
        l.no,
        b!.col,
        'authkeys-crc',
        `key ${index} uses crc, which detects corruption but authenticates nothing; use sha1`,
      );
    }
    if (keys.some((k) => k.index === index))
      s.error(l.no, a!.col, 'authkeys-duplicate', `key ${index} is defined twice`);
    keys.push({ index, method, secret });
  }
  if (!active) s.error(1, 1, 'authkeys-no-auth', "authkeys has no 'auth N' line naming the key to use");
  else if (!keys.some((k) => k.index === active.index)) {
    s.error(
      active.line,
      active.col,
      'authkeys-unknown-key',
      `'auth ${active.index}' names a key that is not defined`,
    );
  }
  return s.result({ active: active?.index ?? 0, keys });
}

// ---------------------------------------------------------------------------------------------
// Conversion to the cluster model

export interface HeartbeatInput {
  readonly haCf: { readonly text: string; readonly file: string };
  readonly haresources?: { readonly text: string; readonly file: string };
  readonly authkeys?: { readonly text: string; readonly file: string; readonly mode?: number };
}

export interface HeartbeatParseResult {
  readonly cib: CibParseResult;
  /** Present when ha.cf parsed. */
  readonly config?: HeartbeatConfig;
  readonly authkeys?: AuthKeys;
}

function nv(setId: string, pairs: readonly (readonly [string, string])[]): NvPair[] {
  return pairs.map(([name, value]) => ({ id: `${setId}-${name}`, name, value }));
}

function instanceSet(rsc: string, pairs: readonly (readonly [string, string])[]): NvSet[] {
  if (pairs.length === 0) return [];
  const id = `${rsc}-instance_attributes`;
  return [{ kind: 'instance_attributes', id, pairs: nv(id, pairs) }];
}

function netmaskToPrefix(mask: string): string {
  if (!isAddress(mask)) return mask;
  const bits = mask
    .split('.')
    .map((o) => Number(o).toString(2).padStart(8, '0'))
    .join('');
  return /^1*0*$/.test(bits) ? String(bits.indexOf('0') < 0 ? 32 : bits.indexOf('0')) : mask;
}

function sanitizeId(s: string): string {
  const id = s.replace(/[^A-Za-z0-9_.-]/g, '_');
  return /^[A-Za-z_]/.test(id) ? id : `_${id}`;
}

/** Most single-letter edits between a misspelt script name and the one it was meant to be. */
const SCRIPT_TYPO_MAX_EDITS = 2;

/**
 * The script Heartbeat ships that `name` is a typo of (`Filesytem` → `Filesystem`), or undefined
 * when `name` is one of them or close to none. Only names with `::` arguments are checked: an
 * init script of the system (no arguments) may be called anything.
 */
function nearScriptName(name: string): string | undefined {
  const known = ['IPaddr', 'IPaddr2', 'Filesystem', ...HEARTBEAT_RESOURCE_D_SCRIPTS];
  if (known.includes(name)) return undefined;
  let best: string | undefined;
  let bestEdits = SCRIPT_TYPO_MAX_EDITS + 1;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase(), bestEdits);
    if (d < bestEdits) [best, bestEdits] = [k, d];
  }
  return best;
}

/** Levenshtein distance, or `cap` as soon as it is sure to be at least that. */
function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    if (Math.min(...row) >= cap) return cap;
    prev = row;
  }
  return Math.min(prev[b.length]!, cap);
}

/** One haresources entry as a primitive (see the module comment for the mapping). */
export function haResourceToPrimitive(r: HaResource, id: string): Primitive {
  const base = { id, metaAttributes: [], utilization: [], operations: [] };
  const isIp =
    /^IPaddr2?$/.test(r.name) || (r.args.length === 0 && IPV4_PLACEHOLDER.test(r.name.split('/')[0]!));
  if (isIp) {
    const spec = r.args.length === 0 ? r.name : (r.args[0] ?? '');
    const [ip, mask, nic, broadcast] = spec.split('/');
    const pairs: [string, string][] = [['ip', ip!]];
    if (mask) pairs.push(['cidr_netmask', netmaskToPrefix(mask)]);
    if (nic) pairs.push(['nic', nic]);
    if (broadcast) pairs.push(['broadcast', broadcast]);
    return {
      kind: 'primitive',
      class: 'ocf',
      provider: 'heartbeat',
      type: 'IPaddr2',
      ...base,
      instanceAttributes: instanceSet(id, pairs),
    };
  }
  if (r.name === 'Filesystem') {
    const names = ['device', 'directory', 'fstype', 'options'];
    const pairs = r.args.slice(0, 4).map((a, i) => [names[i]!, a] as const);
    return {
      kind: 'primitive',
      class: 'ocf',
      provider: 'heartbeat',
      type: 'Filesystem',
      ...base,
      instanceAttributes: instanceSet(id, pairs),
    };
  }
  if (r.args.length > 0 || HEARTBEAT_RESOURCE_D_SCRIPTS.includes(r.name)) {
    const pairs = r.args.map((a, i) => [String(i + 1), a] as const);
    return {
      kind: 'primitive',
      class: 'heartbeat',
      type: r.name,
      ...base,
      instanceAttributes: instanceSet(id, pairs),
    };
  }
  return { kind: 'primitive', class: 'lsb', type: r.name, ...base, instanceAttributes: [] };
}

function primitiveId(r: HaResource, taken: Set<string>): string {
  let want: string;
  if (/^IPaddr2?$/.test(r.name) || r.args.length === 0) {
    const ip = (r.args[0] ?? r.name).split('/')[0]!;
    want = IPV4_PLACEHOLDER.test(ip) ? `ip_${ip}` : r.name;
  } else if (r.name === 'Filesystem') want = `fs_${(r.args[1] ?? '').replace(/^\/+/, '') || 'root'}`;
  else want = `${r.name}_${r.args.join('_')}`;
  let id = sanitizeId(want);
  for (let n = 2; taken.has(id); n++) id = sanitizeId(`${want}_${n}`);
  taken.add(id);
  return id;
}

/**
 * Converts Heartbeat files to a CIB. ha.cf is required (it names the nodes and auto_failback);
 * haresources and authkeys are optional. Diagnostics of all three files are combined.
 */
export function heartbeatToCib(input: HeartbeatInput): HeartbeatParseResult {
  const diags: Diagnostic[] = [];
  const ha = parseHaCf(input.haCf.text, input.haCf.file);
  const hr = input.haresources ? parseHaresources(input.haresources.text, input.haresources.file) : undefined;
  const ak = input.authkeys
    ? parseAuthkeys(input.authkeys.text, input.authkeys.file, input.authkeys.mode)
    : undefined;
  for (const r of [ha, hr, ak]) if (r) diags.push(...(r.ok ? r.warnings : r.diagnostics));
  if (!ha.ok || (hr && !hr.ok) || (ak && !ak.ok)) {
    return { cib: { ok: false, diagnostics: [...diags].sort((a, b) => rank(a) - rank(b)) } };
  }
  const cfg = ha.value;
  const positions = new Map<string, SourcePos>();
  const nodes: ClusterNode[] = cfg.nodes.map((n) => ({
    id: n,
    uname: n,
    instanceAttributes: [],
    utilization: [],
  }));
  for (const d of cfg.directives)
    if (d.key.toLowerCase() === 'node') for (const n of d.value.split(' ')) positions.set(n, d.pos);
  const taken = new Set<string>(cfg.nodes);
  const resources: Group[] = [];
  const constraints: Constraint[] = [];
  const groups = hr?.ok ? hr.value : [];
  if (cfg.crm !== undefined && /^(on|yes|respawn|true)$/i.test(cfg.crm) && groups.length > 0) {
    const p = groups[0]!.pos;
    diags.push({
      severity: 'warning',
      code: 'hacf-crm-haresources',
      pos: p,
      message: "ha.cf has 'crm on': Heartbeat ignores haresources then; halo converts it anyway",
    });
  }
  groups.forEach((g, gi) => {
    if (!cfg.nodes.includes(g.node)) {
      diags.push({
        severity: 'warning',
        code: 'haresources-unknown-node',
        pos: g.pos,
        message: `haresources names node '${g.node}', which is not a 'node' in ha.cf (${cfg.nodes.join(', ')}); the group will prefer a node that does not exist`,
      });
    }
    const gid = sanitizeId(`group_${gi + 1}`);
    taken.add(gid);
    positions.set(gid, g.pos);
    const members = g.resources.map((r) => {
      const id = primitiveId(r, taken);
      positions.set(id, r.pos);
      return haResourceToPrimitive(r, id);
    });
    resources.push({ kind: 'group', id: gid, metaAttributes: [], instanceAttributes: [], members });
    const lid = `prefer-${gid}`;
    positions.set(lid, g.pos);
    constraints.push({
      kind: 'rsc_location',
      id: lid,
      rsc: gid,
      node: g.node,
      score: HEARTBEAT_HOME_NODE_SCORE,
      rules: [],
      sets: [],
    });
  });
  const props = 'cib-bootstrap-options';
  const defaults = 'rsc-options';
  const stickiness = cfg.autoFailback === 'off' ? 'INFINITY' : '0';
  const base = emptyCib();
  const cib: Cib = {
    ...base,
    configuration: {
      ...base.configuration,
      crmConfig: [
        {
          kind: 'cluster_property_set',
          id: props,
          pairs: nv(props, [
            ['stonith-enabled', 'false'],
            ['no-quorum-policy', 'ignore'],
          ]),
        },
      ],
      nodes,
      resources,
      constraints,
      rscDefaults: [
        { kind: 'meta_attributes', id: defaults, pairs: nv(defaults, [['resource-stickiness', stickiness]]) },
      ],
    },
    status: [],
    hasStatus: false,
  };
  return {
    cib: { ok: true, cib, positions, warnings: diags },
    config: cfg,
    ...(ak?.ok ? { authkeys: ak.value } : {}),
  };
}
