import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { commandOnPath } from './command_on_path.ts';
import {
  abortFuseConnection,
  boundLoopDevices,
  FUSE_CONNECTIONS_DIR,
  fuseConnectionOf,
  isMountPoint,
  nbdfuseConnection,
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

test('bound loop devices are read from sysfs: unbound ones are skipped, a deleted file keeps its path', () => {
  const sys = mkdtempSync(join(tmpdir(), 'halo-sysblock-'));
  try {
    const bind = (name: string, back?: string) => {
      mkdirSync(join(sys, name, back === undefined ? '' : 'loop'), { recursive: true });
      if (back !== undefined) writeFileSync(join(sys, name, 'loop', 'backing_file'), `${back}\n`);
    };
    bind('loop10', '/disk');
    bind('loop2', '/var/lib/x.img (deleted)');
    bind('loop3'); // exists, not bound
    bind('vda'); // not a loop device
    mkdirSync(join(sys, 'vda', 'loop'), { recursive: true });
    assert.deepEqual(boundLoopDevices(sys), [
      { name: '/dev/loop2', backFile: '/var/lib/x.img' },
      { name: '/dev/loop10', backFile: '/disk' },
    ]);
    assert.deepEqual(boundLoopDevices(join(sys, 'missing')), []);
  } finally {
    rmSync(sys, { recursive: true, force: true });
  }
});

test("an nbdfuse's FUSE connection is found from its command line and mountinfo, and only its own", () => {
  const info = [
    '36 25 0:32 / /tmp/lab/n1/volume/r0.fuse rw,nosuid,nodev - fuse /dev/fuse rw,user_id=0,group_id=0',
    '37 25 0:33 / /tmp/other/r0.fuse rw - fuse /dev/fuse rw',
    '38 25 7:1 / /tmp/lab/data rw,relatime - ext4 /dev/loop1 rw',
    '39 25 0:34 / /tmp/lab/n1/x\\040y rw - fuse.sshfs host: rw',
    '40 25 0:35 / /tmp/lab/n1/x\\040y rw - fuse /dev/fuse rw',
    '',
  ].join('\n');
  const argv = (path: string) => ['nbdfuse', path, '--unix', '/tmp/lab/n1/volume/r0.nbd'];
  assert.equal(nbdfuseConnection(argv('/tmp/lab/n1/volume/r0.fuse/disk'), info), 32);
  assert.equal(nbdfuseConnection(argv('/tmp/lab/n1/volume/r0.fuse/disk'), info, '/tmp/lab'), 32);
  assert.equal(nbdfuseConnection(argv('/tmp/lab/n1/volume/r0.fuse/disk'), info, '/tmp/la'), undefined);
  assert.equal(nbdfuseConnection(argv('/tmp/other/r0.fuse/disk'), info, '/tmp/lab'), undefined);
  assert.equal(
    nbdfuseConnection(argv('/tmp/lab/n1/x y/disk'), info),
    35,
    'the mount on top, escapes decoded',
  );
  assert.equal(nbdfuseConnection(argv('/tmp/lab/data/disk'), info), undefined, 'not a FUSE mount');
  assert.equal(nbdfuseConnection(['nbdfuse', '-r', 'relative/disk'], info), undefined);
  assert.equal(nbdfuseConnection(['nbdfuse'], 'garbage\n - \n'), undefined);
});
