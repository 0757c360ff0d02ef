/**
 * Heartbeat v1 `haresources` names resources as `Type::arg1::arg2…` and ran them from
 * /etc/ha.d/resource.d, where IPaddr, Filesystem, MailTo and friends were thin wrappers around
 * the OCF agents. Machines without the heartbeat package have no such wrappers, so this maps the
 * common ones onto the OCF agents (or halo built-ins) directly, with the same argument meaning
 * the wrappers had. Pure.
 */
export interface MappedAgent {
  readonly agent: string;
  readonly params: Readonly<Record<string, string>>;
}

/** Positional arguments `1`, `2`, … of a heartbeat-class request, in order. */
export function positionalArgs(params: Readonly<Record<string, string>>): string[] {
  const args: string[] = [];
  for (let i = 1; params[String(i)] !== undefined; i++) args.push(params[String(i)]!);
  return args;
}

/**
 * The named (non-positional) parameters of a heartbeat-class request. haresources cannot write
 * them, but a CIB can carry them beside `1`, `2`, … (Pacemaker ignores them for this class):
 * `halo import FILE… drbd.conf` adds `config` to `drbddisk` when drbd.conf is not at its default
 * place, and `halo lab` points every path at the lab's own files. They pass through to the
 * mapped agent, where they override what the mapping derived from the positional arguments.
 */
export function namedParams(params: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) if (!/^\d+$/.test(k)) out[k] = v;
  return out;
}

/**
 * The OCF equivalent of a Heartbeat v1 resource script, or undefined when there is none (the
 * script itself, or an LSB script of that name, must then exist). `named` are the request's
 * non-positional parameters (see `namedParams`); they are added to the mapped agent's.
 */
export function heartbeatToOcf(
  type: string,
  args: readonly string[],
  named: Readonly<Record<string, string>> = {},
): MappedAgent | undefined {
  const m = mapHeartbeat(type, args);
  return m && Object.keys(named).length > 0 ? { agent: m.agent, params: { ...m.params, ...named } } : m;
}

function mapHeartbeat(type: string, args: readonly string[]): MappedAgent | undefined {
  const set = (pairs: [string, string | undefined][]): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [k, v] of pairs) if (v !== undefined && v !== '') out[k] = v;
    return out;
  };
  switch (type) {
    case 'IPaddr':
    case 'IPaddr2': {
      // IPaddr::192.0.2.10/24/eth0/192.0.2.255
      const [ip, mask, nic, broadcast] = (args[0] ?? '').split('/');
      return {
        agent: `ocf:heartbeat:${type}`,
        params: set([
          ['ip', ip],
          ['cidr_netmask', mask],
          ['nic', nic],
          ['broadcast', broadcast],
        ]),
      };
    }
    case 'Filesystem':
      // Filesystem::/dev/drbd0::/drbd::ext3[::options]
      return {
        agent: 'ocf:heartbeat:Filesystem',
        params: set([
          ['device', args[0]],
          ['directory', args[1]],
          ['fstype', args[2]],
          ['options', args[3]],
        ]),
      };
    case 'MailTo':
      return {
        agent: 'ocf:heartbeat:MailTo',
        params: set([
          ['email', args[0]],
          ['subject', args[1]],
        ]),
      };
    case 'Delay':
      // Heartbeat's Delay answered status at once; the OCF agent sleeps `mondelay` (30 s) first.
      return {
        agent: 'ocf:heartbeat:Delay',
        params: set([
          ['startdelay', args[0]],
          ['stopdelay', args[1]],
          ['mondelay', '0'],
        ]),
      };
    case 'SendArp': {
      // SendArp::192.0.2.10/eth0
      const [ip, nic] = (args[0] ?? '').split('/');
      return {
        agent: 'ocf:heartbeat:SendArp',
        params: set([
          ['ip', ip],
          ['nic', nic],
        ]),
      };
    }
    case 'drbddisk':
      // drbddisk::r0 made r0 Primary on start and Secondary on stop (the drbd init script kept
      // it up and replicating). halo:volume's drbddisk mode does the same, bringing the engine
      // up first when it is not running; status is "running" only while Primary.
      return {
        agent: 'halo:volume',
        params: set([
          ['drbd_resource', args[0]],
          ['mode', 'drbddisk'],
        ]),
      };
    case 'drbdlinks':
      return { agent: 'halo:links', params: { config: args[0] ?? '/etc/drbdlinks.conf' } };
    default:
      return undefined;
  }
}

/**
 * The built-in that stands in for an OCF agent this machine lacks, or undefined. Only agents
 * halo re-implements are mapped: `ocf:linbit:drbd` (from drbd-utils, absent without kernel DRBD)
 * becomes `halo:volume` with the same parameters (`drbd_resource` keeps its meaning). The caller
 * maps only when the agent file itself is missing, so an installed linbit agent still runs.
 */
export function ocfToBuiltin(
  provider: string,
  type: string,
  params: Readonly<Record<string, string>>,
): MappedAgent | undefined {
  if (provider === 'linbit' && type === 'drbd') return { agent: 'halo:volume', params: { ...params } };
  return undefined;
}
