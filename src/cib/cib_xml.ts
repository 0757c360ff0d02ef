/**
 * Pacemaker CIB XML ↔ the cluster model.
 *
 * `parseCibXml` reads what `cibadmin -Q` prints (every element Pacemaker 2.1 uses, the old
 * `<master>` form included) into a `Cib`; `serializeCibXml` writes it back. The pair is
 * round-trip stable: parse → serialize → parse gives a deep-equal model for every input in
 * Pacemaker's scheduler regression suite.
 *
 * Mapping rules:
 * - Attributes with a model field go to that field, as written; any other attribute goes to the
 *   object's `attrs`. The serializer writes known attributes in a fixed order, then `attrs`.
 * - Elements halo does not interpret (bundles, ACLs, tags, unknown configuration or status
 *   children) are kept verbatim as `XmlElement`s.
 * - Comments are kept in `Cib.comments` with the place they stood (see `CibComment`).
 * - An unknown element in a place with a fixed structure cannot be represented: it is reported
 *   as a warning (`unknown-element`) naming its position, never dropped silently.
 * - Missing required attributes are errors (`missing-attribute`); the result is then `ok: false`.
 *
 * `positions` maps each configuration element id to where it was written. When the same id is
 * written again, the later occurrences are keyed `ID#2`, `ID#3`, … so validation can report them.
 * Node ids (and ACL target/group ids) live in their own space and are keyed `node:ID`
 * (`acl_target:ID`, …). Status-section ids are not recorded.
 *
 * Pure (no I/O, no throwing on bad input); `parseCibXmlFile` (cib_xml_fs.ts) reads a file.
 */
import type { Diagnostic, SourcePos } from '../lib/errors.ts';
import type {
  Alert,
  AlertRecipient,
  Cib,
  CibComment,
  Clone,
  ClusterNode,
  Configuration,
  Constraint,
  DateExpression,
  DateSpec,
  ExtraAttrs,
  FencingLevel,
  Group,
  NodeState,
  NvPair,
  NvSet,
  NvSetKind,
  Operation,
  OpHistory,
  Primitive,
  Resource,
  ResourceHistory,
  ResourceSet,
  Rule,
  RuleExpression,
  Template,
  TicketState,
  XmlElement,
  XmlNode,
} from './model.ts';
import type { CibParseResult } from './parse_result.ts';
import {
  attr,
  element,
  MAX_XML_CHARS,
  parseXmlTree,
  serializeXml,
  type XmlParseResult,
  type XmlPos,
  XmlStreamScanner,
  type XmlSubtreeHook,
  xmlTooLarge,
} from './xml_tree.ts';

// ---------------------------------------------------------------------------------------------
// Attribute specs: XML attribute name → model field, in the order the serializer writes them.
// A field marked `true` is required by the model but may be absent in the XML (written as '').

type SpecEntry = readonly [xml: string, field: string, omitEmpty?: boolean];
interface AttrSpec {
  readonly list: readonly SpecEntry[];
  readonly byXml: ReadonlyMap<string, string>;
}

function spec(...list: SpecEntry[]): AttrSpec {
  return { list, byXml: new Map(list.map(([x, f]) => [x, f])) };
}

const S = {
  nvpair: spec(['id', 'id'], ['name', 'name', true], ['value', 'value'], ['id-ref', 'idRef']),
  nvset: spec(['id', 'id'], ['id-ref', 'idRef'], ['score', 'score']),
  rule: spec(
    ['id', 'id'],
    ['id-ref', 'idRef'],
    ['score', 'score'],
    ['score-attribute', 'scoreAttribute'],
    ['boolean-op', 'booleanOp'],
    ['role', 'role'],
  ),
  expression: spec(
    ['id', 'id'],
    ['attribute', 'attribute', true],
    ['operation', 'operation', true],
    ['value', 'value'],
    ['type', 'type'],
    ['value-source', 'valueSource'],
  ),
  dateExpression: spec(['id', 'id'], ['operation', 'operation', true], ['start', 'start'], ['end', 'end']),
  rscExpression: spec(['id', 'id'], ['class', 'class'], ['provider', 'provider'], ['type', 'type']),
  opExpression: spec(['id', 'id'], ['name', 'name', true], ['interval', 'interval']),
  node: spec(
    ['id', 'id'],
    ['uname', 'uname'],
    ['type', 'type'],
    ['description', 'description'],
    ['score', 'score'],
  ),
  op: spec(
    ['id', 'id'],
    ['id-ref', 'idRef'],
    ['name', 'name', true],
    ['interval', 'interval', true],
    ['timeout', 'timeout'],
    ['role', 'role'],
    ['on-fail', 'onFail'],
    ['start-delay', 'startDelay'],
    ['interval-origin', 'intervalOrigin'],
    ['enabled', 'enabled'],
    ['record-pending', 'recordPending'],
    ['description', 'description'],
  ),
  primitive: spec(
    ['id', 'id'],
    ['class', 'class'],
    ['provider', 'provider'],
    ['type', 'type'],
    ['template', 'template'],
    ['description', 'description'],
  ),
  container: spec(['id', 'id'], ['description', 'description']),
  resourceSet: spec(
    ['id', 'id'],
    ['id-ref', 'idRef'],
    ['sequential', 'sequential'],
    ['require-all', 'requireAll'],
    ['ordering', 'ordering'],
    ['action', 'action'],
    ['role', 'role'],
    ['score', 'score'],
    ['kind', 'kind'],
  ),
  location: spec(
    ['id', 'id'],
    ['rsc', 'rsc'],
    ['rsc-pattern', 'rscPattern'],
    ['role', 'role'],
    ['node', 'node'],
    ['score', 'score'],
    ['score-attribute', 'scoreAttribute'],
    ['resource-discovery', 'resourceDiscovery'],
  ),
  colocation: spec(
    ['id', 'id'],
    ['rsc', 'rsc'],
    ['rsc-role', 'rscRole'],
    ['with-rsc', 'withRsc'],
    ['with-rsc-role', 'withRscRole'],
    ['score', 'score'],
    ['node-attribute', 'nodeAttribute'],
    ['influence', 'influence'],
  ),
  order: spec(
    ['id', 'id'],
    ['first', 'first'],
    ['first-action', 'firstAction'],
    ['then', 'then'],
    ['then-action', 'thenAction'],
    ['kind', 'orderKind'],
    ['score', 'score'],
    ['symmetrical', 'symmetrical'],
    ['require-all', 'requireAll'],
  ),
  ticket: spec(
    ['id', 'id'],
    ['ticket', 'ticket'],
    ['rsc', 'rsc'],
    ['rsc-role', 'rscRole'],
    ['loss-policy', 'lossPolicy'],
  ),
  fencingLevel: spec(
    ['id', 'id'],
    ['target', 'target'],
    ['target-pattern', 'targetPattern'],
    ['target-attribute', 'targetAttribute'],
    ['target-value', 'targetValue'],
    ['index', 'index'],
    ['devices', 'devices'],
  ),
  alert: spec(['id', 'id'], ['path', 'path'], ['description', 'description']),
  recipient: spec(['id', 'id'], ['value', 'value'], ['description', 'description']),
  nodeState: spec(
    ['id', 'id', true],
    ['uname', 'uname'],
    ['in_ccm', 'inCcm'],
    ['crmd', 'crmd'],
    ['join', 'join'],
    ['expected', 'expected'],
  ),
  lrmResource: spec(
    ['id', 'id'],
    ['class', 'class'],
    ['provider', 'provider'],
    ['type', 'type'],
    ['container', 'container'],
  ),
  lrmRscOp: spec(
    ['id', 'id'],
    ['operation_key', 'operationKey'],
    ['operation', 'operation'],
    ['interval', 'interval'],
    ['call-id', 'callId'],
    ['rc-code', 'rcCode'],
    ['op-status', 'opStatus'],
    ['last-rc-change', 'lastRcChange'],
    ['last-run', 'lastRun'],
    ['exec-time', 'execTime'],
    ['queue-time', 'queueTime'],
    ['op-digest', 'opDigest'],
    ['op-restart-digest', 'opRestartDigest'],
    ['op-secure-digest', 'opSecureDigest'],
    ['transition-key', 'transitionKey'],
    ['transition-magic', 'transitionMagic'],
    ['on_node', 'onNode'],
    ['exit-reason', 'exitReason'],
  ),
  ticketState: spec(
    ['id', 'id'],
    ['granted', 'granted'],
    ['standby', 'standby'],
    ['last-granted', 'lastGranted'],
  ),
} as const;

/** Elements whose `id` attribute refers to another element rather than defining one. */
const REFERENCE_ELEMENTS: ReadonlySet<string> = new Set(['resource_ref', 'obj_ref', 'role']);

/**
 * Elements whose `id` is a name in its own space rather than an XML ID (a node's id is its
 * cluster-layer id, an ACL target's id is a user name), so a node and a resource may share one.
 * Their positions are keyed `NAME:ID`, e.g. `node:1`.
 */
const OWN_ID_SPACE: ReadonlySet<string> = new Set(['node', 'acl_target', 'acl_group', 'acl_user']);

const RESOURCE_ELEMENTS: ReadonlySet<string> = new Set([
  'primitive',
  'group',
  'clone',
  'master',
  'bundle',
  'template',
]);

const NVSET_KINDS: ReadonlySet<string> = new Set([
  'instance_attributes',
  'meta_attributes',
  'utilization',
  'cluster_property_set',
]);

// ---------------------------------------------------------------------------------------------
// Parsing

type Fields = Record<string, unknown>;

/** Per-parse state: the file, element positions, and the diagnostics found so far. */
interface Ctx {
  readonly file: string;
  readonly position: (el: XmlElement) => XmlPos | undefined;
  readonly errors: Diagnostic[];
  readonly warnings: Diagnostic[];
}

function posOf(ctx: Ctx, el: XmlElement): SourcePos {
  const p = ctx.position(el);
  return { file: ctx.file, line: p?.line ?? 1, column: p?.column ?? 1 };
}

function report(
  ctx: Ctx,
  el: XmlElement,
  severity: 'error' | 'warning',
  code: string,
  message: string,
): void {
  (severity === 'error' ? ctx.errors : ctx.warnings).push({ severity, code, message, pos: posOf(ctx, el) });
}

function describe(el: XmlElement): string {
  const id = attr(el, 'id');
  return id === undefined ? `<${el.name}>` : `<${el.name} id="${id}">`;
}

/** Copies known attributes into `target` fields and the rest into `target.attrs`. */
function takeAttrs(el: XmlElement, s: AttrSpec, target: Fields): void {
  let extra: [string, string][] | undefined;
  for (const pair of el.attrs) {
    const field = s.byXml.get(pair[0]);
    if (field !== undefined) target[field] = pair[1];
    else {
      extra ??= [];
      extra.push([pair[0], pair[1]]);
    }
  }
  if (extra) target.attrs = Object.fromEntries(extra) as ExtraAttrs;
}

/**
 * Reports missing required attributes and fills them with '' so the value is typed. Every
 * caller names attributes whose XML name is also the model field name (`id`, `name`, …).
 */
function need(ctx: Ctx, el: XmlElement, target: Fields, ...names: string[]): void {
  for (const name of names) {
    if (target[name] !== undefined) continue;
    report(
      ctx,
      el,
      'error',
      'missing-attribute',
      `${describe(el)} has no '${name}' attribute, which is required`,
    );
    target[name] = '';
  }
}

function fillEmpty(target: Fields, ...fields: string[]): void {
  for (const f of fields) target[f] ??= '';
}

function unknownChild(ctx: Ctx, parent: XmlElement, child: XmlElement): void {
  report(
    ctx,
    child,
    'warning',
    'unknown-element',
    `<${child.name}> inside ${describe(parent)} is not part of the CIB schema halo reads; it was dropped`,
  );
}

function noAttrs(ctx: Ctx, el: XmlElement, ...allowed: string[]): void {
  for (const [k] of el.attrs) {
    if (allowed.includes(k)) continue;
    report(
      ctx,
      el,
      'warning',
      'unknown-attribute',
      `attribute '${k}' on <${el.name}> is not kept; it was dropped`,
    );
  }
}

/** Elements kept verbatim (text and all); everything else has no text content in a CIB. */
const VERBATIM_ELEMENTS: ReadonlySet<string> = new Set(['bundle', 'acls', 'tags', 'select']);
const STRUCTURED_SECTIONS: ReadonlySet<string> = new Set([
  'configuration',
  'status',
  'crm_config',
  'nodes',
  'resources',
  'constraints',
  'rsc_defaults',
  'op_defaults',
  'fencing-topology',
  'alerts',
  'node_state',
  'tickets',
]);

/**
 * Text has no meaning in the structured parts of a CIB, and the model has no place for it:
 * report each element holding some. Verbatim parts (bundles, ACLs, tags, unknown sections)
 * keep their text and are not searched.
 */
function warnAboutText(ctx: Ctx, el: XmlElement): void {
  let reported = false;
  for (const c of el.children) {
    if (c.type === 'text' && !reported) {
      report(
        ctx,
        el,
        'warning',
        'unexpected-text',
        `text inside ${describe(el)} has no meaning in a CIB; dropped`,
      );
      reported = true;
    } else if (c.type === 'element' && !VERBATIM_ELEMENTS.has(c.name) && isStructured(el, c)) {
      warnAboutText(ctx, c);
    }
  }
}

/** Whether `child` of `parent` is mapped field by field (not kept verbatim). */
function isStructured(parent: XmlElement, child: XmlElement): boolean {
  if (parent.name === 'cib') return child.name === 'configuration' || child.name === 'status';
  if (parent.name === 'configuration' || parent.name === 'status') return STRUCTURED_SECTIONS.has(child.name);
  return true;
}

function readNvPair(ctx: Ctx, el: XmlElement): NvPair {
  const o: Fields = {};
  takeAttrs(el, S.nvpair, o);
  if (o.idRef === undefined) need(ctx, el, o, 'name');
  fillEmpty(o, 'name');
  return o as unknown as NvPair;
}

function readNvSet(ctx: Ctx, el: XmlElement, kind: NvSetKind): NvSet {
  const o: Fields = { kind };
  takeAttrs(el, S.nvset, o);
  const pairs: NvPair[] = [];
  for (const c of el.children) {
    if (c.type !== 'element') continue;
    if (c.name === 'nvpair') pairs.push(readNvPair(ctx, c));
    else if (c.name === 'rule' && o.rule === undefined) o.rule = readRule(ctx, c);
    else unknownChild(ctx, el, c);
  }
  o.pairs = pairs;
  return o as unknown as NvSet;
}

function readRule(ctx: Ctx, el: XmlElement): Rule {
  const o: Fields = { kind: 'rule' };
  takeAttrs(el, S.rule, o);
  const expressions: RuleExpression[] = [];
  for (const c of el.children) {
    if (c.type !== 'element') continue;
    const e = readExpression(ctx, c);
    if (e) expressions.push(e);
    else unknownChild(ctx, el, c);
  }
  o.expressions = expressions;
  return o as unknown as Rule;
}

function readExpression(ctx: Ctx, el: XmlElement): RuleExpression | undefined {
  const o: Fields = { kind: el.name };
  switch (el.name) {
    case 'rule':
      return readRule(ctx, el);
    case 'expression':
      takeAttrs(el, S.expression, o);
      if (o.attrs === undefined || !('id-ref' in (o.attrs as ExtraAttrs)))
        need(ctx, el, o, 'attribute', 'operation');
      fillEmpty(o, 'attribute', 'operation');
      return o as unknown as RuleExpression;
    case 'date_expression':
      return readDateExpression(ctx, el, o);
    case 'rsc_expression':
      takeAttrs(el, S.rscExpression, o);
      return o as unknown as RuleExpression;
    case 'op_expression':
      takeAttrs(el, S.opExpression, o);
      need(ctx, el, o, 'name');
      return o as unknown as RuleExpression;
    default:
      return undefined;
  }
}

function readDateExpression(ctx: Ctx, el: XmlElement, o: Fields): DateExpression {
  takeAttrs(el, S.dateExpression, o);
  fillEmpty(o, 'operation');
  for (const c of el.children) {
    if (c.type !== 'element') continue;
    if (c.name === 'date_spec' && o.dateSpec === undefined) o.dateSpec = readDateSpec(c);
    else if (c.name === 'duration' && o.duration === undefined) o.duration = readDateSpec(c);
    else unknownChild(ctx, el, c);
  }
  return o as unknown as DateExpression;
}

function readDateSpec(el: XmlElement): DateSpec {
  const fields: [string, string][] = [];
  let id: string | undefined;
  for (const [k, v] of el.attrs) {
    if (k === 'id') id = v;
    else fields.push([k, v]);
  }
  const spec: { id?: string; fields: Readonly<Record<string, string>> } = {
    fields: Object.fromEntries(fields),
  };
  if (id !== undefined) spec.id = id;
  return spec;
}

/** Reads `instance_attributes`/`meta_attributes`/`utilization` children into `o`; true if handled. */
function readSetChild(ctx: Ctx, c: XmlElement, o: Fields): boolean {
  let key: string;
  switch (c.name) {
    case 'instance_attributes':
      key = 'instanceAttributes';
      break;
    case 'meta_attributes':
      key = 'metaAttributes';
      break;
    case 'utilization':
      key = 'utilization';
      break;
    default:
      return false;
  }
  const list = o[key] as NvSet[] | undefined;
  if (list === undefined) return false;
  list.push(readNvSet(ctx, c, c.name as NvSetKind));
  return true;
}

function readNode(ctx: Ctx, el: XmlElement): ClusterNode {
  const o: Fields = { instanceAttributes: [], utilization: [] };
  takeAttrs(el, S.node, o);
  need(ctx, el, o, 'id');
  // Pacemaker falls back to the id when uname is missing (remote nodes written by hand).
  fillEmpty(o, 'uname');
  for (const c of el.children) if (c.type === 'element' && !readSetChild(ctx, c, o)) unknownChild(ctx, el, c);
  return o as unknown as ClusterNode;
}

function readOperation(ctx: Ctx, el: XmlElement): Operation {
  const o: Fields = { instanceAttributes: [], metaAttributes: [] };
  takeAttrs(el, S.op, o);
  if (o.idRef === undefined) need(ctx, el, o, 'name', 'interval');
  fillEmpty(o, 'name', 'interval');
  for (const c of el.children) if (c.type === 'element' && !readSetChild(ctx, c, o)) unknownChild(ctx, el, c);
  return o as unknown as Operation;
}

function readPrimitive(ctx: Ctx, el: XmlElement, kind: 'primitive' | 'template'): Primitive | Template {
  const o: Fields = { kind, metaAttributes: [], instanceAttributes: [], utilization: [], operations: [] };
  takeAttrs(el, S.primitive, o);
  need(ctx, el, o, 'id');
  if (o.template === undefined) need(ctx, el, o, 'class', 'type');
  for (const c of el.children) {
    if (c.type !== 'element' || readSetChild(ctx, c, o)) continue;
    if (c.name === 'operations') {
      if (c.attrs.length > 0) o.operationsAttrs = Object.fromEntries(c.attrs.map(([k, v]) => [k, v]));
      for (const op of c.children) {
        if (op.type !== 'element') continue;
        if (op.name === 'op') (o.operations as Operation[]).push(readOperation(ctx, op));
        else unknownChild(ctx, c, op);
      }
    } else unknownChild(ctx, el, c);
  }
  return o as unknown as Primitive;
}

function readGroup(ctx: Ctx, el: XmlElement): Group {
  const o: Fields = { kind: 'group', metaAttributes: [], instanceAttributes: [], members: [] };
  takeAttrs(el, S.container, o);
  need(ctx, el, o, 'id');
  for (const c of el.children) {
    if (c.type !== 'element' || readSetChild(ctx, c, o)) continue;
    if (c.name === 'primitive')
      (o.members as Primitive[]).push(readPrimitive(ctx, c, 'primitive') as Primitive);
    else if (RESOURCE_ELEMENTS.has(c.name)) {
      report(
        ctx,
        c,
        'error',
        'group-member-kind',
        `${describe(el)} holds ${describe(c)}; a group holds only primitives`,
      );
    } else unknownChild(ctx, el, c);
  }
  return o as unknown as Group;
}

function readClone(ctx: Ctx, el: XmlElement): Clone | undefined {
  const o: Fields = {
    kind: 'clone',
    legacyMaster: el.name === 'master',
    metaAttributes: [],
    instanceAttributes: [],
  };
  takeAttrs(el, S.container, o);
  need(ctx, el, o, 'id');
  for (const c of el.children) {
    if (c.type !== 'element' || readSetChild(ctx, c, o)) continue;
    if ((c.name === 'primitive' || c.name === 'group') && o.child !== undefined) {
      report(
        ctx,
        c,
        'error',
        'clone-child',
        `${describe(el)} holds more than one resource; a clone wraps exactly one`,
      );
    } else if (c.name === 'clone' || c.name === 'master') {
      report(
        ctx,
        c,
        'error',
        'clone-of-clone',
        `${describe(el)} wraps ${describe(c)}; a clone can hold only a primitive or group`,
      );
    } else if (c.name === 'primitive') o.child = readPrimitive(ctx, c, 'primitive');
    else if (c.name === 'group') o.child = readGroup(ctx, c);
    else unknownChild(ctx, el, c);
  }
  if (o.child === undefined) {
    report(
      ctx,
      el,
      'error',
      'clone-child',
      `${describe(el)} holds no primitive or group; a clone wraps exactly one`,
    );
    return undefined;
  }
  return o as unknown as Clone;
}

function readResource(ctx: Ctx, el: XmlElement): Resource | undefined {
  switch (el.name) {
    case 'primitive':
      return readPrimitive(ctx, el, 'primitive');
    case 'template':
      return readPrimitive(ctx, el, 'template');
    case 'group':
      return readGroup(ctx, el);
    case 'clone':
    case 'master':
      return readClone(ctx, el);
    case 'bundle': {
      const o: Fields = { id: attr(el, 'id') };
      need(ctx, el, o, 'id');
      return { kind: 'bundle', id: o.id as string, xml: el };
    }
    default:
      return undefined;
  }
}

function readResourceSet(ctx: Ctx, el: XmlElement): ResourceSet {
  const o: Fields = {};
  takeAttrs(el, S.resourceSet, o);
  const resources: string[] = [];
  for (const c of el.children) {
    if (c.type !== 'element') continue;
    if (c.name !== 'resource_ref') {
      unknownChild(ctx, el, c);
      continue;
    }
    noAttrs(ctx, c, 'id');
    const id = attr(c, 'id');
    if (id === undefined)
      report(ctx, c, 'error', 'missing-attribute', `<resource_ref> has no 'id' attribute`);
    else resources.push(id);
  }
  o.resources = resources;
  return o as unknown as ResourceSet;
}

const CONSTRAINT_SPECS: Readonly<Record<string, AttrSpec>> = {
  rsc_location: S.location,
  rsc_colocation: S.colocation,
  rsc_order: S.order,
  rsc_ticket: S.ticket,
};

function readConstraint(ctx: Ctx, el: XmlElement): Constraint | undefined {
  const s = CONSTRAINT_SPECS[el.name];
  if (s === undefined) return undefined;
  const o: Fields = { kind: el.name, sets: [] };
  if (el.name === 'rsc_location') o.rules = [];
  takeAttrs(el, s, o);
  need(ctx, el, o, 'id');
  if (el.name === 'rsc_ticket') need(ctx, el, o, 'ticket');
  for (const c of el.children) {
    if (c.type !== 'element') continue;
    if (c.name === 'resource_set') (o.sets as ResourceSet[]).push(readResourceSet(ctx, c));
    else if (c.name === 'rule' && el.name === 'rsc_location') (o.rules as Rule[]).push(readRule(ctx, c));
    else unknownChild(ctx, el, c);
  }
  return o as unknown as Constraint;
}

function readFencingLevel(ctx: Ctx, el: XmlElement): FencingLevel {
  const o: Fields = {};
  takeAttrs(el, S.fencingLevel, o);
  need(ctx, el, o, 'id', 'index', 'devices');
  for (const c of el.children) if (c.type === 'element') unknownChild(ctx, el, c);
  return o as unknown as FencingLevel;
}

function readAlert(ctx: Ctx, el: XmlElement): Alert {
  const o: Fields = { metaAttributes: [], instanceAttributes: [], recipients: [] };
  takeAttrs(el, S.alert, o);
  need(ctx, el, o, 'id', 'path');
  for (const c of el.children) {
    if (c.type !== 'element' || readSetChild(ctx, c, o)) continue;
    if (c.name === 'select' && o.select === undefined) o.select = c;
    else if (c.name === 'recipient') (o.recipients as AlertRecipient[]).push(readRecipient(ctx, c));
    else unknownChild(ctx, el, c);
  }
  return o as unknown as Alert;
}

function readRecipient(ctx: Ctx, el: XmlElement): AlertRecipient {
  const o: Fields = { metaAttributes: [], instanceAttributes: [] };
  takeAttrs(el, S.recipient, o);
  need(ctx, el, o, 'id', 'value');
  for (const c of el.children) if (c.type === 'element' && !readSetChild(ctx, c, o)) unknownChild(ctx, el, c);
  return o as unknown as AlertRecipient;
}

/** Reads the sets of `crm_config`, `rsc_defaults` or `op_defaults`. */
function readSectionSets(ctx: Ctx, el: XmlElement, allowed: readonly NvSetKind[]): NvSet[] {
  noAttrs(ctx, el);
  const out: NvSet[] = [];
  for (const c of el.children) {
    if (c.type !== 'element') continue;
    if ((allowed as readonly string[]).includes(c.name)) out.push(readNvSet(ctx, c, c.name as NvSetKind));
    else unknownChild(ctx, el, c);
  }
  return out;
}

function readConfiguration(ctx: Ctx, el: XmlElement): Configuration {
  noAttrs(ctx, el);
  const cfg = {
    crmConfig: [] as NvSet[],
    nodes: [] as ClusterNode[],
    resources: [] as Resource[],
    constraints: [] as Constraint[],
    rscDefaults: [] as NvSet[],
    opDefaults: [] as NvSet[],
    fencingTopology: [] as FencingLevel[],
    alerts: [] as Alert[],
  };
  const out: Fields = cfg;
  const extra: XmlElement[] = [];
  for (const c of el.children) {
    if (c.type !== 'element') continue;
    switch (c.name) {
      case 'crm_config':
        cfg.crmConfig.push(...readSectionSets(ctx, c, ['cluster_property_set']));
        break;
      case 'rsc_defaults':
        cfg.rscDefaults.push(...readSectionSets(ctx, c, ['meta_attributes', 'instance_attributes']));
        break;
      case 'op_defaults':
        cfg.opDefaults.push(...readSectionSets(ctx, c, ['meta_attributes', 'instance_attributes']));
        break;
      case 'nodes':
        readList(ctx, c, cfg.nodes, (n) => (n.name === 'node' ? readNode(ctx, n) : undefined));
        break;
      case 'resources':
        readList(ctx, c, cfg.resources, (n) => readResource(ctx, n));
        break;
      case 'constraints':
        readList(ctx, c, cfg.constraints, (n) => readConstraint(ctx, n));
        break;
      case 'fencing-topology':
        readList(ctx, c, cfg.fencingTopology, (n) =>
          n.name === 'fencing-level' ? readFencingLevel(ctx, n) : undefined,
        );
        break;
      case 'alerts':
        readList(ctx, c, cfg.alerts, (n) => (n.name === 'alert' ? readAlert(ctx, n) : undefined));
        break;
      case 'acls':
      case 'tags':
        if (out[c.name] === undefined) out[c.name] = c;
        else extra.push(c);
        break;
      default:
        extra.push(c);
    }
  }
  if (extra.length > 0) out.extra = extra;
  return out as unknown as Configuration;
}

/**
 * Reads the children of a list section. A child the reader does not know is reported; one it
 * knows but found broken (reported already) is skipped.
 */
function readList<T>(ctx: Ctx, el: XmlElement, into: T[], read: (c: XmlElement) => T | undefined): void {
  noAttrs(ctx, el);
  for (const c of el.children) {
    if (c.type !== 'element') continue;
    const before = ctx.errors.length;
    const v = read(c);
    if (v !== undefined) into.push(v);
    else if (ctx.errors.length === before) unknownChild(ctx, el, c);
  }
}

// ---------------------------------------------------------------------------------------------
// Status section

function readNodeState(ctx: Ctx, el: XmlElement, readAhead: ReadonlyMap<XmlElement, ReadAhead>): NodeState {
  const o: Fields = { transientAttributes: [], resources: [], hasLrm: false };
  takeAttrs(el, S.nodeState, o);
  // crm_simulate accepts a node_state without id (it matches by uname); so do we.
  fillEmpty(o, 'id');
  for (const c of el.children) {
    if (c.type !== 'element') continue;
    if (c.name === 'transient_attributes' && o.transientAttributesId === undefined) {
      noAttrs(ctx, c, 'id');
      o.transientAttributesId = attr(c, 'id') ?? '';
      for (const s of c.children) {
        if (s.type !== 'element') continue;
        if (NVSET_KINDS.has(s.name))
          (o.transientAttributes as NvSet[]).push(readNvSet(ctx, s, s.name as NvSetKind));
        else unknownChild(ctx, c, s);
      }
    } else if (c.name === 'lrm' && !o.hasLrm) {
      readLrm(ctx, c, o, readAhead);
    } else unknownChild(ctx, el, c);
  }
  return o as unknown as NodeState;
}

function readLrm(ctx: Ctx, el: XmlElement, o: Fields, readAhead: ReadonlyMap<XmlElement, ReadAhead>): void {
  o.hasLrm = true;
  const extra = el.attrs.filter(([k]) => k !== 'id');
  if (extra.length > 0) o.lrmAttrs = Object.fromEntries(extra);
  const id = attr(el, 'id');
  if (id !== undefined) o.lrmId = id;
  for (const c of el.children) {
    if (c.type !== 'element') continue;
    if (c.name !== 'lrm_resources') {
      unknownChild(ctx, el, c);
      continue;
    }
    noAttrs(ctx, c, 'id');
    const rid = attr(c, 'id');
    if (rid !== undefined) o.lrmResourcesId = rid;
    const ahead = readAhead.get(c);
    let next = 0;
    for (const r of c.children) {
      if (r.type !== 'element') continue;
      if (r === READ_AHEAD && ahead) {
        const found = ahead.diagnostics.get(next);
        if (found) {
          ctx.errors.push(...found.errors);
          ctx.warnings.push(...found.warnings);
        }
        (o.resources as ResourceHistory[]).push(ahead.histories[next++]!);
      } else if (r.name === 'lrm_resource') (o.resources as ResourceHistory[]).push(readLrmResource(ctx, r));
      else unknownChild(ctx, c, r);
    }
  }
}

function readLrmResource(ctx: Ctx, el: XmlElement): ResourceHistory {
  // A large status section holds one of these per resource and node, so their size is most of
  // the model's: the ops array is allocated at its final length (a pushed-to array reserves room
  // for 16), and the usual attribute set gets one object with all its fields in place.
  const a = el.attrs;
  const usual =
    a.length === 4 &&
    a[0]![0] === 'id' &&
    a[1]![0] === 'class' &&
    a[2]![0] === 'provider' &&
    a[3]![0] === 'type';
  let o: Fields | undefined;
  if (!usual) {
    o = {};
    takeAttrs(el, S.lrmResource, o);
    need(ctx, el, o, 'id');
  }
  let count = 0;
  for (const c of el.children) if (c.type === 'element' && c.name === 'lrm_rsc_op') count++;
  const ops: OpHistory[] = count === 0 ? [] : new Array<OpHistory>(count);
  let k = 0;
  for (const c of el.children) {
    if (c.type !== 'element') continue;
    if (c.name !== 'lrm_rsc_op') {
      unknownChild(ctx, el, c);
      continue;
    }
    const op: Fields = {};
    takeAttrs(c, S.lrmRscOp, op);
    need(ctx, c, op, 'id', 'operation', 'interval');
    ops[k++] = op as unknown as OpHistory;
  }
  // The same object takeAttrs would build: the same fields, in the same order.
  if (!o) return { id: a[0]![1], class: a[1]![1], provider: a[2]![1], type: a[3]![1], ops };
  o.ops = ops;
  return o as unknown as ResourceHistory;
}

interface StatusParts {
  status: NodeState[];
  tickets?: TicketState[];
  statusExtra?: XmlElement[];
}

/** The `lrm_resource`s of one `lrm_resources` element read while the XML was being parsed. */
interface ReadAhead {
  readonly histories: ResourceHistory[];
  /** Diagnostics found reading histories[i], by i (most inputs have none). */
  readonly diagnostics: Map<number, { errors: Diagnostic[]; warnings: Diagnostic[] }>;
}

/** Stands in the tree for an `lrm_resource` already read (see `statusReader`). */
const READ_AHEAD: XmlElement = Object.freeze({
  type: 'element',
  name: 'lrm_resource',
  attrs: Object.freeze([]),
  children: Object.freeze([]),
});

/**
 * Reads each `lrm_resource` that `readLrm` would read as soon as it closes, so the status section
 * (in a large cluster most of the CIB: one per resource and node) never exists as a whole XML
 * tree beside its model; each leaves READ_AHEAD in the tree. Diagnostics are kept and reported in
 * document order by `readLrm`, exactly as if it had read the element there.
 */
function statusReader(file: string): { hook: XmlSubtreeHook; readAhead: Map<XmlElement, ReadAhead> } {
  const readAhead = new Map<XmlElement, ReadAhead>();
  const first = (el: XmlElement, name: string): XmlNode | undefined =>
    el.children.find((c) => c.type === 'element' && c.name === name);
  // The path readConfiguration/readStatus/readNodeState/readLrm follow: the first <status> of
  // <cib>, every node_state, its first <lrm>, every lrm_resources.
  const wants = (name: string, up: readonly XmlElement[]): boolean =>
    name === 'lrm_resource' &&
    up.length === 5 &&
    up[0]!.name === 'cib' &&
    up[1] === first(up[0]!, 'status') &&
    up[2]!.name === 'node_state' &&
    up[3] === first(up[2]!, 'lrm') &&
    up[4]!.name === 'lrm_resources';
  let parent: XmlElement | undefined;
  const hook: XmlSubtreeHook = {
    wants: (name, up) => {
      if (!wants(name, up)) return false;
      parent = up[4];
      return true;
    },
    take: (el, position) => {
      const ctx: Ctx = { file, position, errors: [], warnings: [] };
      let entry = readAhead.get(parent!);
      if (!entry) {
        entry = { histories: [], diagnostics: new Map() };
        readAhead.set(parent!, entry);
      }
      entry.histories.push(readLrmResource(ctx, el));
      if (ctx.errors.length + ctx.warnings.length > 0) {
        entry.diagnostics.set(entry.histories.length - 1, { errors: ctx.errors, warnings: ctx.warnings });
      }
      return READ_AHEAD;
    },
  };
  return { hook, readAhead };
}

function readStatus(ctx: Ctx, el: XmlElement, readAhead: ReadonlyMap<XmlElement, ReadAhead>): StatusParts {
  noAttrs(ctx, el);
  const parts: StatusParts = { status: [] };
  for (const c of el.children) {
    if (c.type !== 'element') continue;
    if (c.name === 'node_state') parts.status.push(readNodeState(ctx, c, readAhead));
    else if (c.name === 'tickets' && parts.tickets === undefined) {
      noAttrs(ctx, c);
      parts.tickets = [];
      for (const t of c.children) {
        if (t.type !== 'element') continue;
        if (t.name !== 'ticket_state') {
          unknownChild(ctx, c, t);
          continue;
        }
        const o: Fields = {};
        takeAttrs(t, S.ticketState, o);
        need(ctx, t, o, 'id');
        parts.tickets.push(o as unknown as TicketState);
      }
    } else {
      parts.statusExtra ??= [];
      parts.statusExtra.push(c);
    }
  }
  return parts;
}

// ---------------------------------------------------------------------------------------------
// Comments and positions

function step(name: string, counts: Map<string, number>): string {
  const n = counts.get(name) ?? 0;
  counts.set(name, n + 1);
  return `${name}:${n}`;
}

/** Lists every comment with the path of its parent and the step of the element after it. */
function collectComments(children: readonly XmlNode[], path: string, out: CibComment[]): void {
  const counts = new Map<string, number>();
  let pending: string[] = [];
  for (const c of children) {
    if (c.type === 'comment') pending.push(c.text);
    else if (c.type === 'element') {
      const s = step(c.name, counts);
      for (const text of pending) out.push({ parent: path, before: s, text });
      pending = [];
      collectComments(c.children, path === '' ? s : `${path}/${s}`, out);
    }
  }
  for (const text of pending) out.push({ parent: path, text });
}

/** Returns a copy of `el` without comment nodes (they live in `Cib.comments` instead). */
function stripComments(el: XmlElement): XmlElement {
  let changed = false;
  const kids: XmlNode[] = [];
  for (const c of el.children) {
    if (c.type === 'comment') changed = true;
    else if (c.type === 'element') {
      const s = stripComments(c);
      if (s !== c) changed = true;
      kids.push(s);
    } else kids.push(c);
  }
  return changed ? { ...el, children: kids } : el;
}

function recordIds(ctx: Ctx, el: XmlElement, out: Map<string, SourcePos>, seen: Map<string, number>): void {
  if (!REFERENCE_ELEMENTS.has(el.name)) {
    let raw: string | undefined;
    for (const pair of el.attrs) {
      if (pair[0] === 'id') {
        raw = pair[1];
        break;
      }
    }
    if (raw !== undefined) {
      const id = OWN_ID_SPACE.has(el.name) ? `${el.name}:${raw}` : raw;
      if (!out.has(id)) out.set(id, posOf(ctx, el));
      else {
        // Only repeated ids are counted, so the common case costs one map lookup.
        const n = (seen.get(id) ?? 1) + 1;
        seen.set(id, n);
        out.set(`${id}#${n}`, posOf(ctx, el));
      }
    }
  }
  for (const c of el.children) if (c.type === 'element') recordIds(ctx, c, out, seen);
}

// ---------------------------------------------------------------------------------------------
// Entry point: parse

/**
 * Parses CIB XML text. Never throws on bad input: malformed XML or a broken structure gives
 * `ok: false` with `FILE:LINE:COL` diagnostics; things halo keeps but cannot represent come
 * back as warnings.
 */
export function parseCibXml(text: string, file: string): CibParseResult {
  const { hook, readAhead } = statusReader(file);
  return readCibTree(parseXmlTree(text, file, { subtreeHook: hook }), readAhead, file);
}

/**
 * Bytes read from a CIB file at a time (see `parseCibXmlFile` in cib_xml_fs.ts). Below 128 KiB each decoded piece
 * is an ordinary young-generation string; larger ones go to V8's large-object space, which only a
 * full collection frees, and raised the peak memory of a 85 MB CIB by ~80 MB.
 */
export const CIB_FILE_CHUNK_BYTES = 1 << 16;

/**
 * Parses CIB XML handed over in pieces (see `parseCibXmlFile` in cib_xml_fs.ts, which reads a
 * file this way): the text never exists as a whole (a large cluster's CIB is tens of MB), and
 * the status section is converted as it arrives. Each piece must end between characters (a
 * reader cuts after a `>` byte). `end()` gives the result exactly as `parseCibXml` would on the
 * whole text, or undefined when the input is one the fast scanner leaves to saxes (CR line
 * ends, a byte-order mark, any error): then parse the whole text with `parseCibXml`, so
 * diagnostics are word for word and position for position the same.
 */
export class CibXmlChunkParser {
  private readonly scanner: XmlStreamScanner;
  private readonly readAhead: Map<XmlElement, ReadAhead>;
  private chars = 0;

  constructor(private readonly file: string) {
    const { hook, readAhead } = statusReader(file);
    this.readAhead = readAhead;
    this.scanner = new XmlStreamScanner({ subtreeHook: hook });
  }

  /**
   * Takes the next piece. False once more input cannot change the outcome (the scanner gave up:
   * `end()` then asks for the whole text); past the size limit pieces are only counted, for the
   * message.
   */
  write(piece: string): boolean {
    this.chars += piece.length;
    if (this.chars > MAX_XML_CHARS) return true;
    this.scanner.write(piece);
    return !this.scanner.failed;
  }

  end(): CibParseResult | undefined {
    if (this.chars > MAX_XML_CHARS) return { ok: false, diagnostics: [xmlTooLarge(this.chars, this.file)] };
    const tree = this.scanner.end();
    return tree ? readCibTree(tree, this.readAhead, this.file) : undefined;
  }
}

function readCibTree(
  tree: XmlParseResult,
  readAhead: Map<XmlElement, ReadAhead>,
  file: string,
): CibParseResult {
  if (!tree.ok) return { ok: false, diagnostics: tree.diagnostics };
  const doc = tree.doc;
  // Comments move out of the tree once, so verbatim subtrees don't carry them twice.
  const root = doc.hasComments ? stripComments(doc.root) : doc.root;
  const original = copiedFrom(doc.root, root);
  const position =
    original.size > 0 ? (el: XmlElement) => doc.position(original.get(el) ?? el) : doc.position;
  // Entries read ahead are found through the copies too.
  for (const [copy, from] of original) {
    const ahead = readAhead.get(from);
    if (ahead) readAhead.set(copy, ahead);
  }
  const ctx: Ctx = { file, position, errors: [], warnings: [] };
  if (root.name !== 'cib') {
    report(ctx, root, 'error', 'cib-root', `the root element is <${root.name}>; a CIB starts with <cib>`);
    return { ok: false, diagnostics: ctx.errors };
  }
  let configuration: Configuration | undefined;
  let statusParts: StatusParts | undefined;
  const idPositions = new Map<string, SourcePos>();
  if (doc.hasText) warnAboutText(ctx, root);
  for (const c of root.children) {
    if (c.type !== 'element') continue;
    if (c.name === 'configuration' && configuration === undefined) {
      configuration = readConfiguration(ctx, c);
      recordIds(ctx, c, idPositions, new Map());
    } else if (c.name === 'status' && statusParts === undefined) statusParts = readStatus(ctx, c, readAhead);
    else unknownChild(ctx, root, c);
  }
  if (configuration === undefined) {
    report(ctx, root, 'error', 'cib-missing-section', '<cib> has no <configuration> element');
  }
  if (ctx.errors.length > 0 || configuration === undefined) {
    return { ok: false, diagnostics: [...ctx.errors, ...ctx.warnings] };
  }
  const cib: { -readonly [K in keyof Cib]: Cib[K] } = {
    attrs: root.attrs,
    configuration,
    status: statusParts?.status ?? [],
    hasStatus: statusParts !== undefined,
  };
  if (statusParts?.tickets) cib.tickets = statusParts.tickets;
  if (statusParts?.statusExtra) cib.statusExtra = statusParts.statusExtra;
  if (doc.hasComments) {
    const comments: CibComment[] = [];
    collectComments(doc.children, '', comments);
    cib.comments = comments;
  }
  return { ok: true, cib, positions: idPositions, warnings: ctx.warnings };
}

/** Maps each element of the comment-free copy `to` that is not shared with `from` to its original. */
function copiedFrom(from: XmlElement, to: XmlElement): Map<XmlElement, XmlElement> {
  // Only elements on a path to a removed comment were copied.
  const original = new Map<XmlElement, XmlElement>();
  const walk = (a: XmlElement, b: XmlElement): void => {
    if (a === b) return;
    original.set(b, a);
    const ea = a.children.filter((c): c is XmlElement => c.type === 'element');
    const eb = b.children.filter((c): c is XmlElement => c.type === 'element');
    for (let i = 0; i < ea.length; i++) walk(ea[i]!, eb[i]!);
  };
  walk(from, to);
  return original;
}

// ---------------------------------------------------------------------------------------------
// Serialization

type Pairs = [string, string][];

function attrsOf(obj: object, s: AttrSpec): Pairs {
  const o = obj as Fields;
  const out: Pairs = [];
  for (const [x, f, omitEmpty] of s.list) {
    const v = o[f];
    if (typeof v === 'string' && !(omitEmpty && v === '')) out.push([x, v]);
  }
  const extra = o.attrs as ExtraAttrs | undefined;
  if (extra) for (const k of Object.keys(extra)) out.push([k, extra[k]!]);
  return out;
}

function writeNvSet(set: NvSet): XmlElement {
  const kids: XmlElement[] = [];
  if (set.rule) kids.push(writeRule(set.rule));
  for (const p of set.pairs) kids.push(element('nvpair', attrsOf(p, S.nvpair)));
  return element(set.kind, attrsOf(set, S.nvset), kids);
}

function writeSets(sets: readonly NvSet[] | undefined, out: XmlNode[]): void {
  if (sets) for (const s of sets) out.push(writeNvSet(s));
}

function writeRule(rule: Rule): XmlElement {
  return element('rule', attrsOf(rule, S.rule), rule.expressions.map(writeExpression));
}

function writeExpression(e: RuleExpression): XmlElement {
  switch (e.kind) {
    case 'rule':
      return writeRule(e);
    case 'expression':
      return element('expression', attrsOf(e, S.expression));
    case 'date_expression': {
      const kids: XmlElement[] = [];
      if (e.dateSpec) kids.push(writeDateSpec('date_spec', e.dateSpec));
      if (e.duration) kids.push(writeDateSpec('duration', e.duration));
      return element('date_expression', attrsOf(e, S.dateExpression), kids);
    }
    case 'rsc_expression':
      return element('rsc_expression', attrsOf(e, S.rscExpression));
    case 'op_expression':
      return element('op_expression', attrsOf(e, S.opExpression));
  }
}

function writeDateSpec(name: string, d: DateSpec): XmlElement {
  const attrs: Pairs = d.id === undefined ? [] : [['id', d.id]];
  for (const k of Object.keys(d.fields)) attrs.push([k, d.fields[k]!]);
  return element(name, attrs);
}

function writeComments(comments: readonly string[] | undefined, out: XmlNode[]): void {
  if (comments) for (const text of comments) out.push({ type: 'comment', text });
}

function writePrimitive(p: Primitive | Template): XmlElement {
  const kids: XmlNode[] = [];
  writeComments(p.comments, kids);
  writeSets(p.instanceAttributes, kids);
  writeSets(p.metaAttributes, kids);
  writeSets(p.utilization, kids);
  if (p.operations.length > 0 || p.operationsAttrs) {
    const opsAttrs: Pairs = p.operationsAttrs ? Object.entries(p.operationsAttrs) : [];
    kids.push(element('operations', opsAttrs, p.operations.map(writeOperation)));
  }
  return element(p.kind, attrsOf(p, S.primitive), kids);
}

function writeOperation(op: Operation): XmlElement {
  const kids: XmlNode[] = [];
  writeSets(op.instanceAttributes, kids);
  writeSets(op.metaAttributes, kids);
  return element('op', attrsOf(op, S.op), kids);
}

function writeResource(r: Resource): XmlElement {
  switch (r.kind) {
    case 'primitive':
    case 'template':
      return writePrimitive(r);
    case 'bundle':
      return r.xml;
    case 'group': {
      const kids: XmlNode[] = [];
      writeComments(r.comments, kids);
      writeSets(r.metaAttributes, kids);
      writeSets(r.instanceAttributes, kids);
      for (const m of r.members) kids.push(writePrimitive(m));
      return element('group', attrsOf(r, S.container), kids);
    }
    case 'clone': {
      const kids: XmlNode[] = [];
      writeComments(r.comments, kids);
      writeSets(r.metaAttributes, kids);
      writeSets(r.instanceAttributes, kids);
      kids.push(writeResource(r.child));
      return element(r.legacyMaster ? 'master' : 'clone', attrsOf(r, S.container), kids);
    }
  }
}

function writeResourceSet(s: ResourceSet): XmlElement {
  return element(
    'resource_set',
    attrsOf(s, S.resourceSet),
    s.resources.map((id) => element('resource_ref', [['id', id]])),
  );
}

function writeConstraint(c: Constraint): XmlElement {
  const kids: XmlElement[] = [];
  if (c.kind === 'rsc_location') for (const r of c.rules) kids.push(writeRule(r));
  for (const s of c.sets) kids.push(writeResourceSet(s));
  return element(c.kind, attrsOf(c, CONSTRAINT_SPECS[c.kind]!), kids);
}

function writeNode(n: ClusterNode): XmlElement {
  const kids: XmlNode[] = [];
  writeSets(n.instanceAttributes, kids);
  writeSets(n.utilization, kids);
  return element('node', attrsOf(n, S.node), kids);
}

function writeAlert(a: Alert): XmlElement {
  const kids: XmlNode[] = [];
  writeSets(a.metaAttributes, kids);
  writeSets(a.instanceAttributes, kids);
  if (a.select) kids.push(a.select);
  for (const r of a.recipients) {
    const rk: XmlNode[] = [];
    writeSets(r.metaAttributes, rk);
    writeSets(r.instanceAttributes, rk);
    kids.push(element('recipient', attrsOf(r, S.recipient), rk));
  }
  return element('alert', attrsOf(a, S.alert), kids);
}

function writeConfiguration(cfg: Configuration): XmlElement {
  const kids: XmlNode[] = [
    element('crm_config', [], cfg.crmConfig.map(writeNvSet)),
    element('nodes', [], cfg.nodes.map(writeNode)),
    element('resources', [], cfg.resources.map(writeResource)),
    element('constraints', [], cfg.constraints.map(writeConstraint)),
  ];
  if (cfg.fencingTopology.length > 0) {
    kids.push(
      element(
        'fencing-topology',
        [],
        cfg.fencingTopology.map((l) => element('fencing-level', attrsOf(l, S.fencingLevel))),
      ),
    );
  }
  if (cfg.rscDefaults.length > 0) kids.push(element('rsc_defaults', [], cfg.rscDefaults.map(writeNvSet)));
  if (cfg.opDefaults.length > 0) kids.push(element('op_defaults', [], cfg.opDefaults.map(writeNvSet)));
  if (cfg.alerts.length > 0) kids.push(element('alerts', [], cfg.alerts.map(writeAlert)));
  if (cfg.acls) kids.push(cfg.acls);
  if (cfg.tags) kids.push(cfg.tags);
  if (cfg.extra) kids.push(...cfg.extra);
  return element('configuration', [], kids);
}

function writeNodeState(ns: NodeState): XmlElement {
  const kids: XmlNode[] = [];
  if (ns.transientAttributesId !== undefined || ns.transientAttributes.length > 0) {
    const id = ns.transientAttributesId ?? ns.id;
    kids.push(
      element('transient_attributes', id === '' ? [] : [['id', id]], ns.transientAttributes.map(writeNvSet)),
    );
  }
  if (ns.hasLrm) {
    const resources = ns.resources.map((r) =>
      element(
        'lrm_resource',
        attrsOf(r, S.lrmResource),
        r.ops.map((op) => element('lrm_rsc_op', attrsOf(op, S.lrmRscOp))),
      ),
    );
    const lrmResources = element(
      'lrm_resources',
      ns.lrmResourcesId === undefined ? [] : [['id', ns.lrmResourcesId]],
      resources,
    );
    const lrmAttrs: Pairs = ns.lrmId === undefined ? [] : [['id', ns.lrmId]];
    if (ns.lrmAttrs) lrmAttrs.push(...Object.entries(ns.lrmAttrs));
    kids.push(element('lrm', lrmAttrs, [lrmResources]));
  }
  return element('node_state', attrsOf(ns, S.nodeState), kids);
}

function writeStatus(cib: Cib): XmlElement {
  const kids: XmlNode[] = [];
  if (cib.tickets) {
    kids.push(
      element(
        'tickets',
        [],
        cib.tickets.map((t) => element('ticket_state', attrsOf(t, S.ticketState))),
      ),
    );
  }
  for (const ns of cib.status) kids.push(writeNodeState(ns));
  if (cib.statusExtra) kids.push(...cib.statusExtra);
  return element('status', [], kids);
}

/**
 * Writes a CIB as `cibadmin -Q` formats it (no XML declaration, two-space indent, trailing
 * newline). Known attributes come first in a fixed order, then `attrs` as read.
 */
export function serializeCibXml(cib: Cib): string {
  const kids: XmlNode[] = [writeConfiguration(cib.configuration)];
  if (cib.hasStatus || cib.status.length > 0 || cib.tickets || cib.statusExtra) kids.push(writeStatus(cib));
  const root = element('cib', cib.attrs, kids);
  const doc: XmlNode[] =
    cib.comments && cib.comments.length > 0 ? insertComments(root, cib.comments) : [root];
  return serializeXml(doc);
}

/** Puts comments back where `collectComments` found them; unplaceable ones go to the end. */
function insertComments(root: XmlElement, comments: readonly CibComment[]): XmlNode[] {
  const byParent = new Map<string, CibComment[]>();
  const prefixes = new Set<string>();
  for (const c of comments) {
    const list = byParent.get(c.parent);
    if (list) list.push(c);
    else byParent.set(c.parent, [c]);
    let p = c.parent;
    while (p !== '') {
      prefixes.add(p);
      const i = p.lastIndexOf('/');
      p = i < 0 ? '' : p.slice(0, i);
    }
  }
  const placed = new Set<CibComment>();
  const rebuild = (children: readonly XmlNode[], path: string): XmlNode[] => {
    const mine = byParent.get(path) ?? [];
    const counts = new Map<string, number>();
    const out: XmlNode[] = [];
    for (const c of children) {
      if (c.type !== 'element') {
        out.push(c);
        continue;
      }
      const s = step(c.name, counts);
      for (const m of mine) {
        if (m.before === s && !placed.has(m)) {
          placed.add(m);
          out.push({ type: 'comment', text: m.text });
        }
      }
      const childPath = path === '' ? s : `${path}/${s}`;
      out.push(prefixes.has(childPath) ? { ...c, children: rebuild(c.children, childPath) } : c);
    }
    for (const m of mine) {
      if (!placed.has(m)) {
        placed.add(m);
        out.push({ type: 'comment', text: m.text });
      }
    }
    return out;
  };
  const doc = rebuild([root], '');
  for (const c of comments) if (!placed.has(c)) doc.push({ type: 'comment', text: c.text });
  return doc;
}
