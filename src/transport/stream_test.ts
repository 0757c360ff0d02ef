import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { test } from 'node:test';
import { type StreamChannel, StreamServer } from './stream.ts';
import { decodeHello, deriveSessionKeys, encodeHello, FrameOpener, FrameSealer } from './stream_frames.ts';

const key = randomBytes(32);
const CLUSTER = 42;
const LOOPBACK = { host: '127.0.0.1', port: 0 };

async function withServer(
  fn: (server: StreamServer, channels: StreamChannel[]) => Promise<void>,
  opts: { accept?: (peer: number) => boolean } = {},
): Promise<void> {
  const channels: StreamChannel[] = [];
  const server = await StreamServer.listen(LOOPBACK, {
    clusterKey: key,
    clusterId: CLUSTER,
    self: 1,
    onChannel: (ch) => channels.push(ch),
    ...opts,
  });
  try {
    await fn(server, channels);
  } finally {
    for (const ch of channels) ch.close();
    server.close();
  }
}

function nextMessage(ch: StreamChannel): Promise<Buffer> {
  return new Promise((resolve) => ch.once('message', resolve));
}

test('a stream channel carries large messages both ways, in order, between authenticated peers', async () => {
  const { StreamChannel } = await import('./stream.ts');
  await withServer(async (server, channels) => {
    const client = await StreamChannel.connect(
      { host: '127.0.0.1', port: server.port },
      { clusterKey: key, clusterId: CLUSTER, self: 2, expectPeer: 1 },
    );
    try {
      assert.equal(client.peer, 1);
      const big = randomBytes(5 * 1024 * 1024);
      const got: Buffer[] = [];
      const serverSide = await waitForChannel(channels);
      assert.equal(serverSide.peer, 2);
      const done = new Promise<void>((resolve) =>
        serverSide.on('message', (m) => {
          got.push(m);
          if (got.length === 3) resolve();
        }),
      );
      await client.send(Buffer.from('one'));
      await client.send(big);
      await client.send(Buffer.from('three'));
      await done;
      assert.equal(got[0]!.toString(), 'one');
      assert.ok(got[1]!.equals(big));
      assert.equal(got[2]!.toString(), 'three');
      const reply = nextMessage(client);
      await serverSide.send(Buffer.from('pong'));
      assert.equal((await reply).toString(), 'pong');
    } finally {
      client.close();
    }
  });
});

test('a client with the wrong cluster key cannot open a stream, and the server counts it', async () => {
  const { StreamChannel } = await import('./stream.ts');
  await withServer(async (server, channels) => {
    await assert.rejects(
      StreamChannel.connect(
        { host: '127.0.0.1', port: server.port },
        { clusterKey: randomBytes(32), clusterId: CLUSTER, self: 2, handshakeTimeoutMs: 2000 },
      ),
      (e: Error & { code?: string }) => e.code === 'stream-forged' || e.code === 'stream-handshake',
    );
    assert.equal(channels.length, 0);
    await waitUntil(() => server.refused === 1);
  });
});

test('a node the server does not accept, or the wrong expected peer, is refused with a reason', async () => {
  const { StreamChannel } = await import('./stream.ts');
  await withServer(
    async (server) => {
      await assert.rejects(
        StreamChannel.connect(
          { host: '127.0.0.1', port: server.port },
          { clusterKey: key, clusterId: CLUSTER, self: 7 },
        ),
        { code: 'stream-handshake' },
      );
      await assert.rejects(
        StreamChannel.connect(
          { host: '127.0.0.1', port: server.port },
          { clusterKey: key, clusterId: CLUSTER, self: 2, expectPeer: 5 },
        ),
        /expected node 5, peer says 1/,
      );
    },
    { accept: (peer) => peer !== 7 },
  );
});

test('garbage instead of a hello is refused and the socket closed', async () => {
  await withServer(async (server) => {
    const sock = connect(server.port, '127.0.0.1');
    sock.on('error', () => {});
    sock.write(randomBytes(100));
    await new Promise<void>((resolve) => sock.on('close', () => resolve()));
    await waitUntil(() => server.refused === 1);
  });
});

test('a tampered or replayed frame fails authentication; every session has fresh keys', () => {
  const helloC = encodeHello({ role: 'client', clusterId: 1, nodeId: 2, nonce: randomBytes(32) });
  const helloS = encodeHello({ role: 'server', clusterId: 1, nodeId: 1, nonce: randomBytes(32) });
  assert.equal(typeof decodeHello(helloC), 'object');
  const k = deriveSessionKeys(key, helloC, helloS);
  const k2 = deriveSessionKeys(
    key,
    helloC,
    encodeHello({ role: 'server', clusterId: 1, nodeId: 1, nonce: randomBytes(32) }),
  );
  assert.notDeepEqual(k.c2s, k2.c2s);
  const sealer = new FrameSealer(k.c2s);
  const f1 = sealer.seal(Buffer.from('first'));
  const f2 = sealer.seal(Buffer.from('second'));
  const ok = new FrameOpener(k.c2s);
  const r = ok.push(Buffer.concat([f1, f2.subarray(0, 5)]));
  assert.deepEqual(r.ok && r.messages.map(String), ['first']);
  const r2 = ok.push(f2.subarray(5));
  assert.deepEqual(r2.ok && r2.messages.map(String), ['second']);
  // Replaying frame 1 after frame 2: the counter nonce differs, so it cannot open.
  assert.equal(ok.push(f1).ok, false);
  const tampered = Buffer.from(f1);
  tampered[6]! ^= 1;
  assert.equal(new FrameOpener(k.c2s).push(tampered).ok, false);
  // A session under other keys (a recorded session replayed to a new one) cannot open it.
  assert.equal(new FrameOpener(k2.c2s).push(f1).ok, false);
  // An absurd length is refused before buffering it.
  const huge = Buffer.alloc(8);
  huge.writeUInt32BE(0xffffffff, 0);
  assert.equal(new FrameOpener(k.c2s).push(huge).ok, false);
});

async function waitForChannel(channels: StreamChannel[]): Promise<StreamChannel> {
  await waitUntil(() => channels.length > 0);
  return channels[0]!;
}

async function waitUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), 'condition not reached within 2 s');
}

test('messages sent right after the handshake are not lost before the receiver listens', async () => {
  const { StreamChannel } = await import('./stream.ts');
  await withServer(async (server, channels) => {
    const client = await StreamChannel.connect(
      { host: '127.0.0.1', port: server.port },
      { clusterKey: key, clusterId: CLUSTER, self: 2 },
    );
    try {
      for (let i = 0; i < 50; i++) void client.send(Buffer.from(`m${i}`));
      const ch = await waitForChannel(channels);
      await new Promise((r) => setTimeout(r, 50));
      const got: string[] = [];
      await new Promise<void>((resolve) =>
        ch.on('message', (m) => {
          got.push(m.toString());
          if (got.length === 50) resolve();
        }),
      );
      assert.deepEqual(
        got,
        Array.from({ length: 50 }, (_, i) => `m${i}`),
      );
    } finally {
      client.close();
    }
  });
});

test('a signed frame carries the message in the clear, and any changed byte, replay or mode mix fails', () => {
  const helloC = encodeHello({
    role: 'client',
    mode: 'signed',
    clusterId: 1,
    nodeId: 2,
    nonce: randomBytes(32),
  });
  const decoded = decodeHello(helloC);
  assert.ok(typeof decoded === 'object' && decoded.mode === 'signed' && decoded.role === 'client');
  const helloS = encodeHello({
    role: 'server',
    mode: 'signed',
    clusterId: 1,
    nodeId: 1,
    nonce: randomBytes(32),
  });
  const k = deriveSessionKeys(key, helloC, helloS);
  const sealer = new FrameSealer(k.c2s, 'signed');
  const body = randomBytes(70_000);
  const f1 = Buffer.concat(sealer.sealParts([Buffer.from('head'), body]));
  const f2 = sealer.seal(Buffer.from('second'));
  // In the clear: the frame is length, message, tag.
  assert.equal(f1.length, 4 + 4 + body.length + 16);
  assert.ok(f1.subarray(8, 8 + body.length).equals(body));
  const opener = new FrameOpener(k.c2s, 'signed');
  const r = opener.push(Buffer.concat([f1, f2]));
  assert.ok(r.ok);
  assert.ok(r.messages[0]!.equals(Buffer.concat([Buffer.from('head'), body])));
  assert.equal(r.messages[1]!.toString(), 'second');
  assert.equal(opener.push(f1).ok, false, 'a replayed frame must not open');
  for (const at of [2, 5, 8 + 1000, f1.length - 1]) {
    const t = Buffer.from(f1);
    t[at]! ^= 0x40;
    const bad = new FrameOpener(k.c2s, 'signed').push(t);
    // A changed length either fails or waits for bytes that never come; nothing is delivered.
    assert.ok(!bad.ok || bad.messages.length === 0, `byte ${at} changed`);
  }
  // A sealed opener cannot take a signed frame, nor a signed opener a sealed one.
  assert.equal(new FrameOpener(k.c2s, 'sealed').push(f1).ok, false);
  assert.equal(new FrameOpener(k.c2s, 'signed').push(new FrameSealer(k.c2s).seal(body)).ok, false);
});

test('a signed stream delivers messages; a sealed peer is refused with a reason naming the mode', async () => {
  const { StreamChannel } = await import('./stream.ts');
  const channels: StreamChannel[] = [];
  const refused: Error[] = [];
  const server = await StreamServer.listen(LOOPBACK, {
    clusterKey: key,
    clusterId: CLUSTER,
    self: 1,
    mode: 'signed',
    onChannel: (ch) => channels.push(ch),
    onRefused: (e) => refused.push(e),
  });
  try {
    const client = await StreamChannel.connect(
      { host: '127.0.0.1', port: server.port },
      { clusterKey: key, clusterId: CLUSTER, self: 2, expectPeer: 1, mode: 'signed' },
    );
    const serverSide = await waitForChannel(channels);
    const got = nextMessage(serverSide);
    const big = randomBytes(3 * 1024 * 1024);
    await client.sendParts([Buffer.from('x'), big]);
    assert.ok((await got).equals(Buffer.concat([Buffer.from('x'), big])));
    client.close();
    await assert.rejects(
      StreamChannel.connect(
        { host: '127.0.0.1', port: server.port },
        { clusterKey: key, clusterId: CLUSTER, self: 2, expectPeer: 1 },
      ),
      (e: Error & { code?: string }) => e.code === 'stream-handshake' && /signed stream/.test(e.message),
    );
    await waitUntil(() => refused.length > 0);
    assert.match(refused[0]!.message, /peer wants a sealed stream, this side a signed one/);
  } finally {
    for (const ch of channels) ch.close();
    server.close();
  }
});
