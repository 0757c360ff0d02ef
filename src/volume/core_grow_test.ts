import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRng } from '../lib/prng.ts';
import { BLOCK_BYTES } from './bitmap.ts';
import type { GrowResult } from './core.ts';
import { decodePeerMsg, encodePeerMsg } from './messages.ts';
import { type SimNode, SimPair, testConfig } from './sim_pair.ts';

const SIZE = 256 * BLOCK_BYTES; // 1 MiB
const GROWN = 2 * SIZE;
const NEW_BLOCKS = (GROWN - SIZE) / BLOCK_BYTES;

function block(fill: number, n = 1): Uint8Array {
  return new Uint8Array(BLOCK_BYTES * n).fill(fill);
}

/** Both connected, alpha Primary after the initial sync. */
function syncedPair(seed: number): SimPair {
  return SimPair.synced(new SeededRng(seed), SIZE);
}

function sameDisks(p: SimPair): boolean {
  return p.sameDisks();
}

function okResult(r: GrowResult | undefined): Extract<GrowResult, { ok: true }> {
  assert.ok(r?.ok, `grow failed: ${JSON.stringify(r)}`);
  return r;
}

for (const from of ['Primary', 'Secondary'] as const)
  test(`an online grow started on the ${from} grows both nodes and resyncs the new area from the Primary`, () => {
    const p = syncedPair(from === 'Primary' ? 11 : 12);
    p.write(p.a, 0, block(5, 4));
    p.settle();
    const initiator = from === 'Primary' ? p.a : p.b;
    const sentBefore = p.a.core.status().counters.resyncBytesSent;
    assert.deepEqual(initiator.core.startGrow({ sizeBytes: GROWN, extendFile: true, assumeClean: false }), {
      ok: true,
    });
    p.settle();
    const r = okResult(initiator.growResults[0]);
    assert.deepEqual(r, { ok: true, oldBytes: SIZE, newBytes: GROWN, newAreaBlocks: NEW_BLOCKS });
    for (const n of [p.a, p.b]) {
      const s = n.core.status();
      assert.equal(s.sizeBytes, GROWN);
      assert.equal(s.conn, 'Connected');
      assert.equal(s.disk, 'UpToDate');
      assert.equal(s.outOfSyncBlocks, 0);
      assert.equal(s.resize, undefined);
    }
    // The new areas started different (each node's disk held its own bytes there).
    assert.ok(sameDisks(p), 'the resync made the new area identical');
    assert.equal(
      p.a.core.status().counters.resyncBytesSent - sentBefore,
      NEW_BLOCKS * BLOCK_BYTES,
      'exactly the new area, from the Primary',
    );
    assert.ok(p.b.handlers.includes('after-resync-target'));
    // The grown size is in the metadata: a restart comes up with it.
    p.crash(p.b);
    p.restart(p.b);
    assert.equal(p.b.core.sizeBytes, GROWN);
    p.b.core.connect(false);
    p.settle();
    assert.equal(p.b.core.status().conn, 'Connected', 'the restarted node reconnects at the new size');
  });

test('writes that arrive during an online grow wait, then complete, including writes into the new area', () => {
  const p = syncedPair(13);
  assert.ok(p.a.core.startGrow({ sizeBytes: GROWN, extendFile: false, assumeClean: false }).ok);
  const early = p.write(p.a, 8 * BLOCK_BYTES, block(7));
  const flush = p.flush(p.a);
  const beyond = p.write(p.a, SIZE + 3 * BLOCK_BYTES, block(8, 2), true);
  assert.equal(p.a.core.status().resize?.heldIos, 3);
  // While the peer grows, nothing held is written, acknowledged or failed.
  for (let i = 0; i < 3; i++) p.stepOnce();
  assert.ok(p.a.core.status().resize, 'still growing');
  for (const id of [early, flush, beyond]) {
    assert.ok(!p.a.acked.has(id) && !p.a.failedAcks.has(id), `request ${id} waited`);
  }
  p.settle();
  for (const id of [early, flush, beyond]) assert.ok(p.a.acked.has(id), `request ${id} completed`);
  assert.equal(p.a.failedAcks.size, 0);
  okResult(p.a.growResults[0]);
  assert.ok(sameDisks(p));
  const at = SIZE + 3 * BLOCK_BYTES;
  assert.deepEqual(p.b.disk.subarray(at, at + 2 * BLOCK_BYTES), block(8, 2), 'the new-area write replicated');
});

test('a peer whose disk cannot hold the new size refuses, names its size, and neither node changes', () => {
  const p = syncedPair(14);
  p.b.capacityBytes = SIZE + 16 * BLOCK_BYTES;
  const metaA = p.a.persisted;
  assert.ok(p.a.core.startGrow({ sizeBytes: GROWN, extendFile: true, assumeClean: false }).ok);
  const held = p.write(p.a, 0, block(3));
  p.settle();
  const r = p.a.growResults[0];
  assert.ok(r && !r.ok);
  assert.equal(r.code, 'peer-refused');
  assert.match(
    r.message,
    new RegExp(`bravo refused to grow to ${GROWN} bytes: .*${SIZE + 16 * BLOCK_BYTES}`),
  );
  assert.match(r.message, /nothing changed on either node/);
  for (const n of [p.a, p.b]) {
    assert.equal(n.core.status().sizeBytes, SIZE);
    assert.equal(n.persisted.sizeBytes, SIZE);
    assert.equal(n.disk.length, SIZE);
    assert.equal(n.core.status().conn, 'Connected');
  }
  assert.equal(metaA.sizeBytes, SIZE);
  assert.ok(p.a.acked.has(held), 'the write held during the attempt completed');
  assert.ok(sameDisks(p));
});

test('--assume-clean grows both nodes without marking or resyncing the new area', () => {
  const p = syncedPair(15);
  const sentBefore = p.a.core.status().counters.resyncBytesSent;
  assert.ok(p.b.core.startGrow({ sizeBytes: GROWN, extendFile: true, assumeClean: true }).ok);
  p.settle();
  assert.deepEqual(p.b.growResults[0], { ok: true, oldBytes: SIZE, newBytes: GROWN, newAreaBlocks: 0 });
  assert.equal(p.a.core.status().counters.resyncBytesSent, sentBefore);
  assert.equal(p.a.core.status().sizeBytes, GROWN);
  assert.equal(p.b.core.status().disk, 'UpToDate');
  assert.equal(p.a.core.status().outOfSyncBlocks + p.b.core.status().outOfSyncBlocks, 0);
});

test('an online grow needs both disks UpToDate: not right after create-md, before the initial sync', () => {
  const p = new SimPair(new SeededRng(19), SIZE, testConfig('alpha', 'bravo'), testConfig('bravo', 'alpha'));
  p.a.core.connect(false);
  p.b.core.connect(false);
  p.settle();
  assert.equal(p.a.core.status().conn, 'Connected');
  const r = p.a.core.startGrow({ sizeBytes: GROWN, extendFile: true, assumeClean: false });
  assert.ok(!r.ok && r.code === 'not-uptodate', JSON.stringify(r));
  assert.match(r.message, /here Inconsistent, bravo Inconsistent/);
});

test('an online grow needs the peer Connected and a size larger than the volume', () => {
  const p = syncedPair(16);
  const req = { sizeBytes: GROWN, extendFile: true, assumeClean: false };
  p.setLink(false);
  p.settle();
  const r = p.a.core.startGrow(req);
  assert.ok(!r.ok);
  assert.equal(r.code, 'not-connected');
  assert.match(r.message, /connect first .*or resize offline/);
  p.setLink(true);
  p.settle();
  const small = p.a.core.startGrow({ ...req, sizeBytes: SIZE });
  assert.ok(!small.ok && small.code === 'bad-size', JSON.stringify(small));
  const odd = p.a.core.startGrow({ ...req, sizeBytes: GROWN + 512 });
  assert.ok(!odd.ok && /multiple of 4096/.test(odd.message));
});

test('a connection lost while the peer grows ends the grow with an error and releases held writes', () => {
  const p = syncedPair(17);
  assert.ok(p.a.core.startGrow({ sizeBytes: GROWN, extendFile: true, assumeClean: false }).ok);
  const w = p.write(p.a, 0, block(4));
  // Run until bravo's growDisk is pending, then cut the link before it answers.
  for (let i = 0; i < 200 && !p.b.pending.some((q) => q.action.a === 'growDisk'); i++) p.stepOnce();
  assert.ok(p.b.pending.some((q) => q.action.a === 'growDisk'));
  p.setLink(false);
  p.settle();
  const r = p.a.growResults[0];
  assert.ok(r && !r.ok && r.code === 'connection-lost', JSON.stringify(r));
  assert.ok(p.a.acked.has(w), 'the held write completed (marked out of sync for the peer)');
  assert.equal(p.a.core.status().sizeBytes, SIZE);
  assert.equal(p.b.core.status().sizeBytes, GROWN, 'bravo finished its own grow');
  assert.equal(p.b.core.status().resize, undefined);
});

test('a grow cut short is finished at the next handshake: the smaller node grows to match and the new area resyncs', () => {
  const p = syncedPair(23);
  assert.ok(p.a.core.startGrow({ sizeBytes: GROWN, extendFile: true, assumeClean: false }).ok);
  for (let i = 0; i < 200 && !p.b.pending.some((q) => q.action.a === 'growDisk'); i++) p.stepOnce();
  p.setLink(false);
  p.settle();
  assert.equal(p.a.core.sizeBytes, SIZE);
  assert.equal(p.b.core.sizeBytes, GROWN);
  // The Primary writes on, alone, at the old size.
  p.write(p.a, 8 * BLOCK_BYTES, block(9));
  p.setLink(true);
  p.settle();
  for (const n of [p.a, p.b]) {
    const s = n.core.status();
    assert.equal(s.conn, 'Connected', `${n.cfg.self.name}: ${s.lastDecision}`);
    assert.equal(s.sizeBytes, GROWN);
    assert.equal(s.disk, 'UpToDate');
    assert.equal(s.outOfSyncBlocks, 0);
  }
  assert.ok(
    p.a.logs.some((l) => l.includes('growing to match')),
    p.a.logs.join('\n'),
  );
  assert.ok(
    p.b.logs.some((l) => l.includes('waiting for alpha to grow to match')),
    p.b.logs.join('\n'),
  );
  assert.ok(sameDisks(p), 'the write made alone and the new area reached bravo');
  // The grown size is in alpha's metadata too.
  p.crash(p.a);
  p.restart(p.a);
  assert.equal(p.a.core.sizeBytes, GROWN);
});

test("a smaller node that cannot grow to its peer's size refuses the connection, naming both sizes", () => {
  const p = syncedPair(29);
  assert.ok(p.a.core.startGrow({ sizeBytes: GROWN, extendFile: true, assumeClean: false }).ok);
  for (let i = 0; i < 200 && !p.b.pending.some((q) => q.action.a === 'growDisk'); i++) p.stepOnce();
  p.setLink(false);
  p.settle();
  p.a.capacityBytes = SIZE;
  p.setLink(true);
  p.settle();
  const s = p.a.core.status();
  assert.equal(s.conn, 'StandAlone');
  assert.equal(s.sizeBytes, SIZE, 'nothing changed here');
  const refusal = p.a.logs.find((l) => l.includes('refusing connection'));
  assert.match(refusal ?? '', new RegExp(`${SIZE} here, ${GROWN} on bravo.*cannot grow`));
  assert.notEqual(p.b.core.status().conn, 'Connected');
});

test('malformed or unexpected resize messages are refused', () => {
  const bad: Array<Record<string, unknown>> = [
    { t: 'GrowReq', sizeBytes: -4096, extendFile: true, assumeClean: false },
    { t: 'GrowReq', sizeBytes: 4096, extendFile: 'yes', assumeClean: false },
    { t: 'GrowReply', ok: true, sizeBytes: 1.5, reason: '' },
    { t: 'GrowReply', ok: false, sizeBytes: 4096, reason: 'x'.repeat(5000) },
    { t: 'GrowDone', sizeBytes: 'big' },
    { t: 'GrowResync', first: 0, count: 4, current: 17 },
  ];
  for (const m of bad) {
    const wire = encodePeerMsg(m as never);
    assert.equal(typeof decodePeerMsg(wire), 'string', `${JSON.stringify(m).slice(0, 80)} was decoded`);
  }
  // Well-formed but wrong: a size that is no whole number of blocks is answered with a refusal.
  const p = syncedPair(18);
  p.b.core.step({
    e: 'peer',
    msg: { t: 'GrowReq', sizeBytes: GROWN + 100, extendFile: true, assumeClean: false },
  });
  const sent = p.b.core.takeActions().filter((a) => a.a === 'send');
  assert.deepEqual(
    sent.map((a) => a.a === 'send' && a.msg.t),
    ['GrowReply'],
  );
  const reply = sent[0]!.a === 'send' ? sent[0]!.msg : undefined;
  assert.ok(reply?.t === 'GrowReply' && !reply.ok && /multiple of 4096/.test(reply.reason));
  assert.equal(p.b.core.sizeBytes, SIZE);
  // A resync order for blocks outside the volume, or with no grow, drops the connection.
  p.b.core.step({ e: 'peer', msg: { t: 'GrowResync', first: 250, count: 100, current: 5n } });
  const acts = p.b.core.takeActions();
  assert.ok(
    acts.some((a) => a.a === 'closeTransport'),
    'connection dropped',
  );
  assert.equal(p.b.core.status().conn === 'SyncTarget', false);
});

function checkAcked(p: SimPair, n: SimNode, seed: number): void {
  const miss = p.missingAckedWrite(n);
  assert.equal(miss, undefined, `seed ${seed}: ${miss}`);
}

test('randomized crashes and partitions during online grows: acknowledged writes survive, and the nodes end at one size with identical disks', () => {
  let grown = 0;
  let cutShort = 0;
  for (let seed = 500; seed < 600; seed++) {
    const rng = new SeededRng(seed);
    const p = syncedPair(seed);
    let primary: SimNode = p.a;
    for (let round = 0; round < 4; round++) {
      const size = primary.core.sizeBytes;
      const write = () => {
        if (primary.up && primary.core.status().role === 'Primary') {
          const blk = rng.int(primary.core.sizeBytes / BLOCK_BYTES);
          p.write(primary, blk * BLOCK_BYTES, block(1 + rng.int(250)), rng.int(4) === 0);
        }
      };
      for (let i = 0; i < 10; i++) {
        write();
        for (let s = rng.int(4); s > 0; s--) p.stepOnce();
      }
      // A grow from either node, then more writes (some into the new area once it exists), and a
      // fault at a random step of it.
      const from = rng.int(2) === 0 ? primary : p.peerOf(primary);
      const to = size + (1 + rng.int(64)) * BLOCK_BYTES;
      from.core.startGrow({ sizeBytes: to, extendFile: true, assumeClean: false });
      for (let i = rng.int(40); i > 0; i--) {
        if (rng.int(3) === 0) write();
        p.stepOnce();
      }
      const fault = rng.int(4);
      if (fault === 0) {
        const survivor = p.peerOf(primary);
        const wasInSync =
          survivor.core.status().conn === 'Connected' && survivor.core.status().disk === 'UpToDate';
        p.crash(primary);
        p.settle();
        if (wasInSync) checkAcked(p, survivor, seed);
        const old = primary;
        if (survivor.core.status().disk === 'UpToDate' && survivor.core.promote(false).ok) primary = survivor;
        p.restart(old);
        old.core.connect(false);
      } else if (fault === 1) {
        const victim = p.peerOf(primary);
        p.crash(victim);
        p.settle();
        p.restart(victim);
        victim.core.connect(false);
      } else if (fault === 2) {
        p.setLink(false);
        for (let s = 0; s < 30; s++) p.stepOnce();
        p.setLink(true);
      }
      p.settle();
      // A grow cut short (one node grew, the connection went before the other did) is finished
      // at the next handshake: the smaller node grows to match.
      const [sa, sb] = [p.a.core.sizeBytes, p.b.core.sizeBytes];
      assert.equal(sa, sb, `seed ${seed} round ${round}: alpha holds ${sa} bytes, bravo ${sb}`);
      if (p.a.logs.concat(p.b.logs).some((l) => l.includes('growing to match'))) cutShort++;
      if (p.a.core.sizeBytes > size) grown++;
      // One Primary again if the fault left none.
      if (primary.core.status().role !== 'Primary' && primary.core.status().disk === 'UpToDate')
        primary.core.promote(false);
    }
    p.setLink(true);
    p.settle();
    const [sa, sb] = [p.a.core.status(), p.b.core.status()];
    assert.equal(
      sa.conn,
      'Connected',
      `seed ${seed}: alpha is ${sa.conn}: ${sa.lastDecision}\n${p.a.logs.slice(-12).join('\n')}\n--- bravo\n${p.b.logs.slice(-12).join('\n')}`,
    );
    assert.equal(sb.conn, 'Connected', `seed ${seed}: bravo is ${sb.conn}`);
    assert.equal(sa.sizeBytes, sb.sizeBytes, `seed ${seed}: sizes differ`);
    assert.equal(sa.resize, undefined, `seed ${seed}: a grow never ended on alpha`);
    assert.equal(sb.resize, undefined, `seed ${seed}: a grow never ended on bravo`);
    assert.ok(sameDisks(p), `seed ${seed}: disks differ`);
    checkAcked(p, p.a, seed);
  }
  assert.ok(grown >= 100, `only ${grown} grows took effect`);
  assert.ok(cutShort >= 1, 'no grow was cut short: the faults missed every grow');
});
