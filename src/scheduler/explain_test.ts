import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Cib } from '../cib/model.ts';
import { explain } from './explain.ts';
import { schedule } from './schedule.ts';
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

function why(cib: Cib, rsc: string): string {
  const r = schedule(cib, NOW);
  if (!r.ok) assert.fail(r.message);
  const e = explain(r.stages, rsc);
  if (!e.ok) assert.fail(e.reason);
  return e.lines.join('\n');
}

describe('explain', () => {
  it('names the ban and the stickiness that decided where a resource runs', () => {
    const cib = cluster({
      nodes: ['n1', 'n2', 'n3'],
      rscDefaults: { 'resource-stickiness': '100' },
      resources: [primitive('web')],
      constraints: [locationRule('l_all_ping', 'web', '-INFINITY', 'pingd', 'lt', '1000')],
      status: [
        nodeState('n1', { attrs: { pingd: '0' } }),
        nodeState('n2', { attrs: { pingd: '1000' }, history: [started('web')] }),
        nodeState('n3', { attrs: { pingd: '1000' } }),
      ],
    });
    const text = why(cib, 'web');
    assert.match(text, /^web stays on n2/);
    assert.match(text, /location l_all_ping bans n1 \(-INFINITY, rule pingd=0 lt 1000\)/);
    assert.match(text, /stickiness 100 keeps it on n2/);
    assert.match(text, /ahead of n3/);
  });

  it('says a resource cannot run anywhere and why, when every node is banned', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [primitive('db')],
      constraints: [location('no1', 'db', 'n1', '-INFINITY'), location('no2', 'db', 'n2', '-INFINITY')],
    });
    const text = why(cib, 'db');
    assert.match(text, /^db cannot run anywhere/);
    assert.match(text, /location no1 bans n1/);
    assert.match(text, /location no2 bans n2/);
  });

  it('names the failure limit that pushed a resource off a node', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [primitive('a', { monitorInterval: '10s', meta: { 'migration-threshold': '2' } })],
      status: [
        nodeState('n1', {
          history: [started('a', { monitorFailed: true })],
          attrs: { 'fail-count-a#monitor_10000': '2' },
        }),
      ],
    });
    const text = why(cib, 'a');
    assert.match(text, /^a moves from n1 to n2/);
    assert.match(text, /n1 reached migration-threshold 2 \(2 failures\)/);
    assert.match(text, /it failed on n1 and is recovered/);
  });

  it('names the standby node a resource left', () => {
    const cib = cluster({
      nodes: [{ name: 'n1', attrs: { standby: 'on' } }, 'n2'],
      resources: [primitive('a')],
      status: [nodeState('n1', { history: [started('a')] })],
    });
    assert.match(why(cib, 'a'), /^a moves from n1 to n2: n1 is in standby/);
  });

  it('names the colocation that placed a dependent', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [primitive('db'), primitive('web')],
      constraints: [location('db-n2', 'db', 'n2', '100'), colocation('web-with-db', 'web', 'db', 'INFINITY')],
    });
    const text = why(cib, 'web');
    assert.match(text, /^web starts on n2/);
    assert.match(text, /colocation web-with-db needs it with db \(db runs on n2\)/);
  });

  it('says a resource is left alone when it is unmanaged', () => {
    const cib = cluster({
      nodes: ['n1'],
      resources: [primitive('a', { meta: { 'is-managed': 'false' } })],
      status: [nodeState('n1', { history: [started('a')] })],
    });
    assert.match(why(cib, 'a'), /^a stays on n1: it is not managed/);
  });

  it('says target-role Stopped is why a resource is stopped', () => {
    const cib = cluster({
      nodes: ['n1'],
      resources: [primitive('a', { meta: { 'target-role': 'Stopped' } })],
      status: [nodeState('n1', { history: [started('a')] })],
    });
    assert.match(why(cib, 'a'), /^a cannot run anywhere: a has target-role Stopped/);
  });

  it('names the order whose first resource cannot start', () => {
    const cib = cluster({
      nodes: ['n1'],
      resources: [primitive('fs', { meta: { 'target-role': 'Stopped' } }), primitive('app')],
      constraints: [order('fs-then-app', 'fs', 'app')],
    });
    assert.match(why(cib, 'app'), /^app cannot start on n1: blocked due to unrunnable fs start/);
  });

  it('explains every member of a group', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [group('g', [primitive('ip'), primitive('svc')])],
      constraints: [location('g-n2', 'g', 'n2', '50')],
    });
    const lines = why(cib, 'g').split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^ip starts on n2: location g-n2 prefers n2 \(50, score 50\)/);
    assert.match(lines[1]!, /^svc starts on n2/);
  });

  it('names a reason a group member inherits once, not once per member', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      rscDefaults: { 'resource-stickiness': '100' },
      resources: [group('g', [primitive('ip'), primitive('svc'), primitive('db')])],
      constraints: [location('g-n1', 'g', 'n1', '50')],
      status: [nodeState('n2', { history: [started('ip'), started('svc'), started('db')] })],
    });
    const lines = why(cib, 'g').split('\n');
    assert.match(lines[0]!, /^ip stays on n2: stickiness 100 keeps it on n2/);
    for (const line of lines)
      assert.equal(line.split('stickiness 100').length, 2, `the stickiness reason repeats in: ${line}`);
  });

  it('explains the promoted instance of a promotable clone by its promotion score', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      resources: [clone('ms', primitive('db', { type: 'Stateful' }), { promotable: 'true' })],
      status: [
        nodeState('n1', { attrs: { 'master-db': '5' } }),
        nodeState('n2', { attrs: { 'master-db': '10' } }),
      ],
    });
    const lines = why(cib, 'ms').split('\n');
    assert.match(lines[0]!, /^db:0 starts on n2 as Promoted.*promotion score on n2 is 10/);
    assert.match(lines[1]!, /^db:1 starts on n1 as Unpromoted/);
  });

  it('says why a resource stops without quorum', () => {
    const cib = cluster({
      nodes: ['n1', 'n2'],
      quorum: false,
      resources: [primitive('a')],
      status: [nodeState('n1', { history: [started('a')] })],
    });
    assert.match(why(cib, 'a'), /^a will be stopped: the cluster has no quorum \(no-quorum-policy=stop\)/);
  });

  it('reports an unknown resource instead of guessing', () => {
    const r = schedule(cluster({ nodes: ['n1'], resources: [primitive('a')] }), NOW);
    assert.ok(r.ok);
    const e = explain(r.stages, 'nope');
    assert.equal(e.ok, false);
    if (!e.ok) assert.match(e.reason, /resource 'nope' is not in the configuration/);
  });
});
