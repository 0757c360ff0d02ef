import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { seed003Cib } from '../admin/testing.ts';
import { serializeCibXml } from '../cib/cib_xml.ts';
import { parseCrm } from '../cib/crm.ts';
import { parseHaCf } from '../cib/heartbeat.ts';
import { loadConfig } from '../daemon/config.ts';
import { serveControl } from '../daemon/control.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { repoRoot } from '../lib/repo_root.ts';
import { formatStatus, registerClusterCommands } from './cluster_cmd.ts';
import { fromHaCf, planFromSource } from './cluster_from.ts';
import { captureStderr } from './testing.ts';

async function halo(args: string[]): Promise<number> {
  const program = new Command('halo').exitOverride();
  registerClusterCommands(program);
  process.exitCode = undefined;
  // The commands print a line or two; node:test passes unknown lines through.
  await program.parseAsync(['node', 'halo', ...args]);
  const code = typeof process.exitCode === 'number' ? process.exitCode : 0;
  process.exitCode = undefined;
  return code;
}

test('cluster init writes a config the daemon accepts and a private key; join adds a node', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-cli-'));
  try {
    const config = join(dir, 'halo.json');
    const keyFile = join(dir, 'authkey');
    const base = ['--config', config, '--key-file', keyFile];
    assert.equal(
      await halo([
        'cluster',
        'init',
        'web',
        '--node',
        'alpha=10.0.0.1,10.0.1.1',
        '--node',
        'beta=10.0.0.2,10.0.1.2',
        ...base,
      ]),
      0,
    );
    let cfg = loadConfig(config);
    assert.equal(cfg.quorum.twoNode, true);
    assert.deepEqual(
      cfg.nodes.map((n) => `${n.id}:${n.name}:${n.links.map((l) => `${l.host}:${l.port}`).join(',')}`),
      ['1:alpha:10.0.0.1:5405,10.0.1.1:5405', '2:beta:10.0.0.2:5405,10.0.1.2:5405'],
    );
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    // Running init again would silently replace the cluster's key: refused.
    assert.equal(await halo(['cluster', 'init', 'web', '--node', 'alpha=10.0.0.1', ...base]), 1);
    assert.equal(
      await halo([
        'cluster',
        'join',
        'tie',
        '--addr',
        '10.0.0.9',
        '--witness',
        '--offline',
        '--config',
        config,
      ]),
      0,
    );
    cfg = loadConfig(config);
    assert.equal(cfg.quorum.twoNode, false, 'a witness replaces two_node');
    assert.deepEqual(cfg.nodes.at(-1), {
      id: 3,
      name: 'tie',
      links: [{ host: '10.0.0.9', port: 5405 }],
      stream: { host: '10.0.0.9', port: 5406 },
      votes: 1,
      witness: true,
    });
    // A duplicate name is bad input (exit 2) and the file is unchanged.
    const before = readFileSync(config, 'utf8');
    assert.equal(
      await halo(['cluster', 'join', 'tie', '--addr', '10.0.0.10', '--offline', '--config', config]),
      2,
    );
    assert.equal(readFileSync(config, 'utf8'), before);
    // Without --offline, join changes the running cluster: with no daemon it fails, changing nothing.
    assert.equal(
      await halo(['cluster', 'join', 'delta', '--addr', '10.0.0.4', '--node', 'alpha', '--config', config]),
      2,
    );
    assert.equal(readFileSync(config, 'utf8'), before);
    const leave = await captureStderr(() =>
      halo(['cluster', 'leave', 'beta', '--node', 'alpha', '--config', config]),
    );
    assert.equal(leave.value, 2);
    // leave has no --offline: the hint must not offer one.
    assert.match(leave.err, /no daemon answers .*remove the node from the config's nodes/);
    assert.doesNotMatch(leave.err, /--offline/);
    assert.equal(readFileSync(config, 'utf8'), before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('keygen writes a key and status without a daemon says how to start one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-cli-'));
  try {
    assert.equal(await halo(['keygen', '--file', join(dir, 'k')]), 0);
    assert.equal(await halo(['keygen', '--file', join(dir, 'k')]), 1);
    assert.equal(await halo(['status', '--socket', join(dir, 'none.sock')]), 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('status text shows members, each link with its state, quorum and the DC', () => {
  const st: DaemonStatus = {
    cluster: 'web',
    node: 'alpha',
    nodeId: 1,
    witness: false,
    epoch: 5,
    profile: 'lan',
    pid: 1,
    uptimeMs: 65_000,
    members: [
      {
        id: 1,
        name: 'alpha',
        self: true,
        witness: false,
        state: 'self',
        lastHeardMsAgo: null,
        deadtimeMs: null,
        meanIntervalMs: null,
        clockSkewMs: null,
        links: [],
      },
      {
        id: 2,
        name: 'beta',
        self: false,
        witness: false,
        state: 'member',
        lastHeardMsAgo: 12,
        deadtimeMs: 250,
        meanIntervalMs: 50,
        clockSkewMs: 3,
        links: [
          {
            link: 0,
            local: '10.0.0.1:5405',
            remote: '10.0.0.2:5405',
            state: 'up',
            lastHeardMsAgo: 12,
            received: 100,
            sent: 100,
            sendErrors: 0,
          },
          {
            link: 1,
            local: '10.0.1.1:5405',
            remote: '10.0.1.2:5405',
            state: 'down',
            lastHeardMsAgo: 900,
            received: 80,
            sent: 100,
            sendErrors: 4,
          },
        ],
      },
    ],
    quorum: {
      quorate: true,
      votes: 2,
      expectedVotes: 2,
      quorumVotes: 2,
      waitForAll: true,
      waitingForAll: false,
      twoNode: true,
      fenceNeeded: [],
      reason: 'both nodes of a two_node cluster are members',
    },
    consensus: { role: 'leader', term: 3, leader: 'alpha', commit: 7, applied: 7 },
    dc: 'alpha',
    packets: {
      accepted: 180,
      malformed: 0,
      foreign: 0,
      forged: 2,
      replayed: 1,
      badPayload: 0,
      streamDrops: 0,
      unconfirmed: 0,
    },
  };
  const text = formatStatus(st);
  assert.match(text, /Current DC: alpha \(term 3, this node is leader, commit 7\)/);
  assert.match(text, /Quorum: yes: both nodes/);
  assert.match(text, /\* beta \(id 2\): member, heard 12 ms ago, deadtime 250 ms/);
  assert.match(
    text,
    /link 1 10\.0\.1\.1:5405 -> 10\.0\.1\.2:5405: down \(last 900 ms ago, rx 80, tx 100, send errors 4\)/,
  );
  assert.match(text, /forged 2, replayed 1/);
});

test('cluster leave of a node that is down with resources active there is refused with the reason and changes nothing; --force asks for it, and --timeout is checked', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-cli-'));
  const config = join(dir, 'halo.json');
  const socket = join(dir, 'alpha.sock');
  const parsed = parseCrm(
    'node 1: alpha\nnode 2: beta\nnode 3: gamma\nproperty shutdown-escalation=90s\n',
    'x.crm',
  );
  assert.ok(parsed.ok);
  const asked: string[] = [];
  // A daemon that answers like a leader whose CIB shows d started on beta, which is down.
  const server = await serveControl(socket, (line) => {
    asked.push(line);
    if (line === 'cib') return { source: 'dc', cib: parsed.cib };
    if (!line.startsWith('member-remove ')) return { error: 'unexpected' };
    const opts = JSON.parse(line.slice('member-remove beta '.length)) as {
      force?: boolean;
      timeoutMs?: number;
    };
    if (opts.force) return { ok: true, node: 'beta', id: 2, index: 9 };
    return {
      ok: false,
      code: 'node-active',
      message:
        'beta is not online and the CIB shows d active there: it is a lost node, which the DC fences before starting it elsewhere; nothing was changed',
    };
  });
  try {
    assert.equal(
      await halo([
        'cluster',
        'init',
        'web',
        '--node',
        'alpha=10.0.0.1',
        '--node',
        'beta=10.0.0.2',
        '--node',
        'gamma=10.0.0.3',
        '--config',
        config,
        '--key-file',
        join(dir, 'authkey'),
      ]),
      0,
    );
    const before = readFileSync(config, 'utf8');
    const base = ['cluster', 'leave', 'beta', '--config', config, '--socket', socket];
    const refused = await captureStderr(() => halo(base));
    assert.equal(refused.value, 1);
    assert.match(
      refused.err,
      /cannot remove beta: beta is not online and the CIB shows d active there.*\[node-active\]/,
    );
    assert.equal(readFileSync(config, 'utf8'), before, 'config unchanged');
    assert.ok(
      asked.includes('member-remove beta {"timeoutMs":90000}'),
      `the drain is bounded by shutdown-escalation: ${asked.join(' | ')}`,
    );
    const bad = await captureStderr(() => halo([...base, '--timeout', 'soon']));
    assert.equal(bad.value, 2);
    assert.match(bad.err, /--timeout: 'soon' is not a duration/);
    assert.equal(await halo([...base, '--force', '--timeout', '5s']), 0);
    assert.ok(asked.includes('member-remove beta {"timeoutMs":5000,"force":true}'));
    assert.deepEqual(
      loadConfig(config).nodes.map((n) => n.name),
      ['alpha', 'gamma'],
    );
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('status of a CIB file (CIB_file or --cib) reads like crm_mon -1, without a daemon', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-cli-'));
  const file = join(dir, 'cib.xml');
  writeFileSync(file, serializeCibXml(seed003Cib()));
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  const saved = process.env.CIB_file;
  try {
    process.env.CIB_file = file;
    const viaEnv = await halo(['status']);
    delete process.env.CIB_file;
    const missing = await captureStderr(() => halo(['status', '--cib', join(dir, 'none.xml')]));
    process.stdout.write = write;
    assert.equal(viaEnv, 0);
    assert.match(out, /^Cluster Summary:\n {2}\* Stack: halo\n/);
    assert.match(
      out,
      /Resource Group: g_all:\n {4}\* p_sip\t\(ocf:heartbeat:IPaddr2\):\t Started thelibrary-node/,
    );
    assert.equal(missing.value, 2);
    assert.match(missing.err, /none\.xml: cannot read the CIB file \(ENOENT/);
  } finally {
    process.stdout.write = write;
    if (saved === undefined) delete process.env.CIB_file;
    else process.env.CIB_file = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Runs `halo ARGS` capturing what it prints on stdout and stderr. */
async function haloOut(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    const r = await captureStderr(() => halo(args));
    return { code: r.value, out, err: r.err };
  } finally {
    process.stdout.write = write;
  }
}

// From the source tree: the compiled test runs from dist/, where fixtures are not copied.
const FIXTURES = `${join(repoRoot(), 'src/cib/fixtures')}/`;

const COROSYNC3 = `totem {
    version: 2
    cluster_name: shop
    transport: knet
    token: 1000
    interface {
        linknumber: 0
        mcastport: 5420
    }
}
nodelist {
    node {
        ring0_addr: 10.0.0.1
        ring1_addr: 192.168.1.1
        name: alpha
        nodeid: 3
    }
    node {
        ring0_addr: 10.0.0.2
        ring1_addr: 192.168.1.2
        name: beta
        nodeid: 4
    }
}
quorum {
    provider: corosync_votequorum
    two_node: 1
}
`;

test('cluster init --from a corosync 3 nodelist writes the nodes, ids, links, ports, two_node and the closest profile', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-cli-'));
  try {
    const conf = join(dir, 'corosync.conf');
    writeFileSync(conf, COROSYNC3);
    const config = join(dir, 'halo.json');
    const r = await haloOut([
      'cluster',
      'init',
      '--from',
      conf,
      '--config',
      config,
      '--key-file',
      join(dir, 'k'),
    ]);
    assert.equal(r.code, 0, r.err);
    const cfg = loadConfig(config);
    assert.equal(cfg.cluster, 'shop', 'totem.cluster_name names the cluster');
    assert.deepEqual(
      cfg.nodes.map((n) => `${n.id}:${n.name}:${n.links.map((l) => `${l.host}:${l.port}`).join(',')}`),
      ['3:alpha:10.0.0.1:5420,192.168.1.1:5405', '4:beta:10.0.0.2:5420,192.168.1.2:5405'],
    );
    assert.equal(cfg.quorum.twoNode, true);
    assert.equal(cfg.profileName, 'lan');
    assert.match(r.out, /profile: lan: token 1000 ms; closest to lan's deadtime of 250 ms/);
    assert.match(r.out, /quorum: two_node \(as the file sets it\)/);
    // --profile given on the command line wins over the file's timing.
    const wan = await haloOut(['cluster', 'init', '--from', conf, '--profile', 'wan', '--dry-run']);
    assert.equal(wan.code, 0, wan.err);
    assert.match(wan.out, /profile: wan: token 1000 ms; chosen with --profile/);
    assert.match(wan.out, /"profile": "wan"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("cluster init --from seed 003's corosync.conf (no nodelist) asks for --node and writes nothing; with --node it works", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-cli-'));
  try {
    const config = join(dir, 'halo.json');
    const keyFile = join(dir, 'authkey');
    const from = join(FIXTURES, 'seed003-corosync.conf');
    const base = ['--from', from, '--config', config, '--key-file', keyFile];
    const bare = await haloOut(['cluster', 'init', 'web', ...base]);
    assert.equal(bare.code, 2);
    assert.match(
      bare.err,
      /no nodes: this corosync\.conf has no nodelist .*halo cluster init web --from \S+ --node NODE1=ADDR_ON_ring0 --node NODE2=ADDR_ON_ring0 … \[missing-node-address\]/,
    );
    assert.ok(!existsSync(config) && !existsSync(keyFile), 'nothing written');
    const ok = await haloOut([
      'cluster',
      'init',
      'web',
      ...base,
      '--node',
      'n1=10.0.0.1',
      '--node',
      'n2=10.0.0.2',
    ]);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /profile: wan: token 3000 ms; closest to wan's deadtime of 5000 ms/);
    const cfg = loadConfig(config);
    assert.deepEqual(
      cfg.nodes.map((n) => `${n.id}:${n.name}:${n.links.map((l) => `${l.host}:${l.port}`).join(',')}`),
      ['1:n1:10.0.0.1:5405', '2:n2:10.0.0.2:5405'],
    );
    assert.equal(cfg.quorum.twoNode, true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("cluster init --from seed 004's ha.cf names exactly the nodes without an address; with them it takes udpport and deadtime", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-cli-'));
  try {
    const config = join(dir, 'halo.json');
    const base = [
      '--from',
      join(FIXTURES, 'seed004', 'ha.cf'),
      '--config',
      config,
      '--key-file',
      join(dir, 'k'),
    ];
    const missing = await haloOut(['cluster', 'init', 'web', ...base, '--node', 'node01=10.0.0.1']);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /no address for node02: ha\.cf names nodes but not their addresses/);
    assert.match(missing.err, /--node node02=ADDR\[,ADDR2…\] \[missing-node-address\]/);
    assert.ok(!existsSync(config));
    const ok = await haloOut([
      'cluster',
      'init',
      'web',
      ...base,
      '--node',
      'node01=10.0.0.1',
      '--node',
      'node02=10.0.0.2',
    ]);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /port: udpport 697/);
    assert.match(
      ok.out,
      /profile: wan: deadtime 60 s, keepalive 2 s, warntime 30 s, initdead 120 s; closest to wan's/,
    );
    const cfg = loadConfig(config);
    assert.deepEqual(
      cfg.nodes.map((n) => `${n.name}:${n.links.map((l) => `${l.host}:${l.port}`).join(',')}`),
      ['node01:10.0.0.1:697', 'node02:10.0.0.2:697'],
    );
    assert.equal(cfg.quorum.twoNode, true, 'two nodes: two_node');
    assert.equal(cfg.profileName, 'wan');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cluster init --from an ha.cf gives ucast peers to nodes only where unambiguous; --dry-run writes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-cli-'));
  try {
    const hacf = join(dir, 'ha.cf');
    writeFileSync(
      hacf,
      'keepalive 200ms\ndeadtime 1\nucast eth1 10.0.1.1\nucast eth1 10.0.1.2\nbcast eth0\nnode a b\n',
    );
    const config = join(dir, 'halo.json');
    const base = [
      'cluster',
      'init',
      'pair',
      '--from',
      hacf,
      '--config',
      config,
      '--key-file',
      join(dir, 'k'),
    ];
    // Two ucast peers, two nodes: which is whose is not in the file.
    const ambiguous = await haloOut(base);
    assert.equal(ambiguous.code, 2);
    assert.match(
      ambiguous.err,
      /no address for a, b: .*--node a=ADDR_ON_eth1,ADDR_ON_eth0 --node b=ADDR_ON_eth1,ADDR_ON_eth0/,
    );
    // Once a's addresses are given, the other ucast peer on eth1 can only be b's; eth0 (bcast) is still unknown.
    const half = await haloOut([...base, '--node', 'a=10.0.1.1,10.0.0.1']);
    assert.equal(half.code, 2);
    assert.match(half.err, /no address for b:/);
    const dry = await haloOut([
      ...base,
      '--node',
      'a=10.0.1.1,10.0.0.1',
      '--node',
      'b=10.0.1.2,10.0.0.2',
      '--dry-run',
    ]);
    assert.equal(dry.code, 0, dry.err);
    assert.match(dry.out, /links: 0=eth1 \(ucast\), 1=eth0 \(bcast\)/);
    assert.match(dry.out, /profile: lan: deadtime 1 s, keepalive 200 ms/);
    assert.match(dry.out, /dry run: nothing written; \S+halo\.json would be:\n\{\n {2}"cluster": "pair"/);
    assert.ok(!existsSync(config), '--dry-run writes nothing');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an ha.cf node whose name is this host's takes its interfaces' addresses, and the one ucast peer left is the other node's", () => {
  const parsed = parseHaCf('deadtime 10\nucast eth1 10.0.1.2\nnode node01 node02\n', 'ha.cf');
  assert.ok(parsed.ok);
  const src = fromHaCf(parsed.value, 'ha.cf', {
    hostname: 'node01.example.com',
    interfaces: { eth1: ['10.0.1.1'] },
  });
  const plan = planFromSource(src, { name: 'web', nodeSpecs: [], keyFile: '/k' });
  assert.deepEqual(
    plan.doc.nodes.map((n) => `${String(n.name)}=${(n.links as string[]).join(',')}`),
    ['node01=10.0.1.1:5405', 'node02=10.0.1.2:5405'],
  );
  assert.match(plan.summary.join('\n'), /node node01: id 1, links 10\.0\.1\.1:5405 \(this host/);
  assert.match(plan.summary.join('\n'), /port: no udpport: halo's default 5405/);
});

test('cluster init --from refuses bad input with exit 2 and writes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-cli-'));
  try {
    const config = join(dir, 'halo.json');
    const file = (name: string, text: string) => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    };
    const init = (from: string, ...more: string[]) =>
      haloOut([
        'cluster',
        'init',
        'web',
        '--from',
        from,
        '--config',
        config,
        '--key-file',
        join(dir, 'k'),
        ...more,
      ]);
    const hacf = file('ha.cf', 'deadtime 10\nnode a b\n');
    // Thunks: each run replaces process.stdout.write and process.exitCode, so they must not overlap.
    const cases: Array<[() => Promise<{ code: number; err: string }>, RegExp]> = [
      [
        () => init(file('notes.txt', 'hello world\n')),
        /not a corosync\.conf \(no 'totem \{' section\) nor a Heartbeat ha\.cf/,
      ],
      [
        () => init(file('haresources', 'a 10.0.0.9 apache\n')),
        /this is a Heartbeat haresources, which holds no membership; give --from the ha\.cf/,
      ],
      [() => init(join(dir, 'absent.conf')), /--from \S+absent\.conf: cannot read it \(ENOENT/],
      [
        () => init(file('dup.ha.cf', 'node a b\nnode a\n')),
        /dup\.ha\.cf:2:1: node 'a' is listed twice \(also on line 1\)/,
      ],
      [() => init(hacf, '--node', 'a=10.0.0.1', '--node', 'a=10.0.0.2'), /--node a is given twice/],
      [
        () => init(hacf, '--node', 'a=alpha.example.com', '--node', 'b=10.0.0.2'),
        /'alpha\.example\.com' is not an IP address/,
      ],
      [() => init(hacf, '--node', 'c=10.0.0.3'), /--node c: \S+ha\.cf lists no node c \(it lists a, b\)/],
      [
        () => init(hacf, '--node', 'a=10.0.0.1', '--node', 'b=10.0.0.1'),
        /address 10\.0\.0\.1:5405 is also used by nodes\[0\]/,
      ],
      [
        () => init(file('corosync.conf', 'totem {\n  token: 1000\nnodelist {\n')),
        /corosync\.conf:3:1: error: section 'nodelist' opened on line 3 is not closed/,
      ],
      [
        () =>
          init(
            file(
              'big-id.conf',
              'totem {\n}\nnodelist {\n  node {\n    ring0_addr: 10.0.0.1\n    nodeid: 70000\n  }\n}\n',
            ),
          ),
        /node 10\.0\.0\.1 has nodeid 70000; halo node ids are 1\.\.65535/,
      ],
    ];
    for (const [run, expected] of cases) {
      const r = await run();
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, expected);
    }
    assert.ok(!existsSync(config) && !existsSync(join(dir, 'k')), 'nothing written');
    // Plain init still needs a name and nodes, and says how to give them.
    const none = await haloOut(['cluster', 'init', 'web', '--config', config]);
    assert.equal(none.code, 2);
    assert.match(
      none.err,
      /give each node with --node NAME=ADDR\[,ADDR…\], or take them from a corosync\.conf or ha\.cf with --from FILE/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
