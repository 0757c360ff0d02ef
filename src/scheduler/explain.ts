import { formatScore, INFINITY } from '../cib/score.ts';
import type { Decision } from './actions.ts';
import { naturalCompare } from './nodes.ts';
import { primitivesOf, type Res } from './resource_tree.ts';
import type { Stages } from './schedule.ts';
import type { ScoreTable } from './score_table.ts';
import type { ScoreReason } from './types.ts';

/**
 * `halo explain`: one or two plain sentences per resource saying where it runs after the
 * transition, or why it can't run, naming the constraints, stickiness, failures and node
 * attributes that decided (the reasons recorded next to the scores).
 */
export type ExplainResult = { ok: true; lines: readonly string[] } | { ok: false; reason: string };

export function explain(stages: Stages, rscId: string): ExplainResult {
  const u = stages.unpacked;
  const r = u.byId.get(rscId) ?? u.byConfiguredId.get(rscId);
  if (!r) {
    const known = [...u.byConfiguredId.keys()].sort().slice(0, 10).join(', ');
    return { ok: false, reason: `resource '${rscId}' is not in the configuration (known: ${known})` };
  }
  const decisions = new Map(stages.decisions.map((d) => [d.rsc.id, d]));
  const lines: string[] = [];
  for (const p of primitivesOf(r)) {
    const d = decisions.get(p.id);
    if (d) lines.push(explainOne(stages, p, d));
  }
  return { ok: true, lines };
}

/** The placement unit whose score table decided `p` (its group or clone instance, or itself). */
function unitTable(stages: Stages, p: Res): ScoreTable | undefined {
  for (let x: Res | undefined = p; x; x = x.parent) {
    const t = stages.assignment.tables.get(x.id);
    if (t) return t;
  }
  return undefined;
}

/** The strongest reasons on `node`, strongest first, with -INFINITY first of all. */
function reasonsOn(t: ScoreTable, node: string, sign: 1 | -1): ScoreReason[] {
  return t.reasons
    .filter((x) => x.node === node && Math.sign(x.score) === sign)
    .sort((a, b) => sign * (b.score - a.score));
}

function describeBan(t: ScoreTable, node: string): string {
  const neg = reasonsOn(t, node, -1);
  const first = neg[0];
  if (!first) return `${node} scores ${formatScore(t.get(node))}`;
  return first.text;
}

function describeWin(t: ScoreTable, node: string): string {
  // A group's members inherit the same reason once per member: say each distinct one once.
  const texts = [...new Set(reasonsOn(t, node, 1).map((x) => x.text))].slice(0, 2);
  if (texts.length === 0) return `${node} scores ${formatScore(t.get(node))}`;
  return texts.join(' and ');
}

function explainOne(stages: Stages, p: Res, d: Decision): string {
  const u = stages.unpacked;
  const cur = d.current;
  const next = d.next;
  const nodes = [...u.nodes].map((n) => n.name).sort(naturalCompare);
  const notes = stages.assignment.notes.get(p.id) ?? [];
  if (next.fixed) {
    const where = cur
      ? `stays ${cur.role === 'Started' ? 'on' : `${cur.role} on`} ${cur.node}`
      : 'stays stopped';
    const why = !p.managed
      ? 'it is not managed (is-managed=false or maintenance mode)'
      : 'a failure blocked it (on-fail=block)';
    return `${p.id} ${where}: ${why}, so halo leaves it alone.`;
  }
  const t = unitTable(stages, p);
  if (d.blocked && d.reason) {
    return `${p.id} cannot start on ${next.node ?? 'any node'}: blocked due to ${d.reason}.`;
  }
  if (!next.node || next.role === 'Stopped') {
    if (d.reason?.startsWith('unrunnable'))
      return `${p.id} will be stopped: it is ordered after ${d.reason.replace('unrunnable ', '')}, which cannot happen.`;
    if (d.reason === 'no quorum')
      return `${p.id} will be stopped: the cluster has no quorum (no-quorum-policy=${u.options.noQuorumPolicy}).`;
    if (!t) return `${p.id} cannot run anywhere.${notes.length ? ` ${notes.join('; ')}.` : ''}`;
    const bans = groupBans(t, nodes);
    const note = notes.length > 0 ? ` ${capitalise(notes[0]!)}.` : '';
    return `${p.id} cannot run anywhere: ${bans}.${note}`;
  }
  const node = next.node;
  const role = next.role === 'Promoted' ? ' as Promoted' : next.role === 'Unpromoted' ? ' as Unpromoted' : '';
  const verb = cur && cur.node === node ? 'stays on' : cur ? `moves from ${cur.node} to` : 'starts on';
  const parts: string[] = [];
  if (t) {
    const others = nodes.filter((n) => n !== node);
    const banned = others.filter((n) => !t.canRun(n));
    if (banned.length > 0)
      parts.push(
        banned
          .map((n) => describeBan(t, n))
          .slice(0, 3)
          .join('; '),
      );
    const rivals = others.filter((n) => t.canRun(n));
    const win = describeWin(t, node);
    if (rivals.length > 0) {
      const best = rivals.reduce((a, b) => (t.get(b) > t.get(a) ? b : a));
      if (t.get(node) > t.get(best))
        parts.push(
          `${win}, which puts ${node} (${formatScore(t.get(node))}) ahead of ${best} (${formatScore(t.get(best))})`,
        );
      else
        parts.push(
          `${node} and ${best} score the same (${formatScore(t.get(node))}); the less loaded node wins ties, then the first by name`,
        );
    } else if (reasonsOn(t, node, 1).length > 0) {
      parts.push(`${win}`);
    }
  }
  if (next.role === 'Promoted') {
    const score = stages.assignment.promotion.get(p.parent?.kind === 'group' ? p.parent.id : p.id);
    if (score !== undefined)
      parts.push(`its promotion score on ${node} is ${formatScore(score)}, the highest`);
  }
  if (cur?.failed) parts.push(`it failed on ${cur.node} and is recovered`);
  if (d.restart && d.reason) parts.push(`it restarts due to ${d.reason}`);
  const fc = [...p.state.failCounts.entries()].filter(([, c]) => c > 0);
  if (fc.length > 0 && p.migrationThreshold < INFINITY) {
    parts.push(
      `fail counts: ${fc.map(([n, c]) => `${n} ${formatScore(c)}/${formatScore(p.migrationThreshold)}`).join(', ')}`,
    );
  }
  return `${p.id} ${verb} ${node}${role}${parts.length ? `: ${parts.join('; ')}` : ''}.`;
}

function groupBans(t: ScoreTable, nodes: readonly string[]): string {
  const byText = new Map<string, string[]>();
  for (const n of nodes) {
    const text = describeBan(t, n);
    const l = byText.get(text) ?? [];
    l.push(n);
    byText.set(text, l);
  }
  return [...byText.keys()].slice(0, 4).join('; ');
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
