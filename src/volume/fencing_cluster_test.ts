import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import type { Cib, Primitive } from '../cib/model.ts';
import { selfCommand } from '../cli/volume_cmd.ts';
import { encodeCibCommand } from '../consensus/cib_state_machine.ts';
import { createLabCluster, startAndAgree, waitFor } from '../daemon/lab_cluster.ts';
import { volumeAgent } from '../executor/builtin/volume.ts';
import { OCF_RC } from '../executor/rc.ts';
import { hasNetnsSupport } from '../lab/netns.ts';
import { commandOnPath } from '../lib/command_on_path.ts';
import { schedule } from '../scheduler/schedule.ts';
import { clone, cluster, nodeState, primitive, started } from '../scheduler/testing.ts';
import type { CoreStatus } from './core.ts';
import { controlRequest } from './engine.ts';
import { fenceConstraintId, fencedInFavourOf } from './fence_peer.ts';

/**
 * Issue #7's data-safety hole, end to end on real processes: three `halo daemon`s in network
 * namespaces, volume engines on n1 and n2 replicating over link 1 with drbd.conf's
 * `fencing resource-and-stonith` and crm-fence-peer.sh / crm-unfence-peer.sh handlers (which
 * halo runs as its own). The replication link breaks under the Primary n1; n1 keeps writing.
 * Every write n1 acknowledges after the break must come after the cluster has recorded that
 * n2 may not be promoted; after n2 has resynced, the record is gone again.
 */

const run = promisify(execFile);
const WAIT_MS = 60_000;
const usable = hasNetnsSupport() && commandOnPath('qemu-io');

test('a stale Secondary cannot be promoted: fence-peer records it in the CIB before any write it lacks is acknowledged', {
  skip: !usable && 'needs root, ip netns and qemu-io',
  timeout: 240_000,
}, async () => {
  const names = ['n1', 'n2', 'n3'];
  const lab = createLabCluster({ nodes: names, links: 2 });
  const engines = new Map<string, ChildProcess>();
  const runDir = (n: string) => join(lab.dir, `vol-${n}`);
  const conf = join(lab.dir, 'drbd.conf');
  const status = async (n: string) => {
    const r = await controlRequest(runDir(n), 'r0', { cmd: 'status' }).catch(() => undefined);
    return r?.ok ? (r.status as CoreStatus) : undefined;
  };
  try {
    const dc = await startAndAgree(lab, names);
    // The cluster knows the volume (stopped: the engines run by hand here, as drbdadm would).
    const p: Primitive = {
      ...primitive('p_drbd', { type: 'volume', cls: 'halo', params: { drbd_resource: 'r0' } }),
    };
    const configuration = cluster({
      nodes: names,
      resources: [clone('ms_drbd', p, { promotable: 'true', 'target-role': 'Stopped' })],
    }).configuration;
    const loaded = (await lab.command(
      dc,
      `cib ${encodeCibCommand({ op: 'replace-configuration', configuration })}`,
    )) as {
      ok?: boolean;
    };
    assert.equal(loaded.ok, true);

    const addr = (n: string) => lab.net.node(n).addrs[1]!;
    writeFileSync(
      conf,
      `resource r0 {
  protocol C;
  disk { fencing resource-and-stonith; }
  net { ping-int 1; timeout 10; connect-int 1; after-sb-1pri discard-secondary; }
  handlers {
    fence-peer "/usr/lib/drbd/crm-fence-peer.sh";
    after-resync-target "/usr/lib/drbd/crm-unfence-peer.sh";
  }
  on n1 { device /dev/drbd0; disk ${lab.dir}/n1.img; address ${addr('n1')}:7789; meta-disk internal; }
  on n2 { device /dev/drbd0; disk ${lab.dir}/n2.img; address ${addr('n2')}:7789; meta-disk internal; }
}
`,
    );
    const { exec, args } = selfCommand();
    const volume = (n: string, rest: string[]) => [
      ...args,
      'volume',
      '-c',
      conf,
      '--node',
      n,
      '--run-dir',
      runDir(n),
      ...rest,
    ];
    for (const n of ['n1', 'n2']) {
      writeFileSync(join(lab.dir, `${n}.img`), Buffer.alloc(32 << 20));
      await run(exec, volume(n, ['create-md', 'r0']));
      const log = openSync(join(lab.dir, `engine-${n}.log`), 'a');
      // The engine runs in its node's namespace and finds its daemon as halo:volume tells it to.
      const child = spawn('ip', ['netns', 'exec', lab.net.node(n).ns, exec, ...volume(n, ['run', 'r0'])], {
        stdio: ['ignore', log, log],
        env: {
          ...process.env,
          HALO_CONTROL_SOCKET: join(lab.dir, `${n}.sock`),
          HALO_CLUSTER_CONFIG: join(lab.dir, 'halo.json'),
        },
      });
      closeSync(log);
      engines.set(n, child);
    }
    await waitFor(
      'the engines to connect',
      WAIT_MS,
      async () => (await status('n1'))?.conn === 'Connected' || undefined,
    );
    const forced = await controlRequest(runDir('n1'), 'r0', { cmd: 'primary', force: true });
    assert.equal(forced?.ok, true);
    await waitFor('the initial sync', WAIT_MS, async () => {
      const [a, b] = [await status('n1'), await status('n2')];
      return (a?.conn === 'Connected' && b?.disk === 'UpToDate') || undefined;
    });
    const nbd = `nbd+unix:///r0?socket=${join(runDir('n1'), 'r0.nbd')}`;
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 64k', nbd]);

    const fenceId = fenceConstraintId('r0', 'ms_drbd');
    const dcCib = async () => ((await lab.command(dc, 'cib')) as { cib: Cib }).cib;
    const constraint = async () => (await dcCib()).configuration.constraints.find((c) => c.id === fenceId);
    assert.equal(await constraint(), undefined);

    // The replication link breaks (the cluster's link 0 stays up); n1 keeps writing.
    lab.net.cutLink('n2', 1);
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x22 1M 64k', nbd]);
    // That write was acknowledged, so the constraint must already be committed.
    const c = await constraint();
    assert.ok(
      c,
      `the write was acknowledged before n2 was fenced; n1 log:\n${readFileSync(join(lab.dir, 'engine-n1.log'), 'utf8').slice(-2000)}`,
    );
    assert.equal(fencedInFavourOf(c), 'n1');
    const n1 = await status('n1');
    assert.equal(n1?.peerOutdated, true);
    assert.equal(n1?.ioSuspended, false);
    assert.equal(
      (await status('n2'))?.disk,
      'UpToDate',
      "n2's own disk still says UpToDate: only the cluster knows",
    );

    // n1 dies: with the constraint in the CIB, the scheduler will not promote n2.
    const configurationNow = (await dcCib()).configuration;
    const afterDeath: Cib = {
      ...cluster({
        nodes: names,
        resources: [clone('ms_drbd', p, { promotable: 'true' })],
        status: [
          nodeState('n1', { online: false }),
          nodeState('n2', { attrs: { 'master-p_drbd': '1000' }, history: [started('p_drbd')] }),
        ],
      }),
    };
    const withFence = {
      ...afterDeath,
      configuration: { ...afterDeath.configuration, constraints: configurationNow.constraints },
    };
    const promotes = (cib: Cib) => {
      const r = schedule(cib, Date.now());
      assert.ok(r.ok);
      return r.transition.actions.filter((a) => a.task === 'promote').map((a) => a.node);
    };
    assert.deepEqual(promotes(afterDeath), ['n2'], 'without fencing the stale n2 would be promoted');
    assert.deepEqual(promotes(withFence), [], 'with the fence constraint it is not');

    // Asked to promote n2 anyway (halo:volume's promote, as a misconfigured cluster or an
    // operator would): n2's own fence-peer finds the constraint against it (exit 6), n2 outdates
    // its disk, and the agent fails the promote and leaves n2 Secondary.
    const promote = await volumeAgent().run({
      action: 'promote',
      resource: 'p_drbd:1',
      params: {
        drbd_resource: 'r0',
        config: conf,
        run_dir: runDir('n2'),
        node: 'n2',
        device_link: join(lab.dir, 'dev-r0'),
      },
      meta: {},
      intervalMs: 0,
      timeoutMs: 60_000,
      signal: new AbortController().signal,
      stateDir: lab.dir,
    });
    assert.equal(promote.rc, OCF_RC.OCF_ERR_GENERIC);
    assert.match(promote.exitReason ?? '', /n1 fenced this node \(its data is stale\)/);
    assert.deepEqual(promote.attributes, { 'master-p_drbd': '' }, 'and it offers no promotion score');
    const b = await status('n2');
    assert.equal(b?.role, 'Secondary');
    assert.equal(b?.disk, 'Outdated');
    assert.equal(existsSync(join(lab.dir, 'dev-r0')), false, 'nothing was published');
    assert.equal(fencedInFavourOf((await constraint())!), 'n1', 'and the constraint still favours n1');

    // The link heals: n2 resyncs from n1, its after-resync-target handler lifts the constraint.
    lab.net.restoreLink('n2', 1);
    await waitFor('the resync and the unfence', WAIT_MS, async () => {
      const b = await status('n2');
      return (
        (b?.conn === 'Connected' && b.disk === 'UpToDate' && (await constraint()) === undefined) || undefined
      );
    });
    const img = readFileSync(join(lab.dir, 'n2.img'));
    assert.equal(img[1 << 20], 0x22, 'n2 has the write it missed');
  } finally {
    for (const child of engines.values())
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    for (const n of ['n1', 'n2']) {
      const tail = existsSync(join(lab.dir, `engine-${n}.log`))
        ? readFileSync(join(lab.dir, `engine-${n}.log`), 'utf8').slice(-1500)
        : '';
      if (process.env.HALO_TEST_VERBOSE) process.stderr.write(`--- engine ${n}\n${tail}\n`);
    }
    lab.destroy();
  }
});
