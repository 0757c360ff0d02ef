import { assert } from '../lib/assert.ts';

/**
 * Quorum as a pure function of who this node sees, in corosync votequorum's terms: votes,
 * expected votes, two_node (which implies wait_for_all), a witness role and auto_tie_breaker.
 *
 * THE TWO-NODE RULE. A plain two-node cluster has no majority after a loss: each side sees one
 * vote of two and cannot tell a dead peer from a cut link. The survivor may continue alone only
 * (a) after the peer is fenced (the controller's `Fencer` confirmed it is off), or (b) when a
 * witness votes for it. Never both sides: fencing is decided by the fence device (one side
 * wins the race; the other is off), and a witness votes for one node at a time, switching only
 * after a hold time that outlasts every node's memory of its previous vote.
 */
export interface QuorumNode {
  readonly id: number;
  readonly votes: number;
  /** A witness votes and runs no resources (`halo daemon --witness`). */
  readonly witness: boolean;
}

export interface QuorumOptions {
  readonly nodes: readonly QuorumNode[];
  /** Overrides the sum of configured votes (corosync `expected_votes`). */
  readonly expectedVotes?: number;
  /** Exactly two voting nodes and no witness; implies wait_for_all. */
  readonly twoNode: boolean;
  /** Not quorate after start until every configured node was seen at once. */
  readonly waitForAll?: boolean;
  /** In an even split, the half holding the lowest node id keeps quorum (not for 2 votes). */
  readonly autoTieBreaker: boolean;
}

export interface QuorumInput {
  /** Nodes this node sees as members right now, itself included. */
  readonly members: ReadonlySet<number>;
  /** For each witness among `members`, the node it currently votes for (undefined: nobody). */
  readonly witnessVotes: ReadonlyMap<number, number | undefined>;
  /** Peers the Fencer confirmed off since they were last members. */
  readonly fenced: ReadonlySet<number>;
}

export interface QuorumState {
  readonly quorate: boolean;
  readonly votes: number;
  readonly expectedVotes: number;
  readonly quorumVotes: number;
  readonly waitForAll: boolean;
  /** True while wait_for_all holds quorum back because not every node has been seen yet. */
  readonly waitingForAll: boolean;
  readonly twoNode: boolean;
  /** Lost peers that must be fenced before this node may continue (two-node rule). */
  readonly fenceNeeded: readonly number[];
  /** One sentence a person can read: why this node is or is not quorate. */
  readonly reason: string;
}

/** Validates options; returns an error message naming the problem, or undefined. */
export function checkQuorumOptions(o: QuorumOptions): string | undefined {
  const ids = new Set<number>();
  for (const n of o.nodes) {
    if (ids.has(n.id)) return `node id ${n.id} appears twice`;
    ids.add(n.id);
    if (!Number.isInteger(n.votes) || n.votes < 0)
      return `node ${n.id}: votes must be a non-negative integer`;
  }
  const voters = o.nodes.filter((n) => !n.witness);
  const witnesses = o.nodes.filter((n) => n.witness);
  if (o.twoNode && (voters.length !== 2 || witnesses.length > 0)) {
    return `two_node needs exactly two nodes and no witness (have ${voters.length} nodes, ${witnesses.length} witnesses); a witness already breaks the tie`;
  }
  if (o.twoNode && voters.some((n) => n.votes !== 1)) return 'two_node needs one vote per node';
  if (o.expectedVotes !== undefined && (!Number.isInteger(o.expectedVotes) || o.expectedVotes < 1)) {
    return `expected_votes must be a positive integer, got ${o.expectedVotes}`;
  }
  return undefined;
}

export class QuorumTracker {
  private allSeen = false;
  readonly expectedVotes: number;
  readonly waitForAll: boolean;

  constructor(
    readonly options: QuorumOptions,
    readonly self: number,
  ) {
    const problem = checkQuorumOptions(options);
    assert(problem === undefined, `QuorumTracker: ${problem}`);
    assert(
      options.nodes.some((n) => n.id === self),
      `QuorumTracker: self ${self} is not a configured node`,
    );
    this.expectedVotes = options.expectedVotes ?? options.nodes.reduce((s, n) => s + n.votes, 0);
    this.waitForAll = options.twoNode || (options.waitForAll ?? false);
  }

  /**
   * The tracker for a membership changed while running (a node joined or left). two_node no
   * longer applies once a third vote or a witness exists; an explicit expected_votes stays.
   * wait_for_all, once satisfied, stays satisfied: a node that was never up must not take
   * quorum away from a running cluster.
   */
  withNodes(nodes: readonly QuorumNode[]): QuorumTracker {
    const voters = nodes.filter((n) => !n.witness);
    const twoNode = this.options.twoNode && voters.length === 2 && voters.length === nodes.length;
    const next = new QuorumTracker({ ...this.options, nodes, twoNode }, this.self);
    next.allSeen = this.allSeen;
    return next;
  }

  update(input: QuorumInput): QuorumState {
    const o = this.options;
    if (o.nodes.every((n) => input.members.has(n.id))) this.allSeen = true;
    const votes = this.countVotes(input);
    const quorumVotes = Math.floor(this.expectedVotes / 2) + 1;
    const base = {
      votes,
      expectedVotes: this.expectedVotes,
      quorumVotes,
      waitForAll: this.waitForAll,
      twoNode: o.twoNode,
    };
    if (this.waitForAll && !this.allSeen) {
      const missing = o.nodes.filter((n) => !input.members.has(n.id)).map((n) => n.id);
      return {
        ...base,
        quorate: false,
        waitingForAll: true,
        fenceNeeded: [],
        reason: `wait_for_all: node(s) ${missing.join(', ')} not seen since start`,
      };
    }
    if (o.twoNode) return this.twoNodeState(input, base);
    if (votes >= quorumVotes) {
      return {
        ...base,
        quorate: true,
        waitingForAll: false,
        fenceNeeded: [],
        reason: `${votes} of ${this.expectedVotes} votes (need ${quorumVotes})`,
      };
    }
    const lowest = Math.min(...o.nodes.filter((n) => !n.witness).map((n) => n.id));
    if (
      o.autoTieBreaker &&
      this.expectedVotes > 2 &&
      votes * 2 === this.expectedVotes &&
      input.members.has(lowest)
    ) {
      return {
        ...base,
        quorate: true,
        waitingForAll: false,
        fenceNeeded: [],
        reason: `even split (${votes} of ${this.expectedVotes} votes) broken by auto_tie_breaker: this side holds lowest node id ${lowest}`,
      };
    }
    return {
      ...base,
      quorate: false,
      waitingForAll: false,
      fenceNeeded: [],
      reason: `${votes} of ${this.expectedVotes} votes; need ${quorumVotes}`,
    };
  }

  private twoNodeState(
    input: QuorumInput,
    base: Omit<QuorumState, 'quorate' | 'waitingForAll' | 'fenceNeeded' | 'reason'>,
  ): QuorumState {
    const peer = this.options.nodes.find((n) => n.id !== this.self)!.id;
    if (input.members.has(peer)) {
      return {
        ...base,
        quorate: true,
        waitingForAll: false,
        fenceNeeded: [],
        reason: 'both nodes of a two_node cluster are members',
      };
    }
    if (input.fenced.has(peer)) {
      return {
        ...base,
        quorate: true,
        waitingForAll: false,
        fenceNeeded: [],
        reason: `two_node: peer ${peer} is fenced; continuing alone`,
      };
    }
    return {
      ...base,
      quorate: false,
      waitingForAll: false,
      fenceNeeded: [peer],
      reason: `two_node: peer ${peer} lost and not yet fenced; a survivor continues only after fencing its peer`,
    };
  }

  private countVotes(input: QuorumInput): number {
    let votes = 0;
    for (const n of this.options.nodes) {
      if (!input.members.has(n.id) || input.fenced.has(n.id)) continue;
      if (!n.witness) {
        votes += n.votes;
        continue;
      }
      if (n.id === this.self) {
        votes += n.votes;
        continue;
      }
      // A witness's vote counts only on the side it votes for: the node it names must be here.
      const target = input.witnessVotes.get(n.id);
      if (target !== undefined && input.members.has(target)) votes += n.votes;
    }
    return votes;
  }
}

/**
 * The witness's side of the tie-break: it votes for the lowest-id voting node it sees. When that
 * node disappears, the witness votes for nobody for `holdMs` before voting for another node, so
 * that the old node has stopped counting the vote (it drops a witness it has not heard from
 * within its deadtime) before the new one starts. Set `holdMs` ≥ deadtimeMax + deadtime.
 */
export class WitnessBallot {
  private current: number | undefined;
  private releasedAtMs: number | undefined;

  constructor(
    public votingNodeIds: readonly number[],
    readonly holdMs: number,
  ) {}

  vote(members: ReadonlySet<number>, nowMs: number): number | undefined {
    if (this.current !== undefined && members.has(this.current)) return this.current;
    if (this.current !== undefined) {
      this.current = undefined;
      this.releasedAtMs = nowMs;
    }
    if (this.releasedAtMs !== undefined && nowMs - this.releasedAtMs < this.holdMs) return undefined;
    const candidates = this.votingNodeIds.filter((id) => members.has(id));
    if (candidates.length === 0) return undefined;
    this.current = Math.min(...candidates);
    this.releasedAtMs = undefined;
    return this.current;
  }
}
