import { opDigest } from '../cib/op_digest.ts';
import { HaloError } from '../lib/errors.ts';
import type { Clock, Logger } from '../lib/ports.ts';
import { nullLogger } from '../lib/ports.ts';
import { type OpRequest, type OpResult, OpTable, type StartOp } from './ops.ts';
import type { AgentRunner } from './runner.ts';

/**
 * The executor shell: feeds requests into the pure `OpTable`, runs what it says through an
 * `AgentRunner`, and owns the timers for recurring monitors. Every result (including each run
 * of a recurring monitor) goes to `onResult`; `submit` also resolves with the first result of
 * its own call. `close()` cancels timers and aborts running agents (their groups are killed).
 */

/** The real clock: monotonic `performance.now()`, wall `Date.now()`. */
export const realClock: Clock = {
  nowMs: () => performance.now(),
  wallMs: () => Date.now(),
};

export interface ExecutorRequest extends OpRequest {
  /** Run this operation inside a network namespace. */
  readonly netns?: string;
}

export interface ExecutorOptions {
  readonly runner: AgentRunner;
  readonly clock?: Clock;
  readonly maxParallel?: number;
  readonly maxQueued?: number;
  readonly onResult?: (result: OpResult) => void;
  readonly logger?: Logger;
}

export class Executor {
  private readonly table: OpTable;
  private readonly runner: AgentRunner;
  private readonly clock: Clock;
  private readonly onResult: (r: OpResult) => void;
  private readonly logger: Logger;
  private readonly waiters = new Map<number, { resolve: (r: OpResult) => void }>();
  private readonly inflight = new Map<number, AbortController>();
  private timer: NodeJS.Timeout | undefined;
  private timerDueMs: number | undefined;
  private closed = false;

  constructor(opts: ExecutorOptions) {
    this.runner = opts.runner;
    this.clock = opts.clock ?? realClock;
    this.table = new OpTable({
      clock: this.clock,
      ...(opts.maxParallel !== undefined ? { maxParallel: opts.maxParallel } : {}),
      ...(opts.maxQueued !== undefined ? { maxQueued: opts.maxQueued } : {}),
    });
    this.onResult = opts.onResult ?? (() => {});
    this.logger = (opts.logger ?? nullLogger).child({ component: 'executor' });
  }

  /**
   * Queues an operation and resolves with its result (for a recurring monitor: its first run;
   * later runs go to `onResult`). Rejects with `queue-full`/`bad-op` when the core refuses it.
   */
  submit(req: ExecutorRequest): Promise<OpResult> {
    if (this.closed) return Promise.reject(new HaloError('executor-closed', 'the executor is shut down'));
    const withDigest: ExecutorRequest =
      req.opDigest === undefined ? { ...req, opDigest: opDigest(req.params) } : req;
    const r = this.table.submit(withDigest);
    if (!r.ok) return Promise.reject(new HaloError(r.code, r.reason));
    const p = new Promise<OpResult>((resolve) => this.waiters.set(r.callId, { resolve }));
    this.pump();
    return p;
  }

  /** Stops a resource's recurring monitors (a submitted stop does this too). */
  cancelRecurring(resource: string): string[] {
    const keys = this.table.cancelRecurring(resource);
    this.pump();
    return keys;
  }

  activeRecurring(): string[] {
    return this.table.activeRecurring();
  }

  /** Cancels everything: no new runs, running agents are aborted (process groups killed). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const ac of this.inflight.values()) ac.abort();
  }

  /** Resolves once nothing is running (recurring monitors may still be scheduled). */
  async idle(): Promise<void> {
    while (this.table.runningCount() > 0) await new Promise((r) => setTimeout(r, 10));
  }

  private pump(): void {
    if (this.closed) return;
    for (const op of this.table.ready()) this.start(op);
    const due = this.table.nextDueMs();
    if (due === undefined) return;
    if (this.timer && this.timerDueMs !== undefined && this.timerDueMs <= due) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerDueMs = due;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerDueMs = undefined;
        this.pump();
      },
      Math.max(0, due - this.clock.nowMs()),
    );
  }

  private start(op: StartOp): void {
    const ac = new AbortController();
    this.inflight.set(op.callId, ac);
    const req = op.request as ExecutorRequest;
    this.logger.log('debug', `running ${req.agent} ${req.action} for ${req.resource}`, {
      resource: req.resource,
      op: req.action,
    });
    this.runner
      .run({
        agent: req.agent,
        resource: req.resource,
        action: req.action,
        intervalMs: req.intervalMs,
        timeoutMs: req.timeoutMs,
        params: req.params,
        signal: ac.signal,
        ...(req.meta !== undefined ? { meta: req.meta } : {}),
        ...(req.netns !== undefined ? { netns: req.netns } : {}),
      })
      .catch((err: unknown) => ({
        rc: 1,
        status: 'error' as const,
        execTimeMs: 0,
        stdout: '',
        stderr: String(err),
        exitReason: `${req.agent} ${req.action}: ${(err as Error).message}`,
      }))
      .then((outcome) => {
        this.inflight.delete(op.callId);
        const result = this.table.complete(op.callId, outcome);
        if (result.rc !== 0 || result.status !== 'done') {
          this.logger.log(
            'info',
            `${req.resource} ${req.action}: rc ${result.rc} ${result.rcName} (${result.status})${result.exitReason ? `: ${result.exitReason}` : ''}`,
            { resource: req.resource, op: req.action },
          );
        }
        this.waiters.get(op.callId)?.resolve(result);
        this.waiters.delete(op.callId);
        this.onResult(result);
        this.pump();
      })
      .catch((err: unknown) => this.logger.log('error', `executor bookkeeping failed: ${String(err)}`));
  }
}
