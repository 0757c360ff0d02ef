import type { LogFields, Logger, LogLevel } from '../lib/ports.ts';

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * A structured logger writing one JSON object per line: `t` (wall ms), `level`, `msg`, then
 * the fields. Benchmarks and tests read these lines, so `t` and the field names are stable.
 */
export function jsonLineLogger(
  write: (line: string) => void,
  opts: { minLevel?: LogLevel; wallMs?: () => number; fields?: LogFields } = {},
): Logger {
  const min = ORDER[opts.minLevel ?? 'info'];
  const wallMs = opts.wallMs ?? Date.now;
  const make = (base: LogFields): Logger => ({
    log(level, msg, fields) {
      if (ORDER[level] < min) return;
      write(`${JSON.stringify({ t: wallMs(), level, msg, ...base, ...fields })}\n`);
    },
    child(fields) {
      return make({ ...base, ...fields });
    },
  });
  return make(opts.fields ?? {});
}
