import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command, CommanderError } from 'commander';
import { registerLabCommands } from '../cli/lab_cmd.ts';

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
