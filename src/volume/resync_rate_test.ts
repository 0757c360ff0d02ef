import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDrbdConf } from '../cib/drbd_conf.ts';
import { SeededRng } from '../lib/prng.ts';
import { BLOCK_BYTES } from './bitmap.ts';
import { volumeConfigFromDrbd } from './config.ts';
import {
  DYNAMIC_RESYNC_DEFAULTS,
  type DynamicResyncRate,
  RESYNC_STEP_MS,
  ResyncRateController,
} from './resync_rate.ts';
import { SimPair, testConfig } from './sim_pair.ts';

const MiB = 1024 * 1024;

/**
 * A link the controller drives: what it allows is sent at once, the link delivers at most
 * `capacity` per second, and each delivered byte is acknowledged `latencySteps` steps later.
 */
function runLink(
  cfg: DynamicResyncRate,
  o: { capacity: number; latencySteps: number; steps: number; appIo?: (step: number) => boolean },
) {
  const ctl = new ResyncRateController(cfg);
  let queued = 0;
  const acks: number[] = new Array(o.latencySteps).fill(0);
  let inFlight = 0;
  let acked = 0;
  const perStep: { req: number; acked: number; inFlight: number }[] = [];
  for (let i = 0; i < o.steps; i++) {
    const req = ctl.step({ ackedBytes: acked, inFlightBytes: inFlight, appIo: o.appIo?.(i) ?? false });
    perStep.push({ req, acked, inFlight });
    queued += req;
    inFlight += req;
    const delivered = Math.min(queued, (o.capacity * RESYNC_STEP_MS) / 1000);
    queued -= delivered;
    acks.push(delivered);
    acked = acks.shift()!;
    inFlight -= acked;
  }
  return perStep;
}

const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const perSec = (bytesPerStep: number) => (bytesPerStep * 1000) / RESYNC_STEP_MS;

test('the dynamic controller settles at the link speed when the link is slower than c-max-rate', () => {
  const cfg = { ...DYNAMIC_RESYNC_DEFAULTS, maxRateBytesPerSec: 200 * MiB };
  const steps = runLink(cfg, { capacity: 40 * MiB, latencySteps: 2, steps: 600 });
  const late = steps.slice(300);
  const rate = perSec(avg(late.map((s) => s.acked)));
  assert.ok(rate > 0.9 * 40 * MiB && rate <= 40 * MiB * 1.01, `settled at ${(rate / MiB).toFixed(1)} MiB/s`);
  // The delay target (1 s) bounds what waits in the link: about one second of traffic.
  const inFlight = avg(late.map((s) => s.inFlight));
  assert.ok(inFlight < 1.5 * 40 * MiB, `in flight ${(inFlight / MiB).toFixed(1)} MiB`);
});

test('the dynamic controller never asks for more than c-max-rate', () => {
  const cfg = { ...DYNAMIC_RESYNC_DEFAULTS, maxRateBytesPerSec: 20 * MiB };
  const steps = runLink(cfg, { capacity: 500 * MiB, latencySteps: 1, steps: 400 });
  for (const s of steps) assert.ok(perSec(s.req) <= 20 * MiB + 1, `asked ${perSec(s.req)} B/s`);
  assert.ok(perSec(avg(steps.slice(200).map((s) => s.acked))) > 0.95 * 20 * MiB, 'and reaches it');
});

test('with c-fill-target the controller keeps about that much in flight', () => {
  const cfg = { ...DYNAMIC_RESYNC_DEFAULTS, fillTargetBytes: 4 * MiB, maxRateBytesPerSec: 1000 * MiB };
  const steps = runLink(cfg, { capacity: 100 * MiB, latencySteps: 3, steps: 600 });
  const inFlight = avg(steps.slice(300).map((s) => s.inFlight));
  assert.ok(Math.abs(inFlight - 4 * MiB) < 0.5 * MiB, `in flight ${(inFlight / MiB).toFixed(2)} MiB`);
});

test('application I/O holds resync to c-min-rate; c-min-rate 0 never holds it back', () => {
  const cfg = { ...DYNAMIC_RESYNC_DEFAULTS, maxRateBytesPerSec: 100 * MiB, minRateBytesPerSec: 4 * MiB };
  const busy = runLink(cfg, { capacity: 100 * MiB, latencySteps: 1, steps: 300, appIo: (i) => i >= 100 });
  for (const s of busy.slice(100)) assert.ok(perSec(s.req) <= 4 * MiB + 1);
  assert.ok(
    perSec(avg(busy.slice(50, 100).map((s) => s.acked))) > 50 * MiB,
    'full speed before the app writes',
  );
  const free = runLink(
    { ...cfg, minRateBytesPerSec: 0 },
    { capacity: 100 * MiB, latencySteps: 1, steps: 300, appIo: () => true },
  );
  assert.ok(perSec(avg(free.slice(200).map((s) => s.acked))) > 90 * MiB);
});

function confWith(disk: string): string {
  return `resource r0 {
  disk { ${disk} }
  on alpha { device /dev/drbd0; disk /tmp/a; address 127.0.0.1:7788; meta-disk internal; }
  on bravo { device /dev/drbd0; disk /tmp/b; address 127.0.0.1:7789; meta-disk internal; }
}
`;
}

function cfgOf(disk: string) {
  const p = parseDrbdConf(confWith(disk), 'drbd.conf');
  assert.ok(p.ok);
  return volumeConfigFromDrbd(p.config, 'r0', 'alpha');
}

test("drbd.conf c-* options configure the controller in drbd.conf's units; bad values are clear errors", () => {
  const c = cfgOf('resync-rate 10M; c-plan-ahead 30; c-fill-target 2048; c-max-rate 300M; c-min-rate 1M;');
  assert.deepEqual(c.resyncDynamic, {
    planAheadSteps: 30,
    fillTargetBytes: 2048 * 512,
    delayTargetMs: 1000,
    maxRateBytesPerSec: 300 * MiB,
    minRateBytesPerSec: MiB,
    initialRateBytesPerSec: 10 * MiB,
  });
  assert.equal(cfgOf('c-max-rate 50M;').resyncDynamic?.planAheadSteps, 20, 'any c-* option turns it on');
  assert.equal(cfgOf('resync-rate 33M;').resyncDynamic, undefined, 'a plain rate stays fixed');
  const off = cfgOf('c-plan-ahead 0; c-max-rate 50M;');
  assert.equal(off.resyncDynamic, undefined);
  assert.equal(off.resyncRateBytesPerSec, 50 * MiB, 'c-plan-ahead 0: fixed, as before');
  assert.throws(() => cfgOf('c-plan-ahead 9999;'), /c-plan-ahead "9999" must be 0\.\.300/);
  assert.throws(() => cfgOf('c-max-rate fast;'), /c-max-rate: cannot parse size "fast"/);
});

test('a resync under the dynamic controller runs at c-max-rate in simulated time and converges', () => {
  const size = 2 * MiB;
  const dyn = { ...DYNAMIC_RESYNC_DEFAULTS, maxRateBytesPerSec: 1 * MiB, initialRateBytesPerSec: 1 * MiB };
  const mk = (self: string, peer: string) => ({ ...testConfig(self, peer), resyncDynamic: dyn });
  const p = new SimPair(new SeededRng(3), size, mk('alpha', 'bravo'), mk('bravo', 'alpha'));
  p.a.core.connect(false);
  p.b.core.connect(false);
  p.settle();
  assert.ok(p.a.core.promote(true).ok);
  const t0 = p.nowMs;
  // Rate-limited: the pair goes idle between controller steps, so time is advanced by hand.
  for (let i = 0; i < 2000 && p.b.core.status().disk !== 'UpToDate'; i++) {
    p.tick(50);
    p.settle();
  }
  const took = p.nowMs - t0;
  assert.equal(p.b.core.status().disk, 'UpToDate');
  assert.ok(Buffer.from(p.a.disk).equals(Buffer.from(p.b.disk)));
  // 2 MiB at 1 MiB/s: about 2 s of simulated time, never faster than c-max-rate allows.
  assert.ok(took >= 1800 && took < 4000, `full sync took ${took} ms`);
  assert.equal(p.a.core.status().counters.resyncBytesSent, (size / BLOCK_BYTES) * BLOCK_BYTES);
});
