import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emptyConfiguration } from '../cib/model.ts';
import { LogIndex, Term } from '../lib/brand.ts';
import { type CibCommand, CibStateMachine, encodeCibCommand } from './cib_state_machine.ts';
import type { Entry } from './types.ts';

let nextIndex = 1;
const entry = (c: CibCommand | string): Entry => ({
  index: LogIndex(nextIndex++),
  term: Term(1),
  type: 'normal',
  data: typeof c === 'string' ? c : encodeCibCommand(c),
});

test('a configuration change bumps epoch and resets num_updates, as Pacemaker does', () => {
  const sm = new CibStateMachine();
  assert.deepEqual(sm.version(), { epoch: 1, numUpdates: 0, adminEpoch: 0 });
  assert.deepEqual(sm.apply(entry({ op: 'set-property', name: 'stonith-enabled', value: 'false' })), {
    ok: true,
    changed: true,
  });
  assert.deepEqual(sm.version(), { epoch: 2, numUpdates: 0, adminEpoch: 0 });
  const set = sm.cib.configuration.crmConfig[0]!;
  assert.equal(set.id, 'cib-bootstrap-options');
  assert.deepEqual(set.pairs, [
    { id: 'cib-bootstrap-options-stonith-enabled', name: 'stonith-enabled', value: 'false' },
  ]);
});

test('a status change bumps num_updates only', () => {
  const sm = new CibStateMachine();
  sm.apply(
    entry({ op: 'set-node-attribute', node: 'alice', name: 'pingd', value: '100', lifetime: 'reboot' }),
  );
  sm.apply(
    entry({
      op: 'record-op-result',
      node: 'alice',
      resource: { id: 'web-ip', class: 'ocf', provider: 'heartbeat', type: 'IPaddr2' },
      result: { id: 'web-ip_last_0', operation: 'start', interval: '0', rcCode: '0' },
    }),
  );
  assert.deepEqual(sm.version(), { epoch: 1, numUpdates: 2, adminEpoch: 0 });
  const alice = sm.cib.status[0]!;
  assert.equal(alice.transientAttributes[0]!.pairs[0]!.value, '100');
  assert.equal(alice.resources[0]!.type, 'IPaddr2');
  assert.equal(alice.resources[0]!.ops[0]!.operation, 'start');
  // A newer result for the same op id replaces the old one.
  sm.apply(
    entry({
      op: 'record-op-result',
      node: 'alice',
      resource: { id: 'web-ip' },
      result: { id: 'web-ip_last_0', operation: 'stop', interval: '0', rcCode: '0' },
    }),
  );
  assert.equal(sm.cib.status[0]!.resources[0]!.ops.length, 1);
  assert.equal(sm.cib.status[0]!.resources[0]!.ops[0]!.operation, 'stop');
});

test('a permanent node attribute on an unknown node is refused and changes nothing', () => {
  const sm = new CibStateMachine();
  const before = sm.snapshot();
  const r = sm.apply(
    entry({ op: 'set-node-attribute', node: 'ghost', name: 'standby', value: 'on', lifetime: 'forever' }),
  );
  assert.equal(r.ok, false);
  assert.equal(r.ok ? '' : r.code, 'unknown-node');
  assert.equal(sm.snapshot(), before);
  sm.apply(
    entry({
      op: 'replace-configuration',
      configuration: {
        ...emptyConfiguration(),
        nodes: [{ id: '1', uname: 'ghost', instanceAttributes: [], utilization: [] }],
      },
    }),
  );
  assert.equal(
    sm.apply(
      entry({ op: 'set-node-attribute', node: 'ghost', name: 'standby', value: 'on', lifetime: 'forever' }),
    ).ok,
    true,
  );
  assert.equal(sm.cib.configuration.nodes[0]!.instanceAttributes[0]!.pairs[0]!.name, 'standby');
  assert.deepEqual(sm.version(), { epoch: 3, numUpdates: 0, adminEpoch: 0 });
});

test('malformed commands are rejected identically and change nothing', () => {
  const sm = new CibStateMachine();
  const before = sm.snapshot();
  for (const bad of [
    '{',
    '{"op":"drop-table"}',
    '{"op":"set-property","name":"","value":"x"}',
    '[]',
    '{"op":"record-op-result","node":"a"}',
  ]) {
    const r = sm.apply(entry(bad));
    assert.equal(r.ok, false, bad);
    assert.equal(r.ok ? '' : r.code, 'bad-command');
  }
  assert.equal(sm.snapshot(), before);
});

test('no-op and membership entries leave the CIB and its version alone', () => {
  const sm = new CibStateMachine();
  assert.deepEqual(sm.apply(entry('')), { ok: true, changed: false });
  assert.deepEqual(sm.apply({ ...entry('{"type":"addNode","node":"n4"}'), type: 'conf' }), {
    ok: true,
    changed: false,
  });
  assert.deepEqual(sm.version(), { epoch: 1, numUpdates: 0, adminEpoch: 0 });
});

test('a snapshot restores exactly the same CIB on another replica', () => {
  const a = new CibStateMachine();
  a.apply(entry({ op: 'set-property', name: 'no-quorum-policy', value: 'stop' }));
  a.apply(
    entry({ op: 'set-node-attribute', node: 'bob', name: 'fail-count-web', value: '1', lifetime: 'reboot' }),
  );
  const b = new CibStateMachine();
  b.restore(a.snapshot());
  assert.deepEqual(b.cib, a.cib);
  b.restore('');
  assert.deepEqual(b.version(), { epoch: 1, numUpdates: 0, adminEpoch: 0 });
  assert.throws(() => b.restore('{"version":99,"cib":{}}'), /format 99/);
});
