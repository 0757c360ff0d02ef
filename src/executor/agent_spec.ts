import { HaloError } from '../lib/errors.ts';

/**
 * An agent name as configs write it: `ocf:heartbeat:IPaddr2`, `lsb:nginx`, `systemd:nginx`,
 * `service:nginx`, `heartbeat:drbddisk` (Heartbeat v1 resource.d scripts), `stonith:fence_ipmilan`,
 * or a halo built-in (`halo:vip`). A bare `fence_*` name means `stonith:`. Pure.
 */
export const AGENT_CLASSES = ['ocf', 'lsb', 'systemd', 'service', 'heartbeat', 'stonith', 'halo'] as const;
export type AgentClass = (typeof AGENT_CLASSES)[number];

export interface AgentSpec {
  readonly cls: AgentClass;
  readonly provider?: string;
  readonly type: string;
}

const NAME = /^[A-Za-z0-9_.@+-]+$/;

export function parseAgentSpec(text: string): AgentSpec {
  const parts = text.split(':');
  if (parts.length === 1 && /^fence_/.test(text) && NAME.test(text)) return { cls: 'stonith', type: text };
  const cls = parts[0] as AgentClass;
  if (!AGENT_CLASSES.includes(cls)) {
    throw new HaloError(
      'unknown-agent',
      `agent '${text}': unknown class '${parts[0]}' (expected one of ${AGENT_CLASSES.join(', ')}, e.g. ocf:heartbeat:Dummy)`,
    );
  }
  if (cls === 'ocf') {
    if (parts.length !== 3 || !NAME.test(parts[1]!) || !NAME.test(parts[2]!)) {
      throw new HaloError(
        'unknown-agent',
        `agent '${text}': OCF agents are named ocf:PROVIDER:TYPE, e.g. ocf:heartbeat:IPaddr2`,
      );
    }
    return { cls, provider: parts[1]!, type: parts[2]! };
  }
  if (parts.length !== 2 || !NAME.test(parts[1]!)) {
    throw new HaloError(
      'unknown-agent',
      `agent '${text}': expected ${cls}:TYPE, e.g. ${cls}:${exampleType(cls)}`,
    );
  }
  return { cls, type: parts[1]! };
}

function exampleType(cls: AgentClass): string {
  switch (cls) {
    case 'stonith':
      return 'fence_ipmilan';
    case 'halo':
      return 'vip';
    case 'heartbeat':
      return 'drbddisk';
    default:
      return 'nginx';
  }
}

export function formatAgentSpec(s: AgentSpec): string {
  return s.provider !== undefined ? `${s.cls}:${s.provider}:${s.type}` : `${s.cls}:${s.type}`;
}
