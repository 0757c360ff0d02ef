/**
 * Executor bench: how long an agent keeps a failover waiting.
 *
 *   node --import tsx bench/executor_bench.ts [--iterations N] [--help]
 *
 * `--iterations` is 1..10000 (default 20); `--help` lists the options; a bad one exits 2
 * before anything runs.
 *
 * 1. "start requested" → "started and monitor OK" for halo:vip versus ocf:heartbeat:IPaddr2,
 *    each run inside a lab network namespace (root needed), N times, alternating.
 * 2. ops/s for ocf:heartbeat:Dummy start/monitor/stop: one resource at a time, and 8 resources
 *    in parallel through the executor's bound.
 * 3. The executor's own bookkeeping: ops/s through the in-memory runner (no processes).
 * Prints figures only; nothing here asserts on time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Executor } from '../src/executor/executor.ts';
import { MemoryAgentRunner } from '../src/executor/memory_runner.ts';
import { ShellAgentRunner } from '../src/executor/runner.ts';
import { createLabNet, hasNetnsSupport } from '../src/lab/netns.ts';
import { benchArgs, option, wholeNumber } from './args.ts';

const DUMMY_CYCLES = 30;

const CLI = {
  name: 'executor_bench',
  summary:
    'How long an agent keeps a failover waiting: halo:vip versus ocf:heartbeat:IPaddr2 start → monitor OK in a lab namespace (root needed), Dummy ops/s one at a time and 8 in parallel, and the executor bookkeeping alone (printed, never asserted).',
  options: {
    iterations: option({
      metavar: 'N',
      help: 'start → monitor rounds per VIP agent',
      check: wholeNumber(1, 10_000),
      default: '20',
    }),
  },
} as const;

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `median ${q(0.5).toFixed(1)} ms, p90 ${q(0.9).toFixed(1)} ms, min ${s[0]!.toFixed(1)} ms, max ${s[s.length - 1]!.toFixed(1)} ms (n=${s.length})`;
}

async function vipBench(iterations: number): Promise<void> {
  if (!hasNetnsSupport()) {
    console.log('vip: skipped (needs root and ip netns)');
    return;
  }
  const net = createLabNet({ nodes: ['a', 'b'] });
  const ns = net.node('a').ns;
  const ex = new Executor({ runner: new ShellAgentRunner() });
  const agents = {
    'halo:vip': { ip: '198.18.0.150', cidr_netmask: '24', nic: 'link0' },
    'ocf:heartbeat:IPaddr2': { ip: '198.18.0.151', cidr_netmask: '24', nic: 'link0' },
  } as const;
  const times: Record<string, number[]> = { 'halo:vip': [], 'ocf:heartbeat:IPaddr2': [] };
  try {
    for (let i = 0; i < iterations; i++) {
      for (const [agent, params] of Object.entries(agents)) {
        const op = (action: string) =>
          ex.submit({
            resource: `vip-${agent.length}`,
            agent,
            action,
            intervalMs: 0,
            timeoutMs: 30_000,
            params,
            netns: ns,
          });
        const t0 = performance.now();
        const start = await op('start');
        const mon = await op('monitor');
        const t1 = performance.now();
        if (start.rc !== 0 || mon.rc !== 0)
          throw new Error(`${agent}: start rc ${start.rc}, monitor rc ${mon.rc}: ${start.exitReason ?? ''}`);
        times[agent]!.push(t1 - t0);
        const stop = await op('stop');
        if (stop.rc !== 0) throw new Error(`${agent}: stop rc ${stop.rc}`);
      }
    }
    for (const [agent, ms] of Object.entries(times))
      console.log(`start→monitor OK  ${agent.padEnd(22)} ${stats(ms)}`);
  } finally {
    ex.close();
    net.destroy();
  }
}

async function dummyBench(parallel: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'halo-bench-'));
  const ex = new Executor({ runner: new ShellAgentRunner(), maxParallel: Math.max(parallel, 1) });
  try {
    const t0 = performance.now();
    let ops = 0;
    await Promise.all(
      Array.from({ length: parallel }, async (_, r) => {
        const params = { state: join(dir, `d${r}.state`) };
        for (let c = 0; c < DUMMY_CYCLES; c++) {
          for (const action of ['start', 'monitor', 'stop']) {
            const res = await ex.submit({
              resource: `d${r}`,
              agent: 'ocf:heartbeat:Dummy',
              action,
              intervalMs: 0,
              timeoutMs: 20_000,
              params,
            });
            if (res.rc !== 0) throw new Error(`Dummy ${action} rc ${res.rc}`);
            ops++;
          }
        }
      }),
    );
    const s = (performance.now() - t0) / 1000;
    console.log(
      `ocf:heartbeat:Dummy start/monitor/stop, ${parallel} resource(s) in parallel: ${(ops / s).toFixed(0)} ops/s (${ops} ops in ${s.toFixed(2)} s)`,
    );
  } finally {
    ex.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function bookkeepingBench(): Promise<void> {
  const ex = new Executor({ runner: new MemoryAgentRunner() });
  const ops = 20_000;
  const t0 = performance.now();
  for (let i = 0; i < ops / 2; i++) {
    const resource = `m${i % 64}`;
    await ex.submit({
      resource,
      agent: 'ocf:heartbeat:Dummy',
      action: 'start',
      intervalMs: 0,
      timeoutMs: 1000,
      params: { n: String(i) },
    });
    await ex.submit({
      resource,
      agent: 'ocf:heartbeat:Dummy',
      action: 'stop',
      intervalMs: 0,
      timeoutMs: 1000,
      params: { n: String(i) },
    });
  }
  const s = (performance.now() - t0) / 1000;
  console.log(`executor bookkeeping (in-memory runner, digest included): ${(ops / s).toFixed(0)} ops/s`);
  ex.close();
}

async function main(): Promise<void> {
  const { iterations } = benchArgs(CLI);
  console.log(`executor bench: node ${process.version}, ${iterations} iterations`);
  await vipBench(iterations);
  await dummyBench(1);
  await dummyBench(8);
  await bookkeepingBench();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
