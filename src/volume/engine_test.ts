import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { nullLogger } from '../lib/ports.ts';
import type { VolumeConfig } from './config.ts';
import { createMetadata, VolumeEngine } from './engine.ts';
import { connectAndSync, createEnginePair, freePort, waitUntil } from './engine_testing.ts';
import { testConfig } from './sim_pair.ts';

/** A TCP proxy that can flip one byte of the alpha→bravo direction on demand. */
async function tamperingProxy(
  target: number,
): Promise<{ port: number; tamper: () => void; close: () => void }> {
  let armed = false;
  const socks = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const up = net.connect(target, '127.0.0.1');
    socks.add(client).add(up);
    client.on('data', (d) => {
      if (armed && d.length > 8) {
        armed = false;
        d[d.length - 3]! ^= 0x40;
      }
      up.write(d);
    });
    up.on('data', (d) => client.write(d));
    const end = () => {
      client.destroy();
      up.destroy();
    };
    client.on('close', end).on('error', end);
    up.on('close', end).on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    tamper: () => {
      armed = true;
    },
    close: () => {
      for (const s of socks) s.destroy();
      server.close();
    },
  };
}

function cfgFor(dir: string, self: string, peer: string, selfPort: number, peerPort: number): VolumeConfig {
  const base = testConfig(self, peer, {
    connectIntervalMs: 200,
    pingIntervalMs: 1000,
    timeoutMs: 1000,
    sharedSecret: 'engine-test',
  });
  return {
    ...base,
    self: { ...base.self, address: `127.0.0.1:${selfPort}`, disk: join(dir, `${self}.img`) },
    peer: { ...base.peer, address: `127.0.0.1:${peerPort}` },
  };
}

for (const tls of [false, true])
  test(`two engines replicate over a ${tls ? 'sealed (tls yes)' : 'signed'} stream, and a tampered stream is dropped and healed`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-engine-'));
    const [pa, pb] = [await freePort(), await freePort()];
    const proxy = await tamperingProxy(pb);
    // alpha dials (its name sorts first) through the proxy; bravo listens on pb.
    const withTls = (c: VolumeConfig): VolumeConfig => ({ ...c, net: { ...c.net, tls } });
    const ca = withTls(cfgFor(dir, 'alpha', 'bravo', pa, proxy.port));
    const cb = withTls(cfgFor(dir, 'bravo', 'alpha', pb, pa));
    const { a, b } = await createEnginePair(ca, cb, dir, 8 << 20);
    try {
      assert.deepEqual(await connectAndSync(a, b), { ok: true });
      const dev = a.blockDevice();
      const data = randomBytes(256 * 1024);
      await dev.write(4096, data, true);
      await dev.flush();
      // Tamper with the next bytes alpha sends: bravo must drop the stream, not apply them.
      proxy.tamper();
      await dev.write(1 << 20, randomBytes(64 * 1024), false);
      await waitUntil(
        'the tampered stream to be dropped',
        () => b.status().conn !== 'Connected' || a.status().conn !== 'Connected',
      );
      await waitUntil(
        'reconnect and resync',
        () => a.status().conn === 'Connected' && b.status().conn === 'Connected',
      );
      await dev.flush();
      await a.stop(true);
      await b.stop(true);
      const size = dev.sizeBytes;
      const ia = readFileSync(ca.self.disk).subarray(0, size);
      const ib = readFileSync(cb.self.disk).subarray(0, size);
      assert.ok(ia.equals(ib), 'both backing files hold the same data');
      assert.ok(ia.subarray(4096, 4096 + data.length).equals(data));
    } finally {
      await a.stop(false).catch(() => {});
      await b.stop(false).catch(() => {});
      proxy.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

test('a connection from a node without the shared secret is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-engine-'));
  const [pa, pb] = [await freePort(), await freePort()];
  const ca = cfgFor(dir, 'alpha', 'bravo', pa, pb);
  const cb0 = cfgFor(dir, 'bravo', 'alpha', pb, pa);
  const cb = { ...cb0, net: { ...cb0.net, sharedSecret: 'wrong' } };
  for (const c of [ca, cb]) writeFileSync(c.self.disk, Buffer.alloc(4 << 20));
  await createMetadata(ca, false);
  await createMetadata(cb, false);
  const a = new VolumeEngine(ca, { runDir: join(dir, 'ra') }, nullLogger);
  const b = new VolumeEngine(cb, { runDir: join(dir, 'rb') }, nullLogger);
  try {
    await a.start();
    await b.start();
    await a.command({ cmd: 'connect' });
    await b.command({ cmd: 'connect' });
    // Give alpha a few dial attempts (bounded by attempts, not by a protocol sleep).
    const end = Date.now() + 1500;
    while (Date.now() < end) {
      assert.notEqual(a.status().conn, 'Connected');
      assert.notEqual(b.status().conn, 'Connected');
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await a.stop(false);
    await b.stop(false);
    rmSync(dir, { recursive: true, force: true });
  }
});

const MiB = 1024 * 1024;

test('two engines grow online while Connected: the new area resyncs from the Primary and a restart keeps the size', {
  timeout: 90_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-engine-grow-'));
  const [pa, pb] = [await freePort(), await freePort()];
  const ca = cfgFor(dir, 'alpha', 'bravo', pa, pb);
  const cb = cfgFor(dir, 'bravo', 'alpha', pb, pa);
  const { a, b } = await createEnginePair(ca, cb, dir, 8 * MiB);
  const later: VolumeEngine[] = [];
  try {
    assert.deepEqual(await connectAndSync(a, b), { ok: true });
    const dev = a.blockDevice();
    const oldBytes = dev.sizeBytes;
    const early = randomBytes(256 * 1024);
    await dev.write(4096, early, true);
    // lvextend on both nodes: the disks grow underneath the running engines; bravo's new
    // area holds garbage that only a resync can replace.
    for (const c of [ca, cb]) truncateSync(c.self.disk, 16 * MiB);
    const fh = await open(cb.self.disk, 'r+');
    await fh.write(randomBytes(6 * MiB), 0, 6 * MiB, 8 * MiB);
    await fh.close();
    const r = (await a.command({ cmd: 'resize' })) as Record<string, number | boolean>;
    assert.equal(r.ok, true, JSON.stringify(r));
    const newBytes = r.newBytes as number;
    assert.equal(r.oldBytes, oldBytes);
    assert.ok(newBytes > 15 * MiB, `${newBytes}`);
    assert.equal(dev.sizeBytes, newBytes, 'the export offers the new size to new clients');
    assert.equal(b.status().sizeBytes, newBytes);
    // The Primary writes into the new area at once (while it resyncs).
    const tail = randomBytes(128 * 1024);
    await dev.write(newBytes - tail.length, tail, true);
    await waitUntil(
      'the resync of the new area',
      () =>
        a.status().conn === 'Connected' &&
        b.status().disk === 'UpToDate' &&
        a.status().outOfSyncBlocks === 0 &&
        b.status().outOfSyncBlocks === 0,
    );
    await dev.flush();
    await a.stop(true);
    await b.stop(true);
    const ia = readFileSync(ca.self.disk).subarray(0, newBytes);
    const ib = readFileSync(cb.self.disk).subarray(0, newBytes);
    assert.ok(ia.equals(ib), 'both backing files hold the same data over the whole new size');
    assert.ok(ia.subarray(4096, 4096 + early.length).equals(early));
    assert.ok(ia.subarray(newBytes - tail.length).equals(tail));
    // The moved metadata is where a fresh start looks for it.
    for (const [c, run] of [
      [ca, 'ra2'],
      [cb, 'rb2'],
    ] as const) {
      const e = new VolumeEngine(c, { runDir: join(dir, run) }, nullLogger);
      later.push(e);
      await e.start();
      assert.equal(e.status().sizeBytes, newBytes, `${c.self.name} restarts with the new size`);
      await e.command({ cmd: 'connect' });
    }
    await waitUntil('reconnect after the restart', () => later[0]!.status().conn === 'Connected');
  } finally {
    for (const e of [a, b, ...later]) await e.stop(false).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an online grow the peer cannot follow changes nothing; with --size each node extends its own file', {
  timeout: 90_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-engine-grow-'));
  const [pa, pb] = [await freePort(), await freePort()];
  const ca = cfgFor(dir, 'alpha', 'bravo', pa, pb);
  const cb = cfgFor(dir, 'bravo', 'alpha', pb, pa);
  const { a, b } = await createEnginePair(ca, cb, dir, 8 * MiB);
  try {
    assert.deepEqual(await connectAndSync(a, b), { ok: true });
    const oldBytes = a.status().sizeBytes;
    truncateSync(ca.self.disk, 16 * MiB); // only alpha's disk grew
    const refused = (await b.command({ cmd: 'resize' })) as { ok: boolean; code: string; message: string };
    assert.equal(refused.ok, false);
    assert.equal(refused.code, 'not-grown', 'bravo (the initiator here) has not grown itself');
    const r = (await a.command({ cmd: 'resize' })) as { ok: boolean; code: string; message: string };
    assert.equal(r.ok, false);
    assert.equal(r.code, 'peer-refused');
    assert.match(r.message, new RegExp(`bravo refused .*holds only ${oldBytes} data bytes`));
    assert.match(r.message, /nothing changed on either node/);
    assert.equal(a.status().sizeBytes, oldBytes);
    assert.equal(b.status().sizeBytes, oldBytes);
    assert.equal(a.status().conn, 'Connected');
    assert.equal(statSync(cb.self.disk).size, 8 * MiB, "bravo's disk did not grow");
    assert.equal(statSync(ca.self.disk).size, 16 * MiB);
    await a.blockDevice().write(0, randomBytes(4096), true); // writes go on
    // --size: each node extends its own backing file to hold 16 MiB of data.
    const grown = (await b.command({ cmd: 'resize', sizeBytes: 16 * MiB })) as Record<string, unknown>;
    assert.equal(grown.ok, true, JSON.stringify(grown));
    assert.equal(grown.newBytes, 16 * MiB);
    assert.equal(statSync(ca.self.disk).size, statSync(cb.self.disk).size);
    await waitUntil(
      'the resync of the new area',
      () => b.status().disk === 'UpToDate' && a.status().outOfSyncBlocks === 0,
    );
    assert.equal(a.status().sizeBytes, 16 * MiB);
  } finally {
    await a.stop(false).catch(() => {});
    await b.stop(false).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});
