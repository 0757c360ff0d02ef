import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { claimsMoreInSync, initialMetadata } from './metadata.ts';
import { computeLayout, decodeSlot, encodeSlot, MetadataStore } from './metadata_store.ts';

test('metadata round-trips through a slot, and any flipped byte makes the slot invalid', () => {
  const meta = {
    ...initialMetadata(1 << 20, 32),
    activityLog: [1, 2],
    gen: { current: 0xabcdefn, bitmap: 5n, history: [7n, 9n] as const },
  };
  meta.bitmap[3] = 0x81;
  const slot = encodeSlot(meta, 42, 16384);
  const back = decodeSlot(slot);
  assert.ok(back);
  assert.equal(back.seq, 42);
  assert.deepEqual(back.meta.gen, meta.gen);
  assert.deepEqual([...back.meta.bitmap], [...meta.bitmap]);
  const bitmapByte = 28 + slot.readUInt32BE(24) + 3;
  for (const at of [0, 9, 17, 21, 30, 40, bitmapByte]) {
    const bad = Buffer.from(slot);
    bad[at]! ^= 0x10;
    assert.equal(decodeSlot(bad), undefined, `flip at ${at} detected`);
  }
});

test('a torn metadata write leaves the previous slot in charge', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-md-'));
  try {
    const file = join(dir, 'disk.img');
    writeFileSync(file, Buffer.alloc(4 << 20));
    const layout = computeLayout({ backingPath: file, fileBytes: 4 << 20, metaDisk: 'internal' });
    assert.ok(layout.dataBytes < 4 << 20 && layout.dataBytes > 3 << 20);
    const store = await MetadataStore.open(layout);
    const blocks = layout.dataBytes / 4096;
    const m1 = { ...initialMetadata(layout.dataBytes, Math.ceil(blocks / 8)), disk: 'UpToDate' as const };
    await store.write(m1);
    await store.write({ ...m1, disk: 'Outdated' });
    assert.equal((await store.load())?.disk, 'Outdated');
    // Tear the newest slot (seq 2 lives in slot 0): half of it is garbage.
    const fh = await open(file, 'r+');
    await fh.write(Buffer.alloc(100, 0xee), 0, 100, layout.slotOffsets[0] + 10);
    await fh.close();
    assert.equal((await store.load())?.disk, 'UpToDate');
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a backing file too small for data plus metadata is refused with a clear error', () => {
  assert.throws(
    () => computeLayout({ backingPath: '/x.img', fileBytes: 8192, metaDisk: 'internal' }),
    (e: Error & { code?: string }) => e.code === 'device-too-small' && /x\.img/.test(e.message),
  );
});

test('only metadata that marks more data in sync asks for the data to be synced first', () => {
  const base = { ...initialMetadata(1 << 20, 32), activityLog: [1, 2], disk: 'Inconsistent' as const };
  base.bitmap[3] = 0x81;
  const setMore = { ...base, bitmap: base.bitmap.slice(), activityLog: [1, 2, 3] };
  setMore.bitmap[4] = 0x01;
  assert.equal(claimsMoreInSync(base, setMore), false, 'marking blocks or hot extents needs no data sync');
  const cleared = { ...base, bitmap: base.bitmap.slice() };
  cleared.bitmap[3] = 0x80;
  assert.equal(claimsMoreInSync(base, cleared), true, 'a cleared bit');
  assert.equal(claimsMoreInSync(base, { ...base, activityLog: [2] }), true, 'a dropped extent');
  assert.equal(claimsMoreInSync(base, { ...base, disk: 'UpToDate' }), true, 'an upgraded disk');
  assert.equal(claimsMoreInSync(base, { ...base, disk: 'Outdated' }), false, 'a downgraded disk');
});
