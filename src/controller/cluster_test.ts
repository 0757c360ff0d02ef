import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeState } from '../cib/model.ts';
import { schedule } from '../scheduler/schedule.ts';
import { Controller } from './controller.ts';
import {
  ClusterSim,
  ControllerCluster,
  crmCib,
  SIM_LEASE_MS,
  startCluster,
} from './sim_harness_test_util.ts';
import { SHUTDOWN_ATTRIBUTE } from './types.ts';

/**
 * Every node's controller at once (ControllerCluster): the DC's leader lease, a partitioned DC,
 * self-fencing timing, and the clean shutdown of a node.
 */

const GROUP = `node 1: n1
node 2: n2
node 3: n3
primitive fence-lab stonith:fence_dummy
primitive ip ocf:heartbeat:Dummy op monitor interval=10s
primitive web ocf:heartbeat:Dummy op monitor interval=10s
group g ip web
location l-prefer g 50: n1
rsc_defaults resource-stickiness=100
property stonith-enabled=true
`;
const SELF_FENCING = GROUP.replace('stonith-enabled=true', 'stonith-enabled=false');
const LEASE_MS = 2_000;
const SLACK_MS = 500;

function upCluster(text: string, dc: string): ControllerCluster {
  const c = new ControllerCluster(crmCib(text), ['n1', 'n2', 'n3'], {
    leaseMs: LEASE_MS,
    detectionSlackMs: SLACK_MS,
  });
  c.detect();
  c.elect(dc);
  c.advance(200);
  return c;
}

test('a DC whose leader lease ran out dispatches nothing, even for a failure it hears of, until a quorum acknowledges it again', () => {
  const sim = startCluster(GROUP, ['n1', 'n2', 'n3']);
  assert.deepEqual(sim.where('web'), ['n1']);
  sim.leaseRenewing = false;
  sim.advance(SIM_LEASE_MS);
  const before = sim.execs.length;
  sim.monitorFails('n1', 'web', 10_000);
  sim.advance(5_000);
  assert.deepEqual(sim.execs.slice(before), [], 'no recovery without the lease');
  assert.match(sim.ctl.view().frozen ?? '', /no leader lease/);
  assert.ok(sim.logs().some((l) => l.includes('leader lease ran out')));
  sim.leaseRenewing = true;
  sim.advance(100);
  assert.deepEqual(sim.where('web'), ['n1'], 'recovered in place once the lease holds again');
  assert.ok(sim.execs.slice(before).some((e) => e.rsc === 'web' && e.action === 'start'));
});

test('a lapsed lease also stops a DC from fencing a node it lost', () => {
  const sim = new ClusterSim(crmCib(GROUP), ['n1', 'n2', 'n3']);
  sim.send({ type: 'membership', members: ['n1', 'n2', 'n3'] });
  sim.send({ type: 'quorum', quorate: true, fenceNeeded: [] });
  sim.send({ type: 'dc', isDc: true });
  assert.deepEqual(sim.where('ip'), ['n1']);
  sim.leaseRenewing = false;
  sim.advance(SIM_LEASE_MS);
  sim.send({ type: 'membership', members: ['n1', 'n3'] });
  sim.advance(10_000);
  assert.deepEqual(sim.fences, [], 'n2 is not fenced by a DC without a lease');
});

test('a DC cut off from the others stops acting at its lease, stops its own resources, and the new DC starts them only after that lease: they never run on two nodes', () => {
  const c = upCluster(SELF_FENCING, 'n1');
  assert.deepEqual(c.where('ip'), ['n1']);
  assert.deepEqual(c.where('web'), ['n1']);
  const cutAt = c.nowMs;
  c.isolated.add('n1');
  // n1 still believes it leads; its lease is no longer renewed. A failure there now must not
  // make it schedule anything (its recovery would race the new DC's).
  c.advance(SIM_LEASE_MS);
  c.monitorFails('n1', 'web', 10_000);
  c.advance(100);
  assert.equal(c.dcOf('n1'), 'n1', 'n1 has not noticed it was deposed');
  // Membership notices the partition (deadtime) on both sides.
  c.detect();
  const detectedAt = c.nowMs;
  c.elect('n2');
  c.advance(LEASE_MS + SLACK_MS + 1_000);
  assert.deepEqual(c.violations, []);
  assert.deepEqual(c.dcActionsBy('n1', cutAt + SIM_LEASE_MS), [], 'the old DC issued nothing past its lease');
  assert.deepEqual(c.where('ip'), [c.where('ip').find((n) => n !== 'n1')!], 'ip runs once, on a survivor');
  assert.equal(c.where('web').length, 1);
  const stop = c.execs.find((e) => e.node === 'n1' && e.rsc === 'ip' && e.action === 'stop');
  assert.ok(stop, 'n1 stopped ip');
  assert.ok(stop.token.startsWith('local:'), 'n1 stopped ip itself (no-quorum-policy=stop)');
  assert.ok(stop.atMs - detectedAt < LEASE_MS, 'within its lease');
  const start = c.execs.find((e) => e.node !== 'n1' && e.rsc === 'ip' && e.action === 'start');
  assert.ok(start, 'a survivor started ip');
  assert.ok(start.atMs >= detectedAt + LEASE_MS + SLACK_MS, 'survivors waited lease + slack');
  assert.deepEqual(c.selfFences, [], 'everything stopped in time: no self-fence needed');
});

test('a cut-off node whose resource will not stop fences itself before the survivors start it', () => {
  const c = upCluster(SELF_FENCING, 'n2');
  assert.deepEqual(c.where('web'), ['n1']);
  c.failStop.add('n1:web');
  c.isolated.add('n1');
  c.detect();
  const detectedAt = c.nowMs;
  c.advance(LEASE_MS + SLACK_MS + 1_000);
  assert.equal(c.selfFences.length, 1);
  assert.equal(c.selfFences[0]!.node, 'n1');
  assert.ok(c.selfFences[0]!.atMs <= detectedAt + LEASE_MS);
  assert.deepEqual(c.violations, []);
  assert.equal(c.where('web').length, 1);
});

test('a node asked to shut down has its resources moved away first, then leaves without being fenced', () => {
  const c = upCluster(GROUP, 'n2');
  assert.deepEqual(c.where('ip'), ['n1']);
  assert.ok(c.setAttribute('n1', SHUTDOWN_ATTRIBUTE, String(Math.floor(c.nowMs / 1000))));
  c.advance(500);
  const to = c.where('ip')[0];
  assert.ok(to === 'n2' || to === 'n3', `ip moved to ${to}`);
  assert.deepEqual(c.where('web'), [to!]);
  assert.deepEqual(c.ctls.get('n1')!.localActive(), [], 'n1 knows nothing runs there any more');
  c.stopDaemon('n1', false);
  c.detect();
  c.advance(LEASE_MS + SLACK_MS + 1_000);
  assert.deepEqual(c.fences, [], 'a clean shutdown is not fenced');
  assert.ok(c.logs.some((l) => l.node === 'n2' && l.msg.includes('n1 left the cluster cleanly')));
  assert.deepEqual(c.violations, []);
});

test('a node that shut down cleanly and comes back is probed, and nothing runs twice', () => {
  const c = upCluster(GROUP, 'n2');
  c.setAttribute('n1', SHUTDOWN_ATTRIBUTE, '1');
  c.advance(500);
  c.stopDaemon('n1', false);
  c.detect();
  c.advance(1_000);
  const where = c.where('ip');
  c.boot('n1');
  const rejoinAt = c.nowMs;
  c.detect();
  c.elect('n2');
  c.advance(1_000);
  const probes = c.execs.filter((e) => e.node === 'n1' && e.atMs >= rejoinAt && e.action === 'monitor');
  assert.ok(
    ['ip', 'web'].every((r) => probes.some((p) => p.rsc === r && p.intervalMs === 0)),
    'both resources probed on n1',
  );
  assert.deepEqual(c.where('ip'), where, 'stickiness keeps the group where it went');
  assert.deepEqual(c.violations, []);
  assert.deepEqual(c.fences, []);
});

test('the DC itself can shut down cleanly: it moves its resources, and the next DC fences nobody', () => {
  const c = upCluster(GROUP, 'n1');
  assert.deepEqual(c.where('ip'), ['n1']);
  c.setAttribute('n1', SHUTDOWN_ATTRIBUTE, '1');
  c.advance(500);
  assert.ok(!c.where('ip').includes('n1'));
  assert.equal(c.ctls.get('n1')!.view().transition, undefined, 'the DC finished its transition');
  c.stopDaemon('n1', false);
  c.detect();
  // n2 takes over from the status n1 replicated (here: its own records, as the harness keeps
  // no CIB log); it must not fence n1, whose last records say stopped.
  c.elect('n2');
  c.advance(LEASE_MS + SLACK_MS + 1_000);
  assert.deepEqual(c.fences, []);
  assert.deepEqual(c.violations, []);
  assert.equal(c.where('ip').length, 1);
});

test('a node that leaves while something still runs there is fenced, shutdown request or not', () => {
  const c = upCluster(GROUP, 'n2');
  c.hangStop.add('n1:web');
  c.setAttribute('n1', SHUTDOWN_ATTRIBUTE, '1');
  c.advance(500);
  assert.deepEqual(c.where('web'), ['n1'], 'web would not stop');
  assert.deepEqual(c.ctls.get('n1')!.localActive(), ['ip', 'web'], 'so n1 cannot leave cleanly');
  c.stopDaemon('n1', false);
  c.detect();
  c.advance(2_000);
  assert.deepEqual(
    c.fences.map((f) => f.target),
    ['n1'],
  );
  assert.equal(c.where('web').length, 1);
  assert.notEqual(c.where('web')[0], 'n1');
});

test('a new DC that adopts a status without membership fields still sees a node that shut down cleanly as down, not lost', () => {
  const cib = crmCib(GROUP);
  const ctl = new Controller(
    {
      self: 'n2',
      fencing: 'stonith',
      leaseMs: LEASE_MS,
      detectionSlackMs: SLACK_MS,
      recheckIntervalMs: 900_000,
    },
    (c, n) => schedule(c, n, { textOutput: false }),
    cib,
  );
  const op = (id: string, operation: string, rc: string) => ({
    id,
    operation,
    interval: '0',
    callId: '1',
    rcCode: rc,
    opStatus: '0',
  });
  const status: NodeState[] = [
    {
      id: '1',
      uname: 'n1',
      transientAttributes: [
        {
          kind: 'instance_attributes',
          id: 'status-1',
          pairs: [{ id: 's', name: SHUTDOWN_ATTRIBUTE, value: '1' }],
        },
      ],
      resources: [
        { id: 'ip', ops: [op('ip_last_0', 'stop', '0')] },
        { id: 'web', ops: [op('web_last_0', 'stop', '0')] },
      ],
      hasLrm: true,
    },
  ];
  const now = 1_000_000;
  ctl.handle({ type: 'cib', cib: { ...cib, status, hasStatus: true } }, now);
  ctl.handle({ type: 'membership', members: ['n2', 'n3'] }, now);
  ctl.handle({ type: 'quorum', quorate: true, fenceNeeded: [] }, now);
  ctl.handle({ type: 'lease', untilMs: now + 60_000 }, now);
  const fx = ctl.handle({ type: 'dc', isDc: true }, now);
  assert.ok(fx.some((e) => e.type === 'log' && e.msg.includes('n1 left the cluster cleanly')));
  assert.ok(!fx.some((e) => e.type === 'fence'), 'nobody fenced');
  const placed = fx
    .filter((e) => e.type === 'exec' && e.op.action === 'start')
    .map((e) => (e.type === 'exec' ? e.node : ''));
  assert.ok(placed.every((n) => n !== 'n1'));
});

const PREFER_N2 = GROUP.replace('location l-prefer g 50: n1', 'location l-prefer g 200: n2');

test('a node just fenced is not taken back because of heartbeats it sent before the fence: it gets nothing until it restarts with a new boot epoch', () => {
  const c = upCluster(PREFER_N2, 'n1');
  assert.deepEqual(c.where('web'), ['n2']);
  c.beatsInFlightAtFence.add('n2');
  c.isolated.add('n2');
  c.detect();
  c.advance(200);
  assert.deepEqual(
    c.fences.map((f) => `${f.by} fenced ${f.target}`),
    ['n1 fenced n2'],
  );
  const fencedAt = c.fences[0]!.atMs;
  c.advance(3_000);
  const survivor = c.where('web');
  assert.equal(survivor.length, 1, `web runs once (on ${survivor.join(', ') || 'no node'})`);
  assert.notEqual(survivor[0], 'n2');
  assert.deepEqual(c.where('ip'), survivor);
  assert.deepEqual(
    c.undelivered.filter((u) => u.by === 'n1' && u.node === 'n2' && u.atMs >= fencedAt),
    [],
    'the DC sends nothing to the node it just fenced',
  );
  const dcView = c.ctls.get('n1')!.view();
  assert.equal(
    dcView.cib.status.find((s) => s.uname === 'n2')?.inCcm,
    'false',
    'n2 is not a member to the DC',
  );
  assert.ok(
    c.logs.some(
      (l) => l.node === 'n1' && /ignoring n2 in the membership: it was fenced at boot epoch 1/.test(l.msg),
    ),
  );

  // It really comes back: a restarted daemon, a newer boot epoch.
  c.isolated.delete('n2');
  c.boot('n2');
  c.detect();
  c.elect('n1');
  c.advance(1_000);
  assert.deepEqual(c.where('web'), ['n2'], 'back on its preferred node once it has restarted');
  assert.deepEqual(c.where('ip'), ['n2']);
  assert.deepEqual(c.violations, []);
});

test('the fence a DC remembers outlives the DC: a new DC also ignores the fenced node until it restarts', () => {
  const c = upCluster(PREFER_N2, 'n1');
  c.isolated.add('n2');
  c.detect();
  c.advance(500);
  assert.deepEqual(
    c.fences.map((f) => f.target),
    ['n2'],
  );
  const where = c.where('web');
  // Leadership moves to n3, which learns the fence only from the replicated status; then n2's
  // last heartbeats (old boot epoch) reach it.
  c.elect('n3');
  c.advance(200);
  const before = c.undelivered.length;
  c.hear('n3', ['n1', 'n2', 'n3']);
  c.advance(1_000);
  assert.deepEqual(
    c.undelivered.slice(before).filter((u) => u.node === 'n2'),
    [],
    'n3 sends nothing to n2',
  );
  assert.ok(c.logs.some((l) => l.node === 'n3' && l.msg.startsWith('ignoring n2 in the membership')));
  assert.deepEqual(c.where('web'), where);
  assert.deepEqual(c.violations, []);
});

const PREFER_N3 = GROUP.replace('location l-prefer g 50: n1', 'location l-prefer g 50: n3');

test('a DC that gets its lease back before its quorum view catches up stops nothing for "no quorum"', () => {
  const c = upCluster(PREFER_N3, 'n1');
  assert.deepEqual(c.where('web'), ['n3']);
  c.isolated.add('n1');
  c.advance(SIM_LEASE_MS + 200);
  assert.ok(c.logs.some((l) => l.node === 'n1' && l.msg.includes('leader lease ran out')));
  c.detect();
  c.isolated.delete('n1');
  const healedAt = c.nowMs;
  // The daemon feeds the members it hears again before recomputing quorum; Raft's lease comes
  // back with the next acknowledgements.
  c.detect({ quorum: false });
  c.advance(200);
  assert.ok(c.logs.some((l) => l.node === 'n1' && l.msg.includes('holds the DC lease')));
  assert.deepEqual(c.dcActionsBy('n1', healedAt), [], 'no stop "due to no quorum"');
  assert.match(c.ctls.get('n1')!.view().frozen ?? '', /quorum view/);
  c.detect();
  c.advance(1_000);
  assert.deepEqual(c.where('web'), ['n3']);
  assert.ok(
    !c.execs.some((e) => e.atMs >= healedAt && e.action === 'stop' && (e.rsc === 'web' || e.rsc === 'ip')),
    'the web server was never restarted',
  );
  assert.deepEqual(c.violations, []);
});

test('a DC whose "no quorum" view is still unconfirmed after the settle time applies no-quorum-policy after all', () => {
  const sim = startCluster(PREFER_N3, ['n1', 'n2', 'n3'], { detectionSlackMs: SLACK_MS });
  assert.deepEqual(sim.where('web'), ['n3']);
  sim.leaseRenewing = false;
  sim.advance(SIM_LEASE_MS);
  sim.send({ type: 'quorum', quorate: false, fenceNeeded: [] });
  sim.leaseRenewing = true;
  sim.advance(100);
  assert.match(sim.ctl.view().frozen ?? '', /quorum view/);
  assert.deepEqual(sim.where('web'), ['n3'], 'held while the view may be stale');
  sim.advance(SLACK_MS);
  assert.equal(sim.ctl.view().frozen, undefined, 'no longer held');
  assert.deepEqual(sim.where('web'), [], 'no-quorum-policy=stop applied');
  assert.ok(sim.logs().some((l) => /Stop\s+web.*due to no quorum/.test(l)));
});
