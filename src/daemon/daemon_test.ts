import assert from 'node:assert/strict';
import { createHash, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { EventEmitter, getEventListeners } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { toCibCommands } from '../admin/cib_commands.ts';
import { applyEdit } from '../admin/edits.ts';
import { parseCrm } from '../cib/crm.ts';
import { type Cib, emptyCib } from '../cib/model.ts';
import { registerAdminCommands } from '../cli/admin_cmd.ts';
import { registerClusterCommands } from '../cli/cluster_cmd.ts';
import { captureStderr, runCli } from '../cli/testing.ts';
import { type Logger, nullLogger } from '../lib/ports.ts';
import type { Fencer } from '../membership/fencer.ts';
import { encodeHeartbeat } from '../membership/heartbeat_codec.ts';
import { generateKeyFile, loadKeyFile } from '../transport/key_file.ts';
import { Channel, clusterIdFromDigest, PacketSealer } from '../transport/packet.ts';
import { type DaemonConfig, parseConfig } from './config.ts';
import { queryControl } from './control.ts';
import {
  type ConsensusContext,
  type ConsensusPart,
  Daemon,
  type DaemonStatus,
  offlineRemovalRefusal,
  parseMemberRemove,
  pauseUnlessAborted,
  type ShutdownOutcome,
  shutdownOnSignals,
} from './daemon.ts';
import { waitFor } from './lab_cluster.ts';
import { raftConsensus } from './raft_driver.ts';

/** Daemons on loopback addresses 127.0.0.N (no namespaces needed), lab timing. */
function setup(
  names: string[],
  opts: { witness?: string; twoNode?: boolean } = {},
): { dir: string; cfg: DaemonConfig } {
  const dir = mkdtempSync(join(tmpdir(), 'halo-daemon-'));
  generateKeyFile(join(dir, 'authkey'));
  const port = 20_000 + randomInt(20_000);
  const doc = {
    cluster: 'unit',
    keyFile: join(dir, 'authkey'),
    profile: 'lab',
    stateDir: join(dir, 'state'),
    controlSocket: join(dir, '{node}.sock'),
    quorum: { twoNode: opts.twoNode ?? false },
    nodes: names.map((name, i) => ({
      id: i + 1,
      name,
      links: [`127.0.0.${i + 1}:${port}`],
      ...(name === opts.witness ? { witness: true } : {}),
    })),
  };
  // Written too, for the CLI (`halo cluster leave --config`).
  writeFileSync(join(dir, 'halo.json'), JSON.stringify(doc));
  return { dir, cfg: parseConfig(JSON.stringify(doc), join(dir, 'halo.json')) };
}

async function startAll(
  cfg: DaemonConfig,
  names: string[],
  fencer?: Fencer,
  witness?: string,
): Promise<Map<string, Daemon>> {
  const ds = new Map<string, Daemon>();
  for (const n of names) {
    const d = new Daemon({
      config: cfg,
      node: n,
      witness: n === witness,
      logger: nullLogger,
      ...(fencer ? { fencer } : {}),
    });
    await d.start();
    ds.set(n, d);
  }
  return ds;
}

function state(st: DaemonStatus, name: string): string | undefined {
  return st.members.find((m) => m.name === name)?.state;
}

test('daemons on loopback see each other, answer status on the control socket and carry streams by purpose', {
  timeout: 60_000,
}, async () => {
  const names = ['a', 'b', 'c'];
  const { dir, cfg } = setup(names);
  const ds = await startAll(cfg, names);
  try {
    await waitFor('all members', 20_000, async () =>
      names.every((n) => names.every((m) => m === n || state(ds.get(n)!.status(), m) === 'member'))
        ? true
        : undefined,
    );
    const st = (await queryControl(join(dir, 'a.sock'), 'status')) as DaemonStatus;
    assert.equal(st.quorum.quorate, true);
    assert.deepEqual(
      st.members.map((m) => m.state),
      ['self', 'member', 'member'],
    );
    assert.equal(st.members[1]!.links[0]!.state, 'up');
    assert.deepEqual(await queryControl(join(dir, 'a.sock'), 'frobnicate'), {
      error:
        "unknown command 'frobnicate' (known: status, crm_mon, cib, cib JSON, member-add JSON, member-remove NAME)",
    });
    assert.deepEqual(await queryControl(join(dir, 'a.sock'), 'cib {"op":"set-property"}'), {
      error: 'consensus is not running on this node',
    });

    const got = new Promise<string>((resolve) =>
      ds
        .get('b')!
        .onStreamPurpose('echo', (ch) =>
          ch.on('message', (m) => void ch.send(Buffer.from(`echo ${m}`)).then(() => resolve(String(m)))),
        ),
    );
    const ch = await ds.get('a')!.openStream('b', 'echo');
    const reply = new Promise<string>((resolve) => ch.once('message', (m) => resolve(String(m))));
    await ch.send(Buffer.from('hi'));
    assert.equal(await got, 'hi');
    assert.equal(await reply, 'echo hi');
    ch.close();

    // c stops: a and b mark it lost and keep quorum (2 of 3).
    ds.get('c')!.stop();
    ds.delete('c');
    await waitFor('c lost', 20_000, async () =>
      state(ds.get('a')!.status(), 'c') === 'lost' ? true : undefined,
    );
    assert.equal(ds.get('a')!.status().quorum.quorate, true);
  } finally {
    for (const d of ds.values()) d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two-node rule on real daemons: the survivor stays without quorum until the fencer confirms the peer is off', {
  timeout: 60_000,
}, async () => {
  const names = ['a', 'b'];
  const { dir, cfg } = setup(names, { twoNode: true });
  const requests: number[] = [];
  let confirm!: (ok: boolean) => void;
  const fencer: Fencer = {
    fence(node) {
      requests.push(node);
      return new Promise((resolve) => {
        confirm = resolve;
      });
    },
  };
  const ds = await startAll(cfg, names, fencer);
  try {
    await waitFor('both quorate', 20_000, async () =>
      ds.get('a')!.status().quorum.quorate ? true : undefined,
    );
    ds.get('b')!.stop();
    ds.delete('b');
    await waitFor('a asks to fence b', 20_000, async () => (requests.length > 0 ? true : undefined));
    const before = ds.get('a')!.status().quorum;
    assert.equal(before.quorate, false);
    assert.deepEqual(before.fenceNeeded, [2]);
    confirm(true);
    await waitFor('a continues alone after b is fenced', 20_000, async () =>
      ds.get('a')!.status().quorum.quorate ? true : undefined,
    );
    assert.deepEqual(requests, [2]);
  } finally {
    for (const d of ds.values()) d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with a witness, the survivor of a two-node pair keeps quorum without fencing', {
  timeout: 60_000,
}, async () => {
  const names = ['a', 'b', 'w'];
  const { dir, cfg } = setup(names, { witness: 'w' });
  const ds = await startAll(cfg, names, undefined, 'w');
  try {
    await waitFor('all members', 20_000, async () =>
      state(ds.get('a')!.status(), 'w') === 'member' && state(ds.get('a')!.status(), 'b') === 'member'
        ? true
        : undefined,
    );
    ds.get('b')!.stop();
    ds.delete('b');
    await waitFor('a marks b lost', 20_000, async () =>
      state(ds.get('a')!.status(), 'b') === 'lost' ? true : undefined,
    );
    const q = ds.get('a')!.status().quorum;
    assert.equal(q.quorate, true, q.reason);
    assert.equal(q.votes, 2);
  } finally {
    for (const d of ds.values()) d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a daemon refuses to start with a key file others can read, or as a witness it is not configured as', async () => {
  const { dir, cfg } = setup(['a', 'b']);
  try {
    chmodSync(cfg.keyFile, 0o644);
    await assert.rejects(new Daemon({ config: cfg, node: 'a', witness: false, logger: nullLogger }).start(), {
      code: 'key-file-permissions',
    });
    assert.throws(() => new Daemon({ config: cfg, node: 'a', witness: true, logger: nullLogger }), {
      code: 'not-a-witness',
    });
    assert.throws(() => new Daemon({ config: cfg, node: 'zz', witness: false, logger: nullLogger }), {
      code: 'unknown-node',
    });
    // A second daemon for the same node cannot bind its addresses; it says so and leaves nothing open.
    chmodSync(cfg.keyFile, 0o600);
    const first = new Daemon({ config: cfg, node: 'a', witness: false, logger: nullLogger });
    await first.start();
    try {
      await assert.rejects(
        new Daemon({ config: cfg, node: 'a', witness: false, logger: nullLogger }).start(),
        {
          code: 'bind-failed',
        },
      );
    } finally {
      first.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('consensus messages too big for a datagram travel over the stream channel to the right peer', {
  timeout: 60_000,
}, async () => {
  const names = ['a', 'b'];
  const { dir, cfg } = setup(names);
  const contexts = new Map<string, ConsensusContext>();
  const received = new Map<string, Array<{ from: number; bytes: number }>>();
  const fake = (ctx: ConsensusContext): ConsensusPart => {
    contexts.set(ctx.self.name, ctx);
    received.set(ctx.self.name, []);
    return {
      tick() {},
      receive: (from, payload) => received.get(ctx.self.name)!.push({ from, bytes: payload.length }),
      status: () => ({ role: 'follower', term: 0, leader: null, commit: 0, applied: 0 }),
      stop() {},
    };
  };
  const ds = new Map<string, Daemon>();
  try {
    for (const n of names) {
      const d = new Daemon({ config: cfg, node: n, witness: false, logger: nullLogger, consensus: fake });
      await d.start();
      ds.set(n, d);
    }
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    contexts.get('a')!.sendLarge(2, big);
    contexts.get('a')!.sendLarge(2, Buffer.from('small after big'));
    await waitFor('b to receive both', 20_000, async () =>
      received.get('b')!.length === 2 ? true : undefined,
    );
    assert.deepEqual(received.get('b'), [
      { from: 1, bytes: big.length },
      { from: 1, bytes: 15 },
    ]);
  } finally {
    for (const d of ds.values()) d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('authentic heartbeats that do not echo the receiver’s current boot (replayed traffic) do not make a node alive', {
  timeout: 60_000,
}, async () => {
  const { dir, cfg } = setup(['a', 'b']);
  const a = new Daemon({ config: cfg, node: 'a', witness: false, logger: nullLogger });
  const sock = createSocket('udp4');
  let timer: NodeJS.Timeout | undefined;
  try {
    await a.start();
    // Play node b with the real key, as recorded traffic from before a restarted would be.
    const b = cfg.nodes[1]!;
    await new Promise<void>((resolve) => sock.bind(b.links[0]!.port, b.links[0]!.host, resolve));
    const clusterId = clusterIdFromDigest(createHash('sha256').update(cfg.cluster).digest());
    const sealer = new PacketSealer(loadKeyFile(cfg.keyFile), clusterId, b.id, 100);
    const target = cfg.nodes[0]!.links[0]!;
    let echo = a.status().epoch - 1;
    let beat = 0;
    timer = setInterval(() => {
      const hb = encodeHeartbeat({ beat: beat++, wallMs: Date.now(), echo });
      sock.send(sealer.seal(Channel.heartbeat, 1, hb), target.port, target.host);
    }, 50);
    await waitFor('a to count stale heartbeats', 20_000, async () =>
      a.status().packets.unconfirmed >= 10 ? true : undefined,
    );
    assert.notEqual(state(a.status(), 'b'), 'member');
    // The same peer echoing a's current epoch is alive.
    echo = a.status().epoch;
    await waitFor('b to become a member', 20_000, async () =>
      state(a.status(), 'b') === 'member' ? true : undefined,
    );
  } finally {
    clearInterval(timer);
    sock.close();
    a.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a fenced peer does not rejoin on heartbeats its fenced boot sent, only once it has restarted', {
  timeout: 60_000,
}, async () => {
  const { dir, cfg } = setup(['a', 'b'], { twoNode: true });
  const fenced: number[] = [];
  const fencer: Fencer = {
    fence: async (node) => {
      fenced.push(node);
      return true;
    },
  };
  const lines: string[] = [];
  const a = new Daemon({
    config: cfg,
    node: 'a',
    witness: false,
    logger: capturingLogger(lines, 'a'),
    fencer,
  });
  const sock = createSocket('udp4');
  let timer: NodeJS.Timeout | undefined;
  try {
    await a.start();
    // Play node b with the real key: boot epoch 100, heartbeats every 50 ms.
    const b = cfg.nodes[1]!;
    await new Promise<void>((resolve) => sock.bind(b.links[0]!.port, b.links[0]!.host, resolve));
    const clusterId = clusterIdFromDigest(createHash('sha256').update(cfg.cluster).digest());
    const key = loadKeyFile(cfg.keyFile);
    let sealer = new PacketSealer(key, clusterId, b.id, 100);
    const target = cfg.nodes[0]!.links[0]!;
    let beat = 0;
    const send = (): void => {
      const hb = encodeHeartbeat({ beat: beat++, wallMs: Date.now(), echo: a.status().epoch });
      sock.send(sealer.seal(Channel.heartbeat, 1, hb), target.port, target.host);
    };
    timer = setInterval(send, 50);
    await waitFor('b to join', 20_000, async () => (state(a.status(), 'b') === 'member' ? true : undefined));
    // b dies: silence until a declares it lost, fences it and continues alone.
    clearInterval(timer);
    await waitFor('a continues alone after fencing b', 20_000, async () =>
      a.status().quorum.quorate && state(a.status(), 'b') === 'lost' ? true : undefined,
    );
    assert.deepEqual(fenced, [2]);
    // Heartbeats of b's fenced boot (epoch 100) surface late, with beat numbers a has not seen:
    // the failure detector alone would take them as proof of life.
    timer = setInterval(send, 20);
    await waitFor('a to drop them', 20_000, async () =>
      (a.status().packets.staleAfterFence ?? 0) >= 10 ? true : undefined,
    );
    assert.equal(state(a.status(), 'b'), 'lost');
    assert.equal(a.status().quorum.quorate, true, 'a still counts b as fenced');
    assert.ok(
      !lines.some((l) => /node b rejoined/.test(l)),
      'no "rejoined" on the fenced boot\'s heartbeats',
    );
    assert.ok(
      lines.some((l) => /ignoring heartbeats of b from boot epoch 100: it was fenced at epoch 100/.test(l)),
    );
    // b restarts (a newer boot epoch): that is proof of life, and it rejoins.
    clearInterval(timer);
    sealer = new PacketSealer(key, clusterId, b.id, 101);
    beat = 0;
    timer = setInterval(send, 50);
    await waitFor('b to rejoin after its restart', 20_000, async () =>
      state(a.status(), 'b') === 'member' ? true : undefined,
    );
    assert.ok(lines.some((l) => /node b rejoined/.test(l)));
    assert.deepEqual(fenced, [2]);
  } finally {
    clearInterval(timer);
    sock.close();
    a.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Collects every log line (with its fields) of the daemons it is given to. */
function capturingLogger(lines: string[], node = ''): Logger {
  return {
    log: (level, msg) => {
      if (level !== 'debug') lines.push(`${node} ${level} ${msg}`);
    },
    child: (f) => capturingLogger(lines, typeof f.node === 'string' ? f.node : node),
  };
}

const SHUTDOWN_CRM = `node 1: a
node 2: b
node 3: c
primitive d ocf:heartbeat:Dummy op monitor interval=2s
rsc_defaults resource-stickiness=100
property stonith-enabled=false
`;

test('a daemon asked to shut down moves its resource to another node first, leaves without being fenced, and on restart is probed with nothing running twice', {
  skip: !existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy') && 'needs resource-agents',
  timeout: 120_000,
}, async (t) => {
  const names = ['a', 'b', 'c'];
  const { dir, cfg } = setup(names);
  const lines: string[] = [];
  const ds = new Map<string, Daemon>();
  const boot = async (n: string): Promise<void> => {
    const d = new Daemon({
      config: cfg,
      node: n,
      witness: false,
      logger: capturingLogger(lines),
      consensus: raftConsensus,
    });
    await d.start();
    ds.set(n, d);
  };
  const runs = (n: string): boolean => existsSync(join(cfg.stateDir, n, 'rsctmp', 'Dummy-d.state'));
  const runningOn = (): string[] => names.filter(runs);
  try {
    for (const n of names) await boot(n);
    const dc = await waitFor('a DC', 30_000, async () => ds.get('a')!.status().dc ?? undefined);
    const parsed = parseCrm(SHUTDOWN_CRM, 'shutdown.crm');
    assert.ok(parsed.ok);
    const load = (await queryControl(
      join(dir, `${dc}.sock`),
      `cib ${JSON.stringify({ op: 'replace-configuration', configuration: parsed.cib.configuration })}`,
      10_000,
    )) as { ok?: boolean };
    assert.equal(load.ok, true, JSON.stringify(load));
    const first = await waitFor('d to run on one node', 45_000, async () =>
      runningOn().length === 1 ? runningOn()[0] : undefined,
    );

    const out = await ds.get(first)!.shutdown({ timeoutMs: 45_000 });
    ds.delete(first);
    assert.equal(out.clean, true, out.reason);
    t.diagnostic(`${first} (DC: ${dc}) left cleanly after ${out.waitedMs} ms`);
    // The DC starts it elsewhere (already done if the node that left was the DC).
    const moved = await waitFor('d to run on another node', 30_000, async () => {
      const on = runningOn();
      return on.length === 1 && on[0] !== first ? on : undefined;
    });
    await waitFor('the DC to see it leave', 20_000, async () =>
      lines.some((l) => l.includes(`${first} left the cluster cleanly`)) ? true : undefined,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${lines.slice(-60).join('\n')}`);
    });

    await boot(first);
    await waitFor(`${first} probed again`, 30_000, async () =>
      lines.some((l) => l.includes(`${first} joined the cluster`)) &&
      ds
        .get(first)!
        .status()
        .members.every((m) => m.state === 'self' || m.state === 'member')
        ? true
        : undefined,
    );
    await new Promise((r) => setTimeout(r, 3_000));
    assert.deepEqual(runningOn(), moved, 'still once, where it moved to');

    // The DC leaves cleanly too: the next DC takes over its records and fences nobody.
    const dcNow = await waitFor('a DC', 30_000, async () => ds.get(first)!.status().dc ?? undefined);
    const out2 = await ds.get(dcNow)!.shutdown({ timeoutMs: 45_000 });
    ds.delete(dcNow);
    assert.equal(out2.clean, true, out2.reason);
    t.diagnostic(`the DC ${dcNow} left cleanly after ${out2.waitedMs} ms`);
    const last = await waitFor('d to run once on a node still up', 30_000, async () => {
      const on = runningOn();
      return on.length === 1 && ds.has(on[0]!) ? on : undefined;
    });
    await waitFor('the next DC to see the old one leave cleanly', 20_000, async () =>
      lines.filter((l) => l.includes(`${dcNow} left the cluster cleanly`)).length > 0 ? true : undefined,
    ).catch(async (e: Error) => {
      const views: string[] = [];
      for (const n of ds.keys()) {
        const v = (await queryControl(join(dir, `${n}.sock`), 'cib')) as {
          source: string;
          cib: { status: { uname: string }[] };
        };
        views.push(`${n} (${v.source}): ${JSON.stringify(v.cib.status.find((x) => x.uname === dcNow))}`);
      }
      throw new Error(
        `${e.message}\n${views.join('\n')}\n${lines
          .filter((l) => l.includes(dcNow) && !l.includes(' debug '))
          .slice(-25)
          .join('\n')}`,
      );
    });
    assert.equal(last.length, 1);
    assert.ok(!lines.some((l) => /\bfenc/i.test(l) && !l.includes('stonith')), 'nobody fenced anyone');
    assert.ok(!lines.some((l) => l.includes('SHUTDOWN NOT CLEAN')));
  } finally {
    for (const d of ds.values()) d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shutdown waits no longer than its timeout, and says loudly what it left running', {
  skip: !existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy') && 'needs resource-agents',
  timeout: 120_000,
}, async () => {
  const names = ['a', 'b', 'c'];
  const { dir, cfg } = setup(names);
  const lines: string[] = [];
  const ds = new Map<string, Daemon>();
  try {
    await startRaftDaemons(ds, names, cfg, capturingLogger(lines));
    const dc = await waitFor('a DC', 30_000, async () => ds.get('a')!.status().dc ?? undefined);
    const parsed = parseCrm(SHUTDOWN_CRM, 'shutdown.crm');
    assert.ok(parsed.ok);
    await queryControl(
      join(dir, `${dc}.sock`),
      `cib ${JSON.stringify({ op: 'replace-configuration', configuration: parsed.cib.configuration })}`,
      10_000,
    );
    const first = await waitFor('d to run', 45_000, async () =>
      names.find((n) => existsSync(join(cfg.stateDir, n, 'rsctmp', 'Dummy-d.state'))),
    );
    await waitFor('the start recorded', 20_000, async () =>
      ds.get(first)!.status().consensus !== null && lines.some((l) => l.includes('d start: rc 0'))
        ? true
        : undefined,
    );
    const out = await ds.get(first)!.shutdown({ timeoutMs: 0 });
    ds.delete(first);
    assert.equal(out.clean, false);
    assert.match(out.reason, /shutdown timeout of 0 ms reached/);
    assert.ok(lines.some((l) => l.includes('SHUTDOWN NOT CLEAN') && l.includes('still running here: d')));
  } finally {
    for (const d of ds.values()) d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the first SIGTERM starts a clean shutdown and a second one cuts its wait short', async () => {
  const proc = new EventEmitter();
  const got: { signal?: AbortSignal } = {};
  let finish: (o: ShutdownOutcome) => void = () => {};
  const daemon = {
    shutdown: (o: { signal?: AbortSignal } = {}) => {
      got.signal = o.signal;
      return new Promise<ShutdownOutcome>((resolve) => {
        finish = resolve;
      });
    },
  };
  const done = shutdownOnSignals(daemon, proc as unknown as NodeJS.Process);
  await new Promise((r) => setImmediate(r));
  assert.equal(got.signal?.aborted, undefined, 'nothing happens before a signal');
  proc.emit('SIGTERM');
  await new Promise((r) => setImmediate(r));
  assert.ok(got.signal, 'shutdown started');
  assert.equal(got.signal.aborted, false);
  proc.emit('SIGTERM');
  assert.equal(got.signal.aborted, true, 'the second SIGTERM forces it');
  finish({ clean: false, reason: 'asked again to stop', waitedMs: 5 });
  assert.equal((await done).clean, false);
  assert.equal(proc.listenerCount('SIGTERM'), 0, 'handlers removed');
});

/**
 * Consensus that names `self` leader and keeps `cib` as its replicated CIB; every proposal is
 * refused, so nothing the controller asks for is ever recorded.
 */
function fixedCibConsensus(cib: Cib): (ctx: ConsensusContext) => ConsensusPart {
  return (ctx) => ({
    tick: () => {},
    receive: () => {},
    stop: () => {},
    status: () => ({
      role: 'leader',
      term: 1,
      leader: ctx.self.name,
      commit: 0,
      applied: 0,
      leaseValid: true,
    }),
    cib: () => cib,
    propose: async () => ({ ok: false, code: 'test', message: 'this test records nothing', leader: null }),
  });
}

/** One daemon `a` alone in its cluster (so quorate), over `consensus`. */
async function soloDaemon(
  consensus: (ctx: ConsensusContext) => ConsensusPart,
  lines: string[],
): Promise<{ dir: string; d: Daemon }> {
  const { dir, cfg } = setup(['a']);
  const d = new Daemon({ config: cfg, node: 'a', witness: false, logger: capturingLogger(lines), consensus });
  await d.start();
  await waitFor('a quorate DC', 10_000, async () => {
    const st = d.status();
    return st.dc === 'a' && st.quorum?.quorate ? true : undefined;
  });
  return { dir, d };
}

test('a daemon whose CIB does not list it yet (an empty cluster) shuts down at once instead of asking a DC that cannot record it', {
  timeout: 60_000,
}, async () => {
  const lines: string[] = [];
  const { dir, d } = await soloDaemon(fixedCibConsensus(emptyCib()), lines);
  try {
    // Generous: without the fix the wait ends only at this timeout, unclean.
    const out = await d.shutdown({ timeoutMs: 20_000 });
    assert.equal(out.clean, true, out.reason);
    assert.match(out.reason, /a is not among the CIB's nodes and runs nothing/);
    assert.ok(!lines.some((l) => l.includes('ignoring attribute shutdown')), lines.join('\n'));
  } finally {
    d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a node the CIB lists still waits for its shutdown request to be recorded, and the wait leaves no abort listeners behind', {
  timeout: 60_000,
}, async () => {
  const parsed = parseCrm('node 1: a\n', 'a.crm');
  assert.ok(parsed.ok);
  const lines: string[] = [];
  const { dir, d } = await soloDaemon(
    fixedCibConsensus({ ...emptyCib(), configuration: parsed.cib.configuration }),
    lines,
  );
  const warnings: string[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(`${w.name}: ${w.message}`);
  };
  process.on('warning', onWarning);
  try {
    const force = new AbortController();
    // Two seconds of polling every 100 ms on one signal: a listener per poll would be 20.
    const out = await d.shutdown({ timeoutMs: 2_000, signal: force.signal });
    assert.equal(out.clean, false);
    assert.match(
      out.reason,
      /shutdown timeout of 2000 ms reached while waiting for the DC to record the shutdown request/,
    );
    assert.equal(getEventListeners(force.signal, 'abort').length, 0, 'no listener left on the signal');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      warnings.filter((w) => w.includes('MaxListenersExceeded')),
      [],
    );
  } finally {
    process.off('warning', onWarning);
    d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a pause ends at its time or at the abort, whichever comes first, and removes its listener either way', async () => {
  const ac = new AbortController();
  for (let i = 0; i < 20; i++) await pauseUnlessAborted(1, ac.signal);
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  const long = pauseUnlessAborted(60_000, ac.signal);
  assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
  ac.abort();
  await long;
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  await pauseUnlessAborted(60_000, ac.signal); // already aborted: returns at once
});

test('two configuration edits computed from the same CIB: the one that commits second is refused as a conflict on every replica, also when sent through a follower', {
  timeout: 60_000,
}, async () => {
  const names = ['a', 'b', 'c'];
  const { dir, cfg } = setup(names);
  const ds = new Map<string, Daemon>();
  const sock = (n: string): string => join(dir, `${n}.sock`);
  const epochOf = (n: string): number | undefined => ds.get(n)!.status().consensus?.cib?.epoch;
  try {
    await startRaftDaemons(ds, names, cfg, nullLogger, { controller: false });
    const dc = await waitFor(
      'a leader',
      30_000,
      async () => ds.get('a')!.status().consensus?.leader ?? undefined,
    );
    const follower = names.find((n) => n !== dc)!;
    await waitFor('every replica at one epoch', 10_000, async () =>
      names.every((n) => epochOf(n) === 1) ? true : undefined,
    );
    // Two administrators read the CIB, one from the DC and one from a follower, and each
    // computes an edit from it (compare-and-set, as the CLI does).
    const edit = async (n: string, table: 'rsc_defaults' | 'op_defaults', name: string): Promise<string> => {
      const read = ((await queryControl(sock(n), 'cib')) as { cib: Cib }).cib;
      const r = applyEdit(read, { op: 'set-options', table, pairs: [{ name, value: '60s' }] }, Date.now());
      assert.ok(r.ok);
      const [c, ...rest] = toCibCommands(read, r.cib, { compareAndSet: true }).commands;
      assert.deepEqual(rest, []);
      assert.ok(c?.op === 'replace-configuration');
      assert.deepEqual(c.expectedVersion, { adminEpoch: 0, epoch: 1 });
      return `cib ${JSON.stringify(c)}`;
    };
    const mine = await edit(dc, 'rsc_defaults', 'failure-timeout');
    const theirs = await edit(follower, 'op_defaults', 'timeout');
    type Reply = { ok?: boolean; applied?: boolean; code?: string; message?: string };
    const replies = (await Promise.all([
      queryControl(sock(dc), mine, 10_000),
      queryControl(sock(follower), theirs, 10_000),
    ])) as Reply[];
    const conflict = {
      ok: true,
      applied: false,
      code: 'conflict',
      message: 'the configuration changed since it was read (epoch 1, now 2): nothing was changed',
    };
    const strip = (r: Reply) => ({ ok: r.ok, applied: r.applied, code: r.code, message: r.message });
    const won = replies.findIndex((r) => r.applied === true);
    assert.notEqual(won, -1, JSON.stringify(replies));
    assert.deepEqual(strip(replies[1 - won]!), conflict, 'exactly one edit commits');
    // A stale edit sent again through the follower: the leader's refusal is relayed whole.
    assert.deepEqual(
      strip((await queryControl(sock(follower), won === 0 ? theirs : mine, 10_000)) as Reply),
      conflict,
    );
    // Every replica holds the winner's change and not the other, at epoch 2.
    const defaults = (c: Cib) => [c.configuration.rscDefaults.length, c.configuration.opDefaults.length];
    await waitFor('every replica to apply the winner', 10_000, async () =>
      names.every((n) => epochOf(n) === 2) ? true : undefined,
    );
    for (const n of names) {
      const cib = ((await queryControl(sock(n), 'cib')) as { cib: Cib }).cib;
      assert.deepEqual(defaults(cib), won === 0 ? [1, 0] : [0, 1], n);
    }
  } finally {
    for (const d of ds.values()) d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a configuration loaded without nodes gets a node entry for every member but the witness, and its resource runs on a member', {
  skip: !existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy') && 'needs resource-agents',
  timeout: 60_000,
}, async () => {
  const names = ['a', 'b', 'w'];
  const { dir, cfg } = setup(names, { witness: 'w' });
  const lines: string[] = [];
  const ds = new Map<string, Daemon>();
  const sock = (n: string): string => join(dir, `${n}.sock`);
  try {
    await startRaftDaemons(ds, names, cfg, capturingLogger(lines), { witness: (n) => n === 'w' });
    const dc = await waitFor('a DC', 30_000, async () => ds.get('a')!.status().dc ?? undefined);
    // A crm snippet as tutorials write them: resources, no nodes.
    const parsed = parseCrm(
      'primitive d ocf:heartbeat:Dummy op monitor interval=2s\nproperty stonith-enabled=false\n',
      'no-nodes.crm',
    );
    assert.ok(parsed.ok);
    const load = (await queryControl(
      sock(dc),
      `cib ${JSON.stringify({ op: 'replace-configuration', configuration: parsed.cib.configuration })}`,
      10_000,
    )) as { ok?: boolean };
    assert.equal(load.ok, true, JSON.stringify(load));
    const runs = (n: string): boolean => existsSync(join(cfg.stateDir, n, 'rsctmp', 'Dummy-d.state'));
    const on = await waitFor('d to run on a member', 30_000, async () => {
      const where = names.filter(runs);
      return where.length === 1 ? where[0] : undefined;
    }).catch((e: Error) => {
      throw new Error(`${e.message}\n${lines.slice(-40).join('\n')}`);
    });
    assert.notEqual(on, 'w', 'nothing runs on the witness');
    for (const n of ['a', 'b']) {
      const { cib } = (await queryControl(sock(n), 'cib')) as { cib: Cib };
      assert.deepEqual(
        cib.configuration.nodes.map((x) => `${x.id}:${x.uname}`),
        ['1:a', '2:b'],
        `${n}: the members have entries with their ids, the witness none`,
      );
    }
    const mon = (await queryControl(sock(dc), 'crm_mon')) as { text: string };
    assert.match(mon.text, /2 nodes configured/);
    assert.match(mon.text, /Online: \[ a b \]/);
  } finally {
    for (const d of ds.values()) d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

const LEAVE_CRM = (target: string, managed = true): string => `node 1: a
node 2: b
node 3: c
primitive d ocf:heartbeat:Dummy op monitor interval=2s meta is-managed=${managed}
location d-likes-${target} d 100: ${target}
rsc_defaults resource-stickiness=100
`;

async function haloCli(args: string[]): Promise<{ code: number; out: string }> {
  const program = new Command('halo').exitOverride();
  registerClusterCommands(program);
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  process.exitCode = undefined;
  try {
    await program.parseAsync(['node', 'halo', ...args]);
  } finally {
    process.stdout.write = write;
  }
  const code = typeof process.exitCode === 'number' ? process.exitCode : 0;
  process.exitCode = undefined;
  return { code, out };
}

/**
 * Three daemons; d runs on the node that leaves (`leaving`: a follower, asked through the other
 * follower, or the DC, asked on its own socket for "this host's node"). Checks that the leave
 * returns only once d runs elsewhere, that nobody fences the removed node, and that every replica
 * drops its node entry (and a hand-made deletion of it was refused before).
 */
async function leaveScenario(t: { diagnostic(m: string): void }, leaving: 'follower' | 'dc'): Promise<void> {
  const names = ['a', 'b', 'c'];
  const { dir, cfg } = setup(names);
  const lines: string[] = [];
  const ds = new Map<string, Daemon>();
  const sock = (n: string): string => join(dir, `${n}.sock`);
  const runs = (n: string): boolean => existsSync(join(cfg.stateDir, n, 'rsctmp', 'Dummy-d.state'));
  try {
    for (const n of names) {
      const d: Daemon = new Daemon({
        config: cfg,
        node: n,
        witness: false,
        logger: capturingLogger(lines),
        consensus: raftConsensus,
        // As `halo daemon` does: a removed node stops.
        onRemoved: () => setTimeout(() => d.stop(), 100),
      });
      await d.start();
      ds.set(n, d);
    }
    const dc = await waitFor('a DC', 30_000, async () => ds.get('a')!.status().dc ?? undefined);
    const followers = names.filter((n) => n !== dc) as [string, string];
    const [target, asker] = leaving === 'dc' ? [dc, dc] : followers;
    const parsed = parseCrm(LEAVE_CRM(target), 'leave.crm');
    assert.ok(parsed.ok);
    const load = (await queryControl(
      sock(dc),
      `cib ${JSON.stringify({ op: 'replace-configuration', configuration: parsed.cib.configuration })}`,
      10_000,
    )) as { ok?: boolean };
    assert.equal(load.ok, true, JSON.stringify(load));
    await waitFor(`d to run on ${target}`, 45_000, async () =>
      names.filter(runs).join() === target ? true : undefined,
    );

    // Deleting a member's node entry by hand is refused: it leaves with cluster leave.
    const { cib: current } = (await queryControl(sock(asker), 'cib')) as { cib: Cib };
    const without = {
      ...current.configuration,
      nodes: current.configuration.nodes.filter((n) => n.uname !== target),
    };
    const refused = (await queryControl(
      sock(asker),
      `cib ${JSON.stringify({ op: 'replace-configuration', configuration: without })}`,
      10_000,
    )) as { ok?: boolean; code?: string; message?: string };
    assert.deepEqual(refused, {
      ok: false,
      code: 'member-node',
      message: `node ${target} is a member of the running cluster; remove it with halo cluster leave ${target}`,
      leader: null,
    });
    // The same through the CLI: a refusal of the cluster's, exit 1.
    const del = await runCli(registerAdminCommands, ['configure', 'delete', target, '--socket', sock(asker)]);
    assert.equal(del.code, 1, del.err);
    assert.match(del.err, new RegExp(`node ${target} is a member of the running cluster`));

    // A follower forwards the request to the leader, which drains; the DC leaving drains itself.
    const started = Date.now();
    const named = leaving === 'dc' ? [] : [target];
    const left = await haloCli(['cluster', 'leave', ...named, '--config', cfg.file, '--socket', sock(asker)]);
    t.diagnostic(`leave took ${Date.now() - started} ms: ${left.out.trim()}`);
    assert.equal(left.code, 0, left.out);
    const where = names.filter(runs);
    assert.equal(where.length, 1, 'd runs once when leave returns');
    assert.notEqual(where[0], target, 'and not on the node that left');
    assert.match(left.out, new RegExp(`${target} still runs d; waiting for the DC to move it`));
    assert.match(left.out, new RegExp(`removed ${target} \\(id \\d\\) from the running cluster`));
    const rest = names.filter((n) => n !== target);
    await waitFor('every replica to drop the node entry', 20_000, async () => {
      for (const n of rest) {
        const { cib } = (await queryControl(sock(n), 'cib')) as { cib: Cib };
        if (cib.configuration.nodes.some((x) => x.uname === target)) return undefined;
        // Its node_state cannot be deleted (no such CIB command): it is cleared instead.
        const st = cib.status.find((x) => x.uname === target);
        if (st && (st.resources.length > 0 || st.transientAttributes.length > 0)) return undefined;
      }
      return true;
    }).catch((e: Error) => {
      throw new Error(`${e.message}\n${lines.slice(-40).join('\n')}`);
    });
    await waitFor('the removed daemon to stop', 10_000, async () =>
      lines.some((l) => l.endsWith(`node ${target} stopped`)) ? true : undefined,
    );
    // Settled a while: still once, and nobody fenced the removed node nor re-added its entry.
    await new Promise((r) => setTimeout(r, 2_000));
    assert.deepEqual(names.filter(runs), where);
    const fenceLines = lines.filter((l) => new RegExp(`\\bfenc\\w*\\s+${target}\\b`, 'i').test(l));
    assert.deepEqual(fenceLines, [], 'no fence attempt for the removed node');
    assert.ok(!lines.some((l) => new RegExp(`\\b${target} lost:`).test(l)), 'never taken as lost');
    for (const n of rest) {
      const { cib } = (await queryControl(sock(n), 'cib')) as { cib: Cib };
      assert.deepEqual(
        cib.configuration.nodes.map((x) => x.uname).sort(),
        rest,
        `${n}: the entry stays deleted`,
      );
    }
  } finally {
    for (const d of ds.values()) d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test(
  'cluster leave of a node running a resource moves it away first, fences nobody, and every replica drops the node entry; deleting a member entry by hand is refused',
  {
    skip: !existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy') && 'needs resource-agents',
    timeout: 120_000,
  },
  (t) => leaveScenario(t, 'follower'),
);

test(
  'cluster leave of the DC itself (this host) moves its resource away first, and the next DC fences nobody and drops its entry',
  {
    skip: !existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy') && 'needs resource-agents',
    timeout: 120_000,
  },
  (t) => leaveScenario(t, 'dc'),
);

test('cluster leave of a node whose resource cannot move away gives up at its timeout, says what still runs there, and changes nothing', {
  skip: !existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy') && 'needs resource-agents',
  timeout: 120_000,
}, async () => {
  const names = ['a', 'b', 'c'];
  const { dir, cfg } = setup(names);
  const ds = new Map<string, Daemon>();
  const sock = (n: string): string => join(dir, `${n}.sock`);
  const runs = (n: string): boolean => existsSync(join(cfg.stateDir, n, 'rsctmp', 'Dummy-d.state'));
  const lines: string[] = [];
  const load = async (dc: string, text: string): Promise<void> => {
    const parsed = parseCrm(text, 'leave.crm');
    assert.ok(parsed.ok);
    const r = (await queryControl(
      sock(dc),
      `cib ${JSON.stringify({ op: 'replace-configuration', configuration: parsed.cib.configuration })}`,
      10_000,
    )) as { ok?: boolean };
    assert.equal(r.ok, true, JSON.stringify(r));
  };
  try {
    await startRaftDaemons(ds, names, cfg, capturingLogger(lines));
    const dc = await waitFor('a DC', 30_000, async () => ds.get('a')!.status().dc ?? undefined);
    const target = names.find((n) => n !== dc)!;
    await load(dc, LEAVE_CRM(target));
    await waitFor(`d to run on ${target}, recorded with its monitor`, 45_000, async () => {
      if (names.filter(runs).join() !== target) return undefined;
      const { cib } = (await queryControl(sock(dc), 'cib')) as { cib: Cib };
      const ops = cib.status.find((x) => x.uname === target)?.resources.find((r) => r.id === 'd')?.ops ?? [];
      return ops.some((o) => o.id === 'd_monitor_2000') ? true : undefined;
    });
    // Unmanaged: the cluster leaves it where it runs, so the drain cannot finish.
    await load(dc, LEAVE_CRM(target, false));
    await waitFor('the DC to schedule from the unmanaged d', 10_000, async () => {
      const { cib } = (await queryControl(sock(dc), 'cib')) as { cib: Cib };
      return /"is-managed","value":"false"/.test(JSON.stringify(cib.configuration.resources))
        ? true
        : undefined;
    });
    const before = readFileSync(cfg.file, 'utf8');
    const { value: code, err } = await captureStderr(() =>
      haloCli(['cluster', 'leave', target, '--config', cfg.file, '--socket', sock(dc), '--timeout', '2s']),
    );
    assert.equal(code.code, 1, `${code.out}\n${lines.slice(-40).join('\n')}`);
    assert.match(
      err,
      new RegExp(
        `cannot remove ${target}: ${target} was not removed: d still active there after 2000 ms.*\\[drain-timeout\\]`,
      ),
    );
    assert.equal(readFileSync(cfg.file, 'utf8'), before, 'config file unchanged');
    assert.ok(
      ds
        .get(dc)!
        .status()
        .members.some((m) => m.name === target && m.state === 'member'),
      'still a member',
    );
    assert.deepEqual(names.filter(runs), [target], 'd still runs there');
    await waitFor('the shutdown request to be withdrawn', 10_000, async () => {
      const { cib } = (await queryControl(sock(dc), 'cib')) as { cib: Cib };
      const st = cib.status.find((x) => x.uname === target);
      const asked = st?.transientAttributes.some((set) => set.pairs.some((p) => p.name === 'shutdown'));
      return asked ? undefined : true;
    });
  } finally {
    for (const d of ds.values()) d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('removing a node that is not online is refused while the CIB shows something active there, unless forced', () => {
  assert.equal(offlineRemovalRefusal('c', [], false), undefined, 'nothing active: removed at once');
  assert.equal(offlineRemovalRefusal('c', ['d', 'ip'], true), undefined, '--force');
  const why = offlineRemovalRefusal('c', ['d', 'ip'], false);
  assert.match(
    why ?? '',
    /^c is not online and the CIB shows d, ip active there: it is a lost node, which the DC fences/,
  );
  assert.match(why ?? '', /or pass --force to remove it anyway/);
  assert.match(why ?? '', /nothing was changed$/);
});

test('a member-remove request names a node and may carry a bounded timeout and force, anything else is refused', () => {
  assert.deepEqual(parseMemberRemove('c'), { name: 'c', opts: {} });
  assert.deepEqual(parseMemberRemove('c {"timeoutMs":5000,"force":true}'), {
    name: 'c',
    opts: { timeoutMs: 5000, force: true },
  });
  assert.match(String(parseMemberRemove('')), /needs a node name/);
  assert.match(String(parseMemberRemove('c nojson')), /must be JSON/);
  assert.match(String(parseMemberRemove('c {"timeoutMs":-1}')), /timeoutMs must be an integer from 0/);
  assert.match(
    String(parseMemberRemove('c {"timeoutMs":99999999999}')),
    /timeoutMs must be an integer from 0/,
  );
  assert.match(String(parseMemberRemove('c {"force":"yes"}')), /force must be true or false/);
  assert.match(String(parseMemberRemove('c {"later":1}')), /unknown option later/);
});

/**
 * Starts one Raft daemon per name (in order, each started before the next), recording each in
 * `ds` as it starts, so a test's `finally` stops those that did start.
 */
async function startRaftDaemons(
  ds: Map<string, Daemon>,
  names: readonly string[],
  cfg: ConstructorParameters<typeof Daemon>[0]['config'],
  logger: Logger,
  opts: { readonly witness?: (n: string) => boolean; readonly controller?: false } = {},
): Promise<void> {
  for (const n of names) {
    const d = new Daemon({
      config: cfg,
      node: n,
      witness: opts.witness?.(n) ?? false,
      logger,
      consensus: raftConsensus,
      ...(opts.controller === false ? { controller: false } : {}),
    });
    await d.start();
    ds.set(n, d);
  }
}
