import { addScores, INFINITY, MINUS_INFINITY } from '../cib/score.ts';
import type { Assigner } from './assign.ts';
import type { ColocationEntry } from './colocation.ts';
import { cloneAncestor, primitivesOf, type Res } from './resource_tree.ts';
import type { NodeInfo } from './types.ts';

/**
 * The order resources are assigned in under a utilization placement strategy (Pacemaker's
 * cmp_resources): highest priority first; then the highest score on the node the resource runs
 * on now, so running resources keep their nodes before others take the room; then the highest
 * score on each node in turn, best node first. With the default strategy only priority counts.
 *
 * The scores are the ones the resource starts from, before nodes are ruled out for being
 * unavailable: its location preferences, stickiness and failures, merged with the scores of the
 * resources it is colocated with, which do take availability into account. So a resource whose
 * mandatory partner cannot run where it is now (that node left the cluster) goes after one that
 * merely sits on that node.
 */

/** What the order is worked out from (the assigner supplies the node criteria and tables). */
export interface OrderInput {
  readonly a: Assigner;
  readonly colocByDependent: ReadonlyMap<string, readonly ColocationEntry[]>;
  readonly byConfiguredId: ReadonlyMap<string, Res>;
  readonly strategy: 'default' | 'utilization' | 'minimal' | 'balanced';
}

/** Node scores: a node missing from the map is not allowed (scores -INFINITY). */
type Scores = Map<string, number>;

/**
 * Top-level resources in assignment order. Reads only what nothing has been placed yet leaves
 * unchanged (starting scores, node capacities), so it must run before any assignment.
 */
export function assignmentOrder(resources: readonly Res[], input: OrderInput): Res[] {
  // Nothing is placed yet, so the node order is the same for every resource.
  const nodes = input.strategy === 'default' ? [] : nodeOrder(input);
  const keyed = resources.map((r, i) => ({ r, i, k: sortKey(r, nodes, input) }));
  keyed.sort((x, y) => {
    for (let j = 0; j < Math.max(x.k.length, y.k.length); j++) {
      const a = x.k[j] ?? 0;
      const b = y.k[j] ?? 0;
      if (a !== b) return b - a;
    }
    return x.i - y.i;
  });
  return keyed.map((x) => x.r);
}

function sortKey(r: Res, nodes: readonly NodeInfo[], input: OrderInput): number[] {
  if (input.strategy === 'default') return [r.priority];
  const scores = ownScores(r, input);
  const cur = currentNode(r);
  const key = [r.priority, cur !== undefined ? (scores.get(cur) ?? MINUS_INFINITY) : MINUS_INFINITY];
  for (const n of nodes) key.push(scores.get(n.name) ?? MINUS_INFINITY);
  return key;
}

/** Where `r` runs now: its first primitive with an active instance. */
function currentNode(r: Res): string | undefined {
  return primitivesOf(r).find((p) => p.state.active.length > 0)?.state.active[0]?.node;
}

/**
 * The nodes in the order their scores are compared: available nodes first, then (balanced) the
 * node with more capacity, then the name.
 */
function nodeOrder(input: OrderInput): NodeInfo[] {
  const { a } = input;
  const nodes = [...a.nodes];
  const rank = (n: NodeInfo): number => (a.available(n.name) ? 0 : 1);
  return nodes
    .map((n, i) => ({ n, i }))
    .sort(
      (x, y) =>
        rank(x.n) - rank(y.n) ||
        (input.strategy === 'balanced' ? a.compareCapacity(x.n.name, y.n.name) : 0) ||
        x.i - y.i,
    )
    .map((x) => x.n);
}

/** A resource's starting scores, before availability (see the module comment). */
function rawScores(r: Res, a: Assigner): Scores {
  // A clone goes by its own scores: its instances' stickiness is not among them.
  const t = a.primitiveTable(r, cloneAncestor(r) === undefined, true);
  const out: Scores = new Map();
  for (const n of a.nodes) if (t.isAllowed(n.name)) out.set(n.name, t.get(n.name));
  return out;
}

/** The resource's own scores merged with those of the resources it is colocated with. */
function ownScores(r: Res, input: OrderInput): Scores {
  const visiting = new Set<Res>([r]);
  if (r.kind === 'group' && r.children.length > 0) {
    // A group goes by its last member, which is colocated with the one before it, and so on
    // back to the first member, which carries the group's own colocations.
    const members = r.children;
    let work = rawScores(members[members.length - 1]!, input.a);
    for (let i = members.length - 2; i >= 0; i--) {
      work = mergePrimary(work, rawScores(members[i]!, input.a), 1, '#uname', input.a) ?? work;
    }
    const ids = [r.baseId, ...members.map((m) => m.baseId)];
    return mergeColocations(work, ids, 1, input, visiting);
  }
  if (r.kind === 'clone') {
    // A clone's constraints may name it or what it clones.
    const child = r.children[0];
    const ids = [r.baseId, ...(child ? [child.baseId, ...child.children.map((m) => m.baseId)] : [])];
    return mergeColocations(primaryScores(r, input.a), ids, 1, input, visiting);
  }
  return mergeColocations(rawScores(r, input.a), [r.baseId], 1, input, visiting);
}

/**
 * Merges, for each colocation whose dependent is one of `ids`, the primary's scores scaled by
 * the colocation's score; then the primary's own colocations, further scaled. A merge that would
 * leave the resource no node it could run on is dropped, as Pacemaker drops it.
 */
function mergeColocations(
  work: Scores,
  ids: readonly string[],
  factor: number,
  input: OrderInput,
  visiting: Set<Res>,
): Scores {
  let out = work;
  for (const id of ids) {
    for (const c of input.colocByDependent.get(id) ?? []) {
      const primary = input.byConfiguredId.get(c.primary);
      if (!primary || visiting.has(primary) || c.score === 0) continue;
      const f = (factor * c.score) / INFINITY;
      const merged = mergePrimary(out, primaryScores(primary, input.a), f, c.nodeAttribute, input.a);
      if (!merged) continue;
      visiting.add(primary);
      out = mergeColocations(merged, [primary.baseId], f, input, visiting);
      visiting.delete(primary);
    }
  }
  return out;
}

/** The scores a primary contributes: a group's first member's, a clone's own. */
function primaryScores(p: Res, a: Assigner): Scores {
  if (p.kind === 'group') return p.children[0] ? rawScores(p.children[0], a) : new Map();
  if (p.kind === 'clone') return rawScores(primitivesOf(p.children[0] ?? p)[0] ?? p, a);
  return rawScores(p, a);
}

/**
 * `work` plus `factor` times the best score the primary has on an available node sharing each
 * node's `attr` value; undefined when no node would be left that can run the resource.
 */
function mergePrimary(
  work: Scores,
  primary: Scores,
  factor: number,
  attr: string,
  a: Assigner,
): Scores | undefined {
  const out: Scores = new Map(work);
  const bestMatching = (node: string): number => {
    if (attr === '#uname') return a.available(node) ? (primary.get(node) ?? MINUS_INFINITY) : MINUS_INFINITY;
    const value = a.nodes.find((n) => n.name === node)?.attrs.get(attr);
    let best = MINUS_INFINITY;
    for (const m of a.nodes) {
      const s = primary.get(m.name);
      if (s === undefined || s <= best || !a.available(m.name)) continue;
      if (value !== undefined && m.attrs.get(attr) === value) best = s;
    }
    return best;
  };
  for (const [node, score] of work) {
    const best = bestMatching(node);
    // Avoiding a resource that avoids a node must not attract it there.
    if (factor < 0 && best < 0) continue;
    // Rounded half away from zero, as Pacemaker rounds.
    const scaled = factor * best;
    let delta = Math.sign(scaled) * Math.floor(Math.abs(scaled) + 0.5);
    // Small factors must not wipe out small, non-zero scores.
    if (delta === 0 && best !== 0) delta = factor > 0 ? 1 : -1;
    out.set(node, addScores(delta, score));
  }
  for (const [node, score] of out) if (score >= 0 && a.available(node)) return out;
  return undefined;
}
