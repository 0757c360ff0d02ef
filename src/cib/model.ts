/**
 * The cluster model: one typed, immutable value that every format parses into and serializes
 * from (Pacemaker CIB XML, crm shell syntax, Heartbeat v1) and that the scheduler, controller
 * and CLI read. It mirrors Pacemaker's CIB closely so that `cibadmin -Q` output round-trips,
 * with three rules:
 *
 * 1. Values are kept **as written** (`interval: '10s'`, `score: 'INFINITY'`), so serializing
 *    reproduces the input. Helpers in `score.ts` and `duration.ts` give the numeric meaning.
 * 2. Order is kept everywhere (arrays, never maps), because Pacemaker's behaviour depends on
 *    it (resource order is placement order; set order is rule precedence).
 * 3. Anything halo does not interpret yet is kept, not dropped: unknown attributes go to
 *    `attrs`, unknown elements (bundles, tags, ACLs details…) to `XmlNode` values, comments to
 *    `comments`. A format that can't express a construct reports it; it never loses it silently.
 *
 * Every type is `readonly`. Build changed copies with spreads; never mutate.
 */

/** Attributes on an element that this model has no field for, in document order. */
export type ExtraAttrs = Readonly<Record<string, string>>;

/** A generic XML subtree, for elements halo keeps verbatim (bundles, ACL targets, …). */
export type XmlNode = XmlElement | XmlText | XmlComment;
export interface XmlElement {
  readonly type: 'element';
  readonly name: string;
  /** Attribute pairs in document order. */
  readonly attrs: readonly (readonly [string, string])[];
  readonly children: readonly XmlNode[];
}
export interface XmlText {
  readonly type: 'text';
  readonly text: string;
}
export interface XmlComment {
  readonly type: 'comment';
  readonly text: string;
}

// ---------------------------------------------------------------------------------------------
// Name/value sets and rules

export interface NvPair {
  readonly id?: string;
  readonly name: string;
  /** Absent for `<nvpair id-ref=…>` references and for value-less pairs. */
  readonly value?: string;
  readonly idRef?: string;
  readonly attrs?: ExtraAttrs;
}

/** `instance_attributes`, `meta_attributes`, `utilization`, `cluster_property_set`. */
export type NvSetKind = 'instance_attributes' | 'meta_attributes' | 'utilization' | 'cluster_property_set';

export interface NvSet {
  readonly kind: NvSetKind;
  readonly id?: string;
  readonly idRef?: string;
  /** Precedence among several sets of the same kind (higher first), as written. */
  readonly score?: string;
  /** The set applies only when the rule passes. */
  readonly rule?: Rule;
  readonly pairs: readonly NvPair[];
  readonly attrs?: ExtraAttrs;
}

export type BooleanOp = 'and' | 'or';

export interface Rule {
  readonly kind: 'rule';
  readonly id?: string;
  readonly idRef?: string;
  /** Score given when the rule passes (location rules), as written: `-INFINITY`, `100`. */
  readonly score?: string;
  readonly scoreAttribute?: string;
  readonly booleanOp?: BooleanOp;
  /** Location rules may be limited to a role (`Promoted`, legacy `Master`). */
  readonly role?: string;
  readonly expressions: readonly RuleExpression[];
  readonly attrs?: ExtraAttrs;
}

export type RuleExpression = AttrExpression | DateExpression | Rule | ResourceExpression | OpExpression;

export type ExpressionOp = 'defined' | 'not_defined' | 'eq' | 'ne' | 'lt' | 'gt' | 'lte' | 'gte';
export type ExpressionType = 'string' | 'integer' | 'number' | 'version';

/** A test on a node attribute: `pingd lt 1000`, `not_defined pingd`, `#uname eq node1`. */
export interface AttrExpression {
  readonly kind: 'expression';
  readonly id?: string;
  readonly attribute: string;
  readonly operation: ExpressionOp;
  readonly value?: string;
  /** As written; absent means Pacemaker's default for the operation. Legacy `type="int"` kept. */
  readonly type?: string;
  /** `literal` (default), `param` or `meta`. */
  readonly valueSource?: string;
  readonly attrs?: ExtraAttrs;
}

export type DateOp = 'gt' | 'lt' | 'in_range' | 'date_spec';

export interface DateSpec {
  readonly id?: string;
  /** Fields as written: hours="9-16", weekdays="1-5", years, months, monthdays, yeardays, weeks… */
  readonly fields: Readonly<Record<string, string>>;
}

export interface DateExpression {
  readonly kind: 'date_expression';
  readonly id?: string;
  readonly operation: DateOp;
  readonly start?: string;
  readonly end?: string;
  /** `duration` child: same fields as a date spec (years, months, weeks, days, hours, …). */
  readonly duration?: DateSpec;
  readonly dateSpec?: DateSpec;
  readonly attrs?: ExtraAttrs;
}

export interface ResourceExpression {
  readonly kind: 'rsc_expression';
  readonly id?: string;
  readonly class?: string;
  readonly provider?: string;
  readonly type?: string;
  readonly attrs?: ExtraAttrs;
}

export interface OpExpression {
  readonly kind: 'op_expression';
  readonly id?: string;
  readonly name: string;
  readonly interval?: string;
  readonly attrs?: ExtraAttrs;
}

// ---------------------------------------------------------------------------------------------
// Nodes

export interface ClusterNode {
  readonly id: string;
  /** The node's name (Pacemaker's `uname`); what constraints and the CLI refer to. */
  readonly uname: string;
  /** `member` (default), `remote`, `ping` (legacy). */
  readonly type?: string;
  readonly description?: string;
  readonly score?: string;
  readonly instanceAttributes: readonly NvSet[];
  readonly utilization: readonly NvSet[];
  readonly attrs?: ExtraAttrs;
}

// ---------------------------------------------------------------------------------------------
// Resources

export interface Operation {
  readonly id?: string;
  readonly idRef?: string;
  /** start, stop, monitor, promote, demote, notify, reload, migrate_to, migrate_from, … */
  readonly name: string;
  /** As written (`10s`, `0`, `PT10S`); `duration.ts` converts. Required by the schema. */
  readonly interval: string;
  readonly timeout?: string;
  /** `Started`, `Stopped`, `Promoted`, `Unpromoted`, legacy `Master`/`Slave`. */
  readonly role?: string;
  /** ignore, block, demote, stop, restart, standby, fence. */
  readonly onFail?: string;
  readonly startDelay?: string;
  readonly intervalOrigin?: string;
  readonly enabled?: string;
  readonly recordPending?: string;
  readonly description?: string;
  readonly instanceAttributes: readonly NvSet[];
  readonly metaAttributes: readonly NvSet[];
  readonly attrs?: ExtraAttrs;
}

/** Fields shared by every resource variant. */
interface ResourceBase {
  readonly id: string;
  readonly description?: string;
  readonly metaAttributes: readonly NvSet[];
  readonly instanceAttributes: readonly NvSet[];
  readonly attrs?: ExtraAttrs;
  /** Comments that stood directly inside this element, in order. */
  readonly comments?: readonly string[];
}

/** A resource agent instance: `ocf:heartbeat:IPaddr2`, `lsb:nginx`, `stonith:fence_ipmilan`. */
export interface Primitive extends ResourceBase {
  readonly kind: 'primitive';
  /** ocf, lsb, systemd, service, stonith, halo, … Absent when `template` supplies it. */
  readonly class?: string;
  readonly provider?: string;
  readonly type?: string;
  /** Id of an `rsc_template` this primitive inherits from. */
  readonly template?: string;
  readonly utilization: readonly NvSet[];
  readonly operations: readonly Operation[];
  /** `<operations id=… id-ref=…>` wrapper attributes, kept for round trip. */
  readonly operationsAttrs?: ExtraAttrs;
}

/** `<template>` (crm: `rsc_template`): a primitive skeleton others reference. Never placed itself. */
export interface Template extends Omit<Primitive, 'kind'> {
  readonly kind: 'template';
}

export interface Group extends ResourceBase {
  readonly kind: 'group';
  readonly members: readonly Primitive[];
}

/**
 * A clone, plain or promotable. Pacemaker 2 writes promotable clones as
 * `<clone><meta_attributes><nvpair name="promotable" value="true"/>`; Pacemaker 1 wrote
 * `<master>` (crm: `ms`). `legacyMaster` records which form was read so it is written back the
 * same way; `isPromotable()` in `resources.ts` answers for both.
 */
export interface Clone extends ResourceBase {
  readonly kind: 'clone';
  readonly legacyMaster: boolean;
  readonly child: Primitive | Group;
}

/** Bundles are kept verbatim until the scheduler supports them. */
export interface Bundle {
  readonly kind: 'bundle';
  readonly id: string;
  readonly xml: XmlElement;
}

export type Resource = Primitive | Group | Clone | Bundle | Template;

// ---------------------------------------------------------------------------------------------
// Constraints

export interface ResourceSet {
  readonly id?: string;
  readonly idRef?: string;
  /** As written: `true`/`false`. */
  readonly sequential?: string;
  readonly requireAll?: string;
  readonly ordering?: string;
  readonly action?: string;
  readonly role?: string;
  readonly score?: string;
  readonly kind?: string;
  readonly resources: readonly string[];
  readonly attrs?: ExtraAttrs;
}

export interface LocationConstraint {
  readonly kind: 'rsc_location';
  readonly id: string;
  readonly rsc?: string;
  readonly rscPattern?: string;
  readonly role?: string;
  readonly node?: string;
  readonly score?: string;
  readonly scoreAttribute?: string;
  /** always (default), never, exclusive. */
  readonly resourceDiscovery?: string;
  readonly rules: readonly Rule[];
  readonly sets: readonly ResourceSet[];
  readonly attrs?: ExtraAttrs;
}

export interface ColocationConstraint {
  readonly kind: 'rsc_colocation';
  readonly id: string;
  /** The dependent resource: placed relative to `withRsc`. */
  readonly rsc?: string;
  readonly withRsc?: string;
  readonly rscRole?: string;
  readonly withRscRole?: string;
  readonly score?: string;
  readonly nodeAttribute?: string;
  readonly influence?: string;
  readonly sets: readonly ResourceSet[];
  readonly attrs?: ExtraAttrs;
}

export interface OrderConstraint {
  readonly kind: 'rsc_order';
  readonly id: string;
  readonly first?: string;
  readonly then?: string;
  readonly firstAction?: string;
  readonly thenAction?: string;
  /** Mandatory (default), Optional, Serialize. */
  readonly orderKind?: string;
  /** Legacy form of kind: score > 0 is Mandatory, 0 Optional. */
  readonly score?: string;
  readonly symmetrical?: string;
  readonly requireAll?: string;
  readonly sets: readonly ResourceSet[];
  readonly attrs?: ExtraAttrs;
}

export interface TicketConstraint {
  readonly kind: 'rsc_ticket';
  readonly id: string;
  readonly ticket: string;
  readonly rsc?: string;
  readonly rscRole?: string;
  readonly lossPolicy?: string;
  readonly sets: readonly ResourceSet[];
  readonly attrs?: ExtraAttrs;
}

export type Constraint = LocationConstraint | ColocationConstraint | OrderConstraint | TicketConstraint;

// ---------------------------------------------------------------------------------------------
// Fencing topology, alerts, ACLs

export interface FencingLevel {
  readonly id: string;
  /** Exactly one of target, targetPattern, targetAttribute(+targetValue) is set. */
  readonly target?: string;
  readonly targetPattern?: string;
  readonly targetAttribute?: string;
  readonly targetValue?: string;
  /** 1-based; lower levels are tried first. */
  readonly index: string;
  /** Comma-separated device ids, all of which must succeed for the level to succeed. */
  readonly devices: string;
  readonly attrs?: ExtraAttrs;
}

export interface AlertRecipient {
  readonly id: string;
  readonly value: string;
  readonly description?: string;
  readonly metaAttributes: readonly NvSet[];
  readonly instanceAttributes: readonly NvSet[];
  readonly attrs?: ExtraAttrs;
}

export interface Alert {
  readonly id: string;
  readonly path: string;
  readonly description?: string;
  readonly metaAttributes: readonly NvSet[];
  readonly instanceAttributes: readonly NvSet[];
  readonly recipients: readonly AlertRecipient[];
  /** `<select>` child, kept verbatim. */
  readonly select?: XmlElement;
  readonly attrs?: ExtraAttrs;
}

// ---------------------------------------------------------------------------------------------
// Configuration and status

export interface Configuration {
  /** `crm_config`: cluster properties (stonith-enabled, no-quorum-policy, …). */
  readonly crmConfig: readonly NvSet[];
  readonly nodes: readonly ClusterNode[];
  readonly resources: readonly Resource[];
  readonly constraints: readonly Constraint[];
  readonly rscDefaults: readonly NvSet[];
  readonly opDefaults: readonly NvSet[];
  readonly fencingTopology: readonly FencingLevel[];
  readonly alerts: readonly Alert[];
  /** `<acls>` kept verbatim (roles, targets, groups); absent when the input had none. */
  readonly acls?: XmlElement;
  /** `<tags>` kept verbatim. */
  readonly tags?: XmlElement;
  /** Any other child of `<configuration>`, kept verbatim in order. */
  readonly extra?: readonly XmlElement[];
}

/** One entry of a resource's operation history on a node (`lrm_rsc_op`). */
export interface OpHistory {
  readonly id: string;
  readonly operationKey?: string;
  readonly operation: string;
  /** Milliseconds, as written (the status section always writes plain ms). */
  readonly interval: string;
  readonly callId?: string;
  readonly rcCode?: string;
  readonly opStatus?: string;
  readonly lastRcChange?: string;
  readonly lastRun?: string;
  readonly execTime?: string;
  readonly queueTime?: string;
  readonly opDigest?: string;
  readonly opRestartDigest?: string;
  readonly opSecureDigest?: string;
  readonly transitionKey?: string;
  readonly transitionMagic?: string;
  readonly onNode?: string;
  readonly exitReason?: string;
  readonly attrs?: ExtraAttrs;
}

export interface ResourceHistory {
  readonly id: string;
  readonly class?: string;
  readonly provider?: string;
  readonly type?: string;
  readonly container?: string;
  readonly ops: readonly OpHistory[];
  readonly attrs?: ExtraAttrs;
}

/** Which agent a history entry is for: what `record-op-result` carries and status stores. */
export type ResourceRef = Pick<ResourceHistory, 'id' | 'class' | 'provider' | 'type'>;

export interface NodeState {
  readonly id: string;
  readonly uname?: string;
  /** `true`/`false` or a timestamp (newer Pacemaker). */
  readonly inCcm?: string;
  /** `online`/`offline` or a timestamp. */
  readonly crmd?: string;
  /** `member`, `down`, `pending`, `banned`. */
  readonly join?: string;
  readonly expected?: string;
  /** Transient node attributes (fail-count-*, last-failure-*, master-*, pingd, …). */
  readonly transientAttributes: readonly NvSet[];
  readonly resources: readonly ResourceHistory[];
  /** Whether an `<lrm>` element was present (distinguishes "no history" from "unknown"). */
  readonly hasLrm: boolean;
  readonly lrmId?: string;
  /** Id of the `<transient_attributes>` wrapper; present exactly when the element was. */
  readonly transientAttributesId?: string;
  /** Attributes of `<lrm>` other than `id` (old CIBs wrote `uname` there). */
  readonly lrmAttrs?: ExtraAttrs;
  /** Id of the `<lrm_resources>` wrapper, when it had one. */
  readonly lrmResourcesId?: string;
  readonly attrs?: ExtraAttrs;
}

/** `<ticket_state>` in the status section: whether a ticket is granted to this site. */
export interface TicketState {
  readonly id: string;
  /** `true`/`false` as written; absent means not granted. */
  readonly granted?: string;
  readonly standby?: string;
  readonly lastGranted?: string;
  readonly attrs?: ExtraAttrs;
}

/**
 * A comment kept for round trip. `parent` is the path of the element it stood in, written as
 * `name:n` steps from the document (n counts earlier siblings with the same name; `''` is the
 * document itself), e.g. `cib:0/configuration:0/resources:0`. `before` is the step of the
 * sibling element that followed it, absent when the comment was the parent's last child.
 */
export interface CibComment {
  readonly parent: string;
  readonly before?: string;
  readonly text: string;
}

export interface Cib {
  /** Attributes of `<cib>`: epoch, admin_epoch, num_updates, validate-with, have-quorum, dc-uuid… */
  readonly attrs: readonly (readonly [string, string])[];
  readonly configuration: Configuration;
  readonly status: readonly NodeState[];
  /** Whether the input had a `<status>` element at all. */
  readonly hasStatus: boolean;
  /** `<status><tickets><ticket_state>`; absent when the input had no `<tickets>`. */
  readonly tickets?: readonly TicketState[];
  /** Other children of `<status>`, kept verbatim in order. */
  readonly statusExtra?: readonly XmlElement[];
  /** Comments anywhere in the document, with where they stood (see `CibComment`). */
  readonly comments?: readonly CibComment[];
}

export function emptyConfiguration(): Configuration {
  return {
    crmConfig: [],
    nodes: [],
    resources: [],
    constraints: [],
    rscDefaults: [],
    opDefaults: [],
    fencingTopology: [],
    alerts: [],
  };
}

export function emptyCib(): Cib {
  return {
    attrs: [
      ['crm_feature_set', '3.16.2'],
      ['validate-with', 'pacemaker-3.9'],
      ['epoch', '1'],
      ['num_updates', '0'],
      ['admin_epoch', '0'],
    ],
    configuration: emptyConfiguration(),
    status: [],
    hasStatus: true,
  };
}
