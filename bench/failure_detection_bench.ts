/**
 * Failure-detection benchmark (issue 4): in network namespaces, kill -9 one daemon of a 3-node
 * cluster and measure how long until both survivors mark it lost, per timing profile. Also
 * prints each daemon's RSS and every loss that no kill caused (false suspicions).
 *
 *   node --import tsx bench/failure_detection_bench.ts [--trials 20] [--profiles lan,fast] [--links 2]
 *     [--node-flags daemon|none] [--help]
 *   (or HALO_BENCH_TRIALS=5 npm run bench -- failure_detection)
 *
 * `--trials` is 1..500 (default: HALO_BENCH_TRIALS when set, else 20), `--profiles` a list of
 * lan, fast, wan, lab, `--links` 1..8. `--help` lists the options; a bad one (or a bad
 * HALO_BENCH_TRIALS) exits 2 before anything starts.
 *
 * `--node-flags daemon` (the default) starts the daemons with DAEMON_NODE_FLAGS (via
 * NODE_OPTIONS), as every launcher should. Memory is printed as VmRSS (what `ps` shows; about
 * 40 MB of it is the node binary, shared), RssAnon (private) and PSS. Run the compiled bench
 * (dist/bench/…js) to measure daemons as deployed: from source every daemon also carries tsx.
 *
 * Needs root. Times come from the daemons' own log lines (wall ms) minus the wall time just
 * before the kill, so polling does not add to them. Printed, never asserted.
 */
import { readFileSync } from 'node:fs';
import { createLabCluster, type LabCluster, waitFor } from '../src/daemon/lab_cluster.ts';
import { DAEMON_NODE_FLAGS } from '../src/daemon/node_flags.ts';
import { hasNetnsSupport } from '../src/lab/netns.ts';
import { PROFILE_NAMES, PROFILES, type ProfileName } from '../src/membership/profiles.ts';
import { benchArgs, listOf, oneOf, option, wholeNumber } from './args.ts';

const NODES = ['b1', 'b2', 'b3'];
const MAX_TRIALS = 500;
const STEP_DEADLINE_MS = 60_000;
const MAX_FALSE_LOSSES_SHOWN = 5;
/** The lab's limit on links per node (src/lab/netns.ts). */
const MAX_LINKS = 8;

const CLI = {
  name: 'failure_detection_bench',
  summary:
    'Failure detection in network namespaces: kill -9 one daemon of a 3-node cluster and time until both survivors mark it lost, per timing profile; also daemon memory and false suspicions (needs root; printed, never asserted).',
  options: {
    trials: option({
      metavar: 'N',
      help: 'kills per profile',
      check: wholeNumber(1, MAX_TRIALS),
      default: '20',
      env: 'HALO_BENCH_TRIALS',
    }),
    profiles: option({
      metavar: 'LIST',
      help: 'timing profiles to measure, in order',
      check: listOf(oneOf(PROFILE_NAMES)),
      default: 'lan,fast',
    }),
    links: option({ metavar: 'N', help: 'links per node', check: wholeNumber(1, MAX_LINKS), default: '2' }),
    'node-flags': option({
      metavar: 'NAME',
      help: 'start the daemons with DAEMON_NODE_FLAGS (daemon) or without (none)',
      check: oneOf(['daemon', 'none']),
      default: 'daemon',
    }),
  },
} as const;

interface Mem {
  rss: number;
  anon: number;
  pss: number;
}

/** VmRSS, RssAnon and PSS of a process in MB, or undefined when it is gone. */
function memMb(pid: number | undefined): Mem | undefined {
  if (pid === undefined) return undefined;
  try {
    const st = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (re: RegExp, text: string): number => Number(re.exec(text)?.[1] ?? Number.NaN) / 1024;
    return {
      rss: kb(/VmRSS:\s+(\d+) kB/, st),
      anon: kb(/RssAnon:\s+(\d+) kB/, st),
      pss: kb(/^Pss:\s+(\d+) kB/m, rollup),
    };
  } catch {
    return undefined;
  }
}

function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function allMembers(c: LabCluster): Promise<true | undefined> {
  const sts = await Promise.all(NODES.map((n) => c.status(n)));
  return sts.every((s) => s.members.every((m) => m.self || m.state === 'member')) ? true : undefined;
}

function lostEvents(c: LabCluster, observer: string, victim: string, afterMs: number): number[] {
  return c
    .logLines(observer)
    .filter(
      (l) => l.event === 'member-state' && l.peer === victim && l.to === 'lost' && (l.t as number) >= afterMs,
    )
    .map((l) => l.t as number);
}

async function benchProfile(profile: ProfileName, trials: number, links: number): Promise<void> {
  const c = createLabCluster({ nodes: NODES, links, profile });
  try {
    for (const n of NODES) c.start(n);
    await waitFor(`${profile}: cluster to form`, STEP_DEADLINE_MS, () => allMembers(c));
    const startedAt = Date.now();
    const first: number[] = [];
    const all: number[] = [];
    const mem: Mem[] = [];
    const kills: Array<{ victim: string; at: number }> = [];
    for (let i = 0; i < trials; i++) {
      const victim = NODES[i % NODES.length]!;
      const survivors = NODES.filter((n) => n !== victim);
      for (const n of NODES) {
        const m = memMb(c.pid(n));
        if (m !== undefined) mem.push(m);
      }
      const killedAt = c.kill9(victim);
      kills.push({ victim, at: killedAt });
      const times = await waitFor(
        `${profile}: survivors to mark ${victim} lost`,
        STEP_DEADLINE_MS,
        async () => {
          const ts = survivors.map((s) => lostEvents(c, s, victim, killedAt)[0]);
          return ts.every((t) => t !== undefined) ? (ts as number[]) : undefined;
        },
      );
      first.push(Math.min(...times) - killedAt);
      all.push(Math.max(...times) - killedAt);
      c.start(victim);
      await waitFor(`${profile}: ${victim} to rejoin`, STEP_DEADLINE_MS, () => allMembers(c));
    }
    // A loss counts as false when no kill of that peer happened within deadtimeMax before it.
    const maxMs = PROFILES[profile].deadtimeMaxMs;
    let falseLosses = 0;
    for (const n of NODES) {
      for (const l of c.logLines(n)) {
        if (l.event !== 'member-state' || l.to !== 'lost' || (l.t as number) < startedAt) continue;
        const t = l.t as number;
        if (!kills.some((k) => k.victim === l.peer && t >= k.at && t - k.at <= maxMs + 1000)) {
          falseLosses++;
          if (falseLosses <= MAX_FALSE_LOSSES_SHOWN) console.log(`  false loss seen by ${n}: ${l.msg}`);
        }
      }
    }
    first.sort((a, b) => a - b);
    all.sort((a, b) => a - b);
    const sorted = (k: keyof Mem): number[] => mem.map((m) => m[k]).sort((a, b) => a - b);
    const [rss, anon, pss] = [sorted('rss'), sorted('anon'), sorted('pss')];
    const p = PROFILES[profile];
    console.log(
      `${profile.padEnd(5)} keepalive ${p.keepaliveMs} ms, deadtime ${p.deadtimeMs} ms, ${trials} trials, ${links} link(s): ` +
        `all survivors marked lost after median ${pct(all, 50)} ms (p90 ${pct(all, 90)}, min ${all[0]}, max ${all.at(-1)}); ` +
        `first survivor median ${pct(first, 50)} ms; per daemon median VmRSS ${pct(rss, 50).toFixed(1)} MB (max ${rss.at(-1)?.toFixed(1)}), ` +
        `RssAnon ${pct(anon, 50).toFixed(1)} MB, PSS ${pct(pss, 50).toFixed(1)} MB; ` +
        `false losses ${falseLosses}`,
    );
  } finally {
    c.destroy();
  }
}

async function main(): Promise<void> {
  const { trials, profiles, links, 'node-flags': nodeFlags } = benchArgs(CLI);
  if (nodeFlags === 'daemon') {
    // The daemons inherit this; the flags are allowed in NODE_OPTIONS.
    process.env.NODE_OPTIONS = [process.env.NODE_OPTIONS ?? '', ...DAEMON_NODE_FLAGS].join(' ').trim();
  }
  if (!hasNetnsSupport()) {
    console.log('failure_detection_bench: skipped (needs root and ip netns)');
    return;
  }
  const compiled = import.meta.url.endsWith('.js');
  console.log(
    `daemons run ${compiled ? 'compiled (plain node)' : 'from source (tsx)'}, node flags: ${nodeFlags === 'daemon' ? DAEMON_NODE_FLAGS.join(' ') : 'none'}`,
  );
  for (const p of profiles) await benchProfile(p, trials, links);
}

await main();
