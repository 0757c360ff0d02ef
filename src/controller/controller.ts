import type { Cib, Configuration, NodeState, OpHistory } from '../cib/model.ts';
import { clusterProperty, findPlacedResource, isTrue, metaValue, nodeName } from '../cib/resources.ts';
import { INFINITY, parseScore } from '../cib/score.ts';
import { assert } from '../lib/assert.ts';
import type { LogLevel } from '../lib/ports.ts';
import type { Action, Ordering } from '../scheduler/actions.ts';
import {
  DEFAULT_ISOLATION_FENCING_DELAY_MS,
  ISOLATION_FENCING_DELAY_PROPERTY,
  type IsolationFencingDecision,
  isolationFencingDelay,
  type LinkCarrierFact,
  parseIsolationFencingDelay,
} from './isolation_fencing.ts';
import { parsePriorityFencingDelay, priorityFencingDelay } from './priority_fencing.ts';
import {
  agentIdentity,
  baseId,
  execOpFor,
  failureTimeoutMs,
  findPrimitive,
  RC_NOT_RUNNING,
  RC_OK,
  RC_RUNNING_PROMOTED,
} from './resource_ops.ts';
import {
  adoptNodeState,
  cibForScheduling,
  clearNode,
  type NodeRecord,
  newNodeRecord,
  recordSaysStopped,
  toNodeState,
} from './status.ts';
import {
  type ControllerConfig,
  type ControllerEffect,
  type ControllerEvent,
  type ExecOp,
  FENCED_EPOCH_ATTRIBUTE,
  type FencingMode,
  MAX_FENCE_ATTEMPTS,
  MAX_TRANSITION_ACTIONS,
  NODE_ENTRY_RETRY_MS,
  type NodeEntry,
  type OpOutcome,
  type ScheduleFn,
  SHUTDOWN_ATTRIBUTE,
  type StatusChange,
  UNFENCED_ATTRIBUTE,
} from './types.ts';

/** Pause between fencing attempts on one node, so a dead fence device is not hammered. */
export const FENCE_RETRY_DELAY_MS = 1_000;
/** How long past an operation's own timeout the DC waits for its result (Pacemaker's cluster-delay). */
export const ACTION_REPORT_SLACK_MS = 60_000;

/**
 * The controller core (Pacemaker's controld, as a reducer). On the DC it keeps the status
 * section, runs the injected scheduler whenever an input changes and drives the resulting
 * transition graph: each action whose prerequisites are done goes to its node's executor (or to
 * the fencer), each result becomes an `lrm_rsc_op` record, and anything new aborts the graph so
 * the next one is computed from fresh inputs once the running actions have reported.
 *
 * On every node (DC or not) it also keeps the local safety rule: a node that loses quorum stops
 * its own resources within `leaseMs` and asks to be fenced (self-fence) if it could not.
 *
 * Fencing before recovery: a lost node is `lost` (unclean to the scheduler, which orders every
 * recovery of its resources after its fence action) until a fence succeeds or, in self-fencing
 * mode, until its lease has run out while this side is quorate. Until then nothing of it starts
 * elsewhere.
 *
 * `handle(event, nowMs)` returns the effects to carry out, in order. It never throws on bad
 * input from the network or an agent; it logs and ignores it.
 */

type ActionState = 'pending' | 'running' | 'done' | 'failed';

interface RunAction {
  readonly action: Action;
  readonly before: number[];
  state: ActionState;
  /** When a dispatched action counts as lost (its timeout plus `ACTION_REPORT_SLACK_MS`). */
  deadlineMs?: number;
}

interface TransitionRun {
  readonly id: number;
  readonly actions: RunAction[];
  readonly byId: ReadonlyMap<number, RunAction>;
  aborted: string | undefined;
  /** An action failed after it was dispatched: the graph is recomputed when it ends. */
  failedAsync: boolean;
}

interface LocalResource {
  readonly rsc: string;
  role: 'Started' | 'Promoted';
}

export interface ControllerView {
  readonly isDc: boolean;
  readonly quorate: boolean;
  readonly members: readonly string[];
  /** The CIB the last schedule saw (configuration + status + have-quorum + dc-uuid). */
  readonly cib: Cib;
  readonly transition:
    | {
        readonly id: number;
        readonly pending: number;
        readonly running: number;
        readonly done: number;
        readonly failed: number;
      }
    | undefined;
  /** Why scheduling is held back right now, when it is. */
  readonly frozen: string | undefined;
  /** Something changed that the DC has not computed a transition for yet. */
  readonly schedulePending: boolean;
}

export class Controller {
  private readonly cfg: ControllerConfig;
  private readonly scheduleFn: ScheduleFn;
  private cib: Cib;
  private isDc = false;
  private members = new Set<string>();
  private quorate = false;
  private fenceNeeded: readonly string[] = [];
  private readonly nodes = new Map<string, NodeRecord>();
  private transition: TransitionRun | undefined;
  private transitionSeq = 0;
  private callSeq = 0;
  private tokenSeq = 0;
  private needSchedule = false;
  /** Nodes whose whole status is republished (membership change, DC takeover, fence, cleanup). */
  private readonly fullDirty = new Set<string>();
  /** Record-level status changes of this event, for nodes not in `fullDirty`. */
  private statusChanges: StatusChange[] = [];
  private lastScheduleMs = Number.NEGATIVE_INFINITY;
  private readonly fenceAttempts = new Map<string, number>();
  /** After a failed fence, the node is not fenced again before this time. */
  private readonly fenceRetryAtMs = new Map<string, number>();
  /** Unfencing (`on`) in flight, by effect token → node; failed attempts and retry times by node. */
  private readonly unfenceTokens = new Map<string, string>();
  private readonly unfenceAttempts = new Map<string, number>();
  private readonly unfenceRetryAtMs = new Map<string, number>();
  /** Fences requested outside a transition (two-node rule), by token. */
  private readonly directFences = new Map<string, string>();
  private readonly localRunning = new Map<string, LocalResource>();
  private quorumLostAtMs: number | undefined;
  /** The DC acts only while `nowMs < leaseUntilMs` (its Raft leader lease; see the `lease` event). */
  private leaseUntilMs = Number.NEGATIVE_INFINITY;
  /** Whether the last event saw the lease held (for one log line per change). */
  private leaseHeld = false;
  private localStopIssued = false;
  private selfFenceRequested = false;
  /** Each node's boot epoch as the membership last reported it. */
  private readonly memberEpochs = new Map<string, number>();
  /** Fenced nodes the membership lists with no newer epoch: node → epoch last logged. */
  private readonly ignoredFenced = new Map<string, number | undefined>();
  /** Each member's cluster node id as the membership last reported it (for its `<node>` entry). */
  private readonly memberNodeIds = new Map<string, string>();
  /**
   * The node entries this DC last asked the shell to add: for which members, against which
   * configuration (by identity: any configuration change is a new one) and when.
   */
  private nodeEntryRequest:
    | { readonly names: ReadonlySet<string>; readonly configuration: Configuration; readonly atMs: number }
    | undefined;
  /**
   * Nodes removed from the cluster (membership's `removed`, never a current member): their
   * entries are deleted once they are off, never added back, and one that left with nothing
   * active is taken as off without fencing.
   */
  private removedNodes: ReadonlySet<string> = new Set();
  /** The entry deletions this DC last asked for, like `nodeEntryRequest`. */
  private nodeRemovalRequest:
    | { readonly names: ReadonlySet<string>; readonly configuration: Configuration; readonly atMs: number }
    | undefined;
  /** The node-id clashes last logged (each distinct set once). */
  private nodeIdClashesLogged = '';
  /** The invalid reason last logged, by delay property (each distinct value once). */
  private readonly badDelayLogged = new Map<string, string>();
  /** What the daemon last said about this node's own cluster links (undefined: nothing yet). */
  private linkCarrier: LinkCarrierFact | undefined;
  /**
   * The configuration and member set (by identity) last found to need no node entry: until
   * either changes there is nothing to look at, so the DC's every event stays cheap.
   */
  private nodeEntriesComplete:
    | { readonly configuration: Configuration; readonly members: Set<string> }
    | undefined;
  /**
   * Set when this DC began acting while its quorum view said "no quorum" and no quorum event has
   * come since: that view predates the lease (which a majority just granted), so no-quorum-policy
   * waits up to `quorumSettleMs` for a fresh one.
   */
  private quorumUnconfirmedSinceMs: number | undefined;
  private nowMs = 0;
  private effects: ControllerEffect[] = [];

  constructor(cfg: ControllerConfig, scheduleFn: ScheduleFn, cib: Cib) {
    assert(
      cfg.leaseMs > 0 && cfg.recheckIntervalMs > 0,
      'Controller: leaseMs and recheckIntervalMs must be positive',
    );
    this.cfg = cfg;
    this.scheduleFn = scheduleFn;
    this.cib = cib;
    this.syncNodeRecords();
  }

  handle(ev: ControllerEvent, nowMs: number): ControllerEffect[] {
    this.nowMs = nowMs;
    this.effects = [];
    switch (ev.type) {
      case 'tick':
        break;
      case 'cib':
        this.onCib(ev.cib);
        break;
      case 'dc':
        this.onDc(ev.isDc);
        break;
      case 'lease':
        this.leaseUntilMs = ev.untilMs;
        break;
      case 'membership':
        if (ev.removed !== undefined) this.removedNodes = new Set(ev.removed);
        this.onMembership(ev.members, ev.why, ev.epochs, ev.nodeIds);
        if (ev.quorum) this.onQuorum(ev.quorum.quorate, ev.quorum.fenceNeeded, ev.quorum.reason);
        break;
      case 'quorum':
        this.onQuorum(ev.quorate, ev.fenceNeeded, ev.reason);
        break;
      case 'link-carrier':
        this.onLinkCarrier({ isolated: ev.isolated, detail: ev.detail });
        break;
      case 'op-result':
        this.onOpResult(ev);
        break;
      case 'fence-result':
        this.onFenceResult(ev.token, ev.target, ev.ok, ev.reason);
        break;
      case 'node-attribute':
        this.setAttribute(ev.node, ev.name, ev.value, `attribute ${ev.name} changed on ${ev.node}`);
        break;
      case 'cleanup':
        this.onCleanup(ev.rsc, ev.node);
        break;
    }
    this.localSafety();
    if (this.isDc)
      this.noteLease(ev.type === 'quorum' || (ev.type === 'membership' && ev.quorum !== undefined));
    if (this.acting()) {
      if (this.quorumSettling() === undefined) this.twoNodeFencing();
      if (ev.type === 'tick') {
        // Time-driven rules only move on ticks: scanning them on every result would make a
        // transition of n actions cost n² (see the bench in controller_test).
        this.expireLeases();
        this.expireFailures();
        this.failRunningOn(undefined, 'no result within the operation timeout');
      }
      if (this.transition === undefined && nowMs - this.lastScheduleMs >= this.cfg.recheckIntervalMs)
        this.needSchedule = true;
      this.requestNodeEntries();
      this.drive();
    }
    if (this.isDc) this.flushStatus();
    // After the status: a removed node's cleared node_state is proposed before its entry goes
    // (the state machine takes a node_state only for a node it knows).
    if (this.acting()) this.requestNodeRemovals();
    if (!this.isDc) {
      // Only the DC writes the status section.
      this.fullDirty.clear();
      this.statusChanges = [];
    }
    const out = this.effects;
    this.effects = [];
    return out;
  }

  view(): ControllerView {
    const t = this.transition;
    const count = (s: ActionState): number => t?.actions.filter((a) => a.state === s).length ?? 0;
    return {
      isDc: this.isDc,
      quorate: this.quorate,
      members: [...this.members].sort(),
      cib: this.schedulingCib(),
      transition: t
        ? {
            id: t.id,
            pending: count('pending'),
            running: count('running'),
            done: count('done'),
            failed: count('failed'),
          }
        : undefined,
      frozen: this.isDc && !this.acting() ? this.leaseLapsedReason() : this.frozenReason(),
      schedulePending: this.needSchedule,
    };
  }

  /**
   * What runs on this node as far as its own results tell: resource ids, sorted. Empty once a
   * clean shutdown has had everything here stopped.
   */
  localActive(): string[] {
    return [...this.localRunning.keys()].sort();
  }

  /** Whether this node is the DC and its leader lease holds now, so it may act as DC. */
  private acting(): boolean {
    return this.isDc && this.nowMs < this.leaseUntilMs;
  }

  private leaseLapsedReason(): string {
    return 'this DC holds no leader lease now (no quorum acknowledged it lately): it acts again once one does, or another node leads';
  }

  private noteLease(quorumFresh: boolean): void {
    const held = this.acting();
    if (held === this.leaseHeld) return;
    this.leaseHeld = held;
    this.quorumUnconfirmedSinceMs = held && !this.quorate && !quorumFresh ? this.nowMs : undefined;
    if (held) this.log('info', `${this.cfg.self} holds the DC lease: acting as DC`);
    else
      this.log(
        'warn',
        `${this.cfg.self} is DC but its leader lease ran out: dispatching, scheduling and fencing nothing until a quorum acknowledges it again`,
      );
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs

  private onCib(cib: Cib): void {
    const configChanged = configKey(cib) !== configKey(this.cib);
    this.cib = cib;
    this.syncNodeRecords();
    // Said when the value arrives, not only at the next fencing it would have delayed. Every
    // node checks this one: a non-DC fences too (the daemon's two-node takeover).
    this.isolationFencingDelayMs();
    if (!this.isDc) return;
    this.priorityFencingDelayMs();
    if (configChanged) this.invalidate('configuration changed');
  }

  private onDc(isDc: boolean): void {
    if (isDc === this.isDc) return;
    this.isDc = isDc;
    if (!isDc) {
      this.transition = undefined;
      this.leaseUntilMs = Number.NEGATIVE_INFINITY;
      this.leaseHeld = false;
      this.quorumUnconfirmedSinceMs = undefined;
      this.nodeEntryRequest = undefined;
      this.nodeRemovalRequest = undefined;
      this.log('info', `${this.cfg.self} is no longer the DC`);
      return;
    }
    // Take over the replicated status, then correct it with what membership says now.
    for (const rec of this.nodes.values()) {
      const s = this.cib.status.find((x) => x.id === rec.id || x.uname === rec.name);
      if (s) adoptNodeState(rec, s);
    }
    for (const rec of this.nodes.values()) this.applyMembership(rec, 'not a member when this node became DC');
    this.log('info', `${this.cfg.self} is the DC`);
    this.invalidate('became DC');
    for (const rec of this.nodes.values()) this.fullDirty.add(rec.name);
  }

  private onMembership(
    members: readonly string[],
    why: string | undefined,
    epochs: Readonly<Record<string, number>> | undefined,
    nodeIds: Readonly<Record<string, string>> | undefined,
  ): void {
    this.members = new Set(members);
    for (const [name, epoch] of Object.entries(epochs ?? {}))
      if (Number.isSafeInteger(epoch)) this.memberEpochs.set(name, epoch);
    for (const [name, id] of Object.entries(nodeIds ?? {}))
      if (typeof id === 'string' && id !== '') this.memberNodeIds.set(name, id);
    let changed = false;
    for (const rec of this.nodes.values())
      changed = this.applyMembership(rec, why ?? 'left the membership') || changed;
    if (changed && this.isDc) this.invalidate('membership changed');
  }

  /**
   * Whether `rec`'s node counts as a member: listed by the membership and, if this cluster fenced
   * it, showing a boot epoch newer than the one it had when fenced. Heartbeats it sent before
   * the fence (in flight, or queued in a socket when the fence returned) carry the old epoch.
   */
  private countsAsMember(rec: NodeRecord): boolean {
    if (!this.members.has(rec.name)) {
      this.ignoredFenced.delete(rec.name);
      return false;
    }
    const mark = rec.attrs.get(FENCED_EPOCH_ATTRIBUTE);
    if (mark === undefined) return true;
    const epoch = this.memberEpochs.get(rec.name);
    if (epoch !== undefined && epoch > Number(mark)) return true;
    if (!this.ignoredFenced.has(rec.name) || this.ignoredFenced.get(rec.name) !== epoch) {
      this.ignoredFenced.set(rec.name, epoch);
      this.log(
        'warn',
        `ignoring ${rec.name} in the membership: it was fenced at boot epoch ${mark} and shows ${epoch === undefined ? 'no epoch' : `epoch ${epoch}`}; it counts again once it has restarted (a newer epoch)`,
        { node: rec.name },
      );
    }
    return false;
  }

  private applyMembership(rec: NodeRecord, why: string): boolean {
    const isMember = this.countsAsMember(rec);
    if (isMember && rec.condition !== 'member') {
      const fencedAt = rec.attrs.get(FENCED_EPOCH_ATTRIBUTE);
      this.log(
        'info',
        `${rec.name} joined the cluster${fencedAt !== undefined ? ` (restarted since it was fenced: epoch ${this.memberEpochs.get(rec.name)} > ${fencedAt})` : ''}`,
        { node: rec.name },
      );
      rec.attrs.delete(FENCED_EPOCH_ATTRIBUTE);
      this.ignoredFenced.delete(rec.name);
      rec.condition = 'member';
      rec.lostAtMs = undefined;
      rec.lostWhy = undefined;
      this.fullDirty.add(rec.name);
      return true;
    }
    // Also for a node first taken as lost: a new DC adopting a status without membership fields
    // guesses "lost" for any node with history, and the records say better.
    if (!isMember && rec.condition !== 'down' && this.leftCleanly(rec)) {
      // Pacemaker's clean shutdown: the node asked to leave (`shutdown` attribute), the DC moved
      // everything off it, and only then did it go. Nothing to fence, no lease to wait out; its
      // history goes, so it is probed afresh when it comes back.
      this.failRunningOn(rec.name, `${rec.name} shut down`);
      rec.condition = 'down';
      rec.lostAtMs = undefined;
      rec.lostWhy = undefined;
      clearNode(rec);
      this.fullDirty.add(rec.name);
      this.log('info', `${rec.name} left the cluster cleanly (shut down with nothing running)`, {
        node: rec.name,
      });
      return true;
    }
    if (!isMember && rec.condition !== 'down' && this.removedNodes.has(rec.name)) {
      const active = this.activeOn(rec);
      if (active.length === 0) {
        // `halo cluster leave` removed it with nothing active there (the daemon drains an
        // online node first and refuses an offline one with something active unless forced):
        // nothing of it needs recovering, and it can never rejoin without `halo cluster join`.
        this.failRunningOn(rec.name, `${rec.name} was removed from the cluster`);
        rec.condition = 'down';
        rec.lostAtMs = undefined;
        rec.lostWhy = undefined;
        clearNode(rec);
        this.fenceAttempts.delete(rec.name);
        this.fenceRetryAtMs.delete(rec.name);
        this.fullDirty.add(rec.name);
        this.log(
          'info',
          `${rec.name} was removed from the cluster with nothing active there: not fencing it`,
          {
            node: rec.name,
          },
        );
        return true;
      }
      // Removed with something active (leave --force): a lost node like any other, fenced (or
      // its lease waited out) before its resources start elsewhere; its entry goes after that.
    }
    if (!isMember && rec.condition === 'member') {
      this.failRunningOn(rec.name, `${rec.name} left the cluster`);
      rec.condition = 'lost';
      rec.lostAtMs = this.nowMs;
      rec.lostWhy = why;
      if (rec.attrs.has(SHUTDOWN_ATTRIBUTE))
        this.log(
          'warn',
          `${rec.name} had asked to shut down but left with ${this.activeOn(rec).join(', ')} still active`,
          {
            node: rec.name,
          },
        );
      this.fullDirty.add(rec.name);
      this.log(
        'warn',
        `${rec.name} lost: ${why}; its resources stay put until it is ${this.fencingMode() === 'stonith' ? 'fenced' : 'past its lease'}`,
        { node: rec.name },
      );
      return true;
    }
    return false;
  }

  /**
   * Whether a node that just left had asked to shut down and, by its own reported results, runs
   * nothing: each resource's last operation is a successful stop or a probe that found it
   * stopped. A node that left with anything else still active is lost (fenced, or its lease
   * waited out), shutdown request or not (Pacemaker's shutdown-escalation ends the same way).
   */
  /** Resources whose last record on `rec`'s node says they may be active there. */
  private activeOn(rec: NodeRecord): string[] {
    const out: string[] = [];
    for (const [rsc, ops] of rec.history) {
      const last = ops.get(`${rsc}_last_0`);
      if (last && !recordSaysStopped(last)) out.push(rsc);
    }
    return out.sort();
  }

  private leftCleanly(rec: NodeRecord): boolean {
    const shutdown = rec.attrs.get(SHUTDOWN_ATTRIBUTE);
    if (shutdown === undefined || shutdown === '0') return false;
    return this.activeOn(rec).length === 0;
  }

  private onQuorum(quorate: boolean, fenceNeeded: readonly string[], reason: string | undefined): void {
    const changed = quorate !== this.quorate || fenceNeeded.join(',') !== this.fenceNeeded.join(',');
    this.quorumUnconfirmedSinceMs = undefined;
    this.quorate = quorate;
    this.fenceNeeded = [...fenceNeeded];
    if (!changed) return;
    this.log(
      quorate ? 'info' : 'warn',
      `quorum ${quorate ? 'gained' : 'lost'}${reason ? `: ${reason}` : ''}`,
    );
    if (this.isDc) this.invalidate(`quorum ${quorate ? 'gained' : 'lost'}`);
  }

  private onOpResult(ev: Extract<ControllerEvent, { type: 'op-result' }>): void {
    if (ev.node === this.cfg.self) this.trackLocal(ev.rsc, ev.action, ev.intervalMs, ev.outcome);
    if (!this.isDc) return;
    const run = this.transition;
    const ra = ev.token !== undefined && run ? this.actionByToken(run, ev.token) : undefined;
    const expected = ra
      ? (execOpExpectedRc(ra.action) ?? RC_OK)
      : defaultExpectedRc(ev.action, ev.intervalMs, this.lastRole(ev.node, ev.rsc));
    const key = ra ? `${ra.action.id}:${run!.id}:${expected}:halo` : `-1:-1:${expected}:halo`;
    const recurringRepeat = ev.token === undefined && ev.intervalMs > 0;
    const failed = this.recordResult(
      ev.node,
      ev.rsc,
      ev.action,
      ev.intervalMs,
      ev.outcome,
      expected,
      key,
      recurringRepeat,
    );
    if (ev.outcome.attributes) {
      // Agents report a deleted attribute as an empty value (crm_master -D, halo:volume with
      // no promotion score); store that as absent, not as the empty string.
      for (const [k, v] of Object.entries(ev.outcome.attributes))
        this.setAttribute(ev.node, k, v === '' ? undefined : v, `${ev.rsc} set ${k}=${v || '(deleted)'}`);
    }
    if (ra && ra.state === 'running') {
      ra.state = failed ? 'failed' : 'done';
      if (failed) {
        run!.failedAsync = true;
        this.abort(`${ev.rsc} ${ev.action} failed on ${ev.node}`);
      }
    } else if (failed) {
      this.invalidate(
        `${ev.rsc} ${ev.action}${ev.intervalMs ? ` (every ${ev.intervalMs} ms)` : ''} failed on ${ev.node}`,
      );
    }
  }

  private onFenceResult(token: string, target: string, ok: boolean, reason: string): void {
    if (this.unfenceTokens.has(token)) {
      this.onUnfenceResult(token, this.unfenceTokens.get(token)!, ok, reason);
      return;
    }
    const direct = this.directFences.get(token);
    if (direct !== undefined) this.directFences.delete(token);
    const run = this.transition;
    const ra = run ? this.actionByToken(run, token) : undefined;
    if (ok) {
      this.fenceAttempts.delete(target);
      this.fenceRetryAtMs.delete(target);
      const rec = this.nodes.get(target);
      if (rec) {
        // Off, whatever the membership says now: heartbeats it sent before the fence may still
        // arrive. It is a member again only with a newer boot epoch (`countsAsMember`).
        const epoch = this.memberEpochs.get(target) ?? 0;
        this.failRunningOn(target, `${target} was fenced`);
        rec.condition = 'down';
        rec.lostAtMs = undefined;
        clearNode(rec);
        rec.attrs.set(FENCED_EPOCH_ATTRIBUTE, String(epoch));
        this.ignoredFenced.delete(target);
        this.fullDirty.add(rec.name);
      }
      this.log('warn', `fenced ${target}: ${reason}`, { node: target });
      this.effects.push({ type: 'node-fenced', node: target, how: reason });
    } else {
      this.fenceAttempts.set(target, (this.fenceAttempts.get(target) ?? 0) + 1);
      this.fenceRetryAtMs.set(target, this.nowMs + FENCE_RETRY_DELAY_MS);
      this.log(
        'error',
        `fencing ${target} failed (attempt ${this.fenceAttempts.get(target)} of ${MAX_FENCE_ATTEMPTS}): ${reason}; nothing of ${target} starts elsewhere until it is fenced`,
        { node: target },
      );
    }
    if (ra && ra.state === 'running') {
      ra.state = ok ? 'done' : 'failed';
      if (!ok) {
        run!.failedAsync = true;
        this.abort(`fencing ${target} failed`);
      }
    } else if (this.isDc) {
      this.invalidate(ok ? `${target} fenced` : `fencing ${target} failed`);
    }
  }

  /**
   * An unfencing (`on`) ended. Success records `#node-unfenced` (so the scheduler does not ask
   * again; the attribute is transient, so a node that leaves is unfenced again when it returns)
   * and lets what waits for it start; the node is not fenced by it. A failure fails the action,
   * holds scheduling for FENCE_RETRY_DELAY_MS and is retried up to MAX_FENCE_ATTEMPTS times.
   */
  private onUnfenceResult(token: string, node: string, ok: boolean, reason: string): void {
    this.unfenceTokens.delete(token);
    const run = this.transition;
    const ra = run ? this.actionByToken(run, token) : undefined;
    if (ok) {
      this.unfenceAttempts.delete(node);
      this.unfenceRetryAtMs.delete(node);
      const rec = this.nodes.get(node);
      if (rec) {
        // Recorded without invalidating: the transition goes on with what waited for it.
        const value = String(Math.max(1, Math.floor(this.nowMs / 1000)));
        rec.attrs.set(UNFENCED_ATTRIBUTE, value);
        this.statusChanges.push({ kind: 'attr', node, name: UNFENCED_ATTRIBUTE, value });
      }
      this.log('info', `unfenced ${node}: ${reason}`, { node });
    } else {
      this.unfenceAttempts.set(node, (this.unfenceAttempts.get(node) ?? 0) + 1);
      this.unfenceRetryAtMs.set(node, this.nowMs + FENCE_RETRY_DELAY_MS);
      this.log(
        'error',
        `unfencing ${node} failed (attempt ${this.unfenceAttempts.get(node)} of ${MAX_FENCE_ATTEMPTS}): ${reason}; what requires unfencing does not start there until it succeeds`,
        { node },
      );
    }
    if (ra && ra.state === 'running') {
      ra.state = ok ? 'done' : 'failed';
      if (!ok) {
        run!.failedAsync = true;
        this.abort(`unfencing ${node} failed`);
      }
    }
  }

  private setAttribute(node: string, name: string, value: string | undefined, why: string): void {
    const rec = this.nodes.get(node);
    if (!rec) {
      this.log('warn', `ignoring attribute ${name} for unknown node ${node}`);
      return;
    }
    if (rec.attrs.get(name) === value) return;
    if (value === undefined) rec.attrs.delete(name);
    else rec.attrs.set(name, value);
    this.statusChanges.push({ kind: 'attr', node, name, value: value ?? null });
    if (this.isDc) this.invalidate(why);
  }

  private onCleanup(rsc: string, node: string | undefined): void {
    const base = baseId(rsc);
    const matches = (id: string): boolean => id === base || baseId(id) === base;
    for (const rec of this.nodes.values()) {
      if (node !== undefined && rec.name !== node) continue;
      // A lost node's history is what keeps its resources from starting elsewhere before it is
      // fenced: cleanup never erases it.
      if (rec.condition === 'lost') continue;
      for (const k of [...rec.attrs.keys()]) {
        const m = /^(?:fail-count|last-failure)-(.+?)(?:#.+_\d+)?$/.exec(k);
        if (m && matches(m[1]!)) rec.attrs.delete(k);
      }
      for (const id of [...rec.history.keys()]) if (matches(id)) rec.history.delete(id);
      this.fullDirty.add(rec.name);
    }
    this.log(
      'info',
      `cleaned up ${rsc}${node ? ` on ${node}` : ''}: failures forgotten, it will be probed again`,
      { resource: rsc },
    );
    if (this.isDc) this.invalidate(`cleanup of ${rsc}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Status records

  private recordResult(
    node: string,
    instance: string,
    action: string,
    intervalMs: number,
    o: OpOutcome,
    expected: number,
    key: string,
    recurringRepeat: boolean,
  ): boolean {
    const rec = this.nodes.get(node);
    if (!rec) {
      this.log('warn', `ignoring result of ${instance} ${action} from unknown node ${node}`);
      return false;
    }
    const failed = isFailure(action, intervalMs, o, expected);
    // An anonymous clone's instances are one resource on a node (Pacemaker records them under
    // the primitive's id): the scheduler renumbers instances between transitions, so a start
    // recorded as rsc:1 and a promote as rsc:0 on one node would read as two copies there.
    const rsc = this.historyId(instance);
    let ops = rec.history.get(rsc);
    if (!ops) {
      ops = new Map();
      rec.history.set(rsc, ops);
      const p = findPrimitive(this.cib, rsc);
      if (p) rec.agents.set(rsc, agentIdentity(this.cib, p));
    }
    const id = intervalMs > 0 ? `${rsc}_${action}_${intervalMs}` : `${rsc}_last_0`;
    const prev = ops.get(id);
    // A recurring monitor that keeps saying the same thing changes nothing.
    if (recurringRepeat && !failed && prev?.rcCode === String(o.rc) && prev.opStatus === String(o.opStatus))
      return false;
    const nowSec = String(Math.floor(this.nowMs / 1000));
    const callId = ++this.callSeq;
    const entry: OpHistory = {
      id,
      operationKey: `${rsc}_${action}_${intervalMs}`,
      operation: action,
      interval: String(intervalMs),
      callId: String(callId),
      rcCode: String(o.rc),
      opStatus: String(o.opStatus),
      transitionKey: key,
      lastRcChange: nowSec,
      lastRun: nowSec,
      execTime: String(Math.round(o.execTimeMs)),
      queueTime: String(Math.round(o.queueTimeMs ?? 0)),
      onNode: node,
      ...(o.opDigest !== undefined ? { opDigest: o.opDigest } : {}),
      ...(o.exitReason !== undefined ? { exitReason: o.exitReason } : {}),
    };
    ops.set(id, entry);
    const resource = { id: rsc, ...(rec.agents.get(rsc) ?? {}) };
    this.statusChanges.push({ kind: 'op', node, resource, op: entry });
    if (action === 'stop' && !failed) {
      // Stopping cancels the recurring monitors; their records go with them (as in Pacemaker).
      for (const k of [...ops.keys()]) {
        if (k === id || k.endsWith('_last_failure_0') || ops.get(k)!.interval === '0') continue;
        ops.delete(k);
        this.statusChanges.push({ kind: 'op-removed', node, rsc, opId: k });
      }
    }
    if (failed) {
      const lastFailure = { ...entry, id: `${rsc}_last_failure_0` };
      ops.set(lastFailure.id, lastFailure);
      this.statusChanges.push({ kind: 'op', node, resource, op: lastFailure });
      this.bumpFailCount(rec, rsc, action, intervalMs, nowSec);
      this.log(
        'warn',
        `${rsc} ${action}${intervalMs ? ` (interval ${intervalMs} ms)` : ''} on ${node} failed: rc ${o.rc}, op-status ${o.opStatus}${o.exitReason ? ` (${o.exitReason})` : ''}`,
        { resource: rsc, node, op: action },
      );
    }
    return failed;
  }

  private bumpFailCount(
    rec: NodeRecord,
    rsc: string,
    action: string,
    intervalMs: number,
    nowSec: string,
  ): void {
    const suffix = `${baseId(rsc)}#${action}_${intervalMs}`;
    const fatal =
      action === 'stop' ||
      (action === 'start' && (clusterProperty(this.cib, 'start-failure-is-fatal') ?? 'true') !== 'false');
    const cur = parseScore(rec.attrs.get(`fail-count-${suffix}`) ?? '0');
    const next = fatal ? INFINITY : Math.min(INFINITY, (cur.ok ? cur.score : 0) + 1);
    const count = next >= INFINITY ? 'INFINITY' : String(next);
    rec.attrs.set(`fail-count-${suffix}`, count);
    rec.attrs.set(`last-failure-${suffix}`, nowSec);
    this.statusChanges.push({ kind: 'attr', node: rec.name, name: `fail-count-${suffix}`, value: count });
    this.statusChanges.push({ kind: 'attr', node: rec.name, name: `last-failure-${suffix}`, value: nowSec });
  }

  /** The status id of `rsc`'s history: an anonymous clone instance `p:N` is recorded as `p`. */
  private historyId(rsc: string): string {
    const base = baseId(rsc);
    if (base === rsc) return rsc;
    const placed = findPlacedResource(this.cib, base);
    const clone = placed?.parents.find((x) => x.kind === 'clone');
    if (!clone || isTrue(metaValue(clone, 'globally-unique', this.cib))) return rsc;
    return base;
  }

  private lastRole(node: string, rsc: string): string | undefined {
    const mon = [...(this.nodes.get(node)?.history.get(this.historyId(rsc))?.values() ?? [])].find(
      (o) => o.operation === 'promote',
    );
    return mon ? 'Promoted' : undefined;
  }

  /** Hands this event's status changes to the shell, once, as the fewest records that say it. */
  private flushStatus(): void {
    const changes: StatusChange[] = [];
    for (const name of this.fullDirty) {
      const rec = this.nodes.get(name);
      if (rec) changes.push({ kind: 'node', node: name, state: toNodeState(rec) });
    }
    for (const c of this.statusChanges) if (!this.fullDirty.has(c.node)) changes.push(c);
    this.fullDirty.clear();
    this.statusChanges = [];
    if (changes.length > 0) this.effects.push({ type: 'status-changes', changes });
  }

  private statusList(): NodeState[] {
    return [...this.nodes.values()].map(toNodeState);
  }

  private schedulingCib(): Cib {
    return cibForScheduling(
      this.cib,
      this.statusList(),
      this.quorate,
      this.isDc ? this.nodes.get(this.cfg.self)?.id : undefined,
    );
  }

  private syncNodeRecords(): void {
    const configured = new Set(this.cib.configuration.nodes.map((n) => n.uname));
    for (const rec of [...this.nodes.values()]) {
      // A removed node whose entry is gone and that is known off is forgotten: nothing is placed
      // there and nothing of it is left to recover. One still lost keeps its record (and so its
      // fencing) whatever the configuration says.
      if (configured.has(rec.name) || !this.removedNodes.has(rec.name) || rec.condition !== 'down') continue;
      this.nodes.delete(rec.name);
      this.fullDirty.delete(rec.name);
      this.memberEpochs.delete(rec.name);
      this.ignoredFenced.delete(rec.name);
    }
    for (const n of this.cib.configuration.nodes) {
      if (!this.nodes.has(n.uname)) {
        const rec = newNodeRecord(n.uname, n.id);
        if (this.members.has(n.uname)) rec.condition = 'member';
        this.nodes.set(n.uname, rec);
        // A node the configuration just gained: its node_state (membership included) is
        // published whole, so a later DC adopting the status knows who was a member.
        this.fullDirty.add(n.uname);
      }
    }
  }

  /**
   * Members the configuration has no `<node>` entry for, with the entry each should get (id
   * from the membership, uname = the member's name). A member whose id another entry already
   * has is left out and logged (once while it lasts): the daemon config and the CIB disagree
   * about who that id is, and guessing could merge two nodes' histories.
   */
  private missingNodeEntries(): NodeEntry[] {
    const configured = this.cib.configuration.nodes;
    const names = new Set(configured.map(nodeName));
    const idHolder = new Map(configured.map((n) => [n.id, nodeName(n)]));
    const out: NodeEntry[] = [];
    const clashes: string[] = [];
    for (const name of this.members) {
      if (names.has(name) || this.removedNodes.has(name)) continue;
      const id = this.memberNodeIds.get(name) ?? name;
      const holder = idHolder.get(id);
      if (holder !== undefined) {
        clashes.push(`${name} has id ${id}, which the configuration gives to ${holder}`);
        continue;
      }
      idHolder.set(id, name);
      out.push({ id, uname: name });
    }
    out.sort((a, b) => (a.uname < b.uname ? -1 : a.uname > b.uname ? 1 : 0));
    clashes.sort();
    const said = clashes.join('; ');
    if (said !== this.nodeIdClashesLogged) {
      this.nodeIdClashesLogged = said;
      if (said !== '')
        this.log(
          'error',
          `not adding node entries: ${said}. Nothing is placed on such a member: make the node ids in the CIB's nodes section and the daemon config agree (crm node delete, or fix the config)`,
        );
    }
    return out;
  }

  /**
   * The DC gives every member a `<node>` entry, as Pacemaker's controller does when a node joins:
   * the scheduler places resources only on the configuration's nodes, so a CIB loaded without a
   * nodes section (most `crm configure` snippets), a fresh cluster and a node that just joined
   * would otherwise run nothing. Asked once per missing node; asked again only if the
   * configuration changed without them (a concurrent edit won) or `NODE_ENTRY_RETRY_MS` passed.
   * A node that left keeps its entry; only one removed from the cluster loses it
   * (`requestNodeRemovals`), and none is added for it. Scheduling waits meanwhile (see
   * `frozenReason`).
   */
  private requestNodeEntries(): void {
    const done = this.nodeEntriesComplete;
    if (done?.configuration === this.cib.configuration && done.members === this.members) return;
    const missing = this.missingNodeEntries();
    if (missing.length === 0) {
      this.nodeEntryRequest = undefined;
      this.nodeEntriesComplete = { configuration: this.cib.configuration, members: this.members };
      return;
    }
    const r = this.nodeEntryRequest;
    if (
      r !== undefined &&
      r.configuration === this.cib.configuration &&
      this.nowMs < r.atMs + NODE_ENTRY_RETRY_MS &&
      missing.every((n) => r.names.has(n.uname))
    )
      return;
    this.nodeEntryRequest = {
      names: new Set(missing.map((n) => n.uname)),
      configuration: this.cib.configuration,
      atMs: this.nowMs,
    };
    this.log(
      'info',
      `adding ${missing.map((n) => `${n.uname} (id ${n.id})`).join(', ')} to the configuration's nodes: ${missing.length === 1 ? 'a member' : 'members'} the CIB does not list yet${r !== undefined ? ' (asking again)' : ''}`,
    );
    this.effects.push({ type: 'add-nodes', nodes: missing });
  }

  /**
   * Pacemaker's `crm_node -R`: a node removed from the cluster loses its `<node>` entry (and its
   * `node_state` is cleared: the state machine has no command to delete one). Asked only once the
   * node is off (`down`: it left cleanly, was removed with nothing active, was fenced, or its
   * lease ran out): deleting the entry of a lost node would hide what it may still run from the
   * scheduler. Asked again like `requestNodeEntries`; scheduling does not wait for it, since an
   * entry of a node that is down places nothing there.
   */
  private requestNodeRemovals(): void {
    if (this.removedNodes.size === 0) {
      this.nodeRemovalRequest = undefined;
      return;
    }
    const gone = this.cib.configuration.nodes
      .map((n) => n.uname)
      .filter(
        (name) =>
          this.removedNodes.has(name) &&
          !this.members.has(name) &&
          (this.nodes.get(name)?.condition ?? 'down') === 'down',
      )
      .sort();
    if (gone.length === 0) {
      this.nodeRemovalRequest = undefined;
      return;
    }
    const r = this.nodeRemovalRequest;
    if (
      r !== undefined &&
      r.configuration === this.cib.configuration &&
      this.nowMs < r.atMs + NODE_ENTRY_RETRY_MS &&
      gone.every((n) => r.names.has(n))
    )
      return;
    this.nodeRemovalRequest = {
      names: new Set(gone),
      configuration: this.cib.configuration,
      atMs: this.nowMs,
    };
    this.log(
      'info',
      `deleting the node entr${gone.length === 1 ? 'y' : 'ies'} of ${gone.join(', ')}: removed from the cluster${r !== undefined ? ' (asking again)' : ''}`,
    );
    this.effects.push({ type: 'remove-nodes', nodes: gone });
  }

  // ---------------------------------------------------------------------------------------------
  // Time-driven rules

  /** Actions running on a node that left (or overdue ones) will never report: count them failed. */
  private failRunningOn(node: string | undefined, why: string): void {
    const t = this.transition;
    if (!t) return;
    for (const ra of t.actions) {
      if (ra.state !== 'running' || ra.action.task === 'fence') continue;
      if (
        node !== undefined
          ? ra.action.node !== node
          : (ra.deadlineMs ?? Number.POSITIVE_INFINITY) > this.nowMs
      )
        continue;
      ra.state = 'failed';
      t.failedAsync = true;
      this.log('warn', `${ra.action.rsc} ${ra.action.task} on ${ra.action.node} will not report: ${why}`);
      this.abort(why);
    }
  }

  /** Self-fencing mode: a lost node past its lease (seen from the quorate side) is off. */
  private expireLeases(): void {
    if (this.fencingMode() !== 'self' || !this.quorate) return;
    const wait = this.cfg.leaseMs + this.cfg.detectionSlackMs;
    for (const rec of this.nodes.values()) {
      if (rec.condition !== 'lost' || rec.lostAtMs === undefined || this.nowMs < rec.lostAtMs + wait)
        continue;
      rec.condition = 'down';
      rec.lostAtMs = undefined;
      clearNode(rec);
      this.fullDirty.add(rec.name);
      const how = `lease expired (${wait} ms since it was lost: ${rec.lostWhy ?? 'unknown'})`;
      this.log('warn', `${rec.name} is off: ${how}`, { node: rec.name });
      this.effects.push({ type: 'node-fenced', node: rec.name, how });
      this.invalidate(`${rec.name} past its lease`);
    }
  }

  /** failure-timeout: a failure older than the timeout is forgotten and the cluster rechecked. */
  private expireFailures(): void {
    for (const rec of this.nodes.values()) {
      for (const [k, v] of [...rec.attrs]) {
        const m = /^last-failure-(.+?)(#.+_\d+)?$/.exec(k);
        if (!m) continue;
        const timeout = failureTimeoutMs(this.cib, m[1]!);
        if (timeout <= 0 || (Number(v) || 0) * 1000 + timeout > this.nowMs) continue;
        rec.attrs.delete(k);
        rec.attrs.delete(`fail-count-${m[1]}${m[2] ?? ''}`);
        this.statusChanges.push({ kind: 'attr', node: rec.name, name: k, value: null });
        this.statusChanges.push({
          kind: 'attr',
          node: rec.name,
          name: `fail-count-${m[1]}${m[2] ?? ''}`,
          value: null,
        });
        this.log('info', `failure of ${m[1]} on ${rec.name} expired (failure-timeout ${timeout} ms)`, {
          resource: m[1],
          node: rec.name,
        });
        this.invalidate(`failure-timeout of ${m[1]}`);
      }
    }
  }

  /** Two-node rule: the survivor fences its lost peer before it continues alone. */
  private twoNodeFencing(): void {
    if (this.fencingMode() !== 'stonith') return;
    for (const target of this.fenceNeeded) {
      // Already confirmed off: quorum will hear of it from the shell.
      if (this.nodes.get(target)?.condition === 'down') continue;
      if ([...this.directFences.values()].includes(target)) continue;
      if (
        this.transition?.actions.some(
          (a) => a.action.task === 'fence' && a.action.node === target && a.state === 'running',
        )
      )
        continue;
      if ((this.fenceAttempts.get(target) ?? 0) >= MAX_FENCE_ATTEMPTS) continue;
      if ((this.fenceRetryAtMs.get(target) ?? 0) > this.nowMs) continue;
      const token = `fence:${target}:${++this.tokenSeq}`;
      this.directFences.set(token, target);
      this.effects.push({
        type: 'fence',
        token,
        target,
        action: this.stonithAction(),
        reason: 'two-node cluster: the survivor continues only after its peer is fenced',
        ...this.fenceDelayFor(target),
      });
    }
  }

  /**
   * The local safety rule, on every node: after losing quorum, stop (or demote) what runs here
   * unless no-quorum-policy says to keep it; past the lease with something still running, fence
   * yourself. In a two-node fence race this node keeps running: the fence device picks the winner.
   */
  private localSafety(): void {
    if (this.quorate) {
      this.quorumLostAtMs = undefined;
      this.localStopIssued = false;
      this.selfFenceRequested = false;
      return;
    }
    if (this.localRunning.size === 0) return;
    this.quorumLostAtMs ??= this.nowMs;
    const policy = (clusterProperty(this.cib, 'no-quorum-policy') ?? 'stop').toLowerCase();
    if (policy === 'ignore' || policy === 'freeze') return;
    if (this.fencingMode() === 'stonith' && this.fenceNeeded.length > 0) return;
    if (policy === 'suicide' || policy === 'fence') {
      this.requestSelfFence(`quorum lost and no-quorum-policy=${policy}`);
      return;
    }
    if (!this.localStopIssued) {
      this.localStopIssued = true;
      for (const r of [...this.localRunning.values()].sort((a, b) => (a.rsc < b.rsc ? 1 : -1))) {
        if (policy === 'demote' && r.role !== 'Promoted') continue;
        const action = policy === 'demote' ? 'demote' : 'stop';
        const op = execOpFor(this.cib, { id: -1, task: action, node: this.cfg.self, rsc: r.rsc });
        if (!op) continue;
        this.log(
          'warn',
          `${action === 'stop' ? 'stopping' : 'demoting'} ${r.rsc} here: this node lost quorum (lease ${this.cfg.leaseMs} ms)`,
          { resource: r.rsc },
        );
        this.effects.push({ type: 'exec', token: `local:${++this.tokenSeq}`, node: this.cfg.self, op });
      }
    }
    const stillRunning = [...this.localRunning.values()].filter(
      (r) => policy !== 'demote' || r.role === 'Promoted',
    );
    if (stillRunning.length > 0 && this.nowMs >= this.quorumLostAtMs + this.cfg.leaseMs) {
      this.requestSelfFence(
        `quorum lost ${this.nowMs - this.quorumLostAtMs} ms ago and ${stillRunning.map((r) => r.rsc).join(', ')} still running past the ${this.cfg.leaseMs} ms lease`,
      );
    }
  }

  private requestSelfFence(reason: string): void {
    if (this.selfFenceRequested) return;
    this.selfFenceRequested = true;
    this.log('error', `self-fencing: ${reason}`);
    this.effects.push({ type: 'self-fence', reason });
  }

  private trackLocal(rsc: string, action: string, intervalMs: number, o: OpOutcome): void {
    if (o.opStatus !== 0) {
      // A failed stop leaves it running; a failed start may have half-started it.
      if (action === 'start' || action === 'stop') this.localRunning.set(rsc, { rsc, role: 'Started' });
      return;
    }
    if ((action === 'start' && o.rc === RC_OK) || (action === 'monitor' && o.rc === RC_OK)) {
      const cur = this.localRunning.get(rsc);
      this.localRunning.set(rsc, { rsc, role: cur?.role ?? 'Started' });
    } else if (
      (action === 'promote' && o.rc === RC_OK) ||
      (action === 'monitor' && o.rc === RC_RUNNING_PROMOTED)
    ) {
      this.localRunning.set(rsc, { rsc, role: 'Promoted' });
    } else if (action === 'demote' && o.rc === RC_OK) {
      this.localRunning.set(rsc, { rsc, role: 'Started' });
    } else if (
      (action === 'stop' && (o.rc === RC_OK || o.rc === RC_NOT_RUNNING)) ||
      (action === 'monitor' && o.rc === RC_NOT_RUNNING)
    ) {
      this.localRunning.delete(rsc);
    } else if (action === 'start') {
      this.localRunning.set(rsc, { rsc, role: 'Started' });
    }
    void intervalMs;
  }

  // ---------------------------------------------------------------------------------------------
  // The transition graph

  /**
   * Why no-quorum-policy waits: this DC began acting while its quorum view said "no quorum" and
   * no quorum event has confirmed that since, within `quorumSettleMs`.
   */
  private quorumSettling(): string | undefined {
    const since = this.quorumUnconfirmedSinceMs;
    if (since === undefined || this.quorate) return undefined;
    const policy = (clusterProperty(this.cib, 'no-quorum-policy') ?? 'stop').toLowerCase();
    if (policy === 'ignore') return undefined;
    const settle = this.cfg.quorumSettleMs ?? this.cfg.detectionSlackMs;
    if (this.nowMs >= since + settle) return undefined;
    return `this DC began acting ${this.nowMs - since} ms ago with a quorum view (no quorum) older than its lease; waiting up to ${settle} ms for membership to confirm it before no-quorum-policy=${policy} applies`;
  }

  private frozenReason(): string | undefined {
    const settling = this.quorumSettling();
    if (settling !== undefined) return settling;
    if (this.nodeEntryRequest !== undefined)
      return `waiting for the node entries of ${[...this.nodeEntryRequest.names].join(', ')} (members the configuration does not list yet) to be committed`;
    const retrying = [...this.fenceRetryAtMs].filter(
      ([n, at]) => at > this.nowMs && (this.fenceAttempts.get(n) ?? 0) < MAX_FENCE_ATTEMPTS,
    );
    if (retrying.length > 0) return `fencing ${retrying.map(([n]) => n).join(', ')} failed; retrying shortly`;
    const unfenceRetrying = [...this.unfenceRetryAtMs].filter(
      ([n, at]) => at > this.nowMs && (this.unfenceAttempts.get(n) ?? 0) < MAX_FENCE_ATTEMPTS,
    );
    if (unfenceRetrying.length > 0)
      return `unfencing ${unfenceRetrying.map(([n]) => n).join(', ')} failed; retrying shortly`;
    const unfenced = this.fenceNeeded.filter((n) => this.nodes.get(n)?.condition !== 'down');
    if (this.fencingMode() === 'stonith' && unfenced.length > 0) {
      return `two-node rule: waiting until ${unfenced.join(', ')} is fenced`;
    }
    if (this.fencingMode() === 'self') {
      const waiting = [...this.nodes.values()].filter((r) => r.condition === 'lost');
      if (waiting.length > 0) {
        if (!this.quorate)
          return `self-fencing: ${waiting.map((r) => r.name).join(', ')} lost and this side has no quorum`;
        return `self-fencing: waiting for the lease of ${waiting.map((r) => r.name).join(', ')} to run out`;
      }
    }
    return undefined;
  }

  private invalidate(why: string): void {
    this.needSchedule = true;
    if (this.transition) this.abort(why);
  }

  private abort(why: string): void {
    const t = this.transition;
    if (!t || t.aborted !== undefined) return;
    t.aborted = why;
    this.needSchedule = true;
    this.log('info', `transition ${t.id} aborted: ${why}`);
  }

  /** Dispatches what can run, finishes a done graph, and computes the next one when needed. */
  private drive(): void {
    for (let round = 0; round < 2; round++) {
      if (this.transition) {
        if (this.transition.aborted === undefined) this.dispatchReady(this.transition);
        if (!this.finishIfDone(this.transition)) return;
      }
      if (!this.needSchedule) return;
      const frozen = this.frozenReason();
      if (frozen !== undefined) {
        this.log('debug', `not scheduling: ${frozen}`);
        return;
      }
      this.runScheduler();
    }
  }

  private finishIfDone(t: TransitionRun): boolean {
    if (t.actions.some((a) => a.state === 'running')) return false;
    const stuck = t.actions.filter((a) => a.state === 'pending').length;
    const failed = t.actions.filter((a) => a.state === 'failed').length;
    const done = t.actions.filter((a) => a.state === 'done').length;
    this.log(
      failed || stuck || t.aborted ? 'warn' : 'info',
      `transition ${t.id} ${t.aborted ? 'stopped' : 'complete'}: ${done} done, ${failed} failed, ${stuck} not run${t.aborted ? ` (aborted: ${t.aborted})` : ''}`,
    );
    if (t.failedAsync) this.needSchedule = true;
    this.transition = undefined;
    return true;
  }

  private runScheduler(): void {
    this.needSchedule = false;
    this.lastScheduleMs = this.nowMs;
    const cib = this.schedulingCib();
    let r: ReturnType<ScheduleFn>;
    try {
      r = this.scheduleFn(cib, this.nowMs);
    } catch (err) {
      // A scheduler bug must not take the DC down: the next DC would hit the same input and
      // the cluster would lose every DC in turn. Nothing changes; the error names the cause.
      this.log('error', `scheduler crashed (a bug; nothing was changed): ${(err as Error).stack ?? err}`);
      return;
    }
    if (!r.ok) {
      this.log('error', `scheduler refused the CIB: ${r.message} [${r.code}]`);
      return;
    }
    const actions = r.transition.actions;
    if (actions.length === 0) return;
    assert(actions.length <= MAX_TRANSITION_ACTIONS, `transition with ${actions.length} actions`);
    const byId: RunAction[] = [];
    for (const a of actions) byId[a.id] = { action: a, before: [], state: 'pending' };
    for (const o of r.transition.orderings as readonly Ordering[]) byId[o.after]?.before.push(o.before);
    const list = byId.filter((x) => x !== undefined);
    const t: TransitionRun = {
      id: ++this.transitionSeq,
      actions: list,
      byId: new Map(list.map((x) => [x.action.id, x])),
      aborted: undefined,
      failedAsync: false,
    };
    this.transition = t;
    this.log(
      'info',
      `transition ${t.id}: ${r.transition.summary.length ? r.transition.summary.map((s) => s.trim()).join('; ') : `${actions.length} actions (probes/monitors)`}`,
    );
    this.dispatchReady(t);
  }

  private dispatchReady(t: TransitionRun): void {
    const state = (id: number): ActionState | undefined => t.byId.get(id)?.state;
    let progressed = true;
    // Pseudo-actions complete at once, which may make others ready: loop until nothing moves.
    for (let pass = 0; progressed && pass <= t.actions.length; pass++) {
      progressed = false;
      for (const ra of t.actions) {
        if (ra.state !== 'pending' || !ra.before.every((b) => state(b) === 'done')) continue;
        if (this.promoteWaitsForFencing(ra.action)) continue;
        this.dispatch(t, ra);
        progressed = true;
      }
    }
  }

  /**
   * A promote of a clone waits while another instance of that clone may still be active on a lost
   * node that is not fenced yet: that instance may still be Promoted (a replicated volume's
   * Primary), and two Promoted instances are what a master-max=1 clone must never have. Pacemaker
   * gets this from orderings (the lost node's demote is implied by, so ordered after, its
   * fencing); this guard holds the promote until the node is fenced, when a new transition
   * (the fence result aborts this one) schedules it again.
   */
  private promoteWaitsForFencing(a: Action): boolean {
    if (a.task !== 'promote' || a.rsc === undefined) return false;
    const base = baseId(a.rsc);
    for (const rec of this.nodes.values()) {
      if (rec.name === a.node || rec.condition !== 'lost') continue;
      for (const [id, ops] of rec.history) {
        if (baseId(id) !== base) continue;
        const last = [...ops.values()].find((o) => o.interval === '0');
        const probedStopped = last?.operation === 'monitor' && last.rcCode === String(RC_NOT_RUNNING);
        if (last && last.operation !== 'stop' && !probedStopped) return true;
      }
    }
    return false;
  }

  private dispatch(t: TransitionRun, ra: RunAction): void {
    const a = ra.action;
    const token = `${t.id}:${a.id}`;
    if (a.task === 'fence') {
      if ((this.fenceAttempts.get(a.node) ?? 0) >= MAX_FENCE_ATTEMPTS) {
        ra.state = 'failed';
        this.log(
          'error',
          `not fencing ${a.node} again: ${MAX_FENCE_ATTEMPTS} attempts failed; fix the fence device and run cleanup`,
          { node: a.node },
        );
        return;
      }
      const rec = this.nodes.get(a.node);
      ra.state = 'running';
      this.effects.push({
        type: 'fence',
        token,
        target: a.node,
        action: this.stonithAction(),
        reason: rec?.lostWhy ?? 'the scheduler asked for it',
        ...this.fenceDelayFor(a.node),
      });
      return;
    }
    if (a.task === 'unfence') {
      if ((this.unfenceAttempts.get(a.node) ?? 0) >= MAX_FENCE_ATTEMPTS) {
        ra.state = 'failed';
        this.log(
          'error',
          `not unfencing ${a.node} again: ${MAX_FENCE_ATTEMPTS} attempts failed; fix the fence device and run cleanup`,
          { node: a.node },
        );
        return;
      }
      ra.state = 'running';
      this.unfenceTokens.set(token, a.node);
      this.effects.push({
        type: 'fence',
        token,
        target: a.node,
        action: 'on',
        reason: 'unfencing: a fence device provides unfencing and something that requires it runs there',
      });
      return;
    }
    if (a.task === 'shutdown') {
      ra.state = 'done';
      return;
    }
    const rec = this.nodes.get(a.node);
    if (rec?.condition !== 'member') {
      // Stops and demotes on a node known off are implied by its fencing (pseudo-actions).
      const implied = rec?.condition === 'down' && (a.task === 'stop' || a.task === 'demote');
      ra.state = implied ? 'done' : 'failed';
      if (!implied) this.log('warn', `cannot run ${a.rsc} ${a.task} on ${a.node}: it is not a member`);
      return;
    }
    const found = execOpFor(this.cib, a) ?? this.orphanOp(rec, a);
    // A promote, or a start (Heartbeat's drbddisk promotes in its start), learns which nodes
    // the cluster has fenced and that have not come back (like Pacemaker's notify variables):
    // halo:volume then drops a replication connection to such a peer at once instead of
    // checking it or waiting for its own ping timeout.
    const fenced = [...this.nodes.values()]
      .filter((n) => n.condition === 'down' && n.attrs.has(FENCED_EPOCH_ATTRIBUTE))
      .map((n) => n.name)
      .sort();
    const op =
      found && (a.task === 'promote' || a.task === 'start') && fenced.length > 0
        ? { ...found, meta: { ...found.meta, 'halo-fenced-nodes': fenced.join(' ') } }
        : found;
    if (!op) {
      ra.state = 'failed';
      this.log('error', `cannot run ${a.rsc} ${a.task}: the resource is not configured and has no history`);
      return;
    }
    ra.state = 'running';
    ra.deadlineMs = this.nowMs + op.timeoutMs + ACTION_REPORT_SLACK_MS;
    this.effects.push({ type: 'exec', token, node: a.node, op });
  }

  /** A stop of a resource no longer configured runs with what its history remembers. */
  private orphanOp(rec: NodeRecord, a: Action): ExecOp | undefined {
    const ident = a.rsc !== undefined ? rec.agents.get(a.rsc) : undefined;
    if (!ident || a.rsc === undefined || a.task !== 'stop') return undefined;
    return {
      rsc: a.rsc,
      agent: [ident.class, ident.provider, ident.type].filter(Boolean).join(':'),
      action: 'stop',
      intervalMs: 0,
      timeoutMs: 20_000,
      startDelayMs: 0,
      params: {},
      meta: {},
      expectedRc: RC_OK,
    };
  }

  private actionByToken(t: TransitionRun, token: string): RunAction | undefined {
    const m = /^(\d+):(\d+)$/.exec(token);
    if (!m || Number(m[1]) !== t.id) return undefined;
    return t.byId.get(Number(m[2]));
  }

  /**
   * How lost nodes are made safe. A cluster configured with stonith-enabled=false (as seeds 003
   * and 004 are) has no fence device to ask, so it falls back to self-fencing: survivors wait out
   * the lease rather than start a lost node's resources at once.
   */
  private fencingMode(): FencingMode {
    if (this.cfg.fencing === 'self') return 'self';
    const v = (clusterProperty(this.cib, 'stonith-enabled') ?? 'true').toLowerCase();
    return ['false', 'no', 'off', '0', 'n'].includes(v) ? 'self' : 'stonith';
  }

  /**
   * The waits a fence effect carries, as its fields: empty unless the fencing of `target` is to
   * wait. priority-fencing-delay (see priority_fencing.ts): only for a lost node (a failed stop
   * or on-fail=fence of a member never waits), so the transition's and the two-node rule's
   * fences of the same lost node get the same answer. halo-isolation-fencing-delay (see
   * isolation_fencing.ts): for any fencing while this node sees no carrier on its links. Both
   * apply together (they add up), each with its log line.
   */
  private fenceDelayFor(target: string): { delayMs?: number; delayReason?: string } {
    const d = priorityFencingDelay(this.cib, this.nodes.values(), target, this.priorityFencingDelayMs());
    if (d)
      this.log('info', `fencing ${target} waits ${d.delayMs} ms (priority-fencing-delay): ${d.detail}`, {
        node: target,
        delayMs: d.delayMs,
      });
    const iso = this.isolationDelay();
    if (iso)
      this.log(
        'warn',
        `fencing ${target} waits ${iso.delayMs} ms (${ISOLATION_FENCING_DELAY_PROPERTY}): no carrier on any cluster link: ${this.linkCarrier?.detail}; this node is likely the one cut off, so its peer should fence it first`,
        { target, delayMs: iso.delayMs },
      );
    const w = addWaits(d, iso);
    return w ? { delayMs: w.delayMs, delayReason: w.reason } : {};
  }

  /**
   * The isolation delay a fencing issued now must wait (see isolation_fencing.ts), or undefined
   * when this node sees carrier on a cluster link (or the delay is 0). Pure, for the shell's
   * fencing outside the core too (the daemon's two-node takeover fences before this node can
   * commit anything, so not through a fence effect); it logs nothing, the caller says why.
   */
  isolationDelay(): IsolationFencingDecision | undefined {
    const p = parseIsolationFencingDelay(this.cib);
    return isolationFencingDelay(this.linkCarrier, p.ok ? p.ms : DEFAULT_ISOLATION_FENCING_DELAY_MS);
  }

  /**
   * The wait of the daemon's two-node takeover fence of `target`, which bypasses the fence
   * effect (see isolationDelay): the isolation delay plus priority-fencing-delay, the latter
   * decided as the DC of this one-node partition would, from the replicated status: `target`
   * lost, this node's members online. Pure; it logs nothing (an invalid priority-fencing-delay
   * counts as 0 here and is reported by the DC path), the caller logs the reason.
   */
  takeoverFenceDelay(target: string): FenceWait | undefined {
    const p = parsePriorityFencingDelay(this.cib);
    const records = this.cib.configuration.nodes.map((n) => {
      const rec = newNodeRecord(n.uname, n.id);
      const st = this.cib.status.find((x) => x.id === n.id || x.uname === n.uname);
      if (st) adoptNodeState(rec, st);
      rec.condition = n.uname === target ? 'lost' : this.members.has(n.uname) ? 'member' : 'down';
      return rec;
    });
    return addWaits(priorityFencingDelay(this.cib, records, target, p.ok ? p.ms : 0), this.isolationDelay());
  }

  private onLinkCarrier(fact: LinkCarrierFact): void {
    const was = this.linkCarrier?.isolated ?? false;
    this.linkCarrier = fact;
    if (fact.isolated === was) return;
    const ms = this.isolationFencingDelayMs();
    const waits =
      ms > 0
        ? `so every fencing it issues waits ${ms} ms (${ISOLATION_FENCING_DELAY_PROPERTY}) while this lasts`
        : `but ${ISOLATION_FENCING_DELAY_PROPERTY} is 0, so its fencing does not wait`;
    if (fact.isolated)
      this.log(
        'warn',
        `no carrier on any cluster link: ${fact.detail}; this node is likely the one cut off, ${waits}`,
        { event: 'link-carrier', isolated: true },
      );
    else
      this.log(
        'info',
        `carrier back on a cluster link: ${fact.detail}; fencing from this node no longer waits`,
        {
          event: 'link-carrier',
          isolated: false,
        },
      );
  }

  /**
   * The halo-isolation-fencing-delay property in ms; an invalid value means the default: the
   * protection stays on, as it was before the value was set.
   */
  private isolationFencingDelayMs(): number {
    return this.delayProperty(
      ISOLATION_FENCING_DELAY_PROPERTY,
      parseIsolationFencingDelay(this.cib),
      DEFAULT_ISOLATION_FENCING_DELAY_MS,
      `the default ${DEFAULT_ISOLATION_FENCING_DELAY_MS} ms`,
    );
  }

  /**
   * The priority-fencing-delay property in ms; an invalid value is taken as 0, as Pacemaker
   * takes an invalid cluster option as its default: the fencing still happens, only without the
   * priority delay.
   */
  private priorityFencingDelayMs(): number {
    return this.delayProperty(
      'priority-fencing-delay',
      parsePriorityFencingDelay(this.cib),
      0,
      '0 (no priority delay)',
    );
  }

  /** A parsed delay property; an invalid one is logged as an error once per distinct value. */
  private delayProperty(
    name: string,
    p: { readonly ok: true; readonly ms: number } | { readonly ok: false; readonly reason: string },
    fallbackMs: number,
    fallbackText: string,
  ): number {
    if (p.ok) {
      this.badDelayLogged.delete(name);
      return p.ms;
    }
    if (p.reason !== this.badDelayLogged.get(name)) {
      this.badDelayLogged.set(name, p.reason);
      this.log('error', `cluster property ${name}: ${p.reason}; using ${fallbackText} meanwhile`);
    }
    return fallbackMs;
  }

  private stonithAction(): 'reboot' | 'off' {
    const v = clusterProperty(this.cib, 'stonith-action');
    return v === 'off' || v === 'poweroff' ? 'off' : 'reboot';
  }

  private log(level: LogLevel, msg: string, fields?: Readonly<Record<string, unknown>>): void {
    this.effects.push({ type: 'log', level, msg, ...(fields ? { fields } : {}) });
  }
}

/** A wait before a fencing and why. */
interface FenceWait {
  readonly delayMs: number;
  readonly reason: string;
}

/** Waits that apply to one fencing add up; their reasons are given together. */
function addWaits(...waits: (FenceWait | undefined)[]): FenceWait | undefined {
  const all = waits.filter((w): w is FenceWait => w !== undefined);
  if (all.length === 0) return undefined;
  return { delayMs: all.reduce((sum, w) => sum + w.delayMs, 0), reason: all.map((w) => w.reason).join('; ') };
}

function execOpExpectedRc(a: Action): number | undefined {
  if (a.task === 'monitor' && a.probe) return RC_NOT_RUNNING;
  if (a.task === 'monitor' && a.role === 'Promoted') return RC_RUNNING_PROMOTED;
  return RC_OK;
}

function defaultExpectedRc(action: string, intervalMs: number, role: string | undefined): number {
  if (action === 'monitor' && intervalMs === 0) return RC_NOT_RUNNING;
  if (action === 'monitor' && role === 'Promoted') return RC_RUNNING_PROMOTED;
  return RC_OK;
}

/** Whether a result is a failure, by the rules the scheduler's history replay uses. */
function isFailure(action: string, intervalMs: number, o: OpOutcome, expected: number): boolean {
  if (o.opStatus !== 0) return true;
  if (o.rc === expected) return false;
  if (action === 'monitor' && intervalMs === 0)
    return !(o.rc === RC_OK || o.rc === RC_NOT_RUNNING || o.rc === RC_RUNNING_PROMOTED);
  if (action === 'stop' && o.rc === RC_NOT_RUNNING) return false;
  return true;
}

/** What identifies the configuration (not the status): a change here aborts the transition. */
function configKey(cib: Cib): string {
  const attrs = cib.attrs.filter(([k]) => k !== 'num_updates' && k !== 'have-quorum' && k !== 'dc-uuid');
  return JSON.stringify([attrs, cib.configuration]);
}
