/**
 * What every administrative edit returns, and the small pure helpers edits share: changing a
 * name/value pair the way `crm_attribute` does, bumping the CIB's version counters the way
 * Pacemaker does, and suggesting the nearest known name in an error message.
 *
 * Edits are pure functions `Cib → EditResult`: on error they return the error and the caller
 * keeps the CIB it had, so a rejected edit changes nothing.
 */
import type { Cib, NvPair, NvSet, NvSetKind } from '../cib/model.ts';

/** Stable codes a script can test for; the message says the same thing for a person. */
export type EditErrorCode =
  | 'unknown-resource'
  | 'unknown-node'
  | 'unknown-id'
  | 'unknown-property'
  | 'invalid-value'
  | 'invalid-argument'
  | 'duplicate-id'
  | 'resource-referenced'
  | 'resource-running'
  | 'not-running'
  | 'cannot-read-status'
  | 'ambiguous-location'
  | 'clone-instance'
  | 'parse-error'
  | 'invalid-configuration'
  | 'needs-cluster'
  /** The cluster's configuration changed after the CIB the edit was computed from was read. */
  | 'conflict'
  /** The edit deletes the `<node>` entry of a current member (use `halo cluster leave`). */
  | 'member-node';

export interface EditError {
  readonly code: EditErrorCode;
  readonly message: string;
}

/**
 * `changed: false` means the edit was valid but the CIB already said so (`standby` of a node
 * already in standby): nothing is written and the version is not bumped. `notes` are warnings
 * to print ("target-role was also set on the member 'web'; removed there").
 */
export type EditResult =
  | { readonly ok: true; readonly cib: Cib; readonly changed: boolean; readonly notes: readonly string[] }
  | { readonly ok: false; readonly error: EditError };

export function editError(code: EditErrorCode, message: string): EditResult {
  return { ok: false, error: { code, message } };
}

/** Which counter an edit advances: configuration changes bump `epoch`, status changes `num_updates`. */
export type ChangeKind = 'configuration' | 'status';

/**
 * Finishes an edit: when `after` differs from `before`, advances the version as Pacemaker does
 * (a configuration change increments `epoch` and resets `num_updates`; a status change, such as
 * a transient attribute or a cleaned-up history, increments `num_updates` only).
 */
export function finish(before: Cib, after: Cib, kind: ChangeKind, notes: readonly string[] = []): EditResult {
  if (JSON.stringify(before) === JSON.stringify(after))
    return { ok: true, cib: before, changed: false, notes };
  return { ok: true, cib: bumpVersion(after, kind), changed: true, notes };
}

export function bumpVersion(cib: Cib, kind: ChangeKind): Cib {
  const num = (name: string): number => {
    const n = Number(cib.attrs.find(([k]) => k === name)?.[1] ?? '0');
    return Number.isSafeInteger(n) && n >= 0 ? n : 0;
  };
  let attrs = cib.attrs;
  if (kind === 'configuration') {
    attrs = setCibAttr(attrs, 'epoch', String(num('epoch') + 1));
    attrs = setCibAttr(attrs, 'num_updates', '0');
  } else {
    attrs = setCibAttr(attrs, 'num_updates', String(num('num_updates') + 1));
  }
  return { ...cib, attrs };
}

export function cibAttr(cib: Cib, name: string): string | undefined {
  return cib.attrs.find(([k]) => k === name)?.[1];
}

function setCibAttr(attrs: Cib['attrs'], name: string, value: string): Cib['attrs'] {
  return attrs.some(([k]) => k === name)
    ? attrs.map(([k, v]) => [k, k === name ? value : v] as const)
    : [...attrs, [name, value] as const];
}

/**
 * Sets (value) or deletes (null) `name` among `sets` as `crm_attribute` and `crm_resource`
 * do: an existing pair in a rule-less set is changed where it stands (every copy, so no stale
 * one wins); otherwise the pair goes into the set with `preferredSetId`, which is created when
 * missing (Pacemaker's tools never add to some other set that happens to exist). New pair ids
 * are `SETID-NAME`, Pacemaker's convention.
 */
export function setNvPair(
  sets: readonly NvSet[],
  kind: NvSetKind,
  preferredSetId: string,
  name: string,
  value: string | null,
): NvSet[] {
  const holds = (s: NvSet): boolean => !s.rule && s.pairs.some((p) => p.name === name);
  if (sets.some(holds)) {
    return sets.map((s) => {
      if (!holds(s)) return s;
      const pairs: NvPair[] =
        value === null
          ? s.pairs.filter((p) => p.name !== name)
          : s.pairs.map((p) => (p.name === name ? { ...p, value } : p));
      return { ...s, pairs };
    });
  }
  if (value === null) return [...sets];
  const j = sets.findIndex((s) => s.id === preferredSetId && !s.rule && !s.idRef);
  const target: NvSet = sets[j] ?? { kind, id: preferredSetId, pairs: [] };
  const pairId = uniquePairId(sets, `${preferredSetId}-${name}`);
  const next: NvSet = { ...target, pairs: [...target.pairs, { id: pairId, name, value }] };
  return j >= 0 ? sets.map((s, k) => (k === j ? next : s)) : [...sets, next];
}

function uniquePairId(sets: readonly NvSet[], wanted: string): string {
  const used = new Set(sets.flatMap((s) => s.pairs.map((p) => p.id)));
  let id = wanted;
  for (let n = 1; used.has(id); n++) id = `${wanted}-${n}`;
  return id;
}

/** The value of `name` in rule-less `sets` (the last one written wins, as in a flat read). */
export function nvGet(sets: readonly NvSet[], name: string): string | undefined {
  let v: string | undefined;
  for (const s of sets) if (!s.rule) for (const p of s.pairs) if (p.name === name) v = p.value;
  return v;
}

/** Largest edit distance for which a "did you mean" is offered. */
const SUGGEST_MAX_DISTANCE = 3;

/** ` (did you mean 'web'?)` for the known name closest to `wanted`, or `''`. */
export function didYouMean(wanted: string, known: Iterable<string>): string {
  let best: string | undefined;
  let bestD = SUGGEST_MAX_DISTANCE + 1;
  for (const k of known) {
    const d = editDistance(wanted.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best === undefined ? '' : ` (did you mean '${best}'?)`;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > SUGGEST_MAX_DISTANCE) return SUGGEST_MAX_DISTANCE + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
