import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { selfCommand } from '../cli/volume_cmd.ts';
import { createLabNet, hasNetnsSupport, type LabNet } from '../lab/netns.ts';
import type { CoreStatus } from './core.ts';
import { controlRequest } from './engine.ts';

const run = promisify(execFile);
/** Bound on every wait for a real process or a real resync (never a protocol sleep). */
const WAIT_MS = 60_000;
const POLL_MS = 100;

function have(tool: string): boolean {
  try {
    execFileSync('which', [tool], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const usable = hasNetnsSupport() && have('nbdfuse') && have('mkfs.ext4') && existsSync('/dev/fuse');

interface Ctx {
  net: LabNet;
  dir: string;
  conf: string;
  runDir: (node: string) => string;
  disk: (node: string) => string;
}

function cli(ctx: Ctx, node: string, args: string[], inNetns = false): string {
  const { exec, args: pre } = selfCommand();
  const argv = [
    exec,
    ...pre,
    'volume',
    '-c',
    ctx.conf,
    '--node',
    node,
    '--run-dir',
    ctx.runDir(node),
    ...args,
  ];
  if (inNetns) return ctx.net.exec(node, argv);
  return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function status(ctx: Ctx, node: string): Promise<(CoreStatus & { pid: number }) | undefined> {
  const r = await controlRequest(ctx.runDir(node), 'r0', { cmd: 'status' }).catch(() => undefined);
  if (!r?.ok) return undefined;
  return { ...(r.status as CoreStatus), pid: Number(r.pid) };
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function settledPair(ctx: Ctx): Promise<void> {
  await waitFor('both nodes Connected and UpToDate', async () => {
    const a = await status(ctx, 'alpha');
    const b = await status(ctx, 'bravo');
    return (
      a?.conn === 'Connected' && b?.conn === 'Connected' && a.disk === 'UpToDate' && b.disk === 'UpToDate'
    );
  });
}

function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function killEngine(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

test('two nodes in network namespaces: sync, ext4, failover after kill -9, partial resync, split brain, verify', {
  skip: !usable,
  timeout: 300_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-vol-acc-'));
  const net = createLabNet({ nodes: ['alpha', 'bravo'] });
  const sbLog = join(dir, 'split-brain.log');
  const ctx: Ctx = {
    net,
    dir,
    conf: join(dir, 'drbd.conf'),
    runDir: (n) => join(dir, `run-${n}`),
    disk: (n) => join(dir, `${n}.img`),
  };
  const [aAddr, bAddr] = [net.node('alpha').addrs[0]!, net.node('bravo').addrs[0]!];
  writeFileSync(
    ctx.conf,
    `resource r0 {
  protocol C;
  net { cram-hmac-alg sha1; shared-secret "acceptance"; ping-int 1; timeout 10; connect-int 1; ko-count 4; }
  handlers { split-brain "echo split-brain $DRBD_RESOURCE $DRBD_PEER >> ${sbLog}"; }
  on alpha { device /dev/drbd0; disk ${ctx.disk('alpha')}; address ${aAddr}:7789; meta-disk internal; }
  on bravo { device /dev/drbd0; disk ${ctx.disk('bravo')}; address ${bAddr}:7789; meta-disk internal; }
}
`,
  );
  for (const n of ['alpha', 'bravo']) {
    execFileSync('truncate', ['-s', '96M', ctx.disk(n)]);
    mkdirSync(ctx.runDir(n), { recursive: true });
  }
  const mnt = (n: string) => join(dir, `mnt-${n}`);
  const pids: number[] = [];
  const attached = new Set<string>();
  try {
    // create-md → up → initial sync
    cli(ctx, 'alpha', ['create-md', 'r0']);
    cli(ctx, 'bravo', ['create-md', 'r0']);
    cli(ctx, 'alpha', ['up', 'r0'], true);
    cli(ctx, 'bravo', ['up', 'r0'], true);
    for (const n of ['alpha', 'bravo']) pids.push((await waitFor(`${n} engine`, () => status(ctx, n))).pid);
    assert.throws(() => cli(ctx, 'alpha', ['primary', 'r0']), /needs --force/);
    cli(ctx, 'alpha', ['primary', '--force', 'r0']);
    await settledPair(ctx);
    const proc = cli(ctx, 'alpha', ['status', '--proc', 'r0']);
    assert.match(proc, /cs:Connected ro:Primary\/Secondary ds:UpToDate\/UpToDate C/);
    const json = JSON.parse(cli(ctx, 'bravo', ['--output', 'json', 'status', 'r0'])) as {
      role: string;
      stream: string;
    };
    assert.deepEqual(
      [json.role, json.stream],
      ['Secondary', 'signed'],
      'replication is signed without tls yes',
    );

    // attach with ext4, write files and record checksums (each fsync'ed = acknowledged)
    cli(ctx, 'alpha', ['attach', 'r0', '--mount', mnt('alpha'), '--mkfs', 'ext4']);
    attached.add('alpha');
    const sums = new Map<string, string>();
    for (let i = 0; i < 12; i++) {
      const f = join(mnt('alpha'), `file${i}.bin`);
      const fh = await open(f, 'w');
      await fh.write(randomBytes(4096 * (1 + i * 7)));
      await fh.sync();
      await fh.close();
      sums.set(`file${i}.bin`, sha(f));
    }
    await run('sync', ['-f', mnt('alpha')]);

    // kill -9 the Primary's engine, promote the other. Idle a little first so its activity log
    // cools down to what a busy-then-quiet filesystem leaves hot (AL_COOL_MS).
    await new Promise((r) => setTimeout(r, 1500));
    const alphaPid = (await status(ctx, 'alpha'))!.pid;
    killEngine(alphaPid);
    cli(ctx, 'alpha', ['detach', 'r0']);
    attached.delete('alpha');
    await waitFor('bravo to notice', async () => (await status(ctx, 'bravo'))?.conn !== 'Connected');
    cli(ctx, 'bravo', ['primary', 'r0']);
    cli(ctx, 'bravo', ['attach', 'r0', '--mount', mnt('bravo')]);
    attached.add('bravo');
    for (const [name, sum] of sums)
      assert.equal(sha(join(mnt('bravo'), name)), sum, `${name} survived the failover`);
    // More writes while alpha is away: these are the dirty blocks the resync must send.
    for (let i = 0; i < 5; i++) writeFileSync(join(mnt('bravo'), `after${i}.bin`), randomBytes(64 * 1024));
    await run('sync', ['-f', mnt('bravo')]);
    cli(ctx, 'bravo', ['detach', 'r0']);
    attached.delete('bravo');
    // fsck the surviving filesystem through the NBD export: clean.
    const copy = join(dir, 'fsck.img');
    await run('nbdcopy', [`nbd+unix:///r0?socket=${join(ctx.runDir('bravo'), 'r0.nbd')}`, copy]);
    const fsck = await run('e2fsck', ['-fn', copy]);
    assert.match(fsck.stdout, /files/);
    rmSync(copy);

    // restart the old Primary: it resyncs the dirty blocks only
    await new Promise((r) => setTimeout(r, 1500)); // let bravo's activity log cool (AL_COOL_MS)
    const dirtyOnBravo = (await status(ctx, 'bravo'))!.outOfSyncBlocks;
    cli(ctx, 'alpha', ['up', 'r0'], true);
    pids.push((await waitFor('alpha engine again', () => status(ctx, 'alpha'))).pid);
    await settledPair(ctx);
    const a = (await status(ctx, 'alpha'))!;
    const log = readFileSync(join(ctx.runDir('alpha'), 'r0.log'), 'utf8');
    const unionBlocks = Number([...log.matchAll(/resync as SyncTarget: (\d+) blocks/g)].at(-1)?.[1]);
    const received = a.counters.resyncBytesReceived;
    process.stdout.write(
      `# partial resync: bravo dirty ${dirtyOnBravo} blocks, union with alpha's crash AL ${unionBlocks} blocks, received ${received} bytes (${received / 4096} blocks)\n`,
    );
    assert.ok(unionBlocks >= dirtyOnBravo);
    assert.ok(
      Math.abs(received - unionBlocks * 4096) <= unionBlocks * 4096 * 0.01,
      'bytes transferred equal the dirty blocks (±1 %)',
    );
    assert.ok(received < 96 * 1024 * 1024 * 0.5, 'not a full sync');

    // split brain: cut the link, promote both, write on both, reconnect
    net.cutLink('bravo', 0);
    await waitFor('both to lose the link', async () => {
      const [x, y] = [await status(ctx, 'alpha'), await status(ctx, 'bravo')];
      return x?.conn !== 'Connected' && y?.conn !== 'Connected';
    });
    cli(ctx, 'alpha', ['primary', 'r0']);
    for (const n of ['alpha', 'bravo']) {
      await run('qemu-io', [
        '-f',
        'raw',
        '-c',
        `write -P ${n === 'alpha' ? '0x11' : '0x22'} 32M 64k`,
        `nbd+unix:///r0?socket=${join(ctx.runDir(n), 'r0.nbd')}`,
      ]);
      cli(ctx, n, ['secondary', 'r0']);
    }
    net.restoreLink('bravo', 0);
    await waitFor('split brain detected on both', async () => {
      const [x, y] = [await status(ctx, 'alpha'), await status(ctx, 'bravo')];
      return x?.conn === 'StandAlone' && y?.conn === 'StandAlone' && existsSync(sbLog);
    });
    assert.match(readFileSync(sbLog, 'utf8'), /split-brain r0 (alpha|bravo)/);
    // Manual recovery: alpha's changes are thrown away.
    cli(ctx, 'alpha', ['connect', '--discard-my-data', 'r0']);
    cli(ctx, 'bravo', ['connect', 'r0']);
    await settledPair(ctx);
    const probe = await run('qemu-io', ['-f', 'raw', '-r', '-c', 'read -P 0x22 32M 64k', ctx.disk('alpha')]);
    assert.doesNotMatch(probe.stdout, /verification failed/, "alpha now holds bravo's split-brain writes");

    // verify finds a block changed behind halo's back
    const fh = await open(ctx.disk('bravo'), 'r+');
    await fh.write(Buffer.alloc(512, 0x5a), 0, 512, 40 * 1024 * 1024);
    await fh.close();
    cli(ctx, 'alpha', ['verify', 'r0']);
    const v = await waitFor('verify to finish', async () => {
      const s = await status(ctx, 'alpha');
      return s?.verify && !s.verify.running ? s.verify : undefined;
    });
    assert.equal(v.outOfSync, 1);
    assert.match(cli(ctx, 'alpha', ['status', 'r0']), /verify:done .*out-of-sync:4KiB/);

    // An automatic policy end to end: restart both with after-sb-0pri discard-least-changes.
    for (const n of ['alpha', 'bravo']) cli(ctx, n, ['down', 'r0']);
    writeFileSync(
      ctx.conf,
      readFileSync(ctx.conf, 'utf8').replace(
        'ko-count 4;',
        'ko-count 4; after-sb-0pri discard-least-changes;',
      ),
    );
    for (const n of ['alpha', 'bravo']) {
      cli(ctx, n, ['up', 'r0'], true);
      pids.push((await waitFor(`${n} engine (policy round)`, () => status(ctx, n))).pid);
    }
    await settledPair(ctx);
    net.cutLink('alpha', 0);
    await waitFor('both to lose the link', async () => {
      const [x, y] = [await status(ctx, 'alpha'), await status(ctx, 'bravo')];
      return x?.conn !== 'Connected' && y?.conn !== 'Connected';
    });
    const writes: Array<[string, string, string]> = [
      ['alpha', '0x33', '8M 64k'],
      ['bravo', '0x44', '16M 512k'],
    ];
    for (const [n, pattern, range] of writes) {
      cli(ctx, n, ['primary', 'r0']);
      await run('qemu-io', [
        '-f',
        'raw',
        '-c',
        `write -P ${pattern} ${range}`,
        `nbd+unix:///r0?socket=${join(ctx.runDir(n), 'r0.nbd')}`,
      ]);
      cli(ctx, n, ['secondary', 'r0']);
    }
    net.restoreLink('alpha', 0);
    await settledPair(ctx);
    const kept = await run('qemu-io', ['-f', 'raw', '-r', '-c', 'read -P 0x44 16M 512k', ctx.disk('alpha')]);
    assert.doesNotMatch(kept.stdout, /verification failed/, 'the side with more changes (bravo) won');
    const dropped = await run('qemu-io', [
      '-f',
      'raw',
      '-r',
      '-c',
      'read -P 0x33 8M 64k',
      ctx.disk('alpha'),
    ]).catch((e: { stdout: string }) => e);
    assert.match(dropped.stdout, /verification failed/, "alpha's fewer changes were discarded");
    assert.match(readFileSync(join(ctx.runDir('alpha'), 'r0.log'), 'utf8'), /split brain auto-resolved/);
  } finally {
    for (const n of attached) {
      try {
        cli(ctx, n, ['detach', 'r0']);
      } catch {
        // Best effort.
      }
    }
    for (const n of ['alpha', 'bravo']) killEngine((await status(ctx, n))?.pid);
    for (const pid of pids) killEngine(pid);
    net.destroy();
    for (const n of ['alpha', 'bravo']) {
      const mountpoint = join(ctx.runDir(n), 'r0.fuse');
      try {
        execFileSync('fusermount3', ['-u', mountpoint], { stdio: 'ignore' });
      } catch {
        // Not mounted, or its nbdfuse died with the engine (a dead mount): detach it lazily.
        try {
          execFileSync('fusermount3', ['-u', '-z', mountpoint], { stdio: 'ignore' });
        } catch {
          // Not mounted.
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
});
