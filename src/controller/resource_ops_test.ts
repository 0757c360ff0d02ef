import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fenceDevicesFromCib } from './host.ts';
import { baseId, execOpFor } from './resource_ops.ts';
import { crmCib } from './sim_harness_test_util.ts';
import { adoptNodeState, newNodeRecord, toNodeState } from './status.ts';

const CIB = crmCib(`node 1: n1
primitive fence-lab halo:lab-fence params netns_prefix=habc-
primitive ipmi stonith:fence_ipmilan params ip=10.0.0.9 username=admin
primitive vip halo:vip params ip=198.18.0.200 cidr_netmask=24 op monitor interval=2s timeout=5s op start timeout=7s
primitive db ocf:heartbeat:mysql op monitor interval=10s role=Master
ms ms_db db
op_defaults timeout=33s
`);

test('an action becomes the agent operation with its parameters and the timeout of its op, else op_defaults', () => {
  const start = execOpFor(CIB, { id: 1, task: 'start', node: 'n1', rsc: 'vip' })!;
  assert.equal(start.agent, 'halo:vip');
  assert.deepEqual(start.params, { ip: '198.18.0.200', cidr_netmask: '24' });
  assert.equal(start.timeoutMs, 7_000);
  assert.equal(start.expectedRc, 0);
  const mon = execOpFor(CIB, { id: 2, task: 'monitor', node: 'n1', rsc: 'vip', intervalMs: 2_000 })!;
  assert.equal(mon.timeoutMs, 5_000);
  const stop = execOpFor(CIB, { id: 3, task: 'stop', node: 'n1', rsc: 'vip' })!;
  assert.equal(stop.timeoutMs, 33_000, 'op_defaults timeout');
});

test('a probe expects "not running" and a Promoted monitor expects "running promoted"; clone instances map to their primitive', () => {
  assert.equal(
    execOpFor(CIB, { id: 1, task: 'monitor', node: 'n1', rsc: 'vip', intervalMs: 0, probe: true })!
      .expectedRc,
    7,
  );
  const m = execOpFor(CIB, {
    id: 2,
    task: 'monitor',
    node: 'n1',
    rsc: 'db:1',
    intervalMs: 10_000,
    role: 'Promoted',
  })!;
  assert.equal(m.expectedRc, 8);
  assert.equal(m.agent, 'ocf:heartbeat:mysql');
  assert.equal(baseId('db:1'), 'db');
  assert.equal(execOpFor(CIB, { id: 3, task: 'start', node: 'n1', rsc: 'nope' }), undefined);
});

test('fence devices are the stonith and halo:lab-fence primitives of the CIB, with their parameters', () => {
  assert.deepEqual(fenceDevicesFromCib(CIB), [
    { id: 'fence-lab', agent: 'halo:lab-fence', params: { netns_prefix: 'habc-' } },
    { id: 'ipmi', agent: 'stonith:fence_ipmilan', params: { ip: '10.0.0.9', username: 'admin' } },
  ]);
});

test('a node status survives the round trip through the CIB status section', () => {
  const rec = newNodeRecord('n1', '1');
  rec.condition = 'member';
  rec.attrs.set('fail-count-vip#monitor_2000', '2');
  rec.history.set(
    'vip',
    new Map([
      ['vip_last_0', { id: 'vip_last_0', operation: 'start', interval: '0', callId: '4', rcCode: '0' }],
    ]),
  );
  rec.agents.set('vip', { class: 'halo', type: 'vip' });
  const st = toNodeState(rec);
  assert.equal(st.inCcm, 'true');
  const back = newNodeRecord('n1', '1');
  adoptNodeState(back, st);
  assert.equal(back.condition, 'member');
  assert.equal(back.attrs.get('fail-count-vip#monitor_2000'), '2');
  assert.deepEqual(toNodeState(back), st);
});
