import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NvSet, Primitive } from '../cib/model.ts';
import { opRequestFor } from './cib_ops.ts';

const set = (kind: NvSet['kind'], pairs: Record<string, string>, extra: Partial<NvSet> = {}): NvSet => ({
  kind,
  pairs: Object.entries(pairs).map(([name, value]) => ({ name, value })),
  ...extra,
});

const webIp: Primitive = {
  kind: 'primitive',
  id: 'web-ip',
  class: 'ocf',
  provider: 'heartbeat',
  type: 'IPaddr2',
  metaAttributes: [set('meta_attributes', { 'target-role': 'Started' })],
  instanceAttributes: [set('instance_attributes', { ip: '192.0.2.10', cidr_netmask: '24' })],
  utilization: [],
  operations: [
    {
      name: 'monitor',
      interval: '10s',
      timeout: '20s',
      startDelay: '5s',
      onFail: 'restart',
      instanceAttributes: [set('instance_attributes', { OCF_CHECK_LEVEL: '10' })],
      metaAttributes: [],
    },
    { name: 'start', interval: '0', timeout: 'PT90S', instanceAttributes: [], metaAttributes: [] },
  ],
};

test('a configured monitor becomes an executor request with its interval, timeout, start-delay and depth', () => {
  const r = opRequestFor(webIp, 'monitor', { intervalMs: 10_000 });
  assert.deepEqual(r, {
    resource: 'web-ip',
    agent: 'ocf:heartbeat:IPaddr2',
    action: 'monitor',
    intervalMs: 10_000,
    timeoutMs: 20_000,
    startDelayMs: 5000,
    params: { ip: '192.0.2.10', cidr_netmask: '24', OCF_CHECK_LEVEL: '10' },
    meta: { 'target-role': 'Started', on_fail: 'restart' },
  });
});

test('timeouts come from the op, then op_defaults, then 20 s; a bad one is refused by name', () => {
  assert.equal(opRequestFor(webIp, 'start').timeoutMs, 90_000);
  assert.equal(
    opRequestFor(webIp, 'stop', { opDefaults: [set('meta_attributes', { timeout: '45s' })] }).timeoutMs,
    45_000,
  );
  assert.equal(opRequestFor(webIp, 'stop').timeoutMs, 20_000);
  const bad: Primitive = {
    ...webIp,
    operations: [
      { name: 'stop', interval: '0', timeout: 'soon', instanceAttributes: [], metaAttributes: [] },
    ],
  };
  assert.throws(() => opRequestFor(bad, 'stop'), {
    code: 'bad-resource',
    message: /web-ip: stop timeout 'soon' is not a duration/,
  });
});

test('higher-scored instance attribute sets win and sets with rules are left to the scheduler', () => {
  const p: Primitive = {
    ...webIp,
    instanceAttributes: [
      set('instance_attributes', { ip: '192.0.2.1' }),
      set('instance_attributes', { ip: '192.0.2.2' }, { score: '10' }),
      set(
        'instance_attributes',
        { ip: '192.0.2.3' },
        { score: '100', rule: { kind: 'rule', expressions: [] } },
      ),
    ],
  };
  assert.equal(opRequestFor(p, 'start').params.ip, '192.0.2.2');
  assert.throws(() => opRequestFor({ ...webIp, class: undefined }, 'start'), { code: 'bad-resource' });
});

test('an instance_attributes set scored INFINITY wins over a higher-numbered one, as in Pacemaker', () => {
  const p: Primitive = {
    ...webIp,
    instanceAttributes: [
      set('instance_attributes', { ip: '192.0.2.20' }, { id: 'ten', score: '10' }),
      set('instance_attributes', { ip: '192.0.2.30', constructor: 'kept' }, { id: 'inf', score: 'INFINITY' }),
    ],
  };
  const r = opRequestFor(p, 'start');
  assert.equal(r.params.ip, '192.0.2.30');
  assert.equal(r.params.constructor, 'kept', 'a parameter may be named like an Object method');
});
