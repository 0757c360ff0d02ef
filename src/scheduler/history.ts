import { parseDuration } from '../cib/duration.ts';
import type { Cib, Clone, NodeState, OpHistory, ResourceHistory } from '../cib/model.ts';
import { INFINITY, parseScore } from '../cib/score.ts';
import { getOrInsert } from './collections.ts';
import { unsupported } from './errors.ts';
import { type ActiveHistory, cloneAncestor, primitivesOf, type Res } from './resource_tree.ts';
import type { ClusterOptions, FailureRecord, NodeInfo, Role } from './types.ts';
import type { MutableRes } from './unpack.ts';

/**
 * Reads the status section: which instance is active where and in which role, what failed,
 * fail counts, which nodes already probed each resource. Follows Pacemaker's unpack of
 * `lrm_rsc_op` entries: ops are replayed in call-id order and each one moves the resource's
 * role; unexpected return codes are failures handled according to the op's `on-fail`.
 */
export interface HistoryInput {
  readonly cib: Cib;
  readonly options: ClusterOptions;
  readonly nodes: readonly { readonly info: NodeInfo; readonly state: NodeState | undefined }[];
  readonly nodeByName: ReadonlyMap<string, NodeInfo>;
  readonly resources: MutableRes[];
  readonly byId: ReadonlyMap<string, MutableRes>;
  readonly byConfiguredId: ReadonlyMap<string, MutableRes>;
  readonly fence: Map<string, string>;
  readonly addInstance: (clone: MutableRes, index: number) => MutableRes | undefined;
  readonly newOrphan: (id: string, hist: ResourceHistory) => MutableRes;
}

/** Exit codes of the OCF standard that the replay distinguishes. */
const RC = {
  ok: 0,
  insufficientPriv: 4,
  notRunning: 7,
  runningPromoted: 8,
  failedPromoted: 9,
  notInstalled: 5,
  notConfigured: 6,
} as const;

interface Replay {
  role: Role;
  failed: boolean;
  failures: FailureRecord[];
  hardBan: boolean;
  fatal: boolean;
  blocked: boolean;
  stopRequested: boolean;
  fenceNode: string | undefined;
  /** Ops since the last start-like op, checked against the current definition (digests). */
  configOps: readonly OpHistory[];
  /** A failure with on-fail=demote: keep the instance but do not leave it promoted. */
  demoteRequested: boolean;
  /** A failure was ignored (on-fail=ignore): fail counts then don't ban the resource. */
  failureIgnored: boolean;
  /** Failed migrate_to operations: the resource may be active on their target too. */
  failedMigrations: OpHistory[];
  /** Successful migrate_to operations: see afterMigrateTo. */
  migrationsTo: OpHistory[];
}

/** The return code the controller expected: third field of `action:transition:rc:uuid`. */
function expectedRc(op: OpHistory): number | undefined {
  let key = op.transitionKey;
  if (!key && op.transitionMagic) key = op.transitionMagic.slice(op.transitionMagic.indexOf(';') + 1);
  if (!key) return undefined;
  const a = key.indexOf(':');
  const b = a < 0 ? -1 : key.indexOf(':', a + 1);
  const c = b < 0 ? -1 : key.indexOf(':', b + 1);
  if (c < 0) return undefined;
  // Plain digits (all a controller writes) are read in place: this runs for every history entry.
  let n = 0;
  for (let i = b + 1; i < c; i++) {
    const d = key.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9 || c - b > 10) {
      const v = Number(key.slice(b + 1, c));
      return Number.isInteger(v) ? v : undefined;
    }
    n = n * 10 + d;
  }
  return n;
}

/** A single probe that found the resource stopped: by far the most common history entry. */
function isCleanProbe(ops: readonly OpHistory[]): boolean {
  if (ops.length !== 1) return false;
  const op = ops[0]!;
  return (
    op.operation === 'monitor' &&
    (op.interval === '0' || op.interval === undefined) &&
    op.rcCode === '7' &&
    (op.opStatus === undefined || op.opStatus === '0') &&
    (expectedRc(op) ?? 7) === 7
  );
}

function callId(op: OpHistory): number {
  const n = Number(op.callId ?? '0');
  return Number.isFinite(n) ? n : 0;
}

function configuredOnFail(r: Res, op: OpHistory, options: ClusterOptions): string {
  const intervalMs = Number(op.interval) || 0;
  const name = op.operation;
  const def = r.def?.operations.find((o) => {
    if (o.name !== name) return false;
    const d = parseDuration(o.interval);
    return d.ok && d.ms === intervalMs;
  });
  if (def?.onFail) return def.onFail.toLowerCase();
  if (name === 'stop') return options.stonithEnabled ? 'fence' : 'block';
  if (name === 'demote') return 'restart';
  return 'restart';
}

/**
 * The ops that describe the resource as it runs now (Pacemaker's calculate_active_ops): those
 * from the last start (or migrate_from; failing that the last promote/demote, or a probe that
 * found it running) on; none when a later stop ended it.
 */
function activeOps(sorted: readonly OpHistory[]): readonly OpHistory[] {
  let start = -1;
  let stop = -1;
  let impliedMonitor = -1;
  let impliedClone = -1;
  for (let i = 0; i < sorted.length; i++) {
    const op = sorted[i]!;
    const name = op.operation;
    if (name === 'stop' && (op.opStatus ?? '0') === '0') stop = i;
    else if (name === 'start' || name === 'migrate_from') start = i;
    else if (impliedMonitor <= stop && name === 'monitor') {
      if (op.rcCode === '0' || op.rcCode === '8') impliedMonitor = i;
    } else if (name === 'promote' || name === 'demote') impliedClone = i;
  }
  if (start === -1) start = impliedClone !== -1 ? impliedClone : impliedMonitor;
  if (start < stop) return [];
  return sorted.slice(Math.max(0, start));
}

function replayOps(r: Res, node: string, ops: readonly OpHistory[], options: ClusterOptions): Replay {
  const sorted =
    ops.length <= 1
      ? ops
      : ops
          .map((op, i) => ({ op, i }))
          .sort((a, b) => {
            const ca = callId(a.op);
            const cb = callId(b.op);
            // Pending ops (call-id -1) happened last.
            const ka = ca < 0 ? Number.MAX_SAFE_INTEGER : ca;
            const kb = cb < 0 ? Number.MAX_SAFE_INTEGER : cb;
            return ka - kb || a.i - b.i;
          })
          .map((x) => x.op);
  const out: Replay = {
    role: 'Stopped',
    failed: false,
    failures: [],
    hardBan: false,
    fatal: false,
    blocked: false,
    stopRequested: false,
    fenceNode: undefined,
    configOps: activeOps(sorted),
    demoteRequested: false,
    failureIgnored: false,
    failedMigrations: [],
    migrationsTo: [],
  };
  const promotable = isPromotableInstance(r);
  for (const op of sorted) {
    const name = op.operation;
    const intervalMs = Number(op.interval) || 0;
    const status = Number(op.opStatus ?? '0');
    // Degraded results (190, 191) count as running (and running promoted).
    const rawRc = Number(op.rcCode ?? '0');
    const rc = rawRc === 190 ? RC.ok : rawRc === 191 ? RC.runningPromoted : rawRc;
    if (status === -1) {
      // In flight: the action's effect is assumed.
      if (name === 'start' || name === 'migrate_from') out.role = 'Started';
      else if (name === 'promote') out.role = 'Promoted';
      else if (name === 'demote') out.role = 'Unpromoted';
      continue;
    }
    if (status === 1) continue; // cancelled
    // A recorded failure that a later result of the same call superseded no longer applies.
    if (
      op.id.includes('_last_failure_') &&
      sorted.some(
        (o) =>
          o !== op && callId(o) === callId(op) && Number(o.lastRcChange ?? 0) > Number(op.lastRcChange ?? 0),
      )
    )
      continue;
    const expected = expectedRc(op) ?? (name === 'monitor' && intervalMs === 0 ? RC.notRunning : RC.ok);
    const lastChangeSec = Number(op.lastRcChange ?? op.lastRun ?? '0') || 0;
    // Status 4 ("error") with the expected return code is how older controllers recorded a
    // normal result; the return code decides. Timeouts and other statuses are failures.
    let failure = status !== 0 && status !== 4 && status !== 7;
    if (!failure) {
      failure = !isExpectedResult(name, intervalMs, rc, expected, promotable);
    }
    if (status === 7) failure = true;
    if (!failure) {
      applySuccess(out, name, intervalMs, rc, promotable);
      if (name === 'migrate_to') out.migrationsTo.push(op);
      if (name === 'migrate_from') out.failed = false;
      if (name === 'start' || (name === 'monitor' && intervalMs === 0 && rc !== RC.notRunning)) {
        out.failed = false;
      }
      continue;
    }
    // A failure.
    const expired =
      r.failureTimeoutMs > 0 &&
      lastChangeSec > 0 &&
      lastChangeSec * 1000 + r.failureTimeoutMs <= options.nowMs &&
      rc !== RC.notConfigured;
    const onFail = configuredOnFail(r, op, options);
    // Status 7: the executor could not find the agent at all; no on-fail setting ignores that.
    // A "not installed" result from the agent itself follows on-fail like any other failure.
    const agentMissing = status === 7;
    if ((agentMissing || (rc === RC.notInstalled && onFail !== 'ignore')) && !expired) {
      out.hardBan = true;
      if (name === 'monitor' && intervalMs === 0) {
        out.role = 'Stopped';
        continue;
      }
    }
    // A stop that fails as "not configured" is resolved by fencing, not a ban everywhere.
    if (rc === RC.notConfigured && name !== 'stop') out.fatal = true;
    if (expired && name === 'monitor') {
      continue;
    }
    if (onFail === 'demote' && (name === 'monitor' || name === 'promote')) {
      // on-fail=demote: the instance stays, demoted, instead of being recovered.
      out.demoteRequested = true;
      out.failures.push({ node, op: name, intervalMs, rc, onFail });
      continue;
    }
    if (onFail === 'ignore' && !agentMissing) {
      applySuccess(out, name, intervalMs, RC.ok, promotable);
      out.failureIgnored = true;
      continue;
    }
    out.failures.push({ node, op: name, intervalMs, rc, onFail });
    if (expired) continue;
    if (name === 'migrate_to') out.failedMigrations.push(op);
    if (name === 'monitor' && intervalMs === 0 && rc === RC.notRunning) {
      out.role = 'Stopped';
      continue;
    }
    // Insufficient privileges is a hard error: the resource cannot run on that node.
    if (rc === RC.insufficientPriv) out.hardBan = true;
    out.failed = true;
    switch (name) {
      case 'start':
        out.role = out.role === 'Stopped' ? 'Started' : out.role;
        if (rc === RC.notInstalled) out.role = 'Stopped';
        break;
      case 'stop':
        out.role = out.role === 'Stopped' ? 'Started' : out.role;
        if (onFail === 'fence') out.fenceNode = `${r.id} failed there`;
        else out.blocked = true;
        break;
      case 'promote':
        out.role = 'Promoted';
        break;
      case 'demote':
        // A demote that failed with on-fail=block leaves it promoted (and stuck); otherwise it
        // is taken as demoted, since it is stopped before anything else is promoted.
        out.role = onFail === 'block' ? 'Promoted' : 'Unpromoted';
        break;
      case 'monitor':
        if (rc === RC.failedPromoted || rc === RC.runningPromoted) out.role = 'Promoted';
        else if (out.role === 'Stopped') out.role = promotable ? 'Unpromoted' : 'Started';
        break;
      default:
        if (out.role === 'Stopped') out.role = 'Started';
    }
    if (onFail === 'block') out.blocked = true;
    if (onFail === 'stop') out.stopRequested = true;
    if (onFail === 'fence' && name !== 'stop') out.fenceNode = `${r.id} failed there`;
  }
  if (promotable && out.role === 'Started') out.role = 'Unpromoted';
  return out;
}

function isExpectedResult(
  name: string,
  intervalMs: number,
  rc: number,
  expected: number,
  promotable: boolean,
): boolean {
  if (rc === expected) return true;
  if (name === 'monitor' && intervalMs === 0) {
    // A probe may find the resource in any state; only errors are failures.
    return rc === RC.ok || rc === RC.notRunning || rc === RC.runningPromoted;
  }
  if (
    name === 'monitor' &&
    promotable &&
    (rc === RC.ok || rc === RC.runningPromoted) &&
    expected !== RC.notRunning
  ) {
    return true;
  }
  if (name === 'stop' && rc === RC.notRunning) return true;
  if (
    (name === 'notify' || name === 'meta-data' || name === 'reload' || name === 'reload-agent') &&
    rc === RC.ok
  )
    return true;
  return false;
}

function applySuccess(out: Replay, name: string, intervalMs: number, rc: number, promotable: boolean): void {
  // "Not running" that the controller expected (a start recorded with target rc 7, as some
  // controllers log a probe) says the resource is stopped there, whatever the op was.
  if (rc === RC.notRunning && name !== 'stop' && name !== 'monitor') {
    out.role = 'Stopped';
    return;
  }
  switch (name) {
    case 'start':
    case 'migrate_from':
      out.role = promotable ? 'Unpromoted' : 'Started';
      return;
    case 'migrate_to':
      // The resource left for the target; whether it arrived is in the target's history.
      out.role = 'Stopped';
      return;
    case 'stop':
      out.role = 'Stopped';
      out.failed = false;
      return;
    case 'promote':
      out.role = 'Promoted';
      return;
    case 'demote':
      out.role = 'Unpromoted';
      return;
    case 'monitor':
      if (rc === RC.notRunning) out.role = 'Stopped';
      else if (rc === RC.runningPromoted) out.role = 'Promoted';
      else if (rc === RC.ok) {
        if (out.role === 'Stopped' || (intervalMs === 0 && out.role === 'Promoted'))
          out.role = promotable ? 'Unpromoted' : 'Started';
      }
      return;
    default:
      return;
  }
}

function isPromotableInstance(r: Res): boolean {
  for (let p = r.parent; p; p = p.parent) if (p.kind === 'clone') return p.clone?.promotable ?? false;
  return false;
}

/** Strips a clone instance suffix: `rsc:2` → `rsc`. */
function baseOf(id: string): { base: string; index: number | undefined } {
  const m = /^(.*):(\d+)$/.exec(id);
  return m ? { base: m[1]!, index: Number(m[2]) } : { base: id, index: undefined };
}

/** Which members of which instance are bound to which node, while reading history. */
type Bindings = Map<string, Map<string, string>>;

function boundOn(bound: Bindings, inst: Res, node: string): boolean {
  const m = bound.get(inst.id);
  if (!m) return false;
  for (const n of m.values()) if (n === node) return true;
  return false;
}

/**
 * Picks the clone instance a history entry belongs to (Pacemaker's find_anonymous_clone): an
 * anonymous clone's entry joins the instance already active on that node, else the first free
 * instance; a second copy on the same node becomes an orphan numbered after the others.
 */
function findInstance(
  input: HistoryInput,
  clone: MutableRes,
  baseId: string,
  index: number | undefined,
  node: string,
  bound: Bindings,
): MutableRes | undefined {
  const memberOf = (inst: MutableRes): MutableRes | undefined =>
    inst.kind === 'group'
      ? inst.children.find((m) => m.baseId === baseId)
      : inst.baseId === baseId
        ? inst
        : undefined;
  const orphan = (): MutableRes | undefined => {
    const inst = input.addInstance(clone, clone.children.length);
    if (!inst) return undefined;
    inst.orphan = true;
    for (const m of inst.children) m.orphan = true;
    return memberOf(inst);
  };
  if (clone.clone?.globallyUnique) {
    if (index === undefined) return undefined;
    const inst = clone.children.find((c) => c.id.endsWith(`:${index}`)) ?? input.addInstance(clone, index);
    return inst ? memberOf(inst) : undefined;
  }
  // An instance already active here takes the history, unless it has this member active already
  // (then the history is a duplicate: it goes to another active instance here, or an orphan).
  let duplicate = false;
  for (const inst of clone.children) {
    if (!boundOn(bound, inst, node)) continue;
    const m = memberOf(inst);
    if (m && !bound.get(inst.id)?.has(m.id)) return m;
    duplicate = true;
  }
  if (!duplicate) {
    for (const inst of clone.children) {
      if (bound.has(inst.id) || inst.orphan) continue;
      const m = memberOf(inst);
      // An instance on a node that is down or unclean, of a resource that needs no fencing to
      // recover, does not use up an instance number (unless every node can have one): it is
      // an orphan, so a clean node can start the instance instead.
      if (m && !needsFencing(m, input.options) && !universal(clone, input)) {
        const info = input.nodeByName.get(node);
        if (info && (!info.online || info.unclean)) return orphan();
      }
      return m;
    }
  }
  return orphan();
}

/** requires=fencing (the default with fencing enabled, except for fence devices) or unfencing. */
function needsFencing(r: Res, options: ClusterOptions): boolean {
  const dflt = options.stonithEnabled && r.def?.class !== 'stonith' ? 'fencing' : 'quorum';
  const requires = (r.meta.get('requires') ?? dflt).toLowerCase();
  return requires === 'fencing' || requires === 'unfencing';
}

/** A clone with an instance for every node. */
function universal(clone: Res, input: HistoryInput): boolean {
  return (clone.clone?.cloneMax ?? 0) >= input.nodes.length;
}

function topOf(r: Res): Res {
  let t = r;
  while (t.parent) t = t.parent;
  return t;
}

/**
 * Fail counts on one node by resource id, from `fail-count-RSC` and `fail-count-RSC#op_interval`
 * attributes (summed), with the newest matching `last-failure-*` time.
 */
interface FailCount {
  count: number;
  lastFailureSec: number;
  /** `op_interval` keys the count came from (empty for the legacy per-resource form). */
  ops: string[];
}

function failCountsOnNode(attrs: ReadonlyMap<string, string>): Map<string, FailCount> {
  const out = new Map<string, FailCount>();
  const entry = (id: string): FailCount =>
    getOrInsert(out, id, () => ({ count: 0, lastFailureSec: 0, ops: [] }));
  for (const [k, v] of attrs) {
    const m = /^(fail-count|last-failure)-(.+?)(#.+_\d+)?$/.exec(k);
    if (!m) continue;
    const e = entry(m[2]!);
    if (m[1] === 'fail-count') {
      const s = parseScore(v);
      if (s.ok) e.count = Math.min(INFINITY, e.count + s.score);
      if (m[3]) e.ops.push(m[3].slice(1));
    } else {
      e.lastFailureSec = Math.max(e.lastFailureSec, Number(v) || 0);
    }
  }
  return out;
}

export function applyHistory(input: HistoryInput): void {
  const { options } = input;
  const bound: Bindings = new Map();
  const cloneKnown = new Map<string, Set<string>>(); // anonymous clone base → probed nodes
  // Pacemaker reads node history in status-section order, nodes lost uncleanly last (this
  // decides which anonymous clone instance is which).
  const statusOrder = new Map(input.cib.status.map((s, i) => [s, i]));
  const withState = input.nodes
    .filter((n) => n.state !== undefined)
    .sort(
      (a, b) =>
        Number(lostNode(a.info, a.state!)) - Number(lostNode(b.info, b.state!)) ||
        statusOrder.get(a.state!)! - statusOrder.get(b.state!)!,
    );
  for (const { info, state } of withState) {
    if (!state) continue;
    // Without fencing, an offline node's history says nothing about what runs now.
    if (!options.stonithEnabled && !info.online) continue;
    for (const hist of state.resources) {
      if (hist.container) unsupported(`container history for '${hist.id}'`);
      let r: MutableRes | undefined = input.byId.get(hist.id);
      if (r && r.kind === 'primitive' && isCleanProbe(hist.ops)) {
        (r.state.known as Set<string>).add(info.name);
        continue;
      }
      const { base, index } = baseOf(hist.id);
      const configured = input.byConfiguredId.get(base);
      if (configured?.kind === 'clone') {
        const replay0 = replayOps(configured, info.name, hist.ops, options);
        const known = cloneKnown.get(`${configured.id}\u0000${base}`) ?? new Set<string>();
        known.add(info.name);
        cloneKnown.set(`${configured.id}\u0000${base}`, known);
        if (
          replay0.role === 'Stopped' &&
          !replay0.failed &&
          replay0.failures.length === 0 &&
          !replay0.hardBan
        ) {
          continue;
        }
        r = findInstance(input, configured, base, index, info.name, bound);
        if (!r) continue;
      } else if (r?.kind !== 'primitive') {
        if (r) continue;
        // Orphan: in history but no longer configured.
        const replay0 = replayOps({ ...emptyOrphan(hist.id) } as Res, info.name, hist.ops, options);
        if (replay0.role === 'Stopped' && !replay0.failed) continue;
        r = input.byId.get(hist.id) ?? input.newOrphan(hist.id, hist);
      }
      if (options.shutdownLock) readShutdownLock(r, info.name, hist, options);
      const replayed = replayOps(r, info.name, hist.ops, options);
      // On a node that is already unclean Pacemaker ignores on-fail (process_rsc_state) and does
      // not treat the resource as failed: the node is fenced (a move, not a recovery), or what
      // runs there stays stuck until it can be, whatever the failure asked.
      const rep = info.unclean
        ? { ...replayed, failed: false, blocked: false, stopRequested: false, demoteRequested: false }
        : replayed;
      let settled = rep;
      for (const op of rep.migrationsTo) settled = afterMigrateTo(input, r, info, hist, op, settled, bound);
      for (const op of rep.failedMigrations)
        activeOnMigrationTarget(input, r, hist.id, op, rep.failed, bound);
      applyReplay(input, r, info, settled, bound);
      if (r.parent && (rep.role !== 'Stopped' || rep.failed)) r.state.historyName ??= hist.id;
      // Pacemaker checks a definition only through the resource its history is recorded under.
      if (
        settled.role !== 'Stopped' &&
        rep.configOps.length > 0 &&
        (hist.id === r.id || r.state.historyName === hist.id)
      )
        (r.state.configOps as Map<string, ActiveHistory>).set(info.name, {
          class: hist.class,
          provider: hist.provider,
          type: hist.type,
          ops: rep.configOps,
        });
    }
  }
  // A hard error (not installed, no permission) bans every instance of an anonymous clone
  // from that node, not just the one its history was mapped to.
  for (const clone of input.byId.values()) {
    if (clone.kind !== 'clone' || clone.clone?.globallyUnique) continue;
    const banned = new Map<string, Set<string>>();
    for (const p of clone.children.flatMap((inst) => primitivesOf(inst)))
      for (const n of p.state.hardBans) getOrInsert(banned, p.baseId, () => new Set()).add(n);
    if (banned.size === 0) continue;
    for (const p of clone.children.flatMap((inst) => primitivesOf(inst)))
      for (const n of banned.get(p.baseId) ?? []) (p.state.hardBans as Set<string>).add(n);
  }
  // Probed nodes of anonymous clones are shared by all instances.
  for (const [key, nodes] of cloneKnown) {
    const [cloneId, base] = key.split('\u0000') as [string, string];
    const clone = input.byId.get(cloneId);
    if (!clone) continue;
    for (const inst of clone.children) {
      for (const p of inst.kind === 'group' ? inst.children : [inst]) {
        if (p.baseId === base) for (const n of nodes) (p.state.known as Set<string>).add(n);
      }
    }
  }
  applyFailCounts(input);
  if (options.shutdownLock) for (const r of input.resources) lockForShutdown(r, input.nodeByName);
}

/**
 * A lock recorded in the history of a node shut down with shutdown-lock (lrm_resource's
 * `shutdown-lock` attribute, the shutdown time) holds until shutdown-lock-limit passes
 * (Pacemaker's unpack_shutdown_lock).
 */
function readShutdownLock(r: MutableRes, node: string, hist: ResourceHistory, options: ClusterOptions): void {
  for (let p = r.parent; p; p = p.parent) if (p.kind === 'clone') return;
  const since = Number(hist.attrs?.['shutdown-lock'] ?? '0');
  if (!Number.isFinite(since) || since === 0) return;
  if (options.shutdownLockLimitMs > 0 && options.nowMs > since * 1000 + options.shutdownLockLimitMs) return;
  r.state.shutdownLock = node;
}

/**
 * Which resources shutdown-lock keeps with their node (Pacemaker's apply_shutdown_lock):
 * primitives, alone or in groups but not in clones, other than fencing devices; one active on
 * just a node that is shutting down cleanly is locked to it; a lock from history is dropped if
 * the resource runs somewhere after all.
 */
function lockForShutdown(r: MutableRes, nodes: ReadonlyMap<string, NodeInfo>): void {
  if (r.kind === 'group') {
    for (const m of r.children) lockForShutdown(m, nodes);
    return;
  }
  if (r.kind !== 'primitive' || r.def?.class === 'stonith') return;
  const st = r.state;
  if (st.shutdownLock !== undefined) {
    if (st.active.length > 0) delete st.shutdownLock;
    return;
  }
  if (st.active.length !== 1) return;
  const host = nodes.get(st.active[0]!.node);
  if (host?.shuttingDown && !host.unclean) st.shutdownLock = host.name;
}

/** A node lost uncleanly whose controller is down: its history is read after the others. */
function lostNode(info: NodeInfo, s: NodeState): boolean {
  const crmdUp = s.crmd === 'online' || (s.crmd !== undefined && /^\d+$/.test(s.crmd) && s.crmd !== '0');
  return info.unclean && !crmdUp;
}

function emptyOrphan(id: string): Partial<Res> {
  return {
    id,
    baseId: id,
    kind: 'primitive',
    parent: undefined,
    children: [],
    failureTimeoutMs: 0,
    def: undefined,
  };
}

function applyReplay(input: HistoryInput, r: MutableRes, info: NodeInfo, rep: Replay, bound: Bindings): void {
  const st = r.state;
  (st.known as Set<string>).add(info.name);
  if (rep.failures.length > 0) st.failures = [...st.failures, ...rep.failures];
  if (rep.hardBan) (st.hardBans as Set<string>).add(info.name);
  if (rep.fatal) st.fatal = true;
  if (rep.blocked) {
    st.blocked = true;
    st.blockedOn = [...st.blockedOn, info.name];
  }
  if (rep.stopRequested) st.stopRequested = true;
  if (rep.demoteRequested) st.demoteRequested = true;
  if (rep.failureIgnored) st.failureIgnored = true;
  if (rep.fenceNode && input.options.stonithEnabled && !input.fence.has(info.name)) {
    input.fence.set(info.name, rep.fenceNode);
    (info as { unclean: boolean }).unclean = true;
  }
  if (rep.role === 'Stopped' && !rep.failed) return;
  // An active resource on a node that is cleanly down means the node must be fenced first,
  // unless the node is in maintenance: then what its history says runs there is taken as
  // running, left alone, and nothing is fenced (Pacemaker's process_rsc_state).
  const cleanlyDown = !info.online && !info.unclean && !info.pending;
  if (cleanlyDown && info.maintenance) {
    recordActive(r, info, rep, bound);
    return;
  }
  if (cleanlyDown) {
    // Only a managed resource makes the node need fencing; an unmanaged one is just noted.
    if (!input.options.stonithEnabled || !r.managed) return;
    if (!input.fence.has(info.name)) {
      const seen = input.nodes.find((n) => n.info === info)?.state !== undefined;
      input.fence.set(
        info.name,
        seen ? `${r.id} is thought to be active there` : 'peer has not been seen by the cluster',
      );
    }
    (info as { unclean: boolean }).unclean = true;
  }
  if (info.unclean && !input.options.stonithEnabled) return;
  // (Fencing the node above made it unclean: what ran there is then active until the fence.)
  if (!info.online && !info.unclean && !info.pending) return;
  recordActive(r, info, rep, bound);
}

/**
 * What a successful migrate_to on the source says (Pacemaker's unpack_migrate_to_success). A
 * complete migration is migrate_to on the source, migrate_from on the target, then a stop on the
 * source; the history may hold any prefix of that, and later operations may have made it moot:
 * - newer state on both nodes (or a migrate_from and a newer operation on the source): moot;
 * - migrate_from succeeded but the source never stopped (dangling): the replay stands;
 * - otherwise the resource is taken as still active on the source (unless it was stopped
 *   there since), and on the target too when the target has no newer state and is up. With
 *   migrate_from not done yet that is a partial migration, finished if the target is chosen
 *   again; with migrate_from failed, or the target down, the resource is failed and is
 *   recovered rather than migrated.
 */
function afterMigrateTo(
  input: HistoryInput,
  r: MutableRes,
  source: NodeInfo,
  hist: ResourceHistory,
  migrateTo: OpHistory,
  rep: Replay,
  bound: Bindings,
): Replay {
  if (cloneAncestor(r)) return rep; // Clones do not migrate.
  const target = migrateTo.attrs?.migrate_target;
  const targetInfo = target !== undefined ? input.nodeByName.get(target) : undefined;
  const targetOps = historyOn(input, targetInfo, hist.id);
  const sourceNewer = hist.ops.some(
    (o) => o !== migrateTo && STATE_CHANGING.has(o.operation) && isNewerOp(o, migrateTo, true),
  );
  const migrateFrom = targetOps.find(
    (o) => o.operation === 'migrate_from' && o.attrs?.migrate_source === source.name,
  );
  if (migrateFrom && sourceNewer) return rep;
  const targetNewer = newerStateAfterMigration(targetOps, migrateTo, migrateFrom);
  if (sourceNewer && targetNewer) return rep;
  const fromStatus = migrateFrom !== undefined ? Number(migrateFrom.opStatus ?? '0') : -1;
  if (fromStatus === 0 && Number(migrateFrom?.rcCode ?? '0') === 0) {
    // Dangling: the migration finished but the source was never stopped; it is stopped now.
    if (source.online && !source.unclean) {
      const st = r.state;
      st.danglingMigrationSources = [...(st.danglingMigrationSources ?? []), source.name];
    }
    return rep;
  }
  // Still active on the source, unless a later operation there (a stop) says otherwise.
  const out: Replay = sourceNewer ? rep : { ...rep, role: 'Started' };
  const failed = (): Replay => (sourceNewer ? out : { ...out, failed: true });
  const activeOnTarget = !targetNewer && targetInfo?.online === true;
  const addTarget = (asFailed: boolean): void => {
    if (targetInfo && !r.state.active.some((a) => a.node === targetInfo.name))
      recordActive(r, targetInfo, { role: 'Started', failed: asFailed }, bound);
  };
  if (fromStatus !== -1) {
    // migrate_from ran on the target and failed there.
    if (!activeOnTarget) return failed();
    addTarget(true);
    return out;
  }
  // No record at all on an online target: a probe there will tell.
  if (targetInfo?.online && !targetOps.some((o) => Number(o.rcCode ?? '0') !== PENDING_RC)) return out;
  if (!activeOnTarget || !targetInfo) return failed();
  addTarget(false);
  if (source.online) r.state.partialMigration = { source: source.name, target: targetInfo.name };
  return out;
}

/** Operations after which a resource's state on a node is what they say. */
const STATE_CHANGING = new Set(['start', 'stop', 'migrate_to', 'migrate_from']);
/** The result recorded for an operation still in flight (not a record of the resource). */
const PENDING_RC = 193;

/** The history of resource entry `historyId` on `node` (empty without one). */
function historyOn(input: HistoryInput, node: NodeInfo | undefined, historyId: string): readonly OpHistory[] {
  if (!node) return [];
  const state = input.nodes.find((n) => n.info === node)?.state;
  return state?.resources.find((h) => h.id === historyId)?.ops ?? [];
}

/**
 * Whether the target of a migration has newer state than the migration: a later start, stop
 * or migration, or a probe or monitor that found the resource not running. Its own migrate_from
 * is the reference when there is one (call ids order one node's operations); otherwise the
 * source's migrate_to (across nodes only the times of the last change order operations).
 */
function newerStateAfterMigration(
  targetOps: readonly OpHistory[],
  migrateTo: OpHistory,
  migrateFrom: OpHistory | undefined,
): boolean {
  const ref = migrateFrom ?? migrateTo;
  return targetOps.some(
    (o) =>
      o !== ref &&
      (STATE_CHANGING.has(o.operation) || (o.operation === 'monitor' && Number(o.rcCode ?? '0') === 7)) &&
      isNewerOp(o, ref, migrateFrom !== undefined),
  );
}

/**
 * A failed migrate_to leaves the resource possibly active on its target as well (Pacemaker's
 * unpack_migrate_to_failure): unless the target has no record of the resource at all (a probe
 * will tell), or has newer state (a later start, stop or migration, or a probe or monitor that
 * found it not running), the target counts as a node it runs on, listed before the source. A
 * resource found on both is stopped on both and started once, like any other multiply active one.
 */
function activeOnMigrationTarget(
  input: HistoryInput,
  r: MutableRes,
  historyId: string,
  migrateTo: OpHistory,
  sourceFailed: boolean,
  bound: Bindings,
): void {
  if (cloneAncestor(r)) return; // Clones do not migrate.
  const source = migrateTo.attrs?.migrate_source;
  const target = migrateTo.attrs?.migrate_target;
  const info = target !== undefined ? input.nodeByName.get(target) : undefined;
  if (!info?.online || r.state.active.some((a) => a.node === info.name)) return;
  const ops = historyOn(input, info, historyId);
  if (!ops.some((o) => Number(o.rcCode ?? '0') !== PENDING_RC)) return;
  const migrateFrom = ops.find(
    (o) =>
      o.operation === 'migrate_from' && o.attrs?.migrate_source === source && Number(o.rcCode ?? '0') === 0,
  );
  if (newerStateAfterMigration(ops, migrateTo, migrateFrom)) return;
  // It counts as failed only while the failure on the source does (a later stop there that
  // succeeded ends it): a resource merely left on the target restarts, it is not recovered.
  recordActive(r, info, { role: 'Started', failed: sourceFailed }, bound, !sourceFailed);
}

/**
 * Whether history entry `a` is newer than `b`, as Pacemaker orders history entries: by call id
 * on one node, by last-rc-change across nodes. An operation still pending is newer than nothing.
 */
function isNewerOp(a: OpHistory, b: OpHistory, sameNodeDefault: boolean): boolean {
  const sameNode = a.onNode !== undefined && b.onNode !== undefined ? a.onNode === b.onNode : sameNodeDefault;
  const ca = callId(a);
  const cb = callId(b);
  if (ca < 0 || cb < 0) return false;
  if (sameNode && ca !== cb) return ca > cb;
  const la = a.lastRcChange !== undefined ? Number(a.lastRcChange) : -1;
  const lb = b.lastRcChange !== undefined ? Number(b.lastRcChange) : -1;
  return lb >= 0 && la > lb;
}

function recordActive(
  r: MutableRes,
  info: NodeInfo,
  rep: Pick<Replay, 'role' | 'failed'>,
  bound: Bindings,
  leftByFailedMigration = false,
): void {
  const st = r.state;
  const role = rep.role === 'Stopped' ? 'Started' : rep.role;
  st.active = [
    ...st.active,
    {
      node: info.name,
      role,
      failed: rep.failed,
      ...(leftByFailedMigration ? { leftByFailedMigration } : {}),
    },
  ];
  const inst = topOf(r) === r ? r : r.parent?.kind === 'group' && r.parent.parent ? r.parent : r;
  getOrInsert(bound, inst.id, () => new Map<string, string>()).set(r.id, info.name);
}

function applyFailCounts(input: HistoryInput): void {
  const { options } = input;
  // Anonymous clone instances share the fail count written under the configured id.
  const byCountId = new Map<string, MutableRes[]>();
  for (const r of input.byId.values()) {
    if (r.kind !== 'primitive') continue;
    const id = isUniqueInstance(r) ? r.id : r.baseId;
    const list = byCountId.get(id) ?? [];
    list.push(r);
    byCountId.set(id, list);
  }
  for (const { info } of input.nodes) {
    for (const [id, fc] of failCountsOnNode(info.attrs)) {
      if (fc.count <= 0) continue;
      // Old controllers wrote anonymous clone counts per instance (`fail-count-rsc:1`): they
      // belong to whichever instance is active on this node.
      const siblings = byCountId.get(baseOf(id).base) ?? [];
      const activeHere = siblings.filter((r) => r.state.active.some((a) => a.node === info.name));
      // With no instance active there any instance carries it (the ban covers the whole clone).
      const targets = byCountId.get(id) ?? (activeHere.length > 0 ? activeHere : siblings.slice(0, 1));
      for (const r of targets) {
        if (fc.ops.length > 0 && fc.ops.every((op) => ignoredOp(r, op))) continue;
        // The legacy per-resource count can't name the op; Pacemaker then ignores it when the
        // resource ignores failures of some operation.
        if (fc.ops.length === 0 && r.state.failureIgnored) continue;
        const expired =
          r.failureTimeoutMs > 0 &&
          fc.lastFailureSec > 0 &&
          fc.lastFailureSec * 1000 + r.failureTimeoutMs <= options.nowMs;
        // Counts recorded under several names (`rsc`, `rsc:0`, `rsc:1`) add up, as Pacemaker's do.
        const counts = r.state.failCounts as Map<string, number>;
        if (!expired) counts.set(info.name, (counts.get(info.name) ?? 0) + fc.count);
      }
    }
  }
}

/** Whether failures of `opKey` (`monitor_10000`) are configured to be ignored (on-fail=ignore). */
function ignoredOp(r: Res, opKey: string): boolean {
  const m = /^(.+)_(\d+)$/.exec(opKey);
  if (!m) return false;
  const op = r.def?.operations.find((o) => {
    if (o.name !== m[1]) return false;
    const d = parseDuration(o.interval);
    return d.ok && d.ms === Number(m[2]);
  });
  return op?.onFail?.toLowerCase() === 'ignore';
}

function isUniqueInstance(r: Res): boolean {
  for (let p = r.parent; p; p = p.parent) if (p.kind === 'clone') return p.clone?.globallyUnique ?? false;
  return true;
}

export type { Clone };
