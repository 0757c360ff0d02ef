/**
 * Semantic checks on a parsed CIB, beyond what the XML structure says: references that lead
 * nowhere, ids used twice, scores and durations that are not scores or durations, constraints
 * that relate a resource to itself, promotable clones of agents that cannot be promoted, and
 * rule operations Pacemaker does not know. Each finding names the id and where it was written
 * and has a stable `code`:
 *
 * | code | severity | finding |
 * |---|---|---|
 * | `duplicate-id` | error | an id is written twice in the configuration |
 * | `unknown-resource` | error | a constraint or set names a resource that does not exist |
 * | `unknown-node` | warning | a location constraint names a node that is not in `<nodes>` |
 * | `unknown-template` | error | a primitive names a template that does not exist |
 * | `constraint-without-resource` | error | a constraint names no resource and has no set |
 * | `location-without-node` | error | a location constraint has neither node+score nor a rule |
 * | `empty-group` | error | a group has no members |
 * | `invalid-score` | error | a score is not an integer, INFINITY or -INFINITY |
 * | `invalid-duration` | error | an op interval/timeout/start-delay is not a duration |
 * | `self-colocation` | error | a resource is colocated with itself |
 * | `self-order` | error | a resource is ordered against itself (same action) |
 * | `invalid-order-kind` | error | `kind` is not Mandatory, Optional or Serialize |
 * | `clone-of-clone` | error | a clone wraps another clone |
 * | `promotable-agent` | error | a promotable clone holds an agent class that cannot promote |
 * | `unknown-expression-op` | error | a rule expression uses an unknown operation |
 * | `unknown-boolean-op` | error | a rule's boolean-op is neither `and` nor `or` |
 * | `unknown-role`, `unknown-action`, `unknown-on-fail`, `unknown-loss-policy`, `unknown-resource-discovery`, `unknown-expression-type` | error | a word outside Pacemaker's closed vocabulary for that attribute |
 * | `unknown-meta-attribute` | warning | a resource meta attribute Pacemaker ignores that is close to one it reads |
 * | `drbd-filesystem-unguarded` | warning | a Filesystem mounts a DRBD device without being colocated with, and ordered after, the promotion of that DRBD volume |
 *
 * Pure: reads the model and the positions the parser recorded.
 */
import type { Diagnostic, SourcePos } from '../lib/errors.ts';
import type { DrbdConfig } from './drbd_model.ts';
import { parseDuration } from './duration.ts';
import type { Cib, Clone, Constraint, Primitive, Resource, ResourceSet, Rule, XmlElement } from './model.ts';
import {
  allPrimitives,
  allResources,
  instanceAttributesOf,
  isPromotable,
  nodeName,
  type PlacedResource,
  primitiveAgent,
} from './resources.ts';
import { INFINITY, parseScore } from './score.ts';

/** Agent classes that have no promote/demote actions, so cannot back a promotable clone. */
export const NON_PROMOTABLE_CLASSES: ReadonlySet<string> = new Set([
  'lsb',
  'systemd',
  'service',
  'stonith',
  'upstart',
  'nagios',
]);

const EXPRESSION_OPS: ReadonlySet<string> = new Set([
  'defined',
  'not_defined',
  'eq',
  'ne',
  'lt',
  'gt',
  'lte',
  'gte',
]);
const DATE_OPS: ReadonlySet<string> = new Set(['gt', 'lt', 'in_range', 'date_spec']);
const ORDER_KINDS: ReadonlySet<string> = new Set(['mandatory', 'optional', 'serialize']);
/**
 * Pacemaker's ISO 8601 duration reader also takes hours and seconds without the `T`
 * (`P10S` is ten seconds; the regression suite uses it). `M` before `T` means months.
 */
const PACEMAKER_LENIENT_ISO = /^P(?:\d+[YMWDHS])+(?:T(?:\d+[HMS])+)?$/;
/** Node-health colours, which Pacemaker accepts wherever a score goes. */
const SCORE_COLOURS: ReadonlySet<string> = new Set(['red', 'yellow', 'green']);

/**
 * Closed vocabularies, compared case-insensitively as Pacemaker does. Each names the attribute
 * it governs so the message can say what was expected.
 */
const VOCABULARIES = {
  role: ['Stopped', 'Started', 'Promoted', 'Unpromoted', 'Master', 'Slave'],
  action: ['start', 'stop', 'promote', 'demote'],
  'on-fail': [
    'ignore',
    'block',
    'stop',
    'restart',
    'standby',
    'fence',
    'demote',
    'restart-container',
    'reset',
  ],
  'loss-policy': ['stop', 'demote', 'fence', 'freeze'],
  'resource-discovery': ['always', 'never', 'exclusive'],
  type: ['string', 'integer', 'number', 'version'],
} as const;
type Vocabulary = keyof typeof VOCABULARIES;
const VOCABULARY_CODES: Readonly<Record<Vocabulary, string>> = {
  role: 'unknown-role',
  action: 'unknown-action',
  'on-fail': 'unknown-on-fail',
  'loss-policy': 'unknown-loss-policy',
  'resource-discovery': 'unknown-resource-discovery',
  type: 'unknown-expression-type',
};

/** Reports `value` when it is set and not one of the words `vocabulary` allows. */
function checkWord(
  ctx: Ctx,
  vocabulary: Vocabulary,
  value: string | undefined,
  what: string,
  at: (string | undefined)[],
): void {
  if (value === undefined) return;
  const words: readonly string[] = VOCABULARIES[vocabulary];
  if (words.some((w) => w.toLowerCase() === value.toLowerCase())) return;
  add(
    ctx,
    VOCABULARY_CODES[vocabulary],
    `${what} has ${vocabulary} '${value}'; expected one of ${words.join(', ')}`,
    at,
  );
}

interface Ctx {
  readonly file: string;
  readonly positions: ReadonlyMap<string, SourcePos>;
  readonly out: Diagnostic[];
}

function posOf(ctx: Ctx, ...ids: (string | undefined)[]): SourcePos {
  for (const id of ids) {
    const p = id === undefined ? undefined : ctx.positions.get(id);
    if (p) return p;
  }
  return { file: ctx.file, line: 1, column: 1 };
}

function add(
  ctx: Ctx,
  code: string,
  message: string,
  at: (string | undefined)[],
  severity: 'error' | 'warning' = 'error',
): void {
  ctx.out.push({ severity, code, message, pos: posOf(ctx, ...at) });
}

/** What the caller knows beyond the CIB itself. */
export interface ValidateOptions {
  /**
   * drbd.conf's devices, when it was given too: device path (`/dev/drbd0`) → DRBD resource
   * name (`r0`). A Filesystem on such a path is recognised as mounting that resource.
   */
  readonly drbdDevices?: ReadonlyMap<string, string>;
}

/**
 * Checks `cib` and returns every finding, ordered by position. `positions` is what the parser
 * returned (id → where written; later duplicates as `ID#2`, `ID#3`…); ids missing from it are
 * reported at line 1 of `file`.
 */
export function validateCib(
  cib: Cib,
  positions: ReadonlyMap<string, SourcePos>,
  file: string,
  options: ValidateOptions = {},
): Diagnostic[] {
  const ctx: Ctx = { file, positions, out: [] };
  checkDuplicateIds(ctx);
  const known = knownResourceIds(cib);
  checkResources(ctx, cib);
  const nodes = new Set(cib.configuration.nodes.map(nodeName));
  for (const c of cib.configuration.constraints) checkConstraint(ctx, c, known, nodes);
  for (const r of allRules(cib)) checkRule(ctx, r.rule, r.owner);
  checkDrbdFilesystems(ctx, cib, options.drbdDevices ?? new Map());
  return ctx.out.sort((a, b) => a.pos.line - b.pos.line || a.pos.column - b.pos.column);
}

function checkDuplicateIds(ctx: Ctx): void {
  for (const [key, pos] of ctx.positions) {
    const m = /^(.*)#(\d+)$/.exec(key);
    if (!m || !ctx.positions.has(m[1]!)) continue;
    const first = ctx.positions.get(m[1]!)!;
    ctx.out.push({
      severity: 'error',
      code: 'duplicate-id',
      message: `id '${m[1]}' is already used at ${first.line}:${first.column}; ids must be unique`,
      pos,
    });
  }
}

/** Resources, templates, bundles (and what they hold), and tags: what constraints may name. */
function knownResourceIds(cib: Cib): Set<string> {
  const ids = new Set<string>();
  for (const { resource } of allResources(cib)) {
    ids.add(resource.id);
    if (resource.kind === 'bundle') collectXmlIds(resource.xml, ids);
  }
  const tags = cib.configuration.tags;
  if (tags) for (const t of tags.children) if (t.type === 'element') collectXmlIds(t, ids, 0);
  return ids;
}

function collectXmlIds(el: XmlElement, into: Set<string>, depth = Number.POSITIVE_INFINITY): void {
  for (const [k, v] of el.attrs) if (k === 'id') into.add(v);
  if (depth <= 0) return;
  for (const c of el.children) if (c.type === 'element') collectXmlIds(c, into, depth - 1);
}

// ---------------------------------------------------------------------------------------------
// Resources

/**
 * Resource meta attributes Pacemaker reads (Pacemaker Explained, "Resource Meta-Attributes" and
 * the clone, promotable and remote options), with the Pacemaker 1 names it still accepts.
 * Pacemaker ignores any other name, which is how a typo (`master-node-mx`) hides; such a name
 * close to one of these gets a warning.
 */
const RESOURCE_META_NAMES: ReadonlySet<string> = new Set([
  'priority',
  'critical',
  'target-role',
  'is-managed',
  'maintenance',
  'resource-stickiness',
  'requires',
  'migration-threshold',
  'failure-timeout',
  'multiple-active',
  'allow-migrate',
  'allow-unhealthy-nodes',
  'container-attribute-target',
  'remote-node',
  'remote-port',
  'remote-addr',
  'remote-connect-timeout',
  'remote-allow-migrate',
  'globally-unique',
  'clone-max',
  'clone-node-max',
  'clone-min',
  'promotable',
  'promoted-max',
  'promoted-node-max',
  'master-max',
  'master-node-max',
  'interleave',
  'ordered',
  'notify',
  'resource-failure-stickiness',
  'restart-type',
]);
/** Most single-letter edits between a misspelt meta attribute and the name it was meant to be. */
const META_TYPO_MAX_EDITS = 2;

function checkMetaNames(ctx: Ctx, r: Resource): void {
  if (r.kind === 'bundle') return;
  for (const set of r.metaAttributes)
    for (const pair of set.pairs) {
      const name = pair.name.replaceAll('_', '-');
      if (RESOURCE_META_NAMES.has(name) || name.length <= META_TYPO_MAX_EDITS * 2) continue;
      const near = [...RESOURCE_META_NAMES].find((k) => editDistanceAtMost(name, k, META_TYPO_MAX_EDITS));
      if (near === undefined) continue;
      add(
        ctx,
        'unknown-meta-attribute',
        `meta attribute '${pair.name}' of '${r.id}' is not one Pacemaker reads (did you mean '${near}'?); it is kept and ignored`,
        [pair.id, set.id, r.id],
        'warning',
      );
    }
}

/** Whether turning `a` into `b` takes at most `max` single-letter edits (Levenshtein). */
function editDistanceAtMost(a: string, b: string, max: number): boolean {
  if (Math.abs(a.length - b.length) > max) return false;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    if (Math.min(...row) > max) return false;
    prev = row;
  }
  return prev[b.length]! <= max;
}

function checkResources(ctx: Ctx, cib: Cib): void {
  const templates = new Set(
    cib.configuration.resources.filter((r) => r.kind === 'template').map((r) => r.id),
  );
  for (const { resource: r } of allResources(cib)) {
    checkMetaNames(ctx, r);
    switch (r.kind) {
      case 'group':
        if (r.members.length === 0) add(ctx, 'empty-group', `group '${r.id}' has no members`, [r.id]);
        break;
      case 'clone':
        checkClone(ctx, r, cib);
        break;
      case 'primitive':
      case 'template':
        if (r.kind === 'primitive' && r.template !== undefined && !templates.has(r.template)) {
          add(
            ctx,
            'unknown-template',
            `primitive '${r.id}' uses template '${r.template}', which does not exist`,
            [r.id],
          );
        }
        checkOperations(ctx, r);
        break;
      case 'bundle':
        break;
    }
  }
}

function checkClone(ctx: Ctx, clone: Clone, cib: Cib): void {
  const child = clone.child as Resource;
  if (child.kind === 'clone') {
    add(
      ctx,
      'clone-of-clone',
      `clone '${clone.id}' wraps clone '${child.id}'; a clone can hold only a primitive or group`,
      [clone.id],
    );
    return;
  }
  if (!isPromotable(clone, cib)) return;
  const members: readonly Primitive[] =
    child.kind === 'group' ? child.members : child.kind === 'primitive' ? [child] : [];
  for (const p of members) {
    const cls = primitiveAgent(p, cib).class;
    if (cls !== undefined && NON_PROMOTABLE_CLASSES.has(cls)) {
      add(
        ctx,
        'promotable-agent',
        `promotable clone '${clone.id}' holds '${p.id}' of class '${cls}', which cannot be promoted; use an OCF agent with promote/demote`,
        [clone.id],
      );
    }
  }
}

function checkOperations(ctx: Ctx, p: Primitive | Extract<Resource, { kind: 'template' }>): void {
  for (const op of p.operations) {
    const what = `operation '${op.id ?? op.name}' of '${p.id}'`;
    checkWord(ctx, 'role', op.role, what, [op.id, p.id]);
    checkWord(ctx, 'on-fail', op.onFail, what, [op.id, p.id]);
    const fields: [string, string | undefined][] = [
      ['interval', op.interval],
      ['timeout', op.timeout],
      ['start-delay', op.startDelay],
    ];
    for (const [name, value] of fields) {
      if (value === undefined || value === '') continue;
      const d = parseDuration(value);
      if (!d.ok && !PACEMAKER_LENIENT_ISO.test(value.trim())) {
        add(ctx, 'invalid-duration', `${name} of operation '${op.id ?? op.name}' of '${p.id}': ${d.reason}`, [
          op.id,
          p.id,
        ]);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Constraints

function checkScore(ctx: Ctx, value: string | undefined, what: string, at: (string | undefined)[]): void {
  if (value === undefined || SCORE_COLOURS.has(value.trim().toLowerCase())) return;
  const s = parseScore(value);
  if (!s.ok) add(ctx, 'invalid-score', `${what}: ${s.reason}`, at);
}

function checkConstraint(
  ctx: Ctx,
  c: Constraint,
  known: ReadonlySet<string>,
  nodes: ReadonlySet<string>,
): void {
  const ref = (field: string, id: string | undefined): void => {
    if (id !== undefined && !known.has(id)) {
      add(ctx, 'unknown-resource', `${c.kind} '${c.id}' ${field} '${id}', which is not a resource`, [c.id]);
    }
  };
  checkScore(ctx, c.kind === 'rsc_ticket' ? undefined : c.score, `score of ${c.kind} '${c.id}'`, [c.id]);
  for (const set of c.sets) checkSet(ctx, c, set, known);
  const what = `${c.kind} '${c.id}'`;
  switch (c.kind) {
    case 'rsc_location':
      ref('names resource', c.rsc);
      checkWord(ctx, 'role', c.role, what, [c.id]);
      checkWord(ctx, 'resource-discovery', c.resourceDiscovery, what, [c.id]);
      if (c.node !== undefined && !nodes.has(c.node)) {
        add(
          ctx,
          'unknown-node',
          `rsc_location '${c.id}' names node '${c.node}', which is not in <nodes>`,
          [c.id],
          'warning',
        );
      }
      if (c.rsc === undefined && c.rscPattern === undefined && c.sets.length === 0) noResource(ctx, c);
      if (
        c.rules.length === 0 &&
        (c.node === undefined || (c.score === undefined && c.scoreAttribute === undefined))
      ) {
        add(
          ctx,
          'location-without-node',
          `rsc_location '${c.id}' needs either node and score, or at least one rule; it places nothing`,
          [c.id],
        );
      }
      break;
    case 'rsc_colocation':
      ref('names resource', c.rsc);
      ref('is colocated with', c.withRsc);
      checkWord(ctx, 'role', c.rscRole, what, [c.id]);
      checkWord(ctx, 'role', c.withRscRole, what, [c.id]);
      if (c.rsc !== undefined && c.rsc === c.withRsc) {
        add(ctx, 'self-colocation', `rsc_colocation '${c.id}' colocates '${c.rsc}' with itself`, [c.id]);
      }
      if ((c.rsc === undefined || c.withRsc === undefined) && c.sets.length === 0) noResource(ctx, c);
      break;
    case 'rsc_order':
      ref('orders first', c.first);
      ref('orders then', c.then);
      checkWord(ctx, 'action', c.firstAction, what, [c.id]);
      checkWord(ctx, 'action', c.thenAction, what, [c.id]);
      if (
        c.first !== undefined &&
        c.first === c.then &&
        (c.firstAction ?? 'start') === (c.thenAction ?? c.firstAction ?? 'start')
      ) {
        add(ctx, 'self-order', `rsc_order '${c.id}' orders '${c.first}' after itself`, [c.id]);
      }
      if (c.orderKind !== undefined && !ORDER_KINDS.has(c.orderKind.toLowerCase())) {
        add(
          ctx,
          'invalid-order-kind',
          `rsc_order '${c.id}' has kind '${c.orderKind}'; expected Mandatory, Optional or Serialize`,
          [c.id],
        );
      }
      if ((c.first === undefined || c.then === undefined) && c.sets.length === 0) noResource(ctx, c);
      break;
    case 'rsc_ticket':
      ref('names resource', c.rsc);
      checkWord(ctx, 'role', c.rscRole, what, [c.id]);
      checkWord(ctx, 'loss-policy', c.lossPolicy, what, [c.id]);
      if (c.rsc === undefined && c.sets.length === 0) noResource(ctx, c);
      break;
  }
}

function noResource(ctx: Ctx, c: Constraint): void {
  add(ctx, 'constraint-without-resource', `${c.kind} '${c.id}' names no resource and has no resource set`, [
    c.id,
  ]);
}

function checkSet(ctx: Ctx, c: Constraint, set: ResourceSet, known: ReadonlySet<string>): void {
  checkScore(ctx, set.score, `score of resource_set '${set.id ?? ''}'`, [set.id, c.id]);
  checkWord(ctx, 'role', set.role, `resource_set '${set.id ?? ''}'`, [set.id, c.id]);
  checkWord(ctx, 'action', set.action, `resource_set '${set.id ?? ''}'`, [set.id, c.id]);
  for (const id of set.resources) {
    if (!known.has(id)) {
      add(
        ctx,
        'unknown-resource',
        `resource_set '${set.id ?? ''}' of ${c.kind} '${c.id}' names '${id}', which is not a resource`,
        [set.id, c.id],
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Rules

interface OwnedRule {
  readonly rule: Rule;
  /** Id of the nearest element with a recorded position, for reporting. */
  readonly owner: string | undefined;
}

function allRules(cib: Cib): OwnedRule[] {
  const out: OwnedRule[] = [];
  const cfg = cib.configuration;
  for (const c of cfg.constraints)
    if (c.kind === 'rsc_location') for (const r of c.rules) out.push({ rule: r, owner: c.id });
  const sets = [...cfg.crmConfig, ...cfg.rscDefaults, ...cfg.opDefaults];
  for (const n of cfg.nodes) sets.push(...n.instanceAttributes, ...n.utilization);
  for (const { resource: r } of allResources(cib)) {
    if (r.kind === 'bundle') continue;
    sets.push(...r.metaAttributes, ...r.instanceAttributes);
    if (r.kind === 'primitive' || r.kind === 'template') {
      sets.push(...r.utilization);
      for (const op of r.operations) sets.push(...op.metaAttributes, ...op.instanceAttributes);
    }
  }
  for (const s of sets) if (s.rule) out.push({ rule: s.rule, owner: s.id });
  return out;
}

function checkRule(ctx: Ctx, rule: Rule, owner: string | undefined): void {
  const at = [rule.id, owner];
  checkScore(ctx, rule.score, `score of rule '${rule.id ?? ''}'`, at);
  checkWord(ctx, 'role', rule.role, `rule '${rule.id ?? ''}'`, at);
  if (rule.booleanOp !== undefined && rule.booleanOp !== 'and' && rule.booleanOp !== 'or') {
    add(
      ctx,
      'unknown-boolean-op',
      `rule '${rule.id ?? ''}' has boolean-op '${rule.booleanOp}'; expected 'and' or 'or'`,
      at,
    );
  }
  for (const e of rule.expressions) {
    switch (e.kind) {
      case 'rule':
        checkRule(ctx, e, rule.id ?? owner);
        break;
      case 'expression':
        checkWord(ctx, 'type', e.type, `expression '${e.id ?? ''}'`, [e.id, ...at]);
        // Empty only for an `id-ref` expression, whose target is checked where it is written.
        if (!EXPRESSION_OPS.has(e.operation) && (e.operation as string) !== '') {
          add(
            ctx,
            'unknown-expression-op',
            `expression '${e.id ?? ''}' has operation '${e.operation}'; expected one of ${[...EXPRESSION_OPS].join(', ')}`,
            [e.id, ...at],
          );
        }
        break;
      case 'date_expression':
        // Pacemaker reads a missing operation as in_range.
        if ((e.operation as string) !== '' && !DATE_OPS.has(e.operation)) {
          add(
            ctx,
            'unknown-expression-op',
            `date_expression '${e.id ?? ''}' has operation '${e.operation}'; expected gt, lt, in_range or date_spec`,
            [e.id, ...at],
          );
        }
        break;
      case 'rsc_expression':
      case 'op_expression':
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Filesystems on DRBD devices

/**
 * Device paths that are a DRBD (or halo replicated) volume whatever drbd.conf says: the kernel's
 * minors (`/dev/drbd0`), udev's names (`/dev/drbd/by-res/r0[/0]`, `/dev/drbd/by-disk/…`) and
 * halo:volume's default device link (`/dev/halo/r0`).
 */
const DRBD_DEVICE = /^\/dev\/(?:drbd\d+|drbd\/by-(?:res|disk)\/.+|halo\/[^/]+)$/;
const DRBD_BY_RES = /^\/dev\/(?:drbd\/by-res|halo)\/([^/]+)(?:\/\d+)?$/;
const PROMOTED_ROLES: ReadonlySet<string> = new Set(['master', 'promoted']);

/**
 * drbd.conf's devices as `ValidateOptions.drbdDevices`: each `device` path (a host's, else its
 * resource's) → the resource's name. `device minor N` (DRBD 8.4) is `/dev/drbdN`.
 */
export function drbdDevicesOf(confs: readonly DrbdConfig[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const conf of confs)
    for (const res of conf.resources)
      for (const written of [res.device, ...res.hosts.map((h) => h.device)]) {
        const words = written?.trim().split(/\s+/) ?? [];
        const path = words[0]?.startsWith('/')
          ? words[0]
          : words[0] === 'minor'
            ? `/dev/drbd${words[1]}`
            : undefined;
        if (path !== undefined && !out.has(path)) out.set(path, res.name);
      }
  return out;
}

/**
 * What makes a DRBD device Primary: a promotable clone of a DRBD agent (Primary when promoted),
 * or a drbddisk-style resource, plain or cloned (Primary when started).
 */
interface DrbdPromoter {
  readonly id: string;
  /** `promote` for a promotable clone, `start` for drbddisk. */
  readonly action: 'promote' | 'start';
  /** It and what it holds: constraints may name either (Pacemaker maps them to the clone). */
  readonly ids: ReadonlySet<string>;
  /** Its DRBD resource names (`drbd_resource`, or a Heartbeat script's first argument). */
  readonly drbdResources: ReadonlySet<string>;
  /** Its `device_link` values (halo:volume publishes the Primary's device there). */
  readonly deviceLinks: ReadonlySet<string>;
}

/** `ocf:linbit:drbd`, the older `ocf:heartbeat:drbd`, and halo's stand-in `halo:volume`. */
function isDrbdAgent(agent: { readonly class?: string; readonly type?: string }): boolean {
  return (
    (agent.class === 'ocf' && agent.type === 'drbd') || (agent.class === 'halo' && agent.type === 'volume')
  );
}

/**
 * A primitive that makes its DRBD resource Primary when it starts: Heartbeat's `drbddisk` (and
 * `datadisk`, its DRBD 0.6 predecessor), as haresources converts them, and halo:volume in
 * drbddisk mode.
 */
function isDrbddisk(p: Primitive, cib: Cib): boolean {
  const agent = primitiveAgent(p, cib);
  if (agent.type === 'drbddisk' || agent.type === 'datadisk') return true;
  return (
    agent.class === 'halo' &&
    agent.type === 'volume' &&
    instanceAttributesOf(p, cib).get('mode') === 'drbddisk'
  );
}

function drbdPromoters(cib: Cib): DrbdPromoter[] {
  const out: DrbdPromoter[] = [];
  const describe = (
    id: string,
    action: DrbdPromoter['action'],
    ids: readonly string[],
    prims: readonly Primitive[],
  ): DrbdPromoter => {
    const params = prims.map((p) => instanceAttributesOf(p, cib));
    const values = (...names: string[]): Set<string> =>
      new Set(params.flatMap((m) => names.map((n) => m.get(n))).filter((v): v is string => v !== undefined));
    return {
      id,
      action,
      ids: new Set(ids),
      drbdResources: values('drbd_resource', '1'),
      deviceLinks: values('device_link'),
    };
  };
  for (const { resource: r, parents } of allResources(cib)) {
    if (r.kind === 'clone' && isPromotable(r, cib)) {
      const child = r.child as Resource;
      const members = child.kind === 'group' ? child.members : child.kind === 'primitive' ? [child] : [];
      const drbd = members.filter((p) => isDrbdAgent(primitiveAgent(p, cib)));
      if (drbd.length > 0)
        out.push(describe(r.id, 'promote', [r.id, child.id, ...members.map((m) => m.id)], drbd));
    } else if (
      r.kind === 'primitive' &&
      isDrbddisk(r, cib) &&
      !parents.some((p) => p.kind === 'clone' && isPromotable(p, cib))
    ) {
      // A cloned drbddisk (dual-Primary under a cluster filesystem) is named by its clone.
      const clone = parents.find((p) => p.kind === 'clone');
      out.push(describe(clone?.id ?? r.id, 'start', [r.id, ...parents.map((p) => p.id)], [r]));
    }
  }
  return out;
}

/**
 * Warns about a Filesystem whose device is a DRBD volume when nothing makes the cluster mount
 * it only where that volume is Primary: a mandatory colocation with the Promoted (Master) role
 * of the DRBD promotable clone and an order promote → start, each naming the Filesystem, its
 * group, or an earlier member of its group. Without both, the cluster may mount the device on
 * a node where it is Secondary (the mount fails) or, with the volume Primary elsewhere,
 * corrupt the data. A drbddisk earlier in the same group (a Heartbeat haresources line), or
 * colocated with it and started before it, is the other correct shape.
 */
function checkDrbdFilesystems(ctx: Ctx, cib: Cib, drbdDevices: ReadonlyMap<string, string>): void {
  // Built on first need: most configurations mount no DRBD device.
  let promoters: DrbdPromoter[] | undefined;
  let constraintsByResource: Map<string, Constraint[]> | undefined;
  let taken: Set<string> | undefined;
  for (const placed of allPrimitives(cib)) {
    const fs = placed.resource;
    const agent = primitiveAgent(fs, cib);
    if (agent.class !== 'ocf' || agent.type !== 'Filesystem') continue;
    const device = instanceAttributesOf(fs, cib).get('device')?.trim();
    if (device === undefined) continue;
    promoters ??= drbdPromoters(cib);
    const linked = promoters.filter((m) => m.deviceLinks.has(device));
    if (!DRBD_DEVICE.test(device) && !drbdDevices.has(device) && linked.length === 0) continue;
    if (guardedByDrbddisk(placed, cib)) continue;
    const late = drbddiskLaterInGroup(placed, cib);
    if (late !== undefined) {
      add(
        ctx,
        'drbd-filesystem-unguarded',
        `Filesystem '${fs.id}' mounts DRBD device ${device} before '${late.member}' makes it Primary: group '${late.group}' starts its members in the order written; move '${late.member}' before '${fs.id}' (a haresources line starts left to right: drbddisk::RES before Filesystem::…)`,
        [fs.id],
        'warning',
      );
      continue;
    }
    const guards = guardIds(placed);
    // A Filesystem inside the DRBD clone itself is a different mistake, not this one.
    if (promoters.some((m) => m.action === 'promote' && [...guards].some((id) => m.ids.has(id)))) continue;
    const resource = drbdDevices.get(device) ?? DRBD_BY_RES.exec(device)?.[1];
    const named = promoters.filter((m) => resource !== undefined && m.drbdResources.has(resource));
    const candidates = linked.length > 0 ? linked : named.length > 0 ? named : promoters;
    constraintsByResource ??= indexConstraints(cib);
    const constraints = [...new Set([...guards].flatMap((id) => constraintsByResource!.get(id) ?? []))];
    const colocated = candidates.some((m) => constraints.some((c) => colocatesWithPrimary(c, guards, m)));
    const ordered = candidates.some((m) => constraints.some((c) => ordersAfterPrimary(c, guards, m)));
    if (colocated && ordered) continue;
    taken ??= takenIds(cib);
    add(
      ctx,
      'drbd-filesystem-unguarded',
      drbdFilesystemMessage({
        taken,
        fs,
        placed,
        device,
        candidates,
        colocated,
        ordered,
      }),
      [fs.id],
      'warning',
    );
  }
}

/** Constraints by every resource id they name, directly or in a set, so each lookup is short. */
function indexConstraints(cib: Cib): Map<string, Constraint[]> {
  const index = new Map<string, Constraint[]>();
  for (const c of cib.configuration.constraints) {
    const named = new Set(c.sets.flatMap((s) => s.resources));
    const direct =
      c.kind === 'rsc_colocation' ? [c.rsc, c.withRsc] : c.kind === 'rsc_order' ? [c.first, c.then] : [];
    for (const id of direct) if (id !== undefined) named.add(id);
    for (const id of named) {
      const list = index.get(id);
      if (list) list.push(c);
      else index.set(id, [c]);
    }
  }
  return index;
}

function guardedByDrbddisk(placed: PlacedResource<Primitive>, cib: Cib): boolean {
  const group = placed.parents[0];
  if (group?.kind !== 'group') return false;
  const at = group.members.findIndex((m) => m.id === placed.resource.id);
  return group.members.slice(0, at).some((m) => isDrbddisk(m, cib));
}

/** A drbddisk after the Filesystem in its group: it would make the device Primary too late. */
function drbddiskLaterInGroup(
  placed: PlacedResource<Primitive>,
  cib: Cib,
): { readonly group: string; readonly member: string } | undefined {
  const group = placed.parents[0];
  if (group?.kind !== 'group') return undefined;
  const at = group.members.findIndex((m) => m.id === placed.resource.id);
  const late = group.members.slice(at + 1).find((m) => isDrbddisk(m, cib));
  return late === undefined ? undefined : { group: group.id, member: late.id };
}

/**
 * Ids whose constraints bind the Filesystem: itself, the members before it in its group (the
 * group colocates and orders each member after the one before), and its enclosing resources.
 */
function guardIds(placed: PlacedResource<Primitive>): Set<string> {
  const ids = new Set([placed.resource.id, ...placed.parents.map((p) => p.id)]);
  const group = placed.parents[0];
  if (group?.kind === 'group')
    for (const m of group.members) {
      if (m.id === placed.resource.id) break;
      ids.add(m.id);
    }
  return ids;
}

function isPromotedRole(role: string | undefined): boolean {
  return role !== undefined && PROMOTED_ROLES.has(role.toLowerCase());
}

/** A colocation score that never lets the two apart: INFINITY (or unset, giving the benefit of the doubt). */
function isMandatoryScore(score: string | undefined): boolean {
  if (score === undefined) return true;
  const s = parseScore(score);
  return s.ok && s.score >= INFINITY;
}

/** Whether `c` keeps the guards on the node where `m` makes the device Primary. */
function colocatesWithPrimary(c: Constraint, guards: ReadonlySet<string>, m: DrbdPromoter): boolean {
  if (c.kind !== 'rsc_colocation' || !isMandatoryScore(c.score)) return false;
  const roleOk = (role: string | undefined): boolean => m.action === 'start' || isPromotedRole(role);
  const has = (id: string | undefined): boolean => id !== undefined && guards.has(id);
  const isM = (id: string | undefined): boolean => id !== undefined && m.ids.has(id);
  if (has(c.rsc) && isM(c.withRsc) && roleOk(c.withRscRole)) return true;
  if (isM(c.rsc) && roleOk(c.rscRole) && has(c.withRsc)) return true;
  // Resource sets: the Filesystem (or its group) in one set and the DRBD resource in a set
  // with the right role. Sets are read loosely: this check must not cry wolf.
  return (
    c.sets.some((s) => s.resources.some(has)) && c.sets.some((s) => roleOk(s.role) && s.resources.some(isM))
  );
}

/**
 * Whether `c` starts the guards only after `m` made the device Primary. An Optional order
 * counts: it orders the two whenever both happen in one transition, and the colocation keeps
 * the Filesystem off nodes where the device is not Primary. Serialize does not order.
 */
function ordersAfterPrimary(c: Constraint, guards: ReadonlySet<string>, m: DrbdPromoter): boolean {
  if (c.kind !== 'rsc_order' || c.orderKind?.toLowerCase() === 'serialize') return false;
  const firstAction = (c.firstAction ?? 'start').toLowerCase();
  const thenAction = (c.thenAction ?? c.firstAction ?? 'start').toLowerCase();
  if (
    c.first !== undefined &&
    m.ids.has(c.first) &&
    firstAction === m.action &&
    c.then !== undefined &&
    guards.has(c.then) &&
    // crm's `ms:promote fs` leaves then-action unset (Pacemaker then reads it as promote, which
    // a Filesystem lacks); accepted, as what the writer meant.
    (thenAction === 'start' || c.thenAction === undefined)
  )
    return true;
  return (
    c.sets.some(
      (s) => (s.action ?? 'start').toLowerCase() === m.action && s.resources.some((id) => m.ids.has(id)),
    ) && c.sets.some((s) => s.resources.some((id) => guards.has(id)))
  );
}

/** The warning's text: what is mounted where, why that is unsafe, and the crm lines that fix it. */
function drbdFilesystemMessage(f: {
  taken: Set<string>;
  fs: Primitive;
  placed: PlacedResource<Primitive>;
  device: string;
  candidates: readonly DrbdPromoter[];
  colocated: boolean;
  ordered: boolean;
}): string {
  const { fs, device } = f;
  // Constrain the outermost group or clone that holds the Filesystem: its members follow it.
  const subject = f.placed.parents.at(-1)?.id ?? fs.id;
  const via = subject === fs.id ? '' : ` (in '${subject}')`;
  const head = `Filesystem '${fs.id}'${via} mounts DRBD device ${device}`;
  const danger =
    'so the cluster may mount it where the volume is Secondary, or while another node is Primary (data corruption)';
  const first = f.candidates[0];
  if (first === undefined)
    return `${head}, but no promotable clone of a DRBD agent (ocf:linbit:drbd) is configured: nothing in the cluster makes the device Primary where it is mounted, ${danger}; in haresources put drbddisk::RES before it on its line, or manage the volume in the cluster: primitive p_drbd ocf:linbit:drbd params drbd_resource=NAME ; ms ms_drbd p_drbd meta notify=true ; colocation c_${subject}_on_ms_drbd inf: ${subject} ms_drbd:Master ; order o_ms_drbd_before_${subject} inf: ms_drbd:promote ${subject}:start`;
  const ms = first.id;
  const promoted = first.action === 'promote';
  const missing = [
    f.colocated
      ? ''
      : promoted
        ? `not colocated with the Master (Promoted) role of '${ms}'`
        : `not colocated with '${ms}'`,
    f.ordered ? '' : promoted ? `not ordered after '${ms}' is promoted` : `not ordered after '${ms}' starts`,
  ].filter((s) => s !== '');
  const fix = [
    f.colocated
      ? ''
      : `colocation ${freeId(f.taken, `c_${subject}_on_${ms}`)} inf: ${subject} ${ms}${promoted ? ':Master' : ''}`,
    f.ordered
      ? ''
      : `order ${freeId(f.taken, `o_${ms}_before_${subject}`)} inf: ${ms}:${first.action} ${subject}:start`,
  ].filter((s) => s !== '');
  const others =
    f.candidates.length > 1
      ? ` (or whichever of ${f.candidates.map((m) => `'${m.id}'`).join(', ')} holds ${device})`
      : '';
  return `${head} but is ${missing.join(' and ')}${others}, ${danger}; add: ${fix.join(' ; ')}`;
}

/** Ids of every resource and constraint: what a suggested constraint id must not reuse. */
function takenIds(cib: Cib): Set<string> {
  return new Set([
    ...allResources(cib).map((p) => p.resource.id),
    ...cib.configuration.constraints.map((c) => c.id),
  ]);
}

/** `want`, or `want_2`, `want_3`… if that id is taken; the result is taken from then on. */
function freeId(taken: Set<string>, want: string): string {
  let id = want;
  for (let n = 2; taken.has(id); n++) id = `${want}_${n}`;
  taken.add(id);
  return id;
}
