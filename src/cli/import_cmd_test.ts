import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseCibXml, serializeCibXml } from '../cib/cib_xml.ts';
import { parseCrm } from '../cib/crm.ts';
import type { Cib, Group, Primitive } from '../cib/model.ts';
import { emptyCib } from '../cib/model.ts';
import { clusterProperty } from '../cib/resources.ts';
import { type CibCommand, CibStateMachine, validateCibCommand } from '../consensus/cib_state_machine.ts';
import { serveControl } from '../daemon/control.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { createLabCluster, startAndAgree } from '../daemon/lab_cluster.ts';
import { hasNetnsSupport } from '../lab/netns.ts';
import { repoRoot } from '../lib/repo_root.ts';
import { waitFor } from '../lib/wait.ts';
import { registerImportCommands } from './import_cmd.ts';
import { type CliRun, runCli, writeSeed003TwoVolumes } from './testing.ts';

/**
 * `halo import` against a control socket that answers as a daemon does (`status`, `cib`, and
 * `cib JSON` proposals applied to a real CibStateMachine): the client side of the protocol. The
 * whole path on real daemons runs in src/lab/seed004_test.ts.
 */

const FIXTURES = join(repoRoot(), 'src/cib/fixtures');

function halo(args: readonly string[]): Promise<CliRun> {
  return runCli(registerImportCommands, args);
}

/** A running "cluster" of node01 (id 1) and node02 (id 2) whose CIB starts as `initial`. */
async function withCluster<T>(
  initial: Cib,
  fn: (socket: string, sm: CibStateMachine, dir: string) => Promise<T>,
  beforeAnswer?: (line: string, sm: CibStateMachine) => void,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'halo-import-'));
  const sm = new CibStateMachine(initial);
  let index = 0;
  const socket = join(dir, 'n1.sock');
  const server = await serveControl(socket, (line) => {
    beforeAnswer?.(line, sm);
    if (line === 'cib') return { source: 'replicated', cib: sm.cib };
    if (line === 'status')
      return {
        node: 'node01',
        dc: 'node01',
        quorum: { quorate: true },
        consensus: { cib: sm.version() },
        members: [
          { id: 1, name: 'node01', self: true, state: 'self', witness: false },
          { id: 2, name: 'node02', self: false, state: 'member', witness: false },
        ],
      };
    if (!line.startsWith('cib ')) return { error: `unknown command '${line}'` };
    const v: unknown = JSON.parse(line.slice(4));
    const problem = validateCibCommand(v);
    if (problem) return { error: `cib: ${problem}` };
    const r = sm.applyCommand(v as CibCommand);
    index++;
    return { ok: true, index, term: 1, applied: r.ok, ...(r.ok ? {} : { code: r.code, message: r.message }) };
  });
  try {
    return await fn(socket, sm, dir);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Seed 004's Heartbeat files and drbd.conf, copied (authkeys mode 600, as Heartbeat demands). */
function seed004Files(dir: string): string[] {
  const files = ['ha.cf', 'haresources', 'authkeys', 'drbd.conf'].map((f) => {
    copyFileSync(join(FIXTURES, 'seed004', f), join(dir, f));
    return join(dir, f);
  });
  chmodSync(join(dir, 'authkeys'), 0o600);
  return files;
}

function running(): Cib {
  const r = parseCrm(
    'node 1: node01\nnode 2: node02\nprimitive other ocf:heartbeat:Dummy\nproperty stonith-enabled=true\n',
    'running.crm',
  );
  assert.ok(r.ok);
  return { ...emptyCib(), configuration: r.cib.configuration };
}

const group = (c: Cib) => c.configuration.resources.find((r) => r.id === 'group_1') as Group | undefined;
const param = (p: Primitive | undefined, name: string) =>
  p?.instanceAttributes.flatMap((s) => s.pairs).find((x) => x.name === name)?.value;

describe('halo import into a running cluster', () => {
  it("imports seed 004's Heartbeat files beside what runs, with the cluster's node ids and its fencing kept", async () => {
    await withCluster(running(), async (socket, sm, dir) => {
      const files = seed004Files(dir);
      const r = await halo(['import', ...files, '--socket', socket]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /committed to the cluster \(log index 1\)/);
      assert.match(r.out, /note: ha\.cf timings \(keepalive 2000 ms, deadtime 60000 ms/);
      assert.match(r.out, /note: drbddisk_r0 reads r0 from .*drbd\.conf \(config=/);
      assert.match(r.err, /haresources:1:8: warning: 'xxx\.xxx\.xxx\.xxx' is a placeholder/);
      const c = sm.cib.configuration;
      assert.deepEqual(
        c.resources.map((x) => x.id),
        ['other', 'group_1'],
        'update mode keeps what was there',
      );
      assert.deepEqual(
        group(sm.cib)?.members.map((m) => `${m.id} ${m.class}:${m.type}`),
        [
          'ip_xxx.xxx.xxx.xxx ocf:IPaddr2',
          'drbddisk_r0 heartbeat:drbddisk',
          'fs_drbd ocf:Filesystem',
          'drbdlinks heartbeat:drbdlinks',
          'apache2 lsb:apache2',
        ],
      );
      assert.equal(param(group(sm.cib)?.members[1], 'config'), join(dir, 'drbd.conf'));
      assert.deepEqual(
        c.nodes.map((n) => `${n.id}:${n.uname}`),
        ['1:node01', '2:node02'],
      );
      const props = c.crmConfig.flatMap((s) => s.pairs).map((p) => `${p.name}=${p.value}`);
      assert.ok(props.includes('stonith-enabled=true'), `fencing stays on: ${props}`);
      assert.ok(!props.includes('no-quorum-policy=ignore'));
      assert.deepEqual(
        c.rscDefaults.flatMap((s) => s.pairs).map((p) => `${p.name}=${p.value}`),
        ['resource-stickiness=INFINITY'],
        'auto_failback off',
      );
      const again = await halo(['import', ...files, '--socket', socket]);
      assert.equal(again.code, 0, again.err);
      assert.match(again.out, /nothing to change/);
    });
  });

  it('--dry-run prints the transition and commits nothing', async () => {
    await withCluster(running(), async (socket, sm, dir) => {
      const before = sm.version();
      const r = await halo(['import', ...seed004Files(dir), '--dry-run', '--socket', socket]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /dry run, nothing changed/);
      assert.match(r.out, /Transition Summary/);
      assert.deepEqual(sm.version(), before);
      const j = await halo([
        'import',
        ...seed004Files(dir),
        '--dry-run',
        '--output',
        'json',
        '--socket',
        socket,
      ]);
      const parsed = JSON.parse(j.out) as { ok: boolean; dryRun: boolean; committed: number[] };
      assert.equal(parsed.dryRun, true);
      assert.deepEqual(parsed.committed, []);
    });
  });

  it("--heartbeat-properties applies Heartbeat's no-fencing, no-quorum behaviour; --mode replace drops the rest", async () => {
    await withCluster(running(), async (socket, sm, dir) => {
      const r = await halo([
        'import',
        ...seed004Files(dir),
        '--heartbeat-properties',
        '--mode',
        'replace',
        '--socket',
        socket,
      ]);
      assert.equal(r.code, 0, r.err);
      const c = sm.cib.configuration;
      assert.deepEqual(
        c.resources.map((x) => x.id),
        ['group_1'],
      );
      const props = c.crmConfig.flatMap((s) => s.pairs).map((p) => `${p.name}=${p.value}`);
      assert.deepEqual(props, ['stonith-enabled=false', 'no-quorum-policy=ignore']);
    });
  });

  it('a Heartbeat directory (like /etc/ha.d) is read as its ha.cf, haresources and authkeys', async () => {
    await withCluster(running(), async (socket, sm, dir) => {
      seed004Files(dir);
      const r = await halo(['import', dir, join(dir, 'drbd.conf'), '--socket', socket]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /imported .*ha\.cf \+ .*haresources \+ .*authkeys: committed/);
      assert.equal(group(sm.cib)?.members.length, 5);
    });
  });

  it('a drbdlinks.conf is read and given to the drbdlinks resource', async () => {
    await withCluster(running(), async (socket, sm, dir) => {
      const links = join(dir, 'drbdlinks.conf');
      writeFileSync(links, "link('/etc/apache2', '/drbd/etc/apache2')\nlink('/var/www', '/drbd/var/www')\n");
      const r = await halo(['import', ...seed004Files(dir), links, '--socket', socket]);
      assert.equal(r.code, 0, r.err);
      assert.equal(param(group(sm.cib)?.members[3], 'config'), links);
    });
  });

  it('an import computed from a CIB another change replaced before it committed is refused and changes nothing', async () => {
    let other = false;
    await withCluster(
      running(),
      async (socket, sm, dir) => {
        const crm = join(dir, 'web.crm');
        writeFileSync(crm, 'primitive web ocf:heartbeat:Dummy\n');
        const r = await halo(['import', crm, '--socket', socket]);
        assert.equal(r.code, 1, r.err);
        assert.match(
          r.err,
          /halo: error: the configuration changed since it was read \(epoch 1, now 2\): nothing was changed; run the import again\n$/,
        );
        assert.ok(other);
        assert.ok(!sm.cib.configuration.resources.some((x) => x.id === 'web'));
        assert.equal(sm.version().epoch, 2);
      },
      (line, sm) => {
        // Another administrator's change commits between the import's read and its proposal.
        if (other || !line.startsWith('cib {')) return;
        other = true;
        assert.ok(sm.applyCommand({ op: 'set-property', name: 'no-quorum-policy', value: 'stop' }).ok);
      },
    );
  });

  it('a crm file imports too, and a second configuration in one run is refused', async () => {
    await withCluster(running(), async (socket, sm, dir) => {
      const crm = join(dir, 'web.crm');
      writeFileSync(crm, 'primitive web ocf:heartbeat:Dummy op monitor interval=10s\n');
      const r = await halo(['import', crm, '--socket', socket]);
      assert.equal(r.code, 0, r.err);
      assert.ok(sm.cib.configuration.resources.some((x) => x.id === 'web'));
      const before = sm.version();
      const two = await halo(['import', crm, ...seed004Files(dir), '--socket', socket]);
      assert.equal(two.code, 2);
      assert.match(two.err, /2 configurations given .*import one at a time/);
      assert.deepEqual(sm.version(), before);
    });
  });
});

describe('halo import refuses bad files and changes nothing', () => {
  const refuses = async (
    edit: (dir: string, files: string[]) => string[],
    expect: RegExp,
    code = 2,
  ): Promise<void> => {
    await withCluster(running(), async (socket, sm, dir) => {
      const before = JSON.stringify(sm.cib);
      const args = edit(dir, seed004Files(dir));
      const r = await halo(['import', ...args, '--socket', socket]);
      assert.equal(r.code, code, `${r.out}\n${r.err}`);
      assert.match(r.err, expect);
      assert.equal(JSON.stringify(sm.cib), before, 'the cluster is unchanged');
    });
  };

  it('a bad haresources entry is named by file:line:col', async () => {
    await refuses((dir, files) => {
      writeFileSync(join(dir, 'haresources'), 'node01 192.0.2.10 Filesystem::::/drbd\n');
      return files;
    }, /haresources:1:19: error: 'Filesystem::::\/drbd' is not a resource/);
  });

  it('an ha.cf with a bad value is named by file:line:col', async () => {
    await refuses((dir, files) => {
      writeFileSync(join(dir, 'ha.cf'), 'node node01\nnode node02\nudpport 99999\n');
      return files;
    }, /ha\.cf:3:9: error: udpport '99999' is not a port number/);
  });

  it('an authkeys file others can read is refused, as Heartbeat refuses it', async () => {
    await refuses((dir, files) => {
      chmodSync(join(dir, 'authkeys'), 0o644);
      return files;
    }, /authkeys:1:1: error: authkeys has mode 644/);
  });

  it('drbddisk naming a resource drbd.conf does not define is refused', async () => {
    await refuses((dir, files) => {
      writeFileSync(
        join(dir, 'haresources'),
        'node01 192.0.2.10 drbddisk::r9 Filesystem::/dev/drbd0::/drbd::ext3\n',
      );
      return files;
    }, /drbddisk_r9' uses replicated resource 'r9', which .*drbd\.conf does not define \(it has r0\)/);
  });

  it('a drbd.conf syntax error is named by file:line:col', async () => {
    await refuses((dir, files) => {
      writeFileSync(join(dir, 'drbd.conf'), 'resource r0 {\n  on node01 {\n    device /dev/drbd0\n  }\n');
      return files;
    }, /drbd\.conf:\d+:\d+: error:/);
  });

  it('a drbdlinks.conf line drbdlinks would not understand is named by file:line', async () => {
    await refuses((dir, files) => {
      const links = join(dir, 'drbdlinks.conf');
      writeFileSync(links, "link('/etc/apache2', '/drbd/etc/apache2')\nlink('/var/www')\n");
      return [...files, links];
    }, /drbdlinks\.conf:2:1: error: link\('\/var\/www'\) needs a target path too/);
  });

  it('Heartbeat files without their ha.cf, and unreadable files, are refused', async () => {
    await refuses(
      (_dir, files) => files.filter((f) => !f.endsWith('ha.cf')),
      /Heartbeat files need their ha\.cf too/,
    );
    await refuses(
      (dir, files) => [...files, join(dir, 'missing.cf')],
      /missing\.cf: error: cannot read the file/,
    );
  });

  it('a configuration with a dangling reference (an order on a resource that does not exist) is named by file:line:col', async () => {
    await refuses(
      (dir) => {
        const crm = join(dir, 'bad.crm');
        writeFileSync(crm, 'primitive web ocf:heartbeat:Dummy\norder o inf: nosuch web\n');
        return [crm];
      },
      /bad\.crm:2:\d+: error: .*nosuch/,
      2,
    );
  });

  it('without a running cluster it says so and exits 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-import-'));
    try {
      const r = await halo(['import', ...seed004Files(dir), '--socket', join(dir, 'nobody.sock')]);
      assert.equal(r.code, 2);
      assert.match(r.err, /no running cluster found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('halo import on a real three-node cluster', () => {
  it('a Heartbeat haresources line imported through a follower commits via the DC and becomes a running group', {
    skip: !hasNetnsSupport() && 'needs root and ip netns',
    timeout: 120_000,
  }, async () => {
    const names = ['n1', 'n2', 'n3'];
    const lab = createLabCluster({ nodes: names });
    try {
      const dc = await startAndAgree(lab, names);
      const follower = names.find((n) => n !== dc)!;
      const sock = (n: string) => join(lab.dir, `${n}.sock`);
      const epoch = async () => ((await lab.status(dc)) as DaemonStatus).consensus?.cib?.epoch;
      writeFileSync(join(lab.dir, 'ha.cf'), 'keepalive 1\ndeadtime 10\nauto_failback on\nnode n1 n2 n3\n');
      writeFileSync(join(lab.dir, 'haresources'), 'n2 Delay::0::0\n');
      const files = [join(lab.dir, 'ha.cf'), join(lab.dir, 'haresources')];
      const before = await epoch();
      const dry = await halo(['import', ...files, '--dry-run', '--socket', sock(follower)]);
      assert.equal(dry.code, 0, dry.err);
      assert.match(dry.out, /Start\s+Delay_0_0\s+\(\s*n2\s*\)/);
      assert.equal(await epoch(), before, 'a dry run changes nothing');
      // The follower forwards the change to the DC and answers once it committed.
      const ok = await halo(['import', ...files, '--socket', sock(follower)]);
      assert.equal(ok.code, 0, ok.err);
      assert.match(ok.out, /imported .*ha\.cf \+ .*haresources: committed to the cluster/);
      await waitFor('the imported group to run on its home node', 60_000, async () => {
        const m = (await lab.command(dc, 'crm_mon')) as { text?: string };
        return /Delay_0_0\s+\(heartbeat:Delay\):\s+Started n2/.test(m.text ?? '') ? true : undefined;
      });
    } finally {
      lab.destroy();
    }
  });
});

describe('halo import into a CIB file (--cib, CIB_file), without a cluster', () => {
  it("imports seed 004's files with the file's node ids; --dry-run writes nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-import-'));
    try {
      const cib = join(dir, 'cib.xml');
      writeFileSync(cib, serializeCibXml(running()));
      const before = readFileSync(cib, 'utf8');
      const files = seed004Files(dir);
      const dry = await halo(['import', ...files, '--cib', cib, '--dry-run']);
      assert.equal(dry.code, 0, dry.err);
      assert.match(dry.out, /\(dry run, nothing changed\)/);
      assert.equal(readFileSync(cib, 'utf8'), before);
      const r = await halo(['import', ...files, '--cib', cib]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /imported .*haresources .*into .*cib\.xml \(epoch \d+\)/);
      const after = parseCibXml(readFileSync(cib, 'utf8'), cib);
      assert.ok(after.ok);
      assert.equal(group(after.cib)?.members.length, 5);
      assert.deepEqual(
        after.cib.configuration.nodes.map((n) => [n.id, n.uname]),
        [
          ['1', 'node01'],
          ['2', 'node02'],
        ],
      );
      // What was there stays (update mode), fencing included.
      assert.ok(after.cib.configuration.resources.some((x) => x.id === 'other'));
      assert.equal(clusterProperty(after.cib, 'stonith-enabled'), 'true');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the drbd.conf given says which ms holds a Filesystem's DRBD device, so the warning names that one", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-import-'));
    try {
      const cib = join(dir, 'cib.xml');
      writeFileSync(cib, serializeCibXml(emptyCib()));
      const { crm, drbd } = writeSeed003TwoVolumes(dir);
      const r = await halo(['import', crm, drbd, '--cib', cib, '--dry-run']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /warning: Filesystem 'fs_drbd' mounts DRBD device \/dev\/drbd0 .*'ms_drbd'/);
      assert.doesNotMatch(r.err, /whichever of/, "drbd.conf says /dev/drbd0 is ms_drbd's");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("seed 003's corosync.conf is refused with what replaces it", async () => {
    const r = await halo([
      'import',
      join(FIXTURES, 'seed003-corosync.conf'),
      '--cib',
      join(FIXTURES, 'none.xml'),
    ]);
    assert.equal(r.code, 2);
    assert.match(
      r.err,
      /seed003-corosync\.conf: error: this is a corosync\.conf: .*halo cluster init --from corosync\.conf/,
    );
  });

  it('a CIB file that does not exist is refused, saying how to make one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-import-'));
    try {
      const r = await halo(['import', ...seed004Files(dir), '--cib', join(dir, 'none.xml')]);
      assert.equal(r.code, 2);
      assert.match(
        r.err,
        /none\.xml: error: cannot read the CIB file .*halo config convert --to xml FILES >/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
