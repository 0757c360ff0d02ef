import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Logger, LogLevel } from '../lib/ports.ts';
import { raiseSchedulingPriority } from './run.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const isRoot = process.getuid?.() === 0;

function recordingLogger(): { logger: Logger; lines: Array<{ level: LogLevel; msg: string }> } {
  const lines: Array<{ level: LogLevel; msg: string }> = [];
  const logger: Logger = {
    log: (level, msg) => void lines.push({ level, msg }),
    child: () => logger,
  };
  return { logger, lines };
}

/**
 * Runs, in a separate short-lived process (so the test runner itself never turns realtime):
 * the daemon's scheduling setup, then an agent through the executor, which reports its own
 * policy and nice value.
 */
const COMPILED = import.meta.url.endsWith('.js');
const mod = (path: string): string => new URL(`${path}${COMPILED ? '.js' : '.ts'}`, import.meta.url).href;
const PROBE = `
const { raiseSchedulingPriority } = await import('${mod('./run')}');
const { runProcess } = await import('${mod('../executor/process')}');
const { nullLogger } = await import('${mod('../lib/ports')}');
const outcome = raiseSchedulingPriority(nullLogger, 7);
const self = (await import('node:child_process')).spawnSync('chrt', ['-p', String(process.pid)], { encoding: 'utf8' }).stdout;
const agent = await runProcess({
  argv: ['sh', '-c', 'chrt -p $$; echo nice=$(ps -o ni= -p $$)'],
  env: { PATH: process.env.PATH },
  timeoutMs: 10000,
});
process.stdout.write(JSON.stringify({ outcome, self, agent: agent.stdout }));
`;

test('as root the daemon runs SCHED_RR while the agents it starts run SCHED_OTHER at nice 0', {
  skip: isRoot ? false : 'needs root',
}, () => {
  const loader = COMPILED ? [] : ['--import', 'tsx'];
  const r = spawnSync(process.execPath, [...loader, '--input-type=module', '-e', PROBE], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { outcome: { policy: string }; self: string; agent: string };
  assert.deepEqual(out.outcome, { policy: 'rr', priority: 7 });
  assert.match(out.self, /SCHED_RR\|SCHED_RESET_ON_FORK/);
  assert.match(out.self, /priority: 7/);
  assert.match(out.agent, /policy: SCHED_OTHER\n/);
  assert.match(out.agent, /nice=\s*0\b/);
});

test('when realtime scheduling is refused the daemon warns and says why', () => {
  const { logger, lines } = recordingLogger();
  // No such process: chrt and setpriority both fail, as they would without permission.
  const outcome = raiseSchedulingPriority(logger, 40, 0x3ffffff0);
  assert.equal(outcome.policy, 'default');
  const warns = lines.filter((l) => l.level === 'warn').map((l) => l.msg);
  assert.equal(warns.length, 2);
  assert.match(warns[0]!, /could not switch to realtime scheduling \(SCHED_RR 40/);
  assert.match(warns[1]!, /nice -10/);
});

test('with realtimePriority 0 the daemon only asks for a lower nice value', () => {
  const { logger, lines } = recordingLogger();
  const outcome = raiseSchedulingPriority(logger, 0, 0x3ffffff0);
  assert.equal(outcome.policy, 'default');
  assert.equal(lines.filter((l) => /realtime/.test(l.msg)).length, 0);
});
