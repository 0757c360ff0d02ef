import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FileStore } from '../src/consensus/file_store.ts';
import type { Entry } from '../src/consensus/types.ts';
import { LogIndex, NodeId, Term } from '../src/lib/brand.ts';
import { SeededRng } from '../src/lib/prng.ts';
import { SimCrash, SimFs } from './sim_fs.ts';

const e = (index: number, term: number): Entry => ({
  index: LogIndex(index),
  term: Term(term),
  type: 'normal',
  data: `entry ${index}`,
});
const TRIALS = 300;

test('a crash in the middle of persisting never loses what an earlier persist made durable', () => {
  const rng = new SeededRng(99);
  let torn = 0;
  for (let trial = 0; trial < TRIALS; trial++) {
    const fs = new SimFs();
    const s = new FileStore(fs);
    s.load();
    const durable = 1 + rng.int(20);
    for (let i = 1; i <= durable; i++) {
      s.persist({
        entries: [e(i, 1)],
        hardState: { term: Term(1), vote: NodeId('a'), commit: LogIndex(i - 1) },
        snapshot: null,
        compaction: null,
      });
    }
    if (rng.int(3) === 0) {
      s.persist({
        compaction: {
          meta: { index: LogIndex(durable), term: Term(1), conf: { voters: [NodeId('a')] } },
          data: 'sm',
        },
        entries: [],
        hardState: null,
        snapshot: null,
      });
    }
    // The next batch is cut short by a crash at a random point inside it.
    fs.opsUntilCrash = rng.int(2); // before the append, or between the append and its fsync
    const extra = [e(durable + 1, 2), e(durable + 2, 2), e(durable + 3, 2)];
    assert.throws(
      () =>
        s.persist({
          entries: extra,
          hardState: { term: Term(2), vote: null, commit: LogIndex(durable) },
          snapshot: null,
          compaction: null,
        }),
      (err: unknown) => err instanceof SimCrash || (err as Error).cause instanceof SimCrash,
    );
    fs.crash(rng);
    const r = new FileStore(fs);
    const st = r.load();
    if (r.tornBytesDropped > 0) torn++;
    const snapIndex = st.snapshot?.meta.index ?? 0;
    const last = snapIndex + st.entries.length;
    // Everything persisted before the crash is there; at most the interrupted batch's entries follow.
    assert.ok(
      last >= durable && last <= durable + 3,
      `trial ${trial}: last index ${last}, durable ${durable}`,
    );
    for (const x of st.entries) assert.equal(x.data, `entry ${x.index}`);
    assert.ok(
      st.hardState.term >= 1 && st.hardState.commit >= durable - 1,
      `trial ${trial}: hard state went back`,
    );
  }
  assert.ok(torn > 10, `only ${torn} of ${TRIALS} crashes tore a write; the test is not exercising recovery`);
});

test('a file whose name was never made durable disappears on crash', () => {
  const fs = new SimFs();
  fs.writeFile('x', new Uint8Array([1, 2, 3]));
  fs.fsync('x');
  fs.crash(new SeededRng(1));
  assert.equal(fs.readFile('x'), null);
  fs.writeFile('y', new Uint8Array([1]));
  fs.fsync('y');
  fs.fsyncDir();
  fs.appendFile('y', new Uint8Array([2, 3]));
  fs.crash(new SeededRng(1));
  const y = fs.readFile('y')!;
  assert.equal(y[0], 1);
  assert.ok(y.length <= 3);
});
