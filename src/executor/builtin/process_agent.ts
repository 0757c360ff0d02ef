import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pidAlive, processStartTime } from '../../lib/pid.ts';
import { OCF_RC } from '../rc.ts';
import { SYSTEM_PATH } from './exec.ts';
import { type BuiltinAgent, type BuiltinContext, type BuiltinOutcome, standardActions } from './types.ts';

/**
 * `halo:process`: runs a command as a supervised service (like ocf:heartbeat:anything). Start
 * spawns it in its own session (so it outlives the operation and can be killed as a group),
 * writes a pidfile and confirms it is alive; monitor checks the pid is alive and still runs the
 * same program; stop sends SIGTERM to its group, then SIGKILL after `stop_grace`.
 */

/** Poll interval while waiting for a process to appear or die. */
const POLL_MS = 25;
/** How long start waits to see the process still alive before reporting success. */
const START_SETTLE_MS = 100;

function pidfileOf(ctx: BuiltinContext): string {
  return ctx.params.pidfile || join(ctx.stateDir, `halo-process-${ctx.resource}.pid`);
}

function readPid(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

function startFileOf(ctx: BuiltinContext): string {
  return join(ctx.stateDir, `halo-process-${ctx.resource}.starttime`);
}

/** The recorded start time of the process this resource started, if any. */
function recordedStart(ctx: BuiltinContext): string | undefined {
  try {
    return readFileSync(startFileOf(ctx), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function running(ctx: BuiltinContext): number | undefined {
  const pid = readPid(pidfileOf(ctx));
  return pid !== undefined && pidAlive(pid, recordedStart(ctx)) ? pid : undefined;
}

function lookupUser(user: string): { uid: number; gid: number } | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === user || f[2] === user) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

function splitArgs(text: string): string[] {
  // Shell-like splitting with single and double quotes; no expansions.
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text))
    out.push(m[1]?.replace(/\\(.)/g, '$1') ?? m[2] ?? m[3]!);
  return out;
}

async function start(ctx: BuiltinContext): Promise<BuiltinOutcome> {
  const binfile = ctx.params.binfile ?? '';
  const pidfile = pidfileOf(ctx);
  const old = running(ctx);
  if (old !== undefined) return { rc: OCF_RC.OCF_SUCCESS, stdout: `already running as pid ${old}\n` };
  if (!binfile.startsWith('/') || !existsSync(binfile)) {
    return {
      rc: OCF_RC.OCF_ERR_INSTALLED,
      exitReason: `halo:process ${ctx.resource}: binfile '${binfile}' must be an absolute path to an existing program`,
    };
  }
  let ids: { uid: number; gid: number } | undefined;
  if (ctx.params.user) {
    ids = lookupUser(ctx.params.user);
    if (!ids)
      return {
        rc: OCF_RC.OCF_ERR_CONFIGURED,
        exitReason: `halo:process ${ctx.resource}: no user '${ctx.params.user}' in /etc/passwd`,
      };
  }
  const cwd = ctx.params.workdir || '/';
  if (!existsSync(cwd) || !statSync(cwd).isDirectory()) {
    return {
      rc: OCF_RC.OCF_ERR_CONFIGURED,
      exitReason: `halo:process ${ctx.resource}: workdir '${cwd}' is not a directory`,
    };
  }
  const out = openSync(ctx.params.logfile || '/dev/null', 'a');
  const err = openSync(ctx.params.errlogfile || ctx.params.logfile || '/dev/null', 'a');
  const args = splitArgs(ctx.params.cmdline_options ?? '');
  const argv = ctx.netns ? ['ip', 'netns', 'exec', ctx.netns, binfile, ...args] : [binfile, ...args];
  try {
    const child = spawn(argv[0]!, argv.slice(1), {
      detached: true, // setsid(): its own session and process group, outliving this operation
      stdio: ['ignore', out, err],
      cwd,
      env: { PATH: SYSTEM_PATH, HOME: cwd, ...(ctx.params.user ? { USER: ctx.params.user } : {}) },
      ...(ids ? { uid: ids.uid, gid: ids.gid } : {}),
    });
    const spawned = await new Promise<number | string>((resolve) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', (e) => resolve(e.message));
    });
    child.unref();
    if (typeof spawned === 'string')
      return { rc: OCF_RC.OCF_ERR_GENERIC, exitReason: `halo:process ${ctx.resource}: ${spawned}` };
    writeFileSync(pidfile, `${spawned}\n`);
    writeFileSync(startFileOf(ctx), `${processStartTime(spawned) ?? ''}\n`);
    await sleep(START_SETTLE_MS);
    if (!pidAlive(spawned)) {
      return {
        rc: OCF_RC.OCF_ERR_GENERIC,
        exitReason: `halo:process ${ctx.resource}: ${binfile} exited right after start (exit ${child.exitCode ?? child.signalCode})`,
      };
    }
    return { rc: OCF_RC.OCF_SUCCESS, stdout: `started ${binfile} as pid ${spawned}\n` };
  } finally {
    closeSync(out);
    closeSync(err);
  }
}

async function stop(ctx: BuiltinContext): Promise<BuiltinOutcome> {
  const pidfile = pidfileOf(ctx);
  const pid = running(ctx);
  if (pid === undefined) {
    rmSync(pidfile, { force: true });
    rmSync(startFileOf(ctx), { force: true });
    return { rc: OCF_RC.OCF_SUCCESS };
  }
  const graceMs = Math.min(Number(ctx.params.stop_grace_ms ?? 5000), Math.max(0, ctx.timeoutMs - 1000));
  const signalAll = (sig: NodeJS.Signals): void => {
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, sig);
      } catch {
        // Already gone, or not a group leader.
      }
    }
  };
  signalAll('SIGTERM');
  const deadline = performance.now() + graceMs;
  while (pidAlive(pid) && performance.now() < deadline && !ctx.signal.aborted) await sleep(POLL_MS);
  if (pidAlive(pid)) {
    signalAll('SIGKILL');
    for (let i = 0; i < 40 && pidAlive(pid); i++) await sleep(POLL_MS);
  }
  if (pidAlive(pid))
    return {
      rc: OCF_RC.OCF_ERR_GENERIC,
      exitReason: `halo:process ${ctx.resource}: pid ${pid} survived SIGKILL`,
    };
  rmSync(pidfile, { force: true });
  rmSync(startFileOf(ctx), { force: true });
  return { rc: OCF_RC.OCF_SUCCESS };
}

export function processAgent(): BuiltinAgent {
  return {
    type: 'process',
    metadata: {
      name: 'process',
      version: '1.0',
      shortdesc: 'Runs and supervises a command (built-in, like ocf:heartbeat:anything)',
      longdesc:
        'Starts binfile with cmdline_options in its own session, tracks it with a pidfile, and stops its whole process group.',
      parameters: [
        {
          name: 'binfile',
          required: true,
          unique: false,
          type: 'string',
          shortdesc: 'Program to run (absolute path)',
          longdesc: '',
        },
        {
          name: 'cmdline_options',
          required: false,
          unique: false,
          type: 'string',
          shortdesc: 'Arguments (quoted like a shell)',
          longdesc: '',
        },
        {
          name: 'pidfile',
          required: false,
          unique: true,
          type: 'string',
          shortdesc: 'Pid file',
          longdesc: 'Defaults to HA_RSCTMP/halo-process-RESOURCE.pid.',
        },
        {
          name: 'user',
          required: false,
          unique: false,
          type: 'string',
          shortdesc: 'User to run as',
          longdesc: '',
        },
        {
          name: 'workdir',
          required: false,
          unique: false,
          type: 'string',
          default: '/',
          shortdesc: 'Working directory',
          longdesc: '',
        },
        {
          name: 'logfile',
          required: false,
          unique: false,
          type: 'string',
          default: '/dev/null',
          shortdesc: 'File for stdout',
          longdesc: '',
        },
        {
          name: 'errlogfile',
          required: false,
          unique: false,
          type: 'string',
          shortdesc: 'File for stderr (defaults to logfile)',
          longdesc: '',
        },
        {
          name: 'stop_grace_ms',
          required: false,
          unique: false,
          type: 'integer',
          default: '5000',
          shortdesc: 'Time between SIGTERM and SIGKILL on stop',
          longdesc: '',
        },
      ],
      actions: standardActions(),
    },
    async run(ctx) {
      switch (ctx.action) {
        case 'start':
          return start(ctx);
        case 'stop':
          return stop(ctx);
        case 'monitor':
        case 'status':
          return { rc: running(ctx) !== undefined ? OCF_RC.OCF_SUCCESS : OCF_RC.OCF_NOT_RUNNING };
        case 'validate-all':
          return ctx.params.binfile && existsSync(ctx.params.binfile)
            ? { rc: OCF_RC.OCF_SUCCESS }
            : {
                rc: OCF_RC.OCF_ERR_INSTALLED,
                exitReason: `halo:process: binfile '${ctx.params.binfile ?? ''}' does not exist`,
              };
        default:
          return {
            rc: OCF_RC.OCF_ERR_UNIMPLEMENTED,
            exitReason: `halo:process has no action '${ctx.action}'`,
          };
      }
    },
  };
}
