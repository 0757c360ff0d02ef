import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { queryControl } from '../daemon/control.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { HaloError } from '../lib/errors.ts';
import { isLabDaemon, type LabState, labChaos, readLabState } from './lab.ts';
import { LAB_VIP } from './scenarios.ts';

/**
 * `halo lab bench failover`: on a running lab, inject a fault on the node holding the VIP (else
 * the DC) and measure, per trial, when a survivor marks it lost (detection), when a new DC is
 * known, and the gap in service the client namespace sees when probing the VIP over HTTP every
 * `PROBE_INTERVAL_MS`. Then heal and wait for the cluster to re-form before the next trial.
 * Wall-clock measurement only; nothing here is asserted on timing.
 */
export type BenchFault = 'kill' | 'cut-link';
export const PROBE_INTERVAL_MS = 10;
const STATUS_POLL_MS = 10;
const STATUS_TIMEOUT_MS = 500;
/** A trial that has not detected / recovered within this long is reported as such. */
const PHASE_DEADLINE_MS = 30_000;
/** How long the service must have answered before the fault for the gap to mean anything. */
const SERVICE_WARMUP_MS = 2_000;
export const MAX_TRIALS = 100;

export interface TrialResult {
  readonly trial: number;
  readonly target: string;
  readonly fault: BenchFault;
  /** ms from the fault until a survivor reported the target lost. */
  readonly detectedMs: number | null;
  /** ms from the fault until a survivor reported a DC other than the target. */
  readonly newDcMs: number | null;
  readonly newDc: string | null;
  /** ms between the last answer before the fault and the first after it (null: not measured). */
  readonly serviceGapMs: number | null;
  readonly note: string;
}

export interface BenchResult {
  readonly fault: BenchFault;
  readonly url: string;
  readonly trials: readonly TrialResult[];
  readonly medianDetectedMs: number | null;
  readonly medianGapMs: number | null;
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

/** Polls until `check` gives a value or the phase deadline passes (then undefined). */
async function until<T>(check: () => Promise<T | undefined>): Promise<T | undefined> {
  const end = Date.now() + PHASE_DEADLINE_MS;
  while (Date.now() < end) {
    const v = await check();
    if (v !== undefined) return v;
    await sleep(STATUS_POLL_MS);
  }
  return undefined;
}

/** The client-side probe: a node process in the client namespace printing `ok|fail <wall ms>` on every change. */
class Probe {
  private readonly child: ChildProcess;
  readonly events: { ok: boolean; atMs: number }[] = [];
  constructor(ns: string, url: string) {
    const script = `const http=require('node:http');let last=null;const url=process.argv[1];
const once=()=>{const t=Date.now();const req=http.get(url,{timeout:${PROBE_INTERVAL_MS * 20}},(res)=>{res.resume();report(res.statusCode<500,t);});
req.on('timeout',()=>req.destroy());req.on('error',()=>report(false,t));};
const report=(ok,t)=>{if(ok!==last){last=ok;process.stdout.write((ok?'ok ':'fail ')+t+'\\n');}};
setInterval(once,${PROBE_INTERVAL_MS});`;
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, url], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    this.child.stdout?.setEncoding('utf8');
    let buf = '';
    this.child.stdout?.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const [word, t] = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        this.events.push({ ok: word === 'ok', atMs: Number(t) });
      }
    });
  }
  /** Whether the service answered continuously for the last `ms`. */
  upFor(ms: number): boolean {
    const last = this.events.at(-1);
    return last?.ok === true && Date.now() - last.atMs >= ms;
  }
  gapAround(faultMs: number): number | null {
    const lastOkBefore = [...this.events].reverse().find((e) => e.atMs <= faultMs);
    const firstFail = this.events.find((e) => e.atMs > faultMs && !e.ok);
    if (!lastOkBefore?.ok) return null;
    if (!firstFail) return 0;
    const back = this.events.find((e) => e.atMs > firstFail.atMs && e.ok);
    return back ? back.atMs - firstFail.atMs : null;
  }
  stop(): void {
    if (this.child.pid !== undefined && this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

function holdsVip(ns: string): boolean {
  try {
    return execFileSync('ip', ['-n', ns, '-o', 'addr', 'show'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).includes(` ${LAB_VIP}/`);
  } catch {
    return false;
  }
}

async function currentDc(state: LabState): Promise<string | undefined> {
  for (const n of state.nodes) {
    const st = await status(n);
    if (st?.dc) return st.dc;
  }
  return undefined;
}

async function oneTrial(dir: string, trial: number, fault: BenchFault, probe: Probe): Promise<TrialResult> {
  const state = readLabState(dir);
  // The fault hits the node serving the VIP when one does, else the DC.
  const holder = state.nodes.find((n) => holdsVip(n.ns));
  const dc = await currentDc(state);
  const target = holder ?? state.nodes.find((n) => n.name === dc) ?? state.nodes.find((n) => !n.witness)!;
  const survivors = state.nodes.filter((n) => n !== target);
  const serviceUp = probe.upFor(SERVICE_WARMUP_MS);
  const t0 = Date.now();
  await labChaos(dir, { fault: fault === 'kill' ? 'kill' : 'partition', node: target.name });
  const detected = await until(async () => {
    for (const n of survivors) {
      const st = await status(n);
      if (st?.members.find((m) => m.name === target.name)?.state === 'lost') return Date.now() - t0;
    }
    return undefined;
  });
  const newDc = await until(async () => {
    for (const n of survivors) {
      const st = await status(n);
      if (st?.dc && st.dc !== target.name) return { name: st.dc, ms: Date.now() - t0 };
    }
    return undefined;
  });
  await sleep(serviceUp ? 1_000 : 0);
  const gap = serviceUp ? probe.gapAround(t0) : null;
  await labChaos(dir, { fault: fault === 'kill' ? 'restart' : 'heal', node: target.name });
  const healed = await until(async () => {
    const st = await status(readLabState(dir).nodes.find((n) => n.name === target.name)!);
    return st?.members.every((m) => m.state === 'member' || m.state === 'self') ? true : undefined;
  });
  const notes = [
    serviceUp ? '' : `service at http://${LAB_VIP}/ was not answering before the fault: gap not measured`,
    healed ? '' : `${target.name} did not rejoin within ${PHASE_DEADLINE_MS} ms`,
  ].filter(Boolean);
  return {
    trial,
    target: target.name,
    fault,
    detectedMs: detected ?? null,
    newDcMs: newDc?.ms ?? null,
    newDc: newDc?.name ?? null,
    serviceGapMs: gap,
    note: notes.join('; '),
  };
}

function median(xs: readonly (number | null)[]): number | null {
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
  const url = `http://${LAB_VIP}/`;
  const probe = new Probe(state.client.ns, url);
  const trials: TrialResult[] = [];
  try {
    await sleep(SERVICE_WARMUP_MS + 200);
    for (let i = 1; i <= o.trials; i++) {
      const r = await oneTrial(o.dir, i, o.fault, probe);
      o.say?.(
        `trial ${i}: ${r.fault} ${r.target}: detected ${r.detectedMs ?? '-'} ms, new DC ${r.newDc ?? '-'} at ${r.newDcMs ?? '-'} ms, service gap ${r.serviceGapMs ?? '-'} ms${r.note ? ` (${r.note})` : ''}`,
      );
      trials.push(r);
    }
  } finally {
    probe.stop();
  }
  return {
    fault: o.fault,
    url,
    trials,
    medianDetectedMs: median(trials.map((t) => t.detectedMs)),
    medianGapMs: median(trials.map((t) => t.serviceGapMs)),
  };
}

export function renderBench(r: BenchResult): string {
  const rows = r.trials.map(
    (t) =>
      `${String(t.trial).padStart(5)}  ${t.target.padEnd(6)} ${String(t.detectedMs ?? '-').padStart(9)} ${String(t.newDcMs ?? '-').padStart(8)} ${(t.newDc ?? '-').padEnd(6)} ${String(t.serviceGapMs ?? '-').padStart(7)}  ${t.note}`,
  );
  return [
    `failover bench: fault ${r.fault}, probing ${r.url} every ${PROBE_INTERVAL_MS} ms from the client namespace`,
    'trial  target  detected   new DC  DC      gap ms  note',
    ...rows,
    `median detection ${r.medianDetectedMs ?? '-'} ms; median service gap ${r.medianGapMs ?? '-'} ms`,
  ].join('\n');
}
