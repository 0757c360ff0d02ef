import { durationMsOr, parseDuration } from '../cib/duration.ts';
import type { Cib, Primitive } from '../cib/model.ts';
import { evaluateNvSets, findResource, metaValue, opDefault, primitiveAgent } from '../cib/resources.ts';
import type { Action } from '../scheduler/actions.ts';
import { DEFAULT_OP_TIMEOUT_MS, type ExecOp } from './types.ts';

/**
 * Turns a scheduler action into the operation a node's executor runs: the agent, its instance
 * parameters, meta attributes, timeout and the rc that counts as success. This is the one place
 * the controller reads resource definitions, so changes in the model stay here.
 */

/** OCF exit codes the controller expects (see executor/rc.ts for the full table). */
export const RC_OK = 0;
export const RC_NOT_RUNNING = 7;
export const RC_RUNNING_PROMOTED = 8;

/** Strips a clone instance suffix: `rsc:2` → `rsc`. */
export function baseId(rsc: string): string {
  const m = /^(.*):\d+$/.exec(rsc);
  return m ? m[1]! : rsc;
}

export function findPrimitive(cib: Cib, rsc: string): Primitive | undefined {
  const r = findResource(cib, baseId(rsc));
  return r?.kind === 'primitive' ? r : undefined;
}

export function agentOf(cib: Cib, p: Primitive): string {
  const a = primitiveAgent(p, cib);
  return [a.class, a.provider, a.type].filter((x): x is string => x !== undefined && x !== '').join(':');
}

export function agentIdentity(cib: Cib, p: Primitive): { class?: string; provider?: string; type?: string } {
  return primitiveAgent(p, cib);
}

function opDef(p: Primitive, name: string, intervalMs: number): Primitive['operations'][number] | undefined {
  return p.operations.find((o) => {
    if (o.name !== name) return false;
    const d = parseDuration(o.interval);
    return d.ok && d.ms === intervalMs;
  });
}

function expectedRc(a: Action): number {
  if (a.task === 'monitor' && a.probe) return RC_NOT_RUNNING;
  if (a.task === 'monitor' && a.role === 'Promoted') return RC_RUNNING_PROMOTED;
  return RC_OK;
}

/** The operation for an action on a configured primitive, or undefined when it is not configured. */
export function execOpFor(cib: Cib, a: Action): ExecOp | undefined {
  if (a.rsc === undefined) return undefined;
  const p = findPrimitive(cib, a.rsc);
  if (!p) return undefined;
  const intervalMs = a.intervalMs ?? 0;
  const def =
    opDef(p, a.task, intervalMs) ??
    (a.task === 'monitor' && intervalMs === 0 ? opDef(p, 'monitor', firstMonitorMs(p)) : undefined);
  const timeoutText = def?.timeout ?? opDefault(cib, 'timeout');
  const timeoutMs = durationMsOr(timeoutText, DEFAULT_OP_TIMEOUT_MS);
  const params = Object.fromEntries(evaluateNvSets(p.instanceAttributes, { cib }));
  const meta: Record<string, string> = {};
  for (const name of [
    'target-role',
    'is-managed',
    'migration-threshold',
    'failure-timeout',
    'resource-stickiness',
  ]) {
    const v = metaValue(p, name, cib);
    if (v !== undefined) meta[name] = v;
  }
  if (a.role !== undefined) meta.role = a.role;
  return {
    rsc: a.rsc,
    agent: agentOf(cib, p),
    action: a.task,
    intervalMs,
    timeoutMs,
    startDelayMs: durationMsOr(def?.startDelay, 0),
    params,
    meta,
    expectedRc: expectedRc(a),
  };
}

function firstMonitorMs(p: Primitive): number {
  for (const o of p.operations) {
    if (o.name !== 'monitor') continue;
    const d = parseDuration(o.interval);
    if (d.ok) return d.ms;
  }
  return -1;
}

/** A resource's failure-timeout in ms (0: failures never expire). */
export function failureTimeoutMs(cib: Cib, rsc: string): number {
  const p = findPrimitive(cib, rsc);
  if (!p) return 0;
  return durationMsOr(metaValue(p, 'failure-timeout', cib), 0);
}
