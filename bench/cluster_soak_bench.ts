/**
 * Cluster soak (issue 7's acceptance): the `web` lab scenario (3 nodes, VIP + web server, lab
 * fencing) runs untouched for --seconds per mode, idle and then with one bounded busy loop per
 * core, while src/lab/soak.ts samples it every 250 ms. Goal: zero unplanned failovers (no
 * resource moves or restarts, no failures, no node lost) in every mode.
 *
 *   node --import tsx bench/cluster_soak_bench.ts [--seconds 600] [--modes idle,busy] [--profile lan] [--verbose] [--help]
 *
 * `--seconds` is in (0, 3600], `--modes` a list of idle, busy, `--profile` one of lan, fast,
 * wan, lab. `--help` lists the options; a bad one exits 2 before the lab is created.
 *
 * Needs root (network namespaces). The lab lives in a fresh temp directory and is always torn
 * down (lab down: daemons, namespaces, files); busy loops are killed by PID. Printed, not
 * asserted; the exit code is 1 when any mode counted an unplanned failover.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown, labUp } from '../src/lab/lab.ts';
import { hasNetnsSupport } from '../src/lab/netns.ts';
import { WEB_SERVER_RESOURCE } from '../src/lab/scenarios.ts';
import {
  formatSoakResult,
  MAX_SOAK_SECONDS,
  type SoakMode,
  type SoakSample,
  soakPhase,
  waitSteady,
} from '../src/lab/soak.ts';
import { PROFILE_NAMES } from '../src/membership/profiles.ts';
import { type BenchArgs, benchArgs, flag, listOf, oneOf, option, positiveNumber } from './args.ts';

/** How long the scenario may take to be running everywhere after `lab up` returns. */
const SETTLE_DEADLINE_MS = 120_000;

const CLI = {
  name: 'cluster_soak_bench',
  summary:
    'Cluster soak: the `web` lab scenario (3 nodes, VIP + web server, lab fencing) runs untouched per mode, idle and then with every core busy; goal: zero unplanned failovers (needs root; exit code 1 when any mode counted one).',
  options: {
    seconds: option({
      metavar: 'S',
      help: 'seconds per mode',
      check: positiveNumber(MAX_SOAK_SECONDS),
      default: '600',
    }),
    modes: option({
      metavar: 'LIST',
      help: 'phases to run, in order',
      check: listOf(oneOf<SoakMode>(['idle', 'busy'])),
      default: 'idle,busy',
    }),
    profile: option({ metavar: 'NAME', help: 'timing profile', check: oneOf(PROFILE_NAMES), default: 'lan' }),
    verbose: flag('print the lab and soak progress as it happens'),
  },
} as const;

async function main(values: BenchArgs<typeof CLI.options>): Promise<number> {
  const { seconds, modes, profile } = values;
  if (!hasNetnsSupport()) {
    console.log('cluster_soak_bench: skipped (needs root and ip netns)');
    return 0;
  }
  const say = (line: string): void => console.log(`  ${new Date().toISOString()} ${line}`);
  const dir = mkdtempSync(join(tmpdir(), 'halo-soak-'));
  let failovers = 0;
  try {
    const t0 = Date.now();
    const state = await labUp({
      dir,
      nodes: 3,
      scenario: 'web',
      profile,
      ...(values.verbose ? { say } : {}),
    });
    let baseline: SoakSample = await waitSteady(state, SETTLE_DEADLINE_MS);
    console.log(
      `web scenario up and settled in ${Date.now() - t0} ms: DC ${baseline.dc}, web on ${baseline.active.get(WEB_SERVER_RESOURCE)}, profile ${profile}, ${availableParallelism()} cores`,
    );
    for (const mode of modes) {
      const r = await soakPhase({
        state,
        mode,
        seconds,
        cores: availableParallelism(),
        baseline,
        ...(values.verbose ? { say } : {}),
      });
      for (const e of r.events) console.log(`  ${new Date(e.tMs).toISOString()} ${e.kind}: ${e.what}`);
      console.log(formatSoakResult(r));
      failovers += r.unplannedFailovers;
      baseline = r.last;
    }
  } finally {
    await labDown(dir).catch((err: Error) => console.error(`lab down: ${err.message}`));
    rmSync(dir, { recursive: true, force: true });
  }
  return failovers === 0 ? 0 : 1;
}

main(benchArgs(CLI)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    console.error(`cluster_soak_bench: ${err.message}`);
    process.exitCode = 2;
  },
);
