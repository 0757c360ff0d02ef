import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { serializeCibXml } from '../cib/cib_xml.ts';
import { cluster, location, nodeState, primitive, started } from '../scheduler/testing.ts';
import { registerSimulateCommands } from './simulate_cmd.ts';

/** Runs `halo ARGS` with only the simulate commands registered, capturing output and exit code. */
function halo(args: readonly string[]): { code: number; out: string; err: string } {
  const program = new Command('halo').exitOverride();
  registerSimulateCommands(program);
  let out = '';
  let err = '';
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  const before = process.exitCode;
  try {
    program.parse(['node', 'halo', ...args]);
    const code = typeof process.exitCode === 'number' ? process.exitCode : 0;
    return { code, out, err };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
    process.exitCode = before;
  }
}

function withFiles<T>(files: Readonly<Record<string, string>>, fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'halo-simulate-'));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return fn(dir);
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
  it("prints crm_simulate's sections with the transition summary", () => {
    withFiles({ 'cib.xml': CIB }, (dir) => {
      const r = halo(['simulate', '-x', join(dir, 'cib.xml')]);
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

  it('shows allocation scores and saves the graph as JSON', () => {
    withFiles({ 'cib.xml': CIB }, (dir) => {
      const graph = join(dir, 'graph.json');
      const r = halo([
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

  it('applies --node-fail and fences the failed node when fencing is enabled', () => {
    const cib = serializeCibXml(
      cluster({
        nodes: ['n1', 'n2'],
        props: { 'stonith-enabled': 'true' },
        resources: [primitive('web')],
        status: [nodeState('n1', { history: [started('web')] }), nodeState('n2')],
      }),
    );
    withFiles({ 'cib.xml': cib }, (dir) => {
      const r = halo(['simulate', '-x', join(dir, 'cib.xml'), '--node-fail', 'n1', '--output', 'json']);
      assert.equal(r.code, 0, r.err);
      const j = JSON.parse(r.out) as {
        fencing: { node: string; reason: string }[];
        summary: { verb: string }[];
      };
      assert.deepEqual(j.fencing, [{ node: 'n1', reason: 'peer is no longer part of the cluster' }]);
      assert.equal(j.summary[0]?.verb, 'Move');
    });
  });

  it('recovers a resource after an injected monitor failure', () => {
    withFiles({ 'cib.xml': CIB }, (dir) => {
      const r = halo(['simulate', '-x', join(dir, 'cib.xml'), '--op-fail', 'web_monitor_10000@n1=7']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /\* Recover\s+web\s+\( n1 -> n2 \)/);
    });
  });

  it('rejects an invalid CIB with a positioned error and exit code 2', () => {
    withFiles({ 'bad.xml': '<cib><configuration>\n<resources>\n' }, (dir) => {
      const r = halo(['simulate', '-x', join(dir, 'bad.xml')]);
      assert.equal(r.code, 2);
      assert.match(r.err, /bad\.xml:\d+:\d+: error:/);
      assert.equal(r.out, '');
    });
  });

  it('rejects a malformed --op-fail with exit code 2', () => {
    withFiles({ 'cib.xml': CIB }, (dir) => {
      const r = halo(['simulate', '-x', join(dir, 'cib.xml'), '--op-fail', 'nonsense']);
      assert.equal(r.code, 2);
      assert.match(r.err, /RSC_OP_INTERVAL@NODE=RC/);
    });
  });
});

describe('halo explain', () => {
  it('explains why a resource runs where it does', () => {
    withFiles({ 'cib.xml': CIB }, (dir) => {
      const r = halo(['explain', 'web', '-x', join(dir, 'cib.xml')]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^web moves from n1 to n2: location web-n2 prefers n2 \(50, score 50\)/);
    });
  });

  it('says so when the resource does not exist, with exit code 2', () => {
    withFiles({ 'cib.xml': CIB }, (dir) => {
      const r = halo(['explain', 'nope', '-x', join(dir, 'cib.xml')]);
      assert.equal(r.code, 2);
      assert.match(r.err, /resource 'nope' is not in the configuration/);
    });
  });
});
