import { spawn } from 'node:child_process';
import { getPriority, setPriority } from 'node:os';

/**
 * Runs one agent process in its own process group and bounds it: on timeout (or abort) the
 * whole group gets SIGTERM, then SIGKILL after a grace period, so the agent's children and
 * grandchildren die with it (a process that left the group with setsid() is a daemon the agent
 * started on purpose and is left alone, as Pacemaker does). Output is captured up to a bound,
 * keeping the end.
 */

/** Output kept per stream while running, in bytes (the newest bytes are kept). */
export const MAX_CAPTURE_BYTES = 256 * 1024;
/** Time between SIGTERM and SIGKILL to a timed-out operation's process group. */
export const KILL_GRACE_MS = 2000;
/** After SIGKILL, longest wait for the group to vanish before reporting regardless. */
export const MAX_REAP_WAIT_MS = 5000;
/** How often to check whether a killed operation's process group is empty. */
const GROUP_POLL_MS = 20;
/** After the agent exits, how long to keep reading output its leftover children still hold open. */
export const OUTPUT_DRAIN_MS = 200;

export interface ProcessSpec {
  /** Program and arguments; the program is run directly (no shell). */
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly stdin?: string;
  readonly timeoutMs: number;
  readonly cwd?: string;
  /** Run inside this network namespace (`ip netns exec NS …`, which execs in place). */
  readonly netns?: string;
  readonly signal?: AbortSignal;
  readonly killGraceMs?: number;
  readonly maxCaptureBytes?: number;
}

export interface ProcessOutcome {
  /** Exit code, or null when killed by a signal or never started. */
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly aborted: boolean;
  readonly stdout: string;
  readonly stderr: string;
  readonly execTimeMs: number;
  /** Set when the program could not be started at all (ENOENT, EACCES …). */
  readonly spawnError?: { readonly code: string; readonly message: string };
  readonly pid?: number;
}

class Capture {
  private chunks: Buffer[] = [];
  private bytes = 0;
  dropped = 0;
  constructor(private readonly max: number) {}
  push(b: Buffer): void {
    this.chunks.push(b);
    this.bytes += b.length;
    if (this.bytes > this.max * 2) this.compact();
  }
  private compact(): void {
    const all = Buffer.concat(this.chunks);
    const keep = all.subarray(Math.max(0, all.length - this.max));
    this.dropped += all.length - keep.length;
    this.chunks = [Buffer.from(keep)];
    this.bytes = keep.length;
  }
  text(): string {
    this.compact();
    const body = Buffer.concat(this.chunks).toString('utf8');
    return this.dropped > 0 ? `[… ${this.dropped} bytes dropped]\n${body}` : body;
  }
}

function killGroup(pid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, sig);
    return true;
  } catch {
    return false; // ESRCH: the group is already empty.
  }
}

export function runProcess(spec: ProcessSpec): Promise<ProcessOutcome> {
  const argv = spec.netns ? ['ip', 'netns', 'exec', spec.netns, ...spec.argv] : [...spec.argv];
  const max = spec.maxCaptureBytes ?? MAX_CAPTURE_BYTES;
  const grace = spec.killGraceMs ?? KILL_GRACE_MS;
  const t0 = performance.now();
  return new Promise((resolve) => {
    const out = new Capture(max);
    const err = new Capture(max);
    let timedOut = false;
    let aborted = false;
    let settled = false;
    let exit: { code: number | null; signal: string | null } | undefined;
    const timers: NodeJS.Timeout[] = [];
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...spec.env },
      cwd: spec.cwd,
      detached: true, // own process group: setpgid(0, 0) in the child
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    resetInheritedPriority(child.pid);
    const finish = (spawnError?: { code: string; message: string }): void => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      spec.signal?.removeEventListener('abort', onAbort);
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve({
        exitCode: exit?.code ?? null,
        signal: exit?.signal ?? null,
        timedOut,
        aborted,
        stdout: out.text(),
        stderr: err.text(),
        execTimeMs: performance.now() - t0,
        ...(spawnError ? { spawnError } : {}),
        ...(child.pid !== undefined ? { pid: child.pid } : {}),
      });
    };
    const terminate = (): void => {
      const pid = child.pid;
      if (pid === undefined) return;
      killGroup(pid, 'SIGTERM');
      // SIGKILL the group after the grace even if the leader already exited: its children may
      // have ignored SIGTERM.
      timers.push(setTimeout(() => killGroup(pid, 'SIGKILL'), grace));
      // A process stuck in the kernel (D state) ignores even SIGKILL; report anyway.
      timers.push(setTimeout(() => finish(), grace + MAX_REAP_WAIT_MS));
    };
    const onAbort = (): void => {
      aborted = true;
      terminate();
    };
    child.on('error', (e: NodeJS.ErrnoException) => {
      finish({ code: e.code ?? 'spawn-failed', message: e.message });
    });
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.stdin!.on('error', () => {
      // The agent closed stdin without reading it all; that is its business.
    });
    child.stdin!.end(spec.stdin ?? '');
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      if (timedOut || aborted) {
        // Report only once the whole group is gone (SIGTERM obeyed, or after the SIGKILL
        // sweep), so no descendant outlives the result.
        const pid = child.pid!;
        const waitEmpty = (): void => {
          if (!killGroup(pid, 0)) finish();
          else timers.push(setTimeout(waitEmpty, GROUP_POLL_MS));
        };
        waitEmpty();
      } else {
        timers.push(setTimeout(() => finish(), OUTPUT_DRAIN_MS));
      }
    });
    child.on('close', () => {
      if (!timedOut && !aborted) finish();
    });
    if (spec.signal?.aborted) onAbort();
    else spec.signal?.addEventListener('abort', onAbort, { once: true });
    timers.push(
      setTimeout(() => {
        if (exit !== undefined) return;
        timedOut = true;
        terminate();
      }, spec.timeoutMs),
    );
  });
}

/**
 * `halo daemon` runs at a raised priority (src/daemon/run.ts) so heartbeats keep their cadence
 * under load. Agents, and the services they start, must not inherit that: put a child with a
 * negative nice value back to 0 as soon as it exists. Best effort: the child may already be gone.
 */
function resetInheritedPriority(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    if (getPriority(pid) < 0) setPriority(pid, 0);
  } catch {
    // The child exited already, or we may not change it; either way it runs no service.
  }
}
