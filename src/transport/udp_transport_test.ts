import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { nullLogger } from '../lib/ports.ts';
import { waitFor } from '../lib/wait.ts';
import { UdpTransport } from './udp_transport.ts';

const KEY = randomBytes(32);
const DEADLINE_MS = 10_000;

function transport(self: number, port: number, peers: Array<{ id: number; port: number }>, got: number[]) {
  return new UdpTransport({
    self,
    links: [{ host: '127.0.0.1', port }],
    peers: peers.map((p) => ({ id: p.id, links: [{ host: '127.0.0.1', port: p.port }] })),
    clusterKey: KEY,
    clusterId: 7,
    epoch: 1,
    sendMode: 'best',
    linkDownAfterMs: 1000,
    nowMs: () => performance.now(),
    logger: nullLogger,
    onMessage: (h) => void got.push(h.sender),
  });
}

test('a peer added while running is reached and heard; once removed its packets count as foreign', async () => {
  const base = 20_000 + Math.floor(Math.random() * 20_000);
  const gotA: number[] = [];
  const gotB: number[] = [];
  const a = transport(1, base, [], gotA);
  const b = transport(2, base + 1, [{ id: 1, port: base }], gotB);
  try {
    await a.start();
    await b.start();
    b.send(1, 1, Buffer.from('x'));
    await waitFor('a to drop the unknown sender', DEADLINE_MS, async () =>
      a.counters.foreign >= 1 ? true : undefined,
    );
    assert.equal(gotA.length, 0);
    a.addPeer({ id: 2, links: [{ host: '127.0.0.1', port: base + 1 }] });
    b.send(1, 1, Buffer.from('y'));
    a.send(2, 1, Buffer.from('z'));
    await waitFor('both to hear each other', DEADLINE_MS, async () =>
      gotA.includes(2) && gotB.includes(1) ? true : undefined,
    );
    a.removePeer(2);
    const foreign = a.counters.foreign;
    b.send(1, 1, Buffer.from('w'));
    await waitFor('a to drop the removed sender', DEADLINE_MS, async () =>
      a.counters.foreign > foreign ? true : undefined,
    );
    assert.deepEqual(a.links(2), []);
  } finally {
    a.close();
    b.close();
  }
});
