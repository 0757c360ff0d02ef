import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRng } from '../lib/prng.ts';
import { Bitmap, BLOCK_BYTES } from './bitmap.ts';
import type { VolumeConfig } from './config.ts';
import { AL_EXTENT_BYTES, type CoreAction, VolumeCore } from './core.ts';
import { initialMetadata, type VolumeMetadata } from './metadata.ts';
import { fnv, type SimNode, SimPair, testConfig } from './sim_pair.ts';

const EXT = AL_EXTENT_BYTES;

function block(fill: number, n = 1): Uint8Array {
  return new Uint8Array(BLOCK_BYTES * n).fill(fill);
}

/**
 * A lone Primary whose I/O the test completes by hand: persists at once, data writes only
 * when released, so a write can be kept in flight on purpose.
 */
class LonePrimary {
  readonly core: VolumeCore;
  persisted: VolumeMetadata;
  readonly persists: Array<{ meta: VolumeMetadata; dataSync: boolean }> = [];
  private readonly held = new Map<number, number>(); // offset -> op
  readonly acked = new Set<number>();
  readonly written = new Set<number>();
  /** While set, persists wait in `heldPersists` (a slow metadata device). */
  holdPersists = false;
  private heldPersists: Array<Extract<CoreAction, { a: 'persist' }>> = [];

  constructor(cfg: VolumeConfig, sizeBytes: number) {
    this.persisted = initialMetadata(sizeBytes, Math.ceil(sizeBytes / BLOCK_BYTES / 8));
    this.core = new VolumeCore(cfg, this.persisted, { freshUuid: () => 0x5eed_0000_0002n, digest: fnv });
    this.drive();
    assert.ok(this.core.promote(true).ok);
    this.drive();
  }

  /** Handles actions until none is left; data writes at `hold` offsets stay in flight. */
  drive(hold: ReadonlySet<number> = new Set()): void {
    for (let round = 0; round < 1000; round++) {
      const acts: CoreAction[] = this.core.takeActions();
      if (acts.length === 0) return;
      for (const a of acts) {
        if (a.a === 'persist' && this.holdPersists) {
          this.heldPersists.push(a);
        } else if (a.a === 'persist') {
          this.persisted = a.meta;
          this.persists.push({ meta: a.meta, dataSync: a.dataSync });
          this.core.step({ e: 'persisted', seq: a.seq });
        } else if (a.a === 'diskWrite') {
          this.written.add(a.offset);
          if (hold.has(a.offset)) this.held.set(a.offset, a.op);
          else this.core.step({ e: 'diskDone', op: a.op, ok: true });
        } else if (a.a === 'diskFlush') {
          this.core.step({ e: 'diskDone', op: a.op, ok: true });
        } else if (a.a === 'ack') {
          this.acked.add(a.id);
        }
      }
    }
    assert.fail('the core kept producing actions');
  }

  releasePersists(): void {
    this.holdPersists = false;
    for (const a of this.heldPersists.splice(0)) {
      this.persisted = a.meta;
      this.persists.push({ meta: a.meta, dataSync: a.dataSync });
      this.core.step({ e: 'persisted', seq: a.seq });
    }
    this.drive();
  }

  release(offset: number): void {
    const op = this.held.get(offset);
    assert.ok(op !== undefined, `no write held at ${offset}`);
    this.held.delete(offset);
    this.core.step({ e: 'diskDone', op, ok: true });
    this.drive();
  }
}

const sorted = (xs: readonly number[]): number[] => [...xs].sort((x, y) => x - y);

test('with al-extents full, a new extent evicts the least recently used one that has no write in flight', () => {
  const cfg: VolumeConfig = { ...testConfig('alpha', 'bravo'), alExtents: 3 };
  const n = new LonePrimary(cfg, 12 * EXT);
  // Non-sequential writes into extents 0, 2, 4: the log fills up, oldest first. Extent 0's
  // write stays in flight.
  const hold = new Set([0]);
  n.core.step({ e: 'write', id: 1, offset: 0, data: block(1), fua: false });
  n.drive(hold);
  n.core.step({ e: 'write', id: 2, offset: 2 * EXT, data: block(2), fua: false });
  n.core.step({ e: 'write', id: 3, offset: 4 * EXT, data: block(3), fua: false });
  n.drive(hold);
  assert.deepEqual(sorted(n.persisted.activityLog), [0, 2, 4]);
  assert.deepEqual([...n.acked].sort(), [2, 3], 'the write in flight is not acknowledged');
  const before = n.persists.length;
  // Extent 6 needs room: extent 0 is least recently used but busy, so extent 2 leaves.
  n.core.step({ e: 'write', id: 4, offset: 6 * EXT, data: block(4), fua: false });
  n.drive(hold);
  assert.deepEqual(sorted(n.persisted.activityLog), [0, 4, 6], 'extent 2 was evicted, not the busy extent 0');
  const evicting = n.persists.slice(before);
  assert.equal(evicting.length, 1, 'one metadata write adds the new extent and evicts the old one');
  assert.ok(evicting[0]!.dataSync, 'evicting makes the data durable first');
  assert.ok(n.acked.has(4));

  // Every extent busy: the log grows past al-extents rather than drop a write's extent...
  const hold2 = new Set([0, 4 * EXT + BLOCK_BYTES, 6 * EXT + BLOCK_BYTES]);
  n.core.step({ e: 'write', id: 5, offset: 4 * EXT + BLOCK_BYTES, data: block(5), fua: false });
  n.core.step({ e: 'write', id: 6, offset: 6 * EXT + BLOCK_BYTES, data: block(6), fua: false });
  n.drive(hold2);
  n.core.step({ e: 'write', id: 7, offset: 9 * EXT, data: block(7), fua: false });
  n.drive(hold2);
  assert.deepEqual(sorted(n.persisted.activityLog), [0, 4, 6, 9]);
  // ...and shrinks back to al-extents once a write settles.
  n.release(4 * EXT + BLOCK_BYTES);
  n.core.step({ e: 'tick', nowMs: 100 });
  n.drive(hold2);
  assert.deepEqual(sorted(n.persisted.activityLog), [0, 6, 9], 'the settled extent 4 left, extent 0 stayed');
  n.release(0);
  n.release(6 * EXT + BLOCK_BYTES);
  assert.deepEqual([...n.acked].sort(), [1, 2, 3, 4, 5, 6, 7]);
});

test('a write into an extent already in the log makes it the most recently used one', () => {
  const cfg: VolumeConfig = { ...testConfig('alpha', 'bravo'), alExtents: 2 };
  const n = new LonePrimary(cfg, 12 * EXT);
  n.core.step({ e: 'write', id: 1, offset: 0, data: block(1), fua: false });
  n.drive();
  n.core.step({ e: 'write', id: 2, offset: 2 * EXT, data: block(2), fua: false });
  n.drive();
  const before = n.persists.length;
  // Extent 0 again: no metadata write, but it is now used more recently than extent 2...
  n.core.step({ e: 'write', id: 3, offset: BLOCK_BYTES, data: block(3), fua: false });
  n.drive();
  assert.equal(n.persists.length, before, 'a write into a hot extent needs no metadata write');
  // ...so when extent 4 needs room, extent 2 leaves.
  n.core.step({ e: 'write', id: 4, offset: 4 * EXT, data: block(4), fua: false });
  n.drive();
  assert.deepEqual(sorted(n.persisted.activityLog), [0, 4]);
  assert.deepEqual([...n.acked].sort(), [1, 2, 3, 4]);
});

test('a sequential stream activates the extents ahead of it in one metadata write it does not wait for', () => {
  const cfg: VolumeConfig = { ...testConfig('alpha', 'bravo'), alExtents: 64 };
  const n = new LonePrimary(cfg, 32 * EXT);
  n.core.step({ e: 'tick', nowMs: 1000 });
  n.drive();
  const before = n.persists.length;
  // 24 MiB of 1 MiB writes in order.
  for (let i = 0; i < 24; i++) {
    n.core.step({ e: 'write', id: 10 + i, offset: i * 1024 * 1024, data: block(i, 256), fua: false });
    n.drive();
  }
  const persists = n.persists.length - before;
  assert.ok(persists <= 3, `${persists} metadata writes for 6 extents of sequential writes`);
  assert.ok(n.persisted.activityLog.includes(6), 'the extent after the stream is already active');
  assert.equal(n.acked.size, 24);
  // A flush makes everything durable; extents activated ahead stay while the stream may reach them.
  n.core.step({ e: 'flush', id: 99 });
  n.core.step({ e: 'tick', nowMs: 1500 });
  n.drive();
  assert.ok(n.persisted.activityLog.includes(7), 'an extent activated ahead does not cool at once');
  // Idle past AL_COOL_MS: the log empties.
  n.core.step({ e: 'tick', nowMs: 5000 });
  n.drive();
  assert.deepEqual(n.persisted.activityLog, []);
});

test('under load, extents a flush made durable cool without a data sync; the others wait for quiet', () => {
  const cfg: VolumeConfig = { ...testConfig('alpha', 'bravo'), alExtents: 64 };
  const n = new LonePrimary(cfg, 32 * EXT);
  const start = n.persists.length;
  n.core.step({ e: 'write', id: 1, offset: 0, data: block(1), fua: false });
  n.core.step({ e: 'write', id: 2, offset: 8 * EXT, data: block(2), fua: false });
  n.drive();
  n.core.step({ e: 'flush', id: 3 });
  n.core.step({ e: 'write', id: 4, offset: 16 * EXT, data: block(4), fua: false });
  n.drive();
  assert.deepEqual(sorted(n.persisted.activityLog), [0, 8, 16]);
  // Writes keep coming into extent 20 while time passes.
  for (let t = 1; t <= 6; t++) {
    n.core.step({ e: 'tick', nowMs: t * 400 });
    n.core.step({ e: 'write', id: 10 + t, offset: 20 * EXT + t * BLOCK_BYTES, data: block(t), fua: false });
    n.drive();
  }
  const al = n.persisted.activityLog;
  assert.ok(!al.includes(0) && !al.includes(8), 'the flushed extents 0 and 8 left');
  assert.ok(al.includes(16) && al.includes(20), 'the unflushed idle extent 16 and the busy extent 20 stay');
  assert.ok(
    n.persists.slice(start).every((p) => !p.dataSync),
    'no metadata write synced data while the volume was busy',
  );
  // Quiet: the rest cools, with one data sync.
  n.core.step({ e: 'tick', nowMs: 5000 });
  n.drive();
  assert.deepEqual(n.persisted.activityLog, []);
  assert.ok(n.persists.at(-1)!.dataSync);
});

test('a write into an extent activated ahead waits until the metadata holding that extent is on disk', () => {
  const cfg: VolumeConfig = { ...testConfig('alpha', 'bravo'), alExtents: 64 };
  const n = new LonePrimary(cfg, 32 * EXT);
  const MiB = 1024 * 1024;
  n.core.step({ e: 'write', id: 1, offset: 0, data: block(1, 256), fua: false });
  n.drive();
  // The stream's second write activates extents 1.. ahead; that metadata write is slow.
  n.holdPersists = true;
  n.core.step({ e: 'write', id: 2, offset: MiB, data: block(2, 256), fua: false });
  n.drive();
  assert.ok(n.acked.has(2), 'a write into the already active extent does not wait for the look-ahead');
  n.core.step({ e: 'write', id: 3, offset: EXT, data: block(3, 256), fua: false });
  n.drive();
  assert.ok(
    !n.written.has(EXT) && !n.acked.has(3),
    'not written nor acknowledged before extent 1 is on disk',
  );
  n.releasePersists();
  assert.ok(n.persisted.activityLog.includes(1));
  assert.ok(n.written.has(EXT) && n.acked.has(3));
});

/**
 * Blocks where the crashed Primary's surviving disk may differ from the peer's must all be
 * listed as out of sync by the Primary's on-disk metadata (activity log or bitmap).
 */
function uncovered(primary: SimNode, peer: SimNode): number[] {
  const bits = new Bitmap(primary.disk.length / BLOCK_BYTES, primary.persisted.bitmap);
  const al = new Set(primary.persisted.activityLog);
  const out: number[] = [];
  for (let b = 0; b < primary.disk.length / BLOCK_BYTES; b++) {
    const o = b * BLOCK_BYTES;
    const same = Buffer.compare(
      Buffer.from(primary.disk.subarray(o, o + BLOCK_BYTES)),
      Buffer.from(peer.disk.subarray(o, o + BLOCK_BYTES)),
    );
    if (same !== 0 && !bits.get(b) && !al.has(Math.floor(o / EXT))) out.push(b);
  }
  return out;
}

test('a Primary losing power with a full activity log has every block it may have lost in its on-disk log or bitmap', () => {
  const size = 6 * EXT;
  let evictions = 0;
  for (let seed = 614; seed < 624; seed++) {
    const rng = new SeededRng(seed);
    // A 4-extent log (one of them activated ahead of sequential streams) over 6 extents.
    const cfgA: VolumeConfig = { ...testConfig('alpha', 'bravo'), alExtents: 4 };
    const cfgB: VolumeConfig = { ...testConfig('bravo', 'alpha'), alExtents: 4 };
    const p = new SimPair(rng, size, cfgA, cfgB);
    p.a.core.connect(false);
    p.b.core.connect(false);
    p.settle();
    assert.ok(p.a.core.promote(true).ok);
    p.settle();
    assert.equal(p.b.core.status().disk, 'UpToDate', `seed ${seed}: initial sync`);
    // Sequential streams and scattered writes over all 6 extents, time
    // moving (peer barriers settle writes), then power loss at a random step.
    const steps = 200 + rng.int(2000);
    let lastAl = '';
    for (let s = 0, w = 0; s < steps; s++) {
      if (rng.int(4) === 0) {
        const seq = rng.int(2) === 0;
        const off = seq
          ? ((w * 64) % (size / BLOCK_BYTES - 64)) * BLOCK_BYTES
          : rng.int(size / BLOCK_BYTES - 4) * BLOCK_BYTES;
        p.write(p.a, off, block(1 + (w % 250), seq ? 64 : 1 + rng.int(4)));
        w++;
      }
      // Flushes now and then: extents they made durable may leave the log without a data sync.
      if (rng.int(40) === 0) p.flush(p.a);
      if (s % 50 === 0) p.tick(60);
      p.stepOnce();
      const al = sorted(p.a.persisted.activityLog).join(',');
      if (lastAl !== '' && al !== lastAl) evictions++;
      lastAl = al;
    }
    p.powerLoss(p.a);
    p.settle(); // the peer finishes whatever reached it
    assert.deepEqual(
      uncovered(p.a, p.b),
      [],
      `seed ${seed}: blocks that may differ are in the on-disk AL or bitmap`,
    );
    p.restart(p.a);
    p.a.core.connect(false);
    p.b.core.connect(false);
    p.settle();
    assert.equal(p.a.core.status().conn, 'Connected', `seed ${seed}`);
    assert.ok(
      Buffer.compare(Buffer.from(p.a.disk), Buffer.from(p.b.disk)) === 0,
      `seed ${seed}: resync converges`,
    );
  }
  assert.ok(evictions > 10, `the log changed ${evictions} times: eviction was exercised`);
});
