/**
 * The replicated state machine: the CIB, changed only by committed Raft entries. Every replica
 * applies the same commands in the same order, so every replica holds the same CIB.
 *
 * Version counters follow Pacemaker: a configuration change increments `epoch` and resets
 * `num_updates` to 0; a status change (operation results, transient node attributes)
 * increments `num_updates`. A command that is malformed or refers to something that does not
 * exist is rejected identically on every replica and changes nothing (not even the counters).
 *
 * Compare-and-set: a configuration change an administrator computed from a CIB they read (a
 * whole `replace-configuration`, or a permanent attribute or property) may carry the
 * `expectedVersion` of that CIB. When the configuration has moved on since (another edit
 * committed first), the command is refused with code `conflict` on every replica and changes
 * nothing, so two administrators editing at once cannot silently overwrite each other (Pacemaker
 * refuses such a replace: "Update was older than existing configuration"). Only `admin_epoch`
 * and `epoch` are compared: `num_updates` counts status changes, which the DC makes all the
 * time and which a configuration edit does not overwrite. Commands without the field (internal
 * DC commands, older clients) apply to whatever the configuration is, as before. A replica built
 * before this field existed would ignore it and apply what the others refuse, so replicas of
 * both kinds must not share a log (nothing checks that yet).
 */
import type {
  Cib,
  ClusterNode,
  Configuration,
  NodeState,
  NvPair,
  NvSet,
  OpHistory,
  ResourceHistory,
  ResourceRef,
} from '../cib/model.ts';
import { emptyCib } from '../cib/model.ts';
import type { Entry } from './types.ts';

/** The cluster property set Pacemaker writes to by default. */
export const BOOTSTRAP_OPTIONS_ID = 'cib-bootstrap-options';
/** Snapshot format version, so that a future format change is detected, not misread. */
const SNAPSHOT_VERSION = 1;
/** Command size limit: a CIB change is small; anything larger is a mistake. */
export const MAX_COMMAND_BYTES = 4 * 1024 * 1024;
// `#` appears in Pacemaker's fail-count and last-failure attribute names
// (`fail-count-web#monitor_10000`), and `#` node attributes are built-ins (`#uname`).
const NAME_RE = /^[A-Za-z0-9_.:@#-][A-Za-z0-9_.:@# -]{0,127}$/;

/** The configuration's version: what a compare-and-set command expects to find. */
export interface ConfigurationVersion {
  readonly adminEpoch: number;
  readonly epoch: number;
}

export type CibCommand =
  | {
      readonly op: 'replace-configuration';
      readonly configuration: Configuration;
      /** Refuse (`conflict`) unless the configuration is still at this version. */
      readonly expectedVersion?: ConfigurationVersion;
    }
  | {
      readonly op: 'set-property';
      readonly name: string;
      readonly value: string | null;
      readonly expectedVersion?: ConfigurationVersion;
    }
  | {
      readonly op: 'set-node-attribute';
      readonly node: string;
      readonly name: string;
      readonly value: string | null;
      /** `forever`: in the configuration (`crm_attribute -l forever`); `reboot`: transient, in status. */
      readonly lifetime: 'forever' | 'reboot';
      /** Only with lifetime `forever`: a transient attribute is status, not configuration. */
      readonly expectedVersion?: ConfigurationVersion;
    }
  | {
      readonly op: 'record-op-result';
      readonly node: string;
      readonly resource: ResourceRef;
      readonly result: OpHistory;
    }
  | {
      /**
       * Replaces a node's whole `node_state` (the DC's full rewrite of a node, e.g. after it was
       * fenced or rejoined). Matched as the controller's `applyStatusChanges` does: the status
       * entry whose uname is `node` or whose id is `state.id`; appended when there is none.
       */
      readonly op: 'replace-node-state';
      readonly node: string;
      readonly state: NodeState;
    }
  | {
      /** Removes one `lrm_rsc_op` (by `id`) from `resource`'s history on `node`. */
      readonly op: 'delete-op-result';
      readonly node: string;
      /** The resource id. */
      readonly resource: string;
      readonly id: string;
    };

export type ApplyResult =
  | { readonly ok: true; readonly changed: boolean }
  | {
      readonly ok: false;
      /** `conflict`: the configuration is not at the command's `expectedVersion`. */
      readonly code: 'bad-command' | 'unknown-node' | 'conflict';
      readonly message: string;
    };

/**
 * The refusal of a compare-and-set command, in words a person can act on: `(epoch 12, now 13)`,
 * or with both counters once an administrator has raised admin_epoch. `expected` is the version
 * the edit was computed from, `current` the one the configuration has.
 */
export function conflictMessage(expected: ConfigurationVersion, current: ConfigurationVersion): string {
  const versions =
    expected.adminEpoch === 0 && current.adminEpoch === 0
      ? `epoch ${expected.epoch}, now ${current.epoch}`
      : `admin_epoch ${expected.adminEpoch} epoch ${expected.epoch}, now admin_epoch ${current.adminEpoch} epoch ${current.epoch}`;
  return `the configuration changed since it was read (${versions}): nothing was changed`;
}

/** Checks an optional `expectedVersion`; returns an error message or null. */
function validateExpectedVersion(op: string, v: unknown): string | null {
  if (v === undefined) return null;
  const count = (x: unknown): boolean => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (!isObj(v) || !count(v.epoch) || !count(v.adminEpoch))
    return `${op}: expectedVersion must be {"adminEpoch": N, "epoch": N} with whole numbers >= 0, not ${JSON.stringify(v)?.slice(0, 60)}`;
  return null;
}

export function encodeCibCommand(c: CibCommand): string {
  return JSON.stringify(c);
}

/** Validates a command's shape; returns an error message or null. Never throws. */
export function validateCibCommand(v: unknown): string | null {
  if (typeof v !== 'object' || v === null) return 'command: expected an object';
  const c = v as Record<string, unknown>;
  const str = (k: string) => typeof c[k] === 'string' && NAME_RE.test(c[k] as string);
  const strOrNull = (k: string) => c[k] === null || typeof c[k] === 'string';
  switch (c.op) {
    case 'replace-configuration': {
      const cfg = c.configuration as Record<string, unknown> | null;
      if (typeof cfg !== 'object' || cfg === null)
        return 'replace-configuration: configuration must be an object';
      for (const k of [
        'crmConfig',
        'nodes',
        'resources',
        'constraints',
        'rscDefaults',
        'opDefaults',
        'fencingTopology',
        'alerts',
      ]) {
        if (!Array.isArray(cfg[k])) return `replace-configuration: configuration.${k} must be a list`;
      }
      return validateExpectedVersion(c.op, c.expectedVersion);
    }
    case 'set-property':
      return str('name') && strOrNull('value')
        ? validateExpectedVersion(c.op, c.expectedVersion)
        : 'set-property: needs a valid name and a string or null value';
    case 'set-node-attribute':
      if (!str('node') || !str('name') || !strOrNull('value'))
        return 'set-node-attribute: needs node, name and a string or null value';
      if (c.lifetime !== 'forever' && c.lifetime !== 'reboot')
        return 'set-node-attribute: lifetime must be "forever" or "reboot"';
      if (c.lifetime === 'reboot' && c.expectedVersion !== undefined)
        return 'set-node-attribute: expectedVersion is for configuration changes; lifetime "reboot" changes the status';
      return validateExpectedVersion(c.op, c.expectedVersion);
    case 'record-op-result': {
      const r = c.resource as Record<string, unknown> | null;
      const o = c.result as Record<string, unknown> | null;
      if (
        !str('node') ||
        typeof r !== 'object' ||
        r === null ||
        typeof r.id !== 'string' ||
        !NAME_RE.test(r.id)
      ) {
        return 'record-op-result: needs node and resource.id';
      }
      if (
        typeof o !== 'object' ||
        o === null ||
        typeof o.id !== 'string' ||
        typeof o.operation !== 'string' ||
        typeof o.interval !== 'string'
      ) {
        return 'record-op-result: result needs id, operation and interval';
      }
      return null;
    }
    case 'replace-node-state': {
      if (!str('node')) return 'replace-node-state: needs a valid node name';
      const err = validateNodeState(c.state, 'replace-node-state: state');
      if (err) return err;
      const st = c.state as NodeState;
      if (st.uname !== undefined && st.uname !== c.node)
        return `replace-node-state: state.uname "${st.uname.slice(0, 40)}" is not node "${String(c.node).slice(0, 40)}"`;
      return null;
    }
    case 'delete-op-result':
      return str('node') && str('resource') && str('id')
        ? null
        : 'delete-op-result: needs node, resource (an id) and id (the operation record id)';
    default:
      return `command: unknown op ${JSON.stringify(c.op)?.slice(0, 40)}`;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const optStr = (o: Record<string, unknown>, k: string): boolean =>
  o[k] === undefined || typeof o[k] === 'string';
const extraAttrs = (v: unknown): boolean =>
  v === undefined || (isObj(v) && Object.values(v).every((x) => typeof x === 'string'));

/** Checks a whole `NodeState` as the model defines it; returns an error naming the field, or null. */
function validateNodeState(v: unknown, where: string): string | null {
  if (!isObj(v)) return `${where}: expected an object`;
  if (typeof v.id !== 'string' || !NAME_RE.test(v.id)) return `${where}.id: expected a node id`;
  for (const k of [
    'uname',
    'inCcm',
    'crmd',
    'join',
    'expected',
    'lrmId',
    'transientAttributesId',
    'lrmResourcesId',
  ])
    if (!optStr(v, k)) return `${where}.${k}: expected a string`;
  if (typeof v.hasLrm !== 'boolean') return `${where}.hasLrm: expected true or false`;
  if (!extraAttrs(v.attrs) || !extraAttrs(v.lrmAttrs)) return `${where}: attrs must map names to strings`;
  if (!Array.isArray(v.transientAttributes)) return `${where}.transientAttributes: expected a list`;
  for (const [i, set] of v.transientAttributes.entries()) {
    const w = `${where}.transientAttributes[${i}]`;
    if (!isObj(set) || typeof set.kind !== 'string' || !optStr(set, 'id') || !Array.isArray(set.pairs))
      return `${w}: expected a set with kind and pairs`;
    for (const [j, p] of set.pairs.entries())
      if (!isObj(p) || typeof p.name !== 'string' || !optStr(p, 'value') || !optStr(p, 'id'))
        return `${w}.pairs[${j}]: expected a name and a string value`;
  }
  if (!Array.isArray(v.resources)) return `${where}.resources: expected a list`;
  for (const [i, r] of v.resources.entries()) {
    const w = `${where}.resources[${i}]`;
    if (!isObj(r) || typeof r.id !== 'string' || !NAME_RE.test(r.id))
      return `${w}.id: expected a resource id`;
    for (const k of ['class', 'provider', 'type', 'container'])
      if (!optStr(r, k)) return `${w}.${k}: expected a string`;
    if (!Array.isArray(r.ops)) return `${w}.ops: expected a list`;
    for (const [j, o] of r.ops.entries()) {
      if (
        !isObj(o) ||
        typeof o.id !== 'string' ||
        typeof o.operation !== 'string' ||
        typeof o.interval !== 'string' ||
        !Object.entries(o).every(([k, x]) => (k === 'attrs' ? extraAttrs(x) : typeof x === 'string'))
      )
        return `${w}.ops[${j}]: expected an operation record with id, operation, interval and string fields`;
    }
  }
  return null;
}

export class CibStateMachine {
  private state: Cib;

  constructor(initial: Cib = emptyCib()) {
    this.state = initial;
  }

  get cib(): Cib {
    return this.state;
  }

  /** [epoch, num_updates, admin_epoch] as numbers. */
  version(): { epoch: number; numUpdates: number; adminEpoch: number } {
    return {
      epoch: this.attrNum('epoch'),
      numUpdates: this.attrNum('num_updates'),
      adminEpoch: this.attrNum('admin_epoch'),
    };
  }

  /** Applies one committed entry. No-op and membership entries leave the CIB unchanged. */
  apply(entry: Entry): ApplyResult {
    if (entry.type !== 'normal' || entry.data === '') return { ok: true, changed: false };
    if (entry.data.length > MAX_COMMAND_BYTES)
      return {
        ok: false,
        code: 'bad-command',
        message: `entry ${entry.index}: command larger than ${MAX_COMMAND_BYTES} bytes`,
      };
    let v: unknown;
    try {
      v = JSON.parse(entry.data);
    } catch {
      return { ok: false, code: 'bad-command', message: `entry ${entry.index}: not JSON` };
    }
    const err = validateCibCommand(v);
    if (err) return { ok: false, code: 'bad-command', message: `entry ${entry.index}: ${err}` };
    return this.applyCommand(v as CibCommand);
  }

  applyCommand(c: CibCommand): ApplyResult {
    const conflict = this.checkExpectedVersion(c);
    if (conflict) return conflict;
    switch (c.op) {
      case 'replace-configuration':
        this.state = { ...this.state, configuration: c.configuration };
        this.bump('configuration');
        return { ok: true, changed: true };
      case 'set-property':
        this.state = {
          ...this.state,
          configuration: {
            ...this.state.configuration,
            crmConfig: setInSets(
              this.state.configuration.crmConfig,
              'cluster_property_set',
              BOOTSTRAP_OPTIONS_ID,
              c.name,
              c.value,
            ),
          },
        };
        this.bump('configuration');
        return { ok: true, changed: true };
      case 'set-node-attribute':
        return c.lifetime === 'forever'
          ? this.setPermanentAttr(c.node, c.name, c.value)
          : this.setTransientAttr(c.node, c.name, c.value);
      case 'record-op-result':
        this.recordOp(c.node, c.resource, c.result);
        return { ok: true, changed: true };
      case 'replace-node-state':
        return this.replaceNodeState(c.node, c.state);
      case 'delete-op-result':
        return this.deleteOp(c.node, c.resource, c.id);
      default: {
        const never: never = c;
        return { ok: false, code: 'bad-command', message: `unknown command ${JSON.stringify(never)}` };
      }
    }
  }

  /** The state as text for a Raft snapshot. */
  snapshot(): string {
    return JSON.stringify({ version: SNAPSHOT_VERSION, cib: this.state });
  }

  /** Replaces the state with a snapshot's (`''` is the empty CIB of a new cluster). */
  restore(data: string): void {
    if (data === '') {
      this.state = emptyCib();
      return;
    }
    const v = JSON.parse(data) as { version: number; cib: Cib };
    if (v.version !== SNAPSHOT_VERSION)
      throw new Error(`CIB snapshot format ${v.version} is not supported (expected ${SNAPSHOT_VERSION})`);
    this.state = v.cib;
  }

  /** The `conflict` refusal when `c` expects a configuration version other than the current one. */
  private checkExpectedVersion(c: CibCommand): ApplyResult | null {
    if (!('expectedVersion' in c) || c.expectedVersion === undefined) return null;
    const v = this.version();
    const current = { adminEpoch: v.adminEpoch, epoch: v.epoch };
    const expected = c.expectedVersion;
    if (expected.adminEpoch === current.adminEpoch && expected.epoch === current.epoch) return null;
    return { ok: false, code: 'conflict', message: conflictMessage(expected, current) };
  }

  private setPermanentAttr(node: string, name: string, value: string | null): ApplyResult {
    const nodes = this.state.configuration.nodes;
    const i = nodes.findIndex((n) => n.uname === node || n.id === node);
    if (i < 0)
      return {
        ok: false,
        code: 'unknown-node',
        message: `set-node-attribute: no node "${node}" in the configuration`,
      };
    const n = nodes[i]!;
    const updated: ClusterNode = {
      ...n,
      instanceAttributes: setInSets(
        n.instanceAttributes,
        'instance_attributes',
        `nodes-${n.id}`,
        name,
        value,
      ),
    };
    this.state = {
      ...this.state,
      configuration: { ...this.state.configuration, nodes: nodes.map((x, k) => (k === i ? updated : x)) },
    };
    this.bump('configuration');
    return { ok: true, changed: true };
  }

  private setTransientAttr(node: string, name: string, value: string | null): ApplyResult {
    this.updateNodeState(node, (ns) => ({
      ...ns,
      transientAttributes: setInSets(
        ns.transientAttributes,
        'instance_attributes',
        `status-${ns.id}`,
        name,
        value,
      ),
    }));
    this.bump('status');
    return { ok: true, changed: true };
  }

  private recordOp(
    node: string,
    res: { id: string; class?: string; provider?: string; type?: string },
    op: OpHistory,
  ): void {
    this.updateNodeState(node, (ns) => {
      const k = ns.resources.findIndex((r) => r.id === res.id);
      const prev: ResourceHistory = ns.resources[k] ?? { id: res.id, ...definedOnly(res), ops: [] };
      const j = prev.ops.findIndex((o) => o.id === op.id);
      const ops = j < 0 ? [...prev.ops, op] : prev.ops.map((o, x) => (x === j ? op : o));
      const next: ResourceHistory = { ...prev, ops };
      const resources = k < 0 ? [...ns.resources, next] : ns.resources.map((r, x) => (x === k ? next : r));
      return { ...ns, resources, hasLrm: true };
    });
    this.bump('status');
  }

  /**
   * A node is unknown when the configuration lists nodes and this is none of them, and the
   * status section has no entry for it either. (A configuration that lists no nodes at all
   * accepts any well-formed name. Nodes do not come from membership here: the DC adds a
   * `<node>` entry for every member through `replace-configuration`; see
   * src/controller/README.md, "Node entries".)
   */
  private replaceNodeState(node: string, state: NodeState): ApplyResult {
    const status = this.state.status;
    const i = status.findIndex((s) => s.uname === node || s.id === state.id);
    const configured = this.state.configuration.nodes;
    if (i < 0 && configured.length > 0 && !configured.some((n) => n.uname === node || n.id === node)) {
      return {
        ok: false,
        code: 'unknown-node',
        message: `replace-node-state: no node "${node}" in the configuration or the status section`,
      };
    }
    this.state = {
      ...this.state,
      hasStatus: true,
      status: i < 0 ? [...status, state] : status.map((s, k) => (k === i ? state : s)),
    };
    this.bump('status');
    return { ok: true, changed: true };
  }

  /** Deleting a record that is not there changes nothing (a retried command is harmless). */
  private deleteOp(node: string, resource: string, id: string): ApplyResult {
    const status = this.state.status;
    const i = status.findIndex((s) => s.uname === node || s.id === node);
    if (i < 0)
      return {
        ok: false,
        code: 'unknown-node',
        message: `delete-op-result: node "${node}" has no entry in the status section`,
      };
    const ns = status[i]!;
    const k = ns.resources.findIndex((r) => r.id === resource);
    const rh = ns.resources[k];
    if (!rh?.ops.some((o) => o.id === id)) return { ok: true, changed: false };
    const next: ResourceHistory = { ...rh, ops: rh.ops.filter((o) => o.id !== id) };
    const updated: NodeState = { ...ns, resources: ns.resources.map((r, x) => (x === k ? next : r)) };
    this.state = { ...this.state, status: status.map((s, x) => (x === i ? updated : s)) };
    this.bump('status');
    return { ok: true, changed: true };
  }

  private updateNodeState(node: string, f: (ns: NodeState) => NodeState): void {
    const status = this.state.status;
    const i = status.findIndex((s) => s.uname === node || s.id === node);
    const cur: NodeState = status[i] ?? {
      id: node,
      uname: node,
      transientAttributes: [],
      resources: [],
      hasLrm: false,
    };
    const next = f(cur);
    this.state = {
      ...this.state,
      hasStatus: true,
      status: i < 0 ? [...status, next] : status.map((s, k) => (k === i ? next : s)),
    };
  }

  private attrNum(name: string): number {
    const v = this.state.attrs.find(([k]) => k === name)?.[1];
    const n = Number(v ?? '0');
    return Number.isSafeInteger(n) && n >= 0 ? n : 0;
  }

  private bump(kind: 'configuration' | 'status'): void {
    const epoch = this.attrNum('epoch') + (kind === 'configuration' ? 1 : 0);
    const numUpdates = kind === 'configuration' ? 0 : this.attrNum('num_updates') + 1;
    const attrs = setAttr(
      setAttr(this.state.attrs, 'epoch', String(epoch)),
      'num_updates',
      String(numUpdates),
    );
    this.state = { ...this.state, attrs };
  }
}

function setAttr(attrs: Cib['attrs'], name: string, value: string): Cib['attrs'] {
  return attrs.some(([k]) => k === name)
    ? attrs.map(([k, v]) => [k, k === name ? value : v] as const)
    : [...attrs, [name, value] as const];
}

/** Sets (or with null, deletes) `name` in the set with `setId`, creating the set if needed. */
function setInSets(
  sets: readonly NvSet[],
  kind: NvSet['kind'],
  setId: string,
  name: string,
  value: string | null,
): NvSet[] {
  const i = sets.findIndex((s) => s.id === setId);
  const set: NvSet = sets[i] ?? { kind, id: setId, pairs: [] };
  const others = set.pairs.filter((p) => p.name !== name);
  const pairs: NvPair[] =
    value === null
      ? others
      : set.pairs.some((p) => p.name === name)
        ? set.pairs.map((p) => (p.name === name ? { ...p, value } : p))
        : [...set.pairs, { id: `${setId}-${name}`, name, value }];
  const next = { ...set, pairs };
  return i < 0 ? [...sets, next] : sets.map((s, k) => (k === i ? next : s));
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(o).filter(([k, v]) => v !== undefined && k !== 'id'),
  ) as Partial<T>;
}
