/**
 * Raft as a pure state machine, in the style of etcd-raft: input arrives only through `tick()`,
 * `step(msg)`, `propose()` and `proposeConfChange()`; output leaves only through `ready()`,
 * which the caller persists, sends and applies before calling `advance()`. No I/O, no clock,
 * no randomness except the injected `Rng`.
 *
 * Features: pre-vote (a partitioned node cannot disrupt a healthy cluster when it returns),
 * check-quorum (a leader that has not heard from a quorum within an election timeout steps
 * down), a leader lease (`leaseValidUntilTick`: while it holds, no other node can be elected),
 * log compaction and InstallSnapshot, single-server membership changes effective on append.
 */
import { assert, assertNever } from '../lib/assert.ts';
import { LogIndex, type NodeId, Term } from '../lib/brand.ts';
import type { Rng } from '../lib/ports.ts';
import { RaftLog } from './raft_log.ts';
import {
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  MAX_FENCE_EVIDENCE,
  MAX_MEMBER_INFO,
  type Message,
  type MessageType,
  type PersistedState,
  type RaftRole,
  type RaftStatus,
  type Ready,
  type Snapshot,
  type SnapshotMeta,
} from './types.ts';

/** Defaults; each can be overridden in `RaftConfig`. */
export const RAFT_DEFAULTS = {
  /** Most entries in one append message: bounds message size and the follower's work per step. */
  maxEntriesPerMsg: 64,
  /** Append messages in flight per follower in replicate state before the leader waits for acks. */
  maxInflightMsgs: 32,
  /** Committed entries handed out per Ready, so one Ready never holds an unbounded batch. */
  maxCommittedPerReady: 256,
  /** Proposals refused once this many entries are uncommitted: back-pressure when followers lag. */
  maxUncommittedEntries: 4096,
  /**
   * Ticks subtracted from the lease. Ticks of different nodes are not aligned: the leader's
   * tick count at send time may be up to one tick old, and the follower's first tick after
   * receipt may come at once, so one follower tick can be "short" — two ticks cover both. Clock
   * rate differences between hosts need more margin on top (configure it in the daemon).
   */
  leaseMarginTicks: 2,
} as const;

export interface RaftConfig {
  readonly id: NodeId;
  /** A follower campaigns after a random timeout in [electionTicks, 2·electionTicks). */
  readonly electionTicks: number;
  /** The leader sends heartbeats every `heartbeatTicks`; must be < electionTicks. */
  readonly heartbeatTicks: number;
  readonly rng: Rng;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  /**
   * A witness votes but should rarely lead: its election timeout is one electionTicks longer,
   * so a data node normally wins. It still leads when no data node can (a data node that lags
   * needs the witness's log), and hands leadership to the first caught-up voter.
   */
  readonly witness?: boolean;
  readonly leaseMarginTicks?: number;
  /**
   * After a (re)start, refuse votes for one election timeout, honouring the lease of a leader
   * this node may have acknowledged before it went down. Default true; tests may turn it off.
   */
  readonly leaseHoldAtStart?: boolean;
  readonly maxEntriesPerMsg?: number;
  readonly maxInflightMsgs?: number;
  readonly maxCommittedPerReady?: number;
  readonly maxUncommittedEntries?: number;
}

export type ProposeResult =
  | { readonly ok: true; readonly index: LogIndex; readonly term: Term }
  | {
      readonly ok: false;
      readonly code:
        | 'not-leader'
        | 'leadership-transfer'
        | 'too-many-uncommitted'
        | 'conf-change-pending'
        | 'conf-change-invalid'
        | 'not-synced';
      readonly leader: NodeId | null;
      readonly message: string;
    };

type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** The leader's view of one follower (etcd's `Progress`). */
interface Progress {
  match: number;
  next: number;
  state: ProgressState;
  /** In probe state: an append is outstanding; wait for its answer or the next heartbeat answer. */
  probeSent: boolean;
  /** In replicate state: last index of each append in flight. */
  inflight: number[];
  pendingSnapshot: number;
  snapshotSentTick: number;
  /** Heard from since the last check-quorum round. */
  recentActive: boolean;
  /** Highest `ctx` (leader tick at send) this follower has acknowledged in this term. */
  ackTick: number;
}

/** A brand-new cluster's state: a snapshot at index 1 holding the initial voters and an empty state machine. */
export function bootstrapState(voters: readonly NodeId[]): PersistedState {
  assert(voters.length > 0, 'bootstrapState: need at least one voter');
  const snapshot: Snapshot = {
    meta: { index: LogIndex(1), term: Term(1), conf: { voters: [...new Set(voters)].sort() } },
    data: '',
  };
  return { hardState: { term: Term(1), vote: null, commit: LogIndex(1) }, snapshot, entries: [] };
}

export function emptyState(): PersistedState {
  return { hardState: { term: Term(0), vote: null, commit: LogIndex(0) }, snapshot: null, entries: [] };
}

export function encodeConfChange(cc: ConfChange): string {
  if (cc.type === 'fencedRemoveNode')
    return JSON.stringify({ type: cc.type, node: cc.node, fencedBy: cc.fencedBy });
  return JSON.stringify({
    type: cc.type,
    node: cc.node,
    ...(cc.member === undefined ? {} : { member: cc.member }),
  });
}

export function decodeConfChange(data: string): ConfChange {
  const v = JSON.parse(data) as ConfChange;
  assert(
    (v.type === 'addNode' ||
      v.type === 'removeNode' ||
      (v.type === 'fencedRemoveNode' && typeof v.fencedBy === 'string')) &&
      typeof v.node === 'string' &&
      (v.type === 'fencedRemoveNode' || v.member === undefined || typeof v.member === 'string'),
    `bad conf change entry: ${data}`,
  );
  return v;
}

function applyConfChange(conf: readonly NodeId[], cc: ConfChange): NodeId[] {
  const s = new Set(conf);
  if (cc.type === 'addNode') s.add(cc.node);
  else s.delete(cc.node);
  return [...s].sort();
}

/** What confirmed a peer powered off, for `forceSoloAfterFence` (recorded in the log). */
export interface FenceEvidence {
  /** E.g. "fence_ipmilan on n2-ipmi, requested by n1". 1..MAX_FENCE_EVIDENCE characters. */
  readonly fencedBy: string;
}

/** Why `forceSoloAfterFence` would be refused now (null from `checkForceSolo` when it would be accepted). */
export interface ForceSoloRefusal {
  readonly code: 'conf-change-invalid' | 'conf-change-pending' | 'not-synced';
  readonly message: string;
}

export class RaftNode {
  readonly id: NodeId;
  private readonly cfg: Required<Omit<RaftConfig, 'id' | 'rng'>>;
  private readonly rng: Rng;

  private term: Term;
  private vote: NodeId | null;
  private commit: LogIndex;
  private applied: LogIndex;
  private role: RaftRole = 'follower';
  private leader: NodeId | null = null;
  private readonly log: RaftLog;
  private snapshot: Snapshot | null;
  private voters: NodeId[] = [];

  private tickNow = 0;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** This node refuses to vote for others before this tick: it heard from a leader recently (or just booted). */
  private leaseHoldUntilTick: number;
  private votes = new Map<NodeId, boolean>();
  private progress = new Map<NodeId, Progress>();
  private pendingConfIndex = 0;
  /** Leadership transfer in progress: the target, and when to give up. */
  private transferee: NodeId | null = null;
  private transferDeadlineTick = 0;
  private leaderSinceTick = 0;
  /**
   * Two-node rule: since this process started, this node has seen its log confirmed current —
   * it led and committed an entry of its term, or the leader of its term told it that an entry
   * of that term is committed and held here. Volatile on purpose: a node that restarts (for
   * instance because its peer fenced it and then forced itself solo) must first hear from the
   * current leader before it may force itself solo (`forceSoloAfterFence`).
   */
  private syncedSinceStart = false;

  private msgs: Message[] = [];
  private stableIndex: number;
  private persistedHard: HardState;
  private pendingSnapshot: Snapshot | null = null;
  private pendingCompaction: Snapshot | null = null;
  /** Set between `ready()` and `advance()`, to catch callers that step in between. */
  private outstandingReady: Ready | null = null;

  constructor(config: RaftConfig, state: PersistedState) {
    assert(
      config.heartbeatTicks > 0 && config.heartbeatTicks < config.electionTicks,
      'RaftNode: need 0 < heartbeatTicks < electionTicks',
    );
    assert(Number.isSafeInteger(config.electionTicks), 'RaftNode: electionTicks must be an integer');
    const margin = config.leaseMarginTicks ?? RAFT_DEFAULTS.leaseMarginTicks;
    assert(
      Number.isSafeInteger(margin) && margin >= 0 && margin < config.electionTicks,
      `RaftNode: leaseMarginTicks must be in [0, electionTicks), got ${margin}`,
    );
    this.id = config.id;
    this.rng = config.rng;
    this.cfg = {
      electionTicks: config.electionTicks,
      heartbeatTicks: config.heartbeatTicks,
      preVote: config.preVote ?? true,
      checkQuorum: config.checkQuorum ?? true,
      witness: config.witness ?? false,
      leaseMarginTicks: config.leaseMarginTicks ?? RAFT_DEFAULTS.leaseMarginTicks,
      leaseHoldAtStart: config.leaseHoldAtStart ?? true,
      maxEntriesPerMsg: config.maxEntriesPerMsg ?? RAFT_DEFAULTS.maxEntriesPerMsg,
      maxInflightMsgs: config.maxInflightMsgs ?? RAFT_DEFAULTS.maxInflightMsgs,
      maxCommittedPerReady: config.maxCommittedPerReady ?? RAFT_DEFAULTS.maxCommittedPerReady,
      maxUncommittedEntries: config.maxUncommittedEntries ?? RAFT_DEFAULTS.maxUncommittedEntries,
    };
    const snap = state.snapshot;
    this.snapshot = snap;
    this.log = new RaftLog(snap?.meta.index ?? LogIndex(0), snap?.meta.term ?? Term(0), state.entries);
    this.term = state.hardState.term;
    this.vote = state.hardState.vote;
    const commit = Math.min(Math.max(state.hardState.commit, snap?.meta.index ?? 0), this.log.lastIndex());
    this.commit = LogIndex(commit);
    this.applied = LogIndex(snap?.meta.index ?? 0);
    this.stableIndex = this.log.lastIndex();
    this.persistedHard = { term: this.term, vote: this.vote, commit: this.commit };
    this.recomputeConf();
    // After a restart this node may have acknowledged a leader just before it went down; it
    // cannot remember, so it honours that leader's lease for one election timeout.
    this.leaseHoldUntilTick = this.cfg.leaseHoldAtStart ? this.cfg.electionTicks : 0;
    this.becomeFollower(this.term, null);
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  /** One unit of logical time. The shell calls it every tick interval (and catches up after a pause). */
  tick(): void {
    this.assertNoReady();
    this.tickNow++;
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  /** Starts an election now (as if the election timeout fired), with pre-vote if enabled. */
  campaign(): void {
    this.assertNoReady();
    if (this.role !== 'leader' && this.promotable())
      this.startCampaign(this.cfg.preVote ? 'preVote' : 'vote');
  }

  /**
   * Hands leadership to `to` (e.g. from a witness to a data node): once `to` has every entry,
   * it is told to campaign at once. The lease ends now, since `to` may win before it would
   * have expired.
   */
  transferLeadership(to: NodeId): boolean {
    this.assertNoReady();
    const pr = this.progress.get(to);
    if (this.role !== 'leader' || !pr || !this.voters.includes(to)) return false;
    this.transferee = to;
    this.transferDeadlineTick = this.tickNow + this.cfg.electionTicks;
    if (pr.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', to });
    else this.sendAppend(to, pr, true);
    return true;
  }

  /** Proposes an application command. Only a leader accepts; others say who leads. */
  propose(data: string): ProposeResult {
    this.assertNoReady();
    if (this.role !== 'leader') return this.notLeader();
    if (this.transferee !== null) {
      return {
        ok: false,
        code: 'leadership-transfer',
        leader: this.id,
        message: `node ${this.id} is handing leadership to ${this.transferee}; retry on the new leader`,
      };
    }
    if (this.log.lastIndex() - this.commit >= this.cfg.maxUncommittedEntries) {
      return {
        ok: false,
        code: 'too-many-uncommitted',
        leader: this.id,
        message: `${this.log.lastIndex() - this.commit} entries await commit (limit ${this.cfg.maxUncommittedEntries}); retry when followers catch up`,
      };
    }
    const e = this.appendEntry('normal', data);
    return { ok: true, index: e.index, term: e.term };
  }

  /** Proposes adding or removing one voter. Refused while a previous change is uncommitted. */
  proposeConfChange(cc: ConfChange): ProposeResult {
    this.assertNoReady();
    if (this.role !== 'leader') return this.notLeader();
    if (this.pendingConfIndex > this.commit) {
      return {
        ok: false,
        code: 'conf-change-pending',
        leader: this.id,
        message: `a membership change at index ${this.pendingConfIndex} is not committed yet; one change at a time`,
      };
    }
    if (cc.type !== 'fencedRemoveNode' && cc.member !== undefined && cc.member.length > MAX_MEMBER_INFO) {
      return {
        ok: false,
        code: 'conf-change-invalid',
        leader: this.id,
        message: `member description of ${cc.node} is longer than ${MAX_MEMBER_INFO} characters`,
      };
    }
    if (cc.type === 'fencedRemoveNode') {
      return {
        ok: false,
        code: 'conf-change-invalid',
        leader: this.id,
        message: `a fenced removal of ${cc.node} is made only by forceSoloAfterFence, after its fence succeeded`,
      };
    }
    const isVoter = this.voters.includes(cc.node);
    if (
      (cc.type === 'addNode' && isVoter) ||
      (cc.type === 'removeNode' && (!isVoter || this.voters.length === 1))
    ) {
      return {
        ok: false,
        code: 'conf-change-invalid',
        leader: this.id,
        message: `cannot ${cc.type} ${cc.node}: voters are ${this.voters.join(',')}`,
      };
    }
    const e = this.appendEntry('conf', encodeConfChange(cc));
    this.pendingConfIndex = e.index;
    return { ok: true, index: e.index, term: e.term };
  }

  /**
   * The two-node rule (docs/ARCHITECTURE.md): in a configuration of exactly two voters {self,
   * peer}, after a fence device confirmed `peer` powered off, make {self} the configuration and
   * lead alone. It appends, in a new term, a `fencedRemoveNode` conf entry recording `evidence`,
   * becomes leader of {self} at once and commits it alone (the Ready carries the entry and hard
   * state: persist them before acting as DC, as always). Refused — nothing changes — unless the
   * voters are exactly {self, peer}, the last membership change is committed, and this node's
   * log was confirmed current since it started (see `checkForceSolo`).
   *
   * Why this is safe (A = this node, B = peer):
   * - Every entry committed under {A,B} is on A: committing needs both. Changes away from a
   *   two-voter configuration also need both (see `maybeCommit`), so {A,B} cannot have become
   *   something else behind A's back — except by B forcing solo, which needs A fenced, i.e. A
   *   restarted, and a restarted node may not force before a leader confirmed its log.
   * - B is confirmed off, so it neither leads nor votes now. A's new entry has a term no other
   *   node's log can hold (A voted for itself in it; B can only lead with A's vote), so log
   *   matching holds, and A's last term is now above every term in B's log.
   * - When B returns with its old log and config {A,B} (any term, stale uncommitted entries),
   *   it cannot win: it needs A's vote, and A refuses — as leader it ignores candidates
   *   (check-quorum), and as follower B's log is less up to date than A's. Pre-vote keeps B's
   *   term from climbing. A re-adds B with `proposeConfChange({type:'addNode'})`; that commits
   *   only once B holds A's log (quorum of {A,B}), which truncates B's stale uncommitted entries.
   */
  forceSoloAfterFence(peer: NodeId, evidence: FenceEvidence): ProposeResult {
    this.assertNoReady();
    const refused = this.checkForceSolo(peer);
    if (refused) return { ok: false, leader: this.leader, ...refused };
    if (evidence.fencedBy.length === 0 || evidence.fencedBy.length > MAX_FENCE_EVIDENCE) {
      return {
        ok: false,
        code: 'conf-change-invalid',
        leader: this.leader,
        message: `fence evidence must be 1..${MAX_FENCE_EVIDENCE} characters, got ${evidence.fencedBy.length}`,
      };
    }
    if (this.role === 'leader') this.becomeFollower(this.term, null);
    this.becomeCandidate(); // a fresh term, voted for ourselves
    const cc: ConfChange = { type: 'fencedRemoveNode', node: peer, fencedBy: evidence.fencedBy };
    const e: Entry = {
      term: this.term,
      index: LogIndex(this.log.lastIndex() + 1),
      type: 'conf',
      data: encodeConfChange(cc),
    };
    this.log.append([e]);
    this.recomputeConf();
    assert(this.voters.length === 1 && this.voters[0] === this.id, 'forceSoloAfterFence: not solo');
    this.becomeLeader(); // appends the no-op; quorum of {self} commits both at once
    return { ok: true, index: e.index, term: e.term };
  }

  /**
   * Null when `forceSoloAfterFence(peer, …)` would be accepted now; otherwise why not. A daemon
   * asks this BEFORE fencing, so that it never fences a peer it could not take over from (a
   * node just restarted must hear from the current leader first — halo's wait_for_all).
   */
  checkForceSolo(peer: NodeId): ForceSoloRefusal | null {
    const pair = (vs: readonly NodeId[]) =>
      peer !== this.id && vs.length === 2 && vs.includes(this.id) && vs.includes(peer);
    const synced = this.syncedSinceStart && this.pendingSnapshot === null;
    // An ordinary removal of `peer` from {self, peer} that `peer` never acknowledged (it was
    // already dead): the configuration is {self} on append, but the removal cannot commit
    // without `peer`. Fencing `peer` and forcing solo is the way out, by the same argument.
    const removalPending =
      this.voters.length === 1 &&
      this.voters[0] === this.id &&
      this.commit < this.lastConfIndexBefore &&
      pair(this.lastConfOldVoters);
    if (removalPending) return synced ? null : this.notSynced();
    if (!pair(this.voters)) {
      return {
        code: 'conf-change-invalid',
        message: `forcing solo needs exactly two voters, ${this.id} and ${peer}; voters are ${this.voters.join(',') || 'none'}`,
      };
    }
    // A pending change is fine only if it is this node re-adding `peer` to {self}: every
    // commit under either configuration needed this node, so its log still holds them all (the
    // re-added peer died again before it acknowledged).
    const readding = this.lastConfOldVoters.length === 1 && this.lastConfOldVoters[0] === this.id;
    if (this.commit < this.lastConfIndexBefore && !readding) {
      return {
        code: 'conf-change-pending',
        message: `the membership change at index ${this.lastConfIndexBefore} is not committed (commit ${this.commit})`,
      };
    }
    return synced ? null : this.notSynced();
  }

  private notSynced(): ForceSoloRefusal {
    return {
      code: 'not-synced',
      message: `${this.id} has not heard from a leader of the current configuration since it started; its log may be stale`,
    };
  }

  /** Feeds one received message. Messages from unknown or stale senders are ignored. */
  step(m: Message): void {
    this.assertNoReady();
    if (m.to !== this.id || m.from === this.id) return;
    if (m.term > this.term) {
      if (!this.stepHigherTerm(m)) return;
    } else if (m.term < this.term) {
      this.stepLowerTerm(m);
      return;
    }
    if (m.type === 'vote' || m.type === 'preVote') {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'follower':
        this.stepFollower(m);
        break;
      case 'preCandidate':
      case 'candidate':
        this.stepCandidate(m);
        break;
      case 'leader':
        this.stepLeader(m);
        break;
      default:
        assertNever(this.role, 'role');
    }
  }

  /**
   * Takes a snapshot of the application state as of `index` (≤ applied) and drops the log up to
   * it. The next Ready carries it as `compaction` for the store.
   */
  compact(index: LogIndex, data: string): void {
    this.assertNoReady();
    assert(index <= this.applied, `compact: index ${index} is beyond applied ${this.applied}`);
    if (index <= this.log.snapshotIndex()) return;
    const meta: SnapshotMeta = { index, term: this.log.term(index)!, conf: { voters: this.confAt(index) } };
    this.log.compact(index);
    this.snapshot = { meta, data };
    this.pendingCompaction = this.snapshot;
  }

  // -------------------------------------------------------------------------------------------
  // Outputs

  hasReady(): boolean {
    return (
      this.msgs.length > 0 ||
      this.pendingSnapshot !== null ||
      this.pendingCompaction !== null ||
      this.log.lastIndex() > this.stableIndex ||
      this.commit > this.applied ||
      !sameHardState(this.hardState(), this.persistedHard)
    );
  }

  /** The work to do now; see `Ready` for the order. Call `advance` with it when done. */
  ready(): Ready {
    this.assertNoReady();
    const hs = this.hardState();
    const firstUnstable = Math.max(this.stableIndex, this.log.snapshotIndex()) + 1;
    const applyFrom = Math.max(this.applied, this.pendingSnapshot?.meta.index ?? 0) + 1;
    const rd: Ready = {
      hardState: sameHardState(hs, this.persistedHard) ? null : hs,
      entries: this.log.slice(firstUnstable, this.log.lastIndex()),
      snapshot: this.pendingSnapshot,
      compaction: this.pendingCompaction,
      committedEntries: this.log.slice(
        applyFrom,
        Math.min(this.commit, applyFrom + this.cfg.maxCommittedPerReady - 1),
      ),
      messages: this.msgs,
      softState: { leader: this.leader, role: this.role },
    };
    this.msgs = [];
    this.outstandingReady = rd;
    return rd;
  }

  /** Marks `rd` as persisted, sent and applied. */
  advance(rd: Ready): void {
    assert(this.outstandingReady === rd, 'advance: not the Ready returned by the last ready()');
    this.outstandingReady = null;
    if (rd.hardState) this.persistedHard = rd.hardState;
    if (rd.snapshot) {
      this.applied = LogIndex(Math.max(this.applied, rd.snapshot.meta.index));
      this.stableIndex = Math.max(this.stableIndex, rd.snapshot.meta.index);
      this.pendingSnapshot = null;
    }
    if (rd.compaction) this.pendingCompaction = null;
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry) this.stableIndex = Math.max(this.stableIndex, lastEntry.index);
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastApplied) this.applied = lastApplied.index;
  }

  // -------------------------------------------------------------------------------------------
  // Queries

  status(): RaftStatus {
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.commit,
      applied: this.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      voters: [...this.voters],
      leaseValidUntilTick: this.leaseValidUntilTick(),
      tick: this.tickNow,
    };
  }

  get currentTerm(): Term {
    return this.term;
  }
  get currentRole(): RaftRole {
    return this.role;
  }
  get currentLeader(): NodeId | null {
    return this.leader;
  }
  get currentTick(): number {
    return this.tickNow;
  }
  get conf(): ConfState {
    return { voters: [...this.voters] };
  }

  /**
   * On a leader: the last tick of this node's clock at which no other node can have become
   * leader, computed from the send ticks a quorum has acknowledged; -1 when it holds no lease.
   * The DC acts on its leadership (e.g. fencing, starting resources) only while
   * `currentTick <= leaseValidUntilTick()`.
   */
  leaseValidUntilTick(): number {
    if (this.role !== 'leader' || !this.cfg.checkQuorum || this.transferee !== null) return -1;
    const acks = this.voters.map((v) =>
      v === this.id ? this.tickNow : (this.progress.get(v)?.ackTick ?? -1),
    );
    acks.sort((a, b) => b - a);
    const q = acks[quorum(this.voters.length) - 1] ?? -1;
    if (q < 0) return -1;
    return q + this.cfg.electionTicks - this.cfg.leaseMarginTicks;
  }

  /** Entries in [lo, hi] still in the in-memory log (for tests and debugging). */
  entries(lo: number, hi: number): Entry[] {
    return this.log.slice(lo, hi);
  }

  // -------------------------------------------------------------------------------------------
  // Role transitions

  private becomeFollower(term: Term, leader: NodeId | null): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.role = 'follower';
    this.leader = leader;
    this.transferee = null;
    this.resetTimers();
    this.progress.clear();
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become pre-candidate');
    this.role = 'preCandidate';
    this.leader = null;
    this.votes = new Map();
    this.resetTimers();
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become candidate');
    this.term = Term(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
    this.leader = null;
    this.votes = new Map();
    this.resetTimers();
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', 'only a candidate becomes leader');
    this.role = 'leader';
    this.leaderSinceTick = this.tickNow;
    this.leader = this.id;
    this.transferee = null;
    this.resetTimers();
    this.progress.clear();
    for (const v of this.replicationTargets()) this.progress.set(v, this.newProgress());
    // Commit an entry of this term before any membership change (the single-server bug fix).
    this.appendEntry('normal', '');
    this.pendingConfIndex = this.log.lastIndex();
  }

  private newProgress(): Progress {
    return {
      match: 0,
      next: this.log.lastIndex() + 1,
      state: 'probe',
      probeSent: false,
      inflight: [],
      pendingSnapshot: 0,
      snapshotSentTick: 0,
      recentActive: true,
      ackTick: -1,
    };
  }

  private resetTimers(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    const e = this.cfg.electionTicks;
    this.randomizedElectionTimeout = e + this.rng.int(e) + (this.cfg.witness ? e : 0);
  }

  // -------------------------------------------------------------------------------------------
  // Ticks and elections

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      if (this.promotable()) this.startCampaign(this.cfg.preVote ? 'preVote' : 'vote');
      else this.resetTimers();
    }
  }

  private tickLeader(): void {
    if (this.transferee !== null && this.tickNow >= this.transferDeadlineTick) {
      // The transfer did not finish. Step down rather than resume: a delayed timeoutNow could
      // still make the target campaign past our lease, so this term's lease is forfeit.
      this.becomeFollower(this.term, null);
      return;
    }
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (
      this.cfg.checkQuorum &&
      this.tickNow - this.leaderSinceTick > this.cfg.electionTicks &&
      this.leaseValidUntilTick() + this.cfg.leaseMarginTicks < this.tickNow
    ) {
      // No quorum has acknowledged anything sent in the last election timeout: followers may
      // vote for someone else now, so stop acting as leader. (The lease, which the DC acts
      // on, already ended leaseMarginTicks earlier; stepping down only here keeps one slow
      // acknowledgement from deposing a healthy leader.)
      this.becomeFollower(this.term, null);
      return;
    }
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, null);
          return;
        }
        for (const pr of this.progress.values()) pr.recentActive = false;
      }
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
      if (this.cfg.witness) this.handOffFromWitness();
    }
  }

  /**
   * A witness leads only when no data node could (its election timeout is longer); as soon as
   * a voter has every entry, it hands leadership to it so that the DC runs where resources can.
   */
  private handOffFromWitness(): void {
    if (this.transferee !== null || this.commit < this.log.lastIndex()) return;
    for (const [v, pr] of this.progress) {
      if (pr.match === this.log.lastIndex() && pr.recentActive && this.voters.includes(v)) {
        this.transferLeadership(v);
        return;
      }
    }
  }

  private promotable(): boolean {
    return this.voters.includes(this.id) && this.pendingSnapshot === null;
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const v of this.voters) if (v === this.id || this.progress.get(v)?.recentActive) active++;
    return active >= quorum(this.voters.length);
  }

  /** `transfer`: asked by the leader (timeoutNow), so voters may ignore its lease, which it gave up. */
  private startCampaign(kind: 'preVote' | 'vote', transfer = false): void {
    let voteTerm: number;
    if (kind === 'preVote') {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    this.votes.set(this.id, true);
    if (this.tallyAndAct()) return;
    for (const v of this.voters) {
      if (v === this.id) continue;
      this.send({
        type: kind,
        to: v,
        term: Term(voteTerm),
        index: this.log.lastIndex(),
        logTerm: this.log.lastTerm(),
        ctx: transfer ? CTX_TRANSFER : 0,
      });
    }
  }

  /** Counts votes; wins or loses the election when decided. Returns true if the role changed. */
  private tallyAndAct(): boolean {
    let granted = 0;
    let rejected = 0;
    for (const v of this.voters) {
      const r = this.votes.get(v);
      if (r === true) granted++;
      else if (r === false) rejected++;
    }
    const q = quorum(this.voters.length);
    if (granted >= q) {
      if (this.role === 'preCandidate') this.startCampaign('vote');
      else this.becomeLeader();
      return true;
    }
    if (this.voters.length - rejected < q) {
      this.becomeFollower(this.term, null);
      return true;
    }
    return false;
  }

  private inLease(): boolean {
    if (!this.cfg.checkQuorum) return false;
    if (this.role === 'leader') return true;
    return this.tickNow < this.leaseHoldUntilTick;
  }

  /** A message with a higher term. Returns whether to go on processing it. */
  private stepHigherTerm(m: Message): boolean {
    if (m.type === 'vote' || m.type === 'preVote') {
      // Check-quorum: while we hear from a leader, ignore candidates (they would break its lease).
      if (this.inLease() && m.ctx !== CTX_TRANSFER) return false;
      if (m.type === 'preVote') return true; // a pre-vote never changes our term
      this.becomeFollower(m.term, null);
      return true;
    }
    if (m.type === 'preVoteResp' && !m.reject) return true; // granted at the term we would campaign for
    const fromLeader = m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap';
    this.becomeFollower(m.term, fromLeader ? m.from : null);
    return true;
  }

  private stepLowerTerm(m: Message): void {
    if (m.type === 'app' || m.type === 'heartbeat') {
      // A stale leader (e.g. back from a partition): tell it the term so that it steps down.
      this.send({ type: 'appResp', to: m.from, ctx: m.ctx });
    } else if (m.type === 'preVote') {
      this.send({ type: 'preVoteResp', to: m.from, reject: true });
    }
  }

  private handleVoteRequest(m: Message): void {
    const respType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.leader === null) ||
      (m.type === 'preVote' && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm) && (!this.inLease() || m.ctx === CTX_TRANSFER)) {
      this.send({ type: respType, to: m.from, term: m.term });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, reject: true });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Per-role step functions

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'app':
      case 'heartbeat':
      case 'snap':
        this.heardFromLeader(m.from);
        if (m.type === 'app') this.handleAppend(m);
        else if (m.type === 'heartbeat') this.handleHeartbeat(m);
        else this.handleSnapshot(m);
        break;
      case 'timeoutNow':
        // Leadership transfer: the leader asked us to campaign now, skipping pre-vote.
        if (this.promotable()) this.startCampaign('vote', true);
        break;
      default:
        break; // stale responses from an earlier role
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'app':
      case 'heartbeat':
      case 'snap':
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        break;
      case 'voteResp':
      case 'preVoteResp':
        if ((m.type === 'voteResp') !== (this.role === 'candidate')) return;
        if (!this.votes.has(m.from)) this.votes.set(m.from, !m.reject);
        this.tallyAndAct();
        break;
      default:
        break;
    }
  }

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case 'appResp':
        pr.recentActive = true;
        pr.ackTick = Math.max(pr.ackTick, m.ctx);
        this.handleAppendResponse(m, pr);
        break;
      case 'heartbeatResp':
        pr.recentActive = true;
        pr.ackTick = Math.max(pr.ackTick, m.ctx);
        this.handleHeartbeatResponse(m.from, pr);
        break;
      default:
        break;
    }
  }

  private heardFromLeader(from: NodeId): void {
    this.leader = from;
    this.electionElapsed = 0;
    this.leaseHoldUntilTick = this.tickNow + this.cfg.electionTicks;
  }

  // -------------------------------------------------------------------------------------------
  // Follower side of replication

  private handleAppend(m: Message): void {
    if (m.index < this.commit) {
      this.send({ type: 'appResp', to: m.from, index: this.commit, ctx: m.ctx });
      return;
    }
    if (!this.log.matchTerm(m.index, m.logTerm)) {
      this.send({
        type: 'appResp',
        to: m.from,
        index: m.index,
        reject: true,
        rejectHint: LogIndex(Math.min(m.index, this.log.lastIndex())),
        ctx: m.ctx,
      });
      return;
    }
    const lastNew = m.index + m.entries.length;
    const first = this.log.append(m.entries);
    if (first !== null) {
      assert(first > this.commit, `follower ${this.id} would truncate committed entry ${first}`);
      this.stableIndex = Math.min(this.stableIndex, first - 1);
      if (m.entries.some((e) => e.type === 'conf') || first <= this.lastConfIndexBefore) this.recomputeConf();
    }
    this.commitTo(Math.min(m.commit, lastNew));
    this.noteSynced();
    this.send({ type: 'appResp', to: m.from, index: LogIndex(lastNew), ctx: m.ctx });
  }

  private handleHeartbeat(m: Message): void {
    this.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.noteSynced();
    this.send({ type: 'heartbeatResp', to: m.from, ctx: m.ctx });
  }

  /**
   * A follower that holds a committed entry of the current leader's term holds that leader's
   * log up to it, including every membership change made before this term. (A commit index
   * recovered from disk counts too: a node forcing solo always moves to a new term.)
   */
  private noteSynced(): void {
    if (this.leader !== null && this.log.term(this.commit) === this.term) this.syncedSinceStart = true;
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (!s) return;
    const { index, term } = s.meta;
    if (index <= this.commit) {
      this.send({ type: 'appResp', to: m.from, index: this.commit, ctx: m.ctx });
      return;
    }
    if (this.log.matchTerm(index, term)) {
      // We already hold the snapshot's entries: just learn that they are committed.
      this.commitTo(index);
    } else {
      this.log.restore(index, term);
      this.snapshot = s;
      this.pendingSnapshot = s;
      this.commit = index;
      this.stableIndex = index;
      this.recomputeConf();
    }
    this.send({ type: 'appResp', to: m.from, index, ctx: m.ctx });
  }

  private commitTo(index: number): void {
    if (index > this.commit) this.commit = LogIndex(index);
  }

  // -------------------------------------------------------------------------------------------
  // Leader side of replication

  private appendEntry(type: Entry['type'], data: string): Entry {
    const e: Entry = { term: this.term, index: LogIndex(this.log.lastIndex() + 1), type, data };
    this.log.append([e]);
    if (type === 'conf') this.recomputeConf();
    this.maybeCommit();
    this.bcastAppend();
    return e;
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    if (m.reject) {
      if (pr.state === 'replicate' && m.index > pr.match) {
        pr.state = 'probe';
        pr.inflight = [];
        pr.next = Math.max(pr.match + 1, Math.min(m.index, m.rejectHint + 1));
        pr.probeSent = false;
        this.sendAppend(m.from, pr, true);
      } else if (pr.state === 'probe' && m.index === pr.next - 1) {
        pr.next = Math.max(pr.match + 1, Math.min(m.index, m.rejectHint + 1));
        pr.probeSent = false;
        this.sendAppend(m.from, pr, true);
      }
      return;
    }
    const oldPaused = this.isPaused(pr);
    if (m.index > pr.match) {
      pr.match = m.index;
      pr.next = Math.max(pr.next, m.index + 1);
    }
    pr.inflight = pr.inflight.filter((i) => i > m.index);
    if (pr.state === 'probe' || (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot)) {
      pr.state = 'replicate';
      pr.next = pr.match + 1;
      pr.inflight = [];
      pr.probeSent = false;
    }
    if (m.from === this.transferee && pr.match === this.log.lastIndex())
      this.send({ type: 'timeoutNow', to: m.from });
    if (this.maybeCommit()) {
      this.bcastAppend(true);
      this.maybeStepDownRemoved();
    } else if (oldPaused || pr.next <= this.log.lastIndex()) {
      this.sendAppend(m.from, pr, false);
    }
  }

  private handleHeartbeatResponse(to: NodeId, pr: Progress): void {
    pr.probeSent = false;
    if (pr.state === 'snapshot') {
      // The snapshot may have been lost; retry after an election timeout.
      if (this.tickNow - pr.snapshotSentTick < this.cfg.electionTicks) return;
      pr.state = 'probe';
      pr.next = pr.match + 1;
    }
    if (pr.match < this.log.lastIndex()) {
      // An append may have been lost: fall back to probing from what we know it has.
      if (pr.state === 'replicate') {
        pr.state = 'probe';
        pr.inflight = [];
        pr.next = pr.match + 1;
      }
      this.sendAppend(to, pr, true);
    }
  }

  private isPaused(pr: Progress): boolean {
    switch (pr.state) {
      case 'probe':
        return pr.probeSent;
      case 'replicate':
        return pr.inflight.length >= this.cfg.maxInflightMsgs;
      case 'snapshot':
        return true;
      default:
        return assertNever(pr.state, 'progress state');
    }
  }

  private sendAppend(to: NodeId, pr: Progress, allowEmpty: boolean): void {
    if (this.isPaused(pr)) return;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      const snap = this.snapshot;
      assert(snap !== null && prevIndex < snap.meta.index, `leader lacks entry ${prevIndex} and a snapshot`);
      pr.state = 'snapshot';
      pr.pendingSnapshot = snap.meta.index;
      pr.snapshotSentTick = this.tickNow;
      this.send({ type: 'snap', to, snapshot: snap, ctx: this.tickNow });
      return;
    }
    const ents = this.log.slice(pr.next, pr.next + this.cfg.maxEntriesPerMsg - 1);
    if (ents.length === 0 && !allowEmpty) return;
    this.send({
      type: 'app',
      to,
      index: LogIndex(prevIndex),
      logTerm: prevTerm,
      entries: ents,
      commit: this.commit,
      ctx: this.tickNow,
    });
    if (pr.state === 'probe') {
      pr.probeSent = true;
    } else if (ents.length > 0) {
      const last = ents[ents.length - 1]!.index;
      pr.next = last + 1;
      pr.inflight.push(last);
    }
  }

  /** `allowEmpty`: also send to followers that have every entry (to tell them the new commit index). */
  private bcastAppend(allowEmpty = false): void {
    for (const [to, pr] of this.progress) this.sendAppend(to, pr, allowEmpty);
  }

  private bcastHeartbeat(): void {
    for (const [to, pr] of this.progress) {
      this.send({
        type: 'heartbeat',
        to,
        commit: LogIndex(Math.min(pr.match, this.commit)),
        ctx: this.tickNow,
      });
    }
  }

  private maybeCommit(): boolean {
    // A leader that is removing itself is not in `voters`, so it does not count itself (§4.2.2).
    const matches = this.voters.map((v) =>
      v === this.id ? this.log.lastIndex() : (this.progress.get(v)?.match ?? 0),
    );
    matches.sort((a, b) => b - a);
    let q = matches[quorum(this.voters.length) - 1] ?? 0;
    if (this.twoVoterGuardIndex > this.commit) {
      // A change away from a two-voter configuration {A,B} (and everything before it) commits
      // only when BOTH hold it. Otherwise A could, say, remove B or add C and commit alone or
      // with C, while B — not knowing — still sees {A,B} as committed and, after fencing A,
      // forces itself solo without those entries. With this rule the only way out of {A,B}
      // without both is forceSoloAfterFence, whose entry is exempt.
      for (const v of this.twoVoterGuardVoters)
        q = Math.min(q, v === this.id ? this.log.lastIndex() : (this.progress.get(v)?.match ?? 0));
    }
    if (q > this.commit && this.log.term(q) === this.term) {
      this.commit = LogIndex(q);
      this.syncedSinceStart = true;
      if (this.twoVoterGuardIndex !== 0 && this.twoVoterGuardIndex <= this.commit) this.pruneProgress();
      return true;
    }
    return false;
  }

  /** A leader that committed its own removal steps down (§4.2.2). */
  private maybeStepDownRemoved(): void {
    if (!this.voters.includes(this.id) && this.commit >= this.pendingConfIndex) {
      // Hand over to the most up-to-date voter at once instead of leaving the cluster without
      // a leader until the followers' lease hold lapses.
      let best: NodeId | null = null;
      for (const [v, pr] of this.progress)
        if (this.voters.includes(v) && (best === null || pr.match > this.progress.get(best)!.match)) best = v;
      if (best !== null && this.progress.get(best)!.match === this.log.lastIndex())
        this.send({ type: 'timeoutNow', to: best });
      this.becomeFollower(this.term, null);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Configuration

  /** Index of the last conf entry in the log (0 if none after the snapshot). */
  private lastConfIndexBefore = 0;
  /**
   * The last conf entry, if it changes a two-voter configuration by normal means (not a fenced
   * removal): its index and the old voters, both of whom must hold it before it commits.
   */
  private twoVoterGuardIndex = 0;
  private twoVoterGuardVoters: NodeId[] = [];
  /** The voters before the last conf entry in the log (the snapshot's when there is none). */
  private lastConfOldVoters: NodeId[] = [];

  /** Followers the leader replicates to: the voters, plus an old voter a guarded change still waits for. */
  private replicationTargets(): NodeId[] {
    const t = new Set(this.voters);
    if (this.twoVoterGuardIndex > this.commit) for (const v of this.twoVoterGuardVoters) t.add(v);
    t.delete(this.id);
    return [...t];
  }

  /** On a leader: add progress for new targets, drop it for nodes no longer replicated to. */
  private pruneProgress(): void {
    if (this.role !== 'leader') return;
    const targets = this.replicationTargets();
    for (const v of targets) {
      if (this.progress.has(v)) continue;
      this.progress.set(v, this.newProgress());
      // A voter just added has not had the chance to acknowledge anything: give it one
      // election timeout before check-quorum deposes us (e.g. re-adding a fenced peer to a
      // solo leader). The lease still counts only real acknowledgements, so it holds no longer.
      this.leaderSinceTick = this.tickNow;
    }
    for (const v of [...this.progress.keys()]) if (!targets.includes(v)) this.progress.delete(v);
  }

  /** Voters = the snapshot's configuration changed by every conf entry in the log (effective on append). */
  private recomputeConf(): void {
    const before = this.voters;
    let voters: NodeId[] = [...(this.snapshot?.meta.conf.voters ?? [])];
    this.lastConfIndexBefore = 0;
    this.twoVoterGuardIndex = 0;
    this.twoVoterGuardVoters = [];
    this.lastConfOldVoters = voters;
    for (const e of this.log.slice(this.log.firstIndex(), this.log.lastIndex())) {
      if (e.type !== 'conf') continue;
      const cc = decodeConfChange(e.data);
      const guarded = voters.length === 2 && cc.type !== 'fencedRemoveNode';
      this.twoVoterGuardIndex = guarded ? e.index : 0;
      this.twoVoterGuardVoters = guarded ? voters : [];
      this.lastConfOldVoters = voters;
      voters = applyConfChange(voters, cc);
      this.lastConfIndexBefore = e.index;
    }
    this.voters = voters;
    this.pruneProgress();
    if (before.join() !== voters.join() && this.role !== 'leader' && !voters.includes(this.id)) {
      // Removed (or not yet added): stay a follower and wait; never campaign.
      if (this.role !== 'follower') this.becomeFollower(this.term, this.leader);
    }
  }

  private confAt(index: number): NodeId[] {
    let voters: NodeId[] = [...(this.snapshot?.meta.conf.voters ?? [])];
    for (const e of this.log.slice(this.log.firstIndex(), index)) {
      if (e.type === 'conf') voters = applyConfChange(voters, decodeConfChange(e.data));
    }
    return voters;
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  private send(p: Partial<Message> & { type: MessageType; to: NodeId }): void {
    this.msgs.push({
      from: this.id,
      term: this.term,
      logTerm: Term(0),
      index: LogIndex(0),
      entries: [],
      commit: LogIndex(0),
      reject: false,
      rejectHint: LogIndex(0),
      ctx: 0,
      snapshot: null,
      ...p,
    });
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.commit };
  }

  private notLeader(): ProposeResult {
    return {
      ok: false,
      code: 'not-leader',
      leader: this.leader,
      message: `node ${this.id} is not the leader${this.leader ? `; the leader is ${this.leader}` : '; no leader is known'}`,
    };
  }

  private assertNoReady(): void {
    assert(this.outstandingReady === null, 'RaftNode: call advance(ready) before stepping again');
  }
}

/** `ctx` of a vote request sent on the leader's instruction (leadership transfer). */
const CTX_TRANSFER = 1;

export function quorum(n: number): number {
  return Math.floor(n / 2) + 1;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
