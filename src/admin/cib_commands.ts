/**
 * Turns an edit's before/after CIBs into the commands the replicated CIB state machine takes
 * (src/consensus/cib_state_machine.ts), so the same edit that works on a file can be proposed
 * to a running cluster: a configuration change becomes one `replace-configuration` (whole, so
 * replicas need no merge logic); transient node attributes become `set-node-attribute` with
 * lifetime `reboot`. Removing operation history (cleanup) has no command yet and is reported
 * as unsupported rather than silently dropped. Pure.
 */
import type { Cib, NodeState } from '../cib/model.ts';
import type { CibCommand } from '../consensus/cib_state_machine.ts';

export interface CommandPlan {
  readonly commands: readonly CibCommand[];
  /** Parts of the change no CibCommand can express yet, in words. */
  readonly unsupported: readonly string[];
}

function transientMap(ns: NodeState | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const s of ns?.transientAttributes ?? [])
    if (!s.rule) for (const p of s.pairs) if (p.value !== undefined) m.set(p.name, p.value);
  return m;
}

export function toCibCommands(before: Cib, after: Cib): CommandPlan {
  const commands: CibCommand[] = [];
  const unsupported: string[] = [];
  if (JSON.stringify(before.configuration) !== JSON.stringify(after.configuration))
    commands.push({ op: 'replace-configuration', configuration: after.configuration });
  const names = new Set([...before.status, ...after.status].map((s) => s.uname ?? s.id));
  for (const node of names) {
    const b = before.status.find((s) => (s.uname ?? s.id) === node);
    const a = after.status.find((s) => (s.uname ?? s.id) === node);
    const bm = transientMap(b);
    const am = transientMap(a);
    for (const [name, value] of am)
      if (bm.get(name) !== value)
        commands.push({ op: 'set-node-attribute', node, name, value, lifetime: 'reboot' });
    for (const name of bm.keys())
      if (!am.has(name))
        commands.push({ op: 'set-node-attribute', node, name, value: null, lifetime: 'reboot' });
    if (JSON.stringify(b?.resources ?? []) !== JSON.stringify(a?.resources ?? []))
      unsupported.push(`removing operation history on '${node}' (cleanup) has no CibCommand yet`);
  }
  return { commands, unsupported };
}
