/**
 * Assertions for programmer errors. They stay on in production (TigerBeetle style): a broken
 * invariant means the process can no longer be trusted, so it must stop loudly rather than
 * continue with corrupt state. Expected failures (bad input, I/O errors) never use these.
 */
export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Exhaustiveness check for `switch` over a union: the compiler proves this is unreachable. */
export function assertNever(value: never, what = 'value'): never {
  throw new AssertionError(`unexpected ${what}: ${JSON.stringify(value)}`);
}
