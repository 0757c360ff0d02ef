/**
 * Turns an edit's before/after CIBs into the commands the replicated CIB state machine takes
 * (src/consensus/cib_state_machine.ts), so the same edit that works on a file can be proposed
 * to a running cluster: a configuration change becomes one `replace-configuration` (whole, so
 * replicas need no merge logic); transient node attributes become `set-node-attribute` with
 * lifetime `reboot`; operation records a cleanup removed become `delete-op-result`. Anything
 * else is reported as unsupported rather than silently dropped. Pure.
 *
 * With `compareAndSet`, the `replace-configuration` carries the version (admin_epoch, epoch) of
 * `before`, and the cluster refuses it (`conflict`) if the configuration changed after that CIB
 * was read, instead of overwriting the other change. Callers that read the CIB to compute an
 * edit should ask for it; it is opt-in only so that callers that cannot handle a refusal yet
 * keep their behaviour.
 */
import type { Cib, NodeState } from '../cib/model.ts';
import type { CibCommand, ConfigurationVersion } from '../consensus/cib_state_machine.ts';
import { checkOption } from './cluster_options.ts';
import { cibAttr } from './edit_result.ts';
import type { AdminEdit } from './edits.ts';

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

/**
 * Operation records that an edit removed (cleanup) become `delete-op-result`; any other change
 * to the history is not something an administrator's edit makes, so it is reported.
 */
function historyCommands(
  node: string,
  before: NodeState | undefined,
  after: NodeState | undefined,
  commands: CibCommand[],
  unsupported: string[],
): void {
  for (const h of before?.resources ?? []) {
    const kept = after?.resources.find((x) => x.id === h.id);
    for (const op of h.ops)
      if (!kept?.ops.some((o) => o.id === op.id))
        commands.push({ op: 'delete-op-result', node, resource: h.id, id: op.id });
  }
  for (const h of after?.resources ?? []) {
    const old = before?.resources.find((x) => x.id === h.id);
    if (h.ops.some((op) => !old?.ops.some((o) => JSON.stringify(o) === JSON.stringify(op))))
      unsupported.push(`adding or changing operation history of '${h.id}' on '${node}'`);
  }
}

/**
 * The configuration version of a CIB as the replicated state machine counts it (a missing or
 * malformed counter is 0 there too, so both sides agree on what a CIB's version is).
 */
export function configurationVersion(cib: Cib): ConfigurationVersion {
  const num = (name: string): number => {
    const n = Number(cibAttr(cib, name) ?? '0');
    return Number.isSafeInteger(n) && n >= 0 ? n : 0;
  };
  return { adminEpoch: num('admin_epoch'), epoch: num('epoch') };
}

export function toCibCommands(
  before: Cib,
  after: Cib,
  opts: { readonly compareAndSet?: boolean } = {},
): CommandPlan {
  const commands: CibCommand[] = [];
  const unsupported: string[] = [];
  if (JSON.stringify(before.configuration) !== JSON.stringify(after.configuration))
    commands.push({
      op: 'replace-configuration',
      configuration: after.configuration,
      ...(opts.compareAndSet ? { expectedVersion: configurationVersion(before) } : {}),
    });
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
    historyCommands(node, b, a, commands, unsupported);
  }
  return { commands, unsupported };
}

/**
 * The edits a running cluster can take without the client reading its CIB first: node
 * attributes (standby, maintenance, any attribute) and cluster properties map one-to-one onto
 * `set-node-attribute` and `set-property`, which the state machine applies to whatever CIB the
 * cluster holds when they commit. Property names and values are checked here, as offline.
 * They carry no expected version: they are not computed from a CIB the client read, so there
 * is nothing they could overwrite (as with `crm_attribute`, which Pacemaker applies to the
 * current CIB).
 * Returns undefined for edits that need the current CIB (resources, constraints, cleanup).
 */
export function directCibCommands(
  e: AdminEdit,
): { ok: true; commands: CibCommand[] } | { ok: false; code: string; message: string } | undefined {
  switch (e.op) {
    case 'node-standby':
    case 'node-maintenance': {
      const name = e.op === 'node-standby' ? 'standby' : 'maintenance';
      return {
        ok: true,
        commands: [
          { op: 'set-node-attribute', node: e.node, name, value: e.on ? 'on' : 'off', lifetime: e.lifetime },
        ],
      };
    }
    case 'node-attribute':
      return {
        ok: true,
        commands: [
          { op: 'set-node-attribute', node: e.node, name: e.name, value: e.value, lifetime: e.lifetime },
        ],
      };
    case 'set-options': {
      if (e.table !== 'property') return undefined;
      for (const p of e.pairs) {
        const c = checkOption('property', p.name, p.value, e.force === true);
        if (!c.ok) return c;
      }
      return {
        ok: true,
        commands: e.pairs.map((p) => ({ op: 'set-property', name: p.name, value: p.value })),
      };
    }
    default:
      return undefined;
  }
}
