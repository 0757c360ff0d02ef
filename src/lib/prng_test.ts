import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BoundedQueue } from './bounded_queue.ts';
import { SeededRng } from './prng.ts';

test('the same seed replays the same sequence, and different seeds differ', () => {
  const a = new SeededRng(42);
  const b = new SeededRng(42);
  const c = new SeededRng(43);
  const sa = Array.from({ length: 50 }, () => a.int(1000));
  const sb = Array.from({ length: 50 }, () => b.int(1000));
  const sc = Array.from({ length: 50 }, () => c.int(1000));
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
});

test('draws are spread over the whole range', () => {
  const r = new SeededRng(1);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 10_000; i++) counts[r.int(10)]++;
  for (const n of counts) assert.ok(n > 800 && n < 1200, `bucket count ${n} is far from 1000`);
});

test('a bounded queue refuses items past its maximum and keeps FIFO order', () => {
  const q = new BoundedQueue<number>(3);
  assert.equal(q.push(1), true);
  assert.equal(q.push(2), true);
  assert.equal(q.push(3), true);
  assert.equal(q.push(4), false);
  assert.equal(q.shift(), 1);
  assert.equal(q.push(5), true);
  assert.deepEqual(q.drain(), [2, 3, 5]);
});
