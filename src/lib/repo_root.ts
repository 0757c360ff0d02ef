/**
 * The repository root: the nearest folder above this file that holds package.json. Tests and
 * benches use it to find fixtures (`src/cib/fixtures`) and caches (`.cache/`) the same way
 * whether they run from `src/` under tsx or compiled from `dist/src/`.
 *
 * Not exported from `mod.ts`: it reads the file system, and pure cores import `lib/mod.ts`.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HaloError } from './errors.ts';

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) {
      throw new HaloError('no-repo-root', `no package.json above ${fileURLToPath(import.meta.url)}`);
    }
    dir = up;
  }
  return dir;
}
