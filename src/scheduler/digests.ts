import { parseDuration } from '../cib/duration.ts';
import type { Cib, NvSet, Operation, OpHistory } from '../cib/model.ts';
import { opDigest } from '../cib/op_digest.ts';
import { type ActiveHistory, primitivesOf, type Res } from './resource_tree.ts';
import { flattenNvSets } from './rules.ts';
import type { NodeInfo } from './types.ts';

/**
 * Definition changes (Pacemaker's pcmk__check_action_config): the history of a running resource
 * records md5 digests of the parameters each op ran with. When the digest of the current
 * definition differs, the resource must be restarted — or only reloaded, when the agent can
 * reload (the history then has an `op-restart-digest` over the parameters that need a restart,
 * listed in `op-force-restart`) and only reloadable parameters changed.
 *
 * Only one-shot ops (start, a probe that found it running, promote, migrate_from) lead to
 * something the transition shows; a changed recurring monitor is just rescheduled.
 *
 * `stop` is a restart Pacemaker gives no reason for: a reload was due while the start is still
 * pending. `agent` is a restart with no reason either: the agent itself (class, provider, type)
 * changed. (For a fence device the two differ: see unfencing.ts.)
 */
export type DefinitionChange = 'restart' | 'reload' | 'stop' | 'agent';

/** resource id → node → what its definition change needs. */
export type DefinitionChanges = ReadonlyMap<string, ReadonlyMap<string, DefinitionChange>>;

/** One-shot ops whose digests are compared (as the start's). */
const CHECKED_TASKS = new Set(['start', 'monitor', 'promote', 'migrate_from']);

export interface DigestInput {
  readonly cib: Cib;
  readonly resources: readonly Res[];
  readonly nodeByName: ReadonlyMap<string, NodeInfo>;
  readonly nowMs: number;
}

export function definitionChanges(input: DigestInput): DefinitionChanges {
  const out = new Map<string, Map<string, DefinitionChange>>();
  // Groups and clones pass their instance attributes down to their primitives.
  const inherited = new Map<string, readonly NvSet[]>();
  for (const c of input.cib.configuration.resources) {
    if (c.kind === 'group' || c.kind === 'clone') inherited.set(c.id, c.instanceAttributes);
    if (c.kind === 'clone' && c.child.kind === 'group') inherited.set(c.child.id, c.child.instanceAttributes);
  }
  for (const top of input.resources) {
    for (const r of primitivesOf(top)) {
      if (r.orphan || !r.def || r.state.configOps.size === 0) continue;
      for (const [nodeName, hist] of r.state.configOps) {
        const node = input.nodeByName.get(nodeName);
        if (!node || !nodeAvailable(node)) continue;
        if (!r.state.active.some((a) => a.node === nodeName)) continue;
        const change = checkNode({ r, node, inherited, nowMs: input.nowMs }, hist);
        if (!change) continue;
        let m = out.get(r.id);
        if (!m) {
          m = new Map();
          out.set(r.id, m);
        }
        m.set(nodeName, change);
      }
    }
  }
  return out;
}

/** Pacemaker checks only nodes that can run actions now. */
function nodeAvailable(n: NodeInfo): boolean {
  return n.online && !n.unclean && !n.shuttingDown && !n.standby && !n.maintenance && !n.pending;
}

interface Target {
  readonly r: Res;
  readonly node: NodeInfo;
  readonly inherited: ReadonlyMap<string, readonly NvSet[]>;
  readonly nowMs: number;
}

function checkNode(t: Target, hist: ActiveHistory): DefinitionChange | undefined {
  const def = t.r.def!;
  const agentChanged = def.class !== hist.class || def.provider !== hist.provider || def.type !== hist.type;
  const startPending = hist.ops.some(
    (op) => op.operation === 'start' && (op.callId === '-1' || op.opStatus === '-1'),
  );
  // A new agent: its history is wiped and it is restarted; its old digests say nothing.
  if (agentChanged) return 'agent';
  let result: DefinitionChange | undefined;
  for (const op of hist.ops) {
    const intervalMs = Number(op.interval) || 0;
    if (intervalMs > 0 || !CHECKED_TASKS.has(op.operation)) continue;
    if (op.opStatus === '1') continue;
    const change = compare(t, op);
    if (change === 'restart') return 'restart';
    if (change === 'reload' && !result) result = startPending ? 'stop' : 'reload';
  }
  return result;
}

function findOp(r: Res, task: string, intervalMs: number): Operation | undefined {
  return r.def?.operations.find((o) => {
    if (o.name !== task) return false;
    const d = parseDuration(o.interval);
    return d.ok && d.ms === intervalMs;
  });
}

/** Compares one one-shot op's recorded digests with the current definition on `node`. */
function compare(t: Target, op: OpHistory): DefinitionChange | undefined {
  const { r, node, nowMs } = t;
  // No digest recorded: Pacemaker restarts to be safe; halo's own controller always records
  // one, so a history without it (hand-made, or from a tool) is taken as unchanged instead.
  if (op.opDigest === undefined) return undefined;
  const ctx = { nodeAttrs: node.attrs, nowMs };
  const params = flattenNvSets(r.def?.instanceAttributes ?? [], ctx);
  for (let p = r.parent; p; p = p.parent) flattenNvSets(t.inherited.get(p.baseId) ?? [], ctx, params);
  const opConfig = findOp(r, op.operation, 0);
  const opParams = flattenNvSets(opConfig?.instanceAttributes ?? [], ctx);
  // Op-specific parameters apply to this op only: a change there always needs a restart.
  const restartOnMismatch = opParams.size > 0;
  const all = new Map(params);
  for (const [k, v] of opParams) all.set(k, v);
  // `#default` unsets a parameter.
  for (const [k, v] of [...all]) if (isFilteredName(k) || v === '#default') all.delete(k);
  const restartDigest = op.opRestartDigest;
  if (restartDigest !== undefined) {
    const force = op.attrs?.['op-force-restart'];
    const restartParams = new Map(all);
    if (force !== undefined) {
      for (const k of [...restartParams.keys()]) if (!force.includes(` ${k} `)) restartParams.delete(k);
    }
    if (opDigest(restartParams) !== restartDigest) return 'restart';
  }
  const recorded = op.opDigest!;
  if (recorded === opDigest(all)) return undefined;
  // Only private parameters (passwords, masked in the history) changed: nothing to do.
  if (op.opSecureDigest !== undefined && op.opSecureDigest === secureDigest(r, op, params, all))
    return undefined;
  if (restartOnMismatch) return 'restart';
  return restartDigest !== undefined ? 'reload' : 'restart';
}

/**
 * The digest without the private parameters the history lists in `op-secure-params`. Histories
 * older than feature set 3.16.0 hashed only the resource's own parameters, and for fence
 * devices none of Pacemaker's own `pcmk_*` ones.
 */
function secureDigest(
  r: Res,
  op: OpHistory,
  params: ReadonlyMap<string, string>,
  all: ReadonlyMap<string, string>,
): string {
  const secure = op.attrs?.['op-secure-params'];
  const old = compareVersions(op.attrs?.crm_feature_set ?? '0', '3.16.0') < 0;
  const out = new Map(old ? params : all);
  for (const k of [...out.keys()]) {
    if (
      isFilteredName(k) ||
      secure?.includes(` ${k} `) ||
      (old && r.def?.class === 'stonith' && isFenceParam(k))
    )
      out.delete(k);
  }
  return opDigest(out);
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number(x) || 0);
  const pb = b.split('.').map((x) => Number(x) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const FENCE_PARAMS = new Set([
  'pcmk_action_limit',
  'pcmk_delay_base',
  'pcmk_delay_max',
  'pcmk_host_argument',
  'pcmk_host_check',
  'pcmk_host_list',
  'pcmk_host_map',
]);

/** Pacemaker's own fence-device parameters (pcmk_stonith_param). */
function isFenceParam(name: string): boolean {
  if (name === 'provides' || name === 'stonith-timeout') return true;
  if (!name.startsWith('pcmk_')) return false;
  if (FENCE_PARAMS.has(name)) return true;
  const rest = name.slice(5);
  const i = rest.indexOf('_');
  if (i < 0) return false;
  const suffix = rest.slice(i);
  return suffix === '_action' || suffix === '_timeout' || suffix === '_retries';
}

/** Names Pacemaker leaves out of every digest. */
function isFilteredName(name: string): boolean {
  return (
    name.startsWith('CRM_meta_') ||
    name === 'id' ||
    name === 'crm_feature_set' ||
    name === 'op-digest' ||
    name === 'on_node' ||
    name === 'on_node_uuid' ||
    name === 'pcmk_external_ip'
  );
}
