import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Logger, LogLevel } from '../lib/ports.ts';
import { waitFor } from '../lib/wait.ts';
import { generateKeyFile } from '../transport/key_file.ts';
import { queryControl } from './control.ts';
import { DAEMON_NODE_FLAGS } from './node_flags.ts';
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

/** Both ways to run a daemon: its own entry point, and `halo daemon` inside the CLI's process. */
const DAEMON_ENTRIES: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['src/daemon/main', [fileURLToPath(new URL(COMPILED ? './main.js' : './main.ts', import.meta.url))]],
  [
    'halo daemon',
    [fileURLToPath(new URL(COMPILED ? '../cli/main.js' : '../cli/main.ts', import.meta.url)), 'daemon'],
  ],
];

for (const [entry, argv] of DAEMON_ENTRIES) {
  test(`a daemon (${entry}) whose output readers have gone keeps serving, and still stops cleanly on SIGTERM`, {
    timeout: 120_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-run-'));
    generateKeyFile(join(dir, 'authkey'));
    const config = {
      cluster: 'unit',
      keyFile: join(dir, 'authkey'),
      profile: 'lab',
      stateDir: join(dir, 'state'),
      controlSocket: join(dir, '{node}.sock'),
      realtimePriority: 0,
      nodes: [{ id: 1, name: 'a', links: [`127.0.0.1:${20_000 + randomInt(20_000)}`] }],
    };
    writeFileSync(join(dir, 'halo.json'), JSON.stringify(config));
    const loader = COMPILED ? [] : ['--import', 'tsx'];
    // stdout and stderr are pipes whose reading ends are closed before the daemon writes a byte
    // (`halo daemon 2>&1 | tee log`, and tee killed): every log line it writes fails with EPIPE.
    const child = spawn(
      process.execPath,
      [...DAEMON_NODE_FLAGS, ...loader, ...argv, '--config', join(dir, 'halo.json'), '--node', 'a'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.destroy();
    child.stderr!.destroy();
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let exitCode: number | null | undefined;
    void exited.then((c) => {
      exitCode = c;
    });
    try {
      const serving = await waitFor('the daemon to answer on its control socket', 60_000, async () => {
        if (exitCode !== undefined) return `exited with ${exitCode}`;
        const st = (await queryControl(join(dir, 'a.sock'), 'status', 2_000).catch(() => undefined)) as
          | { node?: string; quorum?: { quorate?: boolean } }
          | undefined;
        return st?.node === 'a' && st.quorum?.quorate ? 'serving' : undefined;
      });
      assert.equal(serving, 'serving');
      child.kill('SIGTERM');
      const code = await Promise.race([
        exited,
        new Promise<'running'>((r) => setTimeout(() => r('running'), 30_000).unref()),
      ]);
      assert.equal(code, 0, 'a clean shutdown after one SIGTERM');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
