/**
 * Operating errors that a user can see. Each carries a stable `code` (for scripts and tests)
 * and, for I/O failures, the underlying `cause`. Messages name the thing, the value and what to
 * do about it.
 */
export class HaloError extends Error {
  override name = 'HaloError';
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** A position in a source file, 1-based, as editors and compilers print it. */
export interface SourcePos {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

export type Severity = 'error' | 'warning';

/** One finding about an input file: printed as `FILE:LINE:COL: error: message`. */
export interface Diagnostic {
  readonly severity: Severity;
  readonly message: string;
  readonly pos: SourcePos;
  /** Stable machine-readable code, e.g. `unknown-resource`. */
  readonly code: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.pos.file}:${d.pos.line}:${d.pos.column}: ${d.severity}: ${d.message}`;
}

/** Thrown when an input is rejected; carries every diagnostic found, errors first. */
export class ParseError extends HaloError {
  override name = 'ParseError';
  readonly diagnostics: readonly Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    const first = diagnostics[0];
    super('parse-error', first ? formatDiagnostic(first) : 'parse error');
    this.diagnostics = diagnostics;
  }
}
