import type { Cib } from '../cib/model.ts';
import { formatScore } from '../cib/score.ts';
import {
  type Action,
  buildGraph,
  type Decision,
  decide,
  formatSummary,
  type Graph,
  type Ordering,
  type SummaryLine,
  summaryLines,
  topoSort,
} from './actions.ts';
import { type Assignment, assign } from './assign.ts';
import { type ColocationEntry, indexColocations, unpackColocations } from './colocation.ts';
import { SchedulerInputError } from './errors.ts';
import { indexLocations, type LocationEntry, unpackLocations } from './location.ts';
import { type OrderEntry, unpackOrders } from './order.ts';
import { primitivesOf, type Res } from './resource_tree.ts';
import { type PrimitiveView, renderNodes, renderResources } from './status_text.ts';
import type { ScoreReason } from './types.ts';
import { planUnfencing, type UnfencePlan } from './unfencing.ts';
import { type Unpacked, unpack } from './unpack.ts';

/**
 * The scheduler: a pure function from a CIB and a time to a transition. Staged as Pacemaker's
 * scheduler is (unpack → constraints → assign → actions → orderings → graph); every stage
 * returns a new value and the same input always gives the same output, byte for byte.
 */
export interface ScheduleOptions {
  /**
   * Build the text renderings and the flat score listing (default true). The controller and
   * benchmarks turn this off: the transition's actions and summary are the same either way.
   */
  readonly textOutput?: boolean;
}

export interface ScoreLine {
  readonly stage: string;
  readonly rsc: string;
  readonly node: string;
  readonly score: number;
  readonly kind: 'allocation' | 'promotion';
}

export interface Transition {
  readonly scores: readonly ScoreLine[];
  /** Actions in an executable order. */
  readonly actions: readonly Action[];
  readonly orderings: readonly Ordering[];
  /** Transition Summary lines exactly as printed (fencing first). */
  readonly summary: readonly string[];
  readonly summaryLines: readonly SummaryLine[];
  readonly fencing: readonly (readonly [string, string])[];
  /**
   * Nodes this transition unfences (`Fence (on)`), with the reason: the graph has an `unfence`
   * action for each, ordered before the probes and starts that need it.
   */
  readonly unfencing: readonly (readonly [string, string])[];
  /** Score contributions per placement unit, for `explain`. */
  readonly reasons: ReadonlyMap<string, readonly ScoreReason[]>;
  readonly currentStatus: readonly string[];
  readonly revisedStatus: readonly string[];
  readonly executed: readonly string[];
}

export type ScheduleResult =
  | { readonly ok: true; readonly transition: Transition; readonly stages: Stages }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** Every stage's value, kept for `explain` and tests. */
export interface Stages {
  readonly unpacked: Unpacked;
  readonly locations: readonly LocationEntry[];
  readonly colocations: readonly ColocationEntry[];
  readonly orders: readonly OrderEntry[];
  readonly assignment: Assignment;
  readonly unfencing: UnfencePlan;
  readonly decisions: readonly Decision[];
  readonly graph: Graph;
}

export function runStages(cib: Cib, nowMs: number): Stages {
  const unpacked = unpack(cib, nowMs);
  const locations = unpackLocations(unpacked);
  const colocations = unpackColocations(unpacked);
  const orders = unpackOrders(unpacked);
  const colo = indexColocations(colocations);
  const assignment = assign({
    u: unpacked,
    locations: indexLocations(locations),
    colocByDependent: colo.byDependent,
    colocByPrimary: colo.byPrimary,
  });
  const unfencing = planUnfencing(unpacked, assignment);
  const decisions = decide(unpacked, assignment, orders, colocations, unfencing);
  const graph = buildGraph(unpacked, decisions, orders, unfencing);
  return { unpacked, locations, colocations, orders, assignment, unfencing, decisions, graph };
}

export function schedule(cib: Cib, nowMs: number, opts: ScheduleOptions = {}): ScheduleResult {
  let stages: Stages;
  try {
    stages = runStages(cib, nowMs);
  } catch (err) {
    if (err instanceof SchedulerInputError) return { ok: false, code: err.code, message: err.message };
    throw err;
  }
  return { ok: true, transition: toTransition(stages, opts), stages };
}

function scoreLines(s: Stages): ScoreLine[] {
  const out: ScoreLine[] = [];
  const nodes = [...s.unpacked.nodes].map((n) => n.name);
  for (const [id, t] of s.assignment.tables) {
    const r = s.unpacked.byId.get(id);
    const stage =
      r?.kind === 'group'
        ? 'pcmk__group_assign'
        : r?.parent?.kind === 'clone'
          ? 'pcmk__clone_assign'
          : 'pcmk__primitive_assign';
    for (const n of nodes) {
      out.push({
        stage,
        rsc: id,
        node: n,
        score: t.isAllowed(n) ? t.get(n) : -1_000_000,
        kind: 'allocation',
      });
    }
  }
  for (const [id, score] of s.assignment.promotion) {
    const p = s.unpacked.byId.get(id);
    const node = p ? s.assignment.placements.get(primitivesOf(p)[0]!.id)?.node : undefined;
    if (node) out.push({ stage: 'pcmk__set_instance_roles', rsc: id, node, score, kind: 'promotion' });
  }
  return out;
}

export function formatScoreLine(l: ScoreLine): string {
  return l.kind === 'promotion'
    ? `${l.rsc} promotion score on ${l.node}: ${formatScore(l.score)}`
    : `${l.stage}: ${l.rsc} allocation score on ${l.node}: ${formatScore(l.score)}`;
}

function toTransition(s: Stages, opts: ScheduleOptions): Transition {
  const lines = s.decisions.flatMap(summaryLines);
  const u = s.unpacked;
  const summary = formatSummary(u.fence, lines, u.options.stonithAction, s.unfencing.nodes);
  const reasons = new Map<string, readonly ScoreReason[]>();
  for (const [id, t] of s.assignment.tables) reasons.set(id, t.reasons);
  const text = opts.textOutput !== false;
  const actions = topoSort(s.graph);
  // One line per resource and node (320 000 in a 32 × 10 000 cluster), wanted only with
  // --show-scores: built on first use.
  let scores: ScoreLine[] | undefined;
  return {
    get scores(): readonly ScoreLine[] {
      scores ??= text ? scoreLines(s) : [];
      return scores;
    },
    actions,
    orderings: s.graph.orderings,
    summary,
    summaryLines: lines,
    fencing: [...u.fence.entries()],
    unfencing: [...s.unfencing.nodes.entries()],
    reasons,
    currentStatus: text ? currentStatus(s) : [],
    revisedStatus: text ? revisedStatus(s) : [],
    executed: text ? executedLines(s, actions) : [],
  };
}

function currentStatus(s: Stages): string[] {
  const u = s.unpacked;
  const view = (p: Res): PrimitiveView => {
    const a = p.state.active[0];
    return { node: a?.node, role: a?.role ?? 'Stopped', failed: a?.failed ?? false, managed: p.managed };
  };
  const unclean = new Set(u.nodes.filter((n) => n.unclean).map((n) => n.name));
  return [
    '  * Node List:',
    ...renderNodes(u.nodes, new Set()),
    '',
    '  * Full List of Resources:',
    ...renderResources(u.resources, view, u.nodes, unclean),
  ];
}

function revisedStatus(s: Stages): string[] {
  const u = s.unpacked;
  const byId = new Map(s.decisions.map((d) => [d.rsc.id, d]));
  const view = (p: Res): PrimitiveView => {
    const d = byId.get(p.id);
    if (!d) return { node: undefined, role: 'Stopped', failed: false, managed: p.managed };
    if (d.next.fixed || d.blocked) {
      const a = p.state.active[0];
      return { node: a?.node, role: a?.role ?? 'Stopped', failed: a?.failed ?? false, managed: p.managed };
    }
    return {
      node: d.next.node,
      role: d.next.node ? d.next.role : 'Stopped',
      failed: false,
      managed: p.managed,
    };
  };
  const nodes = u.nodes.map((n) => (u.fence.has(n.name) ? { ...n, unclean: false, online: false } : n));
  return [
    '  * Node List:',
    ...renderNodes(nodes, new Set()),
    '',
    '  * Full List of Resources:',
    ...renderResources(u.resources, view, nodes, new Set()),
  ];
}

function executedLines(s: Stages, actions: readonly Action[]): string[] {
  const out: string[] = [];
  for (const a of actions) {
    if (a.task === 'fence') {
      out.push(`  * Fencing ${a.node} (${s.unpacked.options.stonithAction})`);
      continue;
    }
    if (a.task === 'unfence') {
      out.push(`  * Fencing ${a.node} (on)`);
      continue;
    }
    const task = a.task === 'monitor' && a.intervalMs ? `monitor=${a.intervalMs}` : a.task;
    out.push(`  * Resource action: ${(a.rsc ?? '').padEnd(15)} ${task} on ${a.node}`);
  }
  for (const n of s.unpacked.nodes) {
    if (n.shuttingDown && n.online) out.push(`  * Cluster action:  do_shutdown on ${n.name}`);
  }
  return out;
}

/** The full crm_simulate-style text for a transition. */
export function renderSimulation(t: Transition): string {
  return [
    'Current cluster status:',
    ...t.currentStatus,
    '',
    'Transition Summary:',
    ...t.summary,
    '',
    'Executing Cluster Transition:',
    ...t.executed,
    '',
    'Revised Cluster Status:',
    ...t.revisedStatus,
    '',
  ].join('\n');
}
