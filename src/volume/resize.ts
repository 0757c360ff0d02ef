import { type FileHandle, open, stat } from 'node:fs/promises';
import { HaloError } from '../lib/errors.ts';
import { BLOCK_BYTES } from './bitmap.ts';
import type { VolumeConfig } from './config.ts';
import { fileBytes } from './engine.ts';
import { grownMetadata, type VolumeMetadata } from './metadata.ts';
import {
  computeLayout,
  decodeSlot,
  encodeSlot,
  HEADER_BYTES,
  MAGIC,
  type MetaLayout,
} from './metadata_store.ts';

/**
 * `halo volume resize RES`: grows a volume after its backing disk grew (or grows a backing
 * regular file itself with `--size`), with the volume down on this node. Run it on both nodes;
 * the next `up` exports the new size and the handshake resyncs the new area (its bits are set).
 *
 * Internal metadata sits at the end of the backing disk, so growing moves it. The move is
 * crash-safe because the old slots are never touched until the new ones are written and synced:
 * a crash at any point leaves either the old metadata (at the old end, now inside the disk) or
 * the new one valid, and running `resize` again finds the newest valid slot by scanning back
 * from the end (bounded by MAX_SCAN_BYTES) and finishes the job. External metadata moves within
 * its own file the same way: the new slot is written where no valid old slot lies.
 */

/** How far back from the end of the disk `resize` looks for metadata the growth left behind. */
export const MAX_SCAN_BYTES = 16 * 1024 ** 3;
/** `create-md`'s quicker safety check for a grown disk (it runs on every fresh disk too). */
const CREATE_MD_SCAN_BYTES = 256 * 1024 ** 2;
/** Slots start on 512-byte boundaries (sector-aligned disks); the scan reads this much at a time. */
const SCAN_ALIGN = 512;
const SCAN_CHUNK_BYTES = 4 * 1024 * 1024;

export interface ResizeResult {
  readonly oldBytes: number;
  readonly newBytes: number;
  /** Bytes the backing file was extended by (with --size). */
  readonly grewFileBy: number;
  /** Blocks of the new area, marked for resync. */
  readonly newAreaBlocks: number;
}

interface FoundSlot {
  readonly seq: number;
  readonly meta: VolumeMetadata;
  readonly offset: number;
  readonly bytes: number;
}

async function readSlotAt(fh: FileHandle, offset: number): Promise<FoundSlot | undefined> {
  const head = Buffer.alloc(HEADER_BYTES);
  const { bytesRead } = await fh.read(head, 0, HEADER_BYTES, offset);
  if (bytesRead < HEADER_BYTES || !head.subarray(0, 8).equals(MAGIC)) return undefined;
  const bytes = HEADER_BYTES + head.readUInt32BE(16);
  if (bytes > 64 * 1024 ** 2) return undefined; // a bitmap for far beyond any disk: not a slot
  const buf = Buffer.alloc(bytes);
  await fh.read(buf, 0, bytes, offset);
  const s = decodeSlot(buf);
  return s ? { ...s, offset, bytes } : undefined;
}

function newest(slots: readonly (FoundSlot | undefined)[]): FoundSlot | undefined {
  let best: FoundSlot | undefined;
  for (const s of slots) if (s && (!best || s.seq > best.seq)) best = s;
  return best;
}

/** Every valid slot whose start lies in [from, to), found by its magic on SCAN_ALIGN boundaries. */
async function scanSlots(fh: FileHandle, from: number, to: number): Promise<FoundSlot[]> {
  const out: FoundSlot[] = [];
  const chunk = Buffer.alloc(SCAN_CHUNK_BYTES + MAGIC.length);
  for (let end = to; end > from; end -= SCAN_CHUNK_BYTES) {
    const start = Math.max(from, end - SCAN_CHUNK_BYTES);
    const { bytesRead } = await fh.read(chunk, 0, end - start + MAGIC.length, start);
    const first = Math.ceil(start / SCAN_ALIGN) * SCAN_ALIGN;
    for (let off = first; off < end; off += SCAN_ALIGN) {
      const i = off - start;
      if (i + MAGIC.length > bytesRead || !chunk.subarray(i, i + MAGIC.length).equals(MAGIC)) continue;
      const s = await readSlotAt(fh, off);
      if (s) out.push(s);
    }
  }
  return out;
}

function overlaps(a: number, aLen: number, b: number, bLen: number): boolean {
  return a < b + bLen && b < a + aLen;
}

/** The smallest backing file (whole blocks) whose layout holds `dataBytes` of data. */
export function fileBytesFor(dataBytes: number, metaDisk: string): number {
  if (metaDisk !== 'internal') return dataBytes;
  let f = dataBytes;
  for (let i = 0; i < 64; i++) {
    const l = computeLayout({ backingPath: '', fileBytes: f, metaDisk }).dataBytes;
    if (l >= dataBytes) return f;
    f += Math.max(BLOCK_BYTES, dataBytes - l);
  }
  throw new HaloError('resize-failed', `cannot find a file size holding ${dataBytes} data bytes`);
}

function layoutFor(cfg: VolumeConfig, fileSize: number): MetaLayout {
  return computeLayout({
    backingPath: cfg.self.disk,
    fileBytes: fileSize,
    metaDisk: cfg.self.metaDisk,
    ...(cfg.sizeBytes !== undefined ? { sizeBytes: cfg.sizeBytes } : {}),
  });
}

/** Resizes the volume of `cfg` on this node. The engine must not be running here. */
export async function resizeVolume(
  cfg: VolumeConfig,
  opts: { sizeBytes?: number } = {},
): Promise<ResizeResult> {
  const disk = cfg.self.disk;
  const internal = cfg.self.metaDisk === 'internal';
  if (
    opts.sizeBytes !== undefined &&
    (!Number.isSafeInteger(opts.sizeBytes) || opts.sizeBytes <= 0 || opts.sizeBytes % BLOCK_BYTES !== 0)
  )
    throw new HaloError(
      'bad-size',
      `--size ${opts.sizeBytes} must be a positive multiple of ${BLOCK_BYTES} bytes`,
    );
  const isFile = (await stat(disk).catch(() => undefined))?.isFile() ?? false;
  let size = await fileBytes(disk);
  const metaPath = internal ? disk : cfg.self.metaDisk.replace(/\[\d+\]$/, '');
  const fh = await open(metaPath, 'r+').catch((err: Error) => {
    throw new HaloError('metadata-open-failed', `cannot open metadata in ${metaPath}: ${err.message}`, {
      cause: err,
    });
  });
  try {
    const found = await findMetadata(fh, cfg, size, metaPath);
    const old = found.meta;
    let grewFileBy = 0;
    if (opts.sizeBytes !== undefined) {
      if (opts.sizeBytes < old.sizeBytes)
        throw new HaloError(
          'shrink-refused',
          `${cfg.resource} holds ${old.sizeBytes} bytes; halo does not shrink volumes`,
        );
      const want = fileBytesFor(opts.sizeBytes, cfg.self.metaDisk);
      if (want > size) {
        if (!isFile)
          throw new HaloError(
            'not-a-file',
            `${disk} is not a regular file: grow it yourself (e.g. lvextend), then run resize without --size`,
          );
        grewFileBy = want - size;
      }
    }
    const next = layoutFor(cfg, size + grewFileBy);
    if (next.dataBytes < old.sizeBytes)
      throw new HaloError(
        'shrink-refused',
        `${disk} now holds only ${next.dataBytes} data bytes but ${cfg.resource} has ${old.sizeBytes}; halo does not shrink volumes (restore the disk's size)`,
      );
    if (next.dataBytes === old.sizeBytes && found.atLayout) {
      return { oldBytes: old.sizeBytes, newBytes: old.sizeBytes, grewFileBy: 0, newAreaBlocks: 0 };
    }
    // The newest old slot must survive until the new metadata is synced: write the new slots
    // only where they do not overlap it (rotating an external slot out of the way first).
    let keep = found.slot;
    const free = (i: number) => !overlaps(next.slotOffsets[i]!, next.slotBytes, keep.offset, keep.bytes);
    if (!free(0) && !free(1)) {
      if (internal)
        throw new HaloError(
          'grow-too-small',
          `growing ${disk} by ${size + grewFileBy - (keep.offset + keep.bytes)} bytes leaves no room to move the metadata safely; grow it by at least ${2 * next.slotBytes} bytes`,
        );
      keep = await rotateToZero(fh, keep);
      if (!free(0) && !free(1))
        throw new HaloError('resize-failed', `no safe place for the new metadata in ${metaPath}`);
    }
    if (grewFileBy > 0) {
      await fh.truncate(size + grewFileBy);
      await fh.datasync();
      size += grewFileBy;
    }
    const grown = grownMetadata(old, next.dataBytes);
    const firstIdx = free(1) ? 1 : 0;
    let seq = keep.seq;
    for (const i of [firstIdx, 1 - firstIdx]) {
      seq++;
      const buf = encodeSlot(grown, seq, next.slotBytes);
      await fh.write(buf, 0, buf.length, next.slotOffsets[i]!);
      await fh.datasync();
    }
    if (internal) await eraseOldSlots(fh, found.all, next);
    return {
      oldBytes: old.sizeBytes,
      newBytes: next.dataBytes,
      grewFileBy,
      newAreaBlocks: Math.ceil(next.dataBytes / BLOCK_BYTES) - Math.ceil(old.sizeBytes / BLOCK_BYTES),
    };
  } finally {
    await fh.close();
  }
}

/**
 * Metadata of `cfg` that sits where the disk's current size does not put it (the disk grew
 * and `resize` has not run yet): `create-md` refuses to write over a volume like that.
 */
export async function misplacedMetadata(cfg: VolumeConfig): Promise<VolumeMetadata | undefined> {
  const size = await fileBytes(cfg.self.disk);
  const metaPath =
    cfg.self.metaDisk === 'internal' ? cfg.self.disk : cfg.self.metaDisk.replace(/\[\d+\]$/, '');
  const fh = await open(metaPath, 'r').catch(() => undefined);
  if (!fh) return undefined;
  try {
    const found = await findMetadata(fh, cfg, size, metaPath, CREATE_MD_SCAN_BYTES).catch(() => undefined);
    return found && !found.atLayout ? found.meta : undefined;
  } finally {
    await fh.close();
  }
}

/**
 * The newest metadata: at the layout of the current size (the disk did not grow, or a resize
 * finished), else the newest valid slot a scan finds (the disk grew; or a resize was cut short).
 */
async function findMetadata(
  fh: FileHandle,
  cfg: VolumeConfig,
  size: number,
  metaPath: string,
  scanBytes = MAX_SCAN_BYTES,
): Promise<{ meta: VolumeMetadata; slot: FoundSlot; all: FoundSlot[]; atLayout: boolean }> {
  const layout = layoutFor(cfg, size);
  const atLayout = (await Promise.all(layout.slotOffsets.map((o) => readSlotAt(fh, o)))).filter(
    (s): s is FoundSlot => s !== undefined,
  );
  const here = newest(atLayout);
  if (here && here.meta.sizeBytes === layout.dataBytes)
    return { meta: here.meta, slot: here, all: atLayout, atLayout: true };
  // Not where the current size puts it: the disk grew (or a resize was cut short). Scan.
  const scanned =
    cfg.self.metaDisk === 'internal'
      ? await scanSlots(fh, Math.max(0, size - scanBytes), size)
      : await scanSlots(fh, 0, Math.min((await fh.stat()).size, 2 * layout.slotBytes));
  const all = [...atLayout, ...scanned];
  const best = newest(all);
  if (!best)
    throw new HaloError(
      'no-metadata',
      `no halo metadata for ${cfg.resource} in ${metaPath} (searched the last ${Math.min(size, scanBytes)} bytes); if the disk grew by more than that, restore its old size and resize with --size`,
    );
  return { meta: best.meta, slot: best, all, atLayout: false };
}

/** External metadata: rewrites the newest slot at offset 0 (seq+1) so the new slots fit after it. */
async function rotateToZero(fh: FileHandle, s: FoundSlot): Promise<FoundSlot> {
  if (s.offset === 0) return s;
  const buf = encodeSlot(s.meta, s.seq + 1, s.bytes);
  await fh.write(buf, 0, buf.length, 0);
  await fh.datasync();
  return { ...s, seq: s.seq + 1, offset: 0 };
}

/** Zeroes old internal slots now inside the data area (they were only ever metadata). */
async function eraseOldSlots(fh: FileHandle, old: readonly FoundSlot[], next: MetaLayout): Promise<void> {
  for (const s of old) {
    if (next.slotOffsets.includes(s.offset)) continue;
    if (s.offset >= next.slotOffsets[0]!) continue;
    await fh.write(Buffer.alloc(s.bytes), 0, s.bytes, s.offset);
  }
  await fh.datasync();
}
