/**
 * crm shell syntax (`crm configure show` output and hand-written `crm configure load` files)
 * to and from the cluster model.
 *
 * The parser reads the whole text, joins `\` continuations, and turns each statement into model
 * values. Ids that crm leaves implicit are generated the way crmsh generates them, so a CIB
 * converted by halo carries the same ids as one loaded with `crm configure load`:
 * `RSC-instance_attributes`, `RSC-instance_attributes-NAME`, `RSC-meta_attributes`,
 * `RSC-OP-INTERVAL` for operations, `cib-bootstrap-options-NAME` for properties,
 * `CONS-rule`, `CONS-rule-expression`, and `-0`, `-1`, … when an id is already taken.
 *
 * Text that went through a blog engine often has typographic quotes (” ″ “ „) and dashes (– —)
 * instead of ASCII ones; they are accepted and each affected line gets a warning, because a
 * silently "corrected" config is a config the user cannot reproduce.
 *
 * The serializer writes the style of `crm configure show`: nodes, primitives (including those
 * inside groups and clones), containers, constraints, then properties and defaults. It omits
 * every id that the parser would generate anyway, so crm → model → crm → model is the identity.
 */
import { AssertionError } from '../lib/assert.ts';
import type { Diagnostic, SourcePos } from '../lib/errors.ts';
import type {
  Alert,
  AlertRecipient,
  AttrExpression,
  Cib,
  Clone,
  ClusterNode,
  ColocationConstraint,
  Configuration,
  Constraint,
  DateExpression,
  DateSpec,
  ExpressionOp,
  FencingLevel,
  Group,
  LocationConstraint,
  NvPair,
  NvSet,
  NvSetKind,
  Operation,
  OrderConstraint,
  Primitive,
  Resource,
  ResourceSet,
  Rule,
  RuleExpression,
  Template,
  TicketConstraint,
  XmlElement,
} from './model.ts';
import { emptyCib } from './model.ts';
import type { CibParseResult } from './parse_result.ts';
import { parseScore } from './score.ts';

/** Longest statement (after joining continuations) we accept; a runaway `\` chain is an error. */
export const CRM_MAX_STATEMENT_TOKENS = 100_000;
/** How many affected line numbers the typography warning lists before "…". */
const TYPOGRAPHY_LINES_SHOWN = 12;

// ---------------------------------------------------------------------------------------------
// Typography

const TYPOGRAPHIC_QUOTES = /[\u201c\u201d\u201e\u201f\u2033\u2036]/;
const TYPOGRAPHIC_DASHES = /[\u2013\u2014\u2012\u2212]/;

/**
 * Replaces typographic double quotes with `"` and typographic dashes with `-` outside ASCII
 * double-quoted strings (text inside real quotes is the user's data and stays as written).
 * Returns the line and the 0-based column of the first replacement, or -1 when none.
 */
export function normalizeTypography(line: string): { text: string; firstCol: number } {
  if (!TYPOGRAPHIC_QUOTES.test(line) && !TYPOGRAPHIC_DASHES.test(line)) return { text: line, firstCol: -1 };
  let out = '';
  let inQuote = false;
  let firstCol = -1;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '"' && line[i - 1] !== '\\') inQuote = !inQuote;
    if (!inQuote && TYPOGRAPHIC_QUOTES.test(c)) {
      if (firstCol < 0) firstCol = i;
      out += '"';
      continue;
    }
    if (!inQuote && TYPOGRAPHIC_DASHES.test(c)) {
      if (firstCol < 0) firstCol = i;
      out += '-';
      continue;
    }
    out += c;
  }
  // Typographic quotes become real quote delimiters, so re-scan is not needed: the tokenizer
  // treats the produced `"` like any other.
  return { text: out, firstCol };
}

// ---------------------------------------------------------------------------------------------
// Lexer

interface Tok {
  /** The token with quotes removed and escapes resolved. */
  readonly text: string;
  /** Index in `text` of the first `=` that stood outside quotes, or -1. */
  readonly eq: number;
  readonly quoted: boolean;
  readonly line: number;
  readonly col: number;
}

interface Stmt {
  readonly tokens: readonly Tok[];
  readonly comments: readonly string[];
}

class Diags {
  readonly list: Diagnostic[] = [];
  constructor(readonly file: string) {}
  pos(line: number, col: number): SourcePos {
    return { file: this.file, line, column: col };
  }
  error(at: { line: number; col: number }, code: string, message: string): void {
    this.list.push({ severity: 'error', code, message, pos: this.pos(at.line, at.col) });
  }
  warn(at: { line: number; col: number }, code: string, message: string): void {
    this.list.push({ severity: 'warning', code, message, pos: this.pos(at.line, at.col) });
  }
  get hasErrors(): boolean {
    return this.list.some((d) => d.severity === 'error');
  }
}

function lex(text: string, d: Diags): Stmt[] {
  const lines = text.split(/\r?\n/);
  const stmts: Stmt[] = [];
  let tokens: Tok[] = [];
  let comments: string[] = [];
  let continuing = false;
  const typo: { line: number; col: number }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    if (!continuing && lines[i]!.trim().startsWith('#')) {
      comments.push(lines[i]!.trim().slice(1).trim());
      continue;
    }
    const norm = normalizeTypography(lines[i]!);
    if (norm.firstCol >= 0) typo.push({ line: lineNo, col: norm.firstCol + 1 });
    let line = norm.text;
    const cont = /\\\s*$/.test(line) && !/\\\\\s*$/.test(line);
    if (cont) line = line.replace(/\\\s*$/, '');
    lexLine(line, lineNo, tokens, d);
    continuing = cont;
    if (!cont && tokens.length > 0) {
      stmts.push({ tokens, comments });
      tokens = [];
      comments = [];
    }
    if (tokens.length > CRM_MAX_STATEMENT_TOKENS) {
      d.error(
        { line: lineNo, col: 1 },
        'crm-too-long',
        `statement longer than ${CRM_MAX_STATEMENT_TOKENS} words`,
      );
      return stmts;
    }
  }
  if (tokens.length > 0) stmts.push({ tokens, comments });
  warnTypography(typo, d);
  return stmts;
}

/** One warning for all typographic characters, at the first, naming every line affected. */
function warnTypography(at: readonly { line: number; col: number }[], d: Diags): void {
  if (at.length === 0) return;
  const shown = at.slice(0, TYPOGRAPHY_LINES_SHOWN).map((a) => a.line);
  const more = at.length > shown.length ? `, … (${at.length} lines)` : '';
  d.warn(
    at[0]!,
    'typographic-character',
    `typographic quotes or dashes (” ″ “ „ – —) replaced by ASCII " and - on line${at.length === 1 ? '' : 's'} ${shown.join(', ')}${more}; the text was probably copied from a web page`,
  );
}

function lexLine(line: string, lineNo: number, out: Tok[], d: Diags): void {
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length) break;
    if (line[i] === '#' && out.length === 0) return;
    const start = i;
    let text = '';
    let eq = -1;
    let quoted = false;
    let keyQuoted = false;
    while (i < line.length && !/\s/.test(line[i]!)) {
      const c = line[i]!;
      if (c === '"' || c === "'") {
        quoted = true;
        if (eq < 0) keyQuoted = true;
        const close = c;
        i++;
        let closed = false;
        while (i < line.length) {
          const q = line[i]!;
          if (q === '\\' && close === '"' && i + 1 < line.length) {
            text += line[i + 1];
            i += 2;
            continue;
          }
          if (q === close) {
            closed = true;
            i++;
            break;
          }
          text += q;
          i++;
        }
        if (!closed) {
          d.error(
            { line: lineNo, col: start + 1 },
            'crm-unterminated-quote',
            'quote opened here is never closed',
          );
        }
        continue;
      }
      if (c === '=' && eq < 0) eq = text.length;
      text += c;
      i++;
    }
    // `"a=b"` or `x"y z"=1` are values, not NAME=VALUE pairs: a name is never quoted.
    out.push({ text, eq: keyQuoted ? -1 : eq, quoted, line: lineNo, col: start + 1 });
  }
}

// ---------------------------------------------------------------------------------------------
// Id generation (shared by parser and serializer so that they agree)

class IdGen {
  private readonly used = new Set<string>();
  has(id: string): boolean {
    return this.used.has(id);
  }
  /** Registers an explicit id; returns false when it is already taken. */
  take(id: string): boolean {
    if (this.used.has(id)) return false;
    this.used.add(id);
    return true;
  }
  /** The id crmsh would generate for `base` now, without registering it. */
  peek(base: string): string {
    if (!this.used.has(base)) return base;
    for (let i = 0; ; i++) {
      const c = `${base}-${i}`;
      if (!this.used.has(c)) return c;
    }
  }
  next(base: string): string {
    const id = this.peek(base);
    this.used.add(id);
    return id;
  }
}

// ---------------------------------------------------------------------------------------------
// Parser

const RESOURCE_KEYWORDS = new Set(['params', 'meta', 'utilization', 'op', 'operations']);
const OP_FIELDS: Readonly<Record<string, keyof Operation>> = {
  interval: 'interval',
  timeout: 'timeout',
  role: 'role',
  'on-fail': 'onFail',
  on_fail: 'onFail',
  'start-delay': 'startDelay',
  'interval-origin': 'intervalOrigin',
  enabled: 'enabled',
  'record-pending': 'recordPending',
  description: 'description',
};
const EXPRESSION_OPS = new Set<ExpressionOp>(['lt', 'gt', 'lte', 'gte', 'eq', 'ne']);
const ORDER_KINDS: Readonly<Record<string, string>> = {
  mandatory: 'Mandatory',
  optional: 'Optional',
  serialize: 'Serialize',
};

class Cursor {
  i = 0;
  constructor(readonly toks: readonly Tok[]) {}
  peek(off = 0): Tok | undefined {
    return this.toks[this.i + off];
  }
  next(): Tok | undefined {
    return this.toks[this.i++];
  }
  get done(): boolean {
    return this.i >= this.toks.length;
  }
  last(): Tok {
    return this.toks[Math.max(0, Math.min(this.i, this.toks.length) - 1)]!;
  }
}

/** Thrown inside one statement's parse to abandon it; caught per statement, never escapes. */
class StmtError extends Error {}

interface PendingPrimitive {
  prim: Primitive;
  order: number;
  pos: SourcePos;
}
interface PendingContainer {
  kind: 'group' | 'clone';
  id: string;
  children: Tok[];
  legacyMaster: boolean;
  description?: string;
  meta: NvSet[];
  params: NvSet[];
  pos: SourcePos;
  comments: readonly string[];
}

class CrmParser {
  readonly gen = new IdGen();
  readonly positions = new Map<string, SourcePos>();
  readonly nodes: ClusterNode[] = [];
  readonly prims: PendingPrimitive[] = [];
  readonly templates: { t: Template; order: number }[] = [];
  readonly containers: { c: PendingContainer; order: number }[] = [];
  readonly constraints: Constraint[] = [];
  readonly crmConfig: NvSet[] = [];
  readonly rscDefaults: NvSet[] = [];
  readonly opDefaults: NvSet[] = [];
  readonly fencing: FencingLevel[] = [];
  readonly tags: XmlElement[] = [];
  readonly alerts: Alert[] = [];
  readonly acls: XmlElement[] = [];
  private order = 0;

  constructor(readonly d: Diags) {}

  fail(at: Tok | undefined, code: string, message: string, fallback?: Tok): never {
    const t = at ?? fallback;
    this.d.error(t ? t : { line: 1, col: 1 }, code, message);
    throw new StmtError(message);
  }

  claim(id: string, at: Tok): void {
    if (!/^[A-Za-z_][\w.:-]*$/.test(id)) {
      this.fail(
        at,
        'crm-bad-id',
        `'${id}' is not a valid id (letters, digits, '_', '-', '.', ':'; not starting with a digit)`,
      );
    }
    if (!this.gen.take(id)) this.fail(at, 'duplicate-id', `id '${id}' is already used`);
    this.positions.set(id, this.d.pos(at.line, at.col));
  }

  gen_(base: string, at: Tok): string {
    const id = this.gen.next(base);
    this.positions.set(id, this.d.pos(at.line, at.col));
    return id;
  }

  statement(s: Stmt): void {
    const c = new Cursor(s.tokens);
    const kw = c.next()!;
    switch (kw.text) {
      case 'node':
        this.node(c, kw);
        return;
      case 'primitive':
        this.primitive(c, kw, 'primitive', s.comments);
        return;
      case 'rsc_template':
        this.primitive(c, kw, 'template', s.comments);
        return;
      case 'group':
        this.container(c, kw, 'group', false, s.comments);
        return;
      case 'clone':
        this.container(c, kw, 'clone', false, s.comments);
        return;
      case 'ms':
      case 'master':
        this.container(c, kw, 'clone', true, s.comments);
        return;
      case 'location':
        this.location(c, kw);
        return;
      case 'colocation':
      case 'collocation':
        this.colocation(c, kw);
        return;
      case 'order':
        this.orderC(c, kw);
        return;
      case 'rsc_ticket':
        this.ticket(c, kw);
        return;
      case 'property':
        this.propertySet(c, kw, this.crmConfig, 'cluster_property_set', 'cib-bootstrap-options');
        return;
      case 'rsc_defaults':
        this.propertySet(c, kw, this.rscDefaults, 'meta_attributes', 'rsc-options');
        return;
      case 'op_defaults':
        this.propertySet(c, kw, this.opDefaults, 'meta_attributes', 'op-options');
        return;
      case 'fencing_topology':
        this.fencingTopology(c, kw);
        return;
      case 'tag':
        this.tag(c, kw);
        return;
      case 'role':
        this.aclRole(c, kw);
        return;
      case 'acl_target':
      case 'acl_group':
        this.aclTarget(c, kw);
        return;
      case 'alert':
        this.alert(c, kw);
        return;
      default:
        this.fail(
          kw,
          'crm-unknown-statement',
          `unknown crm statement '${kw.text}' (expected node, primitive, group, clone, ms, location, colocation, order, property, rsc_defaults, op_defaults, rsc_template, rsc_ticket, fencing_topology or tag)`,
        );
    }
  }

  // -- attribute lists ------------------------------------------------------------------------

  /**
   * Reads `[$id=X|$id-ref=X] NAME=VALUE…` until a token that is not a pair. `base` is the id
   * of the owner; the set id defaults to `base-KIND`.
   */
  attrList(c: Cursor, kind: NvSetKind, owner: string, setBase: string, at: Tok): NvSet {
    let id: string | undefined;
    let idRef: string | undefined;
    const idTok = c.peek();
    if (idTok && idTok.eq >= 0 && (idTok.text.startsWith('$id=') || idTok.text.startsWith('$id-ref='))) {
      c.next();
      const v = idTok.text.slice(idTok.eq + 1);
      if (idTok.text.startsWith('$id-ref=')) idRef = v;
      else {
        this.claim(v, idTok);
        id = v;
      }
    }
    if (id === undefined && idRef === undefined) id = this.gen_(setBase, at);
    const setId = id ?? idRef!;
    const pairs: NvPair[] = [];
    for (;;) {
      const t = c.peek();
      if (!t || t.eq <= 0 || RESOURCE_KEYWORDS.has(t.text)) break;
      c.next();
      const name = t.text.slice(0, t.eq);
      const value = t.text.slice(t.eq + 1);
      const pid = this.gen_(`${setId}-${name}`, t);
      pairs.push({ id: pid, name, value });
    }
    void owner;
    const set: NvSet = {
      kind,
      ...(id !== undefined ? { id } : {}),
      ...(idRef !== undefined ? { idRef } : {}),
      pairs,
    };
    return set;
  }

  // -- nodes ----------------------------------------------------------------------------------

  node(c: Cursor, kw: Tok): void {
    let id: string | undefined;
    let t = c.next() ?? this.fail(undefined, 'crm-syntax', "'node' needs a node name", kw);
    if (t.text.startsWith('$id=')) {
      id = t.text.slice(4);
      t = c.next() ?? this.fail(undefined, 'crm-syntax', "'node' needs a node name after $id", kw);
    } else if (t.text.endsWith(':') && c.peek() && c.peek()!.eq < 0 && c.peek()!.text !== 'attributes') {
      // crmsh 2+ prints `node 1084783310: node1` when the node id differs from its name.
      id = t.text.slice(0, -1);
      t = c.next()!;
    }
    let uname = t.text;
    let type: string | undefined;
    const colon = uname.indexOf(':');
    if (colon > 0) {
      type = uname.slice(colon + 1);
      uname = uname.slice(0, colon);
    }
    const nodeId = id ?? uname;
    // Node ids are free text in the CIB schema (corosync uses numbers), and a separate
    // namespace from element ids, so they are checked only against other nodes.
    if (this.nodes.some((n) => n.id === nodeId))
      this.fail(t, 'duplicate-id', `node id '${nodeId}' is already used`);
    this.positions.set(nodeId, this.d.pos(t.line, t.col));
    let description: string | undefined;
    const attrs: NvSet[] = [];
    const util: NvSet[] = [];
    while (!c.done) {
      const k = c.next()!;
      if (k.text.startsWith('description=')) description = k.text.slice(12);
      else if (k.text === 'attributes')
        attrs.push(this.attrList(c, 'instance_attributes', nodeId, `${uname}-instance_attributes`, k));
      else if (k.text === 'utilization')
        util.push(this.attrList(c, 'utilization', nodeId, `${uname}-utilization`, k));
      else
        this.fail(
          k,
          'crm-syntax',
          `unexpected '${k.text}' in node '${uname}' (expected attributes or utilization)`,
        );
    }
    this.nodes.push({
      id: nodeId,
      uname,
      ...(type !== undefined ? { type } : {}),
      ...(description !== undefined ? { description } : {}),
      instanceAttributes: attrs,
      utilization: util,
    });
  }

  // -- primitives and templates ---------------------------------------------------------------

  primitive(c: Cursor, kw: Tok, kind: 'primitive' | 'template', comments: readonly string[]): void {
    const idTok = c.next() ?? this.fail(undefined, 'crm-syntax', `'${kw.text}' needs an id`, kw);
    const id = idTok.text;
    this.claim(id, idTok);
    const agentTok =
      c.next() ??
      this.fail(
        undefined,
        'crm-syntax',
        `${kw.text} '${id}' needs an agent (e.g. ocf:heartbeat:IPaddr2)`,
        idTok,
      );
    const agent = parseAgent(agentTok.text);
    if (!agent) {
      this.fail(
        agentTok,
        'crm-bad-agent',
        `'${agentTok.text}' is not a resource agent (expected CLASS:PROVIDER:TYPE, CLASS:TYPE or @TEMPLATE)`,
      );
    }
    let description: string | undefined;
    if (c.peek()?.text.startsWith('description=')) description = c.next()!.text.slice(12);
    const inst: NvSet[] = [];
    const meta: NvSet[] = [];
    const util: NvSet[] = [];
    const ops: Operation[] = [];
    let operationsAttrs: Record<string, string> | undefined;
    if (c.peek() && c.peek()!.eq > 0)
      inst.push(this.attrList(c, 'instance_attributes', id, `${id}-instance_attributes`, agentTok));
    while (!c.done) {
      const k = c.next()!;
      switch (k.text) {
        case 'params':
          inst.push(this.attrList(c, 'instance_attributes', id, `${id}-instance_attributes`, k));
          break;
        case 'meta':
          meta.push(this.attrList(c, 'meta_attributes', id, `${id}-meta_attributes`, k));
          break;
        case 'utilization':
          util.push(this.attrList(c, 'utilization', id, `${id}-utilization`, k));
          break;
        case 'op':
          ops.push(this.operation(c, k, id));
          break;
        case 'operations': {
          const v = c.next();
          if (!v?.text.startsWith('$id=')) this.fail(v, 'crm-syntax', "'operations' needs $id=ID", k);
          operationsAttrs = { id: v.text.slice(4) };
          break;
        }
        default:
          this.fail(
            k,
            'crm-syntax',
            `unexpected '${k.text}' in ${kw.text} '${id}' (expected params, meta, utilization or op)`,
          );
      }
    }
    const base = {
      id,
      ...(agent.template ? { template: agent.template } : {}),
      ...(agent.cls ? { class: agent.cls } : {}),
      ...(agent.provider ? { provider: agent.provider } : {}),
      ...(agent.type ? { type: agent.type } : {}),
      ...(description !== undefined ? { description } : {}),
      instanceAttributes: inst,
      metaAttributes: meta,
      utilization: util,
      operations: ops,
      ...(operationsAttrs ? { operationsAttrs } : {}),
      ...(comments.length > 0 ? { comments } : {}),
    };
    const pos = this.d.pos(idTok.line, idTok.col);
    if (kind === 'template') {
      if (agent.template)
        this.fail(agentTok, 'crm-bad-agent', `template '${id}' cannot itself use a template`);
      this.templates.push({ t: { kind: 'template', ...base }, order: this.order++ });
    } else {
      this.prims.push({ prim: { kind: 'primitive', ...base }, order: this.order++, pos });
    }
  }

  operation(c: Cursor, kw: Tok, rsc: string): Operation {
    const nameTok =
      c.next() ??
      this.fail(undefined, 'crm-syntax', "'op' needs an operation name (start, stop, monitor…)", kw);
    if (nameTok.eq >= 0)
      this.fail(nameTok, 'crm-syntax', `'op' needs an operation name before '${nameTok.text}'`);
    const fields: Record<string, string> = {};
    let explicitId: { id: string; tok: Tok } | undefined;
    const extra: { name: string; value: string; tok: Tok }[] = [];
    for (;;) {
      const t = c.peek();
      if (!t || t.eq <= 0 || RESOURCE_KEYWORDS.has(t.text)) break;
      c.next();
      const key = t.text.slice(0, t.eq);
      const value = t.text.slice(t.eq + 1);
      if (key === '$id' || key === 'id') explicitId = { id: value, tok: t };
      else if (Object.hasOwn(OP_FIELDS, key)) fields[OP_FIELDS[key]!] = value;
      else extra.push({ name: key, value, tok: t });
    }
    const interval = fields.interval ?? '0';
    let id: string;
    if (explicitId) {
      this.claim(explicitId.id, explicitId.tok);
      id = explicitId.id;
    } else {
      id = this.gen_(`${rsc}-${nameTok.text}-${interval}`, nameTok);
    }
    const inst: NvSet[] = [];
    if (extra.length > 0) {
      const setId = this.gen_(`${id}-instance_attributes`, nameTok);
      inst.push({
        kind: 'instance_attributes',
        id: setId,
        pairs: extra.map((e) => ({
          id: this.gen_(`${setId}-${e.name}`, e.tok),
          name: e.name,
          value: e.value,
        })),
      });
    }
    const { interval: _i, ...rest } = fields;
    return {
      id,
      name: nameTok.text,
      interval,
      ...rest,
      instanceAttributes: inst,
      metaAttributes: [],
    } as Operation;
  }

  // -- groups, clones, ms ---------------------------------------------------------------------

  container(
    c: Cursor,
    kw: Tok,
    kind: 'group' | 'clone',
    legacyMaster: boolean,
    comments: readonly string[],
  ): void {
    const idTok = c.next() ?? this.fail(undefined, 'crm-syntax', `'${kw.text}' needs an id`, kw);
    const id = idTok.text;
    this.claim(id, idTok);
    const children: Tok[] = [];
    while (!c.done) {
      const t = c.peek()!;
      if (t.eq >= 0 || t.text === 'meta' || t.text === 'params') break;
      children.push(c.next()!);
    }
    if (children.length === 0)
      this.fail(c.peek(), 'crm-syntax', `${kw.text} '${id}' names no resources`, idTok);
    if (kind === 'clone' && children.length > 1) {
      this.fail(
        children[1],
        'crm-syntax',
        `${kw.text} '${id}' may contain exactly one resource, found ${children.length}`,
      );
    }
    let description: string | undefined;
    const meta: NvSet[] = [];
    const params: NvSet[] = [];
    while (!c.done) {
      const k = c.next()!;
      if (k.text.startsWith('description=')) description = k.text.slice(12);
      else if (k.text === 'meta')
        meta.push(this.attrList(c, 'meta_attributes', id, `${id}-meta_attributes`, k));
      else if (k.text === 'params')
        params.push(this.attrList(c, 'instance_attributes', id, `${id}-instance_attributes`, k));
      else
        this.fail(k, 'crm-syntax', `unexpected '${k.text}' in ${kw.text} '${id}' (expected meta or params)`);
    }
    this.containers.push({
      c: {
        kind,
        id,
        children,
        legacyMaster,
        ...(description !== undefined ? { description } : {}),
        meta,
        params,
        pos: this.d.pos(idTok.line, idTok.col),
        comments,
      },
      order: this.order++,
    });
  }

  // -- constraints ----------------------------------------------------------------------------

  location(c: Cursor, kw: Tok): void {
    const idTok = c.next() ?? this.fail(undefined, 'crm-syntax', "'location' needs an id", kw);
    this.claim(idTok.text, idTok);
    const rscTok =
      c.next() ?? this.fail(undefined, 'crm-syntax', `location '${idTok.text}' needs a resource`, idTok);
    const id = idTok.text;
    const pattern = /^\/(.*)\/$/.exec(rscTok.text);
    let node: string | undefined;
    let score: string | undefined;
    let role: string | undefined;
    let discovery: string | undefined;
    const rules: Rule[] = [];
    while (!c.done) {
      const t = c.next()!;
      if (t.text.startsWith('role=')) role = t.text.slice(5);
      else if (t.text.startsWith('resource-discovery=')) discovery = t.text.slice(19);
      else if (t.text === 'rule')
        rules.push(this.rule(c, t, id, rules.length === 0 ? `${id}-rule` : `${id}-rule`));
      else if (rules.length === 0 && node === undefined && t.eq < 0 && t.text.includes(':')) {
        const colon = t.text.lastIndexOf(':');
        score = scoreText(t.text.slice(0, colon), t, this);
        const rest = t.text.slice(colon + 1);
        const n = rest || c.next()?.text;
        if (!n) this.fail(undefined, 'crm-syntax', `location '${id}' needs a node after '${t.text}'`, t);
        node = n;
      } else {
        this.fail(
          t,
          'crm-syntax',
          `unexpected '${t.text}' in location '${id}' (expected SCORE: NODE or rule)`,
        );
      }
    }
    if (node === undefined && rules.length === 0) {
      this.fail(c.last(), 'crm-syntax', `location '${id}' needs SCORE: NODE or a rule`);
    }
    const loc: LocationConstraint = {
      kind: 'rsc_location',
      id,
      ...(pattern ? { rscPattern: pattern[1]! } : { rsc: rscTok.text }),
      ...(role !== undefined ? { role } : {}),
      ...(node !== undefined ? { node, score: score! } : {}),
      ...(discovery !== undefined ? { resourceDiscovery: discovery } : {}),
      rules,
      sets: [],
    };
    this.constraints.push(loc);
  }

  rule(c: Cursor, kw: Tok, owner: string, base: string): Rule {
    void owner;
    let id: string | undefined;
    let idRef: string | undefined;
    let role: string | undefined;
    let score: string | undefined;
    let scoreAttribute: string | undefined;
    for (;;) {
      const t = c.peek() ?? this.fail(undefined, 'crm-syntax', "'rule' needs SCORE: EXPRESSION", kw);
      if (t.text.startsWith('$id=')) {
        c.next();
        id = t.text.slice(4);
        this.claim(id, t);
      } else if (t.text.startsWith('$id-ref=')) {
        c.next();
        idRef = t.text.slice(8);
      } else if (t.text.startsWith('$role=') || t.text.startsWith('role=')) {
        c.next();
        role = t.text.slice(t.eq + 1);
      } else break;
    }
    if (idRef !== undefined) return { kind: 'rule', idRef, expressions: [] };
    const st = c.next() ?? this.fail(undefined, 'crm-syntax', "'rule' needs SCORE: EXPRESSION", kw);
    if (!st.text.endsWith(':'))
      this.fail(st, 'crm-syntax', `rule needs a score ending in ':' (e.g. -inf:), found '${st.text}'`);
    const s = st.text.slice(0, -1);
    if (parseScore(s).ok) score = normalizeScore(s);
    else if (/^[A-Za-z_#][\w#.-]*$/.test(s)) scoreAttribute = s;
    else this.fail(st, 'invalid-score', `'${s}' is not a score (expected an integer, inf or -inf)`);
    const ruleId = id ?? this.gen_(base, kw);
    const exprs: RuleExpression[] = [];
    let boolOp: 'and' | 'or' | undefined;
    for (;;) {
      exprs.push(this.expression(c, ruleId, st));
      const t = c.peek();
      if (!t || (t.text !== 'and' && t.text !== 'or')) break;
      c.next();
      if (boolOp && boolOp !== t.text) {
        this.fail(t, 'crm-syntax', `a rule cannot mix 'and' and 'or'; split it into two rules`);
      }
      boolOp = t.text as 'and' | 'or';
    }
    return {
      kind: 'rule',
      id: ruleId,
      ...(score !== undefined ? { score } : {}),
      ...(scoreAttribute !== undefined ? { scoreAttribute } : {}),
      // Like crmsh, 'and' (Pacemaker's default) is left implicit.
      ...(boolOp === 'or' ? { booleanOp: boolOp } : {}),
      ...(role !== undefined ? { role } : {}),
      expressions: exprs,
    };
  }

  expression(c: Cursor, ruleId: string, at: Tok): RuleExpression {
    const a = c.next() ?? this.fail(undefined, 'crm-syntax', 'rule needs an expression after the score', at);
    if (a.text === 'defined' || a.text === 'not_defined') {
      const attr = c.next() ?? this.fail(undefined, 'crm-syntax', `'${a.text}' needs an attribute name`, a);
      const id = this.gen_(`${ruleId}-expression`, a);
      return { kind: 'expression', id, attribute: attr.text, operation: a.text } satisfies AttrExpression;
    }
    if (a.text === 'date') return this.dateExpression(c, ruleId, a);
    const opTok =
      c.next() ??
      this.fail(
        undefined,
        'crm-syntax',
        `expression on '${a.text}' needs an operator (lt, gt, lte, gte, eq, ne)`,
        a,
      );
    let op = opTok.text;
    let type: string | undefined;
    const colon = op.indexOf(':');
    if (colon > 0) {
      type = op.slice(0, colon);
      op = op.slice(colon + 1);
    }
    if (!EXPRESSION_OPS.has(op as ExpressionOp)) {
      this.fail(
        opTok,
        'crm-syntax',
        `'${opTok.text}' is not an operator (expected lt, gt, lte, gte, eq or ne)`,
      );
    }
    const v = c.next() ?? this.fail(undefined, 'crm-syntax', `'${a.text} ${op}' needs a value`, opTok);
    const id = this.gen_(`${ruleId}-expression`, a);
    return {
      kind: 'expression',
      id,
      attribute: a.text,
      operation: op as ExpressionOp,
      value: v.text,
      ...(type !== undefined ? { type } : {}),
    } satisfies AttrExpression;
  }

  dateExpression(c: Cursor, ruleId: string, at: Tok): DateExpression {
    const opTok =
      c.next() ?? this.fail(undefined, 'crm-syntax', "'date' needs gt, lt, in_range or date_spec", at);
    const id = this.gen_(`${ruleId}-expression`, at);
    const kv = (): Record<string, string> => {
      const out: Record<string, string> = {};
      while (c.peek() && c.peek()!.eq > 0) {
        const t = c.next()!;
        out[t.text.slice(0, t.eq)] = t.text.slice(t.eq + 1);
      }
      return out;
    };
    switch (opTok.text) {
      case 'gt':
      case 'lt': {
        const v = c.next() ?? this.fail(undefined, 'crm-syntax', `'date ${opTok.text}' needs a date`, opTok);
        return {
          kind: 'date_expression',
          id,
          operation: opTok.text,
          ...(opTok.text === 'gt' ? { start: v.text } : { end: v.text }),
        };
      }
      case 'in':
      case 'in_range': {
        const f = kv();
        const { start, end, ...dur } = f;
        const hasDur = Object.keys(dur).length > 0;
        if (start === undefined && end === undefined)
          this.fail(opTok, 'crm-syntax', "'date in_range' needs start= and/or end=");
        return {
          kind: 'date_expression',
          id,
          operation: 'in_range',
          ...(start !== undefined ? { start } : {}),
          ...(end !== undefined ? { end } : {}),
          ...(hasDur ? { duration: { id: `${id}-duration`, fields: dur } } : {}),
        };
      }
      case 'spec':
      case 'date_spec': {
        const f = kv();
        if (Object.keys(f).length === 0)
          this.fail(opTok, 'crm-syntax', "'date date_spec' needs fields such as hours=9-16");
        const spec: DateSpec = { id: `${id}-date_spec`, fields: f };
        return { kind: 'date_expression', id, operation: 'date_spec', dateSpec: spec };
      }
      default:
        this.fail(
          opTok,
          'crm-syntax',
          `'date ${opTok.text}' is not a date expression (expected gt, lt, in_range or date_spec)`,
        );
    }
  }

  colocation(c: Cursor, kw: Tok): void {
    const idTok = c.next() ?? this.fail(undefined, 'crm-syntax', `'${kw.text}' needs an id`, kw);
    this.claim(idTok.text, idTok);
    const st =
      c.next() ??
      this.fail(undefined, 'crm-syntax', `colocation '${idTok.text}' needs a score (e.g. inf:)`, idTok);
    if (!st.text.endsWith(':'))
      this.fail(
        st,
        'crm-syntax',
        `colocation '${idTok.text}' needs a score ending in ':' (e.g. inf:), found '${st.text}'`,
      );
    const score = scoreText(st.text.slice(0, -1), st, this);
    const r = this.sets(c, idTok, 'colocation', ['node-attribute', 'influence']);
    const col: ColocationConstraint = r.simple
      ? {
          kind: 'rsc_colocation',
          id: idTok.text,
          rsc: r.simple[0].rsc,
          withRsc: r.simple[1].rsc,
          ...(r.simple[0].qual !== undefined ? { rscRole: r.simple[0].qual } : {}),
          ...(r.simple[1].qual !== undefined ? { withRscRole: r.simple[1].qual } : {}),
          score,
          ...optionFields(r.options, { 'node-attribute': 'nodeAttribute', influence: 'influence' }),
          sets: [],
        }
      : {
          kind: 'rsc_colocation',
          id: idTok.text,
          score,
          ...optionFields(r.options, { 'node-attribute': 'nodeAttribute', influence: 'influence' }),
          sets: r.sets,
        };
    this.constraints.push(col);
  }

  orderC(c: Cursor, kw: Tok): void {
    const idTok = c.next() ?? this.fail(undefined, 'crm-syntax', "'order' needs an id", kw);
    this.claim(idTok.text, idTok);
    let kind: string | undefined;
    let score: string | undefined;
    const st = c.peek();
    if (st?.text.endsWith(':') && st.eq < 0) {
      c.next();
      const k = st.text.slice(0, -1);
      if (Object.hasOwn(ORDER_KINDS, k.toLowerCase())) kind = ORDER_KINDS[k.toLowerCase()]!;
      else {
        // Like crmsh 4, a score becomes a kind: Pacemaker 2 deprecates `score` on rsc_order
        // (crm_verify warns). Positive means Mandatory, 0 Optional; a negative score has no
        // kind equivalent and is kept.
        score = scoreText(k, st, this);
        const n = parseScore(score);
        if (n.ok && n.score >= 0) {
          kind = n.score > 0 ? 'Mandatory' : 'Optional';
          score = undefined;
        }
      }
    }
    const r = this.sets(c, idTok, 'order', ['symmetrical', 'require-all']);
    const base = {
      kind: 'rsc_order' as const,
      id: idTok.text,
      ...(kind !== undefined ? { orderKind: kind } : {}),
      ...(score !== undefined ? { score } : {}),
      ...optionFields(r.options, { symmetrical: 'symmetrical', 'require-all': 'requireAll' }),
    };
    const o: OrderConstraint = r.simple
      ? {
          ...base,
          first: r.simple[0].rsc,
          // biome-ignore lint/suspicious/noThenProperty: Pacemaker names this rsc_order attribute 'then'.
          then: r.simple[1].rsc,
          ...(r.simple[0].qual !== undefined ? { firstAction: r.simple[0].qual } : {}),
          ...(r.simple[1].qual !== undefined ? { thenAction: r.simple[1].qual } : {}),
          sets: [],
        }
      : { ...base, sets: r.sets };
    this.constraints.push(o);
  }

  ticket(c: Cursor, kw: Tok): void {
    const idTok = c.next() ?? this.fail(undefined, 'crm-syntax', "'rsc_ticket' needs an id", kw);
    this.claim(idTok.text, idTok);
    const tt = c.next();
    if (!tt?.text.endsWith(':'))
      this.fail(tt, 'crm-syntax', `rsc_ticket '${idTok.text}' needs TICKET: before its resources`, idTok);
    const r = this.sets(c, idTok, 'ticket', ['loss-policy']);
    const t: TicketConstraint = {
      kind: 'rsc_ticket',
      id: idTok.text,
      ticket: tt.text.slice(0, -1),
      ...(r.sets.length === 0
        ? {
            rsc: r.refs[0]!.rsc,
            ...(r.refs[0]!.qual !== undefined ? { rscRole: r.refs[0]!.qual } : {}),
            sets: [],
          }
        : { sets: r.sets }),
      ...optionFields(r.options, { 'loss-policy': 'lossPolicy' }),
    };
    this.constraints.push(t);
  }

  /**
   * Reads the resource part of colocation/order/rsc_ticket: `A B:Master ( C D ) [ E F ]`,
   * then `key=value` options. Plain runs become sequential sets; `( … )` a set with
   * sequential=false; `[ … ]` a set with require-all=false. A change of role/action starts a
   * new set, as in crmsh. Two plain references without brackets are the simple form.
   */
  sets(
    c: Cursor,
    idTok: Tok,
    mode: 'colocation' | 'order' | 'ticket',
    optionNames: readonly string[],
  ): {
    sets: ResourceSet[];
    simple?: [Ref, Ref];
    refs: Ref[];
    bracketed: boolean;
    options: Record<string, string>;
  } {
    const options: Record<string, string> = {};
    type Group = { refs: Ref[]; bracket?: '(' | '['; attrs: Record<string, string>; tok: Tok };
    const groups: Group[] = [];
    let open: Group | undefined;
    let plain: Group | undefined;
    const allRefs: Ref[] = [];
    let bracketed = false;
    const pushRef = (text: string, t: Tok): void => {
      const ref = splitRef(text);
      if (ref.qual === '')
        this.fail(t, 'crm-syntax', `'${text}' ends in ':' without a ${mode === 'order' ? 'action' : 'role'}`);
      allRefs.push(ref);
      if (open) {
        open.refs.push(ref);
        return;
      }
      const last = plain?.refs[plain.refs.length - 1];
      if (!plain || (last && last.qual !== ref.qual)) {
        plain = { refs: [], attrs: {}, tok: t };
        groups.push(plain);
      }
      plain.refs.push(ref);
    };
    const setOption = (k: string, v: string, t: Tok): void => {
      if (open) open.attrs[k] = v;
      else if (optionNames.includes(k)) options[k] = v;
      else this.fail(t, 'crm-syntax', `unknown option '${k}' (expected ${optionNames.join(', ')})`);
    };
    while (!c.done) {
      const t = c.next()!;
      let text = t.text;
      if (t.quoted) {
        // A quoted word is taken whole: brackets inside it are data, not set delimiters.
        if (t.eq > 0) setOption(t.text.slice(0, t.eq), t.text.slice(t.eq + 1), t);
        else pushRef(text, t);
        continue;
      }
      while (text.startsWith('(') || text.startsWith('[')) {
        if (open) this.fail(t, 'crm-syntax', 'resource sets cannot be nested');
        bracketed = true;
        open = { refs: [], bracket: text[0] as '(' | '[', attrs: {}, tok: t };
        groups.push(open);
        plain = undefined;
        text = text.slice(1);
      }
      let closing: string | undefined;
      if (text.endsWith(')') || text.endsWith(']')) {
        closing = text.slice(-1);
        text = text.slice(0, -1);
      }
      if (text.length > 0) {
        const eq = text.indexOf('=');
        if (eq > 0) {
          setOption(text.slice(0, eq), text.slice(eq + 1), t);
        } else {
          if (!open && Object.keys(options).length > 0)
            this.fail(t, 'crm-syntax', `resource '${text}' after the options`);
          pushRef(text, t);
        }
      }
      if (closing) {
        if (!open) this.fail(t, 'crm-syntax', `'${closing}' without a matching opening bracket`);
        const want = open.bracket === '(' ? ')' : ']';
        if (closing !== want)
          this.fail(t, 'crm-syntax', `'${closing}' closes a set opened with '${open.bracket}'`);
        open = undefined;
      }
    }
    if (open) this.fail(open.tok, 'crm-syntax', `set opened with '${open.bracket}' is never closed`);
    if (allRefs.length === 0) this.fail(c.last(), 'crm-syntax', `${mode} '${idTok.text}' names no resources`);
    if (mode === 'ticket' && !bracketed && allRefs.length === 1)
      return { sets: [], refs: allRefs, bracketed, options };
    if (mode !== 'ticket' && !bracketed && allRefs.length === 2) {
      return { sets: [], simple: [allRefs[0]!, allRefs[1]!], refs: allRefs, bracketed, options };
    }
    if (mode !== 'ticket' && allRefs.length < 2) {
      this.fail(c.last(), 'crm-syntax', `${mode} '${idTok.text}' needs at least two resources`);
    }
    const sets: ResourceSet[] = groups.map((g) => {
      const quals = new Set(g.refs.map((r) => r.qual));
      if (quals.size > 1)
        this.fail(
          g.tok,
          'crm-syntax',
          `all resources in one set must share the same ${mode === 'order' ? 'action' : 'role'}`,
        );
      const qual = g.refs[0]?.qual;
      const id = this.gen_(idTok.text, g.tok);
      const a = { ...g.attrs };
      const set: ResourceSet = {
        id,
        ...(g.bracket === '(' && a.sequential === undefined ? { sequential: 'false' } : {}),
        ...(g.bracket === '[' && a['require-all'] === undefined ? { requireAll: 'false' } : {}),
        ...(g.bracket === '[' && a.sequential === undefined ? { sequential: 'false' } : {}),
        ...(a.sequential !== undefined ? { sequential: a.sequential } : {}),
        ...(a['require-all'] !== undefined ? { requireAll: a['require-all'] } : {}),
        ...(a.action !== undefined ? { action: a.action } : {}),
        ...(a.role !== undefined ? { role: a.role } : {}),
        ...(qual !== undefined ? (mode === 'order' ? { action: qual } : { role: qual }) : {}),
        resources: g.refs.map((r) => r.rsc),
      };
      return set;
    });
    return { sets, refs: allRefs, bracketed, options };
  }

  // -- properties, defaults, fencing, tags ----------------------------------------------------

  propertySet(c: Cursor, kw: Tok, into: NvSet[], kind: NvSetKind, defaultId: string): void {
    let id = defaultId;
    let explicit: Tok | undefined;
    const first = c.peek();
    if (first?.text.startsWith('$id=')) {
      c.next();
      id = first.text.slice(4);
      explicit = first;
    } else if (first && first.eq < 0 && first.text.endsWith(':')) {
      c.next();
      id = first.text.slice(0, -1);
      explicit = first;
    }
    const existing = into.findIndex((s) => s.id === id);
    if (existing < 0) {
      if (this.gen.has(id)) this.fail(explicit ?? kw, 'duplicate-id', `id '${id}' is already used`);
      this.claim(id, explicit ?? kw);
    }
    const pairs: NvPair[] = [];
    while (!c.done) {
      const t = c.next()!;
      if (t.eq <= 0) this.fail(t, 'crm-syntax', `expected NAME=VALUE in ${kw.text}, found '${t.text}'`);
      const name = t.text.slice(0, t.eq);
      pairs.push({ id: this.gen_(`${id}-${name}`, t), name, value: t.text.slice(t.eq + 1) });
    }
    // An empty set is only meaningful with its own id (`rsc_defaults rsc-options:`), as crm prints it.
    if (pairs.length === 0 && !explicit)
      this.fail(kw, 'crm-syntax', `${kw.text} sets nothing (expected NAME=VALUE)`);
    if (existing >= 0) {
      const s = into[existing]!;
      into[existing] = { ...s, pairs: [...s.pairs, ...pairs] };
    } else into.push({ kind, id, pairs });
  }

  fencingTopology(c: Cursor, kw: Tok): void {
    let target: Partial<FencingLevel> | undefined;
    const index = new Map<string, number>();
    let any = false;
    while (!c.done) {
      const t = c.next()!;
      if (t.text.endsWith(':') && !t.text.includes(',')) {
        const tgt = t.text.slice(0, -1);
        if (tgt.startsWith('attr:')) {
          const [name, value] = tgt.slice(5).split('=');
          target = { targetAttribute: name!, targetValue: value ?? '' };
        } else if (tgt.startsWith('pattern:')) target = { targetPattern: tgt.slice(8) };
        else target = { target: tgt };
        continue;
      }
      if (!target)
        this.fail(t, 'crm-syntax', `fencing_topology level '${t.text}' needs a target first (NODE:)`);
      const key = JSON.stringify(target);
      const n = (index.get(key) ?? 0) + 1;
      index.set(key, n);
      this.fencing.push({ id: this.gen_('fencing', t), ...target, index: String(n), devices: t.text });
      any = true;
    }
    if (!any) this.fail(kw, 'crm-syntax', 'fencing_topology names no devices');
  }

  /**
   * `alert ID PATH [description=…] [attributes …] [meta …] [select nodes|fencing|resources|
   * attributes [{ NAME… }]…] [to [{] RECIPIENT [attributes …] [meta …] [}]]…`. Recipient ids
   * are `ID-recipient-N` counted from 1 and select attributes `ID-0`, `ID-1`…, as crmsh makes them.
   */
  /**
   * `role ID [description=…] {read|write|deny} SPEC…` with SPEC `xpath:X`, `ref:ID`,
   * `tag:TYPE [attribute:NAME]` or crmsh's shorthand `meta:RSC:NAME`. Permission ids are
   * `ID-0`, `ID-1`…, as crmsh makes them.
   */
  aclRole(c: Cursor, kw: Tok): void {
    const idTok = c.next() ?? this.fail(undefined, 'crm-syntax', "'role' needs an id", kw);
    this.claim(idTok.text, idTok);
    const attrs: [string, string][] = [['id', idTok.text]];
    if (c.peek()?.text.startsWith('description=')) attrs.push(['description', c.next()!.text.slice(12)]);
    const perms: XmlElement[] = [];
    while (!c.done) {
      const k = c.next()!;
      if (!['read', 'write', 'deny'].includes(k.text)) {
        this.fail(k, 'crm-syntax', `expected read, write or deny in role '${idTok.text}', found '${k.text}'`);
      }
      const spec =
        c.next() ?? this.fail(undefined, 'crm-syntax', `'${k.text}' needs xpath:, ref:, tag: or meta:`, k);
      const colon = spec.text.indexOf(':');
      const what = colon > 0 ? spec.text.slice(0, colon) : '';
      const arg = spec.text.slice(colon + 1);
      const pa: [string, string][] = [['kind', k.text]];
      if (what === 'xpath') pa.push(['xpath', arg]);
      else if (what === 'ref') pa.push(['reference', arg]);
      else if (what === 'tag') {
        pa.push(['object-type', arg]);
        if (c.peek()?.text.startsWith('attribute:')) pa.push(['attribute', c.next()!.text.slice(10)]);
      } else if (what === 'meta' && arg.includes(':')) {
        const [rsc, name] = [arg.slice(0, arg.indexOf(':')), arg.slice(arg.indexOf(':') + 1)];
        pa.push(['xpath', `//primitive[@id='${rsc}']/meta_attributes/nvpair[@name='${name}']`]);
      } else {
        this.fail(spec, 'crm-syntax', `'${spec.text}' is not xpath:X, ref:ID, tag:TYPE or meta:RSC:NAME`);
      }
      pa.push(['id', this.gen_(idTok.text, spec)]);
      perms.push({ type: 'element', name: 'acl_permission', attrs: pa, children: [] });
    }
    this.acls.push({ type: 'element', name: 'acl_role', attrs, children: perms });
  }

  /** `acl_target ID ROLE…` / `acl_group ID ROLE…`. */
  aclTarget(c: Cursor, kw: Tok): void {
    const idTok = c.next() ?? this.fail(undefined, 'crm-syntax', `'${kw.text}' needs an id`, kw);
    const roles: XmlElement[] = [];
    while (!c.done)
      roles.push({ type: 'element', name: 'role', attrs: [['id', c.next()!.text]], children: [] });
    this.acls.push({ type: 'element', name: kw.text, attrs: [['id', idTok.text]], children: roles });
  }

  alert(c: Cursor, kw: Tok): void {
    const idTok = c.next() ?? this.fail(undefined, 'crm-syntax', "'alert' needs an id and a path", kw);
    const id = idTok.text;
    this.claim(id, idTok);
    const pathTok =
      c.next() ?? this.fail(undefined, 'crm-syntax', `alert '${id}' needs the path of its agent`, idTok);
    let description: string | undefined;
    if (c.peek()?.text.startsWith('description=')) description = c.next()!.text.slice(12);
    const inst: NvSet[] = [];
    const meta: NvSet[] = [];
    const recipients: AlertRecipient[] = [];
    let select: XmlElement | undefined;
    while (!c.done) {
      const k = c.next()!;
      if (k.text === 'attributes')
        inst.push(this.attrList(c, 'instance_attributes', id, `${id}-instance_attributes`, k));
      else if (k.text === 'meta')
        meta.push(this.attrList(c, 'meta_attributes', id, `${id}-meta_attributes`, k));
      else if (k.text === 'select' && !select) select = this.alertSelect(c, k, id);
      else if (k.text === 'to') recipients.push(this.alertRecipient(c, k, id, recipients.length + 1));
      else
        this.fail(
          k,
          'crm-syntax',
          `unexpected '${k.text}' in alert '${id}' (expected attributes, meta, select or to)`,
        );
    }
    this.alerts.push({
      id,
      path: pathTok.text,
      ...(description !== undefined ? { description } : {}),
      metaAttributes: meta,
      instanceAttributes: inst,
      recipients,
      ...(select ? { select } : {}),
    });
  }

  alertSelect(c: Cursor, kw: Tok, alertId: string): XmlElement {
    const children: XmlElement[] = [];
    const el = (name: string, kids: XmlElement[] = []): XmlElement => ({
      type: 'element',
      name,
      attrs: [],
      children: kids,
    });
    while (!c.done && ['nodes', 'fencing', 'resources', 'attributes'].includes(c.peek()!.text)) {
      const k = c.next()!;
      if (k.text !== 'attributes') {
        children.push(el(`select_${k.text}`));
        continue;
      }
      const names: XmlElement[] = [];
      if (c.peek()?.text === '{') {
        c.next();
        for (;;) {
          const t =
            c.next() ?? this.fail(undefined, 'crm-syntax', "select attributes '{' is never closed", k);
          if (t.text === '}') break;
          names.push({
            type: 'element',
            name: 'attribute',
            attrs: [
              ['name', t.text],
              ['id', this.gen_(alertId, t)],
            ],
            children: [],
          });
        }
      }
      children.push(el('select_attributes', names));
    }
    if (children.length === 0)
      this.fail(c.peek(), 'crm-syntax', "'select' needs nodes, fencing, resources or attributes", kw);
    return el('select', children);
  }

  alertRecipient(c: Cursor, kw: Tok, alertId: string, n: number): AlertRecipient {
    const braced = c.peek()?.text === '{';
    if (braced) c.next();
    const v = c.next() ?? this.fail(undefined, 'crm-syntax', "'to' needs a recipient", kw);
    const id = `${alertId}-recipient-${n}`;
    this.claim(id, v);
    const inst: NvSet[] = [];
    const meta: NvSet[] = [];
    while (braced) {
      const k = c.next() ?? this.fail(undefined, 'crm-syntax', "recipient '{' is never closed", kw);
      if (k.text === '}') break;
      if (k.text === 'attributes')
        inst.push(this.attrList(c, 'instance_attributes', id, `${id}-instance_attributes`, k));
      else if (k.text === 'meta')
        meta.push(this.attrList(c, 'meta_attributes', id, `${id}-meta_attributes`, k));
      else
        this.fail(
          k,
          'crm-syntax',
          `unexpected '${k.text}' in recipient of alert '${alertId}' (expected attributes, meta or '}')`,
        );
    }
    return { id, value: v.text, metaAttributes: meta, instanceAttributes: inst };
  }

  tag(c: Cursor, kw: Tok): void {
    const t = c.next() ?? this.fail(undefined, 'crm-syntax', "'tag' needs an id", kw);
    const id = t.text.endsWith(':') ? t.text.slice(0, -1) : t.text;
    this.claim(id, t);
    const refs: XmlElement[] = [];
    while (!c.done)
      refs.push({ type: 'element', name: 'obj_ref', attrs: [['id', c.next()!.text]], children: [] });
    if (refs.length === 0) this.fail(t, 'crm-syntax', `tag '${id}' names no resources`);
    this.tags.push({ type: 'element', name: 'tag', attrs: [['id', id]], children: refs });
  }

  // -- assembly ---------------------------------------------------------------------------------

  /** Moves primitives into their groups and clones; a container takes its first child's place. */
  assemble(): Resource[] {
    const prims = new Map(this.prims.map((p) => [p.prim.id, p]));
    const containers = new Map(this.containers.map((x) => [x.c.id, x]));
    const used = new Map<string, string>();
    const built = new Map<string, { r: Resource; order: number }>();
    const claimChild = (name: string, parent: PendingContainer, t: Tok): boolean => {
      const prev = used.get(name);
      if (prev !== undefined) {
        this.d.error(
          t,
          'crm-resource-reused',
          `resource '${name}' is already in '${prev}'; it cannot also be in '${parent.id}'`,
        );
        return false;
      }
      used.set(name, parent.id);
      return true;
    };
    const build = (
      x: { c: PendingContainer; order: number },
      depth: number,
    ): { r: Resource; order: number } | undefined => {
      const done = built.get(x.c.id);
      if (done) return done;
      const pc = x.c;
      const base = {
        id: pc.id,
        ...(pc.description !== undefined ? { description: pc.description } : {}),
        metaAttributes: pc.meta,
        instanceAttributes: pc.params,
        ...(pc.comments.length > 0 ? { comments: pc.comments } : {}),
      };
      let result: { r: Resource; order: number } | undefined;
      if (pc.kind === 'group') {
        const members: Primitive[] = [];
        let order = x.order;
        for (const t of pc.children) {
          const p = prims.get(t.text);
          if (!p) {
            const what = containers.has(t.text)
              ? 'is not a primitive (groups contain only primitives)'
              : 'is not defined';
            this.d.error(t, 'unknown-resource', `group '${pc.id}' member '${t.text}' ${what}`);
            continue;
          }
          if (!claimChild(t.text, pc, t)) continue;
          members.push(p.prim);
          order = Math.min(order, p.order);
        }
        const g: Group = { kind: 'group', ...base, members };
        result = { r: g, order };
      } else {
        const t = pc.children[0]!;
        const p = prims.get(t.text);
        const inner = containers.get(t.text);
        let child: Primitive | Group | undefined;
        let order = x.order;
        if (p) {
          if (claimChild(t.text, pc, t)) {
            child = p.prim;
            order = Math.min(order, p.order);
          }
        } else if (inner && inner.c.kind === 'group' && depth === 0) {
          if (claimChild(t.text, pc, t)) {
            const b = build(inner, depth + 1);
            if (b) {
              child = b.r as Group;
              order = Math.min(order, b.order);
            }
          }
        } else {
          const what = inner ? 'is a clone (clones contain a primitive or a group)' : 'is not defined';
          this.d.error(
            t,
            'unknown-resource',
            `${pc.legacyMaster ? 'ms' : 'clone'} '${pc.id}' child '${t.text}' ${what}`,
          );
        }
        if (child) {
          const cl: Clone = { kind: 'clone', ...base, legacyMaster: pc.legacyMaster, child };
          result = { r: cl, order };
        }
      }
      if (result) built.set(pc.id, result);
      return result;
    };
    const all: { r: Resource; order: number }[] = [];
    for (const x of this.containers) {
      const b = build(x, 0);
      if (b) all.push(b);
    }
    for (const p of this.prims) if (!used.has(p.prim.id)) all.push({ r: p.prim, order: p.order });
    for (const t of this.templates) all.push({ r: t.t, order: t.order });
    // Groups nested in clones were built and are reachable through the clone only.
    const top = all.filter((x) => !used.has(x.r.id));
    top.sort((a, b) => a.order - b.order);
    return top.map((x) => x.r);
  }
}

interface Ref {
  rsc: string;
  qual?: string;
}

function splitRef(text: string): Ref {
  const colon = text.indexOf(':');
  if (colon > 0) return { rsc: text.slice(0, colon), qual: text.slice(colon + 1) };
  return { rsc: text };
}

function optionFields(options: Record<string, string>, map: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(options)) out[map[k]!] = v;
  return out;
}

/** crm writes `inf`; the CIB writes `INFINITY`. */
function normalizeScore(s: string): string {
  const l = s.toLowerCase();
  if (l === 'inf' || l === 'infinity') return 'INFINITY';
  if (l === '+inf' || l === '+infinity') return '+INFINITY';
  if (l === '-inf' || l === '-infinity') return '-INFINITY';
  return s;
}

function scoreText(s: string, at: Tok, p: CrmParser): string {
  if (!parseScore(s).ok)
    p.fail(at, 'invalid-score', `'${s}' is not a score (expected an integer, inf or -inf)`);
  return normalizeScore(s);
}

function parseAgent(
  text: string,
): { cls?: string; provider?: string; type?: string; template?: string } | undefined {
  if (text.startsWith('@')) return text.length > 1 ? { template: text.slice(1) } : undefined;
  const parts = text.split(':');
  if (parts.some((p) => p.length === 0)) return undefined;
  if (parts.length === 3) return { cls: parts[0]!, provider: parts[1]!, type: parts[2]! };
  if (parts.length === 2) return { cls: parts[0]!, type: parts[1]! };
  // crmsh assumes ocf:heartbeat for a bare type.
  if (parts.length === 1) return { cls: 'ocf', provider: 'heartbeat', type: parts[0]! };
  return undefined;
}

/**
 * Cluster properties that Pacemaker 1 accepted and the pacemaker-3.x schemas reject (see
 * options-3.x.rng). A configuration using them is written with an older `validate-with`, the
 * way a CIB from such a cluster carries one, so that Pacemaker upgrades it on load (dropping or
 * moving each property, as its upgrade-2.10.xsl does) instead of refusing it.
 */
export const LEGACY_CLUSTER_PROPERTIES: readonly string[] = [
  'cluster_recheck_interval',
  'dc_deadtime',
  'default-action-timeout',
  'default_action_timeout',
  'default-migration-threshold',
  'default_migration_threshold',
  'default-resource-failure-stickiness',
  'default_resource_failure_stickiness',
  'default-resource-stickiness',
  'default_resource_stickiness',
  'election_timeout',
  'expected-quorum-votes',
  'is-managed-default',
  'is_managed_default',
  'no_quorum_policy',
  'notification-agent',
  'notification-recipient',
  'remove_after_stop',
  'shutdown_escalation',
  'startup_fencing',
  'stonith_action',
  'stonith_enabled',
  'stop_orphan_actions',
  'stop_orphan_resources',
  'symmetric_cluster',
  'transition_idle_timeout',
];
const LEGACY_INFRASTRUCTURES = [
  'heartbeat',
  'openais',
  'classic openais',
  'classic openais (with plugin)',
  'cman',
];
/** The newest schema that still accepts the legacy properties. */
export const LEGACY_CRM_SCHEMA = 'pacemaker-2.10';

function legacySchema(
  sets: readonly NvSet[],
  positions: ReadonlyMap<string, SourcePos>,
  d: Diags,
): string | undefined {
  const legacy: NvPair[] = [];
  for (const s of sets) {
    for (const p of s.pairs) {
      const old =
        LEGACY_CLUSTER_PROPERTIES.includes(p.name) ||
        (p.name === 'cluster-infrastructure' && LEGACY_INFRASTRUCTURES.includes(p.value ?? ''));
      if (old) legacy.push(p);
    }
  }
  if (legacy.length === 0) return undefined;
  const first = positions.get(legacy[0]!.id ?? '');
  const names = legacy.map((p) => p.name).join(', ');
  d.warn(
    first ? { line: first.line, col: first.column } : { line: 1, col: 1 },
    'crm-legacy-property',
    `Pacemaker 1 cluster properties (${names}): the CIB is written with validate-with=${LEGACY_CRM_SCHEMA} so that Pacemaker 2 upgrades them on load (renaming, moving or dropping each, e.g. default-resource-stickiness becomes rsc_defaults resource-stickiness)`,
  );
  return LEGACY_CRM_SCHEMA;
}

/**
 * Parses crm shell configuration text into a CIB. Never throws on bad input: every problem is
 * a diagnostic naming `file:line:col`. Statements are independent, so one bad statement does
 * not hide errors in the others.
 */
export function parseCrm(text: string, file: string): CibParseResult {
  const d = new Diags(file);
  const stmts = lex(text, d);
  const p = new CrmParser(d);
  for (const s of stmts) {
    try {
      p.statement(s);
    } catch (err) {
      if (!(err instanceof StmtError)) throw err;
    }
  }
  const resources = p.assemble();
  const schema = legacySchema(p.crmConfig, p.positions, d);
  if (d.hasErrors) {
    const diags = [...d.list].sort((a, b) =>
      a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1,
    );
    return { ok: false, diagnostics: diags };
  }
  const base = emptyCib();
  const cib: Cib = {
    ...base,
    attrs: schema ? base.attrs.map(([k, v]) => [k, k === 'validate-with' ? schema : v] as const) : base.attrs,
    configuration: {
      ...base.configuration,
      crmConfig: p.crmConfig,
      nodes: p.nodes,
      resources,
      constraints: p.constraints,
      rscDefaults: p.rscDefaults,
      opDefaults: p.opDefaults,
      fencingTopology: p.fencing,
      alerts: p.alerts,
      ...(p.tags.length > 0 ? { tags: { type: 'element', name: 'tags', attrs: [], children: p.tags } } : {}),
      ...(p.acls.length > 0 ? { acls: { type: 'element', name: 'acls', attrs: [], children: p.acls } } : {}),
    },
    status: [],
    hasStatus: false,
  };
  return { ok: true, cib, positions: p.positions, warnings: d.list };
}

// ---------------------------------------------------------------------------------------------
// Serializer

/**
 * Result of serializing: the text, every construct crm syntax could not express (left out),
 * and the ids crm syntax has no place for (nvpairs, rule expressions, resource sets, op
 * attribute sets) that differ from the ones crmsh would generate: reading the text back
 * generates new ids for those, as crmsh does.
 */
export interface CrmSerialization {
  readonly text: string;
  readonly unsupported: readonly string[];
  readonly regeneratedIds: readonly string[];
}

/**
 * crm syntax cannot attach a rule to an attribute set, and writing the set without its rule
 * would apply it everywhere, so such sets are left out (and reported) before writing.
 */
function withoutRuledSets(conf: Configuration, report: string[]): Configuration {
  const keep = (sets: readonly NvSet[], owner: string): NvSet[] =>
    sets.filter((s) => {
      if (s.rule) report.push(`rule-dependent attribute set '${s.id ?? ''}' of '${owner}'`);
      return !s.rule;
    });
  const prim = <P extends Primitive | Template>(p: P): P => ({
    ...p,
    instanceAttributes: keep(p.instanceAttributes, p.id),
    metaAttributes: keep(p.metaAttributes, p.id),
    utilization: keep(p.utilization, p.id),
  });
  const rsc = (r: Resource): Resource => {
    switch (r.kind) {
      case 'primitive':
      case 'template':
        return prim(r);
      case 'group':
        return { ...r, ...sets2(r), members: r.members.map(prim) };
      case 'clone':
        return { ...r, ...sets2(r), child: rsc(r.child) as Primitive | Group };
      case 'bundle':
        return r;
    }
  };
  const sets2 = (r: Group | Clone) => ({
    instanceAttributes: keep(r.instanceAttributes, r.id),
    metaAttributes: keep(r.metaAttributes, r.id),
  });
  return {
    ...conf,
    nodes: conf.nodes.map((n) => ({
      ...n,
      instanceAttributes: keep(n.instanceAttributes, n.uname),
      utilization: keep(n.utilization, n.uname),
    })),
    resources: conf.resources.map(rsc),
    crmConfig: keep(conf.crmConfig, 'property'),
    rscDefaults: keep(conf.rscDefaults, 'rsc_defaults'),
    opDefaults: keep(conf.opDefaults, 'op_defaults'),
    alerts: conf.alerts.map((a) => ({
      ...a,
      instanceAttributes: keep(a.instanceAttributes, a.id),
      metaAttributes: keep(a.metaAttributes, a.id),
    })),
  };
}

/** Writes `cib` in the style of `crm configure show`. */
export function serializeCrm(cib: Cib): string {
  return serializeCrmReport(cib).text;
}

export function serializeCrmReport(cib: Cib): CrmSerialization {
  const w = new CrmWriter();
  const conf = withoutRuledSets(cib.configuration, w.unsupported);
  for (const n of conf.nodes) w.node(n);
  const prims: (Primitive | Template)[] = [];
  const collect = (r: Resource): void => {
    if (r.kind === 'primitive' || r.kind === 'template') prims.push(r);
    else if (r.kind === 'group') prims.push(...r.members);
    else if (r.kind === 'clone') collect(r.child);
  };
  conf.resources.forEach(collect);
  for (const p of prims) w.primitive(p, p.kind === 'template' ? 'rsc_template' : 'primitive');
  const groups: Group[] = [];
  for (const r of conf.resources) {
    if (r.kind === 'group') groups.push(r);
    else if (r.kind === 'clone' && r.child.kind === 'group') groups.push(r.child);
  }
  for (const g of groups)
    w.container(
      'group',
      g.id,
      g.members.map((m) => m.id),
      g,
    );
  for (const r of conf.resources) {
    if (r.kind === 'clone') w.container(r.legacyMaster ? 'ms' : 'clone', r.id, [r.child.id], r);
    if (r.kind === 'bundle') w.unsupported.push(`bundle '${r.id}'`);
  }
  for (const c of conf.constraints) w.constraint(c);
  for (const s of conf.crmConfig) w.propertySet('property', s, 'cib-bootstrap-options');
  for (const s of conf.rscDefaults) w.propertySet('rsc_defaults', s, 'rsc-options');
  for (const s of conf.opDefaults) w.propertySet('op_defaults', s, 'op-options');
  if (conf.fencingTopology.length > 0) w.fencing(conf.fencingTopology);
  if (conf.tags) w.tags(conf.tags);
  for (const a of conf.alerts) w.alert(a);
  if (conf.acls) w.acls(conf.acls);
  for (const u of w.unsupported) w.lines.push(`# halo: not expressible in crm syntax, left out: ${u}`);
  return {
    text: w.lines.join('\n') + (w.lines.length > 0 ? '\n' : ''),
    unsupported: w.unsupported,
    regeneratedIds: w.regeneratedIds,
  };
}

/** Quotes a value the way crmsh does: bare when it is a plain word, else in double quotes. */
export function crmQuote(v: string): string {
  // Typographic quotes and dashes are quoted too: bare, the parser would normalize them.
  if (v !== '' && /^[^\s"'\\()[\]\u201c-\u201f\u2033\u2036\u2012-\u2014\u2212]+$/.test(v)) return v;
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** crm rules hold attribute and date expressions only, and no value-source. */
function crmExpressible(e: RuleExpression): boolean {
  if (e.kind === 'date_expression') return true;
  return e.kind === 'expression' && e.valueSource === undefined;
}

/** `RSC` or `RSC:QUALIFIER` (role or action), quoted when needed. */
function ref(rsc: string | undefined, qual: string | undefined): string {
  return crmQuote(`${rsc ?? ''}${qual ? `:${qual}` : ''}`);
}

function crmScore(s: string | undefined): string {
  if (s === undefined) return '';
  if (s === 'INFINITY') return 'inf';
  if (s === '+INFINITY') return '+inf';
  if (s === '-INFINITY') return '-inf';
  return s;
}

class CrmWriter {
  readonly gen = new IdGen();
  readonly lines: string[] = [];
  readonly unsupported: string[] = [];
  readonly regeneratedIds: string[] = [];

  emit(head: string, parts: readonly string[]): void {
    if (parts.length === 0) this.lines.push(head);
    else this.lines.push([head, ...parts].join(' \\\n\t'));
  }

  /** `$id=X ` when `actual` differs from what the parser would generate for `base`. */
  idFor(actual: string | undefined, base: string): string {
    if (actual === undefined) {
      this.gen.next(base);
      return '';
    }
    if (this.gen.peek(base) === actual) {
      this.gen.next(base);
      return '';
    }
    this.gen.take(actual);
    return `$id=${crmQuote(actual)} `;
  }

  pairs(set: NvSet, setBase: string): string {
    if (set.idRef !== undefined) return `$id-ref=${crmQuote(set.idRef)}`;
    const setId = set.id ?? this.gen.peek(setBase);
    const head = this.idFor(set.id, setBase);
    const parts = this.pairList(set.pairs, setId);
    return (head + parts.join(' ')).trimEnd();
  }

  /** `NAME=VALUE` words; references to other nvpairs (`id-ref`) have no crm form. */
  pairList(pairs: readonly NvPair[], setId: string): string[] {
    const out: string[] = [];
    for (const p of pairs) {
      if (p.idRef !== undefined || p.name === '') {
        this.unsupported.push(`nvpair reference '${p.idRef ?? p.id ?? ''}' in '${setId}'`);
        continue;
      }
      // Names are never quoted in crm syntax ('#health-test' is fine mid-line).
      if (!/^[^\s"'=]+$/.test(p.name)) {
        this.unsupported.push(`attribute name '${p.name}' in '${setId}'`);
        continue;
      }
      const pb = `${setId}-${p.name}`;
      if (p.id !== undefined && p.id !== this.gen.peek(pb)) this.regeneratedIds.push(p.id);
      this.gen.next(pb);
      out.push(`${p.name}=${crmQuote(p.value ?? '')}`);
    }
    return out;
  }

  node(n: ClusterNode): void {
    let head = 'node ';
    if (n.id !== n.uname) head += `$id=${crmQuote(n.id)} `;
    head += crmQuote(n.uname + (n.type !== undefined ? `:${n.type}` : ''));
    const parts: string[] = [];
    if (n.description !== undefined) head += ` description=${crmQuote(n.description)}`;
    for (const s of n.instanceAttributes)
      parts.push(`attributes ${this.pairs(s, `${n.uname}-instance_attributes`)}`);
    for (const s of n.utilization) parts.push(`utilization ${this.pairs(s, `${n.uname}-utilization`)}`);
    this.emit(head, parts);
  }

  comments(c: readonly string[] | undefined): void {
    for (const line of c ?? []) this.lines.push(`# ${line}`);
  }

  primitive(p: Primitive | Template, kw: string): void {
    this.comments(p.comments);
    this.gen.take(p.id);
    const agent =
      p.template !== undefined
        ? `@${p.template}`
        : [p.class, p.provider, p.type].filter((x) => x !== undefined).join(':');
    let head = `${kw} ${p.id} ${crmQuote(agent)}`;
    if (p.description !== undefined) head += ` description=${crmQuote(p.description)}`;
    const parts: string[] = [];
    for (const s of p.instanceAttributes)
      parts.push(`params ${this.pairs(s, `${p.id}-instance_attributes`)}`);
    for (const s of p.metaAttributes) parts.push(`meta ${this.pairs(s, `${p.id}-meta_attributes`)}`);
    for (const s of p.utilization) parts.push(`utilization ${this.pairs(s, `${p.id}-utilization`)}`);
    if (p.operationsAttrs?.id !== undefined) parts.push(`operations $id=${crmQuote(p.operationsAttrs.id)}`);
    for (const op of p.operations) parts.push(this.op(p.id, op));
    this.emit(head, parts);
  }

  op(rsc: string, op: Operation): string {
    const words = [`op ${crmQuote(op.name)}`];
    if (op.id !== undefined) {
      const base = `${rsc}-${op.name}-${op.interval}`;
      if (this.gen.peek(base) === op.id) this.gen.next(base);
      else {
        this.gen.take(op.id);
        words.push(`id=${crmQuote(op.id)}`);
      }
    }
    words.push(`interval=${crmQuote(op.interval)}`);
    const f: [string, string | undefined][] = [
      ['timeout', op.timeout],
      ['role', op.role],
      ['on-fail', op.onFail],
      ['start-delay', op.startDelay],
      ['interval-origin', op.intervalOrigin],
      ['enabled', op.enabled],
      ['record-pending', op.recordPending],
      ['description', op.description],
    ];
    for (const [k, v] of f) if (v !== undefined) words.push(`${k}=${crmQuote(v)}`);
    for (const s of op.instanceAttributes) {
      const opId = op.id ?? '';
      const base = `${opId}-instance_attributes`;
      if (s.id !== undefined && s.id !== this.gen.peek(base)) this.regeneratedIds.push(s.id);
      this.gen.next(base);
      for (const pr of s.pairs) {
        this.gen.next(`${s.id ?? base}-${pr.name}`);
        words.push(`${pr.name}=${crmQuote(pr.value ?? '')}`);
      }
    }
    if (op.metaAttributes.length > 0)
      this.unsupported.push(`meta attributes of operation '${op.id ?? op.name}'`);
    return words.join(' ');
  }

  container(kw: string, id: string, children: readonly string[], r: Group | Clone): void {
    this.comments(r.comments);
    this.gen.take(id);
    let head = `${kw} ${id} ${children.map(crmQuote).join(' ')}`;
    if (r.description !== undefined) head += ` description=${crmQuote(r.description)}`;
    const parts: string[] = [];
    for (const s of r.metaAttributes) parts.push(`meta ${this.pairs(s, `${id}-meta_attributes`)}`);
    for (const s of r.instanceAttributes) parts.push(`params ${this.pairs(s, `${id}-instance_attributes`)}`);
    this.emit(head, parts);
  }

  constraint(c: Constraint): void {
    this.gen.take(c.id);
    switch (c.kind) {
      case 'rsc_location':
        this.location(c);
        return;
      case 'rsc_colocation': {
        const opts = [
          c.nodeAttribute !== undefined ? `node-attribute=${crmQuote(c.nodeAttribute)}` : '',
          c.influence !== undefined ? `influence=${crmQuote(c.influence)}` : '',
        ].filter(Boolean);
        const body =
          c.sets.length > 0
            ? this.setsText(c.id, c.sets, 'role')
            : `${ref(c.rsc, c.rscRole)} ${ref(c.withRsc, c.withRscRole)}`;
        this.lines.push(
          `colocation ${c.id} ${crmScore(c.score ?? 'INFINITY')}: ${[body, ...opts].join(' ')}`,
        );
        return;
      }
      case 'rsc_order': {
        const kind =
          c.orderKind !== undefined
            ? `${c.orderKind}: `
            : c.score !== undefined
              ? `${crmScore(c.score)}: `
              : '';
        const opts = [
          c.symmetrical !== undefined ? `symmetrical=${crmQuote(c.symmetrical)}` : '',
          c.requireAll !== undefined ? `require-all=${crmQuote(c.requireAll)}` : '',
        ].filter(Boolean);
        const body =
          c.sets.length > 0
            ? this.setsText(c.id, c.sets, 'action')
            : `${ref(c.first, c.firstAction)} ${ref(c.then, c.thenAction)}`;
        this.lines.push(`order ${c.id} ${kind}${[body, ...opts].join(' ')}`);
        return;
      }
      case 'rsc_ticket': {
        const body = c.sets.length > 0 ? this.setsText(c.id, c.sets, 'role') : ref(c.rsc, c.rscRole);
        const opts = c.lossPolicy !== undefined ? ` loss-policy=${crmQuote(c.lossPolicy)}` : '';
        this.lines.push(`rsc_ticket ${c.id} ${crmQuote(`${c.ticket}:`)} ${body}${opts}`);
        return;
      }
    }
  }

  setsText(consId: string, sets: readonly ResourceSet[], qualKey: 'role' | 'action'): string {
    return sets
      .map((s) => {
        const base = consId;
        if (s.id !== undefined && s.id !== this.gen.peek(base)) this.regeneratedIds.push(s.id);
        this.gen.next(base);
        const qual = s[qualKey];
        const names = s.resources.map((r) => crmQuote(qual !== undefined ? `${r}:${qual}` : r));
        const other = qualKey === 'role' ? s.action : s.role;
        const extra =
          other !== undefined ? [`${qualKey === 'role' ? 'action' : 'role'}=${crmQuote(other)}`] : [];
        if (s.requireAll === 'false') {
          if (s.sequential !== undefined && s.sequential !== 'false')
            extra.push(`sequential=${crmQuote(s.sequential)}`);
          return `[ ${[...names, ...extra].join(' ')} ]`;
        }
        if (s.requireAll !== undefined) extra.push(`require-all=${crmQuote(s.requireAll)}`);
        if (s.sequential === 'false') return `( ${[...names, ...extra].join(' ')} )`;
        if (s.sequential !== undefined || extra.length > 0) {
          if (s.sequential !== undefined) extra.push(`sequential=${crmQuote(s.sequential)}`);
          return `( ${[...names, ...extra].join(' ')} )`;
        }
        return names.join(' ');
      })
      .join(' ');
  }

  location(c: LocationConstraint): void {
    if (c.rsc === undefined && c.rscPattern === undefined) {
      this.unsupported.push(`location '${c.id}' (it constrains resource sets)`);
      return;
    }
    // A rule crm cannot write is left out whole: dropping one condition of it would widen it.
    const rules = c.rules.filter((r) => {
      const ok = r.idRef !== undefined || r.expressions.every(crmExpressible);
      if (!ok)
        this.unsupported.push(
          `rule '${r.id ?? ''}' of location '${c.id}' (nested rule or resource/operation expression)`,
        );
      return ok;
    });
    if (c.node === undefined && rules.length === 0) {
      this.unsupported.push(`location '${c.id}' (none of its rules can be written)`);
      return;
    }
    const rsc = crmQuote(c.rscPattern !== undefined ? `/${c.rscPattern}/` : (c.rsc ?? ''));
    let head = `location ${c.id} ${rsc}`;
    if (c.sets.length > 0) this.unsupported.push(`resource sets in location '${c.id}'`);
    if (c.role !== undefined) head += ` role=${crmQuote(c.role)}`;
    if (c.resourceDiscovery !== undefined) head += ` resource-discovery=${crmQuote(c.resourceDiscovery)}`;
    if (c.node !== undefined) {
      this.lines.push(`${head} ${crmScore(c.score ?? 'INFINITY')}: ${crmQuote(c.node)}`);
      return;
    }
    const parts = rules.map((r) => this.rule(r, `${c.id}-rule`));
    this.emit(head, parts);
  }

  rule(r: Rule, base: string): string {
    if (r.idRef !== undefined) return `rule $id-ref=${crmQuote(r.idRef)}`;
    const words = ['rule'];
    const idText = this.idFor(r.id, base).trim();
    if (idText) words.push(idText);
    if (r.role !== undefined) words.push(`$role=${crmQuote(r.role)}`);
    words.push(`${r.scoreAttribute ?? crmScore(r.score ?? '0')}:`);
    const ruleId = r.id ?? '';
    const exprs = r.expressions.map((e) => this.expression(e, ruleId));
    words.push(exprs.join(` ${r.booleanOp ?? 'and'} `));
    return words.join(' ');
  }

  expression(e: RuleExpression, ruleId: string): string {
    const base = `${ruleId}-expression`;
    if ('id' in e && e.id !== undefined && e.id !== this.gen.peek(base)) {
      this.regeneratedIds.push(e.id);
    }
    this.gen.next(base);
    switch (e.kind) {
      case 'expression':
        if (e.operation === 'defined' || e.operation === 'not_defined')
          return `${e.operation} ${crmQuote(e.attribute)}`;
        return `${crmQuote(e.attribute)} ${crmQuote(`${e.type !== undefined ? `${e.type}:` : ''}${e.operation}`)} ${crmQuote(e.value ?? '')}`;
      case 'date_expression': {
        const f = (o: Readonly<Record<string, string>>): string =>
          Object.entries(o)
            .map(([k, v]) => `${k}=${crmQuote(v)}`)
            .join(' ');
        if (e.operation === 'gt') return `date gt ${crmQuote(e.start ?? '')}`;
        if (e.operation === 'lt') return `date lt ${crmQuote(e.end ?? '')}`;
        if (e.operation === 'date_spec') return `date date_spec ${f(e.dateSpec?.fields ?? {})}`;
        const se = f({
          ...(e.start !== undefined ? { start: e.start } : {}),
          ...(e.end !== undefined ? { end: e.end } : {}),
          ...(e.duration?.fields ?? {}),
        });
        return `date in_range ${se}`;
      }
      default:
        // location() filters these out with crmExpressible before it gets here.
        throw new AssertionError(`unreachable: ${e.kind} in rule '${ruleId}'`);
    }
  }

  propertySet(kw: string, s: NvSet, defaultId: string): void {
    const id = s.id ?? defaultId;
    this.gen.take(id);
    const head = id === defaultId ? kw : `${kw} ${id}:`;
    const parts = this.pairList(s.pairs, id);
    this.emit(head, parts);
  }

  fencing(levels: readonly FencingLevel[]): void {
    const parts: string[] = [];
    let last = '';
    for (const l of levels) {
      this.gen.next('fencing');
      const target =
        l.target ??
        (l.targetPattern !== undefined
          ? `pattern:${l.targetPattern}`
          : `attr:${l.targetAttribute}=${l.targetValue ?? ''}`);
      if (target !== last) parts.push(`${target}:`);
      last = target;
      parts.push(l.devices);
    }
    this.lines.push(`fencing_topology ${parts.map(crmQuote).join(' ')}`);
  }

  alert(a: Alert): void {
    this.gen.take(a.id);
    let head = `alert ${a.id} ${crmQuote(a.path)}`;
    if (a.description !== undefined) head += ` description=${crmQuote(a.description)}`;
    const parts: string[] = [];
    for (const s of a.instanceAttributes)
      parts.push(`attributes ${this.pairs(s, `${a.id}-instance_attributes`)}`);
    for (const s of a.metaAttributes) parts.push(`meta ${this.pairs(s, `${a.id}-meta_attributes`)}`);
    if (a.select) parts.push(this.alertSelect(a.select, a.id));
    a.recipients.forEach((r, i) => {
      const id = `${a.id}-recipient-${i + 1}`;
      if (r.id !== id) this.regeneratedIds.push(r.id);
      this.gen.take(id);
      if (r.description !== undefined) this.unsupported.push(`description of alert recipient '${r.id}'`);
      const inner: string[] = [];
      for (const s of r.instanceAttributes)
        inner.push(`attributes ${this.pairs(s, `${id}-instance_attributes`)}`);
      for (const s of r.metaAttributes) inner.push(`meta ${this.pairs(s, `${id}-meta_attributes`)}`);
      parts.push(
        inner.length > 0 ? `to { ${[crmQuote(r.value), ...inner].join(' ')} }` : `to ${crmQuote(r.value)}`,
      );
    });
    this.emit(head, parts);
  }

  alertSelect(select: XmlElement, alertId: string): string {
    const words = ['select'];
    for (const k of select.children) {
      if (k.type !== 'element') continue;
      const kind = k.name.replace(/^select_/, '');
      if (!['nodes', 'fencing', 'resources', 'attributes'].includes(kind)) {
        this.unsupported.push(`alert '${alertId}' select element <${k.name}>`);
        continue;
      }
      words.push(kind);
      const names = k.children.flatMap((x) =>
        x.type === 'element' && x.name === 'attribute'
          ? [x.attrs.find(([n]) => n === 'name')?.[1] ?? '']
          : [],
      );
      if (names.length > 0) {
        for (const x of k.children) {
          if (x.type !== 'element') continue;
          const xid = x.attrs.find(([n]) => n === 'id')?.[1];
          if (xid !== undefined && xid !== this.gen.peek(alertId)) this.regeneratedIds.push(xid);
          this.gen.next(alertId);
        }
        words.push(`{ ${names.map(crmQuote).join(' ')} }`);
      }
    }
    return words.join(' ');
  }

  acls(acls: XmlElement): void {
    const attr = (e: XmlElement, n: string): string | undefined => e.attrs.find(([k]) => k === n)?.[1];
    for (const e of acls.children) {
      if (e.type !== 'element') continue;
      const id = attr(e, 'id') ?? '';
      if (e.name === 'acl_target' || e.name === 'acl_group') {
        const roles = e.children.flatMap((r) =>
          r.type === 'element' && r.name === 'role' ? [attr(r, 'id') ?? ''] : [],
        );
        this.lines.push([e.name, crmQuote(id), ...roles.map(crmQuote)].join(' '));
        continue;
      }
      if (e.name !== 'acl_role') {
        this.unsupported.push(`ACL element <${e.name}> '${id}'`);
        continue;
      }
      this.gen.take(id);
      const desc = attr(e, 'description');
      const words = [`role ${id}${desc !== undefined ? ` description=${crmQuote(desc)}` : ''}`];
      for (const p of e.children) {
        if (p.type !== 'element') continue;
        const xpath = attr(p, 'xpath');
        const ref = attr(p, 'reference');
        const type = attr(p, 'object-type');
        const at = attr(p, 'attribute');
        const spec =
          xpath !== undefined
            ? `xpath:${xpath}`
            : ref !== undefined
              ? `ref:${ref}`
              : type !== undefined
                ? `tag:${type}`
                : undefined;
        if (spec === undefined || (at !== undefined && type === undefined)) {
          this.unsupported.push(`ACL permission '${attr(p, 'id') ?? ''}' of role '${id}'`);
          continue;
        }
        const pid = attr(p, 'id');
        if (pid !== undefined && pid !== this.gen.peek(id)) this.regeneratedIds.push(pid);
        this.gen.next(id);
        words.push(
          `${attr(p, 'kind') ?? 'read'} ${crmQuote(spec)}${at !== undefined ? ` ${crmQuote(`attribute:${at}`)}` : ''}`,
        );
      }
      this.lines.push(words.join(' '));
    }
  }

  tags(tags: XmlElement): void {
    for (const t of tags.children) {
      if (t.type !== 'element' || t.name !== 'tag') continue;
      const id = t.attrs.find(([k]) => k === 'id')?.[1] ?? '';
      this.gen.take(id);
      const refs = t.children.flatMap((c) =>
        c.type === 'element' ? [c.attrs.find(([k]) => k === 'id')?.[1] ?? ''] : [],
      );
      this.lines.push(`tag ${id}: ${refs.map(crmQuote).join(' ')}`);
    }
  }
}
