import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { registerAgentCommands } from './agent_cmd.ts';
import { type CliRun, runCli } from './testing.ts';

const hasAgents = existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy') && process.getuid?.() === 0;

/** Runs `halo …` with this area's commands; returns exit code and captured output. */
function halo(...args: string[]): Promise<CliRun> {
  return runCli(registerAgentCommands, args);
}

test('halo agent run prints the rc with its name and exits with it, like crm_resource --force-start', {
  skip: !hasAgents && 'needs root and resource-agents',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-cli-'));
  try {
    const state = `state=${join(dir, 'd.state')}`;
    const start = await halo(
      'agent',
      'run',
      'ocf:heartbeat:Dummy',
      'start',
      '--param',
      state,
      '--timeout',
      '20s',
    );
    assert.equal(start.code, 0);
    assert.equal(
      start.out,
      "Operation start for dummy (ocf:heartbeat:Dummy) returned: 'ok' (0, OCF_SUCCESS)\n",
    );
    const stop = await halo('agent', 'run', 'ocf:heartbeat:Dummy', 'stop', '--param', state);
    assert.equal(stop.code, 0);
    const mon = await halo(
      'agent',
      'run',
      'ocf:heartbeat:Dummy',
      'monitor',
      '--param',
      state,
      '--resource',
      'd1',
    );
    assert.equal(mon.code, 7);
    assert.match(
      mon.out,
      /^Operation monitor for d1 \(ocf:heartbeat:Dummy\) returned: 'not running' \(7, OCF_NOT_RUNNING\)/,
    );
    const json = await halo(
      'agent',
      'run',
      'ocf:heartbeat:Dummy',
      'monitor',
      '--param',
      state,
      '--output',
      'json',
    );
    assert.equal(JSON.parse(json.out).rcName, 'OCF_NOT_RUNNING');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('halo agent run refuses a missing required parameter and an unknown agent with clear messages', {
  skip: !hasAgents && 'needs root and resource-agents',
}, async () => {
  const missing = await halo('agent', 'run', 'ocf:heartbeat:IPaddr2', 'start');
  assert.equal(missing.code, 6);
  assert.equal(
    missing.err,
    "halo agent run: ocf:heartbeat:IPaddr2: required parameter 'ip' not set (give --param ip=…)\n",
  );
  const unknown = await halo('agent', 'run', 'ocf:heartbeat:Nope', 'start');
  assert.equal(unknown.code, 5);
  assert.match(
    unknown.err,
    /Nope is not installed: \/usr\/lib\/ocf\/resource.d\/heartbeat\/Nope does not exist/,
  );
  const badKv = await halo('agent', 'run', 'ocf:heartbeat:Dummy', 'start', '--param', 'novalue');
  assert.equal(badKv.code, 2);
  assert.match(
    badKv.err,
    /option '--param <k=v>' argument 'novalue' is invalid\. 'novalue' is not NAME=VALUE/,
  );
  const badTimeout = await halo('agent', 'run', 'ocf:heartbeat:Dummy', 'monitor', '--timeout', 'soon');
  assert.match(badTimeout.err, /--timeout: 'soon' is not a duration/);
});

test('halo agent list and info show installed agents, their parameters and action timeouts', {
  skip: !hasAgents && 'needs resource-agents',
}, async () => {
  const list = await halo('agent', 'list', 'ocf:pacemaker');
  assert.ok(list.out.split('\n').includes('ocf:pacemaker:Dummy'));
  assert.ok(!list.out.includes('ocf:heartbeat:'));
  const halos = await halo('agent', 'list', 'halo');
  assert.equal(halos.out, 'halo:lab-fence\nhalo:links\nhalo:ping\nhalo:process\nhalo:vip\nhalo:volume\n');
  const info = await halo('agent', 'info', 'ocf:heartbeat:IPaddr2');
  assert.match(info.out, /^\s+\* ip \(string\): /m);
  assert.match(info.out, /^\s+start timeout=20s$/m);
  const bad = await halo('agent', 'info', 'ocf:heartbeat:Nope');
  assert.equal(bad.code, 5);
});

test('halo fence run drives a fence agent through the stdin protocol and halo fence list shows it', {
  skip: !existsSync('/usr/sbin/fence_dummy') && 'needs fence-agents',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-cli-fence-'));
  try {
    const file = join(dir, 'power');
    writeFileSync(file, 'on');
    const list = await halo('fence', 'list');
    assert.ok(list.out.split('\n').includes('fence_dummy'));
    assert.ok(list.out.split('\n').includes('halo:lab-fence'));
    const off = await halo(
      'fence',
      'run',
      'dev1',
      'off',
      'n1',
      '--agent',
      'fence_dummy',
      '--param',
      'type=file',
      '--param',
      `status_file=${file}`,
    );
    assert.equal(off.code, 0, off.out + off.err);
    assert.match(off.out, /^dev1: off n1: rc 0 \(OCF_SUCCESS\) \[done\]/);
    assert.equal(readFileSync(file, 'utf8'), 'off');
    const status = await halo(
      'fence',
      'run',
      'fence_dummy',
      'status',
      'n1',
      '--param',
      'type=file',
      '--param',
      `status_file=${file}`,
    );
    assert.equal(status.code, 7, 'status of a powered-off node is "not running"');
    const bad = await halo('fence', 'run', 'fence_dummy', 'explode', 'n1');
    assert.match(bad.err, /'explode' is not a fence action/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('halo agent and fence refuse an unknown class or output format with exit 2 and say what is allowed', async () => {
  const cls = await halo('agent', 'list', 'ocff:heartbeat');
  assert.equal(cls.code, 2);
  assert.match(
    cls.err,
    /unknown class 'ocff' \(expected one of ocf, lsb, systemd, service, heartbeat, stonith, halo/,
  );
  assert.equal(cls.out, '');
  for (const args of [
    ['agent', 'list', '--output', 'yaml'],
    ['agent', 'info', 'ocf:heartbeat:Dummy', '--output', 'yaml'],
    ['agent', 'run', 'ocf:heartbeat:Dummy', 'monitor', '--output', 'yaml'],
    ['fence', 'list', '--output', 'yaml'],
  ]) {
    const r = await halo(...args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, /argument 'yaml' is invalid\. Allowed choices are text, json/, args.join(' '));
    assert.equal(r.out, '', args.join(' '));
  }
  const badFenceParam = await halo('fence', 'run', 'fence_ipmilan', 'off', 'n1', '--param', 'ip');
  assert.equal(badFenceParam.code, 2);
  assert.match(badFenceParam.err, /'ip' is not NAME=VALUE/);
});
