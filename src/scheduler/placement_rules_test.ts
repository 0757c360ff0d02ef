import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Cib } from '../cib/model.ts';
import { schedule } from './schedule.ts';
import { clone, cluster, colocation, group, nodeState, order, primitive, started } from './testing.ts';

const NOW = Date.UTC(2026, 0, 1);

function summary(cib: Cib): string[] {
  const r = schedule(cib, NOW);
  if (!r.ok) assert.fail(r.message);
  return r.transition.summary.map((l) => l.replace(/\s+/g, ' ').trim());
}

describe('placement rules', () => {
  it('spreads clone instances that all run on one node when nothing keeps them there', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [
        clone('c', primitive('p'), {
          'globally-unique': 'true',
          'clone-max': '2',
          'clone-node-max': '2',
          'resource-stickiness': '0',
        }),
      ],
      status: [nodeState('n1', { history: [started('p:0'), started('p:1')] })],
    });
    assert.deepEqual(summary(cib), ['* Move p:1 ( n1 -> n2 )']);
  });

  it('bans an anonymous clone from a node where any instance reached migration-threshold', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      rscDefaults: { 'migration-threshold': '1' },
      resources: [clone('c', primitive('p'), { 'clone-max': '2' })],
      status: [
        // The count was written under another instance's name; no instance runs on n2.
        nodeState('n2', { attrs: { 'fail-count-p:1': '1' } }),
      ],
    });
    assert.deepEqual(summary(cib), ['* Start p:0 ( n1 )']);
  });

  it('under no-quorum-policy=freeze lets running resources move but starts nothing new', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      quorum: false,
      props: { 'no-quorum-policy': 'freeze' },
      resources: [primitive('a'), primitive('b'), primitive('c')],
      status: [nodeState('n1', { history: [started('a'), started('b')] })],
    });
    assert.deepEqual(summary(cib), [
      '* Move b ( n1 -> n2 )',
      '* Start c ( n1 ) due to quorum freeze (blocked)',
    ]);
  });

  it('stops a group member left behind by a member that is not managed and stopped', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [
        group('g', [primitive('a'), primitive('b', { meta: { 'is-managed': 'false' } }), primitive('c')]),
      ],
      status: [nodeState('n1', { history: [started('a'), started('c')] })],
    });
    assert.deepEqual(summary(cib), ['* Stop c ( n1 ) due to node availability']);
  });

  it('takes a dependent down with a primary that an order keeps from running', () => {
    const cib = cluster({
      nodes: ['n1'],
      resources: [
        primitive('base', { meta: { 'target-role': 'Stopped' } }),
        primitive('central'),
        primitive('engine'),
      ],
      constraints: [order('o', 'base', 'central'), colocation('col', 'engine', 'central', 'INFINITY')],
      status: [nodeState('n1', { history: [started('central'), started('engine')] })],
    });
    assert.deepEqual(summary(cib), [
      '* Stop central ( n1 ) due to unrunnable base start',
      '* Stop engine ( n1 ) due to colocation with central',
    ]);
  });
});
