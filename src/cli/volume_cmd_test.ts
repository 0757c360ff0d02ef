import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { drbdadmPassThrough } from './volume_cmd.ts';

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
