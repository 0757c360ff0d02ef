import { assert } from '../lib/assert.ts';
import type { TimingProfile } from './profiles.ts';

/**
 * A heartbeat failure detector as a pure state machine: the shell calls `heartbeat()` for every
 * authenticated heartbeat and `tick()` on a timer (a few times per keepalive); both return the
 * events to act on. No clock, no timers: time arrives as arguments.
 *
 * A peer starts `unknown`; the first heartbeat makes it a `member`. Silence longer than the
 * (adaptive) warntime makes it `suspect`, longer than the (adaptive) deadtime `lost`; a fresh
 * heartbeat makes it a `member` again. A peer never heard from becomes `lost` after initdead.
 *
 * Only a fresh heartbeat is proof of life: one from a newer boot epoch than any seen from that
 * peer, or from the same epoch with a higher beat number than any seen. A beat from an older
 * epoch (a previous incarnation's packets still in flight or queued in a socket), or a copy of
 * a beat already seen (its twin on another link, a late duplicate), says nothing about whether
 * the peer is alive now: it is counted (`staleHeartbeats`) and changes nothing — in particular
 * a lost peer does not come back on it.
 *
 * The adaptive margin follows the measured inter-arrival times of the last samples: deadtime is
 * the largest of the profile's deadtime, mean + jitterK·stddev, and the profile's number of
 * missed beats at the measured rate, capped at deadtimeMax. A loaded host or a slow VM whose
 * heartbeats arrive late and irregularly therefore gets more slack before it is declared lost,
 * and a steady one is detected at the profile's deadtime.
 *
 * The detector is generic over the key so the transport can use it per link as well as per node.
 */
export type PeerState = 'unknown' | 'member' | 'suspect' | 'lost';

/** How many inter-arrival samples the jitter estimate uses (≈3 s of history at `lan`). */
export const JITTER_SAMPLES = 64;
/** Below this many samples the estimate is noise; use the profile's numbers as they are. */
export const MIN_JITTER_SAMPLES = 8;

export interface HeartbeatInfo {
  /** The sender's boot epoch; a higher one means the peer restarted. */
  readonly epoch: number;
  /** Heartbeat number within the epoch: the same beat arrives once per link. */
  readonly beat: number;
  /** Sender's wall clock (ms since epoch) when it sent the beat, if it says. */
  readonly senderWallMs?: number;
  /** Our wall clock when it arrived, for the skew estimate. */
  readonly receiverWallMs?: number;
}

export type DetectorEvent<K> =
  | {
      readonly kind: 'state';
      readonly peer: K;
      readonly from: PeerState;
      readonly to: PeerState;
      /** How long the peer had been silent when this happened (0 for a heartbeat). */
      readonly silentMs: number;
      /** The threshold that was crossed, so a log line can say "silent 260 ms > deadtime 250 ms". */
      readonly thresholdMs: number;
    }
  | { readonly kind: 'clock-skew'; readonly peer: K; readonly skewMs: number; readonly limitMs: number }
  | { readonly kind: 'peer-restarted'; readonly peer: K; readonly epoch: number }
  | { readonly kind: 'paused'; readonly pausedMs: number };

export interface PeerView<K> {
  readonly peer: K;
  readonly state: PeerState;
  readonly lastHeardMs: number | undefined;
  readonly epoch: number | undefined;
  readonly meanIntervalMs: number | undefined;
  readonly stddevIntervalMs: number | undefined;
  readonly deadtimeMs: number;
  readonly warntimeMs: number;
  readonly clockSkewMs: number | undefined;
  /** Heartbeats ignored as stale: an older boot epoch, or a beat number already seen. */
  readonly staleHeartbeats: number;
}

interface PeerRecord {
  state: PeerState;
  lastHeardMs: number | undefined;
  lastBeatMs: number | undefined;
  epoch: number | undefined;
  beat: number;
  samples: number[];
  next: number;
  skewMs: number | undefined;
  skewWarned: boolean;
  /** Which threshold the last tick found the silence over (confirmation needs two ticks). */
  over: 'none' | 'warntime' | 'deadtime';
  /** When the peer was added: initdead counts from here (a member added while running). */
  addedMs: number;
  /** Heartbeats that were not proof of life (see the class comment). */
  stale: number;
}

export class FailureDetector<K> {
  private readonly peers = new Map<K, PeerRecord>();
  private lastTickMs: number;

  constructor(
    readonly profile: TimingProfile,
    peers: Iterable<K>,
    startMs: number,
  ) {
    this.lastTickMs = startMs;
    for (const p of peers) this.addPeer(p, startMs);
  }

  /** Adds a peer; one never heard from is lost `initdeadMs` after `nowMs`. */
  addPeer(peer: K, nowMs: number): void {
    if (this.peers.has(peer)) return;
    this.peers.set(peer, {
      state: 'unknown',
      lastHeardMs: undefined,
      lastBeatMs: undefined,
      epoch: undefined,
      beat: -1,
      samples: [],
      next: 0,
      skewMs: undefined,
      skewWarned: false,
      over: 'none',
      addedMs: nowMs,
      stale: 0,
    });
  }

  removePeer(peer: K): void {
    this.peers.delete(peer);
  }

  state(peer: K): PeerState | undefined {
    return this.peers.get(peer)?.state;
  }

  heartbeat(peer: K, nowMs: number, info: HeartbeatInfo): DetectorEvent<K>[] {
    const r = this.peers.get(peer);
    if (!r) return [];
    const known = r.epoch;
    if (known !== undefined && (info.epoch < known || (info.epoch === known && info.beat <= r.beat))) {
      // Not proof of life (see the class comment): a lost peer must not come back on the beats
      // it sent before it died, nor a suspect one on a late copy of a beat already counted.
      r.stale++;
      return [];
    }
    const events: DetectorEvent<K>[] = [];
    if (known !== undefined && info.epoch > known) {
      events.push({ kind: 'peer-restarted', peer, epoch: info.epoch });
      r.beat = -1;
      r.lastBeatMs = undefined;
    }
    r.epoch = info.epoch;
    // Only the first copy of a beat (it is sent on every link) gets here and measures the interval.
    if (r.lastBeatMs !== undefined && info.beat === r.beat + 1) this.addSample(r, nowMs - r.lastBeatMs);
    r.beat = info.beat;
    r.lastBeatMs = nowMs;
    r.lastHeardMs = Math.max(r.lastHeardMs ?? nowMs, nowMs);
    r.over = 'none';
    if (r.state !== 'member') {
      events.push({ kind: 'state', peer, from: r.state, to: 'member', silentMs: 0, thresholdMs: 0 });
      r.state = 'member';
    }
    if (info.senderWallMs !== undefined && info.receiverWallMs !== undefined) {
      this.checkSkew(peer, r, info.senderWallMs - info.receiverWallMs, events);
    }
    return events;
  }

  /**
   * Advances time. A peer is declared suspect or lost only when two consecutive ticks find it
   * over the threshold: a shell's timer can fire before the packets that arrived meanwhile
   * are read (a busy or paused process runs timers first), so one late tick is not evidence.
   * A tick that comes far later than the keepalive (this process was paused) only reports the
   * pause; the next tick, after queued packets were read, judges.
   */
  tick(nowMs: number): DetectorEvent<K>[] {
    assert(nowMs >= this.lastTickMs, 'FailureDetector.tick: time went backwards');
    const events: DetectorEvent<K>[] = [];
    const gap = nowMs - this.lastTickMs;
    this.lastTickMs = nowMs;
    const pausedMs = gap - this.profile.keepaliveMs;
    if (pausedMs > this.profile.warntimeMs) {
      events.push({ kind: 'paused', pausedMs });
      for (const r of this.peers.values()) r.over = 'none';
      return events;
    }
    for (const [peer, r] of this.peers) this.evaluate(peer, r, nowMs, events);
    return events;
  }

  view(): PeerView<K>[] {
    return [...this.peers].map(([peer, r]) => {
      const { mean, sd } = stats(r.samples);
      const { deadtimeMs, warntimeMs } = this.thresholds(r);
      return {
        peer,
        state: r.state,
        lastHeardMs: r.lastHeardMs,
        epoch: r.epoch,
        meanIntervalMs: mean,
        stddevIntervalMs: sd,
        deadtimeMs,
        warntimeMs,
        clockSkewMs: r.skewMs,
        staleHeartbeats: r.stale,
      };
    });
  }

  private evaluate(peer: K, r: PeerRecord, nowMs: number, events: DetectorEvent<K>[]): void {
    if (r.lastHeardMs === undefined) {
      if (r.state === 'unknown' && nowMs - r.addedMs >= this.profile.initdeadMs) {
        r.state = 'lost';
        const silentMs = nowMs - r.addedMs;
        events.push({
          kind: 'state',
          peer,
          from: 'unknown',
          to: 'lost',
          silentMs,
          thresholdMs: this.profile.initdeadMs,
        });
      }
      return;
    }
    const silentMs = nowMs - r.lastHeardMs;
    const { deadtimeMs, warntimeMs } = this.thresholds(r);
    const over = silentMs >= deadtimeMs ? 'deadtime' : silentMs >= warntimeMs ? 'warntime' : 'none';
    const confirmed = over !== 'none' && (r.over === over || r.over === 'deadtime');
    r.over = over;
    if (!confirmed) return;
    if (over === 'deadtime' && r.state !== 'lost') {
      events.push({ kind: 'state', peer, from: r.state, to: 'lost', silentMs, thresholdMs: deadtimeMs });
      r.state = 'lost';
    } else if (over === 'warntime' && r.state === 'member') {
      events.push({ kind: 'state', peer, from: r.state, to: 'suspect', silentMs, thresholdMs: warntimeMs });
      r.state = 'suspect';
    }
  }

  private thresholds(r: PeerRecord): { deadtimeMs: number; warntimeMs: number } {
    const p = this.profile;
    if (r.samples.length < MIN_JITTER_SAMPLES) return { deadtimeMs: p.deadtimeMs, warntimeMs: p.warntimeMs };
    const { mean, sd } = stats(r.samples);
    const m = mean ?? p.keepaliveMs;
    const s = sd ?? 0;
    const adaptive = Math.max(p.deadtimeMs, m + p.jitterK * s, (p.deadtimeMs * m) / p.keepaliveMs);
    const deadtimeMs = Math.min(p.deadtimeMaxMs, adaptive);
    // Suspicion scales with the same factor, so warntime stays the same share of deadtime.
    const warntimeMs = (p.warntimeMs * deadtimeMs) / p.deadtimeMs;
    return { deadtimeMs, warntimeMs };
  }

  private addSample(r: PeerRecord, intervalMs: number): void {
    if (r.samples.length < JITTER_SAMPLES) r.samples.push(intervalMs);
    else r.samples[r.next] = intervalMs;
    r.next = (r.next + 1) % JITTER_SAMPLES;
  }

  private checkSkew(peer: K, r: PeerRecord, skewMs: number, events: DetectorEvent<K>[]): void {
    r.skewMs = skewMs;
    const limitMs = this.profile.maxClockSkewMs;
    if (Math.abs(skewMs) > limitMs && !r.skewWarned) {
      r.skewWarned = true;
      events.push({ kind: 'clock-skew', peer, skewMs, limitMs });
    } else if (Math.abs(skewMs) <= limitMs / 2) {
      // Hysteresis: warn again only after the clocks came clearly back into line.
      r.skewWarned = false;
    }
  }
}

function stats(samples: readonly number[]): { mean: number | undefined; sd: number | undefined } {
  if (samples.length === 0) return { mean: undefined, sd: undefined };
  let sum = 0;
  for (const x of samples) sum += x;
  const mean = sum / samples.length;
  let sq = 0;
  for (const x of samples) sq += (x - mean) * (x - mean);
  return { mean, sd: Math.sqrt(sq / samples.length) };
}
