import { isTrue } from '../cib/resources.ts';
import { formatScore, INFINITY, MINUS_INFINITY, parseScore } from '../cib/score.ts';
import { assertNever } from '../lib/assert.ts';
import { assignmentOrder } from './assign_order.ts';
import { getOrInsert } from './collections.ts';
import type { ColocationEntry } from './colocation.ts';
import { describeLocation, type LocationEntry } from './location.ts';
import { naturalCompare, unavailableReason } from './nodes.ts';
import { cloneAncestor, primitivesOf, type Res } from './resource_tree.ts';
import { flattenNvSets } from './rules.ts';
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
  private readonly utilCache = new Map<string, ReadonlyMap<string, number>>();
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

  /**
   * Location, availability, stickiness and failures for one primitive. `startingScores` leaves
   * out what Pacemaker applies only when it assigns the resource (node availability, target-role,
   * stop-all-resources), for the assignment order.
   */
  primitiveTable(r: Res, withStickiness = true, startingScores = false): ScoreTable {
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
      const why = startingScores ? undefined : this.unavailable[i];
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
    if (r.targetRole === 'Stopped' && !startingScores) {
      const from =
        chain.find((p) => p.meta.get('target-role') !== undefined && p.targetRole === 'Stopped') ?? r;
      everywhere('target-role', `${from.id} has target-role Stopped`);
    }
    if (u.options.stopAllResources && !startingScores) everywhere('stop-all', 'stop-all-resources is set');
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

  /**
   * Assigns the primaries of the colocations whose dependent is one of `ids`, in Pacemaker's
   * order: mandatory colocations first; then highest priority first; then clones before groups
   * before primitives, promotable clones first; then by id. Which primary is placed first
   * matters when they compete for a node's last capacity.
   */
  private assignPrimariesFirst(ids: readonly string[]): void {
    const u = this.input.u;
    const primaries: Res[] = [];
    const mandatory = new Set<Res>();
    for (const id of ids) {
      for (const c of this.input.colocByDependent.get(id) ?? []) {
        if (c.dependentRole === 'Promoted' || c.dependentRole === 'Unpromoted') continue;
        const p = u.byConfiguredId.get(c.primary);
        if (!p) continue;
        if (!primaries.includes(p)) primaries.push(p);
        if (Math.abs(c.score) >= INFINITY) mandatory.add(p);
      }
    }
    if (primaries.length < 2) return;
    const variantRank = (r: Res): number => (r.kind === 'clone' ? 0 : r.kind === 'group' ? 1 : 2);
    // Mandatory colocations are satisfied first, so as many of them as possible hold.
    primaries.sort(
      (x, y) =>
        Number(mandatory.has(y)) - Number(mandatory.has(x)) ||
        y.priority - x.priority ||
        variantRank(x) - variantRank(y) ||
        Number(y.clone?.promotable ?? false) - Number(x.clone?.promotable ?? false) ||
        (x.id < y.id ? -1 : x.id > y.id ? 1 : 0),
    );
    for (const p of primaries) this.ensureAssigned(p);
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
      // With a mandatory colocation a group must be fully up: its last member counts. Not so for
      // a cloned group with a dependent that is not itself cloned: it may run wherever an
      // instance has any member placed (Pacemaker goes by the instance's location there).
      const dependent = this.input.u.byConfiguredId.get(c.dependent);
      const anyMember =
        primary.kind === 'clone' &&
        dependent !== undefined &&
        dependent.kind !== 'clone' &&
        !cloneAncestor(dependent);
      const nodes = this.colocatedNodes(
        primary,
        c.primaryRole,
        c.nodeAttribute,
        c.score >= INFINITY && !anyMember,
      );
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

  /**
   * Best node for a unit, ordered as Pacemaker orders nodes for an assignment: highest score;
   * under placement-strategy=balanced, then the node with more free capacity; then (except under
   * minimal) the node with fewer resources placed; then the current node; then the name.
   * With a utilization strategy, nodes without room for the unit are left out (see capacityFit).
   */
  choose(t: ScoreTable, current: string | undefined, opts: ChooseOpts = {}): string | undefined {
    const fit = this.capacityFit(t, opts);
    let best = -1;
    for (let i = 0; i < this.sortedNodes.length; i++) {
      if (!this.eligible(t, i, opts) || !fit.fits(i)) continue;
      if (best < 0 || this.compareNodes(t, i, best, current, opts) < 0) best = i;
    }
    if (best < 0) return undefined;
    // No node can take the unit together with what must follow it: Pacemaker then prefers the
    // node with the most free capacity when it scores as well as the best.
    const most = fit.mostCapable;
    if (most !== undefined && most !== best && fit.fits(most) && t.getAt(most) >= t.getAt(best)) best = most;
    return this.sortedNodes[best]!.name;
  }

  /** Whether `node` has the capacity `choose` would require of it for a unit. */
  hasRoom(t: ScoreTable, node: string, opts: ChooseOpts): boolean {
    const i = this.sortedNodes.findIndex((n) => n.name === node);
    return i >= 0 && this.capacityFit(t, opts).fits(i);
  }

  /** Whether node `i` may take a unit with table `t` at all (before capacity). */
  private eligible(t: ScoreTable, i: number, opts: ChooseOpts): boolean {
    if (!t.isAllowedAt(i) || this.unavailable[i] !== undefined || t.getAt(i) < 0) return false;
    return !opts.exclude?.(this.sortedNodes[i]!.name);
  }

  /** Pacemaker's node comparison for an assignment; negative when node `i` is preferred to `j`. */
  private compareNodes(
    t: ScoreTable,
    i: number,
    j: number,
    current: string | undefined,
    opts: ChooseOpts,
  ): number {
    const a = this.sortedNodes[i]!.name;
    const b = this.sortedNodes[j]!.name;
    const strategy = this.input.u.options.placementStrategy;
    const d =
      t.getAt(j) - t.getAt(i) ||
      (opts.secondary ? opts.secondary(b) - opts.secondary(a) : 0) ||
      (opts.preferCurrent ? Number(b === current) - Number(a === current) : 0) ||
      (strategy === 'balanced' ? this.compareCapacity(a, b) : 0) ||
      (strategy === 'minimal' ? 0 : (this.load.get(a) ?? 0) - (this.load.get(b) ?? 0)) ||
      Number(b === current) - Number(a === current);
    return d || i - j;
  }

  /**
   * Which nodes have room for a unit. Pacemaker first looks for nodes with room for the unit and
   * every not yet placed resource mandatorily colocated with it (so it does not take a node they
   * could not follow it to); when there is none, it settles for room for the unit alone and
   * prefers the node with the most free capacity.
   */
  private capacityFit(
    t: ScoreTable,
    opts: ChooseOpts,
  ): { fits: (i: number) => boolean; mostCapable?: number | undefined } {
    const need = opts.utilization;
    if (!need || need.size === 0 || this.input.u.options.placementStrategy === 'default')
      return { fits: () => true };
    const together = opts.colocatedUtilization ?? need;
    const candidates: number[] = [];
    for (let i = 0; i < this.sortedNodes.length; i++) if (this.eligible(t, i, opts)) candidates.push(i);
    const name = (i: number): string => this.sortedNodes[i]!.name;
    if (candidates.some((i) => this.fits(name(i), together)))
      return { fits: (i) => this.fits(name(i), together) };
    let mostCapable: number | undefined;
    for (const i of candidates)
      if (mostCapable === undefined || this.compareCapacity(name(i), name(mostCapable)) < 0) mostCapable = i;
    return { fits: (i) => this.fits(name(i), need), mostCapable };
  }

  private fits(node: string, need: ReadonlyMap<string, number>): boolean {
    const cap = this.input.u.nodeByName.get(node)?.utilization ?? NO_UTILIZATION;
    const used = this.utilUsed.get(node);
    for (const [k, v] of need) {
      if ((used?.get(k) ?? 0) + v > (cap.get(k) ?? 0)) return false;
    }
    return true;
  }

  /**
   * Negative when node `a` has more free capacity than `b`: each capacity votes once for the
   * node with more of it left (Pacemaker's comparison, not a sum of unlike units). A capacity a
   * node lacks counts as 0 left. Runs for every pair of nodes compared, so it allocates nothing.
   */
  compareCapacity(a: string, b: string): number {
    const capA = this.input.u.nodeByName.get(a)?.utilization ?? NO_UTILIZATION;
    const capB = this.input.u.nodeByName.get(b)?.utilization ?? NO_UTILIZATION;
    const usedA = this.utilUsed.get(a) ?? NO_UTILIZATION;
    const usedB = this.utilUsed.get(b) ?? NO_UTILIZATION;
    let votes = 0;
    for (const k of capA.keys()) votes += capacityVote(k, capA, usedA, capB, usedB);
    for (const k of usedA.keys()) if (!capA.has(k)) votes += capacityVote(k, capA, usedA, capB, usedB);
    for (const k of capB.keys())
      if (!capA.has(k) && !usedA.has(k)) votes += capacityVote(k, capA, usedA, capB, usedB);
    for (const k of usedB.keys())
      if (!capB.has(k) && !capA.has(k) && !usedA.has(k)) votes += capacityVote(k, capA, usedA, capB, usedB);
    return votes;
  }

  /** The capacity options for placing `unit` (nothing to check under the default strategy). */
  private capacityNeeds(unit: Res, prims: readonly Res[]): ChooseOpts {
    if (this.input.u.options.placementStrategy === 'default') return {};
    return { utilization: this.utilizationOf(prims), colocatedUtilization: this.colocatedUtilization(unit) };
  }

  private links: Map<string, { other: Res; otherIsDependent: boolean }[]> | undefined;

  /** Mandatory (INFINITY) colocations between top-level resources, both ways, built on first use. */
  private mandatoryLinks(): ReadonlyMap<string, readonly { other: Res; otherIsDependent: boolean }[]> {
    if (this.links) return this.links;
    const links = new Map<string, { other: Res; otherIsDependent: boolean }[]>();
    const u = this.input.u;
    for (const list of this.input.colocByDependent.values()) {
      for (const c of list) {
        if (c.score < INFINITY) continue;
        const dep = u.byConfiguredId.get(c.dependent);
        const prim = u.byConfiguredId.get(c.primary);
        if (!dep || !prim || topOf(dep) === topOf(prim)) continue;
        getOrInsert(links, topOf(dep).id, () => []).push({ other: topOf(prim), otherIsDependent: false });
        getOrInsert(links, topOf(prim).id, () => []).push({ other: topOf(dep), otherIsDependent: true });
      }
    }
    this.links = links;
    return links;
  }

  /**
   * What `unit` (a primitive, group or clone instance being placed) needs together with every
   * resource not placed yet that is mandatorily colocated with it, directly or through others.
   * Another clone counts as one instance. From a clone (other than the unit's own) the chain
   * does not go on to dependents that are not clones: Pacemaker cannot tell whether they will
   * share a node with this particular instance.
   */
  colocatedUtilization(unit: Res): Map<string, number> {
    const total = this.utilizationOf(primitivesOf(unit));
    const start = topOf(unit);
    const seen = new Set<Res>([start]);
    const stack: { r: Res; own: boolean }[] = [{ r: start, own: true }];
    for (let next = stack.pop(); next; next = stack.pop()) {
      for (const { other, otherIsDependent } of this.mandatoryLinks().get(next.r.id) ?? []) {
        if (seen.has(other)) continue;
        if (otherIsDependent && next.r.kind === 'clone' && !next.own && other.kind !== 'clone') continue;
        seen.add(other);
        if (!this.done.has(other.id)) {
          const prims =
            other.kind === 'clone' ? primitivesOf(other.children[0] ?? other) : primitivesOf(other);
          for (const [k, v] of this.utilizationOf(prims)) total.set(k, (total.get(k) ?? 0) + v);
        }
        stack.push({ r: other, own: false });
      }
    }
    return total;
  }

  /** A primitive's own utilization: the first value of each name over its sets, as configured. */
  private primitiveUtilization(p: Res): ReadonlyMap<string, number> {
    const cached = this.utilCache.get(p.id);
    if (cached) return cached;
    const out = new Map<string, number>();
    const ctx = { nodeAttrs: new Map<string, string>(), nowMs: this.input.u.options.nowMs };
    for (const [k, v] of flattenNvSets(p.def?.utilization ?? [], ctx))
      out.set(k, Number.parseInt(v, 10) || 0);
    this.utilCache.set(p.id, out);
    return out;
  }

  utilizationOf(prims: readonly Res[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const p of prims)
      for (const [k, v] of this.primitiveUtilization(p)) out.set(k, (out.get(k) ?? 0) + v);
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
    this.assignPrimariesFirst([r.baseId]);
    const t = this.primitiveTable(r);
    this.applyColocations(r.baseId, t, true);
    this.applyInfluence(r.baseId, t);
    this.tables.set(r.id, t);
    const cur = r.state.active.length === 1 ? r.state.active[0]!.node : undefined;
    const node = this.choose(t, cur, this.capacityNeeds(r, [r]));
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
    // The first member carries the group's colocations as well as its own.
    this.assignPrimariesFirst([g.baseId, members[0]!.baseId]);
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
    const node = this.choose(merged, cur, this.capacityNeeds(g, members));
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
    this.assignPrimariesFirst([c.baseId]);
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
    // Where an instance runs now: the first node of a multiply active one (Pacemaker's
    // current node), so it may stay there while its other copies are stopped.
    const curOf = (inst: Res): string | undefined => instancePrims(inst)[0]?.state.active[0]?.node;
    const activeCount = (inst: Res): number => instancePrims(inst)[0]?.state.active.length ?? 0;
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
    // (A node that is down is not a ban: an instance there whose own scores still allow that
    // node, had it been up, ranks before the inactive ones; one banned from it, after them.)
    const rank = (inst: Res): number => {
      const cur = curOf(inst);
      if (!cur) return 2;
      if (!this.available(cur))
        return instancePrims(inst).every((p) => this.primitiveTable(p, true, true).canRun(cur)) ? 1 : 3;
      return instTables.get(inst.id)!.table.canRun(cur) ? 0 : 3;
    };
    // Among instances that run, one on fewer nodes goes first (a multiply active one last).
    const ordered = [...c.children].sort(
      (x, y) =>
        rank(x) - rank(y) ||
        (activeCount(x) > 0 && activeCount(y) > 0 ? activeCount(x) - activeCount(y) : 0) ||
        x.order - y.order,
    );
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
      const exclude = (n: string): boolean => (perNode.get(n) ?? 0) >= cs.cloneNodeMax;
      // An instance whose node has no room left for it under a utilization strategy is placed
      // again with the others in pass 2.
      if (!this.hasRoom(table, cur, { exclude, ...this.capacityNeeds(inst, instancePrims(inst)) })) continue;
      const best = this.choose(table, cur, { exclude, preferCurrent: true });
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
          ...this.capacityNeeds(inst, instancePrims(inst)),
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
    const candidates: { inst: Res; node: string; score: number; wasPromoted: boolean; failed: boolean }[] =
      [];
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
        // Dependents' preferences only order instances that may be promoted at all.
        if (col.primaryRole !== 'Promoted' || score < 0) continue;
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
      // A failed instance is recovered first; Pacemaker still allows it to be promoted, but
      // prefers a healthy instance with the same score.
      const failed = prims.some((p) => p.state.active.some((a) => a.failed && a.node === node));
      candidates.push({ inst, node, score, wasPromoted, failed });
    }
    candidates.sort(
      (x, y) =>
        y.score - x.score ||
        Number(y.wasPromoted) - Number(x.wasPromoted) ||
        Number(x.failed) - Number(y.failed) ||
        x.inst.order - y.inst.order,
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
    const order = assignmentOrder(this.input.u.resources, {
      a: this,
      colocByDependent: this.input.colocByDependent,
      byConfiguredId: this.input.u.byConfiguredId,
      strategy: this.input.u.options.placementStrategy,
    });
    for (const r of order) this.ensureAssigned(r);
    return {
      placements: this.placements,
      tables: this.tables,
      promotion: this.promotion,
      order,
      notes: this.notes,
    };
  }
}

interface ChooseOpts {
  readonly exclude?: (node: string) => boolean;
  readonly secondary?: ((node: string) => number) | undefined;
  /** What the unit needs of each node capacity (utilization strategies only). */
  readonly utilization?: ReadonlyMap<string, number>;
  /** What the unit and the unplaced resources mandatorily colocated with it need together. */
  readonly colocatedUtilization?: ReadonlyMap<string, number>;
  /** Break score ties in favour of the current node (clone instances only, as Pacemaker does). */
  readonly preferCurrent?: boolean;
}

type Group = Res;

const NO_UTILIZATION: ReadonlyMap<string, number> = new Map();

/** -1 when node A has more of capacity `k` left than node B, 1 when less, else 0. */
function capacityVote(
  k: string,
  capA: ReadonlyMap<string, number>,
  usedA: ReadonlyMap<string, number>,
  capB: ReadonlyMap<string, number>,
  usedB: ReadonlyMap<string, number>,
): number {
  const x = capA.has(k) ? capA.get(k)! - (usedA.get(k) ?? 0) : 0;
  const y = capB.has(k) ? capB.get(k)! - (usedB.get(k) ?? 0) : 0;
  return x > y ? -1 : x < y ? 1 : 0;
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
