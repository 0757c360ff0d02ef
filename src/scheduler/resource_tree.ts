import type { OpHistory, Primitive } from '../cib/model.ts';
import type { ActiveOn, FailureRecord, Role } from './types.ts';

/**
 * The scheduler's view of one resource: a configured primitive, group or clone, or one
 * instance of a clone (`web:0`). Built once by `unpack` and read-only afterwards; results of
 * later stages live in their own maps keyed by `id`.
 */
export type ResKind = 'primitive' | 'group' | 'clone';

export interface Res {
  /** Unique id as printed: `rsc`, `grp`, `clone`, `rsc:0`, `grp:1`. */
  readonly id: string;
  /** Id as configured (no instance suffix). */
  readonly baseId: string;
  readonly kind: ResKind;
  readonly parent: Res | undefined;
  readonly children: readonly Res[];
  /** For primitives: the definition (class/provider/type, ops). */
  readonly def: Primitive | undefined;
  readonly meta: ReadonlyMap<string, string>;
  readonly params: ReadonlyMap<string, string>;
  /** Index in placement order (document order, instances in number order). */
  readonly order: number;
  readonly managed: boolean;
  readonly targetRole: Role;
  readonly stickiness: number;
  readonly priority: number;
  readonly migrationThreshold: number;
  readonly failureTimeoutMs: number;
  readonly clone: CloneSettings | undefined;
  /** Primitive state found in the status section. */
  readonly state: PrimitiveState;
  /** Not in the configuration any more (found only in history). */
  readonly orphan: boolean;
}

export interface CloneSettings {
  readonly promotable: boolean;
  readonly cloneMax: number;
  readonly cloneNodeMax: number;
  readonly promotedMax: number;
  readonly promotedNodeMax: number;
  readonly globallyUnique: boolean;
  readonly interleave: boolean;
  readonly ordered: boolean;
}

export interface PrimitiveState {
  /** Where the instance is active now (more than one entry means multiply active). */
  readonly active: readonly ActiveOn[];
  /** Nodes whose history shows a probe or any op (no probe needed there). */
  readonly known: ReadonlySet<string>;
  /** Effective fail counts by node (expired failures removed). */
  readonly failCounts: ReadonlyMap<string, number>;
  readonly failures: readonly FailureRecord[];
  /** Nodes where a hard error (not installed) bans the resource. */
  readonly hardBans: ReadonlySet<string>;
  /** A fatal configuration error (rc 6) stops it everywhere. */
  readonly fatal: boolean;
  /** A failure with on-fail=block: leave it alone. */
  readonly blocked: boolean;
  /** Nodes where the blocking failures happened (fencing such a node unblocks the resource). */
  readonly blockedOn: readonly string[];
  /** A failure asked for the resource to be stopped (on-fail=stop). */
  readonly stopRequested: boolean;
  /** A failure was ignored (on-fail=ignore): its legacy fail count bans nothing. */
  readonly failureIgnored?: boolean;
  /** A failure asked for the instance to be demoted (on-fail=demote). */
  readonly demoteRequested: boolean;
  /** The id this instance's active history was recorded under (`rsc:1`), for `master-*` lookups. */
  readonly historyName?: string;
  /** Per node where it is active: the history since its last start, to detect definition changes. */
  readonly configOps: ReadonlyMap<string, ActiveHistory>;
  /** shutdown-lock: the node this resource must stay with (it may run nowhere else). */
  readonly shutdownLock?: string;
  /**
   * A live migration that got as far as a successful migrate_to: active on both nodes, and
   * finished (migrate_from on the target, stop on the source) if the target is chosen again.
   */
  readonly partialMigration?: { readonly source: string; readonly target: string };
  /**
   * Sources of finished live migrations (migrate_to and migrate_from both succeeded) that were
   * never stopped: each gets a stop to clean up, and the resource does not migrate again until
   * then (Pacemaker's dangling migrations).
   */
  readonly danglingMigrationSources?: readonly string[];
}

/** What a node's history says about a running resource: its agent and the ops since its start. */
export interface ActiveHistory {
  readonly class?: string;
  readonly provider?: string;
  readonly type?: string;
  readonly ops: readonly OpHistory[];
}

export function emptyState(): PrimitiveState {
  return {
    active: [],
    known: new Set(),
    failCounts: new Map(),
    failures: [],
    hardBans: new Set(),
    fatal: false,
    blocked: false,
    blockedOn: [],
    stopRequested: false,
    demoteRequested: false,
    configOps: new Map(),
  };
}

/** Every primitive under `r` (itself if it is one), in order. */
export function primitivesOf(r: Res): Res[] {
  if (r.kind === 'primitive') return [r];
  const out: Res[] = [];
  for (const c of r.children) out.push(...primitivesOf(c));
  return out;
}

/** The clone that `r` is an instance of (or inside of), if any. */
export function cloneAncestor(r: Res): Res | undefined {
  for (let p = r.parent; p; p = p.parent) if (p.kind === 'clone') return p;
  return undefined;
}

/** `class:provider:type` as crm_simulate prints it. */
export function agentName(def: Primitive | undefined): string {
  if (!def) return 'unknown';
  const parts = [def.class ?? '', def.provider, def.type ?? ''].filter((p) => p !== undefined);
  return parts.join(':');
}
