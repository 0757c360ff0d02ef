import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
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
import { selfCommand } from '../../cli/volume_cmd.ts';
import { createLabNet, hasNetnsSupport, type LabNet } from '../../lab/netns.ts';
import { commandOnPath } from '../../lib/command_on_path.ts';
import { waitFor } from '../../lib/wait.ts';
import { controlRequest } from '../../volume/engine.ts';
import { Executor } from '../executor.ts';
import { heartbeatToOcf, ocfToBuiltin } from '../heartbeat_compat.ts';
import type { OpResult } from '../ops.ts';
import { OCF_RC } from '../rc.ts';
import { ShellAgentRunner } from '../runner.ts';
import { builtinAgents } from './mod.ts';
import {
  FENCED_NODES_META,
  PROMOTION_SCORE,
  peerFencedByCluster,
  promotionScore,
  replicationSocketFilter,
  volumeAgent,
} from './volume.ts';

/** Bound on every wait for a real process or a real resync (never a protocol sleep). */
const WAIT_MS = 60_000;

const usable =
  hasNetnsSupport() &&
  commandOnPath('nbdfuse') &&
  commandOnPath('mkfs.ext4') &&
  commandOnPath('losetup') &&
  existsSync('/dev/fuse');

function submit(
  ex: Executor,
  action: string,
  params: Record<string, string>,
  opts: {
    netns?: string;
    agent?: string;
    resource?: string;
    timeoutMs?: number;
    meta?: Record<string, string>;
  } = {},
): Promise<OpResult> {
  return ex.submit({
    resource: opts.resource ?? 'p_drbd:0',
    agent: opts.agent ?? 'halo:volume',
    action,
    intervalMs: 0,
    timeoutMs: opts.timeoutMs ?? 60_000,
    params,
    ...(opts.meta !== undefined ? { meta: opts.meta } : {}),
    ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
  });
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'halo-volume-agent-'));
}

test('a volume agent without drbd_resource, with an unknown resource or without its engine says why and changes nothing', async () => {
  const dir = tempDir();
  const conf = join(dir, 'drbd.conf');
  writeFileSync(
    conf,
    `resource r0 {
  on n1 { device /dev/drbd0; disk ${dir}/n1.img; address 127.0.0.1:7789; meta-disk internal; }
  on n2 { device /dev/drbd0; disk ${dir}/n2.img; address 127.0.0.2:7789; meta-disk internal; }
}
`,
  );
  const builtins = new Map(builtinAgents());
  builtins.set('volume', volumeAgent({ engine: { exec: join(dir, 'no-such-engine'), args: [] } }));
  const ex = new Executor({ runner: new ShellAgentRunner({ stateDir: join(dir, 'rsctmp'), builtins }) });
  const runDir = join(dir, 'run');
  try {
    const missing = await submit(ex, 'start', { config: conf, run_dir: runDir });
    assert.equal(missing.rc, OCF_RC.OCF_ERR_CONFIGURED);
    assert.match(missing.exitReason ?? '', /parameter 'drbd_resource' is required/);

    const unknown = await submit(ex, 'start', {
      drbd_resource: 'r9',
      config: conf,
      run_dir: runDir,
      node: 'n1',
    });
    assert.equal(unknown.rc, OCF_RC.OCF_ERR_CONFIGURED);
    assert.match(
      unknown.exitReason ?? '',
      /drbd_resource 'r9' is not defined in .*drbd\.conf \(defined: r0\)/,
    );

    const wrongNode = await submit(ex, 'start', {
      drbd_resource: 'r0',
      config: conf,
      run_dir: runDir,
      node: 'n7',
    });
    assert.equal(wrongNode.rc, OCF_RC.OCF_ERR_CONFIGURED);
    assert.match(wrongNode.exitReason ?? '', /no "on n7" section \(hosts: n1, n2\)/);

    const noConf = await submit(ex, 'validate-all', { drbd_resource: 'r0', config: join(dir, 'nope.conf') });
    assert.equal(noConf.rc, OCF_RC.OCF_ERR_CONFIGURED);
    assert.match(noConf.exitReason ?? '', /cannot read config .*nope\.conf/);

    const noDisk = await ex.submit({
      resource: 'p_drbd:0',
      agent: 'halo:volume',
      action: 'start',
      intervalMs: 0,
      timeoutMs: 20_000,
      params: { drbd_resource: 'r0', config: conf, run_dir: runDir, node: 'n2' },
    });
    assert.equal(noDisk.rc, OCF_RC.OCF_ERR_INSTALLED);
    assert.match(noDisk.exitReason ?? '', /backing disk .*n2\.img of n2 does not exist/);

    writeFileSync(join(dir, 'n1.img'), Buffer.alloc(0));
    const noEngine = await submit(ex, 'start', {
      drbd_resource: 'r0',
      config: conf,
      run_dir: runDir,
      node: 'n1',
    });
    assert.equal(noEngine.rc, OCF_RC.OCF_ERR_INSTALLED);
    assert.match(noEngine.exitReason ?? '', /the volume engine .*no-such-engine is not installed/);
    assert.equal(existsSync(runDir), false, 'nothing was created');

    // Stopping and probing a resource that never ran succeed, whatever the configuration says.
    const stop = await submit(ex, 'stop', {
      drbd_resource: 'r0',
      config: join(dir, 'nope.conf'),
      run_dir: runDir,
    });
    assert.equal(stop.rc, OCF_RC.OCF_SUCCESS);
    const probe = await submit(ex, 'monitor', {
      drbd_resource: 'r0',
      config: conf,
      run_dir: runDir,
      node: 'n1',
    });
    assert.equal(probe.rc, OCF_RC.OCF_NOT_RUNNING);
    assert.deepEqual(
      probe.attributes,
      { 'master-p_drbd': '' },
      'a stopped instance offers no promotion score',
    );
  } finally {
    ex.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('halo:volume meta-data is promotable and ocf:linbit:drbd and drbddisk map onto it', async () => {
  const runner = new ShellAgentRunner({ ocfRoot: '/nonexistent-ocf-root' });
  const meta = await runner.metadata('halo:volume');
  const names = meta.actions.map((a) => a.name);
  for (const a of ['start', 'stop', 'promote', 'demote', 'notify', 'monitor', 'validate-all', 'meta-data'])
    assert.ok(names.includes(a), `meta-data lists ${a}`);
  assert.deepEqual(
    meta.actions.filter((a) => a.name === 'monitor').map((a) => a.role),
    ['Promoted', 'Unpromoted'],
  );
  assert.ok(meta.parameters.find((p) => p.name === 'drbd_resource')?.required);
  // With no linbit agent installed, ocf:linbit:drbd runs as halo:volume (same meta-data).
  assert.deepEqual(await runner.metadata('ocf:linbit:drbd'), meta);
  assert.deepEqual(ocfToBuiltin('linbit', 'drbd', { drbd_resource: 'drbd0' }), {
    agent: 'halo:volume',
    params: { drbd_resource: 'drbd0' },
  });
  assert.equal(ocfToBuiltin('heartbeat', 'IPaddr2', {}), undefined);
  assert.deepEqual(heartbeatToOcf('drbddisk', ['r0']), {
    agent: 'halo:volume',
    params: { drbd_resource: 'r0', mode: 'drbddisk' },
  });
});

test('promotion scores follow the disk state like ocf:linbit:drbd', () => {
  const s = (role: 'Primary' | 'Secondary', disk: string, conn: string, peerDisk: string) =>
    promotionScore({ role, disk, conn, peerDisk } as Parameters<typeof promotionScore>[0]);
  assert.equal(s('Secondary', 'UpToDate', 'Connected', 'UpToDate'), PROMOTION_SCORE.upToDateKnownPeer);
  assert.equal(s('Primary', 'UpToDate', 'StandAlone', 'DUnknown'), PROMOTION_SCORE.upToDateKnownPeer);
  assert.equal(s('Secondary', 'UpToDate', 'WFConnection', 'DUnknown'), PROMOTION_SCORE.upToDateAlone);
  assert.equal(s('Secondary', 'Consistent', 'WFConnection', 'DUnknown'), PROMOTION_SCORE.consistent);
  for (const disk of ['Inconsistent', 'Outdated', 'Diskless', 'DUnknown'])
    assert.equal(s('Secondary', disk, 'Connected', 'UpToDate'), undefined, `${disk} is never promoted`);
});

interface Lab {
  net: LabNet;
  dir: string;
  conf: string;
  runDir: (n: string) => string;
}

function cli(lab: Lab, node: string, args: string[]): void {
  const { exec, args: pre } = selfCommand();
  execFileSync(
    exec,
    [...pre, 'volume', '-c', lab.conf, '--node', node, '--run-dir', lab.runDir(node), ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
}

/** Best-effort teardown of whatever a node's agent left: mounts, loop device, FUSE, engine. */
function cleanupNode(lab: Lab, node: string, enginePids: Set<number>): void {
  const quiet = (argv: string[]): void => {
    try {
      execFileSync(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    } catch {
      // Not there.
    }
  };
  const file = join(lab.runDir(node), 'r0.attach.json');
  if (existsSync(file)) {
    const s = JSON.parse(readFileSync(file, 'utf8')) as { loop?: string; fuseDir?: string };
    if (s.loop) {
      quiet(['umount', s.loop]);
      quiet(['losetup', '-d', s.loop]);
    }
    if (s.fuseDir) quiet(['fusermount3', '-u', s.fuseDir]);
  }
  quiet(['fusermount3', '-u', join(lab.runDir(node), 'r0.fuse')]);
  for (const pid of enginePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

test('two nodes run halo:volume through the executor: start, score, promote, Filesystem on device_link, fail over, stop', {
  skip: !usable && 'needs root, ip netns, nbdfuse, losetup and mkfs.ext4',
  timeout: 240_000,
}, async () => {
  const dir = tempDir();
  const net = createLabNet({ nodes: ['n1', 'n2'] });
  const lab: Lab = { net, dir, conf: join(dir, 'drbd.conf'), runDir: (n) => join(dir, `run-${n}`) };
  const [a1, a2] = [net.node('n1').addrs[0]!, net.node('n2').addrs[0]!];
  writeFileSync(
    lab.conf,
    `resource r0 {
  protocol C;
  net { ping-int 1; timeout 10; connect-int 1; ko-count 4; }
  on n1 { device ${dir}/drbd0; disk ${dir}/n1.img; address ${a1}:7789; meta-disk internal; }
  on n2 { device ${dir}/drbd0; disk ${dir}/n2.img; address ${a2}:7789; meta-disk internal; }
}
`,
  );
  const link = join(dir, 'dev', 'r0');
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const params = (n: string) => ({
    drbd_resource: 'r0',
    config: lab.conf,
    run_dir: lab.runDir(n),
    device_link: link,
  });
  const fsParams = { device: link, directory: mnt, fstype: 'ext4' };
  const ex = new Executor({ runner: new ShellAgentRunner({ stateDir: join(dir, 'rsctmp') }) });
  // n2 runs under its imported name: with no linbit agent installed it maps onto halo:volume.
  const n2Agent = existsSync('/usr/lib/ocf/resource.d/linbit/drbd') ? 'halo:volume' : 'ocf:linbit:drbd';
  const vol = (n: string, action: string, extra: Record<string, string> = {}) =>
    submit(
      ex,
      action,
      { ...params(n), ...extra },
      {
        netns: net.node(n).ns,
        agent: n === 'n2' ? n2Agent : 'halo:volume',
      },
    );
  // Filesystem runs in this process's mount namespace, where the agent attached the loop device.
  const fs = (action: string) =>
    submit(ex, action, fsParams, { agent: 'ocf:heartbeat:Filesystem', resource: 'fs_drbd' });
  const enginePids = new Set<number>();
  const notePids = async () => {
    for (const n of ['n1', 'n2']) {
      const r = await controlRequest(lab.runDir(n), 'r0', { cmd: 'status' }).catch(() => undefined);
      if (r?.ok) enginePids.add(Number(r.pid));
    }
  };
  const t0 = performance.now();
  try {
    for (const n of ['n1', 'n2']) {
      execFileSync('truncate', ['-s', '64M', join(dir, `${n}.img`)]);
      cli(lab, n, ['create-md', 'r0']);
    }
    // start on both: engines up as Secondary; fresh disks are Inconsistent, so no score yet.
    for (const n of ['n1', 'n2']) {
      const r = await vol(n, 'start');
      assert.equal(r.rc, OCF_RC.OCF_SUCCESS, `start on ${n}: ${r.exitReason}`);
      assert.deepEqual(
        r.attributes,
        { 'master-p_drbd': '' },
        'an Inconsistent disk offers no promotion score',
      );
    }
    await notePids();
    assert.equal(enginePids.size, 2);
    // Initial full sync, as after `drbdadm primary --force` on one node.
    cli(lab, 'n1', ['primary', '--force', 'r0']);
    await waitFor('n2 to be UpToDate and connected', WAIT_MS, async () => {
      const r = await vol('n2', 'monitor');
      return r.attributes?.['master-p_drbd'] === String(PROMOTION_SCORE.upToDateKnownPeer) || undefined;
    });
    cli(lab, 'n1', ['secondary', 'r0']);
    for (const n of ['n1', 'n2']) {
      const r = await vol(n, 'monitor');
      assert.equal(r.rc, OCF_RC.OCF_SUCCESS, `${n} runs as Secondary`);
      assert.equal(r.attributes?.['master-p_drbd'], '10000');
    }

    // promote n1: Primary, device published (device_link and drbd.conf's device), not mounted.
    const pr = await vol('n1', 'promote');
    assert.equal(pr.rc, OCF_RC.OCF_SUCCESS, pr.exitReason);
    assert.equal((await vol('n1', 'monitor')).rc, OCF_RC.OCF_RUNNING_PROMOTED);
    assert.ok(lstatSync(link).isSymbolicLink());
    const loop = readlinkSync(link);
    assert.match(loop, /^\/dev\/loop\d+$/);
    assert.equal(readlinkSync(join(dir, 'drbd0')), loop, "drbd.conf's device path is published too");
    assert.equal((await vol('n2', 'promote')).rc, OCF_RC.OCF_ERR_GENERIC, 'a second Primary is refused');

    execFileSync('mkfs.ext4', ['-q', '-F', link]);
    const fsStart = await fs('start');
    assert.equal(fsStart.rc, OCF_RC.OCF_SUCCESS, fsStart.exitReason ?? fsStart.stderrTail);
    writeFileSync(join(mnt, 'hello.txt'), 'written on n1\n');
    execFileSync('sync', ['-f', join(mnt, 'hello.txt')]);
    const busy = await vol('n1', 'demote');
    assert.equal(busy.rc, OCF_RC.OCF_ERR_GENERIC, 'demote refuses while the filesystem is mounted');
    assert.match(busy.exitReason ?? '', /still mounted at .*mnt; stop the Filesystem resource/);
    assert.equal((await vol('n1', 'monitor')).rc, OCF_RC.OCF_RUNNING_PROMOTED, 'and leaves it Primary');

    // fail over by hand, in the order the scheduler would: Filesystem stop, demote, promote, start.
    assert.equal((await fs('stop')).rc, OCF_RC.OCF_SUCCESS);
    const dm = await vol('n1', 'demote');
    assert.equal(dm.rc, OCF_RC.OCF_SUCCESS, dm.exitReason);
    assert.equal(existsSync(link), false, 'demote removes device_link');
    assert.equal((await vol('n1', 'monitor')).rc, OCF_RC.OCF_SUCCESS);
    const pr2 = await vol('n2', 'promote');
    assert.equal(pr2.rc, OCF_RC.OCF_SUCCESS, pr2.exitReason);
    process.stdout.write(
      `# demote took ${Math.round(dm.execTimeMs)} ms, promote (primary + nbdfuse + losetup) ${Math.round(pr2.execTimeMs)} ms\n`,
    );
    assert.equal((await vol('n2', 'monitor')).rc, OCF_RC.OCF_RUNNING_PROMOTED);
    assert.equal((await fs('start')).rc, OCF_RC.OCF_SUCCESS);
    assert.equal(readFileSync(join(mnt, 'hello.txt'), 'utf8'), 'written on n1\n', 'the file is there on n2');
    assert.equal((await fs('stop')).rc, OCF_RC.OCF_SUCCESS);

    // Heartbeat's drbddisk::r0 on n1: start = promote, status = running while Primary, stop =
    // demote with the engine left up and replicating.
    assert.equal((await vol('n2', 'demote')).rc, OCF_RC.OCF_SUCCESS);
    const disk = (action: string) => vol('n1', action, { mode: 'drbddisk' });
    assert.equal((await disk('monitor')).rc, OCF_RC.OCF_NOT_RUNNING, 'a Secondary is a stopped drbddisk');
    const diskStart = await disk('start');
    assert.equal(diskStart.rc, OCF_RC.OCF_SUCCESS, diskStart.exitReason);
    assert.equal(diskStart.attributes, undefined, 'a plain drbddisk resource offers no promotion score');
    assert.equal((await disk('monitor')).rc, OCF_RC.OCF_SUCCESS);
    assert.equal(readlinkSync(link).startsWith('/dev/loop'), true);
    assert.equal((await disk('stop')).rc, OCF_RC.OCF_SUCCESS);
    assert.equal((await vol('n1', 'monitor')).rc, OCF_RC.OCF_SUCCESS, 'the engine stays up as Secondary');
    assert.equal(existsSync(link), false);
    assert.equal((await vol('n2', 'promote')).rc, OCF_RC.OCF_SUCCESS);

    // kill -9 the Primary's engine: its monitor says not running, the survivor's score drops to
    // "UpToDate, peer unknown" and it can be promoted; stop on the crashed node clears its loop
    // device and FUSE mount without touching the link the new Primary published.
    const dead = (await controlRequest(lab.runDir('n2'), 'r0', { cmd: 'status' }))!;
    process.kill(Number(dead.pid), 'SIGKILL');
    await waitFor(
      'n2 monitor to see its engine gone',
      WAIT_MS,
      async () => (await vol('n2', 'monitor')).rc === 7 || undefined,
    );
    await waitFor('n1 to lose its peer', WAIT_MS, async () => {
      const r = await vol('n1', 'monitor');
      return r.attributes?.['master-p_drbd'] === String(PROMOTION_SCORE.upToDateAlone) || undefined;
    });
    assert.equal((await vol('n1', 'promote')).rc, OCF_RC.OCF_SUCCESS);
    assert.equal((await fs('start')).rc, OCF_RC.OCF_SUCCESS);
    assert.equal(
      readFileSync(join(mnt, 'hello.txt'), 'utf8'),
      'written on n1\n',
      'the file survived the crash',
    );
    const crashed = JSON.parse(readFileSync(join(lab.runDir('n2'), 'r0.attach.json'), 'utf8')) as {
      loop: string;
    };
    assert.equal((await vol('n2', 'stop')).rc, OCF_RC.OCF_SUCCESS);
    assert.notEqual(readlinkSync(link), crashed.loop, "the new Primary's link is left alone");
    assert.equal((await vol('n1', 'monitor')).rc, OCF_RC.OCF_RUNNING_PROMOTED);
    assert.equal((await fs('stop')).rc, OCF_RC.OCF_SUCCESS);

    // stop both (n1 still Primary: stop demotes and detaches), then nothing runs; stop is idempotent.
    for (const n of ['n1', 'n2']) {
      const r = await vol(n, 'stop');
      assert.equal(r.rc, OCF_RC.OCF_SUCCESS, `stop on ${n}: ${r.exitReason}`);
    }
    for (const n of ['n1', 'n2']) {
      assert.equal((await vol(n, 'monitor')).rc, OCF_RC.OCF_NOT_RUNNING);
      assert.equal((await vol(n, 'stop')).rc, OCF_RC.OCF_SUCCESS);
      assert.equal(existsSync(join(lab.runDir(n), 'r0.attach.json')), false);
    }
    assert.equal(existsSync(link), false);
    const losetup = execFileSync('losetup', ['-j', join(lab.runDir('n2'), 'r0.fuse', 'disk')], {
      encoding: 'utf8',
    });
    assert.equal(losetup.trim(), '', 'no loop device is left');
    process.stdout.write(`# halo:volume two-node flow took ${Math.round(performance.now() - t0)} ms\n`);
  } finally {
    await notePids();
    ex.close();
    try {
      execFileSync('umount', [mnt], { stdio: 'ignore' });
    } catch {
      // Not mounted.
    }
    for (const n of ['n1', 'n2']) cleanupNode(lab, n, enginePids);
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a promote drops the replication connection only to a peer the cluster says it fenced', () => {
  const r = { link: { self: '10.0.0.2:7789', peer: '10.0.0.1:7790', peerName: 'n1' } };
  assert.equal(peerFencedByCluster({ meta: { [FENCED_NODES_META]: 'n1 n3' } }, r), true);
  assert.equal(peerFencedByCluster({ meta: { [FENCED_NODES_META]: 'n3,n1' } }, r), true);
  assert.equal(peerFencedByCluster({ meta: { [FENCED_NODES_META]: 'n10 n2' } }, r), false, 'n10 is not n1');
  assert.equal(peerFencedByCluster({ meta: {} }, r), false, 'nothing fenced: wait for the engine');
  assert.equal(peerFencedByCluster({ meta: { [FENCED_NODES_META]: 'n1' } }, {}), false);
  assert.deepEqual(
    replicationSocketFilter('10.0.0.2:7789', '10.0.0.1:7790').join(' '),
    'dst 10.0.0.1 and ( dport = :7790 or sport = :7789 )',
  );
  assert.equal(replicationSocketFilter('[fd00::2]:7789', '[fd00::1]:7789')[1], '[fd00::1]');
  assert.throws(() => replicationSocketFilter('10.0.0.2', '10.0.0.1:7789'), /need a port/);
});

test('a promote told that the cluster fenced the Primary peer takes over at once, without waiting for the ping timeout', {
  skip: !usable && 'needs root, ip netns, nbdfuse, losetup and mkfs.ext4',
  timeout: 180_000,
}, async () => {
  const dir = tempDir();
  const net = createLabNet({ nodes: ['n1', 'n2'] });
  const lab: Lab = { net, dir, conf: join(dir, 'drbd.conf'), runDir: (n) => join(dir, `run-${n}`) };
  const [a1, a2] = [net.node('n1').addrs[0]!, net.node('n2').addrs[0]!];
  // The engine notices a silent peer only after ping-int + timeout = 70 s here, and a peer check
  // (check-peer) waits ping-timeout = 30 s for the answer: neither can end a 3 s promote.
  writeFileSync(
    lab.conf,
    `resource r0 {
  protocol C;
  net { ping-int 60; timeout 100; ping-timeout 300; connect-int 1; }
  on n1 { device ${dir}/drbd0; disk ${dir}/n1.img; address ${a1}:7789; meta-disk internal; }
  on n2 { device ${dir}/drbd0; disk ${dir}/n2.img; address ${a2}:7789; meta-disk internal; }
}
`,
  );
  const params = (n: string) => ({
    drbd_resource: 'r0',
    config: lab.conf,
    run_dir: lab.runDir(n),
    device_link: join(dir, 'dev', `r0-${n}`),
    link_conf_device: 'false',
  });
  const ex = new Executor({ runner: new ShellAgentRunner({ stateDir: join(dir, 'rsctmp') }) });
  const vol = (n: string, action: string, o: { timeoutMs?: number; meta?: Record<string, string> } = {}) =>
    submit(ex, action, params(n), { netns: net.node(n).ns, ...o });
  const enginePids = new Set<number>();
  const status = async (n: string) =>
    (await controlRequest(lab.runDir(n), 'r0', { cmd: 'status' }).catch(() => undefined)) as
      | { ok: boolean; pid: number; status: { role: string; conn: string; peerRole: string } }
      | undefined;
  try {
    for (const n of ['n1', 'n2']) {
      execFileSync('truncate', ['-s', '16M', join(dir, `${n}.img`)]);
      cli(lab, n, ['create-md', 'r0']);
      const r = await vol(n, 'start');
      assert.equal(r.rc, OCF_RC.OCF_SUCCESS, `start on ${n}: ${r.exitReason}`);
      enginePids.add(Number((await status(n))!.pid));
    }
    cli(lab, 'n1', ['primary', '--force', 'r0']);
    await waitFor('n2 to be UpToDate and connected', WAIT_MS, async () => {
      const r = await vol('n2', 'monitor');
      return r.attributes?.['master-p_drbd'] === String(PROMOTION_SCORE.upToDateKnownPeer) || undefined;
    });
    // "Fence" n1 the way halo:lab-fence does (links down) and kill its engine: nothing reaches n2.
    net.cutLink('n1', 0);
    process.kill(Number((await status('n1'))!.pid), 'SIGKILL');
    assert.equal((await status('n2'))?.status.peerRole, 'Primary', 'n2 has not noticed yet');

    const blind = await vol('n2', 'promote', { timeoutMs: 3_000 });
    // It keeps retrying while it sees a Primary peer, until the operation's timeout.
    assert.notEqual(blind.rc, OCF_RC.OCF_SUCCESS, 'without word of the fence, n2 must not promote');
    assert.match(blind.exitReason ?? '', /Primary|timed out/);
    const other = await vol('n2', 'promote', { timeoutMs: 3_000, meta: { [FENCED_NODES_META]: 'n3' } });
    assert.notEqual(other.rc, OCF_RC.OCF_SUCCESS, 'a fence of another node changes nothing');
    assert.equal((await status('n2'))?.status.role, 'Secondary');

    const told = await vol('n2', 'promote', { meta: { [FENCED_NODES_META]: 'n1' } });
    assert.equal(told.rc, OCF_RC.OCF_SUCCESS, told.exitReason);
    assert.match(told.stdoutTail, /n1 was fenced by the cluster: dropped [1-9]\d* replication connection/);
    const after = (await status('n2'))!.status;
    assert.equal(after.role, 'Primary');
    assert.notEqual(
      after.conn,
      'StandAlone',
      'the engine keeps trying to reconnect, so n1 can resync when back',
    );
    assert.equal((await vol('n2', 'monitor')).rc, OCF_RC.OCF_RUNNING_PROMOTED);
    const stop = await vol('n2', 'stop');
    assert.equal(stop.rc, OCF_RC.OCF_SUCCESS, stop.exitReason);
    assert.equal(existsSync(join(lab.runDir('n2'), 'r0.attach.json')), false);
  } finally {
    ex.close();
    for (const n of ['n1', 'n2']) cleanupNode(lab, n, enginePids);
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a promote pings a blocking Primary peer: a frozen one is dropped after ping-timeout, a live one is never overridden', {
  skip: !usable && 'needs root, ip netns, nbdfuse, losetup and mkfs.ext4',
  timeout: 180_000,
}, async () => {
  const dir = tempDir();
  const net = createLabNet({ nodes: ['n1', 'n2'] });
  const lab: Lab = { net, dir, conf: join(dir, 'drbd.conf'), runDir: (n) => join(dir, `run-${n}`) };
  const [a1, a2] = [net.node('n1').addrs[0]!, net.node('n2').addrs[0]!];
  // drbd.conf's default ping-int (10 s), timeout (6 s) and ping-timeout (500 ms).
  writeFileSync(
    lab.conf,
    `resource r0 {
  protocol C;
  net { connect-int 1; }
  on n1 { device ${dir}/drbd0; disk ${dir}/n1.img; address ${a1}:7789; meta-disk internal; }
  on n2 { device ${dir}/drbd0; disk ${dir}/n2.img; address ${a2}:7789; meta-disk internal; }
}
`,
  );
  const params = (n: string, extra: Record<string, string> = {}) => ({
    drbd_resource: 'r0',
    config: lab.conf,
    run_dir: lab.runDir(n),
    device_link: join(dir, 'dev', `r0-${n}`),
    link_conf_device: 'false',
    ...extra,
  });
  const ex = new Executor({ runner: new ShellAgentRunner({ stateDir: join(dir, 'rsctmp') }) });
  const vol = (n: string, action: string, o: { timeoutMs?: number; extra?: Record<string, string> } = {}) =>
    submit(ex, action, params(n, o.extra), {
      netns: net.node(n).ns,
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    });
  const enginePids = new Set<number>();
  const status = async (n: string) =>
    (await controlRequest(lab.runDir(n), 'r0', { cmd: 'status' }).catch(() => undefined)) as
      | { ok: boolean; pid: number; status: { role: string; conn: string; peerRole: string } }
      | undefined;
  let frozen: number | undefined;
  try {
    for (const n of ['n1', 'n2']) {
      execFileSync('truncate', ['-s', '16M', join(dir, `${n}.img`)]);
      cli(lab, n, ['create-md', 'r0']);
      const r = await vol(n, 'start');
      assert.equal(r.rc, OCF_RC.OCF_SUCCESS, `start on ${n}: ${r.exitReason}`);
      enginePids.add(Number((await status(n))!.pid));
    }
    cli(lab, 'n1', ['primary', '--force', 'r0']);
    await waitFor('n2 to be UpToDate and connected', WAIT_MS, async () => {
      const r = await vol('n2', 'monitor');
      return r.attributes?.['master-p_drbd'] === String(PROMOTION_SCORE.upToDateKnownPeer) || undefined;
    });
    await waitFor(
      'n2 to see n1 Primary',
      WAIT_MS,
      async () => (await status('n2'))?.status.peerRole === 'Primary' || undefined,
    );

    // n1 runs and is Primary: it answers the check, and the promote fails saying so.
    const live = await vol('n2', 'promote', { timeoutMs: 4_000 });
    assert.equal(live.rc, OCF_RC.OCF_ERR_GENERIC);
    assert.match(
      live.exitReason ?? '',
      /promote on n2 refused: the peer is Primary .*; n1 answered a ping: it is alive and Primary \(demote or stop it there first\)/,
    );
    assert.ok(
      live.execTimeMs < 4_000,
      `the refusal came before the timeout (${Math.round(live.execTimeMs)} ms)`,
    );
    assert.equal((await status('n1'))?.status.role, 'Primary');
    assert.equal((await status('n2'))?.status.conn, 'Connected', 'the live peer keeps its connection');

    // n1's engine freezes (its socket stays open: no reset): drbddisk's start on n2 checks it,
    // drops it after ping-timeout and takes over, without waiting for ping-int + timeout.
    frozen = Number((await status('n1'))!.pid);
    process.kill(frozen, 'SIGSTOP');
    const took = await vol('n2', 'start', { extra: { mode: 'drbddisk' } });
    assert.equal(took.rc, OCF_RC.OCF_SUCCESS, took.exitReason);
    assert.match(
      took.stdoutTail,
      /n1 was Primary but did not answer a ping in time: .*no answer from n1 to a ping within 500 ms/,
    );
    assert.ok(took.execTimeMs < 5_000, `drbddisk start took ${Math.round(took.execTimeMs)} ms`);
    process.stdout.write(
      `# drbddisk start with a frozen Primary peer took ${Math.round(took.execTimeMs)} ms\n`,
    );
    assert.equal((await status('n2'))?.status.role, 'Primary');
    const stop = await vol('n2', 'stop');
    assert.equal(stop.rc, OCF_RC.OCF_SUCCESS, stop.exitReason);
  } finally {
    if (frozen !== undefined) process.kill(frozen, 'SIGKILL');
    ex.close();
    for (const n of ['n1', 'n2']) cleanupNode(lab, n, enginePids);
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
