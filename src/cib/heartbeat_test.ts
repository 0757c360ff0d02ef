import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../lib/repo_root.ts';
import {
  HEARTBEAT_DEFAULTS,
  HEARTBEAT_HOME_NODE_SCORE,
  type HeartbeatParse,
  heartbeatToCib,
  parseAuthkeys,
  parseHaCf,
  parseHaresources,
} from './heartbeat.ts';
import type { Group, LocationConstraint, Primitive } from './model.ts';

const FIXTURES = join(repoRoot(), 'src/cib/fixtures');
const read = (f: string): { text: string; file: string } => ({
  text: readFileSync(join(FIXTURES, f), 'utf8'),
  file: f,
});

function ok<T>(r: HeartbeatParse<T>): T {
  if (!r.ok)
    assert.fail(
      r.diagnostics.map((d) => `${d.pos.file}:${d.pos.line}:${d.pos.column} ${d.message}`).join('\n'),
    );
  return r.value;
}

function params(p: Primitive): Record<string, string> {
  return Object.fromEntries(p.instanceAttributes.flatMap((s) => s.pairs.map((x) => [x.name, x.value ?? ''])));
}

test("seed 002's ha.cf gives membership its timings, link and nodes", () => {
  const c = ok(parseHaCf(read('seed002/ha.cf').text, 'ha.cf'));
  assert.equal(c.keepaliveMs, 2000);
  assert.equal(c.deadtimeMs, 10_000, 'the commented-out deadtime 30 does not count');
  assert.equal(c.warntimeMs, 5000, 'warntime defaults to half of a short deadtime');
  assert.equal(c.initdeadMs, HEARTBEAT_DEFAULTS.initdeadMs);
  assert.equal(c.udpPort, 694);
  assert.deepEqual(c.links, [{ kind: 'bcast', interface: 'eth0' }]);
  assert.deepEqual(c.nodes, ['MASTER', 'SLAVE']);
  assert.equal(c.logfacility, 'local0');
});

test("seed 004's ha.cf parses with every directive from the slide", () => {
  const r = parseHaCf(read('seed004/ha.cf').text, 'ha.cf');
  const c = ok(r);
  assert.deepEqual(
    [c.keepaliveMs, c.deadtimeMs, c.warntimeMs, c.initdeadMs, c.udpPort, c.autoFailback],
    [2000, 60_000, 30_000, 120_000, 697, 'off'],
  );
  assert.deepEqual(c.nodes, ['node01', 'node02']);
  assert.deepEqual(
    [c.logfile, c.debugfile, c.logfacility],
    ['/var/log/ha-log', '/var/log/ha-debug', 'local0'],
  );
  assert.ok(
    r.ok && r.warnings.some((w) => w.code === 'hacf-spelling' && w.pos.line === 3),
    'Logfacility spelling warned',
  );
});

test('the slide text of seed 004 (keys, then values) is not mistaken for an ha.cf', () => {
  const r = parseHaCf(read('seed004/ha.cf.slide').text, 'ha.cf');
  assert.equal(r.ok, false);
});

test('the slide text of seed 004 gets one error that says how to put it right', () => {
  const r = parseHaCf(read('seed004/ha.cf.slide').text, 'ha.cf');
  assert.ok(!r.ok);
  assert.equal(r.diagnostics.length, 1, r.diagnostics.map((d) => d.message).join('\n'));
  const e = r.diagnostics[0]!;
  // Line 1 is the slide's title, `/etc/heartbeat/ha.cf:`.
  assert.deepEqual([e.severity, e.code, e.pos.line], ['error', 'hacf-two-columns', 2]);
  assert.match(e.message, /lines 2-13 are directive names without values and lines 14-25 are 12 lone values/);
  assert.match(e.message, /e\.g\. 'debugfile \/var\/log\/ha-debug'/);
  // Two bare directives are a plain mistake, reported as such.
  const two = parseHaCf('node a b\nkeepalive\ndeadtime\n2\n10\n', 'ha.cf');
  assert.ok(!two.ok && two.diagnostics.some((d) => d.code === 'hacf-missing-value'));
});

test("seed 002's haresources becomes one group ordered left to right, preferring its node", () => {
  const r = heartbeatToCib({
    haCf: read('seed002/ha.cf'),
    haresources: read('seed002/haresources'),
    authkeys: { ...read('seed002/authkeys'), mode: 0o100600 },
  });
  if (!r.cib.ok) assert.fail(JSON.stringify(r.cib.diagnostics));
  const c = r.cib.cib.configuration;
  const g = c.resources[0] as Group;
  assert.deepEqual(
    g.members.map((m) => [m.id, m.class, m.provider, m.type]),
    [
      ['ip_192.168.xxx.xxx', 'ocf', 'heartbeat', 'IPaddr2'],
      ['drbddisk_r0', 'heartbeat', undefined, 'drbddisk'],
      ['fs_data', 'ocf', 'heartbeat', 'Filesystem'],
      ['nfs-kernel-server', 'lsb', undefined, 'nfs-kernel-server'],
    ],
  );
  assert.deepEqual(params(g.members[0]!), { ip: '192.168.xxx.xxx', cidr_netmask: '24', nic: 'eth0' });
  assert.deepEqual(params(g.members[1]!), { '1': 'r0' });
  assert.deepEqual(params(g.members[2]!), { device: '/dev/drbd0', directory: '/data', fstype: 'ext3' });
  const loc = c.constraints[0] as LocationConstraint;
  assert.deepEqual([loc.rsc, loc.node, loc.score], [g.id, 'server1', HEARTBEAT_HOME_NODE_SCORE]);
  const warnings = r.cib.warnings.map((w) => w.code);
  assert.ok(warnings.includes('haresources-unknown-node'), 'server1 is not in ha.cf');
  assert.ok(warnings.includes('haresources-placeholder-address'));
  assert.deepEqual(c.rscDefaults[0]!.pairs[0]!.value, '0', 'no auto_failback: Heartbeat default fails back');
  assert.equal(r.authkeys?.keys[0]?.method, 'md5');
});

test("seed 004's Heartbeat files convert with auto_failback off as infinite stickiness", () => {
  const r = heartbeatToCib({
    haCf: read('seed004/ha.cf'),
    haresources: read('seed004/haresources'),
    authkeys: { ...read('seed004/authkeys'), mode: 0o600 },
  });
  if (!r.cib.ok) assert.fail(JSON.stringify(r.cib.diagnostics));
  const c = r.cib.cib.configuration;
  assert.deepEqual(
    (c.resources[0] as Group).members.map((m) => `${m.class}:${m.type}`),
    ['ocf:IPaddr2', 'heartbeat:drbddisk', 'ocf:Filesystem', 'heartbeat:drbdlinks', 'lsb:apache2'],
  );
  assert.equal(c.rscDefaults[0]!.pairs[0]!.name, 'resource-stickiness');
  assert.equal(c.rscDefaults[0]!.pairs[0]!.value, 'INFINITY');
  assert.deepEqual(
    c.crmConfig[0]!.pairs.map((p) => [p.name, p.value]),
    [
      ['stonith-enabled', 'false'],
      ['no-quorum-policy', 'ignore'],
    ],
  );
  assert.deepEqual(r.authkeys, {
    active: 1,
    keys: [{ index: 1, method: 'sha1', secret: 'your_super_secure_password' }],
  });
});

test('an authkeys file readable by group or others is refused, as Heartbeat refuses it', () => {
  const r = parseAuthkeys('auth 1\n1 sha1 secret\n', 'authkeys', 0o100644);
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.diagnostics[0]!.code, 'authkeys-permissions');
    assert.match(r.diagnostics[0]!.message, /mode 644.*chmod 600/);
  }
  assert.equal(parseAuthkeys('auth 1\n1 sha1 secret\n', 'authkeys', 0o100600).ok, true);
});

test('crc keys are accepted with a warning that they authenticate nothing', () => {
  const r = parseAuthkeys('auth 2\n2 crc\n', 'authkeys', 0o600);
  assert.ok(r.ok);
  if (r.ok)
    assert.deepEqual(
      r.warnings.map((w) => [w.code, w.pos.line]),
      [['authkeys-crc', 2]],
    );
});

test('netmasks, broadcast and dotted masks in IPaddr specs map to IPaddr2 parameters', () => {
  const r = heartbeatToCib({
    haCf: { text: 'node a b\nbcast eth0\nauto_failback on\n', file: 'ha.cf' },
    haresources: {
      text: 'a 10.0.0.5 IPaddr::10.0.0.6/255.255.255.0/eth1/10.0.0.255 \\\n  Filesystem::/dev/sdb1::/srv::xfs::noatime mysql\nb IPaddr2::10.0.1.1/16\n',
      file: 'haresources',
    },
  });
  if (!r.cib.ok) assert.fail(JSON.stringify(r.cib.diagnostics));
  const [g1, g2] = r.cib.cib.configuration.resources as Group[];
  assert.deepEqual(params(g1!.members[0]!), { ip: '10.0.0.5' });
  assert.deepEqual(params(g1!.members[1]!), {
    ip: '10.0.0.6',
    cidr_netmask: '24',
    nic: 'eth1',
    broadcast: '10.0.0.255',
  });
  assert.deepEqual(params(g1!.members[2]!), {
    device: '/dev/sdb1',
    directory: '/srv',
    fstype: 'xfs',
    options: 'noatime',
  });
  assert.equal(g1!.members[3]!.class, 'lsb');
  assert.deepEqual(params(g2!.members[0]!), { ip: '10.0.1.1', cidr_netmask: '16' });
  assert.equal(r.cib.positions.get(g2!.id)?.line, 3);
});

test('bad Heartbeat files are rejected with the line of the mistake', () => {
  const cases: [string, 'ha.cf' | 'haresources' | 'authkeys', number, string][] = [
    ['node a b\nkeepalive two\n', 'ha.cf', 2, 'hacf-bad-time'],
    ['node a b\nudpport 99999\n', 'ha.cf', 2, 'hacf-bad-port'],
    ['node a b\nauto_failback maybe\n', 'ha.cf', 2, 'hacf-bad-value'],
    ['node a b\nmcast eth0 225.0.0.1 694\n', 'ha.cf', 2, 'hacf-bad-mcast'],
    ['bcast eth0\n', 'ha.cf', 1, 'hacf-no-nodes'],
    ['node a b\nkeepalive 10\ndeadtime 5\n', 'ha.cf', 3, 'hacf-bad-timing'],
    ['node1 IPaddr::not-an-ip/24\n', 'haresources', 1, 'haresources-bad-address'],
    ['node1\n', 'haresources', 1, 'haresources-empty'],
    ['auth 1\n1 rot13 secret\n', 'authkeys', 2, 'authkeys-bad-method'],
    ['auth 2\n1 sha1 secret\n', 'authkeys', 1, 'authkeys-unknown-key'],
    ['auth 1\n1 md5\n', 'authkeys', 2, 'authkeys-no-secret'],
    ['1 sha1 secret\n', 'authkeys', 1, 'authkeys-no-auth'],
  ];
  for (const [text, kind, line, code] of cases) {
    const r =
      kind === 'ha.cf'
        ? parseHaCf(text, kind)
        : kind === 'haresources'
          ? parseHaresources(text, kind)
          : parseAuthkeys(text, kind, 0o600);
    assert.equal(r.ok, false, `accepted: ${text}`);
    if (r.ok) continue;
    const e = r.diagnostics[0]!;
    assert.deepEqual([e.code, e.pos.line], [code, line], `${text} → ${e.message}`);
  }
});

test('a misspelt Heartbeat script in haresources is warned about with the likely name', () => {
  const r = parseHaresources(
    'server1 IPaddr::10.0.0.9/24/eth0 drbddisk::r0 Filesytem::/dev/drbd0::/data::ext3 nfs-kernel-server\n',
    'haresources',
  );
  assert.ok(r.ok);
  const w = r.warnings.filter((d) => d.code === 'haresources-unknown-script');
  assert.equal(w.length, 1, r.warnings.map((d) => d.message).join('\n'));
  assert.equal(w[0]!.pos.column, 47);
  assert.match(
    w[0]!.message,
    /'Filesytem' is not a resource script Heartbeat ships \(did you mean 'Filesystem'\?\)/,
  );
  // Init scripts take no arguments and may be called anything; known scripts are not warned about.
  const fine = parseHaresources(
    'node01 10.0.0.9 drbddisk::r0 Filesystem::/dev/drbd0::/drbd::ext3 drbdlinks apache2 lvm2\n',
    'haresources',
  );
  assert.ok(fine.ok);
  assert.deepEqual(fine.warnings, []);
});
