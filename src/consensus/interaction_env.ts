/**
 * The interpreter for the golden Raft scripts in testdata/ (like etcd-raft's interaction
 * tests). Nodes are named 1, 2, 3…, run over `MemoryStore`s, and exchange messages through
 * per-node inboxes that the script delivers, drops or partitions explicitly.
 *
 * Commands (one per block):
 *   add-nodes N [voters=(1,2,3)] [witness=(3)] [join] [lease-hold=true] [pre-vote=false] [check-quorum=false]
 *             [election=10] [heartbeat=1]
 *   campaign ID | transfer FROM TO | propose ID TEXT | propose-conf ID add|remove NODE
 *   force-solo ID PEER     the two-node rule: ID forces itself solo after PEER was fenced
 *   tick N [ID…]           N rounds of: tick (all nodes or the given ones), deliver until quiet
 *   deliver-msgs [drop=(ID,…)] [ID…]   delivers queued messages once (only to the given nodes)
 *   stabilize              processes Ready and delivers until nothing moves
 *   isolate ID | heal      cuts / restores every link of a node
 *   crash ID | restart ID  stops a node (its store survives) / starts it from its store
 *   compact ID             snapshots the node's applied state (at its applied index)
 *   status | log ID | applied ID
 */
import { assert } from '../lib/assert.ts';
import { NodeId } from '../lib/brand.ts';
import { SeededRng } from '../lib/prng.ts';
import { bootstrapState, emptyState, type RaftConfig, RaftNode } from './raft.ts';
import { MemoryStore } from './store.ts';
import type { Entry, Message, PersistedState } from './types.ts';

/** Upper bound on rounds in `stabilize`, so a livelock fails the test instead of hanging it. */
const MAX_STABILIZE_ROUNDS = 1000;

interface EnvNode {
  raft: RaftNode | null;
  store: MemoryStore;
  cfg: Omit<RaftConfig, 'rng'>;
  applied: string[];
  seed: number;
  lastSoft: string;
}

export class InteractionEnv {
  private nodes = new Map<string, EnvNode>();
  private inbox = new Map<string, Message[]>();
  private isolated = new Set<string>();
  private out: string[] = [];

  run(command: string): string {
    this.out = [];
    const [cmd, ...args] = command.trim().split(/\s+/);
    switch (cmd) {
      case 'add-nodes':
        this.addNodes(args);
        break;
      case 'campaign':
        this.node(args[0]).campaign();
        this.processReady(args[0]!);
        break;
      case 'transfer':
        this.out.push(`transfer: ${this.node(args[0]).transferLeadership(NodeId(args[1]!))}`);
        this.processReady(args[0]!);
        break;
      case 'propose': {
        const r = this.node(args[0]).propose(args.slice(1).join(' '));
        this.out.push(
          r.ok ? `proposed at index ${r.index} term ${r.term}` : `refused: ${r.code}: ${r.message}`,
        );
        this.processReady(args[0]!);
        break;
      }
      case 'propose-conf': {
        const type = args[1] === 'add' ? 'addNode' : 'removeNode';
        const r = this.node(args[0]).proposeConfChange({ type, node: NodeId(args[2]!) });
        this.out.push(
          r.ok ? `proposed at index ${r.index} term ${r.term}` : `refused: ${r.code}: ${r.message}`,
        );
        this.processReady(args[0]!);
        break;
      }
      case 'force-solo': {
        const r = this.node(args[0]).forceSoloAfterFence(NodeId(args[1]!), {
          fencedBy: `test fence of ${args[1]} by ${args[0]}`,
        });
        this.out.push(
          r.ok ? `forced solo at index ${r.index} term ${r.term}` : `refused: ${r.code}: ${r.message}`,
        );
        this.processReady(args[0]!);
        break;
      }
      case 'tick':
        this.tick(Number(args[0]), args.slice(1));
        break;
      case 'deliver-msgs':
        this.deliver(args);
        break;
      case 'stabilize':
        this.stabilize();
        break;
      case 'isolate':
        this.isolated.add(args[0]!);
        break;
      case 'heal':
        this.isolated.clear();
        break;
      case 'crash':
        this.nodes.get(args[0]!)!.raft = null;
        this.inbox.set(args[0]!, []);
        this.out.push(`crashed ${args[0]}`);
        break;
      case 'restart':
        this.start(args[0]!, this.nodes.get(args[0]!)!.store.load());
        this.out.push(`restarted ${args[0]}`);
        break;
      case 'compact': {
        const n = this.nodes.get(args[0]!)!;
        n.raft!.compact(n.raft!.status().applied, JSON.stringify(n.applied));
        this.processReady(args[0]!);
        break;
      }
      case 'status':
        for (const id of this.ids()) this.out.push(this.statusLine(id));
        break;
      case 'log': {
        const r = this.node(args[0]);
        const st = r.status();
        this.out.push(
          `first=${st.firstIndex} last=${st.lastIndex}: ${r.entries(st.firstIndex, st.lastIndex).map(fmtEntry).join(' ')}`,
        );
        break;
      }
      case 'applied':
        this.out.push(`${args[0]}: ${JSON.stringify(this.nodes.get(args[0]!)!.applied)}`);
        break;
      default:
        throw new Error(`unknown command "${cmd}"`);
    }
    return this.out.join('\n');
  }

  private ids(): string[] {
    return [...this.nodes.keys()];
  }

  private node(id: string | undefined): RaftNode {
    const n = this.nodes.get(id ?? '');
    assert(n?.raft, `no running node ${id}`);
    return n.raft;
  }

  private addNodes(args: string[]): void {
    const count = Number(args[0]);
    const opts = new Map(
      args
        .slice(1)
        .map((a) => a.split('='))
        .map(([k, v]) => [k!, v ?? 'true']),
    );
    const base = this.nodes.size;
    const newIds = Array.from({ length: count }, (_, i) => String(base + i + 1));
    const voters = (opts.get('voters') ?? `(${newIds.join(',')})`)
      .replace(/[()]/g, '')
      .split(',')
      .map(NodeId);
    for (const id of newIds) {
      const cfg: Omit<RaftConfig, 'rng'> = {
        id: NodeId(id),
        electionTicks: Number(opts.get('election') ?? 10),
        heartbeatTicks: Number(opts.get('heartbeat') ?? 1),
        preVote: opts.get('pre-vote') !== 'false',
        checkQuorum: opts.get('check-quorum') !== 'false',
        leaseHoldAtStart: opts.get('lease-hold') === 'true',
        witness: (opts.get('witness') ?? '').replace(/[()]/g, '').split(',').includes(id),
      };
      const initial: PersistedState = opts.has('join') ? emptyState() : bootstrapState(voters);
      this.nodes.set(id, {
        raft: null,
        store: new MemoryStore(initial),
        cfg,
        applied: [],
        seed: Number(id),
        lastSoft: 'follower/null',
      });
      this.inbox.set(id, []);
      this.start(id, initial);
    }
  }

  private start(id: string, state: PersistedState): void {
    const n = this.nodes.get(id)!;
    n.seed++;
    n.raft = new RaftNode({ ...n.cfg, rng: new SeededRng(n.seed) }, state);
    n.lastSoft = 'follower/null';
    n.applied = state.snapshot?.data ? (JSON.parse(state.snapshot.data) as string[]) : [];
  }

  /** Each round: tick, then deliver until quiet (messages are not printed, events are). */
  private tick(count: number, which: string[]): void {
    const ids = which.length ? which : this.ids();
    for (let i = 0; i < count; i++) {
      for (const id of ids) this.nodes.get(id)!.raft?.tick();
      this.stabilize(false);
      for (const id of ids) this.reportRole(id);
    }
  }

  /** Persists, queues messages and applies for one node. Returns whether anything happened. */
  private processReady(id: string): boolean {
    const n = this.nodes.get(id)!;
    const r = n.raft;
    if (!r?.hasReady()) return false;
    const rd = r.ready();
    n.store.persist(rd);
    for (const m of rd.messages) this.inbox.get(m.to)?.push(m);
    if (rd.snapshot) {
      n.applied = rd.snapshot.data ? (JSON.parse(rd.snapshot.data) as string[]) : [];
      this.out.push(
        `${id}: restored snapshot at ${rd.snapshot.meta.index} (voters ${rd.snapshot.meta.conf.voters.join(',')})`,
      );
    }
    for (const e of rd.committedEntries) if (e.type === 'normal' && e.data !== '') n.applied.push(e.data);
    if (rd.committedEntries.length) {
      this.out.push(`${id}: applied ${rd.committedEntries.map(fmtEntry).join(' ')}`);
    }
    r.advance(rd);
    this.reportRole(id);
    return true;
  }

  /** Prints a line when a node's role or known leader changed since last reported. */
  private reportRole(id: string): void {
    const n = this.nodes.get(id)!;
    if (!n.raft) return;
    const st = n.raft.status();
    const soft = `${st.role}/${st.leader}`;
    if (n.lastSoft === soft) return;
    n.lastSoft = soft;
    this.out.push(`${id}: became ${st.role} at term ${st.term}${st.leader ? ` (leader ${st.leader})` : ''}`);
  }

  private deliver(args: string[], print = true): number {
    const drop = new Set(
      (args.find((a) => a.startsWith('drop=')) ?? 'drop=()')
        .slice(5)
        .replace(/[()]/g, '')
        .split(',')
        .filter(Boolean),
    );
    const targets = args.filter((a) => !a.startsWith('drop='));
    let count = 0;
    let cut = 0;
    for (const id of targets.length ? targets : this.ids()) {
      const msgs = this.inbox.get(id)!;
      this.inbox.set(id, []);
      for (const m of msgs) {
        if (drop.has(m.to)) {
          if (print) this.out.push(`dropped ${fmtMsg(m)}`);
          continue;
        }
        if (this.isolated.has(m.from) || this.isolated.has(m.to) || !this.nodes.get(id)!.raft) {
          cut++;
          continue;
        }
        if (print) this.out.push(fmtMsg(m));
        this.nodes.get(id)!.raft!.step(m);
        count++;
      }
    }
    if (cut > 0 && print) this.out.push(`(${cut} messages lost to isolation or down nodes)`);
    return count;
  }

  private stabilize(print = true): void {
    for (let round = 0; round < MAX_STABILIZE_ROUNDS; round++) {
      let moved = false;
      for (const id of this.ids()) moved = this.processReady(id) || moved;
      if ([...this.inbox.values()].some((q) => q.length > 0)) {
        this.deliver([], print);
        moved = true;
      }
      if (!moved) return;
    }
    throw new Error(`stabilize: still busy after ${MAX_STABILIZE_ROUNDS} rounds`);
  }

  private statusLine(id: string): string {
    const r = this.nodes.get(id)!.raft;
    if (!r) return `${id}: down`;
    const s = r.status();
    const lease = s.leaseValidUntilTick >= 0 ? ` lease=${s.leaseValidUntilTick}@${s.tick}` : '';
    return `${id}: ${s.role} term=${s.term} leader=${s.leader ?? '-'} commit=${s.commit} applied=${s.applied} log=${s.firstIndex}..${s.lastIndex} voters=(${s.voters.join(',')})${lease}`;
  }
}

function fmtEntry(e: Entry): string {
  const data = e.type === 'conf' ? `conf:${e.data}` : e.data === '' ? '<noop>' : e.data;
  return `${e.index}/${e.term}:${data}`;
}

export function fmtMsg(m: Message): string {
  const parts = [`${m.from}->${m.to} ${m.type} term=${m.term}`];
  switch (m.type) {
    case 'app':
      parts.push(`prev=${m.index}/${m.logTerm} commit=${m.commit}`);
      if (m.entries.length) parts.push(`[${m.entries.map(fmtEntry).join(' ')}]`);
      break;
    case 'appResp':
      parts.push(m.reject ? `reject index=${m.index} hint=${m.rejectHint}` : `index=${m.index}`);
      break;
    case 'vote':
    case 'preVote':
      parts.push(`last=${m.index}/${m.logTerm}`);
      break;
    case 'voteResp':
    case 'preVoteResp':
      parts.push(m.reject ? 'rejected' : 'granted');
      break;
    case 'heartbeat':
      parts.push(`commit=${m.commit}`);
      break;
    case 'snap':
      parts.push(`snapshot=${m.snapshot?.meta.index}/${m.snapshot?.meta.term}`);
      break;
    default:
      break;
  }
  return parts.join(' ');
}
