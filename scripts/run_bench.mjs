#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
// Runs the compiled benchmarks in dist/bench (all, or those whose name contains an argument).
// Benchmarks print figures; they never pass or fail on time. Usage: npm run bench [-- NAME…]
import { readdirSync } from 'node:fs';

const names = process.argv.slice(2);
const all = readdirSync('dist/bench')
  .filter((f) => f.endsWith('_bench.js'))
  .sort();
const chosen = names.length ? all.filter((f) => names.some((n) => f.includes(n))) : all;
if (chosen.length === 0) {
  console.error(`run_bench: no benchmark matches ${names.join(' ')}; have: ${all.join(', ')}`);
  process.exit(2);
}
let failed = 0;
for (const f of chosen) {
  console.log(`\n=== ${f}`);
  const r = spawnSync(process.execPath, [`dist/bench/${f}`], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
