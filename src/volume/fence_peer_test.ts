import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Cib, Primitive } from '../cib/model.ts';
import { schedule } from '../scheduler/schedule.ts';
import { clone, cluster, nodeState, primitive, started } from '../scheduler/testing.ts';
import { FENCE_EXIT, fenceConstraintId, fencePeerEdit, unfencePeerEdit, volumeClones } from './fence_peer.ts';

const NOW = Date.UTC(2026, 0, 1);

function drbdPrimitive(res: string): Primitive {
  return { ...primitive('p_drbd', { type: 'drbd', params: { drbd_resource: res } }), provider: 'linbit' };
}

/**
 * Seed 003's shape: `ms ms_drbd p_drbd` on alpha and bravo. alpha was Primary; both nodes'
 * volume agents last reported an UpToDate disk (bravo's disk does not know it missed writes).
 */
function seedCluster(alphaOnline: boolean): Cib {
  return cluster({
    nodes: ['alpha', 'bravo'],
    resources: [clone('ms_drbd', drbdPrimitive('r0'), { promotable: 'true' })],
    status: [
      nodeState('alpha', {
        online: alphaOnline,
        attrs: { 'master-p_drbd': '10000' },
        history: alphaOnline ? [started('p_drbd', { promoted: true })] : [],
      }),
      nodeState('bravo', { attrs: { 'master-p_drbd': '1000' }, history: [started('p_drbd')] }),
    ],
  });
}

function promotions(cib: Cib): string[] {
  const r = schedule(cib, NOW);
  if (!r.ok) assert.fail(r.message);
  return r.transition.actions.filter((a) => a.task === 'promote').map((a) => a.node ?? '');
}

test('a stale Secondary is promoted without fencing, and is not once alpha fenced it', () => {
  // Without the constraint the scheduler promotes bravo as soon as alpha is gone: the data-loss
  // scenario (bravo's UpToDate disk lacks what alpha wrote after the link broke).
  assert.deepEqual(promotions(seedCluster(false)), ['bravo']);
  // alpha lost the link while Primary: its fence-peer handler places the constraint.
  const fenced = fencePeerEdit(seedCluster(true), 'r0', 'alpha', 'bravo');
  assert.ok(fenced.ok && fenced.changed);
  assert.equal(fenced.exitCode, FENCE_EXIT.peerOutdated);
  // Later alpha dies: bravo must not be promoted.
  const alphaDead = { ...seedCluster(false), configuration: fenced.cib.configuration };
  assert.deepEqual(promotions(alphaDead), []);
  // bravo resyncs from alpha (after-resync-target): the constraint goes, bravo may be promoted.
  const unfenced = unfencePeerEdit(alphaDead, 'r0');
  assert.ok(unfenced.ok && unfenced.changed);
  assert.deepEqual(promotions(unfenced.cib), ['bravo']);
});

test('fence-peer is idempotent, and the node fenced by its peer learns it is the stale one (exit 6)', () => {
  const first = fencePeerEdit(seedCluster(true), 'r0', 'alpha', 'bravo');
  assert.ok(first.ok);
  const again = fencePeerEdit(first.cib, 'r0', 'alpha', 'bravo');
  assert.ok(again.ok && !again.changed);
  assert.equal(again.exitCode, FENCE_EXIT.peerOutdated);
  const fromBravo = fencePeerEdit(first.cib, 'r0', 'bravo', 'alpha');
  assert.ok(fromBravo.ok && !fromBravo.changed);
  assert.equal(fromBravo.exitCode, FENCE_EXIT.peerIsPrimary);
  const ids = first.cib.configuration.constraints.map((c) => c.id);
  assert.deepEqual(ids, [fenceConstraintId('r0', 'ms_drbd')]);
  assert.equal(ids[0], 'drbd-fence-by-handler-r0-ms_drbd');
});

test('fence-peer refuses clearly when the cluster has no clone for the volume or does not know this node', () => {
  const cib = seedCluster(true);
  const none = fencePeerEdit(cib, 'r9', 'alpha', 'bravo');
  assert.ok(!none.ok && none.code === 'no-volume-resource' && /drbd_resource=r9/.test(none.message));
  const stranger = fencePeerEdit(cib, 'r0', 'charlie', 'bravo');
  assert.ok(!stranger.ok && stranger.code === 'unknown-node' && /charlie/.test(stranger.message));
  assert.deepEqual(volumeClones(cib, 'r0'), ['ms_drbd']);
  const nothing = unfencePeerEdit(cib, 'r0');
  assert.ok(nothing.ok && !nothing.changed && nothing.cib === cib);
});
