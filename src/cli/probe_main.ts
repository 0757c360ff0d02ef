/**
 * Test helper: runs many `halo` invocations through the real CLI entry point (`run` in
 * main.ts) in this one process and prints their outcomes as JSON. Tests start it once as a
 * child process, because tsx start-up costs seconds per process, and because a test process
 * cannot capture its own stdout while the test reporter writes to it.
 *
 *   echo '[["status","--help"],["explain","x","--socket","/nowhere"]]' | node --import tsx src/cli/probe_main.ts
 *
 * Prints `[{"args":[…],"code":0,"out":"…","err":"…"},…]` on stdout. Each invocation gets a
 * deadline; one that does not finish in time is reported with code -1 and the rest still run.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './main.ts';

/** Longest one probed invocation may take (a down-cluster query answers in milliseconds). */
export const PROBE_INVOCATION_TIMEOUT_MS = 20_000;
/** Most invocations one probe run accepts. */
export const MAX_PROBE_INVOCATIONS = 1_000;

export interface ProbeOutcome {
  readonly args: readonly string[];
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

async function probe(args: readonly string[]): Promise<ProbeOutcome> {
  let out = '';
  let err = '';
  const stdout = process.stdout.write.bind(process.stdout);
  const stderr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  let timer: NodeJS.Timeout | undefined;
  try {
    process.exitCode = undefined;
    const code = await Promise.race([
      run(['node', 'halo', ...args]),
      new Promise<number>((r) => {
        timer = setTimeout(() => r(-1), PROBE_INVOCATION_TIMEOUT_MS);
      }),
    ]);
    return { args, code, out, err };
  } finally {
    clearTimeout(timer);
    process.stdout.write = stdout;
    process.stderr.write = stderr;
    process.exitCode = undefined;
  }
}

async function main(): Promise<void> {
  const cases = JSON.parse(readFileSync(0, 'utf8')) as unknown;
  if (!Array.isArray(cases) || cases.length > MAX_PROBE_INVOCATIONS)
    throw new Error(`expected a JSON array of at most ${MAX_PROBE_INVOCATIONS} argument lists on stdin`);
  const results: ProbeOutcome[] = [];
  for (const args of cases as string[][]) results.push(await probe(args));
  process.stdout.write(`${JSON.stringify(results)}\n`, () => process.exit(0));
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: Error) => {
    process.stderr.write(`probe: ${err.message}\n`);
    process.exit(2);
  });
}
