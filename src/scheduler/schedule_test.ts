import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Cib, OpHistory, Resource, ResourceHistory } from '../cib/model.ts';
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

/** A fence_dummy device's history: started. */
const fenceStarted: ResourceHistory = {
  id: 'fence',
  class: 'stonith',
  type: 'fence_dummy',
  ops: started('fence').ops,
};

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

  it('takes a start the controller expected to find the resource not running as a stop', () => {
    // Some controllers record a probe as a start expected to return 7: a rc 7 there, as
    // expected, says the resource is stopped on that node, not that it runs there too.
    const notRunning: OpHistory = {
      id: 'a_last_0',
      operation: 'start',
      interval: '0',
      callId: '3',
      rcCode: '7',
      opStatus: '0',
      transitionKey: '1:1:7:test',
    };
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [primitive('a')],
      status: [
        nodeState('n1', { history: [started('a')] }),
        nodeState('n2', {
          history: [{ id: 'a', class: 'ocf', provider: 'heartbeat', type: 'Dummy', ops: [notRunning] }],
        }),
      ],
    });
    assert.deepEqual(summary(cib), []);
  });

  it('starts a new clone instance rather than move one stuck on a lost node it is banned from', () => {
    // c:0 failed on n2, which is lost and banned for it (fail count INFINITY): the free
    // instance c:1 is placed first and takes n1, and c:0 goes with n2's fencing.
    const cib = cluster({
      nodes: ['n1', 'n2'],
      props: { 'stonith-enabled': 'true' },
      resources: [primitive('fence', { cls: 'stonith', type: 'fence_dummy' }), clone('cl', primitive('c'))],
      constraints: [location('fence-n1', 'fence', 'n1', 'INFINITY')],
      status: [
        nodeState('n1', { history: [fenceStarted] }),
        nodeState('n2', {
          lost: true,
          attrs: { 'fail-count-c': 'INFINITY' },
          history: [started('c', { monitorFailed: true })],
        }),
      ],
    });
    assert.deepEqual(summary(cib), [
      "* Fence (reboot) n2 'peer is no longer part of the cluster'",
      '* Stop c:0 ( n2 ) due to node availability',
      '* Start c:1 ( n1 )',
    ]);
  });

  it('schedules nothing for a resource whose agent is missing on a lost node that cannot be fenced', () => {
    // Without quorum n2 (outside the partition) cannot be fenced, and a's stop failed there
    // as "not installed": no stop can work, so a is left blocked on n2.
    const stopNotInstalled: OpHistory = {
      id: 'a_last_failure_0',
      operation: 'stop',
      interval: '0',
      callId: '3',
      rcCode: '5',
      opStatus: '0',
      transitionKey: '1:1:0:test',
    };
    const history: ResourceHistory = { ...started('a'), ops: [...started('a').ops, stopNotInstalled] };
    const cib = cluster({
      nodes: ['n1', 'n2', 'n3'],
      quorum: false,
      props: { 'stonith-enabled': 'true' },
      resources: [primitive('fence', { cls: 'stonith', type: 'fence_dummy' }), primitive('a')],
      constraints: [location('fence-n1', 'fence', 'n1', 'INFINITY')],
      status: [
        nodeState('n1', { history: [fenceStarted] }),
        nodeState('n2', { lost: true, history: [history] }),
      ],
    });
    assert.ok(!summary(cib).some((l) => l.includes(' a ')), summary(cib).join('\n'));
  });

  it('restarts a restart-type=restart resource when an optional order makes its stop required', () => {
    // first=mover stop, then=r3 stop, optional: legacy restart-type=restart on r3 upgrades the
    // order, so mover leaving n1 stops r3 too, which stays on n2 and starts again.
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [primitive('mover'), primitive('r3', { meta: { 'restart-type': 'restart' } })],
      constraints: [
        location('mover-n2', 'mover', 'n2', 'INFINITY'),
        location('r3-n2', 'r3', 'n2', 'INFINITY'),
        order('o', 'mover', 'r3', { orderKind: 'Optional', firstAction: 'stop', thenAction: 'stop' }),
      ],
      status: [
        nodeState('n1', { history: [started('mover')] }),
        nodeState('n2', { history: [started('r3')] }),
      ],
    });
    assert.deepEqual(summary(cib), ['* Move mover ( n1 -> n2 )', '* Restart r3 ( n2 )']);
  });

  it('colocates each member of a listed colocation set with the one after it', () => {
    // ordering=listed reverses a set's chain: a depends on b, b on c. b is stopped, so a
    // cannot run and c can; with the default (group) ordering it is the other way round.
    const set = (ordering?: string) =>
      cluster({
        nodes: ['n1'],
        resources: [primitive('a'), primitive('b', { meta: { 'target-role': 'Stopped' } }), primitive('c')],
        constraints: [
          {
            kind: 'rsc_colocation',
            id: 'abc',
            score: 'INFINITY',
            sets: [{ id: 'abc-set', resources: ['a', 'b', 'c'], ...(ordering ? { ordering } : {}) }],
          },
        ],
      });
    assert.deepEqual(summary(set('listed')), ['* Start c ( n1 )']);
    assert.deepEqual(summary(set()), ['* Start a ( n1 )']);
  });

  it('ignores a colocation between two templates, as Pacemaker does', () => {
    const template = (id: string): Resource => ({ ...primitive(id), kind: 'template' });
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [
        template('t1'),
        template('t2'),
        { ...primitive('a'), template: 't1' },
        { ...primitive('b'), template: 't2' },
      ],
      constraints: [colocation('t1-with-t2', 't1', 't2', 'INFINITY')],
    });
    assert.deepEqual(summary(cib), ['* Start a ( n1 )', '* Start b ( n2 )']);
  });

  it('keeps a multiply active clone instance on its first node, ahead of one whose node leaves', () => {
    // c:0 runs on n1 and n2 (multiply active), c:1 on n3, which is shutting down. c:0 stays on
    // n1 (its copy on n2 stops) and c:1 takes n2.
    const cib = cluster({
      nodes: ['n1', 'n2', 'n3'],
      resources: [clone('cl', primitive('c'), { 'clone-max': '2', 'globally-unique': 'true' })],
      status: [
        nodeState('n1', { history: [started('c:0')] }),
        nodeState('n2', { history: [started('c:0')] }),
        nodeState('n3', { attrs: { shutdown: '1234' }, history: [started('c:1')] }),
      ],
    });
    assert.deepEqual(summary(cib), ['* Restart c:0 ( n1 )', '* Move c:1 ( n3 -> n2 )']);
  });

  it('names node availability for a resource stuck on a lost node it has nowhere else to go from', () => {
    // n1 is lost and cannot be fenced without quorum; x is banned from n2, so its stop is
    // for lack of a node, and blocked.
    const cib = cluster({
      nodes: ['n1', 'n2'],
      quorum: false,
      props: { 'stonith-enabled': 'true', 'no-quorum-policy': 'freeze' },
      resources: [primitive('fence', { cls: 'stonith', type: 'fence_dummy' }), primitive('x')],
      constraints: [
        location('x-not-n2', 'x', 'n2', '-INFINITY'),
        location('fence-n2', 'fence', 'n2', 'INFINITY'),
      ],
      status: [
        nodeState('n1', { lost: true, history: [started('x')] }),
        nodeState('n2', { history: [fenceStarted] }),
      ],
    });
    assert.deepEqual(summary(cib), ['* Stop x ( n1 ) due to node availability (blocked)']);
  });

  it('promotes nothing without quorum under no-quorum-policy=freeze', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      quorum: false,
      props: { 'no-quorum-policy': 'freeze' },
      resources: [clone('ms', primitive('st'), { promotable: 'true' })],
      status: [
        nodeState('n1', { attrs: { 'master-st': '10' }, history: [started('st')] }),
        nodeState('n2', { attrs: { 'master-st': '5' }, history: [started('st')] }),
      ],
    });
    assert.deepEqual(summary(cib), []);
  });

  it('places a resource colocated with a promoted role of a clone that has no roles by its instances', () => {
    // cl is not promotable: "with cl Promoted" means wherever an instance of cl runs.
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [primitive('ip'), clone('cl', primitive('c'))],
      constraints: [
        colocation('ip-with-cl', 'ip', 'cl', 'INFINITY', { rscRole: 'Started', withRscRole: 'Promoted' }),
      ],
      status: [
        nodeState('n1', { history: [started('c'), started('ip')] }),
        nodeState('n2', { history: [started('c')] }),
      ],
    });
    assert.deepEqual(summary(cib), []);
  });

  it('names the member before for later members of a cloned group an order stops', () => {
    // q-cl stops, so a-cl (after it) cannot run and stops, and the cloned group after a-cl is
    // required to stop: its first member for the order, the second with the first's stop, the
    // third after the second (as crm_simulate words it).
    const cib = cluster({
      nodes: ['n1'],
      resources: [
        clone('q-cl', primitive('q'), { 'target-role': 'Stopped' }),
        clone('a-cl', primitive('a')),
        clone('g-cl', group('g', [primitive('m1'), primitive('m2'), primitive('m3')])),
      ],
      constraints: [order('q-then-a', 'q-cl', 'a-cl'), order('a-then-g', 'a-cl', 'g-cl')],
      status: [
        nodeState('n1', {
          history: [started('q'), started('a'), started('m1'), started('m2'), started('m3')],
        }),
      ],
    });
    assert.deepEqual(summary(cib), [
      '* Stop q:0 ( n1 ) due to node availability',
      '* Stop a:0 ( n1 ) due to unrunnable q-cl running',
      '* Stop m1:0 ( n1 ) due to required a-cl running',
      '* Stop m2:0 ( n1 ) due to required m1:0 stop',
      '* Stop m3:0 ( n1 ) due to required m2:0 start',
    ]);
  });

  it("does not promote a new instance without a promotion score for its dependents' sake", () => {
    // app wants n1 and must run with the promoted instance, but no instance has a promotion
    // score yet (the agent sets one once running): nothing is promoted, app waits.
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [clone('ms', primitive('st'), { promotable: 'true' }), primitive('app')],
      constraints: [
        colocation('app-with-ms', 'app', 'ms', 'INFINITY', { withRscRole: 'Promoted' }),
        location('app-n1', 'app', 'n1', '100'),
      ],
    });
    assert.deepEqual(summary(cib), ['* Start st:0 ( n1 )', '* Start st:1 ( n2 )']);
  });
});
