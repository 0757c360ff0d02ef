/**
 * Entry point for a volume engine started in the background by `halo volume up` (and for
 * tests that run the volume CLI from source). It builds only the `volume` command tree, so a
 * broken or slow-loading part elsewhere in the CLI can never stop a volume from starting; the
 * command line still reads like what a user types (`… volume -c FILE --node N run RES`).
 */
import { Command, CommanderError } from 'commander';
import { registerVolumeCommands } from '../cli/volume_cmd.ts';

const program = new Command('halo').exitOverride();
registerVolumeCommands(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (!(err instanceof CommanderError)) throw err;
  process.exitCode = err.exitCode === 1 ? 2 : err.exitCode;
}
