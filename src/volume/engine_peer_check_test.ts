import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { VolumeConfig } from './config.ts';
import { connectAndSync, createEnginePair, freePort, waitUntil } from './engine_testing.ts';
import { testConfig } from './sim_pair.ts';

/**
 * A TCP proxy that can stop forwarding in both directions without closing anything: what a cut
 * cable or a powered-off peer looks like to the engine (no reset, no FIN; bytes just stop).
 */
async function blackholeProxy(target: number): Promise<{ port: number; cut: () => void; close: () => void }> {
  let cut = false;
  const socks = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const up = net.connect(target, '127.0.0.1');
    socks.add(client).add(up);
    client.on('data', (d) => {
      if (!cut) up.write(d);
    });
    up.on('data', (d) => {
      if (!cut) client.write(d);
    });
    const end = () => {
      if (cut) return; // a dead link carries no close either
      client.destroy();
      up.destroy();
    };
    client.on('close', end).on('error', () => {});
    up.on('close', end).on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut: () => {
      cut = true;
    },
    close: () => {
      for (const s of socks) s.destroy();
      server.close();
    },
  };
}

function cfgFor(dir: string, self: string, peer: string, selfPort: number, peerPort: number): VolumeConfig {
  // drbd.conf's defaults: the engine alone would notice the silence after ping-int + timeout = 16 s.
  const base = testConfig(self, peer, { connectIntervalMs: 200, sharedSecret: 'peer-check' });
  return {
    ...base,
    self: { ...base.self, address: `127.0.0.1:${selfPort}`, disk: join(dir, `${self}.img`) },
    peer: { ...base.peer, address: `127.0.0.1:${peerPort}` },
  };
}

test('check-peer keeps a live Primary peer, and drops a silent one within ping-timeout so the promote goes through', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-engine-check-'));
  const [pa, pb] = [await freePort(), await freePort()];
  const proxy = await blackholeProxy(pb);
  // alpha dials bravo (its name sorts first) through the proxy.
  const ca = cfgFor(dir, 'alpha', 'bravo', pa, proxy.port);
  const cb = cfgFor(dir, 'bravo', 'alpha', pb, pa);
  const { a, b } = await createEnginePair(ca, cb, dir, 4 << 20);
  try {
    assert.deepEqual(await connectAndSync(a, b), { ok: true });
    await waitUntil('bravo to see alpha Primary', () => b.status().peerRole === 'Primary');
    const refused = (await b.command({ cmd: 'primary' })) as { ok: boolean; code?: string };
    assert.equal(refused.code, 'peer-is-primary');

    // A live peer answers: nothing changes.
    assert.deepEqual(await b.command({ cmd: 'check-peer' }), { ok: true, peer: 'answered' });
    assert.equal(b.status().conn, 'Connected');
    assert.equal(((await b.command({ cmd: 'primary' })) as { code?: string }).code, 'peer-is-primary');

    // Bad input is a clear error.
    const bad = (await b.command({ cmd: 'check-peer', timeoutMs: 0 })) as { ok: boolean; message: string };
    assert.equal(bad.ok, false);
    assert.match(bad.message, /check-peer: timeoutMs 0 must be a whole number of milliseconds, 1\.\.30000/);

    // The link goes silent: bravo still sees a Connected Primary, until it checks.
    proxy.cut();
    assert.equal(b.status().conn, 'Connected');
    assert.equal(((await b.command({ cmd: 'primary' })) as { code?: string }).code, 'peer-is-primary');
    const t0 = performance.now();
    const checked = (await b.command({ cmd: 'check-peer' })) as { ok: boolean; peer: string; reason: string };
    const tookMs = performance.now() - t0;
    assert.equal(checked.peer, 'lost');
    assert.match(checked.reason, /no answer from alpha to a ping within 500 ms \(peer check\)/);
    assert.ok(tookMs >= 500 && tookMs < 2_000, `the check took ${Math.round(tookMs)} ms`);
    assert.deepEqual(await b.command({ cmd: 'primary' }), { ok: true });
    assert.equal(b.status().role, 'Primary');
    process.stdout.write(`# check-peer on a silent peer answered after ${Math.round(tookMs)} ms\n`);
  } finally {
    await a.stop(false).catch(() => {});
    await b.stop(false).catch(() => {});
    proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
