import { assert } from '../lib/assert.ts';

/**
 * Orders disk operations (pure): an operation starts only when (a) the metadata it depends on
 * is persisted and (b) no earlier operation on an overlapping block range is still queued or
 * running (reads may overlap reads). A flush waits for every operation before it, so the
 * fdatasync covers every write queued ahead of it: that is what makes a replicated barrier
 * hold on the peer. Operations queued after a flush do NOT wait for it: a flush promises
 * nothing about later writes (an initiator that needs a write ordered after a flush issues it
 * only once the flush is acknowledged), and holding them back would stall the whole write
 * stream behind every fdatasync.
 */
export type DiskOpKind = 'read' | 'write' | 'flush';

export interface DiskOp {
  readonly kind: DiskOpKind;
  readonly first: number;
  readonly count: number;
  /** Metadata sequence that must be on disk before this op may start (0 = none). */
  readonly needSeq: number;
  /** Called when the op may start; returns nothing (the caller records its action). */
  readonly start: (op: number) => void;
  readonly done: (ok: boolean, data: Uint8Array | undefined) => void;
}

/** Operations waiting or running at once; the shells stop feeding the core past this. */
export const MAX_DISK_OPS = 4096;

interface Entry extends DiskOp {
  readonly id: number;
  running: boolean;
}

/** Whether `later` must wait for `earlier` (queued before it) to finish. */
function mustWait(earlier: Entry, later: Entry): boolean {
  if (later.kind === 'flush') return true;
  if (earlier.kind === 'flush') return false;
  if (earlier.kind === 'read' && later.kind === 'read') return false;
  return earlier.first < later.first + later.count && later.first < earlier.first + earlier.count;
}

export class DiskQueue {
  private entries: Entry[] = [];
  private nextId = 1;

  get size(): number {
    return this.entries.length;
  }

  add(op: DiskOp): number {
    assert(this.entries.length < MAX_DISK_OPS * 4, 'disk queue overflow: the shell ignored backpressure');
    const id = this.nextId++;
    this.entries.push({ ...op, id, running: false });
    return id;
  }

  /** Starts every op that may start now, in queue order. */
  pump(persistedSeq: number): void {
    for (let i = 0; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (e.running || e.needSeq > persistedSeq) continue;
      let blocked = false;
      for (let j = 0; j < i && !blocked; j++) blocked = mustWait(this.entries[j]!, e);
      if (blocked) continue;
      e.running = true;
      e.start(e.id);
    }
  }

  /** Completes a running op; returns false for an unknown id (a stale completion). */
  complete(id: number, ok: boolean, data: Uint8Array | undefined): boolean {
    const i = this.entries.findIndex((e) => e.id === id);
    if (i < 0) return false;
    const e = this.entries[i]!;
    assert(e.running, `disk op ${id} completed before it started`);
    this.entries.splice(i, 1);
    e.done(ok, data);
    return true;
  }
}
