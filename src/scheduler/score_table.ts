import { addScores, formatScore } from '../cib/score.ts';
import type { ScoreReason } from './types.ts';

/**
 * Per-resource node scores with the reasons that produced them. A table starts from the node
 * criteria (availability, symmetric cluster) and each stage adds contributions through `add`,
 * which records why, so `explain` and `--show-scores` can show both.
 */
export class ScoreTable {
  readonly scores = new Map<string, number>();
  /** Nodes the resource may be placed on at all (asymmetric clusters start empty). */
  readonly allowed = new Set<string>();
  readonly reasons: ScoreReason[] = [];

  static copy(from: ScoreTable): ScoreTable {
    const t = new ScoreTable();
    for (const [k, v] of from.scores) t.scores.set(k, v);
    for (const n of from.allowed) t.allowed.add(n);
    t.reasons.push(...from.reasons);
    return t;
  }

  get(node: string): number {
    return this.scores.get(node) ?? 0;
  }

  /** Adds `score` on `node` (Pacemaker arithmetic) and records the reason. */
  add(node: string, score: number, kind: string, text: string): void {
    this.scores.set(node, addScores(this.get(node), score));
    if (score !== 0) this.reasons.push({ node, score, kind, text });
  }

  allow(node: string): void {
    this.allowed.add(node);
    if (!this.scores.has(node)) this.scores.set(node, 0);
  }

  /** Whether the resource may run on `node` (allowed and not negative). */
  canRun(node: string): boolean {
    return this.allowed.has(node) && this.get(node) >= 0;
  }

  describe(node: string): string {
    return `${formatScore(this.get(node))}`;
  }
}
