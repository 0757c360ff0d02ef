import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Cib } from '../cib/model.ts';
import { schedule, type Transition } from './schedule.ts';
import {
  clone,
  cluster,
  colocation,
  group,
  location,
  locationRule,
  nodeState,
  order,
  primitive,
  started,
} from './testing.ts';

const NOW = Date.UTC(2026, 0, 1);

function run(cib: Cib): Transition {
  const r = schedule(cib, NOW);
  if (!r.ok) assert.fail(r.message);
  return r.transition;
}

/** Summary lines with whitespace collapsed, as the conformance script compares them. */
function summary(cib: Cib): string[] {
  return run(cib).summary.map((l) => l.replace(/\s+/g, ' ').trim());
}

describe('schedule', () => {
  it('starts new resources spread over the least loaded nodes', () => {
    const cib = cluster({ nodes: ['n1', 'n2'], resources: [primitive('a'), primitive('b'), primitive('c')] });
    assert.deepEqual(summary(cib), ['* Start a ( n1 )', '* Start b ( n2 )', '* Start c ( n1 )']);
  });

  it('leaves a running resource alone when nothing changed', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [primitive('a')],
      status: [nodeState('n1', { history: [started('a')] })],
    });
    assert.deepEqual(summary(cib), []);
  });

  it('moves a resource towards a higher location score unless stickiness outweighs it', () => {
    const base = {
      nodes: ['n1', 'n2'],
      resources: [primitive('a')],
      constraints: [location('prefer-n2', 'a', 'n2', '50')],
      status: [nodeState('n1', { history: [started('a')] })],
    };
    assert.deepEqual(summary(cluster(base)), ['* Move a ( n1 -> n2 )']);
    assert.deepEqual(summary(cluster({ ...base, rscDefaults: { 'resource-stickiness': '100' } })), []);
  });

  it('honours the legacy default-resource-stickiness property', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      props: { 'default-resource-stickiness': '100' },
      resources: [primitive('a')],
      constraints: [location('prefer-n2', 'a', 'n2', '50')],
      status: [nodeState('n1', { history: [started('a')] })],
    });
    assert.deepEqual(summary(cib), []);
  });

  it('stops a resource that is banned everywhere, saying why', () => {
    const cib = cluster({
      nodes: ['n1'],
      resources: [primitive('a')],
      constraints: [location('ban', 'a', 'n1', '-INFINITY')],
      status: [nodeState('n1', { history: [started('a')] })],
    });
    assert.deepEqual(summary(cib), ['* Stop a ( n1 ) due to node availability']);
  });

  it('recovers a failed resource in place, and moves it once migration-threshold is reached', () => {
    const failedOn1 = nodeState('n1', { history: [started('a', { monitorFailed: true })] });
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [primitive('a', { monitorInterval: '10s' })],
      status: [failedOn1],
    });
    assert.deepEqual(summary(cib), ['* Recover a ( n1 )']);
    const counted = nodeState('n1', {
      history: [started('a', { monitorFailed: true })],
      attrs: { 'fail-count-a#monitor_10000': '3' },
    });
    const cib2 = cluster({
      nodes: ['n1', 'n2'],
      resources: [primitive('a', { monitorInterval: '10s', meta: { 'migration-threshold': '3' } })],
      status: [counted],
    });
    assert.deepEqual(summary(cib2), ['* Recover a ( n1 -> n2 )']);
  });

  it('fences a lost node and recovers its resources elsewhere', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      props: { 'stonith-enabled': 'true' },
      resources: [primitive('a')],
      status: [nodeState('n1', { lost: true, history: [started('a')] }), nodeState('n2')],
    });
    assert.deepEqual(summary(cib), [
      "* Fence (reboot) n1 'peer is no longer part of the cluster'",
      '* Move a ( n1 -> n2 )',
    ]);
  });

  it('keeps group members together and in order', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [group('g', [primitive('ip'), primitive('fs'), primitive('web')])],
      constraints: [location('prefer', 'g', 'n2', '10')],
    });
    assert.deepEqual(summary(cib), ['* Start ip ( n2 )', '* Start fs ( n2 )', '* Start web ( n2 )']);
    const t = run(cib);
    const startIds = new Map(t.actions.filter((a) => a.task === 'start').map((a) => [a.rsc, a.id]));
    assert.ok(t.orderings.some((o) => o.before === startIds.get('ip') && o.after === startIds.get('fs')));
  });

  it('restarts later group members when an earlier one is recovered', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [group('g', [primitive('ip'), primitive('web')])],
      rscDefaults: { 'resource-stickiness': '100' },
      status: [nodeState('n1', { history: [started('ip', { monitorFailed: true }), started('web')] })],
    });
    assert.deepEqual(summary(cib), ['* Recover ip ( n1 )', '* Restart web ( n1 ) due to required ip start']);
  });

  it('places a mandatory colocation dependent with its primary and stops it when the primary cannot run', () => {
    const base = {
      nodes: ['n1', 'n2'],
      resources: [primitive('db'), primitive('web')],
      constraints: [colocation('web-with-db', 'web', 'db', 'INFINITY'), location('db-n2', 'db', 'n2', '100')],
    };
    assert.deepEqual(summary(cluster(base)), ['* Start db ( n2 )', '* Start web ( n2 )']);
    const banned = cluster({
      ...base,
      constraints: [
        ...base.constraints,
        location('no-db', 'db', 'n2', '-INFINITY'),
        location('no-db1', 'db', 'n1', '-INFINITY'),
      ],
    });
    assert.deepEqual(summary(banned), []);
  });

  it('blocks the start of an ordered resource whose first cannot start', () => {
    const cib = cluster({
      nodes: ['n1'],
      resources: [primitive('a', { meta: { 'target-role': 'Stopped' } }), primitive('b')],
      constraints: [order('a-then-b', 'a', 'b')],
    });
    assert.deepEqual(summary(cib), ['* Start b ( n1 ) due to unrunnable a start (blocked)']);
  });

  it('runs one clone instance per node and promotes the instance with the highest promotion score', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [clone('ms', primitive('db', { type: 'Stateful' }), { promotable: 'true' })],
      status: [
        nodeState('n1', { attrs: { 'master-db': '5' } }),
        nodeState('n2', { attrs: { 'master-db': '10' } }),
      ],
    });
    assert.deepEqual(summary(cib), ['* Promote db:0 ( Stopped -> Promoted n2 )', '* Start db:1 ( n1 )']);
  });

  it('starts a group ordered after a promote only once the promote is done (seed 003: volume, then filesystem)', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [
        clone('ms', primitive('drbd', { type: 'Stateful' }), { promotable: 'true' }),
        group('g', [primitive('fs'), primitive('web')]),
      ],
      constraints: [
        colocation('c', 'g', 'ms', 'INFINITY', { withRscRole: 'Promoted' }),
        order('o', 'ms', 'g', { firstAction: 'promote', thenAction: 'start' }),
      ],
      status: [
        nodeState('n1', { attrs: { 'master-drbd': '10' } }),
        nodeState('n2', { attrs: { 'master-drbd': '5' } }),
      ],
    });
    const t = run(cib);
    const promote = t.actions.find((a) => a.task === 'promote')!;
    const fsStart = t.actions.find((a) => a.task === 'start' && a.rsc === 'fs')!;
    assert.ok(promote && fsStart, 'the transition promotes the volume and starts the filesystem');
    assert.ok(
      t.orderings.some((o) => o.before === promote.id && o.after === fsStart.id),
      'the filesystem start is ordered after the promote',
    );
  });

  it('moves resources off a node whose ping attribute fails a location rule', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [primitive('web')],
      constraints: [locationRule('l_ping', 'web', '-INFINITY', 'pingd', 'lt', '1000')],
      status: [
        nodeState('n1', { attrs: { pingd: '0' }, history: [started('web')] }),
        nodeState('n2', { attrs: { pingd: '1000' } }),
      ],
    });
    assert.deepEqual(summary(cib), ['* Move web ( n1 -> n2 )']);
  });

  it('moves resources off a standby node', () => {
    const cib = cluster({
      nodes: [{ name: 'n1', attrs: { standby: 'on' } }, 'n2'],
      resources: [primitive('a')],
      status: [nodeState('n1', { history: [started('a')] })],
    });
    assert.deepEqual(summary(cib), ['* Move a ( n1 -> n2 )']);
  });

  it('stops resources without quorum under no-quorum-policy stop, and blocks new starts', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      quorum: false,
      resources: [primitive('a'), primitive('b')],
      status: [nodeState('n1', { history: [started('a')] })],
    });
    assert.deepEqual(summary(cib), [
      '* Stop a ( n1 ) due to no quorum',
      '* Start b ( n2 ) due to no quorum (blocked)',
    ]);
  });

  it('does nothing to unmanaged resources in maintenance mode', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      props: { 'maintenance-mode': 'true' },
      resources: [primitive('a')],
      constraints: [location('ban', 'a', 'n1', '-INFINITY')],
      status: [nodeState('n1', { history: [started('a')] })],
    });
    assert.deepEqual(summary(cib), []);
  });

  it('rejects bundles with an explicit unsupported error', () => {
    const cib = cluster({
      nodes: ['n1'],
      resources: [
        {
          kind: 'bundle',
          id: 'b1',
          xml: { type: 'element', name: 'bundle', attrs: [['id', 'b1']], children: [] },
        },
      ],
    });
    const r = schedule(cib, NOW);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.code, 'unsupported');
      assert.match(r.message, /unsupported: bundle 'b1'/);
    }
  });

  it('gives the same output byte for byte for the same input', () => {
    const cib = cluster({
      nodes: ['n1', 'n2', 'n3'],
      resources: [group('g', [primitive('a'), primitive('b')]), clone('c', primitive('p')), primitive('x')],
      constraints: [colocation('x-with-g', 'x', 'g', '100'), order('g-then-x', 'g', 'x')],
    });
    assert.equal(JSON.stringify(run(cib)), JSON.stringify(run(cib)));
  });

  it('probes resources on nodes where they have no history, before starting them', () => {
    const cib = cluster({ nodes: ['n1', 'n2'], resources: [primitive('a', { monitorInterval: '10s' })] });
    const t = run(cib);
    const probes = t.actions.filter((a) => a.probe);
    assert.deepEqual(probes.map((a) => a.node).sort(), ['n1', 'n2']);
    const start = t.actions.find((a) => a.task === 'start')!;
    const monitor = t.actions.find((a) => a.task === 'monitor' && a.intervalMs === 10000)!;
    assert.equal(monitor.node, start.node);
    assert.ok(t.actions.indexOf(start) < t.actions.indexOf(monitor));
  });
  it('fences every node of a partition that lost quorum under no-quorum-policy suicide', () => {
    const base = cluster({
      nodes: ['n1', 'n2'],
      props: { 'stonith-enabled': 'true', 'no-quorum-policy': 'suicide' },
      quorum: false,
      resources: [primitive('fencing', { cls: 'stonith', type: 'fence_dummy' })],
    });
    const lost = { ...base, attrs: [...base.attrs, ['no-quorum-panic', '1'] as const] };
    assert.deepEqual(summary(lost), [
      "* Fence (reboot) n2 'cluster does not have quorum'",
      "* Fence (reboot) n1 'cluster does not have quorum'",
    ]);
    // A partition that never had quorum waits instead.
    assert.deepEqual(summary(base), ['* Start fencing ( n1 ) due to no quorum (blocked)']);
  });

  it('moves, not recovers, a resource whose failure was recorded on a node being fenced', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      props: { 'stonith-enabled': 'true' },
      resources: [primitive('a')],
      status: [
        nodeState('n1', { lost: true, history: [started('a', { monitorFailed: true })] }),
        nodeState('n2'),
      ],
    });
    assert.deepEqual(summary(cib), [
      "* Fence (reboot) n1 'peer is no longer part of the cluster'",
      '* Move a ( n1 -> n2 )',
    ]);
  });

  it('leaves resources on a down node in maintenance alone and does not fence it', () => {
    const cib = cluster({
      nodes: [{ name: 'n1', attrs: { maintenance: 'on' } }, 'n2'],
      props: { 'stonith-enabled': 'true' },
      resources: [primitive('a')],
      status: [nodeState('n1', { online: false, history: [started('a')] }), nodeState('n2')],
    });
    assert.deepEqual(summary(cib), []);
  });

  it('shows a move that cannot happen as a blocked stop, as crm_simulate does', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      props: { 'stonith-enabled': 'true', 'no-quorum-policy': 'freeze' },
      quorum: false,
      resources: [primitive('a')],
      status: [nodeState('n1', { lost: true, history: [started('a')] }), nodeState('n2')],
    });
    assert.deepEqual(summary(cib), ['* Stop a ( n1 ) blocked']);
  });
  it('keeps a resource with its node under shutdown-lock until the lock expires', () => {
    // What a clean shutdown leaves in the history: started, then stopped.
    const stoppedAfterRunning = (rsc: string) => {
      const h = started(rsc);
      const stop = { ...h.ops[1]!, id: `${rsc}_stop_0`, operation: 'stop', callId: '3' };
      return { ...h, ops: [...h.ops, stop] };
    };
    const locked = (limit: string | undefined, since: number) =>
      cluster({
        nodes: ['n1', 'n2'],
        props: {
          'stonith-enabled': 'true',
          'shutdown-lock': 'true',
          ...(limit ? { 'shutdown-lock-limit': limit } : {}),
        },
        resources: [primitive('a')],
        status: [
          nodeState('n1', {
            online: false,
            history: [{ ...stoppedAfterRunning('a'), attrs: { 'shutdown-lock': String(since) } }],
          }),
          nodeState('n2'),
        ],
      });
    // Locked to n1, which is down: a stays stopped rather than starting on n2.
    assert.deepEqual(summary(locked(undefined, NOW / 1000 - 3600)), []);
    // A lock older than shutdown-lock-limit no longer holds.
    assert.deepEqual(summary(locked('5m', NOW / 1000 - 3600)), ['* Start a ( n2 )']);
    assert.deepEqual(summary(locked('2h', NOW / 1000 - 3600)), []);
  });

  it('stops, rather than moves, what runs on a node shutting down under shutdown-lock', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      props: { 'shutdown-lock': 'true' },
      resources: [primitive('a')],
      status: [
        nodeState('n1', { attrs: { shutdown: '1767225600' }, history: [started('a')] }),
        nodeState('n2'),
      ],
    });
    assert.deepEqual(summary(cib), ['* Stop a ( n1 ) due to node availability']);
  });

  it('places a dependent of a cloned group where a partly placed instance is, but starts it only once one is complete', () => {
    // m2 is disabled, so no instance of cl is ever fully up: vm goes where an instance has its
    // placed members (Pacemaker's instance location), and its start waits for "cl running".
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [
        clone('cl', group('g', [primitive('m1'), primitive('m2', { meta: { 'target-role': 'Stopped' } })])),
        primitive('vm'),
      ],
      constraints: [colocation('vm-with-cl', 'vm', 'cl', 'INFINITY'), order('cl-then-vm', 'cl', 'vm')],
    });
    assert.deepEqual(summary(cib), [
      '* Start m1:0 ( n1 )',
      '* Start m1:1 ( n2 )',
      '* Start vm ( n1 ) due to unrunnable cl running (blocked)',
    ]);
  });

  it('places the primaries of mandatory colocations before those of optional ones', () => {
    // d goes first (priority); its mandatory primary p-lo takes a node before the higher-priority
    // optional one, and each node has room for only one of them, so d stays with p-lo. (The
    // optional colocation has no influence, so d's preferences do not pull p-hi either way.)
    const cpu1 = { cpu: '1' };
    const cib = cluster({
      nodes: [
        { name: 'n1', utilization: cpu1 },
        { name: 'n2', utilization: cpu1 },
      ],
      props: { 'placement-strategy': 'utilization' },
      resources: [
        primitive('d', { meta: { priority: '100' } }),
        primitive('p-hi', { meta: { priority: '10' }, utilization: cpu1 }),
        primitive('p-lo', { utilization: cpu1 }),
      ],
      constraints: [
        colocation('d-with-hi', 'd', 'p-hi', '4000', { influence: 'false' }),
        colocation('d-with-lo', 'd', 'p-lo', 'INFINITY'),
      ],
    });
    assert.deepEqual(summary(cib), ['* Start d ( n1 )', '* Start p-hi ( n2 )', '* Start p-lo ( n1 )']);
  });

  it('promotes a healthy instance rather than a failed one with the same promotion score', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [clone('ms', primitive('st', { monitorInterval: '10s' }), { promotable: 'true' })],
      status: [
        nodeState('n1', { attrs: { 'master-st': '5' }, history: [started('st', { monitorFailed: true })] }),
        nodeState('n2', { attrs: { 'master-st': '5' }, history: [started('st')] }),
      ],
    });
    assert.deepEqual(summary(cib), [
      '* Recover st:0 ( Unpromoted n1 )',
      '* Promote st:1 ( Unpromoted -> Promoted n2 )',
    ]);
  });
});
