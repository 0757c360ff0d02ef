import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { locate } from '../admin/resource_edits.ts';
import { serializeCibXml } from '../cib/cib_xml.ts';
import { parseCrm } from '../cib/crm.ts';
import type { Cib } from '../cib/model.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { createLabCluster, startAndAgree, waitFor } from '../daemon/lab_cluster.ts';
import { hasNetnsSupport } from '../lab/netns.ts';
import { cluster, location, nodeState, primitive, started } from '../scheduler/testing.ts';
import { registerSimulateCommands } from './simulate_cmd.ts';
import { type CliRun, runCli } from './testing.ts';

/**
 * Runs `halo ARGS` with only the simulate commands registered, capturing output and exit code
 * in buffers handed to the commands (never by replacing process.stdout, which the test reporter
 * writes to).
 */
function halo(args: readonly string[]): Promise<CliRun> {
  return runCli(registerSimulateCommands, args);
}

async function withFiles<T>(
  files: Readonly<Record<string, string>>,
  fn: (dir: string) => T | Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'halo-simulate-'));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const CIB = serializeCibXml(
  cluster({
    nodes: ['n1', 'n2'],
    resources: [primitive('web', { monitorInterval: '10s' })],
    constraints: [location('web-n2', 'web', 'n2', '50')],
    status: [nodeState('n1', { history: [started('web')] }), nodeState('n2')],
  }),
);

describe('halo simulate', () => {
  it("prints crm_simulate's sections with the transition summary", async () => {
    await withFiles({ 'cib.xml': CIB }, async (dir) => {
      const r = await halo(['simulate', '-x', join(dir, 'cib.xml')]);
      assert.equal(r.code, 0, r.err);
      for (const h of [
        'Current cluster status:',
        'Transition Summary:',
        'Executing Cluster Transition:',
        'Revised Cluster Status:',
      ]) {
        assert.ok(r.out.includes(h), `missing ${h}`);
      }
      assert.match(r.out, /\* Move\s+web\s+\( n1 -> n2 \)/);
    });
  });

  it('shows allocation scores and saves the graph as JSON', async () => {
    await withFiles({ 'cib.xml': CIB }, async (dir) => {
      const graph = join(dir, 'graph.json');
      const r = await halo([
        'simulate',
        '--xml-file',
        join(dir, 'cib.xml'),
        '--show-scores',
        '--save-graph',
        graph,
      ]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /pcmk__primitive_assign: web allocation score on n2: 50/);
      const g = JSON.parse(readFileSync(graph, 'utf8')) as { actions: { task: string; node: string }[] };
      assert.ok(g.actions.some((a) => a.task === 'start' && a.node === 'n2'));
    });
  });

  it('applies --node-fail and fences the failed node when fencing is enabled', async () => {
    const cib = serializeCibXml(
      cluster({
        nodes: ['n1', 'n2'],
        props: { 'stonith-enabled': 'true' },
        resources: [primitive('web')],
        status: [nodeState('n1', { history: [started('web')] }), nodeState('n2')],
      }),
    );
    await withFiles({ 'cib.xml': cib }, async (dir) => {
      const r = await halo(['simulate', '-x', join(dir, 'cib.xml'), '--node-fail', 'n1', '--output', 'json']);
      assert.equal(r.code, 0, r.err);
      const j = JSON.parse(r.out) as {
        fencing: { node: string; reason: string }[];
        summary: { verb: string }[];
      };
      assert.deepEqual(j.fencing, [{ node: 'n1', reason: 'peer is no longer part of the cluster' }]);
      assert.equal(j.summary[0]?.verb, 'Move');
    });
  });

  it('recovers a resource after an injected monitor failure', async () => {
    await withFiles({ 'cib.xml': CIB }, async (dir) => {
      const r = await halo(['simulate', '-x', join(dir, 'cib.xml'), '--op-fail', 'web_monitor_10000@n1=7']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /\* Recover\s+web\s+\( n1 -> n2 \)/);
    });
  });

  it('rejects an invalid CIB with a positioned error and exit code 2', async () => {
    await withFiles({ 'bad.xml': '<cib><configuration>\n<resources>\n' }, async (dir) => {
      const r = await halo(['simulate', '-x', join(dir, 'bad.xml')]);
      assert.equal(r.code, 2);
      assert.match(r.err, /bad\.xml:\d+:\d+: error:/);
      assert.equal(r.out, '');
    });
  });

  it('without -x it says an input is required and exits 2', async () => {
    const r = await halo(['simulate']);
    assert.equal(r.code, 2);
    assert.match(r.err, /an input is required: -x\/--xml-file FILE/);
    assert.equal(r.out, '');
  });

  it('a file that does not exist, an unknown --output, an unwritable graph file and an unknown node each exit 2 with a clear message', async () => {
    await withFiles({ 'cib.xml': CIB }, async (dir) => {
      const missing = await halo(['simulate', '-x', join(dir, 'nope.xml')]);
      assert.equal(missing.code, 2);
      assert.match(missing.err, /nope\.xml: error: cannot read the file/);
      const output = await halo(['simulate', '-x', join(dir, 'cib.xml'), '--output', 'yaml']);
      assert.equal(output.code, 2);
      assert.match(output.err, /--output must be text or json, not 'yaml'/);
      const graph = await halo([
        'simulate',
        '-x',
        join(dir, 'cib.xml'),
        '--save-graph',
        join(dir, 'no', 'g.json'),
      ]);
      assert.equal(graph.code, 2);
      assert.match(graph.err, /g\.json: error: cannot write the graph \(ENOENT/);
      const node = await halo(['simulate', '-x', join(dir, 'cib.xml'), '--node-fail', 'n9']);
      assert.equal(node.code, 2);
      assert.match(node.err, /n9/);
      assert.equal(node.out, '');
    });
  });

  it('rejects a malformed --op-fail with exit code 2', async () => {
    await withFiles({ 'cib.xml': CIB }, async (dir) => {
      const r = await halo(['simulate', '-x', join(dir, 'cib.xml'), '--op-fail', 'nonsense']);
      assert.equal(r.code, 2);
      assert.match(r.err, /RSC_OP_INTERVAL@NODE=RC/);
    });
  });
});

describe('halo explain', () => {
  it('explains why a resource runs where it does', async () => {
    await withFiles({ 'cib.xml': CIB }, async (dir) => {
      const r = await halo(['explain', 'web', '-x', join(dir, 'cib.xml')]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^web moves from n1 to n2: location web-n2 prefers n2 \(50, score 50\)/);
    });
  });

  it('says so when the resource does not exist, with exit code 2', async () => {
    await withFiles({ 'cib.xml': CIB }, async (dir) => {
      const r = await halo(['explain', 'nope', '-x', join(dir, 'cib.xml')]);
      assert.equal(r.code, 2);
      assert.match(r.err, /resource 'nope' is not in the configuration/);
    });
  });
});

describe('halo explain on a running cluster: bad input', () => {
  it('a control socket nobody listens on exits 2 naming the socket, and prints no explanation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-explain-down-'));
    try {
      const sock = join(dir, 'n1.sock');
      const r = await halo(['explain', 'web', '--socket', sock]);
      assert.equal(r.code, 2);
      assert.ok(r.err.includes(sock), r.err);
      assert.match(r.err, /no running cluster found .*use -x FILE to read a CIB file/);
      assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
      assert.equal(r.out, '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without a cluster config it exits 2 naming the config and suggesting -x FILE', async () => {
    const config = join(tmpdir(), 'halo-no-such-dir', 'halo.json');
    const r = await halo(['explain', 'web', '--config', config]);
    assert.equal(r.code, 2);
    assert.ok(r.err.includes(config), r.err);
    assert.match(r.err, /use -x FILE/);
  });

  it('simulate -L with a socket nobody listens on exits 2 naming it; --socket without -L is refused', async () => {
    const sock = join(tmpdir(), 'halo-no-such-dir', 'n1.sock');
    const r = await halo(['simulate', '-L', '--socket', sock]);
    assert.equal(r.code, 2);
    assert.ok(r.err.includes(sock), r.err);
    assert.equal(r.out, '');
    const noLive = await halo(['simulate', '--socket', sock]);
    assert.equal(noLive.code, 2);
    assert.match(noLive.err, /add -L\/--live/);
    await withFiles({ 'cib.xml': CIB }, async (dir) => {
      const both = await halo(['simulate', '-L', '-x', join(dir, 'cib.xml')]);
      assert.equal(both.code, 2);
      assert.match(both.err, /give one of them/);
    });
  });

  it('-x together with --socket is refused with exit 2', async () => {
    await withFiles({ 'cib.xml': CIB }, async (dir) => {
      const r = await halo(['explain', 'web', '-x', join(dir, 'cib.xml'), '--socket', join(dir, 's.sock')]);
      assert.equal(r.code, 2);
      assert.match(r.err, /give one of them/);
    });
  });
});

/** How long three lab daemons may take to form a cluster, agree on a DC and start a resource. */
const LIVE_DEADLINE_MS = 60_000;

describe('halo explain on a real three-node cluster', () => {
  it('explain and simulate -L read the DC, a follower and --node-fail what-ifs; an unknown resource exits 2; nothing changes', {
    skip: !hasNetnsSupport() && 'needs root and ip netns',
    timeout: 180_000,
  }, async () => {
    const names = ['n1', 'n2', 'n3'];
    const lab = createLabCluster({ nodes: names });
    try {
      const dc = await startAndAgree(lab, names, LIVE_DEADLINE_MS);
      const crm = parseCrm(
        `node 1: n1
node 2: n2
node 3: n3
primitive web ocf:heartbeat:Dummy params state=${lab.dir}/web.state op monitor interval=10s
location l_web web 100: n2
property stonith-enabled=false
rsc_defaults resource-stickiness=10
`,
        'explain.crm',
      );
      assert.ok(crm.ok);
      const load = (await lab.command(
        dc,
        `cib ${JSON.stringify({ op: 'replace-configuration', configuration: crm.cib.configuration })}`,
      )) as { ok?: boolean };
      assert.equal(load.ok, true, JSON.stringify(load));
      const sock = (n: string) => join(lab.dir, `${n}.sock`);
      await waitFor('web to run on n2', LIVE_DEADLINE_MS, async () => {
        const v = (await lab.command(dc, 'cib')) as { cib: Cib };
        const l = locate(v.cib, 'web', Date.now());
        return l.ok && l.active.length === 1 && l.active[0]!.node === 'n2' ? true : undefined;
      });

      const fromDc = await halo(['explain', 'web', '--socket', sock(dc)]);
      assert.equal(fromDc.code, 0, fromDc.err);
      assert.match(fromDc.out, /^web stays on n2: location l_web prefers n2 \(100/);
      assert.equal(fromDc.err, '', 'the DC explains its own live view without a note');

      const follower = names.find((n) => n !== dc)!;
      const fromFollower = await halo(['explain', 'web', '--socket', sock(follower), '--output', 'json']);
      assert.equal(fromFollower.code, 0, fromFollower.err);
      const j = JSON.parse(fromFollower.out) as {
        explanation: string[];
        source: string;
        node: string;
        dc: string;
      };
      assert.deepEqual([j.source, j.node, j.dc], ['replicated', follower, dc]);
      assert.match(j.explanation[0]!, /^web stays on n2: location l_web prefers n2/);

      const whatIf = await halo(['explain', 'web', '--socket', sock(dc), '--node-fail', 'n2']);
      assert.equal(whatIf.code, 0, whatIf.err);
      assert.match(whatIf.out, /^web (moves from n2 to|starts on) n[13]: n2 is offline/);

      const epoch = async () => ((await lab.status(dc)) as DaemonStatus).consensus?.cib?.epoch;
      const before = await epoch();
      const sim = await halo(['simulate', '-L', '--socket', sock(follower)]);
      assert.equal(sim.code, 0, sim.err);
      assert.match(sim.err, new RegExp(`note: ${follower} is not the DC.*run it on the DC \\(${dc}\\)`));
      assert.match(
        sim.out,
        /Current cluster status:[\s\S]*web\s.*Started n2[\s\S]*Transition Summary:\n\nExecuting/,
      );
      const simFail = await halo([
        'simulate',
        '-L',
        '--node-fail',
        'n2',
        '--socket',
        sock(dc),
        '--output',
        'json',
      ]);
      assert.equal(simFail.code, 0, simFail.err);
      const summary = (JSON.parse(simFail.out) as { summary: { rsc?: string; verb: string }[] }).summary;
      assert.ok(
        summary.some((l) => /web/.test(JSON.stringify(l))),
        JSON.stringify(summary),
      );
      const unknown = await halo(['explain', 'wbe', '--socket', sock(dc)]);
      assert.equal(unknown.code, 2);
      assert.match(unknown.err, /resource 'wbe' is not in the configuration \(known: web\)/);
      assert.equal(unknown.out, '');
      assert.equal(await epoch(), before, 'explain changes nothing in the cluster');
    } finally {
      lab.destroy();
    }
  });
});
