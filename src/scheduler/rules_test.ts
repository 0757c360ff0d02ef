import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NvSet } from '../cib/model.ts';
import { flattenNvSets } from './rules.ts';

const ctx = { nodeAttrs: new Map<string, string>(), nowMs: 0 };

function set(id: string, score: string | undefined, value: string): NvSet {
  return { kind: 'meta_attributes', id, score, pairs: [{ id: `${id}-p`, name: 'target-role', value }] };
}

test('a set scored INFINITY wins over sets with numeric scores, as in Pacemaker', () => {
  const sets = [set('low', '10', 'Stopped'), set('top', 'INFINITY', 'Started'), set('mid', '500', 'Stopped')];
  assert.equal(flattenNvSets(sets, ctx).get('target-role'), 'Started');
});

test('with equal scores the set written first wins, and -INFINITY sorts last', () => {
  const sets = [
    set('never', '-INFINITY', 'Stopped'),
    set('a', undefined, 'Started'),
    set('b', '0', 'Stopped'),
  ];
  assert.equal(flattenNvSets(sets, ctx).get('target-role'), 'Started');
});
