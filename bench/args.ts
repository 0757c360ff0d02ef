/**
 * Command-line options of the benchmarks. Each bench declares its options once (name, whether
 * it takes a value, how the value is checked, its help line) and calls `benchArgs` first thing,
 * before it creates or starts anything:
 *
 *   - `--help` or `-h` anywhere prints a usage text listing every option and exits 0;
 *   - an unknown option, an option given twice, a missing value, a value given to a flag, a
 *     stray argument or a value that fails its check prints one line naming the option and the
 *     value, pointing at `--help`, and exits 2.
 *
 * Values are given as `--name VALUE` or `--name=VALUE`; a separate VALUE may not start with
 * `-` (so `--repeat --no-warmup` is a missing value, not a repeat count of "--no-warmup").
 * Defaults are text read like a given value, so a default taken from an environment variable
 * (`env`) is checked the same way and a bad one is reported under the variable's name.
 *
 * Internal re-invocations of a bench by itself (`--serve`, `--one`, `--receive`, …) are not
 * options: each bench recognises those before it calls `benchArgs`.
 */
import assert from 'node:assert/strict';

/** How an option's value is read: what a valid value is, and the reading itself. */
export interface ValueCheck<T> {
  /** What a valid value is, as a phrase after "must be": `a whole number 1..20`. Shown in help. */
  readonly rule: string;
  /** The value, or undefined when `text` is not one. */
  readonly parse: (text: string) => T | undefined;
}

/** An option without a value: true when given. */
export interface FlagOption {
  readonly kind: 'flag';
  readonly help: string;
}

/** An option with a value and a default (text, checked like a given value). */
export interface ValueOption<T> {
  readonly kind: 'value';
  /** The value's placeholder in the usage text: N, LIST, NAME. */
  readonly metavar: string;
  readonly help: string;
  readonly check: ValueCheck<T>;
  readonly default: string;
  /** An environment variable that, when set, replaces `default`. */
  readonly env?: string;
}

/** An option with a value and no default: undefined when not given. */
export interface OptionalValueOption<T> {
  readonly kind: 'optional-value';
  readonly metavar: string;
  readonly help: string;
  readonly check: ValueCheck<T>;
}

export type BenchOption = FlagOption | ValueOption<unknown> | OptionalValueOption<unknown>;
export type BenchOptions = Readonly<Record<string, BenchOption>>;

/** A bench's command line: its name (as in messages), what it does, its options. */
export interface BenchCli<S extends BenchOptions> {
  /** The bench's file name without extension, e.g. `volume_bench`. */
  readonly name: string;
  /** One or two sentences for the top of the usage text. */
  readonly summary: string;
  readonly options: S;
  /** Lines printed after the options (environment variables, notes). */
  readonly notes?: readonly string[];
}

/** The parsed values, keyed by option name. */
export type BenchArgs<S extends BenchOptions> = {
  readonly [K in keyof S]: S[K] extends FlagOption
    ? boolean
    : S[K] extends ValueOption<infer T>
      ? T
      : S[K] extends OptionalValueOption<infer T>
        ? T | undefined
        : never;
};

export type ArgsResult<S extends BenchOptions> =
  | { readonly kind: 'ok'; readonly values: BenchArgs<S> }
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'error'; readonly message: string };

export function flag(help: string): FlagOption {
  return { kind: 'flag', help };
}

export function option<T>(o: Omit<ValueOption<T>, 'kind'>): ValueOption<T> {
  return { kind: 'value', ...o };
}

export function optionalOption<T>(o: Omit<OptionalValueOption<T>, 'kind'>): OptionalValueOption<T> {
  return { kind: 'optional-value', ...o };
}

/** A whole number in min..max (decimal digits only: no `1e3`, `0x10`, spaces or sign). */
export function wholeNumber(min: number, max: number): ValueCheck<number> {
  assert(Number.isSafeInteger(min) && Number.isSafeInteger(max) && min <= max, 'wholeNumber: bad range');
  return {
    rule: `a whole number ${min}..${max}`,
    parse: (text) => {
      const n = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
      return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
    },
  };
}

/** A number greater than 0 and at most max (decimals allowed: `0.5`, `90`). */
export function positiveNumber(max: number): ValueCheck<number> {
  return {
    rule: `a number in (0, ${max}]`,
    parse: (text) => {
      const n = /^(\d+(\.\d*)?|\.\d+)$/.test(text) ? Number(text) : Number.NaN;
      return Number.isFinite(n) && n > 0 && n <= max ? n : undefined;
    },
  };
}

/** One of the given words. */
export function oneOf<const W extends string>(words: readonly W[]): ValueCheck<W> {
  return {
    rule: `one of ${words.join(', ')}`,
    parse: (text) => ((words as readonly string[]).includes(text) ? (text as W) : undefined),
  };
}

/** A comma-separated list of one or more items, each read by `item`; no empty items. */
export function listOf<T>(item: ValueCheck<T>): ValueCheck<T[]> {
  return {
    rule: `a comma-separated list, each item ${item.rule}`,
    parse: (text) => {
      const out: T[] = [];
      for (const part of text.split(',')) {
        const v = item.parse(part);
        if (v === undefined) return undefined;
        out.push(v);
      }
      return out;
    },
  };
}

const HELP_WORDS = new Set(['--help', '-h']);

/**
 * Parses `argv` (without node and the script) against `cli`'s options. Pure: reads `env` only
 * for defaults that name a variable; prints nothing and exits nothing (see `benchArgs`). The
 * first problem in argument order is the one reported.
 */
export function parseBenchArgs<S extends BenchOptions>(
  cli: BenchCli<S>,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ArgsResult<S> {
  const options: BenchOptions = cli.options;
  for (const name of Object.keys(options))
    assert(/^[a-z][a-z0-9-]*$/.test(name) && name !== 'help', `${cli.name}: bad option name '${name}'`);
  if (argv.some((a) => HELP_WORDS.has(a))) return { kind: 'help', text: usageText(cli) };
  const fail = (what: string): ArgsResult<S> => ({
    kind: 'error',
    message: `${cli.name}: ${what}; see ${cli.name} --help`,
  });
  const values: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-')) return fail(`unexpected argument '${arg}' (this bench takes only options)`);
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') ? arg.slice(2, eq >= 0 ? eq : undefined) : arg;
    const spec = Object.hasOwn(options, name) ? options[name] : undefined;
    if (spec === undefined) return fail(`unknown option '${eq >= 0 ? arg.slice(0, eq) : arg}'`);
    if (Object.hasOwn(values, name)) return fail(`--${name} given twice (give it once)`);
    if (spec.kind === 'flag') {
      if (eq >= 0) return fail(`--${name} takes no value, got '${arg}'`);
      values[name] = true;
      continue;
    }
    let text: string;
    if (eq >= 0) text = arg.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('-'))
        return fail(`--${name} needs a value (--${name} ${spec.metavar})`);
      text = next;
      i++;
    }
    const v = spec.check.parse(text);
    if (v === undefined) return fail(`bad value '${text}' for --${name}: it must be ${spec.check.rule}`);
    values[name] = v;
  }
  for (const [name, spec] of Object.entries(options)) {
    if (Object.hasOwn(values, name)) continue;
    if (spec.kind === 'flag') values[name] = false;
    else if (spec.kind === 'optional-value') values[name] = undefined;
    else {
      const fromEnv = spec.env !== undefined ? env[spec.env] : undefined;
      const text = fromEnv ?? spec.default;
      const v = spec.check.parse(text);
      if (v === undefined && fromEnv !== undefined)
        return fail(
          `bad value '${text}' in ${spec.env} (the default of --${name}): it must be ${spec.check.rule}`,
        );
      assert(v !== undefined, `${cli.name}: the default of --${name} ('${text}') fails its own check`);
      values[name] = v;
    }
  }
  return { kind: 'ok', values: values as BenchArgs<S> };
}

/** The usage text: summary, every option with its help line, rule and default, then the notes. */
export function usageText<S extends BenchOptions>(cli: BenchCli<S>): string {
  const options: BenchOptions = cli.options;
  const rows: [string, string][] = Object.entries(options).map(([name, spec]) => {
    if (spec.kind === 'flag') return [`--${name}`, spec.help];
    const dflt =
      spec.kind === 'value'
        ? ` (default ${spec.default}${spec.env !== undefined ? `, or $${spec.env} when set` : ''})`
        : '';
    return [`--${name} ${spec.metavar}`, `${spec.help}: ${spec.check.rule}${dflt}`];
  });
  rows.push(['-h, --help', 'print this help and exit']);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  const lines = [
    `Usage: ${cli.name} [options]`,
    '',
    cli.summary,
    '',
    'Options:',
    ...rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`),
  ];
  if (cli.notes !== undefined && cli.notes.length > 0) lines.push('', ...cli.notes);
  return `${lines.join('\n')}\n`;
}

/**
 * Parses this process's arguments for `cli`. On `--help` prints the usage text and exits 0; on
 * bad input prints the one-line error to stderr and exits 2. Call it before the bench creates
 * or starts anything, so bad input changes nothing.
 */
export function benchArgs<S extends BenchOptions>(
  cli: BenchCli<S>,
  argv: readonly string[] = process.argv.slice(2),
  env: Readonly<Record<string, string | undefined>> = process.env,
): BenchArgs<S> {
  const r = parseBenchArgs(cli, argv, env);
  switch (r.kind) {
    case 'ok':
      return r.values;
    case 'help':
      // stdout and stderr to files and pipes are written synchronously on Linux: exiting loses nothing.
      process.stdout.write(r.text);
      return process.exit(0);
    case 'error':
      process.stderr.write(`${r.message}\n`);
      return process.exit(2);
  }
}
