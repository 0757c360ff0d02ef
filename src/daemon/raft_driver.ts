import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { CibStateMachine } from '../consensus/cib_state_machine.ts';
import { decodeMessage, encodeMessage } from '../consensus/codec.ts';
import { FileStore } from '../consensus/file_store.ts';
import { bootstrapState, decodeConfChange, RAFT_DEFAULTS, RaftNode } from '../consensus/raft.ts';
import type { ConfChange, Entry, PersistedState, Ready } from '../consensus/types.ts';
import { LogIndex, NodeId } from '../lib/brand.ts';
import { HaloError } from '../lib/errors.ts';
import { SeededRng } from '../lib/prng.ts';
import { MAX_DATAGRAM_PAYLOAD_BYTES } from '../transport/packet.ts';
import type { ConsensusContext, ConsensusPart, ConsensusStatus, ProposeOutcome } from './daemon.ts';

/**
 * After a pause, at most this many missed Raft ticks are delivered. It must exceed
 * electionTicks + leaseMarginTicks (consensus/mod.ts: the leader lease is sound only if every
 * missed tick up to that reaches the node before a message does); the rest of a longer pause
 * changes nothing, since every timeout has expired by then.
 */
const MAX_CATCH_UP_TICKS = 1000;
/** Proposals waiting for commit at once; more are refused (back-pressure for callers). */
const MAX_PENDING_PROPOSALS = 1024;
/** Take a CIB snapshot and compact the Raft log every this many applied entries. */
const COMPACT_EVERY_ENTRIES = 1000;

export interface RaftDriverStatus extends ConsensusStatus {
  readonly decodeErrors: number;
  /** Messages sent over the stream channel because they exceed a datagram. */
  readonly viaStream: number;
  readonly voters: readonly string[];
  /** On the leader: whether its lease holds now (a DC acts only while it does). */
  readonly leaseValid: boolean;
  readonly cibRejected: number;
}

/**
 * Drives the Raft core (src/consensus) on real time, a real file store and the sealed datagram
 * transport. One Raft tick is one keepalive; the election timeout is deadtime/keepalive ticks
 * (at least 3), so a leader is replaced on the same time scale as a node is declared lost.
 * Raft node ids are the configured node names.
 *
 * Order per Ready (types.ts): persist (fsync) → send → apply → advance. A store failure stops
 * the process: it cannot know what reached the disk.
 */
export function raftConsensus(ctx: ConsensusContext): ConsensusPart {
  const { config, self, logger } = ctx;
  const store = FileStore.open(join(config.stateDir, `${self.name}.raft`));
  const loaded = store.load();
  const fresh = loaded.hardState.term === 0 && loaded.snapshot === null && loaded.entries.length === 0;
  // Every node bootstraps the same initial configuration from the shared config file. A node
  // joining a running cluster (`--join`) bootstraps without itself: it is no voter, so it never
  // campaigns, until the leader's log (the addNode entry for it) reaches it.
  const initial = ctx.join ? config.nodes.filter((n) => n.name !== self.name) : config.nodes;
  if (fresh && initial.length === 0)
    throw new HaloError('bad-config', `${config.file}: --join needs at least one other node in the config`);
  const state: PersistedState = fresh ? bootstrapState(initial.map((n) => NodeId(n.name))) : loaded;
  if (fresh) {
    // The bootstrap snapshot must be on disk before the first entry is appended after it.
    store.persist({ hardState: state.hardState, entries: [], snapshot: state.snapshot, compaction: null });
  }
  const t = config.timing;
  const tickMs = t.keepaliveMs;
  const electionTicks = Math.max(3, Math.ceil(t.deadtimeMs / t.keepaliveMs));
  // Never below the lease horizon, whatever the timing knobs say.
  const maxCatchUp = Math.max(MAX_CATCH_UP_TICKS, 2 * electionTicks + RAFT_DEFAULTS.leaseMarginTicks + 1);
  const node = new RaftNode(
    {
      id: NodeId(self.name),
      electionTicks,
      heartbeatTicks: 1,
      rng: new SeededRng(randomInt(0x7fffffff)),
      preVote: true,
      checkQuorum: true,
      witness: self.witness,
    },
    state,
  );
  // The replicated CIB: restored from the snapshot, then every committed entry in order.
  const cib = new CibStateMachine();
  if (state.snapshot) cib.restore(state.snapshot.data);
  // Names ↔ transport ids come from the daemon: members added while running are known there.
  const idOf = ctx.idOf ?? ((name: string) => config.nodes.find((n) => n.name === name)?.id);
  const nameOf = ctx.nameOf ?? ((id: number) => config.nodes.find((n) => n.id === id)?.name);
  /** Tells the daemon about a membership entry: on append (to reach a new node) and on commit. */
  const confEntry = (e: Entry, committed: boolean): void => {
    if (e.type !== 'conf' || !ctx.onConfChange) return;
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch {
      return; // Not ours to judge here: the Raft core validated it when it was appended.
    }
    ctx.onConfChange(cc, committed);
  };
  let lastTickAt = ctx.nowMs();
  let leader: string | null = null;
  let decodeErrors = 0;
  let viaStream = 0;
  let cibRejected = 0;
  let appliedSinceCompact = 0;
  let lastApplied = state.snapshot?.meta.index ?? 0;
  let stopped = false;
  const pending = new Map<
    number,
    { term: number; resolve: (o: ProposeOutcome) => void; timer: NodeJS.Timeout }
  >();
  const settle = (index: number, outcome: ProposeOutcome): void => {
    const p = pending.get(index);
    if (!p) return;
    pending.delete(index);
    clearTimeout(p.timer);
    p.resolve(outcome);
  };

  const send = (rd: Ready): void => {
    for (const m of rd.messages) {
      const to = idOf(m.to);
      if (to === undefined) continue;
      const bytes = encodeMessage(m);
      if (bytes.length > MAX_DATAGRAM_PAYLOAD_BYTES) {
        // Snapshots and big appends go over the authenticated stream channel.
        viaStream++;
        ctx.sendLarge(to, bytes);
      } else {
        ctx.send(to, bytes);
      }
    }
  };

  const apply = (rd: Ready): void => {
    if (rd.snapshot) cib.restore(rd.snapshot.data);
    for (const e of rd.committedEntries) {
      confEntry(e, true);
      const r = cib.apply(e);
      if (!r.ok) {
        // Rejected identically on every replica; the log keeps it, the CIB does not change.
        cibRejected++;
        logger.log('warn', `CIB change at index ${e.index} rejected: ${r.message}`, {
          event: 'cib-rejected',
          index: e.index,
        });
      }
      const waiting = pending.get(e.index);
      if (waiting) {
        settle(
          e.index,
          waiting.term === e.term
            ? {
                ok: true,
                index: e.index,
                term: e.term,
                applied: r.ok,
                ...(r.ok ? {} : { code: r.code, message: r.message }),
              }
            : {
                ok: false,
                code: 'superseded',
                message: `a new leader replaced entry ${e.index}; retry`,
                leader,
              },
        );
      }
      lastApplied = e.index;
      appliedSinceCompact++;
    }
  };

  const handleReady = (): void => {
    while (!stopped && node.hasReady()) {
      const rd = node.ready();
      try {
        store.persist(rd);
      } catch (err) {
        logger.log('error', `raft store failed; stopping: ${(err as Error).message}`, {
          event: 'raft-store-failed',
        });
        throw err;
      }
      // A new member's address is needed as soon as its entry is in the log: the leader
      // replicates to it from then on (single-server changes take effect on append).
      for (const e of rd.entries) confEntry(e, false);
      send(rd);
      apply(rd);
      if (rd.softState.leader !== leader) {
        leader = rd.softState.leader;
        logger.log(
          'info',
          leader
            ? `DC is now ${leader} (Raft leader, term ${node.currentTerm})`
            : 'no DC: Raft has no leader',
          {
            event: 'leader',
            leader,
            term: node.currentTerm,
          },
        );
      }
      node.advance(rd);
    }
    if (!stopped && appliedSinceCompact >= COMPACT_EVERY_ENTRIES) {
      appliedSinceCompact = 0;
      node.compact(LogIndex(lastApplied), cib.snapshot());
      handleReady();
    }
  };

  /** Delivers every tick due by now (bounded) before anything else reaches the node. */
  const catchUp = (): void => {
    const now = ctx.nowMs();
    let n = Math.floor((now - lastTickAt) / tickMs);
    if (n <= 0) return;
    lastTickAt += n * tickMs;
    if (n > maxCatchUp) n = maxCatchUp;
    for (let i = 0; i < n; i++) node.tick();
    handleReady();
  };
  /** Proposes (a command or a membership change) and resolves once it is applied here. */
  const proposeAndWait = (
    proposeNow: () => ReturnType<RaftNode['propose']>,
    timeoutMs: number,
  ): Promise<ProposeOutcome> => {
    if (stopped)
      return Promise.resolve({ ok: false, code: 'stopped', message: 'daemon is stopping', leader: null });
    if (pending.size >= MAX_PENDING_PROPOSALS) {
      return Promise.resolve({
        ok: false,
        code: 'busy',
        message: `${pending.size} proposals await commit; retry`,
        leader,
      });
    }
    catchUp();
    const r = proposeNow();
    if (!r.ok) return Promise.resolve({ ok: false, code: r.code, message: r.message, leader: r.leader });
    const index: number = r.index;
    const promise = new Promise<ProposeOutcome>((resolve) => {
      const timer = setTimeout(
        () =>
          settle(index, {
            ok: false,
            code: 'timeout',
            message: `entry ${index} not committed within ${timeoutMs} ms`,
            leader,
          }),
        timeoutMs,
      );
      pending.set(index, { term: r.term, resolve, timer });
    });
    handleReady();
    return promise;
  };

  handleReady();

  return {
    tick() {
      if (!stopped) catchUp();
    },
    receive(from, payload) {
      if (stopped) return;
      const r = decodeMessage(payload);
      if (!r.ok) {
        decodeErrors++;
        logger.log('debug', 'dropped raft message', { reason: r.message });
        return;
      }
      // The packet header's sender is authenticated; a message claiming another origin is dropped.
      if (r.value.from !== nameOf(from) || r.value.to !== self.name) {
        decodeErrors++;
        return;
      }
      // After a pause, I/O can be read before the timer fires: ticks first (lease soundness).
      catchUp();
      node.step(r.value);
      handleReady();
    },
    status(): RaftDriverStatus {
      const s = node.status();
      return {
        role: s.role,
        term: s.term,
        leader: s.leader,
        commit: s.commit,
        applied: s.applied,
        cib: cib.version(),
        decodeErrors,
        viaStream,
        voters: s.voters,
        leaseValid: s.role === 'leader' && s.tick <= s.leaseValidUntilTick,
        cibRejected,
      };
    },
    cib() {
      return cib.cib;
    },
    checkForceSolo(peer) {
      if (stopped) return 'daemon is stopping';
      catchUp();
      const r = node.checkForceSolo(NodeId(peer));
      return r ? `${r.code}: ${r.message}` : null;
    },
    forceSoloAfterFence(peer, fencedBy) {
      if (stopped) return { ok: false, message: 'daemon is stopping' };
      catchUp();
      const r = node.forceSoloAfterFence(NodeId(peer), { fencedBy });
      handleReady();
      return r.ok ? { ok: true } : { ok: false, message: `${r.code}: ${r.message}` };
    },
    addVoter(peer) {
      if (stopped) return { ok: false, message: 'daemon is stopping' };
      catchUp();
      const r = node.proposeConfChange({ type: 'addNode', node: NodeId(peer) });
      handleReady();
      return r.ok ? { ok: true } : { ok: false, message: `${r.code}: ${r.message}` };
    },
    propose(data, timeoutMs) {
      return proposeAndWait(() => node.propose(data), timeoutMs);
    },
    changeMembership(cc, timeoutMs) {
      return proposeAndWait(
        () =>
          node.proposeConfChange({
            type: cc.type,
            node: NodeId(cc.node),
            ...(cc.member === undefined ? {} : { member: cc.member }),
          }),
        timeoutMs,
      );
    },
    stop() {
      for (const index of [...pending.keys()]) {
        settle(index, { ok: false, code: 'stopped', message: 'daemon stopped before commit', leader: null });
      }
      stopped = true;
      store.close();
    },
  };
}
