import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { toCibCommands } from '../admin/cib_commands.ts';
import { type AdminEdit, applyEdit } from '../admin/edits.ts';
import { locate } from '../admin/resource_edits.ts';
import { NODE1, NODE2, NOW_MS, seed003Cib } from '../admin/testing.ts';
import { parseCibXml, serializeCibXml } from '../cib/cib_xml.ts';
import { parseCrm } from '../cib/crm.ts';
import type { Cib } from '../cib/model.ts';
import { clusterProperty, findResource, metaValue, nodeAttribute } from '../cib/resources.ts';
import { type CibCommand, CibStateMachine, validateCibCommand } from '../consensus/cib_state_machine.ts';
import { serveControl } from '../daemon/control.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { createLabCluster, LAB_FORM_DEADLINE_MS, startAndAgree } from '../daemon/lab_cluster.ts';
import { hasNetnsSupport } from '../lab/netns.ts';
import { repoRoot } from '../lib/repo_root.ts';
import { waitFor } from '../lib/wait.ts';
import { configurePropertyShorthand, NO_CLUSTER_MESSAGE, registerAdminCommands } from './admin_cmd.ts';
import { type CliRun, runCli } from './testing.ts';

const SEED_XML = serializeCibXml(seed003Cib());

/**
 * Runs `halo ARGS` with only the admin commands registered. Output goes to buffers handed to
 * the commands (never by replacing process.stdout, which the test reporter writes to).
 */
async function halo(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<CliRun> {
  const savedEnv = process.env.CIB_file;
  if ('CIB_file' in env) {
    if (env.CIB_file === undefined) delete process.env.CIB_file;
    else process.env.CIB_file = env.CIB_file;
  } else delete process.env.CIB_file;
  try {
    return await runCli(registerAdminCommands, args);
  } finally {
    if (savedEnv === undefined) delete process.env.CIB_file;
    else process.env.CIB_file = savedEnv;
  }
}

/** A temp dir holding `cib.xml` (seed 003 running); removed afterwards. */
async function withCib<T>(fn: (file: string, dir: string) => T | Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'halo-admin-'));
  try {
    const file = join(dir, 'cib.xml');
    writeFileSync(file, SEED_XML);
    return await fn(file, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function readCib(file: string) {
  const p = parseCibXml(readFileSync(file, 'utf8'), file);
  assert.ok(p.ok, 'the written CIB must parse');
  return p.cib;
}

/** Runs a command that must be refused and checks the file is byte for byte unchanged. */
async function refusedUnchanged(args: readonly string[], code: number, message: RegExp): Promise<void> {
  await withCib(async (file) => {
    const r = await halo([...args, '--cib', file]);
    assert.equal(r.code, code, r.err);
    assert.match(r.err, message);
    assert.equal(readFileSync(file, 'utf8'), SEED_XML, 'a refused command must leave the file unchanged');
  });
}

describe('halo resource on a CIB file', () => {
  it('move --dry-run prints the Transition Summary and leaves the file unchanged', async () => {
    await withCib(async (file) => {
      const r = await halo(['resource', 'move', 'g_all', NODE2, '--dry-run', '--cib', file]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /Transition Summary:/);
      assert.match(r.out, /Move\s+p_mysql\s+\(\s*thelibrary-node1 -> thelibrary-node2 \)/);
      assert.match(r.out, /dry run: nothing was written/);
      assert.equal(readFileSync(file, 'utf8'), SEED_XML);
      assert.deepEqual(readdirSync(join(file, '..')), ['cib.xml'], 'no temporary file is left behind');
    });
  });

  it('move writes the cli-prefer constraint and bumps the epoch', async () => {
    await withCib(async (file) => {
      const r = await halo(['resource', 'move', 'g_all', NODE2, '--cib', file]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /updated .*cib\.xml \(epoch 2, num_updates 0\)/);
      const cib = readCib(file);
      const c = cib.configuration.constraints.find((x) => x.id === 'cli-prefer-g_all');
      assert.ok(c && c.kind === 'rsc_location' && c.node === NODE2 && c.score === 'INFINITY');
      assert.ok(cib.attrs.some(([k, v]) => k === 'epoch' && v === '2'));
    });
  });

  it('an unknown resource exits 1 with a suggestion and changes nothing', async () => {
    await refusedUnchanged(
      ['resource', 'stop', 'g_al'],
      1,
      /unknown resource 'g_al' \(did you mean 'g_all'\?\)/,
    );
  });

  it('moving a clone that runs on two nodes without a node exits 1 and changes nothing', async () => {
    await refusedUnchanged(['resource', 'move', 'cl_pingtest'], 1, /active on 2 nodes/);
  });

  it('restart on a CIB file exits 2 and explains that it needs a running cluster', async () => {
    await refusedUnchanged(['resource', 'restart', 'g_all'], 2, /restart needs a running cluster/);
  });

  it('locate and failcount answer from the status, also as JSON', async () => {
    await withCib(async (file) => {
      const l = await halo(['resource', 'locate', 'ms_drbd', '--cib', file]);
      assert.equal(l.code, 0, l.err);
      assert.equal(
        l.out,
        `resource p_drbd:0 is running on: ${NODE1} Promoted\nresource p_drbd:1 is running on: ${NODE2}\n`,
      );
      const f = await halo(['resource', 'failcount', 'p_nginx', 'show', '--cib', file, '--output', 'json']);
      assert.equal(f.code, 0, f.err);
      assert.equal(JSON.parse(f.out).total, 2);
    });
  });

  it('cleanup clears the fail count, and failcount then shows none', async () => {
    await withCib(async (file) => {
      assert.equal((await halo(['resource', 'cleanup', 'p_nginx', '--cib', file])).code, 0);
      const f = await halo(['resource', 'failcount', 'p_nginx', '--cib', file]);
      assert.equal(f.out, "no failures recorded for 'p_nginx'\n");
    });
  });

  it('stop then clear leaves a file the next command reads, with CIB_file instead of --cib', async () => {
    await withCib(async (file) => {
      assert.equal((await halo(['resource', 'stop', 'p_mysql'], { CIB_file: file })).code, 0);
      const again = await halo(['resource', 'stop', 'p_mysql'], { CIB_file: file });
      assert.match(again.out, /nothing to change/);
    });
  });
});

describe('halo configure on a CIB file', () => {
  it('an invalid property value exits 1 and changes nothing', async () => {
    await refusedUnchanged(
      ['configure', 'property', 'no-quorum-policy=sometimes'],
      1,
      /invalid value 'sometimes' for property 'no-quorum-policy'/,
    );
  });

  it('an unknown property exits 1 unless --force', async () => {
    await refusedUnchanged(
      ['configure', 'property', 'stonith-enabeld=true'],
      1,
      /did you mean 'stonith-enabled'/,
    );
    await withCib(async (file) => {
      assert.equal(
        (await halo(['configure', 'property', 'stonith-enabeld=true', '--force', '--cib', file])).code,
        0,
      );
    });
  });

  it('a primitive with a quoted multi-word parameter is added whole', async () => {
    await withCib(async (file) => {
      const r = await halo([
        'configure',
        'primitive',
        'p_ping2',
        'ocf:pacemaker:ping',
        'params',
        'host_list=8.8.8.8 193.99.144.80',
        'op',
        'monitor',
        'interval=5',
        '--cib',
        file,
      ]);
      assert.equal(r.code, 0, r.err);
      const p = findResource(readCib(file), 'p_ping2');
      assert.ok(p?.kind === 'primitive');
      assert.equal(p.instanceAttributes[0]?.pairs[0]?.value, '8.8.8.8 193.99.144.80');
    });
  });

  it('a location rule with -inf: passes through the option parser as crm text', async () => {
    await withCib(async (file) => {
      const r = await halo([
        'configure',
        'location',
        'l_no_ping',
        'g_all',
        'rule',
        '-inf:',
        'not_defined',
        'pingd',
        '--cib',
        file,
        '--dry-run',
      ]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /Transition Summary:\n {2}\(none: the cluster would not act\)/);
    });
  });

  it('an edit that leaves a Filesystem on DRBD untied to the promoted ms goes ahead with a warning; tying it warns no more', async () => {
    await withCib(async (file) => {
      const r = await halo([
        'configure',
        'primitive',
        'fs2',
        'ocf:heartbeat:Filesystem',
        'params',
        'device=/dev/drbd0',
        'directory=/srv',
        'fstype=ext4',
        '--cib',
        file,
      ]);
      assert.equal(r.code, 0, r.err);
      assert.match(
        r.err,
        /^warning: Filesystem 'fs2' mounts DRBD device \/dev\/drbd0 .*add: colocation \S+ inf: fs2 ms_drbd:Master ; order \S+ inf: ms_drbd:promote fs2:start/m,
      );
      assert.ok(
        readCib(file).configuration.resources.some((x) => x.id === 'fs2'),
        'the edit went ahead',
      );
      const tie = await halo([
        'configure',
        'colocation',
        'c_fs2',
        'inf:',
        'fs2',
        'ms_drbd:Master',
        '--cib',
        file,
      ]);
      assert.equal(tie.code, 0, tie.err);
      const order = await halo([
        'configure',
        'order',
        'o_fs2',
        'inf:',
        'ms_drbd:promote',
        'fs2:start',
        '--cib',
        file,
      ]);
      assert.equal(order.code, 0, order.err);
      assert.doesNotMatch(order.err, /warning: Filesystem 'fs2'/);
    });
  });

  it('deleting a referenced resource exits 1; --force deletes it with its constraints', async () => {
    await withCib(async (file) => {
      assert.equal(
        (await halo(['configure', 'primitive', 'web', 'ocf:heartbeat:Dummy', '--cib', file])).code,
        0,
      );
      assert.equal(
        (await halo(['configure', 'location', 'l_web', 'web', '100:', NODE2, '--cib', file])).code,
        0,
      );
      const bytes = readFileSync(file, 'utf8');
      const r = await halo(['configure', 'delete', 'web', '--cib', file]);
      assert.equal(r.code, 1);
      assert.match(r.err, /referenced by constraint 'l_web'/);
      assert.equal(readFileSync(file, 'utf8'), bytes);
      const f = await halo(['configure', 'delete', 'web', '--force', '--cib', file]);
      assert.equal(f.code, 0, f.err);
      assert.match(f.out, /deleted constraint 'l_web'/);
    });
  });

  it('load update reads a crm file and merges it', async () => {
    await withCib(async (file, dir) => {
      const extra = join(dir, 'extra.crm');
      writeFileSync(extra, 'primitive web ocf:heartbeat:Dummy\nlocation l_web web 100: thelibrary-node2\n');
      const r = await halo(['configure', 'load', 'update', extra, '--cib', file]);
      assert.equal(r.code, 0, r.err);
      assert.ok(findResource(readCib(file), 'web'));
      assert.ok(findResource(readCib(file), 'g_all'));
    });
  });

  it('load of a file with a dangling reference exits 1 naming file:line:col', async () => {
    await withCib(async (file, dir) => {
      const bad = join(dir, 'bad.crm');
      writeFileSync(bad, 'primitive web ocf:heartbeat:Dummy\ncolocation c_x inf: web nowhere\n');
      const r = await halo(['configure', 'load', 'update', bad, '--cib', file]);
      assert.equal(r.code, 1);
      assert.match(r.err, /bad\.crm:2:\d+: error: .*'nowhere'/);
      assert.equal(readFileSync(file, 'utf8'), SEED_XML);
    });
  });

  it('show prints crm syntax, or XML with --xml', async () => {
    await withCib(async (file) => {
      const crm = await halo(['configure', 'show', '--cib', file]);
      assert.match(crm.out, /^group g_all p_sip p_nginx p_mysql/m);
      const xml = await halo(['configure', 'show', '--xml', '--cib', file]);
      assert.match(xml.out, /^<cib /);
    });
  });
});

describe('every configure, node and resource command succeeds on a CIB file', () => {
  /** Runs each command in turn on one file; each must exit 0. */
  async function steps(file: string, commands: readonly (readonly string[])[]): Promise<void> {
    for (const c of commands) {
      const r = await halo([...c, '--cib', file]);
      assert.equal(r.code, 0, `${c.join(' ')}: ${r.err}`);
      assert.match(r.out, /updated .*cib\.xml|nothing to change/, c.join(' '));
    }
  }

  it('rsc_defaults, op_defaults, primitive, group, clone, ms, colocation and order write what they say', async () => {
    await withCib(async (file) => {
      await steps(file, [
        ['configure', 'rsc_defaults', 'resource-stickiness=200'],
        ['configure', 'op_defaults', 'timeout=90s'],
        ['configure', 'primitive', 'p_a', 'ocf:heartbeat:Dummy'],
        ['configure', 'primitive', 'p_b', 'ocf:heartbeat:Dummy'],
        ['configure', 'group', 'g_ab', 'p_a', 'p_b'],
        ['configure', 'clone', 'cl_ab', 'g_ab'],
        ['configure', 'primitive', 'p_c', 'ocf:pacemaker:Stateful'],
        ['configure', 'ms', 'ms_c', 'p_c', 'meta', 'promoted-max=1'],
        ['configure', 'colocation', 'c_ab', 'inf:', 'cl_ab', 'ms_c:Master'],
        ['configure', 'order', 'o_ab', 'Mandatory:', 'ms_c:promote', 'cl_ab:start'],
      ]);
      const cib = readCib(file);
      const show = (await halo(['configure', 'show', '--cib', file])).out;
      assert.match(show, /^rsc_defaults[\s\\]+resource-stickiness=200$/m);
      assert.match(show, /^op_defaults[\s\\]+timeout=90s$/m);
      const g = findResource(cib, 'g_ab');
      assert.ok(g?.kind === 'group' && g.members.map((m) => m.id).join(' ') === 'p_a p_b');
      const cl = findResource(cib, 'cl_ab');
      assert.ok(cl?.kind === 'clone' && cl.child.id === 'g_ab');
      const ms = findResource(cib, 'ms_c');
      assert.ok(ms?.kind === 'clone' && ms.child.id === 'p_c' && metaValue(ms, 'promoted-max', cib) === '1');
      const ids = cib.configuration.constraints.map((c) => `${c.kind}:${c.id}`);
      assert.ok(ids.includes('rsc_colocation:c_ab') && ids.includes('rsc_order:o_ab'), ids.join(' '));
    });
  });

  it('node online, maintenance and ready, and resource start, manage, unmanage, ban and clear write what they say', async () => {
    await withCib(async (file) => {
      await steps(file, [
        ['node', 'standby', NODE2],
        ['node', 'online', NODE2],
        ['node', 'maintenance', NODE1],
      ]);
      let cib = readCib(file);
      assert.equal(nodeAttribute(cib, NODE2, 'standby'), 'off');
      assert.equal(nodeAttribute(cib, NODE1, 'maintenance'), 'on');
      await steps(file, [
        ['node', 'ready', NODE1],
        ['resource', 'stop', 'p_mysql'],
        ['resource', 'start', 'p_mysql'],
        ['resource', 'unmanage', 'p_nginx'],
        ['resource', 'ban', 'g_all', NODE1],
      ]);
      cib = readCib(file);
      assert.equal(nodeAttribute(cib, NODE1, 'maintenance'), 'off');
      assert.equal(metaValue(findResource(cib, 'p_mysql')!, 'target-role', cib), 'Started');
      assert.equal(metaValue(findResource(cib, 'p_nginx')!, 'is-managed', cib), 'false');
      assert.ok(cib.configuration.constraints.some((c) => c.id === `cli-ban-g_all-on-${NODE1}`));
      await steps(file, [
        ['resource', 'manage', 'p_nginx'],
        ['resource', 'clear', 'g_all'],
        ['configure', 'property', 'maintenance-mode=false'],
      ]);
      cib = readCib(file);
      assert.equal(metaValue(findResource(cib, 'p_nginx')!, 'is-managed', cib), 'true');
      assert.ok(!cib.configuration.constraints.some((c) => c.id.startsWith('cli-')));
      assert.equal(clusterProperty(cib, 'maintenance-mode'), 'false');
    });
  });
});

describe('halo configure edit', () => {
  /** Runs `configure edit` with EDITOR set to a non-interactive command. */
  async function edit(editor: string, args: readonly string[]) {
    const saved = { EDITOR: process.env.EDITOR, VISUAL: process.env.VISUAL };
    process.env.EDITOR = editor;
    delete process.env.VISUAL;
    try {
      return await halo(['configure', 'edit', ...args]);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  }

  it('an edit with --dry-run shows its effect: a stricter ping rule stops the group; the file is unchanged', async () => {
    await withCib(async (file) => {
      const r = await edit("sed -i 's/pingd lt 1000/pingd lt 5000/'", ['--cib', file, '--dry-run']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /Stop\s+p_sip/);
      assert.equal(readFileSync(file, 'utf8'), SEED_XML);
    });
  });

  it('an edit is loaded into the file; leaving the text as it was changes nothing', async () => {
    await withCib(async (file) => {
      const none = await edit('true', ['--cib', file]);
      assert.equal(none.out, 'no changes\n');
      assert.equal(readFileSync(file, 'utf8'), SEED_XML);
      const r = await edit("sed -i 's/pingd lt 1000/pingd lt 5000/'", ['--cib', file]);
      assert.equal(r.code, 0, r.err);
      const rule = readCib(file).configuration.constraints.find((c) => c.id === 'l_all_ping');
      assert.ok(rule?.kind === 'rsc_location' && JSON.stringify(rule.rules).includes('"5000"'));
    });
  });

  it('a CIB file another command wrote while the editor was open is not overwritten; the edited text is kept', async () => {
    await withCib(async (file) => {
      // The "editor" also stands for another administrator, who writes the file meanwhile.
      const editor = `f() { sed -i 's/pingd lt 1000/pingd lt 5000/' "$1"; sed -i 's/ epoch="1"/ epoch="7"/' '${file}'; }; f`;
      const r = await edit(editor, ['--cib', file]);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, /the file changed while this command ran; nothing written/);
      const kept = /your edited text is kept in (\S+)/.exec(r.err)?.[1];
      assert.ok(kept, r.err);
      try {
        assert.match(readFileSync(kept, 'utf8'), /pingd lt 5000/);
      } finally {
        rmSync(join(kept, '..'), { recursive: true, force: true });
      }
      assert.equal(readFileSync(file, 'utf8'), SEED_XML.replace(' epoch="1"', ' epoch="7"'));
    });
  });

  it('a syntax error exits 1 naming the line, keeps the edited text and changes nothing', async () => {
    await withCib(async (file) => {
      const r = await edit("sed -i 's/^primitive p_sip/primitve p_sip/'", ['--cib', file]);
      assert.equal(r.code, 1);
      const kept = /kept in (\S+)/.exec(r.err)?.[1];
      assert.ok(kept, r.err);
      try {
        assert.match(r.err, /configuration\.crm:\d+:\d+: error/);
        assert.match(readFileSync(kept, 'utf8'), /primitve p_sip/);
      } finally {
        rmSync(join(kept, '..'), { recursive: true, force: true });
      }
      assert.equal(readFileSync(file, 'utf8'), SEED_XML);
    });
  });
});

describe('halo node on a CIB file', () => {
  it('standby writes standby=on; an unknown node exits 1 and changes nothing', async () => {
    await withCib(async (file) => {
      assert.equal((await halo(['node', 'standby', NODE1, '--cib', file])).code, 0);
      const a = await halo(['node', 'attribute', NODE1, 'standby', '--cib', file]);
      assert.equal(a.out, 'standby=on (forever)\n');
    });
    await refusedUnchanged(['node', 'standby', 'thelibrary-node9'], 1, /unknown node 'thelibrary-node9'/);
  });

  it('attribute sets, shows and deletes a transient attribute', async () => {
    await withCib(async (file) => {
      assert.equal(
        (await halo(['node', 'attribute', NODE2, 'rack', '7', '--lifetime', 'reboot', '--cib', file])).code,
        0,
      );
      assert.equal(
        (await halo(['node', 'attribute', NODE2, 'rack', '--cib', file])).out,
        'rack=7 (reboot)\n',
      );
      assert.equal(
        (await halo(['node', 'attribute', NODE2, 'rack', '--delete', '--lifetime', 'reboot', '--cib', file]))
          .code,
        0,
      );
      assert.equal(
        (await halo(['node', 'attribute', NODE2, 'rack', '--cib', file])).out,
        `rack is not set on ${NODE2}\n`,
      );
    });
  });
});

describe('target selection and help', () => {
  it('without --cib or CIB_file the command exits 2 saying no cluster was found and which config it read', async () => {
    const config = join(tmpdir(), 'halo-no-such-dir', 'halo.json');
    const r = await halo(['resource', 'stop', 'g_all', '--config', config]);
    assert.equal(r.code, 2);
    assert.equal(r.err, `halo: ${NO_CLUSTER_MESSAGE}: ${config} does not exist\n`);
  });

  it('a CIB file that is not XML exits 2 with file:line:col', async () => {
    await withCib(async (file) => {
      writeFileSync(file, 'this is not a cib');
      const r = await halo(['resource', 'stop', 'g_all', '--cib', file]);
      assert.equal(r.code, 2);
      assert.match(r.err, /cib\.xml:1:\d+: error: /);
    });
  });

  it('every command has help with an example', async () => {
    const commands = [
      ['configure', 'show'],
      ['configure', 'load'],
      ['configure', 'property'],
      ['configure', 'primitive'],
      ['configure', 'delete'],
      ['configure', 'edit'],
      ['node', 'standby'],
      ['node', 'attribute'],
      ['resource', 'move'],
      ['resource', 'cleanup'],
      ['resource', 'failcount'],
      ['resource', 'locate'],
      ['resource', 'restart'],
    ];
    for (const c of commands) {
      const r = await halo([...c, '--help']);
      assert.equal(r.code, 0, c.join(' '));
      assert.match(r.out, /Example:\n {2}(\w+=\S+ )?halo /, c.join(' '));
    }
  });
});

const CTS_INPUT = join(repoRoot(), '.cache/pacemaker-cts/scheduler/xml/bug-1718.xml');
const CRM_RESOURCE = '/usr/sbin/crm_resource';
/** Pacemaker's own tools finish in well under a second on a small CIB file. */
const PACEMAKER_TOOL_TIMEOUT_MS = 20_000;

describe("agreement with Pacemaker's own tools", () => {
  const skip =
    !existsSync(CTS_INPUT) || !existsSync(CRM_RESOURCE)
      ? 'needs the Pacemaker regression inputs (scripts/fetch_pacemaker_cts.sh) and crm_resource (pacemaker-cli-utils)'
      : false;

  it('move, ban, standby, property, unmanage and stop write what crm_resource and crm_attribute write', {
    skip,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-admin-pcmk-'));
    try {
      const ours = join(dir, 'halo.xml');
      const theirs = join(dir, 'pacemaker.xml');
      copyFileSync(CTS_INPUT, ours);
      copyFileSync(CTS_INPUT, theirs);
      const pcmk = (tool: string, args: string[]): void => {
        execFileSync(tool, args, {
          env: { ...process.env, CIB_file: theirs },
          timeout: PACEMAKER_TOOL_TIMEOUT_MS,
          stdio: 'ignore',
        });
      };
      pcmk(CRM_RESOURCE, ['--move', '-r', 'Web_Group', '-N', 'biggame.ds9']);
      pcmk(CRM_RESOURCE, ['--ban', '-r', 'group_fUN', '-N', 'ops.ds9']);
      pcmk('/usr/sbin/crm_attribute', ['-N', 'biggame.ds9', '-n', 'standby', '-v', 'on']);
      pcmk('/usr/sbin/crm_attribute', ['-n', 'no-quorum-policy', '-v', 'freeze']);
      pcmk('/usr/sbin/crm_attribute', ['-n', 'stonith-timeout', '-v', '90s']);
      pcmk(CRM_RESOURCE, ['-r', 'Apache_IP', '--meta', '-p', 'is-managed', '-v', 'false']);
      pcmk(CRM_RESOURCE, ['-r', 'group_fUN', '--meta', '-p', 'target-role', '-v', 'Stopped']);
      for (const args of [
        ['resource', 'move', 'Web_Group', 'biggame.ds9'],
        ['resource', 'ban', 'group_fUN', 'ops.ds9'],
        ['node', 'standby', 'biggame.ds9'],
        ['configure', 'property', 'no-quorum-policy=freeze'],
        ['configure', 'property', 'stonith-timeout=90s'],
        ['resource', 'unmanage', 'Apache_IP'],
        ['resource', 'stop', 'group_fUN'],
      ]) {
        const r = await halo([...args, '--cib', ours]);
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
      }
      const a = readCib(ours);
      const b = readCib(theirs);
      const cli = (c: typeof a) => c.configuration.constraints.filter((x) => x.id.startsWith('cli-'));
      assert.deepEqual(cli(a), cli(b));
      const node = (c: typeof a) => c.configuration.nodes.find((n) => n.uname === 'biggame.ds9');
      assert.deepEqual(node(a), node(b));
      assert.deepEqual(a.configuration.crmConfig, b.configuration.crmConfig);
      assert.deepEqual(findResource(a, 'Apache_IP'), findResource(b, 'Apache_IP'));
      // crm_resource also rewrites the members' own target-role to Stopped; halo removes them
      // (as crmsh does), so only the group's own attribute is compared.
      const groupSets = (c: typeof a) => {
        const g = findResource(c, 'group_fUN');
        return g?.kind === 'group' ? g.metaAttributes : [];
      };
      assert.deepEqual(groupSets(a), groupSets(b));
      // Each halo command is one CIB write and bumps the epoch once (crm_resource needs three
      // writes for the group stop above, one per target-role it sets).
      const epoch = (c: typeof a) => Number(c.attrs.find(([k]) => k === 'epoch')?.[1]);
      const original = parseCibXml(readFileSync(CTS_INPUT, 'utf8'), CTS_INPUT);
      assert.ok(original.ok);
      assert.equal(epoch(a), epoch(original.cib) + 7);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * A control socket that answers `cib JSON` the way the daemon does (validate, then reply with
 * the commit outcome, with the state machine's code when it was not applied), applying each
 * command to a real CibStateMachine instead of going through Raft: this tests the client side
 * of the protocol, not the cluster. `beforeAnswer` runs before each request is answered, so a
 * test can commit another administrator's change at a chosen moment.
 */
async function withControlSocket<T>(
  fn: (socket: string, sm: CibStateMachine) => Promise<T>,
  beforeAnswer?: (line: string, sm: CibStateMachine) => void,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'halo-admin-live-'));
  const sm = new CibStateMachine(seed003Cib());
  let index = 0;
  const server = await serveControl(join(dir, 'n1.sock'), (line) => {
    beforeAnswer?.(line, sm);
    if (line === 'cib') return { source: 'replicated', cib: sm.cib };
    if (line === 'status') return { consensus: { cib: sm.version() } };
    if (!line.startsWith('cib ')) return { error: `unknown command '${line}'` };
    const v: unknown = JSON.parse(line.slice(4));
    const problem = validateCibCommand(v);
    if (problem) return { error: `cib: ${problem}` };
    const r = sm.applyCommand(v as CibCommand);
    index++;
    return { ok: true, index, term: 1, applied: r.ok, ...(r.ok ? {} : { code: r.code, message: r.message }) };
  });
  try {
    return await fn(join(dir, 'n1.sock'), sm);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('halo node and configure property on a running cluster', () => {
  it('standby is proposed as a set-node-attribute command and committed', async () => {
    await withControlSocket(async (socket, sm) => {
      const r = await halo(['node', 'standby', NODE1, '--socket', socket]);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out, 'committed to the cluster (log index 1)\n');
      const n = sm.cib.configuration.nodes.find((x) => x.uname === NODE1)!;
      assert.ok(
        n.instanceAttributes.some((s) => s.pairs.some((p) => p.name === 'standby' && p.value === 'on')),
      );
    });
  });

  it('property values are checked before anything is sent', async () => {
    await withControlSocket(async (socket, sm) => {
      const before = sm.version().epoch;
      const r = await halo(['configure', 'property', 'no-quorum-policy=sometimes', '--socket', socket]);
      assert.equal(r.code, 1);
      assert.match(r.err, /invalid value 'sometimes'/);
      assert.equal(sm.version().epoch, before);
      const ok = await halo(['configure', 'property', 'stonith-enabled=true', '--socket', socket]);
      assert.equal(ok.code, 0, ok.err);
      assert.equal(sm.version().epoch, before + 1);
    });
  });

  it('an unknown node is refused by the cluster with exit 1', async () => {
    await withControlSocket(async (socket) => {
      const r = await halo(['node', 'standby', 'thelibrary-node9', '--socket', socket]);
      assert.equal(r.code, 1);
      assert.match(r.err, /no node "thelibrary-node9"/);
    });
  });

  it('locate and --dry-run read the cluster CIB from the daemon and change nothing', async () => {
    await withControlSocket(async (socket, sm) => {
      const before = JSON.stringify(sm.cib);
      const l = await halo(['resource', 'locate', 'ms_drbd', '--socket', socket]);
      assert.equal(l.code, 0, l.err);
      assert.match(l.out, /p_drbd:0 is running on: thelibrary-node1 Promoted/);
      const d = await halo(['node', 'standby', NODE1, '--dry-run', '--socket', socket]);
      assert.equal(d.code, 0, d.err);
      assert.match(d.out, /Move\s+p_sip\s+\(\s*thelibrary-node1 -> thelibrary-node2 \)/);
      assert.equal(JSON.stringify(sm.cib), before);
    });
  });

  it('move reads the cluster CIB, proposes the new configuration and the cluster gets the constraint', async () => {
    await withControlSocket(async (socket, sm) => {
      const r = await halo(['resource', 'move', 'g_all', NODE2, '--socket', socket]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /committed to the cluster \(log index 1\)/);
      const c = sm.cib.configuration.constraints.find((x) => x.id === 'cli-prefer-g_all');
      assert.ok(c?.kind === 'rsc_location' && c.node === NODE2 && c.score === 'INFINITY');
      assert.equal(sm.version().epoch, 2);
    });
  });

  it('cleanup on a running cluster is all or nothing: every command is checked before the first is sent', async () => {
    await withControlSocket(async (socket, sm) => {
      const before = JSON.stringify(sm.cib);
      const r = await halo(['resource', 'cleanup', 'p_nginx', '--socket', socket]);
      const st = () => sm.cib.status.find((x) => x.uname === NODE2)!;
      const failAttrs = () =>
        st()
          .transientAttributes.flatMap((x) => x.pairs.map((p) => p.name))
          .filter((n) => n.includes('p_nginx'));
      if (r.code === 0) {
        assert.deepEqual(failAttrs(), []);
        assert.ok(
          !st()
            .resources.find((h) => h.id === 'p_nginx')!
            .ops.some((op) => op.id === 'p_nginx_monitor_10000'),
        );
      } else {
        // Today the command check refuses attribute names with '#' (fail-count-RSC#op_interval).
        assert.equal(r.code, 2, r.err);
        assert.match(r.err, /cannot take this change yet: set-node-attribute/);
        assert.equal(JSON.stringify(sm.cib), before);
      }
    });
  });

  it('an edit that changes nothing in the cluster says so and sends nothing', async () => {
    await withControlSocket(async (socket, sm) => {
      const r = await halo(['resource', 'clear', 'g_all', '--socket', socket]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /nothing to change in the cluster/);
      assert.equal(sm.version().epoch, 1);
    });
  });

  it('an unknown resource is refused before anything is sent', async () => {
    await withControlSocket(async (socket, sm) => {
      const r = await halo(['resource', 'stop', 'g_al', '--socket', socket]);
      assert.equal(r.code, 1);
      assert.match(r.err, /did you mean 'g_all'/);
      assert.equal(sm.version().epoch, 1);
    });
  });

  it('a socket nobody answers on exits 2 saying no cluster was found', async () => {
    const r = await halo(['node', 'standby', NODE1, '--socket', join(tmpdir(), 'halo-no-such.sock')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /no running cluster found/);
  });
});

/**
 * Another administrator's edit, computed (compare-and-set, as the CLI does) from `read`, the CIB
 * they read, and committed to `sm` when `when(line)` first holds for a request the CLI sends.
 */
function otherAdmin(
  edit: AdminEdit,
  when: (line: string) => boolean,
): { beforeAnswer: (line: string, sm: CibStateMachine) => void; committed: () => number } {
  let read: Cib | undefined;
  let committed = 0;
  return {
    beforeAnswer: (line, sm) => {
      read ??= sm.cib;
      if (!when(line)) return;
      const r = applyEdit(read, edit, NOW_MS);
      assert.ok(r.ok);
      for (const c of toCibCommands(read, r.cib, { compareAndSet: true }).commands)
        assert.equal(sm.applyCommand(c).ok, true, 'the other administrator was first');
      read = sm.cib;
      committed++;
    },
    committed: () => committed,
  };
}

const UNMANAGE_SIP: AdminEdit = { op: 'resource-managed', rsc: 'p_sip', managed: false };
const isManaged = (sm: CibStateMachine, rsc: string) =>
  metaValue(findResource(sm.cib, rsc)!, 'is-managed', sm.cib) ?? 'true';

describe('two administrators editing a running cluster at once', () => {
  it('a configuration load computed from the same CIB as a change committed first is refused, names both epochs and changes nothing', async () => {
    // Both administrators read the CIB at epoch 1; the other one's change commits just before
    // this load is proposed. Replacing it unseen is the lost update: the load must not retry.
    const other = otherAdmin(UNMANAGE_SIP, (line) => line.startsWith('cib {'));
    await withCib(async (_file, dir) => {
      const extra = join(dir, 'extra.crm');
      writeFileSync(extra, 'primitive web ocf:heartbeat:Dummy\n');
      await withControlSocket(async (socket, sm) => {
        const r = await halo(['configure', 'load', 'update', extra, '--socket', socket]);
        assert.equal(r.code, 1, r.err);
        assert.equal(
          r.err,
          "halo: error: the configuration changed since it was read (epoch 1, now 2): nothing was changed; see what changed ('halo configure show'), then run the command again\n",
        );
        assert.equal(other.committed(), 1);
        assert.equal(isManaged(sm, 'p_sip'), 'false', "the other administrator's change survives");
        assert.equal(findResource(sm.cib, 'web'), undefined);
        assert.deepEqual(sm.version(), { epoch: 2, numUpdates: 0, adminEpoch: 0 });
      }, other.beforeAnswer);
    });
  });

  it('a command that is a pure function of the CIB is computed again from a fresh read, once, and both changes survive', async () => {
    const other = otherAdmin(UNMANAGE_SIP, (line) => line.startsWith('cib {'));
    let proposals = 0;
    await withControlSocket(
      async (socket, sm) => {
        const r = await halo(['resource', 'stop', 'g_all', '--socket', socket]);
        assert.equal(r.code, 0, r.err);
        assert.equal(
          r.err,
          'note: the configuration changed since it was read (epoch 1, now 2): nothing was changed; applying the change again to the current configuration\n',
        );
        assert.match(r.out, /removed there so 'g_all' decides\ncommitted to the cluster \(log index 2\)\n$/);
        assert.equal(r.out.match(/note: target-role was also set on 'p_sip'/g)?.length, 1);
        assert.equal(proposals, 2);
        assert.equal(isManaged(sm, 'p_sip'), 'false');
        assert.equal(metaValue(findResource(sm.cib, 'g_all')!, 'target-role', sm.cib), 'Stopped');
        assert.equal(sm.version().epoch, 3);
      },
      (line, sm) => {
        if (line.startsWith('cib {')) proposals++;
        if (proposals === 1) other.beforeAnswer(line, sm);
      },
    );
  });

  it('a command whose retry meets yet another change stops with exit 1 and a conflict code', async () => {
    const edits: AdminEdit[] = [UNMANAGE_SIP, { op: 'resource-managed', rsc: 'p_nginx', managed: false }];
    await withControlSocket(
      async (socket, sm) => {
        const r = await halo(['resource', 'stop', 'g_all', '--socket', socket, '--output', 'json']);
        assert.equal(r.code, 1, r.err);
        const message =
          'the configuration changed since it was read (epoch 2, now 3): nothing was changed (it changed again during a second try); run the command again';
        assert.deepEqual(JSON.parse(r.out), { ok: false, error: { code: 'conflict', message } });
        assert.match(r.err, new RegExp(`halo: error: ${message.replace(/[()]/g, '\\$&')}\\n$`));
        assert.equal(metaValue(findResource(sm.cib, 'g_all')!, 'target-role', sm.cib), undefined);
        assert.equal(sm.version().epoch, 3);
      },
      (line, sm) => {
        // Every proposal of this command finds one more change committed just before it.
        if (!line.startsWith('cib {')) return;
        const edit = edits.shift();
        if (!edit) return;
        const r = applyEdit(sm.cib, edit, NOW_MS);
        assert.ok(r.ok);
        for (const c of toCibCommands(sm.cib, r.cib).commands) assert.equal(sm.applyCommand(c).ok, true);
      },
    );
  });

  it('configure edit applies the text to the CIB the editor showed: a change committed meanwhile is refused, not replaced, and the text is kept', async () => {
    // The other change commits while the editor is open: after the first read, before anything
    // else the CLI asks. (Reading the CIB again after the editor would hide it.)
    let reads = 0;
    const other = otherAdmin(
      UNMANAGE_SIP,
      (line) => reads > 0 && line !== 'status' && other.committed() === 0,
    );
    const saved = { EDITOR: process.env.EDITOR, VISUAL: process.env.VISUAL };
    process.env.EDITOR = "sed -i 's/pingd lt 1000/pingd lt 5000/'";
    delete process.env.VISUAL;
    try {
      await withControlSocket(
        async (socket, sm) => {
          const r = await halo(['configure', 'edit', '--socket', socket]);
          assert.equal(r.code, 1, r.err);
          assert.match(
            r.err,
            /^halo: error: the configuration changed since it was read \(epoch 1, now 2\): nothing was changed; see what changed/,
          );
          const kept = /your edited text is kept in (\S+)/.exec(r.err)?.[1];
          assert.ok(kept, r.err);
          try {
            assert.match(readFileSync(kept, 'utf8'), /pingd lt 5000/);
          } finally {
            rmSync(join(kept, '..'), { recursive: true, force: true });
          }
          assert.equal(isManaged(sm, 'p_sip'), 'false', "the other administrator's change survives");
          assert.doesNotMatch(JSON.stringify(sm.cib.configuration), /"5000"/);
          assert.equal(sm.version().epoch, 2);
        },
        (line, sm) => {
          other.beforeAnswer(line, sm);
          if (line === 'cib') reads++;
        },
      );
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

describe('halo configure on a real three-node cluster', () => {
  it('properties and resources commit on the DC, bad values send nothing, a change sent to a follower commits via the DC', {
    skip: !hasNetnsSupport() && 'needs root and ip netns',
    timeout: 120_000,
  }, async () => {
    const names = ['n1', 'n2', 'n3'];
    const lab = createLabCluster({ nodes: names });
    try {
      const dc = await startAndAgree(lab, names);
      const sock = (n: string) => join(lab.dir, `${n}.sock`);
      const epoch = async () => ((await lab.status(dc)) as DaemonStatus).consensus?.cib?.epoch;
      const ok = async (args: string[]) => {
        const r = await halo([...args, '--socket', sock(dc)]);
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
        return r;
      };
      assert.match(
        (await ok(['configure', 'property', 'stonith-enabled=false'])).out,
        /committed to the cluster/,
      );
      await ok(['configure', 'primitive', 'web', 'ocf:heartbeat:Dummy', 'op', 'monitor', 'interval=10s']);
      assert.match((await ok(['configure', 'show'])).out, /^primitive web ocf:heartbeat:Dummy/m);
      const before = await epoch();
      const bad = await halo(['configure', 'property', 'no-quorum-policy=bogus', '--socket', sock(dc)]);
      assert.equal(bad.code, 1);
      assert.equal(await epoch(), before, 'a refused value must not reach the cluster');
      const follower = names.find((n) => n !== dc)!;
      const f = await halo(['configure', 'property', 'stonith-enabled=true', '--socket', sock(follower)]);
      assert.equal(f.code, 0, f.err);
      assert.match(f.out, /committed to the cluster/);
      assert.ok(((await epoch()) ?? 0) > (before ?? 0), 'the DC applied the forwarded change');
    } finally {
      lab.destroy();
    }
  });
});

describe('halo resource and node against a real cluster running a resource', () => {
  it('bad input of every kind is refused with a clear error and the CIB stays as it was; restart stops and starts the resource', {
    skip: !hasNetnsSupport() && 'needs root and ip netns',
    timeout: 180_000,
  }, async () => {
    const names = ['n1', 'n2', 'n3'];
    const lab = createLabCluster({ nodes: names });
    try {
      const dc = await startAndAgree(lab, names);
      const sock = join(lab.dir, `${dc}.sock`);
      const crm = parseCrm(
        `node 1: n1\nnode 2: n2\nnode 3: n3\nprimitive web ocf:heartbeat:Dummy params state=${lab.dir}/web.state op monitor interval=10s\nlocation l_web web 100: n2\nproperty stonith-enabled=false\n`,
        'restart.crm',
      );
      assert.ok(crm.ok);
      const load = (await lab.command(
        dc,
        `cib ${JSON.stringify({ op: 'replace-configuration', configuration: crm.cib.configuration })}`,
      )) as { ok?: boolean };
      assert.equal(load.ok, true, JSON.stringify(load));
      const liveCib = async () => ((await lab.command(dc, 'cib')) as { cib: Cib }).cib;
      const startCall = (cib: Cib) =>
        Math.max(
          -1,
          ...cib.status
            .filter((s) => s.uname === 'n2')
            .flatMap((s) => s.resources.filter((h) => h.id === 'web'))
            .flatMap((h) => h.ops.filter((op) => op.operation === 'start').map((op) => Number(op.callId))),
        );
      await waitFor('web to run on n2', LAB_FORM_DEADLINE_MS, async () => {
        const l = locate(await liveCib(), 'web', Date.now());
        return l.ok && l.active.length === 1 && l.active[0]!.node === 'n2' ? true : undefined;
      });

      const configuration = async () => JSON.stringify((await liveCib()).configuration);
      const epoch = async () => ((await lab.status(dc)) as DaemonStatus).consensus?.cib?.epoch;
      const before = { epoch: await epoch(), configuration: await configuration() };
      const refusals: [string[], number, RegExp][] = [
        [['resource', 'stop', 'wbe'], 1, /unknown resource 'wbe' \(did you mean 'web'\?\)/],
        [['resource', 'restart', 'wbe'], 1, /unknown resource 'wbe'/],
        [['resource', 'move', 'web', 'n9'], 1, /unknown node 'n9'/],
        [['resource', 'locate', 'wbe'], 1, /unknown resource 'wbe'/],
        [['resource', 'failcount', 'web', 'show', 'n9'], 1, /unknown node 'n9'/],
        [
          ['resource', 'failcount', 'web', 'erase'],
          2,
          /failcount action must be show or delete, not 'erase'/,
        ],
        [['node', 'standby', 'n9'], 1, /n9/],
        [['node', 'attribute', 'n9', 'rack'], 1, /n9/],
        [['configure', 'property', 'no-quorum-policy=sometimes'], 1, /invalid value 'sometimes'/],
        [['configure', 'property', 'stonith-enabeld=true'], 1, /did you mean 'stonith-enabled'/],
        [
          ['configure', 'rsc_defaults', 'resource-stickiness'],
          2,
          /expected NAME=VALUE, got 'resource-stickiness'/,
        ],
        [['configure', 'delete', 'nothere'], 1, /nothere/],
        [['configure', 'location', 'l_bad', 'nothere', '100:', 'n1'], 1, /nothere/],
        [['resource', 'move', 'web', 'n1', '--lifetime', 'soon'], 1, /soon/],
      ];
      for (const [args, code, message] of refusals) {
        const r = await halo([...args, '--socket', sock]);
        assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
        assert.match(r.err, message, args.join(' '));
        assert.doesNotMatch(r.err, /\n\s+at /, `${args.join(' ')}: no stack trace`);
      }
      assert.equal(await epoch(), before.epoch, 'no refused command reached the cluster');
      assert.equal(await configuration(), before.configuration);

      const firstStart = startCall(await liveCib());
      const restart = await halo(['resource', 'restart', 'web', '--socket', sock]);
      assert.equal(restart.code, 0, restart.err);
      assert.match(restart.out, /^restarted web: stopped in \d+ ms, running again after \d+ ms on web@n2\n$/);
      assert.ok(startCall(await liveCib()) > firstStart, 'web was started again');
    } finally {
      lab.destroy();
    }
  });
});

describe('seed 003 commands typed as the tutorial prints them', () => {
  it('`configure property no-quorum-policy=”stop”` (quotes from the web page) sets stop, with a note', async () => {
    await withCib(async (file) => {
      const r = await halo(['configure', 'property', 'no-quorum-policy=\u201dstop\u201d', '--cib', file]);
      assert.equal(r.code, 0, r.err);
      assert.match(
        r.out,
        /note: typographic quotes removed: no-quorum-policy=”stop” read as no-quorum-policy=stop/,
      );
      assert.equal(clusterProperty(readCib(file), 'no-quorum-policy'), 'stop');
      const inch = await halo([
        'configure',
        'rsc_defaults',
        'resource-stickiness=\u201d100\u2033',
        '--cib',
        file,
      ]);
      assert.equal(inch.code, 0, inch.err);
    });
  });

  it('a Pacemaker 1 property is refused with the exact command that replaces it', async () => {
    await refusedUnchanged(
      ['configure', 'property', 'default-resource-stickiness=100'],
      1,
      /Pacemaker 1 property \(instead: halo configure rsc_defaults resource-stickiness=100\)/,
    );
    await refusedUnchanged(
      ['configure', 'property', 'no_quorum_policy=stop'],
      1,
      /instead: halo configure property no-quorum-policy=stop/,
    );
  });

  it('`configure NAME=VALUE` is read as `configure property NAME=VALUE`, saying so', () => {
    const r = configurePropertyShorthand([
      'node',
      'halo',
      'configure',
      'stonith-enabled=false',
      '--cib',
      'x',
    ]);
    assert.deepEqual(r.argv, [
      'node',
      'halo',
      'configure',
      'property',
      'stonith-enabled=false',
      '--cib',
      'x',
    ]);
    assert.match(
      r.note ?? '',
      /read 'configure stonith-enabled=false' as 'configure property stonith-enabled=false'/,
    );
    for (const argv of [
      ['node', 'halo', 'configure', 'property', 'a=b'],
      ['node', 'halo', 'configure', 'primitive', 'p', 'Dummy', 'params', 'a=b'],
      ['node', 'halo', 'node', 'a=b'],
    ])
      assert.deepEqual(configurePropertyShorthand(argv), { argv });
  });

  it('`node standby` without a node means this host, as `crm node standby` does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-admin-'));
    try {
      const file = join(dir, 'cib.xml');
      const crm = parseCrm(`node doctormoon\nnode ${hostname()}\n`, 'nodes.crm');
      assert.ok(crm.ok);
      writeFileSync(file, serializeCibXml(crm.cib));
      const r = await halo(['node', 'standby', '--cib', file]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, new RegExp(`using this host's node '${hostname()}'`));
      assert.equal(nodeAttribute(readCib(file), hostname(), 'standby'), 'on');
      assert.equal(nodeAttribute(readCib(file), 'doctormoon', 'standby'), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
