import assert from 'node:assert/strict';
import { test } from 'node:test';
import { schedule } from '../scheduler/schedule.ts';
import { renderStatus } from './crm_mon.ts';
import { crmCib, startCluster } from './sim_harness_test_util.ts';

const CONFIG = `node 1: n1
node 2: n2
node 3: n3
primitive ip ocf:heartbeat:Dummy op monitor interval=10s
primitive web ocf:heartbeat:Dummy op monitor interval=10s
group g ip web
location l-prefer g 50: n1
property stonith-enabled=false
`;

test('status reads like crm_mon -1: DC and quorum, online nodes, the group with its node, and failed actions', () => {
  const sim = startCluster(CONFIG, ['n1', 'n2', 'n3']);
  sim.monitorFails('n1', 'web', 10_000);
  const text = renderStatus({ cib: sim.ctl.view().cib, dc: 'n1', quorate: true, nowMs: sim.nowMs, schedule });
  assert.match(
    text,
    /^Cluster Summary:\n {2}\* Stack: halo\n {2}\* Current DC: n1 \(version halo 0\.1\.0\) - partition with quorum\n/,
  );
  assert.match(text, /\* 3 nodes configured/);
  assert.match(text, /Node List:\n {2}\* Online: \[ n1 n2 n3 \]/);
  assert.match(
    text,
    /\* Resource Group: g:\n {4}\* ip\t\(ocf:heartbeat:Dummy\):\t Started n1\n {4}\* web\t\(ocf:heartbeat:Dummy\):\t Started n1/,
  );
  assert.match(
    text,
    /Failed Resource Actions:\n {2}\* web_monitor_10000 on n1 'not running' \(7\): call=\d+, status='complete', last-rc-change='2023-11-14T22:13:20Z', queued=0ms, exec=3ms/,
  );
});

test('status of a partition without quorum and of a lost node says so', () => {
  const sim = startCluster(CONFIG, ['n1', 'n2', 'n3']);
  sim.partition('n3');
  sim.send({ type: 'membership', members: ['n1', 'n2'] });
  const text = renderStatus({
    cib: sim.ctl.view().cib,
    dc: null,
    quorate: false,
    nowMs: sim.nowMs,
    schedule,
  });
  assert.match(text, /Current DC: NONE/);
  assert.match(text, /OFFLINE: \[ n3 \]|UNCLEAN|offline/i);
});

test('the node_state of a node removed from the cluster (no node entry) is ignored: not listed, nothing placed or running there, no failed actions', () => {
  const sim = startCluster(CONFIG, ['n1', 'n2', 'n3']);
  sim.monitorFails('n1', 'web', 10_000);
  const view = sim.ctl.view().cib;
  const n1 = view.status.find((s) => s.uname === 'n1')!;
  // n1's whole status (g started there, a failed monitor) left behind as an orphan named n9.
  const orphan = { ...n1, id: '9', uname: 'n9' };
  const two = crmCib(CONFIG.replace('node 1: n1\n', ''));
  const cib = {
    ...view,
    configuration: two.configuration,
    status: [...view.status.filter((s) => s.uname !== 'n1'), orphan],
  };
  const text = renderStatus({ cib, dc: 'n2', quorate: true, nowMs: sim.nowMs, schedule });
  assert.match(text, /\* 2 nodes configured/);
  assert.match(text, /Online: \[ n2 n3 \]/);
  assert.doesNotMatch(text, /n9/);
  assert.doesNotMatch(text, /Failed Resource Actions/);
  const r = schedule(cib, sim.nowMs, { textOutput: false });
  assert.ok(r.ok);
  const starts = r.transition.actions.filter((a) => a.task === 'start').map((a) => a.rsc);
  assert.ok(starts.includes('ip') && starts.includes('web'), 'g is started on a configured node');
});
