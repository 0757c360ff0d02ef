import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { NodeState } from '../cib/model.ts';
import { CibStateMachine } from '../consensus/cib_state_machine.ts';
import { nullLogger } from '../lib/ports.ts';
import {
  type AttachedController,
  addNodesCommand,
  attachController,
  type DaemonHooks,
  decodeWire,
  encodeWire,
  MAX_WIRE_BYTES,
  removeNodesCommand,
  statusCommands,
  statusCommandsCompat,
} from './daemon_glue.ts';
import { crmCib } from './sim_harness_test_util.ts';
import { adoptNodeState, newNodeRecord } from './status.ts';

test('malformed controller messages are refused with a reason, never thrown', () => {
  const bad: [Uint8Array, RegExp][] = [
    [Buffer.from('{nope'), /not JSON/],
    [Buffer.from('42'), /not an object/],
    [Buffer.from('{"kind":"reboot"}'), /unknown kind "reboot"/],
    [
      Buffer.from(
        '{"kind":"exec","token":"1:1","op":{"rsc":"a","agent":"ocf:heartbeat:Dummy","action":"start"}}',
      ),
      /bad numbers/,
    ],
    [
      Buffer.from(
        JSON.stringify({
          kind: 'exec',
          token: '1:1',
          op: {
            rsc: 'a',
            agent: 'x',
            action: 'start',
            intervalMs: 0,
            timeoutMs: 1,
            startDelayMs: 0,
            expectedRc: 0,
            params: { a: 1 },
            meta: {},
          },
        }),
      ),
      /params and meta/,
    ],
    [
      Buffer.from(
        JSON.stringify({
          kind: 'result',
          node: 'n1',
          rsc: 'a',
          action: 'start',
          intervalMs: 0,
          outcome: { rc: 'zero' },
        }),
      ),
      /bad outcome/,
    ],
    [Buffer.alloc(MAX_WIRE_BYTES + 1, 32), /exceeds/],
    [
      Buffer.from('{"kind":"attribute","node":"n1","name":"shutdown","value":1}'),
      /missing node, name or value/,
    ],
    [Buffer.from('{"kind":"attribute","node":"n1","name":"","value":"1"}'), /name must be 1\.\.128/],
  ];
  for (const [bytes, why] of bad) {
    const r = decodeWire(bytes);
    assert.equal(typeof r, 'string');
    assert.match(r as string, why);
  }
  const ok = {
    kind: 'result',
    node: 'n2',
    rsc: 'a',
    action: 'start',
    intervalMs: 0,
    outcome: { rc: 0, opStatus: 0, execTimeMs: 3 },
  } as const;
  assert.deepEqual(decodeWire(encodeWire(ok)), ok);
  const attr = { kind: 'attribute', node: 'n2', name: 'shutdown', value: null } as const;
  assert.deepEqual(decodeWire(encodeWire(attr)), attr, 'a deleted attribute travels as null');
});

test('status changes map onto the replicated CIB commands', () => {
  const cmds = statusCommands([
    { kind: 'attr', node: 'n1', name: 'pingd', value: '100' },
    {
      kind: 'op',
      node: 'n1',
      resource: { id: 'a', class: 'ocf', provider: 'heartbeat', type: 'Dummy' },
      op: { id: 'a_last_0', operation: 'start', interval: '0' },
    },
    { kind: 'op-removed', node: 'n1', rsc: 'a', opId: 'a_monitor_1000' },
  ]).map((c) => JSON.parse(c) as { op: string });
  assert.deepEqual(
    cmds.map((c) => c.op),
    ['set-node-attribute', 'record-op-result', 'delete-op-result'],
  );
});

test("while the replicated CIB lacks the node-state commands, a fenced node's cleared status still reaches it: dropped records as cancelled, dropped attributes deleted", () => {
  const sm = new CibStateMachine();
  const start = {
    id: 'a_last_0',
    operation: 'start',
    interval: '0',
    callId: '3',
    rcCode: '0',
    opStatus: '0',
  };
  const mon = {
    id: 'a_monitor_1000',
    operation: 'monitor',
    interval: '1000',
    callId: '4',
    rcCode: '0',
    opStatus: '0',
  };
  const res = { id: 'a', class: 'ocf', provider: 'heartbeat', type: 'Dummy' };
  const apply = (cmds: readonly string[]): void => {
    for (const [i, data] of cmds.entries()) {
      const r = sm.apply({ type: 'normal', index: i + 1, term: 1, data } as never);
      assert.ok(r.ok, `command ${data} rejected: ${r.ok ? '' : r.message}`);
    }
  };
  apply(
    statusCommandsCompat(
      [
        { kind: 'op', node: 'n1', resource: res, op: start },
        { kind: 'op', node: 'n1', resource: res, op: mon },
        { kind: 'attr', node: 'n1', name: 'pingd', value: '100' },
      ],
      sm.cib.status,
    ),
  );
  // n1 is fenced: the DC clears everything it ran.
  const cleared: NodeState = { id: '1', uname: 'n1', transientAttributes: [], resources: [], hasLrm: true };
  apply(statusCommandsCompat([{ kind: 'node', node: 'n1', state: cleared }], sm.cib.status));
  const n1 = sm.cib.status.find((s) => s.uname === 'n1')!;
  const ops = n1.resources.flatMap((r) => r.ops);
  assert.deepEqual(
    ops.map((o) => [o.id, o.opStatus]),
    [
      ['a_last_0', '1'],
      ['a_monitor_1000', '1'],
    ],
    'both records are cancelled, which the scheduler skips',
  );
  assert.deepEqual(
    n1.transientAttributes.flatMap((set) => set.pairs),
    [],
  );
  // A DC taking over from this CIB sees nothing running on n1: off, not lost (not fenced again).
  const rec = newNodeRecord('n1', '1');
  adoptNodeState(rec, n1);
  assert.equal(rec.condition, 'down');
  assert.equal(rec.history.size, 0);
  // A stop recorded later replaces the cancelled record under the same id.
  const stop = { ...start, operation: 'stop', callId: '9' };
  apply(statusCommandsCompat([{ kind: 'op', node: 'n1', resource: res, op: stop }], sm.cib.status));
  assert.equal(sm.cib.status[0]!.resources[0]!.ops.find((o) => o.id === 'a_last_0')!.operation, 'stop');
});

test('two daemons hosting the controller run an agent on the other node over the controller stream and replicate its result', {
  skip: !existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy') && 'needs resource-agents',
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-glue-'));
  const ids: Record<string, number> = { n1: 1, n2: 2 };
  const names = ['n1', 'n2'];
  const handlers = new Map<
    string,
    (ch: { peer: number; on(ev: 'message', cb: (m: Buffer) => void): unknown }) => void
  >();
  const inbox = new Map<string, (m: Buffer) => void>();
  const proposed: string[] = [];
  const attached: AttachedController[] = [];
  const cib = crmCib(
    'node 1: n1\nnode 2: n2\nprimitive a ocf:heartbeat:Dummy op monitor interval=1s\nlocation l-a a 100: n2\nproperty stonith-enabled=false\n',
  );
  try {
    for (const self of names) {
      mkdirSync(join(dir, self));
      const hooks: DaemonHooks = {
        self,
        stateDir: join(dir, self),
        logger: nullLogger,
        wallMs: Date.now,
        idOf: (n) => ids[n],
        nameOf: (id) => names[id - 1]!,
        sendOnStream: (peer, purpose, payload) => {
          assert.equal(purpose, 'controller');
          const to = names[peer - 1]!;
          setImmediate(() => inbox.get(`${to}<-${self}`)?.(Buffer.from(payload)));
        },
        onStreamPurpose: (purpose, handler) => handlers.set(`${self}:${purpose}`, handler),
        // The DC the test names holds its lease (no Raft here).
        leaseValid: () => true,
        propose: async (data) => {
          proposed.push(data);
          return { ok: true };
        },
        markFenced: () => {},
        selfFence: () => {},
      };
      attached.push(attachController(hooks, cib, { deadtimeMs: 250, deadtimeMaxMs: 1000 }));
    }
    // Each node's stream handler gets one channel per peer.
    for (const self of names) {
      for (const peer of names.filter((n) => n !== self)) {
        handlers.get(`${self}:controller`)!({
          peer: ids[peer]!,
          on: (_ev, cb) => inbox.set(`${self}<-${peer}`, cb),
        });
      }
    }
    for (const a of attached) {
      a.host.membership(names);
      a.host.quorum(true, []);
      a.host.dc('n1');
    }
    const state = join(dir, 'n2', 'rsctmp', 'Dummy-a.state');
    const until = Date.now() + 45_000;
    while (
      !(
        existsSync(state) &&
        proposed.some(
          (p) =>
            p.includes('"record-op-result"') &&
            p.includes('"node":"n2"') &&
            p.includes('"operation":"start"'),
        )
      )
    ) {
      if (Date.now() > until)
        throw new Error(`gave up: state ${existsSync(state)}, ${proposed.length} proposals`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(!existsSync(join(dir, 'n1', 'rsctmp', 'Dummy-a.state')), 'a runs only on n2');
    assert.equal(attached[0]!.dropped() + attached[1]!.dropped(), 0);
  } finally {
    for (const a of attached) a.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the command that adds node entries keeps every entry there is, skips names and ids already taken, and replaces only the configuration it was computed from', () => {
  const sm = new CibStateMachine(crmCib('node 1: a\nprimitive d ocf:heartbeat:Dummy\n'));
  const before = sm.version();
  const cmd = addNodesCommand(sm.cib, [
    { id: '1', uname: 'x' },
    { id: '2', uname: 'a' },
    { id: '2', uname: 'b' },
    { id: '2', uname: 'c' },
    { id: '3', uname: 'c' },
  ]);
  assert.ok(cmd !== undefined);
  const parsed = JSON.parse(cmd) as { expectedVersion: unknown };
  assert.deepEqual(parsed.expectedVersion, { adminEpoch: before.adminEpoch, epoch: before.epoch });
  assert.deepEqual(sm.applyCommand(JSON.parse(cmd)), { ok: true, changed: true });
  assert.deepEqual(
    sm.cib.configuration.nodes.map((n) => `${n.id}:${n.uname}`),
    ['1:a', '2:b', '3:c'],
  );
  assert.deepEqual(
    sm.cib.configuration.resources.map((r) => r.id),
    ['d'],
    'the rest of the configuration is untouched',
  );
  assert.equal(addNodesCommand(sm.cib, [{ id: '3', uname: 'c' }]), undefined, 'nothing left to add');
});

test('the command that deletes node entries keeps every other, and is refused as a conflict once the configuration changed', () => {
  const sm = new CibStateMachine(
    crmCib('node 1: a\nnode 2: b\nnode 3: c\nprimitive d ocf:heartbeat:Dummy\n'),
  );
  assert.equal(removeNodesCommand(sm.cib, ['x']), undefined, 'nothing to delete');
  const cmd = removeNodesCommand(sm.cib, ['b', 'x']);
  assert.ok(cmd !== undefined);
  const stale = removeNodesCommand(sm.cib, ['c'])!;
  assert.deepEqual(sm.applyCommand(JSON.parse(cmd)), { ok: true, changed: true });
  assert.deepEqual(
    sm.cib.configuration.nodes.map((n) => `${n.id}:${n.uname}`),
    ['1:a', '3:c'],
  );
  assert.deepEqual(
    sm.cib.configuration.resources.map((r) => r.id),
    ['d'],
  );
  const r = sm.applyCommand(JSON.parse(stale));
  assert.equal(r.ok ? 'applied' : r.code, 'conflict', 'computed from the older configuration');
  assert.equal(sm.cib.configuration.nodes.length, 2);
});

test('a two-node takeover fence still waiting out its delay ends when its signal aborts, and no device runs', {
  timeout: 20_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-glue-'));
  const cib = crmCib(
    'node 1: n1\nnode 2: n2\nprimitive f stonith:fence_halo_test_never_runs\nproperty stonith-enabled=true halo-isolation-fencing-delay=60s\n',
  );
  let attached: AttachedController | undefined;
  try {
    const hooks: DaemonHooks = {
      self: 'n1',
      stateDir: dir,
      logger: nullLogger,
      wallMs: Date.now,
      idOf: (n) => ({ n1: 1, n2: 2 })[n],
      nameOf: (id) => ['n1', 'n2'][id - 1]!,
      sendOnStream: () => {},
      onStreamPurpose: () => {},
      leaseValid: () => true,
      propose: async () => ({ ok: true }),
      markFenced: () => {},
      selfFence: () => {},
    };
    attached = attachController(hooks, cib, { deadtimeMs: 250, deadtimeMaxMs: 1000 });
    // No carrier on any link: the takeover fence waits 60 s before any device.
    attached.host.linkCarrier(true, 'link 0 198.18.0.1 on n1l0: no carrier');
    const peerBack = new AbortController();
    const fence = attached.fenceForTakeover('n2', peerBack.signal);
    setTimeout(() => peerBack.abort(new Error('n2 is a member again')), 50);
    const r = await fence;
    assert.equal(r.ok, false);
    assert.match(
      r.reason,
      /aborted during its 60000 ms requested delay, before any device ran: n2 is a member again/,
    );
  } finally {
    attached?.close?.();
    rmSync(dir, { recursive: true, force: true });
  }
});
