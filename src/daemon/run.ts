import { spawnSync } from 'node:child_process';
import { networkInterfaces, setPriority } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { HaloError } from '../lib/errors.ts';
import type { Logger, LogLevel } from '../lib/ports.ts';
import { controlSocketPath, type DaemonConfig, loadConfig } from './config.ts';
import { Daemon, type DaemonOptions, shutdownOnSignals } from './daemon.ts';
import { jsonLineLogger } from './logger.ts';
import { raftConsensus } from './raft_driver.ts';

export interface RunDaemonArgs {
  readonly configFile: string;
  readonly node?: string;
  readonly witness: boolean;
  /** A fresh node joining a running cluster (after `halo cluster join` on a member). */
  readonly join?: boolean;
  readonly logLevel?: LogLevel;
  /** Defaults to Raft (raft_driver.ts); tests may pass another. */
  readonly consensus?: DaemonOptions['consensus'];
}

/**
 * Which node this host is: the one named by `--node`, else the single configured node one of
 * whose link addresses is on a local interface.
 */
export function resolveSelf(cfg: DaemonConfig, node: string | undefined): string {
  if (node !== undefined) return node;
  const local = new Set(
    Object.values(networkInterfaces())
      .flat()
      .map((i) => i?.address),
  );
  const mine = cfg.nodes.filter((n) => n.links.some((l) => local.has(l.host)));
  if (mine.length === 1) return mine[0]!.name;
  const why =
    mine.length === 0
      ? 'none of the configured link addresses is on this host'
      : `several nodes match (${mine.map((n) => n.name).join(', ')})`;
  throw new HaloError(
    'unknown-node',
    `${cfg.file}: cannot tell which node this is: ${why}; pass --node NAME`,
  );
}

/**
 * After this node's removal committed, it stops this much later: answers in flight (the
 * `halo cluster leave` that removed it, forwarded through this node) still go out.
 */
export const REMOVED_STOP_DELAY_MS = 1_000;

/**
 * Where the daemon's log lines go: stderr, while anyone reads it. Once the reader has gone
 * (`halo daemon … 2>&1 | tee log` and tee is killed, a log collector restarted), every write
 * fails with EPIPE, which unhandled would end the daemon, and a node whose daemon dies is
 * fenced. Lines from then on are dropped and the daemon serves on; other write errors stay fatal.
 */
export function stderrUntilReaderGone(
  stream: Pick<NodeJS.WriteStream, 'write'> & {
    on(event: 'error', listener: (err: NodeJS.ErrnoException) => void): unknown;
  } = process.stderr,
): (line: string) => void {
  let readerGone = false;
  stream.on('error', (err) => {
    if (err.code !== 'EPIPE') throw err;
    readerGone = true;
  });
  return (line) => {
    if (!readerGone) stream.write(line);
  };
}

/**
 * Runs a daemon until SIGTERM or SIGINT (then shuts down cleanly, see `Daemon.shutdown`), or until
 * this node is removed from the cluster. Resolves with the exit code: 0, or 1 when the shutdown
 * was not clean. Logs go to stderr as JSON lines.
 */
export async function runDaemon(args: RunDaemonArgs): Promise<number> {
  const logger = jsonLineLogger(stderrUntilReaderGone(), { minLevel: args.logLevel ?? 'info' });
  const cfg = loadConfig(args.configFile);
  const node = resolveSelf(cfg, args.node);
  raiseSchedulingPriority(logger, cfg.realtimePriority);
  exportAgentEnvironment(cfg, node, args.configFile);
  let removed = (): void => {};
  const daemon = new Daemon({
    config: cfg,
    node,
    witness: args.witness,
    logger,
    consensus: args.consensus ?? raftConsensus,
    join: args.join === true,
    // `halo cluster leave` committed: this node is no member any more; stop like on SIGTERM.
    onRemoved: () => setTimeout(() => removed(), REMOVED_STOP_DELAY_MS),
  });
  await daemon.start();
  const wasRemoved = new Promise<'removed'>((resolve) => {
    removed = () => resolve('removed');
  });
  // SIGTERM/SIGINT: a clean shutdown moves this node's resources away first (bounded by
  // shutdown-escalation; a second signal exits at once). A node removed by `halo cluster leave`
  // runs nothing any more and just stops.
  const outcome = await Promise.race([shutdownOnSignals(daemon), wasRemoved]);
  if (outcome === 'removed') {
    daemon.stop();
    return 0;
  }
  return outcome.clean ? 0 : 1;
}

/**
 * Tells every process the daemon starts (resource and fence agents, e.g. `halo:volume`'s
 * fence-peer handler calling back into the cluster) which daemon it runs under: this node's
 * control socket, the absolute config file and the node name.
 */
export function exportAgentEnvironment(
  cfg: DaemonConfig,
  node: string,
  configFile: string,
  env: NodeJS.ProcessEnv = process.env,
): void {
  env.HALO_CONTROL_SOCKET = resolvePath(controlSocketPath(cfg, node));
  env.HALO_CLUSTER_CONFIG = resolvePath(configFile);
  env.HALO_CLUSTER_NODE = node;
}

/**
 * Nice value the daemon asks for when realtime scheduling is off or refused. Membership must
 * keep its heartbeat cadence while the node's own services saturate the CPU: a 600 s soak with
 * both cores spinning showed false suspicions at the default priority.
 */
export const DAEMON_NICE = -10;

/** Longest wait for `chrt` to answer. */
const CHRT_TIMEOUT_MS = 5_000;

export type SchedulingOutcome =
  | { readonly policy: 'rr'; readonly priority: number }
  | { readonly policy: 'nice'; readonly nice: number; readonly why: string }
  | { readonly policy: 'default'; readonly why: string };

/**
 * Raises this process's scheduling like Corosync does (SCHED_RR): with `realtimePriority` > 0,
 * every thread of the daemon runs SCHED_RR at that priority, so a busy loop in any ordinary
 * process cannot delay a heartbeat by more than the kernel's scheduling latency. The
 * reset-on-fork flag makes every process the daemon starts (resource agents, fence agents,
 * their children) begin as SCHED_OTHER with nice 0: services never inherit realtime priority
 * or a negative nice. Threads created later (libuv's pool) start SCHED_OTHER for the same
 * reason; the ones that time heartbeats (main thread, V8's GC helpers) exist already.
 *
 * Needs root or CAP_SYS_NICE; without it, or with `realtimePriority` 0, falls back to nice
 * DAEMON_NICE, and without that too logs a warning and runs at the default priority.
 */
export function raiseSchedulingPriority(
  logger: Logger,
  realtimePriority: number,
  pid: number = process.pid,
): SchedulingOutcome {
  let rrWhy = 'realtimePriority is 0 in the config';
  if (realtimePriority > 0) {
    const r = spawnSync(
      'chrt',
      ['--all-tasks', '--reset-on-fork', '--rr', '--pid', String(realtimePriority), String(pid)],
      { encoding: 'utf8', timeout: CHRT_TIMEOUT_MS },
    );
    if (r.status === 0) {
      logger.log('info', `scheduling: SCHED_RR priority ${realtimePriority} (reset on fork)`, {
        event: 'scheduling',
        policy: 'rr',
        priority: realtimePriority,
      });
      return { policy: 'rr', priority: realtimePriority };
    }
    rrWhy = (r.error?.message ?? r.stderr.trim()) || `chrt exited with ${r.status}`;
    logger.log(
      'warn',
      `could not switch to realtime scheduling (SCHED_RR ${realtimePriority}; needs root or CAP_SYS_NICE): ${rrWhy}; heartbeats may be late when the CPU is saturated`,
      { event: 'scheduling', policy: 'rr-refused' },
    );
  }
  try {
    setPriority(pid, DAEMON_NICE);
    return { policy: 'nice', nice: DAEMON_NICE, why: rrWhy };
  } catch (err) {
    const why = (err as Error).message;
    logger.log(
      'warn',
      `could not raise scheduling priority to nice ${DAEMON_NICE} (needs root or CAP_SYS_NICE): heartbeats may be late when the CPU is saturated`,
      { event: 'scheduling', policy: 'default', error: why },
    );
    return { policy: 'default', why };
  }
}
