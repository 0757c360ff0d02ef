/**
 * Replacing a file so that a reader (or a crash) sees either the old contents or the new, never
 * a mix: write a temporary file beside it, fsync, rename over. Used for the cluster key, CIB
 * files edited by `halo configure`, and other small state files.
 *
 * Not exported from `mod.ts`: it writes files, and pure cores import `lib/mod.ts`.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

/**
 * Writes `data` to `path` atomically with permission bits `mode` (the temporary file is created
 * with them, so the content is never readable more widely than asked). On failure the temporary
 * file is removed, `path` is unchanged, and the error is thrown.
 */
export function writeFileAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
