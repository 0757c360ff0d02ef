import { fdatasyncSync, writeSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { assert } from '../lib/assert.ts';
import { HaloError } from '../lib/errors.ts';

/**
 * What the NBD server exports. Callers only pass ranges inside [0, sizeBytes): the server
 * checks them first. A write resolves once the bytes are in the device's cache; with `fua`
 * (force unit access) only once they are on stable storage. `flush` resolves once every write
 * that resolved before it was called is on stable storage. A rejection means the operation
 * failed (the client gets EIO); the device stays usable.
 */
export interface BlockDevice {
  readonly sizeBytes: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  write(offset: number, data: Uint8Array, fua: boolean): Promise<void>;
  flush(): Promise<void>;
  /** The range's contents become unspecified (we write zeroes so reads stay deterministic). */
  trim(offset: number, length: number): Promise<void>;
  writeZeroes(offset: number, length: number, fua: boolean): Promise<void>;
  close(): Promise<void>;
}

/**
 * Writes up to this size are copied into the page cache from the calling thread (one pwrite of
 * a few microseconds) instead of a thread-pool round trip, whose two thread wake-ups cost far
 * more than the copy for small blocks. Larger writes stay on the pool so they never stall the
 * event loop.
 */
export const INLINE_WRITE_BYTES = 64 * 1024;
/**
 * A FUA write's fdatasync runs on the calling thread (grouped: one per event-loop turn covers
 * every FUA write of that turn) while at most this much was written since the last sync, so it
 * only waits for the device cache flush. With more dirty data it goes to the thread pool, where
 * writeback of many megabytes cannot stall the event loop.
 */
export const INLINE_SYNC_DIRTY_BYTES = 1024 * 1024;

/**
 * Once this much was written since the last fdatasync began, one starts in the background
 * (nobody waits for it). A file in the page cache otherwise holds everything written since
 * the last flush, up to the kernel's dirty limit (gigabytes), and the next flush or FUA write
 * pays for all of it at once while the disk sat idle during the writes. A disk device under
 * DRBD has no such cache; this keeps a file-backed volume close to that.
 */
export const WRITEBACK_BYTES = 16 * 1024 * 1024;
/**
 * The same for a run of small writes (up to INLINE_WRITE_BYTES), at a higher mark: each small
 * write into a page under writeback costs about twice as much here (4 KiB random writes:
 * 5.7 → 11.1 µs per pwrite), and random writes rarely let the disk stream anyway. The mark
 * still bounds what the next flush must write back.
 */
export const SMALL_WRITEBACK_BYTES = 8 * WRITEBACK_BYTES;

/** Largest zero run written in one call by `writeZeroes`. */
const ZERO_CHUNK = 1024 * 1024;

function checkRange(dev: { sizeBytes: number }, offset: number, length: number): void {
  assert(
    Number.isSafeInteger(offset) && offset >= 0 && length >= 0 && offset + length <= dev.sizeBytes,
    `block range ${offset}+${length} outside device of ${dev.sizeBytes} bytes`,
  );
}

/** An in-memory device for tests and `sim/`. */
export class MemoryBlockDevice implements BlockDevice {
  readonly bytes: Uint8Array;
  flushes = 0;
  constructor(readonly sizeBytes: number) {
    this.bytes = new Uint8Array(sizeBytes);
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    return this.bytes.slice(offset, offset + length);
  }
  async write(offset: number, data: Uint8Array, _fua: boolean): Promise<void> {
    checkRange(this, offset, data.length);
    this.bytes.set(data, offset);
  }
  async flush(): Promise<void> {
    this.flushes++;
  }
  async trim(offset: number, length: number): Promise<void> {
    await this.writeZeroes(offset, length, false);
  }
  async writeZeroes(offset: number, length: number, _fua: boolean): Promise<void> {
    checkRange(this, offset, length);
    this.bytes.fill(0, offset, offset + length);
  }
  async close(): Promise<void> {}
}

/** A device backed by a region [base, base+sizeBytes) of a regular file or block device. */
export class FileBlockDevice implements BlockDevice {
  /** Bytes written since the last fdatasync started (an upper bound on what it must write back). */
  private unsynced = 0;
  /** FUA writes waiting for this turn's grouped fdatasync. */
  private syncWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  /** A background fdatasync is running (see WRITEBACK_BYTES). */
  private writingBack = false;
  /** Background fdatasyncs started (for tests and benches). */
  writebacks = 0;

  private constructor(
    private readonly fh: FileHandle,
    private size: number,
    private readonly base: number,
  ) {}

  get sizeBytes(): number {
    return this.size;
  }

  /**
   * Widens the device to `sizeBytes` (online grow: the backing disk grew underneath). Never
   * shrinks. A regular file must already be that long; a block device is taken at its word
   * (the caller measured it). Reads and writes in flight are unaffected; later ones may use
   * the new range.
   */
  async grow(sizeBytes: number): Promise<void> {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < this.size)
      throw new HaloError(
        'bad-size',
        `cannot grow a device of ${this.size} bytes to ${sizeBytes} bytes: devices only grow`,
      );
    const st = await this.fh.stat();
    if (st.isFile() && this.base + sizeBytes > st.size)
      throw new HaloError(
        'device-too-small',
        `backing file has ${st.size} bytes, need ${this.base + sizeBytes}: extend it first`,
      );
    this.size = sizeBytes;
  }

  static async open(
    path: string,
    opts: { sizeBytes?: number; base?: number } = {},
  ): Promise<FileBlockDevice> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r+');
    } catch (err) {
      throw new HaloError(
        'device-open-failed',
        `cannot open backing file ${path}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    const st = await fh.stat();
    const base = opts.base ?? 0;
    const size = opts.sizeBytes ?? st.size - base;
    if (size <= 0 || (st.isFile() && base + size > st.size)) {
      await fh.close();
      throw new HaloError(
        'device-too-small',
        `backing file ${path} has ${st.size} bytes, need ${base + size}`,
      );
    }
    return new FileBlockDevice(fh, size, base);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    // Not zero-filled first: every byte is either read or (past EOF) zeroed below.
    const out = Buffer.allocUnsafeSlow(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(out, done, length - done, this.base + offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (done < length) out.fill(0, done); // Past EOF of a sparse file: zeroes.
    return out;
  }

  async write(offset: number, data: Uint8Array, fua: boolean): Promise<void> {
    checkRange(this, offset, data.length);
    let done = 0;
    if (data.length <= INLINE_WRITE_BYTES) {
      const fd = this.fh.fd;
      while (done < data.length)
        done += writeSync(fd, data, done, data.length - done, this.base + offset + done);
    }
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, this.base + offset + done);
      done += bytesWritten;
    }
    this.unsynced += data.length;
    if (fua) await this.syncAfterWrite();
    else if (this.unsynced >= (data.length > INLINE_WRITE_BYTES ? WRITEBACK_BYTES : SMALL_WRITEBACK_BYTES))
      this.writeBack();
  }

  /** Starts writing back what is dirty, without waiting (errors surface at the next flush). */
  private writeBack(): void {
    if (this.writingBack) return;
    this.writingBack = true;
    this.writebacks++;
    const covered = this.unsynced;
    this.fh.datasync().then(
      () => {
        this.writingBack = false;
        this.unsynced = Math.max(0, this.unsynced - covered);
      },
      () => {
        this.writingBack = false;
      },
    );
  }

  async flush(): Promise<void> {
    this.unsynced = 0;
    await this.fh.datasync();
  }

  /** Makes every write that completed so far durable (see INLINE_SYNC_DIRTY_BYTES). */
  private syncAfterWrite(): Promise<void> {
    if (this.unsynced > INLINE_SYNC_DIRTY_BYTES) return this.flush();
    return new Promise((resolve, reject) => {
      this.syncWaiters.push({ resolve, reject });
      if (this.syncWaiters.length === 1) setImmediate(() => this.runGroupSync());
    });
  }

  private runGroupSync(): void {
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    this.unsynced = 0;
    try {
      fdatasyncSync(this.fh.fd);
    } catch (err) {
      for (const w of waiters) w.reject(err as Error);
      return;
    }
    for (const w of waiters) w.resolve();
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.writeZeroes(offset, length, false);
  }

  async writeZeroes(offset: number, length: number, fua: boolean): Promise<void> {
    checkRange(this, offset, length);
    const zero = Buffer.alloc(Math.min(length, ZERO_CHUNK));
    for (let at = 0; at < length; at += zero.length) {
      const n = Math.min(zero.length, length - at);
      await this.write(offset + at, zero.subarray(0, n), false);
    }
    if (fua) await this.syncAfterWrite();
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
