import { Command, CommanderError } from 'commander';
import { registerAdminCommands } from './admin_cmd.ts';
import { registerAgentCommands } from './agent_cmd.ts';
import { registerClusterCommands } from './cluster_cmd.ts';
import { registerConfigCommands } from './config_cmd.ts';
import { registerLabCommands } from './lab_cmd.ts';
import { registerSimulateCommands } from './simulate_cmd.ts';
import { registerVolumeCommands } from './volume_cmd.ts';

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
  return program;
}

/** Runs the CLI with `argv` (as process.argv) and returns the exit code. */
export async function run(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version arrive here too, with exit code 0.
      return err.exitCode === 1 ? 2 : err.exitCode;
    }
    throw err;
  }
}
