import type { Cib, OpHistory } from '../cib/model.ts';
import type { ScheduleFn } from './types.ts';

/**
 * `halo status` in the shape of `crm_mon -1`: cluster summary, node list, resources, failed
 * resource actions. Pure: the CIB (configuration + status as the DC keeps it), who is DC and
 * the quorum state in; text out. Node and resource lines come from the scheduler's own view of
 * the CIB so that status and placement never disagree.
 */
export interface StatusInput {
  readonly cib: Cib;
  readonly dc: string | null;
  readonly quorate: boolean;
  /** Wall time of the report (ms since the epoch). */
  readonly nowMs: number;
  readonly schedule: ScheduleFn;
}

const OP_STATUS_NAMES: Readonly<Record<string, string>> = {
  '0': 'complete',
  '1': 'Cancelled',
  '2': 'Timed Out',
  '3': 'NOT SUPPORTED',
  '4': 'Error',
  '7': 'not installed',
};
const RC_NAMES: Readonly<Record<string, string>> = {
  '0': 'ok',
  '1': 'error',
  '2': 'invalid parameter',
  '3': 'unimplemented feature',
  '4': 'insufficient privileges',
  '5': 'not installed',
  '6': 'not configured',
  '7': 'not running',
  '8': 'promoted',
  '9': 'promoted (failed)',
};

function isoSeconds(sec: string | undefined): string {
  const n = Number(sec);
  return Number.isFinite(n) && n > 0 ? new Date(n * 1000).toISOString().replace('.000Z', 'Z') : 'unknown';
}

/**
 * `lrm_rsc_op` records that are failures (kept as `*_last_failure_0`), newest first. Only of
 * configured nodes: a `node_state` no `<node>` entry names (a node removed from the cluster,
 * whose status the state machine cannot delete) is not part of the cluster, as for the scheduler.
 */
export function failedActions(cib: Cib): { node: string; op: OpHistory }[] {
  const out: { node: string; op: OpHistory }[] = [];
  const nodes = cib.configuration.nodes;
  for (const s of cib.status) {
    if (!nodes.some((n) => n.uname === s.uname || n.id === s.id)) continue;
    for (const r of s.resources) {
      for (const op of r.ops) if (op.id.endsWith('_last_failure_0')) out.push({ node: s.uname ?? s.id, op });
    }
  }
  return out.sort((a, b) => Number(b.op.lastRcChange ?? 0) - Number(a.op.lastRcChange ?? 0));
}

export function renderStatus(input: StatusInput): string {
  const { cib } = input;
  const lines: string[] = ['Cluster Summary:', '  * Stack: halo'];
  lines.push(
    input.dc
      ? `  * Current DC: ${input.dc} (version halo 0.1.0) - partition ${input.quorate ? 'with' : 'WITHOUT'} quorum`
      : '  * Current DC: NONE',
  );
  lines.push(`  * Last updated: ${new Date(input.nowMs).toUTCString()}`);
  const nodes = cib.configuration.nodes.length;
  lines.push(`  * ${nodes} node${nodes === 1 ? '' : 's'} configured`);
  const r = input.schedule(cib, input.nowMs);
  if (!r.ok) {
    lines.push('', `Cannot show resources: ${r.message} [${r.code}]`);
    return `${lines.join('\n')}\n`;
  }
  const body = r.transition.currentStatus.map((l) => (l.startsWith('  ') ? l.slice(2) : l));
  lines.push(
    '',
    ...body.map((l) =>
      l === '* Node List:' ? 'Node List:' : l === '* Full List of Resources:' ? 'Full List of Resources:' : l,
    ),
  );
  const failed = failedActions(cib);
  if (failed.length > 0) {
    lines.push('', 'Failed Resource Actions:');
    for (const { node, op } of failed) {
      const rc = op.rcCode ?? '?';
      lines.push(
        `  * ${op.operationKey ?? op.id} on ${node} '${RC_NAMES[rc] ?? 'unknown'}' (${rc}): call=${op.callId ?? '?'}, status='${OP_STATUS_NAMES[op.opStatus ?? '0'] ?? op.opStatus}'${op.exitReason ? `, exitreason='${op.exitReason}'` : ''}, last-rc-change='${isoSeconds(op.lastRcChange)}', queued=${op.queueTime ?? 0}ms, exec=${op.execTime ?? 0}ms`,
      );
    }
  }
  return `${lines.join('\n').replace(/\n{3,}/g, '\n\n')}\n`;
}
