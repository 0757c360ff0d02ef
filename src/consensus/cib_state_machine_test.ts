import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emptyConfiguration, type NodeState } from '../cib/model.ts';
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

const aliceState = (ops: { id: string; operation: string }[]): NodeState => ({
  id: '1',
  uname: 'alice',
  inCcm: 'true',
  crmd: 'online',
  join: 'member',
  expected: 'member',
  transientAttributes: [
    {
      kind: 'instance_attributes',
      id: 'status-1',
      pairs: [{ id: 'status-1-pingd', name: 'pingd', value: '100' }],
    },
  ],
  resources: [
    {
      id: 'web',
      class: 'ocf',
      provider: 'heartbeat',
      type: 'nginx',
      ops: ops.map((o) => ({ ...o, interval: '0', callId: '3', rcCode: '0', onNode: 'alice' })),
    },
  ],
  hasLrm: true,
  lrmId: '1',
  transientAttributesId: '1',
});

test('replace-node-state swaps a node status for the one the controller wrote, like applyStatusChanges', () => {
  const sm = new CibStateMachine();
  sm.apply(
    entry({
      op: 'record-op-result',
      node: 'alice',
      resource: { id: 'db' },
      result: { id: 'db_last_0', operation: 'start', interval: '0', rcCode: '0' },
    }),
  );
  sm.apply(entry({ op: 'set-node-attribute', node: 'bob', name: 'pingd', value: '0', lifetime: 'reboot' }));
  const fresh = aliceState([{ id: 'web_last_0', operation: 'start' }]);
  assert.deepEqual(sm.apply(entry({ op: 'replace-node-state', node: 'alice', state: fresh })), {
    ok: true,
    changed: true,
  });
  // alice's old history (db) is gone, bob is untouched, and it is one status update.
  assert.deepEqual(sm.cib.status[0], fresh);
  assert.equal(sm.cib.status[1]!.uname, 'bob');
  assert.equal(sm.cib.status.length, 2);
  assert.deepEqual(sm.version(), { epoch: 1, numUpdates: 3, adminEpoch: 0 });
  // A node without a status entry yet is appended.
  const carol: NodeState = { id: '3', uname: 'carol', transientAttributes: [], resources: [], hasLrm: false };
  assert.equal(sm.apply(entry({ op: 'replace-node-state', node: 'carol', state: carol })).ok, true);
  assert.deepEqual(sm.cib.status[2], carol);
});

test('replace-node-state for a node the configuration does not list is refused and changes nothing', () => {
  const sm = new CibStateMachine();
  sm.apply(
    entry({
      op: 'replace-configuration',
      configuration: {
        ...emptyConfiguration(),
        nodes: [{ id: '1', uname: 'alice', instanceAttributes: [], utilization: [] }],
      },
    }),
  );
  const before = sm.snapshot();
  const ghost: NodeState = { id: '9', uname: 'ghost', transientAttributes: [], resources: [], hasLrm: true };
  const r = sm.apply(entry({ op: 'replace-node-state', node: 'ghost', state: ghost }));
  assert.equal(r.ok ? '' : r.code, 'unknown-node');
  assert.match(r.ok ? '' : r.message, /ghost/);
  assert.equal(sm.snapshot(), before);
  assert.equal(sm.apply(entry({ op: 'replace-node-state', node: 'alice', state: aliceState([]) })).ok, true);
});

test('delete-op-result removes one operation record and keeps the others', () => {
  const sm = new CibStateMachine();
  const state = aliceState([
    { id: 'web_last_0', operation: 'start' },
    { id: 'web_monitor_10000', operation: 'monitor' },
  ]);
  sm.apply(entry({ op: 'replace-node-state', node: 'alice', state }));
  const v = sm.version().numUpdates;
  assert.deepEqual(
    sm.apply(entry({ op: 'delete-op-result', node: 'alice', resource: 'web', id: 'web_monitor_10000' })),
    { ok: true, changed: true },
  );
  assert.deepEqual(
    sm.cib.status[0]!.resources[0]!.ops.map((o) => o.id),
    ['web_last_0'],
  );
  assert.equal(sm.version().numUpdates, v + 1);
  // Deleting it again (a retried command) or an op that never existed changes nothing.
  const before = sm.snapshot();
  for (const [resource, id] of [
    ['web', 'web_monitor_10000'],
    ['nope', 'nope_last_0'],
  ] as const) {
    assert.deepEqual(sm.apply(entry({ op: 'delete-op-result', node: 'alice', resource, id })), {
      ok: true,
      changed: false,
    });
  }
  assert.equal(sm.snapshot(), before);
});

test('delete-op-result on a node without status is refused and changes nothing', () => {
  const sm = new CibStateMachine();
  const before = sm.snapshot();
  const r = sm.apply(entry({ op: 'delete-op-result', node: 'ghost', resource: 'web', id: 'web_last_0' }));
  assert.equal(r.ok ? '' : r.code, 'unknown-node');
  assert.equal(sm.snapshot(), before);
});

test('malformed node-state commands are rejected with the field named and change nothing', () => {
  const sm = new CibStateMachine();
  sm.apply(entry({ op: 'replace-node-state', node: 'alice', state: aliceState([]) }));
  const before = sm.snapshot();
  const good = aliceState([{ id: 'web_last_0', operation: 'start' }]);
  const cases: [unknown, RegExp][] = [
    [{ op: 'replace-node-state', node: 'alice' }, /state: expected an object/],
    [{ op: 'replace-node-state', node: '', state: good }, /valid node name/],
    [{ op: 'replace-node-state', node: 'bob', state: good }, /uname "alice" is not node "bob"/],
    [{ op: 'replace-node-state', node: 'alice', state: { ...good, hasLrm: 'yes' } }, /hasLrm/],
    [
      { op: 'replace-node-state', node: 'alice', state: { ...good, resources: {} } },
      /resources: expected a list/,
    ],
    [
      {
        op: 'replace-node-state',
        node: 'alice',
        state: { ...good, resources: [{ id: 'web', ops: [{ id: 'x' }] }] },
      },
      /resources\[0\]\.ops\[0\]/,
    ],
    [
      {
        op: 'replace-node-state',
        node: 'alice',
        state: { ...good, transientAttributes: [{ kind: 'x', pairs: [1] }] },
      },
      /transientAttributes\[0\]\.pairs\[0\]/,
    ],
    [
      { op: 'delete-op-result', node: 'alice', resource: { id: 'web' }, id: 'web_last_0' },
      /delete-op-result/,
    ],
    [{ op: 'delete-op-result', node: 'alice', resource: 'web' }, /delete-op-result/],
  ];
  for (const [cmd, why] of cases) {
    const r = sm.apply(entry(JSON.stringify(cmd)));
    assert.equal(r.ok ? '' : r.code, 'bad-command', JSON.stringify(cmd));
    assert.match(r.ok ? '' : r.message, why);
  }
  assert.equal(sm.snapshot(), before);
});

test('fail-count attributes, whose names hold a #, can be set and cleared', () => {
  const sm = new CibStateMachine();
  const name = 'fail-count-web#monitor_10000';
  const set = sm.apply(
    entry({ op: 'set-node-attribute', node: 'alice', name, value: '3', lifetime: 'reboot' }),
  );
  assert.equal(set.ok, true);
  assert.equal(sm.cib.status[0]!.transientAttributes[0]!.pairs[0]!.name, name);
});

// ---------------------------------------------------------------------------------------------
// Compare-and-set: configuration edits carry the version they were computed from.

const withNode = (uname: string) => ({
  ...emptyConfiguration(),
  nodes: [{ id: '1', uname, instanceAttributes: [], utilization: [] }],
});

test('a configuration edit computed from an older epoch is refused as a conflict on every replica and changes nothing', () => {
  const replicas = [new CibStateMachine(), new CibStateMachine()];
  // Two administrators read the CIB at epoch 1; the first one's edit commits (epoch 2).
  const log = [
    entry({
      op: 'replace-configuration',
      configuration: withNode('alice'),
      expectedVersion: { adminEpoch: 0, epoch: 1 },
    }),
    entry({ op: 'set-node-attribute', node: 'alice', name: 'pingd', value: '1', lifetime: 'reboot' }),
  ];
  for (const sm of replicas) for (const e of log) assert.equal(sm.apply(e).ok, true);
  const before = replicas.map((sm) => sm.snapshot());
  assert.deepEqual(replicas[0]!.version(), { epoch: 2, numUpdates: 1, adminEpoch: 0 });
  // The second one's edits, computed from epoch 1, would silently undo the first.
  for (const late of [
    entry({
      op: 'replace-configuration',
      configuration: withNode('bob'),
      expectedVersion: { adminEpoch: 0, epoch: 1 },
    }),
    entry({
      op: 'set-property',
      name: 'stonith-enabled',
      value: 'false',
      expectedVersion: { adminEpoch: 0, epoch: 1 },
    }),
    entry({
      op: 'set-node-attribute',
      node: 'alice',
      name: 'standby',
      value: 'on',
      lifetime: 'forever',
      expectedVersion: { adminEpoch: 0, epoch: 1 },
    }),
  ]) {
    const results = replicas.map((sm) => sm.apply(late));
    assert.deepEqual(results[0], {
      ok: false,
      code: 'conflict',
      message: 'the configuration changed since it was read (epoch 1, now 2): nothing was changed',
    });
    assert.deepEqual(results[1], results[0]);
  }
  // Nothing changed, not even num_updates, and the replicas still agree.
  assert.deepEqual(
    replicas.map((sm) => sm.snapshot()),
    before,
  );
  assert.equal(replicas[0]!.cib.configuration.nodes[0]!.uname, 'alice');
});

test('a configuration edit at the version it expects is applied, even after status updates', () => {
  const sm = new CibStateMachine();
  // Status changes (num_updates) between the read and the edit are no conflict: the edit
  // replaces the configuration only.
  sm.apply(entry({ op: 'set-node-attribute', node: 'alice', name: 'pingd', value: '1', lifetime: 'reboot' }));
  const v = { adminEpoch: 0, epoch: 1 };
  assert.deepEqual(
    sm.apply(entry({ op: 'replace-configuration', configuration: withNode('alice'), expectedVersion: v })),
    { ok: true, changed: true },
  );
  const at2 = { adminEpoch: 0, epoch: 2 };
  assert.equal(sm.apply(entry({ op: 'set-property', name: 'a', value: 'b', expectedVersion: at2 })).ok, true);
  const at3 = { adminEpoch: 0, epoch: 3 };
  const attr = {
    op: 'set-node-attribute',
    node: 'alice',
    name: 'standby',
    value: 'on',
    lifetime: 'forever',
  } as const;
  assert.equal(sm.apply(entry({ ...attr, expectedVersion: at3 })).ok, true);
  assert.deepEqual(sm.version(), { epoch: 4, numUpdates: 0, adminEpoch: 0 });
});

test('a configuration edit without an expected version applies to whatever configuration there is, as before', () => {
  const sm = new CibStateMachine();
  sm.apply(entry({ op: 'set-property', name: 'a', value: 'b' }));
  sm.apply(entry({ op: 'set-property', name: 'a', value: 'c' }));
  assert.deepEqual(sm.apply(entry({ op: 'replace-configuration', configuration: withNode('carol') })), {
    ok: true,
    changed: true,
  });
  assert.deepEqual(sm.version(), { epoch: 4, numUpdates: 0, adminEpoch: 0 });
});

test('a raised admin_epoch is a conflict too, and the message names both counters', () => {
  const sm = new CibStateMachine();
  const raised = JSON.parse(sm.snapshot()) as { version: number; cib: { attrs: [string, string][] } };
  raised.cib.attrs = [...raised.cib.attrs.filter(([k]) => k !== 'admin_epoch'), ['admin_epoch', '1']];
  sm.restore(JSON.stringify(raised));
  const before = sm.snapshot();
  const r = sm.apply(
    entry({
      op: 'replace-configuration',
      configuration: withNode('x'),
      expectedVersion: { adminEpoch: 0, epoch: 1 },
    }),
  );
  assert.deepEqual(r, {
    ok: false,
    code: 'conflict',
    message:
      'the configuration changed since it was read (admin_epoch 0 epoch 1, now admin_epoch 1 epoch 1): nothing was changed',
  });
  assert.equal(sm.snapshot(), before);
  const ok = { adminEpoch: 1, epoch: 1 };
  assert.equal(
    sm.apply(entry({ op: 'replace-configuration', configuration: withNode('x'), expectedVersion: ok })).ok,
    true,
  );
});

test('a malformed expected version is a bad-command that names the field and changes nothing', () => {
  const sm = new CibStateMachine();
  const before = sm.snapshot();
  const cfg = emptyConfiguration();
  const cases: unknown[] = [
    { op: 'replace-configuration', configuration: cfg, expectedVersion: 1 },
    { op: 'replace-configuration', configuration: cfg, expectedVersion: '1' },
    { op: 'replace-configuration', configuration: cfg, expectedVersion: null },
    { op: 'replace-configuration', configuration: cfg, expectedVersion: [0, 1] },
    { op: 'replace-configuration', configuration: cfg, expectedVersion: { epoch: 1 } },
    { op: 'replace-configuration', configuration: cfg, expectedVersion: { adminEpoch: 0, epoch: '1' } },
    { op: 'replace-configuration', configuration: cfg, expectedVersion: { adminEpoch: 0, epoch: -1 } },
    { op: 'replace-configuration', configuration: cfg, expectedVersion: { adminEpoch: 0, epoch: 1.5 } },
    { op: 'set-property', name: 'a', value: 'b', expectedVersion: { adminEpoch: 0 } },
    { op: 'set-node-attribute', node: 'n', name: 'a', value: 'b', lifetime: 'forever', expectedVersion: {} },
  ];
  for (const cmd of cases) {
    const r = sm.apply(entry(JSON.stringify(cmd)));
    assert.equal(r.ok ? '' : r.code, 'bad-command', JSON.stringify(cmd));
    assert.match(r.ok ? '' : r.message, /expectedVersion must be \{"adminEpoch": N, "epoch": N\}/);
  }
  // A transient attribute is status, not configuration: it takes no expected version.
  const transient = { op: 'set-node-attribute', node: 'n', name: 'a', value: 'b', lifetime: 'reboot' };
  const r = sm.apply(entry(JSON.stringify({ ...transient, expectedVersion: { adminEpoch: 0, epoch: 1 } })));
  assert.equal(r.ok ? '' : r.code, 'bad-command');
  assert.match(r.ok ? '' : r.message, /lifetime "reboot" changes the status/);
  assert.equal(sm.snapshot(), before);
});
