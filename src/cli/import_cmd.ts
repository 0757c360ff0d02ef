/**
 * `halo import FILE…`: the configuration files users already have — Heartbeat's ha.cf +
 * haresources + authkeys (or their directory, /etc/ha.d), crm shell text, Pacemaker CIB XML, and
 * drbd.conf — converted to the cluster model and committed to a RUNNING cluster through this
 * node's daemon (its control socket), as `halo configure load` does for crm and XML.
 *
 * What is imported:
 * - exactly one configuration: one Heartbeat set, or one crm file, or one CIB XML file;
 * - any number of drbd.conf files beside it. A drbd.conf is not part of the CIB (every node
 *   reads its own copy); import checks it against the configuration instead: every
 *   `drbddisk::RES` and `ocf:linbit:drbd drbd_resource=RES` must name a resource defined there,
 *   and its `on HOST` names should be cluster nodes. When the file is not where the agents look
 *   by default (/etc/drbd.conf), its path is added as the resource's `config` parameter.
 * - a drbdlinks.conf (`link('/etc/apache2', '/drbd/etc/apache2')` lines), which is checked the
 *   same way and given as `config` to the `drbdlinks` resources when it is not /etc/drbdlinks.conf.
 *   Parameters like these ride beside a heartbeat-class resource's positional `1`, `2`, …; the
 *   executor passes them to the agent it maps the Heartbeat script to (heartbeat_compat.ts).
 * - Node names are matched to the running cluster's nodes (their ids come from the cluster);
 *   a name the cluster does not have is reported.
 * - Heartbeat v1 ran without fencing and without quorum; its conversion says so with
 *   `stonith-enabled=false` and `no-quorum-policy=ignore`. Turning fencing off in a running
 *   cluster is not something an import should do silently, so those two properties are left as
 *   the cluster has them unless `--heartbeat-properties` is given. ha.cf's timings (keepalive,
 *   deadtime, …) belong to the daemons' configuration (/etc/halo/halo.json), not the CIB; the
 *   import says what they were.
 *
 * `--mode update` (the default) adds the imported objects and replaces those with the same id;
 * `--mode replace` swaps the whole configuration. `--dry-run` prints the transition the import
 * would cause and changes nothing. Any error — a file that does not parse (FILE:LINE:COL), a
 * reference that does not resolve, a cluster that refuses — sends nothing.
 *
 * Exit codes: 0 imported (or nothing to change); 1 the cluster or the configuration's checks
 * refused it; 2 unreadable or invalid files, bad usage, or no cluster to talk to.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Command, Option } from 'commander';
import { toCibCommands } from '../admin/cib_commands.ts';
import { formatPreview, previewTransition } from '../admin/dry_run.ts';
import { cibAttr } from '../admin/edit_result.ts';
import { applyEdit } from '../admin/edits.ts';
import { parseCibXml, serializeCibXml } from '../cib/cib_xml.ts';
import { parseCrm } from '../cib/crm.ts';
import { detectFormat, type HeartbeatFileKind } from '../cib/detect.ts';
import { parseDrbdConf } from '../cib/drbd_conf.ts';
import { nodeDrbdIo } from '../cib/drbd_conf_fs.ts';
import type { DrbdConfig } from '../cib/drbd_model.ts';
import { type HeartbeatConfig, heartbeatToCib } from '../cib/heartbeat.ts';
import type { Cib, Configuration, NvSet, Primitive, Resource } from '../cib/model.ts';
import type { CibParseResult } from '../cib/parse_result.ts';
import { drbdDevicesOf, validateCib } from '../cib/validate.ts';
import { type CibCommand, encodeCibCommand, validateCibCommand } from '../consensus/cib_state_machine.ts';
import { controlSocketPath, loadConfig } from '../daemon/config.ts';
import { MAX_CONTROL_REQUEST_BYTES, queryControl } from '../daemon/control.ts';
import { PROPOSE_TIMEOUT_MS } from '../daemon/daemon.ts';
import { resolveSelf } from '../daemon/run.ts';
import { type LinkPair, parseDrbdlinksConf } from '../executor/builtin/links.ts';
import { writeFileAtomic } from '../lib/atomic_file.ts';
import { type Diagnostic, formatDiagnostic } from '../lib/errors.ts';
import type { Io } from './admin_cmd.ts';
import { DEFAULT_CONFIG_FILE } from './cluster_cmd.ts';
import { COROSYNC_CONF_MESSAGE, isCorosyncConf, isDrbdlinksConf } from './extra_formats.ts';
import { liveMembers, type ProposeReply, withMembership } from './live_cib.ts';

/** Largest file import reads (a configuration bigger than this is the wrong file). */
export const IMPORT_MAX_FILE_BYTES = 64 * 1024 * 1024;
/** Most files one import takes (a Heartbeat set, a configuration and its drbd.conf files). */
export const IMPORT_MAX_FILES = 32;
/** Where drbddisk and halo:volume read drbd.conf when no `config` parameter says otherwise. */
export const DEFAULT_DRBD_CONF = '/etc/drbd.conf';
/** Where drbdlinks reads its links by default. */
export const DEFAULT_DRBDLINKS_CONF = '/etc/drbdlinks.conf';
/** The cluster properties Heartbeat's conversion implies, left alone unless asked for. */
export const HEARTBEAT_IMPLIED_PROPERTIES = ['stonith-enabled', 'no-quorum-policy'] as const;
const LIVE_REPLY_TIMEOUT_MS = PROPOSE_TIMEOUT_MS + 2_000;
export const IMPORT_NO_CLUSTER_MESSAGE =
  'no running cluster found (is `halo daemon` running? import needs one; `halo config convert FILE…` converts offline)';
const LIVE_READ_CATCH_UP_MS = 5_000;
const LIVE_READ_POLL_MS = 100;

export type ImportMode = 'update' | 'replace';

/** A file as read: its path (as given), text and permission bits (authkeys must be private). */
export interface ImportSource {
  readonly file: string;
  readonly text: string;
  readonly mode: number;
}

/** The files converted: one configuration, the drbd.conf files checked against it, and what to tell the user. */
export interface ImportConversion {
  /** Names the configuration's source in messages (`ha.cf + haresources`, a file name). */
  readonly label: string;
  readonly configuration: Configuration;
  readonly warnings: readonly Diagnostic[];
  readonly notes: readonly string[];
  readonly drbd: readonly { readonly file: string; readonly config: DrbdConfig }[];
  readonly heartbeat?: HeartbeatConfig;
}

export type ImportResult =
  | { readonly ok: true; readonly value: ImportConversion }
  | { readonly ok: false; readonly errors: readonly string[] };

export interface ImportOptions {
  /** Apply Heartbeat's implied stonith-enabled=false and no-quorum-policy=ignore. */
  readonly heartbeatProperties?: boolean;
}

/** Thrown inside the command to stop with a message and an exit code. */
class Exit extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading and converting (no cluster involved)

/**
 * Reads the arguments: files, or directories read as Heartbeat directories (their ha.cf,
 * haresources and authkeys). Problems come back as `FILE: error: …` lines; nothing throws.
 */
export function readImportSources(paths: readonly string[]): { sources: ImportSource[]; errors: string[] } {
  const sources: ImportSource[] = [];
  const errors: string[] = [];
  const readOne = (file: string): void => {
    try {
      const st = statSync(file);
      if (st.size > IMPORT_MAX_FILE_BYTES)
        errors.push(`${file}: error: file is ${st.size} bytes; the limit is ${IMPORT_MAX_FILE_BYTES}`);
      else sources.push({ file, text: readFileSync(file, 'utf8'), mode: st.mode });
    } catch (err) {
      errors.push(`${file}: error: cannot read the file (${(err as Error).message})`);
    }
  };
  for (const p of paths) {
    let dir = false;
    try {
      dir = statSync(p).isDirectory();
    } catch {
      // readOne reports it.
    }
    if (!dir) {
      readOne(p);
      continue;
    }
    let names: string[] = [];
    try {
      names = readdirSync(p);
    } catch (err) {
      errors.push(`${p}: error: cannot list the directory (${(err as Error).message})`);
      continue;
    }
    if (!names.includes('ha.cf')) {
      errors.push(
        `${p}: error: a directory is read as a Heartbeat directory (like /etc/ha.d), but it has no ha.cf`,
      );
      continue;
    }
    for (const kind of ['ha.cf', 'haresources', 'authkeys']) if (names.includes(kind)) readOne(join(p, kind));
  }
  if (sources.length + errors.length > IMPORT_MAX_FILES)
    errors.push(`error: ${sources.length} files given; one import takes at most ${IMPORT_MAX_FILES}`);
  return { sources, errors };
}

function diagnosticsOf(r: CibParseResult): Diagnostic[] {
  return r.ok ? [...r.warnings] : [...r.diagnostics];
}

/**
 * Converts the sources to one configuration (see the module comment for the rules). Pure: the
 * caller reads the files; drbd.conf includes are read through `nodeDrbdIo`.
 */
export function convertImport(sources: readonly ImportSource[], opts: ImportOptions = {}): ImportResult {
  const errors: string[] = [];
  const warnings: Diagnostic[] = [];
  const hb: Partial<Record<HeartbeatFileKind, ImportSource>> = {};
  const cibs: { label: string; parsed: CibParseResult }[] = [];
  const drbd: { file: string; config: DrbdConfig }[] = [];
  const drbdlinks: { file: string; links: readonly LinkPair[] }[] = [];
  for (const s of sources) {
    if (isDrbdlinksConf(s)) {
      try {
        drbdlinks.push({ file: s.file, links: parseDrbdlinksConf(s.text, s.file) });
      } catch (err) {
        errors.push((err as Error).message.replace(/^(\S+:\d+:\d+): /, '$1: error: '));
      }
      continue;
    }
    const det = detectFormat(s.text, s.file);
    if (!det && isCorosyncConf(s)) {
      errors.push(`${s.file}: ${COROSYNC_CONF_MESSAGE}`);
      continue;
    }
    if (!det) {
      errors.push(
        `${s.file}: error: not a configuration halo can import (expected ha.cf, haresources, authkeys, drbd.conf, crm text or CIB XML)`,
      );
      continue;
    }
    switch (det.format) {
      case 'heartbeat': {
        const kind = det.heartbeatFile ?? 'ha.cf';
        if (hb[kind]) errors.push(`${s.file}: error: a second ${kind} (the first is ${hb[kind]!.file})`);
        else hb[kind] = s;
        break;
      }
      case 'crm':
        cibs.push({ label: s.file, parsed: parseCrm(s.text, s.file) });
        break;
      case 'xml':
        cibs.push({ label: s.file, parsed: parseCibXml(s.text, s.file) });
        break;
      case 'drbd': {
        const r = parseDrbdConf(s.text, s.file, nodeDrbdIo);
        if (r.ok) {
          warnings.push(...r.warnings);
          drbd.push({ file: s.file, config: r.config });
        } else errors.push(...r.diagnostics.map(formatDiagnostic));
        break;
      }
    }
  }
  let heartbeat: HeartbeatConfig | undefined;
  if (Object.keys(hb).length > 0) {
    if (!hb['ha.cf']) {
      const given = Object.values(hb).map((s) => s.file);
      errors.push(
        `${given[0]}: error: Heartbeat files need their ha.cf too (it names the nodes and auto_failback); given: ${given.join(', ')}`,
      );
    } else {
      const r = heartbeatToCib({
        haCf: { text: hb['ha.cf'].text, file: hb['ha.cf'].file },
        ...(hb.haresources ? { haresources: { text: hb.haresources.text, file: hb.haresources.file } } : {}),
        ...(hb.authkeys
          ? { authkeys: { text: hb.authkeys.text, file: hb.authkeys.file, mode: hb.authkeys.mode } }
          : {}),
      });
      heartbeat = r.config;
      const label = [hb['ha.cf'], hb.haresources, hb.authkeys]
        .filter((s) => s !== undefined)
        .map((s) => s.file)
        .join(' + ');
      cibs.push({ label, parsed: r.cib });
    }
  }
  for (const c of cibs) {
    const d = diagnosticsOf(c.parsed);
    if (c.parsed.ok) warnings.push(...d);
    else errors.push(...d.filter((x) => x.severity === 'error').map(formatDiagnostic));
  }
  if (cibs.length === 0 && errors.length === 0)
    errors.push(
      'error: nothing to import: give one configuration (Heartbeat ha.cf [+ haresources + authkeys], a crm file or CIB XML), optionally with drbd.conf',
    );
  if (cibs.length > 1)
    errors.push(
      `error: ${cibs.length} configurations given (${cibs.map((c) => c.label).join('; ')}); import one at a time`,
    );
  if (errors.length > 0) return { ok: false, errors };
  const source = cibs[0]!;
  if (!source.parsed.ok) return { ok: false, errors: ['error: internal: unparsed configuration'] };
  // The drbd.conf files given say which device is which resource (a Filesystem on DRBD must
  // follow that resource's promotion).
  const semantic = validateCib(source.parsed.cib, source.parsed.positions, source.label, {
    drbdDevices: drbdDevicesOf(drbd.map((d) => d.config)),
  });
  const bad = semantic.filter((d) => d.severity === 'error');
  if (bad.length > 0) return { ok: false, errors: bad.map(formatDiagnostic) };
  warnings.push(...semantic);
  const notes: string[] = [];
  let configuration = source.parsed.cib.configuration;
  if (heartbeat) {
    notes.push(heartbeatTimingNote(heartbeat));
    if (hb.authkeys)
      notes.push(
        `${hb.authkeys.file} checked; halo's links are authenticated with the cluster key (/etc/halo/authkey, see halo keygen), not Heartbeat's`,
      );
    if (!opts.heartbeatProperties) {
      configuration = withoutImpliedProperties(configuration);
      notes.push(
        `Heartbeat v1 ran without fencing or quorum (stonith-enabled=false, no-quorum-policy=ignore); the running cluster keeps its own values (--heartbeat-properties applies them)`,
      );
    }
  }
  const linked = linkDrbdConfigs(configuration, drbd, source.label);
  if (!linked.ok) return linked;
  notes.push(...linked.notes);
  const withLinks = linkDrbdlinksConfig(linked.configuration, drbdlinks, source.label);
  if (!withLinks.ok) return withLinks;
  notes.push(...withLinks.notes);
  return {
    ok: true,
    value: {
      label: source.label,
      configuration: withLinks.configuration,
      warnings,
      notes,
      drbd,
      ...(heartbeat ? { heartbeat } : {}),
    },
  };
}

/**
 * Points every drbdlinks resource (`heartbeat:drbdlinks`, `halo:links`) at the drbdlinks.conf
 * given, when it names none and the file is not at drbdlinks' default place.
 */
function linkDrbdlinksConfig(
  configuration: Configuration,
  drbdlinks: readonly { file: string; links: readonly LinkPair[] }[],
  label: string,
): { ok: true; configuration: Configuration; notes: string[] } | { ok: false; errors: string[] } {
  if (drbdlinks.length === 0) return { ok: true, configuration, notes: [] };
  if (drbdlinks.length > 1)
    return {
      ok: false,
      errors: [`${drbdlinks[1]!.file}: error: a second drbdlinks.conf (the first is ${drbdlinks[0]!.file})`],
    };
  const abs = resolve(drbdlinks[0]!.file);
  const notes: string[] = [];
  let users = 0;
  const resources = mapPrimitives(configuration.resources, (p) => {
    const isLinks =
      (p.class === 'heartbeat' && p.type === 'drbdlinks') || (p.class === 'halo' && p.type === 'links');
    if (!isLinks) return p;
    users++;
    if (abs === DEFAULT_DRBDLINKS_CONF || hasParam(p, 'config') || hasParam(p, '1') || hasParam(p, 'links'))
      return p;
    notes.push(`${p.id} reads its links from ${abs} (config=${abs}); every node needs that file there`);
    return addParam(p, 'config', abs);
  });
  if (users === 0) notes.push(`${drbdlinks[0]!.file}: no drbdlinks resource in ${label} uses it`);
  return { ok: true, configuration: { ...configuration, resources }, notes };
}

function heartbeatTimingNote(c: HeartbeatConfig): string {
  return `ha.cf timings (keepalive ${c.keepaliveMs} ms, deadtime ${c.deadtimeMs} ms, warntime ${c.warntimeMs} ms, initdead ${c.initdeadMs} ms, udpport ${c.udpPort}) are the daemons' settings, not the CIB's: the running cluster keeps its timing profile (set "timing" in /etc/halo/halo.json to change it)`;
}

function withoutImpliedProperties(c: Configuration): Configuration {
  const drop = new Set<string>(HEARTBEAT_IMPLIED_PROPERTIES);
  const crmConfig = c.crmConfig
    .map((s) => ({ ...s, pairs: s.pairs.filter((p) => !drop.has(p.name)) }))
    .filter((s) => s.pairs.length > 0);
  return { ...c, crmConfig };
}

/** The resources with `f` applied to every primitive, inside groups and clones too. */
function mapPrimitives(resources: readonly Resource[], f: (p: Primitive) => Primitive): Resource[] {
  return resources.map((r) => mapResource(r, f));
}

function mapResource(r: Resource, f: (p: Primitive) => Primitive): Resource {
  switch (r.kind) {
    case 'primitive':
      return f(r);
    case 'group':
      return { ...r, members: r.members.map(f) };
    case 'clone':
      return {
        ...r,
        child: r.child.kind === 'group' ? { ...r.child, members: r.child.members.map(f) } : f(r.child),
      };
    default:
      return r;
  }
}

/** The replicated resource a primitive drives (drbddisk::RES, ocf:linbit:drbd, halo:volume), if any. */
function drbdResourceOf(p: Primitive): string | undefined {
  const attrs = new Map(p.instanceAttributes.flatMap((s) => s.pairs.map((x) => [x.name, x.value ?? ''])));
  if (p.class === 'heartbeat' && p.type === 'drbddisk') return attrs.get('1') ?? 'all';
  const volume =
    (p.class === 'ocf' && p.provider === 'linbit' && p.type === 'drbd') ||
    (p.class === 'halo' && p.type === 'volume');
  return volume ? attrs.get('drbd_resource') : undefined;
}

function hasParam(p: Primitive, name: string): boolean {
  return p.instanceAttributes.some((s) => s.pairs.some((x) => x.name === name));
}

function addParam(p: Primitive, name: string, value: string): Primitive {
  const [first, ...rest] = p.instanceAttributes;
  if (!first) {
    const id = `${p.id}-instance_attributes`;
    const set: NvSet = { kind: 'instance_attributes', id, pairs: [{ id: `${id}-${name}`, name, value }] };
    return { ...p, instanceAttributes: [set] };
  }
  const pair = { id: `${first.id ?? p.id}-${name}`, name, value };
  return { ...p, instanceAttributes: [{ ...first, pairs: [...first.pairs, pair] }, ...rest] };
}

/**
 * Checks the configuration's replicated resources against the drbd.conf files given, and points
 * them at the file when it is not the default one. Without any drbd.conf nothing is checked
 * (the nodes' own /etc/drbd.conf will be read when the resource starts).
 */
function linkDrbdConfigs(
  configuration: Configuration,
  drbd: readonly { file: string; config: DrbdConfig }[],
  label: string,
): { ok: true; configuration: Configuration; notes: string[] } | { ok: false; errors: string[] } {
  if (drbd.length === 0) return { ok: true, configuration, notes: [] };
  const where = new Map<string, string>();
  for (const d of drbd) for (const r of d.config.resources) if (!where.has(r.name)) where.set(r.name, d.file);
  const errors: string[] = [];
  const notes: string[] = [];
  const resources = mapPrimitives(configuration.resources, (p) => {
    const res = drbdResourceOf(p);
    if (res === undefined) return p;
    const file = where.get(res);
    if (file === undefined) {
      errors.push(
        `${label}: error: resource '${p.id}' uses replicated resource '${res}', which ${drbd.map((d) => d.file).join(', ')} does not define (it has ${[...where.keys()].join(', ') || 'none'})`,
      );
      return p;
    }
    const abs = resolve(file);
    if (abs === DEFAULT_DRBD_CONF || hasParam(p, 'config')) return p;
    notes.push(`${p.id} reads ${res} from ${abs} (config=${abs}); every node needs that file there`);
    return addParam(p, 'config', abs);
  });
  const nodes = new Set(configuration.nodes.map((n) => n.uname ?? n.id));
  for (const d of drbd)
    for (const r of d.config.resources)
      for (const h of r.hosts)
        if (nodes.size > 0 && !nodes.has(h.name))
          notes.push(
            `${d.file}: resource ${r.name} has 'on ${h.name}', which is not a node of the imported configuration (${[...nodes].join(', ')})`,
          );
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, configuration: { ...configuration, resources }, notes };
}

/**
 * Gives the imported nodes the running cluster's ids (matched by name; Heartbeat names nodes
 * only) and reports names the cluster does not have. `cluster` are the cluster's nodes as its
 * daemons know them.
 */
export function fitToCluster(
  configuration: Configuration,
  cluster: readonly { readonly id: string; readonly name: string }[],
): { configuration: Configuration; notes: string[] } {
  const notes: string[] = [];
  const byName = new Map(cluster.map((n) => [n.name, n.id]));
  const nodes = configuration.nodes.map((n) => {
    const name = n.uname ?? n.id;
    const id = byName.get(name);
    if (id === undefined) {
      notes.push(
        `node '${name}' is not a node of the running cluster (${cluster.map((c) => c.name).join(', ')}); resources that prefer it will run elsewhere`,
      );
      return n;
    }
    return { ...n, id, uname: name };
  });
  return { configuration: { ...configuration, nodes }, notes };
}

// ---------------------------------------------------------------------------------------------
// The running cluster

function liveSocket(o: { socket?: string; config?: string }): string {
  if (o.socket) return o.socket;
  const config = o.config ?? DEFAULT_CONFIG_FILE;
  try {
    const cfg = loadConfig(config);
    return controlSocketPath(cfg, resolveSelf(cfg, undefined));
  } catch (err) {
    throw new Exit(2, `halo: ${IMPORT_NO_CLUSTER_MESSAGE}: ${(err as Error).message}`);
  }
}

async function ask(socket: string, line: string): Promise<unknown> {
  try {
    return await queryControl(socket, line, LIVE_REPLY_TIMEOUT_MS);
  } catch (err) {
    throw new Exit(2, `halo: ${IMPORT_NO_CLUSTER_MESSAGE}: ${(err as Error).message}`);
  }
}

interface LiveView {
  readonly cib: Cib;
  readonly nodes: { id: string; name: string }[];
  /** Nodes this daemon sees as members (itself included), the DC, and whether it has quorum. */
  readonly up: ReadonlySet<string>;
  readonly dc: string | null;
  readonly quorate: boolean;
}

/**
 * The cluster's CIB as this node's daemon sees it, once that view has caught up with what has
 * committed (editing a stale copy would undo a commit), and the cluster's nodes.
 */
async function readLive(socket: string): Promise<LiveView> {
  const deadline = Date.now() + LIVE_READ_CATCH_UP_MS;
  for (;;) {
    const reply = (await ask(socket, 'cib')) as { cib?: Cib; error?: string };
    if (reply.error !== undefined || typeof reply.cib !== 'object' || reply.cib === null)
      throw new Exit(2, `halo: the daemon at ${socket} did not send its CIB: ${reply.error ?? 'no CIB'}`);
    const st = (await ask(socket, 'status')) as {
      consensus?: { cib?: { epoch?: number } };
      members?: { id: number; name: string; witness?: boolean; self?: boolean; state?: string }[];
      dc?: string | null;
      quorum?: { quorate?: boolean };
    };
    const committed = st.consensus?.cib?.epoch ?? 0;
    if (Number(cibAttr(reply.cib, 'epoch') ?? '0') >= committed) {
      const fromStatus = (st.members ?? [])
        .filter((m) => !m.witness)
        .map((m) => ({ id: String(m.id), name: m.name }));
      const fromCib = reply.cib.configuration.nodes.map((n) => ({ id: n.id, name: n.uname ?? n.id }));
      const up = liveMembers(st.members ?? []);
      return {
        cib: reply.cib,
        nodes: fromStatus.length > 0 ? fromStatus : fromCib,
        up,
        dc: st.dc ?? null,
        quorate: st.quorum?.quorate === true,
      };
    }
    if (Date.now() > deadline)
      throw new Exit(
        2,
        `halo: the daemon's view of the CIB is behind epoch ${committed}; try again in a moment`,
      );
    await sleep(LIVE_READ_POLL_MS);
  }
}

/** Checks every command first (shape and size), then proposes them in order; returns the log indexes. */
async function propose(socket: string, commands: readonly CibCommand[]): Promise<number[]> {
  const lines = commands.map((c) => `cib ${encodeCibCommand(c)}`);
  for (const [k, c] of commands.entries()) {
    const problem = validateCibCommand(c);
    if (problem) throw new Exit(2, `halo: the cluster cannot take this import: ${problem}`);
    const bytes = Buffer.byteLength(lines[k]!) + 1;
    if (bytes > MAX_CONTROL_REQUEST_BYTES)
      throw new Exit(
        2,
        `halo: the import is a ${bytes}-byte ${c.op} command; the control socket takes at most ${MAX_CONTROL_REQUEST_BYTES} bytes; nothing was sent`,
      );
  }
  const committed: number[] = [];
  for (const line of lines) {
    const reply = (await ask(socket, line)) as ProposeReply;
    if ('error' in reply)
      throw new Exit(2, `halo: the daemon at ${socket} refused the import: ${reply.error}`);
    if (!reply.ok && reply.code === 'member-node') throw new Exit(1, `halo: error: ${reply.message}`);
    if (!reply.ok)
      throw new Exit(
        2,
        `halo: the import was not committed (${reply.code}): ${reply.message}${reply.leader && !reply.message.includes(reply.leader) ? `; the DC is ${reply.leader}` : ''}`,
      );
    if (!reply.applied)
      throw new Exit(
        1,
        `halo: error: ${reply.message ?? 'the cluster rejected the import'}${reply.code === 'conflict' ? '; run the import again' : ''}`,
      );
    committed.push(reply.index);
  }
  return committed;
}

export interface LiveImportOptions {
  readonly mode: ImportMode;
  readonly dryRun: boolean;
}

export interface LiveImportOutcome {
  readonly conversion: ImportConversion;
  readonly notes: readonly string[];
  readonly changed: boolean;
  /** The transition the import causes (always computed; printed by --dry-run). */
  readonly preview: ReturnType<typeof previewTransition>;
  /** Raft log indexes of the committed commands (empty for --dry-run or no change). */
  readonly committed: readonly number[];
}

/**
 * Commits a conversion (from `convertImport`) to the cluster behind `socket` (the DC's; any
 * node's for a dry run). Throws with a message and an exit code (`importExitCode`: 1 refused,
 * 2 no cluster or not committed); nothing is sent unless every check passed.
 */
export async function importIntoCluster(
  socket: string,
  conversion: ImportConversion,
  o: LiveImportOptions,
): Promise<LiveImportOutcome> {
  const conv = { value: conversion };
  const live = await readLive(socket);
  const fitted = fitToCluster(conv.value.configuration, live.nodes);
  const nowMs = Date.now();
  const r = applyEdit(
    live.cib,
    { op: 'load', mode: o.mode, configuration: fitted.configuration, file: conv.value.label },
    nowMs,
  );
  if (!r.ok) throw new Exit(1, `halo: error: ${r.error.message}`);
  const notes = [...conv.value.notes, ...fitted.notes, ...r.notes];
  // The transition is computed on what the cluster schedules on: every configured node with the
  // membership and quorum the daemon reports (the replicated CIB carries none).
  const preview = previewTransition(
    withMembership(live.cib, live.up, live.quorate, live.dc),
    withMembership(r.cib, live.up, live.quorate, live.dc),
    nowMs,
  );
  if (o.dryRun || !r.changed)
    return { conversion: conv.value, notes, changed: r.changed, preview, committed: [] };
  const plan = toCibCommands(live.cib, r.cib, { compareAndSet: true });
  if (plan.unsupported.length > 0)
    throw new Exit(2, `halo: the cluster cannot take this import yet: ${plan.unsupported.join('; ')}`);
  const committed = await propose(socket, plan.commands);
  return { conversion: conv.value, notes, changed: true, preview, committed };
}

/**
 * The same import into a CIB XML file instead of a running cluster (`--cib FILE`, or
 * `CIB_file`, as for `halo configure`): nodes are matched to the file's nodes, the file is
 * rewritten atomically, and only if nobody changed it meanwhile. `--dry-run` writes nothing.
 */
export function importIntoCibFile(
  file: string,
  conversion: ImportConversion,
  o: LiveImportOptions,
): LiveImportOutcome & { readonly epoch?: string } {
  const read = (): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new Exit(
        2,
        `${file}: error: cannot read the CIB file (${(err as Error).message}); \`halo config convert --to xml FILES > ${file}\` makes a new one`,
      );
    }
  };
  const text = read();
  const parsed = parseCibXml(text, file);
  if (!parsed.ok) throw new Exit(2, parsed.diagnostics.map(formatDiagnostic).join('\n'));
  const before = parsed.cib;
  const known = before.configuration.nodes.map((n) => ({ id: n.id, name: n.uname ?? n.id }));
  const fitted =
    known.length > 0
      ? fitToCluster(conversion.configuration, known)
      : { configuration: conversion.configuration, notes: [] };
  const nowMs = Date.now();
  const r = applyEdit(
    before,
    { op: 'load', mode: o.mode, configuration: fitted.configuration, file: conversion.label },
    nowMs,
  );
  if (!r.ok) throw new Exit(1, `halo: error: ${r.error.message}`);
  const notes = [
    ...conversion.notes,
    ...fitted.notes.map((n) => n.replace('the running cluster', file)),
    ...r.notes,
  ];
  const preview = previewTransition(before, r.cib, nowMs);
  const outcome = { conversion, notes, changed: r.changed, preview, committed: [] };
  if (o.dryRun || !r.changed) return outcome;
  if (read() !== text)
    throw new Exit(
      2,
      `${file}: error: the file changed while this command ran; nothing written, run it again`,
    );
  writeFileAtomic(file, serializeCibXml(r.cib), statSync(file).mode & 0o777);
  return { ...outcome, epoch: cibAttr(r.cib, 'epoch') ?? '0' };
}

/** An import error with the exit code the CLI gives it (1 refused, 2 bad input or no cluster). */
export function importExitCode(err: unknown): number | undefined {
  return err instanceof Exit ? err.exitCode : undefined;
}

// ---------------------------------------------------------------------------------------------
// The command

const PROCESS_IO: Io = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

interface CmdOpts {
  mode: string;
  cib?: string;
  dryRun?: boolean;
  heartbeatProperties?: boolean;
  socket?: string;
  config?: string;
  output: string;
}

export function registerImportCommands(program: Command, io: Io = PROCESS_IO): void {
  program
    .command('import')
    .description(
      'import Heartbeat (ha.cf, haresources, authkeys), drbd.conf, crm or CIB XML files into the running cluster',
    )
    .argument('<files...>', 'files, or a Heartbeat directory such as /etc/ha.d')
    .addOption(
      new Option('--mode <mode>', 'update: add and replace by id; replace: the whole configuration')
        .choices(['update', 'replace'])
        .default('update'),
    )
    .option('--dry-run', 'print the transition the import would cause; change nothing')
    .option(
      '--heartbeat-properties',
      "also apply Heartbeat v1's stonith-enabled=false and no-quorum-policy=ignore",
    )
    .option(
      '--cib <file>',
      'import into this CIB XML file offline (default: $CIB_file; else the running cluster)',
    )
    .option('--socket <path>', "this node's daemon control socket (default: from the cluster config)")
    .option('--config <file>', 'the cluster config', DEFAULT_CONFIG_FILE)
    .addOption(new Option('--output <format>', 'output format').choices(['text', 'json']).default('text'))
    .addHelpText(
      'after',
      '\nExamples:\n  halo import /etc/ha.d /etc/drbd.conf --dry-run\n  halo import ha.cf haresources authkeys drbd.conf\n  halo import --mode replace cluster.crm\n  halo import /etc/ha.d /etc/drbd.conf --cib cib.xml   # offline, into a CIB file\n',
    )
    .action(async (files: string[], o: CmdOpts) => {
      try {
        const read = readImportSources(files);
        if (read.errors.length > 0) throw new Exit(2, read.errors.join('\n'));
        const conv = convertImport(read.sources, { heartbeatProperties: o.heartbeatProperties === true });
        if (!conv.ok) throw new Exit(2, conv.errors.join('\n'));
        for (const w of conv.value.warnings) io.err(`${formatDiagnostic(w)}\n`);
        const cibFile = o.cib ?? process.env.CIB_file;
        if (cibFile !== undefined && cibFile !== '') {
          const r = importIntoCibFile(cibFile, conv.value, {
            mode: o.mode as ImportMode,
            dryRun: o.dryRun === true,
          });
          report(io, o, r, cibFile);
          return;
        }
        const socket = liveSocket(o);
        const r = await importIntoCluster(socket, conv.value, {
          mode: o.mode as ImportMode,
          dryRun: o.dryRun === true,
        });
        report(io, o, r);
      } catch (err) {
        if (!(err instanceof Exit)) throw err;
        if (o.output === 'json') io.out(`${JSON.stringify({ ok: false, error: err.message }, null, 2)}\n`);
        io.err(`${err.message}\n`);
        process.exitCode = err.exitCode;
      }
    });
}

function report(
  io: Io,
  o: CmdOpts,
  r: LiveImportOutcome & { readonly epoch?: string },
  cibFile?: string,
): void {
  if (o.output === 'json') {
    const json = {
      ok: true,
      dryRun: o.dryRun === true,
      source: r.conversion.label,
      changed: r.changed,
      notes: r.notes,
      transition: r.preview,
      committed: r.committed,
    };
    io.out(`${JSON.stringify(json, null, 2)}\n`);
    return;
  }
  const notes = r.notes.map((n) => `note: ${n}\n`).join('');
  if (o.dryRun) {
    io.out(
      `${notes}import of ${r.conversion.label} (dry run, nothing changed):\n${formatPreview(r.preview)}`,
    );
    return;
  }
  if (!r.changed) {
    io.out(`${notes}nothing to change: ${cibFile ?? 'the cluster'} already has ${r.conversion.label}\n`);
    return;
  }
  if (cibFile !== undefined) {
    io.out(`${notes}imported ${r.conversion.label} into ${cibFile} (epoch ${r.epoch ?? '?'})\n`);
    return;
  }
  io.out(
    `${notes}imported ${r.conversion.label}: committed to the cluster (log index ${r.committed.join(', ')})\n`,
  );
}
