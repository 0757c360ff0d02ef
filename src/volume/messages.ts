import type { DiskState, Role } from './metadata.ts';

/**
 * Messages between the two nodes of a volume, and their byte encoding (pure). The replication
 * stream carries them in order; `replication.ts` frames and authenticates them.
 */

export interface HandshakeMsg {
  readonly t: 'Handshake';
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
  | { readonly t: 'PingAck' };

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
];

/** Largest JSON header we accept in a message. */
export const MAX_HEADER_BYTES = 64 * 1024;

/**
 * Encoding: [u8 type][u32 header length][header JSON][payload]. The payload is the block data
 * (Data, ResyncData) or the bitmap (Handshake); bigints travel as hex strings.
 */
export function encodePeerMsg(m: PeerMsg): Buffer {
  const { t, payload, header } = split(m);
  const h = Buffer.from(
    JSON.stringify(header, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)),
  );
  const out = Buffer.allocUnsafe(5 + h.length + payload.length);
  out.writeUInt8(TYPES.indexOf(t), 0);
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
  if (b.length < 5) return 'message shorter than its header';
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
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
          isNat(m.sizeBytes) &&
          typeof m.current === 'bigint' &&
          typeof m.bitmapUuid === 'bigint' &&
          Array.isArray(m.history) &&
          typeof m.syncSourceUuid === 'bigint',
        'fields',
      );
    case 'ResyncDone':
      return need(typeof m.current === 'bigint' && Array.isArray(m.history), 'fields');
    default:
      return undefined;
  }
}
