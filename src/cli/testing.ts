/**
 * For tests: runs `halo ARGS` in this process with only some command families registered,
 * capturing what they write through the `Io` they are given (never by replacing process.stdout,
 * which the test reporter writes to) and the exit code as `cli/main.ts` maps it (commander's
 * usage errors exit 2).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { repoRoot } from '../lib/repo_root.ts';

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

/**
 * Seed 003's configuration (fs_drbd on /dev/drbd0, tied to nothing) plus a second replicated
 * resource `other` on /dev/drbd1, and a drbd.conf defining both, written into `dir`: a case where
 * only drbd.conf tells which ms holds the mounted device.
 */
export function writeSeed003TwoVolumes(dir: string): { crm: string; drbd: string } {
  const fixtures = join(repoRoot(), 'src/cib/fixtures');
  const crm = join(dir, 'two-ms.crm');
  writeFileSync(
    crm,
    `${readFileSync(join(fixtures, 'seed003.crm'), 'utf8')}primitive p_other ocf:linbit:drbd params drbd_resource=other\nms ms_aaa_other p_other\n`,
  );
  const drbd = join(dir, 'two-ms-drbd.conf');
  writeFileSync(
    drbd,
    `${readFileSync(join(fixtures, 'seed003-drbd.conf'), 'utf8')}
resource other {
  on thelibrary-node1 { device /dev/drbd1; disk /dev/xvda4; address 192.168.42.43:7789; meta-disk internal; }
  on sqlsrv-node1 { device /dev/drbd1; disk /dev/xvda4; address 192.168.42.44:7789; meta-disk internal; }
}
`,
  );
  return { crm, drbd };
}
