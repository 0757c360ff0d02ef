import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from './config.ts';

const good = {
  cluster: 'web',
  keyFile: '/tmp/k',
  profile: 'lab',
  nodes: [
    { id: 1, name: 'alpha', links: ['10.0.0.1:5405', '10.0.1.1:5405'] },
    { id: 2, name: 'beta', links: ['10.0.0.2:5405', '10.0.1.2:5405'], stream: '10.0.0.2:7000' },
    { id: 9, name: 'tie', links: ['10.0.0.9:5405'], witness: true },
  ],
};

test('a valid config parses with defaults filled in', () => {
  const c = parseConfig(JSON.stringify(good), 'halo.json');
  assert.equal(c.profileName, 'lab');
  assert.equal(c.sendMode, 'best');
  assert.deepEqual(c.nodes[0]!.stream, { host: '10.0.0.1', port: 5406 });
  assert.deepEqual(c.nodes[1]!.stream, { host: '10.0.0.2', port: 7000 });
  assert.equal(c.nodes[2]!.witness, true);
  assert.equal(c.quorum.nodes.length, 3);
});

test('timing overrides apply on top of the profile and are checked', () => {
  const c = parseConfig(JSON.stringify({ ...good, timing: { deadtimeMs: 2000 } }), 'halo.json');
  assert.equal(c.timing.deadtimeMs, 2000);
  assert.throws(
    () => parseConfig(JSON.stringify({ ...good, timing: { deadtimeMs: 10 } }), 'h.json'),
    /timing.*deadtimeMs/,
  );
});

test('config errors name the file and the field, and invalid JSON names line and column', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ ...good, profile: 'turbo' }, /h\.json: profile: 'turbo' is not one of lan, fast, wan, lab/],
    [{ ...good, nodes: [{ ...good.nodes[0], id: 0 }] }, /nodes\[0\]\.id: must be an integer 1\.\.65535/],
    [
      { ...good, nodes: [good.nodes[0], { ...good.nodes[1], id: 1 }] },
      /nodes\[1\]: id 1 is also used by nodes\[0\]/,
    ],
    [{ ...good, nodes: [{ ...good.nodes[0], links: ['nohost'] }] }, /nodes\[0\]\.links\[0\].*not host:port/],
    [{ ...good, quorum: { twoNode: true } }, /two_node needs exactly two nodes and no witness/],
    [{ ...good, colour: 'red' }, /unknown field 'colour'/],
  ];
  for (const [cfg, re] of cases) assert.throws(() => parseConfig(JSON.stringify(cfg), 'h.json'), re);
  assert.throws(
    () => parseConfig('{\n  "cluster": "x",\n  oops\n}', 'h.json'),
    (e: Error & { code?: string }) => {
      return e.code === 'bad-config' && /^h\.json:3:\d+: invalid JSON/.test(e.message);
    },
  );
});

test('realtimePriority defaults to 40 and refuses values outside 0..99 naming the field', () => {
  assert.equal(parseConfig(JSON.stringify(good), 'halo.json').realtimePriority, 40);
  assert.equal(
    parseConfig(JSON.stringify({ ...good, realtimePriority: 0 }), 'halo.json').realtimePriority,
    0,
  );
  for (const v of [-1, 100, 2.5, '40']) {
    assert.throws(
      () => parseConfig(JSON.stringify({ ...good, realtimePriority: v }), 'h.json'),
      (e: Error & { code?: string }) =>
        e.code === 'bad-config' && /h\.json: realtimePriority: /.test(e.message),
    );
  }
});
