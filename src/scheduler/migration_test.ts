import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OpHistory, ResourceHistory } from '../cib/model.ts';
import { schedule, type Transition } from './schedule.ts';
import {
  clone,
  cluster,
  colocation,
  group,
  location,
  nodeState,
  order,
  primitive,
  started,
} from './testing.ts';

const NOW = Date.UTC(2026, 0, 1);

function run(...args: Parameters<typeof cluster>): Transition {
  const r = schedule(cluster(...args), NOW);
  if (!r.ok) assert.fail(r.message);
  return r.transition;
}

const squash = (lines: readonly string[]): string[] => lines.map((l) => l.replace(/\s+/g, ' ').trim());

/** One history entry; `changedSec` is its last-rc-change time. */
function op(
  rsc: string,
  operation: string,
  callId: number,
  rc: number,
  changedSec: number,
  attrs?: Record<string, string>,
): OpHistory {
  return {
    id: `${rsc}_${operation}_0`,
    operation,
    interval: '0',
    callId: String(callId),
    rcCode: String(rc),
    opStatus: '0',
    lastRcChange: String(changedSec),
    transitionKey: `1:1:${operation === 'monitor' ? 7 : 0}:test`,
    ...(attrs ? { attrs } : {}),
  };
}

function history(rsc: string, ops: OpHistory[]): ResourceHistory {
  return { id: rsc, class: 'ocf', provider: 'heartbeat', type: 'Dummy', ops };
}

/** vm ran on n2 and its live migration to n1 failed on n2. */
function failedMigration(targetOps: OpHistory[]): Parameters<typeof cluster>[0] {
  const migrate = { migrate_source: 'n2', migrate_target: 'n1' };
  return {
    nodes: ['n1', 'n2'],
    resources: [primitive('vm', { meta: { 'allow-migrate': 'true' } })],
    status: [
      nodeState('n2', {
        history: [
          history('vm', [
            op('vm', 'monitor', 1, 7, 100),
            op('vm', 'start', 2, 0, 110),
            op('vm', 'migrate_to', 3, 1, 200, migrate),
          ]),
        ],
      }),
      nodeState('n1', { history: [history('vm', targetOps)] }),
    ],
  };
}

describe('live migration history', () => {
  it('takes a resource whose migrate_to failed as active on the target too, and stops both copies', () => {
    const t = run(failedMigration([op('vm', 'monitor', 1, 7, 100)]));
    // The target is listed first, so the resource is recovered there.
    assert.deepEqual(squash(t.summary), ['* Recover vm ( n1 )']);
    assert.deepEqual(squash(t.executed), [
      '* Resource action: vm stop on n1',
      '* Resource action: vm stop on n2',
      '* Resource action: vm start on n1',
    ]);
  });

  it('only starts again on the target a resource whose failed migration was followed by a clean stop on the source', () => {
    // The stop on n2 ended the failure there; the resource may still be half-arrived on n1,
    // so it is started there again: a start alone, listed as a restart (not a recovery).
    const migrate = { migrate_source: 'n2', migrate_target: 'n1' };
    const t = run({
      nodes: ['n1', 'n2'],
      resources: [primitive('vm', { meta: { 'allow-migrate': 'true' } })],
      status: [
        nodeState('n2', {
          history: [
            history('vm', [
              op('vm', 'monitor', 1, 7, 100),
              op('vm', 'start', 2, 0, 110),
              op('vm', 'migrate_to', 3, 1, 200, migrate),
              op('vm', 'stop', 4, 0, 210),
            ]),
          ],
        }),
        nodeState('n1', { history: [history('vm', [op('vm', 'monitor', 1, 7, 100)])] }),
      ],
    });
    assert.deepEqual(squash(t.summary), ['* Restart vm ( n1 )']);
    assert.deepEqual(squash(t.executed), ['* Resource action: vm start on n1']);
  });

  it('ignores the failed migration on a target that has stopped the resource since', () => {
    const t = run(failedMigration([op('vm', 'monitor', 1, 7, 100), op('vm', 'stop', 2, 0, 300)]));
    assert.deepEqual(squash(t.summary), ['* Recover vm ( n2 )']);
  });
});

describe('multiply active resources', () => {
  it('are stopped on every node they run on before they start again', () => {
    const t = run({
      nodes: ['n1', 'n2'],
      resources: [primitive('a')],
      status: [nodeState('n1', { history: [started('a')] }), nodeState('n2', { history: [started('a')] })],
    });
    assert.deepEqual(squash(t.summary), ['* Restart a ( n1 )']);
    assert.deepEqual(squash(t.executed), [
      '* Resource action: a stop on n1',
      '* Resource action: a stop on n2',
      '* Resource action: a start on n1',
    ]);
  });
});

describe('live migration and orders', () => {
  const migratable = (id: string) => primitive(id, { meta: { 'allow-migrate': 'true' } });

  it('moves a resource the plain way when it is ordered after one that really stops', () => {
    const t = run({
      nodes: ['n1', 'n2'],
      resources: [primitive('A'), migratable('B')],
      constraints: [
        order('A-then-B', 'A', 'B'),
        location('A-on-n2', 'A', 'n2', 'INFINITY'),
        location('B-on-n1', 'B', 'n1', 'INFINITY'),
      ],
      status: [nodeState('n1', { history: [started('A')] }), nodeState('n2', { history: [started('B')] })],
    });
    assert.deepEqual(squash(t.summary), [
      '* Move A ( n1 -> n2 )',
      '* Move B ( n2 -> n1 ) due to unrunnable A stop',
    ]);
  });

  it('migrates after a clone that only stops an instance, but not after one whose instance moves', () => {
    const withClone = (cloneMax: string, onN2: boolean) =>
      run({
        nodes: ['n1', 'n2'],
        resources: [clone('cl', primitive('c'), { 'clone-max': cloneMax }), migratable('vm')],
        constraints: [
          location('cl-not-n1', 'cl', 'n1', '-INFINITY'),
          colocation('vm-with-cl', 'vm', 'cl', 'INFINITY'),
          order('cl-then-vm', 'cl', 'vm'),
        ],
        status: [
          nodeState('n1', { history: [started('c'), started('vm')] }),
          ...(onN2 ? [nodeState('n2', { history: [started('c')] })] : []),
        ],
      });
    assert.deepEqual(squash(withClone('2', true).summary), [
      '* Stop c:0 ( n1 ) due to node availability',
      '* Migrate vm ( n1 -> n2 )',
    ]);
    assert.deepEqual(squash(withClone('1', false).summary), [
      '* Move c:0 ( n1 -> n2 )',
      '* Move vm ( n1 -> n2 ) due to unrunnable cl stop',
    ]);
  });

  it('lets group members migrate only up to the first one that cannot', () => {
    const t = run({
      nodes: ['n1', 'n2'],
      resources: [group('g', [migratable('A'), primitive('B'), migratable('C')])],
      constraints: [location('g-on-n2', 'g', 'n2', 'INFINITY')],
      status: [nodeState('n1', { history: [started('A'), started('B'), started('C')] })],
    });
    assert.deepEqual(squash(t.summary), [
      '* Migrate A ( n1 -> n2 )',
      '* Move B ( n1 -> n2 )',
      '* Move C ( n1 -> n2 ) due to unrunnable B stop',
    ]);
  });

  it('says a resource that was to move stops because its first cannot start', () => {
    const t = run({
      nodes: ['n1', 'n2'],
      resources: [primitive('A', { meta: { 'target-role': 'Stopped' } }), migratable('B')],
      constraints: [order('A-then-B', 'A', 'B'), location('B-on-n1', 'B', 'n1', 'INFINITY')],
      status: [nodeState('n1', { history: [started('A')] }), nodeState('n2', { history: [started('B')] })],
    });
    assert.deepEqual(squash(t.summary), [
      '* Stop A ( n1 ) due to node availability',
      '* Stop B ( n2 ) due to unrunnable A start',
    ]);
  });
});

describe('partial live migrations', () => {
  const migrate = { migrate_source: 'n2', migrate_target: 'n1' };
  const prefersN1 = location('vm-prefers-n1', 'vm', 'n1', '10');
  /** vm ran on n2; migrate_to n1 succeeded there, followed by `more` on n2. */
  function partial(
    targetOps: OpHistory[],
    o: { more?: OpHistory[]; nodes?: string[]; extra?: Partial<Parameters<typeof cluster>[0]> } = {},
  ): Parameters<typeof cluster>[0] {
    return {
      nodes: o.nodes ?? ['n1', 'n2'],
      resources: [primitive('vm', { meta: { 'allow-migrate': 'true' } })],
      status: [
        nodeState('n2', {
          history: [
            history('vm', [
              op('vm', 'monitor', 1, 7, 100),
              op('vm', 'start', 2, 0, 110),
              op('vm', 'migrate_to', 3, 0, 200, migrate),
              ...(o.more ?? []),
            ]),
          ],
        }),
        nodeState('n1', { history: [history('vm', targetOps)] }),
      ],
      ...o.extra,
    };
  }

  it('finishes a migration that stopped after migrate_to when the target is chosen again', () => {
    const t = run(partial([op('vm', 'monitor', 1, 7, 100)]));
    assert.deepEqual(squash(t.summary), ['* Migrate vm ( n2 -> n1 )']);
    // It already runs on n1: only the source is left to stop.
    assert.deepEqual(squash(t.executed), ['* Resource action: vm stop on n2']);
  });

  it('recovers, rather than migrates, when migrate_from failed on the target', () => {
    const t = run(
      partial(
        [
          op('vm', 'monitor', 1, 7, 100),
          op('vm', 'migrate_from', 2, 1, 210, migrate),
          op('vm', 'stop', 3, 0, 220),
        ],
        { extra: { constraints: [prefersN1] } },
      ),
    );
    assert.deepEqual(squash(t.summary), ['* Recover vm ( n2 -> n1 )']);
  });

  it('recovers, rather than migrates, when the target of the migration is down', () => {
    const t = run({
      ...partial([]),
      nodes: ['n1', 'n2', 'n3'],
      status: [
        nodeState('n2', {
          history: [
            history('vm', [
              op('vm', 'monitor', 1, 7, 100),
              op('vm', 'start', 2, 0, 110),
              op('vm', 'migrate_to', 3, 0, 200, { migrate_source: 'n2', migrate_target: 'n3' }),
            ]),
          ],
        }),
        nodeState('n3', { online: false }),
      ],
      constraints: [prefersN1],
    });
    assert.deepEqual(squash(t.summary), ['* Recover vm ( n2 -> n1 )']);
  });

  it('moves the plain way when a node other than the target is chosen', () => {
    // The source stopped after migrate_to, so the resource runs only on the target now.
    const t = run(
      partial([op('vm', 'monitor', 1, 7, 100)], {
        more: [op('vm', 'stop', 4, 0, 210)],
        extra: { constraints: [location('vm-on-n2', 'vm', 'n2', 'INFINITY')] },
      }),
    );
    assert.deepEqual(squash(t.summary), ['* Move vm ( n1 -> n2 )']);
  });
});

describe('dangling migrations', () => {
  it('stops the never-stopped source of a finished migration and moves rather than migrates', () => {
    // vm migrated from n1 to n2 (migrate_to and migrate_from succeeded) but n1 was never
    // stopped. n1 gets its stop now, and vm, moving on to n3, goes by stop and start.
    const migrate = { migrate_source: 'n1', migrate_target: 'n2' };
    const t = run({
      nodes: ['n1', 'n2', 'n3'],
      resources: [primitive('vm', { meta: { 'allow-migrate': 'true' } })],
      constraints: [location('vm-n3', 'vm', 'n3', 'INFINITY')],
      status: [
        nodeState('n1', {
          history: [
            history('vm', [
              op('vm', 'monitor', 1, 7, 100),
              op('vm', 'start', 2, 0, 110),
              op('vm', 'migrate_to', 3, 0, 200, migrate),
            ]),
          ],
        }),
        nodeState('n2', { history: [history('vm', [op('vm', 'migrate_from', 4, 0, 210, migrate)])] }),
      ],
    });
    assert.deepEqual(squash(t.summary), ['* Move vm ( n2 -> n3 )']);
    assert.deepEqual(
      squash(t.executed).filter((l) => !l.includes('monitor')),
      [
        '* Resource action: vm stop on n1',
        '* Resource action: vm stop on n2',
        '* Resource action: vm start on n3',
      ],
    );
  });
});
