import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDuration } from './duration.ts';
import { addScores, formatScore, INFINITY, MINUS_INFINITY, parseScore } from './score.ts';

test('-INFINITY beats +INFINITY, and sums clamp at the infinities', () => {
  assert.equal(addScores(INFINITY, MINUS_INFINITY), MINUS_INFINITY);
  assert.equal(addScores(MINUS_INFINITY, INFINITY), MINUS_INFINITY);
  assert.equal(addScores(INFINITY, -5), INFINITY);
  assert.equal(addScores(999_999, 5), INFINITY);
  assert.equal(addScores(-999_999, -5), MINUS_INFINITY);
  assert.equal(addScores(100, -30), 70);
});

test('scores parse in CIB and crm spellings, and junk is rejected with a reason', () => {
  assert.deepEqual(parseScore('INFINITY'), { ok: true, score: INFINITY });
  assert.deepEqual(parseScore('+INFINITY'), { ok: true, score: INFINITY });
  assert.deepEqual(parseScore('-inf'), { ok: true, score: MINUS_INFINITY });
  assert.deepEqual(parseScore('inf'), { ok: true, score: INFINITY });
  assert.deepEqual(parseScore('2000000'), { ok: true, score: INFINITY });
  assert.deepEqual(parseScore('-100'), { ok: true, score: -100 });
  const bad = parseScore('lots');
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? '' : bad.reason, /'lots' is not a score/);
  assert.equal(formatScore(INFINITY), 'INFINITY');
  assert.equal(formatScore(-7), '-7');
});

test('durations accept bare seconds, units and ISO 8601', () => {
  assert.deepEqual(parseDuration('10'), { ok: true, ms: 10_000 });
  assert.deepEqual(parseDuration('10s'), { ok: true, ms: 10_000 });
  assert.deepEqual(parseDuration('500ms'), { ok: true, ms: 500 });
  assert.deepEqual(parseDuration('2min'), { ok: true, ms: 120_000 });
  assert.deepEqual(parseDuration('PT1M30S'), { ok: true, ms: 90_000 });
  assert.deepEqual(parseDuration('P1D'), { ok: true, ms: 86_400_000 });
  assert.deepEqual(parseDuration('P10S'), { ok: true, ms: 10_000 });
  assert.deepEqual(parseDuration('P1H'), { ok: true, ms: 3_600_000 });
  assert.deepEqual(parseDuration('P1M'), { ok: true, ms: 30 * 86_400_000 });
  assert.equal(parseDuration('soon').ok, false);
  assert.equal(parseDuration('10 parsecs').ok, false);
});
