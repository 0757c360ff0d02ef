import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

test('volume resize and fence-peer from the CLI: growth, nothing to do, and bad input say what happened', () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-vcli-'));
  try {
    const conf = join(dir, 'drbd.conf');
    const img = join(dir, 'a.img');
    writeFileSync(img, Buffer.alloc(4 << 20));
    writeFileSync(
      conf,
      `resource r0 {
  on alpha { device /dev/drbd0; disk ${img}; address 127.0.0.1:7790; meta-disk internal; }
  on bravo { device /dev/drbd0; disk ${join(dir, 'b.img')}; address 127.0.0.1:7791; meta-disk internal; }
}
`,
    );
    const v = (args: string[]) => halo(dir, ['-c', conf, '--node', 'alpha', ...args]);
    assert.equal(v(['create-md', 'r0']).code, 0);
    const same = v(['resize', 'r0']);
    assert.equal(same.code, 0, same.err);
    assert.match(same.out, /has not grown; still \d+ bytes/);
    const bad = v(['resize', 'r0', '--size', 'lots']);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /--size: cannot parse size "lots"/);
    const clean = v(['resize', 'r0', '--size', '8M', '--assume-clean']);
    assert.equal(clean.code, 1);
    assert.match(clean.err, /--assume-clean works only online/);
    const grown = v(['--output', 'json', 'resize', 'r0', '--size', '8M']);
    assert.equal(grown.code, 0, grown.err);
    const r = JSON.parse(grown.out) as { newBytes: number; grewFileBy: number };
    assert.ok(r.newBytes >= 8 << 20 && r.grewFileBy > 0);
    assert.equal(statSync(img).size, (4 << 20) + r.grewFileBy);
    // The disk grows again behind halo's back: create-md must not start the volume over.
    writeFileSync(img, Buffer.alloc(1 << 20), { flag: 'a' });
    const over = v(['create-md', 'r0']);
    assert.equal(over.code, 1);
    assert.match(over.err, /grew and still holds halo metadata for r0 .* run "halo volume resize r0"/);
    assert.equal(v(['resize', 'r0']).code, 0);
    const noPeer = v(['fence-peer', 'r0']);
    assert.equal(noPeer.code, 1);
    assert.match(noPeer.err, /name the resource and --peer/);
    const noCluster = v(['fence-peer', 'r0', '--peer', 'bravo', '--cluster-config', join(dir, 'none.json')]);
    assert.equal(noCluster.code, 1, 'exit 1: the handler failed, I/O stays suspended');
    assert.match(noCluster.err, /no cluster to fence in/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
