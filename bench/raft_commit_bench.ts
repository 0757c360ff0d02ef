/**
 * Raft commit latency for CIB changes on 3 in-process nodes, each persisting through its own
 * FileStore in a temp dir with real fsync (and, for comparison, over MemoryStores: the cost of
 * the core alone). One proposal at a time: latency = propose on the leader → the leader applies
 * the committed entry. Two message paths:
 *   - in-memory: encoded and decoded with the real codec, handed over in the same process;
 *   - udp: each node has its own UDP socket on 127.0.0.1 (plain datagrams, no encryption —
 *     the transport's AEAD is measured elsewhere).
 * All nodes share one thread, so the followers' fsyncs run one after another: an upper bound
 * on the disk part compared with 3 machines fsyncing in parallel.
 *
 *   node --import tsx bench/raft_commit_bench.ts [--count 500] [--help]
 *
 * `--count` is 1..100000; `--help` lists the options; a bad one exits 2 before anything runs.
 * Printed, never asserted.
 */
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CibStateMachine, encodeCibCommand } from '../src/consensus/cib_state_machine.ts';
import { decodeMessage, encodeMessage } from '../src/consensus/codec.ts';
import { FileStore } from '../src/consensus/file_store.ts';
import { bootstrapState, RaftNode } from '../src/consensus/raft.ts';
import { MemoryStore, type RaftStore } from '../src/consensus/store.ts';
import { NodeId } from '../src/lib/brand.ts';
import { SeededRng } from '../src/lib/prng.ts';
import { benchArgs, option, wholeNumber } from './args.ts';

const MAX_COUNT = 100_000;
/** In-memory mode: rounds of delivery per commit before we call it stuck. */
const MAX_ROUNDS = 1000;
/** UDP mode: a commit that takes longer than this is reported as stuck. */
const UDP_COMMIT_DEADLINE_MS = 5000;
/** UDP mode: tick interval, so that a lost datagram is retried by the next heartbeat. */
const UDP_TICK_MS = 10;

const CLI = {
  name: 'raft_commit_bench',
  summary:
    'Raft commit latency for CIB changes on 3 in-process nodes (FileStore with fsync, and MemoryStore), in memory and over loopback UDP (printed, never asserted).',
  options: {
    count: option({
      metavar: 'N',
      help: 'sequential CIB changes per path',
      check: wholeNumber(1, MAX_COUNT),
      default: '500',
    }),
  },
} as const;

interface BenchNode {
  raft: RaftNode;
  store: RaftStore;
  sm: CibStateMachine;
  inbox: Uint8Array[];
}

type StoreKind = 'file' | 'memory';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function makeNodes(kind: StoreKind, dir: string): Map<string, BenchNode> {
  const ids = ['b1', 'b2', 'b3'].map(NodeId);
  const nodes = new Map<string, BenchNode>();
  for (const [i, id] of ids.entries()) {
    const store: RaftStore = kind === 'file' ? FileStore.open(join(dir, id)) : new MemoryStore();
    store.load();
    const bs = bootstrapState(ids);
    store.persist({ hardState: bs.hardState, snapshot: bs.snapshot, entries: [], compaction: null });
    const raft = new RaftNode(
      { id, electionTicks: 20, heartbeatTicks: 1, rng: new SeededRng(i + 1), leaseHoldAtStart: false },
      store.load(),
    );
    nodes.set(id, { raft, store, sm: new CibStateMachine(), inbox: [] });
  }
  return nodes;
}

/** Persist → send → apply → advance for one node (the Ready contract). */
function drive(n: BenchNode, send: (to: string, bytes: Uint8Array) => void): boolean {
  let moved = false;
  while (n.raft.hasReady()) {
    moved = true;
    const rd = n.raft.ready();
    n.store.persist(rd);
    for (const m of rd.messages) send(m.to, encodeMessage(m));
    if (rd.snapshot) n.sm.restore(rd.snapshot.data);
    for (const e of rd.committedEntries) n.sm.apply(e);
    n.raft.advance(rd);
  }
  return moved;
}

function command(i: number): string {
  return encodeCibCommand({
    op: 'set-node-attribute',
    node: 'b2',
    name: 'bench',
    value: String(i),
    lifetime: 'reboot',
  });
}

function runInMemory(kind: StoreKind, count: number): number[] {
  const dir = mkdtempSync(join(tmpdir(), 'halo-raft-bench-'));
  const nodes = makeNodes(kind, dir);
  try {
    const send = (to: string, bytes: Uint8Array) => nodes.get(to)?.inbox.push(bytes);
    const pump = (): void => {
      for (let round = 0; round < MAX_ROUNDS; round++) {
        let moved = false;
        for (const n of nodes.values()) {
          moved = drive(n, send) || moved;
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
    const leader = nodes.get('b1')!;
    leader.raft.campaign();
    pump();
    if (leader.raft.currentRole !== 'leader') throw new Error('b1 did not become leader');
    const lat: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const r = leader.raft.propose(command(i));
      if (!r.ok) throw new Error(r.message);
      pump();
      if (leader.raft.status().applied < r.index) throw new Error(`entry ${r.index} not applied`);
      lat.push(performance.now() - t0);
    }
    return lat.sort((a, b) => a - b);
  } finally {
    for (const n of nodes.values()) n.store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runUdp(kind: StoreKind, count: number): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), 'halo-raft-bench-'));
  const nodes = makeNodes(kind, dir);
  const sockets = new Map<string, Socket>();
  const ports = new Map<string, number>();
  let waiter: { index: number; done: () => void } | null = null;
  const step = (id: string): void => {
    const sock = sockets.get(id)!;
    drive(nodes.get(id)!, (to, bytes) => {
      const port = ports.get(to);
      if (port !== undefined) sock.send(bytes, port, '127.0.0.1');
    });
    if (id === 'b1' && waiter && nodes.get(id)!.raft.status().applied >= waiter.index) {
      const w = waiter;
      waiter = null;
      w.done();
    }
  };
  let ticker: NodeJS.Timeout | undefined;
  try {
    for (const id of nodes.keys()) {
      const sock = createSocket('udp4');
      sock.on('message', (buf) => {
        const d = decodeMessage(buf);
        if (d.ok) nodes.get(id)!.raft.step(d.value);
        step(id);
      });
      await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
      sockets.set(id, sock);
      ports.set(id, sock.address().port);
    }
    ticker = setInterval(() => {
      for (const [id, n] of nodes) {
        n.raft.tick();
        step(id);
      }
    }, UDP_TICK_MS);
    const wait = (index: number): Promise<void> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`entry ${index} not applied within ${UDP_COMMIT_DEADLINE_MS} ms`)),
          UDP_COMMIT_DEADLINE_MS,
        );
        waiter = {
          index,
          done: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        step('b1');
      });
    const leader = nodes.get('b1')!;
    leader.raft.campaign();
    await wait(2); // the new leader's empty entry
    const lat: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const r = leader.raft.propose(command(i));
      if (!r.ok) throw new Error(r.message);
      await wait(r.index);
      lat.push(performance.now() - t0);
    }
    return lat.sort((a, b) => a - b);
  } finally {
    if (ticker) clearInterval(ticker);
    for (const s of sockets.values()) s.close();
    for (const n of nodes.values()) n.store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { count } = benchArgs(CLI);
  console.log(
    `raft commit latency, 3 in-process nodes, ${count} sequential CIB changes (propose → leader applies)`,
  );
  const f = (x: number) => `${x.toFixed(3)} ms`;
  const line = (label: string, lat: number[]) =>
    console.log(
      `  ${label.padEnd(34)} p50 ${f(percentile(lat, 50))}  p99 ${f(percentile(lat, 99))}  max ${f(lat[lat.length - 1]!)}`,
    );
  line('in-memory path, FileStore (fsync)', runInMemory('file', count));
  line('in-memory path, MemoryStore', runInMemory('memory', count));
  line('loopback UDP, FileStore (fsync)', await runUdp('file', count));
  line('loopback UDP, MemoryStore', await runUdp('memory', count));
  console.log(`  stores under ${tmpdir()} (the fsync cost depends on the filesystem there)`);
}

await main();
