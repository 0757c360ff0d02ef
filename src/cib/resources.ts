/**
 * Read-only questions about a `Cib` that every part asks: which resources exist and where they
 * sit, what a meta attribute or cluster property is, what a node attribute is. They follow
 * Pacemaker's precedence rules (documented at each function), and they ignore name/value sets
 * gated by a `<rule>`: deciding rules needs the node, the time and the operation, which only
 * the scheduler has, so it evaluates those sets itself.
 *
 * Pure: no I/O and no mutation of the model. Lookups by id go through an index built once per
 * `Cib` object (see `indexOf`), so asking about each of 10 000 resources stays linear.
 */
import type {
  Cib,
  Clone,
  ClusterNode,
  Group,
  NvPair,
  NvSet,
  Operation,
  Primitive,
  Resource,
  Template,
} from './model.ts';

/** Pacemaker's `crm_is_true`: `true`, `on`, `yes`, `y`, `1` in any case. */
export function isTrue(text: string | undefined, dflt = false): boolean {
  if (text === undefined) return dflt;
  const t = text.trim().toLowerCase();
  return t === 'true' || t === 'on' || t === 'yes' || t === 'y' || t === '1';
}

// ---------------------------------------------------------------------------------------------
// The per-CIB index

interface CibIndex {
  readonly placed: readonly PlacedResource[];
  readonly resources: ReadonlyMap<string, PlacedResource>;
  readonly templates: ReadonlyMap<string, Template>;
  readonly sets: ReadonlyMap<string, NvSet>;
  readonly pairs: ReadonlyMap<string, NvPair>;
  readonly nodes: ReadonlyMap<string, ClusterNode>;
}

/**
 * Indexes built so far, one per Cib object. STYLE.md asks for no module-level mutable state;
 * this is the exception that keeps per-resource questions O(1): a `Cib` is immutable, so its
 * index can never go stale, and the WeakMap lets it go with the Cib. Nothing observable
 * depends on whether an index was cached.
 */
const INDEXES = new WeakMap<Cib, CibIndex>();

function indexOf(cib: Cib): CibIndex {
  const known = INDEXES.get(cib);
  if (known) return known;
  const placed: PlacedResource[] = [];
  const visit = (r: Resource, parents: readonly (Group | Clone)[]): void => {
    placed.push({ resource: r, parents });
    if (r.kind === 'group') for (const m of r.members) visit(m, [r, ...parents]);
    else if (r.kind === 'clone') visit(r.child, [r, ...parents]);
  };
  for (const r of cib.configuration.resources) visit(r, []);
  const resources = new Map<string, PlacedResource>();
  const templates = new Map<string, Template>();
  for (const p of placed) {
    if (!resources.has(p.resource.id)) resources.set(p.resource.id, p);
    if (p.resource.kind === 'template' && !templates.has(p.resource.id))
      templates.set(p.resource.id, p.resource);
  }
  const sets = new Map<string, NvSet>();
  const pairs = new Map<string, NvPair>();
  for (const set of everySet(cib, placed)) {
    if (set.id !== undefined && !sets.has(set.id)) sets.set(set.id, set);
    for (const pair of set.pairs) if (pair.id !== undefined && !pairs.has(pair.id)) pairs.set(pair.id, pair);
  }
  const nodes = new Map<string, ClusterNode>();
  for (const n of cib.configuration.nodes) if (!nodes.has(nodeName(n))) nodes.set(nodeName(n), n);
  const index: CibIndex = { placed, resources, templates, sets, pairs, nodes };
  INDEXES.set(cib, index);
  return index;
}

// ---------------------------------------------------------------------------------------------
// Finding resources

/** A resource together with its enclosing group/clone, innermost first. */
export interface PlacedResource<R extends Resource = Resource> {
  readonly resource: R;
  /** Enclosing resources, innermost first: `[group, clone]` for a member of a cloned group. */
  readonly parents: readonly (Group | Clone)[];
}

/**
 * Every resource in configuration order, depth first (a clone, then its child, then the
 * child's members). Templates and bundles are included as they stand; the primitive inside a
 * bundle is part of its verbatim XML and is not listed.
 */
export function allResources(cib: Cib): PlacedResource[] {
  return [...indexOf(cib).placed];
}

/** Every primitive (not templates) with its parent chain, in configuration order. */
export function allPrimitives(cib: Cib): PlacedResource<Primitive>[] {
  return allResources(cib).filter((p): p is PlacedResource<Primitive> => p.resource.kind === 'primitive');
}

/** Finds a resource by id at any depth, with its parent chain (the first, if written twice). */
export function findPlacedResource(cib: Cib, id: string): PlacedResource | undefined {
  return indexOf(cib).resources.get(id);
}

/** Finds a resource (primitive, group, clone, bundle or template) by id at any depth. */
export function findResource(cib: Cib, id: string): Resource | undefined {
  return findPlacedResource(cib, id)?.resource;
}

/** Ids of every resource at any depth, templates and bundles included. */
export function resourceIds(cib: Cib): Set<string> {
  return new Set(indexOf(cib).resources.keys());
}

export function findTemplate(cib: Cib, id: string): Template | undefined {
  return indexOf(cib).templates.get(id);
}

/** The agent a primitive runs, filling class/provider/type from its template when it has one. */
export function primitiveAgent(
  p: Primitive,
  cib: Cib,
): { readonly class?: string; readonly provider?: string; readonly type?: string } {
  const t = p.template === undefined ? undefined : findTemplate(cib, p.template);
  const agent: { class?: string; provider?: string; type?: string } = {};
  const cls = p.class ?? t?.class;
  const provider = p.provider ?? t?.provider;
  const type = p.type ?? t?.type;
  if (cls !== undefined) agent.class = cls;
  if (provider !== undefined) agent.provider = provider;
  if (type !== undefined) agent.type = type;
  return agent;
}

/** Pacemaker's key for matching a primitive's op against its template's: name, role, interval. */
function templateOpKey(op: Operation): string {
  return `${op.name}_${op.role ?? 'Started'}_${op.interval}`;
}

/**
 * The operations a primitive really has: its own, where `<operations id-ref=…>` is replaced by
 * the operations it names, followed by its template's operations that it does not override
 * (same name, role and interval), as Pacemaker expands templates.
 */
export function operationsOf(p: Primitive | Template, cib: Cib): readonly Operation[] {
  const own = resolveOperationsRef(p, cib);
  const t = p.kind === 'primitive' && p.template !== undefined ? findTemplate(cib, p.template) : undefined;
  if (t === undefined) return own;
  const overridden = new Set(own.map(templateOpKey));
  return [...own, ...resolveOperationsRef(t, cib).filter((op) => !overridden.has(templateOpKey(op)))];
}

function resolveOperationsRef(p: Primitive | Template, cib: Cib): readonly Operation[] {
  const ref = p.operationsAttrs?.['id-ref'];
  if (ref === undefined || p.operations.length > 0) return p.operations;
  for (const { resource: r } of indexOf(cib).placed) {
    if ((r.kind === 'primitive' || r.kind === 'template') && r.operationsAttrs?.id === ref)
      return r.operations;
  }
  return p.operations;
}

/**
 * A primitive's instance attributes (agent parameters), with its template's filling in what the
 * primitive does not set. Rule-gated sets are skipped.
 */
export function instanceAttributesOf(p: Primitive, cib: Cib): Map<string, string> {
  const own = evaluateNvSets(p.instanceAttributes, { cib });
  const t = p.template === undefined ? undefined : findTemplate(cib, p.template);
  if (t) for (const [k, v] of evaluateNvSets(t.instanceAttributes, { cib })) if (!own.has(k)) own.set(k, v);
  return own;
}

// ---------------------------------------------------------------------------------------------
// Name/value sets

/** Every name/value set in the configuration (for resolving `id-ref`). */
function* everySet(cib: Cib, placed: readonly PlacedResource[]): Generator<NvSet> {
  const cfg = cib.configuration;
  yield* cfg.crmConfig;
  yield* cfg.rscDefaults;
  yield* cfg.opDefaults;
  for (const n of cfg.nodes) {
    yield* n.instanceAttributes;
    yield* n.utilization;
  }
  for (const { resource: r } of placed) {
    if (r.kind === 'bundle') continue;
    yield* r.metaAttributes;
    yield* r.instanceAttributes;
    if (r.kind === 'primitive' || r.kind === 'template') {
      yield* r.utilization;
      for (const op of r.operations) {
        yield* op.instanceAttributes;
        yield* op.metaAttributes;
      }
    }
  }
}

export interface NvEvalOptions {
  /** A set with this id is taken first whatever its score (`cib-bootstrap-options`). */
  readonly firstId?: string;
  /** Needed to resolve `id-ref` sets and pairs; without it such references are skipped. */
  readonly cib?: Cib;
}

/**
 * Evaluates name/value sets as Pacemaker does when it does not overwrite: sets are taken in
 * order of `score` (higher first; equal scores keep document order), and the first set that
 * names an attribute decides its value. Sets gated by a rule are skipped (see the file comment).
 */
export function evaluateNvSets(sets: readonly NvSet[], options: NvEvalOptions = {}): Map<string, string> {
  const ordered = sets
    .map((set, index) => ({ set: resolveSet(set, options.cib), index }))
    .filter((x) => x.set.rule === undefined)
    .sort((a, b) => {
      if (options.firstId !== undefined) {
        if (a.set.id === options.firstId && b.set.id !== options.firstId) return -1;
        if (b.set.id === options.firstId && a.set.id !== options.firstId) return 1;
      }
      return setScore(b.set) - setScore(a.set) || a.index - b.index;
    });
  const out = new Map<string, string>();
  for (const { set } of ordered) {
    for (const raw of set.pairs) {
      const pair =
        raw.idRef !== undefined && options.cib ? (indexOf(options.cib).pairs.get(raw.idRef) ?? raw) : raw;
      if (pair.name === '' || pair.value === undefined || out.has(pair.name)) continue;
      out.set(pair.name, pair.value);
    }
  }
  return out;
}

function resolveSet(set: NvSet, cib: Cib | undefined): NvSet {
  if (set.idRef === undefined || cib === undefined) return set;
  const target = indexOf(cib).sets.get(set.idRef);
  return target ? { ...target, kind: set.kind } : set;
}

/** A set's score; `INFINITY` sorts first, and text that is not a number counts as 0. */
export function setScore(set: NvSet): number {
  const s = set.score?.trim().toUpperCase();
  if (s === undefined) return 0;
  if (s === 'INFINITY' || s === '+INFINITY') return Number.MAX_SAFE_INTEGER;
  if (s === '-INFINITY') return Number.MIN_SAFE_INTEGER;
  const n = Number.parseInt(s, 10);
  return Number.isFinite(n) ? n : 0;
}

/** The first value of `name` in `sets` (rule-gated sets skipped), or undefined. */
export function nvValue(sets: readonly NvSet[], name: string, cib?: Cib): string | undefined {
  return evaluateNvSets(sets, cib ? { cib } : {}).get(name);
}

// ---------------------------------------------------------------------------------------------
// Meta attributes, properties, node attributes

/**
 * A resource's meta attribute as Pacemaker resolves it: the resource's own sets, then its
 * template's (for a primitive made from one), then each enclosing group/clone from the inside
 * out (children inherit their parent's meta attributes), then `rsc_defaults`.
 */
export function metaValue(resource: Resource, name: string, cib: Cib): string | undefined {
  if (resource.kind === 'bundle') return undefined;
  const own = nvValue(resource.metaAttributes, name, cib);
  if (own !== undefined) return own;
  if (resource.kind === 'primitive' && resource.template !== undefined) {
    const t = findTemplate(cib, resource.template);
    const fromTemplate = t ? nvValue(t.metaAttributes, name, cib) : undefined;
    if (fromTemplate !== undefined) return fromTemplate;
  }
  const placed = findPlacedResource(cib, resource.id);
  for (const parent of placed?.parents ?? []) {
    const v = nvValue(parent.metaAttributes, name, cib);
    if (v !== undefined) return v;
  }
  return nvValue(cib.configuration.rscDefaults, name, cib);
}

/** An operation default from `op_defaults` (timeout, record-pending, …). */
export function opDefault(cib: Cib, name: string): string | undefined {
  return nvValue(cib.configuration.opDefaults, name, cib);
}

/** Pacemaker's name for the property set that always takes precedence. */
export const CIB_BOOTSTRAP_OPTIONS = 'cib-bootstrap-options';

/**
 * A cluster property (`stonith-enabled`, `no-quorum-policy`, …) as Pacemaker reads
 * `crm_config`: the `cib-bootstrap-options` set first, then by score, then in order; the first
 * set that names the property wins.
 */
export function clusterProperty(cib: Cib, name: string): string | undefined {
  return evaluateNvSets(cib.configuration.crmConfig, { firstId: CIB_BOOTSTRAP_OPTIONS, cib }).get(name);
}

/** A clone is promotable if written as `<master>` or with meta `promotable=true`. */
export function isPromotable(clone: Clone, cib?: Cib): boolean {
  if (clone.legacyMaster) return true;
  return isTrue(cib ? metaValue(clone, 'promotable', cib) : nvValue(clone.metaAttributes, 'promotable'));
}

/** The node with this name (`uname`, or id when it has no uname). */
export function findNode(cib: Cib, name: string): ClusterNode | undefined {
  return indexOf(cib).nodes.get(name);
}

/** A node's name as constraints use it. */
export function nodeName(n: ClusterNode): string {
  return n.uname === '' ? n.id : n.uname;
}

/**
 * A node attribute as rules see it: the built-ins `#uname`, `#id` and `#kind`, then the
 * transient attributes in the status section (which Pacemaker lets override), then the
 * node's permanent `instance_attributes`.
 */
export function nodeAttribute(cib: Cib, node: string, name: string): string | undefined {
  const n = findNode(cib, node);
  if (name === '#uname') return n ? nodeName(n) : node;
  if (name === '#id') return n?.id;
  if (name === '#kind') return n?.type === 'remote' ? 'remote' : 'cluster';
  const state = cib.status.find((s) => s.uname === node || (n !== undefined && s.id === n.id));
  const transient = state ? nvValue(state.transientAttributes, name, cib) : undefined;
  if (transient !== undefined) return transient;
  return n ? nvValue(n.instanceAttributes, name, cib) : undefined;
}

/** Whether a node is in standby (the `standby` node attribute is true). */
export function isStandby(cib: Cib, node: string): boolean {
  return isTrue(nodeAttribute(cib, node, 'standby'));
}
