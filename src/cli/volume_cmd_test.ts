import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { commandOnPath } from '../lib/command_on_path.ts';
import { HaloError } from '../lib/errors.ts';
import { drbdadmPassThrough, mkfsCommand } from './volume_cmd.ts';

const COMPILED = import.meta.url.endsWith('.js');
const MAIN = fileURLToPath(new URL(COMPILED ? './main.js' : './main.ts', import.meta.url));

/** `halo volume ARGS` through the whole CLI (main.ts), as a user runs it. */
function halo(dir: string, args: readonly string[]): { code: number; out: string; err: string } {
  const r = spawnSync(
    process.execPath,
    [...(COMPILED ? [] : ['--import', 'tsx']), MAIN, 'volume', '--run-dir', join(dir, 'run'), ...args],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** A drbd.conf with two file-backed resources on hosts alpha and bravo. */
function twoResources(dir: string, extra = ''): string {
  const conf = join(dir, 'drbd.conf');
  for (const f of ['r0.img', 'r1.img']) writeFileSync(join(dir, f), Buffer.alloc(2 << 20));
  const res = (name: string, port: number) => `resource ${name} {
  ${extra}
  on alpha { device /dev/drbd0; disk ${join(dir, `${name}.img`)}; address 127.0.0.1:${port}; meta-disk internal; }
  on bravo { device /dev/drbd0; disk ${join(dir, `${name}-b.img`)}; address 127.0.0.1:${port + 1}; meta-disk internal; }
}
`;
  writeFileSync(conf, res('r0', 7790) + res('r1', 7792));
  return conf;
}

describe('halo volume reads drbdadm command lines as the tutorials write them', () => {
  it('`create-md all` writes metadata for every resource this node has, like drbdadm', () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-vcmd-'));
    try {
      const conf = twoResources(dir);
      const r = halo(dir, ['-c', conf, '--node', 'alpha', 'create-md', 'all']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^r0: metadata created on .*r0\.img.*\nr1: metadata created on .*r1\.img/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('`primary --overwrite-data-of-peer`, `-o` and `--do-what-I-say` are --force', () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-vcmd-'));
    try {
      const conf = twoResources(dir);
      for (const flag of ['--overwrite-data-of-peer', '-o', '--do-what-I-say']) {
        // Accepted as an option, the command gets as far as asking the (stopped) engine.
        const r = halo(dir, ['-c', conf, '--node', 'alpha', 'primary', flag, 'r0']);
        assert.equal(r.code, 3, `${flag}: ${r.err}`);
        assert.match(r.err, /volume r0 is not running here/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("drbdadm's `-- --overwrite-data-of-peer primary r0` form reaches `primary`", () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-vcmd-'));
    try {
      const conf = twoResources(dir);
      const r = halo(dir, [
        '-c',
        conf,
        '--node',
        'alpha',
        '--',
        '--overwrite-data-of-peer',
        'primary',
        'all',
      ]);
      assert.equal(r.code, 3, r.err);
      assert.match(r.err, /volume r0 is not running here[\s\S]*volume r1 is not running here/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('`run all` and `attach all` are refused: they take one resource', () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-vcmd-'));
    try {
      const conf = twoResources(dir);
      const r = halo(dir, ['-c', conf, '--node', 'alpha', 'run', 'all']);
      assert.equal(r.code, 1);
      assert.match(r.err, /takes one resource, not "all"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a bad value in drbd.conf is reported with the file and line of its resource', () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-vcmd-'));
    try {
      const conf = twoResources(dir, 'net { after-sb-1pri discard-secundary; }');
      const r = halo(dir, ['-c', conf, '--node', 'alpha', 'create-md', 'r1']);
      assert.equal(r.code, 1);
      assert.match(
        r.err,
        /drbd\.conf:6:10: resource r1: after-sb-1pri "discard-secundary" is not one of: disconnect, consensus/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('drbdadmPassThrough', () => {
  const argv = (...a: string[]) => ['node', 'halo', ...a];

  it('moves the options after `--` behind the verb, keeping halo volume options in front', () => {
    assert.deepEqual(
      drbdadmPassThrough(argv('volume', '-c', 'x.conf', '--', '--overwrite-data-of-peer', 'primary', 'r0')),
      { argv: argv('volume', '-c', 'x.conf', 'primary', '--overwrite-data-of-peer', 'r0') },
    );
  });

  it('reads a typographic dash as `--` and says so', () => {
    const r = drbdadmPassThrough(argv('volume', '\u2014', '-o', 'primary', 'drbd0'));
    assert.deepEqual(r.argv, argv('volume', 'primary', '-o', 'drbd0'));
    assert.match(r.note ?? '', /read '\u2014' as '--'/);
  });

  it('leaves other command lines alone', () => {
    for (const a of [
      argv('volume', 'primary', '--force', 'r0'),
      argv('volume', '--', 'primary', 'r0'),
      argv('configure', '--', '-o', 'primary'),
      argv('volume', '--', '--force'),
    ])
      assert.deepEqual(drbdadmPassThrough(a), { argv: a });
  });
});

describe('halo volume attach --mkfs-options', () => {
  it("passes seed 003's `-j -m 0` to mkfs.TYPE as separate words, after halo's defaults and before the device", () => {
    assert.deepEqual(mkfsCommand('ext4', '-j -m 0', '/dev/loop7'), {
      file: 'mkfs.ext4',
      args: ['-q', '-F', '-j', '-m', '0', '/dev/loop7'],
    });
    assert.deepEqual(
      mkfsCommand('ext4', '  -E\tstride=16,stripe-width=64  -O ^has_journal ', '/dev/loop7').args,
      ['-q', '-F', '-E', 'stride=16,stripe-width=64', '-O', '^has_journal', '/dev/loop7'],
    );
    assert.deepEqual(mkfsCommand('ext3', undefined, '/dev/loop7').args, ['-q', '-F', '/dev/loop7']);
    assert.deepEqual(mkfsCommand('xfs', '-L data', '/dev/loop7').args, [
      '-q',
      '-f',
      '-L',
      'data',
      '/dev/loop7',
    ]);
    assert.deepEqual(mkfsCommand('vfat', '', '/dev/loop7'), { file: 'mkfs.vfat', args: ['/dev/loop7'] });
  });

  it('refuses quotes and shell characters in the options, and odd types, naming what it refused', () => {
    for (const [opts, word] of [
      ["-L 'my data'", "'my"],
      ['-L "data"', '"data"'],
      ['-m 0; rm -rf /', '0;'],
      ['-L $HOST', '$HOST'],
      ['-L a\\ b', 'a\\'],
      ['-d root=*', 'root=*'],
    ] as const) {
      assert.throws(
        () => mkfsCommand('ext4', opts, '/dev/loop7'),
        (err: unknown) =>
          err instanceof HaloError &&
          err.code === 'bad-argument' &&
          err.message.startsWith(`--mkfs-options word ${JSON.stringify(word)} has a character`) &&
          err.message.includes('--mkfs-options "-j -m 0"'),
        opts,
      );
    }
    assert.throws(
      () => mkfsCommand('ext4 -j', undefined, '/dev/loop7'),
      /--mkfs 'ext4 -j' is not a filesystem type/,
    );
    assert.throws(() => mkfsCommand('../../bin/sh', undefined, '/dev/loop7'), /is not a filesystem type/);
  });

  it('the CLI rejects bad --mkfs-options with exit 2 before it sets anything up', () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-vcmd-'));
    try {
      const conf = twoResources(dir);
      const mnt = join(dir, 'mnt');
      const quoted = halo(dir, [
        '-c',
        conf,
        '--node',
        'alpha',
        'attach',
        'r0',
        '--mount',
        mnt,
        '--mkfs',
        'ext4',
        '--mkfs-options',
        "-L 'my data'",
      ]);
      assert.equal(quoted.code, 2, quoted.err);
      assert.match(quoted.err, /--mkfs-options word "'my" has a character halo does not pass on/);
      const alone = halo(dir, [
        '-c',
        conf,
        '--node',
        'alpha',
        'attach',
        'r0',
        '--mount',
        mnt,
        '--mkfs-options',
        '-m 0',
      ]);
      assert.equal(alone.code, 2, alone.err);
      assert.match(alone.err, /--mkfs-options needs --mkfs TYPE/);
      assert.ok(!existsSync(mnt), 'no mount point made');
      const help = halo(dir, ['attach', '--help']);
      assert.match(help.out, /--mkfs ext4 --mkfs-options "-j -m 0"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const real =
    process.getuid?.() === 0 &&
    existsSync('/dev/fuse') &&
    ['nbdfuse', 'losetup', 'mkfs.ext4', 'tune2fs'].every(commandOnPath);
  it('attach --mkfs ext4 --mkfs-options "-j -m 0" makes ext4 with no reserved blocks on a real volume', {
    skip: real ? false : 'needs root, /dev/fuse, nbdfuse, losetup, mkfs.ext4 and tune2fs',
  }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-vcmd-'));
    const conf = join(dir, 'drbd.conf');
    const base = ['-c', conf, '--node', 'alpha'];
    try {
      writeFileSync(join(dir, 'r0.img'), Buffer.alloc(0));
      execFileSync('truncate', ['-s', '32M', join(dir, 'r0.img')]);
      writeFileSync(
        conf,
        `resource r0 {
  on alpha { device /dev/drbd0; disk ${join(dir, 'r0.img')}; address 127.0.0.1:7798; meta-disk internal; }
  on bravo { device /dev/drbd0; disk ${join(dir, 'r0-b.img')}; address 127.0.0.1:7799; meta-disk internal; }
}
`,
      );
      for (const step of [
        ['create-md', 'r0'],
        ['up', 'r0'],
        ['primary', '--force', 'r0'],
      ]) {
        const r = halo(dir, [...base, ...step]);
        assert.equal(r.code, 0, `${step.join(' ')}: ${r.err}`);
      }
      const mnt = join(dir, 'mnt');
      const a = halo(dir, [
        ...base,
        '--output',
        'json',
        'attach',
        'r0',
        '--mount',
        mnt,
        '--mkfs',
        'ext4',
        '--mkfs-options',
        '-j -m 0',
      ]);
      assert.equal(a.code, 0, a.err);
      const { loop } = JSON.parse(readFileSync(join(dir, 'run', 'r0.attach.json'), 'utf8')) as {
        loop: string;
      };
      const info = execFileSync('tune2fs', ['-l', loop], { encoding: 'utf8' });
      assert.match(info, /^Reserved block count:\s+0$/m);
      assert.match(info, /^Filesystem features:.*\bhas_journal\b/m);
    } finally {
      // Undo whatever got set up, even after a failure: mount, loop device, nbdfuse, engine.
      halo(dir, [...base, 'detach', 'r0']);
      halo(dir, [...base, 'down', 'r0']);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
