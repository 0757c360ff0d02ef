import type { Cib, NodeState, OpHistory, ResourceRef } from '../cib/model.ts';
import type { LogLevel } from '../lib/ports.ts';
import type { ScheduleResult } from '../scheduler/schedule.ts';

/**
 * The controller's contract with its shell: events in, effects out. The core never waits, never
 * reads a clock and never touches the network: each `handle(event, nowMs)` call returns the
 * effects the shell must carry out, in order. The shell reports how each one ended with another
 * event (an `exec` with an `op-result` carrying the same `token`, a `fence` with a
 * `fence-result`).
 */

/** How a lost node is known to be harmless before its resources start elsewhere. */
export type FencingMode =
  /** A fence device (stonith agent or `halo:lab-fence`) must confirm the node is off. */
  | 'stonith'
  /**
   * Self-fencing: a node that loses quorum stops its own resources within `leaseMs` (or fences
   * itself), so the quorate side waits `leaseMs + detectionSlackMs` after losing a node.
   */
  | 'self';

export interface ControllerConfig {
  /** This node's name (`uname`). */
  readonly self: string;
  readonly fencing: FencingMode;
  /** How long a node that lost quorum has to stop its resources before it must fence itself. */
  readonly leaseMs: number;
  /**
   * How much later than the survivors the lost node may notice the loss (its own deadtime and
   * clock-rate slack). Survivors wait `leaseMs + detectionSlackMs` in self-fencing mode.
   */
  readonly detectionSlackMs: number;
  /** Re-run the scheduler at least this often while idle (Pacemaker's cluster-recheck-interval). */
  readonly recheckIntervalMs: number;
  /**
   * A DC that starts acting (gains its lease) while its quorum view says "no quorum" waits this
   * long for a fresh quorum event before it applies no-quorum-policy: the Raft lease says a
   * majority just acknowledged it, so the view is likely stale. Default: `detectionSlackMs`.
   */
  readonly quorumSettleMs?: number;
}

/** The scheduler, injected so tests pass the real one and the core stays free of its imports. */
export type ScheduleFn = (cib: Cib, nowMs: number) => ScheduleResult;

/** What an agent run produced, as the executor reports it. */
export interface OpOutcome {
  readonly rc: number;
  /** Pacemaker's op-status: 0 done, 1 cancelled, 2 timeout, 3 not supported, 4 error, 7 not installed. */
  readonly opStatus: number;
  readonly execTimeMs: number;
  readonly queueTimeMs?: number;
  readonly exitReason?: string;
  /** md5 of the instance parameters, for restart-on-change (`op-digest`). */
  readonly opDigest?: string;
  /** Node attributes the agent asks to set (halo:ping's `pingd`). */
  readonly attributes?: Readonly<Record<string, string>>;
}

export type ControllerEvent =
  /** Time passed: lease deadlines, failure-timeout expiry and recheck are evaluated. */
  | { readonly type: 'tick' }
  /** The replicated CIB changed (committed). While DC the status section is the controller's own. */
  | { readonly type: 'cib'; readonly cib: Cib }
  /** This node became (or stopped being) the DC, i.e. the Raft leader. */
  | { readonly type: 'dc'; readonly isDc: boolean }
  /**
   * The DC's Raft leader lease holds while `nowMs < untilMs` (a quorum acknowledged this leader
   * recently enough that no other node can have been elected). The DC schedules, dispatches and
   * fences only while it holds; the shell renews it as Raft reports the lease valid. Without a
   * renewal the lease runs out by itself, so a DC whose shell stalls (a paused process, a
   * partition it has not noticed yet) stops acting on time.
   */
  | { readonly type: 'lease'; readonly untilMs: number }
  /**
   * Node names that are members right now (this node included). `epochs`: each member's boot
   * epoch as its heartbeats say; a node fenced at epoch E counts as a member again only once it
   * shows a newer one (a heartbeat sent before the fence and read after it says nothing).
   * `quorum`: the quorum view computed from this same membership, applied in the same step so the
   * DC never schedules from new members and an old quorum (or the reverse).
   */
  | {
      readonly type: 'membership';
      readonly members: readonly string[];
      readonly why?: string;
      readonly epochs?: Readonly<Record<string, number>>;
      /**
       * Each member's cluster node id (the daemon config's `id`, Corosync's nodeid), as a string:
       * the id of the `<node>` entry the DC adds for a member the configuration does not list.
       * A member missing here gets its name as id.
       */
      readonly nodeIds?: Readonly<Record<string, string>>;
      /**
       * Nodes removed from the cluster (`halo cluster leave`, committed in Raft) that have not
       * joined again: the whole list each time it is given (absent: unchanged). The DC deletes
       * their `<node>` entries once they are known off, never adds one back, and does not fence
       * one that left with nothing active (see README.md, "Node entries").
       */
      readonly removed?: readonly string[];
      readonly quorum?: {
        readonly quorate: boolean;
        readonly fenceNeeded: readonly string[];
        readonly reason?: string;
      };
    }
  /**
   * Whether this node sees carrier on its own cluster links (src/daemon/link_carrier.ts). While
   * `isolated` (no carrier on any link whose interface is known), every fencing this node issues
   * waits `halo-isolation-fencing-delay` first (see isolation_fencing.ts): it is most likely the
   * one cut off, and the healthy peer should win the race. Fed whenever it changes.
   */
  | { readonly type: 'link-carrier'; readonly isolated: boolean; readonly detail: string }
  /** The quorum state; `fenceNeeded` lists peers the two-node rule says must be fenced first. */
  | {
      readonly type: 'quorum';
      readonly quorate: boolean;
      readonly fenceNeeded: readonly string[];
      readonly reason?: string;
    }
  /** An operation finished. `token` is the exec effect's; absent for later runs of a recurring monitor. */
  | {
      readonly type: 'op-result';
      readonly node: string;
      readonly token?: string;
      readonly rsc: string;
      readonly action: string;
      readonly intervalMs: number;
      readonly outcome: OpOutcome;
    }
  | {
      readonly type: 'fence-result';
      readonly token: string;
      readonly target: string;
      readonly ok: boolean;
      readonly reason: string;
    }
  /** A node attribute changed (attrd): standby, pingd, promotion scores; `value` undefined deletes. */
  | {
      readonly type: 'node-attribute';
      readonly node: string;
      readonly name: string;
      readonly value: string | undefined;
    }
  /** `halo resource cleanup RSC [--node N]`: forget failures and history so it is probed again. */
  | { readonly type: 'cleanup'; readonly rsc: string; readonly node?: string };

/** One agent operation for a node's executor. */
export interface ExecOp {
  readonly rsc: string;
  /** `class:provider:type`, `class:type`, or a built-in (`halo:vip`). */
  readonly agent: string;
  readonly action: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly startDelayMs: number;
  readonly params: Readonly<Record<string, string>>;
  readonly meta: Readonly<Record<string, string>>;
  /** The rc that means success (7 for a probe, 8 for a Promoted monitor, else 0). */
  readonly expectedRc: number;
}

export type ControllerEffect =
  | { readonly type: 'exec'; readonly token: string; readonly node: string; readonly op: ExecOp }
  | {
      readonly type: 'fence';
      readonly token: string;
      readonly target: string;
      /** `on`: unfencing (fence_scsi and the like let the node at the shared storage again). */
      readonly action: 'reboot' | 'off' | 'on';
      readonly reason: string;
      /**
       * How long the fencer waits before the first device (and its pcmk_delay): Pacemaker's
       * priority-fencing-delay, set only for a lost node running the highest-priority resources
       * while this partition lacks a majority (see priority_fencing.ts), plus
       * halo-isolation-fencing-delay while this node sees no carrier on any cluster link (see
       * isolation_fencing.ts). The core keeps no clock: the shell waits, abortably, and reports
       * the result after the fence as usual.
       */
      readonly delayMs?: number;
      /** Why the delay applies, for the fencer's log line. Set whenever `delayMs` is. */
      readonly delayReason?: string;
    }
  /** A fence or lease expiry confirmed the node off: the shell feeds it to quorum (two-node rule). */
  | { readonly type: 'node-fenced'; readonly node: string; readonly how: string }
  /**
   * Members the configuration has no `<node>` entry for (a CIB loaded without `nodes`, a fresh
   * cluster, a node that just joined): the shell adds `<node id uname/>` for each to the
   * replicated configuration, keeping every entry it has (Pacemaker's controller does the same
   * for every node that joins). The DC asks again if the configuration changes without them or
   * `NODE_ENTRY_RETRY_MS` passes, so the shell must skip entries that exist by then.
   */
  | { readonly type: 'add-nodes'; readonly nodes: readonly NodeEntry[] }
  /**
   * Nodes removed from the cluster (the membership's `removed`) that are known off: the shell
   * deletes the `<node>` entries with these unames from the replicated configuration (compare-
   * and-set; entries already gone are skipped). The DC asks again if the configuration changes
   * with them still there or `NODE_ENTRY_RETRY_MS` passes. Their `node_state` has been cleared
   * (a status change before this one); the scheduler ignores a `node_state` no entry names.
   */
  | { readonly type: 'remove-nodes'; readonly nodes: readonly string[] }
  /** The status section changed: the shell proposes these changes to the replicated CIB, in order. */
  | { readonly type: 'status-changes'; readonly changes: readonly StatusChange[] }
  /** This node could not stop its resources within its lease after losing quorum. */
  | { readonly type: 'self-fence'; readonly reason: string }
  | {
      readonly type: 'log';
      readonly level: LogLevel;
      readonly msg: string;
      readonly fields?: Readonly<Record<string, unknown>>;
    };

/** A `<node>` entry of the configuration as the DC adds it for a member. */
export interface NodeEntry {
  readonly id: string;
  readonly uname: string;
}

/**
 * One change to the status section, small enough to replicate per operation result. `node`
 * replaces a node's whole `node_state` (membership changes, DC takeover, fencing, cleanup: all
 * rare); `op` and `attr` match the replicated CIB's `record-op-result` and transient
 * `set-node-attribute` commands. `applyStatusChanges` (status.ts) is the reference semantics.
 */
export type StatusChange =
  | { readonly kind: 'node'; readonly node: string; readonly state: NodeState }
  | {
      readonly kind: 'op';
      readonly node: string;
      readonly resource: ResourceRef;
      readonly op: OpHistory;
    }
  | { readonly kind: 'op-removed'; readonly node: string; readonly rsc: string; readonly opId: string }
  | { readonly kind: 'attr'; readonly node: string; readonly name: string; readonly value: string | null };

/**
 * The transient node attribute a node sets (through the DC) when it wants to leave cleanly, as
 * Pacemaker's controller does on shutdown: the scheduler then runs nothing there and moves what
 * runs there elsewhere. Its value is the request time (seconds since the epoch).
 */
export const SHUTDOWN_ATTRIBUTE = 'shutdown';
/**
 * The transient attribute the DC sets on a node it fenced: the node's boot epoch at the fence.
 * Until membership shows that node with a newer epoch it is not a member (whatever stale
 * heartbeats say), so nothing is placed on it; a new DC reads it from the replicated status.
 */
export const FENCED_EPOCH_ATTRIBUTE = 'halo-fenced-epoch';
/**
 * Pacemaker's transient node attribute saying when a node was last unfenced (seconds; missing
 * or "0": never, so the scheduler unfences it before anything that requires unfencing starts).
 */
export const UNFENCED_ATTRIBUTE = '#node-unfenced';
/**
 * How long the DC waits for node entries it asked for before it asks again (the proposal may have
 * been lost with a leader change). Scheduling waits meanwhile: a schedule without a member's
 * entry would place nothing there, or stop what runs there.
 */
export const NODE_ENTRY_RETRY_MS = 5_000;
/** Pacemaker's stonith-max-attempts default: fencing a node is not retried more than this. */
export const MAX_FENCE_ATTEMPTS = 10;
/** Most actions one transition may hold; a larger graph is a scheduler bug. */
export const MAX_TRANSITION_ACTIONS = 100_000;
/** Operation timeout when neither the op nor op_defaults names one (Pacemaker's 20 s). */
export const DEFAULT_OP_TIMEOUT_MS = 20_000;
