/**
 * Test inputs for the admin edits: seed 003's configuration (a DRBD-backed MySQL + nginx + VIP
 * group, from the user tutorial in src/cib/fixtures/seed003.crm) with a status section that
 * has it running: the group and the promoted DRBD instance on thelibrary-node1, the unpromoted
 * one on thelibrary-node2, the ping clone on both, and two recorded nginx monitor failures on
 * thelibrary-node2. doctormoon is in standby (as the seed configures it).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCrm } from '../cib/crm.ts';
import type { Cib, OpHistory, ResourceHistory } from '../cib/model.ts';
import { opDigest } from '../cib/op_digest.ts';
import { allPrimitives, instanceAttributesOf, primitiveAgent } from '../cib/resources.ts';
import { repoRoot } from '../lib/repo_root.ts';
import { nodeState, started } from '../scheduler/testing.ts';

export const NODE1 = 'thelibrary-node1';
export const NODE2 = 'thelibrary-node2';
/** A fixed "now" so lifetimes and rules are reproducible. */
export const NOW_MS = Date.UTC(2026, 10, 22, 5, 0, 0);

/** nginx on node 2 failed its monitor, then was stopped there: a failure in history, not running. */
function nginxFailedThenStopped(): ResourceHistory {
  const h = started('p_nginx', { monitorFailed: true });
  const stop: OpHistory = {
    id: 'p_nginx_last_0',
    operationKey: 'p_nginx_stop_0',
    operation: 'stop',
    interval: '0',
    callId: '5',
    rcCode: '0',
    opStatus: '0',
    transitionKey: '1:1:0:test',
  };
  return { ...h, ops: [...h.ops, stop] };
}

export function seed003Cib(): Cib {
  const file = join(repoRoot(), 'src/cib/fixtures/seed003.crm');
  const parsed = parseCrm(readFileSync(file, 'utf8'), file);
  if (!parsed.ok) throw new Error(`${file} does not parse: ${parsed.diagnostics[0]?.message}`);
  const cib = parsed.cib;
  const running: Cib = {
    ...cib,
    attrs: [...cib.attrs, ['have-quorum', '1']],
    hasStatus: true,
    status: [
      nodeState('doctormoon'),
      nodeState(NODE1, {
        attrs: { pingd: '3000', 'master-p_drbd': '10000' },
        history: [
          started('p_drbd', { promoted: true }),
          started('fs_drbd'),
          started('p_sip'),
          started('p_nginx'),
          started('p_mysql'),
          started('p_pingtest'),
        ],
      }),
      nodeState(NODE2, {
        attrs: {
          pingd: '3000',
          'master-p_drbd': '10000',
          'fail-count-p_nginx#monitor_10000': '2',
          'last-failure-p_nginx#monitor_10000': '1763787000',
        },
        history: [started('p_drbd'), started('p_pingtest'), nginxFailedThenStopped()],
      }),
    ],
  };
  return withAgents(running);
}

/**
 * The history builders record every resource as ocf:heartbeat:Dummy; the status must name the
 * agent the configuration runs, or the scheduler sees a changed definition and restarts it.
 */
function withAgents(cib: Cib): Cib {
  const prims = new Map(allPrimitives(cib).map((p) => [p.resource.id, p.resource] as const));
  const status = cib.status.map((ns) => ({
    ...ns,
    resources: ns.resources.map((h) => {
      const p = prims.get(h.id);
      if (!p) return h;
      // One-shot ops record the digest of the parameters they ran with, as the executor does.
      const digest = opDigest(instanceAttributesOf(p, cib));
      const ops = h.ops.map((o) => (Number(o.interval) === 0 ? { ...o, opDigest: digest } : o));
      const { class: _c, provider: _p, type: _t, ...rest } = h;
      return { ...rest, ...primitiveAgent(p, cib), ops };
    }),
  }));
  return { ...cib, status };
}
