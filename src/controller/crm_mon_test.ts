import assert from 'node:assert/strict';
import { test } from 'node:test';
import { schedule } from '../scheduler/schedule.ts';
import { renderStatus } from './crm_mon.ts';
import { startCluster } from './sim_harness_test_util.ts';

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
