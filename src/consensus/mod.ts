/**
 * halo's consensus: Raft as a pure state machine (see raft.ts), its message codec, the stores
 * that persist it, and the replicated CIB state machine. The daemon drives it like this:
 *
 *   const node = new RaftNode(config, store.load());
 *   every tick: node.tick();   on a datagram: node.step(decodeMessage(bytes).value)
 *   then: while (node.hasReady()) { const rd = node.ready(); store.persist(rd); send(rd.messages);
 *          apply(rd.snapshot, rd.committedEntries); node.advance(rd); }
 */

export type { ApplyResult, CibCommand } from './cib_state_machine.ts';
export {
  BOOTSTRAP_OPTIONS_ID,
  CibStateMachine,
  encodeCibCommand,
  MAX_COMMAND_BYTES,
  validateCibCommand,
} from './cib_state_machine.ts';
export type { DecodeResult } from './codec.ts';
export { CODEC_LIMITS, decodeMessage, encodeMessage } from './codec.ts';
export type { StoreFs } from './file_store.ts';
export { FileStore, NodeStoreFs } from './file_store.ts';
export type { ProposeResult, RaftConfig } from './raft.ts';
export {
  bootstrapState,
  decodeConfChange,
  emptyState,
  encodeConfChange,
  quorum,
  RAFT_DEFAULTS,
  RaftNode,
} from './raft.ts';
export type { PersistBatch, RaftStore, StoreErrorCode } from './store.ts';
export { LogMirror, MemoryStore, StoreError } from './store.ts';
export * from './types.ts';
