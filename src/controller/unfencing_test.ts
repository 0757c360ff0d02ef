import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fenceDevicesFromCib } from './host.ts';
import { ClusterSim, crmCib, startCluster } from './sim_harness_test_util.ts';
import { UNFENCED_ATTRIBUTE } from './types.ts';

/**
 * Unfencing (fence_scsi and other devices with provides=unfencing): the scheduler puts an
 * `unfence` action on each node before what requires unfencing probes or starts there; the
 * controller runs the devices' `on` action for it, records `#node-unfenced`, and the starts go
 * on. The node is not fenced by it.
 */

const SCSI = `node 1: n1
node 2: n2
primitive scsi stonith:fence_scsi params devices=/dev/sdb meta provides=unfencing
primitive db ocf:heartbeat:Dummy op monitor interval=10s
location l-db db 100: n1
property stonith-enabled=true
`;

test('each node is unfenced once with the device `on` action before what requires it starts, and stays up', () => {
  const sim = startCluster(SCSI, ['n1', 'n2']);
  sim.advance(1000);
  assert.deepEqual(sim.unfences.map((u) => u.target).sort(), ['n1', 'n2']);
  assert.deepEqual(sim.fences, [], 'unfencing fences nobody');
  assert.deepEqual(sim.where('db'), ['n1']);
  // db's start on n1 came after n1's unfencing.
  const on = sim.unfences.find((u) => u.target === 'n1')!;
  const start = sim.execs.find((x) => x.rsc === 'db' && x.action === 'start');
  assert.ok(start && start.atMs >= on.atMs);
  const recorded = sim.effects.flatMap((e) =>
    e.type === 'status-changes'
      ? e.changes.filter((c) => c.kind === 'attr' && c.name === UNFENCED_ATTRIBUTE).map((c) => c.node)
      : [],
  );
  assert.deepEqual(recorded.sort(), ['n1', 'n2'], '#node-unfenced recorded for both');
  assert.ok(
    sim.effects.some((e) => e.type === 'fence' && e.action === 'on'),
    'the effect asks for the on action',
  );
  assert.ok(!sim.effects.some((e) => e.type === 'node-fenced'));
  // A later transition does not unfence again.
  sim.send({ type: 'cleanup', rsc: 'db' });
  sim.advance(1000);
  assert.equal(sim.unfences.length, 2);
});

test('a failed unfencing keeps what requires it from starting there, and is retried', () => {
  const sim = new ClusterSim(crmCib(SCSI), ['n1', 'n2']);
  sim.unfenceOk = false;
  sim.send({ type: 'membership', members: ['n1', 'n2'] });
  sim.send({ type: 'quorum', quorate: true, fenceNeeded: [] });
  sim.send({ type: 'dc', isDc: true });
  sim.advance(1000);
  assert.ok(sim.unfences.length >= 2);
  assert.deepEqual(sim.where('db'), [], 'db never starts on a node that was not unfenced');
  assert.ok(sim.logs().some((m) => /^unfencing n\d failed \(attempt 1 of \d+\)/.test(m)));
  sim.unfenceOk = true;
  for (let i = 0; i < 5 && sim.where('db').length === 0; i++) sim.advance(1500);
  assert.deepEqual(sim.where('db'), ['n1'], 'once the device answers, db starts');
});

test('unfencing runs only the devices that provide it', () => {
  const cib = crmCib(`${SCSI}primitive ipmi stonith:fence_ipmilan params ip=10.0.0.9\n`);
  assert.deepEqual(
    fenceDevicesFromCib(cib, 'unfencing').map((d) => d.id),
    ['scsi'],
  );
  assert.deepEqual(
    fenceDevicesFromCib(cib)
      .map((d) => d.id)
      .sort(),
    ['ipmi', 'scsi'],
  );
});
