import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { selfCommand } from '../cli/volume_cmd.ts';

function halo(dir: string, args: string[]): { code: number; out: string; err: string } {
  const { exec, args: pre } = selfCommand();
  const r = spawnSync(exec, [...pre, 'volume', '--run-dir', join(dir, 'run'), ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test('the volume CLI explains bad configs, double create-md and a stopped engine', () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-vcli-'));
  try {
    const conf = join(dir, 'drbd.conf');
    writeFileSync(join(dir, 'a.img'), Buffer.alloc(2 << 20));
    writeFileSync(
      conf,
      `resource r0 {
  on alpha { device /dev/drbd0; disk ${join(dir, 'a.img')}; address 127.0.0.1:7790; meta-disk internal; }
  on bravo { device /dev/drbd0; disk ${join(dir, 'b.img')}; address 127.0.0.1:7791; meta-disk internal; }
}
`,
    );
    const ok = halo(dir, ['-c', conf, '--node', 'alpha', '--output', 'json', 'create-md', 'r0']);
    assert.equal(ok.code, 0, ok.err);
    assert.ok(JSON.parse(ok.out).dataBytes > 0);
    const again = halo(dir, ['-c', conf, '--node', 'alpha', 'create-md', 'r0']);
    assert.equal(again.code, 1);
    assert.match(again.err, /already has halo metadata .* use --force/);
    const gi = halo(dir, ['-c', conf, '--node', 'alpha', 'show-gi', 'r0']);
    assert.match(gi.out, /^0000000000000004:0000000000000000:/);
    const st = halo(dir, ['-c', conf, '--node', 'alpha', 'status', 'r0']);
    assert.equal(st.code, 3);
    assert.match(st.err, /not running here; start it with "halo volume up r0"/);
    writeFileSync(conf, 'resource r0 {\n  on alpha { disk /x;\n');
    const bad = halo(dir, ['-c', conf, '--node', 'alpha', 'create-md', 'r0']);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /drbd\.conf:\d+:\d+: error:/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
