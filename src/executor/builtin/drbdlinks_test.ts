import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { heartbeatToOcf, namedParams } from '../heartbeat_compat.ts';
import { OCF_RC } from '../rc.ts';
import { ShellAgentRunner } from '../runner.ts';
import { parseDrbdlinksConf } from './links.ts';

/**
 * drbdlinks as seed 004 uses it (`drbdlinks` in haresources, /etc/drbdlinks.conf with
 * `link('/etc/apache2', '/drbd/etc/apache2')` lines), through halo's built-in `halo:links`.
 */

async function run(r: ShellAgentRunner, agent: string, action: string, params: Record<string, string>) {
  return r.run({ agent, resource: 'drbdlinks', action, intervalMs: 0, timeoutMs: 20_000, params });
}

test("drbdlinks.conf's mountpoint() lets link() name only the local path, as drbdlinks allows", () => {
  const pairs = parseDrbdlinksConf(
    "# seed 004\nmountpoint('/drbd/')\nlink('/etc/apache2')\nlink('/var/www', '/srv/www')\nrestartSyslog(1)\n",
    'drbdlinks.conf',
  );
  assert.deepEqual(pairs, [
    { local: '/etc/apache2', target: '/drbd/etc/apache2' },
    { local: '/var/www', target: '/srv/www' },
  ]);
  assert.throws(
    () => parseDrbdlinksConf("link('/etc/apache2')\n", 'drbdlinks.conf'),
    /drbdlinks\.conf:1:1: link\('\/etc\/apache2'\) needs a target path too, or a mountpoint/,
  );
  assert.throws(
    () => parseDrbdlinksConf("link('/a', '/b')\nlnk('/c')\n", 'drbdlinks.conf'),
    /drbdlinks\.conf:2:1: expected link\('LOCAL', 'TARGET'\), got: lnk\('\/c'\)/,
  );
});

test('a link() line missing the comma between its paths is reported as exactly that, with file:line:column', () => {
  const missing = "link('/etc/apache2' '/drbd/etc/apache2')\n";
  assert.throws(
    () => parseDrbdlinksConf(`# seed 004\n${missing}`, 'drbdlinks.conf'),
    (err: Error) => {
      assert.equal(
        err.message,
        "drbdlinks.conf:2:21: link() needs a comma between its two paths: link('/etc/apache2' '/drbd/etc/apache2') should be link('/etc/apache2', '/drbd/etc/apache2')",
      );
      return true;
    },
  );
  // With a mountpoint() line the old reading took the whole text between the outer quotes as
  // one local path; it must be the same error, not a link named "/etc/apache2' '/drbd/…".
  assert.throws(
    () => parseDrbdlinksConf(`mountpoint('/drbd')\n  ${missing}`, 'drbdlinks.conf'),
    /^Error: drbdlinks\.conf:2:23: link\(\) needs a comma between its two paths/,
  );
  assert.throws(
    () => parseDrbdlinksConf("mountpoint('/drbd' '/x')\n", 'drbdlinks.conf'),
    /drbdlinks\.conf:1:1: mountpoint\(\) takes one path/,
  );
  assert.deepEqual(parseDrbdlinksConf(`link("/srv/it's", '/drbd/it')\nlink( '/a' , "/b" )\n`, 'f'), [
    { local: "/srv/it's", target: '/drbd/it' },
    { local: '/a', target: '/b' },
  ]);
});

test('a haresources drbdlinks resource keeps the parameters a CIB adds beside its positional ones', () => {
  assert.deepEqual(heartbeatToOcf('drbdlinks', []), {
    agent: 'halo:links',
    params: { config: '/etc/drbdlinks.conf' },
  });
  const named = namedParams({ '1': '/etc/other.conf', config: '/lab/drbdlinks.conf' });
  assert.deepEqual(named, { config: '/lab/drbdlinks.conf' });
  assert.deepEqual(heartbeatToOcf('drbdlinks', ['/etc/other.conf'], named)?.params, {
    config: '/lab/drbdlinks.conf',
  });
  assert.deepEqual(
    heartbeatToOcf('drbddisk', ['r0'], { config: '/lab/drbd.conf', device_link: '/lab/dev/drbd0' }),
    {
      agent: 'halo:volume',
      params: {
        drbd_resource: 'r0',
        mode: 'drbddisk',
        config: '/lab/drbd.conf',
        device_link: '/lab/dev/drbd0',
      },
    },
  );
  assert.equal(heartbeatToOcf('apache2', [], { config: '/x' }), undefined, 'no mapping, nothing invented');
});

test('drbdlinks refuses to start while the mount is missing, and changes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-drbdlinks-'));
  try {
    const r = new ShellAgentRunner({ stateDir: join(dir, 'rsctmp') });
    mkdirSync(join(dir, 'etc', 'apache2'), { recursive: true });
    const conf = join(dir, 'drbdlinks.conf');
    writeFileSync(conf, `link('${dir}/etc/apache2', '${dir}/drbd/etc/apache2')\n`);
    const start = await run(r, 'halo:links', 'start', { config: conf });
    assert.equal(start.rc, OCF_RC.OCF_ERR_GENERIC);
    assert.match(
      start.exitReason ?? '',
      /drbd\/etc\/apache2 does not exist \(is the replicated filesystem mounted\?\)/,
    );
    assert.ok(lstatSync(join(dir, 'etc', 'apache2')).isDirectory(), 'the original is where it was');
    assert.ok(!existsSync(join(dir, 'etc', 'apache2.drbdlinks')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('links left behind by a node that died do not make another node look like it runs drbdlinks', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-drbdlinks-'));
  try {
    const r = new ShellAgentRunner({ stateDir: join(dir, 'rsctmp') });
    mkdirSync(join(dir, 'etc', 'apache2'), { recursive: true });
    writeFileSync(join(dir, 'etc', 'apache2', 'ports.conf'), 'Listen 80\n');
    mkdirSync(join(dir, 'drbd', 'etc', 'apache2'), { recursive: true });
    const conf = join(dir, 'drbdlinks.conf');
    writeFileSync(conf, `link('${dir}/etc/apache2', '${dir}/drbd/etc/apache2')\n`);
    const params = { config: conf };
    assert.equal((await run(r, 'halo:links', 'start', params)).rc, OCF_RC.OCF_SUCCESS);
    assert.equal(readlinkSync(join(dir, 'etc', 'apache2')), join(dir, 'drbd', 'etc', 'apache2'));
    assert.equal((await run(r, 'halo:links', 'monitor', params)).rc, OCF_RC.OCF_SUCCESS);
    // The "mount" goes away (the node that had it was fenced); the link stays, pointing nowhere.
    rmSync(join(dir, 'drbd'), { recursive: true });
    assert.equal((await run(r, 'halo:links', 'monitor', params)).rc, OCF_RC.OCF_NOT_RUNNING);
    // A stop still puts the original back.
    assert.equal((await run(r, 'halo:links', 'stop', params)).rc, OCF_RC.OCF_SUCCESS);
    assert.equal(readFileSync(join(dir, 'etc', 'apache2', 'ports.conf'), 'utf8'), 'Listen 80\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
