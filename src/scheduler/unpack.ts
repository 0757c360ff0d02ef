import { durationMsOr } from '../cib/duration.ts';
import type { Cib, Clone, Group, NodeState, NvSet, Primitive, Resource } from '../cib/model.ts';
import { INFINITY, parseScore } from '../cib/score.ts';
import { type DefinitionChanges, definitionChanges } from './digests.ts';
import { invalid, unsupported } from './errors.ts';
import { applyHistory } from './history.ts';
import {
  type CloneSettings,
  emptyState,
  type PrimitiveState,
  primitivesOf,
  type Res,
} from './resource_tree.ts';
import { flattenNvSets, isTrue, type RuleContext } from './rules.ts';
import { type TicketEntry, unpackTickets } from './tickets.ts';
import type { ClusterOptions, NodeInfo, NoQuorumPolicy, Role } from './types.ts';
import { unfencingEnabled } from './unfencing.ts';

/** Stage 1 output: everything the later stages read, indexed. */
export interface Unpacked {
  readonly options: ClusterOptions;
  readonly nodes: readonly NodeInfo[];
  readonly nodeByName: ReadonlyMap<string, NodeInfo>;
  /** Top-level resources in configuration order (orphans last). */
  readonly resources: readonly Res[];
  /** Every resource by id, including instances (`rsc:0`) and group members. */
  readonly byId: ReadonlyMap<string, Res>;
  /** Configured id → top-most resource carrying it (a clone's child id maps to the clone). */
  readonly byConfiguredId: ReadonlyMap<string, Res>;
  /** Nodes to fence, with the reason crm_simulate prints. */
  readonly fence: ReadonlyMap<string, string>;
  readonly cib: Cib;
  /** Constraint references that name several resources: tags and rsc_templates → resource ids. */
  readonly refs: ReadonlyMap<string, readonly string[]>;
  /** Ticket constraints by configured resource id. */
  readonly tickets: ReadonlyMap<string, readonly TicketEntry[]>;
  /** Running resources whose definition changed since they started, by resource and node. */
  readonly definitionChanges: DefinitionChanges;
  /** Unfencing is in use: a fence device provides it or a resource requires it (unfencing.ts). */
  readonly unfencing: boolean;
}

/** The configured resources a constraint reference names (itself, or a tag's or template's members). */
export function expandRef(u: Unpacked, id: string): readonly string[] {
  if (u.byConfiguredId.has(id)) return [id];
  return u.refs.get(id) ?? [];
}

function buildRefs(cib: Cib): Map<string, string[]> {
  const refs = new Map<string, string[]>();
  const addTemplateUse = (p: Primitive): void => {
    if (!p.template) return;
    const l = refs.get(p.template) ?? [];
    l.push(p.id);
    refs.set(p.template, l);
  };
  for (const r of cib.configuration.resources) {
    if (r.kind === 'primitive') addTemplateUse(r);
    else if (r.kind === 'group') r.members.forEach(addTemplateUse);
    else if (r.kind === 'clone') {
      if (r.child.kind === 'primitive') addTemplateUse(r.child);
      else r.child.members.forEach(addTemplateUse);
    }
  }
  for (const tag of cib.configuration.tags?.children ?? []) {
    if (tag.type !== 'element' || tag.name !== 'tag') continue;
    const id = tag.attrs.find(([k]) => k === 'id')?.[1];
    if (!id) continue;
    const members: string[] = [];
    for (const ref of tag.children) {
      if (ref.type !== 'element' || ref.name !== 'obj_ref') continue;
      const rid = ref.attrs.find(([k]) => k === 'id')?.[1];
      if (rid) members.push(...(refs.get(rid) ?? [rid]));
    }
    refs.set(id, members);
  }
  return refs;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
/** The builder form of `Res`, used only while unpacking. */
export type MutableRes = Mutable<Omit<Res, 'children' | 'parent' | 'state'>> & {
  children: MutableRes[];
  parent: MutableRes | undefined;
  state: Mutable<PrimitiveState>;
};

export { isTrue };

/** Pacemaker's char2score: a score, or the integer part of a decimal (`2.0` is 2). */
export function intOr(v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const r = parseScore(v);
  if (r.ok) return r.score;
  const f = /^\s*([+-]?\d+)(\.\d*)?\s*$/.exec(v);
  return f ? (parseScore(f[1]!).ok ? (parseScore(f[1]!) as { score: number }).score : dflt) : dflt;
}

function cibAttr(cib: Cib, name: string): string | undefined {
  for (const [k, v] of cib.attrs) if (k === name) return v;
  return undefined;
}

export function unpackOptions(
  cib: Cib,
  nowMs: number,
): { options: ClusterOptions; props: Map<string, string> } {
  const execDate = cibAttr(cib, 'execution-date');
  const now = execDate !== undefined && /^\d+$/.test(execDate) ? Number(execDate) * 1000 : nowMs;
  const ctx: RuleContext = { nodeAttrs: new Map(), nowMs: now };
  const props = flattenNvSets(cib.configuration.crmConfig, ctx);
  const nqp = (props.get('no-quorum-policy') ?? 'stop').toLowerCase();
  const validNqp: readonly NoQuorumPolicy[] = ['stop', 'freeze', 'ignore', 'demote', 'suicide', 'fence'];
  const ps = (props.get('placement-strategy') ?? 'default').toLowerCase();
  const options: ClusterOptions = {
    stonithEnabled: isTrue(props.get('stonith-enabled'), true),
    symmetric: isTrue(props.get('symmetric-cluster'), true),
    noQuorumPolicy: (validNqp as readonly string[]).includes(nqp) ? (nqp as NoQuorumPolicy) : 'stop',
    haveQuorum: isTrue(cibAttr(cib, 'have-quorum'), false),
    maintenanceMode: isTrue(props.get('maintenance-mode'), false),
    startFailureIsFatal: isTrue(props.get('start-failure-is-fatal'), true),
    stopAllResources: isTrue(props.get('stop-all-resources'), false),
    placementStrategy:
      ps === 'utilization' || ps === 'minimal' || ps === 'balanced'
        ? (ps as ClusterOptions['placementStrategy'])
        : 'default',
    stonithAction:
      props.get('stonith-action') === 'off' || props.get('stonith-action') === 'poweroff' ? 'off' : 'reboot',
    nowMs: now,
    concurrentFencing: isTrue(props.get('concurrent-fencing'), false),
    shutdownLock: isTrue(props.get('shutdown-lock'), false),
    shutdownLockLimitMs: durationMsOr(props.get('shutdown-lock-limit'), 0),
  };
  return { options, props };
}

/** Node health score from `#health-*` attributes under node-health-strategy (Pacemaker's semantics). */
function nodeHealth(attrs: ReadonlyMap<string, string>, props: ReadonlyMap<string, string>): number {
  const strategy = (props.get('node-health-strategy') ?? 'none').toLowerCase();
  if (strategy === 'none') return 0;
  const colour = (name: string, dflt: number): number => intOr(props.get(`node-health-${name}`), dflt);
  const values: Record<string, number> =
    strategy === 'migrate-on-red'
      ? { red: MINUS_INFINITY_SCORE, yellow: 0, green: 0 }
      : strategy === 'only-green'
        ? { red: MINUS_INFINITY_SCORE, yellow: MINUS_INFINITY_SCORE, green: 0 }
        : { red: colour('red', 0), yellow: colour('yellow', 0), green: colour('green', 0) };
  let total = 0;
  for (const [k, v] of attrs) {
    if (!k.startsWith('#health')) continue;
    const lower = v.toLowerCase();
    const score = lower in values ? values[lower]! : intOr(v, 0);
    total =
      total <= MINUS_INFINITY_SCORE || score <= MINUS_INFINITY_SCORE
        ? MINUS_INFINITY_SCORE
        : Math.max(MINUS_INFINITY_SCORE, Math.min(INFINITY, total + score));
  }
  return total;
}

const MINUS_INFINITY_SCORE = -INFINITY;

function isTimestampOrTrue(v: string | undefined): boolean {
  if (v === undefined) return false;
  if (/^\d+$/.test(v)) return Number(v) > 0;
  return isTrue(v);
}

interface NodeBuild {
  info: Mutable<NodeInfo>;
  state: NodeState | undefined;
}

/** Node membership as Pacemaker's determine_online_status decides it (fencing enabled or not). */
function unpackNodes(cib: Cib, options: ClusterOptions, props: Map<string, string>): NodeBuild[] {
  const statusById = new Map<string, NodeState>();
  for (const s of cib.status) {
    statusById.set(s.id, s);
  }
  const startupFencing = isTrue(props.get('startup-fencing'), true);
  const out: NodeBuild[] = [];
  cib.configuration.nodes.forEach((n, index) => {
    if (n.type === 'remote') unsupported(`remote node '${n.uname}'`);
    const state = statusById.get(n.id) ?? cib.status.find((s) => s.uname === n.uname);
    const ctx: RuleContext = { nodeAttrs: new Map(), nowMs: options.nowMs };
    const attrs = flattenNvSets(n.instanceAttributes, ctx);
    const transient = new Map<string, string>();
    if (state) for (const set of state.transientAttributes) flattenNvSets([set], ctx, transient);
    for (const [k, v] of transient) attrs.set(k, v);
    attrs.set('#uname', n.uname);
    attrs.set('#id', n.id);
    attrs.set('#kind', 'cluster');
    const util = new Map<string, number>();
    for (const [k, v] of flattenNvSets(n.utilization, ctx)) util.set(k, Number.parseInt(v, 10) || 0);
    const info: Mutable<NodeInfo> = {
      health: nodeHealth(attrs, props),
      id: n.id,
      name: n.uname,
      online: false,
      unclean: false,
      standby: isTrue(attrs.get('standby')),
      maintenance: isTrue(attrs.get('maintenance')),
      shuttingDown: false,
      attrs,
      utilization: util,
      index,
    };
    const shutdown = transient.get('shutdown');
    info.shuttingDown = shutdown !== undefined && shutdown !== '0';
    if (!state) {
      if (options.stonithEnabled && startupFencing) {
        info.unclean = true;
        info.uncleanReason = 'node is unclean';
      }
    } else {
      const terminate = transient.get('terminate');
      const doTerminate = terminate !== undefined && (isTrue(terminate) || /^[1-9]\d*$/.test(terminate));
      decideMembership(info, state, options, doTerminate);
    }
    out.push({ info, state });
  });
  const dcId = cibAttr(cib, 'dc-uuid');
  for (const b of out)
    (b.info.attrs as Map<string, string>).set('#is_dc', b.info.id === dcId ? 'true' : 'false');
  return out;
}

/**
 * Whether a node is a member that can run resources, and whether it must be fenced, from its
 * `node_state` (Pacemaker's determine_online_status_fencing / _no_fencing, case for case).
 */
function decideMembership(
  info: Mutable<NodeInfo>,
  s: NodeState,
  options: ClusterOptions,
  terminate: boolean,
): void {
  const inCluster = isTimestampOrTrue(s.inCcm);
  const crmdOnline = s.crmd === 'online' || (s.crmd !== undefined && /^\d+$/.test(s.crmd) && s.crmd !== '0');
  const join = s.join;
  if (!options.stonithEnabled) {
    // Without fencing a node that is not a full member is simply offline.
    info.online = inCluster && crmdOnline && join === 'member';
    return;
  }
  const expected = s.expected ?? 'down';
  const fence = (reason: string): void => {
    info.unclean = true;
    info.uncleanReason = reason;
  };
  let online = inCluster;
  if (info.shuttingDown) {
    // A dead peer can't be shut down, so only the controller's state counts.
    online = crmdOnline;
  } else if (s.inCcm === undefined) {
    fence('peer has not been seen by the cluster');
  } else if (join === 'banned') {
    fence('peer failed Pacemaker membership criteria');
  } else if (!terminate && expected === 'down') {
    if (inCluster || crmdOnline) info.pending = true;
  } else if (terminate && join === 'down' && !inCluster && !crmdOnline) {
    online = false; // just fenced
  } else if (!inCluster) {
    fence('peer is no longer part of the cluster');
  } else if (!crmdOnline) {
    fence('peer process is no longer available');
  } else if (terminate) {
    fence('termination was requested');
  } else if (join === 'member') {
    // active
  } else if (join === 'pending' || join === 'down') {
    info.pending = true;
  } else {
    fence('peer was in an unknown state');
  }
  info.online = online;
}

// ---------------------------------------------------------------------------------------------
// Resources

interface Ctx {
  readonly cib: Cib;
  readonly options: ClusterOptions;
  readonly props: Map<string, string>;
  readonly nodeCount: number;
  readonly byId: Map<string, MutableRes>;
  readonly templates: Map<string, Primitive>;
  /** rsc_defaults flattened per agent (rules may test class/provider/type). */
  readonly defaultsCache: Map<string, Map<string, string>>;
  order: number;
}

function metaOf(sets: readonly NvSet[], ctx: Ctx, rsc?: Primitive): Map<string, string> {
  return flattenNvSets(sets, {
    nodeAttrs: new Map(),
    nowMs: ctx.options.nowMs,
    ...(rsc ? { rsc: { class: rsc.class, provider: rsc.provider, type: rsc.type } } : {}),
  });
}

function parseRole(v: string | undefined): Role {
  switch ((v ?? '').toLowerCase()) {
    case 'stopped':
      return 'Stopped';
    case 'slave':
    case 'unpromoted':
      return 'Unpromoted';
    case 'master':
    case 'promoted':
      return 'Promoted';
    default:
      return 'Started';
  }
}

function withTemplate(p: Primitive, ctx: Ctx): Primitive {
  if (!p.template) return p;
  const t = ctx.templates.get(p.template);
  if (!t) invalid(`primitive '${p.id}' uses template '${p.template}', which is not defined`);
  return {
    ...p,
    class: p.class ?? t.class,
    provider: p.provider ?? t.provider,
    type: p.type ?? t.type,
    operations: [
      ...p.operations,
      ...t.operations.filter(
        (o) => !p.operations.some((x) => x.name === o.name && x.interval === o.interval),
      ),
    ],
    metaAttributes: [...p.metaAttributes, ...t.metaAttributes],
    instanceAttributes: [...p.instanceAttributes, ...t.instanceAttributes],
    utilization: [...p.utilization, ...t.utilization],
  };
}

function newRes(
  id: string,
  baseId: string,
  kind: Res['kind'],
  parent: MutableRes | undefined,
  meta: Map<string, string>,
  ctx: Ctx,
  def?: Primitive,
): MutableRes {
  const defaultsKey = def ? `${def.class}:${def.provider}:${def.type}` : '';
  let defaults = ctx.defaultsCache.get(defaultsKey);
  if (!defaults) {
    defaults = metaOf(ctx.cib.configuration.rscDefaults, ctx, def);
    ctx.defaultsCache.set(defaultsKey, defaults);
  }
  const inherited = new Map(meta);
  for (const p = parent; p; ) {
    for (const [k, v] of p.meta) if (!inherited.has(k)) inherited.set(k, v);
    break;
  }
  for (const [k, v] of defaults) if (!inherited.has(k)) inherited.set(k, v);
  const legacyStick = ctx.props.get('default-resource-stickiness');
  const inClone = parent?.kind === 'clone' || parent?.parent?.kind === 'clone';
  const stickDefault =
    legacyStick !== undefined ? intOr(legacyStick, 0) : inClone && kind === 'primitive' ? 1 : 0;
  let managed = isTrue(inherited.get('is-managed') ?? ctx.props.get('is-managed-default'), true);
  if (ctx.options.maintenanceMode || isTrue(inherited.get('maintenance'))) managed = false;
  const mt = inherited.get('migration-threshold') ?? ctx.props.get('default-migration-threshold');
  const params = def
    ? flattenNvSets(def.instanceAttributes, { nodeAttrs: new Map(), nowMs: ctx.options.nowMs })
    : new Map();
  const r: MutableRes = {
    id,
    baseId,
    kind,
    parent,
    children: [],
    def,
    meta: inherited,
    params,
    order: ctx.order++,
    managed,
    targetRole: parseRole(inherited.get('target-role')),
    stickiness: intOr(inherited.get('resource-stickiness') ?? inherited.get('stickiness'), stickDefault),
    priority: intOr(inherited.get('priority'), 0),
    migrationThreshold: mt === undefined ? INFINITY : intOr(mt, INFINITY),
    failureTimeoutMs: durationMsOr(inherited.get('failure-timeout'), 0),
    clone: undefined,
    state: emptyState() as Mutable<PrimitiveState>,
    orphan: false,
  };
  if (ctx.byId.has(id)) invalid(`resource id '${id}' is used twice`);
  ctx.byId.set(id, r);
  return r;
}

function buildPrimitive(p: Primitive, suffix: string, parent: MutableRes | undefined, ctx: Ctx): MutableRes {
  const def = withTemplate(p, ctx);
  if (def.class === 'ocf' && !def.provider) invalid(`primitive '${p.id}' has class ocf but no provider`);
  if (!def.type) invalid(`primitive '${p.id}' has no type`);
  const meta = metaOf(def.metaAttributes, ctx, def);
  if (meta.has('container') || meta.has('remote-node'))
    unsupported(`guest node (resource '${p.id}' meta remote-node/container)`);
  if (def.class === 'ocf' && def.provider === 'pacemaker' && def.type === 'remote')
    unsupported(`remote node resource '${p.id}'`);
  return newRes(p.id + suffix, p.id, 'primitive', parent, meta, ctx, def);
}

function buildGroup(g: Group, suffix: string, parent: MutableRes | undefined, ctx: Ctx): MutableRes {
  const r = newRes(g.id + suffix, g.id, 'group', parent, metaOf(g.metaAttributes, ctx), ctx);
  for (const m of g.members) r.children.push(buildPrimitive(m, suffix, r, ctx));
  return r;
}

function buildClone(c: Clone, ctx: Ctx): MutableRes {
  const meta = metaOf(c.metaAttributes, ctx);
  const r = newRes(c.id, c.id, 'clone', undefined, meta, ctx);
  const childMeta = metaOf(c.child.metaAttributes, ctx);
  const get = (k: string, legacy?: string): string | undefined =>
    meta.get(k) ??
    (legacy ? meta.get(legacy) : undefined) ??
    childMeta.get(k) ??
    (legacy ? childMeta.get(legacy) : undefined);
  const promotable = c.legacyMaster || isTrue(get('promotable'));
  const settings: CloneSettings = {
    promotable,
    cloneMax: Math.max(0, intOr(get('clone-max'), ctx.nodeCount)),
    cloneNodeMax: Math.max(0, intOr(get('clone-node-max'), 1)),
    promotedMax: Math.max(0, intOr(get('promoted-max', 'master-max'), 1)),
    promotedNodeMax: Math.max(0, intOr(get('promoted-node-max', 'master-node-max'), 1)),
    globallyUnique: isTrue(get('globally-unique')),
    interleave: isTrue(get('interleave')),
    ordered: isTrue(get('ordered')),
  };
  r.clone = settings;
  for (let i = 0; i < settings.cloneMax; i++) addCloneInstance(r, c, i, ctx);
  return r;
}

/** Creates instance `i` of a clone (`child:i`) and returns it. */
export function addCloneInstance(r: MutableRes, c: Clone, i: number, ctx: Ctx): MutableRes {
  const inst =
    c.child.kind === 'group'
      ? buildGroup(c.child, `:${i}`, r, ctx)
      : buildPrimitive(c.child, `:${i}`, r, ctx);
  r.children.push(inst);
  return inst;
}

function buildResource(res: Resource, ctx: Ctx): MutableRes | undefined {
  switch (res.kind) {
    case 'primitive':
      return buildPrimitive(res, '', undefined, ctx);
    case 'group':
      return buildGroup(res, '', undefined, ctx);
    case 'clone':
      return buildClone(res, ctx);
    case 'bundle':
      return unsupported(`bundle '${res.id}'`);
    case 'template':
      return undefined;
  }
}

/** Stage 1: unpack the CIB into indexed, typed values. Throws SchedulerInputError. */
export function unpack(cib: Cib, nowMs: number): Unpacked {
  const { options, props } = unpackOptions(cib, nowMs);
  const nodeBuilds = unpackNodes(cib, options, props);
  const ctx: Ctx = {
    cib,
    options,
    props,
    nodeCount: cib.configuration.nodes.length,
    byId: new Map(),
    templates: new Map(),
    defaultsCache: new Map(),
    order: 0,
  };
  for (const r of cib.configuration.resources) {
    if (r.kind === 'template') ctx.templates.set(r.id, { ...r, kind: 'primitive' });
  }
  const resources: MutableRes[] = [];
  for (const r of cib.configuration.resources) {
    const built = buildResource(r, ctx);
    if (built) resources.push(built);
  }
  const byConfiguredId = new Map<string, MutableRes>();
  for (const top of resources) indexConfigured(top, top, byConfiguredId);
  // A clone with no instances (clone-max=0) still owns its child's id (its history is orphaned).
  for (const c of cib.configuration.resources) {
    if (c.kind !== 'clone') continue;
    const clone = byConfiguredId.get(c.id);
    if (clone?.kind !== 'clone' || clone.children.length > 0) continue;
    if (!byConfiguredId.has(c.child.id)) byConfiguredId.set(c.child.id, clone);
    if (c.child.kind === 'group')
      for (const m of c.child.members) if (!byConfiguredId.has(m.id)) byConfiguredId.set(m.id, clone);
  }
  const fence = new Map<string, string>();
  const nodes = nodeBuilds.map((b) => b.info);
  const nodeByName = new Map<string, NodeInfo>(nodes.map((n) => [n.name, n]));
  applyHistory({
    cib,
    options,
    nodes: nodeBuilds,
    nodeByName,
    resources,
    byId: ctx.byId,
    byConfiguredId,
    fence,
    addInstance: (clone, i) => {
      const def = cib.configuration.resources.find((x) => x.id === clone.baseId);
      if (def?.kind !== 'clone') return undefined;
      const inst = addCloneInstance(clone, def, i, ctx);
      return inst;
    },
    newOrphan: (id, hist) => {
      const def: Primitive = {
        kind: 'primitive',
        id,
        class: hist.class,
        provider: hist.provider,
        type: hist.type,
        metaAttributes: [],
        instanceAttributes: [],
        utilization: [],
        operations: [],
      };
      const r = newRes(id, id, 'primitive', undefined, new Map(), ctx, def);
      r.orphan = true;
      r.targetRole = 'Stopped';
      // stop-orphan-resources=false leaves what is no longer configured running, unmanaged.
      if (!isTrue(props.get('stop-orphan-resources'), true)) r.managed = false;
      resources.push(r);
      byConfiguredId.set(id, r);
      return r;
    },
  });
  const refs = buildRefs(cib);
  const expand = (id: string): readonly string[] => (byConfiguredId.has(id) ? [id] : (refs.get(id) ?? []));
  const tickets = unpackTickets(cib, expand);
  for (const [id, entries] of tickets) {
    // A lost ticket with loss-policy=fence fences every node its resources are active on.
    const fencing = entries.filter((e) => e.revoked && e.lossPolicy === 'fence');
    if (fencing.length === 0) continue;
    const promotedOnly = fencing.every((e) => e.role === 'Promoted');
    const top = byConfiguredId.get(id);
    for (const p of top ? primitivesOf(top) : []) {
      for (const a of p.state.active) {
        if (promotedOnly && a.role !== 'Promoted') continue;
        const n = nodeBuilds.find((b) => b.info.name === a.node);
        if (!n || !options.stonithEnabled) continue;
        n.info.unclean = true;
        if (!fence.has(a.node)) fence.set(a.node, 'deadman ticket was lost');
      }
    }
  }
  // no-quorum-policy=suicide: a partition that had quorum and lost it (the controller then sets
  // no-quorum-panic) fences every node in it; one that never had quorum just waits.
  if (
    !options.haveQuorum &&
    options.noQuorumPolicy === 'suicide' &&
    options.stonithEnabled &&
    isTrue(cibAttr(cib, 'no-quorum-panic'), false)
  ) {
    for (const b of nodeBuilds) {
      if (!b.info.online || b.info.unclean) continue;
      b.info.unclean = true;
      b.info.uncleanReason = 'cluster does not have quorum';
    }
  }
  for (const b of nodeBuilds) {
    if (b.info.unclean && !fence.has(b.info.name) && options.stonithEnabled) {
      fence.set(b.info.name, b.info.uncleanReason ?? 'node is unclean');
    }
  }
  // Without quorum a partition may fence only nodes in its own membership (online ones),
  // unless told to ignore quorum (Pacemaker's pe_can_fence).
  if (!options.haveQuorum && options.noQuorumPolicy !== 'ignore') {
    for (const node of [...fence.keys()]) if (!nodeByName.get(node)?.online) fence.delete(node);
  }
  return {
    options,
    nodes,
    nodeByName,
    resources,
    byId: ctx.byId,
    byConfiguredId,
    fence,
    cib,
    refs,
    tickets,
    definitionChanges: definitionChanges({ cib, resources, nodeByName, nowMs: options.nowMs }),
    unfencing: unfencingEnabled(cib, options),
  };
}

function indexConfigured(r: MutableRes, top: MutableRes, out: Map<string, MutableRes>): void {
  if (!out.has(r.baseId)) out.set(r.baseId, r.parent?.kind === 'clone' ? top : r.kind === 'clone' ? r : r);
  if (r.kind === 'clone') {
    const first = r.children[0];
    // A clone's child id names the whole clone in constraints.
    if (first) {
      out.set(first.baseId, r);
      if (first.kind === 'group') for (const m of first.children) out.set(m.baseId, r);
    }
    return;
  }
  for (const c of r.children) indexConfigured(c, top, out);
}

export { primitivesOf };
