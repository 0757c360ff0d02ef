import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** How long to retry a busy FUSE unmount before falling back to a lazy one. */
export const FUSE_RELEASE_WAIT_MS = 5000;
const FUSE_RETRY_MS = 50;

/** Whether `dir` is a mount point now (from /proc/self/mounts; octal escapes decoded). */
export function isMountPoint(dir: string): boolean {
  let text: string;
  try {
    text = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return false;
  }
  for (const line of text.split('\n')) {
    const field = line.split(' ')[1];
    if (field === undefined) continue;
    const path = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    if (path === dir) return true;
  }
  return false;
}

/**
 * Unmounts a FUSE mount point (an nbdfuse export). `losetup -d` drops the loop device's
 * reference to the FUSE file asynchronously, so an unmount right after it can fail with EBUSY:
 * retry for up to `waitMs`, then unmount lazily so the mount point is gone from the namespace
 * either way. Returns whether the mount point is gone.
 */
export async function releaseFuseMount(dir: string, waitMs = FUSE_RELEASE_WAIT_MS): Promise<boolean> {
  const deadline = performance.now() + waitMs;
  while (isMountPoint(dir)) {
    try {
      await execFileP('fusermount3', ['-u', dir]);
    } catch {
      if (performance.now() >= deadline) {
        await execFileP('fusermount3', ['-u', '-z', dir]).catch(() => {});
        break;
      }
      await sleep(FUSE_RETRY_MS);
    }
  }
  return !isMountPoint(dir);
}
