/**
 * The contract every `halo` command keeps, checked over the whole command tree main.ts builds
 * (a command added later is covered without touching this file): `--help` works and shows an
 * example, an unknown option fails with exit 2 and says so, nothing ever ends in a stack trace,
 * and every command that talks to the cluster, run against a cluster that is down, exits 2 with
 * a message naming the control socket (or config) it tried, prints nothing on stdout and
 * writes nothing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { buildProgram } from './main.ts';
import type { ProbeOutcome } from './probe_main.ts';

const COMPILED = import.meta.url.endsWith('.js');
const PROBE = fileURLToPath(new URL(COMPILED ? './probe_main.js' : './probe_main.ts', import.meta.url));
/** The whole probe run: ~150 invocations, each a few ms (tsx start-up dominates). */
const PROBE_TIMEOUT_MS = 120_000;

/** Runs every argument list through the real CLI in one child process. */
function probeAll(cases: readonly (readonly string[])[]): Map<string, ProbeOutcome> {
  const r = spawnSync(process.execPath, [...(COMPILED ? [] : ['--import', 'tsx']), PROBE], {
    input: JSON.stringify(cases),
    encoding: 'utf8',
    timeout: PROBE_TIMEOUT_MS,
    maxBuffer: 64 << 20,
    env: { ...process.env, CIB_file: '', HALO_DEBUG: '' },
  });
  assert.equal(r.status, 0, `probe failed: ${r.stderr}${r.error ?? ''}`);
  const outcomes = JSON.parse(r.stdout) as ProbeOutcome[];
  return new Map(outcomes.map((o) => [o.args.join(' '), o]));
}

/** Every command that does something (has no subcommands), as its words after `halo`. */
function leafCommands(c: Command = buildProgram(), path: readonly string[] = []): string[][] {
  const subs = c.commands as Command[];
  if (subs.length === 0) return path.length === 0 ? [] : [[...path]];
  return subs.flatMap((s) => leafCommands(s, [...path, s.name()]));
}

function findCommand(words: readonly string[]): Command {
  let c = buildProgram();
  for (const w of words) c = (c.commands as Command[]).find((x) => x.name() === w)!;
  return c;
}

const hasOption = (words: readonly string[], flag: string): boolean =>
  findCommand(words).options.some((o) => o.long === flag);

/**
 * Commands that take crm text as their arguments: a word like `-inf:` or `--foo` belongs to
 * the crm line, so they accept unknown options by design (and then fail for their own reason).
 */
const CRM_TEXT_COMMANDS = new Set([
  'configure primitive',
  'configure group',
  'configure clone',
  'configure ms',
  'configure location',
  'configure colocation',
  'configure order',
]);

/** Exit codes that differ from the contract on purpose. */
const DOWN_CLUSTER_EXIT: Readonly<Record<string, number>> = {
  // DRBD's fence-peer handler protocol: 1 means "could not fence" (4 fenced, 6 outdated).
  'volume fence-peer': 1,
  'volume unfence-peer': 1,
};

let dir = '';
let crmFile = '';
/** A valid cluster config (join and leave read it before they ask the daemon). */
let clusterConfig = '';
const CLUSTER_CONFIG_TEXT = `${JSON.stringify(
  {
    cluster: 'contract',
    keyFile: '/nonexistent/authkey',
    nodes: [
      { id: 1, name: 'n1', links: ['127.0.0.1:5405'] },
      { id: 2, name: 'n2', links: ['127.0.0.2:5405'] },
      { id: 3, name: 'n3', links: ['127.0.0.3:5405'] },
    ],
  },
  null,
  2,
)}\n`;
let results = new Map<string, ProbeOutcome>();
const leaves = leafCommands();
const sock = () => join(dir, 'down', 'halo.sock');
const missingConfig = () => join(dir, 'down', 'no-such-halo.json');

/**
 * One invocation per cluster-talking command, with valid words, so only the cluster is missing:
 * `socket` points it at a socket nobody listens on, `config` at a cluster config that does not
 * exist.
 */
function downClusterCases(how: 'socket' | 'config'): Map<string, string[]> {
  const words: Record<string, string[]> = {
    status: [],
    simulate: ['-L'],
    'cluster join': ['n4', '--addr', '127.0.0.4', '--config', clusterConfig],
    'cluster leave': ['n3', '--config', clusterConfig],
    explain: ['web'],
    import: [crmFile],
    'configure show': [],
    'configure load': ['update', crmFile],
    'configure edit': [],
    'configure property': ['stonith-enabled=true'],
    'configure rsc_defaults': ['resource-stickiness=100'],
    'configure op_defaults': ['timeout=20s'],
    'configure primitive': ['web', 'ocf:heartbeat:Dummy'],
    'configure group': ['g_web', 'web'],
    'configure clone': ['cl_web', 'web'],
    'configure ms': ['ms_web', 'web'],
    'configure location': ['l_web', 'web', '100:', 'n1'],
    'configure colocation': ['c_web', 'inf:', 'web', 'db'],
    'configure order': ['o_web', 'Mandatory:', 'db', 'web'],
    'configure delete': ['web'],
    'node standby': ['n1'],
    'node online': ['n1'],
    'node maintenance': ['n1'],
    'node ready': ['n1'],
    'node attribute': ['n1', 'rack', '2'],
    'resource start': ['web'],
    'resource stop': ['web'],
    'resource manage': ['web'],
    'resource unmanage': ['web'],
    'resource restart': ['web'],
    'resource move': ['web', 'n2'],
    'resource ban': ['web', 'n1'],
    'resource clear': ['web'],
    'resource cleanup': ['web'],
    'resource failcount': ['web'],
    'resource locate': ['web'],
    'volume fence-peer': ['r0', '--peer', 'n2'],
    'volume unfence-peer': ['r0'],
  };
  const out = new Map<string, string[]>();
  for (const l of leaves) {
    const name = l.join(' ');
    if (!hasOption(l, '--socket')) continue;
    assert.ok(words[name], `'halo ${name}' talks to the cluster: add it to the down-cluster table`);
    const target =
      how === 'socket'
        ? ['--socket', sock()]
        : [hasOption(l, '--cluster-config') ? '--cluster-config' : '--config', missingConfig()];
    out.set(name, [...l, ...words[name]!, ...target]);
  }
  return out;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'halo-contract-'));
  crmFile = join(dir, 'extra.crm');
  writeFileSync(crmFile, 'primitive web ocf:heartbeat:Dummy\n');
  mkdirSync(join(dir, 'cluster'));
  clusterConfig = join(dir, 'cluster', 'halo.json');
  writeFileSync(clusterConfig, CLUSTER_CONFIG_TEXT);
  const cases: string[][] = [];
  for (const l of leaves) cases.push([...l, '--help'], [...l, '--no-such-option']);
  cases.push(...downClusterCases('socket').values());
  cases.push(...downClusterCases('config').values());
  results = probeAll(cases);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const get = (args: readonly string[]): ProbeOutcome => {
  const r = results.get(args.join(' '));
  assert.ok(r, `no outcome for halo ${args.join(' ')}`);
  return r;
};

const noStackTrace = (r: ProbeOutcome): void => {
  assert.doesNotMatch(r.err, /\n\s+at .+:\d+:\d+\)?\n/, `halo ${r.args.join(' ')} printed a stack trace`);
  assert.doesNotMatch(r.err, /internal error/, `halo ${r.args.join(' ')}: ${r.err}`);
};

describe('every halo command', () => {
  it('the command tree has the families README lists', () => {
    const families = new Set(leaves.map((l) => l[0]));
    for (const f of [
      'config',
      'simulate',
      'explain',
      'cluster',
      'agent',
      'fence',
      'volume',
      'lab',
      'configure',
      'node',
      'resource',
      'status',
      'keygen',
      'daemon',
    ])
      assert.ok(families.has(f), `halo ${f} is not registered`);
  });

  it('--help exits 0 with a usage line and an example', () => {
    const missing: string[] = [];
    for (const l of leaves) {
      const r = get([...l, '--help']);
      assert.equal(r.code, 0, `halo ${l.join(' ')} --help: ${r.err}`);
      assert.match(r.out, new RegExp(`^Usage: halo ${l.join(' ')} `), l.join(' '));
      if (!/\nExamples?:\n {2}(\$ )?(\w+=\S+ )?halo /.test(r.out)) missing.push(l.join(' '));
    }
    assert.deepEqual(missing, [], 'these commands show no example in their --help');
  });

  it('an unknown option exits 2 and says which option, without a stack trace', () => {
    for (const l of leaves) {
      const name = l.join(' ');
      const r = get([...l, '--no-such-option']);
      assert.equal(r.code, 2, `halo ${name} --no-such-option: ${r.err}`);
      noStackTrace(r);
      assert.equal(r.out, '', `halo ${name} --no-such-option printed on stdout`);
      if (CRM_TEXT_COMMANDS.has(name)) continue;
      // Commander checks a missing required option before unknown ones.
      assert.match(r.err, /unknown option '--no-such-option'|required option/, `halo ${name}: ${r.err}`);
    }
  });
});

describe('the halo program run as a process', () => {
  it("src/cli/main.ts run directly is the CLI: it prints its version and exits with the command's code", () => {
    const main = fileURLToPath(new URL(COMPILED ? './main.js' : './main.ts', import.meta.url));
    const node = (args: string[]) =>
      spawnSync(process.execPath, [...(COMPILED ? [] : ['--import', 'tsx']), main, ...args], {
        encoding: 'utf8',
        timeout: PROBE_TIMEOUT_MS,
      });
    const v = node(['--version']);
    assert.equal(v.status, 0, v.stderr);
    assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
    const down = node(['explain', 'web', '--config', missingConfig()]);
    assert.equal(down.status, 2, down.stderr);
    assert.ok(down.stderr.includes(missingConfig()), down.stderr);
  });
});

describe('every command that talks to the cluster, when the cluster is down', () => {
  it('exits 2 naming the control socket it tried, prints nothing on stdout and writes nothing', () => {
    for (const [name, args] of downClusterCases('socket')) {
      const r = get(args);
      assert.equal(r.code, DOWN_CLUSTER_EXIT[name] ?? 2, `halo ${name}: ${r.err}`);
      noStackTrace(r);
      assert.equal(r.out, '', `halo ${name} printed on stdout`);
      assert.ok(r.err.includes(sock()), `halo ${name} does not name the socket: ${r.err}`);
    }
    assert.deepEqual(readdirSync(dir).sort(), ['cluster', 'extra.crm'], 'nothing was written');
    assert.deepEqual(readdirSync(join(dir, 'cluster')), ['halo.json']);
    assert.equal(readFileSync(clusterConfig, 'utf8'), CLUSTER_CONFIG_TEXT, 'the cluster config is unchanged');
  });

  it('without a cluster config, exits 2 naming the config it looked for', () => {
    for (const [name, args] of downClusterCases('config')) {
      const r = get(args);
      assert.equal(r.code, DOWN_CLUSTER_EXIT[name] ?? 2, `halo ${name}: ${r.err}`);
      noStackTrace(r);
      assert.equal(r.out, '', `halo ${name} printed on stdout`);
      assert.ok(r.err.includes(missingConfig()), `halo ${name} does not name the config: ${r.err}`);
    }
  });
});
