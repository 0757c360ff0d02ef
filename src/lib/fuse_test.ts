import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { commandOnPath } from './command_on_path.ts';
import {
  abortFuseConnection,
  FUSE_CONNECTIONS_DIR,
  fuseConnectionOf,
  isMountPoint,
  releaseFuseMount,
} from './fuse.ts';

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

const canFuse =
  process.getuid?.() === 0 &&
  existsSync('/dev/fuse') &&
  existsSync(FUSE_CONNECTIONS_DIR) &&
  commandOnPath('nbdfuse') &&
  commandOnPath('nbdkit') &&
  commandOnPath('losetup');

test('a loop device on an nbdfuse file whose daemon hangs is freed: the FUSE connection is aborted and unmounted within the bound', {
  skip: !canFuse && 'needs root, /dev/fuse, fusectl, nbdfuse, nbdkit and losetup',
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-fuse-'));
  const mnt = join(dir, 'fuse');
  mkdirSync(mnt);
  const disk = join(mnt, 'disk');
  const fuse = spawn('nbdfuse', [disk, '--command', 'nbdkit', '-s', 'memory', '1M'], { stdio: 'ignore' });
  let loop = '';
  let reader: ReturnType<typeof spawn> | undefined;
  try {
    const until = Date.now() + 20_000;
    while (!existsSync(disk)) {
      assert.ok(Date.now() < until, 'nbdfuse did not show its file');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(fuseConnectionOf(mnt) !== undefined, 'the mount has a fusectl connection');
    loop = execFileSync('losetup', ['-f', '--show', disk], { encoding: 'utf8' }).trim();
    // The daemon hangs (as a paused or wedged nbdfuse would): direct I/O on the loop device
    // now waits on it.
    fuse.kill('SIGSTOP');
    reader = spawn('dd', [`if=${loop}`, 'of=/dev/null', 'bs=4096', 'count=1', 'iflag=direct'], {
      stdio: 'ignore',
    });
    const readerDone = new Promise<number | null>((resolve) => reader!.on('exit', (c) => resolve(c)));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(reader.exitCode, null, 'the read waits on the hung daemon');
    assert.equal(await releaseFuseMount(mnt, 200), true, 'the mount point is gone');
    const ended = await Promise.race([
      readerDone,
      new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000)),
    ]);
    assert.notEqual(ended, 'hung', 'the waiting read ended instead of hanging');
    assert.notEqual(ended, 0, 'the waiting read failed');
    execFileSync('losetup', ['-d', loop]);
    loop = '';
  } finally {
    reader?.kill('SIGKILL');
    fuse.kill('SIGCONT');
    fuse.kill('SIGKILL');
    if (loop) spawnSync('losetup', ['-d', loop]);
    if (isMountPoint(mnt)) spawnSync('umount', ['-l', mnt]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the FUSE connection of a directory that holds no FUSE mount is unknown, and aborting it does nothing', () => {
  assert.equal(fuseConnectionOf('/'), undefined);
  assert.equal(abortFuseConnection('/nonexistent-halo-dir'), false);
});
