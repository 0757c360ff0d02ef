import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { createLabNet, hasNetnsSupport } from '../lab/netns.ts';
import { commandOnPath } from '../lib/command_on_path.ts';
import { pidAlive } from '../lib/pid.ts';
import { MemoryBlockDevice } from '../nbd/block_device.ts';
import { NbdServer } from '../nbd/server.ts';
import { Fencer, parseHostMap } from './fence.ts';
import { ShellAgentRunner } from './runner.ts';

const execFileP = promisify(execFile);

const hasFenceDummy = existsSync('/usr/sbin/fence_dummy');

/**
 * A fence agent speaking the fence-agents stdin protocol, with a plug list, per-port power
 * state and a configurable number of failures before an `off` succeeds (for retries).
 */
const TEST_AGENT = `#!/bin/sh
action=; port=; state_dir=; fail_first=0
while IFS= read -r line; do
  case "$line" in
    action=*) action=\${line#action=};;
    port=*) port=\${line#port=};;
    state_dir=*) state_dir=\${line#state_dir=};;
    fail_first=*) fail_first=\${line#fail_first=};;
    broken=*) echo "Failed: unable to connect" >&2; exit 1;;
    hang=*) sleep 300;;
  esac
done
echo "$action $port" >> "$state_dir/calls"
case "$action" in
  metadata)
    cat <<'XML'
<?xml version="1.0" ?>
<resource-agent name="fence_halotest" shortdesc="Test fence agent">
<parameters>
 <parameter name="port" unique="0" required="0"><content type="string"/><shortdesc lang="en">Plug</shortdesc></parameter>
 <parameter name="state_dir" unique="0" required="1"><content type="string"/><shortdesc lang="en">State dir</shortdesc></parameter>
</parameters>
<actions><action name="on"/><action name="off"/><action name="reboot"/><action name="status"/><action name="list"/><action name="monitor"/><action name="metadata"/></actions>
</resource-agent>
XML
    exit 0;;
  list) echo "port-a,node-a"; echo "port-b,node-b"; exit 0;;
  monitor) exit 0;;
  status) if [ -f "$state_dir/$port.off" ]; then echo "Status: OFF"; exit 2; fi; echo "Status: ON"; exit 0;;
  off)
    n=$(cat "$state_dir/fails" 2>/dev/null || echo 0)
    if [ "$n" -lt "$fail_first" ]; then echo $((n+1)) > "$state_dir/fails"; echo "Failed: device busy" >&2; exit 1; fi
    touch "$state_dir/$port.off"; echo "Success: Powered OFF"; exit 0;;
  on) rm -f "$state_dir/$port.off"; echo "Success: Powered ON"; exit 0;;
  reboot) touch "$state_dir/$port.rebooted"; exit 0;;
esac
exit 1
`;

function setup(): { dir: string; runner: ShellAgentRunner; calls: () => string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'halo-fence-'));
  mkdirSync(join(dir, 'sbin'));
  writeFileSync(join(dir, 'sbin', 'fence_halotest'), TEST_AGENT);
  chmodSync(join(dir, 'sbin', 'fence_halotest'), 0o755);
  const runner = new ShellAgentRunner({ fenceDir: join(dir, 'sbin'), stateDir: join(dir, 'rsctmp') });
  const calls = (): string[] =>
    existsSync(join(dir, 'calls')) ? readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n') : [];
  return { dir, runner, calls };
}

test('the Debian fence_dummy agent powers a target off and on through the stdin protocol', {
  skip: !hasFenceDummy && 'needs fence-agents',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-fdummy-'));
  try {
    const statusFile = join(dir, 'power');
    writeFileSync(statusFile, 'on');
    const runner = new ShellAgentRunner();
    const fencer = new Fencer({
      runner,
      devices: [
        {
          id: 'dummy',
          agent: 'stonith:fence_dummy',
          params: { type: 'file', status_file: statusFile, pcmk_host_list: 'n1' },
        },
      ],
    });
    const meta = await runner.metadata('stonith:fence_dummy');
    assert.equal(meta.shortdesc, 'Dummy fence agent');
    assert.ok(meta.actions.some((a) => a.name === 'off'));
    assert.deepEqual(
      (await fencer.runDevice('dummy', 'status', 'n1')).map((a) => a.rcName),
      ['OCF_SUCCESS'],
    );
    const off = await fencer.fence('n1', 'off');
    assert.ok(off.ok, off.reason);
    assert.equal(readFileSync(statusFile, 'utf8'), 'off');
    assert.deepEqual(
      (await fencer.runDevice('dummy', 'status', 'n1')).map((a) => a.rcName),
      ['OCF_NOT_RUNNING'],
    );
    assert.ok((await fencer.fence('n1', 'on')).ok);
    assert.equal(readFileSync(statusFile, 'utf8'), 'on');
    // As a cluster resource the device is started and monitored with the monitor action.
    const mon = await runner.run({
      agent: 'stonith:fence_dummy',
      resource: 'dummy',
      action: 'monitor',
      intervalMs: 0,
      timeoutMs: 20_000,
      params: { type: 'file', status_file: statusFile },
    });
    assert.equal(mon.rc, 0, mon.stderr);
    const cannot = await fencer.fence('n2', 'off');
    assert.equal(cannot.ok, false);
    assert.match(cannot.reason, /no fence device can fence n2 \(check pcmk_host_list/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pcmk_host_map turns the node name into the device port and a dynamic list decides who it can fence', async () => {
  const { dir, runner, calls } = setup();
  try {
    const fencer = new Fencer({
      runner,
      devices: [{ id: 'pdu', agent: 'fence_halotest', params: { state_dir: dir } }],
    });
    assert.equal(await fencer.canFence('pdu', 'port-a'), true, 'dynamic-list: port-a is listed');
    assert.equal(await fencer.canFence('pdu', 'node-z'), false);
    const mapped = new Fencer({
      runner,
      devices: [
        {
          id: 'pdu',
          agent: 'fence_halotest',
          params: { state_dir: dir, pcmk_host_map: 'alpha:port-a;beta:port-b' },
        },
      ],
    });
    const r = await mapped.fence('beta', 'off');
    assert.ok(r.ok, r.reason);
    assert.ok(existsSync(join(dir, 'port-b.off')), 'the device got port=port-b for node beta');
    assert.ok(calls().includes('off port-b'));
    assert.deepEqual(
      [...parseHostMap('a:1;b=2, c:3').entries()],
      [
        ['a', '1'],
        ['b', '2'],
        ['c', '3'],
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failing off is retried pcmk_off_retries times, and gives up with the last error', async () => {
  const { dir, runner, calls } = setup();
  try {
    const mk = (retries: string) =>
      new Fencer({
        runner,
        devices: [
          {
            id: 'pdu',
            agent: 'fence_halotest',
            params: { state_dir: dir, fail_first: '2', pcmk_host_list: 'n1', pcmk_off_retries: retries },
          },
        ],
      });
    const r = await mk('2').fence('n1', 'off');
    assert.ok(r.ok, r.reason);
    assert.deepEqual(
      r.attempts.map((a) => a.rc),
      [1, 1, 0],
    );
    rmSync(join(dir, 'fails'));
    rmSync(join(dir, 'n1.off'));
    const none = await mk('0').fence('n1', 'off');
    assert.equal(none.ok, false);
    assert.match(none.reason, /pdu off rc 1 \(done\): Failed: device busy/);
    assert.ok(calls().filter((c) => c === 'off n1').length >= 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a fence agent that hangs is killed at pcmk_off_timeout and the fencing fails with a timeout', async () => {
  const { dir, runner } = setup();
  try {
    const fencer = new Fencer({
      runner,
      devices: [
        {
          id: 'slow',
          agent: 'fence_halotest',
          params: { state_dir: dir, hang: '1', pcmk_host_list: 'n1', pcmk_off_timeout: '500ms' },
        },
      ],
    });
    const r = await fencer.fence('n1', 'off');
    assert.equal(r.ok, false);
    assert.equal(r.attempts.length, 1, 'no retry is started after the timeout used up the time');
    assert.equal(r.attempts[0]!.status, 'timeout');
    assert.match(r.reason, /slow off rc 1 \(timeout\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fencing topology tries levels in order and needs every device of a level', async () => {
  const { dir, runner, calls } = setup();
  try {
    const fencer = new Fencer({
      runner,
      devices: [
        {
          id: 'ipmi',
          agent: 'fence_halotest',
          params: { state_dir: dir, broken: '1', pcmk_reboot_retries: '0', pcmk_host_list: 'n1' },
        },
        { id: 'psu1', agent: 'fence_halotest', params: { state_dir: dir, pcmk_host_map: 'n1:psu1-n1' } },
        { id: 'psu2', agent: 'fence_halotest', params: { state_dir: dir, pcmk_host_map: 'n1:psu2-n1' } },
      ],
      levels: [
        { id: 'l2', target: 'n1', index: '2', devices: 'psu1,psu2' },
        { id: 'l1', target: 'n1', index: '1', devices: 'ipmi' },
      ],
    });
    const r = await fencer.fence('n1', 'reboot');
    assert.ok(r.ok, r.reason);
    assert.equal(r.level, 2);
    assert.equal(
      `${r.attempts[0]!.device} ${r.attempts[0]!.action} rc ${r.attempts[0]!.rc}`,
      'ipmi reboot rc 1',
      'level 1 was tried first',
    );
    // Level 1 failed; level 2 rebooted by switching off both supplies, then on both.
    assert.deepEqual(
      calls().filter((c) => !c.startsWith('metadata')),
      ['off psu1-n1', 'off psu2-n1', 'on psu1-n1', 'on psu2-n1'],
    );
    assert.throws(
      () =>
        new Fencer({
          runner,
          devices: [],
          levels: [{ id: 'lx', target: 'n1', index: '1', devices: 'nope' }],
        }),
      { code: 'bad-fence-device', message: /level lx: device 'nope' is not defined/ },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('halo:lab-fence powers off a lab node: its processes die and its links go down, then on restores the links', {
  skip: !hasNetnsSupport() && 'needs root and ip netns',
  timeout: 60_000,
}, async () => {
  const net = createLabNet({ nodes: ['a', 'b'] });
  const a = net.node('a');
  const child = spawn('ip', ['netns', 'exec', a.ns, 'sleep', '600'], { detached: true, stdio: 'ignore' });
  child.unref();
  try {
    const runner = new ShellAgentRunner();
    const fencer = new Fencer({
      runner,
      devices: [
        {
          id: 'lab',
          agent: 'halo:lab-fence',
          params: { netns_prefix: `h${net.tag}-`, pcmk_host_list: 'a b' },
        },
      ],
    });
    for (let i = 0; i < 100 && !readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').startsWith('sleep'); i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.ok(pidAlive(child.pid!), 'a process runs in node a');
    net.exec('b', ['ping', '-c', '1', '-W', '2', a.addrs[0]!]);
    const off = await fencer.fence('a', 'off');
    assert.ok(off.ok, off.reason);
    for (let i = 0; i < 100 && pidAlive(child.pid!); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(!pidAlive(child.pid!), 'the process in node a was killed');
    assert.throws(() => net.exec('b', ['ping', '-c', '1', '-W', '1', a.addrs[0]!]), 'node a is unreachable');
    assert.deepEqual(
      (await fencer.runDevice('lab', 'status', 'a')).map((x) => x.rcName),
      ['OCF_NOT_RUNNING'],
    );
    assert.deepEqual(
      (await fencer.runDevice('lab', 'status', 'b')).map((x) => x.rcName),
      ['OCF_SUCCESS'],
    );
    const list = await fencer.runDevice('lab', 'list');
    assert.equal(list[0]!.output, 'a,\nb,');
    assert.ok((await fencer.fence('a', 'on')).ok);
    net.exec('b', ['ping', '-c', '1', '-W', '2', a.addrs[0]!]);
    assert.deepEqual(
      (await fencer.runDevice('lab', 'status', 'a')).map((x) => x.rcName),
      ['OCF_SUCCESS'],
    );
  } finally {
    if (child.pid !== undefined && pidAlive(child.pid)) process.kill(child.pid, 'SIGKILL');
    net.destroy();
  }
});

test("halo:lab-fence off, run inside another node as a daemon runs it, fails the node's nbdfuse I/O first: an nbdfuse killed under its own ext4 does not hang", {
  skip:
    (!hasNetnsSupport() && 'needs root and ip netns') ||
    (!['nbdfuse', 'mkfs.ext4', 'losetup'].every(commandOnPath) && 'needs nbdfuse, mkfs.ext4 and losetup'),
  timeout: 120_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-fence-fuse-'));
  const server = new NbdServer([{ name: 'r0', device: new MemoryBlockDevice(64 << 20) }]);
  const sock = join(dir, 'r0.nbd');
  await server.listen({ unixPath: sock });
  const connsBefore = new Set(fuseConnections());
  const net = createLabNet({ nodes: ['a', 'b'] });
  let nbdfuse: number | undefined;
  let loop = '';
  try {
    // Node a: nbdfuse serves a file, ext4 on a loop device on it, dirty data in the cache. The
    // shell then exits, so nbdfuse is the last process of that mount namespace: when it dies,
    // the ext4 is unmounted and its journal written through nbdfuse itself.
    const fuseDir = join(dir, 'r0.fuse');
    const mnt = join(dir, 'mnt');
    mkdirSync(fuseDir);
    mkdirSync(mnt);
    // Asynchronously: the NBD server answering nbdfuse runs in this process's event loop.
    loop = (
      await execFileP(
        'ip',
        [
          ...['netns', 'exec', net.node('a').ns, 'sh', '-c'],
          `nbdfuse ${fuseDir}/disk --unix ${sock} </dev/null >/dev/null 2>&1 &
           i=0; while [ ! -e ${fuseDir}/disk ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
           L=$(losetup -f --show ${fuseDir}/disk) && mkfs.ext4 -q $L && mount $L ${mnt} &&
           dd if=/dev/urandom of=${mnt}/f bs=64k count=32 2>/dev/null && echo $L`,
        ],
        { timeout: 60_000 },
      )
    ).stdout.trim();
    assert.match(loop, /^\/dev\/loop\d+$/);
    nbdfuse = nbdfusePids().find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(fuseDir));
    assert.ok(nbdfuse !== undefined, 'nbdfuse runs in node a');
    // The fence agent as node b's daemon runs it: inside b, where /sys has no fusectl mounted.
    const compiled = import.meta.url.endsWith('.js');
    const main = new URL(compiled ? '../cli/main.js' : '../cli/main.ts', import.meta.url).pathname;
    const r = await execFileP(
      'ip',
      [
        ...['netns', 'exec', net.node('b').ns, process.execPath],
        ...(compiled ? [] : ['--import', 'tsx']),
        ...[main, 'agent', 'run', 'halo:lab-fence', 'off'],
        ...['--param', 'port=a', '--param', `netns_prefix=h${net.tag}-`],
      ],
      { timeout: 60_000 },
    );
    assert.match(r.stdout, /Powered OFF/);
    // Gone (or a zombie nobody reaps), never stuck in D state; and its loop device can be freed
    // (a plain `losetup` does not autoclear: the lab frees it when the node boots again).
    const stuck = () => {
      try {
        return readFileSync(`/proc/${nbdfuse}/stat`, 'utf8').replace(/^.*\) /, '')[0] === 'D';
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 200 && (stuck() || (pidAlive(nbdfuse) && !zombie(nbdfuse))); i++)
      await new Promise((res) => setTimeout(res, 50));
    assert.ok(!stuck(), 'nbdfuse is not stuck in D state');
    assert.ok(!pidAlive(nbdfuse) || zombie(nbdfuse), 'nbdfuse is dead');
    const d = spawnSync('losetup', ['-d', loop], { timeout: 10_000, encoding: 'utf8' });
    assert.equal(d.status, 0, `losetup -d ${loop}: ${d.stderr}${d.error?.message ?? ''}`);
    for (let i = 0; i < 100 && existsSync(`/sys/block/${loop.slice(5)}/loop/backing_file`); i++)
      await new Promise((res) => setTimeout(res, 50));
    assert.ok(!existsSync(`/sys/block/${loop.slice(5)}/loop/backing_file`), `${loop} is freed`);
  } finally {
    // Whatever the outcome, leave no stuck FUSE connection or loop device behind.
    for (const n of fuseConnections())
      if (!connsBefore.has(n)) writeFileSync(`/sys/fs/fuse/connections/${n}/abort`, '1');
    if (nbdfuse !== undefined && pidAlive(nbdfuse) && !zombie(nbdfuse)) process.kill(nbdfuse, 'SIGKILL');
    if (loop && existsSync(`/sys/block/${loop.slice(5)}/loop/backing_file`))
      spawnSync('losetup', ['-d', loop], { timeout: 10_000 });
    net.destroy();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

function fuseConnections(): number[] {
  try {
    return readdirSync('/sys/fs/fuse/connections').map(Number);
  } catch {
    return [];
  }
}

function nbdfusePids(): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'nbdfuse';
      } catch {
        return false;
      }
    })
    .map(Number);
}

function zombie(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '')[0] === 'Z';
  } catch {
    return true;
  }
}
