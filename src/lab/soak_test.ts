import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { labUp } from './lab.ts';
import { hasNetnsSupport } from './netns.ts';
import { WEB_SERVER_RESOURCE } from './scenarios.ts';
import {
  compareSamples,
  countIncidents,
  formatSoakResult,
  type SoakSample,
  soakPhase,
  waitSteady,
} from './soak.ts';
import { removeTestLab } from './testing.ts';

/** CI's share of the 10-minute bench (bench/cluster_soak_bench.ts): 10 s idle + 10 s busy. */
const SOAK_SECONDS = 10;
const SETTLE_DEADLINE_MS = 90_000;

function sample(over: Partial<SoakSample> = {}): SoakSample {
  return {
    tMs: 0,
    dc: 'n1',
    quorate: new Map([
      ['n1', true],
      ['n2', true],
    ]),
    membership: new Map([
      ['n1>n2', 'member'],
      ['n2>n1', 'member'],
    ]),
    active: new Map([
      ['vip', 'n2'],
      ['www', 'n2'],
    ]),
    starts: new Map([['n2/www', '4@1700000000']]),
    failures: new Map([['g-web', 0]]),
    vip: 'n2',
    webServer: '123@n2',
    ...over,
  };
}

describe('soak sample comparison', () => {
  it('two identical samples show no event', () => {
    assert.deepEqual(compareSamples(sample(), sample()), []);
  });

  it('a move, a restart, a failure and a lost node each count as unplanned', () => {
    const kinds = (b: Partial<SoakSample>) => compareSamples(sample(), sample(b)).map((e) => e.kind);
    assert.deepEqual(
      kinds({
        active: new Map([
          ['vip', 'n1'],
          ['www', 'n2'],
        ]),
      }),
      ['moved'],
    );
    assert.deepEqual(kinds({ starts: new Map([['n2/www', '9@1700000050']]) }), ['restarted']);
    assert.deepEqual(kinds({ webServer: '456@n2' }), ['restarted']);
    assert.deepEqual(kinds({ failures: new Map([['g-web', 1]]) }), ['failed']);
    assert.deepEqual(
      kinds({
        membership: new Map([
          ['n1>n2', 'lost'],
          ['n2>n1', 'member'],
        ]),
      }),
      ['node-lost'],
    );
    assert.deepEqual(kinds({ vip: '' }), ['moved']);
  });

  it('a new DC is reported, and its rebuilt start records are not taken for restarts', () => {
    const e = compareSamples(sample(), sample({ dc: 'n2', starts: new Map([['n2/www', '1@1700000000']]) }));
    assert.deepEqual(
      e.map((x) => x.kind),
      ['dc-changed'],
    );
  });
});

describe('soak incidents', () => {
  it('the events of one lost node count as one unplanned failover; a DC change alone counts none', () => {
    const at = (tMs: number, kind: 'moved' | 'node-lost' | 'dc-changed') => ({ tMs, kind, what: '' });
    assert.equal(countIncidents([at(0, 'dc-changed')]), 0);
    assert.equal(countIncidents([at(1000, 'moved'), at(1200, 'node-lost'), at(1500, 'moved')]), 1);
    assert.equal(countIncidents([at(1000, 'moved'), at(60_000, 'moved')]), 2);
  });
});

describe('cluster soak', () => {
  it('the web scenario runs 10 s idle and 10 s with every core busy without an unplanned failover', {
    skip: !hasNetnsSupport() && 'needs root and ip netns',
    timeout: 240_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'halo-soaktest-'));
    let namespaces: readonly string[] = [];
    try {
      const state = await labUp({ dir, nodes: 3, scenario: 'web' });
      namespaces = state.namespaces;
      let baseline = await waitSteady(state, SETTLE_DEADLINE_MS);
      for (const mode of ['idle', 'busy'] as const) {
        const r = await soakPhase({
          state,
          mode,
          seconds: SOAK_SECONDS,
          cores: availableParallelism(),
          baseline,
        });
        const line = formatSoakResult(r);
        assert.ok(r.samples > 0, `no sample could be taken: ${line}`);
        assert.equal(
          r.unplannedFailovers,
          0,
          `${line}\n${r.events.map((e) => `${e.kind}: ${e.what}`).join('\n')}`,
        );
        assert.equal(r.endOn, baseline.active.get(WEB_SERVER_RESOURCE), 'the web group is where it was');
        baseline = r.last;
      }
    } finally {
      await removeTestLab(dir);
    }
    for (const ns of namespaces) assert.ok(!existsSync(`/run/netns/${ns}`), `namespace ${ns} left behind`);
  });
});
