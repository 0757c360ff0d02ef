import { bumpVersion } from '../admin/edit_result.ts';
import type { Cib, Constraint, LocationConstraint } from '../cib/model.ts';
import { allPrimitives, instanceAttributesOf, primitiveAgent } from '../cib/resources.ts';

/**
 * Resource fencing in the cluster (pure): what halo's fence-peer handler changes in the CIB, the
 * way DRBD's crm-fence-peer.sh does in Pacemaker's. When a Primary loses its replication peer,
 * the handler adds a location constraint
 *
 *     location drbd-fence-by-handler-RES-MS MS rule $role=Promoted -inf: #uname ne SELF
 *
 * so that no node but SELF (the node that still has every acknowledged write) may be promoted.
 * A stale Secondary that says UpToDate but missed later writes can then never be promoted by
 * the scheduler, even after SELF dies. The peer's after-resync-target handler (crm-unfence-peer)
 * removes the constraint once a resync has brought it up to date.
 *
 * The exit codes are the fence-peer interface's (drbd.conf): 4 = the peer is outdated (the
 * constraint is in place), 6 = this node is the one fenced out (the peer fenced it first).
 */

/** fence-peer exit codes as DRBD defines them. */
export const FENCE_EXIT = {
  peerInconsistent: 3,
  peerOutdated: 4,
  peerUnreachable: 5,
  peerIsPrimary: 6,
  peerStonithed: 7,
  /** Anything else: the handler failed (resource-and-stonith keeps I/O suspended). */
  failed: 1,
} as const;

export const FENCE_CONSTRAINT_PREFIX = 'drbd-fence-by-handler-';

export type FenceResult =
  | {
      readonly ok: true;
      readonly cib: Cib;
      readonly changed: boolean;
      readonly exitCode: number;
      readonly message: string;
    }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** The promotable clones that run volume RES (halo:volume or ocf:linbit:drbd with drbd_resource=RES). */
export function volumeClones(cib: Cib, res: string): string[] {
  const out: string[] = [];
  for (const { resource: p, parents } of allPrimitives(cib)) {
    const a = primitiveAgent(p, cib);
    const isVolume =
      (a.class === 'halo' && a.type === 'volume') ||
      (a.class === 'ocf' && a.provider === 'linbit' && a.type === 'drbd');
    if (!isVolume || instanceAttributesOf(p, cib).get('drbd_resource') !== res) continue;
    const clone = parents.find((x) => x.kind === 'clone');
    if (clone && !out.includes(clone.id)) out.push(clone.id);
  }
  return out;
}

export function fenceConstraintId(res: string, cloneId: string): string {
  return `${FENCE_CONSTRAINT_PREFIX}${res}-${cloneId}`;
}

function knownNodes(cib: Cib): Set<string> {
  const names = new Set<string>();
  for (const n of cib.configuration.nodes) names.add(n.uname);
  for (const s of cib.status) names.add(s.uname ?? s.id);
  return names;
}

/** The node a fence constraint keeps promotable (`#uname ne NODE`), if it is one of ours. */
export function fencedInFavourOf(c: Constraint): string | undefined {
  if (c.kind !== 'rsc_location' || !c.id.startsWith(FENCE_CONSTRAINT_PREFIX)) return undefined;
  const e = c.rules[0]?.expressions[0];
  return e?.kind === 'expression' && e.attribute === '#uname' && e.operation === 'ne' ? e.value : undefined;
}

/**
 * Adds the constraint that lets only `self` be promoted for volume `res`. Idempotent. When the
 * peer already placed one in its own favour, this node is the stale one: nothing changes and
 * the exit code is 6 (DRBD then outdates this node).
 */
export function fencePeerEdit(cib: Cib, res: string, self: string, peer: string): FenceResult {
  const clones = volumeClones(cib, res);
  if (clones.length === 0)
    return {
      ok: false,
      code: 'no-volume-resource',
      message: `no promotable clone in the cluster runs volume ${res} (halo:volume or ocf:linbit:drbd with drbd_resource=${res})`,
    };
  const nodes = knownNodes(cib);
  if (!nodes.has(self))
    return {
      ok: false,
      code: 'unknown-node',
      message: `this node '${self}' (drbd.conf) is not a cluster node (known: ${[...nodes].join(', ') || 'none'})`,
    };
  let constraints = [...cib.configuration.constraints];
  for (const cloneId of clones) {
    const id = fenceConstraintId(res, cloneId);
    const old = constraints.find((c) => c.id === id);
    const favours = old ? fencedInFavourOf(old) : undefined;
    if (favours === self) continue;
    if (favours !== undefined)
      return {
        ok: true,
        cib,
        changed: false,
        exitCode: FENCE_EXIT.peerIsPrimary,
        message: `${id} already keeps ${res} promotable only on ${favours}: this node (${self}) is the outdated one`,
      };
    constraints = [...constraints.filter((c) => c.id !== id), fenceConstraint(id, cloneId, self)];
  }
  const changed = constraints.length !== cib.configuration.constraints.length;
  const next = changed
    ? bumpVersion({ ...cib, configuration: { ...cib.configuration, constraints } }, 'configuration')
    : cib;
  return {
    ok: true,
    cib: next,
    changed,
    exitCode: FENCE_EXIT.peerOutdated,
    message: `${peer} may not be promoted for ${res} until it has resynced (constraint ${clones.map((c) => fenceConstraintId(res, c)).join(', ')})`,
  };
}

function fenceConstraint(id: string, cloneId: string, self: string): LocationConstraint {
  return {
    kind: 'rsc_location',
    id,
    rsc: cloneId,
    rules: [
      {
        kind: 'rule',
        id: `${id}-rule`,
        score: '-INFINITY',
        role: 'Promoted',
        expressions: [
          { kind: 'expression', id: `${id}-expr`, attribute: '#uname', operation: 'ne', value: self },
        ],
      },
    ],
    sets: [],
  };
}

/**
 * Removes the fence constraints of volume `res` (after-resync-target: the resynced node is up
 * to date again). Idempotent.
 */
export function unfencePeerEdit(cib: Cib, res: string): FenceResult {
  const prefix = `${FENCE_CONSTRAINT_PREFIX}${res}-`;
  const clones = new Set(volumeClones(cib, res));
  const keep = cib.configuration.constraints.filter(
    (c) => !(c.id.startsWith(prefix) && clones.has(c.id.slice(prefix.length))),
  );
  const removed = cib.configuration.constraints.length - keep.length;
  if (removed === 0)
    return { ok: true, cib, changed: false, exitCode: 0, message: `no fence constraint for ${res}` };
  return {
    ok: true,
    cib: bumpVersion({ ...cib, configuration: { ...cib.configuration, constraints: keep } }, 'configuration'),
    changed: true,
    exitCode: 0,
    message: `removed ${removed} fence constraint(s) of ${res}`,
  };
}
