import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { initialMetadata } from './metadata.ts';
import { computeLayout, decodeSlot, MetadataStore } from './metadata_store.ts';

test('metadata written through an O_DSYNC store (as the engine opens it) is on disk and reloads', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-md-dsync-'));
  try {
    const file = join(dir, 'disk.img');
    writeFileSync(file, Buffer.alloc(4 << 20));
    const layout = computeLayout({ backingPath: file, fileBytes: 4 << 20, metaDisk: 'internal' });
    const blocks = layout.dataBytes / 4096;
    const store = await MetadataStore.open(layout, { dsync: true });
    const metas = [0, 1, 2].map((i) => {
      const m = { ...initialMetadata(layout.dataBytes, Math.ceil(blocks / 8)), activityLog: [i] };
      m.bitmap[i] = 0xf0;
      return m;
    });
    for (const m of metas) await store.write(m);
    await store.close();
    // Both slots hold valid metadata; the newest one wins on reload.
    const raw = readFileSync(file);
    const slots = layout.slotOffsets.map((off) => decodeSlot(raw.subarray(off, off + layout.slotBytes)));
    assert.ok(slots.every((s) => s !== undefined));
    const again = await MetadataStore.open(layout);
    const back = await again.load();
    await again.close();
    assert.deepEqual(back?.activityLog, [2]);
    assert.equal(back?.bitmap[2], 0xf0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
