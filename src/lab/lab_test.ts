import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Script } from 'node:vm';
import { parseDrbdConf } from '../cib/drbd_conf.ts';
import { HaloError } from '../lib/errors.ts';
import {
  isLabDaemon,
  LAB_NODE_ETC,
  LAB_NODE_STATE,
  labChaos,
  labDown,
  labStatus,
  labUp,
  readLabState,
} from './lab.ts';
import { hasNetnsSupport } from './netns.ts';
import {
  DEFAULT_SCENARIO,
  scenarioConfiguration,
  scenarioFiles,
  WEB_SERVER_FILE,
  webServerScript,
} from './scenarios.ts';
import { removeTestLab } from './testing.ts';

/** Polls `check` until it returns true or `ms` passes. */
async function eventually(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`gave up waiting for ${what} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('lab up builds a 3-node cluster that status reports; chaos --kill is seen by the others; down removes everything', {
  skip: !hasNetnsSupport() && 'needs root and ip netns',
  timeout: 150_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-labtest-'));
  let namespaces: readonly string[] = [];
  let pids: number[] = [];
  try {
    const state = await labUp({ dir, nodes: 3, scenario: 'web', profile: 'lab' });
    namespaces = state.namespaces;
    pids = state.nodes.map((n) => n.pid!);
    assert.equal(state.nodes.length, 3);
    assert.ok(existsSync(join(dir, 'scenario', 'cib.crm')), 'scenario written');
    assert.ok(
      state.nodes.every((n) => isLabDaemon(n)),
      'every daemon runs',
    );
    await eventually('all three nodes to see each other', 30_000, async () => {
      const r = await labStatus(dir);
      return r.nodes.every(
        (n) => n.status?.members.filter((m) => m.state === 'member' || m.state === 'self').length === 3,
      );
    });
    // Each daemon has its own /etc/halo and /var/lib/halo (its mount namespace, seen through
    // /proc/PID/root); none of it shows on the host's paths.
    for (const n of state.nodes) {
      const root = `/proc/${n.pid}/root`;
      assert.equal(
        readFileSync(`${root}${LAB_NODE_ETC}/halo.json`, 'utf8'),
        readFileSync(n.configFile, 'utf8'),
        `${n.name} reads its own config from /etc/halo`,
      );
      assert.equal(JSON.parse(readFileSync(n.configFile, 'utf8')).stateDir, LAB_NODE_STATE);
      assert.ok(
        existsSync(`${root}${LAB_NODE_STATE}/${n.name}.raft`),
        `${n.name}'s Raft log in /var/lib/halo`,
      );
      for (const other of state.nodes.filter((o) => o !== n))
        assert.ok(
          !existsSync(`${root}${LAB_NODE_STATE}/${other.name}.raft`),
          `${n.name} cannot see ${other.name}'s`,
        );
      assert.ok(!existsSync(`${LAB_NODE_STATE}/${n.name}.raft`), 'nothing on the host path');
    }
    const what = await labChaos(dir, { fault: 'kill', node: 'n3' });
    assert.match(what, /killed the daemon of n3/);
    assert.equal(
      readLabState(dir).nodes.find((n) => n.name === 'n3')!.pid,
      null,
      'the kill is recorded for later commands',
    );
    await eventually('n1 and n2 to mark n3 lost', 30_000, async () => {
      const r = await labStatus(dir);
      return ['n1', 'n2'].every((name) => {
        const st = r.nodes.find((n) => n.name === name)?.status;
        return st?.members.find((m) => m.name === 'n3')?.state === 'lost';
      });
    });
    const r = await labStatus(dir);
    assert.equal(r.nodes.find((n) => n.name === 'n3')!.running, false);
    const cut = await labChaos(dir, { fault: 'cut-link', node: 'n1', link: 1 });
    assert.match(cut, /cut link 1 of n1/);
    // Without --node, restart boots the node that is down and heal repairs the one that was cut.
    assert.match(await labChaos(dir, { fault: 'restart' }), /restarted n3 as a rebooted machine/);
    assert.match(await labChaos(dir, { fault: 'heal' }), /healed n1: links 1 restored/);
    await assert.rejects(labChaos(dir, { fault: 'restart' }), /every lab node's daemon is running/);
    const lines = await labDown(dir);
    assert.ok(lines.some((l) => l.startsWith('stopped n1')));
  } finally {
    await removeTestLab(dir);
  }
  for (const ns of namespaces) assert.ok(!existsSync(`/run/netns/${ns}`), `namespace ${ns} left behind`);
  for (const pid of pids)
    assert.ok(
      !existsSync(`/proc/${pid}/cmdline`) || !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir),
      `daemon ${pid} left running`,
    );
  assert.ok(!existsSync(dir));
});

/** Whether any process on this host has something mounted on `path` (another lab running). */
function mountedSomewhere(path: string): boolean {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (
        readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
          .split('\n')
          .some((l) => l.split(' ')[4] === path)
      )
        return true;
    } catch {
      // Gone meanwhile.
    }
  }
  return false;
}

test('two labs that overlap leave no mount point behind on the host, whichever goes down first', {
  skip: !hasNetnsSupport() && 'needs root and ip netns',
  timeout: 150_000,
}, async () => {
  const hostHad = [LAB_NODE_ETC, LAB_NODE_STATE].filter((d) => existsSync(d));
  const dirs = [mkdtempSync(join(tmpdir(), 'halo-labtest-')), mkdtempSync(join(tmpdir(), 'halo-labtest-'))];
  try {
    // The first lab makes the mount points; the second finds them there and still uses them
    // when the first goes down.
    await labUp({ dir: dirs[0]!, nodes: 2, profile: 'lab' });
    await labUp({ dir: dirs[1]!, nodes: 2, profile: 'lab' });
    await labDown(dirs[0]!);
    for (const d of [LAB_NODE_ETC, LAB_NODE_STATE])
      assert.ok(existsSync(d), `${d} is still used by the second lab`);
    await labDown(dirs[1]!);
  } finally {
    for (const dir of dirs) {
      await removeTestLab(dir);
    }
  }
  for (const d of [LAB_NODE_ETC, LAB_NODE_STATE]) {
    // Tests run two files at once: a lab of the other file may still have it mounted, and
    // then removes it when it goes down itself.
    if (hostHad.includes(d) || mountedSomewhere(d)) continue;
    assert.ok(!existsSync(d), `${d} left behind on the host`);
  }
});

test('lab commands against a lab that is not up say so and change nothing', {
  skip: !hasNetnsSupport() && 'needs root',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-labtest-'));
  try {
    await assert.rejects(
      labStatus(dir),
      (e: unknown) => e instanceof HaloError && e.code === 'no-lab' && e.message.includes("'halo lab up'"),
    );
    await assert.rejects(labDown(dir), (e: unknown) => e instanceof HaloError && e.code === 'no-lab');
    await assert.rejects(
      labChaos(dir, { fault: 'kill' }),
      (e: unknown) => e instanceof HaloError && e.code === 'no-lab',
    );
    await assert.rejects(
      labUp({ dir, nodes: 0 }),
      (e: unknown) => e instanceof HaloError && e.code === 'bad-argument',
    );
    assert.ok(existsSync(dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every scenario names each lab node and the lab VIP', () => {
  for (const name of ['web', 'seed-003', 'seed-004'] as const) {
    const sc = scenarioFiles(name, ['n1', 'n2']);
    const text = Object.values(sc.files).join('\n');
    assert.ok(text.includes('n1') && text.includes('n2'), name);
    assert.ok(text.includes('198.18.0.200'), name);
  }
});

test('the web scenario runs its server through halo:process with a script node can load, fenced by halo:lab-fence', () => {
  const sc = scenarioFiles('web', ['n1', 'n2', 'n3'], 'hx-', {
    scenarioDir: '/lab/scenario',
    nodeBin: '/usr/bin/node',
  });
  const crm = sc.files['cib.crm']!;
  assert.match(
    crm,
    /primitive www halo:process params binfile="\/usr\/bin\/node" cmdline_options="\/lab\/scenario\/www\.cjs hx-"/,
  );
  assert.match(crm, /primitive fence-lab halo:lab-fence params netns_prefix=hx-/);
  assert.match(crm, /stonith-action=off/);
  assert.equal(sc.files[WEB_SERVER_FILE], webServerScript());
  // Compiles as a script (syntax only; running it needs a lab namespace and port 80).
  assert.doesNotThrow(() => new Script(webServerScript(), { filename: WEB_SERVER_FILE }));
  const cfg = scenarioConfiguration(sc);
  assert.deepEqual(
    cfg.resources.map((r) => r.id),
    ['fence-lab', 'g-web'],
  );
  assert.equal(DEFAULT_SCENARIO, 'web');
});

test('the seed-003 scenario has the seed’s shape: ms_drbd on halo’s volume agent, g_all colocated with and ordered after its promotion, stonith on', () => {
  const sc = scenarioFiles('seed-003', ['n1', 'n2'], 'hx-', {
    scenarioDir: '/lab/scenario',
    nodeBin: '/usr/bin/node',
    nodeAddrs: { n1: '198.18.0.1', n2: '198.18.0.2' },
  });
  const crm = sc.files['cib.crm']!;
  assert.match(
    crm,
    /primitive p_drbd ocf:linbit:drbd params drbd_resource=r0 config=\/lab\/scenario\/drbd\.conf/,
  );
  assert.match(
    crm,
    /primitive p_fs ocf:heartbeat:Filesystem params device=\/lab\/dev\/r0 directory=\/lab\/data fstype=ext4/,
  );
  assert.match(crm, /colocation c_drbd inf: g_all ms_drbd:Master/);
  assert.match(crm, /order o_afterdrbd inf: ms_drbd:promote g_all:start/);
  assert.match(crm, /stonith-enabled=true .*no-quorum-policy=stop default-resource-stickiness=100/);
  const cfg = scenarioConfiguration(sc);
  assert.deepEqual(
    cfg.resources.map((r) => r.id),
    ['fence-lab', 'ms_drbd', 'g_all'],
  );
  const drbd = parseDrbdConf(sc.files['drbd.conf']!, 'scenario/drbd.conf');
  assert.ok(drbd.ok, JSON.stringify(drbd));
  assert.match(
    sc.files['drbd.conf']!,
    /on n1 \{\n\s+device \/dev\/drbd0;\n\s+disk \/lab\/n1\/volume\.img;\n\s+address 198\.18\.0\.1:7789;/,
  );
  // nginx and MariaDB (the seed's MySQL) with their data on the volume and per-node pid/socket paths.
  assert.match(crm, /group g_all p_fs p_sip p_nginx p_mysql\n/);
  assert.match(crm, /primitive p_nginx ocf:heartbeat:nginx params configfile=\/lab\/scenario\/nginx\.conf/);
  assert.match(
    crm,
    /primitive p_mysql ocf:heartbeat:mysql .*datadir=\/lab\/data\/mysql socket=\/lab\/dev\/mysqld\//,
  );
  assert.match(sc.files['nginx.conf']!, /pid \/lab\/dev\/nginx\.pid;/);
  assert.match(sc.files['my.cnf']!, /datadir = \/lab\/data\/mysql\n/);
});

test('lab up refuses seed-003 with other than two nodes, before making anything', {
  skip: !hasNetnsSupport() && 'needs root and ip netns',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-lab-seed003-'));
  try {
    await assert.rejects(
      labUp({ dir, nodes: 3, scenario: 'seed-003' }),
      (e: unknown) => e instanceof HaloError && e.code === 'bad-argument' && /two-node/.test(e.message),
    );
    assert.ok(!existsSync(join(dir, 'lab.json')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
