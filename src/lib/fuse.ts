import { execFile, execFileSync } from 'node:child_process';
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
 * The fusectl connection of the FUSE mount an nbdfuse process serves, from its command line
 * (`nbdfuse MOUNTPOINT[/FILE] …`: the first argument that is not an option) and its mountinfo
 * (`0:N` is connection N), or undefined. Only that mount: other FUSE mounts its namespace shows
 * (copies of the host's, another daemon's) are not its to fail. With `under`, only a mount point
 * inside that directory counts. Pure over the two texts.
 */
export function nbdfuseConnection(
  argv: readonly string[],
  mountinfo: string,
  under?: string,
): number | undefined {
  const path = argv.slice(1).find((a) => !a.startsWith('-'));
  if (!path?.startsWith('/')) return undefined;
  const parent = path.slice(0, path.lastIndexOf('/')) || '/';
  let found: number | undefined;
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post?.startsWith('fuse')) continue;
    const f = pre.split(' ');
    const at = unescapeMountPath(f[4] ?? '');
    if (at !== path && at !== parent) continue;
    if (under !== undefined && !at.startsWith(`${under}/`)) continue;
    const m = /^0:(\d+)$/.exec(f[2] ?? '');
    // The last one listed is the one on top (the one a path lookup reaches).
    if (m) found = Number(m[1]);
  }
  return found;
}

/**
 * Where this process can write a FUSE connection's `abort`: the fusectl mount. Inside
 * `ip netns exec` (a lab node's daemon) /sys is a fresh sysfs without it, so it is mounted
 * there (fusectl is one filesystem for the whole kernel; the mount stays in this mount
 * namespace). Undefined when that is not possible.
 */
export function fuseControlDir(dir = FUSE_CONNECTIONS_DIR): string | undefined {
  const mounted = () => {
    try {
      return readFileSync('/proc/self/mounts', 'utf8')
        .split('\n')
        .some((l) => l.split(' ')[1] === dir && l.split(' ')[2] === 'fusectl');
    } catch {
      return false;
    }
  };
  if (mounted()) return dir;
  try {
    execFileSync('mount', ['-t', 'fusectl', 'fusectl', dir], {
      stdio: 'ignore',
      timeout: FUSE_COMMAND_TIMEOUT_MS,
    });
  } catch {
    return undefined;
  }
  return mounted() ? dir : undefined;
}

/**
 * Fails the I/O of the FUSE files that the nbdfuse processes of network namespace `ns` serve,
 * before they are killed (at a lab node's power-off, boot or `down`). Killing an nbdfuse that
 * is the last process of its mount namespace, with an ext4 on a loop device on its own FUSE
 * file still mounted there, deadlocks: its exit unmounts that ext4, whose journal commit
 * waits for I/O only the dying nbdfuse could serve. It stays in D state, its loop device
 * attached and `losetup -l` hanging, until someone aborts the connection. Aborting first is
 * what a power cut does to a kernel. With `under`, only mounts inside that directory.
 * Returns the connections aborted.
 */
export function abortDeadNodeFuse(ns: string, under?: string): number[] {
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
  const conns: number[] = [];
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'nbdfuse') continue;
      if (String(statSync(`/proc/${pid}/ns/net`).ino) !== nsInode) continue;
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const n = nbdfuseConnection(argv, readFileSync(`/proc/${pid}/mountinfo`, 'utf8'), under);
      if (n !== undefined && !conns.includes(n)) conns.push(n);
    } catch {
      // The process exited meanwhile.
    }
  }
  if (conns.length === 0) return [];
  const ctl = fuseControlDir();
  if (ctl === undefined) return [];
  const aborted: number[] = [];
  for (const n of conns) {
    try {
      writeFileSync(`${ctl}/${n}/abort`, '1');
      aborted.push(n);
    } catch {
      // Gone meanwhile.
    }
  }
  return aborted;
}

/** Where the kernel lists block devices; a bound loop device has `loop/backing_file` there. */
export const SYS_BLOCK_DIR = '/sys/block';

/**
 * The loop devices bound to a file, with the file's path as the kernel recorded it (relative
 * to the mount namespace that bound it). Read from sysfs, never by opening the devices: a
 * `losetup -l` opens each one, and one whose backing file sits on a FUSE mount nobody serves
 * any more makes it wait forever.
 */
export function boundLoopDevices(sysBlock = SYS_BLOCK_DIR): { name: string; backFile: string }[] {
  let names: string[] = [];
  try {
    names = readdirSync(sysBlock).filter((n) => /^loop\d+$/.test(n));
  } catch {
    return [];
  }
  const out: { name: string; backFile: string }[] = [];
  for (const n of names) {
    let back: string;
    try {
      back = readFileSync(`${sysBlock}/${n}/loop/backing_file`, 'utf8').trim();
    } catch {
      continue; // Not bound (no loop/ directory), or unbound meanwhile.
    }
    // The kernel appends " (deleted)" when the file was removed after binding.
    out.push({ name: `/dev/${n}`, backFile: back.replace(/ \(deleted\)$/, '') });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
}
