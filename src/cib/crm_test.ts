import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../lib/repo_root.ts';
import { parseCibXml } from './cib_xml.ts';
import { LEGACY_CRM_SCHEMA, normalizeTypography, parseCrm, serializeCrm, serializeCrmReport } from './crm.ts';
import type {
  Cib,
  Clone,
  ColocationConstraint,
  Group,
  LocationConstraint,
  OrderConstraint,
  Primitive,
} from './model.ts';
import type { CibParseResult } from './parse_result.ts';

const FIXTURES = join(repoRoot(), 'src/cib/fixtures');

function ok(r: CibParseResult): Extract<CibParseResult, { ok: true }> {
  if (!r.ok) assert.fail(r.diagnostics.map((d) => `${d.pos.line}:${d.pos.column} ${d.message}`).join('\n'));
  return r;
}

function roundTrip(text: string): Cib {
  const first = ok(parseCrm(text, 'in.crm')).cib;
  const written = serializeCrm(first);
  const second = ok(parseCrm(written, 'out.crm')).cib;
  assert.deepEqual(second, first, `round trip changed the model; serialized text was:\n${written}`);
  assert.equal(serializeCrm(second), written, 'serializing twice gives different text');
  return first;
}

test("seed 003's crm configure show output parses, with ids generated as crmsh generates them", () => {
  const r = ok(parseCrm(readFileSync(join(FIXTURES, 'seed003.crm'), 'utf8'), 'seed003.crm'));
  const c = r.cib.configuration;
  assert.deepEqual(
    c.nodes.map((n) => n.uname),
    ['doctormoon', 'thelibrary-node1', 'thelibrary-node2'],
  );
  assert.equal(c.nodes[0]!.instanceAttributes[0]!.id, 'doctormoon-instance_attributes');
  assert.deepEqual(c.nodes[0]!.instanceAttributes[0]!.pairs[0], {
    id: 'doctormoon-instance_attributes-standby',
    name: 'standby',
    value: 'on',
  });
  assert.deepEqual(
    c.resources.map((x) => x.id),
    ['fs_drbd', 'ms_drbd', 'g_all', 'cl_pingtest'],
  );
  const ms = c.resources[1] as Clone;
  assert.equal(ms.legacyMaster, true);
  assert.equal(ms.child.id, 'p_drbd');
  const g = c.resources[2] as Group;
  assert.deepEqual(
    g.members.map((m) => m.id),
    ['p_sip', 'p_nginx', 'p_mysql'],
  );
  const sip = g.members[0]!;
  assert.equal(sip.instanceAttributes[0]!.id, 'p_sip-instance_attributes');
  assert.deepEqual(
    sip.instanceAttributes[0]!.pairs.map((p) => [p.id, p.value]),
    [
      ['p_sip-instance_attributes-ip', '192.168.42.23'],
      ['p_sip-instance_attributes-nic', 'eth0'],
    ],
  );
  assert.deepEqual(sip.operations[0], {
    id: 'p_sip-monitor-10',
    name: 'monitor',
    interval: '10',
    timeout: '20',
    instanceAttributes: [],
    metaAttributes: [],
  });
  const ping = (c.resources[3] as Clone).child as Primitive;
  assert.equal(ping.instanceAttributes[0]!.pairs[1]!.value, '8.8.8.8 193.99.144.80 89.18.172.97');
  const props = c.crmConfig[0]!;
  assert.equal(props.id, 'cib-bootstrap-options');
  assert.ok(props.pairs.some((p) => p.id === 'cib-bootstrap-options-no-quorum-policy' && p.value === 'stop'));
  const order = c.constraints[0] as OrderConstraint;
  assert.deepEqual(
    [order.first, order.firstAction, order.then, order.thenAction, order.orderKind],
    ['ms_drbd', 'promote', 'g_all', 'start', 'Mandatory'],
  );
  const col = c.constraints[1] as ColocationConstraint;
  assert.deepEqual(
    [col.rsc, col.withRsc, col.withRscRole, col.score],
    ['g_all', 'ms_drbd', 'Master', 'INFINITY'],
  );
  const loc = c.constraints[2] as LocationConstraint;
  const rule = loc.rules[0]!;
  assert.deepEqual([rule.id, rule.score, rule.booleanOp], ['l_all_ping-rule', '-INFINITY', 'or']);
  assert.deepEqual(
    rule.expressions.map((e) => (e.kind === 'expression' ? [e.id, e.attribute, e.operation, e.value] : [])),
    [
      ['l_all_ping-rule-expression', 'pingd', 'not_defined', undefined],
      ['l_all_ping-rule-expression-0', 'pingd', 'lt', '1000'],
    ],
  );
  assert.equal(r.positions.get('p_sip')?.line, 31);
  assert.equal(r.positions.get('l_all_ping')?.line, 44);
});

test('the typographic quotes of seed 003 are accepted with one warning that names the lines', () => {
  const r = ok(parseCrm(readFileSync(join(FIXTURES, 'seed003-show-properties.crm'), 'utf8'), 'props.crm'));
  const w = r.warnings.filter((d) => d.code === 'typographic-character');
  assert.equal(w.length, 1);
  assert.equal(w[0]!.pos.line, 2);
  assert.equal(w[0]!.pos.column, 20);
  assert.match(w[0]!.message, /lines 2, 5, 6/);
  assert.equal(normalizeTypography('x=\u201dy\u2033 \u2013inf').text, 'x="y" -inf');
  const dashed = ok(parseCrm('primitive p Dummy\nlocation l p rule \u2013inf: defined pingd\n', 'dash.crm'));
  const rule = (dashed.cib.configuration.constraints[0] as LocationConstraint).rules[0]!;
  assert.equal(rule.score, '-INFINITY', 'an en dash before inf is a minus');
  assert.deepEqual(
    dashed.warnings.map((w) => [w.code, w.pos.line, w.pos.column]),
    [['typographic-character', 2, 19]],
  );
  assert.equal(normalizeTypography('d="a\u2013b"').text, 'd="a\u2013b"', 'text inside real quotes is data');
});

test('both seed 003 listings round-trip crm to model to crm to model unchanged', () => {
  for (const f of ['seed003.crm', 'seed003-show-properties.crm', 'seed003-show-resources.crm']) {
    roundTrip(readFileSync(join(FIXTURES, f), 'utf8'));
  }
});

test('Pacemaker 1 properties make the CIB carry an older schema so Pacemaker 2 upgrades it', () => {
  const r = ok(parseCrm('property default-resource-stickiness=100\n', 'x.crm'));
  assert.ok(r.cib.attrs.some(([k, v]) => k === 'validate-with' && v === LEGACY_CRM_SCHEMA));
  assert.ok(r.warnings.some((w) => w.code === 'crm-legacy-property' && w.pos.line === 1));
  const modern = ok(parseCrm('property stonith-enabled=false\n', 'x.crm'));
  assert.ok(modern.cib.attrs.some(([k, v]) => k === 'validate-with' && v === 'pacemaker-3.9'));
});

const FEATURES = `node $id=n1id node1 \\
\tattributes standby=off site=a \\
\tutilization cpu=4
node 2: node2
node remote1:remote description="a remote node"
rsc_template tpl ocf:heartbeat:Dummy \\
\tparams state=/run/x \\
\top monitor interval=30s
primitive d1 @tpl
primitive d2 ocf:pacemaker:Dummy description="two words" \\
\tparams $id=d2-params fake=1 \\
\tparams other="a \\"quoted\\" value" \\
\tmeta target-role=Stopped \\
\tutilization cpu=1 \\
\top monitor interval=10s timeout=20s role=Promoted on-fail=restart OCF_CHECK_LEVEL=10 \\
\top start interval=0 timeout=60s \\
\top start id=d2-start-custom interval=5s
primitive d3 ocf:pacemaker:Dummy
# a comment about d4
primitive d4 lsb:nginx
primitive st stonith:fence_ipmilan params ip=10.0.0.9
group g1 d3 d4 meta target-role=Started
clone c1 g1 meta interleave=true
clone p1 d2 meta promotable=true
location loc1 d1 200: node1
location loc2 d1 role=Started resource-discovery=never -inf: node2
location loc3 /^d[0-9]$/ \\
\trule $role=Promoted 100: #uname eq node1 and site string:ne b \\
\trule pingd: defined pingd \\
\trule -inf: date gt 2030-01-01 or date in_range start=2020-01-01 end=2020-02-01 or date date_spec hours=9-16 weekdays=1-5
colocation col1 -100: d1 d2:Promoted node-attribute=site
colocation col2 inf: ( d1 d3 ) p1:Promoted
order o1 Optional: d1 d2 symmetrical=false
order o2 Serialize: d1 [ d2 d3 ] d4:stop
order o3 -5: d1 d2
order o4 0: d1 d2
rsc_ticket t1 ticketA: d1:Started loss-policy=stop
rsc_ticket t2 ticketB: d1 d2
property stonith-enabled=true
property no-quorum-policy=freeze
property other-set: cluster-name=x
rsc_defaults resource-stickiness=100
op_defaults timeout=30s
fencing_topology node1: st node2: st,st
tag tg1: d1 d2
alert a1 /usr/share/pacemaker/alerts/alert_file.sh.sample \\
\tattributes timestamp-format="%H:%M" \\
\tmeta timeout=10s \\
\tto /var/log/a.log \\
\tto { /var/log/b.log attributes x=1 meta timeout=5s }
alert a2 /bin/true description=second select nodes fencing attributes { standby shutdown } to 10.0.0.1
role app1_admin write meta:d1:target-role read ref:d1 deny xpath:"//nodes" read tag:nodes attribute:standby
role mon description="monitoring" read xpath:/cib
acl_target alice app1_admin mon
acl_group admins mon
`;

test('a configuration using every crm construct halo supports round-trips unchanged', () => {
  const cib = roundTrip(FEATURES);
  const c = cib.configuration;
  assert.deepEqual(
    c.nodes.map((n) => [n.id, n.uname, n.type]),
    [
      ['n1id', 'node1', undefined],
      ['2', 'node2', undefined],
      ['remote1', 'remote1', 'remote'],
    ],
  );
  assert.equal(c.nodes[0]!.utilization[0]!.id, 'node1-utilization');
  const d2 = c.resources.find((r) => r.id === 'p1') as Clone;
  const p = d2.child as Primitive;
  assert.deepEqual(
    p.instanceAttributes.map((s) => s.id),
    ['d2-params', 'd2-instance_attributes'],
  );
  assert.equal(p.instanceAttributes[1]!.pairs[0]!.value, 'a "quoted" value');
  assert.deepEqual(
    p.operations.map((o) => o.id),
    ['d2-monitor-10s', 'd2-start-0', 'd2-start-custom'],
  );
  assert.equal(
    p.operations[0]!.instanceAttributes[0]!.pairs[0]!.id,
    'd2-monitor-10s-instance_attributes-OCF_CHECK_LEVEL',
  );
  const g = (c.resources.find((r) => r.id === 'c1') as Clone).child as Group;
  assert.deepEqual(g.members[1]!.comments, ['a comment about d4']);
  const o2 = c.constraints.find((k) => k.id === 'o2') as OrderConstraint;
  assert.deepEqual(
    o2.sets.map((s) => [s.id, s.resources, s.requireAll, s.sequential, s.action]),
    [
      ['o2-0', ['d1'], undefined, undefined, undefined],
      ['o2-1', ['d2', 'd3'], 'false', 'false', undefined],
      ['o2-2', ['d4'], undefined, undefined, 'stop'],
    ],
  );
  const o3 = c.constraints.find((k) => k.id === 'o3') as OrderConstraint;
  assert.deepEqual([o3.score, o3.orderKind], ['-5', undefined]);
  const o4 = c.constraints.find((k) => k.id === 'o4') as OrderConstraint;
  assert.equal(o4.orderKind, 'Optional');
  const loc3 = c.constraints.find((k) => k.id === 'loc3') as LocationConstraint;
  assert.equal(loc3.rscPattern, '^d[0-9]$');
  assert.deepEqual(
    loc3.rules.map((r) => [r.id, r.role, r.score, r.scoreAttribute]),
    [
      ['loc3-rule', 'Promoted', '100', undefined],
      ['loc3-rule-0', undefined, undefined, 'pingd'],
      ['loc3-rule-1', undefined, '-INFINITY', undefined],
    ],
  );
  assert.equal(c.crmConfig.length, 2, 'two property statements without an id share cib-bootstrap-options');
  assert.deepEqual(
    c.fencingTopology.map((l) => [l.id, l.target, l.index, l.devices]),
    [
      ['fencing', 'node1', '1', 'st'],
      ['fencing-0', 'node2', '1', 'st,st'],
    ],
  );
});

test('a colocation with a resource set keeps roles per set', () => {
  const c = roundTrip(
    'primitive a Dummy\nprimitive b Dummy\nprimitive m Dummy\nms ms1 m\ncolocation c inf: a b ms1:Master\n',
  ).configuration;
  const col = c.constraints[0] as ColocationConstraint;
  assert.deepEqual(
    col.sets.map((s) => [s.resources, s.role]),
    [
      [['a', 'b'], undefined],
      [['ms1'], 'Master'],
    ],
  );
});

test('bad crm input is rejected with the line and column of the mistake, and nothing else is lost', () => {
  const cases: [string, number, number, RegExp][] = [
    ['primitive p1 ocf:heartbeat:Dummy\nprimitve p2 Dummy\n', 2, 1, /unknown crm statement 'primitve'/],
    ['primitive p1 ocf::Dummy\n', 1, 14, /not a resource agent/],
    ['primitive p1 Dummy \\\n  params a=1 \\\n  bogus\n', 3, 3, /unexpected 'bogus'/],
    ['primitive p1 Dummy params a="x\n', 1, 27, /never closed/],
    ['group g1 nope\n', 1, 10, /member 'nope' is not defined/],
    ['location l1 p1 inf\n', 1, 16, /unexpected 'inf'/],
    ['primitive p Dummy\nlocation l1 p rule -inf: pingd lt\n', 2, 32, /needs a value/],
    ['primitive p Dummy\nlocation l1 p rule -inf: pingd foo 3\n', 2, 32, /not an operator/],
    ['primitive p Dummy\nprimitive q Dummy\ncolocation c1 lots: p q\n', 3, 15, /not a score/],
    ['primitive p Dummy\nprimitive p Dummy\n', 2, 11, /already used/],
    ['primitive p Dummy\norder o1 inf: ( p\n', 2, 15, /never closed/],
    [
      'primitive p Dummy\nlocation l p rule -inf: defined a and defined b or defined c\n',
      2,
      49,
      /cannot mix/,
    ],
    ['property\n', 1, 1, /sets nothing/],
  ];
  for (const [text, line, column, re] of cases) {
    const r = parseCrm(text, 'bad.crm');
    assert.equal(r.ok, false, `accepted: ${text}`);
    if (r.ok) continue;
    const e = r.diagnostics.find((d) => d.severity === 'error')!;
    assert.match(e.message, re, text);
    assert.deepEqual(
      [e.pos.file, e.pos.line, e.pos.column],
      ['bad.crm', line, column],
      `${text} → ${e.message}`,
    );
  }
});

test('crm output reports what crm syntax cannot express instead of dropping it silently', () => {
  const cib = ok(parseCrm('primitive p Dummy\n', 'x.crm')).cib;
  const withBundle: Cib = {
    ...cib,
    configuration: {
      ...cib.configuration,
      resources: [
        ...cib.configuration.resources,
        {
          kind: 'bundle',
          id: 'b1',
          xml: { type: 'element', name: 'bundle', attrs: [['id', 'b1']], children: [] },
        },
      ],
    },
  };
  const r = serializeCrmReport(withBundle);
  assert.deepEqual(r.unsupported, ["bundle 'b1'"]);
  assert.match(r.text, /# halo: not expressible in crm syntax, left out: bundle 'b1'/);
});

/** A configuration crmsh 4.4 itself accepts in one `load update` (it rejects two `property` lines). */
const CRMSH_CONFORMANCE = `node $id=n1id node1 \\
\tattributes standby=off site=a \\
\tutilization cpu=4
node 2: node2
rsc_template tpl ocf:heartbeat:Dummy \\
\tparams state=/run/x \\
\top monitor interval=30s
primitive d1 @tpl
primitive d2 ocf:pacemaker:Stateful description="two words" \\
\tparams $id=d2-params fake=1 \\
\tparams other="a b" \\
\tmeta target-role=Stopped \\
\tutilization cpu=1 \\
\top monitor interval=10s timeout=20s role=Promoted on-fail=restart OCF_CHECK_LEVEL=10 \\
\top start interval=0 timeout=60s
primitive d3 ocf:pacemaker:Dummy
primitive d4 ocf:heartbeat:Dummy
primitive st stonith:fence_dummy params ip=10.0.0.9
group g1 d3 d4 meta target-role=Started
clone c1 g1 meta interleave=true
clone p1 d2 meta promotable=true
primitive d5 ocf:heartbeat:Dummy
primitive d6 ocf:heartbeat:Dummy
location loc1 d1 200: node1
location loc3 d5 \\
\trule $role=Promoted 100: #uname eq node1 and site string:ne b \\
\trule pingd: defined pingd \\
\trule -inf: date gt 2030-01-01 or date in_range start=2020-01-01 end=2020-02-01
colocation col1 -100: d1 p1:Promoted node-attribute=site
colocation col2 inf: ( d1 d5 ) p1:Promoted
order o1 Optional: d1 d6 symmetrical=false
order o2 Serialize: d1 [ d5 d6 ] c1:stop
order o4 0: d1 d5
colocation col3 inf: d1 d5 d6
rsc_ticket t1 ticketA: d1:Started loss-policy=stop
rsc_ticket t2 ticketB: d1 d5
property stonith-enabled=true no-quorum-policy=freeze
rsc_defaults resource-stickiness=100
op_defaults timeout=30s
fencing_topology node1: st node2: st,st
tag tg1: d1 d5
alert a1 /usr/share/pacemaker/alerts/alert_file.sh.sample attributes timestamp-format="%H:%M" meta timeout=10s to /var/log/a.log to { /var/log/b.log attributes x=1 meta timeout=5s }
alert a2 /bin/true description="second" select nodes fencing attributes { standby shutdown } to 10.0.0.1
role app1_admin write meta:d1:target-role read ref:d1 deny xpath:"//nodes" read tag:nodes
role mon description="monitoring" read xpath:"/cib"
acl_target alice app1_admin mon
acl_group admins mon
`;

const CRM_SHELL = '/usr/sbin/crm';
/** crmsh takes about 1.5 s per run here; this bounds a hung one. */
const CRM_SHELL_TIMEOUT_MS = 60_000;

/** What crmsh itself makes of `text`: `crm configure load update` on an empty CIB file, then `show xml`. */
function crmshModel(text: string): Cib['configuration'] {
  const dir = mkdtempSync(join(tmpdir(), 'halo-crmsh-'));
  try {
    const cibFile = join(dir, 'cib.xml');
    writeFileSync(
      cibFile,
      '<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">' +
        '<configuration><crm_config/><nodes/><resources/><constraints/></configuration><status/></cib>\n',
    );
    writeFileSync(join(dir, 'in.crm'), text);
    const r = spawnSync(CRM_SHELL, ['configure'], {
      input: `load update ${join(dir, 'in.crm')}\nshow xml\n`,
      env: { ...process.env, CIB_file: cibFile, HOME: dir },
      encoding: 'utf8',
      timeout: CRM_SHELL_TIMEOUT_MS,
    });
    const out = r.stdout ?? '';
    const start = out.indexOf('<cib');
    const end = out.indexOf('</cib>');
    assert.ok(start >= 0 && end > start, `crmsh printed no CIB:\n${out}\n${r.stderr ?? ''}`);
    return ok(parseCibXml(out.slice(start, end + 6), 'crmsh.xml')).cib.configuration;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function withoutComments(c: unknown): unknown {
  return JSON.parse(JSON.stringify(c, (k, v) => (k === 'comments' ? undefined : v)));
}

test('halo builds the same configuration, ids included, as crmsh does from the same crm text', {
  skip: existsSync(CRM_SHELL) ? false : 'crmsh is not installed (scripts/setup.sh installs it)',
}, () => {
  const seed = readFileSync(join(FIXTURES, 'seed003.crm'), 'utf8')
    .split('\n')
    .map((l) => normalizeTypography(l).text)
    .join('\n');
  for (const text of [seed, CRMSH_CONFORMANCE]) {
    const mine = ok(parseCrm(text, 'in.crm')).cib.configuration;
    assert.deepEqual(withoutComments(mine), withoutComments(crmshModel(text)));
  }
});

test('mangled configurations never make a parser throw, and those that parse round-trip', async () => {
  const { SeededRng } = await import('../lib/prng.ts');
  const { parseDrbdConf, serializeDrbdConf } = await import('./drbd_conf.ts');
  const { parseHaCf, parseHaresources, parseAuthkeys } = await import('./heartbeat.ts');
  const inputs = [
    readFileSync(join(FIXTURES, 'seed003.crm'), 'utf8'),
    readFileSync(join(FIXTURES, 'seed003-drbd.conf'), 'utf8'),
    readFileSync(join(FIXTURES, 'seed002/drbd.conf'), 'utf8'),
    readFileSync(join(FIXTURES, 'seed004/ha.cf'), 'utf8'),
    readFileSync(join(FIXTURES, 'seed002/haresources'), 'utf8'),
  ];
  const alphabet = [
    '"',
    "'",
    '\\',
    '{',
    '}',
    ';',
    ':',
    '(',
    ')',
    '[',
    ']',
    '=',
    '\n',
    ' ',
    '#',
    '\u201d',
    '$id=',
    '::',
  ];
  const rng = new SeededRng(2026);
  const MUTANTS = 300;
  for (let i = 0; i < MUTANTS; i++) {
    let text = inputs[rng.int(inputs.length)]!;
    const edits = 1 + rng.int(6);
    for (let e = 0; e < edits; e++) {
      const at = rng.int(text.length + 1);
      const del = rng.int(4);
      text =
        text.slice(0, at) +
        (rng.int(2) === 0 ? alphabet[rng.int(alphabet.length)]! : '') +
        text.slice(at + del);
    }
    const crm = parseCrm(text, 'm');
    if (crm.ok) {
      const again = parseCrm(serializeCrm(crm.cib), 'n');
      assert.ok(again.ok, `mutant ${i} does not re-parse`);
      if (again.ok) assert.deepEqual(again.cib, crm.cib, `mutant ${i}`);
    }
    const drbd = parseDrbdConf(text, 'm');
    if (drbd.ok) {
      const again = parseDrbdConf(serializeDrbdConf(drbd.config), 'n');
      assert.ok(again.ok, `mutant ${i} does not re-parse`);
      if (again.ok)
        assert.equal(serializeDrbdConf(again.config), serializeDrbdConf(drbd.config), `mutant ${i}`);
    }
    for (const parse of [
      () => parseCrm(text, 'm'),
      () => parseDrbdConf(text, 'm'),
      () => parseHaCf(text, 'm'),
      () => parseHaresources(text, 'm'),
      () => parseAuthkeys(text, 'm', 0o600),
    ]) {
      const r = parse();
      if (!r.ok)
        assert.ok(
          r.diagnostics.some((d) => d.severity === 'error' && d.pos.line >= 1),
          `seed ${i}`,
        );
    }
  }
});

const CTS_XML = join(repoRoot(), '.cache/pacemaker-cts/scheduler/xml');

test('every valid Pacemaker regression input converts to crm syntax and reads back with the same resources and constraints', {
  skip: existsSync(CTS_XML)
    ? false
    : 'Pacemaker regression inputs not fetched (bash scripts/fetch_pacemaker_cts.sh)',
}, async () => {
  const { validateCib } = await import('./validate.ts');
  const ids = (c: Cib['configuration']): Record<'nodes' | 'resources' | 'constraints', string[]> => {
    const rsc = (r: Cib['configuration']['resources'][number]): string[] =>
      r.kind === 'group'
        ? [r.id, ...r.members.map((m) => m.id)]
        : r.kind === 'clone'
          ? [r.id, ...rsc(r.child)]
          : r.kind === 'bundle'
            ? []
            : [r.id];
    return {
      nodes: c.nodes.map((n) => n.uname),
      resources: c.resources.flatMap(rsc),
      constraints: c.constraints.map((k) => k.id),
    };
  };
  let checked = 0;
  for (const name of readdirSync(CTS_XML).filter((f) => f.endsWith('.xml'))) {
    const x = parseCibXml(readFileSync(join(CTS_XML, name), 'utf8'), name);
    if (!x.ok || validateCib(x.cib, x.positions, name).some((d) => d.severity === 'error')) continue;
    const { text, unsupported } = serializeCrmReport(x.cib);
    const back = parseCrm(text, `${name}.crm`);
    if (!back.ok) assert.fail(`${name}: ${back.diagnostics[0]!.message}`);
    // Whatever did not come back must be one of the constructs the serializer reported.
    const want = ids(x.cib.configuration);
    const got = ids(back.cib.configuration);
    const reported = unsupported.join('\n');
    for (const key of ['nodes', 'resources', 'constraints'] as const) {
      const lost = want[key].filter((id) => !got[key].includes(id));
      for (const id of lost)
        assert.ok(reported.includes(`'${id}'`), `${name}: ${key} '${id}' lost without a report`);
      assert.deepEqual(
        got[key],
        want[key].filter((id) => !lost.includes(id)),
        `${name}: ${key}`,
      );
    }
    const expressible = text.replace(/^# halo: not expressible.*\n/gm, '');
    assert.equal(serializeCrm(back.cib), expressible, `${name}: crm output is not stable`);
    checked++;
  }
  assert.ok(checked > 700, `only ${checked} regression inputs checked`);
});
