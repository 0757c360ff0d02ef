/**
 * The durable Raft store (a shell): one append-only log file of checksummed records plus one
 * snapshot file, in a directory of its own.
 *
 *   log:       record*            record = u32 length | u32 crc32(payload) | payload (UTF-8 JSON)
 *              payload = {"e": Entry} | {"h": HardState}
 *   snapshot:  "HSNP" | u32 length | u32 crc32(payload) | payload ({meta, data})
 *
 * A record is accepted only when complete and its checksum matches. At recovery the first bad
 * record ends the log: a crash tore the tail of a write that was never fsynced (and so never
 * acknowledged), and the file is truncated there. Replaying records in order rebuilds the log
 * (an entry at index i replaces everything from i on) and the last hard state. The snapshot and
 * every log rewrite are atomic: write a temp file, fsync it, rename, fsync the directory.
 *
 * File I/O goes through the `StoreFs` port so that `sim/` can run this exact code over a disk
 * that loses un-fsynced writes and tears them on crash.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { LogMirror, type PersistBatch, type RaftStore, StoreError } from './store.ts';
import type { Entry, HardState, PersistedState, Snapshot } from './types.ts';

/** The synchronous file operations the store needs. Paths are relative to the store directory. */
export interface StoreFs {
  /** The whole file, or null when it does not exist. */
  readFile(name: string): Uint8Array | null;
  /** Appends (creating the file); not durable until `fsync`. */
  appendFile(name: string, data: Uint8Array): void;
  /** Creates or truncates, then writes; not durable until `fsync`. */
  writeFile(name: string, data: Uint8Array): void;
  fsync(name: string): void;
  /** Atomically replaces `to`; the new name is durable after `fsyncDir`. */
  rename(from: string, to: string): void;
  fsyncDir(): void;
  truncate(name: string, length: number): void;
  unlink(name: string): void;
  /** Releases open files. */
  close?(): void;
}

const LOG = 'raft.log';
const SNAP = 'raft.snap';
const TMP_SUFFIX = '.tmp';
const SNAP_MAGIC = 0x48534e50; // "HSNP"
const RECORD_HEADER = 8;
/** A record larger than this is corruption, not data (a snapshot never goes in the log). */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function frame(payload: Uint8Array, magic: boolean): Uint8Array {
  const head = magic ? 12 : RECORD_HEADER;
  const out = new Uint8Array(head + payload.length);
  const dv = new DataView(out.buffer);
  let o = 0;
  if (magic) {
    dv.setUint32(0, SNAP_MAGIC);
    o = 4;
  }
  dv.setUint32(o, payload.length);
  dv.setUint32(o + 4, zlib.crc32(payload));
  out.set(payload, head);
  return out;
}

function encodeRecord(r: { e: Entry } | { h: HardState }): Uint8Array {
  return frame(enc.encode(JSON.stringify(r)), false);
}

/** Parses log records; stops at the first incomplete or corrupt one and reports where. */
export function parseLog(buf: Uint8Array): { records: unknown[]; validBytes: number } {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const records: unknown[] = [];
  let off = 0;
  while (off + RECORD_HEADER <= buf.length) {
    const len = dv.getUint32(off);
    const crc = dv.getUint32(off + 4);
    if (len > MAX_RECORD_BYTES || off + RECORD_HEADER + len > buf.length) break;
    const payload = buf.subarray(off + RECORD_HEADER, off + RECORD_HEADER + len);
    if (zlib.crc32(payload) !== crc) break;
    let rec: unknown;
    try {
      rec = JSON.parse(dec.decode(payload));
    } catch {
      break;
    }
    records.push(rec);
    off += RECORD_HEADER + len;
  }
  return { records, validBytes: off };
}

function parseSnapshot(buf: Uint8Array): Snapshot {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < 12 || dv.getUint32(0) !== SNAP_MAGIC) {
    throw new StoreError('raft-store-corrupt', `${SNAP}: not a halo snapshot file (bad magic)`);
  }
  const len = dv.getUint32(4);
  const payload = buf.subarray(12, 12 + len);
  if (payload.length !== len || zlib.crc32(payload) !== dv.getUint32(8)) {
    throw new StoreError('raft-store-corrupt', `${SNAP}: checksum mismatch; the snapshot file is damaged`);
  }
  return JSON.parse(dec.decode(payload)) as Snapshot;
}

function isEntryRecord(r: unknown): r is { e: Entry } {
  return typeof r === 'object' && r !== null && 'e' in r;
}
function isHardRecord(r: unknown): r is { h: HardState } {
  return typeof r === 'object' && r !== null && 'h' in r;
}

export class FileStore implements RaftStore {
  private readonly fs: StoreFs;
  private readonly m = new LogMirror();
  /** Bytes of torn tail removed at the last `load` (for tests and logs). */
  tornBytesDropped = 0;

  constructor(storeFs: StoreFs) {
    this.fs = storeFs;
  }

  /** Opens a store in a real directory (created if missing). */
  static open(dir: string): FileStore {
    return new FileStore(new NodeStoreFs(dir));
  }

  load(): PersistedState {
    for (const n of [LOG, SNAP]) this.fs.unlink(n + TMP_SUFFIX);
    const snapBytes = this.fs.readFile(SNAP);
    const snap = snapBytes ? parseSnapshot(snapBytes) : null;
    if (snap) this.m.installSnapshot(snap);
    let logBytes = this.fs.readFile(LOG);
    if (logBytes === null) {
      // Create the log and make its name durable now; later appends only fsync the file.
      logBytes = new Uint8Array(0);
      this.fs.writeFile(LOG, logBytes);
      this.fs.fsync(LOG);
      this.fs.fsyncDir();
    }
    const { records, validBytes } = parseLog(logBytes);
    if (validBytes < logBytes.length) {
      this.tornBytesDropped = logBytes.length - validBytes;
      this.fs.truncate(LOG, validBytes);
      this.fs.fsync(LOG);
    }
    this.replay(records, snap);
    return this.m.state();
  }

  private replay(records: unknown[], snap: Snapshot | null): void {
    const log: Entry[] = [];
    for (const r of records) {
      if (isHardRecord(r)) this.m.hardState = r.h;
      else if (isEntryRecord(r)) {
        const e = r.e;
        const first = log[0]?.index ?? e.index;
        if (e.index > first + log.length) {
          throw new StoreError(
            'raft-store-corrupt',
            `${LOG}: entry ${e.index} follows ${first + log.length - 1}`,
          );
        }
        log.length = Math.max(0, e.index - first);
        log.push(e);
      } else {
        throw new StoreError('raft-store-corrupt', `${LOG}: record of unknown kind`);
      }
    }
    // Keep the entries after the snapshot only if they continue it: either the log was rewritten
    // after this snapshot (it starts right after it) or it holds the snapshot's last entry. A log
    // left over from before an installed snapshot is another history and is discarded.
    const si = snap?.meta.index ?? 0;
    const startsAfter = log[0]?.index === si + 1;
    const holdsLast = log.some((e) => e.index === si && e.term === snap?.meta.term);
    const keep = si === 0 || startsAfter || holdsLast ? log.filter((e) => e.index > si) : [];
    if (keep[0] && keep[0].index !== si + 1) this.m.entries = [];
    else this.m.entries = keep;
  }

  persist(batch: PersistBatch): void {
    try {
      let rewrite = false;
      if (batch.snapshot) {
        this.writeSnapshot(batch.snapshot);
        this.m.installSnapshot(batch.snapshot);
        rewrite = true;
      }
      if (batch.compaction && batch.compaction.meta.index > this.m.snapIndex()) {
        this.writeSnapshot(batch.compaction);
        this.m.compact(batch.compaction);
        rewrite = true;
      }
      const written = this.m.append(batch.entries);
      if (batch.hardState) this.m.hardState = batch.hardState;
      if (rewrite) {
        this.rewriteLog();
        return;
      }
      const parts = written.map((e) => encodeRecord({ e }));
      if (batch.hardState) parts.push(encodeRecord({ h: batch.hardState }));
      if (parts.length === 0) return;
      this.fs.appendFile(LOG, concat(parts));
      this.fs.fsync(LOG);
    } catch (e) {
      if (e instanceof StoreError) throw e;
      throw new StoreError('raft-store-io', `cannot persist the Raft log: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  close(): void {
    this.fs.close?.();
  }

  private writeSnapshot(s: Snapshot): void {
    const tmp = SNAP + TMP_SUFFIX;
    this.fs.writeFile(tmp, frame(enc.encode(JSON.stringify(s)), true));
    this.fs.fsync(tmp);
    this.fs.rename(tmp, SNAP);
    this.fs.fsyncDir();
  }

  /** Replaces the log file with the hard state and the entries after the snapshot, atomically. */
  private rewriteLog(): void {
    const tmp = LOG + TMP_SUFFIX;
    const parts = this.m.entries.map((e) => encodeRecord({ e }));
    parts.push(encodeRecord({ h: this.m.hardState }));
    this.fs.writeFile(tmp, concat(parts));
    this.fs.fsync(tmp);
    this.fs.rename(tmp, LOG);
    this.fs.fsyncDir();
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** `StoreFs` on a real directory. Keeps the log file open for appends. */
export class NodeStoreFs implements StoreFs {
  private readonly dir: string;
  private readonly fds = new Map<string, number>();

  constructor(dir: string) {
    this.dir = dir;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private p(name: string): string {
    return path.join(this.dir, name);
  }

  private fd(name: string): number {
    let fd = this.fds.get(name);
    if (fd === undefined) {
      fd = fs.openSync(this.p(name), 'a', 0o600);
      this.fds.set(name, fd);
    }
    return fd;
  }

  private closeFd(name: string): void {
    const fd = this.fds.get(name);
    if (fd !== undefined) {
      fs.closeSync(fd);
      this.fds.delete(name);
    }
  }

  readFile(name: string): Uint8Array | null {
    try {
      return fs.readFileSync(this.p(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }
  appendFile(name: string, data: Uint8Array): void {
    const fd = this.fd(name);
    let off = 0;
    while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
  }
  writeFile(name: string, data: Uint8Array): void {
    this.closeFd(name);
    fs.writeFileSync(this.p(name), data, { mode: 0o600 });
  }
  fsync(name: string): void {
    const cached = this.fds.get(name);
    if (cached !== undefined) {
      fs.fsyncSync(cached);
      return;
    }
    const fd = fs.openSync(this.p(name), 'r+');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  rename(from: string, to: string): void {
    this.closeFd(from);
    this.closeFd(to);
    fs.renameSync(this.p(from), this.p(to));
  }
  fsyncDir(): void {
    const fd = fs.openSync(this.dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  truncate(name: string, length: number): void {
    this.closeFd(name);
    fs.truncateSync(this.p(name), length);
  }
  unlink(name: string): void {
    this.closeFd(name);
    fs.rmSync(this.p(name), { force: true });
  }
  close(): void {
    for (const name of [...this.fds.keys()]) this.closeFd(name);
  }
}
