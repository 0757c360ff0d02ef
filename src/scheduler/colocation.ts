import type { ColocationConstraint, ResourceSet } from '../cib/model.ts';
import { parseScore } from '../cib/score.ts';
import { getOrInsert } from './collections.ts';
import { invalid } from './errors.ts';
import { expandRef, isTrue, type Unpacked } from './unpack.ts';

/**
 * Colocation constraints (`rsc_colocation`): the dependent is placed relative to where the
 * primary is placed. Sets expand as Pacemaker does: inside a sequential set each member is
 * colocated with the one before it (with the one after it under `ordering=listed`); between
 * sets, the earlier set depends on the later one.
 */
export interface ColocationEntry {
  readonly id: string;
  /** Configured ids. */
  readonly dependent: string;
  readonly primary: string;
  readonly score: number;
  /** Role of the dependent the constraint applies to (`Promoted` feeds promotion scores). */
  readonly dependentRole: string | undefined;
  /** Role the primary must have on the node (`Promoted`: only where it is promoted). */
  readonly primaryRole: string | undefined;
  /** Colocate on nodes sharing this attribute's value instead of the same node. */
  readonly nodeAttribute: string;
  /** Whether the dependent's preferences pull the primary (Pacemaker's `influence`). */
  readonly influence: boolean;
}

function role(r: string | undefined): string | undefined {
  if (!r) return undefined;
  const l = r.toLowerCase();
  if (l === 'master' || l === 'promoted') return 'Promoted';
  if (l === 'slave' || l === 'unpromoted') return 'Unpromoted';
  if (l === 'started') return undefined;
  return r;
}

export function unpackColocations(u: Unpacked): ColocationEntry[] {
  const out: ColocationEntry[] = [];
  for (const c of u.cib.configuration.constraints) {
    if (c.kind !== 'rsc_colocation') continue;
    const s = parseScore(c.score ?? '0');
    if (!s.ok) invalid(`colocation '${c.id}': ${s.reason}`);
    const score = s.score;
    const nodeAttribute = c.nodeAttribute ?? '#uname';
    const influence = isTrue(c.influence, true);
    const push = (
      dependentRef: string,
      primaryRef: string,
      dr: string | undefined,
      pr: string | undefined,
      sc = score,
    ): void => {
      for (const dependent of expandRef(u, dependentRef))
        for (const primary of expandRef(u, primaryRef)) {
          const primaryRes = u.byConfiguredId.get(primary);
          if (!u.byConfiguredId.has(dependent) || !primaryRes || dependent === primary) continue;
          // A clone that is not promotable has no roles to match: Pacemaker places the dependent
          // by where its instances run, whatever role the constraint names.
          const unroled = primaryRes.kind === 'clone' && !primaryRes.clone?.promotable;
          out.push({
            id: c.id,
            dependent,
            primary,
            score: sc,
            dependentRole: role(dr),
            primaryRole: unroled ? undefined : role(pr),
            nodeAttribute,
            influence,
          });
        }
    };
    if (c.sets.length === 0) {
      if (c.rsc === undefined || c.withRsc === undefined)
        invalid(`colocation '${c.id}' needs rsc and with-rsc, or resource sets`);
      // Two templates or tags cannot be colocated: Pacemaker ignores such a constraint.
      if (!u.byConfiguredId.has(c.rsc) && !u.byConfiguredId.has(c.withRsc)) continue;
      push(c.rsc, c.withRsc, c.rscRole, c.withRscRole);
      continue;
    }
    expandSets(c, c.sets, score, push, u);
  }
  return out;
}

function setScore(set: ResourceSet, dflt: number): number {
  if (set.score === undefined) return dflt;
  const s = parseScore(set.score);
  return s.ok ? s.score : dflt;
}

function expandSets(
  c: ColocationConstraint,
  rawSets: readonly ResourceSet[],
  score: number,
  push: (d: string, p: string, dr: string | undefined, pr: string | undefined, sc?: number) => void,
  u?: Unpacked,
): void {
  const sets = u
    ? rawSets.map((s) => ({ ...s, resources: s.resources.flatMap((id) => expandRef(u, id)) }))
    : rawSets;
  for (const set of sets) {
    const sc = setScore(set, score);
    const sequential = isTrue(set.sequential, true);
    // A negative score keeps every member away from every other, sequential or not.
    // The set's (undocumented) ordering: `group` (the default) colocates each member with the
    // one before it, as a group does; any other value (`listed`) each member with the one after.
    const groupOrdering = (set.ordering ?? 'group').toLowerCase() === 'group';
    if (sequential && sc >= 0) {
      for (let i = 1; i < set.resources.length; i++) {
        const [earlier, later] = [set.resources[i - 1]!, set.resources[i]!];
        if (groupOrdering) push(later, earlier, set.role, set.role, sc);
        else push(earlier, later, set.role, set.role, sc);
      }
    } else if (sc < 0) {
      for (let i = 0; i < set.resources.length; i++)
        for (let j = i + 1; j < set.resources.length; j++)
          push(set.resources[j]!, set.resources[i]!, set.role, set.role, sc);
    }
  }
  for (let k = 0; k + 1 < sets.length; k++) {
    const s1 = sets[k]!;
    const s2 = sets[k + 1]!;
    const seq1 = isTrue(s1.sequential, true);
    const seq2 = isTrue(s2.sequential, true);
    const d = seq1 ? s1.resources[0] : undefined;
    const p = seq2 ? s2.resources[s2.resources.length - 1] : undefined;
    if (d !== undefined && p !== undefined) push(d, p, s1.role, s2.role);
    else if (d !== undefined) for (const x of s2.resources) push(d, x, s1.role, s2.role);
    else if (p !== undefined) for (const x of s1.resources) push(x, p, s1.role, s2.role);
    else for (const x of s1.resources) for (const y of s2.resources) push(x, y, s1.role, s2.role);
  }
  void c;
}

/** Indexes by dependent and by primary. */
export function indexColocations(entries: readonly ColocationEntry[]): {
  byDependent: Map<string, ColocationEntry[]>;
  byPrimary: Map<string, ColocationEntry[]>;
} {
  const byDependent = new Map<string, ColocationEntry[]>();
  const byPrimary = new Map<string, ColocationEntry[]>();
  for (const e of entries) {
    getOrInsert(byDependent, e.dependent, () => []).push(e);
    getOrInsert(byPrimary, e.primary, () => []).push(e);
  }
  return { byDependent, byPrimary };
}
