import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { HaloError } from '../lib/errors.ts';
import { configurePropertyShorthand, registerAdminCommands } from './admin_cmd.ts';
import { registerAgentCommands } from './agent_cmd.ts';
import { registerClusterCommands } from './cluster_cmd.ts';
import { registerConfigCommands } from './config_cmd.ts';
import { registerImportCommands } from './import_cmd.ts';
import { registerLabCommands } from './lab_cmd.ts';
import { registerSimulateCommands } from './simulate_cmd.ts';
import { drbdadmPassThrough, registerVolumeCommands } from './volume_cmd.ts';

/**
 * Builds the `halo` command tree. Each subsystem registers its own commands through a
 * `register*` function so that this file stays a table of contents.
 */
export function buildProgram(): Command {
  const program = new Command('halo')
    .description('halo: High Availability, LOw cost. A failover cluster in one program.')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerConfigCommands(program);
  registerSimulateCommands(program);
  registerClusterCommands(program);
  registerAgentCommands(program);
  registerVolumeCommands(program);
  registerLabCommands(program);
  registerAdminCommands(program);
  registerImportCommands(program);
  return program;
}

/** Exit code for an error no command caught: a bug in halo (EX_SOFTWARE, as sysexits.h). */
export const INTERNAL_ERROR_EXIT = 70;

/**
 * Runs the CLI with `argv` (as process.argv) and returns the exit code. Errors a command did
 * not handle never reach the user as a stack trace: a HaloError (an operating error with a
 * stable code) prints its message and exits 2; anything else is a bug in halo and prints one
 * line saying so (set HALO_DEBUG=1 for the stack) and exits 70.
 */
export async function run(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  // Command lines as the tutorials write them for drbdadm and crm (see each function).
  let args = [...argv];
  for (const rewrite of [drbdadmPassThrough, configurePropertyShorthand]) {
    const r = rewrite(args);
    if (r.note) process.stderr.write(`${r.note}\n`);
    args = r.argv;
  }
  try {
    await program.parseAsync(args);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version arrive here too, with exit code 0.
      return err.exitCode === 1 ? 2 : err.exitCode;
    }
    if (err instanceof HaloError) {
      process.stderr.write(`halo: ${err.message} [${err.code}]\n`);
      return 2;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    process.stderr.write(
      `halo: internal error: ${e.message} (this is a bug in halo; please report it${process.env.HALO_DEBUG ? '' : ', with the stack trace HALO_DEBUG=1 prints'})\n`,
    );
    if (process.env.HALO_DEBUG) process.stderr.write(`${e.stack ?? ''}\n`);
    return INTERNAL_ERROR_EXIT;
  }
}

/**
 * Makes the process end quietly when whoever reads its standard output has gone (`halo volume
 * --help | head`): writing to a pipe nobody reads fails with EPIPE, which Node reports as an
 * 'error' event on the stream and, unhandled, as a stack trace. A C program would die of SIGPIPE
 * here (Node ignores that signal); halo exits likewise at once, but quietly and with the exit
 * code its command set so far, 0 if none (help and version output). Other write errors stay
 * fatal. Only stdout: `halo daemon` runs in this process and logs to stderr, and a daemon must
 * not stop because its log reader went away (src/daemon/run.ts drops its lines instead).
 * For the entry points only (bin/halo.js and this file run directly): it may end the process.
 */
export function exitQuietlyWhenReaderGone(
  proc: {
    readonly stdout: { on(event: 'error', listener: (err: NodeJS.ErrnoException) => void): unknown };
    readonly exitCode?: number | string | undefined;
    exit(code: number): void;
  } = process,
): void {
  proc.stdout.on('error', (err) => {
    if (err.code !== 'EPIPE') throw err;
    proc.exit(typeof proc.exitCode === 'number' ? proc.exitCode : 0);
  });
}

/**
 * Run from source (`node --import tsx src/cli/main.ts …`) this file is the entry point and runs
 * the CLI; imported (by bin/halo.js or a test) it only exports.
 */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  return script !== undefined && resolve(script) === fileURLToPath(import.meta.url);
}

if (isEntryPoint()) {
  exitQuietlyWhenReaderGone();
  // run() catches everything it can; a rejection here would be a bug in the handler itself.
  run(process.argv).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`halo: internal error: ${String(err)}\n`);
      process.exitCode = INTERNAL_ERROR_EXIT;
    },
  );
}
