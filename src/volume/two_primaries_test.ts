import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRng } from '../lib/prng.ts';
import { BLOCK_BYTES } from './bitmap.ts';
import { VolumeCore } from './core.ts';
import { WIRE_VERSION } from './messages.ts';
import { initialMetadata } from './metadata.ts';
import { fnv, SimPair, testConfig } from './sim_pair.ts';

const SIZE = 64 * BLOCK_BYTES;

function pair(seed: number, allowTwoPrimaries: boolean): SimPair {
  return SimPair.synced(
    new SeededRng(seed),
    SIZE,
    testConfig('alpha', 'bravo', { allowTwoPrimaries }),
    testConfig('bravo', 'alpha', { allowTwoPrimaries }),
  );
}

test('without allow-two-primaries the second promote is refused while the peer is Primary', () => {
  const p = pair(1, false);
  const r = p.b.core.promote(false);
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.code === 'peer-is-primary' && /allow-two-primaries/.test(r.message));
  assert.equal(p.b.core.status().role, 'Secondary');
});

for (let seed = 1; seed <= 60; seed++) {
  test(`allow-two-primaries: concurrent overlapping writes on both Primaries end identical on both disks (seed ${seed})`, () => {
    const p = pair(seed, true);
    assert.ok(p.b.core.promote(false).ok, 'the second promote is allowed');
    p.settle();
    const rng = new SeededRng(1000 + seed);
    for (let i = 0; i < 30; i++) {
      const n = rng.int(2) === 0 ? p.a : p.b;
      // Byte-granular writes clustered on a few blocks so they collide often.
      const offset = rng.int(6) * 2048 + rng.int(4) * 512;
      const length = (1 + rng.int(8)) * 512;
      p.write(n, offset, new Uint8Array(length).fill(1 + rng.int(250)), rng.int(4) === 0);
      for (let s = rng.int(6); s > 0; s--) p.stepOnce();
    }
    p.settle();
    assert.equal(p.a.core.status().conn, 'Connected');
    assert.ok(
      Buffer.from(p.a.disk).equals(Buffer.from(p.b.disk)),
      `disks differ after ${p.a.core.status().writeConflicts + p.b.core.status().writeConflicts} conflicts`,
    );
    assert.equal(p.a.failedAcks.size + p.b.failedAcks.size, 0, 'every write is acknowledged');
  });
}

test('allow-two-primaries: a conflict is detected, reported, and resolved the same way on both disks', () => {
  const p = pair(7, true);
  assert.ok(p.b.core.promote(false).ok);
  p.settle();
  // Both write block 3 before either hears of the other's write.
  p.write(p.a, 3 * BLOCK_BYTES, new Uint8Array(BLOCK_BYTES).fill(0xaa));
  p.write(p.b, 3 * BLOCK_BYTES, new Uint8Array(BLOCK_BYTES).fill(0xbb));
  p.settle();
  assert.ok(Buffer.from(p.a.disk).equals(Buffer.from(p.b.disk)));
  assert.equal(p.a.disk[3 * BLOCK_BYTES], 0xaa, 'alpha (first by name) wins: its data is on both disks');
  // Seen where the two writes met in flight (here alpha; bravo's write was settled first).
  assert.ok(p.a.core.status().writeConflicts + p.b.core.status().writeConflicts >= 1);
  assert.ok(
    p.a.logs.some((l) =>
      /concurrent writes to bytes 12288\.\.16383 on both Primaries; alpha's data wins/.test(l),
    ),
  );
});

test('a handshake from another wire format version is refused with a clear error', () => {
  const core = new VolumeCore(testConfig('alpha', 'bravo'), initialMetadata(SIZE, SIZE / BLOCK_BYTES / 8), {
    freshUuid: () => 0x1234n,
    digest: fnv,
  });
  core.connect(false);
  core.step({ e: 'transportUp' });
  const sent = core.takeActions().find((a) => a.a === 'send');
  assert.ok(sent?.a === 'send' && sent.msg.t === 'Handshake' && sent.msg.version === WIRE_VERSION);
  const { version: _v, ...old } = sent.msg as Extract<typeof sent.msg, { t: 'Handshake' }>;
  core.step({ e: 'peer', msg: { ...old, node: 'bravo' } });
  const acts = core.takeActions();
  const log = acts.find((a) => a.a === 'log' && /wire format version mismatch/.test(a.msg));
  assert.ok(
    log?.a === 'log' && log.msg.includes(`halo-${WIRE_VERSION} here, halo-1 on bravo`),
    JSON.stringify(acts),
  );
  assert.ok(acts.some((a) => a.a === 'closeTransport'));
  assert.equal(core.status().conn, 'StandAlone', 'it does not keep retrying a peer it cannot talk to');
});
