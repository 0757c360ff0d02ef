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
import { createLabNet, hasNetnsSupport } from '../../lab/netns.ts';
import { pidAlive } from '../../lib/pid.ts';
import { parseMetadata, validateParams } from '../metadata.ts';
import { OCF_RC } from '../rc.ts';
import { ShellAgentRunner } from '../runner.ts';
import { parseDrbdlinksConf } from './links.ts';

const noNetns = !hasNetnsSupport() && 'needs root and ip netns';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'halo-builtin-'));
}

const runner = (dir: string, netns?: string) =>
  new ShellAgentRunner({ stateDir: join(dir, 'rsctmp'), ...(netns !== undefined ? { netns } : {}) });

async function actions(r: ShellAgentRunner, agent: string, list: string[], params: Record<string, string>) {
  const out = [];
  for (const action of list)
    out.push(await r.run({ agent, resource: 'res1', action, intervalMs: 0, timeoutMs: 20_000, params }));
  return out;
}

test('every built-in prints OCF meta-data that parses back and names its required parameters', async () => {
  const dir = tempDir();
  try {
    const r = runner(dir);
    for (const agent of r.list('halo')) {
      const res = await r.run({
        agent,
        resource: 'm',
        action: 'meta-data',
        intervalMs: 0,
        timeoutMs: 5000,
        params: {},
      });
      const meta = parseMetadata(res.stdout, agent);
      assert.ok(
        meta.actions.some((a) => a.name === 'monitor'),
        `${agent} has a monitor action`,
      );
      assert.deepEqual(meta, await r.metadata(agent));
    }
    assert.deepEqual(r.list('halo'), [
      'halo:lab-fence',
      'halo:links',
      'halo:ping',
      'halo:process',
      'halo:vip',
      'halo:volume',
    ]);
    assert.throws(() => validateParams(r.builtins.get('vip')!.metadata, 'halo:vip', {}), {
      message: /halo:vip: required parameter 'ip' not set/,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('halo:vip adds an address a neighbour can reach, monitors it, and removes it', {
  skip: noNetns,
}, async () => {
  const net = createLabNet({ nodes: ['a', 'b'] });
  const dir = tempDir();
  try {
    const r = runner(dir, net.node('a').ns);
    const params = { ip: '198.18.0.77' };
    const [start, mon] = await actions(r, 'halo:vip', ['start', 'monitor'], params);
    assert.equal(start!.rc, 0, start!.exitReason);
    assert.match(
      start!.stdout,
      /added 198\.18\.0\.77\/24 on link0/,
      'prefix and device come from the connected route',
    );
    assert.equal(mon!.rc, 0);
    net.exec('b', ['ping', '-c', '1', '-W', '2', '198.18.0.77']);
    const again = await actions(r, 'halo:vip', ['start', 'stop', 'monitor', 'stop'], params);
    assert.deepEqual(
      again.map((x) => x.rc),
      [0, 0, OCF_RC.OCF_NOT_RUNNING, 0],
      'start and stop are idempotent',
    );
    assert.doesNotMatch(net.exec('a', ['ip', '-o', 'addr']), /198\.18\.0\.77/);
    const bad = await actions(r, 'halo:vip', ['start'], { ip: '198.18.0.300' });
    assert.equal(bad[0]!.rc, OCF_RC.OCF_ERR_CONFIGURED);
    assert.match(
      bad[0]!.exitReason ?? '',
      /parameter 'ip' must be an IPv4 or IPv6 address, got '198.18.0.300'/,
    );
    const noRoute = await actions(r, 'halo:vip', ['start'], { ip: '203.0.113.9' });
    assert.match(
      noRoute[0]!.exitReason ?? '',
      /no interface has a route to 203.0.113.9; set the 'nic' parameter/,
    );
  } finally {
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('halo:process runs a command with a pidfile and working dir, supervises it and stops its group', async () => {
  const dir = tempDir();
  try {
    const r = runner(dir);
    mkdirSync(join(dir, 'work'));
    const script = join(dir, 'svc.sh');
    writeFileSync(script, '#!/bin/sh\npwd > cwd.txt\nsleep 600 &\necho $! > child.pid\nexec sleep 601\n', {
      mode: 0o755,
    });
    const params = {
      binfile: script,
      workdir: join(dir, 'work'),
      pidfile: join(dir, 'svc.pid'),
      stop_grace_ms: '2000',
    };
    const [start, mon] = await actions(r, 'halo:process', ['start', 'monitor'], params);
    assert.equal(start!.rc, 0, start!.exitReason);
    assert.equal(mon!.rc, 0);
    const pid = Number(readFileSync(join(dir, 'svc.pid'), 'utf8'));
    for (let i = 0; i < 100 && !existsSync(join(dir, 'work', 'child.pid')); i++)
      await new Promise((res) => setTimeout(res, 10));
    const childPid = Number(readFileSync(join(dir, 'work', 'child.pid'), 'utf8'));
    assert.equal(readFileSync(join(dir, 'work', 'cwd.txt'), 'utf8').trim(), join(dir, 'work'));
    assert.ok(pidAlive(pid) && pidAlive(childPid));
    const rest = await actions(r, 'halo:process', ['start', 'stop', 'monitor', 'stop'], params);
    assert.deepEqual(
      rest.map((x) => x.rc),
      [0, 0, OCF_RC.OCF_NOT_RUNNING, 0],
    );
    assert.ok(!pidAlive(pid) && !pidAlive(childPid), 'the command and its child are gone');
    const missing = await actions(r, 'halo:process', ['start'], { binfile: join(dir, 'nope') });
    assert.equal(missing[0]!.rc, OCF_RC.OCF_ERR_INSTALLED);
    const user = await actions(r, 'halo:process', ['start'], { binfile: script, user: 'no-such-user-xyz' });
    assert.match(user[0]!.exitReason ?? '', /no user 'no-such-user-xyz'/);
  } finally {
    // If an assertion failed midway, end the group we started (its leader's pid is the pgid).
    const pidText = existsSync(join(dir, 'svc.pid')) ? readFileSync(join(dir, 'svc.pid'), 'utf8').trim() : '';
    if (pidText && pidAlive(Number(pidText))) process.kill(-Number(pidText), 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('halo:process runs the command as the configured user', {
  skip: process.getuid?.() !== 0 && 'needs root',
}, async () => {
  const dir = tempDir();
  const params = {
    binfile: '/bin/sleep',
    cmdline_options: '600',
    user: 'nobody',
    workdir: '/tmp',
    pidfile: join(dir, 'p.pid'),
  };
  try {
    const r = runner(dir);
    const [start] = await actions(r, 'halo:process', ['start'], params);
    assert.equal(start!.rc, 0, start!.exitReason);
    const pid = Number(readFileSync(join(dir, 'p.pid'), 'utf8'));
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    const nobody = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('nobody:'))
      ?.split(':')[2];
    assert.equal(uid, nobody);
    assert.deepEqual(
      (await actions(r, 'halo:process', ['stop', 'monitor'], params)).map((x) => x.rc),
      [0, 7],
    );
  } finally {
    const pidText = existsSync(join(dir, 'p.pid')) ? readFileSync(join(dir, 'p.pid'), 'utf8').trim() : '';
    if (pidText && pidAlive(Number(pidText))) process.kill(-Number(pidText), 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('halo:ping reports pingd = multiplier × reachable hosts as a node attribute', {
  skip: noNetns,
  timeout: 60_000,
}, async () => {
  const net = createLabNet({ nodes: ['a', 'b', 'c'] });
  const dir = tempDir();
  try {
    const r = runner(dir, net.node('a').ns);
    const hosts = `${net.node('b').addrs[0]} ${net.node('c').addrs[0]} 198.18.0.99`;
    const params = { host_list: hosts, multiplier: '100', attempts: '1', timeout: '1' };
    const before = await actions(r, 'halo:ping', ['monitor'], params);
    assert.equal(before[0]!.rc, OCF_RC.OCF_NOT_RUNNING, 'not running before start');
    const [start] = await actions(r, 'halo:ping', ['start'], params);
    assert.equal(start!.rc, 0);
    assert.deepEqual(start!.attributes, { pingd: '200' });
    net.cutLink('c', 0);
    const [mon] = await actions(r, 'halo:ping', ['monitor'], { ...params, name: 'conn' });
    assert.deepEqual(mon!.attributes, { conn: '100' });
    const [stop] = await actions(r, 'halo:ping', ['stop'], params);
    assert.deepEqual(stop!.attributes, { pingd: '' }, 'stop deletes the attribute');
    const bad = await actions(r, 'halo:ping', ['start'], { host_list: '-f 1.2.3.4' });
    assert.match(bad[0]!.exitReason ?? '', /'-f' in host_list is not a host name or address/);
  } finally {
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('halo:links swaps configured paths for links into the mount and restores them, idempotently', async () => {
  const dir = tempDir();
  try {
    const r = runner(dir);
    mkdirSync(join(dir, 'etc', 'apache2'), { recursive: true });
    writeFileSync(join(dir, 'etc', 'apache2', 'local.conf'), 'local');
    mkdirSync(join(dir, 'drbd', 'etc', 'apache2'), { recursive: true });
    mkdirSync(join(dir, 'drbd', 'var', 'www'), { recursive: true });
    const conf = join(dir, 'drbdlinks.conf');
    writeFileSync(
      conf,
      `# seed 004\nmountpoint('${dir}/drbd')\nlink('${dir}/etc/apache2', '${dir}/drbd/etc/apache2')\nlink('${dir}/var/www', '${dir}/drbd/var/www')\n`,
    );
    const params = { config: conf };
    const rcs = await actions(r, 'halo:links', ['monitor', 'start', 'start', 'monitor'], params);
    assert.deepEqual(
      rcs.map((x) => x.rc),
      [7, 0, 0, 0],
    );
    assert.equal(readlinkSync(join(dir, 'etc', 'apache2')), join(dir, 'drbd', 'etc', 'apache2'));
    assert.equal(readFileSync(join(dir, 'etc', 'apache2.drbdlinks', 'local.conf'), 'utf8'), 'local');
    assert.ok(lstatSync(join(dir, 'var', 'www')).isSymbolicLink());
    const stop = await actions(r, 'halo:links', ['stop', 'stop', 'monitor'], params);
    assert.deepEqual(
      stop.map((x) => x.rc),
      [0, 0, 7],
    );
    assert.equal(
      readFileSync(join(dir, 'etc', 'apache2', 'local.conf'), 'utf8'),
      'local',
      'original restored',
    );
    assert.ok(!existsSync(join(dir, 'var', 'www')), 'a path that did not exist before is removed again');
    const inline = await actions(r, 'halo:links', ['start', 'monitor', 'stop'], {
      links: `${dir}/etc/apache2=${dir}/drbd/etc/apache2`,
    });
    assert.deepEqual(
      inline.map((x) => x.rc),
      [0, 0, 0],
    );
    assert.throws(
      () => parseDrbdlinksConf("link('/a')\n", 'x.conf'),
      /x.conf:1:1: link\('\/a'\) needs a target path too/,
    );
    assert.throws(() => parseDrbdlinksConf('bogus\n', 'x.conf'), /x.conf:1:1: expected link/);
    const none = await actions(r, 'halo:links', ['start'], {});
    assert.match(none[0]!.exitReason ?? '', /set 'links' \(LOCAL=TARGET,…\) or 'config'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('halo:lab-fence reports running only on the node where the cluster started it', async () => {
  const dir = tempDir();
  try {
    const r = runner(dir);
    const params = { netns_prefix: 'hzzzzz-' };
    const [probe, start, mon, stop, after] = await actions(
      r,
      'halo:lab-fence',
      ['monitor', 'start', 'monitor', 'stop', 'monitor'],
      params,
    );
    assert.equal(probe!.rc, OCF_RC.OCF_NOT_RUNNING, 'a probe before start must say not running');
    assert.equal(start!.rc, 0, start!.exitReason);
    assert.equal(mon!.rc, 0);
    assert.equal(stop!.rc, 0);
    assert.equal(after!.rc, OCF_RC.OCF_NOT_RUNNING);
    const [bad] = await actions(r, 'halo:lab-fence', ['start'], {});
    assert.equal(bad!.rc, OCF_RC.OCF_ERR_CONFIGURED);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
