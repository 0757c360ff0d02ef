/**
 * `halo simulate` and `halo explain`: run the scheduler on a CIB file and print what it would
 * do, in crm_simulate's layout (or JSON), or say in plain sentences why a resource runs where
 * it does. The shell around the pure scheduler: reads files, writes the graph, sets exit codes
 * (0 ok, 2 invalid input or unsupported feature).
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseCibXml } from '../cib/cib_xml.ts';
import type { Cib } from '../cib/model.ts';
import { formatDiagnostic } from '../lib/errors.ts';
import { explain } from '../scheduler/explain.ts';
import { type Injection, inject, parseOpFail } from '../scheduler/inject.ts';
import { formatScoreLine, renderSimulation, schedule } from '../scheduler/schedule.ts';

/** Largest CIB read (a 32-node × 10 000-resource CIB with history is ~40 MB). */
export const SIMULATE_MAX_FILE_BYTES = 512 * 1024 * 1024;

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

const collect = (v: string, prev: string[]): string[] => [...prev, v];

function fail(message: string): number {
  process.stderr.write(`${message}\n`);
  return 2;
}

/** Reads and parses the CIB, applying injections; prints diagnostics and returns undefined on error. */
function loadCib(file: string | undefined, injections: readonly Injection[], nowMs: number): Cib | undefined {
  if (!file) {
    process.stderr.write('halo: an input is required: -x/--xml-file FILE\n');
    return undefined;
  }
  let text: string;
  try {
    const st = statSync(file);
    if (st.size > SIMULATE_MAX_FILE_BYTES) {
      process.stderr.write(
        `${file}: error: file is ${st.size} bytes; the limit is ${SIMULATE_MAX_FILE_BYTES}\n`,
      );
      return undefined;
    }
    text = readFileSync(file, 'utf8');
  } catch (err) {
    process.stderr.write(`${file}: error: cannot read the file (${(err as Error).message})\n`);
    return undefined;
  }
  const parsed = parseCibXml(text, file);
  if (!parsed.ok) {
    for (const d of parsed.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    return undefined;
  }
  const injected = inject(parsed.cib, injections, nowMs);
  if (!injected.ok) {
    process.stderr.write(`halo: ${injected.reason}\n`);
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

function runSimulate(o: SimulateOpts): number {
  if (o.output !== 'text' && o.output !== 'json')
    return fail(`halo: --output must be text or json, not '${o.output}'`);
  const { injections, error } = injectionsFrom(o);
  if (error) return fail(error);
  const now = Date.now();
  const cib = loadCib(o.xmlFile, injections, now);
  if (!cib) return 2;
  const result = schedule(cib, now);
  if (!result.ok) return fail(`${o.xmlFile}: error: ${result.message}`);
  const t = result.transition;
  if (o.saveGraph) {
    const graph = { actions: t.actions, orderings: t.orderings, fencing: t.fencing };
    writeFileSync(o.saveGraph, `${JSON.stringify(graph, null, 2)}\n`);
  }
  if (o.output === 'json') {
    const json = {
      summary: t.summaryLines,
      fencing: t.fencing.map(([node, reason]) => ({ node, reason })),
      actions: t.actions,
      orderings: t.orderings,
      ...(o.showScores ? { scores: t.scores } : {}),
    };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return 0;
  }
  let text = renderSimulation(t);
  if (o.showScores) {
    const scores = t.scores.map(formatScoreLine).join('\n');
    text = text.replace('\nTransition Summary:', `\nAllocation Scores:\n${scores}\n\nTransition Summary:`);
  }
  process.stdout.write(text);
  return 0;
}

function runExplain(rsc: string, o: SimulateOpts): number {
  const { injections, error } = injectionsFrom(o);
  if (error) return fail(error);
  const now = Date.now();
  const cib = loadCib(o.xmlFile, injections, now);
  if (!cib) return 2;
  const result = schedule(cib, now, { textOutput: false });
  if (!result.ok) return fail(`${o.xmlFile}: error: ${result.message}`);
  const e = explain(result.stages, rsc);
  if (!e.ok) return fail(`halo: ${e.reason}`);
  if (o.output === 'json')
    process.stdout.write(`${JSON.stringify({ resource: rsc, explanation: e.lines }, null, 2)}\n`);
  else process.stdout.write(`${e.lines.join('\n')}\n`);
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
export function registerSimulateCommands(program: Command): void {
  commonOptions(
    program
      .command('simulate')
      .description("show what the scheduler would do with a CIB, in crm_simulate's format")
      .option('--show-scores', 'print every allocation and promotion score')
      .option('--save-graph <file>', 'write the transition (actions and orderings) as JSON'),
  ).action((opts: SimulateOpts) => {
    process.exitCode = runSimulate(opts);
  });
  commonOptions(
    program
      .command('explain')
      .description('say in plain words where a resource runs and why (or why it cannot)')
      .argument('<resource>', 'resource id (primitive, group, clone or instance)'),
  ).action((rsc: string, opts: SimulateOpts) => {
    process.exitCode = runExplain(rsc, opts);
  });
}
