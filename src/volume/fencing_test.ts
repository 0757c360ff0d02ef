import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDrbdConf } from '../cib/drbd_conf.ts';
import { SeededRng } from '../lib/prng.ts';
import { BLOCK_BYTES } from './bitmap.ts';
import { builtinHandler, type Fencing, type VolumeConfig, volumeConfigFromDrbd } from './config.ts';
import { handlerArgv } from './handlers.ts';
import { type SimNode, SimPair, testConfig } from './sim_pair.ts';
import { formatDrbdadmStatus, formatProcDrbd } from './status_format.ts';

/** Resource fencing in the pure core: the fence-peer handler, its exit codes, and suspended I/O. */

const SIZE = 256 * BLOCK_BYTES;

function cfg(self: string, peer: string, fencing: Fencing): VolumeConfig {
  return { ...testConfig(self, peer), fencing, handlers: { 'fence-peer': 'true' } };
}

/** A synced pair with alpha Primary, both with the given fencing policy. */
function fencedPair(seed: number, fencing: Fencing): SimPair {
  return SimPair.synced(
    new SeededRng(seed),
    SIZE,
    cfg('alpha', 'bravo', fencing),
    cfg('bravo', 'alpha', fencing),
  );
}

function block(fill: number): Uint8Array {
  return new Uint8Array(BLOCK_BYTES).fill(fill);
}

function handlerDone(p: SimPair, n: SimNode, exitCode: number | null): void {
  n.core.step({ e: 'handlerDone', name: 'fence-peer', exitCode });
  p.settle();
}

test('resource-and-stonith: a Primary that loses its peer acknowledges no write until fence-peer returns 4', () => {
  const p = fencedPair(1, 'resource-and-stonith');
  p.setLink(false);
  p.settle();
  assert.deepEqual(p.a.handlers, ['fence-peer'], 'the handler runs once when the peer is lost');
  assert.equal(p.a.core.status().ioSuspended, true);
  assert.match(formatDrbdadmStatus(p.a.core.status()), /^r0 role:Primary suspended:fencing$/m);
  assert.match(formatProcDrbd(p.a.core.status()), / C s-----/);
  const ids = [p.write(p.a, 0, block(1)), p.write(p.a, 5 * BLOCK_BYTES, block(2))];
  const flush = p.flush(p.a);
  p.settle();
  p.tick(5000);
  p.settle();
  for (const id of [...ids, flush]) assert.ok(!p.a.acked.has(id), `write ${id} acknowledged while frozen`);
  assert.deepEqual(Buffer.from(p.a.disk.subarray(0, BLOCK_BYTES)), Buffer.from(block(1)), 'written locally');
  handlerDone(p, p.a, 4);
  for (const id of [...ids, flush]) assert.ok(p.a.acked.has(id), `write ${id} acknowledged after fencing`);
  const s = p.a.core.status();
  assert.equal(s.ioSuspended, false);
  assert.equal(s.peerOutdated, true);
  assert.equal(s.peerDisk, 'Outdated');
  assert.equal(p.a.persisted.peerOutdated, true, 'the fenced peer is recorded in the metadata');
});

test('resource-and-stonith: a failed fence-peer handler leaves I/O suspended until resume-io', () => {
  const p = fencedPair(2, 'resource-and-stonith');
  p.setLink(false);
  p.settle();
  const id = p.write(p.a, 0, block(3));
  handlerDone(p, p.a, 1);
  assert.ok(!p.a.acked.has(id), 'a broken handler does not release writes');
  assert.ok(p.a.logs.some((l) => l.includes('fence-peer handler failed (exit 1)')));
  handlerDone(p, p.a, null); // a stray late result changes nothing
  assert.ok(!p.a.acked.has(id));
  assert.ok(p.a.core.resumeIo().ok);
  p.settle();
  assert.ok(p.a.acked.has(id));
  assert.equal(p.a.core.status().peerOutdated, false, 'resume-io does not pretend the peer was fenced');
});

test('resource-only: writes continue while fence-peer runs, and the peer is marked outdated when it returns', () => {
  const p = fencedPair(3, 'resource-only');
  p.setLink(false);
  p.settle();
  const id = p.write(p.a, 0, block(4));
  p.settle();
  assert.ok(p.a.acked.has(id), 'resource-only never suspends I/O');
  assert.equal(p.a.core.status().fencing, true);
  handlerDone(p, p.a, 7);
  assert.equal(p.a.core.status().peerOutdated, true);
  assert.equal(p.a.core.status().fencing, false);
});

test('a reconnect resumes suspended I/O, resyncs the peer, and the next loss fences again', () => {
  const p = fencedPair(4, 'resource-and-stonith');
  p.setLink(false);
  p.settle();
  const id = p.write(p.a, 0, block(5));
  p.settle();
  assert.ok(!p.a.acked.has(id));
  p.setLink(true);
  p.settle();
  assert.ok(p.a.acked.has(id), 'the reconnected peer gets the write by resync, so it is acknowledged');
  assert.deepEqual(Buffer.from(p.b.disk.subarray(0, BLOCK_BYTES)), Buffer.from(block(5)));
  assert.ok(p.b.handlers.includes('after-resync-target'), 'the resync target runs after-resync-target');
  p.setLink(false);
  p.settle();
  assert.equal(p.a.handlers.filter((h) => h === 'fence-peer').length, 2);
});

test('fence-peer exit 6 (peer is Primary) outdates this node and keeps its I/O suspended', () => {
  const p = fencedPair(5, 'resource-only');
  p.setLink(false);
  p.settle();
  handlerDone(p, p.a, 6);
  const s = p.a.core.status();
  assert.equal(s.disk, 'Outdated');
  assert.equal(s.ioSuspended, true);
  const id = p.write(p.a, 0, block(6));
  p.settle();
  assert.ok(!p.a.acked.has(id));
});

test('promoting a disconnected Secondary runs fence-peer first, once; an outdated peer needs none', () => {
  const p = fencedPair(6, 'resource-and-stonith');
  assert.ok(p.a.core.demote().ok);
  p.settle();
  p.setLink(false);
  p.settle();
  assert.deepEqual(
    p.b.handlers.filter((h) => h === 'fence-peer'),
    [],
  );
  assert.ok(p.b.core.promote(false).ok);
  p.settle();
  assert.deepEqual(
    p.b.handlers.filter((h) => h === 'fence-peer'),
    ['fence-peer'],
  );
  const id = p.write(p.b, 0, block(7));
  p.settle();
  assert.ok(!p.b.acked.has(id));
  handlerDone(p, p.b, 4);
  assert.ok(p.b.acked.has(id));
  assert.ok(p.b.core.demote().ok);
  assert.ok(p.b.core.promote(false).ok);
  p.settle();
  assert.equal(p.b.handlers.filter((h) => h === 'fence-peer').length, 1, 'the peer is already outdated');
});

test('fencing dont-care runs no handler and never suspends I/O', () => {
  const p = fencedPair(7, 'dont-care');
  p.setLink(false);
  p.settle();
  const id = p.write(p.a, 0, block(8));
  p.settle();
  assert.ok(p.a.acked.has(id));
  assert.deepEqual(p.a.handlers, []);
});

const CONF = (fencing: string, handlers: string) => `resource r0 {
  protocol C;
  disk { fencing ${fencing}; }
  handlers { ${handlers} }
  on alpha { device /dev/drbd0; disk /tmp/a.img; address 127.0.0.1:7788; meta-disk internal; }
  on bravo { device /dev/drbd0; disk /tmp/b.img; address 127.0.0.1:7789; meta-disk internal; }
}
`;

test('drbd.conf fencing: resource-and-stonith without a fence-peer handler is refused, crm-fence-peer.sh maps to halo', () => {
  const bare = parseDrbdConf(CONF('resource-and-stonith', ''), 'drbd.conf');
  assert.ok(bare.ok);
  assert.throws(
    () => volumeConfigFromDrbd(bare.config, 'r0', 'alpha'),
    (e: Error & { code?: string }) => e.code === 'bad-config' && /needs a fence-peer handler/.test(e.message),
  );
  const seed = parseDrbdConf(
    CONF(
      'resource-only',
      'fence-peer "/usr/lib/drbd/crm-fence-peer.sh"; after-resync-target "/usr/lib/drbd/crm-unfence-peer.sh";',
    ),
    'drbd.conf',
  );
  assert.ok(seed.ok);
  const c = volumeConfigFromDrbd(seed.config, 'r0', 'alpha');
  assert.equal(c.fencing, 'resource-only');
  assert.equal(builtinHandler(c.handlers['fence-peer']!), 'fence-peer');
  assert.equal(builtinHandler(c.handlers['after-resync-target']!), 'unfence-peer');
  assert.equal(builtinHandler('/usr/lib/drbd/notify.sh root'), undefined);
  const argv = handlerArgv(c.handlers['fence-peer']!, c);
  assert.deepEqual(argv.slice(-7), ['volume', '--node', 'alpha', 'fence-peer', 'r0', '--peer', 'bravo']);
  assert.match(argv.at(-8)!, /engine_main\.(ts|js)$/);
  assert.deepEqual(handlerArgv('/usr/lib/drbd/notify.sh root', c), [
    '/bin/sh',
    '-c',
    '/usr/lib/drbd/notify.sh root',
  ]);
});
