import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Diagnostic } from '../lib/errors.ts';
import { parseCibXml, serializeCibXml } from './cib_xml.ts';
import { parseCibXmlFile } from './cib_xml_fs.ts';
import type { Cib, Clone, Group, LocationConstraint, OrderConstraint, Primitive } from './model.ts';
import { emptyCib } from './model.ts';
import type { CibParseResult } from './parse_result.ts';

/** Fixtures live in src/cib/testdata/xml; tests may run from src/ or from dist/src/. */
function fixture(name: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const p = join(dir, 'src/cib/testdata/xml', name);
    if (existsSync(p)) return readFileSync(p, 'utf8');
    dir = dirname(dir);
  }
  throw new Error(`fixture ${name} not found above ${fileURLToPath(import.meta.url)}`);
}

function parsed(text: string, file = 'test.xml'): Extract<CibParseResult, { ok: true }> {
  const r = parseCibXml(text, file);
  if (!r.ok) assert.fail(r.diagnostics.map((d) => `${d.pos.line}:${d.pos.column} ${d.message}`).join('\n'));
  return r;
}

function failed(text: string, file = 'bad.xml'): readonly Diagnostic[] {
  const r = parseCibXml(text, file);
  assert.equal(r.ok, false, 'expected the input to be rejected');
  return r.ok ? [] : r.diagnostics;
}

function resource<T>(cib: Cib, id: string): T {
  const r = cib.configuration.resources.find((x) => x.id === id);
  assert.ok(r, `resource ${id}`);
  return r as T;
}

test('a full CIB maps resources, legacy master, templates and bundles into the model', () => {
  const { cib, warnings } = parsed(fixture('full.xml'));
  assert.deepEqual(warnings, []);
  const cfg = cib.configuration;
  assert.deepEqual(
    cfg.resources.map((r) => `${r.kind}:${r.id}`),
    [
      'template:web-template',
      'primitive:fence-alice',
      'group:web',
      'clone:ms-data',
      'clone:ping-clone',
      'bundle:httpd-bundle',
    ],
  );
  const ms = resource<Clone>(cib, 'ms-data');
  assert.equal(ms.legacyMaster, true);
  assert.equal((ms.child as Primitive).operations[0]?.role, 'Master');
  const web = resource<Group>(cib, 'web');
  assert.deepEqual(
    web.members.map((m) => m.id),
    ['web-ip', 'web-server'],
  );
  const ip = web.members[0]!;
  assert.equal(ip.operations[0]?.startDelay, '1s');
  assert.equal(ip.operations[1]?.metaAttributes[0]?.pairs[0]?.name, 'record-pending');
  assert.deepEqual(ip.operationsAttrs, { id: 'web-ip-ops' });
  assert.equal(web.members[1]!.template, 'web-template');
  assert.deepEqual(web.members[1]!.attrs, { 'future-attr': 'kept' });
  const ping = resource<Clone>(cib, 'ping-clone').child as Primitive;
  const rule = ping.metaAttributes[0]!.rule!;
  assert.equal(rule.booleanOp, 'and');
  assert.deepEqual(rule.expressions[0], {
    kind: 'date_expression',
    id: 'ping-meta-date',
    operation: 'date_spec',
    dateSpec: { id: 'ping-meta-spec', fields: { hours: '9-16', weekdays: '1-5' } },
  });
  assert.equal(resource<{ xml: { name: string } }>(cib, 'httpd-bundle').xml.name, 'bundle');
});

test('a full CIB maps constraints, rules, sets, fencing, alerts, ACLs and status', () => {
  const { cib } = parsed(fixture('full.xml'));
  const cfg = cib.configuration;
  const loc = cfg.constraints.find((c) => c.id === 'web-needs-ping') as LocationConstraint;
  assert.equal(loc.resourceDiscovery, 'exclusive');
  assert.equal(loc.rules[0]?.score, '-INFINITY');
  assert.deepEqual(
    loc.rules[0]?.expressions.map((e) => e.kind),
    ['expression', 'expression', 'rule'],
  );
  const pattern = cfg.constraints.find((c) => c.id === 'pattern-loc') as LocationConstraint;
  assert.equal(pattern.rscPattern, '^web-.*');
  const sets = cfg.constraints.find((c) => c.id === 'set-order') as OrderConstraint;
  assert.equal(sets.orderKind, 'Optional');
  assert.deepEqual(
    sets.sets.map((s) => s.resources),
    [['web-ip', 'ping-clone'], ['web-server']],
  );
  assert.equal(cfg.fencingTopology[0]?.devices, 'fence-alice');
  assert.equal(cfg.alerts[0]?.recipients[0]?.value, '/var/log/alerts.log');
  assert.equal(cfg.acls?.name, 'acls');
  assert.equal(cfg.crmConfig.length, 2);
  assert.equal(cfg.nodes[0]?.utilization[0]?.pairs[0]?.value, '4');
  assert.deepEqual(cib.tickets, [{ id: 'ticketA', granted: 'true', lastGranted: '1700000000' }]);
  const alice = cib.status[0]!;
  assert.equal(alice.transientAttributes[0]?.pairs[0]?.value, '2');
  assert.equal(alice.resources[0]?.ops[0]?.execTime, '42');
  assert.equal(alice.resources[0]?.ops[1]?.interval, '10000');
  assert.equal(cib.status[1]?.hasLrm, false);
});

test('positions name the line and column where each configuration id was written', () => {
  const { positions } = parsed(fixture('full.xml'), 'full.xml');
  assert.deepEqual(positions.get('web-ip'), { file: 'full.xml', line: 38, column: 9 });
  assert.deepEqual(positions.get('ms-data'), { file: 'full.xml', line: 54, column: 7 });
  assert.deepEqual(positions.get('web-with-data'), { file: 'full.xml', line: 98, column: 7 });
  // References are not definitions: a resource_ref does not move web-ip's position.
  assert.equal(positions.get('web-ip#2'), undefined);
});

test('the full fixture round-trips, keeping comments where they stood', () => {
  const first = parsed(fixture('full.xml'));
  const xml = serializeCibXml(first.cib);
  const second = parsed(xml);
  assert.deepStrictEqual(second.cib, first.cib);
  assert.match(xml, /^<cib [^\n]*>\n {2}<!-- a two-node web cluster/);
  assert.match(xml, /<group [^\n]*>\n {8}<!-- the address first -->\n {8}<primitive id="web-ip"/);
});

test('serialized XML is indented by two spaces and escapes attribute values', () => {
  const base = emptyCib();
  const cib: Cib = {
    ...base,
    configuration: {
      ...base.configuration,
      crmConfig: [
        {
          kind: 'cluster_property_set',
          id: 'opts',
          pairs: [{ id: 'o1', name: 'note', value: 'a<b & "c"\n\td>' }],
        },
      ],
    },
  };
  const xml = serializeCibXml(cib);
  assert.match(xml, /\n {4}<crm_config>\n {6}<cluster_property_set id="opts">\n/);
  assert.ok(xml.includes('value="a&lt;b &amp; &quot;c&quot;&#10;&#9;d&gt;"'), xml);
  assert.ok(xml.includes('    <nodes/>\n'));
  const back = parsed(xml);
  assert.equal(back.cib.configuration.crmConfig[0]?.pairs[0]?.value, 'a<b & "c"\n\td>');
});

test('malformed XML is rejected with the file, line and column of the fault', () => {
  const cases: [string, number, RegExp][] = [
    ['<cib>\n  <configuration>\n  </cib>\n', 3, /<configuration> opened at 2:3 must be closed first/],
    ['<cib>\n  <configuration>\n', 3, /<configuration> opened at 2:3 is never closed/],
    ['<cib>\n  <configuration a="1" a="2"/>\n</cib>', 2, /duplicate attribute/],
    ['<cib>\n\n  <configuration x=1/>\n</cib>', 3, /unquoted/],
    ['<cib>\n  <configuration>&bogus;</configuration>\n</cib>', 2, /entity/],
    ['', 1, /root element/],
    ['<cib><configuration/></cib>\n<cib/>', 2, /root/],
  ];
  for (const [text, line, message] of cases) {
    const d = failed(text, 'bad.xml');
    assert.equal(d[0]?.code, 'xml-syntax', text);
    assert.equal(d[0]?.pos.file, 'bad.xml');
    assert.equal(d[0]?.pos.line, line, `${JSON.stringify(text)}: ${d[0]?.message}`);
    assert.match(d[0]!.message, message);
  }
});

test('a document that is not a CIB, or has no configuration, is rejected', () => {
  assert.equal(failed('<crm_config/>')[0]?.code, 'cib-root');
  assert.equal(failed('<cib>\n  <status/>\n</cib>')[0]?.code, 'cib-missing-section');
});

test('missing required attributes are errors naming the element and its line', () => {
  const text = [
    '<cib>',
    '  <configuration>',
    '    <crm_config/>',
    '    <resources>',
    '      <primitive id="a" class="ocf" provider="heartbeat">',
    '        <operations>',
    '          <op id="a-mon" interval="10s"/>',
    '        </operations>',
    '      </primitive>',
    '    </resources>',
    '    <constraints>',
    '      <rsc_ticket id="t" rsc="a"/>',
    '    </constraints>',
    '  </configuration>',
    '</cib>',
  ].join('\n');
  const d = failed(text);
  assert.deepEqual(
    d.map((x) => [x.code, x.pos.line, x.pos.column]),
    [
      ['missing-attribute', 5, 7],
      ['missing-attribute', 7, 11],
      ['missing-attribute', 12, 7],
    ],
  );
  assert.match(d[0]!.message, /<primitive id="a"> has no 'type' attribute/);
  assert.match(d[1]!.message, /<op id="a-mon"> has no 'name'/);
});

test('a clone with no resource inside is rejected at the clone', () => {
  const text =
    '<cib>\n  <configuration>\n    <resources>\n      <clone id="c"/>\n    </resources>\n  </configuration>\n</cib>';
  const d = failed(text);
  assert.equal(d[0]?.code, 'clone-child');
  assert.equal(d[0]?.pos.line, 4);
});

test('an element halo cannot represent is reported as a warning at its line, not dropped silently', () => {
  const text = [
    '<cib>',
    '  <configuration>',
    '    <resources>',
    '      <primitive id="a" class="ocf" provider="heartbeat" type="Dummy">',
    '        <lifetime id="old"/>',
    '      </primitive>',
    '    </resources>',
    '    <future_section id="kept"/>',
    '  </configuration>',
    '</cib>',
  ].join('\n');
  const r = parsed(text);
  assert.deepEqual(
    r.warnings.map((w) => [w.code, w.pos.line]),
    [['unknown-element', 5]],
  );
  // Unknown configuration sections are kept verbatim instead.
  assert.equal(r.cib.configuration.extra?.[0]?.name, 'future_section');
  assert.match(serializeCibXml(r.cib), /<future_section id="kept"\/>/);
});

test('an id written twice is recorded at both places', () => {
  const text = [
    '<cib>',
    '  <configuration>',
    '    <resources>',
    '      <primitive id="a" class="ocf" provider="heartbeat" type="Dummy"/>',
    '      <primitive id="a" class="ocf" provider="heartbeat" type="Dummy"/>',
    '    </resources>',
    '  </configuration>',
    '</cib>',
  ].join('\n');
  const r = parsed(text);
  assert.equal(r.positions.get('a')?.line, 4);
  assert.equal(r.positions.get('a#2')?.line, 5);
});

test("the XML halo writes is accepted by Pacemaker's own crm_verify", () => {
  const first = parsed(fixture('two_node.xml'));
  const xml = serializeCibXml(first.cib);
  const dir = mkdtempSync(join(tmpdir(), 'halo-cib-'));
  try {
    const file = join(dir, 'cib.xml');
    writeFileSync(file, xml);
    // crm_verify exits non-zero (and execFileSync throws with its output) on any error.
    execFileSync('crm_verify', ['-x', file], { encoding: 'utf8', timeout: 60_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.match(xml, /value="a &lt;quoted&gt; &quot;value&quot; &amp; more"/);
  assert.match(xml, / {4}<resources>\n {6}<!-- DRBD-backed web server -->\n {6}<clone id="data-clone">/);
});

test('text where a CIB has none is reported as a warning at its element; text in verbatim parts is kept', () => {
  const text = [
    '<cib>',
    '  <configuration>',
    '    <resources>',
    '      <primitive id="a" class="ocf" provider="heartbeat" type="Dummy">stray words</primitive>',
    '      <bundle id="b"><docker image="x"/>kept text</bundle>',
    '    </resources>',
    '  </configuration>',
    '</cib>',
  ].join('\n');
  const r = parsed(text);
  assert.deepEqual(
    r.warnings.map((w) => [w.code, w.pos.line]),
    [['unexpected-text', 4]],
  );
  assert.match(serializeCibXml(r.cib), /<bundle id="b"><docker image="x"\/>kept text<\/bundle>/);
});

test('a fixture with an unclosed <op> is rejected at the close tag that does not match', () => {
  const d = failed(fixture('bad_syntax.xml'), 'bad_syntax.xml');
  assert.equal(d.length, 1);
  assert.equal(d[0]?.code, 'xml-syntax');
  assert.deepEqual([d[0]?.pos.line, d[0]?.pos.column], [11, 21]);
  assert.match(d[0]!.message, /<op> opened at 10:11 must be closed first/);
});

test('errors in the status section name their line and come in document order', () => {
  const text = [
    '<cib>',
    '  <configuration>',
    '    <crm_config/>',
    '    <nodes/>',
    '    <resources>',
    '      <primitive class="ocf" provider="heartbeat" type="Dummy"/>',
    '    </resources>',
    '    <constraints/>',
    '  </configuration>',
    '  <status>',
    '    <node_state id="1" uname="n1">',
    '      <lrm id="1">',
    '        <lrm_resources>',
    '          <lrm_resource class="ocf" type="Dummy">',
    '            <lrm_rsc_op id="x_start_0" operation="start" interval="0"/>',
    '          </lrm_resource>',
    '          <lrm_resource id="ok" class="ocf" type="Dummy"/>',
    '          <lrm_resource id="y" class="ocf" type="Dummy"><!-- c -->',
    '            <lrm_rsc_op id="y_start_0" interval="0"/>',
    '          </lrm_resource>',
    '          <lrm_resource id="z" class="ocf" type="Dummy">',
    '            <bogus/>',
    '          </lrm_resource>',
    '        </lrm_resources>',
    '      </lrm>',
    '    </node_state>',
    '  </status>',
    '</cib>',
  ].join('\n');
  const r = parseCibXml(text, 'st.xml');
  assert.equal(r.ok, false);
  const d = r.ok ? [] : r.diagnostics;
  assert.deepEqual(
    d.map((x) => [x.severity, x.code, x.pos.line, x.pos.column]),
    [
      ['error', 'missing-attribute', 6, 7],
      ['error', 'missing-attribute', 14, 11],
      ['error', 'missing-attribute', 19, 13],
      ['warning', 'unknown-element', 22, 13],
    ],
  );
});

test('a large status section parses into the same model as a small one, entry by entry', () => {
  const op = (rsc: string, n: number): string =>
    `<lrm_rsc_op id="${rsc}_monitor_0" operation="monitor" interval="0" call-id="${n}" rc-code="7" op-status="0"/>`;
  const resources = (count: number): string =>
    Array.from(
      { length: count },
      (_, i) =>
        `<lrm_resource id="r${i}" class="ocf" provider="heartbeat" type="Dummy">${op(`r${i}`, i)}</lrm_resource>`,
    ).join('\n');
  const text = `<cib><configuration><crm_config/><nodes/><resources/><constraints/></configuration><status><node_state id="1" uname="n1"><lrm id="1"><lrm_resources>\n${resources(2000)}\n</lrm_resources></lrm></node_state></status></cib>`;
  const cib = parsed(text).cib;
  const hist = cib.status[0]!.resources;
  assert.equal(hist.length, 2000);
  assert.deepEqual(hist[1999], {
    id: 'r1999',
    class: 'ocf',
    provider: 'heartbeat',
    type: 'Dummy',
    ops: [
      {
        id: 'r1999_monitor_0',
        operation: 'monitor',
        interval: '0',
        callId: '1999',
        rcCode: '7',
        opStatus: '0',
      },
    ],
  });
  // Equal values are shared, not repeated once per entry.
  assert.equal(hist[0]!.ops[0]!.operation, hist[1999]!.ops[0]!.operation);
});

// ---------------------------------------------------------------------------------------------
// Reading a file piece by piece

/** Writes `text` (or bytes) to a temp file, calls `fn` with its path, and removes it. */
function withFile<T>(content: string | Buffer, fn: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'halo-cibxml-'));
  try {
    const path = join(dir, 'cib.xml');
    writeFileSync(path, content);
    return fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Results compared as JSON (positions is a Map). */
function asJson(r: CibParseResult): string {
  return JSON.stringify(r, (_k, v: unknown) => (v instanceof Map ? [...v] : v));
}

test('a CIB file read in pieces of any size gives the same model, positions and warnings as its text', () => {
  for (const name of ['full.xml', 'two_node.xml', 'bad_semantics.xml']) {
    const text = fixture(name);
    const want = asJson(parseCibXml(text, name));
    withFile(text, (path) => {
      for (const chunk of [1, 2, 3, 5, 7, 13, 64, 4096, 1 << 16]) {
        assert.equal(
          asJson(parseCibXmlFile(path, name, chunk)),
          want,
          `${name} read ${chunk} bytes at a time`,
        );
      }
    });
  }
});

/** A valid CIB whose status section holds `count` histories, one per line, with `extra` in the last. */
function bigCib(count: number, extra = ''): string {
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<cib epoch="1">', '  <configuration>'];
  lines.push(
    '    <crm_config/>',
    '    <nodes/>',
    '    <resources/>',
    '    <constraints/>',
    '  </configuration>',
  );
  lines.push(
    '  <status>',
    '    <node_state id="1" uname="n1">',
    '      <lrm id="1">',
    '        <lrm_resources>',
  );
  for (let i = 0; i < count; i++) {
    const op = `<lrm_rsc_op id="r${i}_monitor_0" operation="monitor" interval="0" rc-code="7"${i === count - 1 ? extra : ''}/>`;
    lines.push(`          <lrm_resource id="r${i}" class="ocf" type="Dummy">${op}</lrm_resource>`);
  }
  lines.push('        </lrm_resources>', '      </lrm>', '    </node_state>', '  </status>', '</cib>', '');
  return lines.join('\n');
}

test('a syntax error far past the first piece is reported at the same file:line:col as from the text', () => {
  // 500 histories span many 64-byte pieces; the unquoted value is on line 512 (saxes points at
  // its first character, column 41).
  const text = bigCib(500).replace(
    '<lrm_resource id="r499" class="ocf"',
    '<lrm_resource id="r499" class=ocf',
  );
  const fromText = parseCibXml(text, 'big.xml');
  withFile(text, (path) => {
    for (const chunk of [64, 4096]) {
      const r = parseCibXmlFile(path, 'big.xml', chunk);
      assert.equal(r.ok, false);
      const d = r.ok ? undefined : r.diagnostics[0];
      assert.equal(d?.code, 'xml-syntax');
      assert.deepEqual(d?.pos, { file: 'big.xml', line: 512, column: 41 });
      assert.match(d!.message, /unquoted/);
      assert.deepEqual(r, fromText);
    }
  });
});

test('a missing attribute far past the first piece is reported at its own line and column', () => {
  // The last op lacks 'operation'; it starts on line 312, column 60.
  const text = bigCib(300).replace('id="r299_monitor_0" operation="monitor"', 'id="r299_monitor_0"');
  withFile(text, (path) => {
    const r = parseCibXmlFile(path, 'big.xml', 100);
    assert.equal(r.ok, false);
    const d = r.ok ? [] : r.diagnostics;
    assert.deepEqual(
      d.map((x) => [x.code, x.pos.line, x.pos.column]),
      [['missing-attribute', 312, 60]],
    );
    assert.deepEqual(r, parseCibXml(text, 'big.xml'));
  });
});

test('a multi-byte UTF-8 character cut by the end of a piece reads back whole, and columns count characters', () => {
  // é is 2 bytes and € is 3: with pieces of 1 to 8 bytes some read ends inside each of them.
  const text = [
    '<cib>',
    '  <configuration>',
    '    <crm_config><cluster_property_set id="o"><nvpair id="p" name="note" value="café €5 ünïcödé"/></cluster_property_set></crm_config>',
    '    <nodes/><resources/><constraints/>',
    '  </configuration>',
    '  <status><node_state id="1" uname="n1"><lrm id="1"><lrm_resources><lrm_resource id="é€" class="ocf" type="D"><lrm_rsc_op id="€" interval="0"/></lrm_resource></lrm_resources></lrm></node_state></status>',
    '</cib>',
  ].join('\n');
  const want = parseCibXml(text, 'u.xml');
  assert.equal(want.ok, false);
  const d = want.ok ? [] : want.diagnostics;
  // The op lacking 'operation' is at column 111 counted in characters (bytes would say 114).
  assert.deepEqual(
    d.map((x) => [x.code, x.pos.line, x.pos.column]),
    [['missing-attribute', 6, 111]],
  );
  withFile(text, (path) => {
    for (let chunk = 1; chunk <= 8; chunk++) {
      assert.deepEqual(parseCibXmlFile(path, 'u.xml', chunk), want, `read ${chunk} bytes at a time`);
    }
  });
  const ok = text.replace(
    '<lrm_rsc_op id="€" interval="0"/>',
    '<lrm_rsc_op id="€" operation="start" interval="0"/>',
  );
  withFile(ok, (path) => {
    for (let chunk = 1; chunk <= 8; chunk++) {
      const r = parseCibXmlFile(path, 'u.xml', chunk);
      assert.ok(r.ok, `read ${chunk} bytes at a time`);
      const nv = r.cib.configuration.crmConfig[0]!.pairs[0]!;
      assert.equal(nv.value, 'café €5 ünïcödé');
      assert.equal(r.cib.status[0]!.resources[0]!.id, 'é€');
    }
  });
});

test('a CIB file with CR LF line ends, or invalid UTF-8, reads as its text would', () => {
  const crlf = bigCib(50).replace(/\n/g, '\r\n');
  withFile(crlf, (path) => assert.deepEqual(parseCibXmlFile(path, 'w.xml', 64), parseCibXml(crlf, 'w.xml')));
  // Bytes that are not UTF-8 (0xFF, and a 3-byte sequence cut short) become U+FFFD.
  const [head, tail] = bigCib(50).split('id="r7"') as [string, string];
  const bytes = Buffer.concat([
    Buffer.from(`${head}id="r7`),
    Buffer.from([0xff, 0xe2, 0x82]),
    Buffer.from(`"${tail}`),
  ]);
  withFile(bytes, (path) => {
    const r = parseCibXmlFile(path, 'w.xml', 64);
    assert.deepEqual(r, parseCibXml(readFileSync(path, 'utf8'), 'w.xml'));
    assert.equal(r.ok && r.cib.status[0]!.resources[7]!.id, 'r7\uFFFD\uFFFD');
  });
});

test('a CIB file that cannot be read throws the file system error', () => {
  assert.throws(() => parseCibXmlFile('/nonexistent/halo/cib.xml'), { code: 'ENOENT' });
});
