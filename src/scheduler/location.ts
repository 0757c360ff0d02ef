import type { LocationConstraint, Rule } from '../cib/model.ts';
import { formatScore, INFINITY, MINUS_INFINITY, parseScore } from '../cib/score.ts';
import { invalid } from './errors.ts';
import type { Res } from './resource_tree.ts';
import { evaluateRule, flattenNvSets } from './rules.ts';
import type { NodeInfo } from './types.ts';
import { expandRef, type Unpacked } from './unpack.ts';

/**
 * Location constraints (`rsc_location`): a score for a resource on a node, given directly
 * (`node=… score=…`) or by rules evaluated against each node's attributes. Unpacked into flat
 * entries once; applied by the assignment stage to the resource's score table.
 */
export interface LocationEntry {
  readonly id: string;
  /** Configured id of the constrained resource. */
  readonly rsc: string;
  /** Restricts the entry to a role (`Promoted` entries feed promotion scores instead). */
  readonly role: string | undefined;
  readonly node: string;
  readonly score: number;
  readonly discovery: string;
  /** Human-readable cause: `score 100` or `rule pingd lt 1000`. */
  readonly why: string;
}

function normalRole(role: string | undefined): string | undefined {
  if (!role) return undefined;
  const r = role.toLowerCase();
  if (r === 'master' || r === 'promoted') return 'Promoted';
  if (r === 'slave' || r === 'unpromoted') return 'Unpromoted';
  if (r === 'started') return undefined;
  return role;
}

function scoreOf(text: string | undefined, where: string): number {
  if (text === undefined) return 0;
  const s = parseScore(text);
  if (!s.ok) invalid(`${where}: ${s.reason}`);
  return s.score;
}

/** The rule as text, with the node's actual attribute values: `pingd=0 lt 1000`. */
function ruleText(rule: Rule, attrs: ReadonlyMap<string, string>): string {
  const parts = rule.expressions.map((e) => {
    if (e.kind === 'expression') {
      const actual = attrs.get(e.attribute);
      const lhs =
        actual === undefined || e.attribute.startsWith('#') ? e.attribute : `${e.attribute}=${actual}`;
      return `${lhs} ${e.operation}${e.value !== undefined ? ` ${e.value}` : ''}`;
    }
    if (e.kind === 'date_expression') return `date ${e.operation}`;
    if (e.kind === 'rule') return `(${ruleText(e, attrs)})`;
    return e.kind;
  });
  return parts.join(` ${rule.booleanOp ?? 'and'} `);
}

function targets(c: LocationConstraint, u: Unpacked): string[] {
  if (c.rsc !== undefined) return [...expandRef(u, c.rsc)];
  if (c.rscPattern !== undefined) {
    // A leading `!` inverts the match, as in Pacemaker.
    const negate = c.rscPattern.startsWith('!');
    const source = negate ? c.rscPattern.slice(1) : c.rscPattern;
    let re: RegExp;
    try {
      re = new RegExp(source);
    } catch {
      return invalid(`location '${c.id}': rsc-pattern '${c.rscPattern}' is not a valid regular expression`);
    }
    return [...u.byConfiguredId.keys()].filter((id) => re.test(id) !== negate);
  }
  return c.sets.flatMap((s) => s.resources.flatMap((id) => expandRef(u, id)));
}

/** Unpacks every location constraint into per-node entries. */
export function unpackLocations(u: Unpacked): LocationEntry[] {
  const out: LocationEntry[] = [];
  for (const c of u.cib.configuration.constraints) {
    if (c.kind !== 'rsc_location') continue;
    const discovery = (c.resourceDiscovery ?? 'always').toLowerCase();
    for (const rsc of targets(c, u)) {
      if (!u.byConfiguredId.has(rsc)) continue; // Pacemaker ignores constraints on unknown resources.
      const setRole = c.sets.find((s) => s.resources.includes(rsc))?.role;
      const role = normalRole(c.role ?? setRole);
      if (c.node !== undefined) {
        if (!u.nodeByName.has(c.node)) continue;
        const score = scoreOf(c.score ?? (c.scoreAttribute ? undefined : '0'), `location '${c.id}'`);
        out.push({ id: c.id, rsc, role, node: c.node, score, discovery, why: `score ${formatScore(score)}` });
        continue;
      }
      for (const rule of c.rules) {
        const ruleRole = normalRole(rule.role) ?? role;
        for (const n of u.nodes) {
          const target = u.byConfiguredId.get(rsc);
          // value-source=param compares with the resource's parameters as they are on this node.
          const params = target?.def
            ? flattenNvSets(target.def.instanceAttributes, { nodeAttrs: n.attrs, nowMs: u.options.nowMs })
            : target?.params;
          const pass = evaluateRule(rule, {
            nodeAttrs: n.attrs,
            nowMs: u.options.nowMs,
            ...(target ? { params, meta: target.meta } : {}),
          });
          if (!pass) continue;
          const score = ruleScore(rule, n, c.id);
          out.push({
            id: c.id,
            rsc,
            role: ruleRole,
            node: n.name,
            score,
            discovery,
            why: `rule ${ruleText(rule, n.attrs)}`,
          });
        }
      }
    }
  }
  return out;
}

function ruleScore(rule: Rule, n: NodeInfo, id: string): number {
  if (rule.score !== undefined) return scoreOf(rule.score, `location '${id}' rule`);
  if (rule.scoreAttribute !== undefined) {
    const v = n.attrs.get(rule.scoreAttribute);
    if (v === undefined) return 0;
    const s = parseScore(v);
    return s.ok ? s.score : 0;
  }
  return 0;
}

/** Entries by configured resource id, for O(1) lookup during assignment. */
export function indexLocations(entries: readonly LocationEntry[]): Map<string, LocationEntry[]> {
  const m = new Map<string, LocationEntry[]>();
  for (const e of entries) {
    const list = m.get(e.rsc) ?? [];
    list.push(e);
    m.set(e.rsc, list);
  }
  return m;
}

export function describeLocation(e: LocationEntry): string {
  const verb =
    e.score <= MINUS_INFINITY
      ? 'bans'
      : e.score >= INFINITY
        ? 'requires'
        : e.score < 0
          ? 'avoids'
          : 'prefers';
  return `location ${e.id} ${verb} ${e.node} (${formatScore(e.score)}, ${e.why})`;
}

/** Configured ids a location entry affects through `r` (itself and enclosing group/clone). */
export function configuredChain(r: Res): string[] {
  const ids: string[] = [];
  for (let p: Res | undefined = r; p; p = p.parent) if (!ids.includes(p.baseId)) ids.push(p.baseId);
  return ids;
}
