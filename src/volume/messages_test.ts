import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodePeerMsg,
  encodeLengthPrefixedPeerMsgParts,
  encodePeerMsg,
  encodePeerMsgParts,
  type PeerMsg,
} from './messages.ts';

const block = new Uint8Array(4096).map((_v, i) => i % 251);

const samples: PeerMsg[] = [
  { t: 'Data', seq: 7, offset: 3 * 4096, fua: true, data: block },
  { t: 'Data', seq: 2 ** 40, offset: 2 ** 45, fua: false, data: new Uint8Array(0) },
  { t: 'RecvAck', seq: 1 },
  { t: 'WriteAck', seq: 123456789 },
  { t: 'NegAck', seq: 0 },
  { t: 'Barrier', seq: 9 },
  { t: 'BarrierAck', seq: 9 },
  { t: 'ResyncData', first: 42, data: block },
  { t: 'ResyncAck', first: 42, count: 256, ok: true },
  { t: 'ResyncAck', first: 0, count: 1, ok: false },
  { t: 'Ping' },
  { t: 'PingAck' },
  { t: 'Outdate' },
  { t: 'State', role: 'Primary', disk: 'UpToDate' },
  { t: 'ResyncDone', current: 0x1234n, history: [5n, 0n] },
  { t: 'VerifyReq', first: 3, digests: ['ab', 'cd'] },
  { t: 'GrowReq', sizeBytes: 16 << 20, extendFile: true, assumeClean: false },
  { t: 'GrowReply', ok: false, sizeBytes: 8 << 20, reason: 'holds only 8388608 data bytes' },
  { t: 'GrowDone', sizeBytes: 16 << 20 },
  { t: 'GrowResync', first: 2048, count: 2048, current: 0xabcdef12345n },
];

function same(a: unknown, b: unknown): void {
  // Payloads decode as Buffers over the message; compare bytes, not classes.
  const norm = (m: unknown) =>
    JSON.parse(
      JSON.stringify(m, (_k, v) =>
        typeof v === 'bigint'
          ? `big:${v}`
          : v instanceof Uint8Array
            ? [...v]
            : v?.type === 'Buffer' && Array.isArray(v.data)
              ? v.data // Buffer.toJSON ran before the replacer
              : v,
      ),
    );
  assert.deepEqual(norm(a), norm(b));
}

test('every replication message survives encoding, whole or as parts sent back to back', () => {
  for (const m of samples) {
    same(decodePeerMsg(encodePeerMsg(m)), m);
    same(decodePeerMsg(Buffer.concat(encodePeerMsgParts(m))), m);
  }
});

test('a block write travels with a small fixed header and its data is not copied before sending', () => {
  const parts = encodePeerMsgParts({ t: 'Data', seq: 1, offset: 0, fua: false, data: block });
  assert.equal(parts.length, 2);
  assert.ok(parts[0]!.length < 32, `header of ${parts[0]!.length} bytes`);
  assert.equal(parts[1], block);
});

test('truncated or garbled binary messages are refused with a reason, never decoded', () => {
  const data = encodePeerMsg({ t: 'Data', seq: 1, offset: 4096, fua: true, data: block });
  assert.match(String(decodePeerMsg(data.subarray(0, 5))), /shorter than its header/);
  const badFlag = Buffer.from(data);
  badFlag[13] = 7;
  assert.match(String(decodePeerMsg(badFlag)), /bad fields/);
  const ack = encodePeerMsg({ t: 'WriteAck', seq: 5 });
  assert.match(String(decodePeerMsg(Buffer.concat([ack, Buffer.from([1])]))), /unexpected 1 payload/);
  assert.match(String(decodePeerMsg(Buffer.from([0xff]))), /unknown binary message type/);
  assert.match(String(decodePeerMsg(new Uint8Array(0))), /empty message/);
  assert.match(String(decodePeerMsg(Buffer.from([1, 0, 0]))), /shorter than its header/);
});

test('a message packed for a batch carries its length in front and its block data uncopied', () => {
  for (const m of samples) {
    const parts = encodeLengthPrefixedPeerMsgParts(m);
    const whole = Buffer.concat(parts);
    assert.equal(whole.readUInt32BE(0), whole.length - 4, m.t);
    same(decodePeerMsg(whole.subarray(4)), m);
    assert.deepEqual(whole.subarray(4), encodePeerMsg(m), m.t);
  }
  const parts = encodeLengthPrefixedPeerMsgParts({ t: 'Data', seq: 1, offset: 0, fua: false, data: block });
  assert.equal(parts.length, 2);
  assert.equal(parts[1], block);
});

test('a message decodes the same from a plain Uint8Array as from a Buffer', () => {
  const wire = encodePeerMsg({ t: 'Data', seq: 3, offset: 8192, fua: false, data: block });
  const plain = new Uint8Array(wire.length + 8).subarray(8);
  plain.set(wire);
  same(decodePeerMsg(plain), decodePeerMsg(wire));
});
