import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OpHistory, ResourceHistory } from '../cib/model.ts';
import { opDigest } from '../cib/op_digest.ts';
import { schedule } from './schedule.ts';
import { cluster, nodeState, primitive, started } from './testing.ts';

const NOW = Date.UTC(2026, 0, 1);

function summary(cib: Parameters<typeof schedule>[0]): string[] {
  const r = schedule(cib, NOW);
  if (!r.ok) assert.fail(r.message);
  return r.transition.summary.map((l) => l.replace(/\s+/g, ' ').trim());
}

/** History of `a` started with these parameters, its start carrying the given digest fields. */
function startedWith(start: Partial<OpHistory>, attrs: Record<string, string> = {}): ResourceHistory {
  const h = started('a');
  return {
    ...h,
    ops: h.ops.map((op) =>
      op.operation === 'start' ? { ...op, ...start, attrs: { ...op.attrs, ...attrs } } : op,
    ),
  };
}

function run(params: Record<string, string>, history: ResourceHistory): string[] {
  return summary(
    cluster({
      nodes: ['n1', 'n2'],
      resources: [primitive('a', { params })],
      status: [nodeState('n1', { history: [history] })],
    }),
  );
}

describe('definition changes (operation digests)', () => {
  it('leaves a resource alone when its parameters are the ones it was started with', () => {
    const h = startedWith({ opDigest: opDigest({ ip: '10.0.0.1' }) });
    assert.deepEqual(run({ ip: '10.0.0.1' }, h), []);
  });

  it('restarts a resource whose parameters changed since it started', () => {
    const h = startedWith({ opDigest: opDigest({ ip: '10.0.0.1' }) });
    assert.deepEqual(run({ ip: '10.0.0.2' }, h), ['* Restart a ( n1 ) due to resource definition change']);
  });

  it('reloads instead when only parameters the agent can reload changed', () => {
    const h = startedWith(
      {
        opDigest: opDigest({ ip: '10.0.0.1', loglevel: '1' }),
        opRestartDigest: opDigest({ ip: '10.0.0.1' }),
      },
      { 'op-force-restart': ' ip ' },
    );
    assert.deepEqual(run({ ip: '10.0.0.1', loglevel: '2' }, h), ['* Reload a ( n1 )']);
    assert.deepEqual(run({ ip: '10.0.0.9', loglevel: '1' }, h), [
      '* Restart a ( n1 ) due to resource definition change',
    ]);
  });

  it('ignores a change of private parameters only (masked in the recorded history)', () => {
    const h = startedWith(
      { opDigest: opDigest({ ip: '10.0.0.1', passwd: 'old' }), opSecureDigest: opDigest({ ip: '10.0.0.1' }) },
      { 'op-secure-params': ' passwd ', crm_feature_set: '3.16.0' },
    );
    assert.deepEqual(run({ ip: '10.0.0.1', passwd: 'new' }, h), []);
  });

  it('restarts without a reason when the agent type changed', () => {
    const h = { ...startedWith({ opDigest: opDigest({}) }), type: 'Stateful' };
    assert.deepEqual(run({}, h), ['* Restart a ( n1 )']);
  });
});
