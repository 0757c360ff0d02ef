/**
 * For tests: runs `halo ARGS` in this process with only some command families registered,
 * capturing what they write through the `Io` they are given (never by replacing process.stdout,
 * which the test reporter writes to) and the exit code as `cli/main.ts` maps it (commander's
 * usage errors exit 2).
 */
import { Command, CommanderError } from 'commander';

export interface CliOutput {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export async function runCli(
  register: (program: Command, io: CliOutput) => void,
  args: readonly string[],
): Promise<CliRun> {
  let out = '';
  let err = '';
  const io: CliOutput = {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
  };
  const program = new Command('halo').exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err });
  register(program, io);
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    await program.parseAsync(['node', 'halo', ...args]);
    return { code: typeof process.exitCode === 'number' ? process.exitCode : 0, out, err };
  } catch (e) {
    if (e instanceof CommanderError) return { code: e.exitCode === 1 ? 2 : e.exitCode, out, err };
    throw e;
  } finally {
    process.exitCode = before;
  }
}

/**
 * Runs `fn` with process.stderr captured (commands that write through the process, not an `Io`,
 * report errors there), and restores it whatever happens.
 */
export async function captureStderr<T>(fn: () => Promise<T>): Promise<{ value: T; err: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let err = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    return { value: await fn(), err };
  } finally {
    process.stderr.write = write;
  }
}
