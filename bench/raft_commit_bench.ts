/**
 * Raft commit latency for CIB changes on 3 in-process nodes. Messages go through the in-memory
 * path (encoded and decoded with the real codec, delivered in the same process, no sockets);
 * each node persists through its own FileStore in a temp dir with real fsync. One proposal at
 * a time: latency = propose on the leader → the leader applies the committed entry. Followers'
 * fsyncs run one after another in this single thread, so this is an upper bound on the
 * disk part compared with 3 machines fsyncing in parallel. The same run over MemoryStores shows
 * the cost of the core alone.
 *
 *   node --import tsx bench/raft_commit_bench.ts [--count 500]
 *
 * Printed, never asserted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { CibStateMachine, encodeCibCommand } from '../src/consensus/cib_state_machine.ts';
import { decodeMessage, encodeMessage } from '../src/consensus/codec.ts';
import { FileStore } from '../src/consensus/file_store.ts';
import { bootstrapState, RaftNode } from '../src/consensus/raft.ts';
import { MemoryStore, type RaftStore } from '../src/consensus/store.ts';
import { NodeId } from '../src/lib/brand.ts';
import { SeededRng } from '../src/lib/prng.ts';

const MAX_COUNT = 100_000;
/** Rounds of delivery per commit before we call it stuck. */
const MAX_ROUNDS = 1000;

interface BenchNode {
  raft: RaftNode;
  store: RaftStore;
  sm: CibStateMachine;
  inbox: Uint8Array[];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function runCluster(kind: 'file' | 'memory', count: number): number[] {
  const ids = ['b1', 'b2', 'b3'].map(NodeId);
  const dir = mkdtempSync(join(tmpdir(), 'halo-raft-bench-'));
  try {
    const nodes = new Map<string, BenchNode>();
    for (const [i, id] of ids.entries()) {
      const store: RaftStore = kind === 'file' ? FileStore.open(join(dir, id)) : new MemoryStore();
      store.load();
      const bs = bootstrapState(ids);
      store.persist({ hardState: bs.hardState, snapshot: bs.snapshot, entries: [], compaction: null });
      const raft = new RaftNode(
        { id, electionTicks: 10, heartbeatTicks: 1, rng: new SeededRng(i + 1), leaseHoldAtStart: false },
        store.load(),
      );
      nodes.set(id, { raft, store, sm: new CibStateMachine(), inbox: [] });
    }
    const pump = (): void => {
      for (let round = 0; round < MAX_ROUNDS; round++) {
        let moved = false;
        for (const n of nodes.values()) {
          while (n.raft.hasReady()) {
            moved = true;
            const rd = n.raft.ready();
            n.store.persist(rd);
            for (const m of rd.messages) nodes.get(m.to)?.inbox.push(encodeMessage(m));
            if (rd.snapshot) n.sm.restore(rd.snapshot.data);
            for (const e of rd.committedEntries) n.sm.apply(e);
            n.raft.advance(rd);
          }
          const inbox = n.inbox;
          n.inbox = [];
          for (const b of inbox) {
            moved = true;
            const d = decodeMessage(b);
            if (d.ok) n.raft.step(d.value);
          }
        }
        if (!moved) return;
      }
      throw new Error(`no quiescence after ${MAX_ROUNDS} rounds`);
    };
    const leader = nodes.get(ids[0]!)!;
    leader.raft.campaign();
    pump();
    if (leader.raft.currentRole !== 'leader') throw new Error('b1 did not become leader');
    const lat: number[] = [];
    for (let i = 0; i < count; i++) {
      const cmd = encodeCibCommand({
        op: 'set-node-attribute',
        node: 'b2',
        name: 'bench',
        value: String(i),
        lifetime: 'reboot',
      });
      const t0 = performance.now();
      const r = leader.raft.propose(cmd);
      if (!r.ok) throw new Error(r.message);
      pump();
      if (leader.raft.status().applied < r.index) throw new Error(`entry ${r.index} not applied`);
      lat.push(performance.now() - t0);
    }
    for (const n of nodes.values()) n.store.close();
    return lat.sort((a, b) => a - b);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function main(): void {
  const { values } = parseArgs({ options: { count: { type: 'string', default: '500' } } });
  const count = Number(values.count);
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_COUNT)
    throw new Error(`--count must be 1..${MAX_COUNT}`);
  console.log(
    `raft commit latency, 3 in-process nodes, in-memory message path, ${count} sequential CIB changes`,
  );
  for (const kind of ['file', 'memory'] as const) {
    const lat = runCluster(kind, count);
    const f = (x: number) => `${x.toFixed(3)} ms`;
    console.log(
      `  ${kind === 'file' ? 'FileStore (fsync, tmpdir)' : 'MemoryStore (no disk)   '}: p50 ${f(percentile(lat, 50))}  p99 ${f(percentile(lat, 99))}  max ${f(lat[lat.length - 1]!)}`,
    );
  }
  console.log(`  tmpdir: ${tmpdir()} (the fsync cost depends on the filesystem under it)`);
}

main();
