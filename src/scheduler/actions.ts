import { parseDuration } from '../cib/duration.ts';
import { isTrue } from '../cib/resources.ts';
import { INFINITY } from '../cib/score.ts';
import type { Assignment, Placement } from './assign.ts';
import { getOrInsert } from './collections.ts';
import type { ColocationEntry } from './colocation.ts';
import { naturalCompare, probeNodes } from './nodes.ts';
import type { OrderEntry } from './order.ts';
import { cloneAncestor, primitivesOf, type Res } from './resource_tree.ts';
import type { ActiveOn, Role } from './types.ts';
import { NO_UNFENCING, needsUnfencing, type UnfencePlan, waitsForUnfencing } from './unfencing.ts';
import type { Unpacked } from './unpack.ts';

/**
 * Stage: actions. Compares where each primitive is now with where the assignment puts it and
 * derives what must happen (start, stop, promote, demote, recover, restart), then applies
 * mandatory orders: a `then` whose `first` cannot act cannot act either, and a `then` that
 * stays put restarts when its `first` (re)starts.
 */
export interface Decision {
  readonly rsc: Res;
  /** Where it is active now (first entry when multiply active). */
  readonly current: ActiveOn | undefined;
  readonly next: Placement;
  /** Stopped and started again on the same node. */
  readonly restart: boolean;
  /** Why, in crm_simulate's words (`due to …`), when it is not the obvious cause. */
  readonly reason: string | undefined;
  /** The action cannot run (`blocked`). */
  readonly blocked: boolean;
  /** Moves by live migration (allow-migrate) instead of stop and start. */
  readonly migrate: boolean;
  /** Stays where it is but reloads its agent: only reloadable parameters changed. */
  readonly reload: boolean;
  /**
   * Finishes a partial live migration to `next.node`, where it already runs: `current` is the
   * migration's source, and only the stop there is left to do.
   */
  readonly continuesMigration: boolean;
  /** Blocked for no reason crm_simulate names, but still listed (`Start … blocked`). */
  readonly listBlocked?: boolean;
  /** Starts, but its promotion can't run (`Promote … (blocked)`): it stays unpromoted. */
  readonly promoteBlocked?: boolean;
}

/**
 * What an action does. `fence` runs the cluster's stonith-action (reboot or off) against
 * `node`; `unfence` runs the fence devices' `on` action for `node` (see unfencing.ts): the node
 * stays up and gets its access to shared storage back.
 */
export type Task = 'start' | 'stop' | 'promote' | 'demote' | 'monitor' | 'fence' | 'unfence' | 'shutdown';

export interface Action {
  readonly id: number;
  readonly task: Task;
  readonly node: string;
  readonly rsc?: string;
  readonly intervalMs?: number;
  /** A monitor with interval 0 run where the resource has no history. */
  readonly probe?: boolean;
  readonly role?: Role;
}

export interface Ordering {
  readonly before: number;
  readonly after: number;
  readonly why: string;
}

interface MutableDecision {
  rsc: Res;
  current: ActiveOn | undefined;
  next: Placement;
  restart: boolean;
  reason: string | undefined;
  blocked: boolean;
  migrate: boolean;
  reload: boolean;
  continuesMigration: boolean;
  listBlocked?: boolean;
  promoteBlocked?: boolean;
}

function isPromotable(r: Res): boolean {
  return cloneAncestor(r)?.clone?.promotable ?? false;
}

/** Pacemaker live-migrates a started, healthy primitive with allow-migrate between live nodes. */
function canMigrate(u: Unpacked, d: MutableDecision): boolean {
  const cur = d.current;
  if (!cur || !d.next.node || cur.node === d.next.node || cur.failed || d.blocked) return false;
  // After a partial migration, only that migration can be finished; moving elsewhere is a
  // stop and a start.
  const partial = d.rsc.state.partialMigration;
  if (partial && !d.continuesMigration) return false;
  // A source left over from an earlier migration must be stopped first: no new migration.
  if (d.rsc.state.danglingMigrationSources?.length) return false;
  if (!isTrue(d.rsc.meta.get('allow-migrate'))) return false;
  if (cloneAncestor(d.rsc) || cur.role !== 'Started' || d.next.role !== 'Started') return false;
  const from = u.nodeByName.get(cur.node);
  return from?.online === true && !from.unclean && !u.fence.has(cur.node);
}

/** Every resource needs quorum to start unless it says `requires=nothing`. */
function needsQuorum(r: Res): boolean {
  return r.meta.get('requires') !== 'nothing';
}

/** Decisions for every primitive, in summary order. */
export function decide(
  u: Unpacked,
  a: Assignment,
  orders: readonly OrderEntry[],
  colocations: readonly ColocationEntry[] = [],
  unfencing: UnfencePlan = NO_UNFENCING,
): Decision[] {
  const list: MutableDecision[] = [];
  const byId = new Map<string, MutableDecision>();
  const noQuorumStop =
    !u.options.haveQuorum && u.options.noQuorumPolicy !== 'ignore' && u.options.noQuorumPolicy !== 'freeze';
  const noQuorumFreeze = !u.options.haveQuorum && u.options.noQuorumPolicy === 'freeze';
  // no-quorum-policy=demote keeps promotable instances running, demoted; everything else stops.
  const noQuorumDemote = !u.options.haveQuorum && u.options.noQuorumPolicy === 'demote';
  for (const top of a.order) {
    for (const p of primitivesOf(top)) {
      const placed = a.placements.get(p.id) ?? { node: undefined, role: 'Stopped' as Role, fixed: false };
      // A copy of a multiply active resource on a node being fenced goes with the fencing: the
      // resource is judged by where else it runs.
      const surviving =
        p.state.active.length > 1 ? p.state.active.filter((a) => !u.fence.has(a.node)) : p.state.active;
      const actives = surviving.length > 0 ? surviving : p.state.active;
      // A partial live migration to the node chosen again is finished from its source.
      const continuing = continuesMigration(p, placed, actives);
      let current = continuing
        ? actives.find((a) => a.node === p.state.partialMigration?.source)
        : actives[0];
      // A blocked failure on a node that is fenced is resolved by the fencing, not recovered.
      if (current?.failed && p.state.blockedOn.includes(current.node) && u.fence.has(current.node)) {
        current = { ...current, failed: false };
      }
      const next: Placement =
        current && stopFailedOnUnfenceableNode(u, p, current.node)
          ? { node: current.node, role: current.role, fixed: true }
          : placed;
      const sameNode = current !== undefined && next.node === current.node;
      const d: MutableDecision = {
        rsc: p,
        current,
        next,
        restart:
          !next.fixed &&
          sameNode &&
          (current?.failed === true || actives.length > 1 || current?.leftByFailedMigration === true),
        reason: undefined,
        blocked: next.fixed,
        migrate: false,
        reload: false,
        continuesMigration: continuing,
      };
      if (current && !next.node && !next.fixed) d.reason = 'node availability';
      // multiple-active=stop_unexpected: recovering a failed, multiply active resource stops the
      // unexpected copies "due to being multiply active".
      if (
        d.restart &&
        p.state.active.length > 1 &&
        p.state.active.some((x) => x.failed) &&
        p.meta.get('multiple-active') === 'stop_unexpected'
      )
        d.reason = 'being multiply active';
      const change = current ? u.definitionChanges.get(p.id)?.get(current.node) : undefined;
      if (change && sameNode && !next.fixed && !d.restart && next.role !== 'Stopped') {
        if (change === 'reload') d.reload = true;
        else {
          d.restart = true;
          if (change === 'restart') d.reason = 'resource definition change';
        }
      }
      if (needsQuorum(p) && !next.fixed && next.node) {
        if (noQuorumDemote && isPromotable(p)) {
          if (current && next.node === current.node) {
            d.next = { ...next, role: 'Unpromoted' };
          } else if (!current) {
            d.blocked = true;
            d.reason = 'no quorum';
          } else {
            d.next = { ...next, node: undefined, role: 'Stopped' };
            d.reason = 'no quorum';
          }
        } else if (noQuorumStop) {
          if (current) {
            d.next = { ...next, node: undefined, role: 'Stopped' };
            d.restart = false;
            // On a node being fenced it goes with the node, quorum or not.
            d.reason = u.fence.has(current.node) ? 'node availability' : 'no quorum';
          } else {
            d.blocked = true;
            d.reason = 'no quorum';
          }
        } else if (noQuorumFreeze && !current) {
          // freeze: what runs keeps running (it may even move); nothing new starts.
          d.blocked = true;
          d.reason = 'quorum freeze';
        } else if (noQuorumFreeze && next.role === 'Promoted' && current?.role !== 'Promoted') {
          // Nor is anything raised to a higher role (Pacemaker: "cannot be elevated").
          d.next = { ...next, role: current?.role ?? next.role };
        }
      }
      // A start waits for probes everywhere; a node whose membership is pending can't probe yet.
      if (
        next.node &&
        !next.fixed &&
        !d.blocked &&
        (!current || current.node !== next.node) &&
        u.nodes.some((n) => n.pending && !p.state.known.has(n.name))
      ) {
        d.blocked = true;
        d.listBlocked = true;
      }
      if (current && !next.fixed && (next.node !== current.node || d.restart)) {
        const host = u.nodeByName.get(current.node);
        // Resources on a node that needs fencing but can't be fenced can't be stopped.
        if (host?.unclean && u.options.stonithEnabled && !u.fence.has(current.node)) {
          d.blocked = true;
        }
      }
      list.push(d);
      byId.set(p.id, d);
    }
  }
  restartForUnfencing(u, unfencing, list);
  for (const d of list) d.migrate = canMigrate(u, d);
  applyOrders(u, orders, byId);
  if (applyColocationStops(u, colocations, byId)) applyOrders(u, orders, byId);
  for (const d of list) d.migrate = d.migrate && canMigrate(u, d);
  blockMigrationsAfterStops(u, orders, byId);
  // A partial migration that cannot be finished after all is recovered like any resource
  // active on two nodes: stopped on both, started once.
  for (const d of list) {
    if (!d.continuesMigration || d.migrate) continue;
    d.continuesMigration = false;
    d.current = d.rsc.state.active[0];
    d.restart = d.current !== undefined && d.next.node === d.current.node;
  }
  return list;
}

/**
 * A stop that failed because the agent is missing (rc 5, not installed) on a node that must be
 * fenced but cannot be (without quorum, a node outside the partition) leaves the resource
 * blocked there, untouched, until the node is fenced or comes back: no stop can succeed there,
 * so none is scheduled (crm_simulate lists it as blocked and prints no action). A stop that
 * failed otherwise is still listed as a blocked stop.
 */
function stopFailedOnUnfenceableNode(u: Unpacked, p: Res, node: string): boolean {
  if (!u.options.stonithEnabled || u.fence.has(node) || !u.nodeByName.get(node)?.unclean) return false;
  return p.state.failures.some((f) => f.node === node && f.op === 'stop' && f.rc === RC_NOT_INSTALLED);
}

/** The OCF return code for "not installed". */
const RC_NOT_INSTALLED = 5;

/**
 * A node being unfenced gets its storage access back under everything that needs it: what
 * needs unfencing (and every fence device) and stays on that node is stopped before the
 * unfencing and started again after it, "due to required stonith" (the unfencing's own name).
 */
function restartForUnfencing(u: Unpacked, plan: UnfencePlan, list: readonly MutableDecision[]): void {
  if (plan.nodes.size === 0) return;
  for (const d of list) {
    const node = d.next.node;
    if (!node || !plan.nodes.has(node) || !waitsForUnfencing(u, d.rsc)) continue;
    if (d.restart || d.blocked || d.next.fixed || d.current?.node !== node || !willBeActive(d)) continue;
    d.restart = true;
    d.reload = false;
    d.reason = 'required stonith';
  }
}

/**
 * Whether `p`, caught between migrate_to and migrate_from, goes on to the migration's target:
 * it is active on both ends (see history's afterMigrateTo) and the target was chosen again.
 */
function continuesMigration(p: Res, next: Placement, actives: readonly ActiveOn[]): boolean {
  const m = p.state.partialMigration;
  if (!m || next.fixed || next.node !== m.target) return false;
  return actives.some((a) => a.node === m.source && !a.failed) && actives.some((a) => a.node === m.target);
}

/**
 * A live migration cannot follow a resource that really stops. With "A then B" (symmetrical), B
 * stops before A stops; a migrating B stops on its old node only after it has arrived on the new
 * one, where it must wait for A to start again, which waits for A's stop: a cycle. Pacemaker
 * breaks it by making B's migration unrunnable, so B moves by stop and start ("due to
 * unrunnable A stop"). The same holds inside a group, member by member. B moving the plain way
 * stops for real in turn, which may block the migration of what follows it.
 */
function blockMigrationsAfterStops(
  u: Unpacked,
  orders: readonly OrderEntry[],
  byId: Map<string, MutableDecision>,
): void {
  const pairs: { firsts: MutableDecision[]; firstId: string; thens: MutableDecision[] }[] = [];
  const primsOf = (id: string): MutableDecision[] => {
    const r = u.byConfiguredId.get(id);
    return r
      ? primitivesOf(r)
          .map((p) => byId.get(p.id))
          .filter((d): d is MutableDecision => d !== undefined)
      : [];
  };
  for (const o of orders) {
    if (o.kind !== 'Mandatory' || !o.symmetrical || o.firstAction !== 'start' || o.thenAction !== 'start')
      continue;
    // A clone's stop and start summarise its instances': the cycle runs through them only when
    // the clone both stops an instance and starts one (an instance moves).
    const firsts = primsOf(o.first);
    if (u.byConfiguredId.get(o.first)?.kind === 'clone' && !firsts.some(startsNow)) continue;
    pairs.push({ firsts, firstId: o.first, thens: primsOf(o.then) });
  }
  for (const r of u.byId.values()) {
    if (r.kind !== 'group') continue;
    for (let i = 1; i < r.children.length; i++) {
      const prev = byId.get(r.children[i - 1]!.id);
      const d = byId.get(r.children[i]!.id);
      if (prev && d) pairs.push({ firsts: [prev], firstId: prev.rsc.id, thens: [d] });
    }
  }
  for (let changed = true, rounds = 0; changed && rounds <= pairs.length; rounds++) {
    changed = false;
    for (const { firsts, firstId, thens } of pairs) {
      if (!firsts.some(stopsNow)) continue;
      for (const d of thens) {
        if (!d.migrate) continue;
        d.migrate = false;
        d.reason = `unrunnable ${firstId} stop`;
        changed = true;
      }
    }
  }
}

const willBeActive = (d: MutableDecision): boolean => d.next.node !== undefined && d.next.role !== 'Stopped';
const startsNow = (d: MutableDecision): boolean =>
  willBeActive(d) && !d.blocked && (d.current === undefined || d.current.node !== d.next.node || d.restart);
/** Has a real stop action (a live migration has none). */
const stopsNow = (d: MutableDecision): boolean =>
  d.current !== undefined &&
  !d.blocked &&
  !d.migrate &&
  (d.current.node !== d.next.node || d.restart || !willBeActive(d));

function applyOrders(u: Unpacked, orders: readonly OrderEntry[], byId: Map<string, MutableDecision>): void {
  const primsOf = (id: string): MutableDecision[] => {
    const r = u.byConfiguredId.get(id);
    if (!r) return [];
    return primitivesOf(r)
      .map((p) => byId.get(p.id))
      .filter((d): d is MutableDecision => d !== undefined);
  };
  const label = (id: string, action: string): string => {
    const r = u.byConfiguredId.get(id);
    if (r && r.kind !== 'primitive' && action === 'start') return `${id} running`;
    if (r && r.kind === 'clone' && action === 'promote') return `${id} promoted`;
    return `${id} ${action}`;
  };
  /** clone-min: the order is satisfied only once that many instances run. */
  const cloneMin = (id: string): number => {
    const r = u.byConfiguredId.get(id);
    return r?.kind === 'clone' ? Math.max(0, Number.parseInt(r.meta.get('clone-min') ?? '0', 10) || 0) : 0;
  };
  const firstRunnable = (o: OrderEntry): boolean => {
    const ds = primsOf(o.first);
    const min = cloneMin(o.first);
    if (min > 0 && o.firstAction === 'start') return ds.filter((d) => willBeActive(d)).length >= min;
    if (o.firstAction === 'start') {
      const ok = (d: MutableDecision): boolean =>
        willBeActive(d) && !(d.blocked && !d.current) && !(d.next.fixed && d.current?.failed);
      // A group is running only once every member is (a member left stopped blocks it).
      const r = u.byConfiguredId.get(o.first);
      if (r?.kind === 'group') return ds.length > 0 && ds.every(ok);
      // So is a cloned group's instance: the clone runs once one instance has every member up.
      if (r?.kind === 'clone' && r.children[0]?.kind === 'group') {
        return r.children.some((inst) =>
          inst.children.every((m) => {
            const d = byId.get(m.id);
            return d !== undefined && ok(d);
          }),
        );
      }
      return ds.some(ok);
    }
    if (o.firstAction === 'promote') return ds.some((d) => d.next.role === 'Promoted');
    return true;
  };
  // Clone-to-clone orders with interleave=true on the `then` clone pair instances node by node.
  const interleaved = (o: OrderEntry): boolean => {
    const f = u.byConfiguredId.get(o.first);
    const t = u.byConfiguredId.get(o.then);
    return (
      f?.kind === 'clone' &&
      t?.kind === 'clone' &&
      (t.clone?.interleave ?? false) &&
      o.anyOf === undefined &&
      cloneMin(o.first) === 0
    );
  };
  // Groups chain their members: each member needs the one before it.
  const limit = orders.length + byId.size + 1;
  for (let round = 0; round < limit; round++) {
    let changed = false;
    const anyOfOk = new Map<string, boolean>();
    for (const o of orders) {
      if (o.anyOf) anyOfOk.set(o.anyOf, (anyOfOk.get(o.anyOf) ?? false) || firstRunnable(o));
    }
    for (const o of orders) {
      if (o.kind !== 'Mandatory') {
        changed = applyRestartType(o, primsOf(o.first), primsOf(o.then), label) || changed;
        continue;
      }
      if (interleaved(o)) {
        changed = applyInterleaved(o, primsOf(o.first), primsOf(o.then)) || changed;
        continue;
      }
      const runnable = o.anyOf ? (anyOfOk.get(o.anyOf) ?? true) : firstRunnable(o);
      const thens = primsOf(o.then);
      if (!runnable && (o.thenAction === 'start' || o.thenAction === 'promote')) {
        for (const d of thens) {
          if (o.thenAction === 'promote') {
            if (d.next.role === 'Promoted') {
              d.next = { ...d.next, role: 'Unpromoted' };
              changed = true;
            }
            continue;
          }
          if (!willBeActive(d) || d.next.fixed || d.blocked) continue;
          if (!d.current) {
            const min = cloneMin(o.first) > 0 ? `clone-one-or-more:${o.id}` : undefined;
            d.reason = `unrunnable ${o.anyOf ?? min ?? label(o.first, o.firstAction)}`;
            d.blocked = true;
            changed = true;
            continue;
          }
          // A running `then` has to stop when the order is symmetrical (it must stop before its
          // `first` stops), or when it needs a start of its own (it moves or restarts).
          const needsStart = d.current.node !== d.next.node || d.restart;
          if (!o.symmetrical && !needsStart) continue;
          const first = u.byConfiguredId.get(o.first);
          // Stopped for reasons of its own (not an order): its dependents' starts are unrunnable. An
          // active instance that stops silently was taken down by an order itself.
          const firstOwn = primsOf(o.first).every((f) =>
            f.reason ? f.reason === 'node availability' : !f.current || willBeActive(f),
          );
          const firstActive = primsOf(o.first).some((f) => f.current !== undefined);
          // A `then` that was to move needs a start the order makes unrunnable; one that could
          // stay is stopped only because its `first` will not run.
          const movingPrimitive = first?.kind === 'primitive' && d.current.node !== d.next.node;
          const kind =
            !o.symmetrical || movingPrimitive
              ? 'unrunnable'
              : first?.kind === 'primitive'
                ? firstActive
                  ? 'required'
                  : 'unrunnable'
                : firstOwn
                  ? 'unrunnable'
                  : 'required';
          const oneOrMore = o.anyOf ?? (cloneMin(o.first) > 0 ? `clone-one-or-more:${o.id}` : undefined);
          d.reason = oneOrMore ? `unrunnable ${oneOrMore}` : `${kind} ${label(o.first, o.firstAction)}`;
          // After a group, inside a `then` group only the first member stops for the order; the
          // rest follow their predecessor (crm_simulate names the member before).
          const g = d.rsc.parent;
          const at = g?.kind === 'group' ? g.children.indexOf(d.rsc) : -1;
          if (at > 0 && first?.kind === 'group') d.reason = `required ${g!.children[at - 1]!.id} start`;
          // Required to stop by a running first that stops (not one that cannot run), the
          // member after the group's first is stopped with that member's stop; later ones each
          // follow their predecessor.
          else if (at > 0 && kind === 'required' && !oneOrMore)
            d.reason = `required ${g!.children[at - 1]!.id} ${at === 1 ? 'stop' : 'start'}`;
          d.next = { ...d.next, node: undefined, role: 'Stopped' };
          d.restart = false;
          changed = true;
        }
        continue;
      }
      if (o.firstAction === 'start' && o.thenAction === 'start' && o.symmetrical) {
        const first = u.byConfiguredId.get(o.first);
        const fs = primsOf(o.first);
        // A clone's dependents restart when any instance stops; others when the first restarts or moves.
        const isClone = first?.kind === 'clone';
        const stoppingOn = new Set(fs.filter((f) => stopsNow(f)).map((f) => f.current!.node));
        const trigger = isClone ? stoppingOn.size > 0 : fs.some((f) => startsNow(f) && !f.migrate);
        if (!trigger) continue;
        for (const d of thens) {
          if (d.restart || d.blocked || !d.current || d.current.node !== d.next.node || !willBeActive(d))
            continue;
          if (isClone && (!stoppingOn.has(d.current.node) || cloneAncestor(d.rsc))) continue;
          d.restart = true;
          d.reason = `required ${label(o.first, 'start')}`;
          changed = true;
        }
      }
    }
    changed = applyGroupChains(u, byId) || changed;
    if (!changed) break;
  }
  // A `then` that is stuck (blocked after a failure) keeps its symmetrical `first` from stopping.
  const stuck = (d: MutableDecision): boolean =>
    d.next.fixed && d.current !== undefined && d.rsc.state.blocked;
  for (const o of orders) {
    if (o.kind !== 'Mandatory') continue;
    // Which resource's stop has to wait for which one's.
    let before: string | undefined;
    let after: string | undefined;
    if (o.symmetrical && o.firstAction === 'start' && o.thenAction === 'start')
      [before, after] = [o.then, o.first];
    else if (o.firstAction === 'stop' && o.thenAction === 'stop') [before, after] = [o.first, o.then];
    if (!before || !after || !primsOf(before).some(stuck)) continue;
    for (const f of primsOf(after)) if (stopsNow(f)) f.blocked = true;
  }
  for (const r of u.byId.values()) {
    if (r.kind !== 'group') continue;
    // Group members stop in reverse order: a stuck member holds up the ones before it.
    const ds = r.children.map((m) => byId.get(m.id)).filter((d): d is MutableDecision => d !== undefined);
    const lastStuck = ds.findLastIndex(stuck);
    let firstHeld: number | undefined;
    for (let i = 0; i < lastStuck; i++) {
      const d = ds[i]!;
      if (!stopsNow(d)) continue;
      d.blocked = true;
      // Its stop can't run, so neither can its start (elsewhere, or again here): it is listed as
      // a blocked stop. The first member held back names the stop after it; the later ones
      // name the member before them.
      const moves = d.current !== undefined && d.next.node !== d.current.node;
      if (d.current && (moves || d.restart) && (!d.reason || d.reason.startsWith('required '))) {
        d.reason =
          firstHeld === undefined
            ? `unrunnable ${ds[i + 1]!.rsc.id} stop`
            : `required ${ds[i - 1]!.rsc.id} stop`;
        d.next = { ...d.next, node: undefined, role: 'Stopped' };
        d.restart = false;
      }
      firstHeld ??= i;
    }
  }
}

/** Whether an order (not its own placement) keeps this primitive from running. */
const stoppedByOrder = (d: MutableDecision): boolean =>
  !willBeActive(d) &&
  d.reason !== undefined &&
  (d.reason.startsWith('unrunnable') ||
    d.reason.startsWith('required') ||
    d.reason.startsWith('colocation with'));

/**
 * A mandatory colocation whose primary an order keeps from running (after placement) takes its
 * dependent down with it: `Stop … due to colocation with PRIMARY`.
 */
function applyColocationStops(
  u: Unpacked,
  colocations: readonly ColocationEntry[],
  byId: Map<string, MutableDecision>,
): boolean {
  const primsOf = (id: string): MutableDecision[] => {
    const r = u.byConfiguredId.get(id);
    if (!r) return [];
    return primitivesOf(r)
      .map((p) => byId.get(p.id))
      .filter((d): d is MutableDecision => d !== undefined);
  };
  let any = false;
  for (let round = 0; round <= colocations.length; round++) {
    let changed = false;
    for (const c of colocations) {
      if (c.score >= INFINITY && c.dependentRole === 'Promoted' && c.primaryRole === undefined) {
        changed = blockPromotions(c, primsOf(c.primary), primsOf(c.dependent)) || changed;
        continue;
      }
      if (c.score < INFINITY || c.dependentRole !== undefined || c.primaryRole !== undefined) continue;
      if (c.nodeAttribute !== '#uname' || u.byConfiguredId.get(c.dependent)?.kind === 'clone') continue;
      const primaries = primsOf(c.primary);
      if (!primaries.some(stoppedByOrder)) continue;
      const staying = new Set(primaries.filter((p) => willBeActive(p) && !p.blocked).map((p) => p.next.node));
      for (const d of primsOf(c.dependent)) {
        // Stopped by an order on the same primary: the colocation is what crm_simulate names.
        const m = d.reason ? /^(?:required|unrunnable) (\S+) (?:start|running)$/.exec(d.reason) : null;
        // (When the primary itself could not start at all, the order keeps its own words.)
        const primaryUnrunnable = primaries.every((p) => p.reason?.startsWith('unrunnable'));
        if (m && m[1] === c.primary && d.current && !willBeActive(d) && !primaryUnrunnable) {
          d.reason = `colocation with ${c.primary}`;
          continue;
        }
        if (!willBeActive(d) || d.next.fixed || d.blocked || staying.has(d.next.node)) continue;
        d.reason = `colocation with ${c.primary}`;
        if (d.current) {
          d.next = { ...d.next, node: undefined, role: 'Stopped' };
          d.restart = false;
        } else d.blocked = true;
        changed = true;
      }
    }
    any = any || changed;
    if (!changed) break;
  }
  return any;
}

/**
 * A promotion that must be where its primary runs can't happen when that primary can't start:
 * `Promote … due to colocation with PRIMARY (blocked)`.
 */
function blockPromotions(
  c: ColocationEntry,
  primaries: readonly MutableDecision[],
  dependents: readonly MutableDecision[],
): boolean {
  const cannotRun = (p: MutableDecision): boolean => !willBeActive(p) || (p.blocked && !p.current);
  if (primaries.length === 0 || !primaries.every(cannotRun)) return false;
  let changed = false;
  for (const d of dependents) {
    if (d.next.role !== 'Promoted' || d.current || d.blocked || d.promoteBlocked || d.next.fixed) continue;
    d.promoteBlocked = true;
    d.reason = `colocation with ${c.primary}`;
    changed = true;
  }
  return changed;
}

/**
 * The legacy `restart-type=restart` meta-attribute of a `then` resource: even an optional order
 * makes its `then` action required whenever its `first` action happens (a start, or a real
 * stop). A `then` that stays where it runs gets that action as part of a restart: `start`
 * then `start` restarts it when its first (re)starts, `stop` then `stop` when its first stops.
 */
function applyRestartType(
  o: OrderEntry,
  firsts: readonly MutableDecision[],
  thens: readonly MutableDecision[],
  label: (id: string, action: string) => string,
): boolean {
  const happens =
    o.firstAction === 'start'
      ? firsts.some((f) => startsNow(f) && !f.migrate)
      : o.firstAction === 'stop' && firsts.some(stopsNow);
  if (!happens || (o.thenAction !== 'start' && o.thenAction !== 'stop')) return false;
  let changed = false;
  for (const d of thens) {
    if (d.rsc.meta.get('restart-type') !== 'restart') continue;
    if (d.restart || d.blocked || !d.current || d.current.node !== d.next.node || !willBeActive(d)) continue;
    d.restart = true;
    // A required stop gives the restart no reason of its own (crm_simulate names the start's).
    d.reason = o.thenAction === 'start' ? `required ${label(o.first, o.firstAction)}` : undefined;
    changed = true;
  }
  return changed;
}

/**
 * An interleaved clone order: each `then` instance needs the `first` instance on its own node,
 * and restarts only when that instance (re)starts.
 */
function applyInterleaved(
  o: OrderEntry,
  firsts: readonly MutableDecision[],
  thens: readonly MutableDecision[],
): boolean {
  let changed = false;
  const instanceOf = (d: MutableDecision): Res => (d.rsc.parent?.kind === 'group' ? d.rsc.parent : d.rsc);
  for (const d of thens) {
    if (d.blocked || d.next.fixed) continue;
    const node = d.next.node;
    if (!node || !willBeActive(d)) continue;
    // Only an instance placed on the same node constrains this one.
    const placedHere = firsts.filter((f) => f.next.node === node);
    if (placedHere.length === 0) {
      // The first's instance on this node is going away: a running `then` goes with it.
      const leaving = firsts.find((f) => f.current?.node === node && stopsNow(f));
      if (
        leaving &&
        d.current?.node === node &&
        o.symmetrical &&
        o.firstAction === 'start' &&
        o.thenAction === 'start'
      ) {
        // crm_simulate names the first only when an order (not its own placement) stopped it.
        const ordered = leaving.reason?.startsWith('unrunnable') || leaving.reason?.startsWith('required');
        d.reason = ordered ? `required ${instanceOf(leaving).id} start` : undefined;
        d.next = { ...d.next, node: undefined, role: 'Stopped' };
        d.restart = false;
        changed = true;
      } else if (!d.current && o.firstAction === 'start' && o.thenAction === 'start') {
        // No instance of the first clone here: this instance can't start (silently).
        d.blocked = true;
        changed = true;
      }
      continue;
    }
    const there = placedHere.filter((f) => willBeActive(f) && !(f.blocked && !f.current));
    if (
      o.firstAction === 'start' &&
      o.thenAction === 'start' &&
      there.length === 0 &&
      !d.current &&
      placedHere.every((f) => f.blocked && !f.reason && !f.current && !f.listBlocked)
    ) {
      // The instance it needs was silently held back: so is this one.
      d.blocked = true;
      changed = true;
      continue;
    }
    if (o.firstAction === 'start' && o.thenAction === 'start' && there.length === 0) {
      const label = `${instanceOf(placedHere[0]!).id} start`;
      const firstActive = placedHere.some((f) => f.current !== undefined);
      d.reason = `${d.current && firstActive ? 'required' : 'unrunnable'} ${label}`;
      if (d.current) {
        if (!o.symmetrical) continue;
        d.next = { ...d.next, node: undefined, role: 'Stopped' };
        d.restart = false;
      } else d.blocked = true;
      changed = true;
      continue;
    }
    if (o.firstAction !== 'start' || o.thenAction !== 'start' || !o.symmetrical) continue;
    const trigger = there.find((f) => startsNow(f) && !f.migrate);
    if (!trigger || d.restart || !d.current || d.current.node !== node) continue;
    d.restart = true;
    d.reason = `required ${instanceOf(trigger).id} start`;
    changed = true;
  }
  return changed;
}

/** Inside a group a member restarts when the member before it (re)starts on the same node. */
function applyGroupChains(u: Unpacked, byId: Map<string, MutableDecision>): boolean {
  let changed = false;
  for (const r of u.byId.values()) {
    if (r.kind !== 'group') continue;
    for (let i = 1; i < r.children.length; i++) {
      const prev = byId.get(r.children[i - 1]!.id);
      const d = byId.get(r.children[i]!.id);
      if (!prev || !d || !startsNow(prev)) continue;
      if (!d.restart && !d.blocked && d.current && d.current.node === d.next.node && willBeActive(d)) {
        d.restart = true;
        d.reason = `required ${prev.rsc.id} start`;
        changed = true;
      }
    }
  }
  return changed;
}

// ---------------------------------------------------------------------------------------------
// Summary lines

export interface SummaryLine {
  readonly verb: string;
  readonly rsc: string;
  readonly details: string;
  readonly suffix: string;
}

function roleDetail(r: Res, role: Role): boolean {
  return isPromotable(r) && (role === 'Promoted' || role === 'Unpromoted');
}

/** Summary lines for one decision: one per node when a multiply active resource stops everywhere. */
export function summaryLines(d: Decision): SummaryLine[] {
  const active = d.rsc.state.active;
  if (active.length > 1 && !d.next.fixed && (!d.next.node || d.next.role === 'Stopped')) {
    return active.map((a) => ({
      verb: 'Stop',
      rsc: d.rsc.id,
      details: a.node,
      suffix: 'due to node availability',
    }));
  }
  const l = summaryLine(d);
  return l ? [l] : [];
}

/** The Transition Summary line for one decision, if anything happens to it. */
export function summaryLine(d: Decision): SummaryLine | undefined {
  const { rsc, current: cur, next } = d;
  const reason = d.reason ? `due to ${d.reason}` : '';
  const blocked = d.blocked || d.promoteBlocked ? (reason ? ' (blocked)' : 'blocked') : '';
  const suffix = `${reason}${blocked}`;
  const line = (verb: string, details: string): SummaryLine => ({ verb, rsc: rsc.id, details, suffix });
  if (d.blocked && !d.reason && !d.listBlocked && (d.next.fixed || !cur)) return undefined;
  if (!cur) {
    if (!next.node || next.role === 'Stopped') return undefined;
    if (next.role === 'Promoted') {
      // Lost quorum is the reason on the start; the promote line only says it is blocked.
      if (d.reason === 'no quorum' && d.blocked)
        return {
          verb: 'Promote',
          rsc: rsc.id,
          details: `Stopped -> Promoted ${next.node}`,
          suffix: 'blocked',
        };
      return line('Promote', `Stopped -> Promoted ${next.node}`);
    }
    return line('Start', next.node);
  }
  if (!next.node || next.role === 'Stopped') {
    return line('Stop', roleDetail(rsc, cur.role) ? `${cur.role} ${cur.node}` : cur.node);
  }
  // A move whose actions can't run is summarised by the stop it would begin with (crm_simulate
  // never prints a blocked Move, Recover or Migrate).
  if (cur.node !== next.node && d.blocked) {
    return line('Stop', roleDetail(rsc, cur.role) ? `${cur.role} ${cur.node}` : cur.node);
  }
  if (cur.node !== next.node) {
    const verb = cur.failed ? 'Recover' : d.migrate ? 'Migrate' : 'Move';
    if (cur.role === next.role) {
      return line(
        verb,
        roleDetail(rsc, cur.role) && cur.role !== 'Started'
          ? `${cur.node} -> ${next.node} ${cur.role}`
          : `${cur.node} -> ${next.node}`,
      );
    }
    return line(verb, `${cur.role} ${cur.node} -> ${next.role} ${next.node}`);
  }
  const roleChange = cur.role !== next.role;
  if (d.restart) {
    // A resource that failed on any of its nodes is recovered, wherever it restarts.
    const verb = cur.failed || rsc.state.active.some((a) => a.failed) ? 'Recover' : 'Restart';
    if (roleChange) return line(verb, `${cur.role} -> ${next.role} ${next.node}`);
    return line(verb, roleDetail(rsc, cur.role) ? `${cur.role} ${next.node}` : next.node);
  }
  if (roleChange) {
    if (next.role === 'Promoted') return line('Promote', `${cur.role} -> Promoted ${next.node}`);
    if (cur.role === 'Promoted') return line('Demote', `Promoted -> ${next.role} ${next.node}`);
  }
  if (d.reload && !d.blocked) {
    return {
      verb: 'Reload',
      rsc: rsc.id,
      details: roleDetail(rsc, cur.role) ? `${cur.role} ${next.node}` : next.node,
      suffix: '',
    };
  }
  return undefined;
}

/**
 * Formats lines as crm_simulate aligns them: fencing first (reboots and unfencings together, by
 * node name from the last), then the resources.
 */
export function formatSummary(
  fence: ReadonlyMap<string, string>,
  lines: readonly SummaryLine[],
  stonithAction: string,
  unfence: ReadonlyMap<string, string> = new Map(),
): string[] {
  const out: string[] = [];
  const fencing = [
    ...[...fence].map(([node, reason]) => ({ node, action: stonithAction, reason })),
    ...[...unfence].map(([node, reason]) => ({ node, action: 'on', reason })),
  ];
  fencing.sort((a, b) => naturalCompare(b.node, a.node));
  for (const f of fencing) out.push(`  * Fence (${f.action}) ${f.node} '${f.reason}'`);
  const idw = Math.max(0, ...lines.map((l) => l.rsc.length));
  const dw = Math.max(0, ...lines.map((l) => l.details.length));
  for (const l of lines) {
    const text = `  * ${l.verb.padEnd(10)} ${l.rsc.padEnd(idw + 4)} ( ${l.details.padStart(dw)} )${l.suffix ? `  ${l.suffix}` : ''}`;
    out.push(text);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Actions and orderings

function recurringMonitors(r: Res, role: Role): { intervalMs: number }[] {
  const out: { intervalMs: number }[] = [];
  for (const op of r.def?.operations ?? []) {
    if (op.name !== 'monitor') continue;
    const d = parseDuration(op.interval);
    if (!d.ok || d.ms === 0) continue;
    if (op.enabled !== undefined && op.enabled.toLowerCase() === 'false') continue;
    const opRole = op.role === 'Master' ? 'Promoted' : op.role === 'Slave' ? 'Unpromoted' : op.role;
    if (opRole !== undefined && opRole !== role && !(opRole === 'Started' && role !== 'Promoted')) continue;
    if (opRole === undefined && role === 'Promoted' && isPromotable(r)) {
      // The unqualified monitor applies to every role except where a Promoted one exists.
      if (
        (r.def?.operations ?? []).some(
          (o) => o.name === 'monitor' && (o.role === 'Promoted' || o.role === 'Master'),
        )
      )
        continue;
    }
    out.push({ intervalMs: d.ms });
  }
  return out;
}

export interface Graph {
  readonly actions: readonly Action[];
  readonly orderings: readonly Ordering[];
}

/** Stage: the transition graph (actions and the orderings between them). */
export function buildGraph(
  u: Unpacked,
  decisions: readonly Decision[],
  orders: readonly OrderEntry[],
  unfencing: UnfencePlan = NO_UNFENCING,
): Graph {
  const actions: Action[] = [];
  const orderings: Ordering[] = [];
  const add = (a: Omit<Action, 'id'>): number => {
    const id = actions.length;
    actions.push({ ...a, id });
    return id;
  };
  const fenceIds = new Map<string, number>();
  for (const n of [...u.fence.keys()].sort(naturalCompare)) fenceIds.set(n, add({ task: 'fence', node: n }));
  const unfenceIds = new Map<string, number>();
  for (const n of [...unfencing.nodes.keys()].sort(naturalCompare))
    unfenceIds.set(n, add({ task: 'unfence', node: n }));
  /** The unfencing of `node` that `r`'s probe or start there waits for, if any. */
  const unfenceBefore = (r: Res, node: string): number | undefined =>
    unfenceIds.size > 0 && waitsForUnfencing(u, r) ? unfenceIds.get(node) : undefined;
  /** Orders a stop of `r` on `node` before that node's unfencing, when `r` needs unfencing. */
  const stopBeforeUnfence = (r: Res, node: string, stopId: number): void => {
    const unfence = unfenceIds.size > 0 && needsUnfencing(u, r) ? unfenceIds.get(node) : undefined;
    if (unfence !== undefined)
      orderings.push({ before: stopId, after: unfence, why: `stop before unfencing ${node}` });
  };
  const startOf = new Map<string, number>();
  const stopOf = new Map<string, number>();
  /** Stops of a multiply active resource's other copies. */
  const extraStopsOf = new Map<string, number[]>();
  const promoteOf = new Map<string, number>();
  const demoteOf = new Map<string, number>();
  for (const d of decisions) {
    const r = d.rsc;
    if (d.next.fixed) continue;
    const probes = r.orphan
      ? []
      : probeNodes(u.nodes, r).map((node) => {
          const id = add({ task: 'monitor', node, rsc: r.id, intervalMs: 0, probe: true });
          const unfence = unfenceBefore(r, node);
          if (unfence !== undefined)
            orderings.push({ before: unfence, after: id, why: `unfence ${node} first` });
          return id;
        });
    const cur = d.current;
    const next = d.next;
    // The source of a finished migration that was never stopped is stopped now, like another
    // copy of the resource (before any start of it).
    for (const node of r.state.danglingMigrationSources ?? []) {
      if (node === cur?.node) continue;
      const id = add({ task: 'stop', node, rsc: r.id });
      stopBeforeUnfence(r, node, id);
      getOrInsert(extraStopsOf, r.id, () => []).push(id);
    }
    const moving = cur !== undefined && (next.node !== cur.node || d.restart || next.role === 'Stopped');
    let stopId: number | undefined;
    // What a failed migration may have left on its target is started there again, not stopped.
    const startOnly = cur?.leftByFailedMigration === true && next.node === cur.node;
    if (cur && moving && !d.blocked && !startOnly) {
      const demoteId =
        cur.role === 'Promoted' ? add({ task: 'demote', node: cur.node, rsc: r.id }) : undefined;
      stopId = add({ task: 'stop', node: cur.node, rsc: r.id });
      stopOf.set(r.id, stopId);
      stopBeforeUnfence(r, cur.node, stopId);
      if (demoteId !== undefined) {
        demoteOf.set(r.id, demoteId);
        orderings.push({ before: demoteId, after: stopId, why: 'demote before stop' });
      }
      const f = fenceIds.get(cur.node);
      if (f !== undefined) {
        orderings.push({ before: f, after: stopId, why: `fencing ${cur.node} implies the stop` });
        if (demoteId !== undefined)
          orderings.push({ before: f, after: demoteId, why: `fencing ${cur.node} implies the demote` });
      }
      // A multiply active resource is stopped everywhere it runs before it starts again
      // (copies on nodes being fenced go with the fencing); a finished partial migration keeps
      // the copy on its target.
      for (const other of r.state.active) {
        if (other.node === cur.node || u.fence.has(other.node)) continue;
        if (d.continuesMigration && other.node === next.node) continue;
        const extra = add({ task: 'stop', node: other.node, rsc: r.id });
        stopBeforeUnfence(r, other.node, extra);
        getOrInsert(extraStopsOf, r.id, () => []).push(extra);
      }
    }
    if (d.continuesMigration && next.node) {
      // The resource already runs on the target: it only gets its recurring monitors there.
      for (const m of recurringMonitors(r, next.role)) {
        const id = add({ task: 'monitor', node: next.node, rsc: r.id, intervalMs: m.intervalMs });
        if (stopId !== undefined) orderings.push({ before: stopId, after: id, why: 'migration finished' });
      }
    } else if (next.node && next.role !== 'Stopped' && (!cur || moving) && !d.blocked) {
      const startId = add({ task: 'start', node: next.node, rsc: r.id });
      startOf.set(r.id, startId);
      if (stopId !== undefined) orderings.push({ before: stopId, after: startId, why: 'stop before start' });
      for (const extra of extraStopsOf.get(r.id) ?? [])
        orderings.push({ before: extra, after: startId, why: 'stop every copy before start' });
      for (const p of probes) orderings.push({ before: p, after: startId, why: 'probe before start' });
      const unfence = unfenceBefore(r, next.node);
      if (unfence !== undefined)
        orderings.push({ before: unfence, after: startId, why: `unfence ${next.node} first` });
      if (cur) {
        const f = fenceIds.get(cur.node);
        if (f !== undefined)
          orderings.push({ before: f, after: startId, why: `${cur.node} must be fenced first` });
      }
      let last = startId;
      if (next.role === 'Promoted' && !d.promoteBlocked) {
        last = add({ task: 'promote', node: next.node, rsc: r.id });
        promoteOf.set(r.id, last);
        orderings.push({ before: startId, after: last, why: 'start before promote' });
      }
      for (const m of recurringMonitors(r, d.promoteBlocked ? 'Unpromoted' : next.role)) {
        const id = add({ task: 'monitor', node: next.node, rsc: r.id, intervalMs: m.intervalMs });
        orderings.push({ before: last, after: id, why: 'monitor after start' });
      }
    } else if (cur && next.node === cur.node && cur.role !== next.role) {
      const task = next.role === 'Promoted' ? 'promote' : 'demote';
      const id = add({ task, node: next.node, rsc: r.id });
      (task === 'promote' ? promoteOf : demoteOf).set(r.id, id);
      for (const m of recurringMonitors(r, next.role)) {
        orderings.push({
          before: id,
          after: add({ task: 'monitor', node: next.node, rsc: r.id, intervalMs: m.intervalMs }),
          why: `monitor after ${task}`,
        });
      }
    }
  }
  const ids = (id: string, map: Map<string, number>): number[] => {
    const r = u.byConfiguredId.get(id);
    if (!r) return [];
    return primitivesOf(r).flatMap((p) => {
      const action = map.get(p.id);
      const own = action !== undefined ? [action] : [];
      // An order on a multiply active resource's stop holds for the stop of every copy.
      return map === stopOf ? [...own, ...(extraStopsOf.get(p.id) ?? [])] : own;
    });
  };
  // Every order becomes edges between the actions it names (`ms_drbd:promote` then
  // `g_all:start`), and a symmetrical order also gets its inverse (`g_all:stop` then
  // `ms_drbd:demote`), as Pacemaker's graph has them.
  const byTask: Readonly<Record<string, Map<string, number>>> = {
    start: startOf,
    stop: stopOf,
    promote: promoteOf,
    demote: demoteOf,
  };
  const inverse: Readonly<Record<string, string>> = {
    start: 'stop',
    stop: 'start',
    promote: 'demote',
    demote: 'promote',
  };
  const link = (first: string, fa: string, then: string, ta: string, why: string): void => {
    const fm = byTask[fa];
    const tm = byTask[ta];
    if (!fm || !tm) return;
    for (const b of ids(first, fm))
      for (const a of ids(then, tm)) orderings.push({ before: b, after: a, why });
  };
  for (const o of orders) {
    link(o.first, o.firstAction, o.then, o.thenAction, `order ${o.id}`);
    const fi = inverse[o.thenAction];
    const ti = inverse[o.firstAction];
    if (o.symmetrical && fi && ti) link(o.then, fi, o.first, ti, `order ${o.id} (symmetrical)`);
  }
  for (const r of u.byId.values()) {
    if (r.kind !== 'group') continue;
    for (let i = 1; i < r.children.length; i++) {
      const prev = r.children[i - 1]!.id;
      const cur = r.children[i]!.id;
      const s1 = startOf.get(prev);
      const s2 = startOf.get(cur);
      if (s1 !== undefined && s2 !== undefined)
        orderings.push({ before: s1, after: s2, why: `group ${r.id} order` });
      const t1 = stopOf.get(cur);
      const t2 = stopOf.get(prev);
      if (t1 !== undefined && t2 !== undefined)
        orderings.push({ before: t1, after: t2, why: `group ${r.id} order` });
    }
  }
  return { actions, orderings };
}

/** Actions in an order that respects every ordering (Kahn's algorithm, ties by id). */
export function topoSort(g: Graph): Action[] {
  const indeg = new Array<number>(g.actions.length).fill(0);
  const out = new Map<number, number[]>();
  for (const o of g.orderings) {
    indeg[o.after] = (indeg[o.after] ?? 0) + 1;
    getOrInsert(out, o.before, () => []).push(o.after);
  }
  const ready: number[] = [];
  for (let i = 0; i < indeg.length; i++) if (indeg[i] === 0) ready.push(i);
  const result: Action[] = [];
  const seen = new Set<number>();
  for (let head = 0; head < ready.length; head++) {
    const id = ready[head]!;
    seen.add(id);
    result.push(g.actions[id]!);
    for (const n of out.get(id) ?? []) {
      indeg[n] = (indeg[n] ?? 0) - 1;
      if (indeg[n] === 0) ready.push(n);
    }
  }
  // A cycle (conflicting orders) leaves actions unsorted; append them in id order.
  for (const a of g.actions) if (!seen.has(a.id)) result.push(a);
  return result;
}
