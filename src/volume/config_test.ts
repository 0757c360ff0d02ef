import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDrbdConf } from '../cib/drbd_conf.ts';
import { SeededRng } from '../lib/prng.ts';
import { Cmd, encodeInfoRequest, encodeOption, encodeRequest, NbdServerDecoder, Opt } from '../nbd/codec.ts';
import { BLOCK_BYTES } from './bitmap.ts';
import { parseDrbdSize, volumeConfigFromDrbd } from './config.ts';
import { SimPair, testConfig } from './sim_pair.ts';
import { formatDrbdadmStatus, formatProcDrbd } from './status_format.ts';

// The drbd.conf of seed 003 (a Salt-managed MySQL/nginx pair), as users write it.
const SEED_003 = `global { usage-count no; }
common { syncer { rate 33M; } }
resource drbd0 {
  protocol C;
  startup { wfc-timeout 60; degr-wfc-timeout 120; }
  disk { on-io-error pass_on; }
  net {
    after-sb-0pri discard-zero-changes;
    after-sb-1pri discard-secondary;
    after-sb-2pri disconnect;
  }
  syncer { rate 33M; }
  handlers {
    split-brain "/usr/lib/drbd/notify.sh root";
    fence-peer "/usr/lib/drbd/crm-fence-peer.sh";
    after-resync-target "/usr/lib/drbd/crm-unfence-peer.sh";
  }
  on thelibrary-node1 { device /dev/drbd0; disk /dev/xvda3; address 192.168.42.43:7788; meta-disk internal; }
  on thelibrary-node2 { device /dev/drbd0; disk /dev/xvda3; address 192.168.42.44:7788; meta-disk internal; }
}
`;

test("a seed's drbd.conf becomes a volume config for each of its hosts", () => {
  const parsed = parseDrbdConf(SEED_003, 'drbd.conf');
  assert.ok(parsed.ok);
  const c = volumeConfigFromDrbd(parsed.config, 'drbd0', 'thelibrary-node2');
  assert.equal(c.protocol, 'C');
  assert.equal(c.self.address, '192.168.42.44:7788');
  assert.equal(c.peer.name, 'thelibrary-node1');
  assert.equal(c.self.metaDisk, 'internal');
  assert.equal(c.net.afterSb0, 'discard-zero-changes');
  assert.equal(c.net.afterSb1, 'discard-secondary');
  assert.equal(c.net.afterSb2, 'disconnect');
  assert.equal(c.resyncRateBytesPerSec, 33 * 1024 * 1024);
  assert.equal(c.handlers['split-brain'], '/usr/lib/drbd/notify.sh root');
  assert.equal(c.handlers['after-resync-target'], '/usr/lib/drbd/crm-unfence-peer.sh');
  assert.equal(c.net.tls, false, 'replication is signed, not encrypted, unless tls yes');
  const tls = parseDrbdConf(
    SEED_003.replace('after-sb-2pri disconnect;', 'after-sb-2pri disconnect; tls yes;'),
    'x',
  );
  assert.ok(tls.ok);
  assert.equal(volumeConfigFromDrbd(tls.config, 'drbd0', 'thelibrary-node1').net.tls, true);
  const badTls = parseDrbdConf(
    SEED_003.replace('after-sb-2pri disconnect;', 'after-sb-2pri disconnect; tls maybe;'),
    'x',
  );
  assert.ok(badTls.ok);
  assert.throws(
    () => volumeConfigFromDrbd(badTls.config, 'drbd0', 'thelibrary-node1'),
    /net tls "maybe" is not one of: yes, no/,
  );
});

test("net ping-timeout is read in tenths of a second like DRBD's, 500 ms when absent", () => {
  const conf = (net: string) => {
    const parsed = parseDrbdConf(
      SEED_003.replace('after-sb-2pri disconnect;', `after-sb-2pri disconnect; ${net}`),
      'drbd.conf',
    );
    assert.ok(parsed.ok);
    return () => volumeConfigFromDrbd(parsed.config, 'drbd0', 'thelibrary-node1');
  };
  assert.equal(conf('')().net.pingTimeoutMs, 500);
  assert.equal(conf('ping-timeout 10;')().net.pingTimeoutMs, 1000);
  assert.throws(
    conf('ping-timeout 0;'),
    /drbd0 net ping-timeout "0" must be 1\.\.300 \(tenths of a second\)/,
  );
  assert.throws(conf('ping-timeout 0.5;'), /must be 1\.\.300/);
});

test('an unknown resource, an unknown host or a bad policy is a clear error', () => {
  const parsed = parseDrbdConf(SEED_003, 'drbd.conf');
  assert.ok(parsed.ok);
  assert.throws(
    () => volumeConfigFromDrbd(parsed.config, 'r9', 'thelibrary-node1'),
    /resource "r9" is not in drbd\.conf \(known: drbd0\)/,
  );
  assert.throws(
    () => volumeConfigFromDrbd(parsed.config, 'drbd0', 'elsewhere'),
    (e: Error & { code?: string }) => e.code === 'unknown-node' && /--node/.test(e.message),
  );
  const bad = parseDrbdConf(
    SEED_003.replace('after-sb-2pri disconnect', 'after-sb-2pri flip-a-coin'),
    'drbd.conf',
  );
  assert.ok(bad.ok);
  assert.throws(
    () => volumeConfigFromDrbd(bad.config, 'drbd0', 'thelibrary-node1'),
    /after-sb-2pri "flip-a-coin" is not one of/,
  );
  assert.equal(parseDrbdSize('250K', 'rate'), 250 * 1024);
  assert.equal(parseDrbdSize('500', 'rate'), 500 * 1024);
  assert.throws(() => parseDrbdSize('fast', 'rate'), /cannot parse size "fast"/);
});

test('status reads like drbdadm status and /proc/drbd, with sync progress', () => {
  const p = new SimPair(
    new SeededRng(1),
    4096 * BLOCK_BYTES,
    testConfig('alpha', 'bravo'),
    testConfig('bravo', 'alpha'),
  );
  p.a.core.connect(false);
  p.b.core.connect(false);
  p.settle();
  p.a.core.promote(true);
  for (let i = 0; i < 12; i++) p.stepOnce();
  const s = p.a.core.status();
  assert.equal(s.conn, 'SyncSource', 'the full sync is under way (deterministic seed)');
  assert.match(formatDrbdadmStatus(s), /replication:SyncSource peer-disk:Inconsistent done:\d+\.\d\d/);
  assert.match(formatProcDrbd(s), /cs:SyncSource ro:Primary\/Secondary ds:UpToDate\/Inconsistent C/);
  assert.match(formatProcDrbd(s), /sync'ed: +\d+\.\d%/);
  p.settle();
  const done = p.a.core.status();
  assert.equal(
    formatDrbdadmStatus(done),
    'r0 role:Primary\n  disk:UpToDate\n  bravo role:Secondary\n    peer-disk:UpToDate\n',
  );
  assert.match(
    formatProcDrbd(done),
    /^version: halo .*\n 0: cs:Connected ro:Primary\/Secondary ds:UpToDate\/UpToDate C r-----\n {4}ns:\d+ nr:\d+ dw:\d+/,
  );
});

test('the NBD decoder gives the same messages whether bytes arrive whole or one at a time', () => {
  const stream = Buffer.concat([
    Buffer.from([0, 0, 0, 3]),
    encodeOption(Opt.GO, encodeInfoRequest('r0', [3])),
  ]);
  const tx = Buffer.concat([
    encodeRequest({ type: Cmd.WRITE, handle: 5n, offset: 4096n, length: 3 }, Buffer.from('abc')),
    encodeRequest({ type: Cmd.FLUSH, handle: 6n, offset: 0n, length: 0 }),
  ]);
  const run = (chunks: Buffer[]) => {
    const d = new NbdServerDecoder();
    const out: unknown[] = [];
    for (const c of chunks) {
      d.push(c);
      for (let m = d.next(); m; m = d.next()) {
        out.push(m.kind === 'request' ? { ...m, data: Buffer.from(m.data).toString() } : m.kind);
        if (m.kind === 'option') d.enterTransmission();
      }
    }
    return out;
  };
  const all = Buffer.concat([stream, tx]);
  const whole = run([all]);
  const bytes = run([...all].map((b) => Buffer.from([b])));
  assert.deepEqual(bytes, whole);
  assert.equal(whole.length, 4);
});
