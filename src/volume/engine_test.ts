import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
