import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hasNetnsSupport } from '../lab/netns.ts';
import type { DaemonStatus } from './daemon.ts';
import { createLabCluster, type LabCluster, waitFor } from './lab_cluster.ts';

/** Generous bounds: daemons start under tsx on a shared, busy machine. */
const FORM_DEADLINE_MS = 60_000;
const CHANGE_DEADLINE_MS = 30_000;

async function statuses(c: LabCluster, names: readonly string[]): Promise<DaemonStatus[]> {
  return Promise.all(names.map((n) => c.status(n)));
}

function stateOf(st: DaemonStatus, name: string): string | undefined {
  return st.members.find((m) => m.name === name)?.state;
}

/** All `names` see each other as members and agree on one leader; returns it. */
async function agreedLeader(
  c: LabCluster,
  names: readonly string[],
  lost: readonly string[] = [],
): Promise<string | undefined> {
  const sts = await statuses(c, names);
  for (const st of sts) {
    for (const n of names) if (n !== st.node && stateOf(st, n) !== 'member') return undefined;
    for (const n of lost) if (stateOf(st, n) !== 'lost') return undefined;
    if (!st.quorum.quorate) return undefined;
  }
  // One leader, and everyone on its term (a node that knows the leader has heard its term).
  const views = new Set(sts.map((s) => `${s.dc}@${s.consensus?.term}`));
  const leader = sts[0]!.dc;
  return views.size === 1 && leader && names.includes(leader) ? leader : undefined;
}

test('three daemons in namespaces form a cluster, survive a lost link, mark a cut-off node lost, elect a leader and take the node back', {
  skip: !hasNetnsSupport() && 'needs root and ip netns',
  timeout: 240_000,
}, async () => {
  const names = ['n1', 'n2', 'n3'];
  const c = createLabCluster({ nodes: names, links: 2, profile: 'lab' });
  try {
    for (const n of names) c.start(n);
    const leader = await waitFor('the cluster to form and elect a leader', FORM_DEADLINE_MS, () =>
      agreedLeader(c, names),
    );
    assert.ok(names.includes(leader));

    // A CIB change proposed on the leader commits; one sent to a follower is forwarded to the
    // leader and commits too.
    const change = (v: string): string =>
      `cib ${JSON.stringify({ op: 'set-property', name: 'stonith-enabled', value: v })}`;
    const committed = (await c.command(leader, change('false'))) as { ok: boolean; applied: boolean };
    assert.deepEqual([committed.ok, committed.applied], [true, true]);
    const follower = names.find((n) => n !== leader)!;
    const recheck = `cib ${JSON.stringify({ op: 'set-property', name: 'cluster-recheck-interval', value: '15min' })}`;
    const forwarded = (await c.command(follower, recheck)) as { ok: boolean; applied: boolean };
    assert.deepEqual([forwarded.ok, forwarded.applied], [true, true], JSON.stringify(forwarded));
    const cibEpoch = (await c.status(leader)).consensus?.cib?.epoch;

    // One cable of n3 unplugged: n3 stays a member over link 1; the others see link 0 down.
    c.net.cutLink('n3', 0);
    await waitFor('link 0 to n3 to go down while n3 stays a member', CHANGE_DEADLINE_MS, async () => {
      const st = await c.status('n1');
      const m = st.members.find((x) => x.name === 'n3')!;
      return m.state === 'member' && m.links[0]?.state === 'down' && m.links[1]?.state === 'up'
        ? true
        : undefined;
    });
    c.net.restoreLink('n3', 0);
    await waitFor('link 0 to n3 to come back up', CHANGE_DEADLINE_MS, async () => {
      const m = (await c.status('n1')).members.find((x) => x.name === 'n3')!;
      return m.links[0]?.state === 'up' ? true : undefined;
    });

    // Cut every link of the leader: the other two mark it lost and elect a new leader.
    const others = names.filter((n) => n !== leader);
    for (const l of [0, 1]) c.net.cutLink(leader, l);
    const next = await waitFor(
      'the survivors to mark the cut node lost and agree on a new leader',
      CHANGE_DEADLINE_MS,
      () => agreedLeader(c, others, [leader]),
    );
    assert.notEqual(next, leader);
    await waitFor('the cut-off node to lose quorum', CHANGE_DEADLINE_MS, async () =>
      (await c.status(leader)).quorum.quorate ? undefined : true,
    );
    const isolated = await c.status(leader);
    assert.deepEqual(
      others.map((n) => stateOf(isolated, n)),
      ['lost', 'lost'],
    );

    // Restore: it rejoins and follows the surviving leader's term or a later one.
    for (const l of [0, 1]) c.net.restoreLink(leader, l);
    const after = await waitFor(
      'the node to rejoin and all three to agree on a leader',
      CHANGE_DEADLINE_MS,
      () => agreedLeader(c, names),
    );
    assert.ok(names.includes(after));
    // The change committed before the failover is on every node, the rejoined one included.
    await waitFor('every node to have applied the committed CIB change', CHANGE_DEADLINE_MS, async () => {
      const epochs = (await statuses(c, names)).map((st) => st.consensus?.cib?.epoch);
      return epochs.every((e) => e !== undefined && cibEpoch !== undefined && e >= cibEpoch)
        ? true
        : undefined;
    });
    const sts = await statuses(c, names);
    for (const st of sts) {
      assert.equal(st.packets.forged, 0);
      assert.equal(st.packets.malformed, 0);
    }
  } catch (err) {
    // Say what each daemon last logged: the only way to see why a real cluster misbehaved.
    const tails = names.map((n) => `--- ${n} ---\n${c.logTail(n, 3000)}`).join('\n');
    throw new Error(`${(err as Error).message}\n${tails}`, { cause: err });
  } finally {
    c.destroy();
  }
});
