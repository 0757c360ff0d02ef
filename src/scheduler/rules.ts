import { parseDuration } from '../cib/duration.ts';
import type { AttrExpression, DateExpression, DateSpec, NvSet, Rule, RuleExpression } from '../cib/model.ts';
import { isTrue, setScore } from '../cib/resources.ts';

/**
 * Rule evaluation (Pacemaker's rules.c semantics for the parts halo supports): attribute
 * expressions against node attributes, date expressions and date specs against `nowMs`,
 * nested rules with `and`/`or`. Resource and op expressions only make sense in rsc/op
 * defaults and pass when they match the given resource.
 */
export interface RuleContext {
  readonly nodeAttrs: ReadonlyMap<string, string>;
  readonly nowMs: number;
  /** For rsc_expression in rsc_defaults. */
  readonly rsc?: { readonly class?: string; readonly provider?: string; readonly type?: string };
  /** For op_expression in op_defaults. */
  readonly op?: { readonly name: string; readonly intervalMs: number };
  /** Resource instance parameters and meta-attributes (value-source="param"/"meta"). */
  readonly params?: ReadonlyMap<string, string>;
  readonly meta?: ReadonlyMap<string, string>;
}

export function evaluateRule(rule: Rule, ctx: RuleContext): boolean {
  const exprs = rule.expressions;
  if (exprs.length === 0) return true;
  const or = rule.booleanOp === 'or';
  for (const e of exprs) {
    const r = evaluateExpression(e, ctx);
    if (or && r) return true;
    if (!or && !r) return false;
  }
  return !or;
}

function evaluateExpression(e: RuleExpression, ctx: RuleContext): boolean {
  switch (e.kind) {
    case 'rule':
      return evaluateRule(e, ctx);
    case 'expression':
      return evaluateAttr(e, ctx);
    case 'date_expression':
      return evaluateDate(e, ctx.nowMs);
    case 'rsc_expression': {
      const r = ctx.rsc;
      if (!r) return true;
      if (e.class !== undefined && e.class !== r.class) return false;
      if (e.provider !== undefined && e.provider !== r.provider) return false;
      if (e.type !== undefined && e.type !== r.type) return false;
      return true;
    }
    case 'op_expression': {
      const o = ctx.op;
      if (!o) return true;
      if (e.name !== o.name) return false;
      if (e.interval !== undefined) {
        const d = parseDuration(e.interval);
        if (!d.ok || d.ms !== o.intervalMs) return false;
      }
      return true;
    }
  }
}

function compareTyped(type: string, a: string, b: string): number | undefined {
  if (type === 'integer' || type === 'int' || type === 'number') {
    // Integers truncate (`3.6` is 3); text that is not a number falls back to string order.
    const parse = (v: string): number =>
      type === 'number'
        ? /^\s*[+-]?(\d+\.?\d*|\.\d+)\s*$/.test(v)
          ? Number(v)
          : Number.NaN
        : /^\s*[+-]?\d+(\.\d*)?\s*$/.test(v)
          ? Math.trunc(Number(v))
          : Number.NaN;
    const x = parse(a);
    const y = parse(b);
    if (Number.isNaN(x) || Number.isNaN(y)) return a < b ? -1 : a > b ? 1 : 0;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (type === 'version') {
    const xs = a.split('.').map((p) => Number.parseInt(p, 10) || 0);
    const ys = b.split('.').map((p) => Number.parseInt(p, 10) || 0);
    for (let i = 0; i < Math.max(xs.length, ys.length); i++) {
      const d = (xs[i] ?? 0) - (ys[i] ?? 0);
      if (d !== 0) return d < 0 ? -1 : 1;
    }
    return 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function evaluateAttr(e: AttrExpression, ctx: RuleContext): boolean {
  const actual = ctx.nodeAttrs.get(e.attribute);
  if (e.operation === 'defined') return actual !== undefined;
  if (e.operation === 'not_defined') return actual === undefined;
  let expected = e.value;
  if (e.valueSource === 'param' && expected !== undefined) expected = ctx.params?.get(expected);
  else if (e.valueSource === 'meta' && expected !== undefined) expected = ctx.meta?.get(expected);
  if (actual === undefined || expected === undefined) return e.operation === 'ne' && actual === undefined;
  // Pacemaker compares numerically when both look like numbers and no type was given.
  let type = e.type ?? 'string';
  if (e.type === undefined && e.operation !== 'eq' && e.operation !== 'ne') {
    type = /^-?\d+(\.\d+)?$/.test(actual) && /^-?\d+(\.\d+)?$/.test(expected) ? 'number' : 'string';
  }
  const c = compareTyped(type, actual, expected);
  if (c === undefined) return false;
  switch (e.operation) {
    case 'eq':
      return c === 0;
    case 'ne':
      return c !== 0;
    case 'lt':
      return c < 0;
    case 'lte':
      return c <= 0;
    case 'gt':
      return c > 0;
    case 'gte':
      return c >= 0;
  }
}

/** Parses the ISO 8601 date forms Pacemaker accepts (`2005-01-01`, `2005-01-01 12:00:00Z`, …). */
export function parseIsoDateMs(text: string): number | undefined {
  const ord = /^(\d{4})-(\d{3})(?:[ T](\d{1,2})(?::(\d{2}))?(?::(\d{2}))?)?\s*Z?$/.exec(text.trim());
  if (ord) {
    const n = (i: number): number => (ord[i] ? Number(ord[i]) : 0);
    return Date.UTC(n(1), 0, 1, n(3), n(4), n(5)) + (n(2) - 1) * 86_400_000;
  }
  const m =
    /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2})(?::(\d{2}))?(?::(\d{2}))?)?\s*(Z|[+-]\d{2}:?\d{2})?$/.exec(
      text.trim(),
    );
  if (!m) return undefined;
  const n = (i: number): number => (m[i] ? Number(m[i]) : 0);
  let ms = Date.UTC(n(1), n(2) - 1, n(3), n(4), n(5), n(6));
  const tz = m[7];
  if (tz && tz !== 'Z') {
    const sign = tz.startsWith('-') ? -1 : 1;
    const digits = tz.slice(1).replace(':', '');
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
  }
  return ms;
}

function durationSpecMs(d: DateSpec): number {
  const f = (k: string): number => Number(d.fields[k] ?? 0) || 0;
  const days = f('years') * 365 + f('months') * 30 + f('weeks') * 7 + f('days');
  return ((days * 24 + f('hours')) * 60 + f('minutes')) * 60_000 + f('seconds') * 1000;
}

function inRange(spec: string | undefined, value: number): boolean {
  if (spec === undefined) return true;
  for (const part of spec.split(',')) {
    const m = /^\s*(\d+)?\s*(-)?\s*(\d+)?\s*$/.exec(part);
    if (!m) continue;
    const lo = m[1] !== undefined ? Number(m[1]) : Number.NEGATIVE_INFINITY;
    const hi = m[2] ? (m[3] !== undefined ? Number(m[3]) : Number.POSITIVE_INFINITY) : lo;
    if (value >= lo && value <= hi) return true;
  }
  return false;
}

function matchDateSpec(spec: DateSpec, nowMs: number): boolean {
  const d = new Date(nowMs);
  const start = Date.UTC(d.getUTCFullYear(), 0, 1);
  const yearday = Math.floor((nowMs - start) / 86_400_000) + 1;
  const weekday = d.getUTCDay() === 0 ? 7 : d.getUTCDay();
  const f = spec.fields;
  return (
    inRange(f.years, d.getUTCFullYear()) &&
    inRange(f.months, d.getUTCMonth() + 1) &&
    inRange(f.monthdays, d.getUTCDate()) &&
    inRange(f.hours, d.getUTCHours()) &&
    inRange(f.minutes, d.getUTCMinutes()) &&
    inRange(f.seconds, d.getUTCSeconds()) &&
    inRange(f.yeardays, yearday) &&
    inRange(f.weekdays, weekday)
  );
}

function evaluateDate(e: DateExpression, nowMs: number): boolean {
  const start = e.start !== undefined ? parseIsoDateMs(e.start) : undefined;
  let end = e.end !== undefined ? parseIsoDateMs(e.end) : undefined;
  switch (e.operation) {
    case 'gt':
      return start !== undefined && nowMs > start;
    case 'lt':
      return end !== undefined && nowMs < end;
    case 'in_range':
      if (end === undefined && start !== undefined && e.duration) end = start + durationSpecMs(e.duration);
      return (start === undefined || nowMs >= start) && (end === undefined || nowMs <= end);
    case 'date_spec':
      return e.dateSpec ? matchDateSpec(e.dateSpec, nowMs) : false;
  }
}

/**
 * Flattens name/value sets into one map: sets are taken by descending `score` (then document
 * order) and the first value for a name wins, as Pacemaker's unpack_instance_attributes does.
 */
export function flattenNvSets(
  sets: readonly NvSet[],
  ctx: RuleContext,
  into: Map<string, string> = new Map(),
): Map<string, string> {
  // Most resources have no set or one: nothing to order (this runs several times per resource).
  const ordered =
    sets.length <= 1
      ? sets.map((s) => ({ s }))
      : sets.map((s, i) => ({ s, i, score: setScore(s) })).sort((a, b) => b.score - a.score || a.i - b.i);
  for (const { s } of ordered) {
    if (s.rule && !evaluateRule(s.rule, ctx)) continue;
    for (const p of s.pairs) {
      if (p.value !== undefined && !into.has(p.name)) into.set(p.name, p.value);
    }
  }
  return into;
}

/** Pacemaker's crm_is_true: `true`, `yes`, `on`, `1`, `y` (any case). */
export { isTrue };
