/**
 * Node edits, as `crm node …` and `crm_attribute -t nodes` make them: standby and maintenance
 * are node attributes (`standby=on`/`off`, `maintenance=on`/`off`); a permanent attribute
 * (`forever`) lives in the node's `instance_attributes` in the configuration, a transient one
 * (`reboot`) in the status section's `transient_attributes` and is lost when the node leaves.
 * Pure.
 */
import type { Cib, ClusterNode, Configuration, NodeState } from '../cib/model.ts';
import { nodeName } from '../cib/resources.ts';
import { didYouMean, type EditResult, editError, finish, nvGet, setNvPair } from './edit_result.ts';

export type AttributeLifetime = 'forever' | 'reboot';

/** Longest attribute name accepted (Pacemaker has no limit; this catches pasted garbage). */
export const MAX_ATTRIBUTE_NAME_CHARS = 128;
const ATTRIBUTE_NAME_RE = /^[A-Za-z0-9_#.:@-]+$/;

/** Every node name the CIB knows: configured nodes first, then any only seen in the status. */
export function knownNodeNames(cib: Cib): string[] {
  const names = cib.configuration.nodes.map(nodeName);
  for (const s of cib.status) if (s.uname && !names.includes(s.uname)) names.push(s.uname);
  return names;
}

export function unknownNode(cib: Cib, node: string): EditResult {
  const known = knownNodeNames(cib);
  return editError(
    'unknown-node',
    `unknown node '${node}'${didYouMean(node, known)}; known nodes: ${known.join(', ') || 'none'}`,
  );
}

export interface NodeAttributeEdit {
  readonly node: string;
  readonly name: string;
  /** null deletes the attribute. */
  readonly value: string | null;
  readonly lifetime: AttributeLifetime;
}

/** Sets or deletes one node attribute (`crm node attribute`, `crm_attribute -N -n -v/-D`). */
export function setNodeAttribute(cib: Cib, e: NodeAttributeEdit): EditResult {
  if (e.name.length > MAX_ATTRIBUTE_NAME_CHARS || !ATTRIBUTE_NAME_RE.test(e.name))
    return editError(
      'invalid-argument',
      `invalid node attribute name '${e.name.slice(0, 40)}': use letters, digits and - _ # . : @ (at most ${MAX_ATTRIBUTE_NAME_CHARS})`,
    );
  return e.lifetime === 'forever' ? setPermanent(cib, e) : setTransient(cib, e);
}

function setPermanent(cib: Cib, e: NodeAttributeEdit): EditResult {
  const nodes = cib.configuration.nodes;
  const i = nodes.findIndex((n) => nodeName(n) === e.node);
  if (i < 0 && cib.status.some((s) => s.uname === e.node))
    return editError(
      'unknown-node',
      `node '${e.node}' is in the status section but not in the configured nodes, so it has no permanent attributes; use --lifetime reboot`,
    );
  if (i < 0) return unknownNode(cib, e.node);
  const n = nodes[i]!;
  const next: ClusterNode = {
    ...n,
    instanceAttributes: setNvPair(
      n.instanceAttributes,
      'instance_attributes',
      `nodes-${n.id}`,
      e.name,
      e.value,
    ),
  };
  const after: Cib = {
    ...cib,
    configuration: { ...cib.configuration, nodes: nodes.map((x, k) => (k === i ? next : x)) },
  };
  return finish(cib, after, 'configuration');
}

function setTransient(cib: Cib, e: NodeAttributeEdit): EditResult {
  const configured = cib.configuration.nodes.find((n) => nodeName(n) === e.node);
  const i = cib.status.findIndex((s) => s.uname === e.node || (configured && s.id === configured.id));
  if (i < 0 && !configured) return unknownNode(cib, e.node);
  const cur: NodeState = cib.status[i] ?? {
    id: configured?.id ?? e.node,
    uname: e.node,
    transientAttributes: [],
    resources: [],
    hasLrm: false,
  };
  const next: NodeState = {
    ...cur,
    transientAttributesId: cur.transientAttributesId ?? cur.id,
    transientAttributes: setNvPair(
      cur.transientAttributes,
      'instance_attributes',
      `status-${cur.id}`,
      e.name,
      e.value,
    ),
  };
  const status = i < 0 ? [...cib.status, next] : cib.status.map((s, k) => (k === i ? next : s));
  return finish(cib, { ...cib, hasStatus: true, status }, 'status');
}

/** `crm node standby NODE` (on) / `crm node online NODE` (off). */
export function setStandby(
  cib: Cib,
  node: string,
  on: boolean,
  lifetime: AttributeLifetime = 'forever',
): EditResult {
  return setNodeAttribute(cib, { node, name: 'standby', value: on ? 'on' : 'off', lifetime });
}

/** `crm node maintenance NODE` (on) / `crm node ready NODE` (off). */
export function setNodeMaintenance(
  cib: Cib,
  node: string,
  on: boolean,
  lifetime: AttributeLifetime = 'forever',
): EditResult {
  return setNodeAttribute(cib, { node, name: 'maintenance', value: on ? 'on' : 'off', lifetime });
}

/** A node attribute's value: the transient one wins over the permanent one, as in Pacemaker. */
export function nodeAttributeValue(
  cib: Cib,
  node: string,
  name: string,
): { ok: true; value: string | undefined; lifetime?: AttributeLifetime } | { ok: false; message: string } {
  const configured = cib.configuration.nodes.find((n) => nodeName(n) === node);
  const state = cib.status.find((s) => s.uname === node || (configured && s.id === configured.id));
  if (!configured && !state) {
    const r = unknownNode(cib, node);
    return { ok: false, message: r.ok ? '' : r.error.message };
  }
  const transient = state ? nvGet(state.transientAttributes, name) : undefined;
  if (transient !== undefined) return { ok: true, value: transient, lifetime: 'reboot' };
  const permanent = configured ? nvGet(configured.instanceAttributes, name) : undefined;
  return permanent === undefined
    ? { ok: true, value: undefined }
    : { ok: true, value: permanent, lifetime: 'forever' };
}

/**
 * Why a running cluster refuses to replace `current` with `next`: `next` deletes the `<node>`
 * entry of a node that is a member of the cluster (`members`: the node names in its membership,
 * up or not), as crmsh refuses to delete an active node. A member leaves with `halo cluster
 * leave`, which moves its resources away first and then deletes its entry; deleting the entry
 * alone would hide what runs there from the scheduler (and the DC would add it back). Undefined
 * when nothing is refused. A configuration without any `<node>` entry (a crm snippet written
 * without a nodes section) deletes nothing: the DC gives every member its entry again.
 * Offline edits of a CIB file never ask this.
 */
export function memberNodeDeletion(
  current: Configuration,
  next: Configuration,
  members: readonly string[],
): string | undefined {
  if (next.nodes.length === 0) return undefined;
  const kept = new Set(next.nodes.map(nodeName));
  const isMember = new Set(members);
  const gone = current.nodes.map(nodeName).filter((name) => isMember.has(name) && !kept.has(name));
  if (gone.length === 0) return undefined;
  return gone
    .map(
      (name) => `node ${name} is a member of the running cluster; remove it with halo cluster leave ${name}`,
    )
    .join('; ');
}
