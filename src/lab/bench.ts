import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { queryControl } from '../daemon/control.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { HaloError } from '../lib/errors.ts';
import { isLabDaemon, type LabState, labChaos, labVolumeStatus, readLabState, vipHolders } from './lab.ts';
import {
  LAB_VIP,
  type ScenarioName,
  SEED003_SERVER_RESOURCE,
  SEED003_VIP_RESOURCE,
  WEB_SERVER_RESOURCE,
  WEB_VIP_RESOURCE,
} from './scenarios.ts';

/**
 * `halo lab bench failover`: on a running lab with the web scenario, inject a fault on the node
 * serving the VIP and measure, per trial, from the client namespace (an HTTP probe of the VIP
 * every `PROBE_INTERVAL_MS`) how long the service was gone, and from the daemons' own logs
 * (JSON lines with wall-clock `t`, one host so one clock) when each phase happened: the loss
 * detected, the node fenced, the recovery scheduled, the VIP and the server started elsewhere.
 * Then the target is booted again and the next trial waits for a settled cluster. Wall-clock
 * measurement only; nothing here is asserted on timing.
 */
export type BenchFault = 'kill' | 'cut-link';
export const PROBE_INTERVAL_MS = 10;
/** A probe request not answered within this long counts as a failure. */
export const PROBE_TIMEOUT_MS = 200;
const STATUS_POLL_MS = 50;
const STATUS_TIMEOUT_MS = 500;
/** A trial whose service has not come back within this long is reported as such. */
const PHASE_DEADLINE_MS = 30_000;
/** How long the service must have answered before a fault for the gap to mean anything. */
const SERVICE_WARMUP_MS = 2_000;
/** Waiting for the service to answer at all before the first trial / after a re-join. */
const SETTLE_DEADLINE_MS = 60_000;
/** Log bytes read per node and trial (a trial writes a few KiB). */
const MAX_LOG_READ_BYTES = 4 << 20;
export const MAX_TRIALS = 100;

export interface TrialPhases {
  /** ms from the fault until a survivor declared the target lost. */
  readonly detectedMs: number | null;
  /** ms until a new DC was elected (only when the target was the DC). */
  readonly newDcMs: number | null;
  /** ms until the DC computed the recovery transition. */
  readonly scheduledMs: number | null;
  /** ms until the DC's fence of the target succeeded. */
  readonly fencedMs: number | null;
  /** ms until the VIP's start finished on the new node. */
  readonly vipUpMs: number | null;
  /** ms until the web server's start finished on the new node. */
  readonly serverUpMs: number | null;
  /** ms until the client got its first answer from the new node. */
  readonly answeringMs: number | null;
  /** ms until the replicated volume's promote finished on the new node (seed-003 only). */
  readonly promotedMs?: number | null;
  /** ms until the filesystem on it was mounted (fsck + mount) on the new node (seed-003 only). */
  readonly mountedMs?: number | null;
}

/** Which resources' start times make the phases of a scenario. */
export interface BenchResources {
  readonly vip: string;
  readonly server: string;
  /** The promotable volume (clone instances `volume:N`). */
  readonly volume?: string;
  readonly fs?: string;
}

export const WEB_BENCH_RESOURCES: BenchResources = { vip: WEB_VIP_RESOURCE, server: WEB_SERVER_RESOURCE };

/** The scenarios the failover bench knows how to measure, with their resources. */
export function benchResources(s: ScenarioName | null): BenchResources | undefined {
  if (s === 'web') return WEB_BENCH_RESOURCES;
  if (s === 'seed-003')
    return { vip: SEED003_VIP_RESOURCE, server: SEED003_SERVER_RESOURCE, volume: 'p_drbd', fs: 'p_fs' };
  return undefined;
}

export interface TrialResult extends TrialPhases {
  readonly trial: number;
  readonly target: string;
  readonly targetWasDc: boolean;
  readonly fault: BenchFault;
  /** The node answering after failover. */
  readonly newNode: string | null;
  /** ms from the first failed probe after the fault to the first answer from the new node. */
  readonly serviceGapMs: number | null;
  readonly note: string;
}

export interface BenchResult {
  readonly fault: BenchFault;
  readonly url: string;
  readonly profile: string | null;
  readonly trials: readonly TrialResult[];
  readonly medianDetectedMs: number | null;
  readonly medianGapMs: number | null;
  readonly maxGapMs: number | null;
}

async function status(n: LabState['nodes'][number]): Promise<DaemonStatus | undefined> {
  if (!isLabDaemon(n) || n.paused) return undefined;
  try {
    return (await queryControl(n.controlSocket, 'status', STATUS_TIMEOUT_MS)) as DaemonStatus;
  } catch {
    return undefined;
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Polls until `check` gives a value or `deadlineMs` passes (then undefined). */
async function until<T>(
  check: () => Promise<T | undefined>,
  deadlineMs = PHASE_DEADLINE_MS,
): Promise<T | undefined> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    const v = await check();
    if (v !== undefined) return v;
    await sleep(STATUS_POLL_MS);
  }
  return undefined;
}

export interface ProbeEvent {
  readonly ok: boolean;
  /** Who answered (the web scenario's server names its node), when ok. */
  readonly node: string | null;
  /** Wall ms when the request was sent. */
  readonly atMs: number;
}

/**
 * The client-side probe: a node process in the client namespace requesting the URL every
 * `PROBE_INTERVAL_MS` and printing a line whenever the outcome changes (ok and who answered,
 * or fail), stamped with when that request was sent.
 */
export class Probe {
  private readonly child: ChildProcess;
  readonly events: ProbeEvent[] = [];
  constructor(ns: string, url: string) {
    const script = `const http=require('node:http');let last=null;const url=process.argv[1];
const once=()=>{const t=Date.now();const req=http.get(url,{timeout:${PROBE_TIMEOUT_MS},agent:false},(res)=>{let b='';res.setEncoding('utf8');res.on('data',(d)=>{b+=d;});res.on('end',()=>{const m=/served by (\\S+)/.exec(b);report(res.statusCode<500?'ok '+(m?m[1]:'-'):'fail',t);});res.on('error',()=>report('fail',t));});
req.on('timeout',()=>req.destroy());req.on('error',()=>report('fail',t));};
const report=(s,t)=>{if(s!==last){last=s;process.stdout.write(s+' '+t+'\\n');}};
setInterval(once,${PROBE_INTERVAL_MS});`;
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, url], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    this.child.stdout?.setEncoding('utf8');
    let buf = '';
    this.child.stdout?.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const words = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        const ok = words[0] === 'ok';
        this.events.push({ ok, node: ok ? (words[1] ?? null) : null, atMs: Number(words.at(-1)) });
      }
    });
  }
  /** Whether the service answered continuously for the last `ms`. */
  upFor(ms: number): boolean {
    const last = this.events.at(-1);
    return last?.ok === true && Date.now() - last.atMs >= ms;
  }
  /** Who answers now, if anyone. */
  current(): string | null {
    const last = this.events.at(-1);
    return last?.ok ? last.node : null;
  }
  stop(): void {
    if (this.child.pid !== undefined && this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/**
 * The outage the client saw after `faultMs`: from the first failed probe to the first answer
 * from a node other than `target` (0 if no probe failed before that answer).
 */
export function serviceGap(
  events: readonly ProbeEvent[],
  faultMs: number,
  target: string,
): { gapMs: number | null; back: ProbeEvent | undefined } {
  const after = events.filter((e) => e.atMs >= faultMs);
  const back = after.find((e) => e.ok && e.node !== target);
  if (!back) return { gapMs: null, back: undefined };
  const firstFail = after.find((e) => !e.ok && e.atMs <= back.atMs);
  return { gapMs: firstFail ? back.atMs - firstFail.atMs : 0, back };
}

/** One JSON log line of a daemon (logger.ts), as far as the bench reads it. */
interface LogLine {
  readonly t: number;
  readonly msg?: string;
  readonly node?: string;
  readonly event?: string;
  readonly peer?: string;
  readonly to?: string;
  readonly leader?: string | null;
  readonly resource?: string;
  readonly op?: string;
  readonly rc?: number;
  readonly component?: string;
}

function logSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** The log lines written to `file` since byte `from` (bounded). */
export function readLogSince(file: string, from: number): LogLine[] {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return [];
  }
  try {
    const size = Math.min(logSize(file) - from, MAX_LOG_READ_BYTES);
    if (size <= 0) return [];
    const buf = Buffer.alloc(size);
    const n = readSync(fd, buf, 0, size, from);
    const out: LogLine[] = [];
    for (const line of buf.subarray(0, n).toString('utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const v = JSON.parse(line) as LogLine;
        if (typeof v.t === 'number') out.push(v);
      } catch {
        // A line cut at the read boundary.
      }
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Phase times (ms after `t0`) from the survivors' log lines. */
export function phasesFromLogs(
  lines: readonly LogLine[],
  t0: number,
  target: string,
  targetWasDc: boolean,
  names: BenchResources = WEB_BENCH_RESOURCES,
): Omit<TrialPhases, 'answeringMs'> {
  const sorted = lines.filter((l) => l.t >= t0).sort((a, b) => a.t - b.t);
  const first = (f: (l: LogLine) => boolean): number | null => {
    const l = sorted.find(f);
    return l ? l.t - t0 : null;
  };
  const done = (rsc: string, op: string) => (l: LogLine) =>
    l.event === 'op-done' &&
    (l.resource === rsc || l.resource?.replace(/:\d+$/, '') === rsc) &&
    l.op === op &&
    l.rc === 0 &&
    l.node !== target;
  const started = (rsc: string) => done(rsc, 'start');
  return {
    detectedMs: first((l) => l.event === 'member-state' && l.peer === target && l.to === 'lost'),
    newDcMs: targetWasDc ? first((l) => l.event === 'leader' && !!l.leader && l.leader !== target) : null,
    scheduledMs: first((l) => l.component === 'controller' && /^transition \d+: /.test(l.msg ?? '')),
    fencedMs: first((l) => l.component === 'controller' && (l.msg ?? '').startsWith(`fenced ${target}:`)),
    vipUpMs: first(started(names.vip)),
    serverUpMs: first(started(names.server)),
    ...(names.volume !== undefined ? { promotedMs: first(done(names.volume, 'promote')) } : {}),
    ...(names.fs !== undefined ? { mountedMs: first(started(names.fs)) } : {}),
  };
}

async function currentDc(state: LabState): Promise<string | undefined> {
  for (const n of state.nodes) {
    const st = await status(n);
    if (st?.dc) return st.dc;
  }
  return undefined;
}

/** Every daemon runs and sees every other one as a member. */
async function allMembers(dir: string): Promise<boolean> {
  const state = readLabState(dir);
  for (const n of state.nodes) {
    const st = await status(n);
    if (!st?.members.every((m) => m.state === 'member' || m.state === 'self')) return false;
  }
  return true;
}

async function oneTrial(
  dir: string,
  trial: number,
  fault: BenchFault,
  probe: Probe,
  names: BenchResources,
): Promise<TrialResult> {
  const state = readLabState(dir);
  const notes: string[] = [];
  // The fault hits the node serving the VIP when one does, else the DC.
  const holders = vipHolders(state);
  const dc = await currentDc(state);
  const target =
    state.nodes.find((n) => n.name === (probe.current() ?? holders[0])) ??
    state.nodes.find((n) => n.name === dc) ??
    state.nodes.find((n) => !n.witness)!;
  const survivors = state.nodes.filter((n) => n !== target);
  const offsets = new Map(survivors.map((n) => [n.name, logSize(n.logFile)]));
  const serviceUp = probe.upFor(SERVICE_WARMUP_MS);
  if (!serviceUp) notes.push(`service at http://${LAB_VIP}/ was not answering before the fault`);
  const t0 = Date.now();
  await labChaos(dir, { fault: fault === 'kill' ? 'kill' : 'partition', node: target.name });
  const back = await until(async () => serviceGap(probe.events, t0, target.name).back);
  // Let the logs catch up with what the client already saw.
  await sleep(300);
  const lines = survivors.flatMap((n) => readLogSince(n.logFile, offsets.get(n.name) ?? 0));
  const phases = phasesFromLogs(lines, t0, target.name, dc === target.name, names);
  const gap = serviceGap(probe.events, t0, target.name);
  if (!back) notes.push(`the service did not come back within ${PHASE_DEADLINE_MS} ms`);
  // Boot the target again (a fenced node is off; a killed daemon is gone) and wait for a settled cluster.
  const after = readLabState(dir).nodes.find((n) => n.name === target.name)!;
  if (isLabDaemon(after)) await labChaos(dir, { fault: 'heal', node: target.name });
  else await labChaos(dir, { fault: 'restart', node: target.name });
  const healed = await until(async () => ((await allMembers(dir)) ? true : undefined), SETTLE_DEADLINE_MS);
  if (!healed) notes.push(`${target.name} did not rejoin within ${SETTLE_DEADLINE_MS} ms`);
  if (names.volume !== undefined) {
    // The next fault must find a peer that can take over: the rejoined node resynced.
    const synced = await until(async () => {
      const s = readLabState(dir);
      return s.nodes.filter((n) => !n.witness).every((n) => labVolumeStatus(s, n.name)?.disk === 'UpToDate')
        ? true
        : undefined;
    }, SETTLE_DEADLINE_MS);
    if (!synced) notes.push(`the volume was not UpToDate on every node within ${SETTLE_DEADLINE_MS} ms`);
  }
  await until(async () => (probe.upFor(SERVICE_WARMUP_MS) ? true : undefined), SETTLE_DEADLINE_MS);
  return {
    trial,
    target: target.name,
    targetWasDc: dc === target.name,
    fault,
    ...phases,
    answeringMs: back ? back.atMs - t0 : null,
    newNode: back?.node ?? null,
    serviceGapMs: serviceUp ? gap.gapMs : null,
    note: notes.join('; '),
  };
}

export function median(xs: readonly (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : Math.round((v[m - 1]! + v[m]!) / 2);
}

export async function benchFailover(o: {
  dir: string;
  trials: number;
  fault: BenchFault;
  say?: (l: string) => void;
}): Promise<BenchResult> {
  if (!Number.isInteger(o.trials) || o.trials < 1 || o.trials > MAX_TRIALS) {
    throw new HaloError('bad-argument', `--trials must be 1..${MAX_TRIALS}, got ${o.trials}`);
  }
  const state = readLabState(o.dir);
  const names = benchResources(state.scenario);
  if (!names)
    throw new HaloError(
      'bad-scenario',
      `the failover bench needs the web or seed-003 scenario (this lab runs ${state.scenario ?? 'none'}); run 'halo lab down' and 'halo lab up --scenario web'`,
    );
  const url = `http://${LAB_VIP}/`;
  const probe = new Probe(state.client.ns, url);
  const trials: TrialResult[] = [];
  let profile: string | null = null;
  try {
    const ready = await until(
      async () => (probe.upFor(SERVICE_WARMUP_MS) ? true : undefined),
      SETTLE_DEADLINE_MS,
    );
    if (!ready)
      throw new HaloError(
        'service-down',
        `${url} did not answer steadily from ${state.client.ns} within ${SETTLE_DEADLINE_MS} ms; see 'halo lab status'`,
      );
    for (const n of state.nodes) profile ??= (await status(n))?.profile ?? null;
    for (let i = 1; i <= o.trials; i++) {
      const r = await oneTrial(o.dir, i, o.fault, probe, names);
      o.say?.(
        `trial ${i}: ${r.fault} ${r.target}${r.targetWasDc ? ' (DC)' : ''} -> ${r.newNode ?? '-'}: gap ${r.serviceGapMs ?? '-'} ms (detected ${r.detectedMs ?? '-'}, fenced ${r.fencedMs ?? '-'}, vip ${r.vipUpMs ?? '-'}${r.promotedMs !== undefined ? `, promoted ${r.promotedMs ?? '-'}, mounted ${r.mountedMs ?? '-'}` : ''}, answering ${r.answeringMs ?? '-'})${r.note ? ` [${r.note}]` : ''}`,
      );
      trials.push(r);
    }
  } finally {
    probe.stop();
  }
  const gaps = trials.map((t) => t.serviceGapMs);
  return {
    fault: o.fault,
    url,
    profile,
    trials,
    medianDetectedMs: median(trials.map((t) => t.detectedMs)),
    medianGapMs: median(gaps),
    maxGapMs: gaps.some((g) => g !== null) ? Math.max(...gaps.filter((g): g is number => g !== null)) : null,
  };
}

export function renderBench(r: BenchResult): string {
  const c = (v: number | null, w = 8): string => String(v ?? '-').padStart(w);
  const rows = r.trials.map(
    (t) =>
      `${String(t.trial).padStart(5)}  ${`${t.target}${t.targetWasDc ? '*' : ''}`.padEnd(6)} ${(t.newNode ?? '-').padEnd(4)}${c(t.detectedMs)}${c(t.newDcMs)}${c(t.scheduledMs, 10)}${c(t.fencedMs)}${c(t.vipUpMs)}${c(t.serverUpMs, 9)}${c(t.answeringMs, 10)}${c(t.serviceGapMs)}  ${t.promotedMs !== undefined ? `promoted ${t.promotedMs ?? '-'} mounted ${t.mountedMs ?? '-'} ` : ''}${t.note}`,
  );
  return [
    `failover bench: fault ${r.fault}, profile ${r.profile ?? '?'}, probing ${r.url} every ${PROBE_INTERVAL_MS} ms from the client namespace`,
    'phases in ms after the fault (from the daemons’ logs; answering and gap from the client); * = target was the DC',
    'trial  target new detected   new DC scheduled   fenced   VIP up server up answering   gap ms  note',
    ...rows,
    `median detection ${r.medianDetectedMs ?? '-'} ms; median service gap ${r.medianGapMs ?? '-'} ms; worst gap ${r.maxGapMs ?? '-'} ms`,
  ].join('\n');
}
