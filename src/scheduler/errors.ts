/**
 * The scheduler reports inputs it cannot handle as values, never by guessing. Internally the
 * stages throw `SchedulerInputError`; `schedule()` catches it and returns `{ ok: false }`.
 */
export type SchedulerErrorCode = 'unsupported' | 'invalid-cib';

export class SchedulerInputError extends Error {
  override name = 'SchedulerInputError';
  readonly code: SchedulerErrorCode;
  constructor(code: SchedulerErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export function unsupported(what: string): never {
  throw new SchedulerInputError('unsupported', `unsupported: ${what}`);
}

export function invalid(what: string): never {
  throw new SchedulerInputError('invalid-cib', what);
}
