#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
// Runs every compiled test file (dist/**/*_test.js) with node's built-in test runner.
// Node 20's `--test` expands no globs, so we list the files ourselves.
// Usage: node scripts/run_tests.mjs [FILTER…]   (a filter is a substring of the path)
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const roots = ['dist/src', 'dist/sim', 'dist/bench', 'dist/scripts'];
const filters = process.argv.slice(2);
const files = [];
function walk(dir) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of entries.sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('_test.js')) files.push(p);
  }
}
for (const r of roots) walk(r);
const selected = filters.length ? files.filter((f) => filters.some((x) => f.includes(x))) : files;
if (selected.length === 0) {
  console.error('run_tests: no test files found under dist/ (did `npm run build` run?)');
  process.exit(1);
}
// Tests that build network namespaces or loop devices must not run concurrently with each
// other on 2 cores; node's runner isolates files in processes and runs them in parallel.
const concurrency = process.env.HALO_TEST_CONCURRENCY ?? '2';
const r = spawnSync(
  process.execPath,
  [
    '--enable-source-maps',
    '--test',
    `--test-concurrency=${concurrency}`,
    '--test-reporter=spec',
    ...selected,
  ],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
