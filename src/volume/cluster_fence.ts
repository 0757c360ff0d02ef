import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { toCibCommands } from '../admin/cib_commands.ts';
import type { Cib } from '../cib/model.ts';
import { encodeCibCommand, validateCibCommand } from '../consensus/cib_state_machine.ts';
import { type DaemonConfig, controlSocketPath as daemonSocketPath, loadConfig } from '../daemon/config.ts';
import { queryControl } from '../daemon/control.ts';
import { FENCE_EXIT, type FenceResult, fencePeerEdit, unfencePeerEdit } from './fence_peer.ts';

/**
 * The shell of halo's built-in fence-peer / unfence-peer handlers (what drbd.conf's
 * crm-fence-peer.sh and crm-unfence-peer.sh map to): reads the cluster's CIB from a daemon's
 * control socket, applies `fence_peer.ts`'s edit, and proposes it. Only the Raft leader (the
 * DC) takes proposals, so when the local daemon is not the DC the change is sent to the DC's
 * socket as the cluster config names it (reachable when daemons share a /run, as in `halo lab`).
 */

/** How long one control request may take (a proposal answers once committed). */
const REQUEST_TIMEOUT_MS = 10_000;
/** Leader changes while fencing are retried this many times. */
const MAX_ATTEMPTS = 4;
/** Pause between attempts that found no DC to talk to. */
const RETRY_MS = 500;
/** How long a read waits for the daemon's view of the CIB to reach the committed epoch. */
const CATCH_UP_MS = 5_000;
const CATCH_UP_POLL_MS = 100;

export interface FenceRequest {
  readonly action: 'fence' | 'unfence';
  readonly resource: string;
  /** This node's name (drbd.conf `on` section = cluster node name). */
  readonly self: string;
  readonly peer: string;
  /** This node's daemon control socket; else from the cluster config. */
  readonly socket?: string;
  /** The cluster config (to find this node's and the DC's sockets). */
  readonly clusterConfig?: string;
  /** This node's name in the cluster config (default: the node whose link address is local). */
  readonly clusterNode?: string;
}

export interface FenceOutcome {
  /** The handler's exit code (FENCE_EXIT for fence; 0/1 for unfence). */
  readonly exitCode: number;
  readonly message: string;
}

type Reply = Record<string, unknown>;

async function ask(socket: string, line: string): Promise<Reply> {
  const r = (await queryControl(socket, line, REQUEST_TIMEOUT_MS)) as Reply;
  if (typeof r !== 'object' || r === null) throw new Error(`unreadable answer from ${socket}`);
  return r;
}

function loadCluster(path: string | undefined): DaemonConfig | undefined {
  if (path === undefined || !existsSync(path)) return undefined;
  return loadConfig(path);
}

/** Runs one fence or unfence against the cluster. Never throws: failures are exit code 1. */
export async function runClusterFence(req: FenceRequest): Promise<FenceOutcome> {
  const failed = (message: string): FenceOutcome => ({
    exitCode: req.action === 'fence' ? FENCE_EXIT.failed : 1,
    message,
  });
  let cluster: DaemonConfig | undefined;
  let socket = req.socket;
  let selfNode: string | undefined;
  try {
    cluster = loadCluster(req.clusterConfig);
    if (cluster && socket === undefined) {
      // The daemon's module graph is large: a handler that knows its node name (the lab and the
      // executor pass HALO_CLUSTER_NODE) does not load it, which keeps I/O-freezing fence-peer short.
      selfNode = req.clusterNode ?? (await import('../daemon/run.ts')).resolveSelf(cluster, req.clusterNode);
      socket = daemonSocketPath(cluster, selfNode);
    } else if (cluster && req.clusterNode !== undefined) selfNode = req.clusterNode;
  } catch (err) {
    return failed(`cannot read the cluster config ${req.clusterConfig}: ${(err as Error).message}`);
  }
  if (socket === undefined)
    return failed(
      `no cluster to ${req.action} in: no daemon socket given and no cluster config at ${req.clusterConfig}`,
    );
  let last = 'no attempt made';
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    try {
      const r = await fenceOnce(req, socket);
      if ('outcome' in r) return r.outcome;
      last = r.retry;
      // Not the DC: go to the DC's socket, if the cluster config says where it is.
      if (r.leader && cluster) {
        const dcSocket = await findDcSocket(cluster, socket, selfNode, r.leader);
        if (typeof dcSocket === 'string') {
          socket = dcSocket;
          continue;
        }
        return failed(
          `${last}; the DC's control socket is not reachable from this node (tried ${dcSocket.tried.join(', ') || 'nothing'})`,
        );
      }
    } catch (err) {
      last = (err as Error).message;
    }
    // No DC yet (an election after the same failure, most likely): give it a moment.
    if (attempt + 1 < MAX_ATTEMPTS) await sleep(RETRY_MS);
  }
  return failed(`${req.action} of ${req.resource} not committed after ${MAX_ATTEMPTS} attempts: ${last}`);
}

/**
 * The DC's control socket as seen from this node: the cluster config's socket for the DC when it
 * is per node (`{node}` in controlSocket), else this node's socket path with its node name
 * replaced by the DC's (`…/n2/halo.sock` → `…/n1/halo.sock`, as `halo lab` lays them out). A
 * candidate is used only when the daemon answering there says it is that node.
 */
export async function findDcSocket(
  cluster: DaemonConfig,
  current: string,
  selfNode: string | undefined,
  leader: string,
): Promise<string | { tried: string[] }> {
  const candidates = [daemonSocketPath(cluster, leader)];
  if (selfNode !== undefined && selfNode !== leader)
    candidates.push(
      current
        .split('/')
        .map((seg) => (seg === selfNode ? leader : seg))
        .join('/'),
    );
  const tried: string[] = [];
  for (const c of new Set(candidates)) {
    if (c === current || !existsSync(c)) continue;
    tried.push(c);
    try {
      const st = await ask(c, 'status');
      if (st.node === leader) return c;
    } catch {
      // Not a daemon, or not answering: try the next.
    }
  }
  return { tried };
}

/**
 * The daemon's CIB once its view has caught up with what has committed (the DC's controller view
 * can trail the replicated CIB for a moment, and editing a stale copy would undo a commit);
 * a string says why not.
 */
async function currentCib(socket: string): Promise<Cib | string> {
  const until = Date.now() + CATCH_UP_MS;
  for (;;) {
    const view = await ask(socket, 'cib');
    if (typeof view.error === 'string') return view.error;
    const cib = view.cib as Cib;
    const st = (await ask(socket, 'status')) as { consensus?: { cib?: { epoch?: number } } };
    const committed = st.consensus?.cib?.epoch ?? 0;
    const epoch = Number(cib.attrs.find(([k]) => k === 'epoch')?.[1] ?? '0');
    if (epoch >= committed) return cib;
    if (Date.now() > until) return `the daemon's CIB is at epoch ${epoch} but ${committed} has committed`;
    await sleep(CATCH_UP_POLL_MS);
  }
}

async function fenceOnce(
  req: FenceRequest,
  socket: string,
): Promise<{ outcome: FenceOutcome } | { retry: string; leader: string | null }> {
  const cib = await currentCib(socket);
  if (typeof cib === 'string') return { retry: cib, leader: null };
  const edit: FenceResult =
    req.action === 'fence'
      ? fencePeerEdit(cib, req.resource, req.self, req.peer)
      : unfencePeerEdit(cib, req.resource);
  if (!edit.ok) return { outcome: { exitCode: FENCE_EXIT.failed, message: edit.message } };
  if (!edit.changed) return { outcome: { exitCode: edit.exitCode, message: edit.message } };
  // Compare-and-set: a configuration change committed between the read above and this proposal
  // (an administrator's edit) is not overwritten; the cluster refuses ours and we recompute.
  const plan = toCibCommands(cib, edit.cib, { compareAndSet: true });
  for (const c of plan.commands) {
    const problem = validateCibCommand(c);
    if (problem) return { outcome: { exitCode: FENCE_EXIT.failed, message: `cannot propose: ${problem}` } };
    const r = await ask(socket, `cib ${encodeCibCommand(c)}`);
    if (typeof r.error === 'string') return { retry: r.error, leader: null };
    if (r.ok !== true)
      return {
        retry: `${String(r.code)}: ${String(r.message)}`,
        leader: (r.leader as string | null) ?? null,
      };
    if (r.applied === false && r.code === 'conflict')
      return { retry: `the configuration changed meanwhile: ${String(r.message)}`, leader: null };
    if (r.applied === false)
      return {
        outcome: {
          exitCode: FENCE_EXIT.failed,
          message: `the cluster rejected the change: ${String(r.message)}`,
        },
      };
  }
  return { outcome: { exitCode: edit.exitCode, message: edit.message } };
}
