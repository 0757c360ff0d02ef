import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRng } from '../lib/prng.ts';
import { BLOCK_BYTES } from './bitmap.ts';
import { DEFAULTS, type VolumeConfig } from './config.ts';
import { type SimNode, SimPair, testConfig } from './sim_pair.ts';

/**
 * The on-demand peer check (`checkPeer`): a Secondary whose Primary peer vanished without a
 * reset (links cut, node powered off) learns it within ping-timeout instead of ping-int +
 * timeout, and a peer that answers keeps its connection and its Primary role.
 */

const SIZE = 256 * BLOCK_BYTES;
/** How often the engine ticks the core (engine.ts TICK_MS). */
const TICK_MS = 50;
const CHECK_MS = DEFAULTS.pingTimeoutMs;

function cfg(self: string, peer: string): VolumeConfig {
  // drbd.conf defaults (ping-int 10 s, timeout 6 s), resource fencing with a handler.
  return { ...testConfig(self, peer), fencing: 'resource-only', handlers: { 'fence-peer': 'true' } };
}

/** alpha Primary, bravo Secondary and UpToDate, connected. */
function pair(seed: number): SimPair {
  return SimPair.synced(new SeededRng(seed), SIZE, cfg('alpha', 'bravo'), cfg('bravo', 'alpha'));
}

/** Runs `ms` of simulated time in engine-sized ticks, delivering everything between ticks. */
function advance(p: SimPair, ms: number): void {
  for (let t = 0; t < ms; t += TICK_MS) {
    p.tick(TICK_MS);
    for (let i = 0; i < 100_000 && p.stepOnce(); i++);
  }
}

/** Advances until `n` has a peer-check result; returns the simulated ms it took. */
function untilChecked(p: SimPair, n: SimNode, limitMs: number): number {
  const t0 = p.nowMs;
  while (n.peerChecks.length === 0) {
    assert.ok(p.nowMs - t0 <= limitMs, `no peer-check result within ${limitMs} ms`);
    advance(p, TICK_MS);
  }
  return p.nowMs - t0;
}

test('a Secondary whose Primary went silent is refused promotion until its own timeout, as before', () => {
  const p = pair(1);
  p.setLink(false, { silent: true });
  advance(p, 5_000);
  const s = p.b.core.status();
  assert.equal(s.conn, 'Connected', 'no reset arrived: the connection still looks up');
  assert.equal(s.peerRole, 'Primary');
  const r = p.b.core.promote(false);
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.code, 'peer-is-primary');
  // Only ping-int + timeout of silence (16 s with drbd.conf's defaults) ends it.
  advance(p, DEFAULTS.pingIntervalMs + DEFAULTS.timeoutMs);
  assert.notEqual(p.b.core.status().conn, 'Connected');
});

test('checkPeer drops a silent Primary peer within ping-timeout, and the promote then goes through', () => {
  const p = pair(2);
  p.setLink(false, { silent: true });
  advance(p, 300); // the cluster notices and fences the node meanwhile
  assert.equal(p.b.core.promote(false).ok, false, 'a plain promote is still refused');
  assert.ok(p.b.core.checkPeer(CHECK_MS).ok);
  assert.ok(p.b.core.checkPeer(CHECK_MS).ok, 'a second request joins the check under way');
  const tookMs = untilChecked(p, p.b, 2_000);
  assert.ok(tookMs >= CHECK_MS, `the check waited ${tookMs} ms, not less than ping-timeout`);
  assert.ok(tookMs <= CHECK_MS + 2 * TICK_MS, `the check took ${tookMs} ms, at most two ticks past it`);
  assert.equal(p.b.peerChecks.length, 1, 'one result for one check');
  const [result] = p.b.peerChecks;
  assert.equal(result?.peer, 'lost');
  assert.match(result?.peer === 'lost' ? result.reason : '', /no answer from alpha to a ping within 500 ms/);
  const s = p.b.core.status();
  assert.equal(s.conn, 'Connecting', 'dropped as a lost peer: it keeps trying to reconnect');
  assert.equal(s.peerRole, 'Unknown');
  assert.ok(p.b.core.promote(false).ok, 'promote now succeeds');
  advance(p, TICK_MS);
  assert.equal(p.b.core.status().role, 'Primary');
  assert.deepEqual(
    p.b.handlers.filter((h) => h === 'fence-peer'),
    ['fence-peer'],
    'promoted without its peer: fence-peer runs per the policy',
  );
});

test('checkPeer on a live Primary peer changes nothing: it answers, stays connected, and promote stays refused', () => {
  const p = pair(3);
  assert.ok(p.b.core.checkPeer(CHECK_MS).ok);
  untilChecked(p, p.b, 2_000);
  assert.deepEqual(p.b.peerChecks, [{ peer: 'answered' }]);
  advance(p, 3 * CHECK_MS);
  const s = p.b.core.status();
  assert.equal(s.conn, 'Connected');
  assert.equal(s.peerRole, 'Primary');
  assert.equal(p.a.core.status().role, 'Primary');
  const r = p.b.core.promote(false);
  assert.equal(!r.ok && r.code, 'peer-is-primary', 'a live Primary peer is never overridden');
  assert.ok(
    !p.a.handlers.includes('fence-peer') && !p.b.handlers.includes('fence-peer'),
    'nobody was fenced',
  );
});

test('a link that comes back before the check times out delivers the held ping, and the peer answers', () => {
  const p = pair(4);
  p.setLink(false, { silent: true });
  assert.ok(p.b.core.checkPeer(CHECK_MS).ok);
  advance(p, CHECK_MS - 3 * TICK_MS);
  assert.deepEqual(p.b.peerChecks, []);
  p.setLink(true);
  untilChecked(p, p.b, 2_000);
  assert.deepEqual(p.b.peerChecks, [{ peer: 'answered' }]);
  assert.equal(p.b.core.status().conn, 'Connected');
});

test('checkPeer without a connection says so at once', () => {
  const p = pair(5);
  p.setLink(false);
  p.settle();
  assert.ok(p.b.core.checkPeer(CHECK_MS).ok);
  p.settle();
  assert.deepEqual(p.b.peerChecks, [{ peer: 'not-connected', conn: 'Connecting' }]);
});

test('a connection lost for another reason while a check runs ends the check as lost', () => {
  const p = pair(6);
  p.setLink(false, { silent: true });
  assert.ok(p.b.core.checkPeer(CHECK_MS).ok);
  p.setLink(false); // now the reset arrives
  p.settle();
  assert.equal(p.b.peerChecks.length, 1);
  assert.equal(p.b.peerChecks[0]?.peer, 'lost');
});
