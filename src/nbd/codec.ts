/**
 * The NBD wire protocol (fixed newstyle handshake + simple replies), as a pure codec: a decoder
 * that is fed bytes and returns parsed messages, and encoders that return bytes. No I/O here;
 * `server.ts` owns the sockets. Numbers are from the NBD protocol document (proto.md).
 */
import { ByteQueue } from '../lib/byte_queue.ts';

export const NBDMAGIC = 0x4e42444d41474943n;
export const IHAVEOPT = 0x49484156454f5054n;
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;

export const HandshakeFlag = { FIXED_NEWSTYLE: 1, NO_ZEROES: 2 } as const;
export const ClientFlag = { FIXED_NEWSTYLE: 1, NO_ZEROES: 2 } as const;

export const Opt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const;

export const Rep = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_UNKNOWN: 0x80000006,
  ERR_TOO_BIG: 0x80000009,
} as const;

export const Info = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;

export const TransmissionFlag = {
  HAS_FLAGS: 1,
  READ_ONLY: 2,
  SEND_FLUSH: 4,
  SEND_FUA: 8,
  ROTATIONAL: 16,
  SEND_TRIM: 32,
  SEND_WRITE_ZEROES: 64,
  CAN_MULTI_CONN: 256,
} as const;

export const Cmd = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6 } as const;
export const CmdFlag = { FUA: 1, NO_HOLE: 2, DF: 4 } as const;

/** errno values NBD carries in replies (Linux numbering, as the protocol requires). */
export const Errno = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
} as const;

/** Longest option payload we accept; export names and info requests are tiny. */
export const MAX_OPTION_LENGTH = 4096;
/** Largest READ/WRITE payload we accept (qemu and libnbd use ≤ 32 MiB). Larger → disconnect. */
export const MAX_REQUEST_PAYLOAD = 32 * 1024 * 1024;

export interface ClientFlagsMsg {
  readonly kind: 'clientFlags';
  readonly flags: number;
}
export interface OptionMsg {
  readonly kind: 'option';
  readonly option: number;
  readonly data: Uint8Array;
}
export interface RequestMsg {
  readonly kind: 'request';
  readonly flags: number;
  readonly type: number;
  readonly handle: bigint;
  readonly offset: bigint;
  readonly length: number;
  /** The payload of a WRITE; empty otherwise. */
  readonly data: Uint8Array;
}
/** The stream cannot be understood any more; the server must drop the connection. */
export interface FatalMsg {
  readonly kind: 'fatal';
  readonly reason: string;
}
export type ClientMsg = ClientFlagsMsg | OptionMsg | RequestMsg | FatalMsg;

export type DecoderPhase = 'clientFlags' | 'options' | 'transmission' | 'dead';

/**
 * Decodes what a client sends. The caller moves it from option haggling to transmission with
 * `enterTransmission()` once it has answered GO/EXPORT_NAME. After a `fatal` message the
 * decoder returns nothing more.
 */
export class NbdServerDecoder {
  /** Bytes received and not yet decoded (see ByteQueue: a large WRITE is joined once). */
  private readonly input = new ByteQueue();
  private phaseValue: DecoderPhase = 'clientFlags';

  get phase(): DecoderPhase {
    return this.phaseValue;
  }

  /** With `owned`, the caller hands `chunk` over (never modifies it again) and it is not copied. */
  push(chunk: Uint8Array, owned = false): void {
    if (this.phaseValue === 'dead') return;
    this.input.push(chunk, owned);
  }

  enterTransmission(): void {
    if (this.phaseValue === 'options') this.phaseValue = 'transmission';
  }

  /** Bytes buffered but not yet decoded (bounded by one message plus one chunk). */
  get buffered(): number {
    return this.input.size;
  }

  /** The next complete message, or undefined when more bytes are needed. */
  next(): ClientMsg | undefined {
    switch (this.phaseValue) {
      case 'dead':
        return undefined;
      case 'clientFlags':
        return this.nextClientFlags();
      case 'options':
        return this.nextOption();
      case 'transmission':
        return this.nextRequest();
    }
  }

  private fatal(reason: string): FatalMsg {
    this.phaseValue = 'dead';
    this.input.clear();
    return { kind: 'fatal', reason };
  }

  private nextClientFlags(): ClientMsg | undefined {
    if (this.input.size < 4) return undefined;
    const flags = this.input.take(4).readUInt32BE(0);
    if ((flags & ClientFlag.FIXED_NEWSTYLE) === 0)
      return this.fatal('client does not support fixed newstyle');
    if ((flags & ~(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES)) !== 0) {
      return this.fatal(`client sent unknown flags 0x${flags.toString(16)}`);
    }
    this.phaseValue = 'options';
    return { kind: 'clientFlags', flags };
  }

  private nextOption(): ClientMsg | undefined {
    if (this.input.size < 16) return undefined;
    const h = this.input.peek(16);
    const magic = h.readBigUInt64BE(0);
    if (magic !== IHAVEOPT) return this.fatal('option without IHAVEOPT magic');
    const option = h.readUInt32BE(8);
    const length = h.readUInt32BE(12);
    if (length > MAX_OPTION_LENGTH) return this.fatal(`option ${option} payload ${length} bytes is too long`);
    if (this.input.size < 16 + length) return undefined;
    this.input.take(16);
    const data = Buffer.from(this.input.take(length));
    return { kind: 'option', option, data };
  }

  private nextRequest(): ClientMsg | undefined {
    if (this.input.size < 28) return undefined;
    const h = this.input.peek(28);
    const magic = h.readUInt32BE(0);
    if (magic !== REQUEST_MAGIC) return this.fatal(`request with bad magic 0x${magic.toString(16)}`);
    const flags = h.readUInt16BE(4);
    const type = h.readUInt16BE(6);
    const handle = h.readBigUInt64BE(8);
    const offset = h.readBigUInt64BE(16);
    const length = h.readUInt32BE(24);
    let payload = 0;
    if (type === Cmd.WRITE) {
      // The payload must be consumed to stay in sync; refuse to buffer more than the limit.
      if (length > MAX_REQUEST_PAYLOAD) return this.fatal(`WRITE of ${length} bytes exceeds the limit`);
      payload = length;
    }
    if (this.input.size < 28 + payload) return undefined;
    this.input.take(28);
    const data = payload > 0 ? this.input.take(payload) : new Uint8Array(0);
    return { kind: 'request', flags, type, handle, offset, length, data };
  }
}

export function encodeGreeting(): Buffer {
  const b = Buffer.alloc(18);
  b.writeBigUInt64BE(NBDMAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES, 16);
  return b;
}

export function encodeOptionReply(
  option: number,
  type: number,
  data: Uint8Array = new Uint8Array(0),
): Buffer {
  const b = Buffer.alloc(20 + data.length);
  b.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(type, 12);
  b.writeUInt32BE(data.length, 16);
  b.set(data, 20);
  return b;
}

export function encodeInfoExport(sizeBytes: number, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(Info.EXPORT, 0);
  b.writeBigUInt64BE(BigInt(sizeBytes), 2);
  b.writeUInt16BE(flags, 10);
  return b;
}

export function encodeInfoBlockSize(min: number, preferred: number, max: number): Buffer {
  const b = Buffer.alloc(14);
  b.writeUInt16BE(Info.BLOCK_SIZE, 0);
  b.writeUInt32BE(min, 2);
  b.writeUInt32BE(preferred, 6);
  b.writeUInt32BE(max, 10);
  return b;
}

export function encodeInfoName(name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(2 + n.length);
  b.writeUInt16BE(Info.NAME, 0);
  b.set(n, 2);
  return b;
}

/** The answer to NBD_OPT_EXPORT_NAME: size, flags, and 124 zero bytes unless NO_ZEROES. */
export function encodeExportNameReply(sizeBytes: number, flags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(10 + (noZeroes ? 0 : 124));
  b.writeBigUInt64BE(BigInt(sizeBytes), 0);
  b.writeUInt16BE(flags, 8);
  return b;
}

export function encodeListEntry(name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(4 + n.length);
  b.writeUInt32BE(n.length, 0);
  b.set(n, 4);
  return b;
}

export function encodeSimpleReplyHeader(error: number, handle: bigint): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  b.writeBigUInt64BE(handle, 8);
  return b;
}

/** Parsed NBD_OPT_INFO / NBD_OPT_GO payload, or undefined when malformed. */
export interface InfoRequest {
  readonly name: string;
  readonly infos: readonly number[];
}

export function decodeInfoRequest(data: Uint8Array): InfoRequest | undefined {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.length < 6) return undefined;
  const nameLen = b.readUInt32BE(0);
  if (nameLen > b.length - 6) return undefined;
  const name = b.subarray(4, 4 + nameLen).toString('utf8');
  const count = b.readUInt16BE(4 + nameLen);
  if (b.length !== 6 + nameLen + 2 * count) return undefined;
  const infos: number[] = [];
  for (let i = 0; i < count; i++) infos.push(b.readUInt16BE(6 + nameLen + 2 * i));
  return { name, infos };
}

/** Client-side encoders, used by tests and the fuzzer to speak to the server. */
export function encodeOption(option: number, data: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(16 + data.length);
  b.writeBigUInt64BE(IHAVEOPT, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(data.length, 12);
  b.set(data, 16);
  return b;
}

export function encodeInfoRequest(name: string, infos: readonly number[] = []): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(6 + n.length + 2 * infos.length);
  b.writeUInt32BE(n.length, 0);
  b.set(n, 4);
  b.writeUInt16BE(infos.length, 4 + n.length);
  infos.forEach((t, i) => {
    b.writeUInt16BE(t, 6 + n.length + 2 * i);
  });
  return b;
}

export interface RequestFields {
  readonly flags?: number;
  readonly type: number;
  readonly handle: bigint;
  readonly offset: bigint;
  readonly length: number;
  readonly magic?: number;
}

export function encodeRequest(r: RequestFields, data: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(28 + data.length);
  b.writeUInt32BE(r.magic ?? REQUEST_MAGIC, 0);
  b.writeUInt16BE(r.flags ?? 0, 4);
  b.writeUInt16BE(r.type, 6);
  b.writeBigUInt64BE(r.handle, 8);
  b.writeBigUInt64BE(r.offset, 16);
  b.writeUInt32BE(r.length, 24);
  b.set(data, 28);
  return b;
}

/** Validates a request against the export; returns an errno, or 0 when the request may run. */
export function checkRequest(r: RequestMsg, sizeBytes: number, readOnly: boolean): number {
  const end = r.offset + BigInt(r.length);
  switch (r.type) {
    case Cmd.READ:
      if (r.length > MAX_REQUEST_PAYLOAD) return Errno.EINVAL;
      return end > BigInt(sizeBytes) ? Errno.EINVAL : 0;
    case Cmd.WRITE:
    case Cmd.WRITE_ZEROES:
    case Cmd.TRIM:
      if (readOnly) return Errno.EPERM;
      if (r.offset > BigInt(sizeBytes)) return Errno.ENOSPC;
      return end > BigInt(sizeBytes) ? Errno.ENOSPC : 0;
    case Cmd.FLUSH:
      return 0;
    case Cmd.CACHE:
      return end > BigInt(sizeBytes) ? Errno.EINVAL : 0;
    default:
      return Errno.EINVAL;
  }
}
