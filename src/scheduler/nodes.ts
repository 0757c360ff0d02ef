import type { Res } from './resource_tree.ts';
import type { NodeInfo } from './types.ts';

/**
 * Node criteria: which nodes can host resources at all, and the order ties are broken in
 * (Pacemaker sorts node names naturally: `node2` before `node10`).
 */
export function naturalCompare(a: string, b: string): number {
  const ax = a.toLowerCase().match(/(\d+|\D+)/g) ?? [];
  const bx = b.toLowerCase().match(/(\d+|\D+)/g) ?? [];
  for (let i = 0; i < Math.min(ax.length, bx.length); i++) {
    const x = ax[i]!;
    const y = bx[i]!;
    if (x === y) continue;
    const nx = /^\d/.test(x);
    const ny = /^\d/.test(y);
    if (nx && ny) {
      const d = Number(x) - Number(y);
      if (d !== 0) return d < 0 ? -1 : 1;
      continue;
    }
    return x < y ? -1 : 1;
  }
  return ax.length - bx.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** Why a node cannot run resources, or undefined when it can. */
export function unavailableReason(n: NodeInfo): string | undefined {
  if (n.unclean) return `${n.name} is unclean`;
  if (!n.online) return `${n.name} is offline`;
  if (n.pending) return `${n.name} is still joining`;
  if (n.shuttingDown) return `${n.name} is shutting down`;
  if (n.standby) return `${n.name} is in standby`;
  if (n.maintenance) return `${n.name} is in maintenance`;
  return undefined;
}

/**
 * The nodes where `r` is probed: every node that can run resources and has no history of it
 * (a probe there would find out whether it runs there after all).
 */
export function probeNodes(nodes: readonly NodeInfo[], r: Res): string[] {
  return nodes
    .filter((n) => unavailableReason(n) === undefined && !r.state.known.has(n.name))
    .map((n) => n.name);
}
