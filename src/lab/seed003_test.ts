import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  type LabState,
  labChaos,
  labDown,
  labStatus,
  labUp,
  labVolumeStatus,
  readLabState,
  vipHolders,
} from './lab.ts';
import { hasNetnsSupport } from './netns.ts';
import { LAB_VIP } from './scenarios.ts';

/**
 * Seed 003 end to end on real daemons: the replicated volume made and synced at `lab up`, the
 * group (ext4 on the volume, VIP, web server) on the Primary, data written through the service
 * and straight into the mount, then the serving node killed: it is fenced, the survivor promotes
 * its copy, fscks and mounts it, and serves the same content. At no poll is the volume Primary
 * on two nodes.
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
  return undefined;
}

interface Reply {
  readonly status: number;
  readonly body: string;
}

/** One HTTP request to the VIP from the client namespace; null when it failed. */
function request(ns: string, method: 'GET' | 'PUT', path: string, body = ''): Promise<Reply | null> {
  const script = `const r=require('node:http').request(process.argv[1],{method:process.argv[2],timeout:2000},(res)=>{let b='';res.setEncoding('utf8');res.on('data',(d)=>{b+=d;});res.on('end',()=>{process.stdout.write(JSON.stringify({status:res.statusCode,body:b}));});});r.on('timeout',()=>r.destroy());r.on('error',()=>process.exit(1));r.end(Buffer.from(process.argv[3],'base64'));`;
  return new Promise((resolve) => {
    execFile(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        '-e',
        script,
        `http://${LAB_VIP}${path}`,
        method,
        Buffer.from(body).toString('base64'),
      ],
      { timeout: 6_000, encoding: 'utf8' },
      (err, stdout) => {
        if (err) return resolve(null);
        try {
          resolve(JSON.parse(stdout) as Reply);
        } catch {
          resolve(null);
        }
      },
    );
  });
}

async function eventually<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`gave up waiting for ${what} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');
const servedBy = (r: Reply | null): string | undefined =>
  r?.status === 200 ? /served by (\S+)/.exec(r.body)?.[1] : undefined;

/** Nodes whose engine says Primary; asserts there is never more than one. */
function primaries(state: LabState): string[] {
  const p = state.nodes.filter((n) => labVolumeStatus(state, n.name)?.role === 'Primary').map((n) => n.name);
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

const skip = missingTools();

test('seed 003 in a two-node lab: the service on the replicated volume survives a kill of its node with every file written before it', {
  skip: skip ?? false,
  timeout: 420_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-seed003-'));
  let namespaces: readonly string[] = [];
  let loops: string[] = [];
  try {
    const state = await labUp({ dir, nodes: 2, scenario: 'seed-003', profile: 'lab' });
    namespaces = state.namespaces;
    assert.match(state.scenarioLoad ?? '', /committed to the replicated CIB/);
    const ns = state.client.ns;

    const first = await eventually('the service to answer at the VIP', 120_000, async () =>
      servedBy(await request(ns, 'GET', '/')),
    );
    const page = (await request(ns, 'GET', '/'))!.body;
    assert.match(page, /this page lives on the replicated volume r0/, 'the page comes from the volume');
    assert.deepEqual(primaries(state), [first], 'the volume is Primary where the service runs');
    assert.deepEqual(vipHolders(readLabState(dir)), [first]);

    // Replication is what keeps the data: the peer must be connected and UpToDate first (a
    // Secondary that was cut off while the Primary wrote would be promoted with stale data, as
    // DRBD without a fencing policy would).
    await eventually('the volume to replicate to the peer', 60_000, async () => {
      const st = labVolumeStatus(readLabState(dir), first);
      return st?.conn === 'Connected' && st.peerDisk === 'UpToDate' ? true : undefined;
    });
    // Files through the service (fsynced by the server) …
    const files = new Map<string, string>();
    for (let i = 0; i < 4; i++) {
      const name = `f${i}.txt`;
      const body = `${randomBytes(2048 * (i + 1)).toString('base64')}\n`;
      const r = await request(ns, 'PUT', `/files/${name}`, body);
      assert.equal(r?.status, 201, `PUT ${name}: ${r?.body}`);
      assert.equal(r.body.trim(), sha(body), `the server stored ${name} as sent`);
      files.set(name, body);
    }
    // … and one written straight into the mount on the Primary (its daemon's mount namespace).
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
        join(dir, 'data', 'files', 'direct.txt'),
      ],
      { timeout: 10_000 },
    );
    files.set('direct.txt', direct);

    await labChaos(dir, { fault: 'kill', node: first });

    const second = await eventually('the service to answer from the survivor', 120_000, async () => {
      primaries(readLabState(dir));
      const by = servedBy(await request(ns, 'GET', '/'));
      return by !== undefined && by !== first ? by : undefined;
    });
    loops = attachedLoops(dir);
    assert.deepEqual(primaries(readLabState(dir)), [second], 'only the survivor is Primary');
    assert.equal(labVolumeStatus(readLabState(dir), first), undefined, 'the fenced node runs no engine');
    assert.match((await request(ns, 'GET', '/'))!.body, /this page lives on the replicated volume r0/);
    for (const [name, body] of files) {
      const r = await request(ns, 'GET', `/files/${name}`);
      assert.equal(r?.status, 200, `GET ${name} after failover`);
      assert.equal(sha(r.body), sha(body), `${name} is intact after failover`);
    }
    const after = await labStatus(dir);
    assert.match(after.resources?.text ?? '', /p_fs\s+\(ocf:heartbeat:Filesystem\):\s+Started/);
    const log = readFileSync(join(dir, second, 'daemon.log'), 'utf8');
    const fenced = log.search(new RegExp(`fenced ${first}: off of ${first} succeeded via fence-lab`));
    assert.ok(fenced >= 0, `${second} fenced ${first}`);
    // run_fsck=force: the Filesystem agent ran fsck before mounting; a failing fsck fails the start.
    assert.match(log.slice(fenced), /"p_fs start: rc 0 in \d+ ms"/, 'the survivor mounted after the fence');
  } finally {
    // HALO_LAB_KEEP_LOGS=DIR keeps the daemons' logs for a look after a failure.
    const keep = process.env.HALO_LAB_KEEP_LOGS;
    if (keep)
      for (const n of ['n1', 'n2'])
        if (existsSync(join(dir, n, 'daemon.log')))
          cpSync(join(dir, n, 'daemon.log'), join(keep, `${n}-daemon.log`));
    if (existsSync(join(dir, 'lab.json'))) await labDown(dir).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
  for (const ns of namespaces) assert.ok(!existsSync(`/run/netns/${ns}`), `namespace ${ns} left behind`);
  const left = JSON.parse(execFileSync('losetup', ['-l', '-J'], { encoding: 'utf8' }) || '{}') as {
    loopdevices?: { name: string; 'back-file'?: string }[];
  };
  for (const l of left.loopdevices ?? [])
    assert.ok(
      !(loops.includes(l.name) && l['back-file'] === '/disk') && !l['back-file']?.startsWith(dir),
      `loop device ${l.name} left attached`,
    );
});
