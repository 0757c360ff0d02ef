/**
 * Conformance of halo's scheduler against Pacemaker's own scheduler regression suite.
 *
 * Fetches the suite (scripts/fetch_pacemaker_cts.sh: `apt-get source pacemaker`, not
 * committed), runs `schedule()` in a worker thread on every `xml/NAME.xml` input, and compares
 * the Transition Summary block with `summary/NAME.summary` after normalising whitespace,
 * `ocf::` → `ocf:` and Master/Slave → Promoted/Unpromoted. A case that throws, or takes longer
 * than CASE_TIMEOUT_MS, counts as a failure and the run goes on (the worker is replaced).
 *
 * Usage: conformance_scheduler [--dir DIR] [--only REGEX] [--show-failures] [--diff NAME]
 *        [--check-floor] [--json]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/** One case may take this long before it counts as a hang. */
const CASE_TIMEOUT_MS = 10_000;
const FAMILIES = [
  'simple',
  'group',
  'clone',
  'promotable',
  'colocation',
  'order',
  'location/rules',
  'stickiness',
  'failure/recovery',
  'fencing',
  'standby/maintenance/quorum',
  'utilization',
  'remote',
  'bundle',
  'ticket',
  'migration',
  'other',
] as const;
type Family = (typeof FAMILIES)[number];

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root (this file runs from scripts/ under tsx, or dist/scripts/ compiled). */
const root = existsSync(join(here, '..', 'package.json')) ? resolve(here, '..') : resolve(here, '..', '..');

interface Args {
  dir?: string;
  only?: RegExp;
  showFailures: boolean;
  diff?: string;
  checkFloor: boolean;
  json: boolean;
}

const USAGE = `Usage: conformance_scheduler [--dir DIR] [--only REGEX] [--show-failures] [--diff NAME]
                             [--check-floor] [--json]

Runs halo's scheduler on every input of Pacemaker's scheduler regression suite and compares
its Transition Summary with Pacemaker's; prints a pass table by family.

  --dir DIR         the suite's cts/scheduler folder (default: fetched into .cache/ by
                    scripts/fetch_pacemaker_cts.sh)
  --only REGEX      run only the cases whose name matches REGEX
  --show-failures   print each failing case with its summary diff (- expected, + halo)
  --diff NAME       run one case and print its diff
  --check-floor     exit 1 if fewer cases pass than scripts/conformance_floor.json records
  --json            print the results as JSON
  --help            this text
`;

function usageError(msg: string): never {
  process.stderr.write(`conformance_scheduler: ${msg} (see --help)\n`);
  process.exit(2);
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { showFailures: false, checkFloor: false, json: false };
  const value = (i: number, opt: string): string => {
    const v = argv[i];
    if (v === undefined || v.startsWith('--')) usageError(`${opt} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i]!;
    if (v === '--help' || v === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else if (v === '--dir') a.dir = value(++i, v);
    else if (v === '--only') {
      const re = value(++i, v);
      try {
        a.only = new RegExp(re);
      } catch (e) {
        usageError(`--only '${re}' is not a regular expression: ${(e as Error).message}`);
      }
    } else if (v === '--show-failures') a.showFailures = true;
    else if (v === '--diff') a.diff = value(++i, v);
    else if (v === '--check-floor') a.checkFloor = true;
    else if (v === '--json') a.json = true;
    else usageError(`unknown option '${v}'`);
  }
  return a;
}

/** Normalises a summary block for comparison. */
export function normalise(lines: readonly string[]): string[] {
  return lines
    .map((l) =>
      l
        .replace(/ocf::/g, 'ocf:')
        .replace(/\bMaster\b/g, 'Promoted')
        .replace(/\bSlave\b/g, 'Unpromoted')
        .replace(/\s+/g, ' ')
        .trim(),
    )
    .filter((l) => l.length > 0);
}

/** The lines between "Transition Summary:" and the next section heading. */
export function summaryBlock(text: string): string[] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith('Transition Summary:'));
  if (start < 0) return [];
  const out: string[] = [];
  for (let i = start + 1; i < lines.length; i++) {
    const l = lines[i]!;
    if (/^\S/.test(l)) break;
    out.push(l);
  }
  return out;
}

/** Classifies a case into a feature family by its name, then by what its input uses. */
export function classify(name: string, xml: string): Family {
  const n = name.toLowerCase();
  if (/bundle|container/.test(n) || xml.includes('<bundle')) return 'bundle';
  if (
    /remote|guest|lxc|whitebox|baremetal/.test(n) ||
    /remote-node|ocf:pacemaker:remote|type="remote"/.test(xml)
  )
    return 'remote';
  if (/ticket/.test(n) || xml.includes('<rsc_ticket')) return 'ticket';
  if (/migrat/.test(n) || xml.includes('operation="migrate_')) return 'migration';
  if (/utiliz|utilization|balanced|minimal|placement/.test(n) || xml.includes('placement-strategy'))
    return 'utilization';
  if (/fenc|stonith|unfence|rec-node|suicide|shutdown|unclean/.test(n)) return 'fencing';
  if (/standby|maintenance|quorum|managed|block|freeze/.test(n)) return 'standby/maintenance/quorum';
  if (/promot|master|stateful|ms-|-ms|drbd|demote|notify|unpromot/.test(n)) return 'promotable';
  if (/clone|anon|interleave|unique|instance/.test(n)) return 'clone';
  if (/group/.test(n)) return 'group';
  if (/coloc|colo-|anti/.test(n)) return 'colocation';
  if (/order|then|serialize|first|asymmetrical/.test(n)) return 'order';
  if (/loc|rule|date|attr|asymmetric|node-score|exclusive|discovery|probe/.test(n)) return 'location/rules';
  if (/stick|failcount|fail-count/.test(n)) return 'stickiness';
  if (/fail|recover|rec-rsc|on_fail|on-fail|restart|timeout|bug-5186|migration-threshold/.test(n))
    return 'failure/recovery';
  if (/^simple|^params|^rsc-|^nothing|^reload/.test(n)) return 'simple';
  if (xml.includes('promotable') || xml.includes('<master')) return 'promotable';
  if (xml.includes('<clone')) return 'clone';
  if (xml.includes('<group')) return 'group';
  if (xml.includes('<rsc_colocation')) return 'colocation';
  if (xml.includes('<rsc_order')) return 'order';
  if (xml.includes('<rsc_location')) return 'location/rules';
  return 'other';
}

interface CaseResult {
  name: string;
  family: Family;
  pass: boolean;
  error?: string;
  got?: string[];
  want?: string[];
}

function fetchSuite(dir?: string): string {
  if (dir) return dir;
  const out = execFileSync('bash', [join(root, 'scripts', 'fetch_pacemaker_cts.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return out.trim().split('\n').pop()!;
}

/** The code a worker runs: parse + schedule one file, return the summary lines. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
(async () => {
  if (workerData.tsx) (await import('tsx/esm/api')).register();
  const { parseCibXml } = await import(workerData.cibXml);
  const { schedule } = await import(workerData.schedule);
  parentPort.on('message', (file) => {
    try {
      const parsed = parseCibXml(readFileSync(file, 'utf8'), file);
      if (!parsed.ok) {
        parentPort.postMessage({ error: 'parse: ' + (parsed.diagnostics[0] ? parsed.diagnostics[0].message : 'failed') });
        return;
      }
      const r = schedule(parsed.cib, Date.now(), { textOutput: false });
      if (!r.ok) parentPort.postMessage({ error: r.message });
      else parentPort.postMessage({ summary: r.transition.summary });
    } catch (e) {
      parentPort.postMessage({ error: 'crash: ' + (e && e.stack ? e.stack.split('\\n').slice(0, 3).join(' | ') : String(e)) });
    }
  });
  parentPort.postMessage({ ready: true });
})();
`;

class CaseRunner {
  private worker: Worker | undefined;
  private ready: Promise<void> | undefined;

  constructor(private readonly modules: { cibXml: string; schedule: string; tsx: boolean }) {}

  private start(): Promise<void> {
    const execArgv = process.execArgv.filter((a) => a !== '--check-floor');
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: this.modules, execArgv });
    const w = this.worker;
    this.ready = new Promise((res, rej) => {
      w.once('message', () => res());
      w.once('error', rej);
    });
    return this.ready;
  }

  async run(file: string): Promise<{ summary?: string[]; error?: string }> {
    if (!this.worker) await this.start();
    else await this.ready;
    const w = this.worker!;
    return new Promise((res) => {
      const timer = setTimeout(() => {
        cleanup();
        void w.terminate();
        this.worker = undefined;
        res({ error: `timeout after ${CASE_TIMEOUT_MS} ms` });
      }, CASE_TIMEOUT_MS);
      const onMsg = (m: { summary?: string[]; error?: string }): void => {
        cleanup();
        res(m);
      };
      const onErr = (e: Error): void => {
        cleanup();
        this.worker = undefined;
        res({ error: `worker died: ${e.message}` });
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        w.off('message', onMsg);
        w.off('error', onErr);
      };
      w.on('message', onMsg);
      w.on('error', onErr);
      w.postMessage(file);
    });
  }

  async close(): Promise<void> {
    if (this.worker) await this.worker.terminate();
  }
}

function moduleUrls(): { cibXml: string; schedule: string; tsx: boolean } {
  const compiled = here.includes(`${join('dist', 'scripts')}`);
  const ext = compiled ? 'js' : 'ts';
  const base = compiled ? join(root, 'dist', 'src') : join(root, 'src');
  return {
    cibXml: `file://${join(base, 'cib', `cib_xml.${ext}`)}`,
    schedule: `file://${join(base, 'scheduler', `schedule.${ext}`)}`,
    tsx: !compiled,
  };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const dir = fetchSuite(args.dir);
  const names = readdirSync(join(dir, 'xml'))
    .filter((f) => f.endsWith('.xml'))
    .map((f) => f.slice(0, -4))
    .filter((n) => existsSync(join(dir, 'summary', `${n}.summary`)))
    .filter((n) => (args.diff ? n === args.diff : args.only ? args.only.test(n) : true))
    .sort();
  const runner = new CaseRunner(moduleUrls());
  const results: CaseResult[] = [];
  for (const name of names) {
    const file = join(dir, 'xml', `${name}.xml`);
    const xml = readFileSync(file, 'utf8');
    const want = normalise(summaryBlock(readFileSync(join(dir, 'summary', `${name}.summary`), 'utf8')));
    const r = await runner.run(file);
    const got = r.summary ? normalise(r.summary) : undefined;
    const pass = got !== undefined && got.length === want.length && got.every((l, i) => l === want[i]);
    results.push({
      name,
      family: classify(name, xml),
      pass,
      ...(r.error ? { error: r.error } : {}),
      got,
      want,
    });
  }
  await runner.close();
  return report(results, args);
}

function report(results: readonly CaseResult[], args: Args): number {
  const byFamily = new Map<Family, { pass: number; total: number }>();
  for (const f of FAMILIES) byFamily.set(f, { pass: 0, total: 0 });
  for (const r of results) {
    const e = byFamily.get(r.family)!;
    e.total++;
    if (r.pass) e.pass++;
  }
  const passed = results.filter((r) => r.pass).length;
  if (args.diff || args.showFailures) {
    for (const r of results) {
      if (r.pass) continue;
      process.stdout.write(`FAIL ${r.name} [${r.family}]${r.error ? `: ${r.error}` : ''}\n`);
      if (args.diff || !r.error) {
        for (const l of r.want ?? []) if (!(r.got ?? []).includes(l)) process.stdout.write(`  - ${l}\n`);
        for (const l of r.got ?? []) if (!(r.want ?? []).includes(l)) process.stdout.write(`  + ${l}\n`);
      }
    }
  }
  if (args.json) {
    process.stdout.write(
      `${JSON.stringify({ passed, total: results.length, families: Object.fromEntries(byFamily) }, null, 2)}\n`,
    );
  } else {
    process.stdout.write('family                        pass / total\n');
    for (const [f, e] of byFamily) {
      if (e.total === 0) continue;
      const pct = ((100 * e.pass) / e.total).toFixed(1);
      process.stdout.write(
        `${f.padEnd(28)} ${String(e.pass).padStart(5)} / ${String(e.total).padEnd(5)} ${pct.padStart(5)} %\n`,
      );
    }
    const pct = results.length ? ((100 * passed) / results.length).toFixed(1) : '0.0';
    process.stdout.write(
      `${'overall'.padEnd(28)} ${String(passed).padStart(5)} / ${String(results.length).padEnd(5)} ${pct.padStart(5)} %\n`,
    );
  }
  if (args.checkFloor) {
    const floor = JSON.parse(readFileSync(join(root, 'scripts', 'conformance_floor.json'), 'utf8')) as {
      overall: number;
    };
    if (passed < floor.overall) {
      process.stderr.write(
        `conformance: ${passed} cases pass, below the recorded floor of ${floor.overall}\n`,
      );
      return 1;
    }
  }
  return 0;
}

process.exitCode = await main();
