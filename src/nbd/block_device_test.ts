import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  FileBlockDevice,
  INLINE_SYNC_DIRTY_BYTES,
  INLINE_WRITE_BYTES,
  SMALL_WRITEBACK_BYTES,
  WRITEBACK_BYTES,
} from './block_device.ts';

test('small, large and concurrent FUA writes to a file device all land at their offsets', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-bdev-'));
  try {
    const file = join(dir, 'disk.img');
    writeFileSync(file, Buffer.alloc(8 << 20));
    const dev = await FileBlockDevice.open(file);
    const small = Buffer.alloc(4096, 0xaa);
    const large = Buffer.alloc(INLINE_WRITE_BYTES * 2 + 512, 0xbb);
    // Many FUA writes in one turn share one sync; each still resolves only after it.
    const fuas = Array.from({ length: 16 }, (_v, i) =>
      dev.write((64 + i) * 4096, Buffer.alloc(4096, i + 1), true),
    );
    await Promise.all([dev.write(0, small, false), dev.write(1 << 20, large, true), ...fuas]);
    // Past the dirty limit a FUA write syncs on the thread pool instead; same result.
    await dev.write(2 << 20, Buffer.alloc(INLINE_SYNC_DIRTY_BYTES + 4096, 0xcc), false);
    await dev.write(4096, small, true);
    await dev.flush();
    await dev.close();
    const disk = readFileSync(file);
    assert.deepEqual(disk.subarray(0, 4096), small);
    assert.deepEqual(disk.subarray(4096, 8192), small);
    assert.deepEqual(disk.subarray(1 << 20, (1 << 20) + large.length), large);
    for (let i = 0; i < 16; i++) assert.equal(disk[(64 + i) * 4096 + 100], i + 1);
    assert.equal(disk[(2 << 20) + INLINE_SYNC_DIRTY_BYTES], 0xcc);
    assert.equal(disk[8192], 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a write to a closed file device fails instead of claiming success', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-bdev-'));
  try {
    const file = join(dir, 'disk.img');
    writeFileSync(file, Buffer.alloc(1 << 20));
    const dev = await FileBlockDevice.open(file);
    await dev.close();
    await assert.rejects(dev.write(0, Buffer.alloc(4096), false));
    await assert.rejects(dev.write(0, Buffer.alloc(4096), true));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reading a device region past the end of its backing file returns zeroes, not old memory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-bdev-'));
  try {
    const file = join(dir, 'disk.img');
    writeFileSync(file, Buffer.alloc(1 << 20, 0x77));
    const dev = await FileBlockDevice.open(file, { sizeBytes: 1 << 20, base: 0 });
    // The file shrinks under the open device: reads past its new end must come back as zeroes.
    writeFileSync(file, Buffer.alloc(8192, 0x5a));
    for (let round = 0; round < 8; round++) {
      const got = await dev.read(4096, 64 * 1024);
      assert.ok(got.subarray(0, 4096).every((b) => b === 0x5a));
      assert.ok(got.subarray(4096).every((b) => b === 0));
    }
    await dev.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a long stream of plain writes starts writing back in the background, and loses nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-bdev-'));
  try {
    const file = join(dir, 'disk.img');
    const size = 2 * WRITEBACK_BYTES + (4 << 20);
    writeFileSync(file, Buffer.alloc(size));
    const dev = await FileBlockDevice.open(file);
    const mib = 1 << 20;
    // Just under the threshold: nothing is written back yet.
    for (let at = 0; at + mib < WRITEBACK_BYTES; at += mib)
      await dev.write(at, Buffer.alloc(mib, at / mib + 1), false);
    assert.equal(dev.writebacks, 0);
    for (let at = WRITEBACK_BYTES - mib; at < size; at += mib)
      await dev.write(at, Buffer.alloc(mib, (at / mib + 1) % 256), false);
    assert.ok(dev.writebacks >= 1, 'past WRITEBACK_BYTES a background fdatasync starts');
    await dev.flush();
    await dev.close();
    const disk = readFileSync(file);
    for (let at = 0; at < size; at += mib)
      assert.equal(disk[at + 777], (at / mib + 1) % 256, `MiB ${at / mib}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('small writes start a background writeback only at the higher mark', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-bdev-'));
  try {
    const file = join(dir, 'disk.img');
    const size = 16 << 20;
    writeFileSync(file, Buffer.alloc(size));
    const dev = await FileBlockDevice.open(file);
    const small = Buffer.alloc(INLINE_WRITE_BYTES, 7);
    // Past WRITEBACK_BYTES in small writes (the same 16 MiB, written over again): no writeback.
    let written = 0;
    for (; written + small.length < SMALL_WRITEBACK_BYTES; written += small.length)
      await dev.write(written % size, small, false);
    assert.ok(written > WRITEBACK_BYTES);
    assert.equal(dev.writebacks, 0);
    await dev.write(written % size, small, false);
    await dev.write((written + small.length) % size, small, false);
    assert.ok(dev.writebacks >= 1, 'past SMALL_WRITEBACK_BYTES a background fdatasync starts');
    await dev.flush();
    await dev.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file device grows once its file did, and refuses to grow past the file or to shrink', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-bdev-'));
  try {
    const file = join(dir, 'disk.img');
    writeFileSync(file, Buffer.alloc(1 << 20));
    const dev = await FileBlockDevice.open(file, { sizeBytes: 1 << 20 });
    await assert.rejects(dev.grow(2 << 20), /extend it first/);
    assert.equal(dev.sizeBytes, 1 << 20);
    truncateSync(file, 2 << 20);
    await dev.grow(2 << 20);
    assert.equal(dev.sizeBytes, 2 << 20);
    const data = Buffer.alloc(4096, 0x5a);
    await dev.write((2 << 20) - 4096, data, true);
    assert.deepEqual(Buffer.from(await dev.read((2 << 20) - 4096, 4096)), data);
    await assert.rejects(dev.grow(1 << 20), /only grow/);
    await dev.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
