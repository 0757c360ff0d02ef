import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Cib, OpHistory, ResourceHistory } from '../cib/model.ts';
import { opDigest } from '../cib/op_digest.ts';
import type { Action } from './actions.ts';
import { schedule, type Transition } from './schedule.ts';
import { cluster, nodeState, primitive, started } from './testing.ts';

const NOW = Date.UTC(2026, 0, 1);

function run(cib: Cib): Transition {
  const r = schedule(cib, NOW);
  if (!r.ok) assert.fail(r.message);
  return r.transition;
}

const squash = (lines: readonly string[]): string[] => lines.map((l) => l.replace(/\s+/g, ' ').trim());

/** fence_scsi-style device: it cuts a node off shared storage, and lets it back in (`on`). */
const scsi = (params: Record<string, string> = { devices: '/dev/sdb' }, type = 'fence_scsi') =>
  primitive('scsi', { cls: 'stonith', type, params, meta: { provides: 'unfencing' } });

const UNFENCED = { '#node-unfenced': '1700000000' };

/** The device running on a node: its start recorded with the digest of `params`, under `type`. */
function scsiStarted(params: Record<string, string>, type = 'fence_scsi'): ResourceHistory {
  const start: OpHistory = {
    id: 'scsi_start_0',
    operation: 'start',
    interval: '0',
    callId: '2',
    rcCode: '0',
    opStatus: '0',
    transitionKey: '1:1:0:test',
    opDigest: opDigest(params),
  };
  return { id: 'scsi', class: 'stonith', type, ops: [start] };
}

/** Whether the transition orders action `before` ahead of action `after`. */
function ordered(t: Transition, before: Action, after: Action): boolean {
  return t.orderings.some((o) => o.before === before.id && o.after === after.id);
}

function find(t: Transition, f: (a: Action) => boolean, what: string): Action {
  const a = t.actions.find(f);
  assert.ok(a, `no ${what} in ${JSON.stringify(t.actions)}`);
  return a;
}

describe('unfencing', () => {
  it('unfences a node that never was before probing or starting anything there that needs it', () => {
    // n1 was unfenced and runs the device; n2 never was, so it is unfenced before the device is
    // probed there and before the shared-storage user starts there.
    const cib = cluster({
      nodes: ['n1', 'n2'],
      props: { 'stonith-enabled': 'true' },
      resources: [scsi(), primitive('db', { meta: { 'resource-stickiness': '100' } })],
      status: [
        nodeState('n1', { attrs: UNFENCED, history: [scsiStarted({ devices: '/dev/sdb' }), started('db')] }),
        nodeState('n2'),
      ],
    });
    const t = run(cib);
    assert.deepEqual(squash(t.summary), ["* Fence (on) n2 'required by scsi monitor'"]);
    assert.deepEqual(t.unfencing, [['n2', 'required by scsi monitor']]);
    const unfence = find(t, (a) => a.task === 'unfence', 'unfence action');
    assert.equal(unfence.node, 'n2');
    assert.ok(!t.actions.some((a) => a.task === 'fence'), 'unfencing is not a reboot');
    for (const rsc of ['scsi', 'db']) {
      const probe = find(t, (a) => a.probe === true && a.rsc === rsc && a.node === 'n2', `${rsc} probe`);
      assert.ok(ordered(t, unfence, probe), `${rsc}'s probe on n2 waits for n2's unfencing`);
    }
  });

  it('starts a resource on a never-unfenced node only after that node is unfenced', () => {
    const cib = cluster({
      nodes: ['n1'],
      props: { 'stonith-enabled': 'true' },
      resources: [scsi(), primitive('db')],
      status: [nodeState('n1', { history: [scsiStarted({ devices: '/dev/sdb' })] })],
    });
    const t = run(cib);
    // db has no history on n1: its probe is the first thing that needs the unfencing. The
    // device already running there starts again after it too (as in Pacemaker, whose fence
    // devices' starts always follow their node's unfencing).
    assert.deepEqual(squash(t.summary), [
      "* Fence (on) n1 'required by db monitor'",
      '* Restart scsi ( n1 ) due to required stonith',
      '* Start db ( n1 )',
    ]);
    const unfence = find(t, (a) => a.task === 'unfence', 'unfence action');
    const start = find(t, (a) => a.task === 'start' && a.rsc === 'db', 'db start');
    assert.ok(ordered(t, unfence, start));
    assert.ok(t.executed.includes('  * Fencing n1 (on)'));
  });

  it('unfences again where a device whose parameters changed runs, restarting what needs it there', () => {
    const cib = cluster({
      nodes: ['n1'],
      props: { 'stonith-enabled': 'true' },
      resources: [scsi({ devices: '/dev/sdc' }), primitive('db')],
      status: [
        nodeState('n1', { attrs: UNFENCED, history: [scsiStarted({ devices: '/dev/sdb' }), started('db')] }),
      ],
    });
    const t = run(cib);
    assert.deepEqual(squash(t.summary), [
      "* Fence (on) n1 'Device parameters changed'",
      '* Restart scsi ( n1 ) due to resource definition change',
      '* Restart db ( n1 ) due to required stonith',
    ]);
    const unfence = find(t, (a) => a.task === 'unfence', 'unfence action');
    const stop = find(t, (a) => a.task === 'stop' && a.rsc === 'db', 'db stop');
    const start = find(t, (a) => a.task === 'start' && a.rsc === 'db', 'db start');
    assert.ok(ordered(t, stop, unfence), 'db stops before the unfencing');
    assert.ok(ordered(t, unfence, start), 'and starts after it');
  });

  it('names a changed agent as a device definition change', () => {
    const cib = cluster({
      nodes: ['n1'],
      props: { 'stonith-enabled': 'true' },
      resources: [scsi(), primitive('db')],
      status: [
        nodeState('n1', {
          attrs: UNFENCED,
          history: [scsiStarted({ devices: '/dev/sdb' }, 'fence_virt'), started('db')],
        }),
      ],
    });
    assert.deepEqual(squash(run(cib).summary), [
      "* Fence (on) n1 'Device definition changed'",
      '* Restart scsi ( n1 )',
      '* Restart db ( n1 ) due to required stonith',
    ]);
  });

  it('leaves resources that need only quorum alone when their node is unfenced', () => {
    const cib = cluster({
      nodes: ['n1'],
      props: { 'stonith-enabled': 'true' },
      resources: [scsi({ devices: '/dev/sdc' }), primitive('db', { meta: { requires: 'quorum' } })],
      status: [
        nodeState('n1', { attrs: UNFENCED, history: [scsiStarted({ devices: '/dev/sdb' }), started('db')] }),
      ],
    });
    assert.deepEqual(squash(run(cib).summary), [
      "* Fence (on) n1 'Device parameters changed'",
      '* Restart scsi ( n1 ) due to resource definition change',
    ]);
  });

  it('does not unfence when no device provides unfencing, or the node already was', () => {
    const plain = primitive('ipmi', { cls: 'stonith', type: 'fence_ipmilan' });
    const noProvider = cluster({
      nodes: ['n1'],
      props: { 'stonith-enabled': 'true' },
      resources: [plain, primitive('db')],
    });
    assert.deepEqual(run(noProvider).unfencing, []);
    const already = cluster({
      nodes: ['n1'],
      props: { 'stonith-enabled': 'true' },
      resources: [scsi(), primitive('db')],
      status: [nodeState('n1', { attrs: UNFENCED })],
    });
    const t = run(already);
    assert.deepEqual(t.unfencing, []);
    assert.ok(!t.actions.some((a) => a.task === 'unfence'));
  });

  it('never unfences with fencing disabled', () => {
    const cib = cluster({
      nodes: ['n1'],
      resources: [scsi(), primitive('db')],
    });
    assert.deepEqual(run(cib).unfencing, []);
  });
});
