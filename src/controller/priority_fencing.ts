import { parseDuration } from '../cib/duration.ts';
import type { Cib } from '../cib/model.ts';
import { clusterProperty, findResource, metaValue } from '../cib/resources.ts';
import { parseScore } from '../cib/score.ts';
import { baseId } from './resource_ops.ts';
import { type NodeRecord, recordSaysStopped } from './status.ts';

/**
 * Pacemaker's `priority-fencing-delay` cluster property (Pacemaker 2.0.4 and later), as
 * Pacemaker Explained, "Cluster Options" (cluster-options.rst; the entry was added to
 * Ch-Options.txt by "Doc: Pacemaker Explained: document priority-fencing-delay cluster option"
 * and reworded by "Feature: scheduler: priority-fencing-delay defaults to 0 meaning disabled")
 * describes it: the fencing of the lost nodes with the highest total resource priority is
 * delayed by this duration when this partition does not have the majority of the nodes, so the
 * more significant node is likely to win a fencing race (mostly a two-node split). A promoted
 * instance counts its priority + 1 if that priority is not 0. No delay when every node has the
 * same priority, nor for a fencing that is not about a lost node (a failed stop, on-fail=fence:
 * Ken Gaillot's announcement, users list, 2020-03-21, "Coming in Pacemaker 2.0.4"). The fence
 * devices' pcmk_delay_base/max are added to it. 0 (the default) disables it.
 *
 * The rules beyond the prose follow Pacemaker's scheduler (lib/pengine/utils.c,
 * node_priority_fencing_delay, and native_priority_to_node):
 * - "majority" counts nodes, not votes: no delay when the nodes online here are more than half
 *   of the cluster's nodes (`online > total / 2`, integer division). Quorum plays no part, so
 *   in a two-node cluster (corosync two_node, where each side of a split keeps quorum) one
 *   node of two is never a majority and the delay applies on both sides.
 * - a node's priority is the sum of the `priority` meta attribute (default 0) of the resources
 *   active there; a resource whose last operation failed does not count (Pacemaker skips
 *   failed resources).
 * - the delay goes to every lost target whose priority is the highest of all nodes (lost or
 *   not), unless the lowest and the highest are equal.
 */

/**
 * The longest value accepted, as for pcmk_delay_base/max (executor/fence.ts): Pacemaker has no
 * limit, but `5m` for `5s` or an ISO `P5M` (five months) would hold every node-loss fencing.
 */
export const MAX_PRIORITY_FENCING_DELAY_MS = 3_600_000;

export type PriorityFencingDelayParse =
  | { readonly ok: true; readonly ms: number }
  | { readonly ok: false; readonly reason: string };

/** Reads the property from the configuration: unset or empty is 0 (disabled). */
export function parsePriorityFencingDelay(cib: Cib): PriorityFencingDelayParse {
  return parseDelayProperty(cib, 'priority-fencing-delay', 0, '15s');
}

/**
 * A cluster property holding a fencing delay (Pacemaker's duration syntax): unset or empty is
 * `unsetMs`; negative, unreadable or over MAX_PRIORITY_FENCING_DELAY_MS is refused with a reason
 * that names the value and shows the fix with `example`.
 */
export function parseDelayProperty(
  cib: Cib,
  name: string,
  unsetMs: number,
  example: string,
): PriorityFencingDelayParse {
  const text = clusterProperty(cib, name);
  if (text === undefined || text.trim() === '') return { ok: true, ms: unsetMs };
  const fix = `fix it with e.g. \`crm configure property ${name}=${example}\` (0 disables it)`;
  if (text.trim().startsWith('-'))
    return { ok: false, reason: `'${text}' is negative (a delay is 0 or more); ${fix}` };
  const d = parseDuration(text);
  if (!d.ok) return { ok: false, reason: `${d.reason}; ${fix}` };
  if (d.ms > MAX_PRIORITY_FENCING_DELAY_MS)
    return {
      ok: false,
      reason: `'${text}' is ${d.ms} ms, more than the ${MAX_PRIORITY_FENCING_DELAY_MS} ms halo accepts; ${fix}`,
    };
  return { ok: true, ms: d.ms };
}

/** A resource's `priority` meta attribute; absent or not an integer is 0, as in Pacemaker. */
function resourcePriority(cib: Cib, rsc: string): number {
  const r = findResource(cib, baseId(rsc));
  const text = r ? metaValue(r, 'priority', cib) : undefined;
  const p = text === undefined ? undefined : parseScore(text);
  return p?.ok ? p.score : 0;
}

/**
 * The total priority of what `rec`'s status says is active there: each resource's priority,
 * +1 for a promoted instance of a resource whose priority is not 0.
 */
export function nodePriority(cib: Cib, rec: Pick<NodeRecord, 'history'>): number {
  let sum = 0;
  for (const [rsc, ops] of rec.history) {
    const last = ops.get(`${rsc}_last_0`);
    if (!last || recordSaysStopped(last)) continue;
    const failed = last.opStatus !== '0' || !['0', '8'].includes(last.rcCode ?? '0');
    if (failed) continue;
    const priority = resourcePriority(cib, rsc);
    if (priority === 0) continue;
    const promoted =
      (last.operation === 'promote' && last.rcCode === '0') ||
      (last.operation === 'monitor' && last.rcCode === '8');
    sum += promoted ? priority + 1 : priority;
  }
  return sum;
}

export interface PriorityFencingDecision {
  readonly delayMs: number;
  /** For the fencer's log line: "priority-fencing-delay: n1 runs the highest-priority resources". */
  readonly reason: string;
  /** For the controller's log line: the counts and priorities it was decided from. */
  readonly detail: string;
}

/**
 * Whether fencing lost node `target` waits `delayMs` (the parsed property), and why. `nodes`
 * are all the cluster's nodes as the DC sees them (a `member` is online in this partition).
 * Undefined: no priority delay (disabled, target not lost, majority here, equal priorities, or
 * the target not among the highest).
 */
export function priorityFencingDelay(
  cib: Cib,
  nodes: Iterable<Pick<NodeRecord, 'name' | 'condition' | 'history'>>,
  target: string,
  delayMs: number,
): PriorityFencingDecision | undefined {
  if (delayMs <= 0) return undefined;
  const all = [...nodes];
  const tgt = all.find((n) => n.name === target);
  if (tgt?.condition !== 'lost') return undefined;
  const online = all.filter((n) => n.condition === 'member').length;
  if (online > Math.floor(all.length / 2)) return undefined;
  const priorities = new Map(all.map((n) => [n.name, nodePriority(cib, n)]));
  const values = [...priorities.values()];
  const top = Math.max(...values);
  const lowest = Math.min(...values);
  if (top === lowest || priorities.get(target) !== top) return undefined;
  const others = all
    .filter((n) => n.name !== target)
    .map((n) => `${n.name} ${priorities.get(n.name)}`)
    .join(', ');
  return {
    delayMs,
    reason: `priority-fencing-delay: ${target} runs the highest-priority resources`,
    detail: `this partition has ${online} of ${all.length} nodes (no majority) and ${target} runs the highest total resource priority (${top}; ${others})`,
  };
}
