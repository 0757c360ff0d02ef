import assert from 'node:assert/strict';
import { test } from 'node:test';
import { detectFormat } from './detect.ts';

test('config formats are recognised by file name first and by content otherwise', () => {
  const cases: [string, string, string | undefined, string | undefined][] = [
    ['/etc/ha.d/ha.cf', 'node a b\n', 'heartbeat', 'ha.cf'],
    ['/etc/ha.d/haresources', 'a IPaddr::1.2.3.4\n', 'heartbeat', 'haresources'],
    ['/etc/ha.d/authkeys', 'auth 1\n1 sha1 x\n', 'heartbeat', 'authkeys'],
    ['/etc/drbd.conf', 'resource r0 {}\n', 'drbd', undefined],
    ['/etc/drbd.d/web.res', 'resource web {}\n', 'drbd', undefined],
    ['cib.xml', 'node a\n', 'xml', undefined],
    ['config.crm', '<cib/>', 'crm', undefined],
    ['notes.txt', '  <?xml version="1.0"?>\n<cib/>', 'xml', undefined],
    [
      'notes.txt',
      '# crm configure show\nnode doctormoon \\\n attributes standby=on\nprimitive p Dummy\n',
      'crm',
      undefined,
    ],
    ['notes.txt', '### globale Angaben\nglobal {\n usage-count no;\n}\n', 'drbd', undefined],
    ['notes.txt', 'logfacility local0\nkeepalive 2\nnode a b\n', 'heartbeat', 'ha.cf'],
    ['notes.txt', 'auth 3\n3 md5 x\n', 'heartbeat', 'authkeys'],
    ['notes.txt', 'server1 IPaddr::10.0.0.1/24/eth0 drbddisk::r0\n', 'heartbeat', 'haresources'],
    ['notes.txt', 'hello world\n', undefined, undefined],
    ['empty.txt', '', undefined, undefined],
  ];
  for (const [file, text, format, hb] of cases) {
    const d = detectFormat(text, file);
    assert.equal(d?.format, format, `${file}: ${JSON.stringify(text)}`);
    assert.equal(d?.heartbeatFile, hb, `${file}: ${JSON.stringify(text)}`);
  }
});

test('--format overrides detection, and for Heartbeat still tells the three files apart', () => {
  assert.equal(detectFormat('<cib/>', 'x.xml', 'crm')?.format, 'crm');
  assert.deepEqual(detectFormat('auth 1\n1 crc\n', 'keys', 'heartbeat'), {
    format: 'heartbeat',
    heartbeatFile: 'authkeys',
    reason: '--format',
  });
});
