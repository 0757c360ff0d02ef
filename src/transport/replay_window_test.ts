import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REPLAY_WINDOW_BITS, ReplayWindow } from './replay_window.ts';

function acceptIfFresh(w: ReplayWindow, seq: number): string {
  const v = w.check(seq);
  if (v === 'fresh') w.accept(seq);
  return v;
}

test('a sequence number is accepted once and a repeat is reported as replayed', () => {
  const w = new ReplayWindow();
  assert.equal(acceptIfFresh(w, 0), 'fresh');
  assert.equal(acceptIfFresh(w, 0), 'replayed');
  assert.equal(acceptIfFresh(w, 5), 'fresh');
  assert.equal(acceptIfFresh(w, 5), 'replayed');
});

test('packets reordered within the window are accepted, each exactly once', () => {
  const w = new ReplayWindow();
  assert.equal(acceptIfFresh(w, 100), 'fresh');
  for (const s of [99, 50, 1, 98]) assert.equal(acceptIfFresh(w, s), 'fresh');
  for (const s of [99, 50, 1, 98, 100]) assert.equal(acceptIfFresh(w, s), 'replayed');
});

test('the oldest sequence still inside the window is accepted and one older is too old', () => {
  const w = new ReplayWindow();
  const top = 5000;
  w.accept(top);
  assert.equal(w.check(top - (REPLAY_WINDOW_BITS - 1)), 'fresh');
  assert.equal(w.check(top - REPLAY_WINDOW_BITS), 'too-old');
  w.accept(top - (REPLAY_WINDOW_BITS - 1));
  assert.equal(w.check(top - (REPLAY_WINDOW_BITS - 1)), 'replayed');
});

test('a jump larger than the window forgets every older slot and still rejects repeats', () => {
  const w = new ReplayWindow();
  for (let s = 0; s < 10; s++) w.accept(s);
  w.accept(10 + 3 * REPLAY_WINDOW_BITS);
  assert.equal(w.check(5), 'too-old');
  // The slot that 5 used (same index mod BITS) must read as unseen for a new, in-window seq.
  const sameSlot = 5 + 3 * REPLAY_WINDOW_BITS;
  assert.equal(w.check(sameSlot), 'fresh');
  assert.equal(w.check(10 + 3 * REPLAY_WINDOW_BITS), 'replayed');
});

test('sliding forward by less than the window clears the slots it reuses', () => {
  const w = new ReplayWindow();
  for (let s = 0; s < REPLAY_WINDOW_BITS; s++) w.accept(s);
  // seq BITS+10 reuses slots of 0..10; seqs BITS..BITS+9 were never seen and must be fresh.
  w.accept(REPLAY_WINDOW_BITS + 10);
  for (let s = REPLAY_WINDOW_BITS; s < REPLAY_WINDOW_BITS + 10; s++)
    assert.equal(w.check(s), 'fresh', `seq ${s}`);
  assert.equal(w.check(11), 'replayed');
  assert.equal(w.check(10), 'too-old');
});

test('sequence numbers near 2^48 work', () => {
  const w = new ReplayWindow();
  const big = 2 ** 48 - 2;
  w.accept(big);
  assert.equal(w.check(big), 'replayed');
  assert.equal(w.check(big + 1), 'fresh');
  assert.equal(w.check(big - 1), 'fresh');
});
