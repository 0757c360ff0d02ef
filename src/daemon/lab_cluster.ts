import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLabNet, type LabNet } from '../lab/netns.ts';
import { HaloError } from '../lib/errors.ts';
import { waitFor } from '../lib/wait.ts';
import type { ProfileName } from '../membership/profiles.ts';
import { generateKeyFile } from '../transport/key_file.ts';
import { queryControl } from './control.ts';
import type { DaemonStatus } from './daemon.ts';
import { DAEMON_NODE_FLAGS } from './node_flags.ts';

/** Daemon log bytes kept per node for diagnostics (the tail is what matters). */
const MAX_LOG_BYTES = 256 * 1024;
export const DAEMON_PORT = 5405;
/** Run compiled (dist/…/main.js, plain node) when this file is compiled, else from source with tsx. */
const COMPILED = import.meta.url.endsWith('.js');
const MAIN = fileURLToPath(new URL(COMPILED ? './main.js' : './main.ts', import.meta.url));
const NODE_ARGS = [...DAEMON_NODE_FLAGS, ...(COMPILED ? [MAIN] : ['--import', 'tsx', MAIN])];

/**
 * A real cluster for tests and benchmarks: one network namespace and one `halo daemon` process
 * per node (run from source with tsx), a fresh key and config in a temp dir. `destroy()` kills
 * every daemon it started (by PID) and removes the namespaces and the temp dir; call it in
 * `finally`.
 */
export interface LabCluster {
  readonly net: LabNet;
  readonly dir: string;
  readonly names: readonly string[];
  /** PID of each running daemon. */
  pid(name: string): number | undefined;
  start(name: string): void;
  /** SIGKILL (kill -9) of one daemon; returns the wall time just before the signal. */
  kill9(name: string): number;
  /**
   * Sends one SIGTERM (a clean shutdown) to a daemon and resolves with its exit code once it
   * has exited; rejects if it is still running after `deadlineMs` (it is left running: `destroy`
   * kills it).
   */
  terminate(name: string, deadlineMs: number): Promise<number | null>;
  status(name: string): Promise<DaemonStatus>;
  /** Sends one control command line (e.g. `cib {...}`) to a daemon and returns its answer. */
  command(name: string, line: string): Promise<unknown>;
  /** The last `bytes` of what the daemon wrote to stderr, for failure messages. */
  logTail(name: string, bytes?: number): string;
  /** Every JSON log line the daemon printed (within the kept tail). */
  logLines(name: string): Array<Record<string, unknown>>;
  destroy(): void;
}

export function createLabCluster(opts: {
  nodes: readonly string[];
  links?: number;
  profile?: ProfileName;
  witness?: string;
  /** Extra daemon arguments, e.g. ['--log-level', 'debug']. */
  extraArgs?: readonly string[];
}): LabCluster {
  const net = createLabNet({ nodes: opts.nodes, links: opts.links ?? 1 });
  const dir = mkdtempSync(join(tmpdir(), 'halo-lab-'));
  const procs = new Map<string, ChildProcess>();
  const logs = new Map<string, string>();
  try {
    generateKeyFile(join(dir, 'authkey'));
    const config = {
      cluster: `lab-${net.tag}`,
      keyFile: join(dir, 'authkey'),
      profile: opts.profile ?? 'lab',
      stateDir: join(dir, 'state'),
      controlSocket: join(dir, '{node}.sock'),
      nodes: net.nodes.map((n, i) => ({
        id: i + 1,
        name: n.name,
        links: n.addrs.map((a) => `${a}:${DAEMON_PORT}`),
        ...(n.name === opts.witness ? { witness: true } : {}),
      })),
    };
    writeFileSync(join(dir, 'halo.json'), JSON.stringify(config, null, 2));
  } catch (err) {
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const start = (name: string): void => {
    const n = net.node(name);
    const args = [
      'netns',
      'exec',
      n.ns,
      process.execPath,
      ...NODE_ARGS,
      '--config',
      join(dir, 'halo.json'),
      '--node',
      name,
    ];
    if (name === opts.witness) args.push('--witness');
    const p = spawn('ip', [...args, ...(opts.extraArgs ?? [])], {
      stdio: ['ignore', 'ignore', 'pipe'],
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
    });
    p.stderr?.setEncoding('utf8');
    p.stderr?.on('data', (d: string) => {
      const s = (logs.get(name) ?? '') + d;
      logs.set(name, s.length > MAX_LOG_BYTES ? s.slice(s.length - MAX_LOG_BYTES) : s);
    });
    procs.set(name, p);
  };
  return {
    net,
    dir,
    names: opts.nodes,
    pid: (name) => procs.get(name)?.pid,
    start,
    kill9(name) {
      const p = procs.get(name);
      if (!p?.pid) throw new HaloError('not-running', `daemon ${name} is not running`);
      const t = Date.now();
      process.kill(p.pid, 'SIGKILL');
      procs.delete(name);
      return t;
    },
    terminate(name, deadlineMs) {
      const p = procs.get(name);
      if (!p?.pid || p.exitCode !== null || p.signalCode !== null)
        return Promise.reject(new HaloError('not-running', `daemon ${name} is not running`));
      const pid = p.pid;
      return new Promise<number | null>((resolve, reject) => {
        const timer = setTimeout(() => {
          p.off('exit', onExit);
          reject(new Error(`daemon ${name} still runs ${deadlineMs} ms after one SIGTERM`));
        }, deadlineMs);
        const onExit = (code: number | null): void => {
          clearTimeout(timer);
          procs.delete(name);
          resolve(code);
        };
        p.once('exit', onExit);
        process.kill(pid, 'SIGTERM');
      });
    },
    command(name, line) {
      return queryControl(join(dir, `${name}.sock`), line, 10_000);
    },
    async status(name) {
      return (await queryControl(join(dir, `${name}.sock`), 'status', 2000)) as DaemonStatus;
    },
    logTail(name, bytes = 2000) {
      return (logs.get(name) ?? '').slice(-bytes);
    },
    logLines(name) {
      return (logs.get(name) ?? '')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        });
    },
    destroy() {
      for (const p of procs.values()) {
        if (p.pid !== undefined && p.exitCode === null) {
          try {
            process.kill(p.pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
      }
      procs.clear();
      net.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polling with a deadline lives in `src/lib/wait.ts`; re-exported for this module's users. */
export { waitFor } from '../lib/wait.ts';

/** How long three lab daemons may take to form a cluster and agree on a DC (busy 2-core host). */
export const LAB_FORM_DEADLINE_MS = 30_000;

/** Waits until every named daemon reports the same DC, and returns it. */
export function agreedDc(
  lab: Pick<LabCluster, 'status'>,
  names: readonly string[],
  deadlineMs = LAB_FORM_DEADLINE_MS,
): Promise<string> {
  return waitFor('the cluster to agree on a DC', deadlineMs, async () => {
    const seen = await Promise.all(
      names.map((n) =>
        lab.status(n).then(
          (s) => s.dc,
          () => undefined,
        ),
      ),
    );
    return seen[0] && seen.every((d) => d === seen[0]) ? seen[0] : undefined;
  });
}

/** Starts every named daemon of `lab` and waits until they agree on a DC, which it returns. */
export function startAndAgree(
  lab: Pick<LabCluster, 'start' | 'status'>,
  names: readonly string[],
  deadlineMs = LAB_FORM_DEADLINE_MS,
): Promise<string> {
  for (const n of names) lab.start(n);
  return agreedDc(lab, names, deadlineMs);
}
