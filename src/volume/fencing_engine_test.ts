import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { VolumeConfig } from './config.ts';
import { connectAndSync, createEnginePair, freePort, waitUntil } from './engine_testing.ts';
import { testConfig } from './sim_pair.ts';

/**
 * Resource fencing on real engines: the replication link breaks under a Primary with
 * `fencing resource-and-stonith`; its fence-peer handler (a real process, with DRBD's
 * environment) runs, and no write is acknowledged until the handler reports the peer fenced.
 */

/** A TCP proxy whose link can be cut: open connections drop and new ones are refused. */
async function cuttableProxy(target: number): Promise<{ port: number; cut: () => void; close: () => void }> {
  let up = true;
  const socks = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (!up) {
      client.destroy();
      return;
    }
    const remote = net.connect(target, '127.0.0.1');
    socks.add(client).add(remote);
    client.pipe(remote);
    remote.pipe(client);
    const end = () => {
      client.destroy();
      remote.destroy();
    };
    client.on('close', end).on('error', end);
    remote.on('close', end).on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const dropAll = () => {
    for (const s of socks) s.destroy();
    socks.clear();
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    cut: () => {
      up = false;
      dropAll();
    },
    close: () => {
      dropAll();
      server.close();
    },
  };
}

function cfgFor(dir: string, self: string, peer: string, selfPort: number, peerPort: number): VolumeConfig {
  const base = testConfig(self, peer, { connectIntervalMs: 200, pingIntervalMs: 1000, timeoutMs: 1000 });
  // The handler records its environment, then waits (bounded) for the test to say how it ends.
  const handler = `env | grep '^DRBD_' | sort > ${dir}/${self}.tmp && mv ${dir}/${self}.tmp ${dir}/${self}.fence-env; i=0; while [ ! -f ${dir}/${self}.release ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; exit $(cat ${dir}/${self}.release 2>/dev/null || echo 1)`;
  return {
    ...base,
    self: { ...base.self, address: `127.0.0.1:${selfPort}`, disk: join(dir, `${self}.img`) },
    peer: { ...base.peer, address: `127.0.0.1:${peerPort}` },
    fencing: 'resource-and-stonith',
    handlers: { 'fence-peer': handler },
  };
}

test('resource-and-stonith on real engines: writes after a link loss are held until fence-peer exits 4', {
  timeout: 90_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-fence-'));
  const [pa, pb] = [await freePort(), await freePort()];
  const proxy = await cuttableProxy(pb);
  const ca = cfgFor(dir, 'alpha', 'bravo', pa, proxy.port);
  const cb = cfgFor(dir, 'bravo', 'alpha', pb, pa);
  const { a, b } = await createEnginePair(ca, cb, dir, 4 << 20);
  try {
    assert.deepEqual(await connectAndSync(a, b), { ok: true });
    const dev = a.blockDevice();
    await dev.write(0, randomBytes(4096), true); // replicated, acknowledged at once
    assert.equal(existsSync(join(dir, 'alpha.fence-env')), false, 'no fencing while connected');

    proxy.cut();
    await waitUntil('alpha to notice the loss and run fence-peer', () =>
      existsSync(join(dir, 'alpha.fence-env')),
    );
    assert.equal(a.status().ioSuspended, true);
    const env = readFileSync(join(dir, 'alpha.fence-env'), 'utf8');
    assert.match(env, /^DRBD_RESOURCE=r0$/m);
    assert.match(env, /^DRBD_PEER=bravo$/m);
    let acked = false;
    const data = randomBytes(8192);
    const w = dev.write(65536, data, true).then(() => {
      acked = true;
    });
    await waitUntil('the write to reach alpha’s disk', () =>
      readFileSync(ca.self.disk)
        .subarray(65536, 65536 + data.length)
        .equals(data),
    );
    assert.equal(acked, false, 'a write bravo lacks is not acknowledged before bravo is fenced');
    writeFileSync(join(dir, 'alpha.release'), '4');
    await w;
    const s = a.status();
    assert.equal(s.ioSuspended, false);
    assert.equal(s.peerOutdated, true);
    assert.equal(s.peerDisk, 'Outdated');
    assert.equal(existsSync(join(dir, 'bravo.fence-env')), false, 'a Secondary never fences');
  } finally {
    await a.stop(false).catch(() => {});
    await b.stop(false).catch(() => {});
    proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
