import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import type { Cib } from '../cib/model.ts';
import { registerClusterCommands } from '../cli/cluster_cmd.ts';
import { hasNetnsSupport } from '../lab/netns.ts';
import { loadConfig } from './config.ts';
import type { DaemonStatus } from './daemon.ts';
import { createLabCluster, DAEMON_PORT, type LabCluster, waitFor } from './lab_cluster.ts';

/** Generous bounds: daemons start under tsx on a shared, busy machine. */
const FORM_DEADLINE_MS = 60_000;
const CHANGE_DEADLINE_MS = 30_000;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

async function halo(args: string[]): Promise<number> {
  const program = new Command('halo').exitOverride();
  registerClusterCommands(program);
  process.exitCode = undefined;
  await program.parseAsync(['node', 'halo', ...args]);
  const code = typeof process.exitCode === 'number' ? process.exitCode : 0;
  process.exitCode = undefined;
  return code;
}

interface Voters {
  consensus: (DaemonStatus['consensus'] & { voters?: string[] }) | null;
}

/** Every one of `names` sees exactly `names` as members (all up), with one leader and `names` as voters. */
async function settled(c: LabCluster, names: readonly string[]): Promise<string | undefined> {
  const sts = await Promise.all(names.map((n) => c.status(n)));
  for (const st of sts) {
    const seen = st.members.map((m) => m.name).sort();
    if (seen.join() !== [...names].sort().join()) return undefined;
    if (st.members.some((m) => !m.self && m.state !== 'member')) return undefined;
    const voters = (st as unknown as Voters).consensus?.voters ?? [];
    if ([...voters].sort().join() !== [...names].sort().join()) return undefined;
    if (!st.quorum.quorate) return undefined;
  }
  const leaders = new Set(sts.map((s) => s.dc));
  const leader = sts[0]!.dc;
  return leaders.size === 1 && leader && names.includes(leader) ? leader : undefined;
}

test('a node joins a running three-node cluster through a follower, then leaves it, and bad requests change nothing', {
  skip: !hasNetnsSupport() && 'needs root and ip netns',
  timeout: 240_000,
}, async () => {
  const all = ['j1', 'j2', 'j3', 'j4'];
  const first = all.slice(0, 3);
  // Four namespaces, but the cluster starts with three: j4 is a new machine.
  const c = createLabCluster({ nodes: all, links: 1, profile: 'lab' });
  const config = join(c.dir, 'halo.json');
  let j4: ChildProcess | undefined;
  let j4Log = '';
  try {
    const doc = JSON.parse(readFileSync(config, 'utf8')) as { nodes: Array<{ name: string }> };
    writeFileSync(config, JSON.stringify({ ...doc, nodes: doc.nodes.filter((n) => n.name !== 'j4') }));
    for (const n of first) c.start(n);
    const leader = await waitFor('three daemons to form a cluster', FORM_DEADLINE_MS, () =>
      settled(c, first),
    );
    const follower = first.find((n) => n !== leader)!;
    const sock = (n: string): string => join(c.dir, `${n}.sock`);

    // Bad requests are refused with a code and change nothing.
    const refused = async (line: string): Promise<string> =>
      ((await c.command(follower, line)) as { ok: boolean; code: string }).code;
    assert.equal(await refused('member-remove nosuch'), 'unknown-node');
    assert.equal(await refused('member-add not json'), 'bad-member');
    assert.equal(
      await refused(`member-add ${JSON.stringify({ name: 'j2', links: ['10.9.9.9:5405'] })}`),
      'bad-member',
    );
    assert.equal(
      await refused(`member-add ${JSON.stringify({ name: 'x', links: ['nohost'] })}`),
      'bad-member',
    );
    const before = readFileSync(config, 'utf8');
    assert.equal(
      await halo(['cluster', 'leave', 'nosuch', '--config', config, '--socket', sock(follower)]),
      1,
    );
    assert.equal(readFileSync(config, 'utf8'), before);
    assert.equal(await settled(c, first), leader, 'nothing changed');

    // Join through a follower's daemon: it forwards to the leader, which commits the change.
    const addr = c.net.node('j4').addrs[0]!;
    assert.equal(
      await halo([
        'cluster',
        'join',
        'j4',
        '--addr',
        `${addr}:${DAEMON_PORT}`,
        '--config',
        config,
        '--socket',
        sock(follower),
      ]),
      0,
    );
    assert.deepEqual(
      loadConfig(config).nodes.map((n) => `${n.id}:${n.name}`),
      ['1:j1', '2:j2', '3:j3', '4:j4'],
    );
    // The new machine gets the updated config and starts with --join.
    j4 = spawn(
      'ip',
      [
        'netns',
        'exec',
        c.net.node('j4').ns,
        process.execPath,
        // Compiled (npm test runs dist/) or from source with tsx.
        ...(import.meta.url.endsWith('.js') ? [] : ['--import', 'tsx']),
        fileURLToPath(new URL(import.meta.url.endsWith('.js') ? './main.js' : './main.ts', import.meta.url)),
        '--config',
        config,
        '--node',
        'j4',
        '--join',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], cwd: ROOT },
    );
    j4.stderr?.setEncoding('utf8');
    j4.stderr?.on('data', (d: string) => {
      j4Log = (j4Log + d).slice(-20_000);
    });
    await waitFor('all four to be members and Raft voters', FORM_DEADLINE_MS, () => settled(c, all));
    // The CIB here lists no nodes: the DC gives every member, the new one included, a node entry
    // with its id, so the scheduler can place resources there (as Pacemaker does on join).
    const nodeEntries = async (n: string): Promise<string> =>
      ((await c.command(n, 'cib')) as { cib: Cib }).cib.configuration.nodes
        .map((x) => `${x.id}:${x.uname}`)
        .sort()
        .join(' ');
    await waitFor('every member to have a node entry on every node', CHANGE_DEADLINE_MS, async () => {
      const seen = await Promise.all(first.map(nodeEntries));
      return seen.every((e) => e === '1:j1 2:j2 3:j3 4:j4') ? true : undefined;
    });

    // A member restarted with the old config file (not yet copied) still reaches j4: it learned
    // the address from the Raft log and kept it in its state directory.
    const joined = readFileSync(config, 'utf8');
    writeFileSync(config, before);
    c.kill9(follower);
    c.start(follower);
    await waitFor('the restarted member to reach j4 again', FORM_DEADLINE_MS, () => settled(c, all));
    writeFileSync(config, joined);

    // A second join of the same name is bad input (the config already has it): exit 2, no change.
    assert.equal(
      await halo([
        'cluster',
        'join',
        'j4',
        '--addr',
        '10.9.9.9',
        '--id',
        '9',
        '--config',
        config,
        '--socket',
        sock(leader),
      ]),
      2,
    );

    // j4 leaves (asked on the leader): the others drop it, and j4's daemon stops by itself.
    assert.equal(await halo(['cluster', 'leave', 'j4', '--config', config, '--socket', sock(leader)]), 0);
    assert.deepEqual(
      loadConfig(config).nodes.map((n) => n.name),
      first,
    );
    await waitFor('the three to settle without j4', CHANGE_DEADLINE_MS, () => settled(c, first));
    // Removing a node deletes its node entry on every replica (as crm_node -R does), and the DC
    // does not add it back.
    await waitFor('every replica to drop the node entry of j4', CHANGE_DEADLINE_MS, async () => {
      const seen = await Promise.all(first.map(nodeEntries));
      return seen.every((e) => e === '1:j1 2:j2 3:j3') ? true : undefined;
    });
    for (const n of first) {
      const fencing = c.logLines(n).filter((l) => /\bfenc\w*\s+j4\b/i.test(String(l.msg)));
      assert.deepEqual(fencing, [], `${n} never tried to fence the removed j4`);
    }
    const proc = j4;
    await waitFor('the removed daemon to stop', CHANGE_DEADLINE_MS, async () =>
      proc.exitCode !== null ? true : undefined,
    );
    assert.equal(proc.exitCode, 0);
    assert.match(j4Log, /this node \(j4\) was removed from the cluster \(.*\); stopping/);
    // Removing it again: it is no member any more.
    assert.equal(await halo(['cluster', 'leave', 'j4', '--config', config, '--socket', sock(leader)]), 1);

    // A cluster without a majority has no leader to change membership: refused, nothing changes.
    const survivor = first.find((n) => n !== leader)!;
    for (const n of first) if (n !== survivor) c.kill9(n);
    await waitFor('the lone survivor to have no leader', CHANGE_DEADLINE_MS, async () =>
      (await c.status(survivor)).dc === null ? true : undefined,
    );
    const lone = readFileSync(config, 'utf8');
    assert.equal(
      await halo([
        'cluster',
        'join',
        'j5',
        '--addr',
        '10.9.9.5',
        '--config',
        config,
        '--socket',
        sock(survivor),
      ]),
      1,
    );
    assert.equal(((await c.command(survivor, 'member-remove j2')) as { code: string }).code, 'no-leader');
    assert.equal(readFileSync(config, 'utf8'), lone);
  } catch (err) {
    const tails = first.map((n) => `--- ${n} ---\n${c.logTail(n, 3000)}`).join('\n');
    throw new Error(`${(err as Error).message}\n${tails}\n--- j4 ---\n${j4Log.slice(-3000)}`, { cause: err });
  } finally {
    if (j4?.pid !== undefined && j4.exitCode === null) j4.kill('SIGKILL');
    c.destroy();
  }
});
