import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { escapeAttr, escapeText } from '../cib/xml_tree.ts';
import { HaloError } from '../lib/errors.ts';
import { type AgentSpec, formatAgentSpec, parseAgentSpec } from './agent_spec.ts';
import { builtinAgents } from './builtin/mod.ts';
import type { BuiltinAgent } from './builtin/types.ts';
import { heartbeatToOcf, namedParams, ocfToBuiltin, positionalArgs } from './heartbeat_compat.ts';
import { type AgentMetadata, parseMetadata } from './metadata.ts';
import type { RawOpOutcome } from './ops.ts';
import { type ProcessOutcome, runProcess } from './process.ts';
import { fenceToOcf, lsbToOcf, OCF_RC } from './rc.ts';

/**
 * The `AgentRunner` port: runs one action of one agent and reports the outcome. Ordering and
 * concurrency are the caller's (the `OpTable`); a runner may be asked to run operations of
 * different resources at once. A failure to run at all (agent missing, not executable, timeout)
 * is an outcome with an `op-status` other than `done`, never a thrown error.
 */
export interface AgentRunRequest {
  readonly agent: string;
  readonly resource: string;
  readonly action: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly params: Readonly<Record<string, string>>;
  readonly meta?: Readonly<Record<string, string>>;
  /** Run inside this network namespace (overrides the runner's). */
  readonly netns?: string;
  readonly signal?: AbortSignal;
}

export interface AgentRunner {
  run(req: AgentRunRequest): Promise<RawOpOutcome>;
  /** Meta-data of an agent; throws HaloError `unknown-agent`, `agent-failed` or `bad-metadata`. */
  metadata(agent: string): Promise<AgentMetadata>;
  /** Agents installed, as `class:provider:type`, optionally only `class` or `class:provider`. */
  list(filter?: string): string[];
}

export const OCF_ROOT = '/usr/lib/ocf';
export const HA_RSCTMP = '/run/resource-agents';
export const LSB_DIR = '/etc/init.d';
export const HEARTBEAT_DIR = '/etc/ha.d/resource.d';
export const FENCE_DIR = '/usr/sbin';
/** Where `ip netns add` puts named network namespaces. */
const NETNS_DIR = '/run/netns';
/** Meta-data must come back within this long. */
export const METADATA_TIMEOUT_MS = 10_000;
const OCF_ACTIONS = new Set([
  'start',
  'stop',
  'monitor',
  'meta-data',
  'validate-all',
  'promote',
  'demote',
  'notify',
  'reload',
  'reload-agent',
  'migrate_to',
  'migrate_from',
  'status',
]);
/** Parameter and meta names that can become environment variable names. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ShellRunnerOptions {
  readonly ocfRoot?: string;
  readonly lsbDir?: string;
  readonly heartbeatDir?: string;
  readonly fenceDir?: string;
  /** `HA_RSCTMP`, where agents keep state files. */
  readonly stateDir?: string;
  /** Run every operation inside this network namespace (a lab node's executor). */
  readonly netns?: string;
  readonly builtins?: ReadonlyMap<string, BuiltinAgent>;
  /** Whether systemd is PID 1 here (default: `/run/systemd/system` exists, like sd_booted()). */
  readonly systemdRunning?: boolean;
  readonly killGraceMs?: number;
  /** `HA_debug` for agents: 1 makes ocf-shellfuncs trace. */
  readonly debug?: boolean;
}

function notInstalled(reason: string): RawOpOutcome {
  return {
    rc: OCF_RC.OCF_ERR_INSTALLED,
    status: 'notInstalled',
    execTimeMs: 0,
    stdout: '',
    stderr: '',
    exitReason: reason,
  };
}

/** Why an agent file cannot be run, or undefined when it can. */
function checkExecutable(path: string, agent: string): string | undefined {
  if (!existsSync(path)) return `agent ${agent} is not installed: ${path} does not exist`;
  try {
    if (!statSync(path).isFile()) return `agent ${agent}: ${path} is not a regular file`;
    accessSync(path, constants.X_OK);
  } catch {
    return `agent ${agent}: ${path} is not executable (chmod +x ${path})`;
  }
  return undefined;
}

/** First `ocf-exit-reason:` line an agent wrote to stderr (OCF 1.1 exit-reason). */
export function exitReasonOf(stderr: string): string | undefined {
  const m = /^ocf-exit-reason:(.*)$/m.exec(stderr);
  return m ? m[1]!.trim() : undefined;
}

/** Pacemaker passes meta attributes with dashes as underscores (`CRM_meta_notify_type`). */
function metaEnvName(name: string): string {
  return `OCF_RESKEY_CRM_meta_${name.replace(/-/g, '_')}`;
}

export class ShellAgentRunner implements AgentRunner {
  readonly ocfRoot: string;
  readonly lsbDir: string;
  readonly heartbeatDir: string;
  readonly fenceDir: string;
  readonly stateDir: string;
  readonly builtins: ReadonlyMap<string, BuiltinAgent>;
  private readonly opts: ShellRunnerOptions;

  constructor(opts: ShellRunnerOptions = {}) {
    this.opts = opts;
    this.ocfRoot = opts.ocfRoot ?? OCF_ROOT;
    this.lsbDir = opts.lsbDir ?? LSB_DIR;
    this.heartbeatDir = opts.heartbeatDir ?? HEARTBEAT_DIR;
    this.fenceDir = opts.fenceDir ?? FENCE_DIR;
    this.stateDir = opts.stateDir ?? HA_RSCTMP;
    this.builtins = opts.builtins ?? builtinAgents();
  }

  systemdRunning(): boolean {
    return this.opts.systemdRunning ?? existsSync('/run/systemd/system');
  }

  /** The environment an OCF agent sees (OCF 1.1 plus the HA_* variables Debian's agents read). */
  ocfEnv(spec: AgentSpec, req: AgentRunRequest): Record<string, string> {
    const env: Record<string, string> = {
      PATH,
      LC_ALL: 'C',
      OCF_ROOT: this.ocfRoot,
      OCF_FUNCTIONS_DIR: join(this.ocfRoot, 'lib', 'heartbeat'),
      OCF_RA_VERSION_MAJOR: '1',
      OCF_RA_VERSION_MINOR: '1',
      OCF_RESOURCE_INSTANCE: req.resource,
      OCF_RESOURCE_TYPE: spec.type,
      OCF_RESOURCE_PROVIDER: spec.provider ?? '',
      OCF_CHECK_LEVEL: req.params.OCF_CHECK_LEVEL ?? req.meta?.OCF_CHECK_LEVEL ?? '0',
      OCF_TRACE_RA: req.meta?.trace_ra ?? '0',
      HA_RSCTMP: this.stateDir,
      HA_LOGFACILITY: 'daemon',
      HA_LOGTAG: `halo-${req.resource}`,
      HA_debug: this.opts.debug ? '1' : '0',
      PCMK_service: 'halo-executor',
    };
    for (const [k, v] of Object.entries(req.params)) {
      if (k !== 'OCF_CHECK_LEVEL') env[`OCF_RESKEY_${k}`] = v;
    }
    for (const [k, v] of Object.entries(req.meta ?? {})) env[metaEnvName(k)] = v;
    env.OCF_RESKEY_CRM_meta_timeout = String(req.timeoutMs);
    env.OCF_RESKEY_CRM_meta_interval = String(req.intervalMs);
    return env;
  }

  async run(req: AgentRunRequest): Promise<RawOpOutcome> {
    let spec: AgentSpec;
    try {
      spec = parseAgentSpec(req.agent);
    } catch (err) {
      return notInstalled((err as Error).message);
    }
    const netns = req.netns ?? this.opts.netns;
    if (netns !== undefined && !existsSync(join(NETNS_DIR, netns))) {
      return {
        ...notInstalled(
          `${req.agent} ${req.action}: network namespace '${netns}' does not exist (see: ip netns list)`,
        ),
        rc: OCF_RC.OCF_ERR_GENERIC,
        status: 'error',
      };
    }
    switch (spec.cls) {
      case 'ocf':
        return this.runOcf(spec, req);
      case 'lsb':
        return this.runScript(spec, req, join(this.lsbDir, spec.type), 'lsb');
      case 'heartbeat':
        return this.runHeartbeat(spec, req);
      case 'systemd':
        return this.runSystemd(spec, req);
      case 'service':
        return this.runService(spec, req);
      case 'stonith':
        return this.runStonith(spec, req);
      case 'halo':
        return this.runBuiltin(spec, req);
    }
  }

  private process(argv: string[], env: Record<string, string>, req: AgentRunRequest, stdin?: string) {
    const netns = req.netns ?? this.opts.netns;
    return runProcess({
      argv,
      env,
      timeoutMs: req.timeoutMs,
      ...(stdin !== undefined ? { stdin } : {}),
      ...(netns !== undefined ? { netns } : {}),
      ...(req.signal !== undefined ? { signal: req.signal } : {}),
      ...(this.opts.killGraceMs !== undefined ? { killGraceMs: this.opts.killGraceMs } : {}),
    });
  }

  /** Agents keep state files in HA_RSCTMP; if it cannot be made, the agent reports that itself. */
  private ensureStateDir(): void {
    try {
      mkdirSync(this.stateDir, { recursive: true });
    } catch {
      // Not root, or a read-only /run: leave the error to the agent, which names the path.
    }
  }

  private async runOcf(spec: AgentSpec, req: AgentRunRequest): Promise<RawOpOutcome> {
    const path = join(this.ocfRoot, 'resource.d', spec.provider!, spec.type);
    const why = checkExecutable(path, req.agent);
    if (why) {
      // An agent halo re-implements (ocf:linbit:drbd → halo:volume) runs as the built-in.
      const mapped = ocfToBuiltin(spec.provider!, spec.type, req.params);
      if (mapped) return this.run({ ...req, agent: mapped.agent, params: mapped.params });
      return notInstalled(`${why} (see: halo agent list ocf:${spec.provider})`);
    }
    if (!OCF_ACTIONS.has(req.action)) {
      return {
        ...notInstalled(`${req.agent}: '${req.action}' is not an OCF action`),
        rc: OCF_RC.OCF_ERR_UNIMPLEMENTED,
        status: 'notSupported',
      };
    }
    const badName = [...Object.keys(req.params), ...Object.keys(req.meta ?? {})].find(
      (k) => !ENV_NAME.test(k),
    );
    if (badName !== undefined) {
      return {
        ...notInstalled(
          `${req.agent}: parameter name '${badName}' cannot be passed in the environment (use letters, digits, _ . -)`,
        ),
        rc: OCF_RC.OCF_ERR_ARGS,
        status: 'invalid',
      };
    }
    this.ensureStateDir();
    const r = await this.process([path, req.action], this.ocfEnv(spec, req), req);
    return toOutcome(req, r, (rc) => rc);
  }

  private async runScript(
    spec: AgentSpec,
    req: AgentRunRequest,
    path: string,
    kind: 'lsb' | 'heartbeat',
    args: string[] = [],
  ): Promise<RawOpOutcome> {
    const why = checkExecutable(path, formatAgentSpec(spec));
    if (why) return notInstalled(why);
    const action = req.action === 'monitor' ? 'status' : req.action;
    if (!['start', 'stop', 'status', 'restart', 'force-reload', 'reload'].includes(action)) {
      return {
        ...notInstalled(`${req.agent}: ${kind} scripts have no '${req.action}' action`),
        rc: OCF_RC.OCF_ERR_UNIMPLEMENTED,
        status: 'notSupported',
      };
    }
    const env = { PATH, LC_ALL: 'C' };
    const r = await this.process([path, ...args, action], env, req);
    if (kind === 'heartbeat' && action === 'status') {
      // Heartbeat v1 scripts print "running"/"OK" or "stopped" and often exit 0 either way.
      return toOutcome(req, r, (rc) => {
        if (rc !== 0) return lsbToOcf(action, rc);
        return /stopped|not running/i.test(r.stdout) ? OCF_RC.OCF_NOT_RUNNING : OCF_RC.OCF_SUCCESS;
      });
    }
    return toOutcome(req, r, (rc) => lsbToOcf(action, rc));
  }

  /**
   * Heartbeat v1 resources: a script in resource.d wins (as Heartbeat ran it), then halo's
   * mapping of the classic wrappers (IPaddr, Filesystem, drbdlinks …) onto OCF agents, then an
   * LSB script of that name. haresources `drbddisk::r0` arrives as params {1: 'r0'}.
   */
  private runHeartbeat(spec: AgentSpec, req: AgentRunRequest): Promise<RawOpOutcome> {
    const args = positionalArgs(req.params);
    const script = join(this.heartbeatDir, spec.type);
    if (existsSync(script)) return this.runScript(spec, req, script, 'heartbeat', args);
    const mapped = heartbeatToOcf(spec.type, args, namedParams(req.params));
    if (mapped) return this.run({ ...req, agent: mapped.agent, params: mapped.params });
    return this.runScript(spec, req, join(this.lsbDir, spec.type), 'heartbeat', args);
  }

  private async runSystemd(spec: AgentSpec, req: AgentRunRequest): Promise<RawOpOutcome> {
    if (!this.systemdRunning()) {
      return notInstalled(
        `${req.agent}: systemd is not running on this machine (/run/systemd/system is missing); use an lsb: or ocf: agent instead`,
      );
    }
    const unit = /\.(service|socket|target|mount|timer)$/.test(spec.type)
      ? spec.type
      : `${spec.type}.service`;
    const env = { PATH, LC_ALL: 'C' };
    switch (req.action) {
      case 'start':
      case 'stop':
      case 'reload':
      case 'restart':
        return toOutcome(req, await this.process(['systemctl', req.action, unit], env, req), (rc) =>
          rc === 0 ? 0 : 1,
        );
      case 'monitor':
      case 'status': {
        const r = await this.process(['systemctl', 'is-active', '--quiet', unit], env, req);
        return toOutcome(req, r, (rc) => (rc === 0 ? OCF_RC.OCF_SUCCESS : OCF_RC.OCF_NOT_RUNNING));
      }
      default:
        return {
          ...notInstalled(`${req.agent}: systemd units have no '${req.action}' action`),
          rc: OCF_RC.OCF_ERR_UNIMPLEMENTED,
          status: 'notSupported',
        };
    }
  }

  private runService(spec: AgentSpec, req: AgentRunRequest): Promise<RawOpOutcome> {
    if (existsSync(join(this.lsbDir, spec.type))) {
      return this.runScript({ cls: 'lsb', type: spec.type }, req, join(this.lsbDir, spec.type), 'lsb');
    }
    if (this.systemdRunning()) return this.runSystemd({ cls: 'systemd', type: spec.type }, req);
    return Promise.resolve(
      notInstalled(`${req.agent}: no LSB script ${join(this.lsbDir, spec.type)} and systemd is not running`),
    );
  }

  /**
   * Fence agents read `key=value` lines on stdin. As a resource (`start`/`monitor`) a device
   * is checked with `monitor`; `stop` only unregisters it, so nothing runs.
   */
  private async runStonith(spec: AgentSpec, req: AgentRunRequest): Promise<RawOpOutcome> {
    const path = join(this.fenceDir, spec.type);
    const why = checkExecutable(path, req.agent);
    if (why) return notInstalled(`${why} (see: halo fence list)`);
    if (req.action === 'stop') return { rc: 0, status: 'done', execTimeMs: 0, stdout: '', stderr: '' };
    const action = req.action === 'start' ? 'monitor' : req.action === 'meta-data' ? 'metadata' : req.action;
    const r = await this.process([path], { PATH, LC_ALL: 'C' }, req, fenceStdin(action, req.params));
    return toOutcome(req, r, (rc) => fenceToOcf(action, rc));
  }

  private async runBuiltin(spec: AgentSpec, req: AgentRunRequest): Promise<RawOpOutcome> {
    const agent = this.builtins.get(spec.type);
    if (!agent) {
      return notInstalled(
        `agent ${req.agent} is not a halo built-in (built-ins: ${[...this.builtins.keys()].map((k) => `halo:${k}`).join(', ')})`,
      );
    }
    if (req.action === 'meta-data') {
      return { rc: 0, status: 'done', execTimeMs: 0, stdout: metadataXml(agent.metadata), stderr: '' };
    }
    const ac = new AbortController();
    const onAbort = (): void => ac.abort(req.signal?.reason);
    req.signal?.addEventListener('abort', onAbort, { once: true });
    const t0 = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), req.timeoutMs);
    });
    const netns = req.netns ?? this.opts.netns;
    this.ensureStateDir();
    const work = agent.run({
      action: req.action,
      resource: req.resource,
      params: req.params,
      meta: req.meta ?? {},
      intervalMs: req.intervalMs,
      timeoutMs: req.timeoutMs,
      signal: ac.signal,
      stateDir: this.stateDir,
      ...(netns !== undefined ? { netns } : {}),
    });
    try {
      const r = await Promise.race([work, timeout]);
      const execTimeMs = performance.now() - t0;
      if (r === 'timeout') {
        ac.abort(new Error('timeout'));
        await work.catch(() => undefined); // let it kill what it spawned
        return {
          rc: OCF_RC.OCF_ERR_GENERIC,
          status: 'timeout',
          execTimeMs,
          stdout: '',
          stderr: '',
          exitReason: `${req.agent} ${req.action} timed out after ${req.timeoutMs} ms`,
        };
      }
      return {
        rc: r.rc,
        status: 'done',
        execTimeMs,
        stdout: r.stdout ?? '',
        stderr: r.stderr ?? '',
        ...(r.exitReason !== undefined ? { exitReason: r.exitReason } : {}),
        ...(r.attributes !== undefined ? { attributes: r.attributes } : {}),
      };
    } catch (err) {
      return {
        rc: OCF_RC.OCF_ERR_GENERIC,
        status: 'error',
        execTimeMs: performance.now() - t0,
        stdout: '',
        stderr: String(err),
        exitReason: `${req.agent} ${req.action} failed: ${(err as Error).message}`,
      };
    } finally {
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
    }
  }

  async metadata(agent: string): Promise<AgentMetadata> {
    const spec = parseAgentSpec(agent);
    if (spec.cls === 'halo') {
      const b = this.builtins.get(spec.type);
      if (!b)
        throw new HaloError(
          'unknown-agent',
          `agent ${agent} is not a halo built-in (see: halo agent list halo)`,
        );
      return b.metadata;
    }
    if (spec.cls === 'lsb' || spec.cls === 'heartbeat' || spec.cls === 'systemd' || spec.cls === 'service') {
      return this.scriptMetadata(spec, agent);
    }
    const r = await this.run({
      agent,
      resource: 'meta-data',
      action: 'meta-data',
      intervalMs: 0,
      timeoutMs: METADATA_TIMEOUT_MS,
      params: {},
    });
    if (r.status === 'notInstalled')
      throw new HaloError('unknown-agent', r.exitReason ?? `agent ${agent} is not installed`);
    if (r.rc !== 0 || r.status !== 'done') {
      throw new HaloError(
        'agent-failed',
        `${agent} meta-data failed (rc ${r.rc}, ${r.status}): ${(r.exitReason ?? r.stderr.trim()).slice(0, 300)}`,
      );
    }
    return parseMetadata(r.stdout, agent);
  }

  /** Script classes have no meta-data action; describe them the way Pacemaker does. */
  private scriptMetadata(spec: AgentSpec, agent: string): AgentMetadata {
    const path = spec.cls === 'heartbeat' ? join(this.heartbeatDir, spec.type) : join(this.lsbDir, spec.type);
    if (
      spec.cls !== 'systemd' &&
      !existsSync(path) &&
      !(spec.cls === 'heartbeat' && existsSync(join(this.lsbDir, spec.type)))
    ) {
      throw new HaloError('unknown-agent', `agent ${agent} is not installed: ${path} does not exist`);
    }
    let shortdesc = `${spec.cls} ${spec.type}`;
    if (spec.cls === 'lsb' || spec.cls === 'service') {
      const head = safeRead(path).slice(0, 8192);
      const m = /^#\s*Short-Description:\s*(.*)$/m.exec(head);
      if (m) shortdesc = m[1]!.trim();
    }
    const actions = ['start', 'stop', 'status', 'restart', 'force-reload'].map((name) => ({
      name,
      timeout: '15s',
    }));
    const parameters =
      spec.cls === 'heartbeat'
        ? [1, 2, 3].map((i) => ({
            name: String(i),
            required: false,
            unique: false,
            type: 'string',
            shortdesc: `positional argument ${i}`,
            longdesc: '',
          }))
        : [];
    return {
      name: spec.type,
      shortdesc,
      longdesc: '',
      parameters,
      actions: [...actions, { name: 'monitor', timeout: '15s', interval: '15s' }],
    };
  }

  list(filter?: string): string[] {
    const [cls, provider] = (filter ?? '').split(':');
    const out: string[] = [];
    const want = (c: string): boolean => !cls || cls === c;
    if (want('ocf')) {
      for (const p of listDir(join(this.ocfRoot, 'resource.d'))) {
        if (provider && p !== provider) continue;
        for (const t of listDir(join(this.ocfRoot, 'resource.d', p))) {
          if (isExecutable(join(this.ocfRoot, 'resource.d', p, t))) out.push(`ocf:${p}:${t}`);
        }
      }
    }
    if (want('lsb') || want('service')) {
      for (const t of listDir(this.lsbDir)) {
        if (isExecutable(join(this.lsbDir, t))) out.push(`${cls === 'service' ? 'service' : 'lsb'}:${t}`);
      }
    }
    if (want('heartbeat')) for (const t of listDir(this.heartbeatDir)) out.push(`heartbeat:${t}`);
    if (want('stonith')) for (const t of this.fenceAgents()) out.push(`stonith:${t}`);
    if (want('halo')) for (const t of this.builtins.keys()) out.push(`halo:${t}`);
    return out.sort();
  }

  /** Fence agent programs installed (`fence_*` in the fence dir). */
  fenceAgents(): string[] {
    return listDir(this.fenceDir).filter(
      (n) => n.startsWith('fence_') && isExecutable(join(this.fenceDir, n)),
    );
  }
}

/** The stdin a fence agent reads: `action=…` then the device's parameters, minus pcmk_* ones. */
export function fenceStdin(action: string, params: Readonly<Record<string, string>>): string {
  const lines = [`action=${action}`];
  for (const [k, v] of Object.entries(params)) {
    if (k.startsWith('pcmk_') || k === 'action' || /[\n\r]/.test(k + v)) continue;
    lines.push(`${k}=${v}`);
  }
  return `${lines.join('\n')}\n`;
}

function toOutcome(req: AgentRunRequest, r: ProcessOutcome, mapRc: (rc: number) => number): RawOpOutcome {
  const base = { execTimeMs: r.execTimeMs, stdout: r.stdout, stderr: r.stderr };
  if (r.spawnError) {
    return {
      ...base,
      rc: OCF_RC.OCF_ERR_INSTALLED,
      status: 'notInstalled',
      exitReason: `${req.agent} could not be started: ${r.spawnError.message}`,
    };
  }
  if (r.timedOut) {
    return {
      ...base,
      rc: OCF_RC.OCF_ERR_GENERIC,
      status: 'timeout',
      exitReason: `${req.agent} ${req.action} timed out after ${req.timeoutMs} ms (process group killed)`,
    };
  }
  if (r.aborted) {
    return {
      ...base,
      rc: OCF_RC.OCF_ERR_GENERIC,
      status: 'cancelled',
      exitReason: `${req.agent} ${req.action} was cancelled`,
    };
  }
  if (r.exitCode === null) {
    return {
      ...base,
      rc: OCF_RC.OCF_ERR_GENERIC,
      status: 'error',
      exitReason: `${req.agent} ${req.action} was killed by ${r.signal}`,
    };
  }
  const reason = exitReasonOf(r.stderr);
  return {
    ...base,
    rc: mapRc(r.exitCode),
    status: 'done',
    ...(reason !== undefined ? { exitReason: reason } : {}),
  };
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((n) => !n.startsWith('.'))
      .sort();
  } catch {
    return [];
  }
}

function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Meta-data as OCF XML, for built-ins' `meta-data` action. */
export function metadataXml(m: AgentMetadata): string {
  const params = m.parameters
    .map(
      (p) =>
        `    <parameter name="${escapeAttr(p.name)}" required="${p.required ? 1 : 0}" unique="${p.unique ? 1 : 0}">\n` +
        `      <longdesc lang="en">${escapeText(p.longdesc)}</longdesc>\n      <shortdesc lang="en">${escapeText(p.shortdesc)}</shortdesc>\n` +
        `      <content type="${escapeAttr(p.type)}"${p.default !== undefined ? ` default="${escapeAttr(p.default)}"` : ''}/>\n    </parameter>\n`,
    )
    .join('');
  const actions = m.actions
    .map((a) => {
      const extra = [
        a.timeout && `timeout="${escapeAttr(a.timeout)}"`,
        a.interval && `interval="${escapeAttr(a.interval)}"`,
        a.depth && `depth="${escapeAttr(a.depth)}"`,
        a.role && `role="${escapeAttr(a.role)}"`,
      ]
        .filter(Boolean)
        .join(' ');
      return `    <action name="${escapeAttr(a.name)}" ${extra}/>\n`;
    })
    .join('');
  return (
    `<?xml version="1.0"?>\n<resource-agent name="${escapeAttr(m.name)}" version="${escapeAttr(m.version ?? '1.0')}">\n  <version>1.1</version>\n` +
    `  <longdesc lang="en">${escapeText(m.longdesc)}</longdesc>\n  <shortdesc lang="en">${escapeText(m.shortdesc)}</shortdesc>\n` +
    `  <parameters>\n${params}  </parameters>\n  <actions>\n${actions}  </actions>\n</resource-agent>\n`
  );
}
