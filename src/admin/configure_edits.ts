/**
 * Configuration edits, as `crm configure …` makes them: cluster properties and defaults,
 * adding resources and constraints from a line of crm syntax, deleting by id, loading a whole
 * configuration. Each checks what it adds (known property names and value types, unique ids,
 * references that lead somewhere) and reports only problems the edit introduces, so an old
 * oddity in a CIB does not block every later edit. Pure.
 */
import { parseCrm } from '../cib/crm.ts';
import type { Cib, Clone, Configuration, Constraint, NvSet, Resource, ResourceSet } from '../cib/model.ts';
import { emptyConfiguration } from '../cib/model.ts';
import { allResources, findPlacedResource, nodeName, resourceIds } from '../cib/resources.ts';
import { validateCib } from '../cib/validate.ts';
import { formatDiagnostic } from '../lib/errors.ts';
import { checkOption, type OptionTable } from './cluster_options.ts';
import { didYouMean, type EditResult, editError, finish, setNvPair } from './edit_result.ts';
import { locate } from './resource_edits.ts';

/** What a command-line snippet is called in messages (`<command line>:1:9: error: …`). */
export const COMMAND_LINE_FILE = '<command line>';
const PLACEHOLDER_AGENT = 'ocf:halo:placeholder';
const PLACEHOLDER_PREFIX = '__halo_placeholder_';

const SET_IDS: Readonly<Record<OptionTable, string>> = {
  property: 'cib-bootstrap-options',
  rsc_defaults: 'rsc-options',
  op_defaults: 'op-options',
};
const SET_FIELDS = { property: 'crmConfig', rsc_defaults: 'rscDefaults', op_defaults: 'opDefaults' } as const;

export interface NameValue {
  readonly name: string;
  readonly value: string;
}

/**
 * `crm configure property k=v …`, `rsc_defaults k=v …`, `op_defaults k=v …`. Every pair is
 * checked first; one bad pair rejects them all.
 */
export function setOptions(
  cib: Cib,
  table: OptionTable,
  pairs: readonly NameValue[],
  force = false,
): EditResult {
  if (pairs.length === 0) return editError('invalid-argument', `${table} needs at least one NAME=VALUE`);
  const notes: string[] = [];
  const plain = pairs.map((p) => {
    const value = withoutTypographicQuotes(p.value);
    if (value === p.value) return p;
    notes.push(
      `typographic quotes removed: ${p.name}=${p.value} read as ${p.name}=${value} (the text was probably copied from a web page)`,
    );
    return { name: p.name, value };
  });
  for (const p of plain) {
    const c = checkOption(table, p.name, p.value, force);
    if (!c.ok) return editError(c.code, c.message);
  }
  const field = SET_FIELDS[table];
  let sets: readonly NvSet[] = cib.configuration[field];
  const kind = table === 'property' ? 'cluster_property_set' : 'meta_attributes';
  for (const p of plain) sets = setNvPair(sets, kind, SET_IDS[table], p.name, p.value);
  return finish(
    cib,
    { ...cib, configuration: { ...cib.configuration, [field]: sets } },
    'configuration',
    notes,
  );
}

/** Opening and closing quotes as blog engines print `"`: “ ” „ and the inch sign ″. */
const TYPOGRAPHIC_QUOTE = /^[\u201c\u201d\u201e\u2033"]([\s\S]*)[\u201c\u201d\u2033"]$/;

/**
 * A value the shell passed on with the typographic quotes a web page put around it
 * (`no-quorum-policy=”stop”`: the shell removes only ASCII quotes) without them; any other
 * value as it is. Both ends must be quotes and one of them typographic, so a value that merely
 * contains such a character is left alone.
 */
export function withoutTypographicQuotes(value: string): string {
  const m = TYPOGRAPHIC_QUOTE.exec(value);
  if (m === null || !/[\u201c\u201d\u201e\u2033]/.test(value[0]! + value.at(-1)!)) return value;
  return m[1]!;
}

// ---------------------------------------------------------------------------------------------
// Adding from crm syntax

/** Joins continuation lines and returns each statement's words (enough to find references). */
function statementWords(text: string): string[][] {
  const joined = text.replace(/\\\r?\n/g, ' ');
  return joined
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(/\s+/));
}

const CONTAINER_KEYWORDS = new Set(['params', 'meta', 'description', 'attributes']);

/** Children named by `group`/`clone`/`ms` statements (ids up to the first keyword). */
function containerChildren(words: readonly string[]): string[] {
  const out: string[] = [];
  for (const w of words.slice(2)) {
    if (CONTAINER_KEYWORDS.has(w) || w.includes('=')) break;
    out.push(w);
  }
  return out;
}

/**
 * Definitions that stand in for existing resources a snippet wraps (`group g a b` when `a` and
 * `b` exist), so the crm parser can assemble the container; they are swapped for the real
 * resources afterwards. Written after the snippet so line numbers in messages stay right.
 */
function placeholders(cib: Cib, stmts: readonly string[][]): { text: string; ids: Set<string> } {
  const defined = new Set(stmts.map((w) => w[1] ?? ''));
  const ids = new Set<string>();
  const lines: string[] = [];
  for (const w of stmts) {
    if (!['group', 'clone', 'ms', 'master'].includes(w[0] ?? '')) continue;
    for (const child of containerChildren(w)) {
      if (defined.has(child) || ids.has(child)) continue;
      const existing = findPlacedResource(cib, child)?.resource;
      if (!existing) continue;
      ids.add(child);
      if (existing.kind === 'group') {
        lines.push(
          `primitive ${PLACEHOLDER_PREFIX}${child} ${PLACEHOLDER_AGENT}`,
          `group ${child} ${PLACEHOLDER_PREFIX}${child}`,
        );
      } else lines.push(`primitive ${child} ${PLACEHOLDER_AGENT}`);
    }
  }
  return { text: lines.length > 0 ? `\n${lines.join('\n')}\n` : '', ids };
}

/** Replaces placeholders in a parsed resource by the existing resources they stand for. */
function restore(r: Resource, cib: Cib, ids: ReadonlySet<string>): Resource {
  if (ids.has(r.id)) return findPlacedResource(cib, r.id)!.resource;
  if (r.kind === 'group') return { ...r, members: r.members.map((m) => restore(m, cib, ids) as typeof m) };
  if (r.kind === 'clone') return { ...r, child: restore(r.child, cib, ids) as Clone['child'] };
  return r;
}

function configIds(conf: Configuration): Set<string> {
  const ids = new Set<string>();
  const visit = (r: Resource): void => {
    ids.add(r.id);
    if (r.kind === 'group') r.members.forEach(visit);
    if (r.kind === 'clone') visit(r.child);
  };
  conf.resources.forEach(visit);
  for (const c of conf.constraints) ids.add(c.id);
  return ids;
}

/** Errors in `after` that `before` did not have: what this edit would introduce. */
/**
 * What an edit brings that the configuration did not have before: errors (the edit is refused)
 * and warnings (it goes ahead, and the warnings are shown as notes, e.g. a Filesystem on DRBD
 * not yet tied to the promoted ms).
 */
function newProblems(before: Cib, after: Cib, file: string): { errors: string[]; warnings: string[] } {
  const key = (d: { code: string; message: string }) => `${d.code}\0${d.message}`;
  const old = new Set(validateCib(before, new Map(), file).map(key));
  const fresh = validateCib(after, new Map(), file).filter((d) => !old.has(key(d)));
  const text = (d: { code: string; message: string }) => `${d.message} (${d.code})`;
  return {
    errors: fresh.filter((d) => d.severity === 'error').map(text),
    warnings: fresh.filter((d) => d.severity !== 'error').map((d) => `warning: ${text(d)}`),
  };
}

export interface AddOptions {
  /** Accept unknown property/defaults names. */
  readonly force?: boolean;
  readonly file?: string;
}

/**
 * `crm configure primitive|group|clone|ms|location|colocation|order|property|… LINE`: parses
 * the crm text and merges it. A group or clone may wrap resources that already exist at the
 * top level (they move inside it, as in crm); new ids must be unused and every reference must
 * lead to a resource.
 */
export function addFromCrm(cib: Cib, text: string, opts: AddOptions = {}): EditResult {
  const file = opts.file ?? COMMAND_LINE_FILE;
  const stmts = statementWords(text);
  if (stmts.length === 0) return editError('invalid-argument', 'nothing to add: the crm text is empty');
  const ph = placeholders(cib, stmts);
  const parsed = parseCrm(text + ph.text, file);
  if (!parsed.ok)
    return editError(
      'parse-error',
      parsed.diagnostics
        .filter((d) => d.severity === 'error')
        .map(formatDiagnostic)
        .join('\n'),
    );
  const add = parsed.cib.configuration;
  if (add.tags || add.acls)
    return editError(
      'invalid-argument',
      'tags and ACLs cannot be added this way; use halo configure load update FILE',
    );
  const existing = configIds(cib.configuration);
  for (const id of ph.ids) {
    const placed = findPlacedResource(cib, id)!;
    if (placed.parents.length > 0)
      return editError(
        'invalid-argument',
        `'${id}' is already inside '${placed.parents[0]!.id}'; it can be in one container only`,
      );
  }
  const added = [...configIds(add)].filter((id) => !ph.ids.has(id) && !id.startsWith(PLACEHOLDER_PREFIX));
  const dup = added.find((id) => existing.has(id));
  if (dup)
    return editError(
      'duplicate-id',
      `id '${dup}' is already used in the configuration; choose another id or delete '${dup}' first`,
    );
  for (const n of add.nodes)
    if (cib.configuration.nodes.some((m) => nodeName(m) === nodeName(n)))
      return editError(
        'duplicate-id',
        `node '${nodeName(n)}' already exists; use halo node attribute to change it`,
      );
  const resources = [
    ...cib.configuration.resources.filter((r) => !ph.ids.has(r.id)),
    ...add.resources.map((r) => restore(r, cib, ph.ids)),
  ];
  let after: Cib = {
    ...cib,
    configuration: {
      ...cib.configuration,
      nodes: [...cib.configuration.nodes, ...add.nodes],
      resources,
      constraints: [...cib.configuration.constraints, ...add.constraints],
      fencingTopology: [...cib.configuration.fencingTopology, ...add.fencingTopology],
      alerts: [...cib.configuration.alerts, ...add.alerts],
    },
  };
  for (const table of ['property', 'rsc_defaults', 'op_defaults'] as const) {
    const pairs = add[SET_FIELDS[table]].flatMap((s) =>
      s.pairs.map((p) => ({ name: p.name, value: p.value ?? '' })),
    );
    if (pairs.length === 0) continue;
    const r = setOptions(after, table, pairs, opts.force);
    if (!r.ok) return r;
    after = r.cib;
  }
  const problems = newProblems(cib, after, file);
  if (problems.errors.length > 0) return editError('invalid-configuration', problems.errors.join('\n'));
  // The parser's warnings (typographic quotes it replaced, Pacemaker 1 properties) are worth
  // seeing on the command line too.
  return finish(cib, { ...after, attrs: cib.attrs }, 'configuration', [
    ...parsed.warnings.map((w) => w.message),
    ...problems.warnings,
  ]);
}

// ---------------------------------------------------------------------------------------------
// Deleting

function refersTo(c: Constraint, ids: ReadonlySet<string>): boolean {
  const direct = [
    'rsc' in c ? c.rsc : undefined,
    c.kind === 'rsc_colocation' ? c.withRsc : undefined,
    c.kind === 'rsc_order' ? c.first : undefined,
    c.kind === 'rsc_order' ? c.then : undefined,
  ];
  return (
    direct.some((d) => d !== undefined && ids.has(d)) ||
    c.sets.some((s) => s.resources.some((r) => ids.has(r)))
  );
}

/** The constraint with `ids` taken out of its sets, or undefined when nothing sensible remains. */
function withoutRefs(c: Constraint, ids: ReadonlySet<string>): Constraint | undefined {
  if (!refersTo(c, ids)) return c;
  const direct = ['rsc', 'withRsc', 'first', 'then'].some((k) => {
    const v = (c as unknown as Record<string, unknown>)[k];
    return typeof v === 'string' && ids.has(v);
  });
  if (direct) return undefined;
  const sets: ResourceSet[] = c.sets
    .map((s) => ({ ...s, resources: s.resources.filter((r) => !ids.has(r)) }))
    .filter((s) => s.resources.length > 0);
  const count = sets.reduce((n, s) => n + s.resources.length, 0);
  const needed = c.kind === 'rsc_location' || c.kind === 'rsc_ticket' ? 1 : 2;
  return count < needed ? undefined : { ...c, sets };
}

function subtreeIds(r: Resource): string[] {
  if (r.kind === 'group') return [r.id, ...r.members.map((m) => m.id)];
  if (r.kind === 'clone') return [r.id, ...subtreeIds(r.child)];
  return [r.id];
}

export interface DeleteOptions {
  /** Also delete constraints that refer to the resource, and delete it even if it is running. */
  readonly force?: boolean;
  readonly nowMs: number;
}

/** `crm configure delete ID`: a resource, a constraint or a node. */
export function deleteId(cib: Cib, id: string, opts: DeleteOptions): EditResult {
  const conf = cib.configuration;
  if (conf.constraints.some((c) => c.id === id)) {
    const constraints = conf.constraints.filter((c) => c.id !== id);
    return finish(cib, { ...cib, configuration: { ...conf, constraints } }, 'configuration');
  }
  const placed = findPlacedResource(cib, id);
  if (placed) return deleteResource(cib, id, opts);
  if (conf.nodes.some((n) => nodeName(n) === id)) {
    const nodes = conf.nodes.filter((n) => nodeName(n) !== id);
    return finish(cib, { ...cib, configuration: { ...conf, nodes } }, 'configuration');
  }
  const known = [...resourceIds(cib), ...conf.constraints.map((c) => c.id), ...conf.nodes.map(nodeName)];
  return editError(
    'unknown-id',
    `nothing has id '${id}' (no resource, constraint or node)${didYouMean(id, known)}`,
  );
}

function deleteResource(cib: Cib, id: string, opts: DeleteOptions): EditResult {
  const conf = cib.configuration;
  const placed = findPlacedResource(cib, id)!;
  const clone = placed.parents.find((p) => p.kind === 'clone');
  if (clone)
    return editError('clone-instance', `'${id}' is inside clone '${clone.id}'; delete '${clone.id}' instead`);
  const ids = new Set(subtreeIds(placed.resource));
  const where = locate(cib, id, opts.nowMs);
  if (!where.ok && !opts.force) {
    const why = where.error.ok ? '' : where.error.error.message;
    return editError('cannot-read-status', `${why}; use --force to delete it without knowing`);
  }
  const running = where.ok ? [...new Set(where.active.map((a) => a.node))] : [];
  if (running.length > 0 && !opts.force)
    return editError(
      'resource-running',
      `'${id}' is running on ${running.join(', ')}; stop it first (halo resource stop ${id}) or use --force`,
    );
  const refs = conf.constraints.filter((c) => refersTo(c, ids));
  if (refs.length > 0 && !opts.force)
    return editError(
      'resource-referenced',
      `'${id}' is referenced by constraint${refs.length > 1 ? 's' : ''} ${refs.map((c) => `'${c.id}'`).join(', ')}; delete ${refs.length > 1 ? 'them' : 'it'} first or use --force to delete ${refs.length > 1 ? 'them' : 'it'} too`,
    );
  const notes: string[] = [];
  const constraints: Constraint[] = [];
  for (const c of conf.constraints) {
    const kept = withoutRefs(c, ids);
    if (kept) constraints.push(kept);
    else notes.push(`deleted constraint '${c.id}', which referred to '${id}'`);
  }
  const group = placed.parents[0];
  let resources: Resource[];
  if (group?.kind === 'group') {
    const members = group.members.filter((m) => m.id !== id);
    if (members.length === 0) notes.push(`deleted group '${group.id}', which had no other member`);
    resources = conf.resources.flatMap((r) =>
      r.id !== group.id ? [r] : members.length > 0 ? [{ ...group, members }] : [],
    );
  } else resources = conf.resources.filter((r) => r.id !== id);
  return finish(cib, { ...cib, configuration: { ...conf, resources, constraints } }, 'configuration', notes);
}

// ---------------------------------------------------------------------------------------------
// Loading a whole configuration

export type LoadMode = 'replace' | 'update';

function byId<T>(current: readonly T[], incoming: readonly T[], id: (x: T) => string): T[] {
  const out = [...current];
  for (const x of incoming) {
    const i = out.findIndex((y) => id(y) === id(x));
    if (i >= 0) out[i] = x;
    else out.push(x);
  }
  return out;
}

function mergeSets(current: readonly NvSet[], incoming: readonly NvSet[], fallbackId: string): NvSet[] {
  let out: readonly NvSet[] = current;
  for (const s of incoming)
    for (const p of s.pairs) out = setNvPair(out, s.kind, s.id ?? fallbackId, p.name, p.value ?? null);
  return [...out];
}

/**
 * `crm configure load replace|update FILE`. Replace swaps the whole configuration (the status
 * section stays); update replaces objects with the same id and adds the others (a new
 * container takes in the top-level resources it wraps).
 */
export function loadConfiguration(
  cib: Cib,
  incoming: Configuration,
  mode: LoadMode,
  file: string,
): EditResult {
  const cur = cib.configuration;
  let conf: Configuration;
  if (mode === 'replace') conf = incoming;
  else {
    const inner = new Set(incoming.resources.flatMap((r) => subtreeIds(r).slice(1)));
    const resources = byId(
      cur.resources.filter((r) => !inner.has(r.id)),
      incoming.resources,
      (r) => r.id,
    );
    conf = {
      ...cur,
      crmConfig: mergeSets(cur.crmConfig, incoming.crmConfig, 'cib-bootstrap-options'),
      rscDefaults: mergeSets(cur.rscDefaults, incoming.rscDefaults, 'rsc-options'),
      opDefaults: mergeSets(cur.opDefaults, incoming.opDefaults, 'op-options'),
      nodes: byId(cur.nodes, incoming.nodes, nodeName),
      resources,
      constraints: byId(cur.constraints, incoming.constraints, (c) => c.id),
      fencingTopology: byId(cur.fencingTopology, incoming.fencingTopology, (f) => f.id),
      alerts: byId(cur.alerts, incoming.alerts, (a) => a.id),
      ...(incoming.tags ? { tags: incoming.tags } : {}),
      ...(incoming.acls ? { acls: incoming.acls } : {}),
    };
  }
  const after: Cib = { ...cib, configuration: conf };
  const ids = allResources(after).map((p) => p.resource.id);
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  if (dup) return editError('duplicate-id', `${file}: resource id '${dup}' would be used twice`);
  const problems = newProblems(
    mode === 'replace' ? { ...cib, configuration: emptyConfiguration() } : cib,
    after,
    file,
  );
  if (problems.errors.length > 0)
    return editError('invalid-configuration', problems.errors.map((p) => `${file}: ${p}`).join('\n'));
  return finish(cib, after, 'configuration', problems.warnings);
}
