import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../lib/repo_root.ts';
import {
  type DrbdIo,
  type DrbdParseResult,
  includePath,
  parseDrbdConf,
  serializeDrbdConf,
} from './drbd_conf.ts';
import { nodeDrbdIo } from './drbd_conf_fs.ts';
import type { DrbdConfig } from './drbd_model.ts';
import { drbdOption, drbdProtocol } from './drbd_model.ts';

const FIXTURES = join(repoRoot(), 'src/cib/fixtures');

function ok(r: DrbdParseResult): Extract<DrbdParseResult, { ok: true }> {
  if (!r.ok) assert.fail(r.diagnostics.map((d) => `${d.pos.line}:${d.pos.column} ${d.message}`).join('\n'));
  return r;
}

/** Positions and the file list differ between the original and the re-serialized text. */
function withoutPositions(c: DrbdConfig): unknown {
  return JSON.parse(JSON.stringify({ ...c, files: [] }, (k, v) => (k === 'pos' ? undefined : v)));
}

function fixture(name: string): { text: string; file: string } {
  const file = join(FIXTURES, name);
  return { text: readFileSync(file, 'utf8'), file };
}

test("seed 002's DRBD 0.7 drbd.conf parses, keeping incon-degr-cmd and warning that both hosts share an address", () => {
  const { text, file } = fixture('seed002/drbd.conf');
  const r = ok(parseDrbdConf(text, file));
  const res = r.config.resources[0]!;
  assert.equal(res.name, 'r0');
  assert.deepEqual(res.options, [['incon-degr-cmd', 'halt -f']]);
  assert.deepEqual(
    res.hosts.map((h) => [h.name, h.device, h.disk, h.address, h.metaDisk]),
    [
      ['MASTER', '/dev/drbd0', '/dev/dm-0', '192.168.2.1:7788', '/dev/sda7[0]'],
      ['SLAVE', '/dev/drbd0', '/dev/md-0', '192.168.2.1:7788', '/dev/sda7[0]'],
    ],
  );
  assert.equal(drbdOption(r.config, res, 'syncer', 'rate'), '10M');
  assert.equal(drbdOption(r.config, res, 'startup', 'degr-wfc-timeout'), '120');
  const w = r.warnings.find((d) => d.code === 'drbd-same-address');
  assert.ok(w, 'expected a warning about the shared address');
  assert.equal(w.pos.line, 33);
});

test("seed 003's drbd.conf parses, with its typographic quotes accepted and warned about by line", () => {
  const { text, file } = fixture('seed003-drbd.conf');
  const r = ok(parseDrbdConf(text, file));
  const res = r.config.resources[0]!;
  assert.equal(drbdProtocol(r.config, res), 'C');
  assert.equal(drbdOption(r.config, res, 'handlers', 'split-brain'), '/usr/lib/drbd/notify.sh root');
  assert.equal(drbdOption(r.config, res, 'net', 'after-sb-1pri'), 'discard-secondary');
  assert.deepEqual(r.config.global, [['usage-count', 'no']]);
  assert.equal(r.config.common.sections[0]!.name, 'syncer');
  const w = r.warnings.filter((d) => d.code === 'typographic-character');
  assert.equal(w.length, 1);
  assert.equal(w[0]!.pos.line, 48);
  assert.match(w[0]!.message, /lines 48, 49, 50/);
  assert.deepEqual(
    res.hosts.map((h) => h.address),
    ['192.168.42.43:7788', '192.168.42.44:7788'],
  );
});

test("seed 004's drbd.conf parses even with a value on the line after its keyword", () => {
  const { text, file } = fixture('seed004/drbd.conf');
  const r = ok(parseDrbdConf(text, file));
  assert.equal(r.config.common.protocol, 'C');
  assert.deepEqual(
    r.config.resources[0]!.hosts.map((h) => [h.name, h.disk, h.address, h.metaDisk]),
    [
      ['node01', '/dev/sda7', '10.0.0.2:7789', 'internal'],
      ['node02', '/dev/sda7', '10.0.0.3:7789', 'internal'],
    ],
  );
  assert.deepEqual(r.warnings, []);
});

test('every seed drbd.conf survives parse, serialize, parse unchanged', () => {
  for (const name of ['seed002/drbd.conf', 'seed003-drbd.conf', 'seed004/drbd.conf']) {
    const { text, file } = fixture(name);
    const first = ok(parseDrbdConf(text, file)).config;
    const written = serializeDrbdConf(first);
    const second = ok(parseDrbdConf(written, 'out.conf')).config;
    assert.deepEqual(withoutPositions(second), withoutPositions(first), written);
    assert.equal(serializeDrbdConf(second), written);
  }
});

test('include globs are resolved relative to the including file, in sorted order', () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-drbd-'));
  try {
    mkdirSync(join(dir, 'drbd.d'));
    writeFileSync(join(dir, 'drbd.conf'), 'include "drbd.d/global_common.conf";\ninclude "drbd.d/*.res";\n');
    writeFileSync(
      join(dir, 'drbd.d/global_common.conf'),
      'global { usage-count no; }\ncommon { net { protocol B; } }\n',
    );
    const res = (n: string, port: number): string =>
      `resource ${n} {\n device /dev/drbd${port - 7788}; disk /dev/vg/${n}; meta-disk internal;\n` +
      ` on a { address ipv4 10.0.0.1:${port}; }\n on b { address 10.0.0.2:${port}; }\n}\n`;
    writeFileSync(join(dir, 'drbd.d/web.res'), res('web', 7789));
    writeFileSync(join(dir, 'drbd.d/db.res'), res('db', 7788));
    writeFileSync(join(dir, 'drbd.d/notes.txt'), 'not drbd {');
    const main = join(dir, 'drbd.conf');
    const r = ok(parseDrbdConf(readFileSync(main, 'utf8'), main, nodeDrbdIo));
    assert.deepEqual(
      r.config.resources.map((x) => x.name),
      ['db', 'web'],
    );
    assert.equal(r.config.files.length, 4);
    const db = r.config.resources[0]!;
    assert.equal(drbdProtocol(r.config, db), 'B', 'protocol inherited from common net');
    assert.equal(db.hosts[0]!.addressFamily, 'ipv4');
    assert.equal(db.hosts[0]!.device, undefined, 'hosts inherit the resource-level device');
    assert.equal(db.device, '/dev/drbd0');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an include loop stops at the depth limit with an error naming the include', () => {
  const io: DrbdIo = { readFile: () => 'include "self.conf";\n', glob: (p) => [p] };
  const r = parseDrbdConf('include "self.conf";\n', '/etc/drbd.conf', io);
  assert.equal(r.ok, false);
  if (!r.ok) assert.ok(r.diagnostics.some((d) => /nested deeper/.test(d.message) && d.pos.line === 1));
});

const GOOD_HOSTS =
  'on a { device /dev/drbd0; disk /dev/sdb; address 10.0.0.1:7788; meta-disk internal; }\n' +
  'on b { device /dev/drbd0; disk /dev/sdb; address 10.0.0.2:7788; meta-disk internal; }\n';

test('bad drbd.conf input is rejected with FILE:LINE:COL naming the mistake', () => {
  const cases: [string, number, number, string, RegExp][] = [
    [`resource r0 {\n${GOOD_HOSTS}`, 1, 13, 'drbd-unbalanced-braces', /never closed/],
    [`resource r0 {\n${GOOD_HOSTS}}\n}\n`, 5, 1, 'drbd-unbalanced-braces', /without a matching/],
    [
      'resource r0 {\n  protocol C\n  on a {\n',
      2,
      12,
      'drbd-missing-semicolon',
      /missing ';' after 'protocol C'/,
    ],
    [
      'resource r0 {\n  net {\n    max-buffers 2048\n    ko-count 4;\n  }\n}\n',
      3,
      17,
      'drbd-missing-semicolon',
      /missing ';'/,
    ],
    [
      `resource r0 {\n  bogus { a 1; }\n${GOOD_HOSTS}}\n`,
      2,
      3,
      'drbd-unknown-section',
      /unknown section 'bogus'/,
    ],
    [
      `resource r0 {\n  on a { device /dev/drbd0; disk /dev/sdb; address 10.0.0.1:7788; meta-disk internal; }\n}\n`,
      1,
      10,
      'drbd-needs-two-hosts',
      /has 1 'on HOST' block/,
    ],
    [
      `resource r0 {\n${GOOD_HOSTS}}\nresource r0 {\n${GOOD_HOSTS}}\n`,
      5,
      10,
      'drbd-duplicate-resource',
      /defined twice/,
    ],
    [
      'resource r0 {\n on a { device /dev/drbd0; disk /dev/sdb; address 10.0.0.1:77x8; meta-disk internal; }\n on b { device /dev/drbd0; disk /dev/sdb; address 10.0.0.2:7788; meta-disk internal; }\n}\n',
      2,
      51,
      'drbd-bad-port',
      /port '77x8'/,
    ],
    [
      'resource r0 {\n on a { device /dev/drbd0; disk /dev/sdb; address 10.0.0.1; meta-disk internal; }\n on b { device /dev/drbd0; disk /dev/sdb; address 10.0.0.2:7788; meta-disk internal; }\n}\n',
      2,
      51,
      'drbd-bad-address',
      /has no port/,
    ],
    [
      'resource r0 {\n on a { device /dev/drbd0; disk /dev/sdb; address 10.0.0.1:7788; }\n on b { device /dev/drbd0; disk /dev/sdb; address 10.0.0.2:7788; meta-disk internal; }\n}\n',
      2,
      5,
      'drbd-incomplete-host',
      /has no meta-disk/,
    ],
    [`resource r0 {\n protocol D;\n${GOOD_HOSTS}}\n`, 2, 2, 'drbd-bad-protocol', /not A, B or C/],
    ['globl { usage-count no; }\n', 1, 1, 'drbd-unknown-section', /unknown top-level section 'globl'/],
    [`resource r0 {\n${GOOD_HOSTS.replace('on b', 'on a')}}\n`, 3, 4, 'drbd-duplicate-host', /appears twice/],
    [
      'common { handlers { split-brain "/bin/notify root; }\n}\n',
      1,
      33,
      'drbd-unterminated-quote',
      /not closed/,
    ],
  ];
  for (const [text, line, column, code, re] of cases) {
    const r = parseDrbdConf(text, 'bad.conf');
    assert.equal(r.ok, false, `accepted:\n${text}`);
    if (r.ok) continue;
    const e = r.diagnostics.find((d) => d.severity === 'error')!;
    assert.match(e.message, re, text);
    assert.deepEqual(
      [e.pos.file, e.pos.line, e.pos.column, e.code],
      ['bad.conf', line, column, code],
      `${text}\n→ ${e.message}`,
    );
  }
});

test('include paths resolve as path.join from the including file, without node:path in the parser', () => {
  const cases: Array<[string, string]> = [
    ['/etc/drbd.conf', 'drbd.d/*.res'],
    ['/etc/drbd.conf', '/etc/drbd.d/global_common.conf'],
    ['/etc/drbd.d/r0.res', '../drbd.d/./x.res'],
    ['/drbd.conf', 'a//b.res'],
    ['drbd.conf', 'drbd.d/*.res'],
    ['conf/drbd.conf', '../../up.res'],
    ['conf/drbd.conf', '..'],
    ['/etc/drbd.conf', '../../../x'],
    ['./drbd.conf', './r0.res'],
  ];
  for (const [from, rel] of cases)
    assert.equal(
      includePath(from, rel),
      rel.startsWith('/') ? rel : join(dirname(from), rel),
      `${from} + ${rel}`,
    );
});
