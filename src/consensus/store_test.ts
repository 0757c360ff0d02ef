import assert from 'node:assert/strict';
import {
  appendFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LogIndex, NodeId, Term } from '../lib/brand.ts';
import { FileStore } from './file_store.ts';
import { MemoryStore, type RaftStore, StoreError } from './store.ts';
import type { Entry, HardState, Snapshot } from './types.ts';

const e = (index: number, term: number, data = `d${index}`): Entry => ({
  index: LogIndex(index),
  term: Term(term),
  type: 'normal',
  data,
});
const hs = (term: number, vote: string | null, commit: number): HardState => ({
  term: Term(term),
  vote: vote === null ? null : NodeId(vote),
  commit: LogIndex(commit),
});
const snap = (index: number, term: number, data: string): Snapshot => ({
  meta: {
    index: LogIndex(index),
    term: Term(term),
    conf: { voters: [NodeId('a'), NodeId('b'), NodeId('c')] },
  },
  data,
});
const batch = (p: Partial<Parameters<RaftStore['persist']>[0]>) => ({
  hardState: null,
  entries: [],
  snapshot: null,
  compaction: null,
  ...p,
});

/** A store kind under test: `open` returns a store over the same durable state each time. */
interface Kind {
  name: string;
  make(): { open(): RaftStore; cleanup(): void };
}

const kinds: Kind[] = [
  {
    name: 'memory store',
    make() {
      const s = new MemoryStore();
      return { open: () => s, cleanup: () => {} };
    },
  },
  {
    name: 'file store',
    make() {
      const dir = mkdtempSync(join(tmpdir(), 'halo-store-'));
      let last: RaftStore | null = null;
      return {
        open: () => {
          last?.close();
          last = FileStore.open(dir);
          return last;
        },
        cleanup: () => {
          last?.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
];

for (const kind of kinds) {
  const withStore = (fn: (open: () => RaftStore) => void) => () => {
    const k = kind.make();
    try {
      fn(k.open);
    } finally {
      k.cleanup();
    }
  };

  test(
    `${kind.name}: a new store recovers an empty log`,
    withStore((open) => {
      const st = open().load();
      assert.deepEqual(st, { hardState: hs(0, null, 0), snapshot: null, entries: [] });
    }),
  );

  test(
    `${kind.name}: entries and the hard state survive a reopen`,
    withStore((open) => {
      const s = open();
      s.load();
      s.persist(batch({ entries: [e(1, 1), e(2, 1)], hardState: hs(1, 'a', 1) }));
      s.persist(batch({ entries: [e(3, 2)], hardState: hs(2, 'b', 2) }));
      const st = open().load();
      assert.deepEqual(st.entries, [e(1, 1), e(2, 1), e(3, 2)]);
      assert.deepEqual(st.hardState, hs(2, 'b', 2));
    }),
  );

  test(
    `${kind.name}: an append at an existing index replaces the conflicting suffix`,
    withStore((open) => {
      const s = open();
      s.load();
      s.persist(batch({ entries: [e(1, 1), e(2, 1), e(3, 1)] }));
      s.persist(batch({ entries: [e(2, 2, 'new')] }));
      assert.deepEqual(open().load().entries, [e(1, 1), e(2, 2, 'new')]);
    }),
  );

  test(
    `${kind.name}: a compaction keeps the snapshot and the entries after it`,
    withStore((open) => {
      const s = open();
      s.load();
      s.persist(batch({ entries: [e(1, 1), e(2, 1), e(3, 1), e(4, 1)], hardState: hs(1, null, 4) }));
      s.persist(batch({ compaction: snap(2, 1, 'state@2'), entries: [e(5, 1)] }));
      const st = open().load();
      assert.deepEqual(st.snapshot, snap(2, 1, 'state@2'));
      assert.deepEqual(st.entries, [e(3, 1), e(4, 1), e(5, 1)]);
      assert.deepEqual(st.hardState, hs(1, null, 4));
    }),
  );

  test(
    `${kind.name}: an installed snapshot replaces the whole log`,
    withStore((open) => {
      const s = open();
      s.load();
      s.persist(batch({ entries: [e(1, 1), e(2, 1), e(3, 1)] }));
      s.persist(batch({ snapshot: snap(10, 3, 'leader state'), hardState: hs(3, null, 10) }));
      s.persist(batch({ entries: [e(10, 3), e(11, 3)] }));
      const st = open().load();
      assert.deepEqual(st.snapshot, snap(10, 3, 'leader state'));
      assert.deepEqual(st.entries, [e(11, 3)]);
      assert.deepEqual(st.hardState, hs(3, null, 10));
    }),
  );
}

function withDir(fn: (dir: string) => void) {
  return () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-store-'));
    try {
      fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  'a torn last record (a crash mid-write) is dropped at recovery and the earlier ones kept',
  withDir((dir) => {
    const s = FileStore.open(dir);
    s.load();
    s.persist(batch({ entries: [e(1, 1), e(2, 1)], hardState: hs(1, 'a', 1) }));
    s.persist(batch({ entries: [e(3, 1)] }));
    s.close();
    const log = join(dir, 'raft.log');
    const full = statSync(log).size;
    truncateSync(log, full - 5);
    const r = FileStore.open(dir);
    const st = r.load();
    assert.deepEqual(st.entries, [e(1, 1), e(2, 1)]);
    assert.deepEqual(st.hardState, hs(1, 'a', 1));
    assert.ok(r.tornBytesDropped > 0);
    // The torn bytes are gone from the file, so new appends follow valid records.
    r.persist(batch({ entries: [e(3, 2, 'again')] }));
    r.close();
    assert.deepEqual(FileStore.open(dir).load().entries, [e(1, 1), e(2, 1), e(3, 2, 'again')]);
  }),
);

test(
  'a record whose checksum does not match is never accepted',
  withDir((dir) => {
    const s = FileStore.open(dir);
    s.load();
    s.persist(batch({ entries: [e(1, 1)] }));
    s.persist(batch({ entries: [e(2, 1, 'precious')] }));
    s.close();
    const log = join(dir, 'raft.log');
    const bytes = readFileSync(log);
    bytes[bytes.length - 3]! ^= 0x20; // flip one bit inside the last record's payload
    writeFileSync(log, bytes);
    assert.deepEqual(FileStore.open(dir).load().entries, [e(1, 1)]);
  }),
);

test(
  'garbage appended after valid records (a torn header) is dropped',
  withDir((dir) => {
    const s = FileStore.open(dir);
    s.load();
    s.persist(batch({ entries: [e(1, 1)] }));
    s.close();
    appendFileSync(join(dir, 'raft.log'), Buffer.from([0, 0, 0]));
    assert.deepEqual(FileStore.open(dir).load().entries, [e(1, 1)]);
  }),
);

test(
  'a damaged snapshot file stops recovery with a clear error instead of starting with wrong state',
  withDir((dir) => {
    const s = FileStore.open(dir);
    s.load();
    s.persist(batch({ snapshot: snap(5, 2, 'state'), hardState: hs(2, null, 5) }));
    s.close();
    const p = join(dir, 'raft.snap');
    const bytes = readFileSync(p);
    bytes[bytes.length - 2]! ^= 1;
    writeFileSync(p, bytes);
    assert.throws(
      () => FileStore.open(dir).load(),
      (err: unknown) =>
        err instanceof StoreError && err.code === 'raft-store-corrupt' && /raft\.snap/.test(err.message),
    );
  }),
);

test(
  'a leftover temporary file from an interrupted snapshot write is ignored',
  withDir((dir) => {
    const s = FileStore.open(dir);
    s.load();
    s.persist(batch({ entries: [e(1, 1)] }));
    s.close();
    writeFileSync(join(dir, 'raft.snap.tmp'), 'half a snapshot');
    const st = FileStore.open(dir).load();
    assert.equal(st.snapshot, null);
    assert.deepEqual(st.entries, [e(1, 1)]);
  }),
);
