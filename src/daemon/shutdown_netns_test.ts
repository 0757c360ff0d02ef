import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hasNetnsSupport } from '../lab/netns.ts';
import { createLabCluster, startAndAgree } from './lab_cluster.ts';

/**
 * Generous: the default shutdown-escalation is 60 s, so a daemon still waiting for a shutdown
 * request nobody records is running long after this; a clean one exits within a second or two.
 */
const EXIT_DEADLINE_MS = 30_000;

test('with nothing loaded into the CIB, one SIGTERM stops a follower and then the DC, cleanly and without listener warnings', {
  skip: !hasNetnsSupport() && 'needs root and ip netns',
  timeout: 180_000,
}, async () => {
  const names = ['n1', 'n2', 'n3'];
  const c = createLabCluster({ nodes: names, profile: 'lab' });
  try {
    const dc = await startAndAgree(c, names, 60_000);
    const follower = names.find((n) => n !== dc)!;
    for (const n of [follower, dc]) {
      const code = await c.terminate(n, EXIT_DEADLINE_MS).catch((e: Error) => {
        throw new Error(`${e.message}\n${c.logTail(n, 3000)}`);
      });
      const log = c.logTail(n, 256 * 1024);
      assert.equal(code, 0, `${n} exit code (0: a clean shutdown)\n${c.logTail(n, 3000)}`);
      assert.ok(
        c.logLines(n).some((l) => l.event === 'shutdown' && l.clean === true),
        `${n} logs a clean shutdown`,
      );
      assert.ok(!log.includes('MaxListenersExceededWarning'), `${n} warned:\n${c.logTail(n, 3000)}`);
    }
    for (const n of names)
      assert.ok(
        !c.logTail(n, 256 * 1024).includes('ignoring attribute shutdown'),
        `${n}: refused shutdown request`,
      );
  } finally {
    c.destroy();
  }
});
