import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { abortDeadNodeFuse } from '../lib/fuse.ts';
import { waitFor } from '../lib/wait.ts';
import { labVolumeState, primariesNow, runSql, seed003SqlTarget } from './bench.ts';
import { isLabDaemon, labChaos, labDown, labStatus, labUp, readLabState, vipHolders } from './lab.ts';
import { hasNetnsSupport } from './netns.ts';
import { LAB_VIP, SEED003_DB } from './scenarios.ts';
import { missingSeed003Tool } from './seed003_data.ts';

/**
 * Seed 003 end to end on real daemons: the replicated volume made and synced at `lab up` with a
 * MariaDB data directory on it, the group (ext4 on the volume, VIP, nginx, MariaDB through
 * ocf:heartbeat:mysql) on the Primary, rows written with the real SQL client through the VIP and
 * a file straight into the mount, then the serving node killed: it is fenced, the survivor
 * promotes its copy, fscks and mounts it, and serves the same page and every acknowledged row.
 * At no poll is the volume Primary on two nodes.
 */

function missingTools(): string | undefined {
  if (!hasNetnsSupport()) return 'needs root and ip netns';
  if (!existsSync('/dev/fuse')) return 'needs /dev/fuse (FUSE) for nbdfuse';
  for (const tool of ['nbdfuse', 'fusermount3', 'losetup', 'mkfs.ext4', 'nsenter'])
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `needs ${tool} (apt-get install libnbd-bin fuse3 util-linux e2fsprogs)`;
    }
  if (!existsSync('/usr/lib/ocf/resource.d/heartbeat/Filesystem'))
    return 'needs resource-agents (ocf:heartbeat:Filesystem)';
  const db = missingSeed003Tool();
  if (db) return `needs ${db} (apt-get install --no-install-recommends mariadb-server nginx)`;
  return undefined;
}

/** One HTTP GET of the VIP from the client namespace: status, who served it, body; null when it failed. */
function get(ns: string, path: string): Promise<{ status: number; by: string; body: string } | null> {
  const script = `require('node:http').get(process.argv[1],{timeout:2000},(res)=>{let b='';res.setEncoding('utf8');res.on('data',(d)=>{b+=d;});res.on('end',()=>{process.stdout.write(JSON.stringify({status:res.statusCode,by:res.headers['x-served-by']||'',body:b}));});}).on('timeout',function(){this.destroy();}).on('error',()=>process.exit(1));`;
  return new Promise((resolve) => {
    execFile(
      'ip',
      ['netns', 'exec', ns, process.execPath, '-e', script, `http://${LAB_VIP}${path}`],
      { timeout: 6_000, encoding: 'utf8' },
      (err, stdout) => {
        if (err) return resolve(null);
        try {
          resolve(JSON.parse(stdout) as { status: number; by: string; body: string });
        } catch {
          resolve(null);
        }
      },
    );
  });
}

/** Nodes whose volume engine says Primary (asked over its control socket); asserts never more than one. */
async function primaries(dir: string): Promise<string[]> {
  const state = readLabState(dir);
  const ask = labVolumeState(state);
  const p = await primariesNow(async (n) => (await ask(n))?.role, ['n1', 'n2']);
  assert.ok(p.length <= 1, `the volume is Primary on ${p.join(' and ')} at once`);
  return p;
}

/** Loop devices the volume agent attached (its records under the lab dir). */
function attachedLoops(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const f = join(dir, n, 'volume', 'r0.attach.json');
    if (existsSync(f)) out.push((JSON.parse(readFileSync(f, 'utf8')) as { loop: string }).loop);
  }
  return out;
}

/** mariadbd processes whose data directory is under `dir` (the lab's, on its mount). */
function labDatabases(dir: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.startsWith('/usr/sbin/mariadbd') && cmd.includes(`--datadir=${dir}/`)) out.push(Number(p));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

const skip = missingTools();
const ROWS = 60;

test('seed 003 in a two-node lab: nginx and MariaDB on the replicated volume survive a kill of their node with every acknowledged row and file', {
  skip: skip ?? false,
  timeout: 480_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-seed003-'));
  let namespaces: readonly string[] = [];
  let loops: string[] = [];
  try {
    const state = await labUp({ dir, nodes: 2, scenario: 'seed-003', profile: 'lab' });
    namespaces = state.namespaces;
    assert.match(state.scenarioLoad ?? '', /committed to the replicated CIB/);
    const ns = state.client.ns;
    const sql = seed003SqlTarget(ns);

    const first = await waitFor('nginx to answer at the VIP', 120_000, async () => {
      const r = await get(ns, '/');
      return r?.status === 200 && r.by ? r.by : undefined;
    });
    assert.match(
      (await get(ns, '/'))!.body,
      /this page lives on the replicated volume r0/,
      'the page is on the volume',
    );
    assert.deepEqual(await primaries(dir), [first], 'the volume is Primary where the service runs');
    assert.deepEqual(vipHolders(readLabState(dir)), [first]);
    await waitFor('MariaDB to answer SQL at the VIP', 120_000, async () =>
      (await runSql(sql, 'SELECT 1', 5_000)).ok ? true : undefined,
    );
    assert.equal(labDatabases(dir).length, 1, 'one MariaDB runs, on the Primary');

    // Replication is what keeps the data: the peer must be connected and UpToDate first.
    await waitFor('the volume to replicate to the peer', 60_000, async () => {
      const s = readLabState(dir);
      const [a, b] = await Promise.all(['n1', 'n2'].map((n) => labVolumeState(s)(n)));
      return a?.disk === 'UpToDate' && b?.disk === 'UpToDate' ? true : undefined;
    });
    // Rows through the VIP with the real client, each INSERT its own durable commit …
    const values = Array.from(
      { length: ROWS },
      (_, i) => `INSERT INTO ${SEED003_DB.table} VALUES (${i + 1}, 0, 'r${i + 1}');`,
    );
    const ins = await runSql(sql, values.join('\n'));
    assert.ok(ins.ok, `INSERTs: ${ins.err}`);
    // … and one file written straight into the web root on the Primary (its daemon's mount namespace).
    const direct = `written into the mount on ${first}: ${randomBytes(16).toString('hex')}\n`;
    const pid = readLabState(dir).nodes.find((n) => n.name === first)!.pid!;
    execFileSync(
      'nsenter',
      [
        '-t',
        String(pid),
        '-m',
        'sh',
        '-c',
        `printf '%s' "$1" > "$2" && sync "$2"`,
        'sh',
        direct,
        join(dir, 'data', 'www', 'html', 'direct.txt'),
      ],
      { timeout: 10_000 },
    );

    await labChaos(dir, { fault: 'kill', node: first });

    const second = await waitFor('nginx to answer from the survivor', 120_000, async () => {
      await primaries(dir);
      const r = await get(ns, '/');
      return r?.status === 200 && r.by && r.by !== first ? r.by : undefined;
    });
    loops = attachedLoops(dir);
    assert.deepEqual(await primaries(dir), [second], 'only the survivor is Primary');
    assert.equal(await labVolumeState(readLabState(dir))(first), undefined, 'the fenced node runs no engine');
    assert.match((await get(ns, '/'))!.body, /this page lives on the replicated volume r0/);
    assert.equal((await get(ns, '/direct.txt'))?.body, direct, 'the file written into the mount is intact');
    const count = await waitFor('MariaDB to answer SQL from the survivor', 120_000, async () => {
      await primaries(dir);
      const r = await runSql(sql, `SELECT COUNT(*), COALESCE(SUM(id), 0) FROM ${SEED003_DB.table}`, 5_000);
      return r.ok ? r.out.trim() : undefined;
    });
    assert.equal(
      count,
      `${ROWS}\t${(ROWS * (ROWS + 1)) / 2}`,
      'every acknowledged row is there after failover',
    );
    assert.equal(labDatabases(dir).length, 1, 'one MariaDB runs, on the survivor');
    // The agent's start returns a little after MariaDB answers (it polls every 2 s).
    await waitFor('the DC to report p_mysql started on the survivor', 60_000, async () =>
      new RegExp(`p_mysql\\s+\\(ocf:heartbeat:mysql\\):\\s+Started ${second}`).test(
        (await labStatus(dir)).resources?.text ?? '',
      )
        ? true
        : undefined,
    );
    const log = readFileSync(join(dir, second, 'daemon.log'), 'utf8');
    const fenced = log.search(new RegExp(`fenced ${first}: off of ${first} succeeded via fence-lab`));
    assert.ok(fenced >= 0, `${second} fenced ${first}`);
    // run_fsck=force: the Filesystem agent ran fsck before mounting; a failing fsck fails the start.
    assert.match(log.slice(fenced), /"p_fs start: rc 0 in \d+ ms"/, 'the survivor mounted after the fence');
    assert.match(
      log.slice(fenced),
      /"p_mysql start: rc 0 in \d+ ms"/,
      'the survivor started MariaDB after the fence',
    );
  } finally {
    // HALO_LAB_KEEP_LOGS=DIR keeps the daemons' logs for a look after a failure.
    const keep = process.env.HALO_LAB_KEEP_LOGS;
    if (keep)
      for (const n of ['n1', 'n2'])
        if (existsSync(join(dir, n, 'daemon.log')))
          cpSync(join(dir, n, 'daemon.log'), join(keep, `${n}-daemon.log`));
    if (existsSync(join(dir, 'lab.json'))) {
      // The killed node's nbdfuse still runs; `lab down` kills it, and its mount namespace's
      // teardown would then wait forever on its own FUSE file (see abortDeadNodeFuse).
      for (const n of readLabState(dir).nodes) if (!isLabDaemon(n)) abortDeadNodeFuse(n.ns, dir);
      await labDown(dir).catch(() => {});
    }
    rmSync(dir, { recursive: true, force: true });
  }
  for (const ns of namespaces) assert.ok(!existsSync(`/run/netns/${ns}`), `namespace ${ns} left behind`);
  assert.deepEqual(labDatabases(dir), [], 'no MariaDB left running');
  const left = JSON.parse(execFileSync('losetup', ['-l', '-J'], { encoding: 'utf8' }) || '{}') as {
    loopdevices?: { name: string; 'back-file'?: string }[];
  };
  for (const l of left.loopdevices ?? [])
    assert.ok(
      !(loops.includes(l.name) && l['back-file'] === '/disk') && !l['back-file']?.startsWith(dir),
      `loop device ${l.name} left attached`,
    );
});
