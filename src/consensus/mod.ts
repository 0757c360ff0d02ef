/**
 * halo's consensus: Raft as a pure state machine (raft.ts), its message codec, the stores that
 * persist it, and the replicated CIB state machine. The daemon drives it like this:
 *
 *   const store = FileStore.open(dir); let state = store.load();
 *   (new cluster: state = bootstrapState(voters), persisted once with store.persist)
 *   const node = new RaftNode(config, state);
 *   every tick interval: node.tick() — after a pause, deliver every missed tick (at least
 *     electionTicks + leaseMarginTicks of them) BEFORE stepping any message received since, or
 *     the leader lease is not sound;
 *   on a datagram: const r = decodeMessage(bytes); if (r.ok) node.step(r.value);
 *   then: while (node.hasReady()) { const rd = node.ready(); store.persist(rd);
 *     send(rd.messages); cib.restore(rd.snapshot.data) if any; cib.apply(e) for each of
 *     rd.committedEntries; node.advance(rd); }
 *   now and then (e.g. every 1 000 applied entries): node.compact(applied, cib.snapshot()),
 *     which bounds the in-memory log and the log file.
 *
 * The DC acts as DC only while `node.currentTick <= node.leaseValidUntilTick()`.
 *
 * Two-node rule (a cluster of exactly two voters and no witness): when the peer is lost and
 * this node has no leader, first ask `node.checkForceSolo(peer)` — null means it may take over
 * (a node that restarted must hear from a leader first: wait_for_all). Then fence the peer;
 * once the fence device confirms it off, call `node.forceSoloAfterFence(peer, { fencedBy })`
 * and run the Ready loop at once: this node leads {self} in a new term. When the peer rejoins
 * membership, the leader calls `node.proposeConfChange({ type: 'addNode', node: peer })`; the
 * pair commits together again once the peer has caught up. Changes away from a two-voter
 * configuration by other means need both voters (a dead peer cannot be `removeNode`d).
 */
export * from './types.ts';
