import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { hasNetnsSupport } from '../lab/netns.ts';
import {
  CARRIER_POLL_MS,
  canonicalAddress,
  type LinkCarrierReport,
  LinkCarrierWatch,
} from './link_carrier.ts';

// ---------------------------------------------------------------------------------------------
// Against a fake /sys/class/net (no root needed)

function fakeSys(ifaces: Record<string, { carrier?: string; operstate?: string }>): string {
  const dir = mkdtempSync(join(tmpdir(), 'halo-carrier-'));
  for (const [name, f] of Object.entries(ifaces)) {
    mkdirSync(join(dir, name));
    if (f.carrier !== undefined) writeFileSync(join(dir, name, 'carrier'), `${f.carrier}\n`);
    if (f.operstate !== undefined) writeFileSync(join(dir, name, 'operstate'), `${f.operstate}\n`);
  }
  return dir;
}

test('a node is isolated only when every link is on a known interface without carrier', () => {
  const sys = fakeSys({ eth1: { carrier: '0' }, eth2: { carrier: '0' }, eth3: { carrier: '1' } });
  try {
    const addrs = new Map([
      ['10.0.0.1', 'eth1'],
      ['10.0.1.1', 'eth2'],
      ['10.0.2.1', 'eth3'],
    ]);
    const watch = (hosts: string[]): LinkCarrierReport =>
      new LinkCarrierWatch({ hosts, nowMs: () => 0, sysClassNet: sys, listAddresses: () => addrs }).read();
    const both = watch(['10.0.0.1', '10.0.1.1']);
    assert.equal(both.isolated, true);
    assert.equal(both.detail, 'link 0 10.0.0.1 on eth1: no carrier; link 1 10.0.1.1 on eth2: no carrier');
    assert.equal(watch(['10.0.0.1', '10.0.2.1']).isolated, false, 'carrier on one link');
    assert.equal(watch(['10.0.0.1', '10.9.9.9']).isolated, false, 'an address on no interface');
    assert.equal(watch(['10.0.0.1', '127.0.0.1']).isolated, false, 'a loopback link');
    assert.equal(watch(['node-a.example']).isolated, false, 'a host name');
    assert.equal(watch([]).isolated, false);
  } finally {
    rmSync(sys, { recursive: true, force: true });
  }
});

test('an administratively down interface counts as no carrier, a vanished one as unknown', () => {
  // The kernel refuses to read `carrier` of an interface that is down: no file here.
  const sys = fakeSys({ eth1: { operstate: 'down' } });
  try {
    const addrs = new Map([
      ['10.0.0.1', 'eth1'],
      ['10.0.1.1', 'gone0'],
    ]);
    const w = (hosts: string[]) =>
      new LinkCarrierWatch({ hosts, nowMs: () => 0, sysClassNet: sys, listAddresses: () => addrs }).read();
    assert.deepEqual(
      w(['10.0.0.1']).links.map((l) => l.state),
      ['no-carrier'],
    );
    assert.deepEqual(
      w(['10.0.0.1', '10.0.1.1']).links.map((l) => l.state),
      ['no-carrier', 'unknown'],
    );
  } finally {
    rmSync(sys, { recursive: true, force: true });
  }
});

test('readings are reused for CARRIER_POLL_MS unless a fresh one is asked for', () => {
  const sys = fakeSys({ eth1: { carrier: '1' } });
  try {
    let now = 0;
    const w = new LinkCarrierWatch({
      hosts: ['10.0.0.1'],
      nowMs: () => now,
      sysClassNet: sys,
      listAddresses: () => new Map([['10.0.0.1', 'eth1']]),
    });
    assert.equal(w.read().isolated, false);
    writeFileSync(join(sys, 'eth1', 'carrier'), '0\n');
    now += CARRIER_POLL_MS - 1;
    assert.equal(w.read().isolated, false, 'still the last reading');
    assert.equal(w.read(true).isolated, true, 'fresh');
    writeFileSync(join(sys, 'eth1', 'carrier'), '1\n');
    now += CARRIER_POLL_MS;
    assert.equal(w.read().isolated, false, 'carrier back after the poll interval');
  } finally {
    rmSync(sys, { recursive: true, force: true });
  }
});

test('IPv6 addresses match whichever way they are written', () => {
  assert.equal(canonicalAddress('FD00:0:0:0:0:0:0:1'), 'fd00::1');
  assert.equal(canonicalAddress('fd00::1'), 'fd00::1');
  assert.equal(canonicalAddress('10.0.0.1'), '10.0.0.1');
});

// ---------------------------------------------------------------------------------------------
// Real interfaces in a network namespace, read from inside it as the lab's daemons do

/**
 * A child process inside `ns` holding one LinkCarrierWatch (the default address lister and
 * /sys, as `ip netns exec` mounts it): each line written to it is answered with a fresh report.
 */
class WatchInNamespace {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;

  constructor(ns: string, hosts: readonly string[]) {
    // The compiled test (dist/) imports the compiled module; the source one needs tsx.
    const ts = import.meta.url.endsWith('.ts');
    const mod = new URL(`./link_carrier.${ts ? 'ts' : 'js'}`, import.meta.url).href;
    const script = `
      const { LinkCarrierWatch } = await import(${JSON.stringify(mod)});
      const w = new LinkCarrierWatch({ hosts: ${JSON.stringify(hosts)}, nowMs: () => performance.now() });
      const rl = (await import('node:readline')).createInterface({ input: process.stdin });
      for await (const _ of rl) console.log(JSON.stringify(w.read(true)));`;
    this.child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        ...(ts ? ['--import', 'tsx'] : []),
        '--input-type=module',
        '-e',
        script,
      ],
      { stdio: 'pipe' },
    );
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async read(): Promise<LinkCarrierReport> {
    this.child.stdin.write('read\n');
    const r = await this.lines.next();
    assert.ok(!r.done, 'the watch in the namespace exited');
    return JSON.parse(r.value) as LinkCarrierReport;
  }

  close(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}

test('real veth links: isolated while the switch side of every link is down, not once one is up', {
  skip: !hasNetnsSupport() && 'needs root and ip netns',
  timeout: 60_000,
}, async () => {
  const tag = `lc${process.pid % 100_000}`;
  const ns = `halo-${tag}`;
  const ip = (...args: string[]) => execFileSync('ip', ['-n', ns, ...args], { stdio: 'pipe' });
  let watch: WatchInNamespace | undefined;
  execFileSync('ip', ['netns', 'add', ns], { stdio: 'pipe' });
  try {
    // Both ends in one namespace: `<tag>a<i>` is the node's end with its link address,
    // `<tag>s<i>` the switch's end, which a cut takes down (as lab.ts setLink does).
    for (const i of [0, 1]) {
      ip('link', 'add', `${tag}a${i}`, 'type', 'veth', 'peer', 'name', `${tag}s${i}`);
      ip('addr', 'add', `198.51.100.${10 + i}/24`, 'dev', `${tag}a${i}`);
      ip('link', 'set', `${tag}a${i}`, 'up');
      ip('link', 'set', `${tag}s${i}`, 'up');
    }
    // 198.51.100.99 is on no interface; 127.0.0.1 is the loopback (down in a fresh namespace).
    watch = new WatchInNamespace(ns, ['198.51.100.10', '198.51.100.11']);
    const lonely = new WatchInNamespace(ns, ['198.51.100.10', '198.51.100.99']);
    const loop = new WatchInNamespace(ns, ['198.51.100.10', '127.0.0.1']);
    try {
      const up = await watch.read();
      assert.equal(up.isolated, false, up.detail);
      assert.deepEqual(
        up.links.map((l) => [l.iface, l.state]),
        [
          [`${tag}a0`, 'carrier'],
          [`${tag}a1`, 'carrier'],
        ],
      );

      ip('link', 'set', `${tag}s0`, 'down');
      const half = await watch.read();
      assert.equal(half.isolated, false, `one link still has carrier: ${half.detail}`);

      ip('link', 'set', `${tag}s1`, 'down');
      const cut = await watch.read();
      assert.equal(cut.isolated, true, cut.detail);
      assert.equal(
        cut.detail,
        `link 0 198.51.100.10 on ${tag}a0: no carrier; link 1 198.51.100.11 on ${tag}a1: no carrier`,
      );
      // A watch started while the links are already cut still finds their interfaces (the
      // process's interface list leaves out interfaces without carrier).
      const late = new WatchInNamespace(ns, ['198.51.100.10', '198.51.100.11']);
      try {
        const r = await late.read();
        assert.equal(r.isolated, true, r.detail);
      } finally {
        late.close();
      }
      const l1 = await lonely.read();
      assert.equal(l1.isolated, false, l1.detail);
      assert.deepEqual(
        l1.links.map((l) => l.state),
        ['no-carrier', 'unknown'],
      );
      assert.equal((await loop.read()).isolated, false);

      ip('link', 'set', `${tag}s1`, 'up');
      const back = await watch.read();
      assert.equal(back.isolated, false, back.detail);
    } finally {
      lonely.close();
      loop.close();
    }
  } finally {
    watch?.close();
    // Deleting the namespace deletes the veth pairs in it.
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'pipe' });
  }
});
