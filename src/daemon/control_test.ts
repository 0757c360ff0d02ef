import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MAX_CONTROL_REQUEST_BYTES, queryControl, serveControl } from './control.ts';

test('the control socket answers commands, replaces a stale socket file and refuses to steal a live one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-ctl-'));
  const path = join(dir, 'n.sock');
  writeFileSync(path, ''); // stale leftover
  const server = await serveControl(path, (cmd) => ({ echo: cmd }));
  try {
    assert.deepEqual(await queryControl(path, 'status'), { echo: 'status' });
    await assert.rejects(
      serveControl(path, () => null),
      { code: 'already-running' },
    );
    assert.deepEqual(await queryControl(path, 'again'), { echo: 'again' });
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  await assert.rejects(queryControl(path, 'status'), { code: 'daemon-unreachable' });
});

test('a whole configuration fits in one control command, and a request over the limit gets an error, not a hang', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-ctl-'));
  const path = join(dir, 'n.sock');
  const server = await serveControl(path, (cmd) => ({ length: cmd.length }));
  try {
    // Seed 003's configuration as JSON is ~4 KiB; a big one is far larger.
    const big = `cib ${'x'.repeat(256 * 1024)}`;
    assert.deepEqual(await queryControl(path, big), { length: big.length });
    const tooBig = 'y'.repeat(MAX_CONTROL_REQUEST_BYTES + 1);
    const answer = (await queryControl(path, tooBig, 10_000)) as { error?: string };
    assert.match(answer.error ?? '', /request longer than \d+ bytes/);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
