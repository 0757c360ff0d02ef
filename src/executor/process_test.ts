import assert from 'node:assert/strict';
import { getPriority, setPriority } from 'node:os';
import { test } from 'node:test';
import { runProcess } from './process.ts';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

test('an agent does not inherit the raised priority of halo daemon', {
  skip: !isRoot && 'needs root to raise priority',
}, async () => {
  const before = getPriority(0);
  setPriority(0, -10);
  try {
    const r = await runProcess({
      argv: ['/bin/sh', '-c', 'sleep 0.2; cut -d" " -f19 /proc/$$/stat'],
      env: { PATH: '/usr/bin:/bin' },
      timeoutMs: 10_000,
    });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout.trim(), '0', 'the agent runs at nice 0, not the daemon’s -10');
  } finally {
    setPriority(0, before);
  }
});
