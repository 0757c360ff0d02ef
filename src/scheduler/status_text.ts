import { naturalCompare } from './nodes.ts';
import { agentName, primitivesOf, type Res } from './resource_tree.ts';
import type { NodeInfo, Role } from './types.ts';

/**
 * Renders a cluster state in crm_mon's text layout (as crm_simulate prints it for "Current
 * cluster status" and "Revised Cluster Status"). `where` says where each primitive is.
 */
export interface PrimitiveView {
  readonly node: string | undefined;
  readonly role: Role;
  readonly failed: boolean;
  readonly managed: boolean;
}

export function renderNodes(nodes: readonly NodeInfo[], fencedAway: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const online: string[] = [];
  const offline: string[] = [];
  const sorted = [...nodes].sort((a, b) => naturalCompare(a.name, b.name));
  for (const n of sorted) {
    if (fencedAway.has(n.name)) {
      offline.push(n.name);
      continue;
    }
    if (n.unclean) out.push(`    * Node ${n.name}: UNCLEAN (${n.online ? 'online' : 'offline'})`);
    else if (n.pending) out.push(`    * Node ${n.name}: pending`);
    else if (n.online && n.standby) out.push(`    * Node ${n.name}: standby`);
    else if (n.online && n.maintenance) out.push(`    * Node ${n.name}: maintenance`);
    else if (n.online) online.push(n.name);
    else offline.push(n.name);
  }
  if (online.length > 0) out.push(`    * Online: [ ${online.join(' ')} ]`);
  if (offline.length > 0) out.push(`    * OFFLINE: [ ${offline.join(' ')} ]`);
  return out;
}

function primitiveText(p: Res, v: PrimitiveView, unclean: ReadonlySet<string>): string {
  let state: string;
  if (!v.node || v.role === 'Stopped') state = 'Stopped';
  else {
    const role = v.role === 'Started' ? 'Started' : v.role;
    state = `${v.failed ? `FAILED${role === 'Started' ? '' : ` ${role}`}` : role} ${v.node}`;
    if (unclean.has(v.node)) state += ' (UNCLEAN)';
  }
  if (!v.managed) state += ' (unmanaged)';
  return `${p.id}\t(${agentName(p.def)}):\t ${state}`;
}

export function renderResources(
  resources: readonly Res[],
  view: (p: Res) => PrimitiveView,
  nodes: readonly NodeInfo[],
  unclean: ReadonlySet<string>,
): string[] {
  const out: string[] = [];
  const emit = (indent: string, text: string): void => {
    out.push(`${indent}* ${text}`);
  };
  for (const r of resources) {
    if (r.kind === 'primitive') {
      const v = view(r);
      if (r.orphan && (!v.node || v.role === 'Stopped')) continue;
      emit('    ', primitiveText(r, v, unclean) + (r.orphan ? ' (ORPHANED)' : ''));
    } else if (r.kind === 'group') {
      emit('    ', `Resource Group: ${r.id}:`);
      for (const m of r.children) emit('      ', primitiveText(m, view(m), unclean));
    } else {
      renderClone(r, view, nodes, unclean, emit);
    }
  }
  return out;
}

function renderClone(
  c: Res,
  view: (p: Res) => PrimitiveView,
  nodes: readonly NodeInfo[],
  unclean: ReadonlySet<string>,
  emit: (indent: string, text: string) => void,
): void {
  const cs = c.clone!;
  const child = c.children[0];
  const flags = [cs.promotable ? 'promotable' : '', cs.globallyUnique ? 'unique' : '']
    .filter(Boolean)
    .join(', ');
  emit('    ', `Clone Set: ${c.id} [${child?.baseId ?? ''}]${flags ? ` (${flags})` : ''}:`);
  if (cs.globallyUnique) {
    for (const inst of c.children) {
      for (const p of primitivesOf(inst)) emit('      ', primitiveText(p, view(p), unclean));
    }
    return;
  }
  const byRole = new Map<string, string[]>();
  const used = new Set<string>();
  for (const inst of c.children) {
    const prims = primitivesOf(inst);
    const views = prims.map(view);
    const first = views[0];
    if (!first?.node || first.role === 'Stopped') continue;
    const uniform = views.every(
      (v) => v.node === first.node && v.role === first.role && !v.failed && v.managed,
    );
    if (!uniform || inst.kind === 'group' ? !uniform : false) {
      if (inst.kind === 'group') {
        emit('      ', `Resource Group: ${inst.id}:`);
        prims.forEach((p, i) => {
          emit('        ', primitiveText(p, views[i]!, unclean));
        });
      } else emit('      ', primitiveText(inst, first, unclean));
      used.add(first.node);
      continue;
    }
    const label = first.role === 'Started' ? 'Started' : first.role;
    const list = byRole.get(label) ?? [];
    list.push(first.node);
    byRole.set(label, list);
    used.add(first.node);
  }
  for (const label of ['Promoted', 'Unpromoted', 'Started']) {
    const list = byRole.get(label);
    if (list) emit('      ', `${label}: [ ${list.sort(naturalCompare).join(' ')} ]`);
  }
  const stopped = nodes
    .map((n) => n.name)
    .filter((n) => !used.has(n))
    .sort(naturalCompare);
  if (stopped.length > 0) emit('      ', `Stopped: [ ${stopped.join(' ')} ]`);
}
