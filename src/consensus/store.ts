/**
 * The `RaftStore` port: where a node's log, hard state and snapshot survive crashes. Two
 * implementations pass the same test suite (store_test.ts): `MemoryStore` (tests, benchmarks of
 * the core) and `FileStore` (the daemon; in `sim/` it runs over a simulated disk).
 */

import { LogIndex, Term } from '../lib/brand.ts';
import { HaloError } from '../lib/errors.ts';
import type { Entry, HardState, PersistedState, Ready, Snapshot } from './types.ts';

/** The parts of a Ready that go to stable storage. */
export type PersistBatch = Pick<Ready, 'hardState' | 'entries' | 'snapshot' | 'compaction'>;

export interface RaftStore {
  /** The state as of the last successful `persist`. Call once, at start. */
  load(): PersistedState;
  /**
   * Makes `batch` durable, in Ready order (snapshot, compaction, entries, hard state), and
   * returns only once it is (fsync). An entry at index i replaces stored entries from i on;
   * entries covered by the snapshot are ignored. Throws `StoreError` on I/O failure, after
   * which the node must stop: it cannot know what reached the disk.
   */
  persist(batch: PersistBatch): void;
  close(): void;
}

export type StoreErrorCode = 'raft-store-io' | 'raft-store-corrupt';

export class StoreError extends HaloError {
  override name = 'StoreError';
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * The log-keeping logic both stores share: a snapshot plus the contiguous entries after it.
 * Returns whether the entries were truncated (a conflicting suffix was replaced).
 */
export class LogMirror {
  snapshot: Snapshot | null = null;
  entries: Entry[] = [];
  hardState: HardState = { term: Term(0), vote: null, commit: LogIndex(0) };

  snapIndex(): number {
    return this.snapshot?.meta.index ?? 0;
  }

  installSnapshot(s: Snapshot): void {
    this.snapshot = s;
    this.entries = [];
  }

  compact(s: Snapshot): boolean {
    if (s.meta.index <= this.snapIndex()) return false;
    this.snapshot = s;
    this.entries = this.entries.filter((e) => e.index > s.meta.index);
    const first = this.entries[0];
    if (first && first.index !== s.meta.index + 1) this.entries = [];
    return true;
  }

  /** Appends, skipping entries the snapshot covers; returns the entries actually written. */
  append(ents: readonly Entry[]): Entry[] {
    const fresh = ents.filter((e) => e.index > this.snapIndex());
    const first = fresh[0];
    if (!first) return [];
    const last = this.snapIndex() + this.entries.length;
    if (first.index > last + 1) {
      throw new StoreError('raft-store-corrupt', `append of index ${first.index} leaves a gap after ${last}`);
    }
    this.entries.length = first.index - this.snapIndex() - 1;
    this.entries.push(...fresh);
    return fresh;
  }

  state(): PersistedState {
    return { hardState: this.hardState, snapshot: this.snapshot, entries: [...this.entries] };
  }
}

/** A store that keeps everything in memory: durable only as long as the object lives. */
export class MemoryStore implements RaftStore {
  private readonly m = new LogMirror();
  private closed = false;

  constructor(initial?: PersistedState) {
    if (initial) {
      if (initial.snapshot) this.m.installSnapshot(initial.snapshot);
      this.m.append(initial.entries);
      this.m.hardState = initial.hardState;
    }
  }

  load(): PersistedState {
    return this.m.state();
  }

  persist(batch: PersistBatch): void {
    if (this.closed) throw new StoreError('raft-store-io', 'persist on a closed store');
    if (batch.snapshot) this.m.installSnapshot(batch.snapshot);
    if (batch.compaction) this.m.compact(batch.compaction);
    this.m.append(batch.entries);
    if (batch.hardState) this.m.hardState = batch.hardState;
  }

  close(): void {
    this.closed = true;
  }
}
