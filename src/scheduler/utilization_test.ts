import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Cib, Primitive } from '../cib/model.ts';
import { schedule } from './schedule.ts';
import { clone, cluster, colocation, group, location, nodeState, primitive, started } from './testing.ts';

/**
 * Utilization and placement strategies (Pacemaker's "Utilization and Placement Strategy"):
 * which nodes have room, which node is preferred, and the order resources claim room in.
 */
const NOW = Date.UTC(2026, 0, 1);

function summary(cib: Cib): string[] {
  const r = schedule(cib, NOW);
  if (!r.ok) assert.fail(r.message);
  return r.transition.summary.map((l) => l.replace(/\s+/g, ' ').trim());
}

function cpu(id: string, n: number, meta: Record<string, string> = {}): Primitive {
  return primitive(id, { utilization: { cpu: String(n) }, meta });
}

function nodesWithCpu(...caps: number[]): { name: string; utilization: Record<string, string> }[] {
  return caps.map((c, i) => ({ name: `n${i + 1}`, utilization: { cpu: String(c) } }));
}

describe('utilization', () => {
  it('takes the first value of a utilization attribute over several sets, not their sum', () => {
    // As with a template: the primitive's own set comes first and overrides the template's.
    const base = cpu('a', 1);
    const a: Primitive = {
      ...base,
      utilization: [
        ...base.utilization,
        { kind: 'utilization', id: 'tmpl-util', pairs: [{ id: 'tmpl-util-cpu', name: 'cpu', value: '2' }] },
      ],
    };
    const cib = cluster({
      nodes: nodesWithCpu(1),
      props: { 'placement-strategy': 'utilization' },
      resources: [a],
    });
    assert.deepEqual(summary(cib), ['* Start a ( n1 )']);
  });

  it('spreads by resource count, not free capacity, under placement-strategy=utilization', () => {
    const cib = cluster({
      nodes: nodesWithCpu(4, 8),
      props: { 'placement-strategy': 'utilization' },
      resources: [cpu('a', 1), cpu('b', 1)],
    });
    assert.deepEqual(summary(cib), ['* Start a ( n1 )', '* Start b ( n2 )']);
  });

  it('under balanced prefers the node ahead in more capacities, not the larger sum', () => {
    const cib = cluster({
      nodes: [
        { name: 'n1', utilization: { cpu: '100', memory: '1', disk: '1' } },
        { name: 'n2', utilization: { cpu: '1', memory: '2', disk: '2' } },
      ],
      props: { 'placement-strategy': 'balanced' },
      resources: [primitive('a', { utilization: { cpu: '1' } })],
    });
    assert.deepEqual(summary(cib), ['* Start a ( n2 )']);
  });

  it('does not place a resource where its mandatory dependents would not fit with it', () => {
    // rsc1 prefers n2, but n2 cannot hold rsc1, rsc2 and rsc3 together; n1 can.
    const cib = cluster({
      nodes: nodesWithCpu(6, 4),
      props: { 'placement-strategy': 'utilization' },
      resources: [cpu('rsc1', 2), cpu('rsc2', 2), cpu('rsc3', 2)],
      constraints: [
        location('rsc1-prefers-n2', 'rsc1', 'n2', '10'),
        colocation('rsc2-with-rsc1', 'rsc2', 'rsc1', 'INFINITY'),
        colocation('rsc3-with-rsc1', 'rsc3', 'rsc1', 'INFINITY'),
      ],
    });
    assert.deepEqual(summary(cib), ['* Start rsc1 ( n1 )', '* Start rsc2 ( n1 )', '* Start rsc3 ( n1 )']);
  });

  it('stops a clone instance whose node no longer has room for it', () => {
    const cib = cluster({
      nodes: nodesWithCpu(2, 2),
      props: { 'placement-strategy': 'utilization' },
      resources: [cpu('big', 2, { priority: '10' }), clone('c', cpu('p', 1), { 'clone-max': '2' })],
      status: [nodeState('n1', { history: [started('p')] }), nodeState('n2', { history: [started('p')] })],
    });
    const s = summary(cib);
    assert.equal(s.length, 2, s.join('\n'));
    assert.match(s[0]!, /^\* Start big \( n1 \)$/);
    assert.match(s[1]!, /^\* Stop p:\d \( n1 \) due to node availability$/);
  });

  it('lets resources that can stay claim room before one that has to move', () => {
    // a can't stay on n1 (its mandatory partner is banned there), so b keeps n2 and a goes to n3.
    const cib = cluster({
      nodes: nodesWithCpu(1, 1, 1),
      props: { 'placement-strategy': 'utilization' },
      rscDefaults: { 'resource-stickiness': 'INFINITY' },
      resources: [cpu('a', 1), cpu('b', 1), clone('c', primitive('p'))],
      constraints: [
        location('c-not-n1', 'c', 'n1', '-INFINITY'),
        colocation('a-with-c', 'a', 'c', 'INFINITY'),
      ],
      status: [
        nodeState('n1', { history: [started('a')] }),
        nodeState('n2', { history: [started('b'), started('p')] }),
        nodeState('n3', { history: [started('p')] }),
      ],
    });
    assert.deepEqual(summary(cib), ['* Move a ( n1 -> n3 )']);
  });

  it('orders by capacity first under balanced, so the node with room is tried first', () => {
    // Both keep their node by stickiness; rsc2 on the only node with capacity goes first and
    // keeps it, so rsc1 (on a node with none) stops instead of taking rsc2's place.
    const cib = cluster({
      nodes: nodesWithCpu(0, 1),
      props: { 'placement-strategy': 'balanced' },
      rscDefaults: { 'resource-stickiness': '100' },
      resources: [cpu('rsc1', 1), cpu('rsc2', 1)],
      status: [
        nodeState('n1', { history: [started('rsc1')] }),
        nodeState('n2', { history: [started('rsc2')] }),
      ],
    });
    assert.deepEqual(summary(cib), ['* Stop rsc1 ( n1 ) due to node availability']);
  });

  it('judges a resource on a node that left by its own stickiness there, not by the node being gone', () => {
    // n3 is gone: d (sticky, no colocation) goes before the clone, and v (colocated with the
    // clone, which can't run on n3) after it, whatever the configuration order.
    const cib = cluster({
      nodes: ['n1', 'n2', 'n3'],
      props: { 'placement-strategy': 'balanced', 'stonith-enabled': 'true' },
      rscDefaults: { 'resource-stickiness': '1' },
      resources: [clone('c', primitive('p')), primitive('v'), primitive('d')],
      constraints: [colocation('v-with-c', 'v', 'c', 'INFINITY')],
      status: [
        nodeState('n1', { history: [started('p')] }),
        nodeState('n2', { history: [started('p')] }),
        nodeState('n3', { lost: true, history: [started('p'), started('v'), started('d')] }),
      ],
    });
    const s = summary(cib);
    const at = (re: RegExp): number => s.findIndex((l) => re.test(l));
    assert.ok(at(/ d /) >= 0 && at(/ p:/) >= 0 && at(/ v /) >= 0, s.join('\n'));
    assert.ok(at(/ d /) < at(/ p:/) && at(/ p:/) < at(/ v /), s.join('\n'));
  });

  it('assigns a group’s primaries highest priority first, so that one gets the room', () => {
    const cib = cluster({
      nodes: nodesWithCpu(2, 1),
      props: { 'placement-strategy': 'utilization' },
      resources: [
        group('g', [primitive('m1'), primitive('m2')], { priority: '3000' }),
        cpu('rsc2', 2, { priority: '1000' }),
        cpu('rsc3', 2, { priority: '2000' }),
      ],
      constraints: [
        colocation('m1-with-rsc2', 'm1', 'rsc2', '4000'),
        colocation('g-with-rsc3', 'g', 'rsc3', '4000'),
      ],
    });
    assert.deepEqual(summary(cib), ['* Start m1 ( n1 )', '* Start m2 ( n1 )', '* Start rsc3 ( n1 )']);
  });
});
