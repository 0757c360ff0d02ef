import { assert } from '../lib/assert.ts';

/**
 * DRBD's dynamic resync-rate controller (pure), as drbd.conf's c-* options define it. Every
 * step (100 ms) it decides how many resync bytes the sync source may request, aiming to keep a
 * fixed amount in flight (`c-fill-target`) or, without one, as much as the peer absorbs in
 * `c-delay-target`; a correction is spread over `c-plan-ahead` steps so the rate settles
 * instead of oscillating. The result never exceeds `c-max-rate`; while application I/O runs,
 * resync is held to `c-min-rate` (0 = never held back).
 */

/** One controller step, as in DRBD (SLEEP_TIME = HZ/10). */
export const RESYNC_STEP_MS = 100;

export interface DynamicResyncRate {
  /** c-plan-ahead, in steps (drbd.conf gives tenths of a second: the same unit). > 0. */
  readonly planAheadSteps: number;
  /** c-fill-target in bytes (0 = use delayTargetMs). */
  readonly fillTargetBytes: number;
  /** c-delay-target in milliseconds. */
  readonly delayTargetMs: number;
  /** c-max-rate. */
  readonly maxRateBytesPerSec: number;
  /** c-min-rate (0 = application I/O never slows resync). */
  readonly minRateBytesPerSec: number;
  /** resync-rate: the first guess, before anything was acknowledged. */
  readonly initialRateBytesPerSec: number;
}

/** drbd.conf(5) defaults (8.4): plan 2 s, fill target off, delay target 1 s, 100 MiB/s, 250 KiB/s. */
export const DYNAMIC_RESYNC_DEFAULTS: DynamicResyncRate = {
  planAheadSteps: 20,
  fillTargetBytes: 0,
  delayTargetMs: 1000,
  maxRateBytesPerSec: 100 * 1024 * 1024,
  minRateBytesPerSec: 250 * 1024,
  initialRateBytesPerSec: 250 * 1024,
};

export interface RateStepInput {
  /** Resync bytes the peer acknowledged since the previous step. */
  readonly ackedBytes: number;
  /** Resync bytes requested and not yet acknowledged. */
  readonly inFlightBytes: number;
  /** Whether application writes happened since the previous step. */
  readonly appIo: boolean;
}

export class ResyncRateController {
  /** Planned corrections for the coming steps (DRBD's fifo), and their sum. */
  private readonly plan: number[];
  private planTotal = 0;

  constructor(private readonly cfg: DynamicResyncRate) {
    assert(
      cfg.planAheadSteps > 0 && Number.isInteger(cfg.planAheadSteps),
      'plan-ahead must be whole steps > 0',
    );
    this.plan = new Array<number>(cfg.planAheadSteps).fill(0);
  }

  /** Bytes the source may request during the next step. */
  step(s: RateStepInput): number {
    const steps = this.cfg.planAheadSteps;
    const perStep = (rate: number) => (rate * RESYNC_STEP_MS) / 1000;
    let want: number;
    if (s.inFlightBytes + s.ackedBytes === 0) want = perStep(this.cfg.initialRateBytesPerSec) * steps;
    else if (this.cfg.fillTargetBytes > 0) want = this.cfg.fillTargetBytes;
    else want = (s.ackedBytes * this.cfg.delayTargetMs) / RESYNC_STEP_MS;
    const correction = want - s.inFlightBytes - this.planTotal;
    const perSlot = correction / steps;
    for (let i = 0; i < steps; i++) this.plan[i]! += perSlot;
    this.planTotal += perSlot * steps;
    const now = this.plan.shift()!;
    this.plan.push(0);
    this.planTotal -= now;
    let req = Math.max(0, s.ackedBytes + now);
    req = Math.min(req, perStep(this.cfg.maxRateBytesPerSec));
    if (s.appIo && this.cfg.minRateBytesPerSec > 0) req = Math.min(req, perStep(this.cfg.minRateBytesPerSec));
    return req;
  }
}
