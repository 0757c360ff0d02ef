import { type Command, InvalidArgumentError, Option } from 'commander';
import { parseDuration } from '../cib/duration.ts';
import { AGENT_CLASSES, parseAgentSpec } from '../executor/agent_spec.ts';
import { FENCE_ACTIONS, type FenceAction, Fencer } from '../executor/fence.ts';
import { type AgentMetadata, actionTimeout, validateParams } from '../executor/metadata.ts';
import { rcName, rcText } from '../executor/rc.ts';
import { ShellAgentRunner } from '../executor/runner.ts';
import { HaloError } from '../lib/errors.ts';
import { example } from './help.ts';

/**
 * `halo agent …` and `halo fence …`: inspect and run resource and fence agents by hand, the way
 * `crm_resource --force-start` and `stonith_admin` do. `agent run` exits with the agent's OCF rc,
 * so scripts can branch on it.
 *
 *   halo agent list [CLASS[:PROVIDER]]
 *   halo agent info AGENT
 *   halo agent run AGENT ACTION [--param k=v]… [--meta k=v]… [--timeout 20s] [--netns NS]
 *   halo fence list
 *   halo fence run DEVICE ACTION [NODE] [--agent AGENT] [--param k=v]…
 *     DEVICE names the device; its agent is --agent (default: DEVICE itself, e.g. fence_ipmilan)
 *     and its parameters are the --param options (as in the CIB: ip=…, pcmk_host_map=…).
 */

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

/** Default operation timeout when neither --timeout nor the agent's meta-data gives one. */
const DEFAULT_OP_TIMEOUT_MS = 20_000;
/** Most --param/--meta options accepted on one command line. */
const MAX_KV_OPTIONS = 256;

/** Commander calls this for each --param/--meta; its errors become "option … is invalid", exit 2. */
function collectKv(value: string, prev: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`'${value}' is not NAME=VALUE (e.g. --param ip=192.0.2.10)`);
  if (Object.keys(prev).length >= MAX_KV_OPTIONS)
    throw new InvalidArgumentError(`more than ${MAX_KV_OPTIONS} NAME=VALUE options`);
  return { ...prev, [value.slice(0, eq)]: value.slice(eq + 1) };
}

function timeoutMs(text: string | undefined, meta: AgentMetadata | undefined, action: string): number {
  const source = text ?? (meta ? actionTimeout(meta, action === 'monitor' ? 'monitor' : action) : undefined);
  if (source === undefined) return DEFAULT_OP_TIMEOUT_MS;
  const d = parseDuration(source);
  if (!d.ok || d.ms <= 0) {
    if (text === undefined) return DEFAULT_OP_TIMEOUT_MS; // an agent's odd default is not the user's error
    throw new HaloError('bad-argument', `--timeout: ${d.ok ? `'${text}' must be more than 0` : d.reason}`);
  }
  return d.ms;
}

const outputOption = (): Option =>
  new Option('--output <format>', 'text or json').choices(['text', 'json']).default('text');

function indent(text: string, prefix: string): string {
  return text
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => `${prefix}${l}\n`)
    .join('');
}

function printInfo(io: CliIo, agent: string, m: AgentMetadata): void {
  io.out(`${agent}: ${m.shortdesc}\n`);
  if (m.longdesc) io.out(`\n${m.longdesc}\n`);
  io.out('\nParameters (* required):\n');
  for (const p of m.parameters) {
    const def = p.default ? ` [${p.default}]` : '';
    io.out(`  ${p.required ? '*' : ' '} ${p.name} (${p.type})${def}: ${p.shortdesc}\n`);
  }
  io.out('\nActions:\n');
  for (const a of m.actions) {
    const extra = [
      a.timeout && `timeout=${a.timeout}`,
      a.interval && `interval=${a.interval}`,
      a.depth && `depth=${a.depth}`,
      a.role && `role=${a.role}`,
    ]
      .filter(Boolean)
      .join(' ');
    io.out(`  ${a.name}${extra ? ` ${extra}` : ''}\n`);
  }
}

/** Registers `agent` and `fence` on the `halo` program. */
export function registerAgentCommands(
  program: Command,
  io: CliIo = processIo,
  runner = new ShellAgentRunner(),
): void {
  const agent = program
    .command('agent')
    .description('inspect and run resource agents (OCF, LSB, systemd, stonith, halo built-ins)');

  example(
    agent
      .command('list')
      .argument('[filter]', 'CLASS or CLASS:PROVIDER, e.g. ocf:heartbeat')
      .addOption(outputOption())
      .description('list installed agents'),
    'halo agent list ocf:heartbeat',
  ).action((filter: string | undefined, opts: { output: string }) => {
    const cls = (filter ?? '').split(':')[0] ?? '';
    if (cls !== '' && !(AGENT_CLASSES as readonly string[]).includes(cls)) {
      io.err(
        `halo agent list: unknown class '${cls}' (expected one of ${AGENT_CLASSES.join(', ')}, e.g. ocf:heartbeat)\n`,
      );
      process.exitCode = 2;
      return;
    }
    const list = runner.list(filter);
    io.out(opts.output === 'json' ? `${JSON.stringify(list)}\n` : list.map((a) => `${a}\n`).join(''));
    if (list.length === 0 && opts.output !== 'json') io.err(`no agents match '${filter ?? ''}'\n`);
  });

  example(
    agent
      .command('info')
      .argument('<agent>', 'e.g. ocf:heartbeat:IPaddr2, lsb:nginx, stonith:fence_ipmilan, halo:vip')
      .addOption(outputOption())
      .description("show an agent's parameters, defaults and actions"),
    'halo agent info ocf:heartbeat:IPaddr2',
  ).action(async (name: string, opts: { output: string }) => {
    try {
      const m = await runner.metadata(name);
      if (opts.output === 'json') io.out(`${JSON.stringify(m, null, 2)}\n`);
      else printInfo(io, name, m);
    } catch (err) {
      io.err(`halo agent info: ${(err as Error).message}\n`);
      process.exitCode = 5;
    }
  });

  example(
    agent.command('run'),
    'halo agent run ocf:heartbeat:IPaddr2 start --param ip=192.0.2.10 --param cidr_netmask=24',
  )
    .argument('<agent>', 'e.g. ocf:heartbeat:Dummy')
    .argument('<action>', 'start, stop, monitor, meta-data, validate-all, promote, demote, …')
    .option('--param <k=v>', 'instance parameter (repeatable)', collectKv, {})
    .option('--meta <k=v>', 'meta attribute, passed as OCF_RESKEY_CRM_meta_* (repeatable)', collectKv, {})
    .option('--timeout <duration>', "operation timeout (default: the agent's, else 20s)")
    .option('--interval <duration>', 'monitor interval to announce to the agent', '0')
    .option('--resource <id>', 'resource id (OCF_RESOURCE_INSTANCE)')
    .option('--netns <ns>', 'run inside this network namespace')
    .addOption(outputOption())
    .description('run one agent action now and exit with its rc (like crm_resource --force-*)')
    .action((name: string, action: string, opts: AgentRunOptions) =>
      agentRun(io, runner, name, action, opts),
    );

  const fence = program.command('fence').description('list and run fence agents');
  example(fence.command('list'), 'halo fence list --output json')
    .addOption(outputOption())
    .description('list installed fence agents (fence-agents and halo built-ins)')
    .action((opts: { output: string }) => {
      const list = [
        ...runner.fenceAgents(),
        ...[...runner.builtins.values()].filter((b) => b.fence).map((b) => `halo:${b.type}`),
      ];
      io.out(opts.output === 'json' ? `${JSON.stringify(list)}\n` : list.map((a) => `${a}\n`).join(''));
    });
  example(
    fence.command('run'),
    'halo fence run fence_ipmilan reboot node2 --param ip=10.0.0.12 --param username=admin --param password=secret',
  )
    .argument('<device>', 'device name; also the agent when --agent is not given (e.g. fence_ipmilan)')
    .argument('<action>', FENCE_ACTIONS.join(', '))
    .argument('[node]', 'target node (passed as port/plug, mapped through pcmk_host_map)')
    .option('--agent <agent>', 'fence agent: fence_x, stonith:fence_x or halo:lab-fence')
    .option(
      '--param <k=v>',
      'device parameter (repeatable), e.g. ip=… username=… pcmk_host_map=…',
      collectKv,
      {},
    )
    .option('--timeout <duration>', 'timeout per attempt (pcmk_<action>_timeout)')
    .description('run a fence action against a node through one device; exits 0 on success')
    .action((device: string, action: string, node: string | undefined, opts: FenceRunOptions) =>
      fenceRun(io, runner, device, action, node, opts),
    );
}

interface AgentRunOptions {
  readonly param: Record<string, string>;
  readonly meta: Record<string, string>;
  readonly timeout?: string;
  readonly interval: string;
  readonly resource?: string;
  readonly netns?: string;
  readonly output: string;
}

/** `halo agent run`: checks parameters against meta-data, runs the action, prints and exits with the rc. */
async function agentRun(
  io: CliIo,
  runner: ShellAgentRunner,
  name: string,
  action: string,
  opts: AgentRunOptions,
) {
  try {
    const spec = parseAgentSpec(name);
    let meta: AgentMetadata | undefined;
    if (action !== 'meta-data') {
      try {
        meta = await runner.metadata(name);
      } catch (err) {
        if ((err as HaloError).code === 'unknown-agent') throw err;
        io.err(`warning: ${(err as Error).message}; running without parameter checks\n`);
      }
      if (meta && !['stop', 'monitor', 'status'].includes(action) && spec.cls !== 'stonith') {
        validateParams(meta, name, opts.param);
      }
    }
    const interval = parseDuration(opts.interval);
    if (!interval.ok) throw new HaloError('bad-argument', `--interval: ${interval.reason}`);
    const resource = opts.resource ?? spec.type.toLowerCase();
    const r = await runner.run({
      agent: name,
      resource,
      action,
      intervalMs: interval.ms,
      timeoutMs: timeoutMs(opts.timeout, meta, action),
      params: opts.param,
      meta: opts.meta,
      ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
    });
    if (opts.output === 'json') {
      const { rc, status, exitReason, stdout, stderr, attributes } = r;
      const execTimeMs = Math.round(r.execTimeMs);
      io.out(
        `${JSON.stringify({ agent: name, resource, action, rc, rcName: rcName(rc), status, execTimeMs, exitReason, stdout, stderr, attributes })}\n`,
      );
    } else if (action === 'meta-data' && r.rc === 0) {
      io.out(r.stdout);
    } else {
      const how = r.status === 'done' ? '' : ` [${r.status}]`;
      io.out(
        `Operation ${action} for ${resource} (${name}) returned: '${rcText(r.rc)}' (${r.rc}, ${rcName(r.rc)})${how}\n`,
      );
      if (r.exitReason) io.out(`  exit-reason: ${r.exitReason}\n`);
      if (r.stdout.trim()) io.out(indent(r.stdout, ' >  stdout: '));
      if (r.stderr.trim()) io.out(indent(r.stderr, ' >  stderr: '));
      for (const [k, v] of Object.entries(r.attributes ?? {}))
        io.out(`  attribute ${k}=${v === '' ? '(delete)' : v}\n`);
    }
    process.exitCode = r.rc;
  } catch (err) {
    io.err(`halo agent run: ${(err as Error).message}\n`);
    const code = (err as HaloError).code;
    process.exitCode = code === 'missing-parameter' ? 6 : code === 'unknown-agent' ? 5 : 2;
  }
}

interface FenceRunOptions {
  readonly agent?: string;
  readonly param: Record<string, string>;
  readonly timeout?: string;
}

/** `halo fence run`: one device, one action, with the device's retries; exits with the OCF rc. */
async function fenceRun(
  io: CliIo,
  runner: ShellAgentRunner,
  device: string,
  action: string,
  node: string | undefined,
  opts: FenceRunOptions,
) {
  try {
    if (!(FENCE_ACTIONS as readonly string[]).includes(action)) {
      throw new HaloError(
        'bad-argument',
        `'${action}' is not a fence action (expected ${FENCE_ACTIONS.join(', ')})`,
      );
    }
    if (['off', 'on', 'reboot', 'status'].includes(action) && !node) {
      throw new HaloError('bad-argument', `fence ${action} needs a NODE`);
    }
    const params = { ...opts.param, ...(opts.timeout ? { [`pcmk_${action}_timeout`]: opts.timeout } : {}) };
    if ((action === 'off' || action === 'reboot') && (params.pcmk_delay_base || params.pcmk_delay_max))
      io.err(`note: ${device} waits its pcmk_delay_base/pcmk_delay_max before the ${action}\n`);
    const fencer = new Fencer({ runner, devices: [{ id: device, agent: opts.agent ?? device, params }] });
    const attempts = await fencer.runDevice(device, action as FenceAction, node);
    for (const a of attempts) {
      io.out(
        `${a.device}: ${a.action}${node ? ` ${node}` : ''}: rc ${a.rc} (${a.rcName}) [${a.status}] in ${Math.round(a.execTimeMs)} ms${a.delayMs ? `, after waiting ${a.delayMs} ms of pcmk_delay` : ''}\n`,
      );
      if (a.output) io.out(indent(a.output, ' >  '));
    }
    const last = attempts[attempts.length - 1];
    process.exitCode = last && last.status === 'done' ? last.rc : 1;
  } catch (err) {
    io.err(`halo fence run: ${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}
