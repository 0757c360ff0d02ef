import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isMountPoint, releaseFuseMount } from './fuse.ts';

test('the root is a mount point and a fresh directory is not', () => {
  assert.equal(isMountPoint('/'), true);
  const dir = mkdtempSync(join(tmpdir(), 'halo-fuse-'));
  try {
    assert.equal(isMountPoint(dir), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('releasing a directory that is not mounted succeeds at once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-fuse-'));
  try {
    assert.equal(await releaseFuseMount(dir, 100), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
