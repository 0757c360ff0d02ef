/**
 * Questions about a process by pid, answered from /proc (Linux). Used by the built-in agents to
 * tell whether the process they started still runs, and by tests to check nothing was leaked.
 *
 * Not exported from `mod.ts`: it reads the file system, and pure cores import `lib/mod.ts`.
 */
import { readFileSync } from 'node:fs';

/** The fields of /proc/PID/stat after the command name (state first), or undefined if gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), as text:
 * together with the pid it names one process, even after the pid is reused.
 */
export function processStartTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/** Alive and not a zombie, and (when `startTime` is given) the same process, not a reused pid. */
export function pidAlive(pid: number, startTime?: string): boolean {
  const f = statFields(pid);
  if (f === undefined || f[0] === 'Z' || f[0] === 'X') return false;
  return startTime === undefined || f[19] === startTime;
}
