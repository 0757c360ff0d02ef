import type { DiskState, Role } from './metadata.ts';

/**
 * Messages between the two nodes of a volume, and their byte encoding (pure). The replication
 * stream carries them in order; the engine (`engine.ts`) sends them over a `StreamChannel`
 * (`src/transport/stream.ts`), which frames and authenticates them.
 */

/**
 * The replication wire format's version, sent in every Handshake. Both nodes must speak the
 * same one (a change to any message's encoding bumps it); a Handshake without the field is
 * from version 1, before the field existed.
 */
export const WIRE_VERSION = 2;

export interface HandshakeMsg {
  readonly t: 'Handshake';
  /** WIRE_VERSION of the sender (absent: 1). */
  readonly version?: number;
  readonly node: string;
  readonly protocol: string;
  readonly sizeBytes: number;
  readonly current: bigint;
  readonly bitmapUuid: bigint;
  readonly history: readonly [bigint, bigint];
  readonly role: Role;
  readonly disk: DiskState;
  readonly crashedPrimary: boolean;
  readonly discardMyData: boolean;
  readonly syncSourceUuid: bigint;
  readonly bitmap: Uint8Array;
}

export type PeerMsg =
  | HandshakeMsg
  /** Replicated application write; `seq` is per connection, in send order. */
  | {
      readonly t: 'Data';
      readonly seq: number;
      readonly offset: number;
      readonly fua: boolean;
      readonly data: Uint8Array;
    }
  | { readonly t: 'RecvAck'; readonly seq: number }
  | { readonly t: 'WriteAck'; readonly seq: number }
  | { readonly t: 'NegAck'; readonly seq: number }
  | { readonly t: 'Barrier'; readonly seq: number }
  | { readonly t: 'BarrierAck'; readonly seq: number }
  | { readonly t: 'ResyncData'; readonly first: number; readonly data: Uint8Array }
  | { readonly t: 'ResyncAck'; readonly first: number; readonly count: number; readonly ok: boolean }
  /** Checksum-based resync: digests of blocks first..; the target answers which it needs. */
  | { readonly t: 'ResyncCsum'; readonly first: number; readonly digests: readonly string[] }
  | { readonly t: 'ResyncNeed'; readonly first: number; readonly need: readonly boolean[] }
  | { readonly t: 'ResyncDone'; readonly current: bigint; readonly history: readonly [bigint, bigint] }
  | { readonly t: 'VerifyReq'; readonly first: number; readonly digests: readonly string[] }
  | { readonly t: 'VerifyReply'; readonly first: number; readonly differ: readonly boolean[] }
  | { readonly t: 'State'; readonly role: Role; readonly disk: DiskState }
  /** Sent by a Primary that disconnects on purpose: the receiver will miss writes. */
  | { readonly t: 'Outdate' }
  | { readonly t: 'Ping' }
  | { readonly t: 'PingAck' }
  /**
   * Online grow (`halo volume resize` while Connected): the initiator asks the peer to grow to
   * `sizeBytes` data bytes; with `extendFile` a regular backing file may be extended to hold
   * them (`--size`), else the disk must already hold exactly that (grown by the administrator).
   */
  | {
      readonly t: 'GrowReq';
      readonly sizeBytes: number;
      readonly extendFile: boolean;
      readonly assumeClean: boolean;
    }
  /**
   * The peer's answer: `ok` once it grew to `sizeBytes`; otherwise nothing changed there,
   * `sizeBytes` is what its disk can hold and `reason` says why.
   */
  | { readonly t: 'GrowReply'; readonly ok: boolean; readonly sizeBytes: number; readonly reason: string }
  /** The initiator grew too: the grow is over on both nodes. */
  | { readonly t: 'GrowDone'; readonly sizeBytes: number }
  /**
   * From the node whose data the new area takes (the Primary): blocks [first, first+count) are
   * out of sync and follow as resync; the receiver becomes SyncTarget of `current`.
   */
  | { readonly t: 'GrowResync'; readonly first: number; readonly count: number; readonly current: bigint };

export type PeerMsgType = PeerMsg['t'];

const TYPES: readonly PeerMsgType[] = [
  'Handshake',
  'Data',
  'RecvAck',
  'WriteAck',
  'NegAck',
  'Barrier',
  'BarrierAck',
  'ResyncData',
  'ResyncAck',
  'ResyncCsum',
  'ResyncNeed',
  'ResyncDone',
  'VerifyReq',
  'VerifyReply',
  'State',
  'Ping',
  'PingAck',
  'Outdate',
  // New types go last: a type's code on the wire is its index here. Adding one changes no
  // existing encoding (WIRE_VERSION stays); a peer too old to know it drops the connection
  // on receiving it as malformed, and reconnects.
  'GrowReq',
  'GrowReply',
  'GrowDone',
  'GrowResync',
];

/** Longest refusal reason a GrowReply may carry (it ends up in the initiator's error message). */
export const MAX_REASON_CHARS = 1000;

/** Largest JSON header we accept in a message. */
export const MAX_HEADER_BYTES = 64 * 1024;

/**
 * Encoding: [u8 type][u32 header length][header JSON][payload]. The payload is the block data
 * (Data, ResyncData) or the bitmap (Handshake); bigints travel as hex strings.
 *
 * The messages of the write path (Data and its acks, barriers, ResyncData/ResyncAck, pings)
 * instead use a fixed binary header, marked by BINARY_FLAG in the type byte: they are sent
 * thousands of times a second and JSON was a measurable part of their cost. Numbers in it
 * are u48 (safe integers up to 2^48, far beyond any block device offset we accept).
 */
const BINARY_FLAG = 0x80;
const U48 = 2 ** 48;

/** Binary header bytes after the type byte, per message type. */
const BINARY_BYTES: Partial<Record<PeerMsgType, number>> = {
  Data: 13,
  RecvAck: 6,
  WriteAck: 6,
  NegAck: 6,
  Barrier: 6,
  BarrierAck: 6,
  ResyncData: 6,
  ResyncAck: 13,
  Ping: 0,
  PingAck: 0,
};

/** Bytes of the length in front of each message of a batch. */
export const LENGTH_PREFIX_BYTES = 4;

/** Each type's code on the wire (its index in TYPES), looked up once per message sent. */
const TYPE_CODES = new Map<PeerMsgType, number>(TYPES.map((t, i) => [t, i]));

function fitsU48(v: number): boolean {
  return Number.isSafeInteger(v) && v >= 0 && v < U48;
}

function putU48(b: Buffer, at: number, v: number): void {
  b.writeUIntBE(v, at, 6);
}

/** The message as pieces to send back to back: a header and (for block data) the payload itself, uncopied. */
export function encodePeerMsgParts(m: PeerMsg): Uint8Array[] {
  return encodeParts(m, 0);
}

/**
 * As `encodePeerMsgParts`, preceded by the message's length (u32 big-endian) in the same first
 * piece: how the engine packs several messages into one stream message. One small buffer per
 * message instead of two: replicated writes send one Data message each, and their peers one
 * ack each.
 */
export function encodeLengthPrefixedPeerMsgParts(m: PeerMsg): Uint8Array[] {
  return encodeParts(m, LENGTH_PREFIX_BYTES);
}

function encodeParts(m: PeerMsg, pre: number): Uint8Array[] {
  switch (m.t) {
    case 'Data': {
      if (!fitsU48(m.seq) || !fitsU48(m.offset)) break;
      const h = binaryHeader(m.t, pre, m.data.length);
      putU48(h, pre + 1, m.seq);
      putU48(h, pre + 7, m.offset);
      h[pre + 13] = m.fua ? 1 : 0;
      return [h, m.data];
    }
    case 'RecvAck':
    case 'WriteAck':
    case 'NegAck':
    case 'Barrier':
    case 'BarrierAck': {
      if (!fitsU48(m.seq)) break;
      const h = binaryHeader(m.t, pre, 0);
      putU48(h, pre + 1, m.seq);
      return [h];
    }
    case 'ResyncData': {
      if (!fitsU48(m.first)) break;
      const h = binaryHeader(m.t, pre, m.data.length);
      putU48(h, pre + 1, m.first);
      return [h, m.data];
    }
    case 'ResyncAck': {
      if (!fitsU48(m.first) || !fitsU48(m.count)) break;
      const h = binaryHeader(m.t, pre, 0);
      putU48(h, pre + 1, m.first);
      putU48(h, pre + 7, m.count);
      h[pre + 13] = m.ok ? 1 : 0;
      return [h];
    }
    case 'Ping':
    case 'PingAck':
      return [binaryHeader(m.t, pre, 0)];
    default:
      break;
  }
  const whole = encodeJsonMsg(m);
  if (pre === 0) return [whole];
  const len = Buffer.allocUnsafe(pre);
  len.writeUInt32BE(whole.length, 0);
  return [len, whole];
}

/** A binary message's header (after `pre` bytes holding the message length when `pre` is 4), type byte written. */
function binaryHeader(t: PeerMsgType, pre: number, payloadBytes: number): Buffer {
  const bin = BINARY_BYTES[t]!;
  const h = Buffer.allocUnsafe(pre + 1 + bin);
  if (pre > 0) h.writeUInt32BE(1 + bin + payloadBytes, 0);
  h[pre] = TYPE_CODES.get(t)! | BINARY_FLAG;
  return h;
}

export function encodePeerMsg(m: PeerMsg): Buffer {
  return Buffer.concat(encodePeerMsgParts(m));
}

function encodeJsonMsg(m: PeerMsg): Buffer {
  const { t, payload, header } = split(m);
  const h = Buffer.from(
    JSON.stringify(header, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)),
  );
  const out = Buffer.allocUnsafe(5 + h.length + payload.length);
  out.writeUInt8(TYPE_CODES.get(t)!, 0);
  out.writeUInt32BE(h.length, 1);
  h.copy(out, 5);
  out.set(payload, 5 + h.length);
  return out;
}

function split(m: PeerMsg): { t: PeerMsgType; payload: Uint8Array; header: object } {
  switch (m.t) {
    case 'Data':
      return { t: m.t, payload: m.data, header: { seq: m.seq, offset: m.offset, fua: m.fua } };
    case 'ResyncData':
      return { t: m.t, payload: m.data, header: { first: m.first } };
    case 'Handshake': {
      const { bitmap, t, ...rest } = m;
      return { t, payload: bitmap, header: rest };
    }
    default: {
      const { t, ...rest } = m;
      return { t, payload: new Uint8Array(0), header: rest };
    }
  }
}

const BIGINT_FIELDS = new Set(['current', 'bitmapUuid', 'syncSourceUuid']);

/** Decodes one message; returns a reason string for anything malformed. */
export function decodePeerMsg(b: Uint8Array): PeerMsg | string {
  if (b.length < 1) return 'empty message';
  // The engine hands over Buffers (views of the stream message): no second view for those.
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if ((buf.readUInt8(0) & BINARY_FLAG) !== 0) return decodeBinary(buf);
  if (b.length < 5) return 'message shorter than its header';
  const t = TYPES[buf.readUInt8(0)];
  if (!t) return `unknown message type ${buf.readUInt8(0)}`;
  const hl = buf.readUInt32BE(1);
  if (hl > MAX_HEADER_BYTES || 5 + hl > buf.length) return `bad header length ${hl}`;
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(5, 5 + hl).toString('utf8'), (k, v) => {
      if (
        (BIGINT_FIELDS.has(k) || k === 'history' || /^\d$/.test(k)) &&
        typeof v === 'string' &&
        v.startsWith('0x')
      ) {
        return BigInt(v);
      }
      return v;
    });
  } catch {
    return 'header is not JSON';
  }
  if (typeof header !== 'object' || header === null) return 'header is not an object';
  const payload = buf.subarray(5 + hl);
  const msg = { ...header, t } as Record<string, unknown>;
  if (t === 'Data' || t === 'ResyncData') msg.data = payload;
  if (t === 'Handshake') msg.bitmap = payload;
  return validate(msg) ?? (msg as unknown as PeerMsg);
}

function unexpectedPayload(t: PeerMsgType, extra: number): string {
  return `${t}: unexpected ${extra} payload bytes`;
}

/** A flag byte of a binary header: 0 or 1, anything else is malformed. */
function flagAt(buf: Buffer, at: number): boolean | undefined {
  const v = buf[at];
  return v === 0 ? false : v === 1 ? true : undefined;
}

function decodeBinary(buf: Buffer): PeerMsg | string {
  const t = TYPES[buf[0]! & ~BINARY_FLAG];
  const bin = t === undefined ? undefined : BINARY_BYTES[t];
  if (t === undefined || bin === undefined) return `unknown binary message type ${buf[0]}`;
  if (buf.length < 1 + bin) return `${t}: message shorter than its header`;
  // Only Data and ResyncData carry a payload; the others must end with their header.
  const extra = buf.length - 1 - bin;
  switch (t) {
    case 'Data': {
      const fua = flagAt(buf, 13);
      if (fua === undefined) return 'Data: bad fields';
      return { t, seq: buf.readUIntBE(1, 6), offset: buf.readUIntBE(7, 6), fua, data: buf.subarray(1 + bin) };
    }
    case 'RecvAck':
    case 'WriteAck':
    case 'NegAck':
    case 'Barrier':
    case 'BarrierAck':
      return extra === 0 ? { t, seq: buf.readUIntBE(1, 6) } : unexpectedPayload(t, extra);
    case 'ResyncData':
      return { t, first: buf.readUIntBE(1, 6), data: buf.subarray(1 + bin) };
    case 'ResyncAck': {
      const ok = flagAt(buf, 13);
      if (ok === undefined) return 'ResyncAck: bad fields';
      return extra === 0
        ? { t, first: buf.readUIntBE(1, 6), count: buf.readUIntBE(7, 6), ok }
        : unexpectedPayload(t, extra);
    }
    case 'Ping':
    case 'PingAck':
      return extra === 0 ? { t } : unexpectedPayload(t, extra);
    default:
      return `unknown binary message type ${buf[0]}`;
  }
}

function isNat(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Field checks, so a garbled (but authentic) message can never index outside a device. */
function validate(m: Record<string, unknown>): string | undefined {
  const need = (ok: boolean, what: string): string | undefined => (ok ? undefined : `${m.t}: bad ${what}`);
  switch (m.t) {
    case 'Data':
      return need(isNat(m.seq) && isNat(m.offset) && typeof m.fua === 'boolean', 'fields');
    case 'RecvAck':
    case 'WriteAck':
    case 'NegAck':
    case 'Barrier':
    case 'BarrierAck':
      return need(isNat(m.seq), 'seq');
    case 'ResyncData':
      return need(isNat(m.first), 'first');
    case 'ResyncAck':
      return need(isNat(m.first) && isNat(m.count) && typeof m.ok === 'boolean', 'fields');
    case 'ResyncCsum':
    case 'VerifyReq':
      return need(isNat(m.first) && Array.isArray(m.digests), 'fields');
    case 'ResyncNeed':
      return need(isNat(m.first) && Array.isArray(m.need), 'fields');
    case 'VerifyReply':
      return need(isNat(m.first) && Array.isArray(m.differ), 'fields');
    case 'Handshake':
      return need(
        typeof m.node === 'string' &&
          (m.version === undefined || isNat(m.version)) &&
          isNat(m.sizeBytes) &&
          typeof m.current === 'bigint' &&
          typeof m.bitmapUuid === 'bigint' &&
          Array.isArray(m.history) &&
          typeof m.syncSourceUuid === 'bigint',
        'fields',
      );
    case 'ResyncDone':
      return need(typeof m.current === 'bigint' && Array.isArray(m.history), 'fields');
    case 'GrowReq':
      return need(
        isNat(m.sizeBytes) && typeof m.extendFile === 'boolean' && typeof m.assumeClean === 'boolean',
        'fields',
      );
    case 'GrowReply':
      return need(
        typeof m.ok === 'boolean' &&
          isNat(m.sizeBytes) &&
          typeof m.reason === 'string' &&
          m.reason.length <= MAX_REASON_CHARS,
        'fields',
      );
    case 'GrowDone':
      return need(isNat(m.sizeBytes), 'sizeBytes');
    case 'GrowResync':
      return need(isNat(m.first) && isNat(m.count) && typeof m.current === 'bigint', 'fields');
    default:
      return undefined;
  }
}
