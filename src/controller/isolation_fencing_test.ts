import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeState } from '../cib/model.ts';
import { DEFAULT_ISOLATION_FENCING_DELAY_MS, parseIsolationFencingDelay } from './isolation_fencing.ts';
import { type ClusterSim, crmCib, startCluster, twoNodeSplitSide } from './sim_harness_test_util.ts';
import { applyStatusChanges } from './status.ts';

/**
 * halo-isolation-fencing-delay: a node that sees no carrier on any of its cluster links is the
 * one cut off, so every fencing it issues waits, and the healthy peer wins a two-node fence
 * race. Each side of the split is its own DC here (the first node listed); the sim records the
 * delay each fence effect asks for.
 */

const TWO = `node 1: n1
node 2: n2
primitive fence-lab stonith:fence_dummy
primitive db ocf:heartbeat:Dummy op monitor interval=10s
location l-db db 100: n1
property stonith-enabled=true no-quorum-policy=stop
`;

const CUT = 'link 0 198.18.0.1 on n1l0: no carrier; link 1 198.18.1.1 on n1l1: no carrier';
const ONE_UP = 'link 0 198.18.0.1 on n1l0: no carrier; link 1 198.18.1.1 on n1l1: carrier';

function carrier(sim: ClusterSim, isolated: boolean, detail: string): void {
  sim.send({ type: 'link-carrier', isolated, detail });
}

function fenceEffects(sim: ClusterSim): { target: string; delayMs?: number; delayReason?: string }[] {
  return sim.effects.flatMap((e) =>
    e.type === 'fence'
      ? [
          {
            target: e.target,
            ...(e.delayMs !== undefined ? { delayMs: e.delayMs } : {}),
            ...(e.delayReason !== undefined ? { delayReason: e.delayReason } : {}),
          },
        ]
      : [],
  );
}

test('a node with no carrier on any cluster link makes its fence of the peer wait 10 s and says why', () => {
  const sim = twoNodeSplitSide(TWO, 'n1', 'n2', (s) => carrier(s, true, CUT));
  const [fence, ...more] = fenceEffects(sim);
  assert.equal(more.length, 0);
  assert.equal(fence?.target, 'n2');
  assert.equal(fence?.delayMs, DEFAULT_ISOLATION_FENCING_DELAY_MS);
  assert.match(
    fence?.delayReason ?? '',
    /^halo-isolation-fencing-delay: no carrier on any cluster link \(link 0/,
  );
  assert.ok(
    sim
      .logs()
      .some((m) =>
        m.startsWith(
          `fencing n2 waits 10000 ms (halo-isolation-fencing-delay): no carrier on any cluster link: ${CUT}`,
        ),
      ),
    sim.logs().join('\n'),
  );
  assert.ok(sim.logs().some((m) => m.startsWith(`no carrier on any cluster link: ${CUT}`)));
  // Delayed, never skipped: the fence still happens (the sim fences once the effect is out).
  assert.deepEqual(
    sim.fences.map((f) => f.target),
    ['n2'],
  );
});

test('a node with carrier on one of its links fences its peer at once', () => {
  const sim = twoNodeSplitSide(TWO, 'n1', 'n2', (s) => carrier(s, false, ONE_UP));
  assert.deepEqual(fenceEffects(sim), [{ target: 'n2' }]);
  assert.equal(sim.ctl.isolationDelay(), undefined);
});

test('once the carrier is back a later fence no longer waits', () => {
  const sim = twoNodeSplitSide(TWO, 'n1', 'n2', (s) => {
    carrier(s, true, CUT);
    s.fenceOk = false;
  });
  assert.deepEqual(
    fenceEffects(sim).map((f) => f.delayMs),
    [DEFAULT_ISOLATION_FENCING_DELAY_MS],
  );
  carrier(sim, false, ONE_UP);
  assert.ok(sim.logs().some((m) => m.startsWith('carrier back on a cluster link')));
  sim.fenceOk = true;
  for (let i = 0; i < 120 && sim.fences.length < 2; i++) sim.advance(1000);
  const later = fenceEffects(sim).slice(1);
  assert.ok(later.length >= 1, 'the failed fence is retried');
  assert.deepEqual(later[0], { target: 'n2' });
});

test('the two-node takeover asks the core for the same delay, and only while isolated', () => {
  const sim = startCluster(TWO, ['n1', 'n2']);
  assert.equal(sim.ctl.isolationDelay(), undefined);
  carrier(sim, true, CUT);
  assert.equal(sim.ctl.isolationDelay()?.delayMs, DEFAULT_ISOLATION_FENCING_DELAY_MS);
  carrier(sim, false, ONE_UP);
  assert.equal(sim.ctl.isolationDelay(), undefined);
});

test('halo-isolation-fencing-delay sets the wait, 0 turns it off', () => {
  const three = twoNodeSplitSide(`${TWO}property halo-isolation-fencing-delay=3s\n`, 'n1', 'n2', (s) =>
    carrier(s, true, CUT),
  );
  assert.deepEqual(
    fenceEffects(three).map((f) => f.delayMs),
    [3000],
  );
  const off = twoNodeSplitSide(`${TWO}property halo-isolation-fencing-delay=0\n`, 'n1', 'n2', (s) =>
    carrier(s, true, CUT),
  );
  assert.deepEqual(fenceEffects(off), [{ target: 'n2' }]);
});

test('an invalid halo-isolation-fencing-delay is reported once, naming the property and value, and the default applies', () => {
  const sim = twoNodeSplitSide(`${TWO}property halo-isolation-fencing-delay=abc\n`, 'n1', 'n2', (s) =>
    carrier(s, true, CUT),
  );
  assert.deepEqual(
    fenceEffects(sim).map((f) => f.delayMs),
    [DEFAULT_ISOLATION_FENCING_DELAY_MS],
  );
  const errors = sim.logs().filter((m) => m.startsWith('cluster property halo-isolation-fencing-delay:'));
  assert.equal(errors.length, 1, errors.join('\n'));
  assert.match(errors[0]!, /'abc'/);
  assert.match(errors[0]!, /using the default 10000 ms/);
  for (const [text, why] of [
    ['-5s', /'-5s' is negative/],
    ['2h', /more than the 3600000 ms/],
  ] as const) {
    const p = parseIsolationFencingDelay(crmCib(`${TWO}property halo-isolation-fencing-delay=${text}\n`));
    assert.ok(!p.ok && why.test(p.reason), JSON.stringify(p));
  }
});

test('with priority-fencing-delay too, both waits add up and both reasons are given', () => {
  const text = `${TWO.replace('primitive db ocf:heartbeat:Dummy', 'primitive db ocf:heartbeat:Dummy meta priority=10').replace('location l-db db 100: n1', 'location l-db db 100: n2')}property priority-fencing-delay=5s\n`;
  const sim = twoNodeSplitSide(text, 'n1', 'n2', (s) => {
    assert.deepEqual(s.where('db'), ['n2']);
    carrier(s, true, CUT);
  });
  const [fence] = fenceEffects(sim);
  assert.equal(fence?.delayMs, 15_000);
  assert.match(
    fence?.delayReason ?? '',
    /^priority-fencing-delay: n2 runs .*; halo-isolation-fencing-delay: /,
  );
});

test('the two-node takeover fence waits priority-fencing-delay when the lost peer runs the higher priority', () => {
  const text = `${TWO.replace('primitive db ocf:heartbeat:Dummy', 'primitive db ocf:heartbeat:Dummy meta priority=10').replace('location l-db db 100: n1', 'location l-db db 100: n2')}property priority-fencing-delay=5s\n`;
  const sim = startCluster(text, ['n1', 'n2']);
  assert.deepEqual(sim.where('db'), ['n2']);
  // What Raft does with the DC's status changes: the replicated CIB every node holds.
  let status: NodeState[] = [];
  for (const e of sim.effects)
    if (e.type === 'status-changes') status = applyStatusChanges(status, e.changes);
  sim.send({ type: 'cib', cib: { ...sim.cib, status, hasStatus: true } });
  // n1 survives and fences n2, which runs db: it waits, so a live n2 fences n1 first.
  const wait = sim.ctl.takeoverFenceDelay('n2');
  assert.equal(wait?.delayMs, 5000);
  assert.match(wait?.reason ?? '', /^priority-fencing-delay: n2 runs/);
  // n2's side fencing n1 (which runs nothing) does not wait.
  assert.equal(sim.ctl.takeoverFenceDelay('n1'), undefined);
  // Isolated as well: both add up.
  carrier(sim, true, CUT);
  assert.equal(sim.ctl.takeoverFenceDelay('n2')?.delayMs, 5000 + DEFAULT_ISOLATION_FENCING_DELAY_MS);
  assert.equal(sim.ctl.takeoverFenceDelay('n1')?.delayMs, DEFAULT_ISOLATION_FENCING_DELAY_MS);
});
