import { constants, type FileHandle, open } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { HaloError } from '../lib/errors.ts';
import { BLOCK_BYTES } from './bitmap.ts';
import type { VolumeMetadata } from './metadata.ts';

/**
 * Metadata on disk, crash-safe: two slots written alternately, each
 * [magic 8][seq u64][body length u32][crc32 u32][json length u32][json][bitmap]. A load takes
 * the valid slot (magic, length and checksum all right) with the highest sequence, so a write
 * torn by a crash leaves the previous slot in charge. Every write ends with fdatasync.
 *
 * Internal metadata lives in the last 2 slots of the backing file; external metadata
 * (`meta-disk /path`) starts at offset 0 of its own file.
 */

export const MAGIC = Buffer.from('HALOMD01');
/** Magic, sequence, body length and checksum: what precedes a slot's body. */
export const HEADER_BYTES = 24;
/** Room for the JSON part of a slot. */
const JSON_BYTES = 8192;

export interface MetaLayout {
  /** Data bytes exported to users. */
  readonly dataBytes: number;
  readonly slotBytes: number;
  /** Offsets of the two slots in the metadata file. */
  readonly slotOffsets: readonly [number, number];
  readonly metaPath: string;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

export function slotBytesFor(dataBytes: number): number {
  return alignUp(HEADER_BYTES + 4 + JSON_BYTES + Math.ceil(dataBytes / BLOCK_BYTES / 8), BLOCK_BYTES);
}

/** Where data and metadata go for a backing file of `fileBytes` bytes. */
export function computeLayout(opts: {
  backingPath: string;
  fileBytes: number;
  metaDisk: string;
  sizeBytes?: number;
}): MetaLayout {
  const internal = opts.metaDisk === 'internal';
  const maxData = Math.floor(opts.fileBytes / BLOCK_BYTES) * BLOCK_BYTES;
  const slot = slotBytesFor(maxData);
  const room = internal ? Math.floor((opts.fileBytes - 2 * slot) / BLOCK_BYTES) * BLOCK_BYTES : maxData;
  const dataBytes = opts.sizeBytes ?? room;
  if (dataBytes <= 0 || dataBytes > room) {
    throw new HaloError(
      'device-too-small',
      `backing file ${opts.backingPath} (${opts.fileBytes} bytes) cannot hold ${dataBytes > 0 ? dataBytes : 'any'} data bytes plus ${internal ? 2 * slot : 0} metadata bytes`,
    );
  }
  if (internal) {
    const base = opts.fileBytes - 2 * slot;
    return { dataBytes, slotBytes: slot, slotOffsets: [base, base + slot], metaPath: opts.backingPath };
  }
  const metaPath = opts.metaDisk.replace(/\[\d+\]$/, '');
  return { dataBytes, slotBytes: slot, slotOffsets: [0, slot], metaPath };
}

export function encodeSlot(meta: VolumeMetadata, seq: number, slotBytes: number): Buffer {
  const json = Buffer.from(
    JSON.stringify({
      current: meta.gen.current.toString(16),
      bitmapUuid: meta.gen.bitmap.toString(16),
      history: meta.gen.history.map((h) => h.toString(16)),
      role: meta.role,
      disk: meta.disk,
      sizeBytes: meta.sizeBytes,
      activityLog: meta.activityLog,
      syncSourceUuid: meta.syncSourceUuid.toString(16),
      running: meta.running,
      peerOutdated: meta.peerOutdated,
      crashedPrimary: meta.crashedPrimary,
    }),
  );
  if (json.length > JSON_BYTES)
    throw new HaloError('metadata-too-big', `metadata header is ${json.length} bytes`);
  const bodyLen = 4 + json.length + meta.bitmap.length;
  const out = Buffer.alloc(slotBytes);
  if (HEADER_BYTES + bodyLen > slotBytes)
    throw new HaloError('metadata-too-big', 'bitmap does not fit its slot');
  MAGIC.copy(out, 0);
  out.writeBigUInt64BE(BigInt(seq), 8);
  out.writeUInt32BE(bodyLen, 16);
  out.writeUInt32BE(json.length, HEADER_BYTES);
  json.copy(out, HEADER_BYTES + 4);
  out.set(meta.bitmap, HEADER_BYTES + 4 + json.length);
  out.writeUInt32BE(slotCrc(out, bodyLen), 20);
  return out;
}

/** The checksum covers the sequence number and length too, not only the body. */
function slotCrc(buf: Buffer, bodyLen: number): number {
  return crc32(buf.subarray(HEADER_BYTES, HEADER_BYTES + bodyLen), crc32(buf.subarray(8, 20)));
}

/** Decodes a slot; undefined when it is empty, torn or corrupt. */
export function decodeSlot(buf: Buffer): { seq: number; meta: VolumeMetadata } | undefined {
  if (buf.length < HEADER_BYTES + 4 || !buf.subarray(0, 8).equals(MAGIC)) return undefined;
  const bodyLen = buf.readUInt32BE(16);
  if (HEADER_BYTES + bodyLen > buf.length) return undefined;
  if (slotCrc(buf, bodyLen) !== buf.readUInt32BE(20)) return undefined;
  const jsonLen = buf.readUInt32BE(HEADER_BYTES);
  if (4 + jsonLen > bodyLen) return undefined;
  try {
    const j = JSON.parse(buf.subarray(HEADER_BYTES + 4, HEADER_BYTES + 4 + jsonLen).toString('utf8'));
    const bitmap = new Uint8Array(buf.subarray(HEADER_BYTES + 4 + jsonLen, HEADER_BYTES + bodyLen));
    const meta: VolumeMetadata = {
      gen: {
        current: BigInt(`0x${j.current}`),
        bitmap: BigInt(`0x${j.bitmapUuid}`),
        history: [BigInt(`0x${j.history[0]}`), BigInt(`0x${j.history[1]}`)],
      },
      role: j.role,
      disk: j.disk,
      sizeBytes: j.sizeBytes,
      activityLog: j.activityLog,
      syncSourceUuid: BigInt(`0x${j.syncSourceUuid}`),
      running: j.running,
      peerOutdated: j.peerOutdated,
      crashedPrimary: j.crashedPrimary,
      bitmap,
    };
    return { seq: Number(buf.readBigUInt64BE(8)), meta };
  } catch {
    return undefined;
  }
}

/** Reads and writes the two metadata slots. One write at a time (the engine serializes). */
export class MetadataStore {
  private seq = 0;
  private constructor(
    private readonly fh: FileHandle,
    readonly layout: MetaLayout,
    private readonly dsync = false,
  ) {}

  /**
   * With `dsync`, slot writes are O_DSYNC: each is durable when it returns and syncs only its
   * own range, instead of an fdatasync of the whole file (with internal metadata that also
   * wrote back every dirty data page: milliseconds per activity-log update under writes).
   */
  static async open(layout: MetaLayout, opts: { dsync?: boolean } = {}): Promise<MetadataStore> {
    try {
      const flags = opts.dsync ? constants.O_RDWR | constants.O_DSYNC : 'r+';
      return new MetadataStore(await open(layout.metaPath, flags), layout, opts.dsync === true);
    } catch (err) {
      throw new HaloError(
        'metadata-open-failed',
        `cannot open metadata in ${layout.metaPath}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  /** The newest valid metadata, or undefined when there is none (run create-md). */
  async load(): Promise<VolumeMetadata | undefined> {
    let best: { seq: number; meta: VolumeMetadata } | undefined;
    for (const off of this.layout.slotOffsets) {
      const buf = Buffer.alloc(this.layout.slotBytes);
      await this.fh.read(buf, 0, buf.length, off);
      const s = decodeSlot(buf);
      if (s && (!best || s.seq > best.seq)) best = s;
    }
    this.seq = best?.seq ?? 0;
    return best?.meta;
  }

  async write(meta: VolumeMetadata): Promise<void> {
    const seq = this.seq + 1;
    const buf = encodeSlot(meta, seq, this.layout.slotBytes);
    await this.fh.write(buf, 0, buf.length, this.layout.slotOffsets[seq % 2]!);
    if (!this.dsync) await this.fh.datasync();
    this.seq = seq;
  }

  /** Erases both slots (create-md starts from nothing). */
  async wipe(): Promise<void> {
    const zero = Buffer.alloc(this.layout.slotBytes);
    for (const off of this.layout.slotOffsets) await this.fh.write(zero, 0, zero.length, off);
    await this.fh.datasync();
    this.seq = 0;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
