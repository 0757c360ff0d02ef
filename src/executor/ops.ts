import type { OpHistory } from '../cib/model.ts';
import { assert } from '../lib/assert.ts';
import type { Clock } from '../lib/ports.ts';
import { OP_STATUS, type OpStatusName, rcName } from './rc.ts';

/**
 * The executor's pure core: which operation runs when. It keeps Pacemaker's executor rules:
 * at most one operation at a time per resource (in request order), many resources in parallel
 * up to `maxParallel`, recurring monitors re-run `interval` after each completion (the first
 * one after `start-delay`), and a stop cancels the resource's recurring operations.
 *
 * It does no I/O and owns no timers: the shell calls `ready()` to learn what to start now and
 * `nextDueMs()` to learn when to ask again, runs the agents, and feeds `complete()`.
 */

/** Most operations running at once on one node (Pacemaker's node-action-limit default is 2×cores). */
export const MAX_PARALLEL_OPS = 8;
/** Most operations waiting (queued or scheduled recurring); more is a runaway caller. */
export const MAX_QUEUED_OPS = 1024;
/** Output kept with a result, per stream, in characters (the end of the output is kept). */
export const OUTPUT_TAIL_CHARS = 4096;

export interface OpRequest {
  /** Resource id (`OCF_RESOURCE_INSTANCE`). */
  readonly resource: string;
  /** `class:provider:type`, `class:type` or a halo built-in (`halo:vip`). */
  readonly agent: string;
  readonly action: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly startDelayMs?: number;
  readonly params: Readonly<Record<string, string>>;
  /** Meta attributes passed as `OCF_RESKEY_CRM_meta_<name>` (timeout/interval are added). */
  readonly meta?: Readonly<Record<string, string>>;
  /** md5 of the sorted instance parameters (see `src/cib/op_digest.ts`), computed by the shell. */
  readonly opDigest?: string;
}

/** What an agent run produced, as the shell reports it to `complete()`. */
export interface RawOpOutcome {
  readonly rc: number;
  readonly status: OpStatusName;
  readonly execTimeMs: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Text for `exit-reason` (first `ocf-exit-reason:` line, or why the run failed). */
  readonly exitReason?: string;
  /** Node attributes an agent asks to set (e.g. `pingd` from `halo:ping`). */
  readonly attributes?: Readonly<Record<string, string>>;
}

/** One finished operation, typed for the CIB status section (`lrm_rsc_op`). */
export interface OpResult {
  readonly callId: number;
  readonly resource: string;
  readonly agent: string;
  readonly action: string;
  readonly intervalMs: number;
  /** `rsc_action_interval`, Pacemaker's operation key. */
  readonly operationKey: string;
  readonly rc: number;
  readonly rcName: string;
  readonly status: OpStatusName;
  readonly opStatus: number;
  readonly execTimeMs: number;
  readonly queueTimeMs: number;
  /** Wall-clock ms when the run started / when this op's rc last changed. */
  readonly lastRunWallMs: number;
  readonly lastRcChangeWallMs: number;
  /** Whether the rc differs from this operation's previous run (always true for a first run). */
  readonly rcChanged: boolean;
  readonly opDigest?: string;
  readonly stdoutTail: string;
  readonly stderrTail: string;
  readonly exitReason?: string;
  readonly attributes?: Readonly<Record<string, string>>;
}

/** An operation the shell must start now. */
export interface StartOp {
  readonly callId: number;
  readonly request: OpRequest;
}

export type SubmitResult = { ok: true; callId: number } | { ok: false; code: string; reason: string };

interface Pending {
  readonly callId: number;
  readonly request: OpRequest;
  readonly dueMs: number;
}

interface Running {
  readonly request: OpRequest;
  readonly startedMs: number;
  readonly startedWallMs: number;
  readonly queueTimeMs: number;
}

interface LastRc {
  readonly rc: number;
  readonly changedWallMs: number;
}

export function operationKey(resource: string, action: string, intervalMs: number): string {
  return `${resource}_${action}_${intervalMs}`;
}

export function isRecurring(req: OpRequest): boolean {
  return req.intervalMs > 0;
}

export interface OpTableOptions {
  readonly clock: Clock;
  readonly maxParallel?: number;
  readonly maxQueued?: number;
}

export class OpTable {
  private readonly clock: Clock;
  readonly maxParallel: number;
  readonly maxQueued: number;
  private nextCallId = 1;
  private pending: Pending[] = [];
  private readonly running = new Map<number, Running>();
  private readonly busy = new Set<string>();
  /** Recurring operations that are active, by operation key. */
  private readonly recurring = new Map<string, OpRequest>();
  private readonly lastRc = new Map<string, LastRc>();

  constructor(opts: OpTableOptions) {
    this.clock = opts.clock;
    this.maxParallel = opts.maxParallel ?? MAX_PARALLEL_OPS;
    this.maxQueued = opts.maxQueued ?? MAX_QUEUED_OPS;
    assert(
      Number.isInteger(this.maxParallel) && this.maxParallel > 0,
      'maxParallel must be a positive integer',
    );
    assert(Number.isInteger(this.maxQueued) && this.maxQueued > 0, 'maxQueued must be a positive integer');
  }

  /**
   * Queues an operation. A recurring one (interval > 0) replaces an active one with the same key
   * and first runs after its start-delay. A stop cancels the resource's recurring operations
   * first, so no monitor of a stopping resource is started afterwards.
   */
  submit(request: OpRequest): SubmitResult {
    if (this.pending.length >= this.maxQueued) {
      return {
        ok: false,
        code: 'queue-full',
        reason: `cannot queue ${operationKey(request.resource, request.action, request.intervalMs)}: ${this.pending.length} operations are already waiting (limit ${this.maxQueued})`,
      };
    }
    if (!(request.intervalMs >= 0) || !(request.timeoutMs > 0)) {
      return {
        ok: false,
        code: 'bad-op',
        reason: `operation ${request.action} of ${request.resource}: interval must be ≥ 0 and timeout > 0 (got ${request.intervalMs}, ${request.timeoutMs})`,
      };
    }
    if (request.action === 'stop') this.cancelRecurring(request.resource);
    const key = operationKey(request.resource, request.action, request.intervalMs);
    if (isRecurring(request)) {
      this.cancel(request.resource, request.action, request.intervalMs);
      this.recurring.set(key, request);
    }
    const callId = this.nextCallId++;
    const dueMs = this.clock.nowMs() + (isRecurring(request) ? (request.startDelayMs ?? 0) : 0);
    this.pending.push({ callId, request, dueMs });
    return { ok: true, callId };
  }

  /** Cancels one recurring operation; returns whether one was active. */
  cancel(resource: string, action: string, intervalMs: number): boolean {
    const key = operationKey(resource, action, intervalMs);
    const had = this.recurring.delete(key);
    this.pending = this.pending.filter(
      (p) => operationKey(p.request.resource, p.request.action, p.request.intervalMs) !== key,
    );
    return had;
  }

  /** Cancels every recurring operation of a resource; returns the operation keys cancelled. */
  cancelRecurring(resource: string): string[] {
    const keys = [...this.recurring.entries()].filter(([, r]) => r.resource === resource).map(([k]) => k);
    for (const key of keys) {
      const r = this.recurring.get(key)!;
      this.cancel(r.resource, r.action, r.intervalMs);
    }
    return keys;
  }

  /** Operation keys of the active recurring operations, sorted. */
  activeRecurring(): string[] {
    return [...this.recurring.keys()].sort();
  }

  /**
   * Operations to start now: due, their resource idle, within the parallel bound; in due order
   * then request order. They count as running until `complete()`.
   */
  ready(): StartOp[] {
    const now = this.clock.nowMs();
    const out: StartOp[] = [];
    const order = [...this.pending].sort((a, b) => a.dueMs - b.dueMs || a.callId - b.callId);
    const started = new Set<number>();
    for (const p of order) {
      if (this.running.size >= this.maxParallel) break;
      if (p.dueMs > now || this.busy.has(p.request.resource)) continue;
      // Keep per-resource request order: an earlier due op of this resource blocks later ones.
      this.busy.add(p.request.resource);
      this.running.set(p.callId, {
        request: p.request,
        startedMs: now,
        startedWallMs: this.clock.wallMs(),
        queueTimeMs: now - p.dueMs,
      });
      started.add(p.callId);
      out.push({ callId: p.callId, request: p.request });
    }
    this.pending = this.pending.filter((p) => !started.has(p.callId));
    return out;
  }

  /** Monotonic ms at which the next waiting operation becomes due; undefined when none waits. */
  nextDueMs(): number | undefined {
    let min: number | undefined;
    for (const p of this.pending) if (min === undefined || p.dueMs < min) min = p.dueMs;
    return min;
  }

  runningCount(): number {
    return this.running.size;
  }

  pendingCount(): number {
    return this.pending.length;
  }

  /**
   * Records the outcome of a started operation and returns its result record. A recurring
   * operation that is still active is scheduled again `interval` from now.
   */
  complete(callId: number, outcome: RawOpOutcome): OpResult {
    const run = this.running.get(callId);
    assert(run !== undefined, `complete(${callId}): no such running operation`);
    this.running.delete(callId);
    this.busy.delete(run.request.resource);
    const req = run.request;
    const key = operationKey(req.resource, req.action, req.intervalMs);
    const now = this.clock.nowMs();
    const wall = this.clock.wallMs();
    const prev = this.lastRc.get(key);
    const rcChanged = prev === undefined || prev.rc !== outcome.rc;
    const changedWallMs = rcChanged ? wall : prev.changedWallMs;
    this.lastRc.set(key, { rc: outcome.rc, changedWallMs });
    if (isRecurring(req) && this.recurring.get(key) === req) {
      this.pending.push({ callId: this.nextCallId++, request: req, dueMs: now + req.intervalMs });
    }
    return {
      callId,
      resource: req.resource,
      agent: req.agent,
      action: req.action,
      intervalMs: req.intervalMs,
      operationKey: key,
      rc: outcome.rc,
      rcName: rcName(outcome.rc),
      status: outcome.status,
      opStatus: OP_STATUS[outcome.status],
      execTimeMs: outcome.execTimeMs,
      queueTimeMs: run.queueTimeMs,
      lastRunWallMs: run.startedWallMs,
      lastRcChangeWallMs: changedWallMs,
      rcChanged,
      ...(req.opDigest !== undefined ? { opDigest: req.opDigest } : {}),
      stdoutTail: tail(outcome.stdout, OUTPUT_TAIL_CHARS),
      stderrTail: tail(outcome.stderr, OUTPUT_TAIL_CHARS),
      ...(outcome.exitReason !== undefined ? { exitReason: outcome.exitReason } : {}),
      ...(outcome.attributes !== undefined ? { attributes: outcome.attributes } : {}),
    };
  }
}

export function tail(text: string, max: number): string {
  return text.length <= max ? text : text.slice(text.length - max);
}

/**
 * The result as a CIB `lrm_rsc_op` record. Non-recurring results use Pacemaker's ids
 * (`RSC_last_0`, or `RSC_last_failure_0` for a failure); recurring ones use the operation key.
 */
export function toOpHistory(result: OpResult, opts: { node?: string; failure?: boolean } = {}): OpHistory {
  const id =
    result.intervalMs > 0
      ? `${result.operationKey}`
      : opts.failure
        ? `${result.resource}_last_failure_0`
        : `${result.resource}_last_0`;
  return {
    id,
    operationKey: result.operationKey,
    operation: result.action,
    interval: String(result.intervalMs),
    callId: String(result.callId),
    rcCode: String(result.rc),
    opStatus: String(result.opStatus),
    lastRcChange: String(Math.floor(result.lastRcChangeWallMs / 1000)),
    lastRun: String(Math.floor(result.lastRunWallMs / 1000)),
    execTime: String(Math.round(result.execTimeMs)),
    queueTime: String(Math.round(result.queueTimeMs)),
    ...(result.opDigest !== undefined ? { opDigest: result.opDigest } : {}),
    ...(opts.node !== undefined ? { onNode: opts.node } : {}),
    ...(result.exitReason !== undefined ? { exitReason: result.exitReason } : {}),
  };
}
