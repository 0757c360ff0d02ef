import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRng } from '../lib/prng.ts';
import { decodeHeartbeat, encodeHeartbeat } from './heartbeat_codec.ts';

test('a heartbeat round-trips, and bad payloads are rejected with a reason, never thrown', () => {
  const hb = { beat: 7, wallMs: 1_700_000_000_000, echo: 12, witnessVote: 1 };
  assert.deepEqual(decodeHeartbeat(encodeHeartbeat(hb)), hb);
  assert.equal(
    decodeHeartbeat(Buffer.from('{"beat":-1,"wallMs":1,"echo":0}')),
    'heartbeat.beat is not a non-negative integer',
  );
  assert.equal(decodeHeartbeat(Buffer.from('nope')), 'heartbeat is not JSON');
  const rng = new SeededRng(9);
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(encodeHeartbeat(hb));
    b[rng.int(b.length)] = rng.int(256);
    const r = decodeHeartbeat(b);
    assert.ok(typeof r === 'string' || typeof r.beat === 'number');
  }
});
