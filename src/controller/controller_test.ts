import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeState } from '../cib/model.ts';
import { schedule } from '../scheduler/schedule.ts';
import { Controller } from './controller.ts';
import { ClusterSim, crmCib, startCluster } from './sim_harness_test_util.ts';
import { applyStatusChanges } from './status.ts';
import { type ControllerEffect, MAX_FENCE_ATTEMPTS, NODE_ENTRY_RETRY_MS } from './types.ts';

const THREE = `node 1: n1
node 2: n2
node 3: n3
primitive fence-lab stonith:fence_dummy
primitive ip ocf:heartbeat:Dummy op monitor interval=10s
primitive web ocf:heartbeat:Dummy op monitor interval=10s
group g ip web
location l-prefer g 50: n1
property stonith-enabled=true
`;

test('a fresh cluster probes every resource on every node, then starts the group in order on its preferred node', () => {
  const sim = startCluster(THREE, ['n1', 'n2', 'n3']);
  const probes = sim.execs.filter((e) => e.action === 'monitor' && e.intervalMs === 0);
  assert.equal(probes.length, 9, 'three resources probed on three nodes');
  assert.deepEqual(sim.where('ip'), ['n1']);
  assert.deepEqual(sim.where('web'), ['n1']);
  const order = sim.execs
    .filter((e) => e.action === 'start' && e.node === 'n1' && e.rsc !== 'fence-lab')
    .map((e) => e.rsc);
  assert.deepEqual(order, ['ip', 'web']);
  const lastProbe = Math.max(...probes.map((p) => sim.execs.indexOf(p)));
  assert.ok(sim.execs.findIndex((e) => e.action === 'start') > lastProbe, 'starts wait for the probes');
  assert.ok(
    sim.execs.some((e) => e.rsc === 'web' && e.action === 'monitor' && e.intervalMs === 10_000),
    'recurring monitor started',
  );
  assert.equal(sim.ctl.view().transition, undefined, 'nothing left to do');
});

test('when the node running the group is lost, it is fenced first and the group then starts on a survivor in order', () => {
  const sim = startCluster(THREE, ['n1', 'n2', 'n3']);
  const before = sim.execs.length;
  sim.crash('n1');
  sim.send({ type: 'membership', members: ['n2', 'n3'], why: 'no heartbeat on 2 links for 310 ms' });
  assert.equal(sim.fences.length, 1);
  assert.equal(sim.fences[0]!.target, 'n1');
  const after = sim.execs
    .slice(before)
    .filter((e) => e.action === 'start')
    .map((e) => `${e.rsc}@${e.node}`);
  assert.ok(
    after.includes('ip@n2') || after.includes('ip@n3'),
    `group restarted elsewhere: ${after.join(' ')}`,
  );
  const node = sim.where('ip')[0]!;
  assert.deepEqual(sim.where('web'), [node], 'web follows ip');
  const order = after.filter((s) => s.endsWith(`@${node}`) && !s.startsWith('fence-lab'));
  assert.deepEqual(order, [`ip@${node}`, `web@${node}`]);
  assert.ok(
    sim.effects.some((e) => e.type === 'node-fenced' && e.node === 'n1'),
    'quorum is told n1 is off',
  );
});

test('when fencing fails nothing of the lost node starts anywhere, and fencing is retried only a bounded number of times', () => {
  const sim = startCluster(THREE, ['n1', 'n2', 'n3']);
  sim.fenceOk = false;
  const before = sim.execs.length;
  sim.partition('n1');
  sim.send({ type: 'membership', members: ['n2', 'n3'] });
  for (let i = 0; i < MAX_FENCE_ATTEMPTS + 5; i++) sim.advance(1_000);
  const started = sim.execs
    .slice(before)
    .filter((e) => (e.rsc === 'ip' || e.rsc === 'web') && e.action === 'start');
  assert.deepEqual(started, [], 'ip and web must not start while n1 may still run them');
  assert.equal(sim.fences.length, MAX_FENCE_ATTEMPTS);
  assert.ok(
    sim.logs().some((m) => m.includes(`not fencing n1 again: ${MAX_FENCE_ATTEMPTS} attempts failed`)),
  );
  // The device is repaired and the admin cleans up: fencing resumes and recovery follows.
  sim.fenceOk = true;
  sim.send({ type: 'cleanup', rsc: 'ip' });
  assert.deepEqual(sim.where('ip'), ['n1'], "cleanup does not erase a lost node's history: still only on n1");
});

test('a failed monitor recovers the resource in place, and after migration-threshold failures the group moves', () => {
  const sim = startCluster(`${THREE}rsc_defaults migration-threshold=2\n`, ['n1', 'n2', 'n3']);
  sim.monitorFails('n1', 'web', 10_000);
  assert.deepEqual(sim.where('web'), ['n1'], 'first failure: restarted on n1');
  const st = sim.ctl.view().cib.status.find((s) => s.uname === 'n1')!;
  const fc = st.transientAttributes
    .flatMap((s) => s.pairs)
    .find((p) => p.name === 'fail-count-web#monitor_10000');
  assert.equal(fc?.value, '1');
  sim.monitorFails('n1', 'web', 10_000);
  const node = sim.where('web')[0];
  assert.notEqual(node, 'n1', 'second failure reaches migration-threshold 2: web leaves n1');
  assert.deepEqual(sim.where('ip'), [node!], 'the group moves together');
});

test('a start that fails is fatal on that node (start-failure-is-fatal) and the group starts elsewhere', () => {
  const sim = new ClusterSim(crmCib(THREE), ['n1', 'n2', 'n3']);
  sim.failStart.add('n1:ip');
  sim.send({ type: 'membership', members: ['n1', 'n2', 'n3'] });
  sim.send({ type: 'quorum', quorate: true, fenceNeeded: [] });
  sim.send({ type: 'dc', isDc: true });
  const node = sim.where('ip')[0];
  assert.ok(node === 'n2' || node === 'n3', `ip runs on ${node}`);
  assert.deepEqual(sim.where('web'), [node!]);
  const st = sim.ctl.view().cib.status.find((s) => s.uname === 'n1')!;
  const fc = st.transientAttributes.flatMap((s) => s.pairs).find((p) => p.name === 'fail-count-ip#start_0');
  assert.equal(fc?.value, 'INFINITY');
});

test('cleanup forgets the failures, so a banned node may run the resource again', () => {
  const sim = startCluster(`${THREE}rsc_defaults migration-threshold=1\n`, ['n1', 'n2', 'n3']);
  sim.monitorFails('n1', 'web', 10_000);
  assert.notDeepEqual(sim.where('web'), ['n1']);
  sim.send({ type: 'cleanup', rsc: 'web' });
  const st = sim.ctl.view().cib.status.find((s) => s.uname === 'n1')!;
  assert.ok(
    !st.transientAttributes.flatMap((s) => s.pairs).some((p) => p.name.startsWith('fail-count-web')),
    'fail count removed',
  );
  assert.ok(
    sim.execs.slice(-12).some((e) => e.rsc === 'web' && e.action === 'monitor' && e.intervalMs === 0),
    'web probed again',
  );
});

test('a failure older than failure-timeout is forgotten on the next tick and the resource may come back', () => {
  const sim = startCluster(
    `${THREE}rsc_defaults migration-threshold=1 failure-timeout=60s resource-stickiness=0\n`,
    ['n1', 'n2', 'n3'],
  );
  sim.monitorFails('n1', 'web', 10_000);
  assert.notDeepEqual(sim.where('web'), ['n1']);
  sim.advance(30_000);
  assert.notDeepEqual(sim.where('web'), ['n1'], 'still banned before the timeout');
  sim.advance(31_000);
  assert.deepEqual(sim.where('web'), ['n1'], 'back on the preferred node once the failure expired');
  assert.ok(sim.logs().some((m) => m.includes('failure of web on n1 expired')));
});

test('on quorum loss the DC stops every resource (no-quorum-policy=stop)', () => {
  const sim = startCluster(THREE, ['n1', 'n2', 'n3']);
  sim.send({ type: 'quorum', quorate: false, fenceNeeded: [] });
  assert.deepEqual(sim.where('ip'), []);
  assert.deepEqual(sim.where('web'), []);
});

test('with no-quorum-policy=freeze resources keep running without quorum but nothing new starts', () => {
  const sim = startCluster(`${THREE}property no-quorum-policy=freeze\n`, ['n1', 'n2', 'n3']);
  sim.send({ type: 'quorum', quorate: false, fenceNeeded: [] });
  assert.deepEqual(sim.where('web'), ['n1']);
  assert.ok(!sim.effects.some((e) => e.type === 'self-fence'));
});

test('a node that is not DC and loses quorum stops its own resources, and fences itself if they outlive the lease', () => {
  const cib = crmCib(THREE);
  const ctl = new Controller(
    { self: 'n3', fencing: 'self', leaseMs: 2_000, detectionSlackMs: 500, recheckIntervalMs: 60_000 },
    (c, n) => schedule(c, n),
    cib,
  );
  let now = 1_000_000;
  ctl.handle({ type: 'membership', members: ['n1', 'n2', 'n3'] }, now);
  ctl.handle({ type: 'quorum', quorate: true, fenceNeeded: [] }, now);
  ctl.handle(
    {
      type: 'op-result',
      node: 'n3',
      token: '1:1',
      rsc: 'ip',
      action: 'start',
      intervalMs: 0,
      outcome: { rc: 0, opStatus: 0, execTimeMs: 1 },
    },
    now,
  );
  ctl.handle(
    {
      type: 'op-result',
      node: 'n3',
      token: '1:2',
      rsc: 'web',
      action: 'start',
      intervalMs: 0,
      outcome: { rc: 0, opStatus: 0, execTimeMs: 1 },
    },
    now,
  );
  now += 100;
  const fx = ctl.handle({ type: 'quorum', quorate: false, fenceNeeded: [] }, now);
  const stops = fx
    .filter((e) => e.type === 'exec')
    .map((e) => (e.type === 'exec' ? `${e.op.rsc} ${e.op.action}` : ''));
  assert.deepEqual(stops, ['web stop', 'ip stop'], 'stops in reverse group order, at once');
  // ip stops, web hangs: past the lease the node must fence itself.
  ctl.handle(
    {
      type: 'op-result',
      node: 'n3',
      rsc: 'ip',
      action: 'stop',
      intervalMs: 0,
      outcome: { rc: 0, opStatus: 0, execTimeMs: 1 },
    },
    now + 10,
  );
  assert.ok(!ctl.handle({ type: 'tick' }, now + 1_999).some((e) => e.type === 'self-fence'));
  const late = ctl.handle({ type: 'tick' }, now + 2_000);
  const sf = late.find((e) => e.type === 'self-fence');
  assert.ok(
    sf && sf.type === 'self-fence' && sf.reason.includes('web still running'),
    'self-fence names what still runs',
  );
});

test("in self-fencing mode the survivors wait for the lost node's lease before recovering its resources", () => {
  const sim = startCluster(
    THREE.replace('stonith-enabled=true', 'stonith-enabled=false'),
    ['n1', 'n2', 'n3'],
    {
      fencing: 'self',
      leaseMs: 2_000,
      detectionSlackMs: 500,
    },
  );
  const before = sim.execs.length;
  sim.crash('n1');
  sim.send({ type: 'membership', members: ['n2', 'n3'] });
  sim.advance(2_499);
  assert.deepEqual(
    sim.execs.slice(before).filter((e) => e.action === 'start'),
    [],
    'no start within lease + slack',
  );
  assert.match(sim.ctl.view().frozen ?? '', /waiting for the lease of n1/);
  sim.advance(1);
  const node = sim.where('ip')[0];
  assert.ok(node === 'n2' || node === 'n3');
  assert.deepEqual(sim.where('web'), [node!]);
  assert.equal(sim.fences.length, 0, 'no fence device involved');
});

test('with stonith-enabled=false (as the seeds configure) the survivors still wait out the lease instead of starting at once', () => {
  const sim = startCluster(
    THREE.replace('stonith-enabled=true', 'stonith-enabled=false'),
    ['n1', 'n2', 'n3'],
    { fencing: 'stonith', leaseMs: 2_000, detectionSlackMs: 500 },
  );
  sim.partition('n1');
  sim.send({ type: 'membership', members: ['n2', 'n3'] });
  sim.advance(2_000);
  assert.deepEqual(sim.where('ip'), ['n1'], 'only the cut-off node runs it while its lease may still hold');
  sim.advance(500);
  assert.equal(sim.where('ip').length, 2, 'n1 (cut off, in the simulation still running) and the survivor');
  assert.ok(sim.where('ip').some((n) => n !== 'n1'));
});

test('a minority partition in self-fencing mode never treats the lost nodes as off', () => {
  const sim = startCluster(
    THREE.replace('stonith-enabled=true', 'stonith-enabled=false'),
    ['n1', 'n2', 'n3'],
    {
      fencing: 'self',
    },
  );
  sim.send({ type: 'membership', members: ['n1'] });
  sim.send({ type: 'quorum', quorate: false, fenceNeeded: [] });
  sim.advance(60_000);
  assert.ok(!sim.effects.some((e) => e.type === 'node-fenced'));
  assert.match(sim.ctl.view().frozen ?? '', /no quorum/);
});

const TWO = `node 1: a
node 2: b
primitive fence-lab stonith:fence_dummy
primitive vip ocf:heartbeat:Dummy op monitor interval=5s
location l-vip vip 100: b
property stonith-enabled=true no-quorum-policy=stop
`;

test('two-node rule: the survivor fences its peer and only then takes over the service', () => {
  const sim = startCluster(TWO, ['a', 'b']);
  assert.deepEqual(sim.where('vip'), ['b']);
  sim.fenceOk = false;
  sim.crash('b');
  sim.send({ type: 'membership', members: ['a'] });
  sim.send({ type: 'quorum', quorate: false, fenceNeeded: ['b'] });
  assert.deepEqual(sim.where('vip'), []);
  assert.equal(sim.fences.at(-1)?.target, 'b');
  assert.ok(
    !sim.execs.some((e) => e.node === 'a' && e.rsc === 'vip' && e.action === 'start'),
    'no start before the fence succeeded',
  );
  sim.fenceOk = true;
  sim.advance(1_000); // the retry pause after a failed fence
  assert.ok(sim.effects.some((e) => e.type === 'node-fenced' && e.node === 'b'));
  // The shell feeds the fence into quorum, which now says the survivor may continue.
  sim.send({ type: 'quorum', quorate: true, fenceNeeded: [] });
  assert.deepEqual(sim.where('vip'), ['a']);
});

test('a witness vote keeps the survivor of a two-node pair quorate, and it still fences before recovering', () => {
  const sim = startCluster(TWO, ['a', 'b']);
  sim.crash('b');
  sim.send({ type: 'membership', members: ['a'] });
  sim.send({ type: 'quorum', quorate: true, fenceNeeded: [], reason: 'witness votes for a' });
  assert.deepEqual(
    sim.fences.map((f) => f.target),
    ['b'],
  );
  assert.deepEqual(sim.where('vip'), ['a']);
});

test('standby moves resources off a node and online lets them come back', () => {
  const sim = startCluster(THREE, ['n1', 'n2', 'n3']);
  sim.send({ type: 'node-attribute', node: 'n1', name: 'standby', value: 'on' });
  assert.notDeepEqual(sim.where('ip'), ['n1']);
  assert.equal(sim.where('ip').length, 1);
  sim.send({ type: 'node-attribute', node: 'n1', name: 'standby', value: undefined });
  assert.deepEqual(sim.where('ip'), ['n1'], 'back to the preferred node (stickiness 0)');
});

test('maintenance-mode leaves running resources alone even when their node is lost', () => {
  const sim = startCluster(THREE, ['n1', 'n2', 'n3']);
  const cib = crmCib(`${THREE}property maintenance-mode=true\n`);
  sim.send({ type: 'cib', cib });
  const before = sim.execs.length;
  sim.monitorFails('n1', 'web', 10_000);
  assert.deepEqual(
    sim.execs.slice(before).filter((e) => e.action === 'start' || e.action === 'stop'),
    [],
  );
});

test('a new transition is computed after a change that arrives while actions are running', () => {
  const sim = new ClusterSim(crmCib(THREE), ['n1', 'n2', 'n3']);
  sim.send({ type: 'membership', members: ['n1', 'n2', 'n3'] });
  sim.send({ type: 'quorum', quorate: true, fenceNeeded: [] });
  // Become DC but hold the results: only the first effects are produced.
  sim.ctl.handle({ type: 'lease', untilMs: sim.nowMs + 60_000 }, sim.nowMs);
  const fx = sim.ctl.handle({ type: 'dc', isDc: true }, sim.nowMs);
  assert.ok(
    fx.some((e) => e.type === 'exec'),
    'probes dispatched',
  );
  const abort = sim.ctl.handle(
    { type: 'node-attribute', node: 'n2', name: 'pingd', value: '100' },
    sim.nowMs,
  );
  assert.ok(
    abort.some((e) => e.type === 'log' && e.msg.includes('aborted')),
    'running graph aborted',
  );
  assert.ok(!abort.some((e) => e.type === 'exec'), 'nothing new dispatched while old actions run');
});

test('results from unknown nodes and a CIB the scheduler refuses are reported and change nothing', () => {
  const sim = startCluster(THREE, ['n1', 'n2', 'n3']);
  const status = JSON.stringify(sim.ctl.view().cib.status);
  const fx = sim.ctl.handle(
    {
      type: 'op-result',
      node: 'zz',
      rsc: 'ip',
      action: 'start',
      intervalMs: 0,
      outcome: { rc: 0, opStatus: 0, execTimeMs: 1 },
    },
    sim.nowMs,
  );
  assert.ok(fx.some((e) => e.type === 'log' && e.msg.includes('unknown node zz')));
  assert.equal(JSON.stringify(sim.ctl.view().cib.status), status);
  const bad = crmCib(
    `node 1: n1\nnode 2: n2\nnode 3: n3\nprimitive r ocf:heartbeat:Dummy\nlocation l r rule 10: #uname eq n1\n`,
  );
  const withBundle = {
    ...bad,
    configuration: {
      ...bad.configuration,
      nodes: [
        ...bad.configuration.nodes,
        { id: '9', uname: 'rem', type: 'remote', instanceAttributes: [], utilization: [] },
      ],
    },
  };
  const out = sim.ctl.handle({ type: 'cib', cib: withBundle }, sim.nowMs);
  assert.ok(
    out.some((e) => e.type === 'log' && e.level === 'error' && e.msg.includes('unsupported')),
    'scheduler error reported',
  );
  assert.deepEqual(sim.where('ip'), ['n1'], 'nothing was stopped because of the refused CIB');
});

test('a new DC takes over the replicated status and restarts nothing that already runs', () => {
  const sim = startCluster(THREE, ['n1', 'n2', 'n3']);
  // The replicated status is what the DC's status changes add up to.
  let status: NodeState[] = [];
  for (const e of sim.effects)
    if (e.type === 'status-changes') status = applyStatusChanges(status, e.changes);
  assert.deepEqual(status, sim.ctl.view().cib.status, "the changes add up to the DC's own status");
  const replicated = { ...crmCib(THREE), status, hasStatus: true };
  // n1 steps down (e.g. Raft leadership moved); n2 becomes DC with the replicated CIB.
  sim.ctl.handle({ type: 'dc', isDc: false }, sim.nowMs);
  const ctl2 = new Controller(
    { self: 'n2', fencing: 'stonith', leaseMs: 2_000, detectionSlackMs: 500, recheckIntervalMs: 900_000 },
    (c, n) => schedule(c, n),
    crmCib(THREE),
  );
  ctl2.handle({ type: 'membership', members: ['n1', 'n2', 'n3'] }, sim.nowMs);
  ctl2.handle({ type: 'quorum', quorate: true, fenceNeeded: [] }, sim.nowMs);
  ctl2.handle({ type: 'cib', cib: replicated }, sim.nowMs);
  ctl2.handle({ type: 'lease', untilMs: sim.nowMs + 60_000 }, sim.nowMs);
  const fx = ctl2.handle({ type: 'dc', isDc: true }, sim.nowMs);
  const execs = fx.filter((e) => e.type === 'exec');
  assert.deepEqual(execs, [], 'nothing to start, stop or probe again');
  assert.ok(fx.some((e) => e.type === 'log' && e.msg === 'n2 is the DC'));
});

test('a recurring monitor that keeps reporting success does not rewrite the status', () => {
  const sim = startCluster(THREE, ['n1', 'n2', 'n3']);
  const fx = sim.ctl.handle(
    {
      type: 'op-result',
      node: 'n1',
      rsc: 'web',
      action: 'monitor',
      intervalMs: 10_000,
      outcome: { rc: 0, opStatus: 0, execTimeMs: 2 },
    },
    sim.nowMs + 10_000,
  );
  assert.ok(!fx.some((e) => e.type === 'status-changes'));
  assert.ok(!fx.some((e) => e.type === 'exec'));
});

test('a node that was fenced and comes back is probed again and gets no resources back by force', () => {
  const sim = startCluster(`${THREE}rsc_defaults resource-stickiness=100\n`, ['n1', 'n2', 'n3']);
  sim.crash('n1');
  sim.send({ type: 'membership', members: ['n2', 'n3'] });
  const node = sim.where('ip')[0]!;
  assert.notEqual(node, 'n1');
  sim.alive.add('n1');
  const before = sim.execs.length;
  // It comes back rebooted: a newer boot epoch than the one it was fenced at (none known: 0).
  sim.send({ type: 'membership', members: ['n1', 'n2', 'n3'], epochs: { n1: 2, n2: 1, n3: 1 } });
  const back = sim.execs.slice(before);
  assert.ok(
    back.some((e) => e.node === 'n1' && e.action === 'monitor' && e.intervalMs === 0),
    'n1 probed',
  );
  assert.deepEqual(sim.where('ip'), [node], 'stickiness keeps the group where it is');
});

test("a cluster with 1000 resources places every one exactly once and recovers all of a lost node's after its fence", () => {
  let text =
    'node 1: n1\nnode 2: n2\nnode 3: n3\nproperty stonith-enabled=true\nprimitive fence-lab stonith:fence_dummy\n';
  for (let i = 0; i < 1000; i++) text += `primitive r${i} ocf:heartbeat:Dummy op monitor interval=10s\n`;
  const sim = startCluster(text, ['n1', 'n2', 'n3']);
  const count = (): number => [...sim.running.values()].reduce((n, m) => n + m.size, 0);
  assert.equal(count(), 1001);
  for (let i = 0; i < 1000; i += 97) assert.equal(sim.where(`r${i}`).length, 1, `r${i} runs once`);
  sim.crash('n2');
  sim.send({ type: 'membership', members: ['n1', 'n3'] });
  assert.deepEqual(
    sim.fences.map((f) => f.target),
    ['n2'],
  );
  assert.equal(count(), 1001, 'everything n2 ran now runs on n1 or n3');
  assert.equal(sim.running.get('n2')!.size, 0);
});

test('a node attribute an agent reports (halo:ping pingd) moves resources through a location rule', () => {
  const sim = startCluster(`${THREE}location l-ping g rule -inf: pingd lte 0\n`, ['n1', 'n2', 'n3']);
  assert.deepEqual(sim.where('ip'), ['n1']);
  sim.send({
    type: 'op-result',
    node: 'n1',
    rsc: 'ping',
    action: 'monitor',
    intervalMs: 10_000,
    outcome: { rc: 0, opStatus: 0, execTimeMs: 4, attributes: { pingd: '0' } },
  });
  assert.notDeepEqual(sim.where('ip'), ['n1'], 'n1 lost its uplink: the group leaves');
  assert.equal(sim.where('web').length, 1);
});

const GROUPED = `node 1: n1
node 2: n2
node 3: n3
primitive fence-lab stonith:fence_dummy
primitive disk ocf:heartbeat:Dummy
location l-disk disk 100: n1
property stonith-enabled=true
`;

test("a start after a fence names the fenced node too (Heartbeat's drbddisk promotes in its start)", () => {
  const starts = (sim: ClusterSim, from: number) =>
    sim.effects
      .slice(from)
      .flatMap((e) => (e.type === 'exec' && e.op.action === 'start' && e.op.rsc === 'disk' ? [e] : []));
  const sim = startCluster(GROUPED, ['n1', 'n2', 'n3']);
  sim.send({ type: 'membership', members: ['n1', 'n2', 'n3'], epochs: { n1: 1, n2: 1, n3: 1 } });
  const first = starts(sim, 0);
  assert.deepEqual(
    first.map((e) => e.node),
    ['n1'],
  );
  assert.equal(first[0]!.op.meta['halo-fenced-nodes'], undefined, 'nothing fenced yet');
  const mark = sim.effects.length;
  sim.crash('n1');
  sim.send({ type: 'membership', members: ['n2', 'n3'], epochs: { n2: 1, n3: 1 } });
  const after = starts(sim, mark);
  assert.equal(after.length, 1);
  assert.equal(after[0]!.op.meta['halo-fenced-nodes'], 'n1');
});

const PROMOTABLE = `node 1: n1
node 2: n2
node 3: n3
primitive fence-lab stonith:fence_dummy
primitive vol ocf:pacemaker:Stateful op monitor interval=10s role=Master op monitor interval=11s role=Slave
ms ms_vol vol meta promoted-max=1 promoted-node-max=1 clone-max=3 clone-node-max=1
location l-prom-n1 ms_vol rule $role=Master 100: #uname eq n1
location l-prom-n2 ms_vol rule $role=Master 50: #uname eq n2
property stonith-enabled=true
`;

test('a promote after a fence names the fenced node, and stops naming it once the node is back with a newer boot epoch', () => {
  const promotes = (sim: ClusterSim, from: number) =>
    sim.effects.slice(from).flatMap((e) => (e.type === 'exec' && e.op.action === 'promote' ? [e] : []));
  const sim = startCluster(PROMOTABLE, ['n1', 'n2', 'n3']);
  sim.send({ type: 'membership', members: ['n1', 'n2', 'n3'], epochs: { n1: 1, n2: 1, n3: 1 } });
  const first = promotes(sim, 0);
  assert.deepEqual(
    first.map((e) => e.node),
    ['n1'],
    'promoted on its preferred node',
  );
  assert.equal(first[0]!.op.meta['halo-fenced-nodes'], undefined, 'nothing fenced yet');

  let mark = sim.effects.length;
  sim.crash('n1');
  sim.send({ type: 'membership', members: ['n2', 'n3'], epochs: { n2: 1, n3: 1 } });
  assert.deepEqual(
    sim.fences.map((f) => f.target),
    ['n1'],
  );
  const afterFence = promotes(sim, mark);
  assert.deepEqual(
    afterFence.map((e) => e.node),
    ['n2'],
  );
  assert.equal(afterFence[0]!.op.meta['halo-fenced-nodes'], 'n1');

  // Heartbeats of the incarnation that was fenced do not bring it back: still named.
  mark = sim.effects.length;
  sim.send({ type: 'membership', members: ['n1', 'n2', 'n3'], epochs: { n1: 1, n2: 1, n3: 1 } });
  assert.ok(
    !sim.effects.slice(mark).some((e) => e.type === 'exec' && e.node === 'n1'),
    'the fenced incarnation gets nothing',
  );

  // It restarts (a newer boot epoch) and rejoins: it is no longer fenced, and the promote that
  // moves the volume back to it names nobody.
  sim.alive.add('n1');
  mark = sim.effects.length;
  sim.send({ type: 'membership', members: ['n1', 'n2', 'n3'], epochs: { n1: 2, n2: 1, n3: 1 } });
  const afterRejoin = promotes(sim, mark);
  assert.deepEqual(
    afterRejoin.map((e) => e.node),
    ['n1'],
    'promoted back on its preferred node',
  );
  assert.equal(afterRejoin[0]!.op.meta['halo-fenced-nodes'], undefined);
  assert.deepEqual([...sim.running.get('n1')!.values()], ['Promoted'], 'n1 runs the volume promoted');
});

// ---------------------------------------------------------------------------------------------
// Node entries for members the configuration does not list (Pacemaker adds every joining node)

const NO_NODES = `primitive d ocf:heartbeat:Dummy op monitor interval=10s
property stonith-enabled=false
`;
const IDS = { n1: '1', n2: '2', n3: '3' };

const addNodeEffects = (sim: ClusterSim): Extract<ControllerEffect, { type: 'add-nodes' }>[] =>
  sim.effects.filter((e): e is Extract<ControllerEffect, { type: 'add-nodes' }> => e.type === 'add-nodes');

const entries = (sim: ClusterSim): string[] => sim.cib.configuration.nodes.map((n) => `${n.id}:${n.uname}`);

/** Members n1..n3 (with their node ids), quorate, n1 the DC, on `text`'s CIB. */
function startMembers(text: string, members: readonly string[], commit = true): ClusterSim {
  const sim = new ClusterSim(crmCib(text), ['n1', 'n2', 'n3']);
  sim.commitNodeEntries = commit;
  sim.send({ type: 'membership', members, nodeIds: IDS });
  sim.send({ type: 'quorum', quorate: true, fenceNeeded: [] });
  sim.send({ type: 'dc', isDc: true });
  return sim;
}

test('a CIB loaded without nodes gets an entry for every member from the DC, once, and its resources then run', () => {
  const sim = startMembers(NO_NODES, ['n1', 'n2', 'n3']);
  assert.deepEqual(
    addNodeEffects(sim).map((e) => e.nodes),
    [
      [
        { id: '1', uname: 'n1' },
        { id: '2', uname: 'n2' },
        { id: '3', uname: 'n3' },
      ],
    ],
    'asked once, with the ids the membership gave',
  );
  assert.deepEqual(entries(sim), ['1:n1', '2:n2', '3:n3']);
  const probed = sim.execs.filter((e) => e.rsc === 'd' && e.action === 'monitor' && e.intervalMs === 0);
  assert.deepEqual(probed.map((e) => e.node).sort(), ['n1', 'n2', 'n3'], 'probed on every member');
  assert.equal(sim.where('d').length, 1, 'd runs on one node');
  sim.advance(10_000);
  assert.equal(addNodeEffects(sim).length, 1, 'nothing more to ask once the entries exist');
});

test('a node that joins gets an entry (the others keep theirs) and resources are placed on it', () => {
  const text = `node 1: n1
node 2: n2
primitive d ocf:heartbeat:Dummy op monitor interval=10s
location d-likes-n3 d 100: n3
property stonith-enabled=false
`;
  const sim = startMembers(text, ['n1', 'n2']);
  assert.equal(addNodeEffects(sim).length, 0, 'every member is listed');
  assert.equal(sim.where('d').length, 1);
  assert.notDeepEqual(sim.where('d'), ['n3']);
  sim.send({ type: 'membership', members: ['n1', 'n2', 'n3'], nodeIds: IDS });
  assert.deepEqual(
    addNodeEffects(sim).map((e) => e.nodes),
    [[{ id: '3', uname: 'n3' }]],
  );
  assert.deepEqual(entries(sim), ['1:n1', '2:n2', '3:n3']);
  assert.deepEqual(sim.where('d'), ['n3'], 'd moves to the node it prefers once that node is known');
});

test('while its node entries are not committed the DC schedules nothing, asks again only after a while or a configuration change, and never starts a running resource twice', () => {
  const sim = startMembers(NO_NODES, ['n1', 'n2', 'n3'], false);
  sim.advance(NODE_ENTRY_RETRY_MS - 1_000);
  assert.equal(addNodeEffects(sim).length, 1, 'asked once within the retry time');
  assert.match(sim.ctl.view().frozen ?? '', /node entries of n1, n2, n3/);
  assert.equal(sim.execs.length, 0, 'nothing scheduled from a CIB without the members');
  sim.advance(2_000);
  assert.equal(addNodeEffects(sim).length, 2, 'asked again: the proposal may have been lost');

  // Committed at last: d starts. Then an administrator replaces the configuration with one
  // that lists only another node (a hand-written crm file): the DC asks for the missing entries
  // again at once and schedules nothing meanwhile. A schedule from that configuration would not
  // see d running where it runs (a node it does not list) and start it a second time.
  sim.commitNodeEntries = true;
  sim.advance(NODE_ENTRY_RETRY_MS);
  const node = sim.where('d');
  assert.equal(node.length, 1, 'd runs once the entries are committed');
  const other = (['n1', 'n2', 'n3'] as const).find((n) => n !== node[0])!;
  sim.commitNodeEntries = false;
  const mark = sim.execs.length;
  sim.send({ type: 'cib', cib: crmCib(`node ${IDS[other]}: ${other}\n${NO_NODES}`) });
  assert.equal(addNodeEffects(sim).length, 4, 'asked again at once: the configuration changed');
  sim.advance(1_000);
  assert.deepEqual(
    sim.execs.slice(mark).filter((e) => e.action !== 'monitor'),
    [],
    'nothing stopped or started while entries are missing',
  );
  assert.deepEqual(sim.where('d'), node, 'd still runs once, where it ran');
  sim.commitNodeEntries = true;
  sim.advance(NODE_ENTRY_RETRY_MS);
  assert.equal(entries(sim).length, 3);
  assert.deepEqual(sim.where('d'), node, 'and stays there once they are back');
});

test('a member whose node id another entry holds gets no entry and the DC says why, once', () => {
  const text = `node 1: n1
node 2: other
primitive d ocf:heartbeat:Dummy
property stonith-enabled=false
`;
  const sim = startMembers(text, ['n1', 'n2', 'n3']);
  assert.deepEqual(
    addNodeEffects(sim).map((e) => e.nodes),
    [[{ id: '3', uname: 'n3' }]],
    'n2 (id 2) is not added: the CIB gives id 2 to "other"',
  );
  sim.advance(NODE_ENTRY_RETRY_MS * 2);
  const why = sim.logs().filter((m) => m.includes('n2 has id 2, which the configuration gives to other'));
  assert.equal(why.length, 1);
  assert.deepEqual(entries(sim), ['1:n1', '2:other', '3:n3']);
  assert.equal(sim.ctl.view().frozen, undefined, 'the clash does not hold scheduling up');
});

// ---------------------------------------------------------------------------------------------
// Nodes removed from the cluster (`halo cluster leave`): entry deleted, never fenced when idle

const REMOVAL = `node 1: n1
node 2: n2
node 3: n3
primitive d ocf:heartbeat:Dummy op monitor interval=10s
location d-likes-n3 d 100: n3
property stonith-enabled=true
`;

const removeNodeEffects = (sim: ClusterSim): string[][] =>
  sim.effects.flatMap((e) => (e.type === 'remove-nodes' ? [[...e.nodes]] : []));

test('a node drained and then removed from the cluster is not fenced, loses its node entry once, and is not added back', () => {
  const sim = startMembers(REMOVAL, ['n1', 'n2', 'n3']);
  sim.fenceOk = false;
  assert.deepEqual(sim.where('d'), ['n3']);
  // The leave drains n3 first: its shutdown request moves d away.
  sim.send({ type: 'node-attribute', node: 'n3', name: 'shutdown', value: '1700000000' });
  assert.equal(sim.where('d').length, 1);
  assert.notDeepEqual(sim.where('d'), ['n3'], 'd moved away before the removal');
  // The removal commits; n3's daemon stops.
  sim.crash('n3');
  sim.send({ type: 'membership', members: ['n1', 'n2'], nodeIds: IDS, removed: ['n3'] });
  sim.advance(NODE_ENTRY_RETRY_MS * 3);
  assert.deepEqual(sim.fences, [], 'nobody fenced');
  assert.deepEqual(removeNodeEffects(sim), [['n3']], 'asked once');
  assert.deepEqual(entries(sim), ['1:n1', '2:n2']);
  const view = sim.ctl.view();
  assert.deepEqual(
    view.cib.status.map((s) => s.uname),
    ['n1', 'n2'],
    'its status is gone from the DC view',
  );
  assert.equal(view.frozen, undefined);
  assert.equal(sim.where('d').length, 1, 'd still runs once');
  // Later membership events do not bring the entry back.
  sim.send({ type: 'membership', members: ['n1', 'n2'], nodeIds: IDS, removed: ['n3'] });
  sim.advance(NODE_ENTRY_RETRY_MS * 2);
  assert.equal(addNodeEffects(sim).length, 0);
  assert.deepEqual(entries(sim), ['1:n1', '2:n2']);
});

test('a lost node being fenced without success stops being fenced once it is removed with nothing active', () => {
  const sim = startMembers(`${REMOVAL}location d-not-n2 d -inf: n2\n`, ['n1', 'n2', 'n3']);
  sim.fenceOk = false;
  sim.crash('n2');
  sim.send({ type: 'membership', members: ['n1', 'n3'], nodeIds: IDS, why: 'no heartbeat' });
  sim.advance(1_500);
  const tried = sim.fences.length;
  assert.ok(tried >= 1, 'the lost node is fenced (and the fence fails)');
  assert.match(sim.ctl.view().frozen ?? '', /fencing n2 failed/);
  sim.send({ type: 'membership', members: ['n1', 'n3'], nodeIds: IDS, removed: ['n2'] });
  sim.advance(NODE_ENTRY_RETRY_MS * 2);
  assert.equal(sim.fences.length, tried, 'no fence attempt after the removal');
  assert.equal(sim.ctl.view().frozen, undefined);
  assert.deepEqual(entries(sim), ['1:n1', '3:n3']);
  assert.ok(sim.logs().some((m) => m.includes('n2 was removed from the cluster with nothing active there')));
});

test('a node removed with a resource still active (leave --force) is fenced before the resource starts elsewhere, and loses its entry after', () => {
  const sim = startMembers(REMOVAL, ['n1', 'n2', 'n3']);
  assert.deepEqual(sim.where('d'), ['n3']);
  sim.partition('n3');
  sim.send({ type: 'membership', members: ['n1', 'n2'], nodeIds: IDS, removed: ['n3'] });
  assert.deepEqual(
    sim.fences.map((f) => f.target),
    ['n3'],
    'fenced: d may still run there',
  );
  assert.equal(sim.where('d').length, 1);
  assert.notDeepEqual(sim.where('d'), ['n3']);
  sim.advance(1_000);
  assert.deepEqual(removeNodeEffects(sim), [['n3']]);
  assert.deepEqual(entries(sim), ['1:n1', '2:n2']);
});
