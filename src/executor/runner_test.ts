import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pidAlive } from '../lib/pid.ts';
import { heartbeatToOcf } from './heartbeat_compat.ts';
import { parseMetadata, validateParams } from './metadata.ts';
import { OCF_RC } from './rc.ts';
import { ShellAgentRunner } from './runner.ts';

function tempRoot(): string {
  return mkdtempSync(join(tmpdir(), 'halo-exec-'));
}

function writeScript(path: string, body: string, mode = 0o755): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, body);
  chmodSync(path, mode);
}

const run = (
  r: ShellAgentRunner,
  agent: string,
  action: string,
  params: Record<string, string> = {},
  timeoutMs = 20_000,
) => r.run({ agent, resource: 'r1', action, intervalMs: 0, timeoutMs, params });

test('an LSB init script runs start, status, stop, status with status 3 reported as not running', async () => {
  const dir = tempRoot();
  try {
    const state = join(dir, 'state');
    writeScript(
      join(dir, 'init.d', 'websvc'),
      `#!/bin/sh\ncase "$1" in\n start) touch ${state};;\n stop) rm -f ${state};;\n status) [ -f ${state} ] && exit 0; exit 3;;\n *) exit 2;;\nesac\n`,
    );
    const r = new ShellAgentRunner({ lsbDir: join(dir, 'init.d') });
    const rcs = [];
    for (const action of ['start', 'monitor', 'stop', 'monitor'])
      rcs.push((await run(r, 'lsb:websvc', action)).rc);
    assert.deepEqual(rcs, [0, 0, 0, OCF_RC.OCF_NOT_RUNNING]);
    assert.deepEqual(r.list('lsb'), ['lsb:websvc']);
    // service: resolves to the LSB script when one exists.
    assert.equal((await run(r, 'service:websvc', 'start')).rc, 0);
    assert.equal((await run(r, 'service:websvc', 'monitor')).rc, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a Heartbeat resource.d script gets its haresources arguments before the action', async () => {
  const dir = tempRoot();
  try {
    const log = join(dir, 'log');
    writeScript(
      join(dir, 'resource.d', 'drbddisk'),
      `#!/bin/sh\necho "$@" >> ${log}\ncase "$2" in\n start) touch ${dir}/on;;\n stop) rm -f ${dir}/on;;\n status) [ -f ${dir}/on ] && echo running || echo stopped;;\nesac\nexit 0\n`,
    );
    const r = new ShellAgentRunner({ heartbeatDir: join(dir, 'resource.d'), lsbDir: join(dir, 'none') });
    const rcs = [];
    for (const action of ['start', 'monitor', 'stop', 'monitor'])
      rcs.push((await run(r, 'heartbeat:drbddisk', action, { 1: 'r0' })).rc);
    assert.deepEqual(rcs, [0, 0, 0, OCF_RC.OCF_NOT_RUNNING]);
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), [
      'r0 start',
      'r0 status',
      'r0 stop',
      'r0 status',
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unknown agent is reported as not installed, naming the path it looked for', async () => {
  const r = new ShellAgentRunner();
  const res = await run(r, 'ocf:heartbeat:NoSuchAgent', 'start');
  assert.equal(res.rc, OCF_RC.OCF_ERR_INSTALLED);
  assert.equal(res.status, 'notInstalled');
  assert.match(
    res.exitReason ?? '',
    /ocf:heartbeat:NoSuchAgent is not installed: \/usr\/lib\/ocf\/resource.d\/heartbeat\/NoSuchAgent does not exist/,
  );
  await assert.rejects(r.metadata('ocf:heartbeat:NoSuchAgent'), { code: 'unknown-agent' });
  await assert.rejects(r.metadata('nonsense:x'), {
    code: 'unknown-agent',
    message: /unknown class 'nonsense'/,
  });
  const hb = await run(r, 'halo:nosuch', 'start');
  assert.match(hb.exitReason ?? '', /not a halo built-in \(built-ins: halo:vip/);
});

test('a non-executable agent script is refused with a chmod hint, and nothing runs', async () => {
  const dir = tempRoot();
  try {
    const marker = join(dir, 'ran');
    writeScript(join(dir, 'resource.d', 'test', 'NoExec'), `#!/bin/sh\ntouch ${marker}\nexit 0\n`, 0o644);
    const r = new ShellAgentRunner({ ocfRoot: dir, stateDir: join(dir, 'rsctmp') });
    const res = await run(r, 'ocf:test:NoExec', 'start');
    assert.equal(res.status, 'notInstalled');
    assert.match(res.exitReason ?? '', /is not executable \(chmod \+x /);
    assert.throws(() => readFileSync(marker));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an agent that prints garbage meta-data gets a clear error with the position', async () => {
  const dir = tempRoot();
  try {
    writeScript(
      join(dir, 'resource.d', 'test', 'Garbage'),
      `#!/bin/sh\necho 'this is <not> xml & at all'\nexit 0\n`,
    );
    writeScript(
      join(dir, 'resource.d', 'test', 'WrongRoot'),
      `#!/bin/sh\necho '<html><body/></html>'\nexit 0\n`,
    );
    writeScript(join(dir, 'resource.d', 'test', 'Fails'), `#!/bin/sh\necho 'boom' >&2\nexit 1\n`);
    const r = new ShellAgentRunner({ ocfRoot: dir, stateDir: join(dir, 'rsctmp') });
    await assert.rejects(r.metadata('ocf:test:Garbage'), {
      code: 'bad-metadata',
      message: /ocf:test:Garbage: meta-data is not well-formed XML/,
    });
    await assert.rejects(r.metadata('ocf:test:WrongRoot'), {
      code: 'bad-metadata',
      message: /line 1:\d+: root element is <html>, expected <resource-agent>/,
    });
    await assert.rejects(r.metadata('ocf:test:Fails'), { code: 'agent-failed', message: /rc 1.*boom/ });
    assert.throws(() => parseMetadata('', 'x'), { code: 'bad-metadata', message: /meta-data is empty/ });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing required parameter is rejected naming the agent and the parameter', async () => {
  const r = new ShellAgentRunner();
  const meta = await r.metadata('ocf:heartbeat:IPaddr2');
  assert.ok(meta.parameters.some((p) => p.name === 'ip' && p.required));
  assert.throws(() => validateParams(meta, 'ocf:heartbeat:IPaddr2', { nic: 'eth0' }), {
    code: 'missing-parameter',
    message: /ocf:heartbeat:IPaddr2: required parameter 'ip' not set \(give --param ip=…\)/,
  });
  validateParams(meta, 'ocf:heartbeat:IPaddr2', { ip: '192.0.2.1' });
  const fs = await r.metadata('ocf:heartbeat:Filesystem');
  assert.throws(() => validateParams(fs, 'ocf:heartbeat:Filesystem', {}), {
    message: /'device', 'directory', 'fstype'/,
  });
  assert.equal(fs.actions.find((a) => a.name === 'start')?.timeout, '60s');
});

test('a systemd agent without a running systemd fails with a clear reason', async () => {
  const r = new ShellAgentRunner({ systemdRunning: false });
  const res = await run(r, 'systemd:nginx', 'start');
  assert.equal(res.status, 'notInstalled');
  assert.match(res.exitReason ?? '', /systemd is not running on this machine/);
});

test('an operation that times out has its children and grandchildren killed, even ones ignoring SIGTERM', {
  timeout: 30_000,
}, async () => {
  const dir = tempRoot();
  try {
    const pids = join(dir, 'pids');
    writeScript(
      join(dir, 'resource.d', 'test', 'Hang'),
      [
        '#!/bin/sh',
        `sleep 300 & echo $! >> ${pids}`,
        // A grandchild that ignores SIGTERM, under a child shell.
        `sh -c "trap '' TERM; sleep 300 & echo \\$! >> ${pids}; wait" & echo $! >> ${pids}`,
        `echo started; echo $$ >> ${pids}`,
        'sleep 300',
      ].join('\n'),
    );
    const r = new ShellAgentRunner({ ocfRoot: dir, stateDir: join(dir, 'rsctmp'), killGraceMs: 300 });
    const res = await run(r, 'ocf:test:Hang', 'start', {}, 700);
    assert.equal(res.status, 'timeout');
    assert.equal(res.rc, OCF_RC.OCF_ERR_GENERIC);
    assert.match(res.exitReason ?? '', /timed out after 700 ms \(process group killed\)/);
    assert.match(res.stdout, /started/);
    const list = readFileSync(pids, 'utf8').trim().split('\n').map(Number);
    assert.equal(list.length, 4, 'the agent, two children and a grandchild wrote their pids');
    // Poll (bounded) for the kernel to finish tearing them down.
    for (let i = 0; i < 100 && list.some((p) => pidAlive(p)); i++)
      await new Promise((res2) => setTimeout(res2, 20));
    assert.deepEqual(
      list.filter((p) => pidAlive(p)),
      [],
      'no process of the timed-out operation survives',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('agent output beyond the capture bound keeps the newest bytes and says what was dropped', async () => {
  const dir = tempRoot();
  try {
    writeScript(
      join(dir, 'resource.d', 'test', 'Chatty'),
      '#!/bin/sh\nhead -c 600000 /dev/zero | tr "\\0" x\necho END\nexit 0\n',
    );
    const r = new ShellAgentRunner({ ocfRoot: dir, stateDir: join(dir, 'rsctmp') });
    const res = await run(r, 'ocf:test:Chatty', 'monitor');
    assert.equal(res.rc, 0);
    assert.match(res.stdout, /^\[… \d+ bytes dropped\]\n/);
    assert.ok(res.stdout.endsWith('xEND\n'));
    assert.ok(res.stdout.length < 300_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('agents see the OCF environment: instance, type, provider, params, meta and HA_ variables', async () => {
  const dir = tempRoot();
  try {
    writeScript(
      join(dir, 'resource.d', 'test', 'Env'),
      '#!/bin/sh\nenv | grep -E "^(OCF_|HA_)" | sort\necho "ocf-exit-reason:because I said so" >&2\nexit 7\n',
    );
    const r = new ShellAgentRunner({ ocfRoot: dir, stateDir: join(dir, 'rsctmp') });
    const res = await r.run({
      agent: 'ocf:test:Env',
      resource: 'web-ip',
      action: 'monitor',
      intervalMs: 10_000,
      timeoutMs: 20_000,
      params: { ip: '192.0.2.5', OCF_CHECK_LEVEL: '10' },
      meta: { 'notify-type': 'pre', target_role: 'Started' },
    });
    assert.equal(res.rc, OCF_RC.OCF_NOT_RUNNING);
    assert.equal(res.exitReason, 'because I said so');
    for (const line of [
      `OCF_ROOT=${dir}`,
      `OCF_FUNCTIONS_DIR=${dir}/lib/heartbeat`,
      'OCF_RESOURCE_INSTANCE=web-ip',
      'OCF_RESOURCE_TYPE=Env',
      'OCF_RESOURCE_PROVIDER=test',
      'OCF_RA_VERSION_MAJOR=1',
      'OCF_RA_VERSION_MINOR=1',
      'OCF_CHECK_LEVEL=10',
      'OCF_RESKEY_ip=192.0.2.5',
      'OCF_RESKEY_CRM_meta_interval=10000',
      'OCF_RESKEY_CRM_meta_timeout=20000',
      'OCF_RESKEY_CRM_meta_notify_type=pre',
      `HA_RSCTMP=${dir}/rsctmp`,
      'HA_LOGFACILITY=daemon',
      'HA_debug=0',
    ]) {
      assert.ok(res.stdout.split('\n').includes(line), `missing ${line} in:\n${res.stdout}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a parameter name that cannot be an environment variable is refused before the agent runs', async () => {
  const r = new ShellAgentRunner();
  const res = await run(r, 'ocf:heartbeat:Dummy', 'start', { 'bad=name': 'x' });
  assert.equal(res.rc, OCF_RC.OCF_ERR_ARGS);
  assert.equal(res.status, 'invalid');
  assert.match(res.exitReason ?? '', /parameter name 'bad=name' cannot be passed in the environment/);
});

test('an operation aimed at a network namespace that does not exist fails naming the namespace', async () => {
  const r = new ShellAgentRunner();
  const res = await r.run({
    agent: 'halo:vip',
    resource: 'v',
    action: 'monitor',
    intervalMs: 0,
    timeoutMs: 5000,
    params: { ip: '192.0.2.1' },
    netns: 'halo-no-such-ns',
  });
  assert.equal(res.status, 'error');
  assert.match(res.exitReason ?? '', /network namespace 'halo-no-such-ns' does not exist/);
});

test('Heartbeat v1 resources without a resource.d script map onto the OCF agents with the same arguments', async () => {
  const dir = tempRoot();
  try {
    const r = new ShellAgentRunner({
      heartbeatDir: join(dir, 'none'),
      lsbDir: join(dir, 'none'),
      stateDir: join(dir, 'rsctmp'),
    });
    assert.deepEqual(heartbeatToOcf('IPaddr', ['192.0.2.10/24/eth0']), {
      agent: 'ocf:heartbeat:IPaddr',
      params: { ip: '192.0.2.10', cidr_netmask: '24', nic: 'eth0' },
    });
    assert.deepEqual(heartbeatToOcf('Filesystem', ['/dev/drbd0', '/drbd', 'ext3']), {
      agent: 'ocf:heartbeat:Filesystem',
      params: { device: '/dev/drbd0', directory: '/drbd', fstype: 'ext3' },
    });
    assert.equal(heartbeatToOcf('drbdlinks', [])?.agent, 'halo:links');
    // Delay::0::0 runs the real ocf:heartbeat:Delay through the mapping.
    if (existsSync('/usr/lib/ocf/resource.d/heartbeat/Delay')) {
      const rcs = [];
      for (const action of ['start', 'monitor', 'stop', 'monitor'])
        rcs.push((await run(r, 'heartbeat:Delay', action, { 1: '0', 2: '0' })).rc);
      assert.deepEqual(rcs, [0, 0, 0, OCF_RC.OCF_NOT_RUNNING]);
    }
    // drbddisk maps onto halo:volume (see volume_test.ts); Raid1 has no mapping.
    const missing = await run(r, 'heartbeat:Raid1', 'start', { 1: '/etc/raidtab' });
    assert.equal(missing.status, 'notInstalled');
    assert.match(missing.exitReason ?? '', /heartbeat:Raid1 is not installed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
