import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createLabNet, hasNetnsSupport } from '../lab/netns.ts';
import { pidAlive } from '../lib/pid.ts';
import { Executor } from './executor.ts';
import { ShellAgentRunner } from './runner.ts';

/**
 * Full start → monitor → stop → monitor cycles of the unmodified agents Debian ships in
 * resource-agents (and nginx), run through the executor exactly as the controller will.
 */

const isRoot = process.getuid?.() === 0;
const hasAgents = existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy');
const skipUnlessRoot = (!isRoot || !hasAgents) && 'needs root and Debian resource-agents';

async function cycle(
  ex: Executor,
  resource: string,
  agent: string,
  params: Record<string, string>,
  netns?: string,
) {
  const out: { action: string; rc: number; reason: string }[] = [];
  for (const action of ['start', 'monitor', 'stop', 'monitor']) {
    const r = await ex.submit({
      resource,
      agent,
      action,
      intervalMs: 0,
      timeoutMs: 60_000,
      params,
      ...(netns !== undefined ? { netns } : {}),
    });
    out.push({ action, rc: r.rc, reason: `${r.status} ${r.exitReason ?? ''} ${r.stderrTail.slice(-400)}` });
  }
  return out;
}

function assertCycle(out: { action: string; rc: number; reason: string }[]): void {
  assert.deepEqual(
    out.map((o) => o.rc),
    [0, 0, 0, 7],
    `start/monitor/stop/monitor gave ${JSON.stringify(out, null, 1)}`,
  );
}

test('ocf:heartbeat:Dummy and ocf:pacemaker:Dummy run a full start, monitor, stop, monitor cycle', {
  skip: skipUnlessRoot,
}, async () => {
  const ex = new Executor({ runner: new ShellAgentRunner() });
  const dir = mkdtempSync(join(tmpdir(), 'halo-dummy-'));
  try {
    assertCycle(await cycle(ex, 'dummy-hb', 'ocf:heartbeat:Dummy', { state: join(dir, 'hb.state') }));
    assertCycle(await cycle(ex, 'dummy-pcmk', 'ocf:pacemaker:Dummy', { state: join(dir, 'pcmk.state') }));
  } finally {
    ex.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ocf:heartbeat:anything supervises a command and stops it', { skip: skipUnlessRoot }, async () => {
  const ex = new Executor({ runner: new ShellAgentRunner() });
  const dir = mkdtempSync(join(tmpdir(), 'halo-anything-'));
  const pidfile = join(dir, 'sleeper.pid');
  let pid: number | undefined;
  try {
    const params = { binfile: '/bin/sleep', cmdline_options: '600', pidfile, logfile: join(dir, 'log') };
    const r = await ex.submit({
      resource: 'sleeper',
      agent: 'ocf:heartbeat:anything',
      action: 'start',
      intervalMs: 0,
      timeoutMs: 30_000,
      params,
    });
    assert.equal(r.rc, 0, r.stderrTail);
    pid = Number(readFileSync(pidfile, 'utf8'));
    assert.ok(pidAlive(pid), 'the supervised command runs');
    const rest = [];
    for (const action of ['monitor', 'stop', 'monitor']) {
      rest.push(
        (
          await ex.submit({
            resource: 'sleeper',
            agent: 'ocf:heartbeat:anything',
            action,
            intervalMs: 0,
            timeoutMs: 30_000,
            params,
          })
        ).rc,
      );
    }
    assert.deepEqual(rest, [0, 0, 7]);
    assert.ok(!pidAlive(pid), 'stop ended the command');
  } finally {
    ex.close();
    if (pid !== undefined && pidAlive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ocf:heartbeat:nginx serves a temporary site on a loopback address and stops it', {
  skip: (skipUnlessRoot || !existsSync('/usr/sbin/nginx')) && 'needs root, resource-agents and nginx',
}, async () => {
  const ex = new Executor({ runner: new ShellAgentRunner() });
  const dir = mkdtempSync(join(tmpdir(), 'halo-nginx-'));
  const addr = '127.0.0.83:18083';
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    [
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log;`,
      'worker_processes 1;',
      'events { worker_connections 64; }',
      'http {',
      `  access_log off; client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;`,
      `  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`,
      `  server { listen ${addr}; location / { return 200 "halo-nginx-ok\\n"; } }`,
      '}',
      '',
    ].join('\n'),
  );
  const params = { configfile: conf, httpd: '/usr/sbin/nginx' };
  try {
    const start = await ex.submit({
      resource: 'web',
      agent: 'ocf:heartbeat:nginx',
      action: 'start',
      intervalMs: 0,
      timeoutMs: 60_000,
      params,
    });
    assert.equal(start.rc, 0, `${start.exitReason} ${start.stderrTail}`);
    const body = await (await fetch(`http://${addr}/`, { signal: AbortSignal.timeout(5000) })).text();
    assert.equal(body, 'halo-nginx-ok\n');
    const rest = [];
    for (const action of ['monitor', 'stop', 'monitor']) {
      rest.push(
        (
          await ex.submit({
            resource: 'web',
            agent: 'ocf:heartbeat:nginx',
            action,
            intervalMs: 0,
            timeoutMs: 60_000,
            params,
          })
        ).rc,
      );
    }
    assert.deepEqual(rest, [0, 0, 7]);
  } finally {
    ex.close();
    const pidText = existsSync(join(dir, 'nginx.pid'))
      ? readFileSync(join(dir, 'nginx.pid'), 'utf8').trim()
      : '';
    if (pidText && pidAlive(Number(pidText))) process.kill(Number(pidText), 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ocf:heartbeat:IPaddr2 adds and removes an address inside a network namespace', {
  skip: (skipUnlessRoot || !hasNetnsSupport()) && 'needs root and ip netns',
}, async () => {
  const net = createLabNet({ nodes: ['a', 'b'] });
  const ex = new Executor({ runner: new ShellAgentRunner() });
  try {
    const a = net.node('a');
    const params = { ip: '198.18.0.200', cidr_netmask: '24', nic: 'link0' };
    const start = await ex.submit({
      resource: 'vip',
      agent: 'ocf:heartbeat:IPaddr2',
      action: 'start',
      intervalMs: 0,
      timeoutMs: 30_000,
      params,
      netns: a.ns,
    });
    assert.equal(start.rc, 0, `${start.exitReason} ${start.stderrTail}`);
    assert.match(net.exec('a', ['ip', '-o', 'addr', 'show', 'dev', 'link0']), /198\.18\.0\.200\/24/);
    net.exec('b', ['ping', '-c', '1', '-W', '2', '198.18.0.200']);
    const rest = [];
    for (const action of ['monitor', 'stop', 'monitor']) {
      rest.push(
        (
          await ex.submit({
            resource: 'vip',
            agent: 'ocf:heartbeat:IPaddr2',
            action,
            intervalMs: 0,
            timeoutMs: 30_000,
            params,
            netns: a.ns,
          })
        ).rc,
      );
    }
    assert.deepEqual(rest, [0, 0, 7]);
    assert.doesNotMatch(net.exec('a', ['ip', '-o', 'addr', 'show', 'dev', 'link0']), /198\.18\.0\.200/);
  } finally {
    ex.close();
    net.destroy();
  }
});

test('ocf:heartbeat:Filesystem mounts and unmounts ext4 on a loop device', {
  skip: skipUnlessRoot,
  timeout: 120_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-fs-'));
  const img = join(dir, 'disk.img');
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  let loop: string | undefined;
  const ex = new Executor({ runner: new ShellAgentRunner() });
  try {
    execFileSync('truncate', ['-s', '16M', img]);
    execFileSync('mkfs.ext4', ['-q', '-F', img]);
    loop = execFileSync('losetup', ['-f', '--show', img], { encoding: 'utf8' }).trim();
    const params = { device: loop, directory: mnt, fstype: 'ext4' };
    const out = await cycle(ex, 'fs', 'ocf:heartbeat:Filesystem', params);
    assertCycle(out);
    assert.ok(!readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `), 'unmounted after stop');
  } finally {
    ex.close();
    if (readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `)) execFileSync('umount', ['-l', mnt]);
    if (loop) execFileSync('losetup', ['-d', loop]);
    rmSync(dir, { recursive: true, force: true });
  }
});
