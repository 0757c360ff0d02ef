/**
 * Small builders for scheduler tests: they produce cluster-model values directly, the way a
 * parser would, so tests read like the CIB they describe.
 */
import type {
  Cib,
  Clone,
  ColocationConstraint,
  Constraint,
  Group,
  LocationConstraint,
  NodeState,
  NvSet,
  OpHistory,
  OrderConstraint,
  Primitive,
  Resource,
  ResourceHistory,
  Rule,
} from '../cib/model.ts';
import { emptyCib } from '../cib/model.ts';

function nvset(kind: NvSet['kind'], id: string, values: Readonly<Record<string, string>>): NvSet[] {
  const pairs = Object.entries(values).map(([name, value]) => ({ id: `${id}-${name}`, name, value }));
  return pairs.length > 0 ? [{ kind, id, pairs }] : [];
}

export interface PrimitiveOpts {
  readonly meta?: Readonly<Record<string, string>>;
  readonly params?: Readonly<Record<string, string>>;
  readonly monitorInterval?: string;
  readonly type?: string;
  readonly cls?: string;
  readonly utilization?: Readonly<Record<string, string>>;
}

export function primitive(id: string, o: PrimitiveOpts = {}): Primitive {
  const cls = o.cls ?? 'ocf';
  return {
    kind: 'primitive',
    id,
    class: cls,
    ...(cls === 'ocf' ? { provider: 'heartbeat' } : {}),
    type: o.type ?? 'Dummy',
    metaAttributes: nvset('meta_attributes', `${id}-meta`, o.meta ?? {}),
    instanceAttributes: nvset('instance_attributes', `${id}-params`, o.params ?? {}),
    utilization: nvset('utilization', `${id}-util`, o.utilization ?? {}),
    operations: o.monitorInterval
      ? [
          {
            id: `${id}-monitor`,
            name: 'monitor',
            interval: o.monitorInterval,
            instanceAttributes: [],
            metaAttributes: [],
          },
        ]
      : [],
  };
}

export function group(
  id: string,
  members: readonly Primitive[],
  meta: Readonly<Record<string, string>> = {},
): Group {
  return {
    kind: 'group',
    id,
    members,
    metaAttributes: nvset('meta_attributes', `${id}-meta`, meta),
    instanceAttributes: [],
  };
}

export function clone(
  id: string,
  child: Primitive | Group,
  meta: Readonly<Record<string, string>> = {},
): Clone {
  return {
    kind: 'clone',
    id,
    legacyMaster: false,
    child,
    metaAttributes: nvset('meta_attributes', `${id}-meta`, meta),
    instanceAttributes: [],
  };
}

export function location(
  id: string,
  rsc: string,
  node: string,
  score: string,
  extra: Partial<LocationConstraint> = {},
): LocationConstraint {
  return { kind: 'rsc_location', id, rsc, node, score, rules: [], sets: [], ...extra };
}

/** A location rule on one node attribute: `attr op value` scores `score`. */
export function locationRule(
  id: string,
  rsc: string,
  score: string,
  attribute: string,
  operation: 'lt' | 'gt' | 'eq' | 'ne' | 'not_defined' | 'defined',
  value?: string,
): LocationConstraint {
  const rule: Rule = {
    kind: 'rule',
    id: `${id}-rule`,
    score,
    expressions: [
      {
        kind: 'expression',
        id: `${id}-expr`,
        attribute,
        operation,
        ...(value !== undefined ? { value } : {}),
      },
    ],
  };
  return { kind: 'rsc_location', id, rsc, rules: [rule], sets: [] };
}

export function colocation(
  id: string,
  rsc: string,
  withRsc: string,
  score: string,
  extra: Partial<ColocationConstraint> = {},
): ColocationConstraint {
  return { kind: 'rsc_colocation', id, rsc, withRsc, score, sets: [], ...extra };
}

export function order(
  id: string,
  first: string,
  then: string,
  extra: Partial<OrderConstraint> = {},
): OrderConstraint {
  return { kind: 'rsc_order', id, first, then, sets: [], ...extra };
}

function op(
  callId: number,
  rsc: string,
  operation: string,
  rc: number,
  interval = 0,
  expected = rc,
): OpHistory {
  return {
    id: `${rsc}_${operation}_${interval}`,
    operation,
    interval: String(interval),
    callId: String(callId),
    rcCode: String(rc),
    opStatus: rc === expected ? '0' : '4',
    transitionKey: `1:1:${expected}:test`,
  };
}

/** History of a resource started (and optionally promoted) on a node. */
export function started(
  rsc: string,
  o: { promoted?: boolean; monitorFailed?: boolean; startFailed?: boolean } = {},
): ResourceHistory {
  const ops: OpHistory[] = [op(1, rsc, 'monitor', 7, 0, 7)];
  ops.push(o.startFailed ? op(2, rsc, 'start', 1, 0, 0) : op(2, rsc, 'start', 0));
  if (o.promoted) ops.push(op(3, rsc, 'promote', 0));
  if (o.monitorFailed) ops.push(op(4, rsc, 'monitor', 7, 10000, 0));
  return { id: rsc, class: 'ocf', provider: 'heartbeat', type: 'Dummy', ops };
}

/** History of a probe that found the resource stopped. */
export function probedStopped(rsc: string): ResourceHistory {
  return {
    id: rsc,
    class: 'ocf',
    provider: 'heartbeat',
    type: 'Dummy',
    ops: [op(1, rsc, 'monitor', 7, 0, 7)],
  };
}

export interface NodeOpts {
  readonly online?: boolean;
  /** Lost without a clean shutdown (fencing needed). */
  readonly lost?: boolean;
  readonly attrs?: Readonly<Record<string, string>>;
  readonly history?: readonly ResourceHistory[];
}

export function nodeState(name: string, o: NodeOpts = {}): NodeState {
  const online = o.online ?? !o.lost;
  return {
    id: name,
    uname: name,
    inCcm: online ? 'true' : 'false',
    crmd: online ? 'online' : 'offline',
    join: online ? 'member' : 'down',
    expected: online || o.lost ? 'member' : 'down',
    transientAttributes: nvset('instance_attributes', `status-${name}`, o.attrs ?? {}),
    resources: o.history ?? [],
    hasLrm: true,
  };
}

export interface ClusterOpts {
  readonly nodes: readonly (
    | string
    | {
        readonly name: string;
        readonly attrs?: Readonly<Record<string, string>>;
        readonly utilization?: Readonly<Record<string, string>>;
      }
  )[];
  readonly props?: Readonly<Record<string, string>>;
  readonly rscDefaults?: Readonly<Record<string, string>>;
  readonly resources: readonly Resource[];
  readonly constraints?: readonly Constraint[];
  /** Node states; nodes without one are online with no history. */
  readonly status?: readonly NodeState[];
  readonly quorum?: boolean;
}

export function cluster(o: ClusterOpts): Cib {
  const base = emptyCib();
  const nodes = o.nodes.map((n) => (typeof n === 'string' ? { name: n } : n));
  const status = nodes.map((n) => o.status?.find((s) => s.uname === n.name) ?? nodeState(n.name));
  return {
    ...base,
    attrs: [...base.attrs, ['have-quorum', o.quorum === false ? '0' : '1']],
    configuration: {
      ...base.configuration,
      crmConfig: nvset('cluster_property_set', 'cib-bootstrap-options', {
        'stonith-enabled': 'false',
        ...(o.props ?? {}),
      }),
      rscDefaults: nvset('meta_attributes', 'rsc-options', o.rscDefaults ?? {}),
      nodes: nodes.map((n) => ({
        id: n.name,
        uname: n.name,
        instanceAttributes: nvset(
          'instance_attributes',
          `${n.name}-attrs`,
          'attrs' in n ? (n.attrs ?? {}) : {},
        ),
        utilization: nvset('utilization', `${n.name}-util`, 'utilization' in n ? (n.utilization ?? {}) : {}),
      })),
      resources: o.resources,
      constraints: o.constraints ?? [],
    },
    status,
  };
}
