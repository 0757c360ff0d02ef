import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Channel, PACKET_HEADER_BYTES, PacketOpener, PacketSealer, parseHeader } from './packet.ts';

const key = randomBytes(32);
const CLUSTER = 0xc0ffee;

test('a sealed packet opens with the same key and carries sender, epoch, seq and payload', () => {
  const s = new PacketSealer(key, CLUSTER, 1, 7);
  const o = new PacketOpener(key, CLUSTER, 2);
  const pkt = s.seal(Channel.heartbeat, 2, Buffer.from('hello'));
  const r = o.open(pkt);
  assert.ok(r.ok);
  assert.equal(r.payload.toString(), 'hello');
  assert.deepEqual(r.header, { channel: 1, clusterId: CLUSTER, sender: 1, dest: 2, epoch: 7, seq: 0 });
  assert.equal(o.counters.accepted, 1);
});

test('the payload is not readable on the wire', () => {
  const s = new PacketSealer(key, CLUSTER, 1, 1);
  const secret = Buffer.from('the-secret-payload-text');
  const pkt = s.seal(Channel.raft, 0, secret);
  assert.equal(pkt.includes(secret), false);
});

test('a packet sealed with another key is dropped and counted as forged', () => {
  const s = new PacketSealer(randomBytes(32), CLUSTER, 1, 1);
  const o = new PacketOpener(key, CLUSTER, 2);
  const r = o.open(s.seal(Channel.heartbeat, 0, Buffer.from('x')));
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.reason, 'forged');
  assert.equal(o.counters.forged, 1);
});

test('a replayed packet is dropped and counted, and does not stop later packets', () => {
  const s = new PacketSealer(key, CLUSTER, 1, 1);
  const o = new PacketOpener(key, CLUSTER, 2);
  const p0 = s.seal(Channel.heartbeat, 0, Buffer.from('a'));
  const p1 = s.seal(Channel.heartbeat, 0, Buffer.from('b'));
  assert.ok(o.open(p0).ok);
  const again = o.open(p0);
  assert.equal(!again.ok && again.reason, 'replayed');
  assert.ok(o.open(p1).ok);
  assert.equal(o.counters.replayed, 1);
});

test('a forged packet cannot advance the replay window', () => {
  const s = new PacketSealer(key, CLUSTER, 1, 1);
  const o = new PacketOpener(key, CLUSTER, 2);
  const real = s.seal(Channel.heartbeat, 0, Buffer.from('a'));
  const forger = new PacketSealer(randomBytes(32), CLUSTER, 1, 1);
  for (let i = 0; i < 5000; i++) forger.seal(Channel.heartbeat, 0, Buffer.alloc(0));
  assert.equal(o.open(forger.seal(Channel.heartbeat, 0, Buffer.alloc(0))).ok, false);
  assert.ok(o.open(real).ok, 'the real packet with seq 0 must still be accepted');
});

test('after a restart (higher epoch) the sender is heard again, and its old-epoch packets are replays', () => {
  const old = new PacketSealer(key, CLUSTER, 1, 1);
  const o = new PacketOpener(key, CLUSTER, 2);
  const stale = old.seal(Channel.heartbeat, 0, Buffer.from('old'));
  assert.ok(o.open(old.seal(Channel.heartbeat, 0, Buffer.from('x'))).ok);
  const restarted = new PacketSealer(key, CLUSTER, 1, 2);
  assert.ok(o.open(restarted.seal(Channel.heartbeat, 0, Buffer.from('y'))).ok);
  const r = o.open(stale);
  assert.equal(!r.ok && r.reason, 'replayed');
});

test('a flipped header bit fails authentication', () => {
  const s = new PacketSealer(key, CLUSTER, 1, 1);
  const o = new PacketOpener(key, CLUSTER, 2);
  const pkt = s.seal(Channel.heartbeat, 0, Buffer.from('payload'));
  pkt[3] = Channel.raft; // change channel, keep frame valid
  const r = o.open(pkt);
  assert.equal(!r.ok && r.reason, 'forged');
});

test('packets of another cluster or for another node are dropped as foreign', () => {
  const o = new PacketOpener(key, CLUSTER, 2);
  const other = new PacketSealer(key, CLUSTER + 1, 1, 1).seal(Channel.heartbeat, 0, Buffer.alloc(1));
  const notMine = new PacketSealer(key, CLUSTER, 1, 1).seal(Channel.heartbeat, 3, Buffer.alloc(1));
  const fromSelf = new PacketSealer(key, CLUSTER, 2, 1).seal(Channel.heartbeat, 0, Buffer.alloc(1));
  for (const p of [other, notMine, fromSelf]) assert.equal(o.open(p).ok, false);
  assert.equal(o.counters.foreign, 3);
});

test('a packet from a node id that is not configured is dropped as foreign', () => {
  const o = new PacketOpener(key, CLUSTER, 2, new Set([1, 3]));
  const r = o.open(new PacketSealer(key, CLUSTER, 9, 1).seal(Channel.heartbeat, 0, Buffer.alloc(1)));
  assert.equal(!r.ok && r.detail, 'unknown sender 9');
  assert.ok(o.open(new PacketSealer(key, CLUSTER, 3, 1).seal(Channel.heartbeat, 0, Buffer.alloc(1))).ok);
});

test('the header parser says why a buffer is not a halo packet', () => {
  assert.match(String(parseHeader(Buffer.alloc(5))), /too short/);
  const b = Buffer.alloc(PACKET_HEADER_BYTES + 16);
  assert.equal(parseHeader(b), 'bad magic');
  b.writeUInt16BE(0x484c, 0);
  b[2] = 9;
  assert.equal(parseHeader(b), 'unsupported version 9');
});
