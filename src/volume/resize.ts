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
 * regular file itself with `--size`). Offline (`resizeVolume`), with the volume down on this
 * node: run it on both nodes; the next `up` exports the new size and the handshake resyncs the
 * new area (its bits are set). Online (`growOnline`), the engine moves its own metadata the
 * same way on each node while the core runs the grow with the peer (core.ts, GrowReq).
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

/** How a grow comes out: where the metadata goes, and by how much the backing file grows. */
interface GrowPlan {
  readonly next: MetaLayout;
  readonly grewFileBy: number;
}

/** A `--size` that is no whole number of blocks is refused before anything is opened. */
function checkSize(sizeBytes: number | undefined): void {
  if (
    sizeBytes !== undefined &&
    (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % BLOCK_BYTES !== 0)
  )
    throw new HaloError(
      'bad-size',
      `--size ${sizeBytes} must be a positive multiple of ${BLOCK_BYTES} bytes`,
    );
}

/**
 * Plans growing a volume of `oldBytes` on a disk of `size` bytes (nothing is written). With
 * `sizeBytes`, a regular backing file is to be extended to hold that much data; a block device
 * must already hold it. Throws a HaloError for a size that cannot be.
 */
function planGrowth(
  cfg: VolumeConfig,
  disk: { size: number; isFile: boolean; oldBytes: number },
  sizeBytes: number | undefined,
): GrowPlan {
  checkSize(sizeBytes);
  let grewFileBy = 0;
  if (sizeBytes !== undefined) {
    if (sizeBytes < disk.oldBytes)
      throw new HaloError(
        'shrink-refused',
        `${cfg.resource} holds ${disk.oldBytes} bytes; halo does not shrink volumes`,
      );
    const want = fileBytesFor(sizeBytes, cfg.self.metaDisk);
    if (want > disk.size) {
      if (!disk.isFile)
        throw new HaloError(
          'not-a-file',
          `${cfg.self.disk} is not a regular file: grow it yourself (e.g. lvextend), then run resize without --size`,
        );
      grewFileBy = want - disk.size;
    }
  }
  const next = layoutFor(cfg, disk.size + grewFileBy);
  if (next.dataBytes < disk.oldBytes)
    throw new HaloError(
      'shrink-refused',
      `${cfg.self.disk} now holds only ${next.dataBytes} data bytes but ${cfg.resource} has ${disk.oldBytes}; halo does not shrink volumes (restore the disk's size)`,
    );
  return { next, grewFileBy };
}

/**
 * Moves the metadata in `fh` (the newest valid slot `found`, among `all` valid ones) to where
 * `plan` puts it, extending the backing file first if the plan says so. Crash-safe: the old
 * slot is never touched until the new ones are written and synced (see the top of this file).
 * Refusals (HaloError 'grow-too-small', 'resize-failed') come before anything is written.
 */
async function moveMetadata(
  fh: FileHandle,
  cfg: VolumeConfig,
  at: { size: number; found: FoundSlot; all: readonly FoundSlot[]; metaPath: string },
  plan: GrowPlan,
): Promise<ResizeResult> {
  const internal = cfg.self.metaDisk === 'internal';
  const { next, grewFileBy } = plan;
  const old = at.found.meta;
  // The newest old slot must survive until the new metadata is synced: write the new slots
  // only where they do not overlap it (rotating an external slot out of the way first).
  let keep = at.found;
  const free = (i: number) => !overlaps(next.slotOffsets[i]!, next.slotBytes, keep.offset, keep.bytes);
  if (!free(0) && !free(1)) {
    if (internal)
      throw new HaloError(
        'grow-too-small',
        `growing ${cfg.self.disk} by ${at.size + grewFileBy - (keep.offset + keep.bytes)} bytes leaves no room to move the metadata safely; grow it by at least ${2 * next.slotBytes} bytes`,
      );
    keep = await rotateToZero(fh, keep);
    if (!free(0) && !free(1))
      throw new HaloError('resize-failed', `no safe place for the new metadata in ${at.metaPath}`);
  }
  if (grewFileBy > 0) {
    await fh.truncate(at.size + grewFileBy);
    await fh.datasync();
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
  if (internal) await eraseOldSlots(fh, at.all, next);
  return {
    oldBytes: old.sizeBytes,
    newBytes: next.dataBytes,
    grewFileBy,
    newAreaBlocks: Math.ceil(next.dataBytes / BLOCK_BYTES) - Math.ceil(old.sizeBytes / BLOCK_BYTES),
  };
}

async function openMeta(cfg: VolumeConfig): Promise<{ fh: FileHandle; metaPath: string }> {
  const metaPath =
    cfg.self.metaDisk === 'internal' ? cfg.self.disk : cfg.self.metaDisk.replace(/\[\d+\]$/, '');
  const fh = await open(metaPath, 'r+').catch((err: Error) => {
    throw new HaloError('metadata-open-failed', `cannot open metadata in ${metaPath}: ${err.message}`, {
      cause: err,
    });
  });
  return { fh, metaPath };
}

async function isRegularFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

/** Resizes the volume of `cfg` on this node. The engine must not be running here. */
export async function resizeVolume(
  cfg: VolumeConfig,
  opts: { sizeBytes?: number } = {},
): Promise<ResizeResult> {
  checkSize(opts.sizeBytes);
  const isFile = await isRegularFile(cfg.self.disk);
  const size = await fileBytes(cfg.self.disk);
  const { fh, metaPath } = await openMeta(cfg);
  try {
    const found = await findMetadata(fh, cfg, size, metaPath);
    const old = found.meta;
    const plan = planGrowth(cfg, { size, isFile, oldBytes: old.sizeBytes }, opts.sizeBytes);
    if (plan.next.dataBytes === old.sizeBytes && found.atLayout) {
      return { oldBytes: old.sizeBytes, newBytes: old.sizeBytes, grewFileBy: 0, newAreaBlocks: 0 };
    }
    return await moveMetadata(fh, cfg, { size, found: found.slot, all: found.all, metaPath }, plan);
  } finally {
    await fh.close();
  }
}

/** HaloError codes of an online grow that mean: refused, nothing was written. */
export const GROW_REFUSALS: ReadonlySet<string> = new Set([
  'bad-size',
  'shrink-refused',
  'not-a-file',
  'grow-too-small',
  'resize-failed',
  'size-differs',
  'no-metadata',
  'not-grown',
  'size-fixed',
]);

/**
 * The data bytes this node's disk holds for an online grow (`halo volume resize` with the
 * engine running), without changing anything: with `sizeBytes` (`--size`), what a regular
 * backing file extended to hold that much holds; else what the disk (grown by the
 * administrator) holds now. `oldBytes` is the volume's size; throws a HaloError when the disk
 * cannot grow it (with a code in GROW_REFUSALS).
 */
export async function onlineGrowTarget(
  cfg: VolumeConfig,
  opts: { oldBytes: number; sizeBytes?: number },
): Promise<number> {
  if (cfg.sizeBytes !== undefined)
    throw new HaloError(
      'size-fixed',
      `drbd.conf fixes the size of ${cfg.resource} (size ${cfg.sizeBytes}): raise it in drbd.conf on both nodes, then resize offline on each node`,
    );
  const disk = {
    size: await fileBytes(cfg.self.disk),
    isFile: await isRegularFile(cfg.self.disk),
    oldBytes: opts.oldBytes,
  };
  const { next } = planGrowth(cfg, disk, opts.sizeBytes);
  if (next.dataBytes === opts.oldBytes)
    throw new HaloError(
      'not-grown',
      `${cfg.self.disk} has not grown; ${cfg.resource} still holds ${opts.oldBytes} bytes (grow the disk on both nodes first, or pass --size for backing files)`,
    );
  return next.dataBytes;
}

/**
 * The engine's half of an online grow: makes this disk hold exactly `sizeBytes` data bytes
 * (extending a regular backing file when `extendFile`) and moves the metadata from where
 * `current` keeps it, crash-safely, as the offline resize does. The engine must hold its own
 * metadata writes back meanwhile. Returns the new layout. A HaloError with a code in
 * GROW_REFUSALS means nothing was written; any other failure may leave the move half done, in
 * the state a crash would (an offline `resize` finishes it).
 */
export async function growOnline(
  cfg: VolumeConfig,
  current: MetaLayout,
  opts: { sizeBytes: number; extendFile: boolean },
): Promise<{ result: ResizeResult; layout: MetaLayout }> {
  const isFile = await isRegularFile(cfg.self.disk);
  const size = await fileBytes(cfg.self.disk);
  const { fh, metaPath } = await openMeta(cfg);
  try {
    const all = (await Promise.all(current.slotOffsets.map((o) => readSlotAt(fh, o)))).filter(
      (x): x is FoundSlot => x !== undefined,
    );
    const found = newest(all);
    if (!found)
      throw new HaloError(
        'no-metadata',
        `no halo metadata for ${cfg.resource} where the engine keeps it in ${metaPath}`,
      );
    const plan = planGrowth(
      cfg,
      { size, isFile, oldBytes: found.meta.sizeBytes },
      opts.extendFile ? opts.sizeBytes : undefined,
    );
    if (plan.next.dataBytes !== opts.sizeBytes)
      throw new HaloError(
        'size-differs',
        plan.next.dataBytes < opts.sizeBytes
          ? `${cfg.self.disk} holds only ${plan.next.dataBytes} data bytes: grow it first (e.g. lvextend${isFile ? ', or resize with --size' : ''})`
          : `${cfg.self.disk} holds ${plan.next.dataBytes} data bytes, more than the ${opts.sizeBytes} asked for: both disks must hold the same size (grow the other one to match)`,
      );
    const result = await moveMetadata(fh, cfg, { size, found, all, metaPath }, plan);
    return { result, layout: plan.next };
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
