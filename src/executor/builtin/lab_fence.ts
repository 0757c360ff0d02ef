import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { abortDeadNodeFuse } from '../../lib/fuse.ts';
import { OCF_RC } from '../rc.ts';
import { describeFailure, helper } from './exec.ts';
import { type BuiltinAgent, type BuiltinContext, type BuiltinOutcome, standardActions } from './types.ts';

/**
 * `halo:lab-fence`: a fence device for `halo lab` nodes, which are network namespaces. "Power
 * off" kills every process inside the node's namespace (`ip netns pids`) and takes its links
 * down, so the node can neither run nor talk; "on" brings the links back (the node's daemon is
 * restarted by the lab, as a rebooted machine would start it). Status: on when every link is up.
 *
 * The target node comes as `port`/`plug`/`nodename` (as fence agents get it); its namespace is
 * found in `netns_map` (`node=ns,…`) or as `netns_prefix` + node name (createLabNet names
 * namespaces `h<tag>-<node>`).
 */

/** Kill rounds: processes may fork while we kill; a node still busy after this many is an error. */
const MAX_KILL_ROUNDS = 20;
/** Pause between kill rounds, so a process that is forking has its children listed next round. */
const KILL_ROUND_PAUSE_MS = 20;

function namespaceOf(ctx: BuiltinContext, node: string): string | undefined {
  for (const item of (ctx.params.netns_map ?? '').split(/[,;\s]+/)) {
    const [n, ns] = item.split('=');
    if (n === node && ns) return ns;
  }
  if (ctx.params.netns_prefix) return `${ctx.params.netns_prefix}${node}`;
  return undefined;
}

async function links(ctx: BuiltinContext, ns: string): Promise<{ name: string; up: boolean }[] | string> {
  const argv = ['ip', '-n', ns, '-o', 'link', 'show'];
  const r = await helper(argv, { signal: ctx.signal });
  if (r.exitCode !== 0) return describeFailure(argv, r);
  const out: { name: string; up: boolean }[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\d+:\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>/.exec(line);
    if (m && m[1] !== 'lo') out.push({ name: m[1]!, up: m[2]!.split(',').includes('UP') });
  }
  return out;
}

async function setLinks(ctx: BuiltinContext, ns: string, state: 'up' | 'down'): Promise<string | undefined> {
  const ls = await links(ctx, ns);
  if (typeof ls === 'string') return ls;
  for (const l of ls) {
    const argv = ['ip', '-n', ns, 'link', 'set', l.name, state];
    const r = await helper(argv, { signal: ctx.signal });
    if (r.exitCode !== 0) return describeFailure(argv, r);
  }
  return undefined;
}

async function killAll(ctx: BuiltinContext, ns: string): Promise<number | string> {
  let killed = 0;
  for (let round = 0; round < MAX_KILL_ROUNDS; round++) {
    const r = await helper(['ip', 'netns', 'pids', ns], { signal: ctx.signal });
    if (r.exitCode !== 0) return describeFailure(['ip', 'netns', 'pids', ns], r);
    const pids = r.stdout
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
      .filter((p) => p > 1 && p !== process.pid);
    if (pids.length === 0) return killed;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // Exited meanwhile.
      }
    }
    await sleep(KILL_ROUND_PAUSE_MS);
  }
  return `processes in ${ns} keep appearing after ${MAX_KILL_ROUNDS} kill rounds`;
}

async function fenceAction(ctx: BuiltinContext, action: string, node: string): Promise<BuiltinOutcome> {
  const ns = namespaceOf(ctx, node);
  const fail = (why: string): BuiltinOutcome => ({
    rc: OCF_RC.OCF_ERR_GENERIC,
    exitReason: `halo:lab-fence ${action} ${node}: ${why}`,
  });
  if (!ns) return fail(`node is not in netns_map and no netns_prefix is set`);
  switch (action) {
    case 'off': {
      // Fail the node's nbdfuse I/O, then kill, as a power cut would: the dying processes'
      // sockets close, so peers (a volume engine's replication link) learn at once instead of
      // after their own timeouts. Without the abort, an nbdfuse killed with an ext4 on its own
      // FUSE file still mounted hangs in its exit for good (see abortDeadNodeFuse).
      abortDeadNodeFuse(ns);
      const killed = await killAll(ctx, ns);
      if (typeof killed === 'string') return fail(killed);
      const down = await setLinks(ctx, ns, 'down');
      if (down) return fail(down);
      return {
        rc: OCF_RC.OCF_SUCCESS,
        stdout: `Success: Powered OFF (${ns}: killed ${killed} processes, links down)\n`,
      };
    }
    case 'on': {
      const up = await setLinks(ctx, ns, 'up');
      return up ? fail(up) : { rc: OCF_RC.OCF_SUCCESS, stdout: `Success: Powered ON (${ns}: links up)\n` };
    }
    case 'reboot': {
      const off = await fenceAction(ctx, 'off', node);
      return off.rc === 0 ? fenceAction(ctx, 'on', node) : off;
    }
    case 'status': {
      const ls = await links(ctx, ns);
      if (typeof ls === 'string') return fail(ls);
      const on = ls.length > 0 && ls.every((l) => l.up);
      return {
        rc: on ? OCF_RC.OCF_SUCCESS : OCF_RC.OCF_NOT_RUNNING,
        stdout: `Status: ${on ? 'ON' : 'OFF'}\n`,
      };
    }
    default:
      return { rc: OCF_RC.OCF_ERR_UNIMPLEMENTED, exitReason: `halo:lab-fence has no action '${action}'` };
  }
}

async function list(ctx: BuiltinContext): Promise<BuiltinOutcome> {
  const nodes = new Set<string>();
  for (const item of (ctx.params.netns_map ?? '').split(/[,;\s]+/)) {
    const [n, ns] = item.split('=');
    if (n && ns) nodes.add(n);
  }
  const prefix = ctx.params.netns_prefix;
  if (prefix) {
    const r = await helper(['ip', 'netns', 'list'], { signal: ctx.signal });
    for (const line of r.stdout.split('\n')) {
      const ns = line.split(' ')[0] ?? '';
      // `PREFIX-sw` is the lab's switch namespace (createLabNet), not a node.
      if (ns.startsWith(prefix) && ns.length > prefix.length && ns.slice(prefix.length) !== 'sw')
        nodes.add(ns.slice(prefix.length));
    }
  }
  return {
    rc: OCF_RC.OCF_SUCCESS,
    stdout: [...nodes]
      .sort()
      .map((n) => `${n},\n`)
      .join(''),
  };
}

export function labFenceAgent(): BuiltinAgent {
  return {
    type: 'lab-fence',
    fence: true,
    metadata: {
      name: 'lab-fence',
      version: '1.0',
      shortdesc: 'Fence device for halo lab nodes (network namespaces)',
      longdesc:
        'off kills every process in the node namespace and takes its links down; on brings the links back up.',
      parameters: [
        {
          name: 'netns_map',
          required: false,
          unique: false,
          type: 'string',
          shortdesc: 'node=namespace pairs, comma separated',
          longdesc: '',
        },
        {
          name: 'netns_prefix',
          required: false,
          unique: false,
          type: 'string',
          shortdesc: 'Namespace name = prefix + node name',
          longdesc: '',
        },
        {
          name: 'port',
          required: false,
          unique: false,
          type: 'string',
          shortdesc: 'Node to act on',
          longdesc: '',
        },
      ],
      actions: [
        ...standardActions(),
        { name: 'off', timeout: '20s' },
        { name: 'on', timeout: '20s' },
        { name: 'reboot', timeout: '20s' },
        { name: 'status', timeout: '20s' },
        { name: 'list', timeout: '20s' },
      ],
    },
    async run(ctx) {
      const node = ctx.params.port || ctx.params.plug || ctx.params.nodename || '';
      switch (ctx.action) {
        case 'start':
        case 'monitor':
        case 'validate-all': {
          if (!ctx.params.netns_map && !ctx.params.netns_prefix)
            return {
              rc: OCF_RC.OCF_ERR_CONFIGURED,
              exitReason: `halo:lab-fence ${ctx.resource}: set netns_map or netns_prefix`,
            };
          // The device is "running" only where the cluster started it, like a stonith resource
          // in Pacemaker; answering 0 everywhere made every probe see it active on all nodes.
          if (ctx.action === 'start') {
            mkdirSync(ctx.stateDir, { recursive: true });
            writeFileSync(activeFile(ctx), `${ctx.resource}\n`);
          }
          if (ctx.action === 'monitor' && !existsSync(activeFile(ctx))) return { rc: OCF_RC.OCF_NOT_RUNNING };
          return { rc: OCF_RC.OCF_SUCCESS };
        }
        case 'stop':
          rmSync(activeFile(ctx), { force: true });
          return { rc: OCF_RC.OCF_SUCCESS };
        case 'list':
          return list(ctx);
        case 'off':
        case 'on':
        case 'reboot':
        case 'status':
          if (!node)
            return {
              rc: OCF_RC.OCF_ERR_ARGS,
              exitReason: `halo:lab-fence ${ctx.action}: no target node (port=NODE)`,
            };
          return fenceAction(ctx, ctx.action, node);
        default:
          return {
            rc: OCF_RC.OCF_ERR_UNIMPLEMENTED,
            exitReason: `halo:lab-fence has no action '${ctx.action}'`,
          };
      }
    },
  };
}

/** Marker that this node runs the device (the executor's per-node state dir, HA_RSCTMP). */
function activeFile(ctx: BuiltinContext): string {
  return join(ctx.stateDir, `halo-lab-fence-${ctx.resource}.active`);
}
