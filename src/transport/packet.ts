import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { assert } from '../lib/assert.ts';
import { ReplayWindow } from './replay_window.ts';

/**
 * The datagram wire format. Every packet is sealed with AES-256-GCM; the header travels in clear
 * but is authenticated (it is the AEAD's associated data), so a flipped header bit fails
 * authentication just like a flipped payload bit.
 *
 * ```
 * offset size field
 *      0    2 magic 'HL' (0x48 0x4c)
 *      2    1 version (1)
 *      3    1 channel (what the payload is: heartbeat, raft, …)
 *      4    4 cluster id (from the cluster name; packets of another cluster are dropped)
 *      8    2 sender node id (1..65535)
 *     10    2 destination node id (0 = any node of the cluster)
 *     12    4 sender boot epoch (strictly increases on every daemon start)
 *     16    6 sequence number (per sender and epoch, starts at 0)
 *     22    n ciphertext
 *   22+n   16 GCM tag
 * ```
 *
 * The 96-bit GCM nonce is sender ‖ epoch ‖ seq, so it never repeats under one key as long as a
 * node id is used by one daemon at a time and its boot epoch increases (the daemon persists
 * it). Datagrams use a key derived from the cluster key with HKDF, never the cluster key
 * itself, so the stream channel's session keys and these can never share a nonce space.
 *
 * This module does no I/O; node:crypto is deterministic given key and nonce.
 */
export const PACKET_MAGIC = 0x484c;
export const PACKET_VERSION = 1;
export const PACKET_HEADER_BYTES = 22;
export const GCM_TAG_BYTES = 16;
export const CLUSTER_KEY_BYTES = 32;
/** Largest payload in one datagram: an IPv4 UDP datagram holds 65 507 bytes. */
export const MAX_DATAGRAM_PAYLOAD_BYTES = 65_507 - PACKET_HEADER_BYTES - GCM_TAG_BYTES;
/** Sequence numbers are 48-bit; a sender that would wrap must restart with a new epoch. */
export const MAX_SEQ = 2 ** 48 - 1;
export const MAX_NODE_ID = 0xffff;
export const MAX_EPOCH = 0xffff_ffff;

/** What a datagram's payload is. Values are on the wire: never renumber. */
export const Channel = {
  heartbeat: 1,
  raft: 2,
  app: 3,
} as const;
export type ChannelName = keyof typeof Channel;
export type ChannelId = (typeof Channel)[ChannelName];

export interface PacketHeader {
  readonly channel: number;
  readonly clusterId: number;
  readonly sender: number;
  readonly dest: number;
  readonly epoch: number;
  readonly seq: number;
}

/** Derives the datagram key from the 32-byte cluster key (HKDF-SHA256). */
export function deriveDatagramKey(clusterKey: Uint8Array): Buffer {
  assert(clusterKey.length === CLUSTER_KEY_BYTES, `cluster key must be ${CLUSTER_KEY_BYTES} bytes`);
  return Buffer.from(hkdfSync('sha256', clusterKey, Buffer.alloc(0), 'halo datagram v1', 32));
}

function nonceOf(sender: number, epoch: number, seq: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt16BE(sender, 0);
  n.writeUInt32BE(epoch, 2);
  n.writeUIntBE(seq, 6, 6);
  return n;
}

function writeHeader(h: PacketHeader): Buffer {
  const b = Buffer.alloc(PACKET_HEADER_BYTES);
  b.writeUInt16BE(PACKET_MAGIC, 0);
  b.writeUInt8(PACKET_VERSION, 2);
  b.writeUInt8(h.channel, 3);
  b.writeUInt32BE(h.clusterId, 4);
  b.writeUInt16BE(h.sender, 8);
  b.writeUInt16BE(h.dest, 10);
  b.writeUInt32BE(h.epoch, 12);
  b.writeUIntBE(h.seq, 16, 6);
  return b;
}

/**
 * Seals packets for one sender in one boot epoch. Owns the sequence counter: two sealers with
 * the same sender and epoch under one key would repeat nonces, so the daemon makes exactly one.
 */
export class PacketSealer {
  private readonly key: Buffer;
  private nextSeq = 0;

  constructor(
    clusterKey: Uint8Array,
    readonly clusterId: number,
    readonly sender: number,
    readonly epoch: number,
  ) {
    assert(Number.isInteger(sender) && sender >= 1 && sender <= MAX_NODE_ID, `bad sender id ${sender}`);
    assert(Number.isInteger(epoch) && epoch >= 0 && epoch <= MAX_EPOCH, `bad epoch ${epoch}`);
    assert(Number.isInteger(clusterId) && clusterId >= 0 && clusterId <= 0xffff_ffff, `bad cluster id`);
    this.key = deriveDatagramKey(clusterKey);
  }

  /** Sequence number the next packet will carry. */
  get seq(): number {
    return this.nextSeq;
  }

  seal(channel: number, dest: number, payload: Uint8Array): Buffer {
    assert(Number.isInteger(channel) && channel >= 1 && channel <= 255, `bad channel ${channel}`);
    assert(Number.isInteger(dest) && dest >= 0 && dest <= MAX_NODE_ID, `bad dest ${dest}`);
    assert(payload.length <= MAX_DATAGRAM_PAYLOAD_BYTES, `payload of ${payload.length} bytes is too big`);
    assert(this.nextSeq <= MAX_SEQ, 'sequence numbers exhausted for this epoch');
    const seq = this.nextSeq++;
    const header = writeHeader({
      channel,
      clusterId: this.clusterId,
      sender: this.sender,
      dest,
      epoch: this.epoch,
      seq,
    });
    const cipher = createCipheriv('aes-256-gcm', this.key, nonceOf(this.sender, this.epoch, seq));
    cipher.setAAD(header);
    const body = cipher.update(payload);
    const tail = cipher.final();
    return Buffer.concat([header, body, tail, cipher.getAuthTag()]);
  }
}

export type DropReason = 'malformed' | 'foreign' | 'forged' | 'replayed';

export type OpenResult =
  | { readonly ok: true; readonly header: PacketHeader; readonly payload: Buffer }
  | { readonly ok: false; readonly reason: DropReason; readonly detail: string };

/** What the opener dropped and why; exposed by `halo status` and metrics. */
export interface PacketCounters {
  accepted: number;
  /** Too short, bad magic or version, or reserved ids: not a halo packet at all. */
  malformed: number;
  /** Another cluster's id, or addressed to another node. */
  foreign: number;
  /** Authentication failed: wrong key or altered bytes. */
  forged: number;
  /** Already seen, older than the replay window, or from an earlier boot epoch. */
  replayed: number;
}

interface SenderState {
  epoch: number;
  window: ReplayWindow;
}

/**
 * Opens packets addressed to one node: checks the frame, authenticates, and drops replays.
 * Never throws on any input; every dropped packet is counted under exactly one reason.
 * Per-sender state is created only after a packet authenticated, so unauthenticated input
 * cannot grow memory; sender ids are 16-bit, which bounds the table.
 */
export class PacketOpener {
  private readonly key: Buffer;
  private readonly senders = new Map<number, SenderState>();
  readonly counters: PacketCounters = { accepted: 0, malformed: 0, foreign: 0, forged: 0, replayed: 0 };

  /**
   * `knownSenders`: when given, packets from any other node id are dropped as foreign before
   * any crypto (a node not in the config has no business talking to us).
   */
  constructor(
    clusterKey: Uint8Array,
    readonly clusterId: number,
    readonly self: number,
    private readonly knownSenders?: ReadonlySet<number>,
  ) {
    this.key = deriveDatagramKey(clusterKey);
  }

  open(packet: Uint8Array): OpenResult {
    const parsed = parseHeader(packet);
    if (typeof parsed === 'string') return this.drop('malformed', parsed);
    const h = parsed;
    if (h.clusterId !== this.clusterId) return this.drop('foreign', `cluster id ${h.clusterId}`);
    if (h.dest !== 0 && h.dest !== this.self) return this.drop('foreign', `addressed to node ${h.dest}`);
    if (h.sender === this.self) return this.drop('foreign', 'sent by this node id (duplicate node id?)');
    if (this.knownSenders && !this.knownSenders.has(h.sender))
      return this.drop('foreign', `unknown sender ${h.sender}`);
    const state = this.senders.get(h.sender);
    if (state) {
      if (h.epoch < state.epoch) return this.drop('replayed', `epoch ${h.epoch} < current ${state.epoch}`);
      if (h.epoch === state.epoch) {
        const verdict = state.window.check(h.seq);
        if (verdict !== 'fresh') return this.drop('replayed', `seq ${h.seq} ${verdict}`);
      }
    }
    const payload = this.decrypt(packet, h);
    if (!payload) return this.drop('forged', `authentication failed (sender ${h.sender})`);
    if (!state || h.epoch > state.epoch) {
      const window = new ReplayWindow();
      window.accept(h.seq);
      this.senders.set(h.sender, { epoch: h.epoch, window });
    } else {
      state.window.accept(h.seq);
    }
    this.counters.accepted++;
    return { ok: true, header: h, payload };
  }

  private decrypt(packet: Uint8Array, h: PacketHeader): Buffer | undefined {
    const buf = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
    const tagAt = buf.length - GCM_TAG_BYTES;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, nonceOf(h.sender, h.epoch, h.seq));
      d.setAAD(buf.subarray(0, PACKET_HEADER_BYTES));
      d.setAuthTag(buf.subarray(tagAt));
      const body = d.update(buf.subarray(PACKET_HEADER_BYTES, tagAt));
      return Buffer.concat([body, d.final()]);
    } catch {
      return undefined;
    }
  }

  private drop(reason: DropReason, detail: string): OpenResult {
    this.counters[reason]++;
    return { ok: false, reason, detail };
  }
}

/** Reads and validates the clear header; returns why when it is not a halo packet. */
export function parseHeader(packet: Uint8Array): PacketHeader | string {
  if (packet.length < PACKET_HEADER_BYTES + GCM_TAG_BYTES) return `too short (${packet.length} bytes)`;
  if (packet.length > PACKET_HEADER_BYTES + GCM_TAG_BYTES + MAX_DATAGRAM_PAYLOAD_BYTES) {
    return `too long (${packet.length} bytes)`;
  }
  const b = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
  if (b.readUInt16BE(0) !== PACKET_MAGIC) return 'bad magic';
  const version = b.readUInt8(2);
  if (version !== PACKET_VERSION) return `unsupported version ${version}`;
  const channel = b.readUInt8(3);
  if (channel === 0) return 'channel 0 is reserved';
  const sender = b.readUInt16BE(8);
  if (sender === 0) return 'sender 0 is reserved';
  return {
    channel,
    clusterId: b.readUInt32BE(4),
    sender,
    dest: b.readUInt16BE(10),
    epoch: b.readUInt32BE(12),
    seq: b.readUIntBE(16, 6),
  };
}

/** A 32-bit cluster id from the cluster name (first 4 bytes of its SHA-256), computed by shells. */
export function clusterIdFromDigest(sha256OfName: Uint8Array): number {
  assert(sha256OfName.length >= 4, 'digest too short');
  return Buffer.from(sha256OfName).readUInt32BE(0);
}
