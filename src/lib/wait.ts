/**
 * Waiting for a real process or a real system to reach a state, by polling with a deadline:
 * for tests, benches and CLI commands that drive real daemons. Protocol cores never wait; their
 * tests advance a simulated clock instead.
 *
 * Not exported from `mod.ts`: it uses timers, and pure cores import `lib/mod.ts`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { HaloError } from './errors.ts';

/**
 * Polls `check` every `intervalMs` until it returns a value other than undefined, and returns
 * that value. A `check` that throws counts as "not yet" (the daemon may still be starting).
 * After `deadlineMs` it throws a HaloError with code `timeout` naming `what` and the last error.
 */
export async function waitFor<T>(
  what: string,
  deadlineMs: number,
  check: () => Promise<T | undefined>,
  intervalMs = 100,
): Promise<T> {
  const until = Date.now() + deadlineMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > until) {
      throw new HaloError(
        'timeout',
        `gave up waiting for ${what} after ${deadlineMs} ms${lastErr ? `: ${(lastErr as Error).message}` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}
