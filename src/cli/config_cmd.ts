/**
 * `halo config check|convert|show`: read the configuration files users already have (crm text,
 * CIB XML, Heartbeat's ha.cf/haresources/authkeys, drbd.conf), say whether halo understands
 * them, convert between formats, and summarise them.
 *
 * Input units: each file is one configuration, except that Heartbeat files given together (or
 * a directory, which is read as a Heartbeat directory like /etc/ha.d) form one. Diagnostics are
 * printed as `FILE:LINE:COL: severity: message` on stderr; the exit code is 0 when every unit is
 * valid and 2 when any has an error (warnings do not change it).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import { parseCibXml, serializeCibXml } from '../cib/cib_xml.ts';
import { parseCrm, serializeCrmReport } from '../cib/crm.ts';
import { CONFIG_FORMATS, type ConfigFormat, detectFormat, type HeartbeatFileKind } from '../cib/detect.ts';
import { parseDrbdConf } from '../cib/drbd_conf.ts';
import { nodeDrbdIo } from '../cib/drbd_conf_fs.ts';
import type { DrbdConfig } from '../cib/drbd_model.ts';
import { drbdProtocol } from '../cib/drbd_model.ts';
import { type HeartbeatConfig, heartbeatToCib } from '../cib/heartbeat.ts';
import type { Cib, Constraint, NvSet, Primitive, Resource } from '../cib/model.ts';
import type { CibParseResult } from '../cib/parse_result.ts';
import { drbdDevicesOf, validateCib } from '../cib/validate.ts';
import { type LinkPair, parseDrbdlinksConf } from '../executor/builtin/links.ts';
import { type Diagnostic, formatDiagnostic } from '../lib/errors.ts';
import { checkDrbdVolumes } from './drbd_check.ts';
import { COROSYNC_CONF_MESSAGE, isCorosyncConf, isDrbdlinksConf } from './extra_formats.ts';

/** Largest config file read (bigger is almost certainly the wrong file). */
export const CONFIG_MAX_FILE_BYTES = 64 * 1024 * 1024;

type Loaded =
  | { kind: 'cib'; label: string; format: ConfigFormat; cib: Cib; heartbeat?: HeartbeatConfig }
  | { kind: 'drbd'; label: string; config: DrbdConfig }
  | { kind: 'drbdlinks'; label: string; links: readonly LinkPair[] };

interface LoadOutcome {
  readonly loaded: Loaded[];
  readonly diagnostics: Diagnostic[];
  /** Problems that are not tied to a line (unreadable file, unknown format). */
  readonly failures: string[];
  /**
   * Configurations parsed but not yet checked: the check runs once every file is read, so that
   * it knows the devices of any drbd.conf given (a Filesystem on DRBD must follow its ms).
   */
  readonly pending: PendingCib[];
}

interface PendingCib {
  readonly file: string;
  readonly format: ConfigFormat;
  readonly r: Extract<CibParseResult, { ok: true }>;
  readonly heartbeat?: { config?: HeartbeatConfig; label: string };
}

interface Source {
  readonly file: string;
  readonly text: string;
  readonly mode: number;
}

function readSource(file: string, failures: string[]): Source | undefined {
  try {
    const st = statSync(file);
    if (st.size > CONFIG_MAX_FILE_BYTES) {
      failures.push(`${file}: error: file is ${st.size} bytes; the limit is ${CONFIG_MAX_FILE_BYTES}`);
      return undefined;
    }
    return { file, text: readFileSync(file, 'utf8'), mode: st.mode };
  } catch (err) {
    // Node's message already starts with the errno code ("ENOENT: no such file or directory, …").
    failures.push(`${file}: error: cannot read the file (${(err as Error).message})`);
    return undefined;
  }
}

/** Reads every argument into configuration units; never throws on bad input. */
function load(paths: readonly string[], forced: ConfigFormat | undefined): LoadOutcome {
  const out: LoadOutcome = { loaded: [], diagnostics: [], failures: [], pending: [] };
  const hb: Partial<Record<HeartbeatFileKind, Source>> = {};
  const hbGroups: { label?: string; files: Partial<Record<HeartbeatFileKind, Source>> }[] = [];
  for (const p of paths) {
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      // readSource reports it.
    }
    if (isDir) {
      const group: Partial<Record<HeartbeatFileKind, Source>> = {};
      let names: string[];
      try {
        names = readdirSync(p);
      } catch (err) {
        out.failures.push(`${p}: error: cannot list the directory (${(err as Error).message})`);
        continue;
      }
      for (const kind of ['ha.cf', 'haresources', 'authkeys'] as const) {
        if (!names.includes(kind)) continue;
        const s = readSource(join(p, kind), out.failures);
        if (s) group[kind] = s;
      }
      if (!names.includes('ha.cf')) {
        out.failures.push(`${p}: error: a directory is read as a Heartbeat directory, but it has no ha.cf`);
        continue;
      }
      hbGroups.push({ label: p, files: group });
      continue;
    }
    const s = readSource(p, out.failures);
    if (!s) continue;
    if (forced === undefined && loadOther(out, s)) continue;
    const det = detectFormat(s.text, s.file, forced);
    if (!det) {
      out.failures.push(
        `${p}: error: cannot tell which format this is; use --format ${CONFIG_FORMATS.join('|')}`,
      );
      continue;
    }
    switch (det.format) {
      case 'heartbeat': {
        const kind = det.heartbeatFile ?? 'ha.cf';
        if (hb[kind]) {
          out.failures.push(
            `${p}: error: two ${kind} files given (${hb[kind]!.file} and ${p}); give one Heartbeat set per run`,
          );
        } else hb[kind] = s;
        break;
      }
      case 'crm':
        addCib(out, s.file, 'crm', parseCrm(s.text, s.file));
        break;
      case 'xml':
        addCib(out, s.file, 'xml', parseCibXml(s.text, s.file));
        break;
      case 'drbd': {
        const r = parseDrbdConf(s.text, s.file, nodeDrbdIo);
        if (r.ok) {
          out.diagnostics.push(...r.warnings);
          // Values the volume engine would refuse at `halo volume up` (sizes, policies, …).
          const volumes = checkDrbdVolumes(r.config);
          out.diagnostics.push(...volumes);
          if (volumes.length === 0) out.loaded.push({ kind: 'drbd', label: s.file, config: r.config });
        } else out.diagnostics.push(...r.diagnostics);
        break;
      }
    }
  }
  if (Object.keys(hb).length > 0) hbGroups.push({ files: hb });
  for (const g of hbGroups) loadHeartbeat(out, g.files, g.label);
  const drbdDevices = drbdDevicesOf(out.loaded.flatMap((l) => (l.kind === 'drbd' ? [l.config] : [])));
  for (const c of out.pending) checkCib(out, c, drbdDevices);
  return out;
}

/**
 * Files halo recognises outside the four configuration formats: a drbdlinks.conf is checked
 * (`halo import` gives it to the drbdlinks resources), a corosync.conf is refused with what to
 * use instead. Returns whether `s` was one of them.
 */
function loadOther(out: LoadOutcome, s: Source): boolean {
  if (isDrbdlinksConf(s)) {
    try {
      out.loaded.push({ kind: 'drbdlinks', label: s.file, links: parseDrbdlinksConf(s.text, s.file) });
    } catch (err) {
      // The parser's message is `FILE:LINE:COL: what`; diagnostics say `error:` after the place.
      out.failures.push((err as Error).message.replace(/^(.*?:\d+:\d+): /, '$1: error: '));
    }
    return true;
  }
  if (isCorosyncConf(s)) {
    out.failures.push(`${s.file}: ${COROSYNC_CONF_MESSAGE}`);
    return true;
  }
  return false;
}

function addCib(
  out: LoadOutcome,
  file: string,
  format: ConfigFormat,
  r: CibParseResult,
  heartbeat?: { config?: HeartbeatConfig; label: string },
): void {
  if (!r.ok) {
    out.diagnostics.push(...r.diagnostics);
    return;
  }
  out.diagnostics.push(...r.warnings);
  out.pending.push({ file, format, r, ...(heartbeat ? { heartbeat } : {}) });
}

/** The semantic check of a parsed configuration; a clean one is loaded. */
function checkCib(out: LoadOutcome, c: PendingCib, drbdDevices: ReadonlyMap<string, string>): void {
  const { file, format, r, heartbeat } = c;
  const semantic = validateCib(r.cib, r.positions, file, { drbdDevices });
  out.diagnostics.push(...semantic);
  if (semantic.some((d) => d.severity === 'error')) return;
  const label = heartbeat?.label ?? file;
  out.loaded.push({
    kind: 'cib',
    label,
    format,
    cib: r.cib,
    ...(heartbeat?.config ? { heartbeat: heartbeat.config } : {}),
  });
}

function loadHeartbeat(out: LoadOutcome, g: Partial<Record<HeartbeatFileKind, Source>>, dir?: string): void {
  const haCf = g['ha.cf'];
  if (!haCf) {
    const given = Object.values(g)
      .map((s) => s.file)
      .join(', ');
    out.failures.push(
      `${given}: error: Heartbeat files need their ha.cf (it names the nodes); give the directory or ha.cf too`,
    );
    return;
  }
  const res = heartbeatToCib({
    haCf: { text: haCf.text, file: haCf.file },
    ...(g.haresources ? { haresources: { text: g.haresources.text, file: g.haresources.file } } : {}),
    ...(g.authkeys
      ? { authkeys: { text: g.authkeys.text, file: g.authkeys.file, mode: g.authkeys.mode } }
      : {}),
  });
  const file = g.haresources?.file ?? haCf.file;
  addCib(out, file, 'heartbeat', res.cib, {
    ...(res.config ? { config: res.config } : {}),
    label: dir ?? file,
  });
}

function report(out: LoadOutcome, err: (s: string) => void): boolean {
  for (const f of out.failures) err(f);
  const sorted = [...out.diagnostics].sort((a, b) =>
    a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1,
  );
  for (const d of sorted) err(formatDiagnostic(d));
  return out.failures.length === 0 && !out.diagnostics.some((d) => d.severity === 'error');
}

// ---------------------------------------------------------------------------------------------
// Summaries

function agentOf(p: Primitive): string {
  if (p.template !== undefined) return `@${p.template}`;
  return [p.class, p.provider, p.type].filter((x) => x !== undefined).join(':');
}

function describeResource(r: Resource): string {
  switch (r.kind) {
    case 'primitive':
      return `${r.id} (${agentOf(r)})`;
    case 'template':
      return `${r.id} (template ${agentOf(r as unknown as Primitive)})`;
    case 'group':
      return `${r.id}: group of ${r.members.map(describeResource).join(', ')}`;
    case 'clone': {
      const promotable =
        r.legacyMaster ||
        r.metaAttributes.some((s) => s.pairs.some((p) => p.name === 'promotable' && p.value === 'true'));
      return `${r.id}: ${promotable ? 'promotable clone' : 'clone'} of ${describeResource(r.child)}`;
    }
    case 'bundle':
      return `${r.id}: bundle`;
  }
}

function describeConstraint(c: Constraint): string {
  const sets = (s: readonly { resources: readonly string[] }[]): string =>
    s.map((x) => `(${x.resources.join(' ')})`).join(' ');
  switch (c.kind) {
    case 'rsc_location': {
      const what = c.rsc ?? `/${c.rscPattern ?? ''}/`;
      if (c.node !== undefined)
        return `location ${c.id}: ${what} scores ${c.score ?? 'INFINITY'} on ${c.node}`;
      return `location ${c.id}: ${what} by ${c.rules.length} rule${c.rules.length === 1 ? '' : 's'}`;
    }
    case 'rsc_colocation':
      return c.sets.length > 0
        ? `colocation ${c.id}: ${sets(c.sets)} score ${c.score ?? ''}`
        : `colocation ${c.id}: ${c.rsc}${c.rscRole ? `:${c.rscRole}` : ''} with ${c.withRsc}${c.withRscRole ? `:${c.withRscRole}` : ''} (${c.score ?? ''})`;
    case 'rsc_order':
      return c.sets.length > 0
        ? `order ${c.id}: ${sets(c.sets)}`
        : `order ${c.id}: ${c.first}${c.firstAction ? `:${c.firstAction}` : ''} then ${c.then}${c.thenAction ? `:${c.thenAction}` : ''} (${c.orderKind ?? (c.score !== undefined ? `score ${c.score}` : 'Mandatory')})`;
    case 'rsc_ticket':
      return `ticket ${c.id}: ${c.rsc ?? sets(c.sets)} needs ticket ${c.ticket}`;
  }
}

function pairsText(sets: readonly NvSet[]): string {
  return sets.flatMap((s) => s.pairs.map((p) => `${p.name}=${p.value ?? ''}`)).join(', ');
}

function summarizeCib(l: Extract<Loaded, { kind: 'cib' }>): string[] {
  const c = l.cib.configuration;
  const lines = [`${l.label} (${l.format}):`];
  const nodes = c.nodes.map((n) => {
    const standby = n.instanceAttributes.some((s) =>
      s.pairs.some((p) => p.name === 'standby' && /^(on|true|yes|1)$/i.test(p.value ?? '')),
    );
    return `${n.uname}${standby ? ' (standby)' : ''}`;
  });
  lines.push(`  nodes (${nodes.length}): ${nodes.join(', ') || 'none'}`);
  lines.push(`  resources (${c.resources.length}):`);
  for (const r of c.resources) lines.push(`    ${describeResource(r)}`);
  lines.push(`  constraints (${c.constraints.length}):`);
  for (const k of c.constraints) lines.push(`    ${describeConstraint(k)}`);
  if (c.crmConfig.length > 0) lines.push(`  properties: ${pairsText(c.crmConfig)}`);
  if (c.rscDefaults.length > 0) lines.push(`  resource defaults: ${pairsText(c.rscDefaults)}`);
  if (c.opDefaults.length > 0) lines.push(`  operation defaults: ${pairsText(c.opDefaults)}`);
  if (c.fencingTopology.length > 0) lines.push(`  fencing levels: ${c.fencingTopology.length}`);
  const h = l.heartbeat;
  if (h) {
    const links = h.links
      .map((k) => (k.kind === 'serial' ? `serial ${k.device}` : `${k.kind} ${k.interface}`))
      .join(', ');
    lines.push(
      `  heartbeat: keepalive ${h.keepaliveMs} ms, warntime ${h.warntimeMs} ms, deadtime ${h.deadtimeMs} ms, initdead ${h.initdeadMs} ms, udpport ${h.udpPort}`,
    );
    lines.push(`  links: ${links || 'none (halo default)'}; auto_failback ${h.autoFailback}`);
    lines.push(
      '  note: Heartbeat v1 had no fencing and ignored quorum, so stonith-enabled=false and no-quorum-policy=ignore',
    );
  }
  return lines;
}

function summarizeDrbd(l: Extract<Loaded, { kind: 'drbd' }>): string[] {
  const lines = [`${l.label} (drbd):`, `  volumes (${l.config.resources.length}):`];
  for (const r of l.config.resources) {
    lines.push(`    ${r.name}: protocol ${drbdProtocol(l.config, r)}`);
    for (const h of r.hosts) {
      lines.push(
        `      ${h.name}: ${h.device ?? r.device ?? '?'} on ${h.disk ?? r.disk ?? '?'}, address ${h.address ?? '?'}, meta-disk ${h.metaDisk ?? r.metaDisk ?? '?'}`,
      );
    }
  }
  if (l.config.files.length > 1) lines.push(`  files: ${l.config.files.join(', ')}`);
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Commands

interface Io {
  out(s: string): void;
  err(s: string): void;
}

const processIo: Io = {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
};

function formatOption(): Option {
  return new Option('--format <format>', 'read every file as this format instead of detecting it').choices([
    ...CONFIG_FORMATS,
  ]);
}

function checkAction(files: string[], opts: { format?: ConfigFormat }, io: Io): void {
  const out = load(files, opts.format);
  const ok = report(out, io.err);
  for (const l of out.loaded) {
    if (l.kind === 'drbd') io.out(`${l.label}: ok (drbd.conf, ${l.config.resources.length} resource(s))`);
    else if (l.kind === 'drbdlinks') io.out(`${l.label}: ok (drbdlinks.conf, ${l.links.length} link(s))`);
    else {
      const c = l.cib.configuration;
      io.out(
        `${l.label}: ok (${l.format}, ${c.nodes.length} node(s), ${c.resources.length} resource(s), ${c.constraints.length} constraint(s))`,
      );
    }
  }
  process.exitCode = ok ? 0 : 2;
}

function convertAction(
  files: string[],
  opts: { format?: ConfigFormat; to: 'crm' | 'xml' | 'json' },
  io: Io,
): void {
  const out = load(files, opts.format);
  if (!report(out, io.err)) {
    process.exitCode = 2;
    return;
  }
  if (out.loaded.length !== 1) {
    io.err(
      `error: convert takes one configuration (a Heartbeat directory or set counts as one); got ${out.loaded.length}`,
    );
    process.exitCode = 2;
    return;
  }
  const l = out.loaded[0]!;
  if (l.kind === 'drbdlinks') {
    io.err(
      `${l.label}: error: drbdlinks.conf lists links, not a cluster configuration; \`halo import\` gives it to the drbdlinks resources`,
    );
    process.exitCode = 2;
    return;
  }
  if (l.kind === 'drbd') {
    if (opts.to !== 'json') {
      io.err(
        `${l.label}: error: drbd.conf describes volumes, not a cluster configuration; it converts to json only`,
      );
      process.exitCode = 2;
      return;
    }
    io.out(JSON.stringify(l.config, null, 2));
    process.exitCode = 0;
    return;
  }
  switch (opts.to) {
    case 'xml':
      io.out(serializeCibXml(l.cib).trimEnd());
      break;
    case 'crm': {
      const r = serializeCrmReport(l.cib);
      for (const u of r.unsupported) io.err(`${l.label}: warning: crm syntax cannot express ${u}; left out`);
      if (r.regeneratedIds.length > 0) {
        const some = r.regeneratedIds.slice(0, 3).join(', ');
        io.err(
          `${l.label}: warning: crm syntax has no place for ${r.regeneratedIds.length} element id(s) (${some}${r.regeneratedIds.length > 3 ? ', …' : ''}); reading the text back generates crmsh-style ids instead`,
        );
      }
      io.out(r.text.trimEnd());
      break;
    }
    case 'json':
      io.out(JSON.stringify(l.cib, null, 2));
      break;
  }
  process.exitCode = 0;
}

function summarize(l: Loaded): string[] {
  switch (l.kind) {
    case 'drbd':
      return summarizeDrbd(l);
    case 'drbdlinks':
      return [`${l.label}: drbdlinks.conf`, ...l.links.map((k) => `  link ${k.local} -> ${k.target}`)];
    case 'cib':
      return summarizeCib(l);
  }
}

function showAction(files: string[], opts: { format?: ConfigFormat }, io: Io): void {
  const out = load(files, opts.format);
  const ok = report(out, io.err);
  for (const l of out.loaded) for (const line of summarize(l)) io.out(line);
  process.exitCode = ok ? 0 : 2;
}

/** Registers `halo config check|convert|show`. */
export function registerConfigCommands(program: Command, io: Io = processIo): void {
  const config = program
    .command('config')
    .description(
      'check, convert and summarise cluster configuration files (crm, CIB XML, Heartbeat, drbd.conf)',
    );
  config
    .command('check')
    .description(
      'say whether halo understands FILEs; exit 0 when all are valid, 2 with FILE:LINE:COL errors otherwise',
    )
    .argument(
      '<file...>',
      'config files; a directory is read as a Heartbeat directory (ha.cf, haresources, authkeys)',
    )
    .addOption(formatOption())
    .addHelpText(
      'after',
      '\nExamples:\n  $ halo config check /etc/drbd.conf crm-config.txt\n  $ halo config check /etc/ha.d            # ha.cf + haresources + authkeys\n  $ halo config check --format crm my-notes.txt',
    )
    .action((files: string[], opts: { format?: ConfigFormat }) => checkAction(files, opts, io));
  config
    .command('convert')
    .description('convert one configuration to crm shell syntax, CIB XML or JSON on stdout')
    .argument('<file...>', 'one config file, or the Heartbeat files (or their directory) together')
    .addOption(
      new Option('--to <format>', 'output format').choices(['crm', 'xml', 'json']).makeOptionMandatory(),
    )
    .addOption(formatOption())
    .addHelpText(
      'after',
      '\nExamples:\n  $ halo config convert --to xml crm-config.txt > cib.xml && crm_verify -x cib.xml\n  $ halo config convert --to crm /etc/ha.d\n  $ halo config convert --to json /etc/drbd.conf',
    )
    .action((files: string[], opts: { format?: ConfigFormat; to: 'crm' | 'xml' | 'json' }) =>
      convertAction(files, opts, io),
    );
  config
    .command('show')
    .description('print a short summary: nodes, resources, constraints, volumes')
    .argument('<file...>', 'config files; a directory is read as a Heartbeat directory')
    .addOption(formatOption())
    .addHelpText(
      'after',
      '\nExamples:\n  $ halo config show cib.xml\n  $ halo config show /etc/ha.d /etc/drbd.conf',
    )
    .action((files: string[], opts: { format?: ConfigFormat }) => showAction(files, opts, io));
}
