import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseCibXml } from '../cib/cib_xml.ts';
import { repoRoot } from '../lib/repo_root.ts';
import { run } from './main.ts';
import { writeSeed003TwoVolumes } from './testing.ts';

const ROOT = repoRoot();
const FIXTURES = join(ROOT, 'src/cib/fixtures');
const CRM_VERIFY = '/usr/sbin/crm_verify';
/** crm_verify on a small CIB takes well under a second; this bounds a hung run. */
const CRM_VERIFY_TIMEOUT_MS = 30_000;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `halo ARGS…` in-process through the real CLI entry point, capturing its output. */
async function halo(...args: string[]): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    process.exitCode = undefined;
    const code = await run(['node', 'halo', ...args]);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
    process.exitCode = undefined;
  }
}

let tmp = '';
/** Copies of the seed files with authkeys at mode 600 (git does not keep modes). */
let seeds = '';

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'halo-config-'));
  seeds = join(tmp, 'seeds');
  for (const d of ['seed002', 'seed004']) {
    mkdirSync(join(seeds, d), { recursive: true });
    for (const f of ['ha.cf', 'haresources', 'authkeys', 'drbd.conf'])
      copyFileSync(join(FIXTURES, d, f), join(seeds, d, f));
    chmodSync(join(seeds, d, 'authkeys'), 0o600);
  }
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function crmVerify(xml: string, name: string): { status: number | null; output: string } {
  const file = join(tmp, name);
  writeFileSync(file, xml);
  const r = spawnSync(CRM_VERIFY, ['-x', file], { encoding: 'utf8', timeout: CRM_VERIFY_TIMEOUT_MS });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

test('every bundled example passes `halo config check examples/*`', async () => {
  const dir = join(ROOT, 'examples');
  const work = join(tmp, 'examples');
  mkdirSync(work);
  const args: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const src = join(dir, name);
    const dst = join(work, name);
    if (existsSync(join(src, 'ha.cf'))) {
      mkdirSync(dst);
      for (const f of readdirSync(src)) copyFileSync(join(src, f), join(dst, f));
      if (existsSync(join(dst, 'authkeys'))) chmodSync(join(dst, 'authkeys'), 0o600);
    } else copyFileSync(src, dst);
    args.push(dst);
  }
  assert.ok(args.length >= 6, `expected the seed examples, found ${args.length}`);
  const r = await halo('config', 'check', ...args);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.split('\n').filter((l) => / ok \(/.test(l)).length, args.length, r.stdout);
  assert.doesNotMatch(r.stderr, /: error:/);
});

test("seed 003's crm configuration converted to XML is accepted by Pacemaker's crm_verify", async () => {
  const r = await halo('config', 'convert', '--to', 'xml', join(FIXTURES, 'seed003.crm'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /<primitive id="p_sip" class="ocf" provider="heartbeat" type="IPaddr2">/);
  assert.match(r.stdout, /<master id="ms_drbd">/);
  const v = crmVerify(r.stdout, 'seed003.xml');
  assert.equal(v.status, 0, v.output);
});

test("seed 004's Heartbeat directory converted to XML is accepted by Pacemaker's crm_verify", async () => {
  const r = await halo('config', 'convert', '--to', 'xml', join(seeds, 'seed004'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /<group id="group_1">/);
  const v = crmVerify(r.stdout, 'seed004.xml');
  assert.equal(v.status, 0, v.output);
});

test('Heartbeat files given one by one convert like their directory', async () => {
  const d = join(seeds, 'seed002');
  const a = await halo(
    'config',
    'convert',
    '--to',
    'crm',
    join(d, 'ha.cf'),
    join(d, 'haresources'),
    join(d, 'authkeys'),
  );
  const b = await halo('config', 'convert', '--to', 'crm', d);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.match(a.stdout, /group group_1 ip_192\.168\.xxx\.xxx drbddisk_r0 fs_data nfs-kernel-server/);
  assert.match(a.stderr, /haresources:1:1: warning: haresources names node 'server1'/);
});

test('crm converted to XML and back to crm describes the same cluster', async () => {
  const x = await halo('config', 'convert', '--to', 'xml', join(FIXTURES, 'seed003.crm'));
  const xmlFile = join(tmp, 'roundtrip.xml');
  writeFileSync(xmlFile, x.stdout);
  assert.ok(parseCibXml(x.stdout, xmlFile).ok);
  const back = await halo('config', 'convert', '--to', 'crm', xmlFile);
  const direct = await halo('config', 'convert', '--to', 'crm', join(FIXTURES, 'seed003.crm'));
  assert.equal(back.code, 0, back.stderr);
  assert.equal(back.stdout, direct.stdout);
});

test('convert --to json prints the model; drbd.conf converts to json only', async () => {
  const j = await halo('config', 'convert', '--to', 'json', join(seeds, 'seed004/drbd.conf'));
  assert.equal(j.code, 0, j.stderr);
  assert.equal(JSON.parse(j.stdout).resources[0].name, 'r0');
  const x = await halo('config', 'convert', '--to', 'xml', join(seeds, 'seed004/drbd.conf'));
  assert.equal(x.code, 2);
  assert.match(x.stderr, /converts to json only/);
  const two = await halo(
    'config',
    'convert',
    '--to',
    'xml',
    join(FIXTURES, 'seed003.crm'),
    join(seeds, 'seed004'),
  );
  assert.equal(two.code, 2);
  assert.match(two.stderr, /takes one configuration/);
});

test('config show summarises nodes, resources, constraints and volumes', async () => {
  const r = await halo(
    'config',
    'show',
    join(FIXTURES, 'seed003.crm'),
    join(seeds, 'seed004'),
    join(FIXTURES, 'seed003-drbd.conf'),
  );
  assert.equal(r.code, 0, r.stderr);
  for (const want of [
    /nodes \(3\): doctormoon \(standby\), thelibrary-node1, thelibrary-node2/,
    /ms_drbd: promotable clone of p_drbd \(ocf:linbit:drbd\)/,
    /order o_afterdrbd: ms_drbd:promote then g_all:start \(Mandatory\)/,
    /keepalive 2000 ms, warntime 30000 ms, deadtime 60000 ms, initdead 120000 ms, udpport 697/,
    /drbd0: protocol C/,
    /thelibrary-node2: \/dev\/drbd0 on \/dev\/xvda3, address 192\.168\.42\.44:7788, meta-disk internal/,
  ]) {
    assert.match(r.stdout, want);
  }
});

test('every config command has --help with an example', async () => {
  for (const cmd of ['check', 'convert', 'show']) {
    const r = await halo('config', cmd, '--help');
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`Examples:\\n {2}\\$ halo config ${cmd} `));
  }
});

test('an authkeys readable by others makes check fail with exit code 2', async () => {
  const d = join(tmp, 'open-keys');
  mkdirSync(d);
  for (const f of ['ha.cf', 'haresources', 'authkeys']) copyFileSync(join(seeds, 'seed004', f), join(d, f));
  chmodSync(join(d, 'authkeys'), 0o644);
  const r = await halo('config', 'check', d);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /authkeys:1:1: error: authkeys has mode 644/);
});

test('unreadable and unrecognisable files are errors, not crashes', async () => {
  const missing = await halo('config', 'check', join(tmp, 'nope.crm'));
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.crm: error: cannot read the file \(ENOENT/);
  const odd = join(tmp, 'odd.txt');
  writeFileSync(odd, 'hello world\n');
  const r = await halo('config', 'check', odd);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot tell which format this is; use --format crm\|xml\|heartbeat\|drbd/);
  const forced = await halo('config', 'check', '--format', 'crm', odd);
  assert.equal(forced.code, 2);
  assert.match(forced.stderr, /odd\.txt:1:1: error: unknown crm statement 'hello'/);
});

const PRIM = 'primitive p Dummy\n';
const HOSTS =
  ' on a { device /dev/drbd0; disk /dev/sdb; address 10.0.0.1:7788; meta-disk internal; }\n' +
  ' on b { device /dev/drbd0; disk /dev/sdb; address 10.0.0.2:7788; meta-disk internal; }\n';
const XML_HEAD =
  '<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">\n<configuration>\n<crm_config/>\n<nodes/>\n';

/** [file name, content, expected line of the first error]. Heartbeat names pick the file kind. */
const MALFORMED: readonly (readonly [string, string, number])[] = [
  // crm shell syntax
  ['unknown-statement.crm', `${PRIM}primitve q Dummy\n`, 2],
  ['bad-agent.crm', 'primitive p ocf::Dummy\n', 1],
  ['stray-word.crm', 'primitive p Dummy \\\n  params a=1 \\\n  bogus\n', 3],
  ['open-quote.crm', 'primitive p Dummy params a="x\n', 1],
  ['group-unknown.crm', `${PRIM}group g p nope\n`, 2],
  ['clone-unknown.crm', 'clone c nope\n', 1],
  ['location-no-node.crm', `${PRIM}location l p 100:\n`, 2],
  ['rule-no-value.crm', `${PRIM}location l p rule -inf: pingd lt\n`, 2],
  ['rule-bad-op.crm', `${PRIM}location l p rule -inf: pingd is 3\n`, 2],
  ['colocation-score.crm', `${PRIM}primitive q Dummy\ncolocation c lots: p q\n`, 3],
  ['duplicate.crm', `${PRIM}primitive q Dummy\nprimitive p Dummy\n`, 3],
  ['unclosed-set.crm', `${PRIM}primitive q Dummy\norder o inf: ( p q\n`, 3],
  ['empty-property.crm', 'node n1\nproperty\n', 2],
  ['self-colocation.crm', `${PRIM}colocation c inf: p p\n`, 2],
  ['unknown-in-order.crm', `${PRIM}order o Mandatory: p ghost\n`, 2],
  // CIB XML
  ['unclosed.xml', '<cib>\n<configuration>\n<resources>\n</configuration>\n</cib>\n', 4],
  ['not-xml.xml', 'not xml <', 1],
  [
    'unknown-rsc.xml',
    `${XML_HEAD}<resources/>\n<constraints>\n<rsc_location id="l" rsc="nope" node="n1" score="INFINITY"/>\n</constraints>\n</configuration>\n</cib>\n`,
    7,
  ],
  [
    'dup-id.xml',
    `${XML_HEAD}<resources>\n<primitive id="a" class="ocf" provider="heartbeat" type="Dummy"/>\n<primitive id="a" class="ocf" provider="heartbeat" type="Dummy"/>\n</resources>\n<constraints/>\n</configuration>\n</cib>\n`,
    7,
  ],
  // drbd.conf
  ['unclosed-drbd.conf', `resource r0 {\n${HOSTS}`, 1],
  ['extra-brace-drbd.conf', `resource r0 {\n${HOSTS}}\n}\n`, 5],
  ['semicolon-drbd.conf', 'resource r0 {\n  protocol C\n  on a {\n', 2],
  ['section-drbd.conf', `resource r0 {\n  bogus { a 1; }\n${HOSTS}}\n`, 2],
  [
    'one-host-drbd.conf',
    'resource r0 {\n on a { device /dev/drbd0; disk /dev/sdb; address 10.0.0.1:7788; meta-disk internal; }\n}\n',
    1,
  ],
  ['twice-drbd.conf', `resource r0 {\n${HOSTS}}\nresource r0 {\n${HOSTS}}\n`, 5],
  ['port-drbd.conf', `resource r0 {\n${HOSTS.replace('10.0.0.1:7788', '10.0.0.1:port')}}\n`, 2],
  ['protocol-drbd.conf', `resource r0 {\n protocol Z;\n${HOSTS}}\n`, 2],
  // Heartbeat
  ['hb-time/ha.cf', 'node a b\nbcast eth0\nkeepalive soon\n', 3],
  ['hb-port/ha.cf', 'node a b\nbcast eth0\nudpport http\n', 3],
  ['hb-failback/ha.cf', 'node a b\nbcast eth0\nauto_failback sometimes\n', 3],
  ['hb-mcast/ha.cf', 'node a b\nmcast eth0 225.0.0.1\n', 2],
  ['hb-nonodes/ha.cf', 'bcast eth0\n', 1],
  ['hb-ip/haresources', 'a IPaddr::10.0.0.300x/24\n', 1],
  ['hb-method/authkeys', 'auth 1\n1 rot13 secret\n', 2],
  ['hb-auth/authkeys', 'auth 2\n1 sha1 secret\n', 1],
  ['hb-secret/authkeys', 'auth 1\n\n1 md5\n', 3],
];

test('each of the malformed inputs across the four formats exits 2 and names its line', async () => {
  assert.ok(MALFORMED.length >= 30);
  const dir = join(tmp, 'malformed');
  const goodHaCf = 'node a b\nbcast eth0\nauto_failback off\n';
  for (const [name, content, line] of MALFORMED) {
    const file = join(dir, name);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
    const args = [file];
    if (name.startsWith('hb-') && !name.endsWith('ha.cf')) {
      // haresources and authkeys are checked together with a valid ha.cf, as Heartbeat reads them.
      writeFileSync(join(dirname(file), 'ha.cf'), goodHaCf);
      if (name.endsWith('authkeys')) chmodSync(file, 0o600);
      args.unshift(join(dirname(file), 'ha.cf'));
    }
    const r = await halo('config', 'check', ...args);
    assert.equal(r.code, 2, `${name} was accepted:\n${r.stderr}`);
    const first = r.stderr.split('\n').find((l) => l.includes(': error: '));
    assert.ok(first, `${name}: no error line in\n${r.stderr}`);
    const m = /^(.*):(\d+):(\d+): error: /.exec(first);
    assert.ok(m, `${name}: error line is not FILE:LINE:COL: ${first}`);
    assert.equal(m[1], file, first);
    assert.equal(Number(m[2]), line, `${name}: ${first}`);
  }
});

test("seed 004's drbdlinks.conf is recognised and checked, not 'cannot tell which format'", async () => {
  const file = join(FIXTURES, 'seed004/drbdlinks.conf');
  const r = await halo('config', 'check', file);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /drbdlinks\.conf: ok \(drbdlinks\.conf, 3 link\(s\)\)/);
  const shown = await halo('config', 'show', file);
  assert.match(shown.stdout, /link \/usr\/lib\/cgi-bin -> \/drbd\/usr\/lib\/cgi-bin/);
  const bad = join(tmp, 'drbdlinks.conf');
  writeFileSync(bad, "link('/etc/apache2', '/drbd/etc/apache2')\nlnk('/var/www', '/drbd/var/www')\n");
  const typo = await halo('config', 'check', bad);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /drbdlinks\.conf:2:1: error: expected link\('LOCAL', 'TARGET'\), got: lnk\(/);
});

test("seed 003's corosync.conf is refused with what halo uses instead", async () => {
  const r = await halo('config', 'check', join(FIXTURES, 'seed003-corosync.conf'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /seed003-corosync\.conf: error: this is a corosync\.conf: halo's membership/);
  assert.match(r.stderr, /halo cluster init --from corosync\.conf/);
});

test('config check reports drbd.conf values `halo volume` would refuse, at their resource', async () => {
  const file = join(tmp, 'values-drbd.conf');
  writeFileSync(
    file,
    `resource r0 {\n syncer { rate 33Q; }\n net { after-sb-1pri discard-secundary; }\n${HOSTS}}\n`,
  );
  const r = await halo('config', 'check', file);
  assert.equal(r.code, 2);
  assert.match(
    r.stderr,
    /values-drbd\.conf:1:10: error: resource r0.*after-sb-1pri "discard-secundary" is not one of/,
  );
  assert.doesNotMatch(r.stdout, /: ok/);
  // Each bad value once, not once per host.
  assert.equal(r.stderr.split('\n').filter((l) => /: error:/.test(l)).length, 1, r.stderr);
});

test('config check reads the drbd.conf given beside a configuration to tell which ms holds a mounted DRBD device', async () => {
  const { crm, drbd } = writeSeed003TwoVolumes(tmp);
  const alone = await halo('config', 'check', crm);
  assert.match(
    alone.stderr,
    /Filesystem 'fs_drbd' .*\(or whichever of 'ms_drbd', 'ms_aaa_other' holds \/dev\/drbd0\)/,
  );
  const both = await halo('config', 'check', crm, drbd);
  assert.match(both.stderr, /warning: Filesystem 'fs_drbd' mounts DRBD device \/dev\/drbd0 /);
  assert.doesNotMatch(both.stderr, /whichever of/, 'drbd.conf says /dev/drbd0 is ms_drbd’s');
});
