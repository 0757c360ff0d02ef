/**
 * The port through which quorum's two-node rule gets a peer fenced. The controller fills it in
 * with the real fencing subsystem (fence agents, watchdog self-fencing, the lab fencer).
 *
 * `fence` resolves to true only once the node is known to be off (or to have stopped all its
 * resources); false or a rejection means "not known to be off", and the caller must keep
 * waiting. A fence device decides races between two nodes fencing each other: at most one of
 * them can come back with true while the other is still running.
 */
export interface Fencer {
  fence(nodeId: number, reason: string): Promise<boolean>;
}

/** A Fencer that never succeeds: the safe default when no fencing is configured. */
export const noFencer: Fencer = {
  fence: () => Promise.resolve(false),
};
