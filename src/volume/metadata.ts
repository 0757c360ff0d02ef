/**
 * Volume metadata as a value (pure): DRBD's generation identifiers, role, disk state, the dirty
 * bitmap and the activity log. `metadata_store.ts` puts it on disk crash-safely.
 *
 * Generation identifiers ("UUIDs") are 64-bit random numbers. The lowest bit of `current` says
 * whether the node was Primary while that identifier was current; it travels into `bitmap`
 * when the identifier is retired, which is how the after-sb "younger/older primary" policies
 * tell who was Primary before the split. Comparisons ignore that bit.
 */

export type Role = 'Primary' | 'Secondary';
export type DiskState = 'Diskless' | 'Inconsistent' | 'Outdated' | 'DUnknown' | 'Consistent' | 'UpToDate';
export type ConnState = 'StandAlone' | 'Connecting' | 'Connected' | 'SyncSource' | 'SyncTarget';

/** The identifier a fresh `create-md` writes: "never synced with anyone". */
export const UUID_JUST_CREATED = 4n;
export const UUID_PRIMARY_BIT = 1n;

export interface Generations {
  readonly current: bigint;
  readonly bitmap: bigint;
  readonly history: readonly [bigint, bigint];
}

export interface VolumeMetadata {
  readonly gen: Generations;
  readonly role: Role;
  readonly disk: DiskState;
  readonly sizeBytes: number;
  /** Activity log: extent numbers (AL_EXTENT_BYTES each) that may hold unreplicated writes. */
  readonly activityLog: readonly number[];
  /** The `current` of the sync source this disk was last resyncing from (resume after a break). */
  readonly syncSourceUuid: bigint;
  /** Set while the engine runs; a load that finds it set knows the node crashed. */
  readonly running: boolean;
  /** The peer's disk was outdated by us (we promoted while it was away). */
  readonly peerOutdated: boolean;
  /** This node crashed while Primary and has not handshaken since (its AL blocks are suspect). */
  readonly crashedPrimary: boolean;
  /** Dirty bitmap bytes (1 bit per 4 KiB block). */
  readonly bitmap: Uint8Array;
}

export function sameUuid(a: bigint, b: bigint): boolean {
  return (a & ~UUID_PRIMARY_BIT) === (b & ~UUID_PRIMARY_BIT);
}

export function fmtUuid(u: bigint): string {
  return u.toString(16).toUpperCase().padStart(16, '0');
}

export function initialMetadata(sizeBytes: number, bitmapBytes: number): VolumeMetadata {
  return {
    gen: { current: UUID_JUST_CREATED, bitmap: 0n, history: [0n, 0n] },
    role: 'Secondary',
    disk: 'Inconsistent',
    sizeBytes,
    activityLog: [],
    syncSourceUuid: 0n,
    running: false,
    peerOutdated: false,
    crashedPrimary: false,
    bitmap: new Uint8Array(bitmapBytes),
  };
}

/**
 * Retires `current` into `bitmap` and draws a new current: done when a Primary loses its peer
 * or a node is promoted without one, so that later handshakes see who changed data since.
 */
export function newCurrent(gen: Generations, fresh: bigint, primary: boolean): Generations {
  const history: [bigint, bigint] = gen.bitmap !== 0n ? [gen.bitmap, gen.history[0]] : [...gen.history];
  const cur = primary ? fresh | UUID_PRIMARY_BIT : fresh & ~UUID_PRIMARY_BIT;
  return { current: cur, bitmap: gen.current, history };
}

/** A finished resync on the source: the bitmap identifier moves into history. */
export function syncSourceDone(gen: Generations): Generations {
  if (gen.bitmap === 0n) return gen;
  return { current: gen.current, bitmap: 0n, history: [gen.bitmap, gen.history[0]] };
}

export function withRoleBit(gen: Generations, primary: boolean): Generations {
  const current = primary ? gen.current | UUID_PRIMARY_BIT : gen.current & ~UUID_PRIMARY_BIT;
  if (gen.current === UUID_JUST_CREATED) return gen;
  return { ...gen, current };
}

/**
 * True when `next` claims data in sync that `prev` did not: a bitmap bit cleared, an
 * activity-log extent dropped, or the disk state upgraded to Consistent/UpToDate. Such
 * metadata may only reach stable storage after the data it describes is durable.
 */
export function claimsMoreInSync(prev: VolumeMetadata, next: VolumeMetadata): boolean {
  if (next.disk !== prev.disk && (next.disk === 'UpToDate' || next.disk === 'Consistent')) return true;
  for (const ext of prev.activityLog) if (!next.activityLog.includes(ext)) return true;
  const n = Math.min(prev.bitmap.length, next.bitmap.length);
  for (let i = 0; i < n; i++) if ((prev.bitmap[i]! & ~next.bitmap[i]!) !== 0) return true;
  return false;
}

/** Block size of the bitmap (metadata.ts stays free of bitmap.ts, whose class asserts). */
const GROW_BLOCK_BYTES = 4096;

/**
 * The metadata of a volume grown from `meta.sizeBytes` to `newSizeBytes` (`halo volume resize`):
 * the bitmap gets bits for the new blocks, all set, so the new area is resynced (its contents
 * differ between the nodes: whatever the grown disks held, old metadata slots included); the
 * generation identifiers and disk state stay, as the old area is as good as it was.
 */
export function grownMetadata(meta: VolumeMetadata, newSizeBytes: number): VolumeMetadata {
  const oldBlocks = Math.ceil(meta.sizeBytes / GROW_BLOCK_BYTES);
  const newBlocks = Math.ceil(newSizeBytes / GROW_BLOCK_BYTES);
  if (newBlocks < oldBlocks) throw new RangeError(`cannot shrink ${meta.sizeBytes} to ${newSizeBytes}`);
  const bitmap = new Uint8Array(Math.ceil(newBlocks / 8));
  bitmap.set(meta.bitmap.subarray(0, Math.min(meta.bitmap.length, bitmap.length)));
  for (let b = oldBlocks; b < newBlocks; b++) bitmap[b >> 3]! |= 1 << (b & 7);
  return { ...meta, sizeBytes: newSizeBytes, bitmap };
}
