import { readFileSync } from 'node:fs';
import { HaloError } from '../lib/errors.ts';
import {
  isProfileName,
  PROFILES,
  type ProfileName,
  type TimingProfile,
  validateProfile,
} from '../membership/profiles.ts';
import { checkQuorumOptions, type QuorumOptions } from '../membership/quorum.ts';
import { DEFAULT_KEY_FILE } from '../transport/key_file.ts';
import { MAX_LINKS } from '../transport/links.ts';
import { MAX_NODE_ID } from '../transport/packet.ts';
import { type Endpoint, parseEndpoint, type SendMode } from '../transport/udp_transport.ts';

/**
 * The daemon's configuration file: JSON, the same file on every node (each daemon finds its
 * own entry with `--node NAME`, or by the node whose link address exists on this host).
 *
 * ```json
 * {
 *   "cluster": "web",                    // name; its hash is the cluster id on the wire
 *   "keyFile": "/etc/halo/authkey",      // 32-byte key from `halo keygen` (mode 0600)
 *   "profile": "lan",                    // lan | fast | wan | lab
 *   "timing": { "deadtimeMs": 400 },     // optional overrides of the profile's knobs
 *   "sendMode": "best",                  // best | all (copy every message on every link)
 *   "stateDir": "/var/lib/halo",         // boot epoch and Raft state, per node
 *   "controlSocket": "/run/halo/{node}.sock",
 *   "realtimePriority": 40,              // SCHED_RR priority of the daemon; 0 = plain nice -10
 *   "quorum": { "twoNode": false, "autoTieBreaker": false, "waitForAll": false, "expectedVotes": 3 },
 *   "nodes": [
 *     { "id": 1, "name": "alpha", "links": ["10.0.0.1:5405", "10.0.1.1:5405"], "stream": "10.0.0.1:5406" },
 *     { "id": 2, "name": "beta",  "links": ["10.0.0.2:5405", "10.0.1.2:5405"] },
 *     { "id": 9, "name": "tie",   "links": ["10.0.0.9:5405"], "witness": true }
 *   ]
 * }
 * ```
 * Link N of every node is one network (one switch or cable); a node may have fewer links than
 * others (a witness often has one). `votes` defaults to 1. `stream` is the TCP endpoint of the
 * stream channel, by default link 0's host with port + 1.
 */
export interface NodeConfig {
  readonly id: number;
  readonly name: string;
  readonly links: readonly Endpoint[];
  readonly stream: Endpoint;
  readonly votes: number;
  readonly witness: boolean;
}

export interface DaemonConfig {
  readonly file: string;
  readonly cluster: string;
  readonly keyFile: string;
  readonly profileName: ProfileName;
  readonly timing: TimingProfile;
  readonly sendMode: SendMode;
  readonly stateDir: string;
  readonly controlSocket: string;
  readonly quorum: QuorumOptions;
  readonly nodes: readonly NodeConfig[];
  /**
   * SCHED_RR priority the daemon asks for at start (1..99), or 0 for none (then only nice).
   * See run.ts: heartbeats must go out on time while services saturate the CPU.
   */
  readonly realtimePriority: number;
}

/**
 * Default SCHED_RR priority. Any RR priority preempts every ordinary (SCHED_OTHER) process,
 * which is what keeps heartbeats on time; the number only ranks us among realtime tasks. 40
 * stays below threaded interrupt handlers (50 on PREEMPT_RT kernels), which must run for our
 * heartbeats to be received at all, and below the kernel's own per-CPU threads (99).
 */
export const DEFAULT_REALTIME_PRIORITY = 40;
/** Linux SCHED_RR priorities are 1..99. */
export const MAX_REALTIME_PRIORITY = 99;

/** Where `halo daemon` and the CLI look for the cluster config. */
export const DEFAULT_CONFIG_FILE = '/etc/halo/halo.json';
export const DEFAULT_STATE_DIR = '/var/lib/halo';
export const DEFAULT_CONTROL_SOCKET = '/run/halo/{node}.sock';
/** A config file larger than this is not a halo config. */
const MAX_CONFIG_BYTES = 1 << 20;
const MAX_NODES = 64;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function loadConfig(file: string): DaemonConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new HaloError('config-unreadable', `cannot read config ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (text.length > MAX_CONFIG_BYTES)
    throw new HaloError('bad-config', `${file}: larger than ${MAX_CONFIG_BYTES} bytes`);
  return parseConfig(text, file);
}

/** Parses and validates config text; every error names the file, position or field, and the fix. */
export function parseConfig(text: string, file: string): DaemonConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new HaloError(
      'bad-config',
      `${file}:${jsonErrorPos(text, err as Error)}: invalid JSON: ${(err as Error).message}`,
    );
  }
  const bad = (field: string, msg: string): never => {
    throw new HaloError('bad-config', `${file}: ${field}: ${msg}`);
  };
  const o = obj(raw, 'top level', bad);
  known(
    o,
    [
      'cluster',
      'keyFile',
      'profile',
      'timing',
      'sendMode',
      'stateDir',
      'controlSocket',
      'realtimePriority',
      'quorum',
      'nodes',
    ],
    'top level',
    bad,
  );
  const cluster = str(o.cluster, 'cluster', bad);
  if (!NAME_RE.test(cluster)) bad('cluster', `'${cluster}' must be 1-63 of [A-Za-z0-9._-]`);
  const profileName = o.profile === undefined ? 'lan' : str(o.profile, 'profile', bad);
  if (!isProfileName(profileName))
    return bad('profile', `'${profileName}' is not one of lan, fast, wan, lab`);
  const timing = parseTiming(o.timing, PROFILES[profileName], bad);
  const sendMode = o.sendMode === undefined ? 'best' : str(o.sendMode, 'sendMode', bad);
  if (sendMode !== 'best' && sendMode !== 'all') return bad('sendMode', `'${sendMode}' is not best or all`);
  const nodes = parseNodes(o.nodes, bad);
  const q = o.quorum === undefined ? {} : obj(o.quorum, 'quorum', bad);
  known(q, ['twoNode', 'autoTieBreaker', 'waitForAll', 'expectedVotes'], 'quorum', bad);
  const quorum: QuorumOptions = {
    nodes: nodes.map((n) => ({ id: n.id, votes: n.votes, witness: n.witness })),
    twoNode: bool(q.twoNode, 'quorum.twoNode', bad) ?? false,
    autoTieBreaker: bool(q.autoTieBreaker, 'quorum.autoTieBreaker', bad) ?? false,
    waitForAll: bool(q.waitForAll, 'quorum.waitForAll', bad),
    expectedVotes:
      q.expectedVotes === undefined ? undefined : num(q.expectedVotes, 'quorum.expectedVotes', bad),
  };
  const problem = checkQuorumOptions(quorum);
  if (problem) bad('quorum', problem);
  const realtimePriority =
    o.realtimePriority === undefined
      ? DEFAULT_REALTIME_PRIORITY
      : num(o.realtimePriority, 'realtimePriority', bad);
  if (!Number.isInteger(realtimePriority) || realtimePriority < 0 || realtimePriority > MAX_REALTIME_PRIORITY)
    bad(
      'realtimePriority',
      `must be an integer 0..${MAX_REALTIME_PRIORITY} (0: no realtime scheduling), got ${realtimePriority}`,
    );
  return {
    file,
    cluster,
    keyFile: o.keyFile === undefined ? DEFAULT_KEY_FILE : str(o.keyFile, 'keyFile', bad),
    profileName,
    timing,
    sendMode,
    stateDir: o.stateDir === undefined ? DEFAULT_STATE_DIR : str(o.stateDir, 'stateDir', bad),
    controlSocket:
      o.controlSocket === undefined ? DEFAULT_CONTROL_SOCKET : str(o.controlSocket, 'controlSocket', bad),
    quorum,
    nodes,
    realtimePriority,
  };
}

type Bad = (field: string, msg: string) => never;

function parseTiming(raw: unknown, base: TimingProfile, bad: Bad): TimingProfile {
  if (raw === undefined) return base;
  const t = obj(raw, 'timing', bad);
  known(t, Object.keys(base), 'timing', bad);
  const merged: Record<string, number> = { ...base };
  for (const [k, v] of Object.entries(t)) merged[k] = num(v, `timing.${k}`, bad);
  try {
    return validateProfile(merged as unknown as TimingProfile, 'timing');
  } catch (err) {
    return bad('timing', (err as Error).message);
  }
}

function parseNodes(raw: unknown, bad: Bad): NodeConfig[] {
  if (!Array.isArray(raw) || raw.length === 0) return bad('nodes', 'must be a non-empty array of nodes');
  if (raw.length > MAX_NODES) bad('nodes', `at most ${MAX_NODES} nodes, got ${raw.length}`);
  const nodes = raw.map((r, i) => parseNode(r, `nodes[${i}]`, bad));
  checkDistinct(nodes, bad);
  return nodes;
}

/** Refuses two nodes with the same id, name or link address. */
function checkDistinct(nodes: readonly NodeConfig[], bad: Bad): void {
  const seen = new Map<string, string>();
  nodes.forEach((n, i) => {
    for (const key of [
      `id ${n.id}`,
      `name ${n.name}`,
      ...n.links.map((l) => `address ${l.host}:${l.port}`),
    ]) {
      const prev = seen.get(key);
      if (prev) bad(`nodes[${i}]`, `${key} is also used by ${prev}`);
      seen.set(key, `nodes[${i}]`);
    }
  });
}

/** A node entry as written in the config file (links and stream as "host:port" text). */
export interface NodeJson {
  readonly id: number;
  readonly name: string;
  readonly links: readonly string[];
  readonly stream?: string;
  readonly votes?: number;
  readonly witness?: boolean;
}

/** The config-file form of a node: what a membership change carries to every daemon. */
export function nodeToJson(n: NodeConfig): NodeJson {
  const text = (e: Endpoint): string =>
    e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
  return {
    id: n.id,
    name: n.name,
    links: n.links.map(text),
    stream: text(n.stream),
    votes: n.votes,
    witness: n.witness,
  };
}

/**
 * Parses one node entry (config-file form) on its own, e.g. from a membership change; throws
 * `bad-member` naming `where` and the field.
 */
export function parseNodeJson(raw: unknown, where: string): NodeConfig {
  return parseNode(raw, where, (field, msg) => {
    throw new HaloError('bad-member', `${field}: ${msg}`);
  });
}

/**
 * The configured nodes plus `added`, as one validated list (ids, names and addresses distinct);
 * throws `bad-member` naming the clash.
 */
export function withNodes(nodes: readonly NodeConfig[], added: readonly NodeConfig[]): NodeConfig[] {
  const all = [...nodes, ...added];
  if (all.length > MAX_NODES) throw new HaloError('bad-member', `at most ${MAX_NODES} nodes`);
  checkDistinct(all, (_field, msg) => {
    throw new HaloError('bad-member', msg);
  });
  return all;
}

function parseNode(r: unknown, where: string, bad: Bad): NodeConfig {
  const n = obj(r, where, bad);
  known(n, ['id', 'name', 'links', 'stream', 'votes', 'witness'], where, bad);
  const id = num(n.id, `${where}.id`, bad);
  if (!Number.isInteger(id) || id < 1 || id > MAX_NODE_ID)
    bad(`${where}.id`, `must be an integer 1..${MAX_NODE_ID}, got ${id}`);
  const name = str(n.name, `${where}.name`, bad);
  if (!NAME_RE.test(name)) bad(`${where}.name`, `'${name}' must be 1-63 of [A-Za-z0-9._-]`);
  if (!Array.isArray(n.links) || n.links.length < 1 || n.links.length > MAX_LINKS) {
    bad(`${where}.links`, `must list 1..${MAX_LINKS} "host:port" addresses`);
  }
  const links = (n.links as unknown[]).map((l, j) => endpoint(l, `${where}.links[${j}]`, bad));
  const stream =
    n.stream === undefined
      ? { host: links[0]!.host, port: links[0]!.port + 1 }
      : endpoint(n.stream, `${where}.stream`, bad);
  if (stream.port > 65535)
    bad(`${where}.stream`, 'default port (link 0 port + 1) is out of range; set stream');
  const votes = n.votes === undefined ? 1 : num(n.votes, `${where}.votes`, bad);
  if (!Number.isInteger(votes) || votes < 0) bad(`${where}.votes`, `must be an integer ≥ 0, got ${votes}`);
  return { id, name, links, stream, votes, witness: bool(n.witness, `${where}.witness`, bad) ?? false };
}

function endpoint(v: unknown, where: string, bad: Bad): Endpoint {
  const s = str(v, where, bad);
  try {
    return parseEndpoint(s, where);
  } catch (err) {
    return bad(where, (err as Error).message);
  }
}

function obj(v: unknown, where: string, bad: Bad): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad(where, 'must be an object');
  return v as Record<string, unknown>;
}

function known(o: Record<string, unknown>, keys: readonly string[], where: string, bad: Bad): void {
  for (const k of Object.keys(o))
    if (!keys.includes(k)) bad(where, `unknown field '${k}' (known: ${keys.join(', ')})`);
}

function str(v: unknown, where: string, bad: Bad): string {
  if (typeof v !== 'string' || v.length === 0)
    return bad(where, `must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

function num(v: unknown, where: string, bad: Bad): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    return bad(where, `must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function bool(v: unknown, where: string, bad: Bad): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') return bad(where, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** "line:col" of a JSON.parse error, from the "position N" in V8's message. */
function jsonErrorPos(text: string, err: Error): string {
  const m = /position (\d+)/.exec(err.message);
  if (!m) return '1:1';
  const pos = Number(m[1]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  return `${line}:${col}`;
}

/** The control socket path for a node (`{node}` replaced by its name). */
export function controlSocketPath(cfg: DaemonConfig, node: string): string {
  return cfg.controlSocket.replaceAll('{node}', node);
}

/** The profiles `closestProfile` picks from; `lab` is tuned for test machines, not for production. */
export const MIGRATION_PROFILES: readonly ProfileName[] = ['fast', 'lan', 'wan'];

/**
 * The timing profile whose deadtime is closest to `detectionMs` (another stack's time to declare
 * a silent node dead: Heartbeat's deadtime, corosync's token), by ratio rather than difference,
 * because timeouts are chosen by orders of magnitude: 1 s is nearer 250 ms (×4) than 5 s (×5).
 * Returns the profile and a sentence saying why, which `halo cluster init --from` prints.
 */
export function closestProfile(detectionMs: number): { readonly profile: ProfileName; readonly why: string } {
  const ms = Math.max(1, detectionMs); // a 0 ms timeout is nearest the fastest profile
  const distance = (p: ProfileName): number => Math.abs(Math.log(PROFILES[p].deadtimeMs / ms));
  const best = [...MIGRATION_PROFILES].sort((a, b) => distance(a) - distance(b))[0]!;
  const others = MIGRATION_PROFILES.filter((p) => p !== best)
    .map((p) => `${p} ${PROFILES[p].deadtimeMs} ms`)
    .join(', ');
  return {
    profile: best,
    why: `closest to ${best}'s deadtime of ${PROFILES[best].deadtimeMs} ms (${others}; lab is for test machines)`,
  };
}
