import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { seed003Cib } from '../admin/testing.ts';
import { serializeCibXml } from '../cib/cib_xml.ts';
import { parseCrm } from '../cib/crm.ts';
import { loadConfig } from '../daemon/config.ts';
import { serveControl } from '../daemon/control.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { formatStatus, registerClusterCommands } from './cluster_cmd.ts';
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
