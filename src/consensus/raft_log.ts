/**
 * The in-memory view of a node's log: the snapshot's (index, term) followed by the entries
 * after it. The store holds the durable copy; this copy is what the core reads.
 */
import { assert } from '../lib/assert.ts';
import { LogIndex, type Term } from '../lib/brand.ts';
import type { Entry } from './types.ts';

export class RaftLog {
  /** Index and term of the last entry covered by the snapshot (0, 0 when there is none). */
  private snapIndex: LogIndex;
  private snapTerm: Term;
  private entries: Entry[];

  constructor(snapIndex: LogIndex, snapTerm: Term, entries: readonly Entry[]) {
    this.snapIndex = snapIndex;
    this.snapTerm = snapTerm;
    this.entries = [...entries];
    for (let i = 0; i < this.entries.length; i++) {
      assert(
        this.entries[i]!.index === snapIndex + i + 1,
        `RaftLog: entries not contiguous after ${snapIndex}`,
      );
    }
  }

  firstIndex(): LogIndex {
    return LogIndex(this.snapIndex + 1);
  }
  lastIndex(): LogIndex {
    return LogIndex(this.snapIndex + this.entries.length);
  }
  snapshotIndex(): LogIndex {
    return this.snapIndex;
  }
  lastTerm(): Term {
    return this.term(this.lastIndex())!;
  }

  /** The term of entry `i`, or undefined when `i` is compacted away or beyond the end. */
  term(i: number): Term | undefined {
    if (i === this.snapIndex) return this.snapTerm;
    if (i < this.snapIndex || i > this.lastIndex()) return undefined;
    return this.entries[i - this.snapIndex - 1]!.term;
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  entry(i: number): Entry | undefined {
    if (i <= this.snapIndex || i > this.lastIndex()) return undefined;
    return this.entries[i - this.snapIndex - 1];
  }

  /** Entries in [lo, hi] (inclusive), clipped to what the log holds. */
  slice(lo: number, hi: number): Entry[] {
    const from = Math.max(lo, this.snapIndex + 1) - this.snapIndex - 1;
    const to = Math.min(hi, this.lastIndex()) - this.snapIndex;
    if (to <= from) return [];
    return this.entries.slice(from, to);
  }

  /**
   * Appends `ents` (contiguous, first index ≤ lastIndex + 1), truncating any existing suffix
   * from the first entry whose term differs. Returns the first index that was (re)written, or
   * null when every entry was already present.
   */
  append(ents: readonly Entry[]): LogIndex | null {
    let k = 0;
    while (k < ents.length && this.matchTerm(ents[k]!.index, ents[k]!.term)) k++;
    // Entries at or below the snapshot are committed and already covered; skip them.
    while (k < ents.length && ents[k]!.index <= this.snapIndex) k++;
    if (k === ents.length) return null;
    const first = ents[k]!.index;
    assert(first <= this.lastIndex() + 1, `RaftLog.append: gap before index ${first}`);
    this.entries.length = first - this.snapIndex - 1;
    for (let j = k; j < ents.length; j++) {
      assert(ents[j]!.index === first + (j - k), 'RaftLog.append: entries not contiguous');
      this.entries.push(ents[j]!);
    }
    return first;
  }

  /** Drops entries up to and including `index` (which must be in the log): they are in a snapshot now. */
  compact(index: LogIndex): void {
    const t = this.term(index);
    assert(t !== undefined && index >= this.snapIndex, `RaftLog.compact: index ${index} not in log`);
    this.entries = this.entries.slice(index - this.snapIndex);
    this.snapIndex = index;
    this.snapTerm = t;
  }

  /** Replaces the whole log with a snapshot's position (InstallSnapshot). */
  restore(index: LogIndex, term: Term): void {
    this.entries = [];
    this.snapIndex = index;
    this.snapTerm = term;
  }

  /** Whether a log ending at (lastIndex, lastTerm) is at least as up to date as this one (§5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }
}
