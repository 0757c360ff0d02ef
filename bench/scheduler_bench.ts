/**
 * Scheduler benchmark: synthetic clusters of N nodes × R Dummy primitives (monitor op; 30 % in
 * groups of 3; ~20 % with a location preference, 2 % with a ban; 5 % in colocation + order
 * pairs; one stonith device; stickiness 1), for initial placement (no history) and for
 * recovery after losing one node (everything running, node n1 lost and fenced).
 *
 * Each case runs in its own child process so peak RSS is per case. When `crm_simulate` is
 * installed, it runs `crm_simulate -R -x` on the same CIB (capped at CRM_TIMEOUT_MS) and the
 * ratio is printed.
 *
 * Usage: scheduler_bench [--sizes 2x100,16x1000] [--crm-max-resources 1000] [--no-crm] [--json]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serializeCibXml } from '../src/cib/cib_xml.ts';
import type { Cib, Constraint, NodeState, Primitive, Resource, ResourceHistory } from '../src/cib/model.ts';
import { emptyCib } from '../src/cib/model.ts';
import { SeededRng } from '../src/lib/prng.ts';
import { schedule } from '../src/scheduler/schedule.ts';

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

type Mode = 'initial' | 'recovery';

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

/** The cluster after the initial placement has run, with node n1 then lost. */
export function recoveryCib(initial: Cib): Cib {
  const r = schedule(initial, NOW_MS, { textOutput: false });
  if (!r.ok) throw new Error(r.message);
  const byNode = new Map<string, ResourceHistory[]>();
  for (const d of r.stages.decisions) {
    const node = d.next.node;
    if (!node || d.next.role === 'Stopped') continue;
    const def = d.rsc.def!;
    const list = byNode.get(node) ?? [];
    list.push(runningHistory(d.rsc.id, def.class ?? 'ocf', def.type ?? 'Dummy'));
    byNode.set(node, list);
  }
  // Every node has probed every resource (as in a cluster that has been up for a while).
  const probed = r.stages.decisions.map((d) =>
    probedHistory(d.rsc.id, d.rsc.def?.class ?? 'ocf', d.rsc.def?.type ?? 'Dummy'),
  );
  const status = initial.configuration.nodes.map((n) => {
    const running = byNode.get(n.uname) ?? [];
    const here = new Set(running.map((h) => h.id));
    const s = onlineState(n.uname, [...running, ...probed.filter((h) => !here.has(h.id))]);
    return n.uname === 'n1' ? { ...s, inCcm: 'false', crmd: 'offline', join: 'down' } : s;
  });
  return { ...initial, status };
}

interface CaseResult {
  nodes: number;
  resources: number;
  mode: Mode;
  haloMs: number;
  /** CPU time of the schedule() call (user + system, all threads incl. GC): robust on a busy machine. */
  haloCpuMs: number;
  haloRssMb: number;
  /** RSS with the input CIB built, before scheduling (the scheduler's own share is the difference). */
  inputRssMb: number;
  actions: number;
  crmMs?: number;
  crmRssMb?: number;
  crmNote?: string;
}

/** Child mode: build one case, schedule it, print JSON on stdout. */
function runOne(nodes: number, resources: number, mode: Mode, xmlOut?: string): void {
  const initial = syntheticConfig(nodes, resources);
  const cib = mode === 'initial' ? initial : recoveryCib(initial);
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
  // Written after measuring: serializing a large CIB costs more memory than scheduling it.
  if (xmlOut) writeFileSync(xmlOut, serializeCibXml(cib));
  process.stdout.write(
    `${JSON.stringify({ haloMs: ms, haloCpuMs: cpuMs, haloRssMb: rssMb, inputRssMb, actions: r.transition.actions.length })}\n`,
  );
}

function crmSimulate(xml: string): { ms?: number; rssMb?: number; note?: string } {
  const t0 = process.hrtime.bigint();
  // `timeout` kills crm_simulate itself (killing /usr/bin/time would orphan it); time's %M is
  // the peak RSS of its waited-for descendants, i.e. crm_simulate's.
  const limit = String(Math.ceil(CRM_TIMEOUT_MS / 1000));
  const res = spawnSync(
    '/usr/bin/time',
    ['-f', '%M', 'timeout', '-s', 'KILL', limit, 'crm_simulate', '-R', '-x', xml],
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
  const kb = Number(res.stderr.trim().split('\n').pop());
  return { ms, rssMb: Number.isFinite(kb) ? kb / 1024 : undefined };
}

function hasCrmSimulate(): boolean {
  try {
    execFileSync('crm_simulate', ['--version'], { stdio: 'ignore' });
    return existsSync('/usr/bin/time');
  } catch {
    return false;
  }
}

function main(): void {
  const argv = process.argv.slice(2);
  if (argv[0] === '--one') {
    runOne(Number(argv[1]), Number(argv[2]), argv[3] as Mode, argv[4]);
    return;
  }
  const opt = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const sizes = opt('--sizes')
    ? opt('--sizes')!
        .split(',')
        .map((s) => s.split('x').map(Number) as [number, number])
    : DEFAULT_SIZES;
  const crmMax = Number(opt('--crm-max-resources') ?? 1000);
  const useCrm = !argv.includes('--no-crm') && hasCrmSimulate();
  const dir = mkdtempSync(join(tmpdir(), 'halo-bench-'));
  const self = fileURLToPath(import.meta.url);
  const results: CaseResult[] = [];
  try {
    for (const [nodes, resources] of sizes) {
      for (const mode of ['initial', 'recovery'] as const) {
        const xml = join(dir, `${nodes}x${resources}-${mode}.xml`);
        const wantCrm = useCrm && resources <= crmMax;
        const child = spawnSync(
          process.execPath,
          [
            ...process.execArgv,
            '--expose-gc',
            self,
            '--one',
            String(nodes),
            String(resources),
            mode,
            ...(wantCrm ? [xml] : []),
          ],
          {
            encoding: 'utf8',
            maxBuffer: 16 * 1024 * 1024,
          },
        );
        if (child.status !== 0)
          throw new Error(`bench case ${nodes}x${resources} ${mode} failed: ${child.stderr}`);
        const halo = JSON.parse(child.stdout.trim().split('\n').pop()!) as Pick<
          CaseResult,
          'haloMs' | 'haloCpuMs' | 'haloRssMb' | 'inputRssMb' | 'actions'
        >;
        const row: CaseResult = { nodes, resources, mode, ...halo };
        if (wantCrm) {
          const crm = crmSimulate(xml);
          if (crm.ms !== undefined) row.crmMs = crm.ms;
          if (crm.rssMb !== undefined) row.crmRssMb = crm.rssMb;
          if (crm.note) row.crmNote = crm.note;
          rmSync(xml, { force: true });
        } else if (useCrm) {
          row.crmNote = `skipped (R > ${crmMax}; crm_simulate needs minutes here)`;
        }
        results.push(row);
        printRow(row, argv.includes('--json'));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
}

function printRow(r: CaseResult, json: boolean): void {
  if (json) return;
  const crm =
    r.crmMs !== undefined
      ? `${(r.crmMs / 1000).toFixed(2)} s ${r.crmRssMb?.toFixed(0) ?? '?'} MB  ratio ${(r.crmMs / r.haloMs).toFixed(0)}×`
      : (r.crmNote ?? 'not run');
  process.stdout.write(
    `${`${r.nodes}×${r.resources}`.padEnd(9)} ${r.mode.padEnd(9)} halo ${r.haloMs.toFixed(1).padStart(8)} ms (cpu ${r.haloCpuMs.toFixed(0).padStart(5)} ms) peak ${r.haloRssMb.toFixed(0).padStart(5)} MB (input ${r.inputRssMb.toFixed(0).padStart(4)} MB)  ${String(r.actions).padStart(7)} actions   crm_simulate ${crm}\n`,
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
