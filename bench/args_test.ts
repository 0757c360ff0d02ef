import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type ArgsResult,
  type BenchArgs,
  type BenchOptions,
  flag,
  listOf,
  oneOf,
  option,
  optionalOption,
  parseBenchArgs,
  positiveNumber,
  wholeNumber,
} from './args.ts';

const CLI = {
  name: 'demo_bench',
  summary: 'A bench that exists only in this test.',
  options: {
    'size-mib': option({
      metavar: 'N',
      help: 'device size in MiB',
      check: wholeNumber(1, 1024),
      default: '64',
    }),
    trials: option({
      metavar: 'N',
      help: 'trials per profile',
      check: wholeNumber(1, 500),
      default: '20',
      env: 'DEMO_TRIALS',
    }),
    protocols: option({
      metavar: 'LIST',
      help: 'protocols to measure',
      check: listOf(oneOf(['A', 'B', 'C'])),
      default: 'C,B,A',
    }),
    seconds: option({ metavar: 'S', help: 'seconds per mode', check: positiveNumber(3600), default: '600' }),
    priority: optionalOption({ metavar: 'N', help: 'realtime priority', check: wholeNumber(0, 99) }),
    'no-warmup': flag('skip the warm-up pass'),
  },
  notes: ['Environment: DEMO_PAUSE=S waits S seconds.'],
} as const;

type Demo = typeof CLI.options;

function parse(argv: string[], env: Record<string, string> = {}): ArgsResult<Demo> {
  return parseBenchArgs(CLI, argv, env);
}

function values(argv: string[], env: Record<string, string> = {}): BenchArgs<Demo> {
  const r = parse(argv, env);
  assert.equal(r.kind, 'ok', r.kind === 'error' ? r.message : r.kind);
  return (r as { values: BenchArgs<Demo> }).values;
}

function errorOf(argv: string[], env: Record<string, string> = {}): string {
  const r = parse(argv, env);
  assert.equal(r.kind, 'error');
  return (r as { message: string }).message;
}

describe('bench arguments', () => {
  test('--help and -h return a usage text naming every option, its value, its rule and its default', () => {
    for (const argv of [['--help'], ['-h'], ['--size-mib', '8', '--help'], ['--bogus', '-h']]) {
      const r = parse(argv);
      assert.equal(r.kind, 'help', argv.join(' '));
      const text = (r as { text: string }).text;
      assert.match(text, /^Usage: demo_bench \[options\]\n/);
      assert.match(text, /A bench that exists only in this test\./);
      assert.match(text, /--size-mib N +device size in MiB: a whole number 1\.\.1024 \(default 64\)\n/);
      assert.match(
        text,
        /--trials N +trials per profile: a whole number 1\.\.500 \(default 20, or \$DEMO_TRIALS when set\)\n/,
      );
      assert.match(
        text,
        /--protocols LIST +protocols to measure: a comma-separated list, each item one of A, B, C \(default C,B,A\)\n/,
      );
      assert.match(text, /--seconds S +seconds per mode: a number in \(0, 3600\] \(default 600\)\n/);
      assert.match(text, /--priority N +realtime priority: a whole number 0\.\.99\n/);
      assert.match(text, /--no-warmup +skip the warm-up pass/);
      assert.match(text, /-h, --help +print this help and exit/);
      assert.match(text, /DEMO_PAUSE=S waits S seconds\.\n$/);
    }
  });

  test('no arguments give every default, flags false and optional values undefined', () => {
    assert.deepEqual(values([]), {
      'size-mib': 64,
      trials: 20,
      protocols: ['C', 'B', 'A'],
      seconds: 600,
      priority: undefined,
      'no-warmup': false,
    });
  });

  test('given values are parsed in both the separate and the = form', () => {
    assert.deepEqual(
      values(['--size-mib', '8', '--protocols=C', '--seconds', '0.5', '--priority=0', '--no-warmup']),
      {
        'size-mib': 8,
        trials: 20,
        protocols: ['C'],
        seconds: 0.5,
        priority: 0,
        'no-warmup': true,
      },
    );
  });

  test('a default from an environment variable is used and checked like a given value', () => {
    assert.equal(values([], { DEMO_TRIALS: '5' }).trials, 5);
    assert.equal(values(['--trials', '7'], { DEMO_TRIALS: '5' }).trials, 7);
    assert.equal(
      errorOf([], { DEMO_TRIALS: 'many' }),
      "demo_bench: bad value 'many' in DEMO_TRIALS (the default of --trials): it must be a whole number 1..500; see demo_bench --help",
    );
  });

  test('an unknown option is named in a one-line error that points at --help', () => {
    assert.equal(
      errorOf(['--sizemib', '8']),
      "demo_bench: unknown option '--sizemib'; see demo_bench --help",
    );
    assert.equal(errorOf(['--sizemib=8']), "demo_bench: unknown option '--sizemib'; see demo_bench --help");
    assert.equal(errorOf(['-x']), "demo_bench: unknown option '-x'; see demo_bench --help");
    // Names inherited from Object.prototype are not options either.
    assert.equal(
      errorOf(['--constructor']),
      "demo_bench: unknown option '--constructor'; see demo_bench --help",
    );
  });

  test('an option without its value is an error, also when another option follows', () => {
    const msg = 'demo_bench: --trials needs a value (--trials N); see demo_bench --help';
    assert.equal(errorOf(['--trials']), msg);
    assert.equal(errorOf(['--trials', '--no-warmup']), msg);
  });

  test('a value that fails its check is named with the option and the rule', () => {
    assert.equal(
      errorOf(['--size-mib', 'abc']),
      "demo_bench: bad value 'abc' for --size-mib: it must be a whole number 1..1024; see demo_bench --help",
    );
    for (const v of ['0', '1025', '1.5', '1e3', '0x10', ' 8', '', '-1'])
      assert.match(errorOf([`--size-mib=${v}`]), new RegExp(`bad value '${v}' for --size-mib`));
    assert.equal(
      errorOf(['--protocols', 'C,X']),
      "demo_bench: bad value 'C,X' for --protocols: it must be a comma-separated list, each item one of A, B, C; see demo_bench --help",
    );
    assert.match(errorOf(['--protocols', 'C,']), /bad value 'C,' for --protocols/);
    assert.match(
      errorOf(['--seconds', '0']),
      /bad value '0' for --seconds: it must be a number in \(0, 3600\]/,
    );
    assert.match(errorOf(['--seconds', 'NaN']), /bad value 'NaN' for --seconds/);
    assert.match(
      errorOf(['--priority', '100']),
      /bad value '100' for --priority: it must be a whole number 0\.\.99/,
    );
  });

  test('a repeated option, a value given to a flag and a stray argument are errors', () => {
    assert.equal(
      errorOf(['--trials', '3', '--trials', '4']),
      'demo_bench: --trials given twice (give it once); see demo_bench --help',
    );
    assert.equal(
      errorOf(['--no-warmup=yes']),
      "demo_bench: --no-warmup takes no value, got '--no-warmup=yes'; see demo_bench --help",
    );
    assert.equal(
      errorOf(['--trials', '3', '4']),
      "demo_bench: unexpected argument '4' (this bench takes only options); see demo_bench --help",
    );
  });

  test('the first problem in argument order is the one reported', () => {
    assert.match(errorOf(['--size-mib', 'x', '--bogus']), /bad value 'x' for --size-mib/);
    assert.match(errorOf(['--bogus', '--size-mib', 'x']), /unknown option '--bogus'/);
  });

  test('a bench whose own default fails its check is a programmer error', () => {
    const broken = {
      name: 'broken_bench',
      summary: 'x',
      options: { n: option({ metavar: 'N', help: 'n', check: wholeNumber(1, 2), default: '3' }) },
    };
    assert.throws(() => parseBenchArgs(broken, [], {}), /the default of --n \('3'\) fails its own check/);
    const named: BenchOptions = { help: flag('clashes with --help') };
    assert.throws(
      () => parseBenchArgs({ name: 'x', summary: 'x', options: named }, [], {}),
      /bad option name/,
    );
  });
});

/** A bench that ignored its arguments would start a long run: this bounds the damage. */
const BENCH_RUN_DEADLINE_MS = 60_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a bench file the way this test runs: from source through tsx, or compiled. */
function runBench(file: string, argv: readonly string[]): Promise<Run> {
  const fromSource = file.endsWith('.ts');
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...(fromSource ? ['--import', 'tsx'] : []), file, ...argv],
      { timeout: BENCH_RUN_DEADLINE_MS, killSignal: 'SIGKILL', encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('every bench', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const benches = readdirSync(here)
    .filter((f) => f.endsWith(`_bench${ext}`))
    .sort();

  test('answers --help with its usage and exit code 0', async () => {
    assert.ok(benches.length >= 10, `found only ${benches.join(', ')}`);
    const runs = await Promise.all(benches.map((f) => runBench(join(here, f), ['--help'])));
    for (const [i, r] of runs.entries()) {
      const name = benches[i]!.slice(0, -ext.length);
      assert.equal(r.code, 0, `${name} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: ${name} \\[options\\]\n`), name);
      assert.match(r.stdout, /-h, --help +print this help and exit/, name);
      assert.equal(r.stderr, '', name);
    }
  });

  test('refuses an unknown option with exit code 2 and one line on stderr, printing nothing else', async () => {
    const runs = await Promise.all(benches.map((f) => runBench(join(here, f), ['--no-such-option'])));
    for (const [i, r] of runs.entries()) {
      const name = benches[i]!.slice(0, -ext.length);
      assert.equal(r.code, 2, `${name}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stdout, '', name);
      assert.equal(r.stderr, `${name}: unknown option '--no-such-option'; see ${name} --help\n`);
    }
  });
});
