import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRng } from '../lib/prng.ts';
import { BLOCK_BYTES } from './bitmap.ts';
import { type SimNode, SimPair, testConfig } from './sim_pair.ts';

const SIZE = 64 * BLOCK_BYTES * 4; // 1 MiB: 256 blocks

function block(fill: number, n = 1): Uint8Array {
  return new Uint8Array(BLOCK_BYTES * n).fill(fill);
}

/** Brings up a pair: both connect, alpha is forced Primary, the initial full sync completes. */
function syncedPair(seed: number, protocol: 'A' | 'B' | 'C' = 'C', net = {}): SimPair {
  const p = new SimPair(
    new SeededRng(seed),
    SIZE,
    testConfig('alpha', 'bravo', { protocol, ...net }),
    testConfig('bravo', 'alpha', { protocol, ...net }),
  );
  p.a.core.connect(false);
  p.b.core.connect(false);
  p.settle();
  assert.equal(p.a.core.status().conn, 'Connected');
  assert.equal(p.a.core.status().disk, 'Inconsistent');
  assert.deepEqual(p.a.core.promote(false).ok, false, 'an Inconsistent disk needs --force');
  assert.ok(p.a.core.promote(true).ok);
  p.settle();
  return p;
}

function sameDisks(p: SimPair): boolean {
  return p.sameDisks();
}

test('primary --force on a new pair runs a full initial sync and both disks end UpToDate', () => {
  const p = new SimPair(new SeededRng(1), SIZE);
  p.a.disk.fill(7); // whatever the backing file held before
  p.a.core.connect(false);
  p.b.core.connect(false);
  p.settle();
  p.a.core.promote(true);
  p.settle();
  const sa = p.a.core.status();
  const sb = p.b.core.status();
  assert.equal(sa.role, 'Primary');
  assert.equal(sa.disk, 'UpToDate');
  assert.equal(sb.disk, 'UpToDate');
  assert.equal(sa.conn, 'Connected');
  assert.equal(sb.conn, 'Connected');
  assert.ok(sameDisks(p));
  assert.equal(sa.gen.current & ~1n, sb.gen.current & ~1n);
  assert.ok(p.b.handlers.includes('after-resync-target'));
});

for (const protocol of ['A', 'B', 'C'] as const) {
  test(`protocol ${protocol}: writes replicate and are acknowledged to the client`, () => {
    const p = syncedPair(2, protocol);
    const ids = [p.write(p.a, 0, block(1)), p.write(p.a, 8192, block(2, 3))];
    p.settle();
    for (const id of ids) assert.ok(p.a.acked.has(id));
    assert.ok(sameDisks(p));
  });
}

test('with protocol C an acknowledged write is already on both disks at the moment of the ack', () => {
  const p = syncedPair(3, 'C');
  const rng = new SeededRng(33);
  for (let i = 0; i < 40; i++) {
    const blk = i; // distinct blocks, so later writes never overwrite earlier ones
    p.write(p.a, blk * BLOCK_BYTES, block(100 + (i % 100)), rng.int(2) === 0);
    for (let s = 0; s < 5; s++) p.stepOnce();
    for (const w of p.writesAcked) {
      const onA = Buffer.from(p.a.disk.subarray(w.offset, w.offset + w.data.length));
      const onB = Buffer.from(p.b.disk.subarray(w.offset, w.offset + w.data.length));
      assert.deepEqual(onA, Buffer.from(w.data));
      assert.deepEqual(onB, Buffer.from(w.data), `write ${w.id} acked but missing on the peer`);
    }
  }
  p.settle();
});

test('a primary that loses its peer keeps writing, marks the blocks, and resyncs exactly them later', () => {
  const p = syncedPair(4, 'C');
  p.setLink(false);
  p.settle();
  assert.equal(p.a.core.status().conn, 'Connecting');
  for (let i = 0; i < 10; i++) p.write(p.a, (50 + i) * BLOCK_BYTES, block(9));
  p.settle();
  assert.equal(p.a.acked.size, 10);
  assert.equal(p.a.core.status().outOfSyncBlocks, 10);
  const before = p.a.core.status().counters.resyncBytesSent;
  p.setLink(true);
  p.settle();
  const s = p.a.core.status();
  assert.equal(s.conn, 'Connected');
  assert.equal(
    s.counters.resyncBytesSent - before,
    10 * BLOCK_BYTES,
    'resync sends exactly the dirty blocks',
  );
  assert.ok(sameDisks(p));
});

test('an interrupted resync resumes where it stopped instead of starting over', () => {
  const p = syncedPair(5, 'C');
  p.setLink(false);
  p.settle();
  // Every other block: many short runs, so a cut lands in the middle of the resync.
  for (let i = 0; i < 100; i++) p.write(p.a, i * 2 * BLOCK_BYTES, block(3));
  p.settle();
  const before = p.a.core.status().counters.resyncBytesSent;
  p.setLink(true);
  // Run part of the resync, then cut the link.
  for (let i = 0; i < 25; i++) p.stepOnce();
  const partial = p.a.core.status().counters.resyncBytesSent;
  p.setLink(false);
  p.settle();
  const left = p.a.core.status().outOfSyncBlocks;
  assert.ok(left < 100 && left > 0, `some but not all blocks synced (left ${left})`);
  p.setLink(true);
  p.settle();
  const total = p.a.core.status().counters.resyncBytesSent;
  assert.ok(partial > before, 'the first pass sent something');
  // Blocks in flight when the link dropped are sent again; everything else only once.
  assert.ok(total - partial <= (left + 32 * 32) * BLOCK_BYTES, 'second pass sends about what was left');
  assert.ok(total - before < 100 * BLOCK_BYTES + 32 * 32 * BLOCK_BYTES);
  assert.ok(sameDisks(p));
  assert.equal(p.b.core.status().disk, 'UpToDate');
});

function splitBrain(
  net: object,
  writeA: number,
  writeB: number,
  demote: 'none' | 'both' | 'a' | 'b' = 'both',
): SimPair {
  const p = syncedPair(6, 'C', net);
  p.setLink(false);
  p.settle();
  assert.ok(p.b.core.promote(false).ok);
  for (let i = 0; i < writeA; i++) p.write(p.a, i * BLOCK_BYTES, block(0xa));
  for (let i = 0; i < writeB; i++) p.write(p.b, (100 + i) * BLOCK_BYTES, block(0xb));
  p.settle();
  if (demote === 'both' || demote === 'a') p.a.core.demote();
  if (demote === 'both' || demote === 'b') p.b.core.demote();
  p.settle();
  p.setLink(true);
  p.settle();
  return p;
}

test('split brain with after-sb-0pri disconnect is detected and both sides go StandAlone', () => {
  const p = splitBrain({}, 3, 4);
  assert.equal(p.a.core.status().conn, 'StandAlone');
  assert.equal(p.b.core.status().conn, 'StandAlone');
  assert.ok(p.a.handlers.includes('split-brain'));
  assert.ok(p.b.handlers.includes('split-brain'));
  assert.ok(!sameDisks(p));
});

test('connect --discard-my-data on one side resolves a split brain in favour of the other', () => {
  const p = splitBrain({}, 3, 4);
  p.b.core.connect(true);
  p.a.core.connect(false);
  p.settle();
  assert.equal(p.a.core.status().conn, 'Connected');
  assert.ok(sameDisks(p));
  assert.equal(p.b.disk[100 * BLOCK_BYTES], 0, "bravo's split-brain writes are gone");
  assert.equal(p.b.disk[0], 0xa);
});

test('after-sb-0pri discard-zero-changes keeps the side that wrote when the other did not', () => {
  const p = splitBrain({ afterSb0: 'discard-zero-changes' }, 0, 5);
  assert.equal(p.a.core.status().conn, 'Connected');
  assert.ok(sameDisks(p));
  assert.equal(p.a.disk[100 * BLOCK_BYTES], 0xb);
});

test('after-sb-0pri discard-zero-changes disconnects when both sides wrote', () => {
  const p = splitBrain({ afterSb0: 'discard-zero-changes' }, 2, 5);
  assert.equal(p.a.core.status().conn, 'StandAlone');
});

test('after-sb-0pri discard-least-changes keeps the side with more changed blocks', () => {
  const p = splitBrain({ afterSb0: 'discard-least-changes' }, 2, 5);
  assert.ok(sameDisks(p));
  assert.equal(p.a.disk[100 * BLOCK_BYTES], 0xb);
  assert.equal(p.a.disk[0], 0);
});

test('after-sb-0pri discard-younger-primary keeps the data of the node that was Primary before the split', () => {
  const p = splitBrain({ afterSb0: 'discard-younger-primary' }, 2, 5);
  assert.ok(sameDisks(p));
  assert.equal(p.b.disk[0], 0xa, "alpha's writes survive");
  assert.equal(p.b.disk[100 * BLOCK_BYTES], 0);
});

test('after-sb-0pri discard-older-primary keeps the data of the node promoted during the split', () => {
  const p = splitBrain({ afterSb0: 'discard-older-primary' }, 5, 2);
  assert.ok(sameDisks(p));
  assert.equal(p.a.disk[100 * BLOCK_BYTES], 0xb);
  assert.equal(p.a.disk[0], 0);
});

test('after-sb-1pri discard-secondary keeps the Primary and resyncs the Secondary', () => {
  const p = splitBrain({ afterSb1: 'discard-secondary' }, 5, 2, 'b');
  assert.equal(p.a.core.status().role, 'Primary');
  assert.ok(sameDisks(p));
  assert.equal(p.b.disk[0], 0xa);
});

test('after-sb-1pri consensus only resolves when the 0pri policy discards the Secondary', () => {
  const ok = splitBrain({ afterSb0: 'discard-least-changes', afterSb1: 'consensus' }, 5, 2, 'b');
  assert.ok(sameDisks(ok));
  const refused = splitBrain({ afterSb0: 'discard-least-changes', afterSb1: 'consensus' }, 2, 5, 'b');
  assert.equal(refused.a.core.status().conn, 'StandAlone');
});

test('after-sb-1pri call-pri-lost-after-sb runs the handler on a Primary that would lose', () => {
  const p = splitBrain({ afterSb0: 'discard-least-changes', afterSb1: 'call-pri-lost-after-sb' }, 2, 5, 'b');
  assert.ok(p.a.handlers.includes('pri-lost-after-sb'));
  assert.equal(p.a.core.status().conn, 'StandAlone');
});

test('after-sb-2pri disconnect: two Primaries after a split never connect', () => {
  const p = splitBrain({ afterSb2: 'disconnect' }, 2, 2, 'none');
  assert.equal(p.a.core.status().conn, 'StandAlone');
  assert.equal(p.b.core.status().conn, 'StandAlone');
});

test('only one Primary unless allow-two-primaries', () => {
  const p = syncedPair(7);
  const r = p.b.core.promote(false);
  assert.equal(r.ok, false);
  const q = syncedPair(7, 'C', { allowTwoPrimaries: true });
  assert.ok(q.b.core.promote(false).ok);
});

test('online verify finds a block changed behind the volume’s back', () => {
  const p = syncedPair(8);
  p.b.disk[77 * BLOCK_BYTES + 5] = 0xff - (p.b.disk[77 * BLOCK_BYTES + 5] ?? 0);
  assert.ok(p.a.core.startVerify().ok);
  p.settle();
  const v = p.a.core.status().verify!;
  assert.equal(v.running, false);
  assert.equal(v.outOfSync, 1);
  assert.ok(p.a.core.isMarked(77));
  // disconnect + connect resyncs the marked block from the Primary.
  p.a.core.disconnect();
  p.settle();
  p.a.core.connect(false);
  p.settle();
  assert.ok(sameDisks(p));
});

test('checksum-based resync sends only blocks whose digest differs', () => {
  const p = syncedPair(9, 'C', { csumsAlg: 'fnv' });
  p.setLink(false);
  p.settle();
  // Rewrite 20 blocks with the bytes they already hold, and change 3.
  for (let i = 0; i < 20; i++)
    p.write(p.a, i * BLOCK_BYTES, p.a.disk.slice(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES));
  for (let i = 0; i < 3; i++) p.write(p.a, (30 + i) * BLOCK_BYTES, block(0x42));
  p.settle();
  p.setLink(true);
  p.settle();
  assert.equal(p.a.core.status().counters.resyncBytesSent, 3 * BLOCK_BYTES);
  assert.ok(sameDisks(p));
});

/**
 * The randomized run: crashes, cuts and writes, then heal and check convergence. With `power`,
 * a crash also loses the disk's volatile cache, and a fourth fault cuts power to both nodes.
 */
function randomRun(seed: number, protocol: 'A' | 'B' | 'C', power = false): void {
  const rng = new SeededRng(seed);
  const p = syncedPair(seed, protocol);
  const down = (n: SimNode) => (power ? p.powerLoss(n) : p.crash(n));
  // Acknowledged writes no flush covered may vanish when both nodes lose power (as on any
  // disk with a write cache), so the acked-writes check stops after the first such outage.
  let bothLostPower = false;
  let primary: SimNode = p.a;
  for (let round = 0; round < 6; round++) {
    for (let i = 0; i < 30; i++) {
      if (primary.up && primary.core.status().role === 'Primary') {
        const blk = rng.int(SIZE / BLOCK_BYTES - 2);
        p.write(primary, blk * BLOCK_BYTES, block(1 + rng.int(250), 1 + rng.int(2)), rng.int(4) === 0);
      }
      for (let s = rng.int(6); s > 0; s--) p.stepOnce();
    }
    const fault = rng.int(4);
    if (fault === 0) {
      // kill -9 the Primary; check every write it acked is on the survivor (protocol C).
      const victim = primary;
      const survivor = p.peerOf(victim);
      const survivorWasConnected =
        survivor.core.status().conn === 'Connected' && survivor.core.status().disk === 'UpToDate';
      down(victim);
      p.settle();
      if (protocol === 'C' && survivorWasConnected && !bothLostPower) checkAckedOn(p, survivor);
      if (survivor.core.status().disk === 'UpToDate' && survivor.core.promote(false).ok) primary = survivor;
      p.restart(victim);
      victim.core.connect(false);
    } else if (fault === 2) {
      // kill -9 the Secondary mid-stream; it comes back and resyncs.
      const victim = p.peerOf(primary);
      down(victim);
      p.settle();
      p.restart(victim);
      victim.core.connect(false);
    } else if (fault === 1) {
      p.setLink(false);
      for (let s = 0; s < 50; s++) p.stepOnce();
      p.setLink(true);
    } else if (power) {
      // Both lose power mid-stream; they come back as Secondaries and the old Primary resumes.
      down(p.a);
      down(p.b);
      bothLostPower = true;
      for (const n of [p.a, p.b]) {
        p.restart(n);
        n.core.connect(false);
      }
      p.settle();
      if (primary.core.status().disk === 'UpToDate') primary.core.promote(false);
      else if (p.peerOf(primary).core.promote(false).ok) primary = p.peerOf(primary);
    }
    p.settle();
  }
  // Heal: everyone up, connected, one Primary; the disks must converge.
  p.setLink(true);
  p.settle();
  const sa = p.a.core.status();
  const sb = p.b.core.status();
  assert.equal(sa.conn, 'Connected', `seed ${seed}: alpha is ${sa.conn}: ${sa.lastDecision}`);
  assert.equal(sb.conn, 'Connected', `seed ${seed}: bravo is ${sb.conn}`);
  assert.ok(sameDisks(p), `seed ${seed}: disks differ after resync`);
}

/**
 * Every acknowledged write must be on the survivor: each block holds the data of its latest
 * acknowledged write, or of a write submitted after it (applied but not yet acknowledged).
 */
let ackChecks = 0;
function checkAckedOn(p: SimPair, survivor: SimNode): void {
  ackChecks++;
  const miss = p.missingAckedWrite(survivor);
  assert.equal(miss, undefined, miss);
}

for (const protocol of ['C', 'B', 'A'] as const) {
  test(`randomized crashes and partitions (protocol ${protocol}): resync converges to identical disks`, () => {
    ackChecks = 0;
    for (let seed = 100; seed < 112; seed++) randomRun(seed, protocol);
    if (protocol === 'C') assert.ok(ackChecks >= 3, `only ${ackChecks} primary crashes were checked`);
  });
}

test('randomized power losses (protocol C): acked writes survive on the peer and resync converges to identical disks', () => {
  ackChecks = 0;
  for (let seed = 300; seed < 312; seed++) randomRun(seed, 'C', true);
});

test('split brain is detected under every partition where both sides wrote', () => {
  for (let seed = 200; seed < 220; seed++) {
    const rng = new SeededRng(seed);
    const p = syncedPair(seed, 'C');
    p.setLink(false);
    for (let s = rng.int(50); s > 0; s--) p.stepOnce();
    p.settle();
    assert.ok(p.b.core.promote(false).ok);
    p.write(p.a, rng.int(200) * BLOCK_BYTES, block(1));
    p.write(p.b, rng.int(200) * BLOCK_BYTES, block(2));
    p.settle();
    p.a.core.demote();
    p.b.core.demote();
    p.setLink(true);
    p.settle();
    assert.equal(p.a.core.status().conn, 'StandAlone', `seed ${seed}`);
    assert.ok(p.a.handlers.includes('split-brain'), `seed ${seed}`);
  }
});

test('resync-rate caps resync throughput on the simulated clock', () => {
  const p = new SimPair(
    new SeededRng(11),
    SIZE,
    testConfig('alpha', 'bravo', { rate: 256 * 1024 }),
    testConfig('bravo', 'alpha', { rate: 256 * 1024 }),
  );
  p.a.core.connect(false);
  p.b.core.connect(false);
  p.settle();
  p.a.core.promote(true);
  // 1 MiB to sync at 256 KiB/s: after 2 simulated seconds about half is across, not all.
  for (let t = 0; t < 200; t++) {
    p.tick(10);
    for (let s = 0; s < 50; s++) p.stepOnce();
  }
  const sent = p.a.core.status().counters.resyncBytesSent;
  assert.ok(sent >= 384 * 1024 && sent <= 768 * 1024, `sent ${sent} bytes in 2 s at 256 KiB/s`);
  // The rest arrives as the budget refills (bounded: 4 more simulated seconds).
  for (let t = 0; t < 400 && p.b.core.status().disk !== 'UpToDate'; t++) {
    p.tick(10);
    for (let s = 0; s < 50; s++) p.stepOnce();
  }
  assert.equal(p.b.core.status().disk, 'UpToDate');
});

test('a Primary that disconnects on purpose outdates its peer, which then needs --force to promote', () => {
  const p = syncedPair(12);
  p.a.core.disconnect();
  p.settle();
  assert.equal(p.b.core.status().disk, 'Outdated');
  assert.equal(p.b.persisted.disk, 'Outdated', 'the outdated state is on disk');
  const r = p.b.core.promote(false);
  assert.equal(r.ok, false);
  assert.equal(r.ok === false && r.code, 'not-uptodate');
  // Reconnecting with nothing written in between brings it back to UpToDate.
  p.a.core.connect(false);
  p.settle();
  assert.equal(p.b.core.status().disk, 'UpToDate');
});

/**
 * Brings a pair to the point where bravo is resync target for 100 blocks alpha wrote while
 * they were apart (alpha's copy of them is durable).
 */
function pendingResync(seed: number): SimPair {
  const p = syncedPair(seed, 'C');
  p.setLink(false);
  p.settle();
  for (let i = 0; i < 100; i++) p.write(p.a, i * 2 * BLOCK_BYTES, block(0x5a));
  p.flush(p.a);
  p.settle();
  return p;
}

/** Blocks bravo's metadata on disk claims in sync although its durable data is not alpha's. */
function falselyInSync(p: SimPair): number[] {
  const meta = p.b.persisted;
  const bad: number[] = [];
  for (let b = 0; b < SIZE / BLOCK_BYTES; b++) {
    if ((meta.bitmap[b >> 3]! >> (b & 7)) & 1) continue;
    const off = b * BLOCK_BYTES;
    const mine = Buffer.from(p.b.stable.subarray(off, off + BLOCK_BYTES));
    if (Buffer.compare(mine, Buffer.from(p.a.disk.subarray(off, off + BLOCK_BYTES))) !== 0) bad.push(b);
  }
  return bad;
}

test('a resync target that loses power mid-resync never has metadata claiming blocks it did not sync to disk', () => {
  const p = pendingResync(21);
  p.setLink(true);
  // Run the resync with the clock moving, so the target saves its shrinking bitmap on the way.
  let saved = false;
  for (let i = 0; i < 20_000 && !saved; i++) {
    p.stepOnce();
    if (i % 20 === 0) p.tick(250);
    const w = p.b.bitmapWeight();
    saved = p.b.persisted.disk === 'Inconsistent' && w > 0 && w < 100;
  }
  assert.ok(saved, 'the target saved a partly cleared bitmap during the resync');
  p.powerLoss(p.b);
  assert.deepEqual(falselyInSync(p), [], 'blocks marked in sync on disk hold the synced data');
  p.restart(p.b);
  p.b.core.connect(false);
  p.settle();
  assert.equal(p.b.core.status().disk, 'UpToDate');
  assert.ok(sameDisks(p), 'after the restart the resync completes to identical disks');
});

test('a resync target that loses power just after the resync finished still holds the synced data', () => {
  const p = pendingResync(22);
  p.setLink(true);
  p.settle();
  assert.equal(p.b.persisted.disk, 'UpToDate');
  assert.equal(p.b.bitmapWeight(), 0);
  p.powerLoss(p.b);
  assert.deepEqual(falselyInSync(p), [], 'the UpToDate target holds what it claims on disk');
  p.restart(p.b);
  p.b.core.connect(false);
  p.settle();
  assert.ok(sameDisks(p), 'the disks are identical after the restart');
});

test('a Primary that loses power after its activity log cooled still holds every write the log no longer covers', () => {
  const p = syncedPair(23, 'C');
  for (let i = 0; i < 40; i++) p.write(p.a, i * 5 * BLOCK_BYTES, block(0x3c));
  p.settle();
  // Idle past AL_COOL_MS (after the peer made the writes durable): the extents leave the log
  // in the next metadata write.
  for (let i = 0; i < 10; i++) {
    p.tick(250);
    p.settle();
  }
  assert.deepEqual(p.a.persisted.activityLog, [], 'the cooled log reached the metadata');
  p.powerLoss(p.a);
  p.restart(p.a);
  p.a.core.connect(false);
  p.settle();
  assert.equal(p.a.core.status().conn, 'Connected');
  assert.ok(sameDisks(p), 'no write dropped from the log was lost with the cache');
});

test('a Secondary that loses power after acknowledging writes gets them again by resync', () => {
  const p = syncedPair(24, 'C');
  for (let i = 0; i < 20; i++) p.write(p.a, i * 3 * BLOCK_BYTES, block(0x77));
  p.settle();
  assert.equal(p.writesAcked.length, 20, 'protocol C acknowledged every write');
  p.powerLoss(p.b);
  p.settle();
  assert.ok(p.a.core.status().outOfSyncBlocks >= 20, 'the Primary marks what the peer may have lost');
  p.restart(p.b);
  p.b.core.connect(false);
  p.settle();
  assert.equal(p.b.core.status().disk, 'UpToDate');
  assert.ok(sameDisks(p), 'the resync restores the writes the Secondary lost with its cache');
});

test('once the Secondary has synced acknowledged writes to disk, its power loss costs no resync', () => {
  const p = syncedPair(25, 'C');
  for (let i = 0; i < 20; i++) p.write(p.a, i * 3 * BLOCK_BYTES, block(0x78));
  p.settle();
  for (let i = 0; i < 4; i++) {
    p.tick(100);
    p.settle();
  }
  p.powerLoss(p.b);
  p.settle();
  assert.equal(p.a.core.status().outOfSyncBlocks, 0, 'a periodic barrier made the writes durable');
  p.restart(p.b);
  p.b.core.connect(false);
  p.settle();
  assert.ok(sameDisks(p));
});
