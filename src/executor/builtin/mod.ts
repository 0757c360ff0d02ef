import { labFenceAgent } from './lab_fence.ts';
import { linksAgent } from './links.ts';
import { pingAgent } from './ping.ts';
import { processAgent } from './process_agent.ts';
import type { BuiltinAgent } from './types.ts';
import { vipAgent } from './vip.ts';
import { volumeAgent } from './volume.ts';

export type { BuiltinAgent, BuiltinContext, BuiltinOutcome } from './types.ts';

/** The `halo:` agents, by type name. A fresh map per call: agents keep no shared state. */
export function builtinAgents(): Map<string, BuiltinAgent> {
  const all = [vipAgent(), processAgent(), pingAgent(), linksAgent(), labFenceAgent(), volumeAgent()];
  return new Map(all.map((a) => [a.type, a]));
}
