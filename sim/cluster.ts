/**
 * One deterministic simulation run: a Raft cluster of 2–7 nodes (plus an optional witness and
 * spare nodes that may be added later) on a simulated clock, network and disks, driven by one
 * seed. A safety phase injects faults a correct cluster must survive while invariant checkers
 * watch every step; a liveness phase then heals everything and requires the cluster to elect
 * a leader, commit a new entry and bring every live voter to the same state within a bound.
 */

import { type CibCommand, CibStateMachine, encodeCibCommand } from '../src/consensus/cib_state_machine.ts';
import { decodeMessage, encodeMessage } from '../src/consensus/codec.ts';
import { FileStore } from '../src/consensus/file_store.ts';
import { bootstrapState, emptyState, RaftNode } from '../src/consensus/raft.ts';
import type { Entry, Message } from '../src/consensus/types.ts';
import { NodeId } from '../src/lib/brand.ts';
import { SeededRng } from '../src/lib/prng.ts';
import { EventQueue } from './event_queue.ts';
import { SimCrash, SimFs } from './sim_fs.ts';

/** Simulation constants. Times are simulated milliseconds. */
export const SIM = {
  tickMs: 10,
  electionTicks: 10,
  heartbeatTicks: 2,
  /** Length of the fault phase. */
  safetyPhaseMs: 4000,
  /**
   * After the last fault, the cluster must converge within this long: 20 election timeouts
   * (at 2 000 seeds the slowest took about 300 ms; split votes among 7 nodes take a few rounds).
   */
  livenessBoundMs: 2000,
  /** Normal one-way network delay range. */
  minDelayMs: 1,
  maxDelayMs: 8,
  /** Compact once a node's log holds this many applied entries. */
  compactAfterEntries: 24,
  /** Guard against a livelock inside one node's Ready loop. */
  maxReadyLoops: 1000,
  /** Guard against a runaway event loop. */
  maxEvents: 2_000_000,
  /** One seed in this many runs the two-node fence scenario (chosen by a separate RNG stream). */
  fenceScenarioPeriod: 5,
  /** In the fence scenario: how often each node's simulated daemon looks at its Raft state. */
  daemonPeriodMs: 50,
  /** A node without a leader this long fences its peer (3 election timeouts: the peer is lost). */
  fenceAfterMs: 300,
} as const;

export type Sabotage = 'amnesia' | 'fast-clock' | 'lying-fence';

export interface SimOptions {
  readonly seed: number;
  readonly verbose?: boolean;
  /**
   * Deliberately break a guarantee to prove the checkers notice (tests only):
   * `amnesia` restarts a node with its disk wiped; `fast-clock` runs every other node's clock
   * at twice the rate, far beyond what the lease margin allows for; `lying-fence` (two-node
   * fence scenario) has the power switch confirm a peer off without powering it off.
   */
  readonly sabotage?: Sabotage;
  readonly log?: (line: string) => void;
}

export interface SimResult {
  readonly seed: number;
  readonly faults: number;
  readonly violations: readonly string[];
  readonly nodes: number;
  readonly committed: number;
  readonly events: number;
  /** Simulated ms from healing to convergence (-1 when it did not converge). */
  readonly convergedMs: number;
  /** The two-node fence scenario: fences done, solo takeovers, re-adds of a fenced peer committed. */
  readonly fenceScenario: boolean;
  readonly fences: number;
  readonly soloForced: number;
  readonly readded: number;
}

type Event =
  | { kind: 'tick'; node: number }
  | { kind: 'deliver'; to: number; bytes: Uint8Array }
  | { kind: 'restart'; node: number }
  | { kind: 'resume'; node: number }
  | { kind: 'heal'; id: number }
  | { kind: 'fault' }
  | { kind: 'propose' }
  | { kind: 'endFaults' }
  | { kind: 'netReset'; id: number }
  | { kind: 'daemon' };

interface SimNode {
  readonly idx: number;
  readonly id: NodeId;
  readonly witness: boolean;
  readonly fs: SimFs;
  raft: RaftNode | null;
  store: FileStore | null;
  paused: boolean;
  pausedAt: number;
  /** Messages that arrived while paused (the socket buffer). */
  buffered: Uint8Array[];
  /** Applied entry keys ("index/term/type/data"), in order; the simulated state machine. */
  applied: string[];
  /** The real replicated state machine, fed the same entries. */
  cib: CibStateMachine;
  appliedIndex: number;
  firstAppliedIndex: number;
  /** Highest commit index already checked. */
  checkedCommit: number;
  lastRole: string;
  boots: number;
  /** Fence scenario: since when the node has known no leader (-1: it knows one). */
  leaderlessSince: number;
}

class Violation extends Error {}

function raftLeader(n: SimNode): boolean {
  return n.raft?.currentRole === 'leader';
}

export function runSeed(opts: SimOptions): SimResult {
  const sim = new Simulation(opts);
  return sim.run();
}

class Simulation {
  private readonly rng: SeededRng;
  private readonly q = new EventQueue<Event>();
  private readonly nodes: SimNode[] = [];
  private readonly log: (line: string) => void;
  private readonly verbose: boolean;
  private now = 0;
  private faults = 0;
  private events = 0;
  private faultsActive = true;
  private proposals = 0;
  /**
   * The two-node fence scenario (docs/ARCHITECTURE.md "Two-node rule"): two voters, no
   * witness, no spares; each node runs a simulated daemon that, after losing its leader, asks
   * a simulated power switch to fence its peer (which powers the peer off if it is not off
   * already — in a partition too) and then forces itself solo; a leader re-adds a returned peer.
   */
  private fenceMode = false;
  private fences = 0;
  private soloForced = 0;
  private readded = 0;

  // Network state.
  private lossRate = 0;
  private dupRate = 0;
  private extraDelayMs = 0;
  private blocked = new Map<number, Set<string>>(); // heal id -> blocked "from>to" links
  private healSeq = 0;

  // What the checkers know.
  private leaderOfTerm = new Map<number, NodeId>();
  private committed = new Map<number, string>(); // index -> entry key
  private maxCommitted = 0;
  private entryById = new Map<string, string>(); // "index/term" -> key

  constructor(private readonly opts: SimOptions) {
    this.rng = new SeededRng(opts.seed);
    this.verbose = opts.verbose ?? false;
    this.log = opts.log ?? ((l) => console.log(l));
  }

  run(): SimResult {
    const violations: string[] = [];
    try {
      this.setup();
      this.loop(SIM.safetyPhaseMs + SIM.livenessBoundMs);
      this.checkLiveness();
    } catch (e) {
      if (!(e instanceof Violation)) throw e;
      violations.push(e.message);
    }
    return {
      seed: this.opts.seed,
      faults: this.faults,
      violations,
      nodes: this.nodes.length,
      committed: this.maxCommitted,
      events: this.events,
      convergedMs: violations.length === 0 ? this.now - this.livenessStart : -1,
      fenceScenario: this.fenceMode,
      fences: this.fences,
      soloForced: this.soloForced,
      readded: this.readded,
    };
  }

  private trace(msg: string): void {
    if (this.verbose) this.log(`[${String(this.now).padStart(5)}ms] ${msg}`);
  }

  private fail(msg: string): never {
    this.trace(`VIOLATION: ${msg}`);
    throw new Violation(`seed ${this.opts.seed} at ${this.now}ms: ${msg}`);
  }

  // -------------------------------------------------------------------------------------------
  // Setup

  private setup(): void {
    // A separate stream picks the scenario, so the other seeds keep their exact runs.
    this.fenceMode = new SeededRng(this.opts.seed ^ 0x2f83).int(SIM.fenceScenarioPeriod) === 0;
    let voters = 2 + this.rng.int(6); // 2..7
    let witness = voters % 2 === 0 && this.rng.int(2) === 0;
    let spares = this.rng.int(3);
    if (this.fenceMode) {
      voters = 2;
      witness = false;
      spares = 0;
    }
    const total = voters + (witness ? 1 : 0) + spares;
    const ids = Array.from({ length: total }, (_, i) => NodeId(`n${i + 1}`));
    const initialVoters = ids.slice(0, voters + (witness ? 1 : 0));
    for (let i = 0; i < total; i++) {
      const fs = new SimFs();
      const n: SimNode = {
        idx: i,
        id: ids[i]!,
        witness: witness && i === voters,
        fs,
        raft: null,
        store: null,
        paused: false,
        pausedAt: 0,
        buffered: [],
        applied: [],
        cib: new CibStateMachine(),
        appliedIndex: 0,
        firstAppliedIndex: 0,
        checkedCommit: 0,
        lastRole: 'follower',
        boots: 0,
        leaderlessSince: -1,
      };
      // `halo cluster init` on the initial members; spares start empty and wait to be added.
      const store = new FileStore(fs);
      store.load();
      if (i < initialVoters.length) {
        const bs = bootstrapState(initialVoters);
        store.persist({ snapshot: bs.snapshot, compaction: null, entries: [], hardState: bs.hardState });
      }
      this.nodes.push(n);
      this.boot(n);
      this.q.push(this.rng.int(SIM.tickMs), { kind: 'tick', node: i });
    }
    this.trace(
      `cluster: voters ${initialVoters.join(',')}${witness ? ` (witness ${ids[voters]})` : ''}, spares ${ids.slice(initialVoters.length).join(',') || 'none'}${this.fenceMode ? ', two-node fence scenario' : ''}`,
    );
    if (this.fenceMode) this.q.push(SIM.daemonPeriodMs, { kind: 'daemon' });
    this.q.push(50 + this.rng.int(200), { kind: 'fault' });
    this.q.push(20 + this.rng.int(50), { kind: 'propose' });
    this.q.push(SIM.safetyPhaseMs, { kind: 'endFaults' });
  }

  private boot(n: SimNode): void {
    n.boots++;
    const store = new FileStore(n.fs);
    let state = store.load();
    if (this.opts.sabotage === 'amnesia' && n.boots > 1) state = emptyState();
    n.store = store;
    n.raft = new RaftNode(
      {
        id: n.id,
        electionTicks: SIM.electionTicks,
        heartbeatTicks: SIM.heartbeatTicks,
        rng: new SeededRng(this.opts.seed * 131 + n.idx * 7919 + n.boots),
        witness: n.witness,
      },
      state,
    );
    this.restore(n, state.snapshot?.data ?? '');
    n.appliedIndex = state.snapshot?.meta.index ?? 0;
    n.firstAppliedIndex = n.appliedIndex - n.applied.length;
    n.checkedCommit = 0;
    n.lastRole = 'follower';
    n.paused = false;
    n.buffered = [];
    this.checkSnapshotContent(n, 'recovered snapshot');
  }

  // -------------------------------------------------------------------------------------------
  // The event loop

  private loop(endMs: number): void {
    for (;;) {
      const t = this.q.peekTime();
      if (t === undefined || t > endMs) return;
      if (++this.events > SIM.maxEvents) this.fail(`more than ${SIM.maxEvents} events: runaway`);
      const { at, ev } = this.q.pop()!;
      this.now = at;
      this.handle(ev);
      this.checkLeases();
      if (!this.faultsActive && this.converged()) return;
    }
  }

  private handle(ev: Event): void {
    switch (ev.kind) {
      case 'tick': {
        const n = this.nodes[ev.node]!;
        this.q.push(this.now + this.tickMsOf(n), ev);
        if (n.raft && !n.paused) {
          n.raft.tick();
          this.drive(n);
        }
        break;
      }
      case 'deliver': {
        const n = this.nodes[ev.to]!;
        if (!n.raft) break;
        if (n.paused) {
          n.buffered.push(ev.bytes);
          break;
        }
        this.deliver(n, ev.bytes);
        break;
      }
      case 'restart': {
        const n = this.nodes[ev.node]!;
        if (n.raft) break;
        this.trace(`restart ${n.id}`);
        this.boot(n);
        break;
      }
      case 'resume':
        this.resume(this.nodes[ev.node]!);
        break;
      case 'heal':
        this.blocked.delete(ev.id);
        this.trace(`heal partition #${ev.id}`);
        break;
      case 'netReset':
        this.lossRate = 0;
        this.dupRate = 0;
        this.extraDelayMs = 0;
        break;
      case 'fault':
        if (!this.faultsActive) break;
        this.injectFault();
        this.q.push(this.now + 50 + this.rng.int(400), { kind: 'fault' });
        break;
      case 'propose':
        this.proposeRandom();
        if (this.faultsActive) this.q.push(this.now + 10 + this.rng.int(120), { kind: 'propose' });
        break;
      case 'endFaults':
        this.endFaults();
        break;
      case 'daemon':
        this.q.push(this.now + SIM.daemonPeriodMs, ev);
        this.runDaemons();
        break;
    }
  }

  /**
   * What the daemon does about the two-node rule (fence scenario only). A node that has had no
   * leader for `fenceAfterMs` and could take over (`checkForceSolo`) fences its peer: the
   * simulated power switch powers the peer off — it confirms only a node that really is off —
   * and then the node forces itself solo. Fencing stops with the fault phase. A leader re-adds
   * every node that is up and not a voter (the peer rejoined membership).
   */
  private runDaemons(): void {
    const first = this.rng.int(this.nodes.length);
    for (let k = 0; k < this.nodes.length; k++) {
      const n = this.nodes[(first + k) % this.nodes.length]!;
      const raft = n.raft;
      if (!raft || n.paused) {
        n.leaderlessSince = -1;
        continue;
      }
      if (raft.currentRole === 'leader') {
        n.leaderlessSince = -1;
        for (const p of this.nodes) {
          if (p === n || !p.raft || p.paused || raft.conf.voters.includes(p.id)) continue;
          const r = raft.proposeConfChange({ type: 'addNode', node: p.id });
          if (r.ok) this.trace(`${n.id}: re-add fenced peer ${p.id} at index ${r.index}`);
          this.drive(n);
          if (n.raft !== raft) break;
        }
        continue;
      }
      if (raft.currentLeader !== null) {
        n.leaderlessSince = -1;
        continue;
      }
      if (n.leaderlessSince < 0) n.leaderlessSince = this.now;
      if (!this.faultsActive || this.now - n.leaderlessSince < SIM.fenceAfterMs) continue;
      const peer = raft.conf.voters.find((v) => v !== n.id);
      if (peer === undefined || raft.checkForceSolo(peer) !== null) continue;
      const p = this.nodes[this.idxOf(peer)]!;
      this.faults++;
      this.fences++;
      if (this.opts.sabotage === 'lying-fence') this.trace(`${n.id}: fence ${p.id}: the switch lies "off"`);
      else if (p.raft) this.crash(p, `fenced by ${n.id}: power switch off`);
      else this.trace(`${n.id}: fence ${p.id}: power switch confirms it is off`);
      // The power switch confirmed: p is off now (it restarts later, as a fenced node reboots).
      const r = raft.forceSoloAfterFence(peer, { fencedBy: `sim power switch, requested by ${n.id}` });
      if (!r.ok)
        this.fail(`${n.id}: forceSoloAfterFence refused after checkForceSolo accepted: ${r.message}`);
      this.soloForced++;
      this.trace(`${n.id}: forced solo after fencing ${p.id} (conf entry ${r.index}, term ${r.term})`);
      n.leaderlessSince = -1;
      this.drive(n);
    }
  }

  /** Restores a node's state machines from snapshot data ('' = the new cluster's empty state). */
  private restore(n: SimNode, data: string): void {
    if (data === '') {
      n.applied = [];
      n.cib.restore('');
      return;
    }
    const v = JSON.parse(data) as { applied: string[]; cib: string };
    n.applied = v.applied;
    n.cib.restore(v.cib);
  }

  /** Every node's clock runs at the same rate, except under the `fast-clock` sabotage. */
  private tickMsOf(n: SimNode): number {
    return this.opts.sabotage === 'fast-clock' && n.idx % 2 === 1 ? SIM.tickMs / 2 : SIM.tickMs;
  }

  private deliver(n: SimNode, bytes: Uint8Array): void {
    const d = decodeMessage(bytes);
    if (!d.ok) this.fail(`codec rejected a message the core produced: ${d.message}`);
    n.raft!.step(d.value);
    this.drive(n);
  }

  private resume(n: SimNode): void {
    if (!n.paused || !n.raft) return;
    n.paused = false;
    // The shell catches up on the ticks it missed before it reads its socket.
    const missed = Math.floor((this.now - n.pausedAt) / this.tickMsOf(n));
    this.trace(`resume ${n.id} (${missed} missed ticks)`);
    for (let i = 0; i < missed; i++) n.raft.tick();
    this.drive(n);
    const buf = n.buffered;
    n.buffered = [];
    for (const b of buf) if (n.raft) this.deliver(n, b);
  }

  /** Runs the Ready loop of one node: persist, check, send, apply, advance. */
  private drive(n: SimNode): void {
    for (let loops = 0; n.raft?.hasReady(); loops++) {
      if (loops > SIM.maxReadyLoops) this.fail(`${n.id}: Ready loop did not settle`);
      const raft = n.raft;
      const rd = raft.ready();
      try {
        n.store!.persist(rd);
      } catch (e) {
        if (!(e instanceof SimCrash) && !((e as Error).cause instanceof SimCrash)) throw e;
        this.crash(n, 'during a disk write');
        return;
      }
      for (const e of rd.entries) this.observeEntry(n, e);
      for (const m of rd.messages) this.send(m);
      if (rd.snapshot) {
        this.restore(n, rd.snapshot.data);
        n.appliedIndex = rd.snapshot.meta.index;
        n.firstAppliedIndex = n.appliedIndex - n.applied.length;
        this.checkSnapshotContent(n, 'installed snapshot');
      }
      for (const e of rd.committedEntries) this.apply(n, e);
      raft.advance(rd);
      this.observeCommit(n);
      this.observeRole(n);
      const st = raft.status();
      if (st.applied - st.firstIndex > SIM.compactAfterEntries && this.rng.int(4) === 0) {
        raft.compact(st.applied, JSON.stringify({ applied: n.applied, cib: n.cib.snapshot() }));
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Network

  private send(m: Message): void {
    const from = this.idxOf(m.from);
    const to = this.idxOf(m.to);
    if (to < 0) return;
    const key = `${from}>${to}`;
    for (const set of this.blocked.values()) if (set.has(key)) return;
    if (this.rng.next() < this.lossRate) return;
    const bytes = encodeMessage(m);
    const copies = this.rng.next() < this.dupRate ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      const delay =
        SIM.minDelayMs +
        this.rng.int(SIM.maxDelayMs - SIM.minDelayMs + 1) +
        (this.extraDelayMs ? this.rng.int(this.extraDelayMs) : 0);
      this.q.push(this.now + delay, { kind: 'deliver', to, bytes });
    }
  }

  private idxOf(id: NodeId): number {
    return this.nodes.findIndex((n) => n.id === id);
  }

  // -------------------------------------------------------------------------------------------
  // Faults

  private injectFault(): void {
    const n = this.nodes[this.rng.int(this.nodes.length)]!;
    const kind = this.rng.int(10);
    this.faults++;
    switch (kind) {
      case 0:
        if (!n.raft) break;
        this.crash(n, 'power loss');
        break;
      case 1:
        if (!n.raft) break;
        // Crash in the middle of the next persist: the write is torn.
        n.fs.opsUntilCrash = this.rng.int(4);
        this.trace(`arm a crash of ${n.id} within its next disk writes`);
        break;
      case 2:
        if (!n.raft || n.paused) break;
        n.paused = true;
        n.pausedAt = this.now;
        this.trace(`pause ${n.id}`);
        this.q.push(this.now + 100 + this.rng.int(1500), { kind: 'resume', node: n.idx });
        break;
      case 3:
        this.partition(false);
        break;
      case 9:
        // The classic: cut the leader off from everyone (its lease must end before another begins).
        this.partition(true);
        break;
      case 4: {
        this.lossRate = 0.05 + this.rng.next() * 0.4;
        this.dupRate = this.rng.next() * 0.2;
        this.trace(`network: loss ${this.lossRate.toFixed(2)}, duplication ${this.dupRate.toFixed(2)}`);
        this.q.push(this.now + 200 + this.rng.int(1000), { kind: 'netReset', id: 0 });
        break;
      }
      case 5:
        this.extraDelayMs = 10 + this.rng.int(150);
        this.trace(`network: extra delay up to ${this.extraDelayMs}ms (reordering)`);
        this.q.push(this.now + 200 + this.rng.int(1000), { kind: 'netReset', id: 0 });
        break;
      case 6:
      case 7:
        this.membershipChange();
        break;
      default: {
        const leader = this.nodes.find((x) => x.raft?.currentRole === 'leader' && !x.paused);
        if (!leader) break;
        const voters = leader.raft!.conf.voters.filter((v) => v !== leader.id);
        const to = voters[this.rng.int(Math.max(1, voters.length))];
        if (to) {
          this.trace(`transfer leadership ${leader.id} -> ${to}`);
          leader.raft!.transferLeadership(to);
          this.drive(leader);
        }
      }
    }
  }

  private crash(n: SimNode, why: string): void {
    this.trace(`crash ${n.id} (${why})`);
    n.raft = null;
    n.store = null;
    n.paused = false;
    n.buffered = [];
    n.fs.crash(this.rng);
    this.q.push(this.now + 50 + this.rng.int(1500), { kind: 'restart', node: n.idx });
  }

  private partition(isolateLeader: boolean): void {
    const id = ++this.healSeq;
    const set = new Set<string>();
    const shape = this.rng.int(3);
    const count = this.nodes.length;
    const leader = this.nodes.findIndex((x) => x.raft?.currentRole === 'leader');
    if (isolateLeader) {
      if (leader < 0) return;
      for (let o = 0; o < count; o++) {
        if (o === leader) continue;
        set.add(`${o}>${leader}`);
        set.add(`${leader}>${o}`);
      }
    } else if (shape === 0) {
      // Split into two sides.
      const side = this.nodes.map(() => this.rng.int(2));
      for (let a = 0; a < count; a++)
        for (let b = 0; b < count; b++) if (side[a] !== side[b]) set.add(`${a}>${b}`);
    } else if (shape === 1) {
      // Asymmetric: one node can send but not receive (or the reverse).
      const x = this.rng.int(count);
      const inbound = this.rng.int(2) === 0;
      for (let o = 0; o < count; o++) if (o !== x) set.add(inbound ? `${o}>${x}` : `${x}>${o}`);
    } else {
      // Partial: a few random links cut.
      const links = 1 + this.rng.int(count);
      for (let i = 0; i < links; i++) {
        const a = this.rng.int(count);
        const b = this.rng.int(count);
        if (a !== b) {
          set.add(`${a}>${b}`);
          set.add(`${b}>${a}`);
        }
      }
    }
    this.blocked.set(id, set);
    this.trace(`partition #${id}: ${[...set].join(' ')}`);
    this.q.push(this.now + 100 + this.rng.int(1500), { kind: 'heal', id });
  }

  private membershipChange(): void {
    const leader = this.nodes.find((x) => x.raft?.currentRole === 'leader' && !x.paused);
    if (!leader) return;
    const voters = leader.raft!.conf.voters;
    const others = this.nodes.filter((x) => !voters.includes(x.id));
    const add = others.length > 0 && (voters.length <= 3 || this.rng.int(2) === 0);
    const target = add ? others[this.rng.int(others.length)]!.id : voters[this.rng.int(voters.length)]!;
    if (!add && voters.length <= 2) return;
    const r = leader.raft!.proposeConfChange({ type: add ? 'addNode' : 'removeNode', node: target });
    this.trace(
      `${leader.id}: propose ${add ? 'add' : 'remove'} ${target}: ${r.ok ? `index ${r.index}` : r.code}`,
    );
    this.drive(leader);
  }

  private proposeRandom(): void {
    const leader = this.nodes.find((x) => x.raft?.currentRole === 'leader' && !x.paused);
    if (!leader) return;
    const r = leader.raft!.propose(encodeCibCommand(this.randomCommand(++this.proposals)));
    if (r.ok) this.drive(leader);
  }

  /** A small CIB change of one of the kinds the controller makes. */
  private randomCommand(k: number): CibCommand {
    const node = this.nodes[this.rng.int(this.nodes.length)]!.id;
    // The fence scenario also exercises the controller's whole-node and delete commands (the
    // other seeds keep their exact runs).
    switch (this.rng.int(this.fenceMode ? 5 : 3)) {
      case 0:
        return { op: 'set-property', name: `prop-${this.rng.int(4)}`, value: `v${k}` };
      case 1:
        return {
          op: 'set-node-attribute',
          node,
          name: `attr-${this.rng.int(3)}`,
          value: this.rng.int(4) === 0 ? null : `v${k}`,
          lifetime: 'reboot',
        };
      case 3:
        return {
          op: 'replace-node-state',
          node,
          state: {
            id: node,
            uname: node,
            inCcm: 'true',
            crmd: 'online',
            transientAttributes: [],
            resources: [
              {
                id: `rsc-${this.rng.int(3)}`,
                class: 'ocf',
                provider: 'heartbeat',
                type: 'Dummy',
                ops: [
                  { id: `rsc_last_0`, operation: 'start', interval: '0', callId: String(k), rcCode: '0' },
                ],
              },
            ],
            hasLrm: true,
          },
        };
      case 4:
        return {
          op: 'delete-op-result',
          node,
          resource: `rsc-${this.rng.int(3)}`,
          id: `rsc_last_${this.rng.int(2)}`,
        };
      default:
        return {
          op: 'record-op-result',
          node,
          resource: { id: `rsc-${this.rng.int(3)}`, class: 'ocf', provider: 'heartbeat', type: 'Dummy' },
          result: {
            id: `rsc_last_${this.rng.int(2)}`,
            operation: this.rng.int(2) ? 'start' : 'monitor',
            interval: '0',
            callId: String(k),
            rcCode: '0',
          },
        };
    }
  }

  private endFaults(): void {
    this.faultsActive = false;
    this.trace('faults end: heal the network, restart and resume every node');
    this.blocked.clear();
    this.lossRate = 0;
    this.dupRate = 0;
    this.extraDelayMs = 0;
    for (const n of this.nodes) {
      n.fs.opsUntilCrash = -1;
      if (!n.raft) {
        this.boot(n);
        this.trace(`restart ${n.id}`);
      } else if (n.paused) this.resume(n);
    }
    this.livenessStart = this.now;
  }

  private livenessStart = 0;
  private livenessProposal: { index: number; term: number } | null = null;

  // -------------------------------------------------------------------------------------------
  // Invariants

  private entryKey(e: Entry): string {
    return `${e.index}/${e.term}/${e.type}/${e.data}`;
  }

  /** Log matching, part 1: two entries with the same index and term are the same entry. */
  private observeEntry(n: SimNode, e: Entry): void {
    const id = `${e.index}/${e.term}`;
    const key = this.entryKey(e);
    const seen = this.entryById.get(id);
    if (seen === undefined) this.entryById.set(id, key);
    else if (seen !== key) this.fail(`log matching: ${n.id} has ${key} but another node has ${seen}`);
  }

  /** Committed entries are never lost or changed: every node's committed prefix agrees. */
  private observeCommit(n: SimNode): void {
    const raft = n.raft!;
    const st = raft.status();
    for (let i = Math.max(n.checkedCommit + 1, st.firstIndex); i <= st.commit; i++) {
      const e = raft.entries(i, i)[0];
      if (!e) continue;
      const key = this.entryKey(e);
      const known = this.committed.get(i);
      if (known === undefined) this.committed.set(i, key);
      else if (known !== key)
        this.fail(`committed entry changed: ${n.id} has ${key} at commit, committed was ${known}`);
      if (i > this.maxCommitted) this.maxCommitted = i;
    }
    n.checkedCommit = Math.max(n.checkedCommit, st.commit);
  }

  /** State machine safety: entries are applied in index order and match what was committed. */
  private apply(n: SimNode, e: Entry): void {
    if (e.index !== n.appliedIndex + 1) this.fail(`${n.id} applied index ${e.index} after ${n.appliedIndex}`);
    const key = this.entryKey(e);
    const known = this.committed.get(e.index);
    if (known !== undefined && known !== key) this.fail(`${n.id} applied ${key} but ${known} was committed`);
    if (known === undefined) this.committed.set(e.index, key);
    if (e.index > this.maxCommitted) this.maxCommitted = e.index;
    n.applied.push(key);
    n.appliedIndex = e.index;
    if (this.fenceMode && e.type === 'conf' && raftLeader(n) && e.data.includes('"addNode"')) this.readded++;
    const r = n.cib.apply(e);
    // Deleting a record on a node with no status yet is refused — the same on every replica,
    // which the CIB comparison at the end checks; anything else refused is a bug.
    const refusedAlike = !r.ok && r.code === 'unknown-node' && e.data.includes('"delete-op-result"');
    if (!r.ok && !refusedAlike) this.fail(`${n.id} could not apply CIB command at ${e.index}: ${r.message}`);
    if (
      this.livenessProposal &&
      e.index === this.livenessProposal.index &&
      e.term !== this.livenessProposal.term
    ) {
      this.livenessProposal = null; // overwritten before commit: propose again
    }
  }

  private checkSnapshotContent(n: SimNode, what: string): void {
    for (let k = 0; k < n.applied.length; k++) {
      const index = n.firstAppliedIndex + k + 1;
      const known = this.committed.get(index);
      if (known !== undefined && known !== n.applied[k])
        this.fail(`${n.id} ${what} holds ${n.applied[k]} at ${index}, committed was ${known}`);
    }
  }

  /** Election safety and leader completeness. */
  private observeRole(n: SimNode): void {
    const raft = n.raft!;
    const role = raft.currentRole;
    if (role === n.lastRole) return;
    n.lastRole = role;
    this.trace(`${n.id} is ${role} in term ${raft.currentTerm}`);
    if (role !== 'leader') return;
    const term = raft.currentTerm;
    const other = this.leaderOfTerm.get(term);
    if (other !== undefined && other !== n.id) this.fail(`two leaders in term ${term}: ${other} and ${n.id}`);
    this.leaderOfTerm.set(term, n.id);
    const st = raft.status();
    for (let i = st.firstIndex; i <= this.maxCommitted; i++) {
      const known = this.committed.get(i);
      const e = raft.entries(i, i)[0];
      if (known !== undefined && (!e || this.entryKey(e) !== known)) {
        this.fail(`leader completeness: new leader ${n.id} (term ${term}) lacks committed entry ${known}`);
      }
    }
  }

  /** At most one node may believe it holds a valid leader lease at any moment. */
  private checkLeases(): void {
    let holder: SimNode | null = null;
    for (const n of this.nodes) {
      if (!n.raft || n.paused || n.raft.currentRole !== 'leader') continue;
      if (n.raft.currentTick > n.raft.leaseValidUntilTick()) continue;
      if (holder)
        this.fail(
          `two valid leader leases: ${holder.id} (term ${holder.raft!.currentTerm}) and ${n.id} (term ${n.raft.currentTerm})`,
        );
      holder = n;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Liveness

  /** Healed cluster: one leader, a fresh entry committed, every live voter applied the same. */
  private converged(): boolean {
    const leaders = this.nodes.filter((n) => n.raft?.currentRole === 'leader');
    if (leaders.length !== 1) return false;
    const leader = leaders[0]!.raft!;
    const lp = this.livenessProposal;
    // A probe accepted by a leader that lost its leadership before replicating it may be gone.
    if (lp && leader.status().commit < lp.index && leader.entries(lp.index, lp.index)[0]?.term !== lp.term) {
      this.livenessProposal = null;
    }
    if (!this.livenessProposal) {
      const r = leader.propose(
        encodeCibCommand({ op: 'set-property', name: 'liveness-probe', value: String(this.now) }),
      );
      if (!r.ok) return false;
      this.livenessProposal = { index: r.index, term: r.term };
      this.drive(leaders[0]!);
      return false;
    }
    const st = leader.status();
    if (st.commit < this.livenessProposal.index || leaders[0]!.appliedIndex !== st.commit) return false;
    // Two-node fence scenario: the fenced peer must be back as a voter, and know it.
    if (this.fenceMode) {
      if (st.voters.length !== this.nodes.length) return false;
      for (const n of this.nodes) if (n.raft?.conf.voters.join() !== st.voters.join()) return false;
    }
    for (const v of st.voters) {
      const n = this.nodes.find((x) => x.id === v);
      if (!n?.raft) return false;
      const s = n.raft.status();
      if (s.term !== st.term || s.leader !== st.id || n.appliedIndex !== st.commit) return false;
    }
    return true;
  }

  private checkLiveness(): void {
    if (this.faultsActive) this.fail('the run ended before the fault phase did');
    if (!this.converged()) {
      const states = this.nodes.map((n) => {
        if (!n.raft) return `${n.id}: down`;
        const s = n.raft.status();
        return `${n.id}: ${s.role} t${s.term} commit ${s.commit} applied ${n.appliedIndex} voters ${s.voters.join(',')}`;
      });
      this.fail(`liveness: no convergence within ${SIM.livenessBoundMs}ms of healing (${states.join('; ')})`);
    }
    this.trace(`converged ${this.now - this.livenessStart}ms after healing`);
    // Finally, every pair of live voters agrees on the whole overlapping log (log matching).
    const live = this.nodes.filter((n) => n.raft);
    for (const a of live) {
      for (const b of live) {
        if (a === b) continue;
        const sa = a.raft!.status();
        const sb = b.raft!.status();
        const lo = Math.max(sa.firstIndex, sb.firstIndex);
        const hi = Math.min(sa.lastIndex, sb.lastIndex);
        let matched = false;
        for (let i = hi; i >= lo; i--) {
          const ea = a.raft!.entries(i, i)[0]!;
          const eb = b.raft!.entries(i, i)[0]!;
          if (ea.term === eb.term) matched = true;
          if (matched && this.entryKey(ea) !== this.entryKey(eb))
            this.fail(`log matching: ${a.id} and ${b.id} differ at ${i} below a matching entry`);
        }
      }
    }
    // Every voter holds the same CIB, down to the version counters.
    const leaderNode = this.nodes.find((n) => n.raft?.currentRole === 'leader')!;
    const cib = leaderNode.cib.snapshot();
    for (const v of leaderNode.raft!.conf.voters) {
      const n = this.nodes.find((x) => x.id === v)!;
      if (n.cib.snapshot() !== cib)
        this.fail(`CIB divergence: ${n.id} and leader ${leaderNode.id} hold different CIBs`);
    }
    // Membership agreement: every voter of the leader's configuration has the same one.
    const leader = this.nodes.find((n) => n.raft?.currentRole === 'leader')!.raft!;
    const conf = leader.conf.voters.join(',');
    for (const v of leader.conf.voters) {
      const r = this.nodes.find((n) => n.id === v)!.raft!;
      const c = r.conf.voters.join(',');
      if (c !== conf) {
        const s = r.status();
        this.fail(
          `membership disagreement: leader ${leader.id} has voters ${conf}, ${v} has ${c} (its log ${s.firstIndex}..${s.lastIndex}, commit ${s.commit})`,
        );
      }
    }
  }
}
