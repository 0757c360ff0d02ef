import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LogFields, Logger, LogLevel } from '../lib/ports.ts';
import {
  type FenceAction,
  type FenceDevice,
  Fencer,
  type FencerOptions,
  fencingDelayMs,
  parseFencingDelay,
} from './fence.ts';
import type { AgentMetadata } from './metadata.ts';
import type { RawOpOutcome } from './ops.ts';
import type { AgentRunner, AgentRunRequest } from './runner.ts';

/**
 * pcmk_delay_base / pcmk_delay_max. Time is simulated: `sleep` only advances a fake clock and
 * records what was waited, so nothing here depends on the wall clock.
 */

/** A fence agent that succeeds at once and records each run as `device action port @ms`. */
class RecordingRunner implements AgentRunner {
  readonly runs: string[] = [];
  readonly requests: AgentRunRequest[] = [];
  constructor(private readonly clock: { ms: number }) {}
  async run(req: AgentRunRequest): Promise<RawOpOutcome> {
    this.requests.push(req);
    this.runs.push(`${req.resource} ${req.action} ${req.params.port ?? '-'} @${this.clock.ms}`);
    return { rc: 0, status: 'done', execTimeMs: 0, stdout: 'Success', stderr: '' };
  }
  async metadata(agent: string): Promise<AgentMetadata> {
    throw new Error(`no metadata for ${agent} in this test`);
  }
  list(): string[] {
    return [];
  }
}

class RecordingLogger implements Logger {
  constructor(readonly lines: { level: LogLevel; msg: string; fields: LogFields }[] = []) {}
  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    this.lines.push({ level, msg, fields });
  }
  child(): Logger {
    return this;
  }
}

function rig(devices: FenceDevice[], opts: Partial<FencerOptions> = {}) {
  const clock = { ms: 0 };
  const slept: number[] = [];
  const runner = new RecordingRunner(clock);
  const logger = new RecordingLogger();
  const fencer = new Fencer({
    runner,
    devices,
    logger,
    random: () => 0.5,
    clock: { nowMs: () => clock.ms },
    sleep: async (ms) => {
      slept.push(ms);
      clock.ms += ms;
    },
    ...opts,
  });
  return { fencer, runner, logger, slept, clock };
}

function device(id: string, params: Record<string, string>): FenceDevice {
  return { id, agent: 'stonith:fence_test', params: { pcmk_host_list: 'n1 n2', ...params } };
}

test('the fencing delay is pcmk_delay_base plus a random part that keeps the total within pcmk_delay_max', () => {
  const d = (params: Record<string, string>, target = 'n1') => {
    const r = parseFencingDelay(device('pdu', params), target);
    assert.ok(r.ok, r.ok ? '' : r.reason);
    return [r.baseMs, r.maxMs];
  };
  assert.deepEqual(d({}), [0, 0], 'absent: no delay');
  assert.deepEqual(d({ pcmk_delay_base: '2s' }), [2000, 2000], 'base alone is a fixed delay');
  assert.deepEqual(d({ pcmk_delay_max: '5s' }), [0, 5000], 'max alone is random in [0, max]');
  assert.deepEqual(d({ pcmk_delay_base: '2s', pcmk_delay_max: '5s' }), [2000, 5000]);
  assert.deepEqual(d({ pcmk_delay_base: '1500ms', pcmk_delay_max: 'PT3S' }), [1500, 3000]);
  assert.deepEqual(d({ pcmk_delay_base: '  ', pcmk_delay_max: '' }), [0, 0], 'empty values are unset');
  // A base above the max is cut down to the max, as Pacemaker does (with a warning).
  const clamped = parseFencingDelay(device('pdu', { pcmk_delay_base: '9s', pcmk_delay_max: '4s' }), 'n1');
  assert.deepEqual(clamped, { ok: true, baseMs: 4000, maxMs: 4000, clampedFromMs: 9000 });
  // The total is uniform in [base, max]: the random part is max - base at most, not max.
  const both = { baseMs: 2000, maxMs: 5000 };
  assert.equal(
    fencingDelayMs(both, () => 0),
    2000,
  );
  assert.equal(
    fencingDelayMs(both, () => 0.5),
    3500,
  );
  assert.equal(
    fencingDelayMs(both, () => 0.999_999_9),
    5000,
  );
  assert.equal(
    fencingDelayMs({ baseMs: 0, maxMs: 5000 }, () => 0.999_999_9),
    5000,
  );
  assert.equal(
    fencingDelayMs({ baseMs: 2000, maxMs: 2000 }, () => 0.7),
    2000,
  );
  assert.throws(() => fencingDelayMs(both, () => 1), /not a number in \[0, 1\)/);
});

test('a pcmk_delay_base map gives each target its own delay, and a target without an entry none', () => {
  const base = (text: string, target: string) => {
    const r = parseFencingDelay(device('pdu', { pcmk_delay_base: text }), target);
    assert.ok(r.ok, r.ok ? '' : r.reason);
    return r.baseMs;
  };
  assert.equal(base('node1:1s;node2:5', 'node1'), 1000);
  assert.equal(base('node1:1s;node2:5', 'node2'), 5000, 'a bare number is seconds');
  assert.equal(base('node1:1s;node2:5', 'NODE2'), 5000, 'node names match case-insensitively');
  assert.equal(base('node1:1s;node2:5', 'node3'), 0);
  assert.equal(base(' node1:1s node2:2s\tnode3:3s; ', 'node3'), 3000, 'space and tab separate too');
  assert.equal(base('node1:1s;node1:9s', 'node1'), 1000, 'the first entry for a node wins');
  // With pcmk_delay_max the mapped base is the low end of the random range.
  const r = parseFencingDelay(
    device('pdu', { pcmk_delay_base: 'n1:0s;n2:10s', pcmk_delay_max: '15s' }),
    'n2',
  );
  assert.deepEqual(r, { ok: true, baseMs: 10_000, maxMs: 15_000 });
});

test('bad pcmk_delay values are refused with a message naming the device and the parameter', () => {
  const reason = (params: Record<string, string>) => {
    const r = parseFencingDelay(device('ipmi-n1', params), 'n1');
    assert.equal(r.ok, false, JSON.stringify(params));
    return r.ok ? '' : r.reason;
  };
  assert.match(
    reason({ pcmk_delay_max: 'soon' }),
    /fence device ipmi-n1: pcmk_delay_max: 'soon' is not a duration/,
  );
  assert.match(reason({ pcmk_delay_base: '-5s' }), /fence device ipmi-n1: pcmk_delay_base '-5s' is negative/);
  assert.match(reason({ pcmk_delay_max: '-1' }), /pcmk_delay_max '-1' is negative/);
  assert.match(
    reason({ pcmk_delay_base: 'P5M' }),
    /pcmk_delay_base 'P5M' is \d+ ms, more than the 3600000 ms/,
  );
  assert.match(
    reason({ pcmk_delay_base: ':5s;n2:0s' }),
    /fence device ipmi-n1: pcmk_delay_base entry ':5s' is not node:delay \(write e\.g\. node1:5s;node2:0s/,
  );
  assert.match(reason({ pcmk_delay_base: 'n1:;n2:3s' }), /pcmk_delay_base entry 'n1:' is not node:delay/);
  assert.match(reason({ pcmk_delay_base: 'n1:1s;n2' }), /pcmk_delay_base entry 'n2' is not node:delay/);
  assert.match(reason({ pcmk_delay_base: 'n1=1s;n2:2s' }), /entry 'n1=1s' is not node:delay/);
  assert.match(
    reason({ pcmk_delay_base: 'n1:1s,n2:5s' }),
    /pcmk_delay_base entry for n1 \(entries are separated by ';'\): '1s,n2:5s' is not a duration/,
  );
  // An entry for another node is checked too: the map is wrong for every target.
  assert.match(reason({ pcmk_delay_base: 'n1:1s;n2:later' }), /entry for n2 .*'later' is not a duration/);
});

test('off and reboot wait the delay before the agent runs; on, status, monitor and list do not', async () => {
  const { fencer, runner, slept, logger } = rig([
    device('pdu', { pcmk_delay_base: '2s', pcmk_delay_max: '5s', pcmk_host_map: 'n1:port-1' }),
  ]);
  const off = await fencer.fence('n1', 'off');
  assert.ok(off.ok, off.reason);
  assert.deepEqual(slept, [3500], 'random 0.5: 2000 + 0.5 * 3001, rounded down');
  assert.deepEqual(runner.runs, ['pdu off port-1 @3500'], 'the agent ran after the delay');
  assert.equal(off.attempts[0]!.delayMs, 3500);
  assert.match(off.reason, /^off of n1 succeeded via pdu after waiting 3500 ms of pcmk_delay$/);
  const line = logger.lines.find((l) => l.msg.startsWith('delaying'));
  assert.equal(
    line?.msg,
    'delaying off of n1 with fence device pdu by 3500 ms (pcmk_delay_base 2000 ms, pcmk_delay_max 5000 ms)',
  );
  assert.deepEqual(line?.fields, { device: 'pdu', target: 'n1', action: 'off', delayMs: 3500 });
  assert.ok((await fencer.fence('n2', 'reboot')).ok);
  assert.deepEqual(slept, [3500, 3500]);
  assert.ok((await fencer.fence('n1', 'on')).ok);
  for (const action of ['status', 'monitor', 'list'] as FenceAction[])
    await fencer.runDevice('pdu', action, 'n1');
  assert.deepEqual(slept, [3500, 3500], 'no delay for on, status, monitor or list');
  assert.deepEqual(
    runner.runs.map((r) => r.split(' ').slice(0, 2).join(' ')),
    ['pdu off', 'pdu reboot', 'pdu on', 'pdu status', 'pdu monitor', 'pdu list'],
  );
});

test('the map entry of the target decides its delay, and a device without delays does not wait', async () => {
  const { fencer, slept, logger } = rig([device('pdu', { pcmk_delay_base: 'n1:0s;n2:10s' })]);
  assert.ok((await fencer.fence('n1', 'off')).ok);
  assert.deepEqual(slept, [], 'n1 is fenced at once');
  assert.ok((await fencer.fence('n2', 'off')).ok);
  assert.deepEqual(slept, [10_000], 'n2 waits 10 s: it loses the race');
  assert.equal(logger.lines.filter((l) => l.msg.startsWith('delaying')).length, 1);
  const plain = rig([device('pdu', {})]);
  const r = await plain.fencer.fence('n1', 'reboot');
  assert.ok(r.ok);
  assert.deepEqual(plain.slept, []);
  assert.equal(r.reason, 'reboot of n1 succeeded via pdu', 'no delay: the reason is as before');
});

test("the action's timeout starts after the delay, so the agent still gets all of pcmk_off_timeout", async () => {
  const { fencer, runner } = rig([device('pdu', { pcmk_delay_base: '20s', pcmk_off_timeout: '30s' })]);
  assert.ok((await fencer.fence('n1', 'off')).ok);
  assert.equal(runner.requests[0]!.timeoutMs, 30_000);
});

test('the delay is waited once per device action, not again before each retry', async () => {
  const clock = { ms: 0 };
  const slept: number[] = [];
  let calls = 0;
  const runner = new RecordingRunner(clock);
  runner.run = async (req) => {
    calls++;
    return {
      rc: calls < 3 ? 1 : 0,
      status: 'done',
      execTimeMs: 0,
      stdout: '',
      stderr: `try ${calls} ${req.action}`,
    };
  };
  const fencer = new Fencer({
    runner,
    devices: [device('pdu', { pcmk_delay_base: '1s', pcmk_off_retries: '2' })],
    sleep: async (ms) => {
      slept.push(ms);
      clock.ms += ms;
    },
    clock: { nowMs: () => clock.ms },
  });
  const r = await fencer.fence('n1', 'off');
  assert.ok(r.ok, r.reason);
  assert.deepEqual(
    r.attempts.map((a) => [a.rc, a.delayMs]),
    [
      [1, 1000],
      [1, undefined],
      [0, undefined],
    ],
  );
  assert.deepEqual(slept, [1000]);
});

test('aborting during the delay stops the fencing without running the agent or trying other devices', async () => {
  const ac = new AbortController();
  const { fencer, runner, slept, logger } = rig(
    [device('slow', { pcmk_delay_base: '30s' }), device('backup', {})],
    {
      // Like the default timer: the abort arrives while waiting and the wait rejects.
      sleep: async (ms, signal) => {
        slept.push(ms);
        ac.abort(new Error('the node stopped being DC'));
        assert.ok(signal?.aborted, 'the fencer hands its signal to the wait');
        throw signal.reason;
      },
    },
  );
  const r = await fencer.fence('n1', 'off', { signal: ac.signal });
  assert.equal(r.ok, false);
  assert.deepEqual(slept, [30_000]);
  assert.deepEqual(runner.runs, [], 'no agent ran, not even the second device');
  assert.equal(r.attempts.length, 1);
  assert.equal(r.attempts[0]!.status, 'cancelled');
  assert.match(
    r.reason,
    /^fencing n1 \(off\) was aborted: off of n1 with fence device slow was aborted during its 30000 ms pcmk_delay, before the agent ran: the node stopped being DC$/,
  );
  assert.ok(logger.lines.some((l) => l.level === 'warn' && /was aborted during its 30000 ms/.test(l.msg)));
  // Aborted before it starts: nothing runs, and the report says aborted, not "no device".
  const early = await fencer.fence('n1', 'reboot', { signal: AbortSignal.abort(new Error('closing')) });
  assert.equal(early.ok, false);
  assert.equal(early.reason, 'fencing n1 (reboot) was aborted: closing');
  assert.deepEqual(runner.runs, []);
});

test('the default wait is a real timer that an abort ends at once', async () => {
  const ac = new AbortController();
  const runner = new RecordingRunner({ ms: 0 });
  const logger = new RecordingLogger();
  // Ten minutes: the test can only finish because the abort ends the wait.
  const fencer = new Fencer({ runner, devices: [device('pdu', { pcmk_delay_base: '10min' })], logger });
  const done = fencer.runDevice('pdu', 'reboot', 'n1', { signal: ac.signal });
  // The delay is logged just before the wait starts; abort once it is.
  for (let i = 0; i < 100 && !logger.lines.some((l) => l.msg.startsWith('delaying')); i++)
    await new Promise((r) => setImmediate(r));
  ac.abort(new Error('shutting down'));
  const attempts = await done;
  assert.deepEqual(runner.runs, []);
  assert.equal(attempts[0]!.status, 'cancelled');
  assert.match(
    attempts[0]!.output,
    /aborted during its 600000 ms pcmk_delay, before the agent ran: shutting down/,
  );
});

test('a device with a bad delay fails that fencing with the message, and the next device is tried', async () => {
  const { fencer, runner, logger } = rig([
    device('ipmi', { pcmk_delay_base: 'n1:5s;n2' }),
    device('pdu', { pcmk_delay_max: '2s' }),
  ]);
  const r = await fencer.fence('n1', 'off');
  assert.ok(r.ok, r.reason);
  assert.deepEqual(
    r.attempts.map((a) => `${a.device} ${a.rcName} ${a.status}`),
    ['ipmi OCF_ERR_CONFIGURED invalid', 'pdu OCF_SUCCESS done'],
  );
  assert.match(r.attempts[0]!.output, /^fence device ipmi: pcmk_delay_base entry 'n2' is not node:delay/);
  assert.deepEqual(
    runner.runs.map((x) => x.split(' ')[0]),
    ['pdu'],
    'the ipmi agent never ran without its delay',
  );
  assert.ok(
    logger.lines.some(
      (l) =>
        l.level === 'error' &&
        l.msg.startsWith("not running off of n1: fence device ipmi: pcmk_delay_base entry 'n2'"),
    ),
  );
  // Alone, the bad device makes the fencing fail with the message in the reason.
  const alone = rig([device('ipmi', { pcmk_delay_max: 'soon' })]);
  const failed = await alone.fencer.fence('n1', 'reboot');
  assert.equal(failed.ok, false);
  assert.match(
    failed.reason,
    /ipmi reboot rc 6 \(invalid\): fence device ipmi: pcmk_delay_max: 'soon' is not a duration/,
  );
  assert.deepEqual(alone.runner.runs, []);
  // Actions that are never delayed still work with it: unfencing and status checks.
  assert.ok((await alone.fencer.fence('n1', 'on')).ok);
  assert.equal((await alone.fencer.runDevice('ipmi', 'status', 'n1'))[0]!.rc, 0);
});

test('a pcmk_delay_base above pcmk_delay_max is logged and cut down to the max', async () => {
  const { fencer, slept, logger } = rig([device('pdu', { pcmk_delay_base: '9s', pcmk_delay_max: '4s' })]);
  assert.ok((await fencer.fence('n1', 'off')).ok);
  assert.deepEqual(slept, [4000]);
  assert.ok(
    logger.lines.some(
      (l) =>
        l.level === 'warn' &&
        l.msg ===
          'fence device pdu: pcmk_delay_base (9000 ms) is larger than pcmk_delay_max (4000 ms), using 4000 ms',
    ),
  );
});

test('a requested delay (priority-fencing-delay) is waited once before the first device and its pcmk_delay, and logged', async () => {
  const { fencer, runner, slept, logger } = rig(
    [device('pdu', { pcmk_delay_base: '2s' }), device('pdu2', { pcmk_delay_base: '1s' })],
    { levels: [{ id: 'l1', target: 'n1', index: '1', devices: 'pdu,pdu2' }] },
  );
  const why = 'priority-fencing-delay: n1 runs the highest-priority resources';
  const r = await fencer.fence('n1', 'off', { requestedDelay: { ms: 5000, why } });
  assert.ok(r.ok, r.reason);
  assert.deepEqual(slept, [5000, 2000, 1000], 'requested first, then each device its own pcmk_delay');
  assert.deepEqual(runner.runs, ['pdu off n1 @7000', 'pdu2 off n1 @8000']);
  assert.equal(
    logger.lines.find((l) => l.msg.startsWith('delaying fencing'))?.msg,
    'delaying fencing of n1 by 5000 ms (priority-fencing-delay: n1 runs the highest-priority resources)',
  );
  assert.match(
    r.reason,
    /after waiting 5000 ms of requested delay \(priority-fencing-delay: .*\) and 3000 ms of pcmk_delay$/,
  );
  // Only what takes a node down waits: an `on` does not.
  assert.ok((await fencer.fence('n1', 'on', { requestedDelay: { ms: 5000, why } })).ok);
  assert.deepEqual(slept, [5000, 2000, 1000]);
});

test('aborting during a requested delay runs no device and says so', async () => {
  const ac = new AbortController();
  const { fencer, runner, slept, logger } = rig([device('pdu', { pcmk_delay_base: '2s' })], {
    sleep: async (ms, signal) => {
      slept.push(ms);
      ac.abort(new Error('the node stopped being DC'));
      assert.ok(signal?.aborted, 'the fencer hands its signal to the wait');
      throw signal.reason;
    },
  });
  const r = await fencer.fence('n1', 'reboot', {
    signal: ac.signal,
    requestedDelay: { ms: 5000, why: 'priority-fencing-delay: n1 runs the highest-priority resources' },
  });
  assert.equal(r.ok, false);
  assert.deepEqual(slept, [5000], 'the pcmk_delay is not waited after an abort');
  assert.deepEqual(runner.runs, []);
  assert.equal(
    r.reason,
    'fencing n1 (reboot) was aborted during its 5000 ms requested delay, before any device ran: the node stopped being DC',
  );
  assert.ok(
    logger.lines.some((l) => l.level === 'warn' && /aborted during its 5000 ms requested delay/.test(l.msg)),
  );
});
