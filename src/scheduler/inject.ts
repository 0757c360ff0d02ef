import type { Cib, NodeState, NvSet, OpHistory, ResourceHistory } from '../cib/model.ts';

/**
 * What-if changes applied to a CIB before scheduling, in the spirit of crm_simulate's
 * `--node-up`, `--node-down`, `--node-fail` and `--op-fail`. Pure: returns a new CIB.
 */
export type Injection =
  | { readonly kind: 'node-up'; readonly node: string }
  | { readonly kind: 'node-down'; readonly node: string }
  | { readonly kind: 'node-fail'; readonly node: string }
  | {
      readonly kind: 'op-fail';
      readonly rsc: string;
      readonly op: string;
      readonly intervalMs: number;
      readonly node: string;
      readonly rc: number;
    };

export type InjectionParse = { ok: true; injection: Injection } | { ok: false; reason: string };

/** Parses `RSC_OP_INTERVAL@NODE=RC` (crm_simulate's --op-fail syntax), e.g. `web_monitor_10000@n1=7`. */
export function parseOpFail(spec: string): InjectionParse {
  const m = /^(.+)_([a-z_-]+?)_(\d+)@([^=]+)=(\d+)$/.exec(spec.trim());
  if (!m) {
    return { ok: false, reason: `'${spec}' is not RSC_OP_INTERVAL@NODE=RC (e.g. web_monitor_10000@node1=7)` };
  }
  return {
    ok: true,
    injection: {
      kind: 'op-fail',
      rsc: m[1]!,
      op: m[2]!,
      intervalMs: Number(m[3]),
      node: m[4]!,
      rc: Number(m[5]),
    },
  };
}

export type InjectResult = { ok: true; cib: Cib } | { ok: false; reason: string };

function stateFor(cib: Cib, node: string): { state: NodeState; index: number } | undefined {
  const cfg = cib.configuration.nodes.find((n) => n.uname === node);
  const index = cib.status.findIndex((s) => s.uname === node || (cfg !== undefined && s.id === cfg.id));
  if (index >= 0) return { state: cib.status[index]!, index };
  if (!cfg) return undefined;
  return {
    state: { id: cfg.id, uname: node, transientAttributes: [], resources: [], hasLrm: false },
    index: -1,
  };
}

function withState(cib: Cib, index: number, state: NodeState): Cib {
  const status = [...cib.status];
  if (index >= 0) status[index] = state;
  else status.push(state);
  return { ...cib, status, hasStatus: true };
}

function maxCallId(cib: Cib): number {
  let max = 0;
  for (const s of cib.status)
    for (const r of s.resources) for (const op of r.ops) max = Math.max(max, Number(op.callId ?? 0) || 0);
  return max;
}

function bumpFailCount(state: NodeState, name: string, nowSec: number): NodeState {
  const sets = [...state.transientAttributes];
  const first: NvSet = sets[0] ?? { kind: 'instance_attributes', id: `status-${state.id}`, pairs: [] };
  const current = first.pairs.find((p) => p.name === name);
  const value = String((Number(current?.value ?? 0) || 0) + 1);
  const pairs = [
    ...first.pairs.filter((p) => p.name !== name && p.name !== name.replace('fail-count', 'last-failure')),
    { id: `status-${state.id}-${name}`, name, value },
    {
      id: `status-${state.id}-${name.replace('fail-count', 'last-failure')}`,
      name: name.replace('fail-count', 'last-failure'),
      value: String(nowSec),
    },
  ];
  sets[0] = { ...first, pairs };
  return { ...state, transientAttributes: sets };
}

export function inject(cib: Cib, injections: readonly Injection[], nowMs: number): InjectResult {
  let out = cib;
  for (const inj of injections) {
    const found = stateFor(out, inj.node);
    if (!found) return { ok: false, reason: `node '${inj.node}' is not in the configuration` };
    let { state } = found;
    switch (inj.kind) {
      case 'node-up':
        state = { ...state, inCcm: 'true', crmd: 'online', join: 'member', expected: 'member' };
        break;
      case 'node-down':
        state = { ...state, inCcm: 'false', crmd: 'offline', join: 'down', expected: 'down', resources: [] };
        break;
      case 'node-fail':
        state = { ...state, inCcm: 'false', crmd: 'offline', join: 'down', expected: 'member' };
        break;
      case 'op-fail': {
        const callId = String(maxCallId(out) + 1);
        const probe = inj.op === 'monitor' && inj.intervalMs === 0;
        const op: OpHistory = {
          id: `${inj.rsc}_last_failure_0`,
          operationKey: `${inj.rsc}_${inj.op}_${inj.intervalMs}`,
          operation: inj.op,
          interval: String(inj.intervalMs),
          callId,
          rcCode: String(inj.rc),
          opStatus: inj.rc === 0 ? '0' : '4',
          transitionKey: `0:0:${probe ? 7 : 0}:halo-injected`,
          lastRcChange: String(Math.floor(nowMs / 1000)),
        };
        const resources = [...state.resources];
        const i = resources.findIndex((r) => r.id === inj.rsc);
        const hist: ResourceHistory =
          i >= 0 ? { ...resources[i]!, ops: [...resources[i]!.ops, op] } : { id: inj.rsc, ops: [op] };
        if (i >= 0) resources[i] = hist;
        else resources.push(hist);
        state = { ...state, resources, hasLrm: true };
        if (inj.rc !== 0 && !(probe && inj.rc === 7)) {
          state = bumpFailCount(
            state,
            `fail-count-${inj.rsc}#${inj.op}_${inj.intervalMs}`,
            Math.floor(nowMs / 1000),
          );
        }
        break;
      }
    }
    out = withState(out, found.index, state);
  }
  return { ok: true, cib: out };
}
