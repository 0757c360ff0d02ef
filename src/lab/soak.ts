/**
 * The soak of issue 7's acceptance: a lab cluster left alone (idle, then with every core kept
 * busy) must not fail anything over. Shared by `bench/cluster_soak_bench.ts` (10 minutes per
 * mode) and `src/lab/soak_test.ts` (seconds, in CI).
 *
 * Every `SOAK_SAMPLE_MS` the sampler records what the cluster says (the DC's CIB: where each
 * primitive is active, its start operations, its fail counts; every node's membership view,
 * quorum and DC) and what the machine says (which namespace holds the VIP, which process is the
 * web server). Consecutive samples are compared; every difference that is not planned counts:
 * a resource that moved, stopped or started again, a new failure, a node marked lost. Samples
 * that cannot be taken (a daemon slow to answer under load) are counted, not guessed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { failCounts, locate } from '../admin/resource_edits.ts';
import type { Cib } from '../cib/model.ts';
import { queryControl } from '../daemon/control.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { isLabDaemon, type LabState, labResources, vipHolders } from './lab.ts';
import { WEB_SERVER_FILE, WEB_SERVER_RESOURCE, WEB_VIP_RESOURCE } from './scenarios.ts';

/** How often the soak looks at the cluster (the issue asks for 250 ms). */
export const SOAK_SAMPLE_MS = 250;
/** A sample's control-socket questions must answer within this, else the sample is missed. */
export const SOAK_QUERY_TIMEOUT_MS = 2_000;
/** Longest soak phase accepted (an hour). */
export const MAX_SOAK_SECONDS = 3_600;

export type SoakMode = 'idle' | 'busy';

/** One look at the cluster. Maps are keyed by resource or node name. */
export interface SoakSample {
  readonly tMs: number;
  readonly dc: string | null;
  /** Node → whether it reports quorum. */
  readonly quorate: ReadonlyMap<string, boolean>;
  /** `observer>peer` → the peer's state as the observer sees it. */
  readonly membership: ReadonlyMap<string, string>;
  /** Primitive instance → sorted `node[:role]` where the DC says it is active. */
  readonly active: ReadonlyMap<string, string>;
  /** `node/primitive` → the latest start (or promote) the status records, as `call@rc-change`. */
  readonly starts: ReadonlyMap<string, string>;
  /** Primitive → fail-count total over all nodes. */
  readonly failures: ReadonlyMap<string, number>;
  /** Nodes whose namespace has the VIP up (ground truth from `ip addr`). */
  readonly vip: string;
  /** The web server's PID and namespace (ground truth from /proc), or '' when none runs. */
  readonly webServer: string;
}

export type SoakEventKind = 'moved' | 'restarted' | 'failed' | 'node-lost' | 'quorum-lost' | 'dc-changed';

export interface SoakEvent {
  readonly tMs: number;
  readonly kind: SoakEventKind;
  readonly what: string;
}

/** Events that are unplanned failovers; a DC change alone moves no service and is reported apart. */
export const FAILOVER_KINDS: readonly SoakEventKind[] = [
  'moved',
  'restarted',
  'failed',
  'node-lost',
  'quorum-lost',
];

/**
 * Failover events closer together than this are one incident: a lost node shows up as the node
 * marked lost by each peer, its resources gone, then started elsewhere, within a second or two.
 */
export const INCIDENT_GAP_MS = 5_000;

/** How many incidents the unplanned events make (events sorted by time, grouped by gap). Pure. */
export function countIncidents(events: readonly SoakEvent[]): number {
  let incidents = 0;
  let lastMs = Number.NEGATIVE_INFINITY;
  for (const e of [...events].filter((x) => FAILOVER_KINDS.includes(x.kind)).sort((a, b) => a.tMs - b.tMs)) {
    if (e.tMs - lastMs > INCIDENT_GAP_MS) incidents++;
    lastMs = e.tMs;
  }
  return incidents;
}

/** A user-facing sentence for each difference between two samples. Pure. */
export function compareSamples(a: SoakSample, b: SoakSample): SoakEvent[] {
  const out: SoakEvent[] = [];
  const ev = (kind: SoakEventKind, what: string): void => {
    out.push({ tMs: b.tMs, kind, what });
  };
  if (a.dc !== b.dc) ev('dc-changed', `DC ${a.dc ?? 'none'} -> ${b.dc ?? 'none'}`);
  for (const [node, q] of b.quorate)
    if (a.quorate.get(node) === true && !q) ev('quorum-lost', `${node} lost quorum`);
  for (const [key, state] of b.membership) {
    const was = a.membership.get(key);
    if (state === 'lost' && was !== 'lost') ev('node-lost', `${key.replace('>', ' marked ')} lost`);
  }
  for (const key of new Set([...a.active.keys(), ...b.active.keys()])) {
    const x = a.active.get(key) ?? '';
    const y = b.active.get(key) ?? '';
    if (x !== y) ev('moved', `${key}: active on [${x}] -> [${y}]`);
  }
  // Start records are compared only under the same DC: a new DC rebuilds the status.
  if (a.dc === b.dc)
    for (const [key, call] of b.starts) {
      const was = a.starts.get(key);
      if (was !== undefined && was !== call) ev('restarted', `${key} started again (${was} -> ${call})`);
    }
  for (const [rsc, n] of b.failures)
    if (n > (a.failures.get(rsc) ?? 0)) ev('failed', `${rsc} fail count ${a.failures.get(rsc) ?? 0} -> ${n}`);
  if (a.vip !== b.vip) ev('moved', `VIP held by [${a.vip}] -> [${b.vip}]`);
  if (a.webServer !== b.webServer)
    ev('restarted', `web server process ${a.webServer || 'none'} -> ${b.webServer || 'none'}`);
  return out;
}

/** The parts of a sample that come from the DC's CIB. Pure. */
export function cibFacts(cib: Cib, nowMs: number): Pick<SoakSample, 'active' | 'starts' | 'failures'> {
  const active = new Map<string, string>();
  const failures = new Map<string, number>();
  for (const r of cib.configuration.resources) {
    const l = locate(cib, r.id, nowMs);
    if (l.ok) {
      const by = new Map<string, string[]>();
      for (const a of l.active)
        by.set(a.instance, [
          ...(by.get(a.instance) ?? []),
          `${a.node}${a.role === 'Promoted' ? ':Promoted' : ''}${a.failed ? ':FAILED' : ''}`,
        ]);
      for (const [inst, nodes] of by) active.set(inst, nodes.sort().join(','));
    }
    const f = failCounts(cib, r.id);
    if (f.ok) failures.set(r.id, f.total);
  }
  const starts = new Map<string, string>();
  for (const s of cib.status) {
    for (const h of s.resources) {
      const last = h.ops
        .filter((o) => o.operation === 'start' || o.operation === 'promote')
        .map((o) => ({ call: Number(o.callId ?? '-1'), at: o.lastRcChange ?? '' }))
        .sort((x, y) => y.call - x.call)[0];
      if (last) starts.set(`${s.uname ?? s.id}/${h.id}`, `${last.call}@${last.at}`);
    }
  }
  return { active, starts, failures };
}

/** The network namespace inode of every lab node, to place a process on a node. */
function namespaceInodes(state: LabState): Map<number, string> {
  const m = new Map<number, string>();
  for (const n of state.nodes) {
    try {
      m.set(statSync(`/run/netns/${n.ns}`).ino, n.name);
    } catch {
      // Namespace gone: nothing can run there.
    }
  }
  return m;
}

/** The lab's web server processes as `pid@node` (ground truth, independent of the cluster). */
export function webServerProcesses(state: LabState): string {
  const script = join(state.dir, 'scenario', WEB_SERVER_FILE);
  const inodes = namespaceInodes(state);
  const found: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes(script)) continue;
      const node = inodes.get(statSync(`/proc/${pid}/ns/net`).ino) ?? '?';
      found.push(`${pid}@${node}`);
    } catch {
      // The process ended while we looked.
    }
  }
  return found.sort().join(',');
}

/**
 * Takes one sample: every running daemon's status, then the DC's CIB. Returns a reason string
 * when the sample cannot be taken whole (no DC answer, a daemon too slow): a missed sample.
 */
export async function takeSample(state: LabState): Promise<SoakSample | string> {
  const tMs = Date.now();
  const nodes = state.nodes.filter((n) => isLabDaemon(n));
  let statuses: DaemonStatus[];
  try {
    statuses = await Promise.all(
      nodes.map(
        (n) => queryControl(n.controlSocket, 'status', SOAK_QUERY_TIMEOUT_MS) as Promise<DaemonStatus>,
      ),
    );
  } catch (err) {
    return `status: ${(err as Error).message}`;
  }
  const quorate = new Map<string, boolean>();
  const membership = new Map<string, string>();
  const dcs = new Set<string | null>();
  for (const st of statuses) {
    quorate.set(st.node, st.quorum.quorate);
    dcs.add(st.dc);
    for (const m of st.members) if (!m.self) membership.set(`${st.node}>${m.name}`, m.state);
  }
  const dcName = statuses.find((s) => s.dc !== null)?.dc ?? null;
  const dc = state.nodes.find((n) => n.name === dcName);
  if (!dc) return 'no DC';
  let reply: { source?: string; cib?: Cib };
  try {
    reply = (await queryControl(dc.controlSocket, 'cib', SOAK_QUERY_TIMEOUT_MS)) as typeof reply;
  } catch (err) {
    return `cib: ${(err as Error).message}`;
  }
  if (reply.source !== 'dc' || !reply.cib) return `the DC ${dcName} did not answer as the DC`;
  return {
    tMs,
    dc: dcs.size === 1 ? dcName : [...dcs].join('|'),
    quorate,
    membership,
    ...cibFacts(reply.cib, tMs),
    vip: vipHolders(state).join(','),
    webServer: webServerProcesses(state),
  };
}

/** One bounded busy-loop process per core; each also stops by itself after `seconds`. */
export function busyLoops(count: number, seconds: number): ChildProcess[] {
  const code = `const end = Date.now() + ${Math.ceil(seconds * 1000)}; while (Date.now() < end) {}`;
  return Array.from({ length: count }, () => spawn(process.execPath, ['-e', code], { stdio: 'ignore' }));
}

/** Kills the busy loops this process started, by PID. */
export function stopBusyLoops(procs: readonly ChildProcess[]): void {
  for (const p of procs) {
    if (p.pid !== undefined && p.exitCode === null && p.signalCode === null) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}

/**
 * Waits (bounded) until the cluster is settled: a DC, every node a member everywhere, the
 * `web` group active on exactly one node with the VIP and the web server there, and two
 * consecutive samples with no difference. Returns that sample, the baseline of the soak.
 */
export async function waitSteady(state: LabState, deadlineMs: number): Promise<SoakSample> {
  const until = Date.now() + deadlineMs;
  let prev: SoakSample | undefined;
  let last = 'no sample yet';
  while (Date.now() < until) {
    const s = await takeSample(state);
    if (typeof s === 'string') last = s;
    else {
      const problem = unsettled(s);
      if (problem) last = problem;
      else if (prev && compareSamples(prev, s).length === 0) return s;
      prev = problem ? undefined : s;
    }
    await sleep(SOAK_SAMPLE_MS);
  }
  const mon = await labResources(state).catch(() => undefined);
  throw new Error(
    `the lab did not settle within ${deadlineMs} ms: ${last}${mon ? `\nresources as the DC reports them:\n${mon.text}` : ''}${state.scenarioLoad ? `\nscenario: ${state.scenarioLoad}` : ''}`,
  );
}

function unsettled(s: SoakSample): string | undefined {
  if (s.dc === null || s.dc.includes('|')) return `nodes disagree on the DC (${s.dc})`;
  for (const [k, v] of s.membership) if (v !== 'member') return `${k} is ${v}`;
  for (const [n, q] of s.quorate) if (!q) return `${n} has no quorum`;
  const vip = s.active.get(WEB_VIP_RESOURCE) ?? '';
  const www = s.active.get(WEB_SERVER_RESOURCE) ?? '';
  if (vip === '' || vip.includes(',') || vip !== www) return `vip on [${vip}], www on [${www}]`;
  if (s.vip !== vip) return `the VIP is up on [${s.vip}], the cluster says [${vip}]`;
  if (!s.webServer.endsWith(`@${www}`) || s.webServer.includes(','))
    return `web server processes [${s.webServer}], the cluster says [${www}]`;
  return undefined;
}

export interface SoakPhaseResult {
  readonly mode: SoakMode;
  readonly seconds: number;
  readonly samples: number;
  readonly missed: number;
  /** Longest time between two samples that were taken, in ms. */
  readonly maxGapMs: number;
  readonly events: readonly SoakEvent[];
  /** Incidents (see INCIDENT_GAP_MS) made of unplanned events; the acceptance wants 0. */
  readonly unplannedFailovers: number;
  /** 1-minute load average at the start and end of the phase. */
  readonly load: readonly [number, number];
  /** Where the web group ran at the end. */
  readonly endOn: string;
}

/**
 * Soaks for `seconds` in `mode` (busy: one bounded busy loop per core, killed at the end, also
 * on failure) starting from the settled `baseline`, and returns what it counted.
 */
export async function soakPhase(opts: {
  state: LabState;
  mode: SoakMode;
  seconds: number;
  cores: number;
  baseline: SoakSample;
  say?: (line: string) => void;
}): Promise<SoakPhaseResult & { last: SoakSample }> {
  const { state, mode, seconds } = opts;
  if (!(seconds > 0 && seconds <= MAX_SOAK_SECONDS))
    throw new RangeError(`soak seconds must be in (0, ${MAX_SOAK_SECONDS}], got ${seconds}`);
  const load0 = loadAverage();
  const loops = mode === 'busy' ? busyLoops(opts.cores, seconds + 5) : [];
  const events: SoakEvent[] = [];
  let prev = opts.baseline;
  let samples = 0;
  let missed = 0;
  let maxGapMs = 0;
  const end = Date.now() + seconds * 1000;
  try {
    while (Date.now() < end) {
      const s = await takeSample(state);
      if (typeof s === 'string') {
        missed++;
        opts.say?.(`${mode}: missed a sample: ${s}`);
      } else {
        samples++;
        maxGapMs = Math.max(maxGapMs, s.tMs - prev.tMs);
        for (const e of compareSamples(prev, s)) {
          events.push(e);
          opts.say?.(`${mode}: ${e.kind}: ${e.what}`);
        }
        prev = s;
      }
      await sleep(Math.max(0, Math.min(SOAK_SAMPLE_MS, end - Date.now())));
    }
  } finally {
    stopBusyLoops(loops);
  }
  return {
    mode,
    seconds,
    samples,
    missed,
    maxGapMs,
    events,
    unplannedFailovers: countIncidents(events),
    load: [load0, loadAverage()],
    endOn: prev.active.get(WEB_SERVER_RESOURCE) ?? '',
    last: prev,
  };
}

/** One line per phase, for the bench's output. */
export function formatSoakResult(r: SoakPhaseResult): string {
  const dc = r.events.filter((e) => e.kind === 'dc-changed').length;
  const kinds = new Map<string, number>();
  for (const e of r.events)
    if (FAILOVER_KINDS.includes(e.kind)) kinds.set(e.kind, (kinds.get(e.kind) ?? 0) + 1);
  const detail = [...kinds].map(([k, n]) => `${n} ${k}`).join(', ');
  return `soak ${r.mode.padEnd(4)} ${r.seconds} s: unplanned failovers ${r.unplannedFailovers}${detail ? ` (events: ${detail})` : ''}, DC changes ${dc}, samples ${r.samples} (missed ${r.missed}, longest gap ${r.maxGapMs} ms), web on ${r.endOn || 'none'}, load ${r.load[0].toFixed(2)} -> ${r.load[1].toFixed(2)}`;
}

function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}
