import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePriorityFencingDelay } from './priority_fencing.ts';
import { type ClusterSim, crmCib, startCluster, twoNodeSplitSide } from './sim_harness_test_util.ts';

/**
 * priority-fencing-delay (Pacemaker 2.0.4+): in a split where this side lacks a majority, the
 * fencing of the lost node running the highest-priority resources waits, so that node wins the
 * fencing race. Each side of a two-node split is its own DC here (one ClusterSim per side, the
 * first node listed is the DC); the sims record the delay each fence effect asks for.
 */

const TWO = `node 1: n1
node 2: n2
primitive fence-lab stonith:fence_dummy
primitive db ocf:heartbeat:Dummy meta priority=10 op monitor interval=10s
location l-db db 100: n1
location l-fence fence-lab 100: n2
property stonith-enabled=true no-quorum-policy=stop priority-fencing-delay=5s
`;

function fencesOf(sim: ClusterSim): { target: string; delayMs?: number }[] {
  return sim.fences.map((f) => ({
    target: f.target,
    ...(f.delayMs !== undefined ? { delayMs: f.delayMs } : {}),
  }));
}

test('in a two-node split the side without the priority-10 resource fences its holder late, and the holder fences at once', () => {
  const n2side = twoNodeSplitSide(TWO, 'n2', 'n1', (sim) =>
    assert.deepEqual(sim.where('db'), ['n1'], 'db ran on n1 before the split'),
  );
  assert.deepEqual(fencesOf(n2side), [{ target: 'n1', delayMs: 5000 }]);
  const fence = n2side.effects.find((e) => e.type === 'fence');
  assert.equal(
    fence?.type === 'fence' ? fence.delayReason : undefined,
    'priority-fencing-delay: n1 runs the highest-priority resources',
  );
  assert.ok(
    n2side
      .logs()
      .some((m) =>
        /fencing n1 waits 5000 ms \(priority-fencing-delay\): this partition has 1 of 2 nodes \(no majority\)/.test(
          m,
        ),
      ),
  );

  const n1side = twoNodeSplitSide(TWO, 'n1', 'n2');
  assert.deepEqual(fencesOf(n1side), [{ target: 'n2' }], 'n2 runs only the unprioritised fence device');
});

test('with equal priorities on both nodes no fencing is delayed', () => {
  const equal = TWO.replace(
    'location l-db db 100: n1',
    'location l-db db 100: n1\nprimitive web ocf:heartbeat:Dummy meta priority=10\nlocation l-web web 100: n2',
  );
  const n2side = twoNodeSplitSide(equal, 'n2', 'n1', (sim) => assert.deepEqual(sim.where('web'), ['n2']));
  assert.deepEqual(fencesOf(n2side), [{ target: 'n1' }]);
  assert.deepEqual(fencesOf(twoNodeSplitSide(equal, 'n1', 'n2')), [{ target: 'n2' }]);
});

test('without the property (or with 0) no fencing is delayed', () => {
  for (const text of [
    TWO.replace(' priority-fencing-delay=5s', ''),
    TWO.replace('priority-fencing-delay=5s', 'priority-fencing-delay=0'),
  ])
    assert.deepEqual(fencesOf(twoNodeSplitSide(text, 'n2', 'n1')), [{ target: 'n1' }]);
});

test('an invalid priority-fencing-delay is reported once as an error and fencing goes ahead undelayed', () => {
  const bad = TWO.replace('priority-fencing-delay=5s', 'priority-fencing-delay=fast');
  const n2side = twoNodeSplitSide(bad, 'n2', 'n1');
  assert.deepEqual(fencesOf(n2side), [{ target: 'n1' }]);
  const errors = n2side.logs().filter((m) => m.startsWith('cluster property priority-fencing-delay:'));
  assert.equal(errors.length, 1, errors.join('\n'));
  assert.match(errors[0]!, /'fast' is not a duration .*; using 0 \(no priority delay\) meanwhile$/);
  const p = parsePriorityFencingDelay(crmCib(TWO.replace('=5s', '=-5s')));
  assert.ok(!p.ok && /is negative/.test(p.reason));
  const long = parsePriorityFencingDelay(crmCib(TWO.replace('=5s', '=5min')));
  assert.ok(long.ok && long.ms === 300_000);
  assert.ok(!parsePriorityFencingDelay(crmCib(TWO.replace('=5s', '=P5M'))).ok, 'five months is a mistake');
});

test('a fencing for a failed stop is never delayed, even when the target runs the highest priority and this side lacks a majority', () => {
  const FOUR = `node 1: n1
node 2: n2
node 3: n3
node 4: n4
primitive fence-lab stonith:fence_dummy
primitive db ocf:heartbeat:Dummy meta priority=10 op monitor interval=10s
primitive web ocf:heartbeat:Dummy meta priority=10 op monitor interval=10s
location l-db db 100: n2
location l-web web 100: n2
location l-fence fence-lab 100: n1
property stonith-enabled=true no-quorum-policy=ignore priority-fencing-delay=5s
`;
  const sim = startCluster(FOUR, ['n1', 'n2', 'n3', 'n4']);
  assert.deepEqual(sim.where('db'), ['n2']);
  // n3 and n4 are cut off (2 of 4 here: no majority); they run nothing, so their fences wait not.
  sim.partition('n3');
  sim.partition('n4');
  sim.send({ type: 'membership', members: ['n1', 'n2'] });
  assert.deepEqual(
    fencesOf(sim).sort((a, b) => a.target.localeCompare(b.target)),
    [{ target: 'n3' }, { target: 'n4' }],
  );
  // db's monitor fails on n2 and its recovery's stop fails too: n2 is fenced for the failed stop.
  // (A resource whose stop failed counts for nothing, as in Pacemaker; web keeps n2 the highest.)
  sim.failStop.add('n2:db');
  sim.monitorFails('n2', 'db', 10_000);
  assert.deepEqual(sim.where('web'), ['n1'], 'web recovered after the fence');
  const n2 = fencesOf(sim).filter((f) => f.target === 'n2');
  assert.deepEqual(n2, [{ target: 'n2' }], 'n2 is a member: its fencing is not about a lost node');
});

test('a promoted instance counts its priority + 1, which alone decides who is delayed', () => {
  const PROMOTABLE = `node 1: n1
node 2: n2
primitive fence-lab stonith:fence_dummy
primitive vol ocf:pacemaker:Stateful op monitor interval=10s role=Master op monitor interval=11s role=Slave
ms ms_vol vol meta priority=5 promoted-max=1 promoted-node-max=1 clone-max=2 clone-node-max=1
location l-prom-n1 ms_vol rule $role=Master 100: #uname eq n1
property stonith-enabled=true no-quorum-policy=stop priority-fencing-delay=5s
`;
  const n2side = twoNodeSplitSide(PROMOTABLE, 'n2', 'n1', (sim) => {
    assert.equal(sim.running.get('n1')?.get('vol:0'), 'Promoted');
    assert.equal(sim.running.get('n2')?.get('vol:1'), 'Started');
  });
  assert.deepEqual(fencesOf(n2side), [{ target: 'n1', delayMs: 5000 }], 'n1: 5 + 1 beats n2: 5');
  assert.deepEqual(fencesOf(twoNodeSplitSide(PROMOTABLE, 'n1', 'n2')), [{ target: 'n2' }]);
});

test('a partition that keeps the majority of the nodes fences without the priority delay', () => {
  const THREE = `node 1: n1
node 2: n2
node 3: n3
primitive fence-lab stonith:fence_dummy
primitive db ocf:heartbeat:Dummy meta priority=10 op monitor interval=10s
location l-db db 100: n1
location l-fence fence-lab 100: n2
property stonith-enabled=true priority-fencing-delay=5s
`;
  const sim = startCluster(THREE, ['n2', 'n1', 'n3']);
  assert.deepEqual(sim.where('db'), ['n1']);
  sim.partition('n1');
  sim.send({ type: 'membership', members: ['n2', 'n3'] });
  assert.deepEqual(fencesOf(sim), [{ target: 'n1' }], '2 of 3 nodes is a majority');
});
