import { type ProcessOutcome, runProcess } from '../process.ts';

/** Default time for one helper command (ip, arping, ping) a built-in runs. */
export const HELPER_TIMEOUT_MS = 10_000;

export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Runs a helper command for a built-in agent, in the agent's namespace, bounded and abortable.
 * iproute2 commands use `ip -n NS`, which switches namespace inside `ip` itself and skips the
 * mount-namespace setup `ip netns exec` does (about half the cost of the fork).
 */
export function helper(
  argv: readonly string[],
  opts: {
    netns?: string | undefined;
    signal?: AbortSignal | undefined;
    timeoutMs?: number;
    stdin?: string;
  } = {},
): Promise<ProcessOutcome> {
  const viaIp = opts.netns !== undefined && argv[0] === 'ip' && argv[1] !== 'netns';
  return runProcess({
    argv: viaIp ? ['ip', '-n', opts.netns!, ...argv.slice(1)] : argv,
    env: { PATH: SYSTEM_PATH, LC_ALL: 'C' },
    timeoutMs: opts.timeoutMs ?? HELPER_TIMEOUT_MS,
    killGraceMs: 500,
    ...(opts.netns !== undefined && !viaIp ? { netns: opts.netns } : {}),
    ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
    ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
  });
}

/** One line saying how a helper failed, for exit reasons. */
export function describeFailure(argv: readonly string[], r: ProcessOutcome): string {
  if (r.spawnError) return `${argv[0]}: ${r.spawnError.message}`;
  if (r.timedOut) return `${argv.join(' ')} timed out`;
  const msg = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-1)[0] ?? '';
  return `${argv.join(' ')} exited ${r.exitCode ?? r.signal}: ${msg}`;
}
