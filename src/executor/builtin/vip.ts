import { isIP } from 'node:net';
import { OCF_RC } from '../rc.ts';
import { describeFailure, helper } from './exec.ts';
import { type BuiltinAgent, type BuiltinContext, type BuiltinOutcome, standardActions } from './types.ts';

/**
 * `halo:vip`: a floating IP address (like ocf:heartbeat:IPaddr2). Start adds the address and
 * announces it with gratuitous ARP (iputils `arping -U`) so neighbours update their caches at
 * once; the announcements go out in the background so start returns as soon as the address is
 * configured. Monitor checks the address is on the device.
 */

/** Gratuitous ARP packets sent after start (IPaddr2's arp_count default is 5). */
export const VIP_ARP_COUNT_DEFAULT = 3;
/** Longest a background announcement may run. */
const ARP_DEADLINE_S = 10;

interface VipParams {
  readonly ip: string;
  readonly prefix?: number;
  readonly nic?: string;
  readonly label?: string;
  readonly arpCount: number;
}

function parseParams(ctx: BuiltinContext): VipParams | BuiltinOutcome {
  const ip = ctx.params.ip ?? '';
  if (isIP(ip) === 0) {
    return {
      rc: OCF_RC.OCF_ERR_CONFIGURED,
      exitReason: `halo:vip ${ctx.resource}: parameter 'ip' must be an IPv4 or IPv6 address, got '${ip}'`,
    };
  }
  const max = isIP(ip) === 4 ? 32 : 128;
  const maskText = ctx.params.cidr_netmask;
  let prefix: number | undefined;
  if (maskText !== undefined && maskText !== '') {
    prefix = Number(maskText);
    if (!Number.isInteger(prefix) || prefix < 1 || prefix > max) {
      return {
        rc: OCF_RC.OCF_ERR_CONFIGURED,
        exitReason: `halo:vip ${ctx.resource}: cidr_netmask must be 1..${max}, got '${maskText}'`,
      };
    }
  }
  const arpCount = Number(ctx.params.arp_count ?? VIP_ARP_COUNT_DEFAULT);
  if (!Number.isInteger(arpCount) || arpCount < 0 || arpCount > 100) {
    return {
      rc: OCF_RC.OCF_ERR_CONFIGURED,
      exitReason: `halo:vip ${ctx.resource}: arp_count must be 0..100`,
    };
  }
  const nic = ctx.params.nic;
  if (nic !== undefined && !/^[A-Za-z0-9_.@:-]{1,15}$/.test(nic)) {
    return {
      rc: OCF_RC.OCF_ERR_CONFIGURED,
      exitReason: `halo:vip ${ctx.resource}: nic '${nic}' is not an interface name`,
    };
  }
  return {
    ip,
    arpCount,
    ...(prefix !== undefined ? { prefix } : {}),
    ...(nic ? { nic } : {}),
    ...(ctx.params.label ? { label: ctx.params.label } : {}),
  };
}

/** The device and prefix the address belongs on: the connected route that contains it. */
async function findInterface(
  ctx: BuiltinContext,
  p: VipParams,
): Promise<{ nic: string; prefix: number } | string> {
  const fam = isIP(p.ip) === 4 ? '-4' : '-6';
  const argv = ['ip', fam, '-o', 'route', 'show', 'scope', 'link', ...(p.nic ? ['dev', p.nic] : [])];
  const r = await helper(argv, ctx);
  if (r.exitCode !== 0) return describeFailure(argv, r);
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S+)\/(\d+)\s.*?(?:dev\s+(\S+))?/.exec(line);
    if (!m) continue;
    const dev = p.nic ?? /dev\s+(\S+)/.exec(line)?.[1];
    if (dev && contains(m[1]!, Number(m[2]), p.ip)) return { nic: dev, prefix: p.prefix ?? Number(m[2]) };
  }
  if (p.nic) return { nic: p.nic, prefix: p.prefix ?? (isIP(p.ip) === 4 ? 32 : 128) };
  return `no interface has a route to ${p.ip}; set the 'nic' parameter`;
}

/** Whether IPv4 `ip` lies in `net/prefix` (IPv6: compared textually by the kernel later). */
function contains(net: string, prefix: number, ip: string): boolean {
  if (isIP(net) !== 4 || isIP(ip) !== 4) return false;
  const toInt = (a: string): number => a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - prefix);
  return Math.floor(toInt(net) / size) === Math.floor(toInt(ip) / size);
}

async function isPresent(ctx: BuiltinContext, ip: string): Promise<boolean | string> {
  const argv = ['ip', '-o', 'addr', 'show', 'to', ip];
  const r = await helper(argv, ctx);
  if (r.exitCode !== 0) return describeFailure(argv, r);
  return r.stdout.split('\n').some((l) => l.includes(` ${ip}/`));
}

async function start(ctx: BuiltinContext, p: VipParams): Promise<BuiltinOutcome> {
  // With nic and cidr_netmask given, start is a single `ip addr add` (the hot path).
  const where =
    p.nic !== undefined && p.prefix !== undefined
      ? { nic: p.nic, prefix: p.prefix }
      : await findInterface(ctx, p);
  if (typeof where === 'string')
    return { rc: OCF_RC.OCF_ERR_CONFIGURED, exitReason: `halo:vip ${ctx.resource}: ${where}` };
  const argv = [
    'ip',
    'addr',
    'add',
    `${p.ip}/${where.prefix}`,
    'dev',
    where.nic,
    ...(p.label ? ['label', p.label] : []),
  ];
  const r = await helper(argv, ctx);
  if (r.exitCode !== 0) {
    // EEXIST: the address is already there (a repeated start), which is success if it is ours.
    if (/File exists|already assigned/.test(r.stderr) && (await isPresent(ctx, p.ip)) === true) {
      return { rc: OCF_RC.OCF_SUCCESS, stdout: `${p.ip} already configured\n` };
    }
    return { rc: OCF_RC.OCF_ERR_GENERIC, exitReason: describeFailure(argv, r) };
  }
  if (p.arpCount > 0 && isIP(p.ip) === 4) {
    // Announce in the background; neighbours that miss it still learn the address on demand.
    const arp = [
      'arping',
      '-U',
      '-q',
      '-c',
      String(p.arpCount),
      '-w',
      String(ARP_DEADLINE_S),
      '-I',
      where.nic,
      p.ip,
    ];
    void helper(arp, { netns: ctx.netns, timeoutMs: ARP_DEADLINE_S * 1000 + 1000 }).catch(() => undefined);
  }
  return { rc: OCF_RC.OCF_SUCCESS, stdout: `added ${p.ip}/${where.prefix} on ${where.nic}\n` };
}

async function stop(ctx: BuiltinContext, p: VipParams): Promise<BuiltinOutcome> {
  const argv = ['ip', '-o', 'addr', 'show', 'to', p.ip];
  const r = await helper(argv, ctx);
  if (r.exitCode !== 0) return { rc: OCF_RC.OCF_ERR_GENERIC, exitReason: describeFailure(argv, r) };
  for (const line of r.stdout.split('\n')) {
    const m = new RegExp(`^\\d+:\\s+(\\S+)\\s+inet6?\\s+(${p.ip.replace(/\./g, '\\.')}/\\d+)`).exec(line);
    if (!m) continue;
    const del = ['ip', 'addr', 'del', m[2]!, 'dev', m[1]!.replace(/@.*$/, '')];
    const d = await helper(del, ctx);
    if (d.exitCode !== 0) return { rc: OCF_RC.OCF_ERR_GENERIC, exitReason: describeFailure(del, d) };
  }
  return { rc: OCF_RC.OCF_SUCCESS };
}

export function vipAgent(): BuiltinAgent {
  return {
    type: 'vip',
    metadata: {
      name: 'vip',
      version: '1.0',
      shortdesc: 'Floating IP address (built-in, like IPaddr2)',
      longdesc:
        'Adds an IP address to a network device on start and announces it with gratuitous ARP; removes it on stop; monitor checks that the address is configured. For IPv4 the device and prefix default to the connected route containing ip; for IPv6 give nic and cidr_netmask.',
      parameters: [
        {
          name: 'ip',
          required: true,
          unique: true,
          type: 'string',
          shortdesc: 'IPv4 or IPv6 address',
          longdesc: 'The address to float.',
        },
        {
          name: 'cidr_netmask',
          required: false,
          unique: false,
          type: 'integer',
          shortdesc: 'Prefix length',
          longdesc: 'Defaults to the prefix of the connected route that contains ip.',
        },
        {
          name: 'nic',
          required: false,
          unique: false,
          type: 'string',
          shortdesc: 'Network device',
          longdesc: 'Defaults to the device of the connected route that contains ip.',
        },
        {
          name: 'label',
          required: false,
          unique: false,
          type: 'string',
          shortdesc: 'Interface label',
          longdesc: 'Label for the address (ip addr ... label).',
        },
        {
          name: 'arp_count',
          required: false,
          unique: false,
          type: 'integer',
          default: String(VIP_ARP_COUNT_DEFAULT),
          shortdesc: 'Gratuitous ARPs to send',
          longdesc: 'Number of unsolicited ARP packets sent after start (0 disables).',
        },
      ],
      actions: standardActions({ start: '20s', stop: '20s', monitor: '10s' }),
    },
    async run(ctx) {
      const p = parseParams(ctx);
      if ('rc' in p) return p;
      switch (ctx.action) {
        case 'start':
          return start(ctx, p);
        case 'stop':
          return stop(ctx, p);
        case 'monitor':
        case 'status': {
          const present = await isPresent(ctx, p.ip);
          if (typeof present === 'string') return { rc: OCF_RC.OCF_ERR_GENERIC, exitReason: present };
          return { rc: present ? OCF_RC.OCF_SUCCESS : OCF_RC.OCF_NOT_RUNNING };
        }
        case 'validate-all':
          return { rc: OCF_RC.OCF_SUCCESS };
        default:
          return { rc: OCF_RC.OCF_ERR_UNIMPLEMENTED, exitReason: `halo:vip has no action '${ctx.action}'` };
      }
    },
  };
}
