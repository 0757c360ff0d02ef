import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { describe, it } from 'node:test';
import type { Cib } from '../cib/model.ts';
import { clusterProperty } from '../cib/resources.ts';
import { registerAdminCommands } from '../cli/admin_cmd.ts';
import { type CliRun, runCli } from '../cli/testing.ts';
import { hasNetnsSupport } from '../lab/netns.ts';
import { nullLogger } from '../lib/ports.ts';
import { waitFor } from '../lib/wait.ts';
import { generateKeyFile } from '../transport/key_file.ts';
import { parseConfig } from './config.ts';
import { queryControl } from './control.ts';
import { type ConsensusContext, type ConsensusPart, Daemon, type DaemonStatus } from './daemon.ts';
import { createLabCluster, LAB_FORM_DEADLINE_MS, type LabCluster, startAndAgree } from './lab_cluster.ts';
import { exportAgentEnvironment } from './run.ts';

/** How long a committed change may take to reach every node's replicated CIB. */
const REPLICATE_DEADLINE_MS = 10_000;
const NAMES = ['n1', 'n2', 'n3'];

/** Runs `halo ARGS` (the admin commands, in this process) and collects its output and exit code. */
function halo(args: readonly string[]): Promise<CliRun> {
  return runCli(registerAdminCommands, args);
}

async function replicatedCib(lab: LabCluster, node: string): Promise<Cib> {
  return ((await lab.command(node, 'cib')) as { cib: Cib }).cib;
}

async function epochs(lab: LabCluster): Promise<Array<number | undefined>> {
  return Promise.all(NAMES.map(async (n) => ((await lab.status(n)) as DaemonStatus).consensus?.cib?.epoch));
}

describe('CIB changes sent to a follower on a real three-node cluster', () => {
  it('a property set through a follower commits on every node; bad changes through it are refused and change nothing; agents see the daemon in their environment', {
    skip: !hasNetnsSupport() && 'needs root and ip netns',
    timeout: 120_000,
  }, async () => {
    const lab = createLabCluster({ nodes: NAMES });
    try {
      const dc = await startAndAgree(lab, NAMES);
      const follower = NAMES.find((n) => n !== dc)!;
      const sock = join(lab.dir, `${follower}.sock`);

      const ok = await halo(['configure', 'property', 'cluster-recheck-interval=7min', '--socket', sock]);
      assert.equal(ok.code, 0, ok.err);
      assert.match(ok.out, /committed to the cluster/);
      // The follower answered once it applied the change itself.
      assert.equal(clusterProperty(await replicatedCib(lab, follower), 'cluster-recheck-interval'), '7min');
      for (const n of NAMES)
        await waitFor(`${n} to see the property`, REPLICATE_DEADLINE_MS, async () =>
          clusterProperty(await replicatedCib(lab, n), 'cluster-recheck-interval') === '7min'
            ? true
            : undefined,
        );
      const settled = await waitFor(
        'every node to be at the same CIB epoch',
        REPLICATE_DEADLINE_MS,
        async () => {
          const e = await epochs(lab);
          return e.every((x) => x !== undefined && x === e[0]) ? e : undefined;
        },
      );

      // Refused by the CLI: nothing is sent.
      const badValue = await halo(['configure', 'property', 'no-quorum-policy=bogus', '--socket', sock]);
      assert.equal(badValue.code, 1, badValue.out);
      // Refused by the follower's daemon before forwarding: not JSON, and a malformed command.
      assert.deepEqual(await lab.command(follower, 'cib {not json'), { error: 'cib: argument is not JSON' });
      const malformed = (await lab.command(follower, 'cib {"op":"set-property","value":"x"}')) as {
        error?: string;
      };
      assert.match(malformed.error ?? '', /^cib: set-property: needs a valid name/);
      // Well-formed but refused by the replicated state machine on the leader: the refusal is
      // relayed and no replica changes.
      const unknownNode = (await lab.command(
        follower,
        'cib {"op":"set-node-attribute","node":"no-such-node","name":"x","value":"1","lifetime":"forever"}',
      )) as { ok?: boolean; applied?: boolean; message?: string };
      assert.equal(unknownNode.ok, true, JSON.stringify(unknownNode));
      assert.equal(unknownNode.applied, false);
      assert.match(unknownNode.message ?? '', /no-such-node/);
      assert.deepEqual(await epochs(lab), settled, 'no refused change may reach any node');
      for (const n of NAMES)
        assert.equal(clusterProperty(await replicatedCib(lab, n), 'no-quorum-policy'), undefined);
    } finally {
      lab.destroy();
    }
  });

  it('with no leader, a change sent to a node says so and nothing is committed', {
    skip: !hasNetnsSupport() && 'needs root and ip netns',
    timeout: 60_000,
  }, async () => {
    const lab = createLabCluster({ nodes: NAMES });
    try {
      // One of three: never a majority, so never a leader.
      lab.start('n1');
      const st = await waitFor('n1 to answer', LAB_FORM_DEADLINE_MS, () =>
        lab.status('n1').then(
          (s) => s,
          () => undefined,
        ),
      );
      assert.equal(st.dc, null);
      const before = st.consensus?.cib?.epoch;
      const r = (await lab.command('n1', 'cib {"op":"set-property","name":"batch-limit","value":"5"}')) as {
        ok?: boolean;
        code?: string;
        message?: string;
        leader?: string | null;
      };
      assert.equal(r.ok, false);
      assert.equal(r.code, 'no-leader');
      assert.equal(r.leader, null);
      assert.match(r.message ?? '', /no leader \(DC\).*nothing was changed.*majority/);
      const cli = await halo([
        'configure',
        'property',
        'batch-limit=5',
        '--socket',
        join(lab.dir, 'n1.sock'),
      ]);
      assert.equal(cli.code, 2, cli.out);
      assert.match(cli.err, /no-leader/);
      const after = (await lab.status('n1')).consensus?.cib?.epoch;
      assert.equal(after, before);
      assert.equal(clusterProperty(await replicatedCib(lab, 'n1'), 'batch-limit'), undefined);
    } finally {
      lab.destroy();
    }
  });
});

describe('the environment agents run with', () => {
  it("names this node's control socket, the absolute config file and the node", () => {
    const env: NodeJS.ProcessEnv = {};
    const file = join('etc', 'halo.json');
    const cfg = parseConfig(
      JSON.stringify({
        cluster: 'c',
        keyFile: '/etc/halo/authkey',
        controlSocket: 'run/{node}.sock',
        nodes: [
          { id: 1, name: 'n1', links: ['10.0.0.1:5405'] },
          { id: 2, name: 'n2', links: ['10.0.0.2:5405'] },
        ],
      }),
      file,
    );
    exportAgentEnvironment(cfg, 'n2', file, env);
    assert.deepEqual(env, {
      HALO_CONTROL_SOCKET: resolvePath('run/n2.sock'),
      HALO_CLUSTER_CONFIG: resolvePath(file),
      HALO_CLUSTER_NODE: 'n2',
    });
  });
});

describe('forwarding between daemons whose consensus names the leader', () => {
  it('a follower relays to the leader once; a forwarded change reaching a non-leader is refused, never sent on', {
    timeout: 60_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-forward-'));
    generateKeyFile(join(dir, 'authkey'));
    const port = 20_000 + randomInt(20_000);
    const names = ['a', 'b', 'c'];
    const cfg = parseConfig(
      JSON.stringify({
        cluster: 'fwd',
        keyFile: join(dir, 'authkey'),
        profile: 'lab',
        stateDir: join(dir, 'state'),
        controlSocket: join(dir, '{node}.sock'),
        nodes: names.map((name, i) => ({ id: i + 1, name, links: [`127.0.0.${i + 1}:${port}`] })),
      }),
      join(dir, 'halo.json'),
    );
    /** Whom each node's consensus names as leader; what each was asked to propose. */
    const leaderOf = new Map<string, string | null>();
    const proposed = new Map<string, string[]>(names.map((n) => [n, []]));
    const fake = (ctx: ConsensusContext): ConsensusPart => ({
      tick() {},
      receive() {},
      stop() {},
      status: () => ({
        role: leaderOf.get(ctx.self.name) === ctx.self.name ? 'leader' : 'follower',
        term: 1,
        leader: leaderOf.get(ctx.self.name) ?? null,
        commit: 7,
        applied: 7,
      }),
      propose: async (data) => {
        proposed.get(ctx.self.name)!.push(data);
        return { ok: true, index: 7, term: 1, applied: true };
      },
    });
    const ds: Daemon[] = [];
    const ask = (n: string, line: string) => queryControl(join(dir, `${n}.sock`), line, 10_000);
    const change = `cib ${JSON.stringify({ op: 'set-property', name: 'batch-limit', value: '5' })}`;
    try {
      // c is configured but not running.
      for (const n of ['a', 'b']) {
        const d = new Daemon({ config: cfg, node: n, witness: false, logger: nullLogger, consensus: fake });
        await d.start();
        ds.push(d);
      }
      leaderOf.set('a', 'b');
      leaderOf.set('b', 'b');
      assert.deepEqual(await ask('a', change), { ok: true, index: 7, term: 1, applied: true });
      assert.deepEqual(proposed.get('b'), [change.slice(4)], 'the leader proposed it, once');
      assert.deepEqual(proposed.get('a'), []);

      // Bad input stops at the follower.
      assert.deepEqual(await ask('a', 'cib {"op":"no-such-op"}'), {
        error: 'cib: command: unknown op "no-such-op"',
      });
      assert.equal(proposed.get('b')!.length, 1);

      // b was deposed and believes a leads, a believes b leads: one hop, then not-leader.
      leaderOf.set('b', 'a');
      const loop = (await ask('a', change)) as {
        ok: boolean;
        code: string;
        leader: string | null;
        message: string;
      };
      assert.deepEqual([loop.ok, loop.code, loop.leader], [false, 'not-leader', 'a']);
      assert.match(loop.message, /b is not the leader \(DC\) any more; nothing was changed/);
      assert.equal(proposed.get('a')!.length + proposed.get('b')!.length, 1, 'nothing proposed anywhere');

      // The leader a follower knows is down: a clear error, nothing proposed.
      leaderOf.set('a', 'c');
      const down = (await ask('a', change)) as {
        ok: boolean;
        code: string;
        leader: string | null;
        message: string;
      };
      assert.deepEqual([down.ok, down.code, down.leader], [false, 'leader-unreachable', 'c']);
      assert.match(down.message, /cannot reach the leader c/);
      assert.equal(proposed.get('b')!.length, 1);
    } finally {
      for (const d of ds) d.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
