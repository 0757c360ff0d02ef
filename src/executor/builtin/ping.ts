import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OCF_RC } from '../rc.ts';
import { helper } from './exec.ts';
import { type BuiltinAgent, type BuiltinContext, type BuiltinOutcome, standardActions } from './types.ts';

/**
 * `halo:ping`: connectivity as a node attribute (like ocf:pacemaker:ping). Every monitor pings
 * each host in `host_list` and reports the attribute `name` (default `pingd`) = multiplier ×
 * hosts that answered, in the result's `attributes` for the controller to set. Stop reports
 * the attribute with an empty value, meaning "delete it".
 */

/** Most hosts one resource may ping (each is one `ping` process per monitor). */
export const MAX_PING_HOSTS = 32;

function stateFile(ctx: BuiltinContext): string {
  return join(ctx.stateDir, `halo-ping-${ctx.resource}.active`);
}

interface PingParams {
  readonly hosts: string[];
  readonly name: string;
  readonly multiplier: number;
  readonly attempts: number;
  readonly timeoutS: number;
}

function parseParams(ctx: BuiltinContext): PingParams | BuiltinOutcome {
  const hosts = (ctx.params.host_list ?? '').split(/[\s,]+/).filter(Boolean);
  const bad = (why: string): BuiltinOutcome => ({
    rc: OCF_RC.OCF_ERR_CONFIGURED,
    exitReason: `halo:ping ${ctx.resource}: ${why}`,
  });
  if (hosts.length === 0) return bad(`host_list is empty`);
  if (hosts.length > MAX_PING_HOSTS)
    return bad(`host_list has ${hosts.length} hosts, more than ${MAX_PING_HOSTS}`);
  const badHost = hosts.find((h) => !/^[A-Za-z0-9.:_-]+$/.test(h) || h.startsWith('-'));
  if (badHost) return bad(`'${badHost}' in host_list is not a host name or address`);
  const multiplier = Number(ctx.params.multiplier ?? '1');
  const attempts = Number(ctx.params.attempts ?? '2');
  const timeoutS = Number(ctx.params.timeout ?? '2');
  if (!Number.isFinite(multiplier)) return bad(`multiplier must be a number`);
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 10) return bad(`attempts must be 1..10`);
  if (!Number.isInteger(timeoutS) || timeoutS < 1 || timeoutS > 60)
    return bad(`timeout must be 1..60 seconds`);
  const name = ctx.params.name || 'pingd';
  return { hosts, name, multiplier, attempts, timeoutS };
}

/** Pings every host at once; returns those that answered. */
async function reachable(ctx: BuiltinContext, p: PingParams): Promise<string[]> {
  const results = await Promise.all(
    p.hosts.map(async (h) => {
      const argv = ['ping', '-n', '-q', '-c', String(p.attempts), '-i', '0.2', '-W', String(p.timeoutS), h];
      const r = await helper(argv, { ...ctx, timeoutMs: (p.attempts + p.timeoutS) * 1000 + 1000 });
      return r.exitCode === 0 ? h : undefined;
    }),
  );
  return results.filter((h): h is string => h !== undefined);
}

async function measure(ctx: BuiltinContext, p: PingParams): Promise<BuiltinOutcome> {
  const up = await reachable(ctx, p);
  const value = String(Math.round(up.length * p.multiplier));
  return {
    rc: OCF_RC.OCF_SUCCESS,
    stdout: `${p.name}=${value} (${up.length}/${p.hosts.length} hosts answered: ${up.join(' ') || 'none'})\n`,
    attributes: { [p.name]: value },
  };
}

export function pingAgent(): BuiltinAgent {
  return {
    type: 'ping',
    metadata: {
      name: 'ping',
      version: '1.0',
      shortdesc: 'Connectivity as a node attribute (built-in, like ocf:pacemaker:ping)',
      longdesc:
        'Pings host_list on every monitor and sets the node attribute name = multiplier × reachable hosts.',
      parameters: [
        {
          name: 'host_list',
          required: true,
          unique: false,
          type: 'string',
          shortdesc: 'Hosts to ping (space separated)',
          longdesc: '',
        },
        {
          name: 'name',
          required: false,
          unique: true,
          type: 'string',
          default: 'pingd',
          shortdesc: 'Node attribute name',
          longdesc: '',
        },
        {
          name: 'multiplier',
          required: false,
          unique: false,
          type: 'integer',
          default: '1',
          shortdesc: 'Score per reachable host',
          longdesc: '',
        },
        {
          name: 'attempts',
          required: false,
          unique: false,
          type: 'integer',
          default: '2',
          shortdesc: 'Pings per host',
          longdesc: '',
        },
        {
          name: 'timeout',
          required: false,
          unique: false,
          type: 'integer',
          default: '2',
          shortdesc: 'Seconds to wait for a reply',
          longdesc: '',
        },
      ],
      actions: standardActions({ monitor: '20s' }),
    },
    async run(ctx) {
      const p = parseParams(ctx);
      if ('rc' in p) return p;
      switch (ctx.action) {
        case 'start':
          writeFileSync(stateFile(ctx), 'active\n');
          return measure(ctx, p);
        case 'stop':
          rmSync(stateFile(ctx), { force: true });
          return { rc: OCF_RC.OCF_SUCCESS, attributes: { [p.name]: '' } };
        case 'monitor':
        case 'status':
          if (!existsSync(stateFile(ctx))) return { rc: OCF_RC.OCF_NOT_RUNNING };
          return measure(ctx, p);
        case 'validate-all':
          return { rc: OCF_RC.OCF_SUCCESS };
        default:
          return { rc: OCF_RC.OCF_ERR_UNIMPLEMENTED, exitReason: `halo:ping has no action '${ctx.action}'` };
      }
    },
  };
}
