import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** How long to retry a busy FUSE unmount before aborting the connection and unmounting lazily. */
export const FUSE_RELEASE_WAIT_MS = 5000;
/**
 * Longest wait for one `fusermount3`/`umount` run: on a FUSE mount whose daemon hangs they can
 * block themselves, and the caller (a resource agent's stop) has a timeout of its own.
 */
export const FUSE_COMMAND_TIMEOUT_MS = 2000;
const FUSE_RETRY_MS = 50;
/** Where the kernel lists FUSE connections (the fusectl filesystem), one directory per minor. */
export const FUSE_CONNECTIONS_DIR = '/sys/fs/fuse/connections';

/** Decodes the octal escapes (`\040`) of /proc mount tables. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

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
    if (unescapeMountPath(field) === dir) return true;
  }
  return false;
}

/**
 * The fusectl connection number of the FUSE filesystem mounted on `dir` (the minor of its
 * anonymous device, from /proc/self/mountinfo: never stat()s the mount, which would hang with
 * its daemon), or undefined when `dir` holds no FUSE mount.
 */
export function fuseConnectionOf(dir: string): number | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  let found: number | undefined;
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const f = pre.split(' ');
    if (f[4] === undefined || unescapeMountPath(f[4]) !== dir || !post.startsWith('fuse')) continue;
    const m = /^0:(\d+)$/.exec(f[2] ?? '');
    // The last one listed is the one on top (the one a path lookup reaches).
    if (m) found = Number(m[1]);
  }
  return found;
}

/**
 * Aborts the FUSE connection behind `dir`, as `echo 1 > /sys/fs/fuse/connections/N/abort`
 * does: every request waiting on the daemon fails at once with ENOTCONN. This is how a loop
 * device on an nbdfuse file is freed when nbdfuse died or hangs (its I/O would otherwise wait
 * forever and `losetup -d` or an unmount with it). Returns whether the abort was written.
 */
export function abortFuseConnection(dir: string): boolean {
  const n = fuseConnectionOf(dir);
  if (n === undefined) return false;
  try {
    writeFileSync(`${FUSE_CONNECTIONS_DIR}/${n}/abort`, '1');
    return true;
  } catch {
    // Already gone with its mount, or fusectl is not mounted.
    return false;
  }
}

async function run(cmd: string, args: readonly string[]): Promise<boolean> {
  try {
    await execFileP(cmd, args, { timeout: FUSE_COMMAND_TIMEOUT_MS, killSignal: 'SIGKILL' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Unmounts a FUSE mount point (an nbdfuse export). `losetup -d` drops the loop device's
 * reference to the FUSE file asynchronously, so an unmount right after it can fail with EBUSY:
 * retry for up to `waitMs`, then abort the FUSE connection (so nothing can wait on a dead or
 * hung daemon any more) and unmount lazily, so the mount point is gone from the namespace
 * either way. `daemonGone`: the FUSE daemon is known dead or stuck, so abort first. Every
 * command run is bounded by FUSE_COMMAND_TIMEOUT_MS. Returns whether the mount point is gone.
 */
export async function releaseFuseMount(
  dir: string,
  waitMs = FUSE_RELEASE_WAIT_MS,
  opts: { readonly daemonGone?: boolean } = {},
): Promise<boolean> {
  if (opts.daemonGone) abortFuseConnection(dir);
  const deadline = performance.now() + waitMs;
  while (isMountPoint(dir)) {
    if (await run('fusermount3', ['-u', dir])) continue;
    if (performance.now() >= deadline) {
      abortFuseConnection(dir);
      if (!(await run('fusermount3', ['-u', '-z', dir]))) await run('umount', ['-l', dir]);
      break;
    }
    await sleep(FUSE_RETRY_MS);
  }
  return !isMountPoint(dir);
}

/**
 * The fusectl connection numbers of FUSE mounts under `dir` in process `pid`'s mount namespace
 * (from its mountinfo: `0:N` is connection N). Pure over the mountinfo text.
 */
export function fuseConnectionsIn(mountinfo: string, dir: string): number[] {
  const out: number[] = [];
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post?.startsWith('fuse')) continue;
    const f = pre.split(' ');
    const at = (f[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) =>
      String.fromCharCode(Number.parseInt(o, 8)),
    );
    const m = /^0:(\d+)$/.exec(f[2] ?? '');
    if (m && at.startsWith(`${dir}/`) && !out.includes(Number(m[1]))) out.push(Number(m[1]));
  }
  return out;
}

/**
 * A killed (fenced) lab node's nbdfuse still runs in its namespace; when the lab kills it at boot
 * or `down`, the node's mount namespace goes with it, and unmounting the ext4 there syncs through
 * the loop device into the FUSE file that nobody serves any more: the process hangs in D state
 * and its loop device stays. Aborting its FUSE connections first (what a power-off does to a
 * kernel) makes that I/O fail at once. Only for the node's nbdfuse processes, only for FUSE
 * mounts under the lab dir. Returns the connections aborted.
 */
export function abortDeadNodeFuse(ns: string, dir: string): number[] {
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return [];
  }
  let nsInode: string | undefined;
  try {
    nsInode = String(statSync(`/run/netns/${ns}`).ino);
  } catch {
    return [];
  }
  const aborted: number[] = [];
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'nbdfuse') continue;
      if (String(statSync(`/proc/${pid}/ns/net`).ino) !== nsInode) continue;
      for (const n of fuseConnectionsIn(readFileSync(`/proc/${pid}/mountinfo`, 'utf8'), dir)) {
        try {
          writeFileSync(`${FUSE_CONNECTIONS_DIR}/${n}/abort`, '1');
          aborted.push(n);
        } catch {
          // Gone meanwhile.
        }
      }
    } catch {
      // The process exited meanwhile.
    }
  }
  return aborted;
}
