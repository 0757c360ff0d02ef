/**
 * Whether a program is installed, for tests that need real tools (nbdfuse, mkfs.ext4, losetup)
 * and skip with a reason when a machine lacks them.
 *
 * Not exported from `mod.ts`: it runs a process, and pure cores import `lib/mod.ts`.
 */
import { execFileSync } from 'node:child_process';

/** True when `which NAME` finds `name` on PATH. */
export function commandOnPath(name: string): boolean {
  try {
    execFileSync('which', [name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
