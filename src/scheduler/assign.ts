import { isTrue } from '../cib/resources.ts';
import { formatScore, INFINITY, MINUS_INFINITY, parseScore } from '../cib/score.ts';
import { assertNever } from '../lib/assert.ts';
import { getOrInsert } from './collections.ts';
import type { ColocationEntry } from './colocation.ts';
import { describeLocation, type LocationEntry } from './location.ts';
import { naturalCompare, unavailableReason } from './nodes.ts';
import { cloneAncestor, primitivesOf, type Res } from './resource_tree.ts';
import { NodeIndex, ScoreTable } from './score_table.ts';
import type { NodeInfo, Role } from './types.ts';
import type { Unpacked } from './unpack.ts';

/** Where one primitive (instance) should be after the transition. */
export interface Placement {
  readonly node: string | undefined;
  readonly role: Role;
  /** Left as it is (unmanaged, blocked, maintenance): no actions for it. */
  readonly fixed: boolean;
}

/** Stage output: placements plus the score tables and notes that decided them. */
export interface Assignment {
  readonly placements: ReadonlyMap<string, Placement>;
  /** Final score table of each placement unit (primitive, group, clone instance). */
  readonly tables: ReadonlyMap<string, ScoreTable>;
  /** Promotion scores by instance id (promotable clones only). */
  readonly promotion: ReadonlyMap<string, number>;
  /** Top-level resources in assignment order (Pacemaker's sorted order). */
  readonly order: readonly Res[];
  /** Plain-language notes per resource id, for `explain`. */
  readonly notes: ReadonlyMap<string, readonly string[]>;
}

export interface AssignInput {
  readonly u: Unpacked;
  readonly locations: ReadonlyMap<string, readonly LocationEntry[]>;
  readonly colocByDependent: ReadonlyMap<string, readonly ColocationEntry[]>;
  readonly colocByPrimary: ReadonlyMap<string, readonly ColocationEntry[]>;
}

/** One method table per resource variant (Pacemaker's `cmds`). */
interface VariantMethods {
  /** Decides placements for `r` and everything inside it. */
  assign(r: Res, a: Assigner): void;
  /** Nodes `r` will be active on after assignment (with `role` when given). */
  /** Where `r` ended up; `fullyUp`: a group counts only where its last member runs. */
  nodesAfter(r: Res, a: Assigner, role: string | undefined, fullyUp: boolean): Set<string>;
}

const VARIANTS: Record<Res['kind'], VariantMethods> = {
  primitive: {
    assign: (r, a) => a.assignPrimitive(r),
    nodesAfter: (r, a, role) => a.nodesOfPrimitives([r], role),
  },
  group: {
    assign: (r, a) => a.assignGroup(r),
    nodesAfter: (r, a, role, fullyUp) =>
      a.nodesOfPrimitives(fullyUp ? r.children.slice(-1) : r.children.slice(0, 1), role),
  },
  clone: {
    assign: (r, a) => a.assignClone(r),
    nodesAfter: (r, a, role, fullyUp) =>
      a.nodesOfPrimitives(
        r.children.flatMap((inst) =>
          fullyUp && inst.kind === 'group' ? inst.children.slice(-1) : primitivesOf(inst),
        ),
        role,
      ),
  },
};

function variant(r: Res): VariantMethods {
  switch (r.kind) {
    case 'primitive':
    case 'group':
    case 'clone':
      return VARIANTS[r.kind];
    default:
      return assertNever(r.kind, 'resource kind');
  }
}

/** Works out placements; the mutable maps live only for the duration of `assign()`. */
export class Assigner {
  readonly placements = new Map<string, Placement>();
  readonly tables = new Map<string, ScoreTable>();
  readonly promotion = new Map<string, number>();
  readonly notes = new Map<string, string[]>();
  private readonly load = new Map<string, number>();
  private readonly utilUsed = new Map<string, Map<string, number>>();
  private readonly done = new Set<string>();
  private readonly inProgress = new Set<string>();
  private readonly sortedNodes: readonly NodeInfo[];
  private readonly nodeIndex: NodeIndex;
  /** unavailableReason of each of sortedNodes. */
  private readonly unavailable: readonly (string | undefined)[];
  private readonly availableNames: ReadonlySet<string>;

  constructor(private readonly input: AssignInput) {
    const u = input.u;
    // Under no-quorum-policy=freeze, running resources may still move (actions.ts blocks only
    // starts of resources not active anywhere), so placement ignores quorum.
    this.sortedNodes = [...u.nodes].sort((x, y) => naturalCompare(x.name, y.name));
    this.nodeIndex = new NodeIndex(this.sortedNodes.map((n) => n.name));
    // Nodes do not change while resources are assigned: why each can't host, worked out once.
    this.unavailable = this.sortedNodes.map(unavailableReason);
    this.availableNames = new Set(
      this.sortedNodes.filter((_, i) => this.unavailable[i] === undefined).map((n) => n.name),
    );
  }

  /** An empty score table over this cluster's nodes. */
  newTable(): ScoreTable {
    return new ScoreTable(this.nodeIndex);
  }

  note(id: string, text: string): void {
    const l = getOrInsert(this.notes, id, () => []);
    if (!l.includes(text)) l.push(text);
  }

  get nodes(): readonly NodeInfo[] {
    return this.sortedNodes;
  }

  // -------------------------------------------------------------------------------------------
  // Score tables

  /** Location, availability, stickiness and failures for one primitive. */
  primitiveTable(r: Res, withStickiness = true): ScoreTable {
    const u = this.input.u;
    const t = this.newTable();
    const chain: Res[] = [];
    for (let p: Res | undefined = r; p; p = p.parent) chain.push(p);
    // Node i of sortedNodes is node i of the table (see newTable).
    if (u.options.symmetric) for (let i = 0; i < this.sortedNodes.length; i++) t.allowAt(i);
    const exclusive = new Set<string>();
    let hasExclusive = false;
    for (const p of chain) {
      for (const e of this.input.locations.get(p.baseId) ?? []) {
        if (e.discovery === 'exclusive') {
          hasExclusive = true;
          exclusive.add(e.node);
        }
        if (e.role === 'Promoted') continue;
        t.allow(e.node);
        t.add(e.node, e.score, 'location', describeLocation(e));
      }
    }
    const allowUnhealthy = isTrue(r.meta.get('allow-unhealthy-nodes'));
    for (let i = 0; i < this.sortedNodes.length; i++) {
      const n = this.sortedNodes[i]!;
      if (n.health !== 0 && !allowUnhealthy)
        t.addAt(i, n.name, n.health, 'health', `${n.name} has node health ${formatScore(n.health)}`);
      const why = this.unavailable[i];
      if (why !== undefined) t.addAt(i, n.name, MINUS_INFINITY, 'node', why);
      else if (hasExclusive && !exclusive.has(n.name))
        t.addAt(i, n.name, MINUS_INFINITY, 'discovery', `${n.name} is not in an exclusive discovery set`);
    }
    const st = r.state;
    const active = st.active;
    if (withStickiness && active.length === 1 && r.managed && r.stickiness !== 0) {
      const cur = active[0]!.node;
      if (t.isAllowed(cur) || u.options.symmetric) {
        t.allow(cur);
        t.add(cur, r.stickiness, 'stickiness', `stickiness ${r.stickiness} keeps it on ${cur}`);
      }
    }
    for (const [node, count] of this.failCountsFor(r)) {
      if (r.migrationThreshold > 0 && count >= r.migrationThreshold) {
        t.add(
          node,
          MINUS_INFINITY,
          'fail-limit',
          `${node} reached migration-threshold ${formatScore(r.migrationThreshold)} (${formatScore(count)} failures)`,
        );
      }
    }
    if (st.shutdownLock !== undefined) {
      for (const n of this.sortedNodes) {
        if (n.name !== st.shutdownLock)
          t.add(
            n.name,
            MINUS_INFINITY,
            'shutdown-lock',
            `${r.id} is locked to ${st.shutdownLock} (shutdown-lock)`,
          );
      }
    }
    for (const node of st.hardBans)
      t.add(node, MINUS_INFINITY, 'hard-error', `the agent is not installed on ${node}`);
    const everywhere = (kind: string, text: string): void => {
      for (const n of this.sortedNodes) t.add(n.name, MINUS_INFINITY, kind, text);
    };
    if (st.fatal) everywhere('fatal', `${r.id} has a configuration error (fatal)`);
    if (r.orphan) everywhere('orphan', `${r.id} is no longer configured`);
    if (st.stopRequested) everywhere('on-fail', `a failed operation has on-fail=stop`);
    if (active.length > 1 && r.meta.get('multiple-active') === 'stop_only') {
      everywhere('multiple-active', `${r.id} is active on several nodes and multiple-active=stop_only`);
    }
    // The effective target-role is inherited from the group/clone unless the primitive sets its own.
    if (r.targetRole === 'Stopped') {
      const from =
        chain.find((p) => p.meta.get('target-role') !== undefined && p.targetRole === 'Stopped') ?? r;
      everywhere('target-role', `${from.id} has target-role Stopped`);
    }
    if (u.options.stopAllResources) everywhere('stop-all', 'stop-all-resources is set');
    for (const p of chain) {
      for (const e of u.tickets.get(p.baseId) ?? []) {
        // A role-limited ticket only stops everything under loss-policy=stop.
        if (!e.revoked || (e.role === 'Promoted' && e.lossPolicy !== 'stop')) continue;
        const text = `ticket ${e.ticket} is not granted (${e.id}, loss-policy ${e.lossPolicy})`;
        if (e.lossPolicy === 'freeze') {
          for (const n of this.sortedNodes)
            if (!active.some((x) => x.node === n.name)) t.add(n.name, MINUS_INFINITY, 'ticket', text);
        } else everywhere('ticket', text);
      }
    }
    return t;
  }

  private readonly cloneFailCounts = new Map<string, Map<string, number>>();

  /**
   * Fail counts that ban `r`: its own, or for an instance of an anonymous clone the highest of
   * any instance on each node (reaching migration-threshold bans the whole clone there).
   */
  private failCountsFor(r: Res): ReadonlyMap<string, number> {
    const clone = cloneAncestor(r);
    if (!clone || clone.clone?.globallyUnique) return r.state.failCounts;
    const key = `${clone.id}\u0000${r.baseId}`;
    let out = this.cloneFailCounts.get(key);
    if (!out) {
      out = new Map();
      for (const p of clone.children.flatMap((inst) => primitivesOf(inst))) {
        if (p.baseId !== r.baseId) continue;
        for (const [n, c] of p.state.failCounts) out.set(n, Math.max(out.get(n) ?? 0, c));
      }
      this.cloneFailCounts.set(key, out);
    }
    return out;
  }

  /** Whether `r` must stay exactly as it is (unmanaged, blocked, node in maintenance). */
  isFixed(r: Res): boolean {
    if (!r.managed) return true;
    // A blocked failure stops mattering once its node is fenced.
    if (r.state.blocked && r.state.blockedOn.some((n) => !this.input.u.fence.has(n))) return true;
    if (r.state.active.length > 1 && r.meta.get('multiple-active') === 'block') return true;
    return r.state.active.some((a) => this.input.u.nodeByName.get(a.node)?.maintenance);
  }

  // -------------------------------------------------------------------------------------------
  // Colocation

  /** Nodes where `primary` ended up (with `role`), expanded to nodes sharing `attr`. */
  colocatedNodes(primary: Res, role: string | undefined, attr: string, fullyUp = false): Set<string> {
    const nodes = variant(primary).nodesAfter(primary, this, role, fullyUp);
    if (attr === '#uname') return nodes;
    const values = new Set<string>();
    for (const n of nodes) {
      const v = this.input.u.nodeByName.get(n)?.attrs.get(attr);
      if (v !== undefined) values.add(v);
    }
    const out = new Set<string>();
    for (const n of this.sortedNodes) if (values.has(n.attrs.get(attr) ?? '\u0000')) out.add(n.name);
    return out;
  }

  nodesOfPrimitives(prims: readonly Res[], role: string | undefined): Set<string> {
    const out = new Set<string>();
    for (const p of prims) {
      const pl = this.placements.get(p.id);
      if (!pl?.node) continue;
      // A failed instance left blocked where it is has no place a dependent could join.
      if (pl.fixed && p.state.active.some((a) => a.failed && a.node === pl.node)) continue;
      if (role === 'Promoted' && pl.role !== 'Promoted') continue;
      if (role === 'Unpromoted' && pl.role !== 'Unpromoted') continue;
      out.add(pl.node);
    }
    return out;
  }

  /** Applies colocations whose dependent is `id` to `t`, assigning primaries first. */
  applyColocations(id: string, t: ScoreTable, skipRole: boolean): void {
    for (const c of this.input.colocByDependent.get(id) ?? []) {
      if (skipRole && c.dependentRole === 'Promoted') continue;
      if (c.dependentRole === 'Promoted' || c.dependentRole === 'Unpromoted') continue;
      const primary = this.input.u.byConfiguredId.get(c.primary);
      if (!primary) continue;
      this.ensureAssigned(primary);
      if (this.inProgress.has(topOf(primary).id) && !this.done.has(topOf(primary).id)) continue;
      // With a mandatory colocation a group must be fully up: its last member counts.
      const nodes = this.colocatedNodes(primary, c.primaryRole, c.nodeAttribute, c.score >= INFINITY);
      applyColocationScore(t, c, nodes, this.sortedNodes);
    }
  }

  /** Dependents' preferences pull an unassigned primary (Pacemaker's colocated node scores). */
  applyInfluence(id: string, t: ScoreTable, depth = 0): void {
    if (depth > 3) return;
    for (const c of this.input.colocByPrimary.get(id) ?? []) {
      if (!c.influence || c.score === 0 || c.dependentRole === 'Promoted' || c.primaryRole !== undefined)
        continue;
      const dep = this.input.u.byConfiguredId.get(c.dependent);
      if (!dep || dep.kind === 'clone' || this.done.has(topOf(dep).id) || cloneAncestor(dep)) continue;
      const factor = c.score / INFINITY;
      const dt =
        dep.kind === 'group'
          ? this.mergeMembers(dep.children.map((m) => this.primitiveTable(m)))
          : this.primitiveTable(dep);
      this.applyInfluence(dep.baseId, dt, depth + 1);
      // A dependent being assigned right now (it assigns its primaries one by one) has already
      // applied its colocations with the primaries placed so far (Pacemaker applies each
      // colocation as soon as its primary is assigned).
      if (this.inProgress.has(topOf(dep).id)) {
        for (const c2 of this.input.colocByDependent.get(dep.baseId) ?? []) {
          if (c2 === c || c2.dependentRole !== undefined) continue;
          const p2 = this.input.u.byConfiguredId.get(c2.primary);
          if (!p2 || !this.done.has(topOf(p2).id)) continue;
          applyColocationScore(
            dt,
            c2,
            this.colocatedNodes(p2, c2.primaryRole, c2.nodeAttribute),
            this.sortedNodes,
          );
        }
      }
      const work = ScoreTable.copy(t);
      for (const n of this.sortedNodes) {
        const ds = this.dependentScore(dt, n, c.nodeAttribute);
        // Avoiding a dependent that can't run somewhere must not attract the primary there.
        if (factor < 0 && ds < 0) continue;
        // An infinite preference stays infinite whatever the factor (only its sign follows it).
        const add =
          Math.abs(ds) >= INFINITY
            ? Math.sign(factor) * Math.sign(ds) * INFINITY
            : Math.abs(factor) >= 1
              ? Math.sign(factor) * ds
              : Math.trunc(factor * ds);
        if (add !== 0)
          work.add(
            n.name,
            add,
            'influence',
            `colocation ${c.id}: ${c.dependent} prefers ${n.name} (${formatScore(add)})`,
          );
      }
      if (this.sortedNodes.some((n) => work.canRun(n.name) && this.available(n.name))) {
        t.setScoresFrom(work);
        t.reasons.length = 0;
        t.reasons.push(...work.reasons);
      }
    }
  }

  /**
   * The dependent's score as seen from primary node `n`: its own score there, or with a
   * node-attribute colocation the best score among nodes sharing `n`'s attribute value.
   */
  private dependentScore(dt: ScoreTable, n: NodeInfo, attr: string): number {
    const own = (m: NodeInfo): number => (dt.isAllowed(m.name) ? dt.get(m.name) : MINUS_INFINITY);
    if (attr === '#uname') return own(n);
    const value = n.attrs.get(attr);
    let best = MINUS_INFINITY;
    for (const m of this.sortedNodes) if (m.attrs.get(attr) === value) best = Math.max(best, own(m));
    return best;
  }

  available(node: string): boolean {
    return this.availableNames.has(node);
  }

  // -------------------------------------------------------------------------------------------
  // Choosing a node

  /** Best node for a unit: highest score, then least loaded, then its current node, then name. */
  choose(t: ScoreTable, current: string | undefined, opts: ChooseOpts = {}): string | undefined {
    let best: string | undefined;
    let bestScore = MINUS_INFINITY;
    // Two arrays per call, not one per node: this runs for every resource on every node.
    let key: number[] = [];
    let bestKey: number[] = [];
    const strategy = this.input.u.options.placementStrategy;
    for (let i = 0; i < this.sortedNodes.length; i++) {
      const name = this.sortedNodes[i]!.name;
      if (!t.isAllowedAt(i) || this.unavailable[i] !== undefined) continue;
      const s = t.getAt(i);
      if (s < 0) continue;
      if (opts.exclude?.(name)) continue;
      if (opts.utilization && strategy !== 'default' && !this.fits(name, opts.utilization)) continue;
      key[0] = s;
      key[1] = opts.secondary?.(name) ?? 0;
      key[2] = opts.preferCurrent && name === current ? 1 : 0;
      key[3] = strategy === 'minimal' ? 0 : -(this.load.get(name) ?? 0);
      key[4] = strategy === 'balanced' || strategy === 'utilization' ? this.freeCapacity(name) : 0;
      // Pacemaker prefers the current node only when it is as good as the best in every respect.
      key[5] = name === current ? 1 : 0;
      if (best === undefined || lexGreater(key, bestKey)) {
        best = name;
        bestScore = s;
        [bestKey, key] = [key, bestKey];
      }
    }
    void bestScore;
    return best;
  }

  private fits(node: string, need: ReadonlyMap<string, number>): boolean {
    const cap = this.input.u.nodeByName.get(node)?.utilization ?? new Map();
    const used = this.utilUsed.get(node);
    for (const [k, v] of need) {
      if ((used?.get(k) ?? 0) + v > (cap.get(k) ?? 0)) return false;
    }
    return true;
  }

  private freeCapacity(node: string): number {
    const cap = this.input.u.nodeByName.get(node)?.utilization ?? new Map<string, number>();
    const used = this.utilUsed.get(node);
    let free = 0;
    for (const [k, v] of cap) free += v - (used?.get(k) ?? 0);
    return free;
  }

  utilizationOf(prims: readonly Res[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const p of prims) {
      for (const set of p.def?.utilization ?? []) {
        for (const pair of set.pairs) {
          if (pair.value === undefined) continue;
          out.set(pair.name, (out.get(pair.name) ?? 0) + (Number.parseInt(pair.value, 10) || 0));
        }
      }
    }
    return out;
  }

  place(r: Res, node: string | undefined, role: Role, fixed = false): void {
    this.placements.set(r.id, { node, role, fixed });
    if (node !== undefined && role !== 'Stopped') {
      this.load.set(node, (this.load.get(node) ?? 0) + 1);
      const need = this.utilizationOf([r]);
      if (need.size > 0) {
        const used = getOrInsert(this.utilUsed, node, () => new Map<string, number>());
        for (const [k, v] of need) used.set(k, (used.get(k) ?? 0) + v);
      }
    }
  }

  private placeFixed(r: Res): void {
    const a = r.state.active[0];
    this.place(r, a?.node, a ? a.role : 'Stopped', true);
    this.note(
      r.id,
      r.managed
        ? `${r.id} is blocked after a failure and left alone`
        : `${r.id} is not managed and left as it is`,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Variants

  ensureAssigned(r: Res): void {
    const top = topOf(r);
    if (this.done.has(top.id) || this.inProgress.has(top.id)) return;
    this.inProgress.add(top.id);
    variant(top).assign(top, this);
    this.done.add(top.id);
  }

  assignPrimitive(r: Res): void {
    if (this.isFixed(r)) {
      this.placeFixed(r);
      return;
    }
    const t = this.primitiveTable(r);
    this.applyColocations(r.baseId, t, true);
    this.applyInfluence(r.baseId, t);
    this.tables.set(r.id, t);
    const cur = r.state.active.length === 1 ? r.state.active[0]!.node : undefined;
    const node = this.choose(t, cur, { utilization: this.utilizationOf([r]) });
    this.place(r, node, node ? 'Started' : 'Stopped');
  }

  /** Merges member tables in order; a member that would leave no node is not merged. */
  mergeMembers(tables: readonly ScoreTable[]): ScoreTable {
    const merged = ScoreTable.copy(tables[0] ?? this.newTable());
    for (let i = 1; i < tables.length; i++) {
      const cand = ScoreTable.copy(merged);
      const mt = tables[i]!;
      for (const [node, s] of mt.entries()) {
        if (!cand.isAllowed(node)) continue;
        cand.set(node, addScoresSafe(cand.get(node), mt.isAllowed(node) ? s : MINUS_INFINITY));
      }
      for (const reason of mt.reasons) cand.reasons.push(reason);
      if (!this.sortedNodes.some((n) => cand.canRun(n.name) && this.available(n.name))) break;
      merged.setScoresFrom(cand);
      merged.reasons.length = 0;
      merged.reasons.push(...cand.reasons);
    }
    return merged;
  }

  assignGroup(g: Group): void {
    const members = g.children;
    if (members.length === 0) return;
    if (members.every((m) => this.isFixed(m))) {
      for (const m of members) this.placeFixed(m);
      return;
    }
    const tables = members.map((m) => {
      const t = this.primitiveTable(m);
      this.applyColocations(m.baseId, t, true);
      return t;
    });
    // The group's own colocations shape its first member before the others are merged in, so a
    // later member that can't run anywhere acceptable stops instead of dragging the group.
    this.applyColocations(g.baseId, tables[0]!, true);
    this.applyInfluence(g.baseId, tables[0]!);
    const merged = this.mergeMembers(tables);
    this.tables.set(g.id, merged);
    const cur = members[0]!.state.active.length === 1 ? members[0]!.state.active[0]!.node : undefined;
    const node = this.choose(merged, cur, { utilization: this.utilizationOf(members) });
    this.placeMembers(g, node, tables, 'Started');
  }

  /** Places a group's members on `node` in order; a member that can't run stops the rest. */
  placeMembers(g: Res, node: string | undefined, tables: readonly ScoreTable[], role: Role): void {
    let ok = node !== undefined;
    g.children.forEach((m, i) => {
      if (this.isFixed(m)) {
        this.placeFixed(m);
        // A member left stopped (or elsewhere) holds back the members after it.
        const a = m.state.active[0];
        if (ok && (!a || a.node !== node)) {
          ok = false;
          this.note(
            m.id,
            `${m.id} is left alone away from ${node ?? 'any node'}, so the members after it stop`,
          );
        }
        return;
      }
      if (ok && node !== undefined && !tables[i]!.canRun(node)) {
        ok = false;
        this.note(m.id, `${m.id} cannot run on ${node}, so it and the members after it stop`);
      }
      this.place(m, ok ? node : undefined, ok ? role : 'Stopped');
    });
  }

  assignClone(c: Res): void {
    const cs = c.clone!;
    const cloneAdds = this.newTable();
    for (const n of this.sortedNodes) cloneAdds.allow(n.name);
    this.applyColocations(c.baseId, cloneAdds, true);
    const instTables = new Map<string, { table: ScoreTable; members: ScoreTable[] }>();
    for (const inst of c.children) {
      const members =
        inst.kind === 'group'
          ? inst.children.map((m) => this.primitiveTable(m))
          : [this.primitiveTable(inst)];
      const table = inst.kind === 'group' ? this.mergeMembers(members) : ScoreTable.copy(members[0]!);
      for (const [node, s] of cloneAdds.entries())
        if (s !== 0) table.set(node, addScoresSafe(table.get(node), s));
      table.reasons.push(...cloneAdds.reasons);
      instTables.set(inst.id, { table, members });
      this.tables.set(inst.id, table);
    }
    const perNode = new Map<string, number>();
    let total = 0;
    const assigned = new Set<string>();
    const promoAttr = (node: string): number =>
      cs.promotable ? (this.promotionAttr(c.children[0]!, node) ?? -1) : 0;
    const instancePrims = (inst: Res): readonly Res[] => (inst.kind === 'group' ? inst.children : [inst]);
    const curOf = (inst: Res): string | undefined => {
      const a = instancePrims(inst)[0]?.state.active;
      return a && a.length === 1 ? a[0]!.node : undefined;
    };
    // Fixed instances keep their place and count against the limits.
    for (const inst of c.children) {
      if (instancePrims(inst).some((p) => this.isFixed(p))) {
        for (const p of instancePrims(inst)) this.placeFixed(p);
        assigned.add(inst.id);
        const node = curOf(inst);
        if (node) {
          perNode.set(node, (perNode.get(node) ?? 0) + 1);
          total++;
        }
      }
    }
    // Instances that can stay where they run come first, then those whose node went away, then
    // inactive ones, and last those still on a node that now bans them.
    const rank = (inst: Res): number => {
      const cur = curOf(inst);
      if (!cur) return 2;
      if (!this.available(cur)) return 1;
      return instTables.get(inst.id)!.table.canRun(cur) ? 0 : 3;
    };
    const ordered = [...c.children].sort((x, y) => rank(x) - rank(y) || x.order - y.order);
    // Pass 1: instances stay where they run when that node is as good as any, but no more of
    // them per node than an even spread gives (clone-max over the nodes that can run one).
    const usable = this.sortedNodes.filter(
      (n) => this.available(n.name) && [...instTables.values()].some((x) => x.table.canRun(n.name)),
    ).length;
    const evenShare = Math.max(1, Math.floor(cs.cloneMax / Math.max(1, usable)));
    for (const inst of ordered) {
      if (assigned.has(inst.id) || total >= cs.cloneMax) continue;
      const cur = curOf(inst);
      if (!cur) continue;
      const { table } = instTables.get(inst.id)!;
      const here = perNode.get(cur) ?? 0;
      if (!table.canRun(cur) || !this.available(cur) || here >= cs.cloneNodeMax || here >= evenShare)
        continue;
      const best = this.choose(table, cur, {
        exclude: (n) => (perNode.get(n) ?? 0) >= cs.cloneNodeMax,
        preferCurrent: true,
      });
      if (best !== undefined && table.get(best) > table.get(cur)) continue;
      this.placeInstance(inst, cur, instTables.get(inst.id)!.members);
      assigned.add(inst.id);
      perNode.set(cur, (perNode.get(cur) ?? 0) + 1);
      total++;
    }
    // Pass 2: the rest go to the best nodes with room.
    for (const inst of ordered) {
      if (assigned.has(inst.id)) continue;
      let node: string | undefined;
      if (total < cs.cloneMax) {
        const { table } = instTables.get(inst.id)!;
        node = this.choose(table, curOf(inst), {
          exclude: (n) => (perNode.get(n) ?? 0) >= cs.cloneNodeMax,
          secondary: cs.promotable && !cs.globallyUnique ? promoAttr : undefined,
          utilization: this.utilizationOf(instancePrims(inst)),
        });
      }
      this.placeInstance(inst, node, instTables.get(inst.id)!.members);
      assigned.add(inst.id);
      if (node) {
        perNode.set(node, (perNode.get(node) ?? 0) + 1);
        total++;
      } else if (total >= cs.cloneMax) {
        this.note(inst.id, `${c.id} already has clone-max ${cs.cloneMax} instances placed`);
      }
    }
    this.done.add(c.id);
    if (cs.promotable) this.assignPromotion(c);
  }

  private placeInstance(inst: Res, node: string | undefined, members: readonly ScoreTable[]): void {
    const role: Role = cloneAncestor(inst)?.clone?.promotable ? 'Unpromoted' : 'Started';
    if (inst.kind === 'group') this.placeMembers(inst, node, members, role);
    else this.place(inst, node, node ? role : 'Stopped');
  }

  /** The `master-RSC` node attribute for an instance's primitive on `node`, if any. */
  promotionAttr(inst: Res, node: string): number | undefined {
    const n = this.input.u.nodeByName.get(node);
    if (!n) return undefined;
    let total: number | undefined;
    for (const p of primitivesOf(inst)) {
      const unique = cloneAncestor(p)?.clone?.globallyUnique ?? false;
      // Anonymous instances go by the name their history was recorded under, then the base id.
      const recorded =
        p.state.historyName !== undefined ? n.attrs.get(`master-${p.state.historyName}`) : undefined;
      const v =
        recorded ?? n.attrs.get(`master-${unique ? p.id : p.baseId}`) ?? n.attrs.get(`master-${p.id}`);
      if (v === undefined) continue;
      const s = parseScore(v);
      if (s.ok) total = (total ?? 0) + s.score;
    }
    return total;
  }

  /** The clone's own node weights (Pacemaker's clone-level allocation scores). */
  private cloneWeights(c: Res): ScoreTable {
    const t = this.newTable();
    for (const n of this.sortedNodes) t.allow(n.name);
    for (const e of this.input.locations.get(c.baseId) ?? []) {
      if (e.role === 'Promoted') continue;
      t.add(e.node, e.score, 'location', describeLocation(e));
    }
    this.applyColocations(c.baseId, t, true);
    this.applyInfluence(c.baseId, t);
    return t;
  }

  private assignPromotion(c: Res): void {
    const cs = c.clone!;
    const u = this.input.u;
    const candidates: { inst: Res; node: string; score: number; wasPromoted: boolean }[] = [];
    const blockedByRole =
      c.targetRole === 'Unpromoted' || (!u.options.haveQuorum && u.options.noQuorumPolicy === 'demote');
    const weights = this.cloneWeights(c);
    for (const inst of c.children) {
      const prims = primitivesOf(inst);
      const pl = this.placements.get(prims[0]!.id);
      if (!pl?.node || pl.fixed) continue;
      const node = pl.node;
      let score = this.promotionAttr(inst, node);
      const wasPromoted = prims.some((p) =>
        p.state.active.some((a) => a.role === 'Promoted' && a.node === node),
      );
      const why: string[] = [];
      if (score === undefined) {
        this.note(inst.id, `${inst.id} has no promotion score on ${node}`);
        score = -1;
      } else {
        why.push(`promotion score ${formatScore(score)} on ${node}`);
      }
      for (const e of this.input.locations.get(c.baseId) ?? []) {
        if (e.role === 'Promoted' && e.node === node) score = addScoresSafe(score, e.score);
      }
      // An instance that may be promoted takes its node's weight for the clone: the clone's
      // own location preferences, its colocations and its dependents' preferences.
      if (score >= 0) score = addScoresSafe(score, weights.get(node));
      for (const e of u.tickets.get(c.baseId) ?? []) {
        if (!e.revoked || e.role !== 'Promoted') continue;
        // freeze keeps the promoted instance where it is; the other policies demote.
        if (e.lossPolicy === 'freeze') score = wasPromoted ? INFINITY : MINUS_INFINITY;
        else score = MINUS_INFINITY;
      }
      if (prims.some((p) => p.state.demoteRequested)) score = MINUS_INFINITY;
      // A group instance with a member that can't run there is not fit to be promoted.
      if (prims.some((p) => this.placements.get(p.id)?.node !== node)) score = MINUS_INFINITY;
      for (const col of this.input.colocByDependent.get(c.baseId) ?? []) {
        if (col.dependentRole === 'Unpromoted' && col.score >= INFINITY) {
          // The unpromoted instance must be where the primary is: don't promote there.
          const primary = u.byConfiguredId.get(col.primary);
          if (!primary) continue;
          this.ensureAssigned(primary);
          if (this.colocatedNodes(primary, col.primaryRole, col.nodeAttribute).has(node))
            score = MINUS_INFINITY;
          continue;
        }
        if (col.dependentRole !== 'Promoted') continue;
        const primary = u.byConfiguredId.get(col.primary);
        if (!primary) continue;
        this.ensureAssigned(primary);
        const nodes = this.colocatedNodes(primary, col.primaryRole, col.nodeAttribute);
        if (col.score >= INFINITY) {
          // Promoted only where the primary is: there the primary's own weight (infinite for a
          // placed primitive) makes this the instance to promote.
          if (!nodes.has(node)) score = MINUS_INFINITY;
          else if (primary.kind === 'primitive') score = addScoresSafe(score, INFINITY);
        } else if (col.score <= MINUS_INFINITY) {
          if (nodes.has(node)) score = MINUS_INFINITY;
        } else if (nodes.has(node)) score = addScoresSafe(score, col.score);
      }
      for (const col of this.input.colocByPrimary.get(c.baseId) ?? []) {
        if (col.primaryRole !== 'Promoted') continue;
        const dep = u.byConfiguredId.get(col.dependent);
        if (!dep || dep.kind === 'clone') continue;
        const dt = this.primitiveTable(primitivesOf(dep)[0]!);
        const ds = dt.isAllowed(node) ? dt.get(node) : 0;
        if (ds === 0) continue;
        const factor = col.score / INFINITY;
        const add = Math.abs(ds) >= INFINITY ? Math.sign(factor * ds) * INFINITY : Math.trunc(factor * ds);
        // Only positive preferences are merged: a dependent that can't (or would rather not) run
        // here leaves a candidate eligible but last (1), as Pacemaker's merge does.
        if (add < 0 && score > 0) score = 1;
        else if (add < 0 && score === 0) continue;
        else score = addScoresSafe(score, add);
      }
      if (prims.some((p) => p.state.active.some((a) => a.failed && a.node === node)) && !wasPromoted) {
        // A failed instance is recovered first; Pacemaker still allows it to be promoted.
      }
      candidates.push({ inst, node, score, wasPromoted });
    }
    candidates.sort(
      (x, y) =>
        y.score - x.score || Number(y.wasPromoted) - Number(x.wasPromoted) || x.inst.order - y.inst.order,
    );
    let promoted = 0;
    const perNode = new Map<string, number>();
    // Instances left alone (blocked, unmanaged) that stay promoted use up promotion slots.
    for (const inst of c.children) {
      const pl = this.placements.get(primitivesOf(inst)[0]!.id);
      if (!pl?.fixed || !pl.node || pl.role !== 'Promoted') continue;
      promoted++;
      perNode.set(pl.node, (perNode.get(pl.node) ?? 0) + 1);
    }
    for (const cand of candidates) {
      this.promotion.set(cand.inst.id, cand.score);
      const ok =
        !blockedByRole &&
        cand.score >= 0 &&
        promoted < cs.promotedMax &&
        (perNode.get(cand.node) ?? 0) < cs.promotedNodeMax;
      if (!ok) continue;
      promoted++;
      perNode.set(cand.node, (perNode.get(cand.node) ?? 0) + 1);
      for (const p of primitivesOf(cand.inst)) {
        const pl = this.placements.get(p.id);
        if (pl?.node) this.placements.set(p.id, { ...pl, role: 'Promoted' });
      }
    }
  }

  /** Runs the stage over every resource in Pacemaker's order. */
  run(): Assignment {
    const order = sortResources(this.input.u.resources, (r) => this.sortKey(r));
    for (const r of order) this.ensureAssigned(r);
    return {
      placements: this.placements,
      tables: this.tables,
      promotion: this.promotion,
      order,
      notes: this.notes,
    };
  }

  /** Pacemaker's cmp_resources: priority, then score on the current node, then scores by node. */
  private sortKey(r: Res): number[] {
    // With the default placement strategy Pacemaker only sorts by priority.
    if (this.input.u.options.placementStrategy === 'default') return [r.priority];
    const prims = primitivesOf(r);
    const first = prims[0];
    const t = first ? this.primitiveTable(first, r.kind !== 'clone') : this.newTable();
    if (r.kind === 'group') {
      const merged = this.mergeMembers(prims.map((p) => this.primitiveTable(p)));
      for (const [k, v] of merged.entries()) t.set(k, v);
    }
    const running = r.kind === 'clone' ? prims.find((p) => p.state.active.length > 0) : first;
    const cur = running && running.state.active.length > 0 ? running.state.active[0]!.node : undefined;
    const curScore = cur !== undefined && t.isAllowed(cur) ? t.get(cur) : MINUS_INFINITY;
    const key = [r.priority, curScore];
    for (const n of this.sortedNodes) key.push(t.isAllowed(n.name) ? t.get(n.name) : MINUS_INFINITY);
    return key;
  }
}

interface ChooseOpts {
  readonly exclude?: (node: string) => boolean;
  readonly secondary?: ((node: string) => number) | undefined;
  readonly utilization?: ReadonlyMap<string, number>;
  /** Break score ties in favour of the current node (clone instances only, as Pacemaker does). */
  readonly preferCurrent?: boolean;
}

type Group = Res;

function lexGreater(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i] ?? MINUS_INFINITY;
    if (x !== y) return x > y;
  }
  return false;
}

function sortResources(rs: readonly Res[], key: (r: Res) => number[]): Res[] {
  const keyed = rs.map((r, i) => ({ r, i, k: key(r) }));
  keyed.sort((a, b) => {
    for (let j = 0; j < Math.max(a.k.length, b.k.length); j++) {
      const x = a.k[j] ?? 0;
      const y = b.k[j] ?? 0;
      if (x !== y) return y - x;
    }
    return a.i - b.i;
  });
  return keyed.map((x) => x.r);
}

function addScoresSafe(a: number, b: number): number {
  if (a <= MINUS_INFINITY || b <= MINUS_INFINITY) return MINUS_INFINITY;
  if (a >= INFINITY || b >= INFINITY) return INFINITY;
  return Math.max(MINUS_INFINITY, Math.min(INFINITY, a + b));
}

function topOf(r: Res): Res {
  let t = r;
  while (t.parent) t = t.parent;
  return t;
}

function applyColocationScore(
  t: ScoreTable,
  c: ColocationEntry,
  nodes: ReadonlySet<string>,
  all: readonly NodeInfo[],
): void {
  const where =
    nodes.size === 0
      ? `${c.primary} is not running anywhere`
      : `${c.primary} runs on ${[...nodes].join(', ')}`;
  if (c.score >= INFINITY) {
    for (const n of all) {
      if (!nodes.has(n.name))
        t.add(
          n.name,
          MINUS_INFINITY,
          'colocation',
          `colocation ${c.id} needs it with ${c.primary} (${where})`,
        );
    }
  } else if (c.score <= MINUS_INFINITY) {
    for (const n of nodes)
      t.add(n, MINUS_INFINITY, 'colocation', `colocation ${c.id} keeps it away from ${c.primary} on ${n}`);
  } else {
    for (const n of nodes) {
      t.add(n, c.score, 'colocation', `colocation ${c.id} with ${c.primary} (${formatScore(c.score)})`);
    }
  }
}

/** Stage: assignment. */
export function assign(input: AssignInput): Assignment {
  return new Assigner(input).run();
}
