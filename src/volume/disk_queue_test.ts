import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type DiskOpKind, DiskQueue } from './disk_queue.ts';

/** A queue whose ops record when they start; returns the queue and the started op labels. */
function harness() {
  const q = new DiskQueue();
  const started: string[] = [];
  const ids = new Map<string, number>();
  const add = (label: string, kind: DiskOpKind, first = 0, count = 1, needSeq = 0) => {
    ids.set(
      label,
      q.add({
        kind,
        first,
        count,
        needSeq,
        start: () => started.push(label),
        done: () => {},
      }),
    );
  };
  const finish = (label: string) => assert.ok(q.complete(ids.get(label)!, true, undefined));
  return { q, started, add, finish };
}

test('a flush starts only after every write queued before it has finished', () => {
  const { q, started, add, finish } = harness();
  add('w1', 'write', 0, 1);
  add('w2', 'write', 10, 1);
  add('f', 'flush', 0, 100);
  q.pump(0);
  assert.deepEqual(started, ['w1', 'w2']);
  finish('w1');
  q.pump(0);
  assert.deepEqual(started, ['w1', 'w2']);
  finish('w2');
  q.pump(0);
  assert.deepEqual(started, ['w1', 'w2', 'f']);
});

test('writes queued after a flush run while the flush is still syncing', () => {
  const { q, started, add, finish } = harness();
  add('w1', 'write', 0, 1);
  add('f', 'flush', 0, 100);
  add('w2', 'write', 5, 1);
  q.pump(0);
  assert.deepEqual(started, ['w1', 'w2']);
  finish('w1');
  q.pump(0);
  assert.deepEqual(started, ['w1', 'w2', 'f']);
});

test('a write after a flush still waits for an earlier write to the same blocks', () => {
  const { q, started, add, finish } = harness();
  add('w1', 'write', 0, 4);
  add('f', 'flush', 0, 100);
  add('w2', 'write', 2, 1);
  q.pump(0);
  assert.deepEqual(started, ['w1']);
  finish('w1');
  q.pump(0);
  assert.deepEqual(started, ['w1', 'f', 'w2']);
});

test('two flushes run in the order they were queued', () => {
  const { q, started, add, finish } = harness();
  add('f1', 'flush', 0, 100);
  add('f2', 'flush', 0, 100);
  q.pump(0);
  assert.deepEqual(started, ['f1']);
  finish('f1');
  q.pump(0);
  assert.deepEqual(started, ['f1', 'f2']);
});

test('reads overlap reads but not writes, and ops wait for the metadata they need', () => {
  const { q, started, add, finish } = harness();
  add('r1', 'read', 0, 4);
  add('r2', 'read', 2, 4);
  add('w', 'write', 3, 1);
  add('late', 'write', 50, 1, 2);
  q.pump(1);
  assert.deepEqual(started, ['r1', 'r2']);
  finish('r1');
  finish('r2');
  q.pump(1);
  assert.deepEqual(started, ['r1', 'r2', 'w']);
  q.pump(2);
  assert.deepEqual(started, ['r1', 'r2', 'w', 'late']);
});

test('a completion for an unknown operation is reported as stale', () => {
  const { q } = harness();
  assert.equal(q.complete(12345, true, undefined), false);
});
