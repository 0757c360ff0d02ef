import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AssertionError } from '../lib/assert.ts';
import { LogIndex, NodeId, Term } from '../lib/brand.ts';
import { SeededRng } from '../lib/prng.ts';
import { FileStore } from './file_store.ts';
import { bootstrapState, RaftNode } from './raft.ts';
import { MemoryStore, type RaftStore } from './store.ts';
import { MESSAGE_TYPES, type Message } from './types.ts';

const cfg = (id: string, seed = 1) => ({
  id: NodeId(id),
  electionTicks: 10,
  heartbeatTicks: 1,
  rng: new SeededRng(seed),
});

/** Runs Ready loops and delivers messages among `nodes` until quiet (bounded). */
function settle(
  nodes: Map<string, { raft: RaftNode; store: RaftStore }>,
  drop: (m: Message) => boolean = () => false,
): void {
  for (let round = 0; round < 200; round++) {
    const msgs: Message[] = [];
    for (const n of nodes.values()) {
      while (n.raft.hasReady()) {
        const rd = n.raft.ready();
        n.store.persist(rd);
        msgs.push(...rd.messages);
        n.raft.advance(rd);
      }
    }
    if (msgs.length === 0) return;
    for (const m of msgs) if (!drop(m)) nodes.get(m.to)?.raft.step(m);
  }
  assert.fail('cluster did not settle');
}

test('a single-node cluster elects itself and commits a proposal at once', () => {
  const store = new MemoryStore(bootstrapState([NodeId('a')]));
  const raft = new RaftNode({ ...cfg('a'), leaseHoldAtStart: false }, store.load());
  raft.campaign();
  assert.equal(raft.currentRole, 'leader');
  const r = raft.propose('x');
  assert.ok(r.ok);
  const rd = raft.ready();
  assert.deepEqual(
    rd.committedEntries.map((e) => e.data),
    ['', 'x'],
  );
  assert.equal(rd.messages.length, 0);
  raft.advance(rd);
  assert.equal(raft.status().applied, r.index);
});

test('a follower refuses proposals and names the leader', () => {
  const nodes = new Map(
    ['a', 'b', 'c'].map((id, i) => {
      const store = new MemoryStore(bootstrapState(['a', 'b', 'c'].map(NodeId)));
      return [
        id,
        { raft: new RaftNode({ ...cfg(id, i + 1), leaseHoldAtStart: false }, store.load()), store },
      ] as const;
    }),
  );
  nodes.get('a')!.raft.campaign();
  settle(nodes);
  const r = nodes.get('b')!.raft.propose('x');
  assert.equal(r.ok, false);
  assert.equal(r.ok ? '' : r.code, 'not-leader');
  assert.equal(r.ok ? null : r.leader, 'a');
  assert.match(r.ok ? '' : r.message, /the leader is a/);
});

test('stepping between ready() and advance() is a programmer error', () => {
  const raft = new RaftNode(cfg('a'), bootstrapState([NodeId('a'), NodeId('b')]));
  raft.campaign();
  raft.ready();
  assert.throws(() => raft.tick(), AssertionError);
});

test('the lease is held while a quorum acknowledges and lapses without one', () => {
  const nodes = new Map(
    ['a', 'b', 'c'].map((id, i) => {
      const store = new MemoryStore(bootstrapState(['a', 'b', 'c'].map(NodeId)));
      return [
        id,
        { raft: new RaftNode({ ...cfg(id, i + 1), leaseHoldAtStart: false }, store.load()), store },
      ] as const;
    }),
  );
  const a = nodes.get('a')!.raft;
  a.campaign();
  settle(nodes);
  for (let i = 0; i < 30; i++) {
    for (const n of nodes.values()) n.raft.tick();
    settle(nodes);
    assert.ok(a.currentTick <= a.leaseValidUntilTick(), `lease lapsed at tick ${a.currentTick}`);
  }
  // Cut a off: its lease ends within an election timeout, and it stops being leader.
  let lapsedAt = -1;
  for (let i = 0; i < 30; i++) {
    a.tick();
    settle(nodes, (m) => m.from === 'a' || m.to === 'a');
    if (lapsedAt < 0 && a.currentTick > a.leaseValidUntilTick()) lapsedAt = i;
  }
  assert.ok(lapsedAt >= 0 && lapsedAt < 10, `lease lapsed after ${lapsedAt} ticks`);
  assert.notEqual(a.currentRole, 'leader');
});

test('a vote survives a restart from the file store, so a node never votes twice in a term', () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-raft-'));
  try {
    let store = FileStore.open(dir);
    store.load();
    const bs = bootstrapState(['a', 'b', 'c'].map(NodeId));
    store.persist({ hardState: bs.hardState, snapshot: bs.snapshot, entries: [], compaction: null });
    let b = new RaftNode({ ...cfg('b'), leaseHoldAtStart: false }, store.load());
    const vote = (from: string): Message => ({
      type: 'vote',
      from: NodeId(from),
      to: NodeId('b'),
      term: Term(bs.hardState.term + 1),
      logTerm: bs.snapshot!.meta.term,
      index: LogIndex(1),
      entries: [],
      commit: LogIndex(0),
      reject: false,
      rejectHint: LogIndex(0),
      ctx: 0,
      snapshot: null,
    });
    b.step(vote('a'));
    let rd = b.ready();
    store.persist(rd);
    assert.equal(rd.messages[0]!.reject, false);
    b.advance(rd);
    store.close();
    store = FileStore.open(dir);
    b = new RaftNode({ ...cfg('b', 2), leaseHoldAtStart: false }, store.load());
    b.step(vote('c'));
    rd = b.ready();
    assert.equal(rd.messages[0]!.type, 'voteResp');
    assert.equal(rd.messages[0]!.reject, true);
    b.advance(rd);
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a membership change waits for the previous one and refuses nonsense', () => {
  const store = new MemoryStore(bootstrapState([NodeId('a')]));
  const raft = new RaftNode({ ...cfg('a'), leaseHoldAtStart: false }, store.load());
  raft.campaign();
  raft.advance(raft.ready());
  const add = raft.proposeConfChange({ type: 'addNode', node: NodeId('b') });
  assert.ok(add.ok);
  assert.deepEqual(raft.conf.voters, ['a', 'b']);
  const again = raft.proposeConfChange({ type: 'addNode', node: NodeId('c') });
  assert.equal(again.ok ? '' : again.code, 'conf-change-pending');
  raft.advance(raft.ready());
  const dup = raft.proposeConfChange({ type: 'addNode', node: NodeId('b') });
  assert.equal(dup.ok ? '' : dup.code, 'conf-change-pending');
});

test('20 000 well-formed but nonsensical messages never crash a node or move its commit back', () => {
  const rng = new SeededRng(7);
  const ids = ['a', 'b', 'c', 'x'];
  const MESSAGES = 20_000;
  for (const self of ['a', 'b']) {
    const raft = new RaftNode(
      { ...cfg(self, 3), leaseHoldAtStart: false },
      bootstrapState(['a', 'b', 'c'].map(NodeId)),
    );
    if (self === 'a') {
      raft.campaign();
    }
    let commit = 0;
    let maxLast = 0;
    for (let i = 0; i < MESSAGES; i++) {
      const index = rng.int(12);
      const n = rng.int(4);
      const m: Message = {
        type: MESSAGE_TYPES[rng.int(MESSAGE_TYPES.length)]!,
        from: NodeId(ids[rng.int(ids.length)]!),
        to: NodeId(self),
        term: Term(rng.int(6)),
        logTerm: Term(rng.int(6)),
        index: LogIndex(index),
        // Conf entries always carry a valid change: the codec rejects any other.
        entries: Array.from({ length: n }, (_, k) => {
          const conf = rng.int(8) === 0;
          return {
            index: LogIndex(index + k + 1),
            term: Term(1 + rng.int(5)),
            type: conf ? ('conf' as const) : ('normal' as const),
            data: conf
              ? `{"type":"${rng.int(2) ? 'addNode' : 'removeNode'}","node":"${ids[rng.int(4)]}"}`
              : `d${i}`,
          };
        }),
        commit: LogIndex(rng.int(14)),
        reject: rng.int(2) === 0,
        rejectHint: LogIndex(rng.int(12)),
        ctx: rng.int(100),
        snapshot:
          rng.int(6) === 0
            ? {
                meta: {
                  index: LogIndex(rng.int(12)),
                  term: Term(rng.int(6)),
                  conf: { voters: ['a', 'b', 'c'].map(NodeId) },
                },
                data: '',
              }
            : null,
      };
      raft.step(m.type === 'snap' && !m.snapshot ? { ...m, type: 'heartbeat' } : m);
      maxLast = Math.max(maxLast, raft.status().lastIndex);
      if (rng.int(5) === 0) raft.tick();
      while (raft.hasReady()) raft.advance(raft.ready());
      const c = raft.status().commit;
      assert.ok(c >= commit, `commit went back from ${commit} to ${c}`);
      commit = c;
    }
    assert.ok(maxLast > 3, `node ${self} never appended anything; the fuzz does not reach replication`);
  }
});

/** A two-voter cluster {a,b} with a leading and both in sync. */
function twoNodeCluster(): Map<string, { raft: RaftNode; store: RaftStore }> {
  const nodes = new Map(
    ['a', 'b'].map((id, i) => {
      const store = new MemoryStore(bootstrapState([NodeId('a'), NodeId('b')]));
      return [
        id,
        { raft: new RaftNode({ ...cfg(id, i + 1), leaseHoldAtStart: false }, store.load()), store },
      ];
    }),
  );
  nodes.get('a')!.raft.campaign();
  settle(nodes);
  assert.ok(nodes.get('a')!.raft.propose('x').ok);
  settle(nodes);
  return nodes;
}

test('forcing solo is refused, changing nothing, unless the voters are exactly this node and the fenced peer', () => {
  const nodes = twoNodeCluster();
  const b = nodes.get('b')!.raft;
  const before = b.status();
  for (const peer of ['b', 'c']) {
    const r = b.forceSoloAfterFence(NodeId(peer), { fencedBy: 'fence_ipmilan' });
    assert.equal(r.ok ? '' : r.code, 'conf-change-invalid', peer);
  }
  const noEvidence = b.forceSoloAfterFence(NodeId('a'), { fencedBy: '' });
  assert.equal(noEvidence.ok ? '' : noEvidence.code, 'conf-change-invalid');
  assert.deepEqual(b.status(), before);
  assert.equal(b.hasReady(), false);
  // A three-voter cluster has a majority after one loss: no forcing there.
  const store = new MemoryStore(bootstrapState(['a', 'b', 'c'].map(NodeId)));
  const three = new RaftNode(cfg('a'), store.load());
  assert.equal(three.checkForceSolo(NodeId('b'))?.code, 'conf-change-invalid');
});

test('a node just restarted may not force solo before a leader confirmed its log (wait for all)', () => {
  const nodes = twoNodeCluster();
  const b = nodes.get('b')!;
  // b restarts from its disk: it cannot know whether a forced itself solo meanwhile.
  const again = new RaftNode({ ...cfg('b', 9), leaseHoldAtStart: false }, b.store.load());
  const r = again.forceSoloAfterFence(NodeId('a'), { fencedBy: 'fence_ipmilan' });
  assert.equal(r.ok ? '' : r.code, 'not-synced');
  assert.equal(again.conf.voters.join(), 'a,b');
  // The running b heard from leader a in this term, so it may (once a is fenced).
  assert.equal(b.raft.checkForceSolo(NodeId('a')), null);
  const ok = b.raft.forceSoloAfterFence(NodeId('a'), { fencedBy: 'fence_ipmilan on a-ipmi, by b' });
  assert.ok(ok.ok);
  assert.equal(b.raft.currentRole, 'leader');
  assert.deepEqual(b.raft.conf.voters, ['b']);
  const rd = b.raft.ready();
  assert.ok(rd.hardState && rd.hardState.term === ok.term && rd.hardState.vote === 'b');
  assert.deepEqual(
    rd.committedEntries.map((e) => e.type),
    ['conf', 'normal'],
  );
  assert.match(rd.entries[0]!.data, /"fencedRemoveNode".*fence_ipmilan on a-ipmi, by b/);
  b.raft.advance(rd);
});

test('a fenced removal cannot be proposed as an ordinary membership change', () => {
  const nodes = twoNodeCluster();
  const r = nodes
    .get('a')!
    .raft.proposeConfChange({ type: 'fencedRemoveNode', node: NodeId('b'), fencedBy: 'I say so' });
  assert.equal(r.ok ? '' : r.code, 'conf-change-invalid');
  assert.match(r.ok ? '' : r.message, /forceSoloAfterFence/);
});

test('removing a voter from a two-voter cluster waits for that voter to hold the change', () => {
  const nodes = twoNodeCluster();
  const a = nodes.get('a')!.raft;
  const commitBefore = a.status().commit;
  const r = a.proposeConfChange({ type: 'removeNode', node: NodeId('b') });
  assert.ok(r.ok);
  // b is unreachable: a alone (the new configuration's quorum) must not commit it.
  settle(nodes, (m) => m.to === 'b' || m.from === 'b');
  assert.equal(a.status().commit, commitBefore);
  for (let i = 0; i < 3 && a.status().commit < r.index; i++) {
    a.tick(); // a heartbeat: b answers, a sends it the entry
    settle(nodes);
  }
  assert.equal(a.status().commit, r.index);
  assert.deepEqual(nodes.get('b')!.raft.conf.voters, ['a']);
});

test('a survivor whose re-added peer dies again before acknowledging can fence it and go solo again', () => {
  const nodes = twoNodeCluster();
  const a = nodes.get('a')!.raft;
  assert.ok(a.forceSoloAfterFence(NodeId('b'), { fencedBy: 'fence_ipmilan' }).ok);
  a.advance(a.ready());
  const add = a.proposeConfChange({ type: 'addNode', node: NodeId('b') });
  assert.ok(add.ok);
  a.advance(a.ready());
  // b never answers: a loses leadership (check-quorum) and the re-add stays uncommitted.
  for (let i = 0; i < 40 && a.currentRole === 'leader'; i++) {
    a.tick();
    a.advance(a.ready());
  }
  assert.notEqual(a.currentRole, 'leader');
  assert.ok(a.status().commit < add.index);
  assert.equal(a.checkForceSolo(NodeId('b')), null);
  const again = a.forceSoloAfterFence(NodeId('b'), { fencedBy: 'fence_ipmilan, second time' });
  assert.ok(again.ok);
  assert.deepEqual(a.conf.voters, ['a']);
  const rd = a.ready();
  assert.ok(rd.committedEntries.some((e) => e.index === add.index));
  a.advance(rd);
});

test('a removal of a dead peer that can never commit is resolved by fencing it and forcing solo', () => {
  const nodes = twoNodeCluster();
  const a = nodes.get('a')!.raft;
  const rm = a.proposeConfChange({ type: 'removeNode', node: NodeId('b') });
  assert.ok(rm.ok);
  a.advance(a.ready()); // b is dead: nothing reaches it
  assert.deepEqual(a.conf.voters, ['a']);
  assert.ok(a.status().commit < rm.index);
  assert.ok(a.propose('stuck').ok);
  a.advance(a.ready());
  assert.ok(a.status().commit < rm.index, 'nothing commits without b');
  assert.equal(a.checkForceSolo(NodeId('b')), null);
  const r = a.forceSoloAfterFence(NodeId('b'), { fencedBy: 'fence_ipmilan' });
  assert.ok(r.ok);
  const rd = a.ready();
  assert.deepEqual(
    rd.committedEntries.map((e) => e.data).filter((d) => d === 'stuck'),
    ['stuck'],
  );
  a.advance(rd);
  assert.equal(a.status().commit, a.status().lastIndex);
});
