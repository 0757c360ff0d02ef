import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command, CommanderError } from 'commander';
import { registerLabCommands } from '../cli/lab_cmd.ts';
import { commandOnPath } from '../lib/command_on_path.ts';
import { isRoot } from './netns.ts';

/** The `halo` program with only the lab commands (as cli/main.ts builds it, exit codes included). */
async function run(argv: readonly string[]): Promise<number> {
  const program = new Command('halo')
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: (s) => void process.stderr.write(s) });
  registerLabCommands(program);
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 1 ? 2 : err.exitCode;
    throw err;
  }
}

/** Runs `halo ARGS…` in-process and returns its exit code and what it wrote to stderr. */
async function halo(args: readonly string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await run(['node', 'halo', ...args]);
    return { code, err };
  } finally {
    process.stderr.write = write;
    process.exitCode = 0;
  }
}

test('halo lab rejects bad arguments with exit 2 and says what is wrong', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-labcli-'));
  try {
    let r = await halo(['lab', 'chaos', '--kill', '--pause', '--dir', dir]);
    assert.equal(r.code, 2);
    assert.match(r.err, /exactly one of --kill, --cut-link/);
    r = await halo(['lab', 'up', '--nodes', 'three', '--dir', dir]);
    assert.equal(r.code, 2);
    assert.match(r.err, /--nodes must be a whole number, got 'three'/);
    r = await halo(['lab', 'chaos', '--cut-link', '--link', 'x', '--dir', dir]);
    assert.equal(r.code, 2);
    assert.match(r.err, /--link must be a link number/);
    r = await halo(['lab', 'up', '--scenario', 'nope', '--dir', dir]);
    assert.equal(r.code, 2);
    r = await halo(['lab', 'bench', 'failover', '--trials', '0', '--dir', dir]);
    assert.equal(r.code, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('halo lab status, chaos and down against a lab that is not up exit 1 and say how to start one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-labcli-'));
  try {
    for (const args of [['status'], ['down'], ['chaos', '--kill']]) {
      const r = await halo(['lab', ...args, '--dir', dir]);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(
        r.err,
        /no lab is up: .*lab\.json does not exist; start one with 'halo lab up' \[no-lab\]/,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without root, halo lab up and down say they need root and what to run instead, and make nothing', {
  skip: (!isRoot() || !commandOnPath('setpriv')) && 'needs root (to drop to nobody) and setpriv',
  timeout: 120_000,
}, () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'halo-labcli-')), 'lab');
  try {
    // Compiled (npm test runs dist/) or from source with tsx.
    const compiled = import.meta.url.endsWith('.js');
    const main = new URL(compiled ? '../cli/main.js' : '../cli/main.ts', import.meta.url).pathname;
    const loader = compiled ? [] : ['--import', 'tsx'];
    for (const verb of ['up', 'down']) {
      // The real CLI as user nobody (uid 65534): the check must not depend on this test's uid.
      const r = spawnSync(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          process.execPath,
          ...loader,
          main,
          'lab',
          verb,
          '--dir',
          dir,
        ],
        { encoding: 'utf8', timeout: 90_000, env: { ...process.env, HOME: tmpdir() } },
      );
      assert.equal(r.status, 1, `lab ${verb}: ${r.stderr}`);
      assert.match(r.stderr, /halo lab needs root \(CAP_NET_ADMIN and CAP_SYS_ADMIN\).*run it with sudo/);
      assert.match(r.stderr, /Without root, run one `halo daemon --config FILE --node NAME` per node/);
      assert.match(r.stderr, /\[needs-root\]/);
    }
    assert.ok(!existsSync(dir), 'nothing made');
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});
