/**
 * The simulator's command line.
 *
 *   node dist/sim/main.js --seeds N [--first-seed S] [--stats]   run N seeds
 *   node dist/sim/main.js --seed S [--verbose]          replay one seed exactly
 *
 * Ends with exactly one line `sim: <seeds> seeds, <faults> faults injected, <violations>
 * violations` and exits 1 when any seed violated an invariant.
 */
import { runSeed } from './cluster.ts';

/** Refuse absurd runs (a typo like --seeds 2000000000). */
const MAX_SEEDS = 1_000_000;

interface Args {
  seeds: number;
  firstSeed: number;
  verbose: boolean;
  stats: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { seeds: 100, firstSeed: 1, verbose: false, stats: false };
  const num = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isSafeInteger(n) || n < 0)
      throw new Error(`${flag} needs a non-negative integer, got ${v ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    if (f === '--seeds') a.seeds = num(f, argv[++i]);
    else if (f === '--first-seed') a.firstSeed = num(f, argv[++i]);
    else if (f === '--seed') {
      a.firstSeed = num(f, argv[++i]);
      a.seeds = 1;
    } else if (f === '--verbose') a.verbose = true;
    else if (f === '--stats') a.stats = true;
    else
      throw new Error(
        `unknown argument ${f}; usage: sim --seeds N [--first-seed S] [--stats] | --seed S [--verbose]`,
      );
  }
  if (a.seeds < 1 || a.seeds > MAX_SEEDS) throw new Error(`--seeds must be 1..${MAX_SEEDS}`);
  return a;
}

function main(): number {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`sim: ${(e as Error).message}`);
    return 2;
  }
  let faults = 0;
  let violations = 0;
  const convergence: number[] = [];
  let committed = 0;
  let fenceSeeds = 0;
  let soloForced = 0;
  let readded = 0;
  for (let s = args.firstSeed; s < args.firstSeed + args.seeds; s++) {
    const r = runSeed({ seed: s, verbose: args.verbose });
    faults += r.faults;
    committed += r.committed;
    if (r.fenceScenario) fenceSeeds++;
    soloForced += r.soloForced;
    readded += r.readded;
    if (r.convergedMs >= 0) convergence.push(r.convergedMs);
    violations += r.violations.length;
    for (const v of r.violations)
      console.log(`FAIL ${v}\n  replay: node dist/sim/main.js --seed ${s} --verbose`);
  }
  if (args.stats && convergence.length > 0) {
    convergence.sort((x, y) => x - y);
    const pct = (p: number) =>
      convergence[Math.min(convergence.length - 1, Math.floor(p * convergence.length))];
    console.log(
      `stats: ${committed} entries committed; convergence after healing (simulated ms): p50 ${pct(0.5)}, p99 ${pct(0.99)}, max ${convergence[convergence.length - 1]}`,
    );
    console.log(
      `stats: two-node fence scenario in ${fenceSeeds} seeds: ${soloForced} solo takeovers after a fence, ${readded} re-adds of a fenced peer committed`,
    );
  }
  console.log(`sim: ${args.seeds} seeds, ${faults} faults injected, ${violations} violations`);
  return violations > 0 ? 1 : 0;
}

process.exitCode = main();
