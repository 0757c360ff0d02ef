/**
 * halo's membership: who is alive (a heartbeat failure detector with named timing profiles)
 * and whether this partition may act (quorum, the two-node rule, the witness). Pure cores:
 * the daemon feeds them heartbeats and ticks and acts on their events.
 */
export * from './failure_detector.ts';
export * from './fencer.ts';
export * from './heartbeat_codec.ts';
export * from './profiles.ts';
export * from './quorum.ts';
