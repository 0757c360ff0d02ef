import { parseDuration } from '../cib/duration.ts';
import type { Cib } from '../cib/model.ts';
import { clusterProperty } from '../cib/resources.ts';

/**
 * A node that sees no carrier on any of its own cluster links is the one cut off (a pulled
 * cable, a dead switch port, a NIC gone): the peer it has lost is most likely healthy and
 * reachable by the clients. In a two-node split both sides keep quorum and race to fence each
 * other, and without help the faster side wins, often the old DC, which is as likely to be the
 * cut-off one. So while this node is isolated, every fencing it issues waits
 * `halo-isolation-fencing-delay` first (Pacemaker has no such option; the closest is
 * priority-fencing-delay, which decides by resource priority, not by who lost the wire), and
 * the healthy side, which fences at once, wins. The delay never cancels a fencing: if the
 * peer really is dead too, this node still fences it once the delay is over.
 *
 * The fact comes from the daemon (src/daemon/link_carrier.ts reads each link's interface
 * carrier); this module only decides, from the fact and the configuration.
 */

export const ISOLATION_FENCING_DELAY_PROPERTY = 'halo-isolation-fencing-delay';

/**
 * 10 s: the healthy side must have fenced this node before the delay ends. It notices the loss
 * about when this node does (the same deadtime, give or take a keepalive), then needs its fence
 * device: ~350 ms for the lab's, 2–8 s for a BMC (fence_ipmilan's power-off and status check,
 * its `power_wait`). 10 s covers that with room to spare; it costs 10 s of recovery only in the
 * double failure where this node's links are dead and the peer is dead too, when no client
 * could reach this node anyway. A peer device with a longer pcmk_delay needs a longer value.
 */
export const DEFAULT_ISOLATION_FENCING_DELAY_MS = 10_000;

/** The longest value accepted, as for priority-fencing-delay: an hour (`5m` for `5s` is a typo). */
export const MAX_ISOLATION_FENCING_DELAY_MS = 3_600_000;

/** What the daemon tells the controller about this node's own cluster links. */
export interface LinkCarrierFact {
  /** True only when every link whose interface is known has no carrier. */
  readonly isolated: boolean;
  /** For logs, e.g. "link 0 198.18.0.1 on eth1: no carrier; link 1 198.18.1.1 on eth2: no carrier". */
  readonly detail: string;
}

export type IsolationFencingDelayParse =
  | { readonly ok: true; readonly ms: number }
  | { readonly ok: false; readonly reason: string };

/** Reads the property: unset or empty is the default; 0 disables the delay. */
export function parseIsolationFencingDelay(cib: Cib): IsolationFencingDelayParse {
  const text = clusterProperty(cib, ISOLATION_FENCING_DELAY_PROPERTY);
  if (text === undefined || text.trim() === '') return { ok: true, ms: DEFAULT_ISOLATION_FENCING_DELAY_MS };
  const fix = `fix it with e.g. \`crm configure property ${ISOLATION_FENCING_DELAY_PROPERTY}=10s\` (0 disables it)`;
  if (text.trim().startsWith('-'))
    return { ok: false, reason: `'${text}' is negative (a delay is 0 or more); ${fix}` };
  const d = parseDuration(text);
  if (!d.ok) return { ok: false, reason: `${d.reason}; ${fix}` };
  if (d.ms > MAX_ISOLATION_FENCING_DELAY_MS)
    return {
      ok: false,
      reason: `'${text}' is ${d.ms} ms, more than the ${MAX_ISOLATION_FENCING_DELAY_MS} ms halo accepts; ${fix}`,
    };
  return { ok: true, ms: d.ms };
}

export interface IsolationFencingDecision {
  readonly delayMs: number;
  /** For the fencer's log line. */
  readonly reason: string;
}

/**
 * Whether a fencing this node issues now waits, and why: only while `fact` says isolated and
 * the delay is not 0. Undefined: no isolation delay.
 */
export function isolationFencingDelay(
  fact: LinkCarrierFact | undefined,
  delayMs: number,
): IsolationFencingDecision | undefined {
  if (!fact?.isolated || delayMs <= 0) return undefined;
  return {
    delayMs,
    reason: `${ISOLATION_FENCING_DELAY_PROPERTY}: no carrier on any cluster link (${fact.detail}), so this node is likely the one cut off and lets its peer fence it first`,
  };
}
