import type { Cib, NvSet, Primitive, Resource } from '../cib/model.ts';
import type { Assignment } from './assign.ts';
import type { DefinitionChange } from './digests.ts';
import { probeNodes } from './nodes.ts';
import { primitivesOf, type Res } from './resource_tree.ts';
import type { ClusterOptions, NodeInfo } from './types.ts';
import type { Unpacked } from './unpack.ts';

/**
 * Unfencing (Pacemaker's `Fence (on)`). A fence device that cuts a node off shared storage by
 * revoking its access (fence_scsi, fence_mpath: SCSI-3 persistent reservations) must also give
 * that access back — "unfence" the node, the device's `on` action run for that node — before
 * anything that writes to the storage starts there, and again whenever the device's definition
 * changes (new keys, new device list). Such a device says so with the meta-attribute
 * `provides=unfencing`; a resource can ask for it with `requires=unfencing`.
 *
 * With unfencing in use, every resource that needs fencing needs unfencing instead (its
 * default `requires` becomes `unfencing`): it starts on a node only after that node's
 * unfencing, and when the node is unfenced while it runs there it is restarted around the
 * unfencing ("due to required stonith"). Fence devices themselves need only quorum, but they too
 * are probed and started only after the node's unfencing, since an agent that unfences often
 * cannot even check its device before.
 *
 * A node is unfenced when
 *  - a fence device's agent or parameters changed while it runs there ('Device definition
 *    changed', 'Device parameters changed'), or
 *  - it has never been unfenced (no `#node-unfenced` attribute, or "0") and something that
 *    needs unfencing is to be probed or run there ('required by fence_scsi monitor').
 * Only a node that is up, clean and not shutting down is unfenced.
 */
export interface UnfencePlan {
  /** Unfencing is in use (Pacemaker's enable-unfencing flag). */
  readonly enabled: boolean;
  /** Nodes to unfence in this transition, with the reason crm_simulate prints. */
  readonly nodes: ReadonlyMap<string, string>;
}

export const NO_UNFENCING: UnfencePlan = { enabled: false, nodes: new Map() };

/** The node attribute the controller sets once a node has been unfenced. */
export const UNFENCED_ATTRIBUTE = '#node-unfenced';

/**
 * Whether the configuration uses unfencing: a `provides=unfencing` or `requires=unfencing`
 * meta-attribute on any resource (or in rsc_defaults), as Pacemaker finds it before unpacking
 * anything else. Without fencing there is nothing to unfence with.
 */
export function unfencingEnabled(cib: Cib, options: ClusterOptions): boolean {
  if (!options.stonithEnabled) return false;
  return (
    cib.configuration.rscDefaults.some(asksForUnfencing) ||
    cib.configuration.resources.some(resourceAsksForUnfencing)
  );
}

function asksForUnfencing(set: NvSet): boolean {
  return (
    set.kind === 'meta_attributes' &&
    set.pairs.some((p) => (p.name === 'provides' || p.name === 'requires') && p.value === 'unfencing')
  );
}

function primitiveAsksForUnfencing(p: Omit<Primitive, 'kind'>): boolean {
  return (
    p.metaAttributes.some(asksForUnfencing) ||
    p.operations.some((o) => o.metaAttributes.some(asksForUnfencing))
  );
}

function resourceAsksForUnfencing(r: Resource): boolean {
  switch (r.kind) {
    case 'primitive':
    case 'template':
      return primitiveAsksForUnfencing(r);
    case 'group':
      return r.metaAttributes.some(asksForUnfencing) || r.members.some(primitiveAsksForUnfencing);
    case 'clone':
      return r.metaAttributes.some(asksForUnfencing) || resourceAsksForUnfencing(r.child);
    case 'bundle':
      return false;
  }
}

export function isFenceDevice(r: Res): boolean {
  return r.def?.class === 'stonith';
}

/**
 * Whether `r` needs its node unfenced before it starts: `requires=unfencing`, the default for
 * everything but fence devices once unfencing is in use (fence devices need only quorum).
 */
export function needsUnfencing(u: Unpacked, r: Res): boolean {
  if (!u.unfencing || isFenceDevice(r)) return false;
  const requires = r.meta.get('requires')?.toLowerCase();
  return requires === undefined || requires === 'unfencing';
}

/** Whether `r`'s probes and starts on a node wait for that node's unfencing. */
export function waitsForUnfencing(u: Unpacked, r: Res): boolean {
  return u.unfencing && (isFenceDevice(r) || needsUnfencing(u, r));
}

/** `#node-unfenced` set to anything but "0". */
export function nodeUnfenced(n: NodeInfo): boolean {
  const v = n.attrs.get(UNFENCED_ATTRIBUTE);
  return v !== undefined && v !== '0';
}

/** Why a changed fence device unfences the nodes it runs on (Pacemaker's wording). */
const DEVICE_CHANGE: Readonly<Record<DefinitionChange, string>> = {
  agent: 'Device definition changed',
  restart: 'Device parameters changed',
  reload: 'Device parameters changed (reload)',
  stop: 'Device parameters changed (reload)',
};

/**
 * Stage: which nodes this transition unfences. Reads the assignment only (what is to run
 * where, and what is to be probed), so it runs before the actions stage, which restarts what
 * runs on a node being unfenced.
 */
export function planUnfencing(u: Unpacked, a: Assignment): UnfencePlan {
  if (!u.unfencing) return NO_UNFENCING;
  const prims = u.resources.flatMap(primitivesOf);
  if (!prims.some(isFenceDevice)) return { enabled: true, nodes: new Map() };
  const nodes = new Map<string, string>();
  // The first reason found is the one reported, found in Pacemaker's order: changed devices
  // (agents, then parameters), then probes, then starts.
  const trigger = (name: string, reason: string): void => {
    const n = u.nodeByName.get(name);
    if (!n || nodes.has(name) || !n.online || n.unclean || n.shuttingDown || u.fence.has(name)) return;
    nodes.set(name, reason);
  };
  for (const agentPass of [true, false]) {
    for (const p of prims) {
      if (!isFenceDevice(p)) continue;
      for (const [node, change] of u.definitionChanges.get(p.id) ?? []) {
        if ((change === 'agent') === agentPass) trigger(node, DEVICE_CHANGE[change]);
      }
    }
  }
  const never = (name: string): boolean => {
    const n = u.nodeByName.get(name);
    return n !== undefined && !nodeUnfenced(n);
  };
  const waiting = prims.filter((p) => waitsForUnfencing(u, p) && !a.placements.get(p.id)?.fixed);
  for (const p of waiting) {
    if (p.orphan) continue;
    for (const node of probeNodes(u.nodes, p)) if (never(node)) trigger(node, `required by ${p.id} monitor`);
  }
  for (const p of waiting) {
    const pl = a.placements.get(p.id);
    if (pl?.node && pl.role !== 'Stopped' && never(pl.node)) trigger(pl.node, `required by ${p.id} start`);
  }
  return { enabled: true, nodes };
}
