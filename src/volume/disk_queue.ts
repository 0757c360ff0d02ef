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
 *
 * Cost: every replicated write passes through here on both nodes, and the core pumps the
 * queue after every event, so a pump must not rescan the whole queue. It looks only at the
 * operations still waiting (usually none), and a waiting operation remembers the earlier one
 * that blocks it: while that one has not completed, it is still blocked (whether one op must
 * wait for another depends only on the two ops), so it is skipped without a scan. A new
 * operation is checked against the earlier ones from the nearest back, once.
 */
export type DiskOpKind = 'read' | 'write' | 'flush';

export interface DiskOp {
  readonly kind: DiskOpKind;
  readonly first: number;
  readonly count: number;
  /** Metadata sequence that must be on disk before this op may start (0 = none). */
  readonly needSeq: number;
  /**
   * Called (as a method of this object) when the op may start; returns nothing (the caller
   * records its action). It must not add or complete ops.
   */
  start(op: number): void;
  /** Called (as a method of this object) once the op completed and left the queue. */
  done(ok: boolean, data: Uint8Array | undefined): void;
}

/** Operations waiting or running at once; the shells stop feeding the core past this. */
export const MAX_DISK_OPS = 4096;

/** One queued operation: a node of the queue's list, in the order the ops were added. */
class Entry {
  running = false;
  /** Completed and removed from the queue (a blocker that finished no longer blocks). */
  finished = false;
  /** The earlier entry found blocking this one at the last check (still blocks until it finishes). */
  blockedBy: Entry | undefined = undefined;
  prev: Entry | undefined = undefined;
  next: Entry | undefined = undefined;
  readonly end: number;

  readonly kind: DiskOpKind;
  readonly first: number;
  readonly needSeq: number;

  constructor(
    readonly id: number,
    readonly op: DiskOp,
  ) {
    this.kind = op.kind;
    this.first = op.first;
    this.end = op.first + op.count;
    this.needSeq = op.needSeq;
  }
}

/** Whether `later` must wait for `earlier` (queued before it) to finish. */
function mustWait(earlier: Entry, later: Entry): boolean {
  if (later.kind === 'flush') return true;
  if (earlier.kind === 'flush') return false;
  if (earlier.kind === 'read' && later.kind === 'read') return false;
  return earlier.first < later.end && later.first < earlier.end;
}

export class DiskQueue {
  /** Every queued or running op by id (for completions). */
  private readonly byId = new Map<number, Entry>();
  /** The newest op of the list of queued and running ops (linked through `prev`/`next`). */
  private tail: Entry | undefined = undefined;
  /** Ops not started yet, oldest first. */
  private waiting: Entry[] = [];
  private nextId = 1;

  get size(): number {
    return this.byId.size;
  }

  add(op: DiskOp): number {
    assert(this.byId.size < MAX_DISK_OPS * 4, 'disk queue overflow: the shell ignored backpressure');
    const id = this.nextId++;
    const e = new Entry(id, op);
    this.byId.set(id, e);
    e.prev = this.tail;
    if (this.tail) this.tail.next = e;
    this.tail = e;
    this.waiting.push(e);
    return id;
  }

  /** Starts every op that may start now, in queue order. */
  pump(persistedSeq: number): void {
    const waiting = this.waiting;
    if (waiting.length === 0) return;
    let kept = 0;
    // `start` only records an action (it never adds or completes ops), so the list is stable here.
    for (let i = 0; i < waiting.length; i++) {
      const e = waiting[i]!;
      if (e.needSeq > persistedSeq || this.blocked(e)) {
        waiting[kept++] = e;
        continue;
      }
      e.running = true;
      e.op.start(e.id);
    }
    waiting.length = kept;
  }

  /** Whether an earlier op still in the queue keeps `e` from starting. */
  private blocked(e: Entry): boolean {
    if (e.blockedBy && !e.blockedBy.finished) return true;
    e.blockedBy = undefined;
    for (let p = e.prev; p; p = p.prev) {
      if (mustWait(p, e)) {
        e.blockedBy = p;
        return true;
      }
    }
    return false;
  }

  /** Completes a running op; returns false for an unknown id (a stale completion). */
  complete(id: number, ok: boolean, data: Uint8Array | undefined): boolean {
    const e = this.byId.get(id);
    if (!e) return false;
    assert(e.running, `disk op ${id} completed before it started`);
    this.byId.delete(id);
    e.finished = true;
    if (e.prev) e.prev.next = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = undefined;
    e.next = undefined;
    e.op.done(ok, data);
    return true;
  }
}
