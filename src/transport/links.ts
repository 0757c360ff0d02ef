import { assert } from '../lib/assert.ts';

/** halo replaces NIC bonding with up to this many independent links per peer (seeds 002/003). */
export const MAX_LINKS = 8;

export type LinkState = 'unknown' | 'up' | 'down';

export interface LinkEvent {
  readonly peer: number;
  readonly link: number;
  readonly from: LinkState;
  readonly to: LinkState;
  readonly silentMs: number;
}

export interface LinkView {
  readonly link: number;
  readonly state: LinkState;
  readonly lastHeardMs: number | undefined;
  readonly received: number;
  readonly sent: number;
  readonly sendErrors: number;
}

interface LinkRecord {
  state: LinkState;
  lastHeardMs: number | undefined;
  received: number;
  sent: number;
  sendErrors: number;
}

/**
 * Per-link liveness for every peer, as a pure table: the shell records every authenticated
 * packet with the link it came in on and ticks the table; a link is `up` while packets arrive
 * within `downAfterMs`, `down` after that. Heartbeats go out on every link each keepalive, so a
 * silent link is a broken link, not an idle one.
 *
 * `best(peer)` is the lowest-numbered live link: links are listed in order of preference
 * (fastest, dedicated first), as knet's passive mode with priorities does.
 */
export class LinkTable {
  private readonly peers = new Map<number, LinkRecord[]>();

  constructor(readonly downAfterMs: number) {
    assert(downAfterMs > 0, 'LinkTable: downAfterMs must be positive');
  }

  addPeer(peer: number, links: number): void {
    assert(Number.isInteger(links) && links >= 1 && links <= MAX_LINKS, `LinkTable: bad link count ${links}`);
    if (this.peers.has(peer)) return;
    this.peers.set(
      peer,
      Array.from({ length: links }, () => ({
        state: 'unknown' as LinkState,
        lastHeardMs: undefined,
        received: 0,
        sent: 0,
        sendErrors: 0,
      })),
    );
  }

  removePeer(peer: number): void {
    this.peers.delete(peer);
  }

  /** An authenticated packet from `peer` arrived on `link`. Returns the link's transition, if any. */
  heard(peer: number, link: number, nowMs: number): LinkEvent | undefined {
    const r = this.peers.get(peer)?.[link];
    if (!r) return undefined;
    r.received++;
    r.lastHeardMs = nowMs;
    if (r.state === 'up') return undefined;
    const ev: LinkEvent = { peer, link, from: r.state, to: 'up', silentMs: 0 };
    r.state = 'up';
    return ev;
  }

  sent(peer: number, link: number, ok: boolean): void {
    const r = this.peers.get(peer)?.[link];
    if (!r) return;
    if (ok) r.sent++;
    else r.sendErrors++;
  }

  tick(nowMs: number): LinkEvent[] {
    const events: LinkEvent[] = [];
    for (const [peer, links] of this.peers) {
      links.forEach((r, link) => {
        if (r.state !== 'up' || r.lastHeardMs === undefined) return;
        const silentMs = nowMs - r.lastHeardMs;
        if (silentMs >= this.downAfterMs) {
          events.push({ peer, link, from: 'up', to: 'down', silentMs });
          r.state = 'down';
        }
      });
    }
    return events;
  }

  /** Lowest-numbered link that is up, or undefined when none is. */
  best(peer: number): number | undefined {
    const links = this.peers.get(peer);
    if (!links) return undefined;
    const i = links.findIndex((r) => r.state === 'up');
    return i < 0 ? undefined : i;
  }

  linkCount(peer: number): number {
    return this.peers.get(peer)?.length ?? 0;
  }

  view(peer: number): LinkView[] {
    return (this.peers.get(peer) ?? []).map((r, link) => ({ link, ...r }));
  }
}
