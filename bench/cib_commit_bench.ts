/**
 * CIB change commit latency (issue 4): a 3-node cluster in network namespaces; one client
 * proposes CIB changes one after another on the DC's control socket and waits for each to be
 * committed (on a majority, fsynced) and applied on the DC. Prints p50/p99 round trips, which
 * include the local control-socket hop (~0.2 ms).
 *
 *   node --import tsx bench/cib_commit_bench.ts [--changes 200] [--profile lan] [--links 2]
 *
 * Needs root. Printed, never asserted.
 */
import { parseArgs } from 'node:util';
import { createLabCluster, type LabCluster, waitFor } from '../src/daemon/lab_cluster.ts';
import { hasNetnsSupport } from '../src/lab/netns.ts';
import { isProfileName, type ProfileName } from '../src/membership/profiles.ts';

const NODES = ['c1', 'c2', 'c3'];
const MAX_CHANGES = 100_000;

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
  const { values } = parseArgs({
    options: {
      changes: { type: 'string', default: process.env.HALO_BENCH_CHANGES ?? '200' },
      profile: { type: 'string', default: 'lan' },
      links: { type: 'string', default: '2' },
    },
  });
  const changes = Number(values.changes);
  if (!Number.isInteger(changes) || changes < 1 || changes > MAX_CHANGES)
    throw new Error(`--changes must be 1..${MAX_CHANGES}`);
  const profile = values.profile ?? 'lan';
  if (!isProfileName(profile)) throw new Error(`unknown profile '${profile}'`);
  if (!hasNetnsSupport()) {
    console.log('cib_commit_bench: skipped (needs root and ip netns)');
    return;
  }
  const c = createLabCluster({ nodes: NODES, links: Number(values.links), profile: profile as ProfileName });
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
