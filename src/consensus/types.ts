/**
 * The data types of halo's Raft: what the core reads, what it asks the caller to persist, and
 * what travels on the wire. Everything here is plain JSON-serializable data.
 */
import type { LogIndex, NodeId, Term } from '../lib/brand.ts';

/** A normal entry carries an application command; a config entry carries a `ConfChange`. */
export type EntryType = 'normal' | 'conf';

export interface Entry {
  readonly term: Term;
  readonly index: LogIndex;
  readonly type: EntryType;
  /**
   * The command as text (for the CIB: a JSON-encoded `CibCommand`; for `conf`: a JSON-encoded
   * `ConfChange`). An empty string is the no-op a new leader appends to commit its term.
   */
  readonly data: string;
}

/**
 * Single-server membership change (Raft dissertation §4.1): one node at a time, effective on
 * append. `fencedRemoveNode` is only ever written by `RaftNode.forceSoloAfterFence` (the
 * two-node rule): it removes a peer that a fence device confirmed powered off, and `fencedBy`
 * records that evidence in the log.
 */
/** Longest fence evidence text a `fencedRemoveNode` entry may carry (a device and agent name). */
export const MAX_FENCE_EVIDENCE = 200;
/** Longest member description an `addNode` entry may carry. */
export const MAX_MEMBER_INFO = 2048;

export type ConfChange =
  | {
      readonly type: 'addNode' | 'removeNode';
      readonly node: NodeId;
      /**
       * What the application needs to reach the node (the daemon: its id, link and stream
       * addresses, as JSON), replicated with the change so every node learns a new member's
       * address from the log. Opaque to Raft; at most MAX_MEMBER_INFO characters.
       */
      readonly member?: string;
    }
  | { readonly type: 'fencedRemoveNode'; readonly node: NodeId; readonly fencedBy: string };

/** The voters of a configuration, sorted. */
export interface ConfState {
  readonly voters: readonly NodeId[];
}

/** What must survive a crash besides the log (Raft's "persistent state on all servers"). */
export interface HardState {
  readonly term: Term;
  /** Whom this node voted for in `term`, or null. */
  readonly vote: NodeId | null;
  readonly commit: LogIndex;
}

export interface SnapshotMeta {
  /** The last log index the snapshot covers, and its term. */
  readonly index: LogIndex;
  readonly term: Term;
  /** The configuration as of `index`. */
  readonly conf: ConfState;
}

/** A state-machine snapshot: opaque text produced by the application (e.g. a serialized CIB). */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: string;
}

export const MESSAGE_TYPES = [
  'app',
  'appResp',
  'vote',
  'voteResp',
  'preVote',
  'preVoteResp',
  'heartbeat',
  'heartbeatResp',
  'snap',
  'timeoutNow',
] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

/**
 * One Raft message. A flat record like etcd's `raftpb.Message`, so one codec validates every
 * kind; fields a kind does not use are zero/empty.
 *
 * - `app`: append `entries` after (`index`, `logTerm`); leader's `commit`.
 * - `appResp`: `index` is the follower's last index on success; on `reject`, `index` is the
 *   rejected probe index and `rejectHint` the follower's last index.
 * - `vote`/`preVote`: candidate's last (`index`, `logTerm`). Pre-votes carry the term the
 *   candidate would campaign for and never change the receiver's state.
 * - `heartbeat`: leader's `commit` (capped at the follower's match).
 * - `snap`: `snapshot` to install.
 * - `ctx`: on leader → follower messages, the leader's tick when it sent them; responses echo
 *   it. The leader lease is computed from the echoes.
 */
export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
  readonly logTerm: Term;
  readonly index: LogIndex;
  readonly entries: readonly Entry[];
  readonly commit: LogIndex;
  readonly reject: boolean;
  readonly rejectHint: LogIndex;
  readonly ctx: number;
  readonly snapshot: Snapshot | null;
}

export type RaftRole = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/**
 * The work a `RaftNode` asks its caller to do, as etcd-raft's `Ready`. The caller MUST, in this
 * order:
 *   1. save `snapshot` (a snapshot received from the leader: replace the log with it) and
 *      `compaction` (a local snapshot: save it and drop log entries up to its index),
 *   2. append `entries` (an entry at index i replaces any stored entry at index ≥ i),
 *   3. save `hardState` if present,
 *   4. fsync — everything above must be on stable storage BEFORE step 5 (persist before send),
 *   5. send `messages`,
 *   6. restore the state machine from `snapshot` if present, then apply `committedEntries` in
 *      order,
 *   7. call `advance(ready)` before the next `tick`, `step`, `propose` or `ready`.
 */
export interface Ready {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  readonly compaction: Snapshot | null;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  /** Volatile state, for status displays and the DC; need not be persisted. */
  readonly softState: SoftState;
}

export interface SoftState {
  readonly leader: NodeId | null;
  readonly role: RaftRole;
}

/** What a node recovers from its store at start (see `RaftStore.load`). */
export interface PersistedState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  /** The entries after the snapshot, contiguous. */
  readonly entries: readonly Entry[];
}

/** The status of a node, as `halo status` and the golden tests print it. */
export interface RaftStatus {
  readonly id: NodeId;
  readonly role: RaftRole;
  readonly term: Term;
  readonly vote: NodeId | null;
  readonly leader: NodeId | null;
  readonly commit: LogIndex;
  readonly applied: LogIndex;
  readonly firstIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly voters: readonly NodeId[];
  /** On a leader: the last tick (of this node's clock) at which its lease still holds; else -1. */
  readonly leaseValidUntilTick: number;
  readonly tick: number;
}
