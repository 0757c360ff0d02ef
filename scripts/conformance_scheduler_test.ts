import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const script = join(here, `conformance_scheduler.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`);

function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...process.execArgv, script, ...args], { timeout: 30_000 }, (e, out, err) =>
      resolve({ code: e ? Number(e.code ?? 1) : 0, out, err }),
    );
  });
}

test('conformance_scheduler --help teaches the options and exits 0', async () => {
  const r = await run(['--help']);
  assert.equal(r.code, 0, r.err);
  for (const opt of ['--dir', '--only', '--show-failures', '--diff', '--check-floor', '--json'])
    assert.match(r.out, new RegExp(opt));
});

test('conformance_scheduler refuses bad arguments with exit 2 before it runs anything', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--bogus'], /unknown option '--bogus'/],
    [['--only'], /--only needs a value/],
    [['--diff', '--json'], /--diff needs a value/],
    [['--only', '('], /--only '\(' is not a regular expression/],
  ];
  for (const [args, want] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, want);
    assert.equal(r.out, '', `${args.join(' ')} printed results`);
  }
});
