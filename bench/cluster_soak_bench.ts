/**
 * Cluster soak (issue 7's acceptance): the `web` lab scenario (3 nodes, VIP + web server, lab
 * fencing) runs untouched for --seconds per mode, idle and then with one bounded busy loop per
 * core, while src/lab/soak.ts samples it every 250 ms. Goal: zero unplanned failovers (no
 * resource moves or restarts, no failures, no node lost) in every mode.
 *
 *   node --import tsx bench/cluster_soak_bench.ts [--seconds 600] [--modes idle,busy] [--profile lan] [--verbose]
 *
 * Needs root (network namespaces). The lab lives in a fresh temp directory and is always torn
 * down (lab down: daemons, namespaces, files); busy loops are killed by PID. Printed, not
 * asserted; the exit code is 1 when any mode counted an unplanned failover.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
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
import { isProfileName } from '../src/membership/profiles.ts';

/** How long the scenario may take to be running everywhere after `lab up` returns. */
const SETTLE_DEADLINE_MS = 120_000;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '600' },
      modes: { type: 'string', default: 'idle,busy' },
      profile: { type: 'string', default: 'lan' },
      verbose: { type: 'boolean', default: false },
    },
  });
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_SOAK_SECONDS)
    throw new Error(`--seconds must be in (0, ${MAX_SOAK_SECONDS}], got '${values.seconds}'`);
  const profile = values.profile ?? 'lan';
  if (!isProfileName(profile)) throw new Error(`unknown --profile '${profile}'`);
  const modes = (values.modes ?? '').split(',') as SoakMode[];
  for (const m of modes)
    if (m !== 'idle' && m !== 'busy') throw new Error(`unknown mode '${m}' (idle, busy)`);
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

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    console.error(`cluster_soak_bench: ${err.message}`);
    process.exitCode = 2;
  },
);
