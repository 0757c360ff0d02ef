import type { Diagnostic, SourcePos } from '../lib/errors.ts';
import type { Cib } from './model.ts';

/**
 * What every cluster-config parser returns. `positions` maps an element id (resource,
 * constraint, node, set, op…) to where it was written, so validation and the scheduler can
 * name `FILE:LINE:COL`. Parsers never throw on bad input: they return `ok: false` with every
 * diagnostic found (errors and warnings), and leave nothing half-applied.
 */
export type CibParseResult =
  | {
      readonly ok: true;
      readonly cib: Cib;
      readonly positions: ReadonlyMap<string, SourcePos>;
      readonly warnings: readonly Diagnostic[];
    }
  | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };
