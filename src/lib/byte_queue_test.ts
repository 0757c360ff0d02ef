import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteQueue } from './byte_queue.ts';

test('a ByteQueue gives bytes back in order, across the chunks they came in', () => {
  const q = new ByteQueue();
  q.push(Buffer.from('abc'));
  q.push(new Uint8Array(0));
  q.push(Buffer.from('defgh'));
  q.push(Buffer.from('ij'));
  assert.equal(q.size, 10);
  assert.equal(q.peek(2).toString(), 'ab');
  assert.equal(q.peek(5).toString(), 'abcde', 'a peek spanning chunks');
  assert.equal(q.size, 10, 'peek takes nothing');
  assert.equal(q.take(4).toString(), 'abcd');
  assert.equal(q.take(0).length, 0);
  assert.equal(q.take(5).toString(), 'efghi');
  assert.equal(q.size, 1);
  assert.equal(q.take(1).toString(), 'j');
  assert.equal(q.size, 0);
});

test('a ByteQueue copies a pushed chunk unless it is handed over', () => {
  const q = new ByteQueue();
  const mine = Buffer.from('xyz');
  q.push(mine);
  mine[0] = 0x41;
  assert.equal(q.take(3).toString(), 'xyz');
  const given = Buffer.from('xyz');
  q.push(given, true);
  given[0] = 0x41;
  assert.equal(q.take(3).toString(), 'Ayz');
});

test('a ByteQueue refuses to give more than it holds, and clear empties it', () => {
  const q = new ByteQueue();
  q.push(Buffer.from('ab'));
  assert.throws(() => q.take(3), /take of 3 bytes with 2 buffered/);
  assert.throws(() => q.peek(3), /peek of 3 bytes with 2 buffered/);
  q.clear();
  assert.equal(q.size, 0);
  q.push(Buffer.from('c'));
  assert.equal(q.take(1).toString(), 'c');
});
