import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { queryControl, serveControl } from './control.ts';

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
