import { addScores, formatScore } from '../cib/score.ts';
import type { ScoreReason } from './types.ts';

/** Cluster nodes numbered once per schedule, so score tables can be dense arrays. */
export class NodeIndex {
  private readonly byName = new Map<string, number>();

  constructor(names: Iterable<string>) {
    for (const n of names) if (!this.byName.has(n)) this.byName.set(n, this.byName.size);
  }

  get size(): number {
    return this.byName.size;
  }

  /** The node's number, or -1 for a name that is not a cluster node. */
  indexOf(name: string): number {
    return this.byName.get(name) ?? -1;
  }

  names(): IterableIterator<string> {
    return this.byName.keys();
  }
}

const HAS_SCORE = 1;
const ALLOWED = 2;

/**
 * Per-resource node scores with the reasons that produced them. A table starts from the node
 * criteria (availability, symmetric cluster) and each stage adds contributions through `add`,
 * which records why, so `explain` and `--show-scores` can show both.
 *
 * Scores live in arrays indexed by node number (a 32-node × 10 000-resource cluster has 320 000
 * of them; a Map and a Set per resource cost five times the memory and time). A name that is not
 * a cluster node (a constraint may name one) goes to a small map beside them.
 */
export class ScoreTable {
  private readonly values: number[];
  private readonly flags: number[];
  private other: Map<string, { score?: number; allowed: boolean }> | undefined;
  readonly reasons: ScoreReason[] = [];

  constructor(private readonly nodes: NodeIndex) {
    this.values = new Array<number>(nodes.size).fill(0);
    this.flags = new Array<number>(nodes.size).fill(0);
  }

  static copy(from: ScoreTable): ScoreTable {
    const t = new ScoreTable(from.nodes);
    for (let i = 0; i < from.values.length; i++) {
      t.values[i] = from.values[i]!;
      t.flags[i] = from.flags[i]!;
    }
    if (from.other) t.other = new Map([...from.other].map(([k, v]) => [k, { ...v }]));
    t.reasons.push(...from.reasons);
    return t;
  }

  private otherEntry(node: string): { score?: number; allowed: boolean } {
    this.other ??= new Map();
    let e = this.other.get(node);
    if (!e) {
      e = { allowed: false };
      this.other.set(node, e);
    }
    return e;
  }

  get(node: string): number {
    const i = this.nodes.indexOf(node);
    return i >= 0 ? this.values[i]! : (this.other?.get(node)?.score ?? 0);
  }

  /** Whether a score was ever recorded for `node` (by `set`, `add` or `allow`). */
  has(node: string): boolean {
    const i = this.nodes.indexOf(node);
    return i >= 0 ? (this.flags[i]! & HAS_SCORE) !== 0 : this.other?.get(node)?.score !== undefined;
  }

  /** Sets the score on `node` without recording a reason. */
  set(node: string, score: number): void {
    const i = this.nodes.indexOf(node);
    if (i >= 0) {
      this.values[i] = score;
      this.flags[i]! |= HAS_SCORE;
    } else this.otherEntry(node).score = score;
  }

  /** Adds `score` on `node` (Pacemaker arithmetic) and records the reason. */
  add(node: string, score: number, kind: string, text: string): void {
    this.set(node, addScores(this.get(node), score));
    if (score !== 0) this.reasons.push({ node, score, kind, text });
  }

  allow(node: string): void {
    const i = this.nodes.indexOf(node);
    if (i >= 0) this.flags[i]! |= ALLOWED | HAS_SCORE;
    else {
      const e = this.otherEntry(node);
      e.allowed = true;
      e.score ??= 0;
    }
  }

  /** Whether the resource may be placed on `node` at all (asymmetric clusters start with none). */
  isAllowed(node: string): boolean {
    const i = this.nodes.indexOf(node);
    return i >= 0 ? (this.flags[i]! & ALLOWED) !== 0 : (this.other?.get(node)?.allowed ?? false);
  }

  /** Whether the resource may run on `node` (allowed and not negative). */
  canRun(node: string): boolean {
    return this.isAllowed(node) && this.get(node) >= 0;
  }

  /** Every recorded score: cluster nodes in index order, then other names. */
  entries(): [string, number][] {
    const out: [string, number][] = [];
    let i = 0;
    for (const name of this.nodes.names()) {
      if ((this.flags[i]! & HAS_SCORE) !== 0) out.push([name, this.values[i]!]);
      i++;
    }
    if (this.other) for (const [k, e] of this.other) if (e.score !== undefined) out.push([k, e.score]);
    return out;
  }

  /** Replaces every score (not what is allowed, nor the reasons) with `from`'s. */
  setScoresFrom(from: ScoreTable): void {
    for (let i = 0; i < this.values.length; i++) {
      this.values[i] = from.values[i]!;
      this.flags[i] = (this.flags[i]! & ~HAS_SCORE) | (from.flags[i]! & HAS_SCORE);
    }
    if (this.other) for (const e of this.other.values()) delete e.score;
    if (from.other)
      for (const [k, e] of from.other) if (e.score !== undefined) this.otherEntry(k).score = e.score;
  }

  // By node number (NodeIndex order), for loops over every node: no name lookups.

  getAt(i: number): number {
    return this.values[i]!;
  }

  isAllowedAt(i: number): boolean {
    return (this.flags[i]! & ALLOWED) !== 0;
  }

  allowAt(i: number): void {
    this.flags[i]! |= ALLOWED | HAS_SCORE;
  }

  /** `add` for the node numbered `i`, whose name is `node`. */
  addAt(i: number, node: string, score: number, kind: string, text: string): void {
    this.values[i] = addScores(this.values[i]!, score);
    this.flags[i]! |= HAS_SCORE;
    if (score !== 0) this.reasons.push({ node, score, kind, text });
  }

  describe(node: string): string {
    return `${formatScore(this.get(node))}`;
  }
}
