import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Diagnostic } from '../lib/errors.ts';
import { parseCibXml } from './cib_xml.ts';
import { parseCrm } from './crm.ts';
import { validateCib } from './validate.ts';

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
  let dir = dirname(fileURLToPath(import.meta.url));
  let text: string | undefined;
  for (let i = 0; i < 8 && text === undefined; i++, dir = dirname(dir)) {
    const p = join(dir, 'src/cib/testdata/xml/bad_semantics.xml');
    if (existsSync(p)) text = readFileSync(p, 'utf8');
  }
  assert.ok(text, 'fixture bad_semantics.xml');
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
