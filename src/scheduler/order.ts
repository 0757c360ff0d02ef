import type { OrderConstraint, ResourceSet } from '../cib/model.ts';
import { parseScore } from '../cib/score.ts';
import { getOrInsert } from './collections.ts';
import { expandRef, isTrue, type Unpacked } from './unpack.ts';

/**
 * Order constraints (`rsc_order`): `then` may do `thenAction` only after `first` did
 * `firstAction`. Mandatory orders also make `then` unrunnable when `first` cannot act, and
 * (symmetrical, the default) reverse for stops. Sets expand into chains as Pacemaker does.
 */
export type OrderKind = 'Mandatory' | 'Optional' | 'Serialize';

export interface OrderEntry {
  readonly id: string;
  readonly first: string;
  readonly then: string;
  readonly firstAction: string;
  readonly thenAction: string;
  readonly kind: OrderKind;
  readonly symmetrical: boolean;
  /**
   * With require-all=false: `then` needs only one of the firsts sharing this tag, which is also
   * how crm_simulate names the pseudo action (`clone-one-or-more:ID`, `one-or-more:SET`).
   */
  readonly anyOf: string | undefined;
}

function kindOf(c: OrderConstraint): OrderKind {
  const k = (c.orderKind ?? '').toLowerCase();
  if (k === 'optional') return 'Optional';
  if (k === 'serialize') return 'Serialize';
  if (k === 'mandatory') return 'Mandatory';
  if (c.score !== undefined) {
    const s = parseScore(c.score);
    if (s.ok && s.score === 0) return 'Optional';
  }
  return 'Mandatory';
}

function action(a: string | undefined, dflt: string): string {
  const x = (a ?? dflt).toLowerCase();
  return x;
}

export function unpackOrders(u: Unpacked): OrderEntry[] {
  const out: OrderEntry[] = [];
  for (const c of u.cib.configuration.constraints) {
    if (c.kind !== 'rsc_order') continue;
    const kind = kindOf(c);
    const symmetrical = isTrue(c.symmetrical, kind === 'Mandatory');
    const push = (firstRef: string, thenRef: string, fa: string, ta: string, anyOf?: string): void => {
      for (const first of expandRef(u, firstRef))
        for (const then of expandRef(u, thenRef)) {
          if (!u.byConfiguredId.has(first) || !u.byConfiguredId.has(then) || first === then) continue;
          out.push({ id: c.id, first, then, firstAction: fa, thenAction: ta, kind, symmetrical, anyOf });
        }
    };
    if (c.sets.length === 0) {
      if (c.first === undefined || c.then === undefined) continue;
      const fa = action(c.firstAction, 'start');
      const oneOrMore = !isTrue(c.requireAll, true) ? `clone-one-or-more:${c.id}` : undefined;
      push(c.first, c.then, fa, action(c.thenAction, fa), oneOrMore);
      continue;
    }
    expandSets(
      c,
      c.sets.map((s) => ({ ...s, resources: s.resources.flatMap((id) => expandRef(u, id)) })),
      push,
    );
  }
  return out;
}

function expandSets(
  c: OrderConstraint,
  sets: readonly ResourceSet[],
  push: (f: string, t: string, fa: string, ta: string, anyOf?: string) => void,
): void {
  for (const set of sets) {
    if (!isTrue(set.sequential, true)) continue;
    const a = action(set.action, 'start');
    for (let i = 1; i < set.resources.length; i++) push(set.resources[i - 1]!, set.resources[i]!, a, a);
  }
  for (let k = 0; k + 1 < sets.length; k++) {
    const s1 = sets[k]!;
    const s2 = sets[k + 1]!;
    const a1 = action(s1.action, 'start');
    const a2 = action(s2.action, a1);
    const requireAll = isTrue(s1.requireAll ?? c.requireAll, true);
    const firsts = isTrue(s1.sequential, true) && requireAll ? s1.resources.slice(-1) : s1.resources;
    const thens = isTrue(s2.sequential, true) ? s2.resources.slice(0, 1) : s2.resources;
    for (const f of firsts)
      for (const t of thens)
        push(f, t, a1, a2, requireAll ? undefined : `one-or-more:${s1.id ?? `${c.id}-${k}`}`);
  }
}

export function indexOrders(entries: readonly OrderEntry[]): {
  byThen: Map<string, OrderEntry[]>;
  byFirst: Map<string, OrderEntry[]>;
} {
  const byThen = new Map<string, OrderEntry[]>();
  const byFirst = new Map<string, OrderEntry[]>();
  for (const e of entries) {
    getOrInsert(byThen, e.then, () => []).push(e);
    getOrInsert(byFirst, e.first, () => []).push(e);
  }
  return { byThen, byFirst };
}
