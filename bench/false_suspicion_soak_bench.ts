/**
 * False-suspicion soak (issue 4): a 3-node cluster in network namespaces runs untouched for a
 * while, idle and then with every core kept busy by a spinning process, and we count how
 * often a node was marked suspect or lost although nothing failed. Goal for `lan`: 0 lost.
 *
 *   node --import tsx bench/false_suspicion_soak_bench.ts [--seconds 600] [--profile lan] [--modes idle,busy]
 *   (or HALO_SOAK_SECONDS=60 npm run bench -- soak)
 *
 * Needs root. The busy loops are child processes killed by PID when each phase ends (and in
 * `finally`). Printed, never asserted.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { createLabCluster, type LabCluster, waitFor } from '../src/daemon/lab_cluster.ts';
import { hasNetnsSupport } from '../src/lab/netns.ts';
import { isProfileName, type ProfileName } from '../src/membership/profiles.ts';

const NODES = ['s1', 's2', 's3'];
const MAX_SECONDS = 3600;

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

function spinners(n: number, seconds: number): ChildProcess[] {
  // Each spinner stops by itself after `seconds` too, so none can outlive the benchmark.
  const code = `const end = Date.now() + ${seconds * 1000}; while (Date.now() < end) {}`;
  return Array.from({ length: n }, () => spawn(process.execPath, ['-e', code], { stdio: 'ignore' }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: process.env.HALO_SOAK_SECONDS ?? '600' },
      profile: { type: 'string', default: 'lan' },
      modes: { type: 'string', default: 'idle,busy' },
    },
  });
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_SECONDS)
    throw new Error(`--seconds must be in (0, ${MAX_SECONDS}]`);
  const profile = values.profile ?? 'lan';
  if (!isProfileName(profile)) throw new Error(`unknown profile '${profile}'`);
  const modes = (values.modes ?? '').split(',');
  for (const m of modes)
    if (m !== 'idle' && m !== 'busy') throw new Error(`unknown mode '${m}' (idle, busy)`);
  if (!hasNetnsSupport()) {
    console.log('false_suspicion_soak_bench: skipped (needs root and ip netns)');
    return;
  }
  const c = createLabCluster({ nodes: NODES, links: 2, profile: profile as ProfileName });
  const spin: ChildProcess[] = [];
  try {
    for (const n of NODES) c.start(n);
    await waitFor('cluster to form', 60_000, () => allMembers(c));
    for (const mode of modes) {
      const from = Date.now();
      if (mode === 'busy') spin.push(...spinners(availableParallelism(), seconds));
      await new Promise((r) => setTimeout(r, seconds * 1000));
      for (const p of spin.splice(0))
        if (p.pid !== undefined && p.exitCode === null) process.kill(p.pid, 'SIGKILL');
      const sts = await Promise.all(NODES.map((n) => c.status(n)));
      const maxDeadtime = Math.max(...sts.flatMap((s) => s.members.map((m) => m.deadtimeMs ?? 0)));
      console.log(
        `${profile} ${mode.padEnd(4)} ${seconds} s, 3 nodes, 2 links: false suspect ${count(c, 'suspect', from)}, ` +
          `false lost ${count(c, 'lost', from)}, paused ${NODES.reduce((a, n) => a + c.logLines(n).filter((l) => l.event === 'paused' && (l.t as number) >= from).length, 0)}, ` +
          `adaptive deadtime at end up to ${maxDeadtime} ms`,
      );
    }
  } finally {
    for (const p of spin) if (p.pid !== undefined && p.exitCode === null) process.kill(p.pid, 'SIGKILL');
    c.destroy();
  }
}

await main();
