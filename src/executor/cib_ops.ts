import { durationMsOr, parseDuration } from '../cib/duration.ts';
import type { NvSet, Operation, Primitive } from '../cib/model.ts';
import { evaluateNvSets } from '../cib/resources.ts';
import { HaloError } from '../lib/errors.ts';
import type { OpRequest } from './ops.ts';

/**
 * Turns a CIB primitive and one of its operations into an executor request: agent name from
 * class/provider/type, instance parameters, meta attributes (resource meta, then the op's own
 * meta and timeout/interval), timeout (op → op_defaults → 20 s, Pacemaker's default) and
 * start-delay. Pure. Name/value sets with a rule are skipped (rules are evaluated by the
 * scheduler, which passes the sets that apply through `extraParams`).
 */

/** Pacemaker's default operation timeout when neither the op nor op_defaults gives one. */
export const DEFAULT_OP_TIMEOUT_MS = 20_000;

/** Rule-less name/value sets as one record, by Pacemaker's precedence (see `evaluateNvSets`). */
function flattenSets(sets: readonly NvSet[]): Record<string, string> {
  return Object.fromEntries(evaluateNvSets(sets));
}

export function agentName(p: Primitive): string {
  if (!p.class || !p.type) {
    throw new HaloError(
      'bad-resource',
      `resource ${p.id}: class and type must be set (templates are resolved before execution)`,
    );
  }
  return p.provider ? `${p.class}:${p.provider}:${p.type}` : `${p.class}:${p.type}`;
}

/** The configured operation for `action` at `intervalMs`, if any (interval 0 matches a probe too). */
export function findOperation(p: Primitive, action: string, intervalMs: number): Operation | undefined {
  return p.operations.find((o) => o.name === action && durationMsOr(o.interval, -1) === intervalMs);
}

export function opRequestFor(
  p: Primitive,
  action: string,
  opts: {
    intervalMs?: number;
    opDefaults?: readonly NvSet[];
    extraParams?: Readonly<Record<string, string>>;
  } = {},
): OpRequest {
  const intervalMs = opts.intervalMs ?? 0;
  const op = findOperation(p, action, intervalMs);
  const defaults = flattenSets(opts.opDefaults ?? []);
  const timeoutText = op?.timeout ?? defaults.timeout;
  let timeoutMs = DEFAULT_OP_TIMEOUT_MS;
  if (timeoutText !== undefined) {
    const d = parseDuration(timeoutText);
    if (!d.ok || d.ms <= 0) {
      throw new HaloError(
        'bad-resource',
        `resource ${p.id}: ${action} timeout ${d.ok ? `'${timeoutText}' must be more than 0` : d.reason}`,
      );
    }
    timeoutMs = d.ms;
  }
  const params = {
    ...flattenSets(p.instanceAttributes),
    ...flattenSets(op?.instanceAttributes ?? []),
    ...(opts.extraParams ?? {}),
  };
  const meta = { ...flattenSets(p.metaAttributes), ...flattenSets(op?.metaAttributes ?? []) };
  if (op?.onFail) meta.on_fail = op.onFail;
  if (op?.role) meta.role = op.role;
  const startDelayMs = op?.startDelay !== undefined ? durationMsOr(op.startDelay, 0) : undefined;
  return {
    resource: p.id,
    agent: agentName(p),
    action,
    intervalMs,
    timeoutMs,
    params,
    meta,
    ...(startDelayMs !== undefined ? { startDelayMs } : {}),
  };
}
