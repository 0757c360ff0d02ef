import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Executor } from './executor.ts';
import { MemoryAgentRunner } from './memory_runner.ts';
import type { OpResult, RawOpOutcome } from './ops.ts';
import type { AgentRunner, AgentRunRequest } from './runner.ts';
import { ShellAgentRunner } from './runner.ts';

const hasDummy = existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy');

/** The AgentRunner contract: the real and the in-memory runner must both pass it. */
async function runnerContract(runner: AgentRunner, params: Record<string, string>): Promise<void> {
  const op = (action: string, agent = 'ocf:heartbeat:Dummy') =>
    runner.run({ agent, resource: 'contract', action, intervalMs: 0, timeoutMs: 20_000, params });
  const rcs = [];
  for (const a of ['monitor', 'start', 'start', 'monitor', 'stop', 'stop', 'monitor'])
    rcs.push((await op(a)).rc);
  assert.deepEqual(rcs, [7, 0, 0, 0, 0, 0, 7], 'probe, idempotent start and stop, monitor');
  const missing = await op('start', 'ocf:heartbeat:NotThere');
  assert.equal(missing.status, 'notInstalled');
  assert.equal(missing.rc, 5);
  await assert.rejects(runner.metadata('ocf:heartbeat:NotThere'), { code: 'unknown-agent' });
  assert.ok(runner.list('ocf').includes('ocf:heartbeat:Dummy'));
}

test('the real runner keeps the AgentRunner contract', {
  skip: !hasDummy && 'needs resource-agents',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-contract-'));
  try {
    await runnerContract(new ShellAgentRunner({ stateDir: join(dir, 'rsctmp') }), {
      state: join(dir, 'state'),
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the in-memory runner keeps the same AgentRunner contract', async () => {
  await runnerContract(new MemoryAgentRunner(), {});
});

async function until(cond: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a recurring monitor reports a crashed resource, and stopping the resource ends its monitor', async () => {
  const runner = new MemoryAgentRunner();
  const results: OpResult[] = [];
  const ex = new Executor({ runner, onResult: (r) => results.push(r) });
  try {
    const base = { resource: 'web', agent: 'ocf:heartbeat:Dummy', timeoutMs: 20_000, params: {} };
    assert.equal((await ex.submit({ ...base, action: 'start', intervalMs: 0 })).rc, 0);
    const first = await ex.submit({ ...base, action: 'monitor', intervalMs: 30, startDelayMs: 10 });
    assert.equal(first.rc, 0);
    assert.equal(first.operationKey, 'web_monitor_30');
    runner.crash('web');
    await until(
      () => results.some((r) => r.action === 'monitor' && r.rc === 7),
      'the monitor to see the crash',
    );
    const failed = results.find((r) => r.action === 'monitor' && r.rc === 7)!;
    assert.equal(failed.rcName, 'OCF_NOT_RUNNING');
    assert.equal(failed.rcChanged, true);
    await ex.submit({ ...base, action: 'stop', intervalMs: 0 });
    assert.deepEqual(ex.activeRecurring(), []);
    await ex.idle();
    const count = runner.log.filter((l) => l === 'web monitor').length;
    // No monitor is started after the stop: submit a probe and check the log is in order.
    await ex.submit({ ...base, action: 'monitor', intervalMs: 0 });
    assert.equal(runner.log.filter((l) => l === 'web monitor').length, count + 1);
    assert.equal(runner.log.lastIndexOf('web stop'), runner.log.length - 2);
  } finally {
    ex.close();
  }
});

test('the executor never runs more operations at once than its bound, nor two of one resource', async () => {
  let running = 0;
  let peak = 0;
  const perResource = new Map<string, number>();
  let overlap = false;
  const slow: AgentRunner = {
    async run(req: AgentRunRequest): Promise<RawOpOutcome> {
      running++;
      peak = Math.max(peak, running);
      const n = (perResource.get(req.resource) ?? 0) + 1;
      perResource.set(req.resource, n);
      if (n > 1) overlap = true;
      await new Promise((r) => setTimeout(r, 20));
      perResource.set(req.resource, n - 1);
      running--;
      return { rc: 0, status: 'done', execTimeMs: 20, stdout: '', stderr: '' };
    },
    metadata: () => Promise.reject(new Error('unused')),
    list: () => [],
  };
  const ex = new Executor({ runner: slow, maxParallel: 3 });
  try {
    const all = [];
    for (let i = 0; i < 6; i++) {
      for (const action of ['start', 'monitor']) {
        all.push(
          ex.submit({
            resource: `r${i}`,
            agent: 'ocf:x:y',
            action,
            intervalMs: 0,
            timeoutMs: 1000,
            params: {},
          }),
        );
      }
    }
    const results = await Promise.all(all);
    assert.equal(results.length, 12);
    assert.equal(peak, 3);
    assert.equal(overlap, false);
    assert.ok(
      results.some((r) => r.queueTimeMs > 0),
      'some operations waited in the queue',
    );
  } finally {
    ex.close();
  }
});
