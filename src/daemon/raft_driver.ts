import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { CibStateMachine } from '../consensus/cib_state_machine.ts';
import {
  bootstrapState,
  decodeMessage,
  encodeMessage,
  FileStore,
  type PersistedState,
  RaftNode,
  type Ready,
} from '../consensus/mod.ts';
import { NodeId } from '../lib/brand.ts';
import { SeededRng } from '../lib/prng.ts';
import { MAX_DATAGRAM_PAYLOAD_BYTES } from '../transport/packet.ts';
import type { ConsensusContext, ConsensusPart, ConsensusStatus } from './daemon.ts';

/** After a long pause, catch up at most this many Raft ticks at once (the rest is dropped). */
const MAX_CATCH_UP_TICKS = 20;

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
  // Every node bootstraps the same initial configuration from the shared config file.
  const state: PersistedState = fresh ? bootstrapState(config.nodes.map((n) => NodeId(n.name))) : loaded;
  if (fresh) {
    // The bootstrap snapshot must be on disk before the first entry is appended after it.
    store.persist({ hardState: state.hardState, entries: [], snapshot: state.snapshot, compaction: null });
  }
  const t = config.timing;
  const tickMs = t.keepaliveMs;
  const electionTicks = Math.max(3, Math.ceil(t.deadtimeMs / t.keepaliveMs));
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
  let rejected = 0;
  const idByName = new Map(config.nodes.map((n) => [n.name, n.id]));
  const nameById = new Map(config.nodes.map((n) => [n.id, n.name]));
  let lastTickAt = ctx.nowMs();
  let leader: string | null = null;
  let decodeErrors = 0;
  /** Messages sent over the stream channel because they exceed a datagram. */
  let viaStream = 0;
  let stopped = false;

  const handleReady = (): void => {
    while (!stopped && node.hasReady()) {
      const rd: Ready = node.ready();
      try {
        store.persist(rd);
      } catch (err) {
        logger.log('error', `raft store failed; stopping: ${(err as Error).message}`, {
          event: 'raft-store-failed',
        });
        throw err;
      }
      for (const m of rd.messages) {
        const to = idByName.get(m.to);
        if (to === undefined) continue;
        const bytes = encodeMessage(m);
        if (bytes.length > MAX_DATAGRAM_PAYLOAD_BYTES) {
          // Snapshots and big appends go over the authenticated stream channel.
          viaStream++;
          ctx.sendLarge(to, bytes);
          continue;
        }
        ctx.send(to, bytes);
      }
      const soft = rd.softState;
      if (soft.leader !== leader) {
        leader = soft.leader;
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
      if (rd.snapshot) cib.restore(rd.snapshot.data);
      for (const e of rd.committedEntries) {
        const r = cib.apply(e);
        if (!r.ok) {
          // Rejected identically on every replica; the log keeps it, the CIB does not change.
          rejected++;
          logger.log('warn', `CIB change at index ${e.index} rejected: ${r.message}`, {
            event: 'cib-rejected',
            index: e.index,
          });
        }
      }
      node.advance(rd);
    }
  };
  handleReady();

  return {
    tick() {
      const now = ctx.nowMs();
      let n = Math.floor((now - lastTickAt) / tickMs);
      if (n <= 0) return;
      lastTickAt += n * tickMs;
      if (n > MAX_CATCH_UP_TICKS) {
        lastTickAt = now;
        n = MAX_CATCH_UP_TICKS;
      }
      for (let i = 0; i < n && !stopped; i++) {
        node.tick();
        handleReady();
      }
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
      if (r.value.from !== nameById.get(from) || r.value.to !== self.name) {
        decodeErrors++;
        return;
      }
      node.step(r.value);
      handleReady();
    },
    status(): ConsensusStatus & {
      decodeErrors: number;
      viaStream: number;
      voters: readonly string[];
      cib: { epoch: number; numUpdates: number; adminEpoch: number; rejected: number };
    } {
      const s = node.status();
      return {
        role: s.role,
        term: s.term,
        leader: s.leader,
        commit: s.commit,
        applied: s.applied,
        decodeErrors,
        viaStream,
        voters: s.voters,
        cib: { ...cib.version(), rejected },
      };
    },
    stop() {
      stopped = true;
      store.close();
    },
  };
}
