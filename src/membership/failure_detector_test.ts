import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRng } from '../lib/prng.ts';
import { type DetectorEvent, FailureDetector } from './failure_detector.ts';
import { PROFILES, type ProfileName, validateProfile } from './profiles.ts';

const lan = PROFILES.lan;

/** Drives a detector with a simulated clock: beats every `intervalOf(i)` ms, ticks every 10 ms. */
function run(opts: { profile?: ProfileName; untilMs: number; beatTimes: number[]; tickMs?: number }): {
  events: Array<DetectorEvent<number> & { at: number }>;
  fd: FailureDetector<number>;
} {
  const p = PROFILES[opts.profile ?? 'lan'];
  const fd = new FailureDetector<number>(p, [2], 0);
  const events: Array<DetectorEvent<number> & { at: number }> = [];
  const beats = [...opts.beatTimes].sort((a, b) => a - b);
  let bi = 0;
  const tickMs = opts.tickMs ?? 5;
  for (let t = 0; t <= opts.untilMs; t += tickMs) {
    while (bi < beats.length && beats[bi]! <= t) {
      for (const e of fd.heartbeat(2, beats[bi]!, { epoch: 1, beat: bi }))
        events.push({ ...e, at: beats[bi]! });
      bi++;
    }
    for (const e of fd.tick(t)) events.push({ ...e, at: t });
  }
  return { events, fd };
}

function every(intervalMs: number, fromMs: number, toMs: number): number[] {
  const out: number[] = [];
  for (let t = fromMs; t <= toMs; t += intervalMs) out.push(t);
  return out;
}

function transitions(events: ReadonlyArray<DetectorEvent<number> & { at: number }>): string[] {
  return events.flatMap((e) => (e.kind === 'state' ? [`${e.from}->${e.to}`] : []));
}

test('every named profile is self-consistent', () => {
  for (const name of ['lan', 'fast', 'wan', 'lab'] as const) validateProfile(PROFILES[name], name);
  assert.throws(() => validateProfile({ ...lan, deadtimeMs: 100, warntimeMs: 150 }), { code: 'bad-timing' });
});

test('a peer that stops sending goes member → suspect → lost at warntime and deadtime', () => {
  const { events } = run({ untilMs: 2000, beatTimes: every(50, 0, 1000) });
  assert.deepEqual(transitions(events), ['unknown->member', 'member->suspect', 'suspect->lost']);
  const suspect = events.find((e) => e.kind === 'state' && e.to === 'suspect')!;
  const lost = events.find((e) => e.kind === 'state' && e.to === 'lost')!;
  assert.ok(
    suspect.at >= 1000 + lan.warntimeMs && suspect.at < 1000 + lan.warntimeMs + 10,
    `suspect at ${suspect.at}`,
  );
  assert.ok(lost.at >= 1000 + lan.deadtimeMs && lost.at < 1000 + lan.deadtimeMs + 10, `lost at ${lost.at}`);
});

test('a peer that comes back after being lost rejoins as a member', () => {
  const beats = [...every(50, 0, 1000), ...every(50, 2000, 2500)];
  const { events, fd } = run({ untilMs: 2500, beatTimes: beats });
  assert.deepEqual(transitions(events), [
    'unknown->member',
    'member->suspect',
    'suspect->lost',
    'lost->member',
  ]);
  assert.equal(fd.state(2), 'member');
});

test('a peer never heard from is lost only after initdead', () => {
  const { events } = run({ untilMs: lan.initdeadMs + 100, beatTimes: [] });
  const lost = events.find((e) => e.kind === 'state' && e.to === 'lost')!;
  assert.equal(lost.at, lan.initdeadMs);
});

test('on a steady link, jitter of a few ms keeps the profile deadtime', () => {
  const rng = new SeededRng(1);
  const beats = every(50, 0, 3000).map((t) => t + rng.int(3));
  const { fd } = run({ untilMs: 3000, beatTimes: beats });
  const d = fd.view()[0]!.deadtimeMs;
  assert.ok(d >= lan.deadtimeMs && d < lan.deadtimeMs + 5, `deadtime ${d}`);
});

test('a loaded host whose heartbeats arrive in irregular bursts is not declared lost', () => {
  // The sender stalls now and then for 150–400 ms (a busy host), longer than the plain deadtime.
  const rng = new SeededRng(7);
  const beats: number[] = [];
  for (let t = 0; t < 20_000; t += 50) {
    if (rng.int(10) === 0) t += 150 + rng.int(250);
    beats.push(t + rng.int(10));
  }
  // Warm up with the irregular pattern; then check there was no loss after the estimate settled.
  const { events } = run({ untilMs: 20_000, beatTimes: beats });
  const lostAfterWarmup = events.filter((e) => e.kind === 'state' && e.to === 'lost' && e.at > 2000);
  assert.deepEqual(lostAfterWarmup, []);
  // The same pattern with the adaptive margin turned off (jitterK 0, max = deadtime) does flap.
  const p = { ...lan, jitterK: 0, deadtimeMaxMs: lan.deadtimeMs };
  const fd = new FailureDetector<number>(p, [2], 0);
  let losses = 0;
  let bi = 0;
  const sorted = [...beats].sort((a, b) => a - b);
  for (let t = 0; t <= 20_000; t += 5) {
    while (bi < sorted.length && sorted[bi]! <= t) fd.heartbeat(2, sorted[bi]!, { epoch: 1, beat: bi++ });
    losses += fd.tick(t).filter((e) => e.kind === 'state' && e.to === 'lost').length;
  }
  assert.ok(losses > 0, 'the fixed deadtime should have flapped on this pattern');
});

test('adaptive deadtime never exceeds deadtimeMax, so a dead loaded peer is still detected', () => {
  const rng = new SeededRng(3);
  const beats: number[] = [];
  for (let t = 0; t < 5000; t += 50) beats.push(t + rng.int(400));
  const { events, fd } = run({ untilMs: 8000, beatTimes: beats });
  assert.ok(fd.view()[0]!.deadtimeMs <= lan.deadtimeMaxMs);
  const lastBeat = Math.max(...beats);
  const lost = events.filter((e) => e.kind === 'state' && e.to === 'lost').at(-1)!;
  assert.ok(
    lost.at - lastBeat <= lan.deadtimeMaxMs + 10,
    `lost ${lost.at - lastBeat} ms after the last beat`,
  );
});

test('copies of one beat arriving on several links do not distort the interval estimate', () => {
  const fd = new FailureDetector<number>(lan, [2], 0);
  for (let b = 0; b < 40; b++) {
    fd.heartbeat(2, b * 50, { epoch: 1, beat: b });
    fd.heartbeat(2, b * 50 + 1, { epoch: 1, beat: b }); // second link, 1 ms later
    fd.tick(b * 50 + 1);
  }
  assert.equal(fd.view()[0]!.meanIntervalMs, 50);
});

test('when our own process stalls, the late tick judges nobody; the next one does, after queued packets', () => {
  const fd = new FailureDetector<number>(lan, [2, 3], 0);
  for (let b = 0; b <= 20; b++) {
    fd.heartbeat(2, b * 50, { epoch: 1, beat: b });
    fd.heartbeat(3, b * 50, { epoch: 1, beat: b });
    fd.tick(b * 50);
  }
  // Our timer fires 2 s late (GC pause, SIGSTOP, overloaded host): no verdict on that tick.
  const ev = fd.tick(1000 + 2000);
  assert.deepEqual(ev, [{ kind: 'paused', pausedMs: 2000 - lan.keepaliveMs }]);
  // Node 2's beats were queued in the socket meanwhile and are read now; node 3 sent nothing.
  fd.heartbeat(2, 3001, { epoch: 1, beat: 21 });
  assert.deepEqual(fd.tick(3005), []);
  const lost = fd.tick(3010).filter((e) => e.kind === 'state');
  assert.deepEqual(
    lost.map((e) => e.kind === 'state' && `${e.peer}:${e.to}`),
    ['3:lost'],
  );
  assert.equal(fd.state(2), 'member');
});

test('a single late tick without a pause does not declare a peer lost before its packets are read', () => {
  const fd = new FailureDetector<number>(lan, [2], 0);
  for (let b = 0; b <= 20; b++) {
    fd.heartbeat(2, b * 50, { epoch: 1, beat: b });
    fd.tick(b * 50);
  }
  const lost = (evs: ReturnType<typeof fd.tick>): unknown[] =>
    evs.filter((e) => e.kind === 'state' && e.to === 'lost');
  for (let t = 1010; t < 1000 + lan.deadtimeMs; t += 10) fd.tick(t);
  // A tick finds node 2 silent past deadtime, but its next beat was already waiting in the socket.
  assert.deepEqual(lost(fd.tick(1000 + lan.deadtimeMs + 5)), []);
  fd.heartbeat(2, 1000 + lan.deadtimeMs + 6, { epoch: 1, beat: 21 });
  assert.deepEqual(lost(fd.tick(1000 + lan.deadtimeMs + 10)), []);
  assert.equal(fd.state(2), 'member');
});

test('a clock difference beyond the limit is reported once, and again only after it was fixed', () => {
  const fd = new FailureDetector<number>(lan, [2], 0);
  const skews = [0, 5000, 5000, 0, 4000];
  const reported = skews.flatMap((skew, i) =>
    fd
      .heartbeat(2, i * 50, { epoch: 1, beat: i, senderWallMs: 1e12 + skew, receiverWallMs: 1e12 })
      .filter((e) => e.kind === 'clock-skew')
      .map((e) => (e.kind === 'clock-skew' ? e.skewMs : 0)),
  );
  assert.deepEqual(reported, [5000, 4000]);
});

test('a restarted peer (higher epoch) is reported', () => {
  const fd = new FailureDetector<number>(lan, [2], 0);
  fd.heartbeat(2, 0, { epoch: 1, beat: 5 });
  const ev = fd.heartbeat(2, 50, { epoch: 2, beat: 0 });
  assert.deepEqual(ev, [{ kind: 'peer-restarted', peer: 2, epoch: 2 }]);
});

test('the fast profile detects a silent peer within about 50 ms', () => {
  const { events } = run({ profile: 'fast', untilMs: 1500, beatTimes: every(10, 0, 1000), tickMs: 1 });
  const lost = events.find((e) => e.kind === 'state' && e.to === 'lost')!;
  // Two consecutive ticks over deadtime confirm the loss: one tick (1 ms here) after deadtime.
  assert.equal(lost.at - 1000, PROFILES.fast.deadtimeMs + 1);
});

test('a peer added while running gets its own initdead grace before it is declared lost', () => {
  const d = new FailureDetector<string>(PROFILES.lan, ['b'], 0);
  d.tick(10_000);
  d.addPeer('new', 10_000);
  const during: string[] = [];
  for (let t = 10_010; t < 10_000 + PROFILES.lan.initdeadMs; t += 10)
    for (const ev of d.tick(t)) if (ev.kind === 'state' && ev.peer === 'new') during.push(ev.to);
  assert.deepEqual(during, []);
  assert.equal(d.state('new'), 'unknown');
  const after = d.tick(10_000 + PROFILES.lan.initdeadMs);
  assert.ok(after.some((ev) => ev.kind === 'state' && ev.peer === 'new' && ev.to === 'lost'));
});

/** Beats 0..20 every 50 ms at `epoch`, then silence until the peer is lost; returns the detector. */
function lostAfterBeats(epochs: readonly number[]): { fd: FailureDetector<number>; at: number } {
  const fd = new FailureDetector<number>(lan, [2], 0);
  let t = 0;
  for (const epoch of epochs)
    for (let b = 0; b <= 20; b++, t += 50) {
      fd.heartbeat(2, t, { epoch, beat: b });
      fd.tick(t);
    }
  const silentFrom = t;
  for (; t <= silentFrom + lan.deadtimeMaxMs + 100; t += 10) fd.tick(t);
  assert.equal(fd.state(2), 'lost');
  return { fd, at: t };
}

test('a lost peer does not come back on a heartbeat from its previous boot still in flight', () => {
  // The peer ran as epoch 1, restarted as epoch 2, then died (fenced "off").
  const { fd, at } = lostAfterBeats([1, 2]);
  // A beat of the dead epoch-1 incarnation (a high beat number) surfaces late from a socket.
  const ev = fd.heartbeat(2, at, { epoch: 1, beat: 500 });
  assert.deepEqual(ev, []);
  assert.equal(fd.state(2), 'lost');
  fd.tick(at + 10);
  assert.equal(fd.state(2), 'lost');
  assert.equal(fd.view()[0]!.epoch, 2);
  assert.equal(fd.view()[0]!.staleHeartbeats, 1);
});

test('a lost peer does not come back on a late copy of a beat it sent before it was lost', () => {
  const { fd, at } = lostAfterBeats([1]);
  // Beat 20 was already counted on link 1; its copy on link 2 arrives after the loss.
  assert.deepEqual(fd.heartbeat(2, at, { epoch: 1, beat: 20 }), []);
  assert.deepEqual(fd.heartbeat(2, at + 1, { epoch: 1, beat: 3 }), []);
  assert.equal(fd.state(2), 'lost');
  assert.equal(fd.view()[0]!.staleHeartbeats, 2);
  // A beat it had not sent before (the partition healed) is fresh evidence: it rejoins.
  const back = fd.heartbeat(2, at + 50, { epoch: 1, beat: 21 });
  assert.deepEqual(back, [
    { kind: 'state', peer: 2, from: 'lost', to: 'member', silentMs: 0, thresholdMs: 0 },
  ]);
});

test('a lost peer that rebooted rejoins on its first heartbeat of the new epoch', () => {
  const { fd, at } = lostAfterBeats([1]);
  const ev = fd.heartbeat(2, at, { epoch: 2, beat: 0 });
  assert.deepEqual(ev, [
    { kind: 'peer-restarted', peer: 2, epoch: 2 },
    { kind: 'state', peer: 2, from: 'lost', to: 'member', silentMs: 0, thresholdMs: 0 },
  ]);
  // And from then on the old incarnation's beats are ignored.
  assert.deepEqual(fd.heartbeat(2, at + 1, { epoch: 1, beat: 21 }), []);
  assert.equal(fd.view()[0]!.epoch, 2);
});

test('a late copy of an old beat does not keep a silent peer from becoming suspect and lost', () => {
  const fd = new FailureDetector<number>(lan, [2], 0);
  for (let b = 0; b <= 20; b++) {
    fd.heartbeat(2, b * 50, { epoch: 1, beat: b });
    fd.tick(b * 50);
  }
  const states: string[] = [];
  for (let t = 1010; t <= 1000 + lan.deadtimeMaxMs + 100; t += 10) {
    // Every 50 ms a copy of beat 20 (a duplicating link) arrives: no proof of life.
    if (t % 50 === 0) fd.heartbeat(2, t, { epoch: 1, beat: 20 });
    for (const e of fd.tick(t)) if (e.kind === 'state') states.push(e.to);
  }
  assert.deepEqual(states, ['suspect', 'lost']);
});
