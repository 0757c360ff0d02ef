import { networkInterfaces, setPriority } from 'node:os';
import { HaloError } from '../lib/errors.ts';
import type { Logger, LogLevel } from '../lib/ports.ts';
import { type DaemonConfig, loadConfig } from './config.ts';
import { Daemon, type DaemonOptions } from './daemon.ts';
import { jsonLineLogger } from './logger.ts';
import { raftConsensus } from './raft_driver.ts';

export interface RunDaemonArgs {
  readonly configFile: string;
  readonly node?: string;
  readonly witness: boolean;
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
 * Runs a daemon until SIGTERM or SIGINT. Resolves with the exit code. Logs go to stderr as
 * JSON lines.
 */
export async function runDaemon(args: RunDaemonArgs): Promise<number> {
  const logger = jsonLineLogger((line) => process.stderr.write(line), { minLevel: args.logLevel ?? 'info' });
  const cfg = loadConfig(args.configFile);
  const node = resolveSelf(cfg, args.node);
  raiseSchedulingPriority(logger);
  const daemon = new Daemon({
    config: cfg,
    node,
    witness: args.witness,
    logger,
    consensus: args.consensus ?? raftConsensus,
  });
  await daemon.start();
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  daemon.stop();
  return 0;
}

/**
 * Nice value the daemon asks for. Membership must keep its heartbeat cadence while the node's
 * own services saturate the CPU (Corosync runs SCHED_RR for the same reason): a 600 s soak with
 * both cores spinning showed false suspicions at the default priority. Agents the executor
 * starts are put back to nice 0 (src/executor/process.ts), so services don't inherit it.
 */
export const DAEMON_NICE = -10;

function raiseSchedulingPriority(logger: Logger): void {
  try {
    setPriority(0, DAEMON_NICE);
  } catch (err) {
    logger.log(
      'warn',
      `could not raise scheduling priority to nice ${DAEMON_NICE} (needs root or CAP_SYS_NICE): heartbeats may be late when the CPU is saturated`,
      { error: (err as Error).message },
    );
  }
}
