import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { assert } from '../lib/assert.ts';
import { HaloError } from '../lib/errors.ts';
import type { Logger } from '../lib/ports.ts';
import { type LinkEvent, LinkTable, type LinkView, MAX_LINKS } from './links.ts';
import { type PacketCounters, type PacketHeader, PacketOpener, PacketSealer } from './packet.ts';

/** A host:port pair; IPv6 hosts are written in brackets: `[fd00::1]:5405`. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface TransportPeer {
  readonly id: number;
  /** This peer's address on each link, index = link number. */
  readonly links: readonly Endpoint[];
}

/** `best`: one copy on the lowest live link; `all`: a copy on every link (lowest latency on loss). */
export type SendMode = 'best' | 'all';

export interface UdpTransportOptions {
  readonly self: number;
  /** Our address on each link, index = link number; one UDP socket is bound per link. */
  readonly links: readonly Endpoint[];
  readonly peers: readonly TransportPeer[];
  readonly clusterKey: Uint8Array;
  readonly clusterId: number;
  /** Strictly greater than every earlier run's epoch for this node id (the daemon persists it). */
  readonly epoch: number;
  readonly sendMode: SendMode;
  /** A link with no authenticated packet for this long is down. */
  readonly linkDownAfterMs: number;
  readonly nowMs: () => number;
  readonly logger: Logger;
  /** Called for every authenticated, fresh packet (header.sender is who sent it). Must not throw. */
  readonly onMessage: (header: PacketHeader, payload: Buffer, link: number) => void;
  readonly onLinkEvent?: (ev: LinkEvent) => void;
}

/**
 * The datagram transport: one UDP socket per local link, every packet sealed (see packet.ts).
 * Delivery is best-effort: packets may be lost, duplicated (send mode `all`) or reordered;
 * the protocols above (heartbeats, Raft) are built for that. Send errors (a link whose
 * interface is down) are counted per link and never thrown.
 */
export class UdpTransport {
  private readonly sockets: Socket[] = [];
  private readonly sealer: PacketSealer;
  private readonly opener: PacketOpener;
  private readonly table: LinkTable;
  private readonly peers: Map<number, TransportPeer>;
  /** Who may send to us: the opener drops any other sender id before any crypto. */
  private readonly known: Set<number>;
  private closed = false;

  constructor(private readonly o: UdpTransportOptions) {
    assert(o.links.length >= 1 && o.links.length <= MAX_LINKS, `UdpTransport: 1..${MAX_LINKS} links`);
    this.sealer = new PacketSealer(o.clusterKey, o.clusterId, o.self, o.epoch);
    this.known = new Set(o.peers.map((p) => p.id));
    this.opener = new PacketOpener(o.clusterKey, o.clusterId, o.self, this.known);
    this.table = new LinkTable(o.linkDownAfterMs);
    this.peers = new Map(o.peers.map((p) => [p.id, p]));
    for (const p of o.peers) this.table.addPeer(p.id, Math.min(p.links.length, o.links.length));
  }

  /** A member added while running (a live `halo cluster join`): send to it and accept from it. */
  addPeer(p: TransportPeer): void {
    if (this.peers.has(p.id)) return;
    this.peers.set(p.id, p);
    this.known.add(p.id);
    this.table.addPeer(p.id, Math.min(p.links.length, this.o.links.length));
  }

  /** A member removed while running: its packets are foreign from now on. */
  removePeer(id: number): void {
    this.peers.delete(id);
    this.known.delete(id);
    this.table.removePeer(id);
  }

  get counters(): Readonly<PacketCounters> {
    return this.opener.counters;
  }

  /** Binds one socket per link. Fails with `bind-failed` naming the address. */
  async start(): Promise<void> {
    for (let link = 0; link < this.o.links.length; link++) {
      const ep = this.o.links[link]!;
      const sock = createSocket({ type: isIPv6(ep.host) ? 'udp6' : 'udp4', reuseAddr: false });
      sock.on('message', (msg, _rinfo) => this.receive(msg, link));
      sock.on('error', (err) => this.o.logger.log('warn', 'udp socket error', { link, err: err.message }));
      await new Promise<void>((resolve, reject) => {
        sock.once('error', (err) =>
          reject(
            new HaloError(
              'bind-failed',
              `cannot bind link ${link} to ${ep.host}:${ep.port}: ${err.message}`,
              { cause: err },
            ),
          ),
        );
        sock.bind(ep.port, ep.host, () => resolve());
      });
      this.sockets.push(sock);
    }
  }

  /** Sends per the configured mode (`best`, falling back to every link when none is known up). */
  send(peer: number, channel: number, payload: Uint8Array): void {
    const best = this.o.sendMode === 'best' ? this.table.best(peer) : undefined;
    if (best !== undefined) this.sendOn(peer, best, channel, payload);
    else this.sendOnAllLinks(peer, channel, payload);
  }

  /** One copy per link: heartbeats use this so every link's liveness is measured. */
  sendOnAllLinks(peer: number, channel: number, payload: Uint8Array): void {
    const n = this.table.linkCount(peer);
    for (let link = 0; link < n; link++) this.sendOn(peer, link, channel, payload);
  }

  tick(): LinkEvent[] {
    const events = this.table.tick(this.o.nowMs());
    for (const ev of events) this.o.onLinkEvent?.(ev);
    return events;
  }

  links(peer: number): LinkView[] {
    return this.table.view(peer);
  }

  close(): void {
    this.closed = true;
    for (const s of this.sockets) s.close();
    this.sockets.length = 0;
  }

  private sendOn(peer: number, link: number, channel: number, payload: Uint8Array): void {
    const sock = this.sockets[link];
    const ep = this.peers.get(peer)?.links[link];
    if (!sock || !ep || this.closed) return;
    const pkt = this.sealer.seal(channel, peer, payload);
    sock.send(pkt, ep.port, ep.host, (err) => this.table.sent(peer, link, !err));
  }

  private receive(msg: Buffer, link: number): void {
    const r = this.opener.open(msg);
    if (!r.ok) {
      this.o.logger.log('debug', 'dropped packet', { link, reason: r.reason, detail: r.detail });
      return;
    }
    const ev = this.table.heard(r.header.sender, link, this.o.nowMs());
    if (ev) this.o.onLinkEvent?.(ev);
    this.o.onMessage(r.header, r.payload, link);
  }
}

/** Parses `host:port` or `[v6]:port`; throws `bad-endpoint` naming the text. */
export function parseEndpoint(text: string, where: string): Endpoint {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text) ?? /^([^:\s]+):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new HaloError('bad-endpoint', `${where}: '${text}' is not host:port (IPv6 as [addr]:port)`);
  }
  return { host: m[1]!, port };
}
