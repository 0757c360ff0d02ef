import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LinkTable } from './links.ts';

test('a link is up while packets arrive and down after silence; best is the lowest live link', () => {
  const t = new LinkTable(100);
  t.addPeer(2, 2);
  assert.equal(t.best(2), undefined);
  assert.deepEqual(t.heard(2, 1, 0), { peer: 2, link: 1, from: 'unknown', to: 'up', silentMs: 0 });
  assert.equal(t.best(2), 1);
  t.heard(2, 0, 10);
  assert.equal(t.best(2), 0);
  t.heard(2, 1, 90);
  assert.deepEqual(t.tick(110), [{ peer: 2, link: 0, from: 'up', to: 'down', silentMs: 100 }]);
  assert.equal(t.best(2), 1);
  assert.deepEqual(t.tick(120), []);
  assert.deepEqual(t.heard(2, 0, 130)?.to, 'up');
  assert.equal(t.best(2), 0);
});

test('packets from unknown peers or links are ignored', () => {
  const t = new LinkTable(100);
  t.addPeer(2, 1);
  assert.equal(t.heard(3, 0, 0), undefined);
  assert.equal(t.heard(2, 5, 0), undefined);
  assert.deepEqual(
    t.view(2).map((v) => v.received),
    [0],
  );
});

test('a removed peer has no links: nothing is sent to it and its packets change nothing', () => {
  const t = new LinkTable(100);
  t.addPeer(2, 1);
  t.heard(2, 0, 0);
  t.removePeer(2);
  assert.equal(t.linkCount(2), 0);
  assert.equal(t.best(2), undefined);
  assert.equal(t.heard(2, 0, 10), undefined);
  assert.deepEqual(t.tick(500), []);
});
