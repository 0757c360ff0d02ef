/**
 * CIB change commit latency (issue 4): a 3-node cluster in network namespaces; one client
 * proposes CIB changes one after another on the DC's control socket and waits for each to be
 * committed (on a majority, fsynced) and applied on the DC. Prints p50/p99 round trips, which
 * include the local control-socket hop (~0.2 ms).
 *
 *   node --import tsx bench/cib_commit_bench.ts [--changes 200] [--profile lan] [--links 2] [--help]
 *
 * `--changes` is 1..100000 (default: HALO_BENCH_CHANGES when set, else 200), `--profile` one of
 * lan, fast, wan, lab, `--links` 1..8. `--help` lists the options; a bad one (or a bad
 * HALO_BENCH_CHANGES) exits 2 before anything starts. Needs root. Printed, never asserted.
 */
import { createLabCluster, type LabCluster, waitFor } from '../src/daemon/lab_cluster.ts';
import { hasNetnsSupport } from '../src/lab/netns.ts';
import { PROFILE_NAMES } from '../src/membership/profiles.ts';
import { benchArgs, oneOf, option, wholeNumber } from './args.ts';

const NODES = ['c1', 'c2', 'c3'];
const MAX_CHANGES = 100_000;
/** The lab's limit on links per node (src/lab/netns.ts). */
const MAX_LINKS = 8;

const CLI = {
  name: 'cib_commit_bench',
  summary:
    "CIB change commit latency: a 3-node cluster in network namespaces; one client proposes changes one after another on the DC's control socket and waits for each to be committed and applied (needs root; printed, never asserted).",
  options: {
    changes: option({
      metavar: 'N',
      help: 'changes to commit, one after another',
      check: wholeNumber(1, MAX_CHANGES),
      default: '200',
      env: 'HALO_BENCH_CHANGES',
    }),
    profile: option({ metavar: 'NAME', help: 'timing profile', check: oneOf(PROFILE_NAMES), default: 'lan' }),
    links: option({ metavar: 'N', help: 'links per node', check: wholeNumber(1, MAX_LINKS), default: '2' }),
  },
} as const;

async function leaderOf(c: LabCluster): Promise<string | undefined> {
  const sts = await Promise.all(NODES.map((n) => c.status(n)));
  const dcs = new Set(sts.map((s) => s.dc));
  const dc = sts[0]!.dc;
  return dcs.size === 1 && dc ? dc : undefined;
}

function pct(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const { changes, profile, links } = benchArgs(CLI);
  if (!hasNetnsSupport()) {
    console.log('cib_commit_bench: skipped (needs root and ip netns)');
    return;
  }
  const c = createLabCluster({ nodes: NODES, links, profile });
  try {
    for (const n of NODES) c.start(n);
    const dc = await waitFor('a DC', 60_000, () => leaderOf(c));
    const times: number[] = [];
    let failures = 0;
    for (let i = 0; i < changes; i++) {
      const cmd = { op: 'set-property', name: 'bench-counter', value: String(i) };
      const t0 = performance.now();
      const r = (await c.command(dc, `cib ${JSON.stringify(cmd)}`)) as { ok?: boolean };
      const dt = performance.now() - t0;
      if (r.ok) times.push(dt);
      else failures++;
    }
    times.sort((a, b) => a - b);
    const st = await c.status(dc);
    console.log(
      `cib commit, 3 nodes, ${profile}: ${times.length} changes committed on DC ${dc}: p50 ${pct(times, 50).toFixed(2)} ms, ` +
        `p99 ${pct(times, 99).toFixed(2)} ms, max ${times.at(-1)?.toFixed(2)} ms; failed ${failures}; CIB epoch now ${st.consensus?.cib?.epoch}`,
    );
  } finally {
    c.destroy();
  }
}

await main();
