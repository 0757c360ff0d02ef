/**
 * False-suspicion soak (issue 4): a 3-node cluster in network namespaces runs untouched for a
 * while, idle and then with every core kept busy by a spinning process, and we count how
 * often a node was marked suspect or lost although nothing failed. Goal for `lan`: 0 lost.
 *
 *   node --import tsx bench/false_suspicion_soak_bench.ts [--seconds 600] [--profile lan] [--modes idle,busy]
 *     [--node-flags daemon|none] [--realtime-priority N] [--help]   (N 0: nice -10 only, for A/B runs)
 *   (or HALO_SOAK_SECONDS=60 npm run bench -- soak)
 *
 * `--seconds` is in (0, 3600] (default: HALO_SOAK_SECONDS when set, else 600), `--profile` one
 * of lan, fast, wan, lab, `--modes` a list of idle, busy, `--realtime-priority` 0..99. `--help`
 * lists the options; a bad one (or a bad HALO_SOAK_SECONDS) exits 2 before anything starts.
 *
 * The daemons run as deployed: realtime scheduling from the config's default realtimePriority,
 * DAEMON_NODE_FLAGS via NODE_OPTIONS (`--node-flags none` leaves them out). Needs root. The busy loops are child processes killed by PID when each phase ends (and in
 * `finally`). Printed, never asserted.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { createLabCluster, type LabCluster, waitFor } from '../src/daemon/lab_cluster.ts';
import { DAEMON_NODE_FLAGS } from '../src/daemon/node_flags.ts';
import { hasNetnsSupport } from '../src/lab/netns.ts';
import { PROFILE_NAMES } from '../src/membership/profiles.ts';
import { benchArgs, listOf, oneOf, option, optionalOption, positiveNumber, wholeNumber } from './args.ts';

const NODES = ['s1', 's2', 's3'];
const MAX_SECONDS = 3600;

const CLI = {
  name: 'false_suspicion_soak_bench',
  summary:
    'False-suspicion soak: a 3-node cluster in network namespaces runs untouched, idle and then with every core busy, and counts nodes marked suspect or lost although nothing failed (needs root; printed, never asserted).',
  options: {
    seconds: option({
      metavar: 'S',
      help: 'seconds per mode',
      check: positiveNumber(MAX_SECONDS),
      default: '600',
      env: 'HALO_SOAK_SECONDS',
    }),
    profile: option({ metavar: 'NAME', help: 'timing profile', check: oneOf(PROFILE_NAMES), default: 'lan' }),
    modes: option({
      metavar: 'LIST',
      help: 'phases to run, in order',
      check: listOf(oneOf(['idle', 'busy'])),
      default: 'idle,busy',
    }),
    'node-flags': option({
      metavar: 'NAME',
      help: 'start the daemons with DAEMON_NODE_FLAGS (daemon) or without (none)',
      check: oneOf(['daemon', 'none']),
      default: 'daemon',
    }),
    'realtime-priority': optionalOption({
      metavar: 'N',
      help: "override the config's realtimePriority (0: nice -10 only, for A/B runs)",
      check: wholeNumber(0, 99),
    }),
  },
} as const;

async function allMembers(c: LabCluster): Promise<true | undefined> {
  const sts = await Promise.all(NODES.map((n) => c.status(n)));
  return sts.every((s) => s.members.every((m) => m.self || m.state === 'member')) ? true : undefined;
}

function count(c: LabCluster, to: string, fromMs: number): number {
  let n = 0;
  for (const node of NODES) {
    for (const l of c.logLines(node))
      if (l.event === 'member-state' && l.to === to && (l.t as number) >= fromMs) n++;
  }
  return n;
}

function rssMb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

function spinners(n: number, seconds: number): ChildProcess[] {
  // Each spinner stops by itself after `seconds` too, so none can outlive the benchmark.
  const code = `const end = Date.now() + ${seconds * 1000}; while (Date.now() < end) {}`;
  return Array.from({ length: n }, () => spawn(process.execPath, ['-e', code], { stdio: 'ignore' }));
}

async function main(): Promise<void> {
  const { seconds, profile, modes, 'node-flags': nodeFlags, 'realtime-priority': rt } = benchArgs(CLI);
  if (nodeFlags === 'daemon')
    process.env.NODE_OPTIONS = [process.env.NODE_OPTIONS ?? '', ...DAEMON_NODE_FLAGS].join(' ').trim();
  if (!hasNetnsSupport()) {
    console.log('false_suspicion_soak_bench: skipped (needs root and ip netns)');
    return;
  }
  const c = createLabCluster({ nodes: NODES, links: 2, profile });
  const spin: ChildProcess[] = [];
  try {
    if (rt !== undefined) {
      // A/B runs: the same cluster with another scheduling setting (0: nice only).
      const file = join(c.dir, 'halo.json');
      writeFileSync(
        file,
        JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), realtimePriority: rt }),
      );
    }
    for (const n of NODES) c.start(n);
    await waitFor('cluster to form', 60_000, () => allMembers(c));
    const policy = (n: string): string =>
      /policy: (\S+)/.exec(spawnSync('chrt', ['-p', String(c.pid(n))], { encoding: 'utf8' }).stdout)?.[1] ??
      '?';
    console.log(`daemon scheduling: ${NODES.map((n) => `${n} ${policy(n)}`).join(', ')}`);
    for (const mode of modes) {
      const from = Date.now();
      const loadBefore = loadavg()[0]!.toFixed(1);
      if (mode === 'busy') spin.push(...spinners(availableParallelism(), seconds));
      await new Promise((r) => setTimeout(r, seconds * 1000));
      for (const p of spin.splice(0))
        if (p.pid !== undefined && p.exitCode === null) process.kill(p.pid, 'SIGKILL');
      const sts = await Promise.all(NODES.map((n) => c.status(n)));
      const maxDeadtime = Math.max(...sts.flatMap((s) => s.members.map((m) => m.deadtimeMs ?? 0)));
      const maxMean = Math.max(...sts.flatMap((s) => s.members.map((m) => m.meanIntervalMs ?? 0)));
      const rss = NODES.map((n) => rssMb(c.pid(n)) ?? Number.NaN);
      console.log(
        `${profile} ${mode.padEnd(4)} ${seconds} s, 3 nodes, 2 links: false suspect ${count(c, 'suspect', from)}, ` +
          `false lost ${count(c, 'lost', from)}, paused ${NODES.reduce((a, n) => a + c.logLines(n).filter((l) => l.event === 'paused' && (l.t as number) >= from).length, 0)}, ` +
          `adaptive deadtime at end up to ${maxDeadtime} ms (mean heartbeat interval up to ${maxMean} ms); ` +
          `VmRSS at end ${rss.map((r) => r.toFixed(1)).join('/')} MB; load average (1 min) ${loadBefore} at start, ${loadavg()[0]!.toFixed(1)} at end`,
      );
    }
  } finally {
    for (const p of spin) if (p.pid !== undefined && p.exitCode === null) process.kill(p.pid, 'SIGKILL');
    c.destroy();
  }
}

await main();
