/**
 * Scheduler benchmark: synthetic clusters of N nodes × R Dummy primitives (monitor op; 30 % in
 * groups of 3; ~20 % with a location preference, 2 % with a ban; 5 % in colocation + order
 * pairs; one stonith device; stickiness 1), for initial placement (no history) and for
 * recovery after losing one node (everything running, node n1 lost and fenced).
 *
 * Two figures per case, each from its own child process so peak RSS is per figure:
 * `schedule` builds the CIB model in memory and times schedule() alone (the scheduler's own
 * cost; its peak RSS includes the model, not the initial placement run that produced the
 * recovery input, which runs in a process of its own); `-x` times what `halo simulate -x FILE`
 * does with the same CIB written as XML (read, parse, schedule with text output). When
 * `crm_simulate` is installed it runs `crm_simulate -R -x` on that file (capped at
 * CRM_TIMEOUT_MS) and the wall and CPU ratios against `-x` are printed (CPU time is the fairer
 * figure on a busy machine).
 *
 * Usage: scheduler_bench [--sizes 2x100,16x1000] [--modes initial,recovery] [--no-xml]
 *        [--crm-max-resources 1000] [--no-crm] [--json] [--help]
 *
 * Without --sizes it runs the grid of 2, 16 and 32 nodes × 100, 1000 and 10000 resources.
 * `--help` lists the options; a bad one (unknown, without its value, a size that is not
 * NxR with N 1..1000 and R 1..1000000, a mode other than initial and recovery) exits 2 before
 * anything runs. `--placement`, `--one`, `--xml` and `--from-xml` are internal modes (this file
 * re-run as a child for each figure), not options.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serializeCibXml } from '../src/cib/cib_xml.ts';
import { parseCibXmlFile } from '../src/cib/cib_xml_fs.ts';
import type { Cib, Constraint, NodeState, Primitive, Resource, ResourceHistory } from '../src/cib/model.ts';
import { emptyCib } from '../src/cib/model.ts';
import { SeededRng } from '../src/lib/prng.ts';
import { schedule } from '../src/scheduler/schedule.ts';
import { benchArgs, flag, listOf, oneOf, option, type ValueCheck, wholeNumber } from './args.ts';

/** crm_simulate gets this long per case before it is recorded as timed out. */
const CRM_TIMEOUT_MS = 120_000;
/** Default sizes: the issue's grid. */
const DEFAULT_SIZES: readonly (readonly [number, number])[] = [
  [2, 100],
  [2, 1000],
  [2, 10000],
  [16, 100],
  [16, 1000],
  [16, 10000],
  [32, 100],
  [32, 1000],
  [32, 10000],
];
const NOW_MS = Date.UTC(2026, 0, 1);
/** Largest synthetic cluster --sizes accepts (the default grid stops at 32 × 10000). */
const MAX_NODES = 1000;
const MAX_RESOURCES = 1_000_000;

const MODES = ['initial', 'recovery'] as const;
type Mode = (typeof MODES)[number];

/** One --sizes item: `NxR`, N nodes and R resources. */
const CLUSTER_SIZE: ValueCheck<readonly [number, number]> = {
  rule: `NxR (N nodes 1..${MAX_NODES}, R resources 1..${MAX_RESOURCES})`,
  parse: (text) => {
    const m = /^(\d+)x(\d+)$/.exec(text);
    const nodes = wholeNumber(1, MAX_NODES).parse(m?.[1] ?? '');
    const resources = wholeNumber(1, MAX_RESOURCES).parse(m?.[2] ?? '');
    return nodes !== undefined && resources !== undefined ? [nodes, resources] : undefined;
  },
};

const CLI = {
  name: 'scheduler_bench',
  summary:
    'Times schedule() and `halo simulate -x` on synthetic clusters of N nodes × R Dummy primitives, for initial placement and for recovery after losing node n1, against crm_simulate when installed (printed, never asserted).',
  options: {
    sizes: option({
      metavar: 'LIST',
      help: 'cluster sizes to run, e.g. 2x100,16x1000',
      check: listOf(CLUSTER_SIZE),
      default: DEFAULT_SIZES.map(([n, r]) => `${n}x${r}`).join(','),
    }),
    modes: option({
      metavar: 'LIST',
      help: 'cases per size (initial placement; recovery after losing n1)',
      check: listOf(oneOf(MODES)),
      default: MODES.join(','),
    }),
    'no-xml': flag('skip the `halo simulate -x` figure (read + parse + schedule)'),
    'crm-max-resources': option({
      metavar: 'R',
      help: 'run crm_simulate only on cases with at most R resources',
      check: wholeNumber(0, MAX_RESOURCES),
      default: '1000',
    }),
    'no-crm': flag('do not run crm_simulate'),
    json: flag('print the results as JSON instead of lines'),
  },
} as const;

function dummy(id: string): Primitive {
  return {
    kind: 'primitive',
    id,
    class: 'ocf',
    provider: 'heartbeat',
    type: 'Dummy',
    metaAttributes: [],
    instanceAttributes: [],
    utilization: [],
    operations: [
      {
        id: `${id}-monitor-10s`,
        name: 'monitor',
        interval: '10s',
        timeout: '20s',
        instanceAttributes: [],
        metaAttributes: [],
      },
    ],
  };
}

/** Builds the synthetic configuration (deterministic for a given N, R). */
export function syntheticConfig(nodes: number, resources: number): Cib {
  const rng = new SeededRng(nodes * 1_000_003 + resources);
  const names = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  const res: Resource[] = [
    {
      kind: 'primitive',
      id: 'fencing',
      class: 'stonith',
      type: 'fence_dummy',
      metaAttributes: [],
      instanceAttributes: [],
      utilization: [],
      operations: [],
    },
  ];
  const constraints: Constraint[] = [];
  const grouped = Math.floor((resources * 0.3) / 3) * 3;
  for (let i = 0; i < grouped; i += 3) {
    res.push({
      kind: 'group',
      id: `g${i / 3}`,
      members: [dummy(`r${i}`), dummy(`r${i + 1}`), dummy(`r${i + 2}`)],
      metaAttributes: [],
      instanceAttributes: [],
    });
  }
  for (let i = grouped; i < resources; i++) res.push(dummy(`r${i}`));
  for (let i = 0; i < resources; i++) {
    const x = rng.next();
    const target = i < grouped ? `g${Math.floor(i / 3)}` : `r${i}`;
    if (i < grouped && i % 3 !== 0) continue;
    if (x < 0.2) {
      constraints.push({
        kind: 'rsc_location',
        id: `loc-${i}`,
        rsc: target,
        node: names[rng.int(nodes)]!,
        score: '100',
        rules: [],
        sets: [],
      });
    } else if (x < 0.22) {
      constraints.push({
        kind: 'rsc_location',
        id: `ban-${i}`,
        rsc: target,
        node: names[rng.int(nodes)]!,
        score: '-INFINITY',
        rules: [],
        sets: [],
      });
    }
  }
  const pairs = Math.floor(((resources - grouped) * 0.05) / 2);
  for (let k = 0; k < pairs; k++) {
    const a = `r${grouped + 2 * k}`;
    const b = `r${grouped + 2 * k + 1}`;
    constraints.push({
      kind: 'rsc_colocation',
      id: `col-${k}`,
      rsc: b,
      withRsc: a,
      score: 'INFINITY',
      sets: [],
    });
    const then = b;
    constraints.push({ kind: 'rsc_order', id: `ord-${k}`, first: a, then, sets: [] });
  }
  const base = emptyCib();
  return {
    ...base,
    attrs: [...base.attrs, ['have-quorum', '1'], ['dc-uuid', 'n2']],
    configuration: {
      ...base.configuration,
      crmConfig: [
        {
          kind: 'cluster_property_set',
          id: 'cib-bootstrap-options',
          pairs: [
            { id: 'opt-stonith', name: 'stonith-enabled', value: 'true' },
            { id: 'opt-quorum', name: 'no-quorum-policy', value: 'stop' },
          ],
        },
      ],
      rscDefaults: [
        {
          kind: 'meta_attributes',
          id: 'rsc-options',
          pairs: [{ id: 'rsc-stick', name: 'resource-stickiness', value: '1' }],
        },
      ],
      nodes: names.map((n) => ({ id: n, uname: n, instanceAttributes: [], utilization: [] })),
      resources: res,
      constraints,
    },
    status: names.map((n) => onlineState(n, [])),
  };
}

function onlineState(n: string, history: ResourceHistory[]): NodeState {
  return {
    id: n,
    uname: n,
    inCcm: 'true',
    crmd: 'online',
    join: 'member',
    expected: 'member',
    transientAttributes: [],
    resources: history,
    hasLrm: true,
  };
}

function runningHistory(id: string, cls: string, type: string): ResourceHistory {
  const key = (t: number, rc: number): string => `${t}:1:${rc}:bench`;
  return {
    id,
    class: cls,
    ...(cls === 'ocf' ? { provider: 'heartbeat' } : {}),
    type,
    ops: [
      {
        id: `${id}_start_0`,
        operation: 'start',
        interval: '0',
        callId: '2',
        rcCode: '0',
        opStatus: '0',
        transitionKey: key(2, 0),
      },
      ...(cls === 'ocf'
        ? [
            {
              id: `${id}_monitor_10000`,
              operation: 'monitor',
              interval: '10000',
              callId: '3',
              rcCode: '0',
              opStatus: '0',
              transitionKey: key(3, 0),
            },
          ]
        : []),
    ],
  };
}

function probedHistory(id: string, cls: string, type: string): ResourceHistory {
  return {
    id,
    class: cls,
    ...(cls === 'ocf' ? { provider: 'heartbeat' } : {}),
    type,
    ops: [
      {
        id: `${id}_monitor_0`,
        operation: 'monitor',
        interval: '0',
        callId: '1',
        rcCode: '7',
        opStatus: '0',
        transitionKey: '1:1:7:bench',
      },
    ],
  };
}

/** Where the initial placement puts each primitive: [resource id, node] pairs. */
export type Placement = readonly (readonly [string, string])[];

/** Runs the initial placement (in the process that generates inputs, not the one measured). */
export function initialPlacement(initial: Cib): Placement {
  const r = schedule(initial, NOW_MS, { textOutput: false });
  if (!r.ok) throw new Error(r.message);
  const out: [string, string][] = [];
  for (const d of r.stages.decisions) {
    if (d.next.node && d.next.role !== 'Stopped') out.push([d.rsc.id, d.next.node]);
  }
  return out;
}

/** The cluster after the initial placement has run, with node n1 then lost. */
export function recoveryCib(initial: Cib, placement: Placement): Cib {
  const defs = new Map<string, Primitive>();
  const walk = (r: Resource): void => {
    if (r.kind === 'primitive') defs.set(r.id, r);
    else if (r.kind === 'group') for (const m of r.members) walk(m);
  };
  for (const r of initial.configuration.resources) walk(r);
  const byNode = new Map<string, ResourceHistory[]>();
  for (const [id, node] of placement) {
    const def = defs.get(id)!;
    const list = byNode.get(node) ?? [];
    list.push(runningHistory(id, def.class ?? 'ocf', def.type ?? 'Dummy'));
    byNode.set(node, list);
  }
  // Every node has probed every resource (as in a cluster that has been up for a while).
  const probed = [...defs.values()].map((d) => probedHistory(d.id, d.class ?? 'ocf', d.type ?? 'Dummy'));
  const status = initial.configuration.nodes.map((n) => {
    const running = byNode.get(n.uname) ?? [];
    const here = new Set(running.map((h) => h.id));
    const s = onlineState(n.uname, [...running, ...probed.filter((h) => !here.has(h.id))]);
    return n.uname === 'n1' ? { ...s, inCcm: 'false', crmd: 'offline', join: 'down' } : s;
  });
  return { ...initial, status };
}

interface ScheduleFigures {
  /** Wall time of the schedule() call. */
  haloMs: number;
  /** CPU time of the schedule() call (user + system, all threads incl. GC): robust on a busy machine. */
  haloCpuMs: number;
  /** Peak RSS of the process that built the model in memory and scheduled it. */
  haloRssMb: number;
  /** RSS with the input CIB built, before scheduling (the scheduler's own share is the difference). */
  inputRssMb: number;
  actions: number;
}

/** The whole `halo simulate -x` path: read the XML file, parse it, schedule. */
interface FromXmlFigures {
  readMs: number;
  parseMs: number;
  scheduleMs: number;
  /** CPU time of read + parse + schedule. */
  cpuMs: number;
  rssMb: number;
  xmlMb: number;
}

interface CaseResult extends ScheduleFigures {
  nodes: number;
  resources: number;
  mode: Mode;
  fromXml?: FromXmlFigures;
  crmMs?: number;
  /** crm_simulate's user + system CPU time (the fair comparison on a busy machine). */
  crmCpuMs?: number;
  crmRssMb?: number;
  crmNote?: string;
}

function buildCase(nodes: number, resources: number, mode: Mode, placementFile?: string): Cib {
  const initial = syntheticConfig(nodes, resources);
  if (mode === 'initial') return initial;
  const placement = JSON.parse(readFileSync(placementFile!, 'utf8')) as Placement;
  return recoveryCib(initial, placement);
}

/** Child mode: build one case in memory, schedule it, print JSON on stdout. */
function runOne(nodes: number, resources: number, mode: Mode, placementFile?: string): void {
  const cib = buildCase(nodes, resources, mode, placementFile);
  if (global.gc) global.gc();
  const inputRssMb = process.memoryUsage().rss / (1024 * 1024);
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const r = schedule(cib, NOW_MS, { textOutput: false });
  const cpu = process.cpuUsage(cpu0);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpuMs = (cpu.user + cpu.system) / 1000;
  if (!r.ok) throw new Error(r.message);
  const rssMb = process.resourceUsage().maxRSS / 1024;
  const out: ScheduleFigures = {
    haloMs: ms,
    haloCpuMs: cpuMs,
    haloRssMb: rssMb,
    inputRssMb,
    actions: r.transition.actions.length,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/** Child mode: write the case's CIB as XML (the input of --from-xml and of crm_simulate). */
function writeXml(nodes: number, resources: number, mode: Mode, out: string, placementFile?: string): void {
  writeFileSync(out, serializeCibXml(buildCase(nodes, resources, mode, placementFile)));
}

/** Child mode: what `halo simulate -x FILE` does, timed part by part. */
function runFromXml(file: string): void {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // The file is read in pieces while it is parsed (as `halo simulate -x` reads it): readMs is
  // only the stat, parseMs includes the reading.
  const xmlMb = statSync(file).size / (1024 * 1024);
  const t1 = performance.now();
  const parsed = parseCibXmlFile(file);
  const t2 = performance.now();
  if (!parsed.ok) throw new Error(parsed.diagnostics[0]?.message);
  const r = schedule(parsed.cib, NOW_MS);
  const t3 = performance.now();
  if (!r.ok) throw new Error(r.message);
  const cpu = process.cpuUsage(cpu0);
  const out: FromXmlFigures = {
    readMs: t1 - t0,
    parseMs: t2 - t1,
    scheduleMs: t3 - t2,
    cpuMs: (cpu.user + cpu.system) / 1000,
    rssMb: process.resourceUsage().maxRSS / 1024,
    xmlMb,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

function crmSimulate(xml: string): { ms?: number; cpuMs?: number; rssMb?: number; note?: string } {
  const t0 = process.hrtime.bigint();
  // `timeout` kills crm_simulate itself (killing /usr/bin/time would orphan it); time's %M is
  // the peak RSS of its waited-for descendants, i.e. crm_simulate's.
  const limit = String(Math.ceil(CRM_TIMEOUT_MS / 1000));
  const res = spawnSync(
    '/usr/bin/time',
    ['-f', '%M %U %S', 'timeout', '-s', 'KILL', limit, 'crm_simulate', '-R', '-x', xml],
    {
      encoding: 'utf8',
      timeout: CRM_TIMEOUT_MS + 30_000,
      killSignal: 'SIGKILL',
      maxBuffer: 256 * 1024 * 1024,
    },
  );
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (res.error || res.signal || res.status === 137 || res.status === 124) {
    return { note: `timed out after ${CRM_TIMEOUT_MS / 1000} s` };
  }
  const [kb, user, sys] = (res.stderr.trim().split('\n').pop() ?? '').split(' ').map(Number);
  const cpuMs = Number.isFinite(user) && Number.isFinite(sys) ? (user! + sys!) * 1000 : undefined;
  return { ms, cpuMs, rssMb: kb !== undefined && Number.isFinite(kb) ? kb / 1024 : undefined };
}

function hasCrmSimulate(): boolean {
  try {
    execFileSync('crm_simulate', ['--version'], { stdio: 'ignore' });
    return existsSync('/usr/bin/time');
  } catch {
    return false;
  }
}

/** Runs this file again as a child (own process, own peak RSS) and returns its last stdout line. */
function child(args: readonly string[], what: string): string {
  const self = fileURLToPath(import.meta.url);
  const res = spawnSync(process.execPath, [...process.execArgv, '--expose-gc', self, ...args], {
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  if (res.status !== 0) throw new Error(`bench ${what} failed: ${res.stderr}`);
  return res.stdout.trim().split('\n').pop() ?? '';
}

function childMode(argv: readonly string[]): boolean {
  const [flag, a, b, c, d, e] = argv;
  const mode = c as Mode;
  if (flag === '--placement')
    writeFileSync(c!, JSON.stringify(initialPlacement(syntheticConfig(Number(a), Number(b)))));
  else if (flag === '--one') runOne(Number(a), Number(b), mode, d);
  else if (flag === '--xml') writeXml(Number(a), Number(b), mode, d!, e);
  else if (flag === '--from-xml') runFromXml(a!);
  else return false;
  return true;
}

function runCase(nodes: number, resources: number, mode: Mode, o: MainOptions): CaseResult {
  const what = `case ${nodes}x${resources} ${mode}`;
  const base = join(o.dir, `${nodes}x${resources}-${mode}`);
  const placement = mode === 'recovery' ? `${base}.placement.json` : undefined;
  if (placement) child(['--placement', String(nodes), String(resources), placement], what);
  const size = [String(nodes), String(resources), mode];
  const halo = JSON.parse(
    child(['--one', ...size, ...(placement ? [placement] : [])], what),
  ) as ScheduleFigures;
  const row: CaseResult = { nodes, resources, mode, ...halo };
  const wantCrm = o.useCrm && resources <= o.crmMax;
  if (o.fromXml || wantCrm) {
    const xml = `${base}.xml`;
    child(['--xml', ...size, xml, ...(placement ? [placement] : [])], what);
    if (o.fromXml) row.fromXml = JSON.parse(child(['--from-xml', xml], what)) as FromXmlFigures;
    if (wantCrm) {
      const crm = crmSimulate(xml);
      if (crm.ms !== undefined) row.crmMs = crm.ms;
      if (crm.cpuMs !== undefined) row.crmCpuMs = crm.cpuMs;
      if (crm.rssMb !== undefined) row.crmRssMb = crm.rssMb;
      if (crm.note) row.crmNote = crm.note;
    } else if (o.useCrm) {
      row.crmNote = `skipped (R > ${o.crmMax}; crm_simulate needs minutes here)`;
    }
    rmSync(xml, { force: true });
  }
  if (placement) rmSync(placement, { force: true });
  return row;
}

interface MainOptions {
  dir: string;
  useCrm: boolean;
  crmMax: number;
  fromXml: boolean;
}

function main(): void {
  const argv = process.argv.slice(2);
  if (childMode(argv)) return;
  const args = benchArgs(CLI, argv);
  const { sizes, modes } = args;
  const dir = mkdtempSync(join(tmpdir(), 'halo-bench-'));
  const o: MainOptions = {
    dir,
    useCrm: !args['no-crm'] && hasCrmSimulate(),
    crmMax: args['crm-max-resources'],
    fromXml: !args['no-xml'],
  };
  const json = args.json;
  const results: CaseResult[] = [];
  if (!json)
    process.stdout.write(
      `load average at start: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}\n`,
    );
  try {
    for (const [nodes, resources] of sizes) {
      for (const mode of modes) {
        const row = runCase(nodes, resources, mode, o);
        results.push(row);
        if (!json) printRow(row);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  else
    process.stdout.write(
      `load average at end: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}\n`,
    );
}

function printRow(r: CaseResult): void {
  const perUnitUs = (r.haloCpuMs * 1000) / (r.nodes * r.resources);
  const x = r.fromXml;
  const fromXml = x
    ? `  | -x ${x.xmlMb.toFixed(0).padStart(3)} MB: read ${x.readMs.toFixed(0)} + parse ${x.parseMs.toFixed(0)} + schedule ${x.scheduleMs.toFixed(0)} ms (cpu ${x.cpuMs.toFixed(0)}) peak ${x.rssMb.toFixed(0)} MB`
    : '';
  // Both sides read, parse and schedule the same XML file: the ratio compares like with like.
  const total = x ? x.readMs + x.parseMs + x.scheduleMs : r.haloMs;
  const totalCpu = x ? x.cpuMs : r.haloCpuMs;
  const cpuRatio =
    r.crmCpuMs !== undefined
      ? `, cpu ${(r.crmCpuMs / 1000).toFixed(2)} s ratio ${(r.crmCpuMs / totalCpu).toFixed(1)}×`
      : '';
  const crm =
    r.crmMs !== undefined
      ? `${(r.crmMs / 1000).toFixed(2)} s ${r.crmRssMb?.toFixed(0) ?? '?'} MB  ratio ${(r.crmMs / total).toFixed(1)}×${cpuRatio}${x ? ' (vs -x)' : ''}`
      : (r.crmNote ?? 'not run');
  process.stdout.write(
    `${`${r.nodes}×${r.resources}`.padEnd(9)} ${r.mode.padEnd(9)} schedule ${r.haloMs.toFixed(1).padStart(7)} ms (cpu ${r.haloCpuMs.toFixed(0).padStart(5)} ms, ${perUnitUs.toFixed(2)} µs per R·N) peak ${r.haloRssMb.toFixed(0).padStart(4)} MB (input ${r.inputRssMb.toFixed(0).padStart(4)} MB) ${String(r.actions).padStart(6)} actions${fromXml}  crm_simulate ${crm}\n`,
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
