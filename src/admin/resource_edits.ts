/**
 * Resource edits, as `crm resource …` / `crm_resource` make them: start/stop set the meta
 * attribute `target-role`, manage/unmanage set `is-managed`, move/ban/clear add or remove the
 * `cli-prefer-RSC` / `cli-ban-RSC-on-NODE` location constraints, cleanup forgets failures.
 * Pure; "now" comes in as an argument (for `--lifetime` and for reading the status).
 */

import { parseDuration } from '../cib/duration.ts';
import type {
  Cib,
  Constraint,
  DateExpression,
  LocationConstraint,
  NodeState,
  NvSet,
  OpHistory,
  Resource,
  Rule,
} from '../cib/model.ts';
import { findPlacedResource, isPromotable, resourceIds } from '../cib/resources.ts';
import { parseScore } from '../cib/score.ts';
import { SchedulerInputError } from '../scheduler/errors.ts';
import { primitivesOf, type Res } from '../scheduler/resource_tree.ts';
import { unpack } from '../scheduler/unpack.ts';
import { didYouMean, type EditResult, editError, finish, setNvPair } from './edit_result.ts';
import { knownNodeNames, unknownNode } from './node_edits.ts';

export function unknownResource(cib: Cib, rsc: string): EditResult {
  return editError('unknown-resource', `unknown resource '${rsc}'${didYouMean(rsc, resourceIds(cib))}`);
}

/** Applies `f` to the resource with this id, wherever it sits; undefined if there is none. */
function mapResource(cib: Cib, id: string, f: (r: Resource) => Resource): Cib | undefined {
  let found = false;
  const visit = (r: Resource): Resource => {
    if (r.id === id && !found) {
      found = true;
      return f(r);
    }
    if (r.kind === 'group') return { ...r, members: r.members.map((m) => visit(m) as typeof m) };
    if (r.kind === 'clone') return { ...r, child: visit(r.child) as typeof r.child };
    return r;
  };
  const resources = cib.configuration.resources.map(visit);
  return found ? { ...cib, configuration: { ...cib.configuration, resources } } : undefined;
}

function withMeta(r: Resource, name: string, value: string | null): Resource {
  if (r.kind === 'bundle') return r;
  return {
    ...r,
    metaAttributes: setNvPair(r.metaAttributes, 'meta_attributes', `${r.id}-meta_attributes`, name, value),
  };
}

function descendants(r: Resource): Resource[] {
  if (r.kind === 'group') return r.members.flatMap((m) => [m, ...descendants(m)]);
  if (r.kind === 'clone') return [r.child, ...descendants(r.child)];
  return [];
}

/**
 * Sets a meta attribute on a resource and removes it from the resource's descendants, as
 * crmsh's start/stop/manage do, so that the command's word is the one that counts.
 */
export function setResourceMeta(cib: Cib, rsc: string, name: string, value: string): EditResult {
  const placed = findPlacedResource(cib, rsc);
  if (!placed) return unknownResource(cib, rsc);
  if (placed.resource.kind === 'bundle' || placed.resource.kind === 'template')
    return editError(
      'invalid-argument',
      `'${rsc}' is a ${placed.resource.kind}; halo cannot set its meta attributes`,
    );
  const notes: string[] = [];
  const overriding = descendants(placed.resource).filter(
    (d) =>
      d.kind !== 'bundle' && d.metaAttributes.some((s) => !s.rule && s.pairs.some((p) => p.name === name)),
  );
  let after = mapResource(cib, rsc, (r) => withMeta(r, name, value))!;
  for (const d of overriding) {
    after = mapResource(after, d.id, (r) => withMeta(r, name, null))!;
    notes.push(`${name} was also set on '${d.id}' inside '${rsc}'; removed there so '${rsc}' decides`);
  }
  for (const parent of placed.parents) {
    const v = parent.metaAttributes.flatMap((s) => s.pairs).find((p) => p.name === name)?.value;
    if (v !== undefined && v !== value)
      notes.push(`'${parent.id}', which contains '${rsc}', has ${name}=${v}, which may still limit it`);
  }
  return finish(cib, after, 'configuration', notes);
}

export function setTargetRole(cib: Cib, rsc: string, role: 'Started' | 'Stopped'): EditResult {
  return setResourceMeta(cib, rsc, 'target-role', role);
}

export function setManaged(cib: Cib, rsc: string, managed: boolean): EditResult {
  return setResourceMeta(cib, rsc, 'is-managed', managed ? 'true' : 'false');
}

// ---------------------------------------------------------------------------------------------
// Where resources run

export interface ActiveInstance {
  readonly instance: string;
  readonly node: string;
  readonly role: string;
  readonly failed: boolean;
}

/** Where a resource (any kind) is active now according to the status section (`crm resource locate`). */
export function locate(
  cib: Cib,
  rsc: string,
  nowMs: number,
): { ok: true; active: ActiveInstance[] } | { ok: false; error: EditResult } {
  if (!findPlacedResource(cib, rsc)) return { ok: false, error: unknownResource(cib, rsc) };
  let u: ReturnType<typeof unpack>;
  try {
    u = unpack(cib, nowMs);
  } catch (err) {
    if (!(err instanceof SchedulerInputError)) throw err;
    return {
      ok: false,
      error: editError('cannot-read-status', `cannot tell where '${rsc}' runs: ${err.message}`),
    };
  }
  const roots: Res[] = [...u.byId.values()].filter((r) => r.baseId === rsc || r.id === rsc);
  const seen = new Set<string>();
  const active: ActiveInstance[] = [];
  for (const r of roots) {
    for (const p of primitivesOf(r)) {
      if (seen.has(p.id)) continue;
      seen.add(p.id);
      for (const a of p.state.active)
        active.push({ instance: p.id, node: a.node, role: a.role, failed: a.failed });
    }
  }
  return { ok: true, active };
}

// ---------------------------------------------------------------------------------------------
// move / ban / clear

export interface MoveOptions {
  readonly rsc: string;
  /** Destination (move) or node to leave (ban); absent means "where it runs now". */
  readonly node?: string;
  /** ISO 8601 or halo duration; the constraint expires after it. */
  readonly lifetime?: string;
  /** Limit the constraint to the promoted role (crm_resource --promoted). */
  readonly promoted?: boolean;
  readonly nowMs: number;
}

/** Formats a time as crm_resource writes a lifetime's end: `2026-11-22 05:30:59Z`. */
export function formatRuleDate(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z`;
}

function locationFor(
  id: string,
  rsc: string,
  node: string,
  score: string,
  role: string,
  expiresMs: number | undefined,
): LocationConstraint {
  if (expiresMs === undefined)
    return { kind: 'rsc_location', id, rsc, role, node, score, rules: [], sets: [] };
  const end: DateExpression = {
    kind: 'date_expression',
    id: `${id}-lifetime`,
    operation: 'lt',
    end: formatRuleDate(expiresMs),
  };
  const rule: Rule = {
    kind: 'rule',
    id: `${id}-rule`,
    score,
    booleanOp: 'and',
    expressions: [
      {
        kind: 'expression',
        id: `${id}-expr`,
        attribute: '#uname',
        operation: 'eq',
        value: node,
        type: 'string',
      },
      end,
    ],
  };
  return { kind: 'rsc_location', id, rsc, role, rules: [rule], sets: [] };
}

function replaceConstraint(cib: Cib, c: Constraint): Cib {
  const list = cib.configuration.constraints;
  const i = list.findIndex((x) => x.id === c.id);
  const constraints = i < 0 ? [...list, c] : list.map((x, k) => (k === i ? c : x));
  return { ...cib, configuration: { ...cib.configuration, constraints } };
}

interface MoveContext {
  readonly role: string;
  readonly expiresMs: number | undefined;
  /** Where it runs; undefined when the status cannot be read (the reason is in `statusProblem`). */
  readonly active: readonly ActiveInstance[] | undefined;
  readonly statusProblem?: EditResult;
}

function moveContext(
  cib: Cib,
  o: MoveOptions,
  verb: 'move' | 'ban',
): { ok: true; ctx: MoveContext } | { ok: false; error: EditResult } {
  const placed = findPlacedResource(cib, o.rsc);
  if (!placed) return { ok: false, error: unknownResource(cib, o.rsc) };
  const clone = placed.parents.find((p) => p.kind === 'clone');
  if (clone)
    return {
      ok: false,
      error: editError(
        'clone-instance',
        `'${o.rsc}' is inside clone '${clone.id}'; ${verb} '${clone.id}' instead`,
      ),
    };
  if (o.node !== undefined && !knownNodeNames(cib).includes(o.node))
    return { ok: false, error: unknownNode(cib, o.node) };
  const r = placed.resource;
  const promotable = r.kind === 'clone' && isPromotable(r, cib);
  if (o.promoted && !promotable)
    return {
      ok: false,
      error: editError('invalid-argument', `'${o.rsc}' is not a promotable clone; --promoted does not apply`),
    };
  // As crm_resource: the constraint is for the Started role unless --promoted limits it to the
  // promoted instance (the way to move or ban where a promotable clone is promoted).
  const role = o.promoted ? 'Promoted' : 'Started';
  let expiresMs: number | undefined;
  if (o.lifetime !== undefined) {
    const d = parseDuration(o.lifetime);
    if (!d.ok || d.ms <= 0)
      return {
        ok: false,
        error: editError(
          'invalid-value',
          `invalid --lifetime '${o.lifetime}': expected a duration such as PT1H or 30min`,
        ),
      };
    expiresMs = o.nowMs + d.ms;
  }
  const where = locate(cib, o.rsc, o.nowMs);
  return {
    ok: true,
    ctx: where.ok
      ? { role, expiresMs, active: where.active }
      : { role, expiresMs, active: undefined, statusProblem: where.error },
  };
}

/** The single node a resource runs on (in `role`), for move/ban without a node. */
function currentNode(
  o: MoveOptions,
  ctx: MoveContext,
  verb: string,
): { ok: true; node: string } | { ok: false; error: EditResult } {
  if (ctx.active === undefined) return { ok: false, error: ctx.statusProblem! };
  const relevant = ctx.active.filter((a) => ctx.role !== 'Promoted' || a.role === 'Promoted');
  const nodes = [...new Set(relevant.map((a) => a.node))];
  if (nodes.length === 1) return { ok: true, node: nodes[0]! };
  if (nodes.length === 0)
    return {
      ok: false,
      error: editError(
        'not-running',
        `'${o.rsc}' is not active anywhere; name the node: halo resource ${verb} ${o.rsc} NODE`,
      ),
    };
  return {
    ok: false,
    error: editError(
      'ambiguous-location',
      `'${o.rsc}' is active on ${nodes.length} nodes (${nodes.join(', ')}); name the node: halo resource ${verb} ${o.rsc} NODE`,
    ),
  };
}

/**
 * `crm resource move RSC NODE`: a `cli-prefer-RSC` location with score INFINITY on NODE.
 * Without NODE it bans the resource from the node it runs on, as `crm_resource --move` does.
 */
export function moveResource(cib: Cib, o: MoveOptions): EditResult {
  const c = moveContext(cib, o, 'move');
  if (!c.ok) return c.error;
  if (o.node === undefined) {
    const cur = currentNode(o, c.ctx, 'move');
    if (!cur.ok) return cur.error;
    return banResource(cib, { ...o, node: cur.node, promoted: c.ctx.role === 'Promoted' });
  }
  const node = o.node;
  // crm_resource's checks: a non-clone active in several places cannot be moved until that is
  // resolved; a resource (or promoted instance) active only on the destination is already there.
  const relevant = (c.ctx.active ?? []).filter((a) => !o.promoted || a.role === 'Promoted');
  const nodes = [...new Set(relevant.map((a) => a.node))];
  const isClone = findPlacedResource(cib, o.rsc)?.resource.kind === 'clone';
  if (!isClone && nodes.length > 1)
    return editError(
      'ambiguous-location',
      `'${o.rsc}' is active on ${nodes.length} nodes (${nodes.join(', ')}); clean that up first (halo resource cleanup ${o.rsc})`,
    );
  if (nodes.length === 1 && nodes[0] === node)
    return editError('invalid-argument', `'${o.rsc}' is already active on '${node}'; nothing to move`);
  const prefer = locationFor(`cli-prefer-${o.rsc}`, o.rsc, node, 'INFINITY', c.ctx.role, c.ctx.expiresMs);
  const notes =
    c.ctx.expiresMs === undefined
      ? [`run 'halo resource clear ${o.rsc}' to let the cluster place '${o.rsc}' freely again`]
      : [];
  return finish(cib, replaceConstraint(cib, prefer), 'configuration', notes);
}

/** `crm resource ban RSC [NODE]`: a `cli-ban-RSC-on-NODE` location with score -INFINITY. */
export function banResource(cib: Cib, o: MoveOptions): EditResult {
  const c = moveContext(cib, o, 'ban');
  if (!c.ok) return c.error;
  let node = o.node;
  if (node === undefined) {
    const cur = currentNode(o, c.ctx, 'ban');
    if (!cur.ok) return cur.error;
    node = cur.node;
  }
  const ban = locationFor(
    `cli-ban-${o.rsc}-on-${node}`,
    o.rsc,
    node,
    '-INFINITY',
    c.ctx.role,
    c.ctx.expiresMs,
  );
  const notes = [
    `'${o.rsc}' stays off '${node}' until 'halo resource clear ${o.rsc}'${c.ctx.expiresMs === undefined ? '' : ' or the lifetime ends'}`,
  ];
  return finish(cib, replaceConstraint(cib, ban), 'configuration', notes);
}

function preferNode(c: LocationConstraint): string | undefined {
  if (c.node !== undefined) return c.node;
  for (const r of c.rules)
    for (const e of r.expressions)
      if (e.kind === 'expression' && e.attribute === '#uname' && e.operation === 'eq') return e.value;
  return undefined;
}

/** `crm resource clear RSC [NODE]`: removes the move/ban constraints the commands above made. */
export function clearResource(cib: Cib, rsc: string, node?: string): EditResult {
  const isOurs = (c: Constraint): boolean => {
    if (c.kind !== 'rsc_location') return false;
    if (c.id === `cli-prefer-${rsc}`) return node === undefined || preferNode(c) === node;
    if (node !== undefined) return c.id === `cli-ban-${rsc}-on-${node}`;
    return c.id.startsWith(`cli-ban-${rsc}-on-`);
  };
  const constraints = cib.configuration.constraints;
  if (!findPlacedResource(cib, rsc) && !constraints.some(isOurs)) return unknownResource(cib, rsc);
  if (node !== undefined && !knownNodeNames(cib).includes(node)) return unknownNode(cib, node);
  const removed = constraints.filter(isOurs).map((c) => c.id);
  const after: Cib = {
    ...cib,
    configuration: { ...cib.configuration, constraints: constraints.filter((c) => !isOurs(c)) },
  };
  const notes =
    removed.length === 0
      ? [`no move or ban constraints for '${rsc}'${node ? ` on '${node}'` : ''}`]
      : removed.map((id) => `removed constraint '${id}'`);
  return finish(cib, after, 'configuration', notes);
}

// ---------------------------------------------------------------------------------------------
// cleanup and fail counts

/** Primitive ids at and under a resource (history and fail counts are per primitive). */
function primitiveIdsUnder(r: Resource): string[] {
  if (r.kind === 'primitive') return [r.id];
  if (r.kind === 'group') return r.members.map((m) => m.id);
  if (r.kind === 'clone') return primitiveIdsUnder(r.child);
  return [r.id];
}

/** History and attributes name clone instances `rsc:0`, `rsc:1`; anonymous clones plain `rsc`. */
function historyIdMatches(historyId: string, ids: readonly string[]): boolean {
  return ids.some(
    (id) =>
      historyId === id || (historyId.startsWith(`${id}:`) && /^\d+$/.test(historyId.slice(id.length + 1))),
  );
}

const FAIL_ATTR_RE = /^(fail-count|last-failure)-(.+?)(?:#(.+)_(\d+))?$/;

function failAttrOf(name: string): { kind: string; rsc: string; op?: string; interval?: string } | undefined {
  const m = FAIL_ATTR_RE.exec(name);
  if (!m) return undefined;
  return { kind: m[1]!, rsc: m[2]!, ...(m[3] ? { op: m[3], interval: m[4]! } : {}) };
}

/** The rc the controller expected, from the transition key `action:transition:rc:uuid`. */
function expectedRc(op: OpHistory): number {
  const parts = op.transitionKey?.split(':');
  const n = parts && parts.length >= 4 ? Number(parts[2]) : 0;
  return Number.isInteger(n) ? n : 0;
}

/** Whether a history entry records a failure (what `crm_mon` lists under Failed Resource Actions). */
export function opFailed(op: OpHistory): boolean {
  if (op.id.endsWith('_last_failure_0')) return true;
  if (op.opStatus !== undefined && op.opStatus !== '0' && op.opStatus !== '-1') return true;
  const rc = Number(op.rcCode ?? '0');
  if (rc === expectedRc(op)) return false;
  if (op.operation === 'monitor' && Number(op.interval) === 0) return rc !== 0 && rc !== 7 && rc !== 8;
  if (op.operation === 'stop' && rc === 7) return false;
  return true;
}

function cleanNodeState(ns: NodeState, ids: readonly string[]): NodeState {
  const resources = ns.resources.map((h) =>
    historyIdMatches(h.id, ids) ? { ...h, ops: h.ops.filter((o) => !opFailed(o)) } : h,
  );
  const transientAttributes: NvSet[] = ns.transientAttributes.map((s) => ({
    ...s,
    pairs: s.pairs.filter((p) => {
      const f = failAttrOf(p.name);
      return !(f && historyIdMatches(f.rsc, ids));
    }),
  }));
  return { ...ns, resources, transientAttributes };
}

/**
 * `crm resource cleanup RSC [NODE]`: forgets the resource's failures (failed operations in its
 * history and its `fail-count-*` / `last-failure-*` attributes), on one node or all, so the
 * scheduler places it as if it had not failed. Pacemaker deletes the whole history entry and
 * re-probes; offline there is nobody to re-probe, so only the failed entries go.
 */
export function cleanupResource(cib: Cib, rsc: string, node?: string): EditResult {
  const placed = findPlacedResource(cib, rsc);
  const inHistory = cib.status.some((s) => s.resources.some((h) => historyIdMatches(h.id, [rsc])));
  if (!placed && !inHistory) return unknownResource(cib, rsc);
  if (node !== undefined && !knownNodeNames(cib).includes(node)) return unknownNode(cib, node);
  const ids = placed ? primitiveIdsUnder(placed.resource) : [rsc];
  const status = cib.status.map((s) => (node === undefined || s.uname === node ? cleanNodeState(s, ids) : s));
  const r = finish(cib, { ...cib, status }, 'status');
  if (r.ok && !r.changed)
    return { ...r, notes: [`'${rsc}' has no failures to clean up${node ? ` on '${node}'` : ''}`] };
  return r;
}

export interface FailCount {
  readonly node: string;
  readonly resource: string;
  /** `monitor_10000`, or absent for the legacy per-resource attribute. */
  readonly operation?: string;
  /** As written (`3`, `INFINITY`). */
  readonly count: string;
}

/** `crm resource failcount RSC show [NODE]`: the fail-count attributes for the resource. */
export function failCounts(
  cib: Cib,
  rsc: string,
  node?: string,
): { ok: true; counts: FailCount[]; total: number } | { ok: false; error: EditResult } {
  const placed = findPlacedResource(cib, rsc);
  if (!placed) return { ok: false, error: unknownResource(cib, rsc) };
  if (node !== undefined && !knownNodeNames(cib).includes(node))
    return { ok: false, error: unknownNode(cib, node) };
  const ids = primitiveIdsUnder(placed.resource);
  const counts: FailCount[] = [];
  let total = 0;
  for (const s of cib.status) {
    const name = s.uname ?? s.id;
    if (node !== undefined && name !== node) continue;
    for (const set of s.transientAttributes)
      for (const p of set.pairs) {
        const f = failAttrOf(p.name);
        if (f?.kind !== 'fail-count' || !historyIdMatches(f.rsc, ids)) continue;
        counts.push({
          node: name,
          resource: f.rsc,
          ...(f.op ? { operation: `${f.op}_${f.interval}` } : {}),
          count: p.value ?? '0',
        });
        const n = parseScore(p.value ?? '0');
        total = Math.min(1_000_000, total + (n.ok ? Math.max(0, n.score) : 0));
      }
  }
  return { ok: true, counts, total };
}

/**
 * `crm resource failcount RSC delete NODE`: in Pacemaker 2 this is a cleanup of the resource on
 * that node (crm_failcount --delete runs the same request), so it is one here too.
 */
export function deleteFailCount(cib: Cib, rsc: string, node?: string): EditResult {
  return cleanupResource(cib, rsc, node);
}
