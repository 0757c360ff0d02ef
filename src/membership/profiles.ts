import { HaloError } from '../lib/errors.ts';

/**
 * Heartbeat's timing knobs (ha.cf: keepalive, warntime, deadtime, initdead) plus the bounds of
 * the adaptive margin. All in milliseconds.
 */
export interface TimingProfile {
  /** How often each node sends a heartbeat on every link. */
  readonly keepaliveMs: number;
  /** Silence after which a peer becomes `suspect` (and a "late heartbeat" warning is logged). */
  readonly warntimeMs: number;
  /** Silence after which a peer is `lost`, when heartbeats arrive as regularly as expected. */
  readonly deadtimeMs: number;
  /** Upper bound of the adaptive deadtime: jitter can stretch deadtime up to here, never past. */
  readonly deadtimeMaxMs: number;
  /** Grace after start before a peer never heard from is declared lost (boot takes a while). */
  readonly initdeadMs: number;
  /** Adaptive margin: deadtime ≥ mean inter-arrival + jitterK × its standard deviation. */
  readonly jitterK: number;
  /** Warn when a peer's wall clock differs from ours by more than this. */
  readonly maxClockSkewMs: number;
}

export const PROFILE_NAMES = ['lan', 'fast', 'wan', 'lab'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

export const PROFILES: Readonly<Record<ProfileName, TimingProfile>> = {
  // The default: switched Ethernet, sub-millisecond RTT, hosts that may be busy.
  lan: {
    keepaliveMs: 50, // 20 heartbeats/s/link: negligible traffic (≈100 B each), fine time resolution.
    warntimeMs: 150, // 3 missed beats: worth a log line, not yet worth acting on.
    deadtimeMs: 250, // 5 missed beats: detection ≈ 200–250 ms leaves room in a 0.5 s failover budget.
    deadtimeMaxMs: 800, // A loaded host may stretch deadtime this far; beyond it a 1 s failover goal is lost.
    initdeadMs: 2_000, // Peers usually start within a second or two of each other (systemd boot order).
    jitterK: 8, // Far in the tail: Chebyshev bounds a false loss at ≤ 1/64 of jitter spikes even if skewed.
    maxClockSkewMs: 1_000, // Log timestamps across nodes stop lining up beyond this; run NTP.
  },
  // Dedicated back-to-back links, idle hosts: trades CPU wakeups for detection speed.
  fast: {
    keepaliveMs: 10, // 100 beats/s/link: still < 0.1 % of one core in our measurements.
    warntimeMs: 30, // 3 missed beats.
    deadtimeMs: 50, // 5 missed beats → detection 45–57 ms measured (median 48–52) with SCHED_RR daemons on a loaded host.
    deadtimeMaxMs: 200, // A GC pause or a busy core can take tens of ms; cap the stretch at 4× deadtime.
    initdeadMs: 1_000, // Fast profile is for well-known hardware that boots together.
    jitterK: 8, // Same tail bound as lan.
    maxClockSkewMs: 1_000, // As lan.
  },
  // Links across sites or clouds: tens of ms RTT, jitter and occasional loss bursts.
  wan: {
    keepaliveMs: 500, // 2 beats/s keeps traffic trivial on metered links.
    warntimeMs: 2_000, // 4 missed beats; a short loss burst is normal on a WAN.
    deadtimeMs: 5_000, // 10 missed beats: ride out routing reconvergence (a few seconds).
    deadtimeMaxMs: 15_000, // Never wait longer than Heartbeat's classic 30 s / 2 before acting.
    initdeadMs: 30_000, // Heartbeat's advice: at least twice deadtime, remote sites boot at different times.
    jitterK: 6, // WAN jitter is large but less spiky relative to its mean than a loaded host's.
    maxClockSkewMs: 2_000, // One-way delay is part of the measured skew; allow for it.
  },
  // halo lab and multi-host tests on a shared, busy development machine: robust over fast.
  lab: {
    keepaliveMs: 100, // 10 beats/s: test machines run several clusters at once.
    warntimeMs: 500, // 5 missed beats.
    deadtimeMs: 1_000, // 10 missed beats: CI machines stall for hundreds of ms.
    deadtimeMaxMs: 3_000, // Tests wait for "lost" with a deadline well above this.
    initdeadMs: 3_000, // Daemons under tsx take ~1 s to start.
    jitterK: 8, // As lan.
    maxClockSkewMs: 1_000, // As lan.
  },
};

export function isProfileName(s: string): s is ProfileName {
  return (PROFILE_NAMES as readonly string[]).includes(s);
}

/** Checks a profile (named or custom) for consistency; returns it or throws naming the knob. */
export function validateProfile(p: TimingProfile, where = 'timing profile'): TimingProfile {
  const bad = (msg: string): never => {
    throw new HaloError('bad-timing', `${where}: ${msg}`);
  };
  for (const [k, v] of Object.entries(p)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      bad(`${k} must be a positive number, got ${v}`);
  }
  if (p.keepaliveMs < 1) bad(`keepaliveMs must be ≥ 1, got ${p.keepaliveMs}`);
  if (p.warntimeMs < p.keepaliveMs)
    bad(`warntimeMs (${p.warntimeMs}) must be ≥ keepaliveMs (${p.keepaliveMs})`);
  if (p.deadtimeMs <= p.warntimeMs)
    bad(`deadtimeMs (${p.deadtimeMs}) must be > warntimeMs (${p.warntimeMs})`);
  if (p.deadtimeMs < 2 * p.keepaliveMs) bad(`deadtimeMs (${p.deadtimeMs}) must be ≥ 2 × keepaliveMs`);
  if (p.deadtimeMaxMs < p.deadtimeMs)
    bad(`deadtimeMaxMs (${p.deadtimeMaxMs}) must be ≥ deadtimeMs (${p.deadtimeMs})`);
  if (p.initdeadMs < p.deadtimeMs) bad(`initdeadMs (${p.initdeadMs}) must be ≥ deadtimeMs (${p.deadtimeMs})`);
  return p;
}
