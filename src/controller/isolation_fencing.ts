import type { Cib } from '../cib/model.ts';
import { MAX_PRIORITY_FENCING_DELAY_MS, parseDelayProperty } from './priority_fencing.ts';

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
export const MAX_ISOLATION_FENCING_DELAY_MS = MAX_PRIORITY_FENCING_DELAY_MS;

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
  return parseDelayProperty(cib, ISOLATION_FENCING_DELAY_PROPERTY, DEFAULT_ISOLATION_FENCING_DELAY_MS, '10s');
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
