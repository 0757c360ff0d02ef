import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { nullLogger } from '../lib/ports.ts';
import { Bitmap, BLOCK_BYTES } from './bitmap.ts';
import type { VolumeConfig } from './config.ts';
import { createMetadata, readMetadata, VolumeEngine } from './engine.ts';
import { resizeVolume } from './resize.ts';
import { testConfig } from './sim_pair.ts';

const MiB = 1024 * 1024;

function cfgIn(dir: string, self = 'alpha', peer = 'bravo', metaDisk = 'internal'): VolumeConfig {
  const base = testConfig(self, peer, { connectIntervalMs: 200, pingIntervalMs: 1000, timeoutMs: 1000 });
  return { ...base, self: { ...base.self, disk: join(dir, `${self}.img`), metaDisk } };
}

async function errorCode(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

test('resize --size grows a backing file, moves internal metadata to the new end and marks only the new area', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-resize-'));
  try {
    const cfg = cfgIn(dir);
    writeFileSync(cfg.self.disk, Buffer.alloc(8 * MiB));
    const { dataBytes } = await createMetadata(cfg, false);
    const before = await readMetadata(cfg);
    const payload = randomBytes(64 * 1024);
    const fh = await open(cfg.self.disk, 'r+');
    await fh.write(payload, 0, payload.length, dataBytes - payload.length); // the old area's last bytes
    await fh.close();

    const r = await resizeVolume(cfg, { sizeBytes: 16 * MiB });
    assert.equal(r.oldBytes, dataBytes);
    assert.ok(r.newBytes >= 16 * MiB, `${r.newBytes}`);
    assert.ok(r.grewFileBy > 0);
    assert.equal(r.newAreaBlocks, (r.newBytes - dataBytes) / BLOCK_BYTES);
    const after = await readMetadata(cfg); // where the engine looks: the end of the grown file
    assert.equal(after.sizeBytes, r.newBytes);
    assert.deepEqual(after.gen, before.gen, 'the generation identifiers survive');
    const bm = new Bitmap(r.newBytes / BLOCK_BYTES, after.bitmap);
    assert.equal(bm.weight, r.newAreaBlocks, 'exactly the new blocks are out of sync');
    assert.equal(bm.get(dataBytes / BLOCK_BYTES - 1), false);
    assert.equal(bm.get(dataBytes / BLOCK_BYTES), true);
    const img = readFileSync(cfg.self.disk);
    assert.ok(img.subarray(dataBytes - payload.length, dataBytes).equals(payload), 'data is untouched');
    assert.ok(
      img.indexOf(Buffer.from('HALOMD01')) >= r.newBytes,
      'the old slots were erased; only the new ones remain',
    );
    const again = await resizeVolume(cfg);
    assert.equal(again.newBytes, again.oldBytes, 'a second resize finds nothing to do');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a disk grown by the administrator, or a resize cut short, is finished by running resize again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-resize-'));
  try {
    const cfg = cfgIn(dir);
    writeFileSync(cfg.self.disk, Buffer.alloc(8 * MiB));
    const { dataBytes } = await createMetadata(cfg, false);
    // `truncate -s 24M` (or lvextend): the metadata is now in the middle of the disk.
    truncateSync(cfg.self.disk, 24 * MiB);
    assert.equal(await errorCode(readMetadata(cfg)), 'no-metadata', 'the engine cannot start on it as is');
    // A resize that crashed while writing its first new slot: a torn slot at the new end.
    const fh = await open(cfg.self.disk, 'r+');
    const torn = Buffer.concat([Buffer.from('HALOMD01'), randomBytes(4000)]);
    await fh.write(torn, 0, torn.length, 24 * MiB - 300 * 1024);
    await fh.close();
    const r = await resizeVolume(cfg);
    assert.equal(r.oldBytes, dataBytes);
    assert.equal(r.grewFileBy, 0);
    assert.equal((await readMetadata(cfg)).sizeBytes, r.newBytes);
    assert.equal(statSync(cfg.self.disk).size, 24 * MiB);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resize refuses to shrink and bad sizes; a growth too small to move internal metadata safely changes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-resize-'));
  try {
    const cfg = cfgIn(dir);
    writeFileSync(cfg.self.disk, Buffer.alloc(8 * MiB));
    const { dataBytes } = await createMetadata(cfg, false);
    assert.equal(await errorCode(resizeVolume(cfg, { sizeBytes: 4 * MiB })), 'shrink-refused');
    assert.equal(await errorCode(resizeVolume(cfg, { sizeBytes: 1000 })), 'bad-size');
    // 64 bytes more: every place for the new slots overlaps the only valid old slot.
    truncateSync(cfg.self.disk, 8 * MiB + 64);
    const img = readFileSync(cfg.self.disk);
    assert.equal(await errorCode(resizeVolume(cfg)), 'grow-too-small');
    assert.ok(readFileSync(cfg.self.disk).equals(img), 'nothing was written');
    truncateSync(cfg.self.disk, 8 * MiB);
    assert.equal((await readMetadata(cfg)).sizeBytes, dataBytes, 'the old metadata is intact');
    // One block more is enough: the first new slot lands past the old one.
    truncateSync(cfg.self.disk, 8 * MiB + BLOCK_BYTES);
    const r = await resizeVolume(cfg);
    assert.equal(r.newAreaBlocks, 1);
    assert.equal((await readMetadata(cfg)).sizeBytes, dataBytes + BLOCK_BYTES);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('external metadata: the data file grows and the metadata file is rewritten in place safely', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-resize-'));
  try {
    const cfg = cfgIn(dir, 'alpha', 'bravo', join(dir, 'alpha.md'));
    writeFileSync(cfg.self.disk, Buffer.alloc(8 * MiB));
    writeFileSync(join(dir, 'alpha.md'), Buffer.alloc(1 * MiB));
    await createMetadata(cfg, false);
    truncateSync(cfg.self.disk, 512 * MiB); // a bitmap that needs a bigger slot
    const r = await resizeVolume(cfg);
    assert.equal(r.oldBytes, 8 * MiB);
    assert.equal(r.newBytes, 512 * MiB);
    assert.equal((await readMetadata(cfg)).sizeBytes, 512 * MiB);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function waitFor(what: string, fn: () => boolean): Promise<void> {
  const end = Date.now() + 30_000;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('after resizing both nodes, the engines export the new size and resync exactly the new area', {
  timeout: 90_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-resize-'));
  const [pa, pb] = [await freePort(), await freePort()];
  const mk = (self: string, peer: string, sp: number, pp: number): VolumeConfig => {
    const c = cfgIn(dir, self, peer);
    return {
      ...c,
      self: { ...c.self, address: `127.0.0.1:${sp}` },
      peer: { ...c.peer, address: `127.0.0.1:${pp}` },
    };
  };
  const ca = mk('alpha', 'bravo', pa, pb);
  const cb = mk('bravo', 'alpha', pb, pa);
  const engines: VolumeEngine[] = [];
  const up = async (c: VolumeConfig, run: string) => {
    const e = new VolumeEngine(c, { runDir: join(dir, run) }, nullLogger);
    engines.push(e);
    await e.start();
    await e.command({ cmd: 'connect' });
    return e;
  };
  try {
    for (const c of [ca, cb]) writeFileSync(c.self.disk, Buffer.alloc(4 * MiB));
    await createMetadata(ca, false);
    await createMetadata(cb, false);
    let a = await up(ca, 'ra');
    let b = await up(cb, 'rb');
    await waitFor('connection', () => a.status().conn === 'Connected');
    await a.command({ cmd: 'primary', force: true });
    await waitFor('initial sync', () => b.status().disk === 'UpToDate' && a.status().conn === 'Connected');
    await a.blockDevice().write(0, randomBytes(64 * 1024), true);
    await a.stop(true);
    await b.stop(true);
    // Different garbage in each node's new area: only a resync can make them equal.
    const ra = await resizeVolume(ca, { sizeBytes: 8 * MiB });
    const rb = await resizeVolume(cb, { sizeBytes: 8 * MiB });
    assert.equal(ra.newBytes, rb.newBytes);
    const fh = await open(cb.self.disk, 'r+');
    await fh.write(randomBytes(MiB), 0, MiB, ra.oldBytes);
    await fh.close();
    a = await up(ca, 'ra2');
    b = await up(cb, 'rb2');
    await waitFor(
      'reconnect and resync of the new area',
      () =>
        a.status().conn === 'Connected' &&
        b.status().conn === 'Connected' &&
        a.status().outOfSyncBlocks === 0,
    );
    assert.equal(a.blockDevice().sizeBytes, ra.newBytes, 'the export has the new size');
    const sent = a.status().counters.resyncBytesSent + b.status().counters.resyncBytesSent;
    assert.equal(sent, ra.newAreaBlocks * BLOCK_BYTES, 'the resync moved exactly the new area');
    await a.stop(true);
    await b.stop(true);
    const ia = readFileSync(ca.self.disk).subarray(0, ra.newBytes);
    const ib = readFileSync(cb.self.disk).subarray(0, ra.newBytes);
    assert.ok(ia.equals(ib), 'both disks hold the same data, new area included');
  } finally {
    for (const e of engines) await e.stop(false).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});
