import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Fencer } from './fencer.ts';
import { checkQuorumOptions, type QuorumOptions, QuorumTracker, WitnessBallot } from './quorum.ts';

const node = (id: number, witness = false) => ({ id, votes: 1, witness });
const none = new Map<number, number | undefined>();
const noFenced = new Set<number>();

function input(
  members: number[],
  opts: { witnessVotes?: Map<number, number | undefined>; fenced?: number[] } = {},
) {
  return {
    members: new Set(members),
    witnessVotes: opts.witnessVotes ?? none,
    fenced: new Set(opts.fenced ?? []),
  };
}

test('a three-node cluster keeps quorum with two nodes and loses it with one', () => {
  const opts: QuorumOptions = { nodes: [node(1), node(2), node(3)], twoNode: false, autoTieBreaker: false };
  const q = new QuorumTracker(opts, 1);
  assert.equal(q.update(input([1, 2, 3])).quorate, true);
  const two = q.update(input([1, 2]));
  assert.equal(two.quorate, true);
  assert.equal(two.quorumVotes, 2);
  const one = q.update(input([1]));
  assert.equal(one.quorate, false);
  assert.match(one.reason, /1 of 3 votes; need 2/);
});

test('two_node implies wait_for_all: a node alone after start is not quorate', () => {
  const q = new QuorumTracker({ nodes: [node(1), node(2)], twoNode: true, autoTieBreaker: false }, 1);
  const s = q.update(input([1]));
  assert.equal(s.quorate, false);
  assert.equal(s.waitingForAll, true);
  assert.equal(q.update(input([1, 2])).quorate, true);
});

test('two-node rule: after losing its peer a node is not quorate until the peer is fenced', () => {
  const q = new QuorumTracker({ nodes: [node(1), node(2)], twoNode: true, autoTieBreaker: false }, 1);
  q.update(input([1, 2]));
  const lost = q.update(input([1]));
  assert.equal(lost.quorate, false);
  assert.deepEqual(lost.fenceNeeded, [2]);
  const fenced = q.update(input([1], { fenced: [2] }));
  assert.equal(fenced.quorate, true);
  assert.match(fenced.reason, /fenced/);
});

test('two-node rule: in a split with a racing fence device, never both sides continue', async () => {
  // The fence double models a real device: the first request wins, the loser is powered off.
  let off: number | undefined;
  const fencer: Fencer = {
    fence(nodeId) {
      if (off === undefined) off = nodeId;
      return Promise.resolve(off === nodeId);
    },
  };
  const opts: QuorumOptions = { nodes: [node(1), node(2)], twoNode: true, autoTieBreaker: false };
  const sides = [new QuorumTracker(opts, 1), new QuorumTracker(opts, 2)];
  for (const q of sides) q.update(input([1, 2]));
  const fenced = [new Set<number>(), new Set<number>()];
  const states = await Promise.all(
    sides.map(async (q, i) => {
      const me = i + 1;
      const s = q.update(input([me]));
      for (const peer of s.fenceNeeded) {
        // A node that was itself fenced first is off and cannot act on the result.
        if ((await fencer.fence(peer, 'split')) && off !== me) fenced[i]!.add(peer);
      }
      return off === me ? undefined : q.update(input([me], { fenced: [...fenced[i]!] }));
    }),
  );
  const continuing = states.filter((s) => s?.quorate);
  assert.equal(continuing.length, 1);
});

test('with a witness, the side the witness votes for keeps quorum and the other does not', () => {
  const opts: QuorumOptions = {
    nodes: [node(1), node(2), node(9, true)],
    twoNode: false,
    autoTieBreaker: false,
  };
  const a = new QuorumTracker(opts, 1);
  const b = new QuorumTracker(opts, 2);
  // The link between 1 and 2 is cut; the witness still sees both and votes for node 1.
  const votes = new Map([[9, 1]]);
  assert.equal(a.update(input([1, 9], { witnessVotes: votes })).quorate, true);
  assert.equal(b.update(input([2, 9], { witnessVotes: votes })).quorate, false);
});

test('the witness votes for the lowest node it sees and holds back before switching', () => {
  const w = new WitnessBallot([1, 2], 1000);
  assert.equal(w.vote(new Set([1, 2, 9]), 0), 1);
  assert.equal(w.vote(new Set([2, 9]), 100), undefined);
  assert.equal(w.vote(new Set([2, 9]), 1099), undefined);
  assert.equal(w.vote(new Set([2, 9]), 1100), 2);
  // Node 1 returns: the witness stays with node 2 (no flapping).
  assert.equal(w.vote(new Set([1, 2, 9]), 1200), 2);
});

test('auto_tie_breaker gives an even split to the half with the lowest node id', () => {
  const opts: QuorumOptions = {
    nodes: [node(1), node(2), node(3), node(4)],
    twoNode: false,
    autoTieBreaker: true,
  };
  const low = new QuorumTracker(opts, 1).update(input([1, 3]));
  const high = new QuorumTracker(opts, 2).update(input([2, 4]));
  assert.equal(low.quorate, true);
  assert.match(low.reason, /lowest node id 1/);
  assert.equal(high.quorate, false);
  const withoutAtb = new QuorumTracker({ ...opts, autoTieBreaker: false }, 1).update(input([1, 3]));
  assert.equal(withoutAtb.quorate, false);
});

test('fenced nodes do not count and expected_votes overrides the configured sum', () => {
  const q = new QuorumTracker(
    { nodes: [node(1), node(2), node(3)], expectedVotes: 5, twoNode: false, autoTieBreaker: false },
    1,
  );
  const s = q.update(input([1, 2, 3], { fenced: [3] }));
  assert.equal(s.votes, 2);
  assert.equal(s.quorumVotes, 3);
  assert.equal(s.quorate, false);
});

test('bad quorum options are refused with a reason', () => {
  assert.match(
    String(
      checkQuorumOptions({ nodes: [node(1), node(2), node(3, true)], twoNode: true, autoTieBreaker: false }),
    ),
    /exactly two nodes and no witness/,
  );
  assert.match(
    String(checkQuorumOptions({ nodes: [node(1), node(1)], twoNode: false, autoTieBreaker: false })),
    /appears twice/,
  );
  assert.equal(noFenced.size, 0);
});

test('a node joining a running two_node cluster turns two_node off and keeps quorum where it was', () => {
  const t = new QuorumTracker(
    {
      nodes: [
        { id: 1, votes: 1, witness: false },
        { id: 2, votes: 1, witness: false },
      ],
      twoNode: true,
      autoTieBreaker: false,
    },
    1,
  );
  const none = { witnessVotes: new Map(), fenced: new Set<number>() };
  assert.equal(t.update({ ...none, members: new Set([1, 2]) }).quorate, true);
  const three = t.withNodes([...t.options.nodes, { id: 3, votes: 1, witness: false }]);
  assert.equal(three.options.twoNode, false);
  assert.equal(three.expectedVotes, 3);
  // Not seen yet, but wait_for_all was satisfied before the join: 2 of 3 is a majority.
  const st = three.update({ ...none, members: new Set([1, 2]) });
  assert.deepEqual([st.quorate, st.votes, st.quorumVotes], [true, 2, 2]);
  // Losing the second old node leaves 1 of 3: no quorum, and no two_node fencing either.
  const lost = three.update({ ...none, members: new Set([1]) });
  assert.deepEqual([lost.quorate, lost.fenceNeeded], [false, []]);
});
