import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Cib, NodeState } from '../cib/model.ts';
import { Executor } from '../executor/executor.ts';
import { ShellAgentRunner } from '../executor/runner.ts';
import { nullLogger } from '../lib/ports.ts';
import { schedule } from '../scheduler/schedule.ts';
import { ControllerHost, type ControllerWire, type FenceRequestDelay } from './host.ts';
import { crmCib, startCluster } from './sim_harness_test_util.ts';
import { applyStatusChanges } from './status.ts';
import type { StatusChange } from './types.ts';

const DUMMY = '/usr/lib/ocf/resource.d/heartbeat/Dummy';

const CONFIG = `node 1: n1
node 2: n2
node 3: n3
primitive ip ocf:heartbeat:Dummy op monitor interval=1s timeout=10s
primitive web ocf:heartbeat:Dummy op monitor interval=1s timeout=10s
group g ip web
location l-prefer g 50: n1
property stonith-enabled=true
`;

async function eventually(what: string, ms: number, check: () => boolean): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`gave up waiting for ${what} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Three controller hosts wired in memory (a bus instead of the daemon's streams), each with a
 * REAL executor running the unmodified ocf:heartbeat:Dummy agent with its own state directory,
 * and the REAL scheduler. Fencing is a test double that "powers off" a node: its host and
 * executor stop and its agents' state files vanish, as with a real power cut.
 */
test('three hosts with real agents start the group, and after the DC node dies and is fenced the group runs on a survivor', {
  skip: !existsSync(DUMMY) && 'needs resource-agents (ocf:heartbeat:Dummy)',
  timeout: 120_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-ctlhost-'));
  const names = ['n1', 'n2', 'n3'];
  const hosts = new Map<string, ControllerHost>();
  const executors = new Map<string, Executor>();
  const dead = new Set<string>();
  const fenced: string[] = [];
  let replicated: Cib = crmCib(CONFIG);
  const stateFile = (node: string, rsc: string): string => join(dir, node, `Dummy-${rsc}.state`);
  try {
    for (const name of names) {
      mkdirSync(join(dir, name));
      const exec: Executor = new Executor({
        runner: new ShellAgentRunner({ stateDir: join(dir, name) }),
        onResult: (r) => hosts.get(name)?.localResult(r),
      });
      executors.set(name, exec);
      const host = new ControllerHost(
        {
          config: {
            self: name,
            fencing: 'stonith',
            leaseMs: 2_000,
            detectionSlackMs: 500,
            recheckIntervalMs: 60_000,
          },
          schedule: (c, now) => schedule(c, now, { textOutput: false }),
          // The node the test names DC is the one a quorum acknowledges (no Raft here).
          leaseValid: () => !dead.has(name),
          executor: exec,
          fence: async (target) => {
            fenced.push(target);
            powerOff(target);
            return { ok: true, reason: `test power switch: ${target} off` };
          },
          sendToNode: (node: string, msg: ControllerWire) => {
            if (dead.has(node) || dead.has(name)) return;
            setImmediate(() => hosts.get(node)?.receive(name, msg));
          },
          publishStatus: (changes: readonly StatusChange[]) => {
            if (dead.has(name)) return;
            replicated = { ...replicated, status: applyStatusChanges(replicated.status, changes) };
            for (const [n, h] of hosts) if (!dead.has(n)) setImmediate(() => h.committedCib(replicated));
          },
          // The configuration lists every node: the DC never asks for node entries here.
          addNodes: (nodes) => assert.fail(`unexpected node entries ${JSON.stringify(nodes)}`),
          nodeFenced: () => {},
          selfFence: () => {},
          logger: nullLogger,
          wallMs: Date.now,
        },
        replicated,
      );
      hosts.set(name, host);
    }
    const powerOff = (node: string): void => {
      dead.add(node);
      hosts.get(node)?.stop();
      executors.get(node)?.close();
      rmSync(join(dir, node), { recursive: true, force: true });
      mkdirSync(join(dir, node));
    };
    for (const h of hosts.values()) h.start();
    for (const h of hosts.values()) {
      h.membership(names);
      h.quorum(true, []);
      h.dc('n1');
    }
    await eventually(
      'ip and web running on n1',
      45_000,
      () => existsSync(stateFile('n1', 'ip')) && existsSync(stateFile('n1', 'web')),
    );
    assert.ok(!existsSync(stateFile('n2', 'ip')) && !existsSync(stateFile('n3', 'ip')), 'ip runs once');

    // n1 (the DC, running the group) loses power; n2 becomes DC.
    dead.add('n1');
    hosts.get('n1')!.stop();
    executors.get('n1')!.close();
    for (const n of ['n2', 'n3']) {
      const h = hosts.get(n)!;
      h.membership(['n2', 'n3'], 'no heartbeat on 2 links');
      h.quorum(true, []);
      h.dc('n2');
    }
    await eventually('the group to run on a survivor', 45_000, () =>
      ['n2', 'n3'].some((n) => existsSync(stateFile(n, 'ip')) && existsSync(stateFile(n, 'web'))),
    );
    assert.deepEqual(fenced, ['n1'], 'n1 was fenced exactly once before recovery');
    const node = ['n2', 'n3'].find((n) => existsSync(stateFile(n, 'ip')))!;
    assert.ok(existsSync(stateFile(node, 'web')), 'web is with ip');
    // The agent makes its state file before it exits; its result reaches the status right after.
    await eventually('the start to be recorded in the CIB status', 10_000, () =>
      (replicated.status.find((s) => s.uname === node)?.resources ?? []).some(
        (r) => r.id === 'web' && r.ops.some((o) => o.operation === 'start' && o.rcCode === '0'),
      ),
    );
  } finally {
    for (const h of hosts.values()) h.stop();
    for (const e of executors.values()) e.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a node that does not know the DC yet (just rejoined) still answers the node that asked it to run an operation', async () => {
  const sent: { to: string; msg: ControllerWire }[] = [];
  const attrs: { to: string; msg: ControllerWire }[] = [];
  const host = new ControllerHost(
    {
      config: {
        self: 'n2',
        fencing: 'stonith',
        leaseMs: 2_000,
        detectionSlackMs: 500,
        recheckIntervalMs: 60_000,
      },
      schedule: (c, now) => schedule(c, now, { textOutput: false }),
      leaseValid: () => false,
      executor: {
        submit: async (req) =>
          ({
            resource: req.resource,
            action: req.action,
            intervalMs: req.intervalMs,
            rc: 7,
            opStatus: 0,
            execTimeMs: 1,
            queueTimeMs: 0,
          }) as Awaited<ReturnType<Executor['submit']>>,
      },
      fence: async () => ({ ok: false, reason: 'none' }),
      sendToNode: (to, msg) => (msg.kind === 'attribute' ? attrs : sent).push({ to, msg }),
      publishStatus: () => {},
      addNodes: () => {},
      nodeFenced: () => {},
      selfFence: () => {},
      logger: nullLogger,
      wallMs: () => 1_700_000_000_000,
    },
    crmCib(CONFIG),
  );
  const op = {
    rsc: 'ip',
    agent: 'ocf:heartbeat:Dummy',
    action: 'monitor',
    intervalMs: 0,
    timeoutMs: 20_000,
    startDelayMs: 0,
    params: {},
    meta: {},
    expectedRc: 7,
  };
  host.receive('n1', { kind: 'exec', token: '3:7', op });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    sent.map((s) => [s.to, s.msg.kind, s.msg.kind === 'result' ? s.msg.token : '']),
    [['n1', 'result', '3:7']],
    'the probe result goes to n1, though n2 has no DC yet',
  );
  assert.equal(host.setOwnAttribute('shutdown', '1'), false, 'no DC to ask for a shutdown yet');
  host.dc('n3');
  assert.equal(host.setOwnAttribute('shutdown', '1'), true);
  assert.deepEqual(attrs, [
    { to: 'n3', msg: { kind: 'attribute', node: 'n2', name: 'shutdown', value: '1' } },
  ]);
  host.stop();
});

test("the host hands the fence effect's priority-fencing-delay to the fence port", async () => {
  // The status a DC published while n1 ran db (priority 10), from a simulated cluster.
  const TWO = `node 1: n1
node 2: n2
primitive db ocf:heartbeat:Dummy meta priority=10 op monitor interval=10s
location l-db db 100: n1
property stonith-enabled=true priority-fencing-delay=5s
`;
  const sim = startCluster(TWO, ['n2', 'n1']);
  assert.deepEqual(sim.where('db'), ['n1']);
  let status: NodeState[] = [];
  for (const e of sim.effects)
    if (e.type === 'status-changes') status = applyStatusChanges(status, e.changes);
  const fences: { target: string; delay: FenceRequestDelay | undefined }[] = [];
  const host = new ControllerHost(
    {
      config: {
        self: 'n2',
        fencing: 'stonith',
        leaseMs: 2_000,
        detectionSlackMs: 500,
        recheckIntervalMs: 60_000,
      },
      schedule: (c, now) => schedule(c, now, { textOutput: false }),
      leaseValid: () => true,
      executor: { submit: async () => new Promise(() => {}) },
      fence: async (target, _action, _devices, _cib, delay) => {
        fences.push({ target, delay });
        return { ok: true, reason: 'test switch' };
      },
      sendToNode: () => {},
      publishStatus: () => {},
      addNodes: () => {},
      nodeFenced: () => {},
      selfFence: () => {},
      logger: nullLogger,
      wallMs: () => 1_700_000_000_000,
    },
    { ...crmCib(TWO), status, hasStatus: true },
  );
  host.membership(['n2'], 'no heartbeat', { quorum: { quorate: true, fenceNeeded: ['n1'] } });
  host.dc('n2');
  await new Promise((r) => setImmediate(r));
  host.stop();
  assert.deepEqual(fences[0], {
    target: 'n1',
    delay: { ms: 5000, why: 'priority-fencing-delay: n1 runs the highest-priority resources' },
  });
});
