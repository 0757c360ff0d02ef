import assert from 'node:assert/strict';
import { test } from 'node:test';
import { digestInput, opDigest } from '../cib/op_digest.ts';
import type { Clock } from '../lib/ports.ts';
import { type OpRequest, OpTable, type RawOpOutcome, toOpHistory } from './ops.ts';
import { fenceToOcf, lsbToOcf, OCF_RC, rcName } from './rc.ts';

class FakeClock implements Clock {
  now = 1000;
  wall = 1_700_000_000_000;
  nowMs(): number {
    return this.now;
  }
  wallMs(): number {
    return this.wall + this.now;
  }
  advance(ms: number): void {
    this.now += ms;
  }
}

const req = (resource: string, action: string, extra: Partial<OpRequest> = {}): OpRequest => ({
  resource,
  agent: 'ocf:heartbeat:Dummy',
  action,
  intervalMs: 0,
  timeoutMs: 20_000,
  params: {},
  ...extra,
});

const ok = (rc = 0, execTimeMs = 5): RawOpOutcome => ({
  rc,
  status: 'done',
  execTimeMs,
  stdout: '',
  stderr: '',
});

test('one resource runs one operation at a time, in request order', () => {
  const t = new OpTable({ clock: new FakeClock() });
  t.submit(req('a', 'start'));
  t.submit(req('a', 'monitor'));
  const first = t.ready();
  assert.deepEqual(
    first.map((o) => o.request.action),
    ['start'],
  );
  assert.deepEqual(t.ready(), [], 'monitor waits for start');
  t.complete(first[0]!.callId, ok());
  assert.deepEqual(
    t.ready().map((o) => o.request.action),
    ['monitor'],
  );
});

test('different resources run in parallel up to the bound, and the rest queue', () => {
  const clock = new FakeClock();
  const t = new OpTable({ clock, maxParallel: 2 });
  for (const r of ['a', 'b', 'c']) t.submit(req(r, 'start'));
  const running = t.ready();
  assert.deepEqual(
    running.map((o) => o.request.resource),
    ['a', 'b'],
  );
  clock.advance(30);
  t.complete(running[0]!.callId, ok());
  const next = t.ready();
  assert.deepEqual(
    next.map((o) => o.request.resource),
    ['c'],
  );
  const res = t.complete(next[0]!.callId, ok());
  assert.equal(res.queueTimeMs, 30, 'c waited 30 ms for a slot');
});

test('the queue has a named limit and a full queue refuses with a reason', () => {
  const t = new OpTable({ clock: new FakeClock(), maxQueued: 2 });
  assert.ok(t.submit(req('a', 'start')).ok);
  assert.ok(t.submit(req('b', 'start')).ok);
  const r = t.submit(req('c', 'start'));
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.reason : '', /c_start_0: 2 operations are already waiting \(limit 2\)/);
});

test('a recurring monitor waits its start-delay, then repeats interval after each completion', () => {
  const clock = new FakeClock();
  const t = new OpTable({ clock });
  t.submit(req('a', 'monitor', { intervalMs: 10_000, startDelayMs: 2000 }));
  assert.deepEqual(t.ready(), []);
  assert.equal(t.nextDueMs(), 3000);
  clock.advance(2000);
  const first = t.ready();
  assert.equal(first.length, 1);
  clock.advance(50);
  const r1 = t.complete(first[0]!.callId, ok());
  assert.equal(r1.rcChanged, true);
  assert.equal(t.nextDueMs(), 3050 + 10_000);
  clock.advance(9_999);
  assert.deepEqual(t.ready(), []);
  clock.advance(1);
  const second = t.ready();
  assert.equal(second.length, 1);
  const r2 = t.complete(second[0]!.callId, ok());
  assert.equal(r2.rcChanged, false, 'same rc as last time');
  assert.equal(r2.lastRcChangeWallMs, r1.lastRcChangeWallMs);
});

test('stopping a resource cancels its recurring monitors and only its own', () => {
  const clock = new FakeClock();
  const t = new OpTable({ clock });
  t.submit(req('a', 'monitor', { intervalMs: 5000 }));
  t.submit(req('b', 'monitor', { intervalMs: 5000 }));
  for (const op of t.ready()) t.complete(op.callId, ok());
  assert.deepEqual(t.activeRecurring(), ['a_monitor_5000', 'b_monitor_5000']);
  t.submit(req('a', 'stop'));
  assert.deepEqual(t.activeRecurring(), ['b_monitor_5000']);
  const stop = t.ready();
  assert.deepEqual(
    stop.map((o) => `${o.request.resource}:${o.request.action}`),
    ['a:stop'],
  );
  t.complete(stop[0]!.callId, ok());
  clock.advance(5000);
  assert.deepEqual(
    t.ready().map((o) => o.request.resource),
    ['b'],
    'no monitor of a runs after its stop',
  );
});

test('a monitor that was running when the stop came is not rescheduled', () => {
  const clock = new FakeClock();
  const t = new OpTable({ clock });
  t.submit(req('a', 'monitor', { intervalMs: 1000 }));
  const mon = t.ready();
  t.submit(req('a', 'stop'));
  t.complete(mon[0]!.callId, ok());
  const stop = t.ready();
  t.complete(stop[0]!.callId, ok());
  clock.advance(5000);
  assert.deepEqual(t.ready(), []);
  assert.equal(t.nextDueMs(), undefined);
});

test('results carry rc names and convert to CIB status records', () => {
  const clock = new FakeClock();
  const t = new OpTable({ clock });
  t.submit(req('web', 'monitor', { opDigest: opDigest({ ip: '10.0.0.1', nic: 'eth0' }) }));
  const [op] = t.ready();
  clock.advance(120);
  const r = t.complete(op!.callId, {
    rc: 7,
    status: 'done',
    execTimeMs: 118.6,
    stdout: 'x'.repeat(10_000),
    stderr: '',
  });
  assert.equal(r.rcName, 'OCF_NOT_RUNNING');
  assert.equal(r.stdoutTail.length, 4096);
  const h = toOpHistory(r, { node: 'n1' });
  assert.deepEqual(
    {
      id: h.id,
      op: h.operation,
      interval: h.interval,
      rc: h.rcCode,
      status: h.opStatus,
      exec: h.execTime,
      queue: h.queueTime,
      node: h.onNode,
    },
    {
      id: 'web_last_0',
      op: 'monitor',
      interval: '0',
      rc: '7',
      status: '0',
      exec: '119',
      queue: '0',
      node: 'n1',
    },
  );
  assert.equal(h.lastRcChange, String(Math.floor((clock.wall + 1120) / 1000)));
  assert.match(h.opDigest ?? '', /^[0-9a-f]{32}$/);
});

test('op-digest is the md5 of the sorted parameters, independent of their order', () => {
  assert.equal(digestInput({ b: '2', a: 'x"y' }), ' <parameters a="x&quot;y" b="2"/>\n');
  assert.equal(opDigest({ b: '2', a: '1' }), opDigest({ a: '1', b: '2' }));
  assert.notEqual(opDigest({ a: '1' }), opDigest({ a: '2' }));
  // Recorded by Pacemaker in its scheduler regression input 1484.xml for an ocf:heartbeat:Dummy
  // with target_role=started: a fixed point so the format cannot drift silently.
  assert.equal(opDigest({ target_role: 'started' }), '08b7001b97ccdaa1ca23a9f165256bc1');
});

test('every OCF exit code has its name, and LSB and fence codes map onto OCF', () => {
  const names = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 190, 191].map(rcName);
  assert.deepEqual(names, [
    'OCF_SUCCESS',
    'OCF_ERR_GENERIC',
    'OCF_ERR_ARGS',
    'OCF_ERR_UNIMPLEMENTED',
    'OCF_ERR_PERM',
    'OCF_ERR_INSTALLED',
    'OCF_ERR_CONFIGURED',
    'OCF_NOT_RUNNING',
    'OCF_RUNNING_PROMOTED',
    'OCF_FAILED_PROMOTED',
    'OCF_DEGRADED',
    'OCF_DEGRADED_PROMOTED',
  ]);
  assert.equal(rcName(42), 'OCF_UNKNOWN(42)');
  assert.equal(lsbToOcf('status', 3), OCF_RC.OCF_NOT_RUNNING);
  assert.equal(lsbToOcf('status', 1), OCF_RC.OCF_NOT_RUNNING);
  assert.equal(lsbToOcf('status', 4), OCF_RC.OCF_ERR_PERM);
  assert.equal(lsbToOcf('start', 5), OCF_RC.OCF_ERR_INSTALLED);
  assert.equal(lsbToOcf('start', 150), OCF_RC.OCF_ERR_GENERIC);
  assert.equal(fenceToOcf('status', 2), OCF_RC.OCF_NOT_RUNNING);
  assert.equal(fenceToOcf('off', 2), OCF_RC.OCF_ERR_GENERIC);
});

test('a bad interval or timeout is refused with the values named', () => {
  const t = new OpTable({ clock: new FakeClock() });
  const r = t.submit(req('a', 'start', { timeoutMs: 0 }));
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.reason : '', /timeout > 0 \(got 0, 0\)/);
});
