import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SCENARIOS, scenarioFiles } from '../lab/scenarios.ts';
import type { Diagnostic } from '../lib/errors.ts';
import { repoRoot } from '../lib/repo_root.ts';
import { parseCibXml } from './cib_xml.ts';
import { parseCrm } from './crm.ts';
import { parseDrbdConf } from './drbd_conf.ts';
import { heartbeatToCib } from './heartbeat.ts';
import { drbdDevicesOf, validateCib } from './validate.ts';

/**
 * Builds a CIB whose `<resources>` and `<constraints>` hold the given lines, one element per
 * line, so a test can say which line a finding must name. Line 1 is `<cib>`.
 */
function cibText(resources: string[], constraints: string[] = [], extraConfig: string[] = []): string {
  return [
    '<cib>',
    '  <configuration>',
    '    <crm_config/>',
    '    <nodes>',
    '      <node id="1" uname="n1"/>',
    '    </nodes>',
    '    <resources>',
    ...resources,
    '    </resources>',
    '    <constraints>',
    ...constraints,
    '    </constraints>',
    ...extraConfig,
    '  </configuration>',
    '</cib>',
  ].join('\n');
}
/** Line of the first resource line in `cibText`. */
const R = 8;

function findings(text: string, file = 'cib.xml'): Diagnostic[] {
  const r = parseCibXml(text, file);
  if (!r.ok) assert.fail(r.diagnostics.map((d) => d.message).join('\n'));
  return validateCib(r.cib, r.positions, file);
}

function only(text: string, code: string): Diagnostic {
  const all = findings(text);
  const hits = all.filter((d) => d.code === code);
  assert.equal(hits.length, 1, `expected one ${code}, got ${JSON.stringify(all.map((d) => d.code))}`);
  return hits[0]!;
}

const DUMMY = (id: string): string =>
  `      <primitive id="${id}" class="ocf" provider="heartbeat" type="Dummy"/>`;

test('a valid configuration has no findings', () => {
  const text = cibText(
    [DUMMY('a'), DUMMY('b')],
    [
      '      <rsc_colocation id="c1" rsc="a" with-rsc="b" score="INFINITY"/>',
      '      <rsc_order id="o1" first="a" then="b" kind="Mandatory"/>',
      '      <rsc_location id="l1" rsc="a" node="n1" score="-inf"/>',
    ],
  );
  assert.deepEqual(findings(text), []);
});

test('a constraint naming an unknown resource is reported at the constraint', () => {
  const d = only(
    cibText([DUMMY('a')], ['      <rsc_order id="o1" first="a" then="ghost"/>']),
    'unknown-resource',
  );
  assert.equal(d.pos.line, R + 3);
  assert.equal(d.pos.file, 'cib.xml');
  assert.match(d.message, /rsc_order 'o1' orders then 'ghost'/);
});

test('a resource set naming an unknown resource is reported at the set', () => {
  const text = cibText(
    [DUMMY('a')],
    [
      '      <rsc_colocation id="c1" score="INFINITY">',
      '        <resource_set id="s1">',
      '          <resource_ref id="a"/>',
      '          <resource_ref id="nobody"/>',
      '        </resource_set>',
      '      </rsc_colocation>',
    ],
  );
  const d = only(text, 'unknown-resource');
  assert.equal(d.pos.line, R + 4);
});

test('an id written twice is reported at its second use, naming the first', () => {
  const d = only(cibText([DUMMY('a'), DUMMY('b'), DUMMY('a')]), 'duplicate-id');
  assert.equal(d.pos.line, R + 2);
  assert.match(d.message, new RegExp(`already used at ${R}:7`));
});

test('a node and a resource may share an id, as in Pacemaker', () => {
  assert.deepEqual(findings(cibText([DUMMY('1')])), []);
});

test('an empty group is reported at the group', () => {
  const d = only(cibText([DUMMY('a'), '      <group id="g"/>']), 'empty-group');
  assert.equal(d.pos.line, R + 1);
});

test('an invalid score is reported at the constraint or rule that holds it', () => {
  const d = only(
    cibText([DUMMY('a')], ['      <rsc_location id="l1" rsc="a" node="n1" score="lots"/>']),
    'invalid-score',
  );
  assert.equal(d.pos.line, R + 3);
  assert.match(d.message, /'lots' is not a score/);
  const text = cibText(
    [DUMMY('a')],
    [
      '      <rsc_location id="l2" rsc="a">',
      '        <rule id="l2-r" score="1O0">',
      '          <expression id="l2-e" attribute="x" operation="defined"/>',
      '        </rule>',
      '      </rsc_location>',
    ],
  );
  assert.equal(only(text, 'invalid-score').pos.line, R + 4);
});

test('an invalid interval or timeout is reported at the operation', () => {
  const text = cibText([
    '      <primitive id="a" class="ocf" provider="heartbeat" type="Dummy">',
    '        <operations>',
    '          <op id="a-start" name="start" interval="0" timeout="20s"/>',
    '          <op id="a-mon" name="monitor" interval="10 parsecs" timeout="P10S"/>',
    '        </operations>',
    '      </primitive>',
  ]);
  const d = only(text, 'invalid-duration');
  assert.equal(d.pos.line, R + 3);
  assert.match(d.message, /interval of operation 'a-mon'/);
});

test('a resource colocated with itself, or ordered after itself, is reported', () => {
  const text = cibText(
    [DUMMY('a')],
    [
      '      <rsc_colocation id="c1" rsc="a" with-rsc="a" score="INFINITY"/>',
      '      <rsc_order id="o1" first="a" then="a"/>',
      '      <rsc_order id="o2" first="a" first-action="start" then="a" then-action="promote"/>',
    ],
  );
  assert.equal(only(text, 'self-colocation').pos.line, R + 3);
  assert.equal(only(text, 'self-order').pos.line, R + 4);
});

test('an lsb agent in a promotable clone is reported at the clone', () => {
  const text = cibText([
    '      <clone id="ms">',
    '        <meta_attributes id="ms-m">',
    '          <nvpair id="ms-p" name="promotable" value="true"/>',
    '        </meta_attributes>',
    '        <primitive id="web" class="lsb" type="nginx"/>',
    '      </clone>',
    '      <master id="ms2">',
    '        <primitive id="db" class="ocf" provider="pacemaker" type="Stateful"/>',
    '      </master>',
  ]);
  const d = only(text, 'promotable-agent');
  assert.equal(d.pos.line, R);
  assert.match(d.message, /'web' of class 'lsb'/);
});

test('an unknown rule operation is reported at the expression', () => {
  const text = cibText(
    [DUMMY('a')],
    [
      '      <rsc_location id="l1" rsc="a">',
      '        <rule id="l1-r" score="-INFINITY" boolean-op="xor">',
      '          <expression id="l1-e" attribute="pingd" operation="below" value="1"/>',
      '        </rule>',
      '      </rsc_location>',
    ],
  );
  assert.equal(only(text, 'unknown-expression-op').pos.line, R + 5);
  assert.equal(only(text, 'unknown-boolean-op').pos.line, R + 4);
});

test('an order with an unknown kind and a primitive with an unknown template are reported', () => {
  const text = cibText(
    ['      <primitive id="a" template="no-such-template"/>'],
    [
      '      <rsc_order id="o1" first="a" then="a" first-action="start" then-action="promote" kind="Always"/>',
    ],
  );
  assert.equal(only(text, 'invalid-order-kind').pos.line, R + 3);
  assert.equal(only(text, 'unknown-template').pos.line, R);
});

test('a location for a node not in <nodes> is a warning, not an error', () => {
  const d = only(
    cibText([DUMMY('a')], ['      <rsc_location id="l1" rsc="a" node="n9" score="10"/>']),
    'unknown-node',
  );
  assert.equal(d.severity, 'warning');
  assert.equal(d.pos.line, R + 3);
});

test('constraints may name templates, bundles and tags', () => {
  const text = cibText(
    [
      '      <template id="t" class="ocf" provider="heartbeat" type="Dummy"/>',
      '      <bundle id="b">',
      '        <docker image="x"/>',
      '        <primitive id="b-inner" class="ocf" provider="heartbeat" type="apache"/>',
      '      </bundle>',
    ],
    [
      '      <rsc_order id="o1" first="t" then="b"/>',
      '      <rsc_colocation id="c1" rsc="b-inner" with-rsc="tagged" score="10"/>',
    ],
    ['    <tags>', '      <tag id="tagged">', '        <obj_ref id="t"/>', '      </tag>', '    </tags>'],
  );
  assert.deepEqual(findings(text), []);
});

test('a clone of a clone and a group inside a group are rejected by the parser at the inner element', () => {
  const clone = cibText([
    '      <clone id="outer">',
    '        <clone id="inner">',
    '          <primitive id="p" class="ocf" provider="heartbeat" type="Dummy"/>',
    '        </clone>',
    '      </clone>',
  ]);
  const r = parseCibXml(clone, 'c.xml');
  assert.equal(r.ok, false);
  assert.deepEqual(
    r.ok ? [] : r.diagnostics.filter((d) => d.code === 'clone-of-clone').map((d) => d.pos.line),
    [R + 1],
  );
  const group = cibText(['      <group id="g1">', '        <group id="g2"/>', '      </group>']);
  const g = parseCibXml(group, 'g.xml');
  assert.equal(g.ok ? '' : g.diagnostics[0]?.code, 'group-member-kind');
  assert.equal(g.ok ? 0 : g.diagnostics[0]?.pos.line, R + 1);
});

test('words outside Pacemaker vocabularies (roles, actions, on-fail, loss-policy, types) are reported where written', () => {
  const text = cibText(
    [
      '      <primitive id="a" class="ocf" provider="heartbeat" type="Dummy">',
      '        <operations>',
      '          <op id="a-mon" name="monitor" interval="10s" role="Leader" on-fail="panic"/>',
      '        </operations>',
      '      </primitive>',
      DUMMY('b'),
    ],
    [
      '      <rsc_colocation id="c1" rsc="a" with-rsc="b" with-rsc-role="master" score="10"/>',
      '      <rsc_order id="o1" first="a" first-action="begin" then="b"/>',
      '      <rsc_ticket id="t1" ticket="T" rsc="a" loss-policy="explode"/>',
      '      <rsc_location id="l1" rsc="a" resource-discovery="sometimes">',
      '        <rule id="l1-r" score="10">',
      '          <expression id="l1-e" attribute="x" operation="gt" value="1" type="float"/>',
      '        </rule>',
      '      </rsc_location>',
    ],
  );
  // with-rsc-role="master" is fine: Pacemaker compares roles without regard to case.
  const got = findings(text).map((d) => [d.code, d.pos.line]);
  assert.deepEqual(got, [
    ['unknown-role', R + 2],
    ['unknown-on-fail', R + 2],
    ['unknown-action', R + 9],
    ['unknown-loss-policy', R + 10],
    ['unknown-resource-discovery', R + 11],
    ['unknown-expression-type', R + 13],
  ]);
});

test('a CIB with many mistakes gets one finding per mistake, each at its line, in file order', () => {
  const text = repoFile('src/cib/testdata/xml/bad_semantics.xml');
  assert.deepEqual(
    findings(text, 'bad_semantics.xml').map((d) => `${d.pos.file}:${d.pos.line}:${d.pos.column} ${d.code}`),
    [
      'bad_semantics.xml:11:11 invalid-duration',
      'bad_semantics.xml:14:7 empty-group',
      'bad_semantics.xml:15:7 promotable-agent',
      'bad_semantics.xml:21:7 duplicate-id',
      'bad_semantics.xml:24:7 self-colocation',
      'bad_semantics.xml:25:7 unknown-resource',
      'bad_semantics.xml:26:7 invalid-score',
      'bad_semantics.xml:29:11 unknown-expression-op',
    ],
  );
});

test('a location constraint with a node but no score, or with nothing at all, is reported', () => {
  const text = cibText(
    [DUMMY('a')],
    ['      <rsc_location id="l1" rsc="a" node="n1"/>', '      <rsc_location id="l2" rsc="a" score="10"/>'],
  );
  assert.deepEqual(
    findings(text).map((d) => [d.code, d.pos.line]),
    [
      ['location-without-node', R + 3],
      ['location-without-node', R + 4],
    ],
  );
});

test("a misspelt meta attribute (seed 003's ms with master-node-mx) is warned about with the likely name", () => {
  const text =
    'primitive p_drbd ocf:linbit:drbd params drbd_resource=drbd0\n' +
    'ms ms_drbd p_drbd meta master-max=1 master-node-mx=1 clone-max=2 target_role=Started notify=true\n';
  const r = parseCrm(text, 'seed.crm');
  assert.ok(r.ok);
  const w = validateCib(r.cib, r.positions, 'seed.crm').filter((d) => d.code === 'unknown-meta-attribute');
  assert.equal(w.length, 1, w.map((d) => d.message).join('\n'));
  assert.equal(w[0]!.severity, 'warning');
  assert.equal(w[0]!.pos.line, 2);
  assert.match(
    w[0]!.message,
    /meta attribute 'master-node-mx' of 'ms_drbd' .*did you mean 'master-node-max'/,
  );
});

// ---------------------------------------------------------------------------------------------
// Filesystems on DRBD devices

/** A file of this package's tree (the test runs from src/ or dist/; fixtures stay in src/). */
function repoFile(rel: string): string {
  return readFileSync(join(repoRoot(), rel), 'utf8');
}

function crmFindings(
  text: string,
  file = 'seed.crm',
  drbdDevices?: ReadonlyMap<string, string>,
): Diagnostic[] {
  const r = parseCrm(text, file);
  if (!r.ok) assert.fail(r.diagnostics.map((d) => d.message).join('\n'));
  return validateCib(r.cib, r.positions, file, drbdDevices ? { drbdDevices } : {});
}

const DRBD_FS = 'drbd-filesystem-unguarded';
const drbdFsWarnings = (ds: readonly Diagnostic[]): Diagnostic[] => ds.filter((d) => d.code === DRBD_FS);

test("seed 003's configuration, which mounts /dev/drbd0 with no constraint, is warned about with the crm lines that fix it", () => {
  const text = repoFile('src/cib/fixtures/seed003-show-resources.crm');
  const w = drbdFsWarnings(crmFindings(text));
  assert.equal(w.length, 1, JSON.stringify(w));
  assert.equal(w[0]!.severity, 'warning');
  assert.equal(w[0]!.pos.line, 1, 'at the primitive fs_drbd line');
  assert.match(w[0]!.message, /^Filesystem 'fs_drbd' mounts DRBD device \/dev\/drbd0 /);
  assert.match(w[0]!.message, /not colocated with the Master \(Promoted\) role of 'ms_drbd'/);
  assert.match(w[0]!.message, /where the volume is Secondary, or while another node is Primary/);
  assert.ok(
    w[0]!.message.includes('colocation c_fs_drbd_on_ms_drbd inf: fs_drbd ms_drbd:Master'),
    w[0]!.message,
  );
  assert.ok(
    w[0]!.message.includes('order o_ms_drbd_before_fs_drbd inf: ms_drbd:promote fs_drbd:start'),
    w[0]!.message,
  );
});

test("seed 003's configuration with the two suggested lines added has no DRBD filesystem warning", () => {
  const text = `${repoFile('src/cib/fixtures/seed003-show-resources.crm')}
colocation c_fs_drbd_on_ms_drbd inf: fs_drbd ms_drbd:Master
order o_ms_drbd_before_fs_drbd inf: ms_drbd:promote fs_drbd:start
`;
  assert.deepEqual(drbdFsWarnings(crmFindings(text)), []);
});

test('a Filesystem on DRBD inside a group that is colocated with and ordered after the promoted ms is not warned about', () => {
  const text = repoFile('src/cib/fixtures/seed003-show-resources.crm').replace(
    'group g_all p_sip p_nginx p_mysql',
    'group g_all fs_drbd p_sip p_nginx p_mysql',
  );
  assert.ok(text.includes('group g_all fs_drbd'));
  assert.deepEqual(drbdFsWarnings(crmFindings(text)), []);
});

test('a colocation without the order, or with the Slave role, still warns and names only what is missing', () => {
  const base = `primitive p_drbd ocf:linbit:drbd params drbd_resource=r0
ms ms_drbd p_drbd meta notify=true
primitive fs ocf:heartbeat:Filesystem params device=/dev/drbd/by-res/r0/0 directory=/srv fstype=ext4
`;
  const noOrder = drbdFsWarnings(crmFindings(`${base}colocation c1 inf: fs ms_drbd:Master\n`));
  assert.equal(noOrder.length, 1);
  assert.doesNotMatch(noOrder[0]!.message, /not colocated|colocation /);
  assert.match(noOrder[0]!.message, /add: order o_ms_drbd_before_fs inf: ms_drbd:promote fs:start$/);
  const slave = drbdFsWarnings(
    crmFindings(`${base}colocation c1 inf: fs ms_drbd:Slave\norder o1 inf: ms_drbd:promote fs:start\n`),
  );
  assert.equal(slave.length, 1);
  assert.match(slave[0]!.message, /add: colocation c_fs_on_ms_drbd inf: fs ms_drbd:Master$/);
  const advisory = drbdFsWarnings(
    crmFindings(`${base}colocation c1 100: fs ms_drbd:Master\norder o1 inf: ms_drbd:promote fs:start\n`),
  );
  assert.equal(advisory.length, 1, 'a finite colocation score lets the cluster mount it elsewhere');
});

test('a Filesystem on a device drbd.conf names, or on a DRBD agent device_link, is recognised; other devices are not', () => {
  const text = `primitive p_drbd ocf:linbit:drbd params drbd_resource=r0 device_link=/run/lab/dev/r0
ms ms_drbd p_drbd
primitive fs_a ocf:heartbeat:Filesystem params device=/dev/vg0/replicated directory=/a fstype=ext4
primitive fs_b ocf:heartbeat:Filesystem params device=/run/lab/dev/r0 directory=/b fstype=ext4
primitive fs_c ocf:heartbeat:Filesystem params device=/dev/sdb1 directory=/c fstype=ext4
`;
  const ids = (ds: readonly Diagnostic[]): string[] =>
    drbdFsWarnings(ds).map((d) => /^Filesystem '([^']+)'/.exec(d.message)![1]!);
  assert.deepEqual(ids(crmFindings(text)), ['fs_b']);
  assert.deepEqual(ids(crmFindings(text, 'x.crm', new Map([['/dev/vg0/replicated', 'r0']]))), [
    'fs_a',
    'fs_b',
  ]);
});

test('a Filesystem on DRBD with no DRBD resource in the cluster at all is warned about with a complete example', () => {
  const w = drbdFsWarnings(
    crmFindings('primitive fs ocf:heartbeat:Filesystem params device=/dev/drbd1 directory=/srv fstype=xfs\n'),
  );
  assert.equal(w.length, 1);
  assert.match(w[0]!.message, /no promotable clone of a DRBD agent/);
  assert.match(w[0]!.message, /ms ms_drbd p_drbd/);
});

test('Heartbeat haresources lines with drbddisk before Filesystem (seeds 002 and 004) are not warned about; without drbddisk they are', () => {
  const haCf = { text: 'node n1\nnode n2\nbcast eth0\n', file: 'ha.cf' };
  const check = (line: string): Diagnostic[] => {
    const r = heartbeatToCib({ haCf, haresources: { text: `${line}\n`, file: 'haresources' } }).cib;
    if (!r.ok) assert.fail(r.diagnostics.map((d) => d.message).join('\n'));
    return drbdFsWarnings(validateCib(r.cib, r.positions, 'haresources'));
  };
  for (const seed of ['seed002', 'seed004']) {
    const line = repoFile(`src/cib/fixtures/${seed}/haresources`)
      .split('\n')
      .find((l) => l.includes('drbddisk::') && l.includes('Filesystem::'));
    assert.ok(line, `${seed}'s haresources line`);
    assert.deepEqual(check(line.replace(/^\S+/, 'n1')), [], seed);
  }
  assert.equal(check('n1 Filesystem::/dev/drbd0::/data::ext3 nfs-kernel-server').length, 1);
  const late = check('n1 Filesystem::/dev/drbd0::/data::ext3 drbddisk::r0');
  assert.equal(late.length, 1, 'drbddisk after the mount');
  assert.match(
    late[0]!.message,
    /before 'drbddisk_r0' makes it Primary: .*move 'drbddisk_r0' before 'fs_data'/,
  );
});

test("the lab's scenarios (web, seed-003, seed-004) have no DRBD filesystem warning", () => {
  for (const name of SCENARIOS) {
    const { files } = scenarioFiles(name, ['n1', 'n2']);
    let ds: Diagnostic[];
    if (files['cib.crm'] !== undefined) ds = crmFindings(files['cib.crm'], `${name}/cib.crm`);
    else {
      const r = heartbeatToCib({
        haCf: { text: files['ha.cf']!, file: 'ha.cf' },
        haresources: { text: files.haresources!, file: 'haresources' },
      }).cib;
      if (!r.ok) assert.fail(r.diagnostics.map((d) => d.message).join('\n'));
      // The lab's drbd.conf names the device the Filesystem mounts: recognised, and still guarded.
      const device = /Filesystem::([^:]+)::/.exec(files.haresources!)![1]!;
      ds = validateCib(r.cib, r.positions, 'haresources', { drbdDevices: new Map([[device, 'r0']]) });
    }
    assert.deepEqual(drbdFsWarnings(ds), [], name);
  }
});

test('the drbd-filesystem check accepts set-based constraints and cloned drbddisk under a cluster filesystem', () => {
  const sets = drbdFsWarnings(
    findings(
      cibText(
        [
          '      <master id="ms"><primitive id="d" class="ocf" provider="linbit" type="drbd"/></master>',
          '      <primitive id="fs" class="ocf" provider="heartbeat" type="Filesystem"><instance_attributes id="fs-ia"><nvpair id="fs-dev" name="device" value="/dev/drbd0"/></instance_attributes></primitive>',
        ],
        [
          '      <rsc_colocation id="c" score="INFINITY"><resource_set id="s1"><resource_ref id="fs"/></resource_set><resource_set id="s2" role="Promoted"><resource_ref id="ms"/></resource_set></rsc_colocation>',
          '      <rsc_order id="o"><resource_set id="s3" action="promote"><resource_ref id="ms"/></resource_set><resource_set id="s4"><resource_ref id="fs"/></resource_set></rsc_order>',
        ],
      ),
    ),
  );
  assert.deepEqual(sets, []);
  const ocfs2 = crmFindings(`primitive dd heartbeat:drbddisk params 1=r0
clone cl_dd dd
primitive fs ocf:heartbeat:Filesystem params device=/dev/drbd0 directory=/shared fstype=ocfs2
clone cl_fs fs
colocation c inf: cl_fs cl_dd
order o inf: cl_dd cl_fs
`);
  assert.deepEqual(drbdFsWarnings(ocfs2), []);
});

test("with seed 003's drbd.conf, the warning names the ms whose drbd_resource holds the device", () => {
  const drbd = parseDrbdConf(repoFile('src/cib/fixtures/seed003-drbd.conf'), 'drbd.conf');
  assert.ok(drbd.ok);
  const devices = drbdDevicesOf([drbd.config]);
  assert.equal(devices.get('/dev/drbd0'), 'drbd0');
  const text = `${repoFile('src/cib/fixtures/seed003-show-resources.crm')}
primitive p_other ocf:linbit:drbd params drbd_resource=other
ms ms_aaa_other p_other
`;
  const without = drbdFsWarnings(crmFindings(text));
  assert.match(without[0]!.message, /or whichever of 'ms_drbd', 'ms_aaa_other' holds \/dev\/drbd0/);
  const w = drbdFsWarnings(crmFindings(text, 'seed.crm', devices));
  assert.equal(w.length, 1);
  assert.doesNotMatch(w[0]!.message, /whichever|ms_aaa_other/);
  assert.match(w[0]!.message, /ms_drbd:promote fs_drbd:start/);
});
