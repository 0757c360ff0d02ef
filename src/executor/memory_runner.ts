import { HaloError } from '../lib/errors.ts';
import { parseAgentSpec } from './agent_spec.ts';
import type { AgentMetadata } from './metadata.ts';
import type { RawOpOutcome } from './ops.ts';
import { OCF_RC } from './rc.ts';
import type { AgentRunner, AgentRunRequest } from './runner.ts';

/**
 * An in-memory `AgentRunner` for `sim/` and controller tests: every agent it knows behaves like
 * ocf:pacemaker:Dummy (start/stop idempotent, monitor 0 when started, 7 when stopped), in zero
 * time and deterministically. Faults are injected explicitly: `failNext` makes the next matching
 * action return an rc (or time out), `crash` makes a started resource's monitor report
 * "not running", as if its process died.
 */
export class MemoryAgentRunner implements AgentRunner {
  private readonly agents: Set<string>;
  private readonly started = new Set<string>();
  private readonly faults = new Map<string, { rc: number; timeout: boolean }[]>();
  /** Every operation run, in order, as `resource action`. */
  readonly log: string[] = [];

  constructor(agents: readonly string[] = ['ocf:heartbeat:Dummy', 'ocf:pacemaker:Dummy', 'halo:vip']) {
    this.agents = new Set(agents);
  }

  failNext(resource: string, action: string, rc: number, opts: { timeout?: boolean } = {}): void {
    const key = `${resource} ${action}`;
    const list = this.faults.get(key) ?? [];
    list.push({ rc, timeout: opts.timeout ?? false });
    this.faults.set(key, list);
  }

  crash(resource: string): void {
    this.started.delete(resource);
  }

  isStarted(resource: string): boolean {
    return this.started.has(resource);
  }

  async run(req: AgentRunRequest): Promise<RawOpOutcome> {
    const base = { execTimeMs: 0, stdout: '', stderr: '' };
    if (!this.agents.has(req.agent)) {
      return {
        ...base,
        rc: OCF_RC.OCF_ERR_INSTALLED,
        status: 'notInstalled',
        exitReason: `agent ${req.agent} is not installed`,
      };
    }
    this.log.push(`${req.resource} ${req.action}`);
    const key = `${req.resource} ${req.action}`;
    const fault = this.faults.get(key)?.shift();
    if (fault) {
      if (fault.timeout)
        return {
          ...base,
          rc: 1,
          status: 'timeout',
          exitReason: `${req.agent} ${req.action} timed out after ${req.timeoutMs} ms`,
        };
      return { ...base, rc: fault.rc, status: 'done' };
    }
    switch (req.action) {
      case 'start':
        this.started.add(req.resource);
        return { ...base, rc: 0, status: 'done' };
      case 'stop':
        this.started.delete(req.resource);
        return { ...base, rc: 0, status: 'done' };
      case 'monitor':
      case 'status':
        return { ...base, rc: this.started.has(req.resource) ? 0 : OCF_RC.OCF_NOT_RUNNING, status: 'done' };
      case 'validate-all':
      case 'meta-data':
        return { ...base, rc: 0, status: 'done' };
      default:
        return { ...base, rc: OCF_RC.OCF_ERR_UNIMPLEMENTED, status: 'done' };
    }
  }

  async metadata(agent: string): Promise<AgentMetadata> {
    parseAgentSpec(agent);
    if (!this.agents.has(agent)) throw new HaloError('unknown-agent', `agent ${agent} is not installed`);
    return {
      name: agent,
      shortdesc: 'in-memory agent',
      longdesc: '',
      parameters: [],
      actions: ['start', 'stop', 'monitor'].map((name) => ({ name, timeout: '20s' })),
    };
  }

  list(filter?: string): string[] {
    return [...this.agents].filter((a) => !filter || a === filter || a.startsWith(`${filter}:`)).sort();
  }
}
