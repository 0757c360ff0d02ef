/**
 * `halo simulate` and `halo explain`: run the scheduler on a CIB file and print what it would
 * do, in crm_simulate's layout (or JSON), or say in plain sentences why a resource runs where
 * it does. `halo explain RSC` without `-x` asks this node's daemon for the CIB the cluster
 * schedules on (the DC's live view, or the replicated CIB with this node's membership view) and
 * explains that. The shell around the pure scheduler: reads files or the control socket, writes
 * the graph, sets exit codes (0 ok, 2 invalid input, unsupported feature, unknown resource or
 * no running cluster).
 */
import { statSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseCibXmlFile } from '../cib/cib_xml_fs.ts';
import type { Cib } from '../cib/model.ts';
import { formatDiagnostic } from '../lib/errors.ts';
import { explain } from '../scheduler/explain.ts';
import { type Injection, inject, parseOpFail } from '../scheduler/inject.ts';
import { formatScoreLine, renderSimulation, schedule } from '../scheduler/schedule.ts';
import { DEFAULT_CONFIG_FILE } from './cluster_cmd.ts';
import { example } from './help.ts';
import { type LiveCibView, LiveClusterError, liveControlSocket, readLiveView } from './live_cib.ts';

/** Largest CIB read (a 32-node × 10 000-resource CIB with history is ~40 MB). */
export const SIMULATE_MAX_FILE_BYTES = 512 * 1024 * 1024;

/** Where the commands write: the process's stdout/stderr, or a test's buffers. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const PROCESS_IO: Io = {
  out: (text) => {
    process.stdout.write(text);
  },
  err: (text) => {
    process.stderr.write(text);
  },
};

interface SimulateOpts {
  xmlFile?: string;
  showScores?: boolean;
  saveGraph?: string;
  nodeUp: string[];
  nodeDown: string[];
  nodeFail: string[];
  opFail: string[];
  output: string;
}

interface LiveOpts {
  socket?: string;
  config?: string;
}

type ExplainOpts = SimulateOpts & LiveOpts;

const collect = (v: string, prev: string[]): string[] => [...prev, v];

function fail(io: Io, message: string): number {
  io.err(`${message}\n`);
  return 2;
}

/** Reads and parses the CIB, applying injections; prints diagnostics and returns undefined on error. */
function loadCib(
  io: Io,
  file: string | undefined,
  injections: readonly Injection[],
  nowMs: number,
): Cib | undefined {
  if (!file) {
    io.err('halo: an input is required: -x/--xml-file FILE, or -L/--live to ask the running cluster\n');
    return undefined;
  }
  let parsed: ReturnType<typeof parseCibXmlFile>;
  try {
    const st = statSync(file);
    if (st.size > SIMULATE_MAX_FILE_BYTES) {
      io.err(`${file}: error: file is ${st.size} bytes; the limit is ${SIMULATE_MAX_FILE_BYTES}\n`);
      return undefined;
    }
    parsed = parseCibXmlFile(file);
  } catch (err) {
    io.err(`${file}: error: cannot read the file (${(err as Error).message})\n`);
    return undefined;
  }
  if (!parsed.ok) {
    for (const d of parsed.diagnostics) io.err(`${formatDiagnostic(d)}\n`);
    return undefined;
  }
  const injected = inject(parsed.cib, injections, nowMs);
  if (!injected.ok) {
    io.err(`halo: ${injected.reason}\n`);
    return undefined;
  }
  return injected.cib;
}

function injectionsFrom(o: SimulateOpts): { injections: Injection[]; error?: string } {
  const injections: Injection[] = [
    ...o.nodeUp.map((node): Injection => ({ kind: 'node-up', node })),
    ...o.nodeDown.map((node): Injection => ({ kind: 'node-down', node })),
    ...o.nodeFail.map((node): Injection => ({ kind: 'node-fail', node })),
  ];
  for (const spec of o.opFail) {
    const p = parseOpFail(spec);
    if (!p.ok) return { injections, error: `halo: --op-fail ${p.reason}` };
    injections.push(p.injection);
  }
  return { injections };
}

async function runSimulate(io: Io, o: SimulateOpts & LiveOpts & { live?: boolean }): Promise<number> {
  if (o.output !== 'text' && o.output !== 'json')
    return fail(io, `halo: --output must be text or json, not '${o.output}'`);
  if (o.live && o.xmlFile !== undefined)
    return fail(io, 'halo: -x FILE simulates a file; -L/--live asks the running cluster; give one of them');
  if (!o.live && (o.socket !== undefined || o.config !== undefined))
    return fail(io, 'halo: --socket and --config choose a running cluster: add -L/--live');
  const { injections, error } = injectionsFrom(o);
  if (error) return fail(io, error);
  const now = Date.now();
  const input = o.live
    ? await cibInput(io, o, injections, now)
    : (() => {
        const cib = loadCib(io, o.xmlFile, injections, now);
        return cib ? { cib, where: o.xmlFile ?? '', live: undefined } : undefined;
      })();
  if (!input) return 2;
  const result = schedule(input.cib, now);
  if (!result.ok) return fail(io, `${input.where}: error: ${result.message}`);
  const t = result.transition;
  if (o.saveGraph) {
    const graph = { actions: t.actions, orderings: t.orderings, fencing: t.fencing };
    try {
      writeFileSync(o.saveGraph, `${JSON.stringify(graph, null, 2)}\n`);
    } catch (err) {
      return fail(io, `${o.saveGraph}: error: cannot write the graph (${(err as Error).message})`);
    }
  }
  if (o.output === 'json') {
    const json = {
      summary: t.summaryLines,
      fencing: t.fencing.map(([node, reason]) => ({ node, reason })),
      actions: t.actions,
      orderings: t.orderings,
      ...(o.showScores ? { scores: t.scores } : {}),
    };
    io.out(`${JSON.stringify(json, null, 2)}\n`);
    return 0;
  }
  let text = renderSimulation(t);
  if (o.showScores) {
    const scores = t.scores.map(formatScoreLine).join('\n');
    text = text.replace('\nTransition Summary:', `\nAllocation Scores:\n${scores}\n\nTransition Summary:`);
  }
  io.out(text);
  io.err(liveNote(input.live));
  return 0;
}

/** On a node that is not the DC, says what the answer was computed from. */
function liveNote(live: LiveCibView | undefined): string {
  if (!live || live.source === 'dc') return '';
  return `note: ${live.node} is not the DC; this is its replicated CIB with the membership it sees${live.dc ? `; run it on the DC (${live.dc}) for the DC's live view` : ''}\n`;
}

/** The CIB to read: the file given with -x, else the running cluster's (with its source). */
async function cibInput(
  io: Io,
  o: LiveOpts & { xmlFile?: string },
  injections: readonly Injection[],
  nowMs: number,
): Promise<{ cib: Cib; where: string; live?: LiveCibView | undefined } | undefined> {
  if (o.xmlFile !== undefined) {
    const cib = loadCib(io, o.xmlFile, injections, nowMs);
    return cib ? { cib, where: o.xmlFile } : undefined;
  }
  const target = {
    ...(o.socket === undefined ? {} : { socket: o.socket }),
    ...(o.config === undefined ? {} : { config: o.config }),
    offline: 'use -x FILE to read a CIB file',
  };
  let live: LiveCibView;
  let socket = '';
  try {
    socket = liveControlSocket(target);
    live = await readLiveView(socket, target);
  } catch (err) {
    if (!(err instanceof LiveClusterError)) throw err;
    io.err(`${err.message}\n`);
    return undefined;
  }
  const injected = inject(live.cib, injections, nowMs);
  if (!injected.ok) {
    io.err(`halo: ${injected.reason}\n`);
    return undefined;
  }
  return { cib: injected.cib, where: `the cluster's CIB (from ${socket})`, live };
}

async function runExplain(io: Io, rsc: string, o: ExplainOpts): Promise<number> {
  if (o.output !== 'text' && o.output !== 'json')
    return fail(io, `halo: --output must be text or json, not '${o.output}'`);
  if (o.xmlFile !== undefined && (o.socket !== undefined || o.config !== undefined))
    return fail(
      io,
      'halo: -x FILE explains a file; --socket and --config choose a running cluster; give one of them',
    );
  const { injections, error } = injectionsFrom(o);
  if (error) return fail(io, error);
  const now = Date.now();
  const input = await cibInput(io, o, injections, now);
  if (!input) return 2;
  const result = schedule(input.cib, now, { textOutput: false });
  if (!result.ok) return fail(io, `${input.where}: error: ${result.message}`);
  const e = explain(result.stages, rsc);
  if (!e.ok) return fail(io, `halo: ${e.reason}`);
  const live = input.live;
  const note = liveNote(live);
  if (o.output === 'json')
    io.out(
      `${JSON.stringify(
        {
          resource: rsc,
          explanation: e.lines,
          ...(live ? { source: live.source, node: live.node, dc: live.dc } : { file: o.xmlFile }),
        },
        null,
        2,
      )}\n`,
    );
  else {
    io.out(`${e.lines.join('\n')}\n`);
    io.err(note);
  }
  return 0;
}

function commonOptions(cmd: Command): Command {
  return cmd
    .option('-x, --xml-file <file>', 'CIB XML to read (as cibadmin -Q writes it)')
    .option('--node-up <node>', 'bring a node online first', collect, [])
    .option('--node-down <node>', 'take a node down cleanly first', collect, [])
    .option('--node-fail <node>', 'make a node fail (it will be fenced)', collect, [])
    .option('--op-fail <spec>', 'inject a failed operation RSC_OP_INTERVAL@NODE=RC', collect, [])
    .option('--output <format>', 'text or json', 'text');
}

/** Registers `halo simulate` and `halo explain`. */
export function registerSimulateCommands(program: Command, io: Io = PROCESS_IO): void {
  example(
    commonOptions(
      program
        .command('simulate')
        .description("show what the scheduler would do with a CIB, in crm_simulate's format")
        .option('--show-scores', 'print every allocation and promotion score')
        .option('--save-graph <file>', 'write the transition (actions and orderings) as JSON')
        .option('-L, --live', "read the running cluster's CIB (like crm_simulate -L) instead of -x FILE")
        .option(
          '--socket <path>',
          "with -L: ask this daemon control socket (default: this node's, from --config)",
        )
        .option(
          '--config <file>',
          `with -L: cluster config naming this node's control socket (default ${DEFAULT_CONFIG_FILE})`,
        ),
    ),
    'halo simulate -x cib.xml --node-fail node1 --show-scores\n  halo simulate -L --node-fail node1      (what the running cluster would do if node1 failed)',
  ).action(async (opts: SimulateOpts & LiveOpts & { live?: boolean }) => {
    process.exitCode = await runSimulate(io, opts);
  });
  example(
    commonOptions(
      program
        .command('explain')
        .description(
          'say in plain words where a resource runs and why (or why it cannot): on the running cluster, or in a CIB file with -x',
        )
        .argument('<resource>', 'resource id (primitive, group, clone or instance)')
        .option('--socket <path>', "ask this daemon control socket (default: this node's, from --config)")
        .option(
          '--config <file>',
          `cluster config naming this node's control socket (default ${DEFAULT_CONFIG_FILE})`,
        ),
    ),
    "halo explain g_all            (the running cluster, asked through this node's daemon)\n  halo explain web -x cib.xml --node-fail n1",
  ).action(async (rsc: string, opts: ExplainOpts) => {
    process.exitCode = await runExplain(io, rsc, opts);
  });
}
