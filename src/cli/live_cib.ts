/**
 * Reading the running cluster from the CLI: which control socket to ask (`--socket`, else this
 * node's socket from the cluster config) and the CIB the cluster schedules on. Used by
 * `halo explain` (and the socket choice by `halo configure|node|resource`).
 *
 * Every failure is a `LiveClusterError` with exit code 2 and a message naming the socket or
 * config file, so a command run against a cluster that is down says so and changes nothing.
 */
import { existsSync } from 'node:fs';
import type { Cib, NodeState } from '../cib/model.ts';
import { nodeName } from '../cib/resources.ts';
import { cibForScheduling } from '../controller/status.ts';
import { controlSocketPath, loadConfig } from '../daemon/config.ts';
import { queryControl } from '../daemon/control.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { resolveSelf } from '../daemon/run.ts';
import { DEFAULT_CONFIG_FILE } from './cluster_cmd.ts';

export const NO_CLUSTER_MESSAGE =
  'no running cluster found (is `halo daemon` running? use --cib FILE to edit a CIB file offline)';

/** How long one read of the cluster's state may take (a busy daemon still answers in well under this). */
export const LIVE_QUERY_TIMEOUT_MS = 5_000;

/** A daemon's answer to `cib COMMAND` (a proposal), as the CLI reads it. */
export type ProposeReply =
  | { readonly error: string }
  | {
      readonly ok: true;
      readonly index: number;
      readonly applied: boolean;
      /**
       * Why it was not applied, as the state machine says it (`conflict`: the configuration
       * changed since the command's CIB was read; `unknown-node`, `bad-command`).
       */
      readonly code?: string;
      readonly message?: string;
    }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly leader: string | null };

/** The cluster could not be reached or did not answer usefully; exit code 2. */
export class LiveClusterError extends Error {
  readonly exitCode = 2;
}

/** What to say instead of "use --cib FILE" (explain reads `-x FILE`). */
export interface LiveTargetOptions {
  readonly socket?: string;
  readonly config?: string;
  /** The offline alternative to suggest, e.g. 'use -x FILE to explain a CIB file'. */
  readonly offline?: string;
}

function noCluster(o: LiveTargetOptions): string {
  return o.offline
    ? NO_CLUSTER_MESSAGE.replace('use --cib FILE to edit a CIB file offline', o.offline)
    : NO_CLUSTER_MESSAGE;
}

/** This node's daemon control socket: `--socket`, else from the cluster config. */
export function liveControlSocket(o: LiveTargetOptions): string {
  if (o.socket) return o.socket;
  const config = o.config ?? DEFAULT_CONFIG_FILE;
  if (!existsSync(config)) throw new LiveClusterError(`halo: ${noCluster(o)}: ${config} does not exist`);
  try {
    const cfg = loadConfig(config);
    return controlSocketPath(cfg, resolveSelf(cfg, undefined));
  } catch (err) {
    throw new LiveClusterError(`halo: ${noCluster(o)}: ${(err as Error).message}`);
  }
}

/** Asks the daemon one question; an unreachable or silent daemon is a LiveClusterError. */
export async function askDaemon(
  socket: string,
  line: string,
  o: LiveTargetOptions = {},
  timeoutMs = LIVE_QUERY_TIMEOUT_MS,
): Promise<unknown> {
  try {
    return await queryControl(socket, line, timeoutMs);
  } catch (err) {
    throw new LiveClusterError(`halo: ${noCluster(o)}: ${(err as Error).message}`);
  }
}

export interface LiveCibView {
  /** The CIB with membership and quorum filled in, as the scheduler wants it. */
  readonly cib: Cib;
  /** `dc`: the DC's own live view; `replicated`: this node's copy, membership as it sees it. */
  readonly source: 'dc' | 'replicated';
  /** The node whose daemon answered, and the DC it knows of. */
  readonly node: string;
  readonly dc: string | null;
}

/**
 * The CIB the cluster schedules on. On the DC that is its own view (configuration, status with
 * operation history and membership, quorum). On another node the replicated CIB carries no
 * membership, so the membership and quorum this node's daemon reports are filled in (as its
 * `crm_mon` does); the answer says which it is.
 */
export async function readLiveView(socket: string, o: LiveTargetOptions = {}): Promise<LiveCibView> {
  const st = (await askDaemon(socket, 'status', o)) as Partial<DaemonStatus> & { error?: string };
  if (typeof st !== 'object' || st === null || typeof st.node !== 'string' || !Array.isArray(st.members))
    throw new LiveClusterError(
      `halo: the daemon at ${socket} did not send its status: ${st?.error ?? 'unexpected answer'}`,
    );
  const reply = (await askDaemon(socket, 'cib', o)) as { source?: string; cib?: Cib; error?: string };
  if (typeof reply !== 'object' || reply === null || typeof reply.cib !== 'object' || reply.cib === null)
    throw new LiveClusterError(
      `halo: the daemon at ${socket} did not send its CIB: ${reply?.error ?? 'no CIB in the answer'}`,
    );
  const dc = st.dc ?? null;
  if (reply.source === 'dc') return { cib: reply.cib, source: 'dc', node: st.node, dc };
  return {
    cib: withMembership(reply.cib, liveMembers(st.members), st.quorum?.quorate === true, dc),
    source: 'replicated',
    node: st.node,
    dc,
  };
}

/** The nodes a daemon's status reports as in the cluster right now (itself included). */
export function liveMembers(
  members: readonly { readonly name: string; readonly self?: boolean; readonly state?: string }[],
): ReadonlySet<string> {
  return new Set(
    members.filter((m) => m.self || m.state === 'member' || m.state === 'suspect').map((m) => m.name),
  );
}

/**
 * `cib` with each configured node's membership, quorum and DC filled in from what a daemon
 * reports, for the scheduler: a replicated CIB carries none of them (the DC's own view does).
 */
export function withMembership(cib: Cib, up: ReadonlySet<string>, quorate: boolean, dc: string | null): Cib {
  const status = cib.configuration.nodes.map((n): NodeState => {
    const name = nodeName(n);
    const s = cib.status.find((x) => x.uname === name || x.id === n.id);
    const online = up.has(name);
    return {
      ...(s ?? { transientAttributes: [], resources: [], hasLrm: true }),
      id: n.id,
      uname: name,
      inCcm: online ? 'true' : 'false',
      crmd: online ? 'online' : 'offline',
      join: online ? 'member' : 'down',
      expected: online ? 'member' : 'down',
    };
  });
  const dcId = cib.configuration.nodes.find((n) => nodeName(n) === dc)?.id;
  return cibForScheduling(cib, status, quorate, dcId);
}
