import type { Cib, NodeState, NvSet, OpHistory, ResourceHistory } from '../cib/model.ts';
import type { StatusChange } from './types.ts';

/**
 * The status section as the DC keeps it: per node, how it stands in the membership, its
 * transient attributes (fail counts, standby, pingd…) and its resources' operation history.
 * `toNodeStates` renders it as the CIB's `<status>` so the scheduler reads exactly what a
 * Pacemaker CIB would hold. Plain data, changed only by the controller core.
 */

/**
 * - `member`: in the membership and running a controller.
 * - `lost`: left without a clean shutdown; unclean until fenced or its lease ran out.
 * - `down`: known off (fenced, lease expired, or never seen with no history).
 */
export type NodeCondition = 'member' | 'lost' | 'down';

export interface NodeRecord {
  readonly name: string;
  readonly id: string;
  condition: NodeCondition;
  /** When it was lost (ms), for the self-fencing wait. */
  lostAtMs: number | undefined;
  /** Why it was lost, for logs. */
  lostWhy: string | undefined;
  readonly attrs: Map<string, string>;
  /** Resource id → op id → record (`RSC_last_0`, `RSC_last_failure_0`, `RSC_monitor_10000`). */
  readonly history: Map<string, Map<string, OpHistory>>;
  /** Resource id → agent identity, for `<lrm_resource class provider type>`. */
  readonly agents: Map<string, { class?: string; provider?: string; type?: string }>;
}

export function newNodeRecord(name: string, id: string): NodeRecord {
  return {
    name,
    id,
    condition: 'down',
    lostAtMs: undefined,
    lostWhy: undefined,
    attrs: new Map(),
    history: new Map(),
    agents: new Map(),
  };
}

/** Takes over a status section (from the replicated CIB) when this node becomes DC. */
export function adoptNodeState(rec: NodeRecord, s: NodeState): void {
  rec.attrs.clear();
  rec.history.clear();
  for (const set of s.transientAttributes)
    for (const p of set.pairs) if (p.value !== undefined) rec.attrs.set(p.name, p.value);
  for (const r of s.resources) {
    const ops = new Map<string, OpHistory>();
    // Cancelled records (op-status 1) say nothing about the resource (the scheduler skips them;
    // daemon_glue writes removed records that way while the CIB lacks delete-op-result).
    for (const op of r.ops) if (op.opStatus !== '1') ops.set(op.id, op);
    if (ops.size === 0) continue;
    rec.history.set(r.id, ops);
    rec.agents.set(r.id, {
      ...(r.class !== undefined ? { class: r.class } : {}),
      ...(r.provider !== undefined ? { provider: r.provider } : {}),
      ...(r.type !== undefined ? { type: r.type } : {}),
    });
  }
  const inCcm = s.inCcm === 'true' || (s.inCcm !== undefined && /^[1-9]\d*$/.test(s.inCcm));
  if (inCcm) rec.condition = 'member';
  else if (s.expected === 'down') rec.condition = 'down';
  else rec.condition = rec.history.size > 0 ? 'lost' : 'down';
}

/**
 * Whether a resource's last operation record (`RSC_last_0`) says it is not running there: a
 * successful stop, or a probe or monitor that found it stopped (rc 7). Anything else (a start, a
 * promote, a failed stop, a running monitor) says it may be active.
 */
export function recordSaysStopped(op: Pick<OpHistory, 'operation' | 'rcCode' | 'opStatus'>): boolean {
  if (op.opStatus !== '0') return false;
  if (op.operation === 'stop') return op.rcCode === '0' || op.rcCode === '7';
  return op.operation === 'monitor' && op.rcCode === '7';
}

/** The resources a node's status section says may be active there (by their last record). */
export function activeInNodeState(s: NodeState): string[] {
  const out: string[] = [];
  for (const r of s.resources) {
    const last = r.ops.find((o) => o.id === `${r.id}_last_0`);
    if (last && !recordSaysStopped(last)) out.push(r.id);
  }
  return out.sort();
}

/** Forgets everything a fenced (or cleanly stopped) node was running. */
export function clearNode(rec: NodeRecord): void {
  rec.history.clear();
  rec.attrs.clear();
}

function membershipFields(rec: NodeRecord): Pick<NodeState, 'inCcm' | 'crmd' | 'join' | 'expected'> {
  switch (rec.condition) {
    case 'member':
      return { inCcm: 'true', crmd: 'online', join: 'member', expected: 'member' };
    case 'lost':
      // Pacemaker's picture of a node that vanished: the scheduler calls it unclean.
      return { inCcm: 'false', crmd: 'offline', join: 'down', expected: 'member' };
    case 'down':
      return { inCcm: 'false', crmd: 'offline', join: 'down', expected: 'down' };
  }
}

export function toNodeState(rec: NodeRecord): NodeState {
  const transient: NvSet[] =
    rec.attrs.size === 0
      ? []
      : [
          {
            kind: 'instance_attributes',
            id: `status-${rec.id}`,
            pairs: [...rec.attrs]
              .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
              .map(([name, value]) => ({ id: `status-${rec.id}-${name}`, name, value })),
          },
        ];
  const resources: ResourceHistory[] = [...rec.history]
    .filter(([, ops]) => ops.size > 0)
    .map(([id, ops]) => ({ id, ...(rec.agents.get(id) ?? {}), ops: [...ops.values()] }));
  return {
    id: rec.id,
    uname: rec.name,
    ...membershipFields(rec),
    transientAttributes: transient,
    resources,
    hasLrm: true,
    lrmId: rec.id,
    ...(transient.length > 0 ? { transientAttributesId: rec.id } : {}),
  };
}

/** The CIB the scheduler sees: the configuration plus this status, quorum and DC. */
export function cibForScheduling(
  base: Cib,
  status: readonly NodeState[],
  haveQuorum: boolean,
  dcId: string | undefined,
): Cib {
  const attrs = base.attrs.filter(([k]) => k !== 'have-quorum' && k !== 'dc-uuid');
  return {
    ...base,
    attrs: [
      ...attrs,
      ['have-quorum', haveQuorum ? '1' : '0'],
      ...(dcId !== undefined ? [['dc-uuid', dcId] as const] : []),
    ],
    status,
    hasStatus: true,
  };
}

/**
 * Applies status changes to a status section and returns the new one (the input is not
 * changed). The reference semantics for whoever replicates `StatusChange`s: a `node` change
 * replaces that node's `node_state`; `op` sets one `lrm_rsc_op` by id (creating the resource
 * entry); `op-removed` deletes one; `attr` sets or (value null) deletes a transient attribute.
 */
export function applyStatusChanges(
  status: readonly NodeState[],
  changes: readonly StatusChange[],
): NodeState[] {
  const out = [...status];
  const indexOf = (node: string): number => {
    let i = out.findIndex((s) => s.uname === node);
    if (i < 0) {
      out.push({ id: node, uname: node, transientAttributes: [], resources: [], hasLrm: true });
      i = out.length - 1;
    }
    return i;
  };
  for (const c of changes) {
    if (c.kind === 'node') {
      const i = out.findIndex((s) => s.uname === c.node || s.id === c.state.id);
      if (i < 0) out.push(c.state);
      else out[i] = c.state;
      continue;
    }
    const i = indexOf(c.node);
    const s = out[i]!;
    switch (c.kind) {
      case 'op': {
        const rest = s.resources.filter((r) => r.id !== c.resource.id);
        const cur = s.resources.find((r) => r.id === c.resource.id);
        const ops = [...(cur?.ops ?? []).filter((o) => o.id !== c.op.id), c.op];
        out[i] = { ...s, resources: [...rest, { ...(cur ?? {}), ...c.resource, ops }] };
        break;
      }
      case 'op-removed':
        out[i] = {
          ...s,
          resources: s.resources.map((r) =>
            r.id === c.rsc ? { ...r, ops: r.ops.filter((o) => o.id !== c.opId) } : r,
          ),
        };
        break;
      case 'attr': {
        const pairs = s.transientAttributes.flatMap((set) => set.pairs).filter((p) => p.name !== c.name);
        if (c.value !== null) pairs.push({ id: `status-${s.id}-${c.name}`, name: c.name, value: c.value });
        out[i] = {
          ...s,
          transientAttributes: pairs.length
            ? [{ kind: 'instance_attributes', id: `status-${s.id}`, pairs }]
            : [],
          ...(pairs.length ? { transientAttributesId: s.id } : {}),
        };
        break;
      }
    }
  }
  return out;
}
