import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRng } from '../lib/prng.ts';
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

test('a write overlapping two earlier writes starts only once both have finished', () => {
  const { q, started, add, finish } = harness();
  add('a', 'write', 0, 2);
  add('b', 'write', 1, 2);
  add('c', 'write', 0, 3);
  q.pump(0);
  assert.deepEqual(started, ['a']);
  finish('a');
  q.pump(0);
  assert.deepEqual(started, ['a', 'b']);
  finish('b');
  q.pump(0);
  assert.deepEqual(started, ['a', 'b', 'c']);
});

/**
 * The ordering rules stated plainly, rescanning everything: what the queue must agree with
 * (it only avoids the rescans).
 */
class ReferenceQueue {
  readonly entries: {
    id: number;
    kind: DiskOpKind;
    first: number;
    count: number;
    needSeq: number;
    running: boolean;
  }[] = [];
  private nextId = 1;
  add(kind: DiskOpKind, first: number, count: number, needSeq: number): number {
    const id = this.nextId++;
    this.entries.push({ id, kind, first, count, needSeq, running: false });
    return id;
  }
  pump(persistedSeq: number): number[] {
    const out: number[] = [];
    this.entries.forEach((e, i) => {
      if (e.running || e.needSeq > persistedSeq) return;
      const blocked = this.entries.slice(0, i).some((p) => {
        if (e.kind === 'flush') return true;
        if (p.kind === 'flush' || (p.kind === 'read' && e.kind === 'read')) return false;
        return p.first < e.first + e.count && e.first < p.first + p.count;
      });
      if (blocked) return;
      e.running = true;
      out.push(e.id);
    });
    return out;
  }
  complete(id: number): void {
    this.entries.splice(
      this.entries.findIndex((e) => e.id === id),
      1,
    );
  }
}

test('random mixes of reads, writes, flushes and metadata waits start exactly as the rules say', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const rng = new SeededRng(seed);
    const q = new DiskQueue();
    const ref = new ReferenceQueue();
    let started: number[] = [];
    const running: number[] = [];
    let persisted = 0;
    for (let step = 0; step < 300; step++) {
      const r = rng.int(10);
      if (r < 5) {
        const kind: DiskOpKind = (['read', 'write', 'write', 'flush'] as const)[rng.int(4)]!;
        const first = rng.int(40);
        const count = 1 + rng.int(6);
        const needSeq = rng.int(4) === 0 ? persisted + 1 + rng.int(2) : 0;
        const id = q.add({ kind, first, count, needSeq, start: (op) => started.push(op), done: () => {} });
        assert.equal(ref.add(kind, first, count, needSeq), id);
      } else if (r < 8 && running.length > 0) {
        const id = running.splice(rng.int(running.length), 1)[0]!;
        assert.ok(q.complete(id, true, undefined));
        ref.complete(id);
      } else if (r === 8) {
        persisted++;
      }
      q.pump(persisted);
      const want = ref.pump(persisted);
      assert.deepEqual(started, want, `seed ${seed} step ${step}`);
      running.push(...started);
      started = [];
      assert.equal(q.size, ref.entries.length);
    }
  }
});
