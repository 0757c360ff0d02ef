import assert from 'node:assert/strict';
import { test } from 'node:test';
import { median, phasesFromLogs, serviceGap } from './bench.ts';

test('the service gap runs from the first failed probe to the first answer from another node', () => {
  const ev = [
    { ok: true, node: 'n1', atMs: 900 },
    { ok: false, node: null, atMs: 1_300 },
    { ok: true, node: 'n2', atMs: 1_750 },
  ];
  assert.deepEqual(serviceGap(ev, 1_000, 'n1'), { gapMs: 450, back: ev[2] });
  // The old node answering after the fault (its daemon killed, its server not yet fenced) is not recovery.
  const late = [
    { ok: true, node: 'n1', atMs: 900 },
    { ok: false, node: null, atMs: 1_200 },
  ];
  assert.deepEqual(serviceGap(late, 1_000, 'n1'), { gapMs: null, back: undefined });
  // Handed over without a failed probe: no gap.
  const seamless = [
    { ok: true, node: 'n1', atMs: 900 },
    { ok: true, node: 'n2', atMs: 1_100 },
  ];
  assert.equal(serviceGap(seamless, 1_000, 'n1').gapMs, 0);
});

test('phase times come from the survivors’ log events after the fault', () => {
  const t0 = 10_000;
  const lines = [
    { t: 9_000, event: 'member-state', peer: 'n1', to: 'lost' },
    { t: 10_250, event: 'member-state', peer: 'n1', to: 'lost', node: 'n2' },
    { t: 10_300, event: 'leader', leader: 'n2', node: 'n3' },
    {
      t: 10_320,
      component: 'controller',
      msg: "transition 4: * Fence (off) n1 'peer is no longer part of the cluster'",
    },
    { t: 10_480, component: 'controller', msg: 'fenced n1: off of n1 succeeded via fence-lab', node: 'n1' },
    { t: 10_500, event: 'op-done', resource: 'vip', op: 'start', rc: 0, node: 'n3' },
    { t: 10_640, event: 'op-done', resource: 'www', op: 'start', rc: 0, node: 'n3' },
  ];
  assert.deepEqual(phasesFromLogs(lines, t0, 'n1', true), {
    detectedMs: 250,
    newDcMs: 300,
    scheduledMs: 320,
    fencedMs: 480,
    vipUpMs: 500,
    serverUpMs: 640,
  });
  assert.equal(phasesFromLogs(lines, t0, 'n1', false).newDcMs, null);
  assert.equal(phasesFromLogs([], t0, 'n1', false).fencedMs, null);
});

test('medians skip trials that measured nothing', () => {
  assert.equal(median([3, null, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 3);
  assert.equal(median([null]), null);
});
