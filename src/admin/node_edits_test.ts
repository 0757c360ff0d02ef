import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCrm } from '../cib/crm.ts';
import type { Cib } from '../cib/model.ts';
import { applyEdit } from './edits.ts';
import { memberNodeDeletion } from './node_edits.ts';

function cib(text: string): Cib {
  const r = parseCrm(text, 'test.crm');
  assert.ok(r.ok);
  return r.cib;
}

const THREE = 'node 1: a\nnode 2: b\nnode 3: c\nprimitive d ocf:heartbeat:Dummy\n';

test('deleting the node entry of a member of the running cluster is refused with the command that removes it', () => {
  const before = cib(THREE);
  const r = applyEdit(before, { op: 'delete', id: 'b' }, 0);
  assert.ok(r.ok, 'the offline edit itself is allowed');
  assert.equal(
    memberNodeDeletion(before.configuration, r.cib.configuration, ['a', 'b', 'c']),
    'node b is a member of the running cluster; remove it with halo cluster leave b',
  );
});

test('deleting the entry of a node that is no member, or keeping every member, is not refused', () => {
  const before = cib(THREE);
  const r = applyEdit(before, { op: 'delete', id: 'c' }, 0);
  assert.ok(r.ok);
  assert.equal(memberNodeDeletion(before.configuration, r.cib.configuration, ['a', 'b']), undefined);
  const other = applyEdit(before, { op: 'delete', id: 'd', force: true }, 0);
  assert.ok(other.ok);
  assert.equal(memberNodeDeletion(before.configuration, other.cib.configuration, ['a', 'b', 'c']), undefined);
});

test('a configuration without any node entry deletes nothing (the DC adds the members again), one that lists only some of them is refused for each missing member', () => {
  const before = cib(THREE);
  const snippet = cib('primitive d ocf:heartbeat:Dummy\n');
  assert.equal(memberNodeDeletion(before.configuration, snippet.configuration, ['a', 'b', 'c']), undefined);
  const partial = cib('node 1: a\nprimitive d ocf:heartbeat:Dummy\n');
  assert.equal(
    memberNodeDeletion(before.configuration, partial.configuration, ['a', 'b', 'c']),
    'node b is a member of the running cluster; remove it with halo cluster leave b; node c is a member of the running cluster; remove it with halo cluster leave c',
  );
});
