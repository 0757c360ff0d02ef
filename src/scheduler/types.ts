/**
 * Values that flow through the scheduler pipeline. Every stage takes the previous stage's value
 * and returns a new one; the maps inside are built once per stage and never changed afterwards
 * (readonly views are handed on).
 */

/** Pacemaker's resource roles, in the newer spelling. */
export type Role = 'Stopped' | 'Started' | 'Unpromoted' | 'Promoted';

/** Why a node is not a normal online member. */
export interface NodeInfo {
  readonly id: string;
  readonly name: string;
  /** Joined the cluster and can run resources (before standby/maintenance). */
  readonly online: boolean;
  /** Lost without a clean shutdown: must be fenced before its resources recover elsewhere. */
  readonly unclean: boolean;
  /** Why it is unclean, in crm_simulate's words ('peer is no longer part of the cluster'). */
  readonly uncleanReason?: string;
  readonly standby: boolean;
  readonly maintenance: boolean;
  readonly shuttingDown: boolean;
  /** Membership is not settled (joining): it runs nothing new and its resources are left alone. */
  readonly pending?: boolean;
  /** Merged node attributes: configured instance attributes then transient ones. */
  readonly attrs: ReadonlyMap<string, string>;
  readonly utilization: ReadonlyMap<string, number>;
  /** Score added by node health (`#health-*` attributes and node-health-strategy); 0 when healthy. */
  readonly health: number;
  /** Position in the configuration's node list (stable tie-breaks). */
  readonly index: number;
}

export type NoQuorumPolicy = 'stop' | 'freeze' | 'ignore' | 'demote' | 'suicide' | 'fence';

export interface ClusterOptions {
  readonly stonithEnabled: boolean;
  readonly symmetric: boolean;
  readonly noQuorumPolicy: NoQuorumPolicy;
  readonly haveQuorum: boolean;
  readonly maintenanceMode: boolean;
  readonly startFailureIsFatal: boolean;
  readonly stopAllResources: boolean;
  readonly placementStrategy: 'default' | 'utilization' | 'minimal' | 'balanced';
  readonly stonithAction: string;
  /** Milliseconds since the epoch that rules and failure-timeout are evaluated at. */
  readonly nowMs: number;
  readonly concurrentFencing: boolean;
  /** shutdown-lock: resources of a node shut down cleanly stay with it instead of moving. */
  readonly shutdownLock: boolean;
  /** shutdown-lock-limit: how long a lock holds (0: until the node comes back). */
  readonly shutdownLockLimitMs: number;
}

/** A failed operation found in a resource's history. */
export interface FailureRecord {
  readonly node: string;
  readonly op: string;
  readonly intervalMs: number;
  readonly rc: number;
  readonly onFail: string;
}

/** One (node, role) where a primitive instance is active now. */
export interface ActiveOn {
  readonly node: string;
  readonly role: Role;
  readonly failed: boolean;
  /**
   * Counted active here only because a failed live migration may have left it on this target,
   * and its source has since been stopped cleanly: Pacemaker then takes the resource as stopped
   * and starts it here again, a start alone (summarised as a restart).
   */
  readonly leftByFailedMigration?: boolean;
}

/** A score contribution with its source, kept so `explain` can say why. */
export interface ScoreReason {
  readonly node: string;
  readonly score: number;
  /** Short machine tag: location, stickiness, fail-limit, colocation, standby, … */
  readonly kind: string;
  readonly text: string;
}
