/**
 * The executor: runs resource and fence agents for the controller.
 *
 * - `OpTable` (ops.ts) is the pure core: one operation at a time per resource, a parallel bound,
 *   recurring monitors with start-delay, results typed for the CIB status (`toOpHistory`).
 * - `Executor` (executor.ts) is the shell around it: timers plus an `AgentRunner`.
 * - `ShellAgentRunner` (runner.ts) runs real agents (ocf, lsb, systemd, service, heartbeat,
 *   stonith, halo built-ins) in their own process groups; `MemoryAgentRunner` is its in-memory
 *   twin for `sim/` and controller tests (both pass the same contract test).
 * - `Fencer` (fence.ts): pcmk_host_* handling, retries, topology levels.
 * - `opRequestFor` (cib_ops.ts): CIB primitive + operation → request.
 */

export { opDigest } from '../cib/op_digest.ts';
export * from './agent_spec.ts';
export { builtinAgents } from './builtin/mod.ts';
export type { BuiltinAgent, BuiltinContext, BuiltinOutcome } from './builtin/types.ts';
export * from './cib_ops.ts';
export * from './executor.ts';
export * from './fence.ts';
export * from './heartbeat_compat.ts';
export * from './memory_runner.ts';
export * from './metadata.ts';
export * from './ops.ts';
export * from './process.ts';
export * from './rc.ts';
export * from './runner.ts';
