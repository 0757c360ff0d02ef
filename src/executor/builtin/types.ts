import type { AgentMetadata } from '../metadata.ts';

/**
 * A halo built-in agent: OCF semantics (actions, exit codes, meta-data), implemented in
 * TypeScript inside the executor so the hot path avoids a shell fork where it can.
 */
export interface BuiltinContext {
  readonly action: string;
  readonly resource: string;
  readonly params: Readonly<Record<string, string>>;
  readonly meta: Readonly<Record<string, string>>;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Network namespace to act in (lab nodes); commands run through `ip netns exec`. */
  readonly netns?: string;
  /** Fires on timeout or cancel; the agent must stop work and kill what it spawned. */
  readonly signal: AbortSignal;
  /** Directory for state files (`HA_RSCTMP`). */
  readonly stateDir: string;
}

export interface BuiltinOutcome {
  readonly rc: number;
  readonly stdout?: string;
  readonly stderr?: string;
  readonly exitReason?: string;
  /** Node attributes to set (e.g. `pingd`). */
  readonly attributes?: Readonly<Record<string, string>>;
}

export interface BuiltinAgent {
  /** Type name after `halo:`, e.g. `vip`. */
  readonly type: string;
  readonly metadata: AgentMetadata;
  /** Whether this agent is a fence device (usable by `halo fence`). */
  readonly fence?: boolean;
  run(ctx: BuiltinContext): Promise<BuiltinOutcome>;
}

/** Standard OCF actions a built-in implements, with default timeouts. */
export function standardActions(timeouts: { start?: string; stop?: string; monitor?: string } = {}) {
  return [
    { name: 'start', timeout: timeouts.start ?? '20s' },
    { name: 'stop', timeout: timeouts.stop ?? '20s' },
    { name: 'monitor', timeout: timeouts.monitor ?? '20s', interval: '10s', depth: '0' },
    { name: 'validate-all', timeout: '5s' },
    { name: 'meta-data', timeout: '5s' },
  ];
}
