import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LogIndex, NodeId, Term } from '../lib/brand.ts';
import { SeededRng } from '../lib/prng.ts';
import { decodeMessage, encodeMessage } from './codec.ts';
import type { Message } from './types.ts';

const base: Message = {
  type: 'app',
  from: NodeId('n1'),
  to: NodeId('n2'),
  term: Term(3),
  logTerm: Term(2),
  index: LogIndex(7),
  entries: [
    { term: Term(3), index: LogIndex(8), type: 'normal', data: '{"op":"set-property","name":"x"}' },
    { term: Term(3), index: LogIndex(9), type: 'conf', data: '{"type":"addNode","node":"n4"}' },
  ],
  commit: LogIndex(6),
  reject: false,
  rejectHint: LogIndex(0),
  ctx: 42,
  snapshot: null,
};

const snapMsg: Message = {
  ...base,
  type: 'snap',
  entries: [],
  snapshot: {
    meta: { index: LogIndex(5), term: Term(2), conf: { voters: [NodeId('n1'), NodeId('n2')] } },
    data: 'state',
  },
};

test('every kind of message survives an encode/decode round trip unchanged', () => {
  for (const m of [base, snapMsg, { ...base, type: 'heartbeat' as const, entries: [] }]) {
    const r = decodeMessage(encodeMessage(m));
    assert.ok(r.ok, r.ok ? '' : r.message);
    assert.deepEqual(r.value, m);
  }
});

test('a message with a wrong field is rejected with the field named', () => {
  const bad = (patch: Record<string, unknown>) => {
    const o = { ...JSON.parse(new TextDecoder().decode(encodeMessage(base))), ...patch };
    const r = decodeMessage(new TextEncoder().encode(JSON.stringify(o)));
    assert.equal(r.ok, false);
    return r.ok ? '' : r.message;
  };
  assert.match(bad({ term: -1 }), /message\.term/);
  assert.match(bad({ type: 'explode' }), /message\.type/);
  assert.match(bad({ from: '' }), /message\.from/);
  assert.match(bad({ extra: 1 }), /unknown field "extra"/);
  assert.match(bad({ index: 3 }), /contiguously/);
  assert.match(bad({ snapshot: snapMsg.snapshot }), /snapshot/);
  assert.match(bad({ ctx: 1.5 }), /message\.ctx/);
  assert.match(
    bad({ entries: [{ term: 3, index: 8, type: 'conf', data: '{"type":"nuke","node":"n1"}' }] }),
    /entries\[0\]\.data\.type/,
  );
});

test('100 000 random and mutated packets are rejected or decoded, never crash the decoder', () => {
  const rng = new SeededRng(2024);
  const seeds = [encodeMessage(base), encodeMessage(snapMsg)];
  let rejected = 0;
  let accepted = 0;
  const FUZZ_CASES = 100_000;
  for (let i = 0; i < FUZZ_CASES; i++) {
    let bytes: Uint8Array;
    const mode = rng.int(4);
    if (mode === 0) {
      bytes = new Uint8Array(rng.int(200));
      for (let k = 0; k < bytes.length; k++) bytes[k] = rng.int(256);
    } else {
      bytes = seeds[rng.int(seeds.length)]!.slice();
      const flips = 1 + rng.int(4);
      for (let f = 0; f < flips; f++) {
        if (bytes.length === 0) break;
        const at = rng.int(bytes.length);
        if (mode === 1) bytes[at] = rng.int(256);
        else if (mode === 2) bytes[at] = '0123456789{}[]",:-.e'.charCodeAt(rng.int(20));
        else bytes = bytes.slice(0, at);
      }
    }
    const r = decodeMessage(bytes);
    if (r.ok) {
      accepted++;
      // Whatever is accepted is a well-formed message: it re-encodes and decodes to itself.
      const again = decodeMessage(encodeMessage(r.value));
      assert.ok(again.ok);
      assert.deepEqual(again.value, r.value);
    } else {
      rejected++;
      assert.equal(r.code, 'raft-decode');
    }
  }
  assert.equal(accepted + rejected, FUZZ_CASES);
  assert.ok(rejected > FUZZ_CASES / 2, `only ${rejected} of ${FUZZ_CASES} mutated packets were rejected`);
});

test('deeply nested and oversized inputs are rejected', () => {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  assert.equal(decodeMessage(new TextEncoder().encode(deep)).ok, false);
  const r = decodeMessage(new Uint8Array(65 * 1024 * 1024));
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.message, /exceeds/);
});

test('a fenced removal travels with its evidence; one without evidence is rejected', () => {
  const fenced = '{"type":"fencedRemoveNode","node":"n2","fencedBy":"fence_ipmilan on n2-ipmi"}';
  const m: Message = {
    ...base,
    entries: [{ term: Term(3), index: LogIndex(8), type: 'conf', data: fenced }],
  };
  const r = decodeMessage(encodeMessage(m));
  assert.ok(r.ok, r.ok ? '' : r.message);
  assert.deepEqual(r.value, m);
  for (const data of [
    '{"type":"fencedRemoveNode","node":"n2"}',
    '{"type":"fencedRemoveNode","node":"n2","fencedBy":""}',
    `{"type":"fencedRemoveNode","node":"n2","fencedBy":"${'x'.repeat(201)}"}`,
    '{"type":"addNode","node":"n2","fencedBy":"x"}',
  ]) {
    const bad = decodeMessage(
      encodeMessage({ ...base, entries: [{ term: Term(3), index: LogIndex(8), type: 'conf', data }] }),
    );
    assert.equal(bad.ok, false, data);
    assert.match(bad.ok ? '' : bad.message, /entries\[0\]\.data/);
  }
});

test('an added node travels with its address; a member description anywhere else is rejected', () => {
  const add = `{"type":"addNode","node":"n4","member":${JSON.stringify(JSON.stringify({ id: 4, links: ['10.0.0.4:5405'] }))}}`;
  const m: Message = { ...base, entries: [{ term: Term(3), index: LogIndex(8), type: 'conf', data: add }] };
  const r = decodeMessage(encodeMessage(m));
  assert.ok(r.ok, r.ok ? '' : r.message);
  assert.deepEqual(r.value, m);
  for (const data of [
    '{"type":"removeNode","node":"n4","member":"{}"}',
    '{"type":"addNode","node":"n4","member":7}',
    `{"type":"addNode","node":"n4","member":"${'x'.repeat(2049)}"}`,
  ]) {
    const bad = decodeMessage(
      encodeMessage({ ...base, entries: [{ term: Term(3), index: LogIndex(8), type: 'conf', data }] }),
    );
    assert.equal(bad.ok, false, data);
    assert.match(bad.ok ? '' : bad.message, /entries\[0\]\.data\.member/);
  }
});
