import type { Cib, NodeState, NvSet, OpHistory, ResourceHistory } from '../cib/model.ts';

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
    for (const op of r.ops) ops.set(op.id, op);
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
