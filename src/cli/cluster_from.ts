import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import {
  COROSYNC_DEFAULT_PORT,
  type CorosyncMembership,
  isIpAddress,
  parseCorosyncMembership,
} from '../cib/corosync_conf.ts';
import { heartbeatFileKind } from '../cib/detect.ts';
import { type HeartbeatConfig, parseHaCf } from '../cib/heartbeat.ts';
import { closestProfile } from '../daemon/config.ts';
import { formatDiagnostic, HaloError } from '../lib/errors.ts';
import type { ProfileName } from '../membership/profiles.ts';
import { MAX_LINKS } from '../transport/links.ts';
import { MAX_NODE_ID } from '../transport/packet.ts';
import { isCorosyncConf } from './extra_formats.ts';

/**
 * `halo cluster init`'s plan of nodes and links: from `--node` specs, or (`--from`) from the
 * membership file of the stack halo replaces, corosync.conf or Heartbeat's ha.cf.
 */

export const DEFAULT_PORT = 5405;

export function nodeEntry(
  spec: string,
  id: number,
  witness: boolean,
): { id: number; name: string; links: string[]; witness?: boolean } {
  const m = /^([^=]+)=(.+)$/.exec(spec);
  if (!m) throw new HaloError('bad-argument', `'${spec}' is not name=addr[,addr…]`);
  const links = m[2]!.split(',').map(withPort);
  return { id, name: m[1]!, links, ...(witness ? { witness: true } : {}) };
}

/** `10.0.0.1` → `10.0.0.1:5405`, `fd00::1` → `[fd00::1]:5405`; an address with a port is kept. */
function withPort(addr: string): string {
  if (/^\[[0-9a-fA-F:.]+\]:\d+$/.test(addr) || /^[^:]+:\d+$/.test(addr)) return addr;
  return addr.includes(':') ? `[${addr}]:${DEFAULT_PORT}` : `${addr}:${DEFAULT_PORT}`;
}

const NODE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** A corosync.conf or ha.cf larger than this is not one. */
const MAX_SOURCE_BYTES = 1 << 20;

/** A node as the source file gives it: its address on each link, undefined where the file does not say. */
export interface SourceNode {
  readonly name: string;
  readonly id?: number;
  readonly addrs: readonly (string | undefined)[];
  readonly votes?: number;
  /** How the addresses were found, for the summary ("this host's eth0"). */
  readonly addrNote?: string;
}

/** What a corosync.conf or ha.cf says about membership, in one shape for `planInit`. */
export interface MembershipSource {
  readonly kind: 'corosync.conf' | 'ha.cf';
  readonly file: string;
  readonly clusterName?: string;
  /** Empty when the file names no node (corosync 1.x): then `--node` gives them all. */
  readonly nodes: readonly SourceNode[];
  /** What link N is in the file's words: `ring0`, `eth1 (ucast)`. */
  readonly links: readonly string[];
  /** Addresses the file gives on link N without saying whose (ha.cf `ucast` peers). */
  readonly peers: readonly (readonly string[])[];
  readonly linkPorts: readonly number[];
  /** Where the port came from, for the summary. */
  readonly portNote: string;
  /** The file's time to declare a silent node dead, and how it is written there. */
  readonly detectionMs: number;
  readonly timingNote: string;
  readonly quorum: {
    readonly twoNode?: boolean;
    readonly expectedVotes?: number;
    readonly waitForAll?: boolean;
    readonly autoTieBreaker?: boolean;
  };
  readonly notes: readonly string[];
}

/** This host, to recognise its own node in an ha.cf (Heartbeat named nodes by `uname -n`). */
export interface LocalHost {
  readonly hostname: string;
  /** IPv4 addresses per interface name, loopback excluded. */
  readonly interfaces: Readonly<Record<string, readonly string[]>>;
}

/** What `cluster init` writes, and the lines that explain it. */
export interface InitPlan {
  readonly doc: {
    cluster: string;
    keyFile: string;
    profile: string;
    quorum: Record<string, unknown>;
    nodes: Array<Record<string, unknown>>;
  };
  readonly summary: readonly string[];
  readonly twoNode: boolean;
}

function sourceError(msg: string): HaloError {
  return new HaloError('bad-source-file', msg);
}

function fmtMs(ms: number): string {
  return ms >= 1_000 && ms % 1_000 === 0 ? `${ms / 1_000} s` : `${ms} ms`;
}

/** Reads FILE and turns it into a MembershipSource; throws `bad-source-file` (exit 2) naming the problem. */
export function readMembershipSource(file: string, local?: LocalHost): MembershipSource {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new HaloError('source-unreadable', `--from ${file}: cannot read it (${(err as Error).message})`, {
      cause: err,
    });
  }
  if (text.length > MAX_SOURCE_BYTES)
    throw sourceError(`--from ${file}: larger than ${MAX_SOURCE_BYTES} bytes; not a corosync.conf or ha.cf`);
  return membershipSource(text, file, local);
}

/** The pure half of readMembershipSource: which format `text` is, parsed. */
export function membershipSource(text: string, file: string, local?: LocalHost): MembershipSource {
  if (isCorosyncConf({ file, text })) {
    const r = parseCorosyncMembership(text, file);
    if (!r.ok) throw sourceError(r.diagnostics.map(formatDiagnostic).join('\n'));
    return fromCorosync(r.value, file);
  }
  const kind = heartbeatFileKind(text, file);
  if (kind === 'ha.cf') {
    const r = parseHaCf(text, file);
    if (!r.ok) throw sourceError(r.diagnostics.map(formatDiagnostic).join('\n'));
    return fromHaCf(r.value, file, local);
  }
  if (kind !== undefined)
    throw sourceError(
      `--from ${file}: this is a Heartbeat ${kind}, which holds no membership; give --from the ha.cf (bring ${kind} in with 'halo import' once the cluster runs)`,
    );
  throw sourceError(
    `--from ${file}: not a corosync.conf (no 'totem {' section) nor a Heartbeat ha.cf (no 'node', 'bcast', 'deadtime'… lines); --from reads only those two`,
  );
}

/** corosync.conf: nodes, links and ports as written; token for timing; quorum as written. */
export function fromCorosync(m: CorosyncMembership, file: string): MembershipSource {
  // Without a nodelist, the totem interfaces still say how many networks (rings) there were.
  const linkCount = Math.max(
    0,
    ...m.nodes.map((n) => n.addrs.length),
    ...m.interfaces.map((i) => i.link + 1),
  );
  const tokenNote =
    m.tokenSource === 'token'
      ? `token ${m.tokenMs} ms`
      : `token not set: corosync's default ${m.tokenMs} ms${m.transport === 'knet' ? ' (corosync 3, knet)' : ' (corosync 1/2; corosync 3 defaults to 3000 ms)'}`;
  const coefNote =
    m.detectionMs === m.tokenMs
      ? ''
      : `, ${m.detectionMs} ms with ${m.nodes.length} nodes (token_coefficient)`;
  // A link without a totem.interface section uses corosync's default port, like corosync.
  const ports = Array.from(
    { length: Math.max(1, linkCount, m.linkPorts.length) },
    (_, i) => m.linkPorts[i] ?? COROSYNC_DEFAULT_PORT,
  );
  return {
    kind: 'corosync.conf',
    file,
    ...(m.clusterName === undefined ? {} : { clusterName: m.clusterName }),
    nodes: m.nodes.map((n) => ({
      name: n.name,
      ...(n.id === undefined ? {} : { id: n.id }),
      addrs: n.addrs,
      ...(n.votes === undefined ? {} : { votes: n.votes }),
      ...(n.nameFrom === 'ring0_addr' ? { addrNote: 'named by its ring0_addr: the node has no name' } : {}),
    })),
    links: Array.from({ length: linkCount }, (_, i) => `ring${i}`),
    peers: [],
    linkPorts: ports,
    portNote: ports
      .map((p, i) => {
        const from = m.interfaces.some((f) => f.link === i) ? 'mcastport' : "corosync's default";
        return `link ${i} ${p} (${from})`;
      })
      .join(', '),
    detectionMs: m.detectionMs,
    timingNote: `${tokenNote}${coefNote}`,
    quorum: {
      ...(m.quorum.twoNode === undefined ? {} : { twoNode: m.quorum.twoNode }),
      ...(m.quorum.expectedVotes === undefined ? {} : { expectedVotes: m.quorum.expectedVotes }),
      ...(m.quorum.waitForAll === undefined ? {} : { waitForAll: m.quorum.waitForAll }),
      ...(m.quorum.autoTieBreaker ? { autoTieBreaker: true } : {}),
    },
    notes: m.notes,
  };
}

/** ha.cf links: one per interface, in the order the bcast/mcast/ucast lines name them. */
function haCfLinks(
  cfg: HeartbeatConfig,
  notes: string[],
): { names: string[]; peers: string[][]; mcastPorts: (number | undefined)[] } {
  const names: string[] = [];
  const kinds: Set<string>[] = [];
  const peers: string[][] = [];
  const mcastPorts: (number | undefined)[] = [];
  for (const l of cfg.links) {
    if (l.kind === 'serial') {
      notes.push(`serial ${l.device}: halo has no serial links; its links are UDP over IP`);
      continue;
    }
    let i = names.indexOf(l.interface);
    if (i < 0) {
      i = names.push(l.interface) - 1;
      kinds.push(new Set());
      peers.push([]);
      mcastPorts.push(undefined);
    }
    kinds[i]!.add(l.kind);
    if (l.kind === 'mcast') mcastPorts[i] = l.port;
    if (l.kind === 'ucast') {
      if (isIpAddress(l.peer)) peers[i]!.push(l.peer);
      else notes.push(`ucast ${l.interface} ${l.peer}: not an IP address, so it names no node's address`);
    }
  }
  if (names.length > MAX_LINKS)
    throw sourceError(`ha.cf uses ${names.length} interfaces; halo has at most ${MAX_LINKS} links per node`);
  return { names: names.map((n, i) => `${n} (${[...kinds[i]!].join(', ')})`), peers, mcastPorts };
}

/**
 * ha.cf: node names from `node` lines; addresses only where unambiguous: this host's own
 * (when its host name is a node's, as Heartbeat matched `uname -n`) on each interface with one
 * IPv4 address, and `ucast` peers, which `planInit` gives to a node by elimination.
 */
export function fromHaCf(cfg: HeartbeatConfig, file: string, local?: LocalHost): MembershipSource {
  const seen = new Map<string, number>();
  for (const d of cfg.directives) {
    if (d.key.toLowerCase() !== 'node') continue;
    for (const n of d.value.split(/\s+/)) {
      const prev = seen.get(n);
      if (prev !== undefined)
        throw sourceError(
          `${file}:${d.pos.line}:${d.pos.column}: node '${n}' is listed twice (also on line ${prev}); list each node once`,
        );
      seen.set(n, d.pos.line);
    }
  }
  const notes: string[] = [];
  const links = haCfLinks(cfg, notes);
  const udpportSet = cfg.directives.some((d) => d.key.toLowerCase() === 'udpport');
  const basePort = udpportSet ? cfg.udpPort : DEFAULT_PORT;
  const linkPorts = links.names.length === 0 ? [basePort] : links.mcastPorts.map((p) => p ?? basePort);
  const short = (h: string) => h.toLowerCase().split('.')[0]!;
  const selfName = local ? cfg.nodes.find((n) => short(n) === short(local.hostname)) : undefined;
  const ifaceNames = links.names.map((l) => l.split(' ')[0]!);
  const nodes: SourceNode[] = cfg.nodes.map((name) => {
    if (name !== selfName || !local || ifaceNames.length === 0)
      return { name, addrs: ifaceNames.map(() => undefined) };
    const addrs = ifaceNames.map((i) =>
      local.interfaces[i]?.length === 1 ? local.interfaces[i]![0] : undefined,
    );
    return { name, addrs, addrNote: "this host (its host name), addresses of this host's interfaces" };
  });
  if (cfg.autoFailback === 'off')
    notes.push(
      "auto_failback off is a resource setting: 'halo import' of ha.cf with haresources makes it resource-stickiness",
    );
  if (cfg.crm !== undefined)
    notes.push(
      `crm ${cfg.crm}: Heartbeat ran Pacemaker; bring its CIB over with 'halo import' (cibadmin -Q output)`,
    );
  return {
    kind: 'ha.cf',
    file,
    nodes,
    links: links.names,
    peers: links.peers,
    linkPorts,
    portNote: udpportSet
      ? `udpport ${cfg.udpPort}${links.mcastPorts.some((p) => p !== undefined) ? ' (mcast lines: their own port)' : ''}`
      : `no udpport: halo's default ${DEFAULT_PORT}${links.mcastPorts.some((p) => p !== undefined) ? ' (mcast lines: their own port)' : ''} (Heartbeat used 694)`,
    detectionMs: cfg.deadtimeMs,
    timingNote: `deadtime ${fmtMs(cfg.deadtimeMs)}, keepalive ${fmtMs(cfg.keepaliveMs)}, warntime ${fmtMs(cfg.warntimeMs)}, initdead ${fmtMs(cfg.initdeadMs)}`,
    quorum: {},
    notes,
  };
}

/** `--node NAME=ADDR[,ADDR…]` for `--from`: every address an IP (optionally with :port), each name once. */
function parseNodeSpecs(specs: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const spec of specs) {
    const m = /^([^=]+)=(.+)$/.exec(spec);
    if (!m) throw new HaloError('bad-argument', `--node '${spec}' is not NAME=ADDR[,ADDR…]`);
    const name = m[1]!;
    if (out.has(name))
      throw new HaloError('bad-argument', `--node ${name} is given twice; give each node once`);
    const addrs = m[2]!.split(',');
    for (const a of addrs) {
      if (!isIpAddress(hostOf(a)))
        throw new HaloError(
          'bad-argument',
          `--node ${spec}: '${a}' is not an IP address (IPv6 with a port as [addr]:port); halo links need addresses, not host names`,
        );
    }
    if (addrs.length > MAX_LINKS)
      throw new HaloError(
        'bad-argument',
        `--node ${name}: at most ${MAX_LINKS} addresses (links), got ${addrs.length}`,
      );
    out.set(name, addrs);
  }
  return out;
}

/** The host part of `addr`, `addr:port` or `[v6]:port`. */
function hostOf(a: string): string {
  const v6 = /^\[([^\]]+)\]:\d+$/.exec(a);
  if (v6) return v6[1]!;
  const v4 = /^([^:]+):\d+$/.exec(a);
  return v4 ? v4[1]! : a;
}

/** `addr` with `port` unless it has one already. */
function endpointText(addr: string, port: number): string {
  if (addr !== hostOf(addr)) return addr;
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/**
 * Gives ucast peers to nodes by elimination, link by link: when exactly one node still lacks an
 * address on a link and exactly one of the link's peers is nobody's yet, it is that node's.
 */
function assignPeers(
  addrs: (string | undefined)[][],
  fixed: readonly boolean[],
  peers: MembershipSource['peers'],
): void {
  peers.forEach((linkPeers, i) => {
    const taken = new Set(addrs.flatMap((a) => a.filter((x): x is string => x !== undefined).map(hostOf)));
    const free = [...new Set(linkPeers)].filter((p) => !taken.has(p));
    const lacking = addrs.map((a, n) => (a[i] === undefined && !fixed[n] ? n : -1)).filter((n) => n >= 0);
    if (free.length === 1 && lacking.length === 1) addrs[lacking[0]!]![i] = free[0]!;
  });
}

/**
 * The error that lists exactly which nodes need `--node` (none named: every node, the file names
 * none), in link order, as a whole command line to copy.
 */
function missingAddresses(
  src: MembershipSource,
  names: readonly string[],
  name: string | undefined,
): HaloError {
  const form =
    src.links.length === 0 ? 'ADDR[,ADDR2…]' : src.links.map((l) => `ADDR_ON_${l.split(' ')[0]!}`).join(',');
  const why =
    src.kind === 'ha.cf'
      ? 'ha.cf names nodes but not their addresses (ucast peers are used only where they belong to one node unambiguously)'
      : 'this corosync.conf has no nodelist (corosync 1.x found its members by multicast on bindnetaddr), so it names no node and no address';
  const cluster = name ?? src.clusterName ?? 'NAME';
  const nodes =
    names.length > 0
      ? names.map((n) => `--node ${n}=${form}`).join(' ')
      : `--node NODE1=${form} --node NODE2=${form} …`;
  const whom = names.length > 0 ? `no address for ${names.join(', ')}` : 'no nodes';
  return new HaloError(
    'missing-node-address',
    `--from ${src.file}: ${whom}: ${why}; give ${names.length > 0 ? 'them' : 'each node'} with --node: halo cluster init ${cluster} --from ${src.file} ${nodes}`,
  );
}

/** Node ids: the file's where given (1..MAX_NODE_ID), then the lowest free ones in order. */
function assignIds(src: MembershipSource, count: number): number[] {
  const ids = Array.from({ length: count }, (_, i) => src.nodes[i]?.id);
  for (const [i, id] of ids.entries())
    if (id !== undefined && (id < 1 || id > MAX_NODE_ID))
      throw sourceError(
        `--from ${src.file}: node ${src.nodes[i]!.name} has nodeid ${id}; halo node ids are 1..${MAX_NODE_ID}: renumber it in the file`,
      );
  const used = new Set(ids.filter((x): x is number => x !== undefined));
  let next = 1;
  return ids.map((id) => {
    if (id !== undefined) return id;
    while (used.has(next)) next++;
    used.add(next);
    return next;
  });
}

export interface PlanOptions {
  readonly name?: string;
  readonly nodeSpecs: readonly string[];
  readonly witness?: string;
  /** `--profile` when the user gave it; else the closest one to the file's timing. */
  readonly profile?: ProfileName;
  readonly keyFile: string;
}

/** The halo config for `src` plus `--node`/`--witness`; throws a HaloError (exit 2) on bad input. */
export function planFromSource(src: MembershipSource, o: PlanOptions): InitPlan {
  const specs = parseNodeSpecs(o.nodeSpecs);
  const fileNames = src.nodes.map((n) => n.name);
  for (const name of specs.keys())
    if (fileNames.length > 0 && !fileNames.includes(name))
      throw new HaloError(
        'bad-argument',
        `--node ${name}: ${src.file} lists no node ${name} (it lists ${fileNames.join(', ')}); --node gives addresses to the file's nodes`,
      );
  if (fileNames.length === 0 && specs.size === 0) throw missingAddresses(src, [], o.name);
  const names = fileNames.length > 0 ? fileNames : [...specs.keys()];
  for (const n of names)
    if (!NODE_NAME_RE.test(n))
      throw new HaloError(
        'bad-argument',
        `node name '${n}' (${specs.has(n) && fileNames.length === 0 ? '--node' : src.file}) is not a halo node name, 1-63 of [A-Za-z0-9._-]${src.kind === 'corosync.conf' ? "; give the node a 'name:' in the nodelist" : ''}`,
      );
  const addrs = names.map((n) => [...(specs.get(n) ?? src.nodes.find((s) => s.name === n)?.addrs ?? [])]);
  const fixed = names.map((n) => specs.has(n));
  assignPeers(addrs, fixed, src.peers);
  const missing = names.filter(
    (_n, i) => !fixed[i] && (addrs[i]!.length === 0 || addrs[i]!.some((a) => a === undefined)),
  );
  if (missing.length > 0) throw missingAddresses(src, missing, o.name);
  const cluster = o.name ?? src.clusterName;
  if (cluster === undefined)
    throw new HaloError(
      'bad-argument',
      `${src.file} names no cluster${src.kind === 'corosync.conf' ? ' (no totem.cluster_name)' : ''}: give one, 'halo cluster init NAME --from ${src.file}'`,
    );
  const ids = assignIds(src, names.length);
  const port = (i: number) => src.linkPorts[i] ?? src.linkPorts[0] ?? DEFAULT_PORT;
  const nodes: Array<Record<string, unknown>> = names.map((name, n) => {
    const votes = src.nodes[n]?.votes;
    return {
      id: ids[n]!,
      name,
      links: addrs[n]!.map((a, i) => endpointText(a!, port(i))),
      ...(votes === undefined || votes === 1 ? {} : { votes }),
    };
  });
  if (o.witness) {
    const w = nodeEntry(o.witness, Math.max(...ids) + 1, true);
    const bad = w.links.find((l) => !isIpAddress(hostOf(l)));
    if (bad !== undefined)
      throw new HaloError('bad-argument', `--witness ${o.witness}: '${bad}' is not an IP address`);
    nodes.push({ ...w, links: w.links.map((l) => endpointText(hostOf(l), port(0))) });
  }
  const voters = names.length;
  const summary: string[] = [`from ${src.file} (${src.kind}):`];
  const q = src.quorum;
  let twoNode = q.twoNode ?? (voters === 2 && !o.witness);
  if (twoNode && o.witness) {
    twoNode = false;
    summary.push('  quorum: two_node dropped: the witness breaks the tie instead');
  }
  const profileChoice = o.profile
    ? { profile: o.profile, why: 'chosen with --profile' }
    : closestProfile(src.detectionMs);
  summary.push(
    `  cluster: ${cluster}${o.name === undefined ? ' (totem.cluster_name)' : ''}`,
    ...nodes.map((n, i) => {
      const note = specs.has(String(n.name))
        ? '--node'
        : (src.nodes[i]?.addrNote ?? (n.witness ? 'witness' : src.kind));
      return `  node ${String(n.name)}: id ${String(n.id)}, links ${(n.links as string[]).join(', ')} (${note})`;
    }),
    ...(src.links.length > 0 ? [`  links: ${src.links.map((l, i) => `${i}=${l}`).join(', ')}`] : []),
    `  port: ${src.portNote}`,
    `  profile: ${profileChoice.profile}: ${src.timingNote}; ${profileChoice.why}. halo declares a node lost after the profile's deadtime, not the file's; pass --profile fast|lan|wan to choose`,
    `  quorum: ${quorumText(twoNode, q, voters)}`,
    ...src.notes.map((n) => `  note: ${n}`),
  );
  const quorum: Record<string, unknown> = { twoNode };
  if (q.expectedVotes !== undefined) quorum.expectedVotes = q.expectedVotes;
  if (q.waitForAll !== undefined) quorum.waitForAll = q.waitForAll;
  if (q.autoTieBreaker) quorum.autoTieBreaker = true;
  return {
    doc: { cluster, keyFile: o.keyFile, profile: profileChoice.profile, quorum, nodes },
    summary,
    twoNode,
  };
}

function quorumText(twoNode: boolean, q: MembershipSource['quorum'], voters: number): string {
  const parts = [
    twoNode
      ? `two_node (${q.twoNode === undefined ? `${voters} nodes, no witness` : 'as the file sets it'})`
      : `majority of ${voters} node votes${q.twoNode === false ? ' (two_node off, as the file sets it)' : ''}`,
  ];
  if (q.expectedVotes !== undefined) parts.push(`expected_votes ${q.expectedVotes}`);
  if (q.waitForAll !== undefined) parts.push(`wait_for_all ${q.waitForAll ? 'on' : 'off'}`);
  if (q.autoTieBreaker) parts.push('auto_tie_breaker on');
  return parts.join(', ');
}

/** This host's name and IPv4 addresses per interface, for recognising its node in an ha.cf. */
export function localHost(): LocalHost {
  const interfaces: Record<string, string[]> = {};
  for (const [name, list] of Object.entries(networkInterfaces()))
    interfaces[name] = (list ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => a.address);
  return { hostname: hostname(), interfaces };
}
