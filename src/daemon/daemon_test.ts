import assert from 'node:assert/strict';
import { createHash, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { nullLogger } from '../lib/ports.ts';
import type { Fencer } from '../membership/fencer.ts';
import { encodeHeartbeat } from '../membership/heartbeat_codec.ts';
import { generateKeyFile, loadKeyFile } from '../transport/key_file.ts';
import { Channel, clusterIdFromDigest, PacketSealer } from '../transport/packet.ts';
import { type DaemonConfig, parseConfig } from './config.ts';
import { queryControl } from './control.ts';
import { type ConsensusContext, type ConsensusPart, Daemon, type DaemonStatus } from './daemon.ts';
import { waitFor } from './lab_cluster.ts';

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
      error: "unknown command 'frobnicate' (known: status, crm_mon, cib, cib JSON)",
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
