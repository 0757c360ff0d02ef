/**
 * The only ways a pure core learns the time, draws randomness or writes a log line. Shells pass
 * real implementations; `sim/` passes simulated ones, which is what makes runs replayable.
 */
export interface Clock {
  /** Milliseconds on a monotonic clock; only differences are meaningful. */
  nowMs(): number;
  /** Milliseconds since the Unix epoch, for timestamps a person reads (may jump). */
  wallMs(): number;
}

export interface Rng {
  /** A uniformly distributed float in [0, 1). */
  next(): number;
  /** A uniformly distributed integer in [0, n). */
  int(n: number): number;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  log(level: LogLevel, msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export const nullLogger: Logger = {
  log() {},
  child() {
    return nullLogger;
  },
};
