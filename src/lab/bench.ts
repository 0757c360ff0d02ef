import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { queryControl } from '../daemon/control.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { HaloError } from '../lib/errors.ts';
import { abortDeadNodeFuse } from '../lib/fuse.ts';
import { controlRequest } from '../volume/engine.ts';
import { isLabDaemon, type LabState, labChaos, readLabState, scenarioHost, vipHolders } from './lab.ts';
import {
  LAB_VIP,
  type ScenarioName,
  SEED003_DB,
  SEED003_DB_RESOURCE,
  SEED003_FS_RESOURCE,
  SEED003_SERVER_RESOURCE,
  SEED003_VIP_RESOURCE,
  SEED003_VOLUME,
  SEED003_VOLUME_RESOURCE,
  seed003Paths,
  WEB_SERVER_RESOURCE,
  WEB_VIP_RESOURCE,
} from './scenarios.ts';

/**
 * `halo lab bench failover`: on a running lab (web or seed-003 scenario), inject a fault on the
 * node serving the VIP and measure, per trial, from the client namespace (an HTTP probe of the VIP
 * every `PROBE_INTERVAL_MS`) how long the service was gone, and from the daemons' own logs
 * (JSON lines with wall-clock `t`, one host so one clock) when each phase happened: the loss
 * detected, the node fenced, the recovery scheduled, the volume promoted, the filesystem mounted,
 * the VIP, the web server and the database started elsewhere. Then the target is booted again and
 * the next trial waits for a settled cluster.
 *
 * On seed-003 each trial also checks what must never go wrong: rows the client wrote through the
 * VIP with the real SQL client (`mariadb` over TCP), each acknowledged before the fault, are all
 * there after it; and no two nodes have the volume Primary at once (every node's volume engine is
 * asked every `PRIMARY_POLL_MS`, and the survivor's log must show its promote after the fence).
 * Wall-clock measurement; the checks are reported (and fail the CLI), not asserted here.
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
/** The acceptance target for the median service gap (issue 7). */
export const TARGET_MEDIAN_GAP_MS = 1_000;
/** Rows written (one autocommitted INSERT each) before every fault on seed-003. */
export const DEFAULT_ROWS_PER_TRIAL = 100;
export const MAX_ROWS_PER_TRIAL = 1_000;
/** How often the SQL probe starts a `SELECT 1` through the VIP (each a `mariadb` process). */
export const DB_PROBE_INTERVAL_MS = 100;
/** The SQL probe's connect timeout (the client's unit is seconds) and its kill deadline. */
const DB_CONNECT_TIMEOUT_S = 1;
const DB_PROBE_KILL_MS = 2_500;
/** Probes in flight at once (a VIP that is gone makes each one wait for its timeout). */
const MAX_DB_PROBES_IN_FLIGHT = 30;
/** SQL statements of the bench itself (INSERT batch, counts). */
const SQL_TIMEOUT_MS = 30_000;
/** How often every node's volume engine is asked for its role during the bench. */
export const PRIMARY_POLL_MS = 50;
const PRIMARY_QUERY_TIMEOUT_MS = 300;
/** Row ids: run base + trial × this + row number (row number < MAX_ROWS_PER_TRIAL). */
const ROW_ID_TRIAL_STRIDE = 1_000;

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
  /** ms until the database agent's start finished on the new node (seed-003 only). */
  readonly dbUpMs?: number | null;
}

/** Which resources' start times make the phases of a scenario. */
export interface BenchResources {
  readonly vip: string;
  readonly server: string;
  /** The promotable volume (clone instances `volume:N`). */
  readonly volume?: string;
  readonly fs?: string;
  readonly db?: string;
}

export const WEB_BENCH_RESOURCES: BenchResources = { vip: WEB_VIP_RESOURCE, server: WEB_SERVER_RESOURCE };
export const SEED003_BENCH_RESOURCES: BenchResources = {
  vip: SEED003_VIP_RESOURCE,
  server: SEED003_SERVER_RESOURCE,
  volume: SEED003_VOLUME_RESOURCE,
  fs: SEED003_FS_RESOURCE,
  db: SEED003_DB_RESOURCE,
};

/** The scenarios the failover bench knows how to measure, with their resources. */
export function benchResources(s: ScenarioName | null): BenchResources | undefined {
  if (s === 'web') return WEB_BENCH_RESOURCES;
  if (s === 'seed-003') return SEED003_BENCH_RESOURCES;
  return undefined;
}

/** What one trial found about the data (seed-003). */
export interface TrialData {
  /** Rows acknowledged in this trial before the fault (null: the INSERTs failed). */
  readonly rowsWritten: number | null;
  /** Rows acknowledged before this fault in all trials of this run. */
  readonly rowsExpected: number;
  /** Of those, how many the database had after the failover (null: it could not be asked). */
  readonly rowsFound: number | null;
  /** ms after the fault until SQL through the VIP answered again after failing (client side). */
  readonly dbAnsweringMs: number | null;
  /** ms from the first failed SQL probe after the fault to the first answer after it. */
  readonly dbGapMs: number | null;
  /** Polls during this trial at which two nodes' volumes both said Primary. */
  readonly primaryOverlaps: number;
  /** Volume role polls made during this trial (how closely it was watched). */
  readonly primaryPolls: number;
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
  /** seed-003: rows and volume roles. */
  readonly data?: TrialData;
  /** The cluster settled again afterwards (else the bench stops: see settle()). */
  readonly settled: boolean;
  readonly note: string;
}

/** One acceptance check over all trials. */
export interface BenchCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface BenchResult {
  readonly fault: BenchFault;
  readonly url: string;
  readonly profile: string | null;
  readonly scenario: ScenarioName;
  readonly trials: readonly TrialResult[];
  readonly medianDetectedMs: number | null;
  readonly medianGapMs: number | null;
  readonly maxGapMs: number | null;
  readonly medianDbGapMs?: number | null;
  readonly checks: readonly BenchCheck[];
  /** Every check passed. */
  readonly ok: boolean;
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
  /** Who answered (the server names its node), when ok. */
  readonly node: string | null;
  /** Wall ms when the request was sent. */
  readonly atMs: number;
}

/**
 * The client-side probe: a node process in the client namespace requesting the URL every
 * `PROBE_INTERVAL_MS` and printing a line whenever the outcome changes (ok and who answered,
 * or fail), stamped with when that request was sent. The answering node comes from the
 * `X-Served-By` header (seed-003's nginx) or the body's "served by NODE" (the web scenario).
 */
export class Probe {
  private readonly child: ChildProcess;
  readonly events: ProbeEvent[] = [];
  constructor(ns: string, url: string) {
    const script = `const http=require('node:http');let last=null;const url=process.argv[1];
const once=()=>{const t=Date.now();const req=http.get(url,{timeout:${PROBE_TIMEOUT_MS},agent:false},(res)=>{let b='';res.setEncoding('utf8');res.on('data',(d)=>{b+=d;});res.on('end',()=>{const m=/served by (\\S+)/.exec(b);const h=res.headers['x-served-by'];report(res.statusCode<500?'ok '+(h||(m?m[1]:'-')):'fail',t);});res.on('error',()=>report('fail',t));});
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

/**
 * The database outage the client saw after `faultMs` (probe results sorted by send time): from
 * the first failed SQL probe to the first successful one sent after it. The old node's database
 * answers until it is fenced (fenced lab nodes stay off), so an answer after a failure comes from
 * the new node. Null when no probe failed (then the client cannot tell that it moved) or none
 * came back.
 */
export function dbGap(
  events: readonly ProbeEvent[],
  faultMs: number,
): { gapMs: number | null; back: ProbeEvent | undefined } {
  const after = events.filter((e) => e.atMs >= faultMs).sort((a, b) => a.atMs - b.atMs);
  const firstFail = after.find((e) => !e.ok);
  if (!firstFail) return { gapMs: null, back: undefined };
  const back = after.find((e) => e.ok && e.atMs > firstFail.atMs);
  return back ? { gapMs: back.atMs - firstFail.atMs, back } : { gapMs: null, back: undefined };
}

/** How the bench reaches the lab's database: the real client, in the client namespace, over TCP to the VIP. */
export interface SqlTarget {
  readonly ns: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

export function seed003SqlTarget(clientNs: string): SqlTarget {
  return {
    ns: clientNs,
    host: LAB_VIP,
    port: SEED003_DB.port,
    user: SEED003_DB.user,
    password: SEED003_DB.password,
    database: SEED003_DB.name,
  };
}

/** The `ip netns exec … mariadb …` argv for `sql` in batch mode (tab-separated, no headers). */
export function sqlArgv(t: SqlTarget, sql: string): string[] {
  return [
    'netns',
    'exec',
    t.ns,
    'mariadb',
    `--host=${t.host}`,
    `--port=${t.port}`,
    `--user=${t.user}`,
    `--connect-timeout=${DB_CONNECT_TIMEOUT_S}`,
    '--batch',
    '--skip-column-names',
    t.database,
    '-e',
    sql,
  ];
}

/** Runs SQL with the real client; ok only when the client exited 0 (every statement acknowledged). */
export function runSql(
  t: SqlTarget,
  sql: string,
  timeoutMs = SQL_TIMEOUT_MS,
): Promise<{ ok: boolean; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      'ip',
      sqlArgv(t, sql),
      // MYSQL_PWD: the password stays off the command line (ps).
      {
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        encoding: 'utf8',
        env: { ...process.env, MYSQL_PWD: t.password },
      },
      (err, stdout, stderr) =>
        resolve({ ok: err === null, out: stdout, err: stderr.trim() || (err?.message ?? '') }),
    );
  });
}

/**
 * The SQL probe: while running, starts a `SELECT 1` through the VIP every `DB_PROBE_INTERVAL_MS`
 * (without waiting for the previous one: a vanished VIP makes each wait for its connect timeout)
 * and records each outcome with its send time.
 */
export class DbProbe {
  readonly events: ProbeEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  constructor(private readonly target: SqlTarget) {}
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.inFlight >= MAX_DB_PROBES_IN_FLIGHT) return;
      const atMs = Date.now();
      this.inFlight++;
      void runSql(this.target, 'SELECT 1', DB_PROBE_KILL_MS).then((r) => {
        this.inFlight--;
        this.events.push({ ok: r.ok, node: null, atMs });
      });
    }, DB_PROBE_INTERVAL_MS);
  }
  /** Stops starting probes and waits (bounded) for those in flight. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const end = Date.now() + DB_PROBE_KILL_MS + 500;
    while (this.inFlight > 0 && Date.now() < end) await sleep(STATUS_POLL_MS);
  }
}

/** One poll of every node's volume role that found more than one Primary. */
export interface PrimaryOverlap {
  readonly atMs: number;
  readonly nodes: readonly string[];
}

/**
 * Which nodes' volume engines say Primary, asked over their control sockets at once. Two
 * Primaries in one poll are asked again right away before they count: a poll is not atomic,
 * and only a second look that still sees both is an overlap.
 */
export async function primariesNow(
  ask: (node: string) => Promise<string | undefined>,
  nodes: readonly string[],
): Promise<string[]> {
  const once = async (): Promise<string[]> => {
    const roles = await Promise.all(nodes.map(async (n) => ({ n, role: await ask(n) })));
    return roles.filter((r) => r.role === 'Primary').map((r) => r.n);
  };
  const first = await once();
  if (first.length < 2) return first;
  return once();
}

/** Polls every volume engine's role through the whole bench and records overlaps. */
export class PrimaryWatch {
  readonly overlaps: PrimaryOverlap[] = [];
  polls = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  constructor(
    private readonly nodes: readonly string[],
    private readonly ask: (node: string) => Promise<string | undefined>,
  ) {}
  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const atMs = Date.now();
        const p = await primariesNow(this.ask, this.nodes);
        this.polls++;
        if (p.length > 1) this.overlaps.push({ atMs, nodes: p });
        await sleep(PRIMARY_POLL_MS);
      }
    })();
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** What the bench reads of a lab node's volume engine. */
export interface LabVolumeView {
  readonly role: string;
  readonly disk: string;
  readonly conn: string;
  readonly peerDisk: string;
}

/** A lab node's volume state from its engine's control socket (undefined: no engine answers). */
export function labVolumeState(state: LabState): (node: string) => Promise<LabVolumeView | undefined> {
  const d = seed003Paths(scenarioHost(state.dir));
  return async (node) => {
    try {
      const r = await controlRequest(
        d.runDir(node),
        SEED003_VOLUME,
        { cmd: 'status' },
        PRIMARY_QUERY_TIMEOUT_MS,
      );
      const st = r?.status as Partial<Record<keyof LabVolumeView, unknown>> | undefined;
      if (!st) return undefined;
      const { role, disk, conn, peerDisk } = st;
      return typeof role === 'string' &&
        typeof disk === 'string' &&
        typeof conn === 'string' &&
        typeof peerDisk === 'string'
        ? { role, disk, conn, peerDisk }
        : undefined;
    } catch {
      return undefined;
    }
  };
}

/**
 * Replication is whole: every node's engine is Connected to its peer and both disks are
 * UpToDate. Only then can a fault of the Primary be survived without losing acknowledged
 * writes: a Secondary that is not connected misses them and would be promoted stale (as with
 * DRBD without a fencing policy).
 */
export function replicationWhole(views: readonly (LabVolumeView | undefined)[]): boolean {
  return (
    views.length > 0 &&
    views.every((v) => v?.conn === 'Connected' && v.disk === 'UpToDate' && v.peerDisk === 'UpToDate')
  );
}

function roleOf(
  f: (node: string) => Promise<{ role: string } | undefined>,
): (node: string) => Promise<string | undefined> {
  return async (node) => (await f(node))?.role;
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
    ...(names.db !== undefined ? { dbUpMs: first(started(names.db)) } : {}),
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

/** seed-003's data side of a run: the SQL target, the rows acknowledged so far, the role watch. */
interface DataRun {
  readonly sql: SqlTarget;
  readonly rowsPerTrial: number;
  /** First row id of this run (ids stay unique across runs on one lab). */
  readonly idBase: number;
  /** Ids acknowledged so far, in order. */
  readonly acknowledged: number[];
  readonly watch: PrimaryWatch;
}

/**
 * Where this run's row ids start: above every row already in the table (earlier runs on this
 * lab), so a run counts only its own rows. Also shows the database answers before any fault.
 */
async function firstFreeRowId(sql: SqlTarget): Promise<number> {
  let r = { ok: false, out: '', err: '' };
  // Right after `lab up` the database may still be starting: wait for it, bounded.
  const max = await until(async () => {
    r = await runSql(sql, `SELECT COALESCE(MAX(id), 0) FROM ${SEED003_DB.table}`);
    const n = Number(r.out.trim());
    return r.ok && Number.isSafeInteger(n) ? n : undefined;
  }, SETTLE_DEADLINE_MS);
  if (max === undefined)
    throw new HaloError(
      'service-down',
      `the database at ${sql.host}:${sql.port} did not answer from ${sql.ns} (${r.err.split('\n')[0] || r.out.trim()}); see 'halo lab status'`,
    );
  return max + 1;
}

/** `INSERT`s of one trial's rows, one autocommitted statement (one durable commit) per row. */
export function insertRowsSql(table: string, ids: readonly number[], trial: number): string {
  return ids
    .map((id) => `INSERT INTO ${table} (id, trial, note) VALUES (${id}, ${trial}, 'before fault');`)
    .join('\n');
}

/** Writes this trial's rows; returns the ids the database acknowledged (all, or none on failure). */
async function writeRows(data: DataRun, trial: number, notes: string[]): Promise<number[] | null> {
  const first = data.idBase + trial * ROW_ID_TRIAL_STRIDE;
  const ids = Array.from({ length: data.rowsPerTrial }, (_, k) => first + k);
  const r = await runSql(data.sql, insertRowsSql(SEED003_DB.table, ids, trial));
  if (!r.ok) {
    notes.push(`INSERTs before the fault failed: ${r.err.split('\n')[0]}`);
    return null;
  }
  return ids;
}

/** Counts how many of the acknowledged rows the database has now (null: it could not be asked). */
async function countRows(data: DataRun, notes: string[]): Promise<number | null> {
  if (data.acknowledged.length === 0) return 0;
  const lo = data.idBase;
  const hi = data.idBase + (MAX_TRIALS + 1) * ROW_ID_TRIAL_STRIDE;
  const r = await runSql(
    data.sql,
    `SELECT COUNT(*) FROM ${SEED003_DB.table} WHERE id >= ${lo} AND id < ${hi} AND note = 'before fault'`,
  );
  const n = Number(r.out.trim());
  if (!r.ok || !Number.isInteger(n)) {
    notes.push(`could not count the rows after failover: ${r.err.split('\n')[0]}`);
    return null;
  }
  return n;
}

async function oneTrial(
  dir: string,
  trial: number,
  fault: BenchFault,
  probe: Probe,
  names: BenchResources,
  data: DataRun | undefined,
): Promise<TrialResult> {
  const trialStart = Date.now();
  const notes: string[] = [];
  // Fault only a settled cluster: after lab up, or after a node was fenced meanwhile (a false
  // suspicion on a loaded host), faulting the lone survivor would measure nothing.
  if (!(await settle(dir, null, names.volume !== undefined, notes))) return notRun(trial, fault, notes);
  await until(async () => (probe.upFor(SERVICE_WARMUP_MS) ? true : undefined), SETTLE_DEADLINE_MS);
  const state = readLabState(dir);
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
  const written = data ? await writeRows(data, trial, notes) : null;
  if (data && written) data.acknowledged.push(...written);
  const dbProbe = data ? new DbProbe(data.sql) : undefined;
  dbProbe?.start();
  // The fault right after the last INSERT was acknowledged: those commits must survive it.
  const t0 = Date.now();
  await labChaos(dir, { fault: fault === 'kill' ? 'kill' : 'partition', node: target.name });
  const back = await until(async () => serviceGap(probe.events, t0, target.name).back);
  const dbBack = dbProbe ? await until(async () => dbGap(dbProbe.events, t0).back) : undefined;
  await dbProbe?.stop();
  const gap = serviceGap(probe.events, t0, target.name);
  if (!back) notes.push(`the service did not come back within ${PHASE_DEADLINE_MS} ms`);
  const rowsFound = data ? await countRows(data, notes) : null;
  if (data && rowsFound !== null && rowsFound < data.acknowledged.length)
    notes.push(`${data.acknowledged.length - rowsFound} acknowledged rows missing after failover`);
  if (dbProbe && !dbBack)
    notes.push(`SQL through the VIP did not fail and come back within ${PHASE_DEADLINE_MS} ms`);
  // Boot the target again (a fenced node is off; a killed daemon is gone) and wait for a settled cluster.
  const settled = await settle(dir, target.name, names.volume !== undefined, notes);
  if (settled)
    await until(async () => (probe.upFor(SERVICE_WARMUP_MS) ? true : undefined), SETTLE_DEADLINE_MS);
  // The survivors' logs, read after the settle so slow starts (the database agent's) are in.
  const lines = survivors.flatMap((n) => readLogSince(n.logFile, offsets.get(n.name) ?? 0));
  const phases = phasesFromLogs(lines, t0, target.name, dc === target.name, names);
  if (
    phases.promotedMs !== undefined &&
    phases.promotedMs !== null &&
    (phases.fencedMs === null || phases.promotedMs < phases.fencedMs)
  )
    notes.push(`the survivor promoted the volume before ${target.name} was fenced`);
  const trialEnd = Date.now();
  let trialData: TrialData | undefined;
  if (data && dbProbe) {
    const overlaps = data.watch.overlaps.filter((o) => o.atMs >= trialStart && o.atMs <= trialEnd);
    for (const o of overlaps.slice(0, 3))
      notes.push(`volume Primary on ${o.nodes.join(' and ')} at +${o.atMs - t0} ms`);
    const dg = dbGap(dbProbe.events, t0);
    trialData = {
      rowsWritten: written ? written.length : null,
      rowsExpected: data.acknowledged.length,
      rowsFound,
      dbAnsweringMs: dg.back ? dg.back.atMs - t0 : null,
      dbGapMs: dg.gapMs,
      primaryOverlaps: overlaps.length,
      primaryPolls: data.watch.polls,
    };
  }
  return {
    trial,
    target: target.name,
    targetWasDc: dc === target.name,
    fault,
    ...phases,
    answeringMs: back ? back.atMs - t0 : null,
    newNode: back?.node ?? null,
    serviceGapMs: serviceUp ? gap.gapMs : null,
    ...(trialData ? { data: trialData } : {}),
    settled,
    note: notes.join('; '),
  };
}

/** Times a node fenced again while rejoining (a false suspicion on a loaded host) is booted again. */
const MAX_REBOOTS = 3;
/**
 * How long replication must have been whole before a fault: longer than the Secondary's monitor
 * interval in seed-003 (2 s), so the promotion score a resync cleared is published again.
 */
const WHOLE_STABLE_MS = 3_000;

/**
 * Brings the faulted node back (heal a cut node, boot a fenced or killed one) and waits until
 * the cluster is settled: every daemon runs and sees every other as a member, and with a volume,
 * replication is whole (replicationWhole: the next fault must find a peer that can take over
 * with every write). A daemon
 * found dead meanwhile (fenced during the rejoin) is booted again, at most MAX_REBOOTS times.
 * Returns false, with a note, when the cluster did not settle: the bench must then stop rather
 * than fault the only node with good data.
 */
async function settle(
  dir: string,
  target: string | null,
  volume: boolean,
  notes: string[],
): Promise<boolean> {
  const n = readLabState(dir).nodes.find((x) => x.name === target);
  if (n && isLabDaemon(n)) await labChaos(dir, { fault: 'heal', node: n.name });
  for (let boot = 0; boot <= MAX_REBOOTS; boot++) {
    for (const x of readLabState(dir).nodes) {
      if (isLabDaemon(x)) continue;
      if (x.name !== target || boot > 0)
        notes.push(
          target === null
            ? `${x.name} was down before the fault (fenced meanwhile); booted it`
            : `${x.name} was fenced while ${target} rejoined; booted it again`,
        );
      const aborted = abortDeadNodeFuse(x.ns, dir);
      if (aborted.length > 0)
        notes.push(`aborted FUSE connection(s) ${aborted.join(', ')} of ${x.name}'s nbdfuse before its boot`);
      try {
        await labChaos(dir, { fault: 'restart', node: x.name });
      } catch (err) {
        // Seen dead a moment ago but running now (a /proc read raced with its start): nothing to boot.
        if (!(err instanceof HaloError && err.code === 'already-running')) throw err;
        notes.push(`${x.name} looked down but was running; not booted again`);
      }
    }
    let wholeSince: number | undefined;
    const outcome = await until(async () => {
      const s = readLabState(dir);
      if (s.nodes.some((x) => !isLabDaemon(x))) return 'died' as const;
      if (!(await allMembers(dir))) return undefined;
      if (!volume) return 'settled' as const;
      const view = labVolumeState(s);
      const views = await Promise.all(s.nodes.filter((x) => !x.witness).map((x) => view(x.name)));
      if (!replicationWhole(views)) {
        wholeSince = undefined;
        return undefined;
      }
      wholeSince ??= Date.now();
      return Date.now() - wholeSince >= WHOLE_STABLE_MS ? ('settled' as const) : undefined;
    }, SETTLE_DEADLINE_MS);
    if (outcome === 'settled') return true;
    if (outcome === undefined) {
      notes.push(
        `the cluster did not settle within ${SETTLE_DEADLINE_MS} ms ${target === null ? 'before the fault' : `after ${target} came back`}${volume ? ' (members; volume Connected and UpToDate on every node)' : ''}`,
      );
      return false;
    }
  }
  notes.push(
    `a node was fenced again after ${MAX_REBOOTS} reboots (${target === null ? 'before the fault' : `while ${target} rejoined`})`,
  );
  return false;
}

/** A trial whose fault was not injected: the cluster was not settled (see settle()). */
function notRun(trial: number, fault: BenchFault, notes: readonly string[]): TrialResult {
  return {
    trial,
    target: '-',
    targetWasDc: false,
    fault,
    detectedMs: null,
    newDcMs: null,
    scheduledMs: null,
    fencedMs: null,
    vipUpMs: null,
    serverUpMs: null,
    answeringMs: null,
    newNode: null,
    serviceGapMs: null,
    settled: false,
    note: ['no fault injected', ...notes].join('; '),
  };
}

export function median(xs: readonly (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : Math.round((v[m - 1]! + v[m]!) / 2);
}

/**
 * The acceptance of issue 7, over the trials: every trial failed over; the median service gap
 * is within TARGET_MEDIAN_GAP_MS; and on seed-003 no acknowledged row was lost and no two nodes
 * had the volume Primary at once (nor did a survivor promote before the fence).
 */
export function benchChecks(
  trials: readonly TrialResult[],
  medianGapMs: number | null,
  requested = trials.length,
): BenchCheck[] {
  const failed = trials.filter((t) => t.newNode === null || t.newNode === t.target);
  const ran = trials.length === requested ? '' : `; only ${trials.length} of ${requested} trials ran`;
  const checks: BenchCheck[] = [
    {
      name: 'every trial failed over',
      ok: trials.length > 0 && trials.length === requested && failed.length === 0,
      detail: `${failed.length ? `trials ${failed.map((t) => t.trial).join(', ')} did not` : `${trials.length} of ${trials.length}`}${ran}`,
    },
    {
      name: `median service gap <= ${TARGET_MEDIAN_GAP_MS} ms`,
      ok: medianGapMs !== null && medianGapMs <= TARGET_MEDIAN_GAP_MS,
      detail: `${medianGapMs ?? '-'} ms`,
    },
  ];
  const withData = trials.filter((t) => t.data !== undefined);
  if (withData.length > 0) {
    const lost = withData.filter(
      (t) =>
        t.data!.rowsWritten === null ||
        t.data!.rowsFound === null ||
        t.data!.rowsFound < t.data!.rowsExpected,
    );
    const last = withData.at(-1)!.data!;
    checks.push({
      name: 'rows acknowledged before each fault are all there after it',
      ok: lost.length === 0,
      detail: lost.length
        ? `trials ${lost.map((t) => `${t.trial} (${t.data!.rowsFound ?? '?'}/${t.data!.rowsExpected})`).join(', ')}`
        : `${last.rowsFound}/${last.rowsExpected} rows after the last failover`,
    });
    const overlaps = withData.reduce((a, t) => a + t.data!.primaryOverlaps, 0);
    const early = withData.filter((t) => /promoted the volume before/.test(t.note));
    checks.push({
      name: 'never Primary on two nodes at once',
      ok: overlaps === 0 && early.length === 0,
      detail: `${overlaps} overlapping polls of ${last.primaryPolls} (every ${PRIMARY_POLL_MS} ms); promote before fence in ${early.length} trials`,
    });
  }
  return checks;
}

export async function benchFailover(o: {
  dir: string;
  trials: number;
  fault: BenchFault;
  /** When given, the lab must run this scenario (a guard for scripts). */
  scenario?: ScenarioName;
  /** seed-003: rows written before each fault. */
  rowsPerTrial?: number;
  say?: (l: string) => void;
}): Promise<BenchResult> {
  if (!Number.isInteger(o.trials) || o.trials < 1 || o.trials > MAX_TRIALS) {
    throw new HaloError('bad-argument', `--trials must be 1..${MAX_TRIALS}, got ${o.trials}`);
  }
  const rowsPerTrial = o.rowsPerTrial ?? DEFAULT_ROWS_PER_TRIAL;
  if (!Number.isInteger(rowsPerTrial) || rowsPerTrial < 1 || rowsPerTrial > MAX_ROWS_PER_TRIAL)
    throw new HaloError('bad-argument', `--rows must be 1..${MAX_ROWS_PER_TRIAL}, got ${o.rowsPerTrial}`);
  const state = readLabState(o.dir);
  if (o.scenario !== undefined && state.scenario !== o.scenario)
    throw new HaloError(
      'bad-scenario',
      `this lab runs ${state.scenario ?? 'no scenario'}, not ${o.scenario}; run 'halo lab down' and 'halo lab up --scenario ${o.scenario}'`,
    );
  const names = benchResources(state.scenario);
  if (!names || state.scenario === null)
    throw new HaloError(
      'bad-scenario',
      `the failover bench needs the web or seed-003 scenario (this lab runs ${state.scenario ?? 'none'}); run 'halo lab down' and 'halo lab up --scenario web'`,
    );
  const url = `http://${LAB_VIP}/`;
  const probe = new Probe(state.client.ns, url);
  const volumeNodes = state.nodes.filter((n) => !n.witness).map((n) => n.name);
  const watch =
    names.db !== undefined ? new PrimaryWatch(volumeNodes, roleOf(labVolumeState(state))) : undefined;
  let data: DataRun | undefined;
  const trials: TrialResult[] = [];
  let profile: string | null = null;
  watch?.start();
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
    if (watch) {
      const sql = seed003SqlTarget(state.client.ns);
      data = { sql, rowsPerTrial, idBase: await firstFreeRowId(sql), acknowledged: [], watch };
    }
    for (const n of state.nodes) profile ??= (await status(n))?.profile ?? null;
    for (let i = 1; i <= o.trials; i++) {
      const r = await oneTrial(o.dir, i, o.fault, probe, names, data);
      o.say?.(
        `trial ${i}: ${r.fault} ${r.target}${r.targetWasDc ? ' (DC)' : ''} -> ${r.newNode ?? '-'}: gap ${r.serviceGapMs ?? '-'} ms (detected ${r.detectedMs ?? '-'}, fenced ${r.fencedMs ?? '-'}, vip ${r.vipUpMs ?? '-'}${r.promotedMs !== undefined ? `, promoted ${r.promotedMs ?? '-'}, mounted ${r.mountedMs ?? '-'}` : ''}, answering ${r.answeringMs ?? '-'})${r.data ? `; SQL gap ${r.data.dbGapMs ?? '-'} ms, rows ${r.data.rowsFound ?? '?'}/${r.data.rowsExpected}, Primary overlaps ${r.data.primaryOverlaps}` : ''}${r.note ? ` [${r.note}]` : ''}`,
      );
      trials.push(r);
      if (!r.settled) {
        o.say?.(`stopping after trial ${i}: the cluster did not settle (see its note)`);
        break;
      }
    }
  } finally {
    probe.stop();
    await watch?.stop();
  }
  const gaps = trials.map((t) => t.serviceGapMs);
  const medianGapMs = median(gaps);
  const checks = benchChecks(trials, medianGapMs, o.trials);
  return {
    fault: o.fault,
    url,
    profile,
    scenario: state.scenario,
    trials,
    medianDetectedMs: median(trials.map((t) => t.detectedMs)),
    medianGapMs,
    maxGapMs: gaps.some((g) => g !== null) ? Math.max(...gaps.filter((g): g is number => g !== null)) : null,
    ...(data ? { medianDbGapMs: median(trials.map((t) => t.data?.dbGapMs ?? null)) } : {}),
    checks,
    ok: checks.every((c) => c.ok),
  };
}

export function renderBench(r: BenchResult): string {
  const c = (v: number | null | undefined, w = 8): string => String(v ?? '-').padStart(w);
  const rows = r.trials.map(
    (t) =>
      `${String(t.trial).padStart(5)}  ${`${t.target}${t.targetWasDc ? '*' : ''}`.padEnd(6)} ${(t.newNode ?? '-').padEnd(4)}${c(t.detectedMs)}${c(t.newDcMs)}${c(t.scheduledMs, 10)}${c(t.fencedMs)}${c(t.vipUpMs)}${c(t.serverUpMs, 9)}${c(t.answeringMs, 10)}${c(t.serviceGapMs)}  ${t.promotedMs !== undefined ? `promoted ${t.promotedMs ?? '-'} mounted ${t.mountedMs ?? '-'} ` : ''}${t.note}`,
  );
  const data = r.trials.filter((t) => t.data !== undefined);
  const dataRows = data.map(
    (t) =>
      `${String(t.trial).padStart(5)}${c(t.promotedMs, 10)}${c(t.mountedMs)}${c(t.dbUpMs, 9)}${c(t.data!.dbAnsweringMs, 11)}${c(t.data!.dbGapMs, 8)}${`${t.data!.rowsWritten ?? '-'}`.padStart(9)}${`${t.data!.rowsFound ?? '?'}/${t.data!.rowsExpected}`.padStart(12)}${c(t.data!.primaryOverlaps, 10)}`,
  );
  return [
    `failover bench: scenario ${r.scenario}, fault ${r.fault}, profile ${r.profile ?? '?'}, probing ${r.url} every ${PROBE_INTERVAL_MS} ms from the client namespace`,
    'phases in ms after the fault (from the daemons’ logs; answering and gap from the client); * = target was the DC',
    'trial  target new detected   new DC scheduled   fenced   VIP up server up answering   gap ms  note',
    ...rows,
    ...(data.length
      ? [
          '',
          `database and volume (SQL with mariadb through the VIP every ${DB_PROBE_INTERVAL_MS} ms; volume roles polled every ${PRIMARY_POLL_MS} ms)`,
          'trial  promoted mounted DB start SQL answers SQL gap  written  found/acked 2×Primary',
          ...dataRows,
        ]
      : []),
    `median detection ${r.medianDetectedMs ?? '-'} ms; median service gap ${r.medianGapMs ?? '-'} ms; worst gap ${r.maxGapMs ?? '-'} ms${r.medianDbGapMs !== undefined ? `; median SQL gap ${r.medianDbGapMs ?? '-'} ms` : ''}`,
    ...r.checks.map((k) => `${k.ok ? 'PASS' : 'FAIL'}  ${k.name}: ${k.detail}`),
  ].join('\n');
}
