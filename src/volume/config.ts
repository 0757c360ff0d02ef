import type { DrbdConfig, DrbdHost, DrbdResource } from '../cib/drbd_model.ts';
import { drbdOption, drbdProtocol } from '../cib/drbd_model.ts';
import { HaloError } from '../lib/errors.ts';
import type { AfterSb0, AfterSb1, AfterSb2 } from './handshake.ts';
import { DYNAMIC_RESYNC_DEFAULTS, type DynamicResyncRate } from './resync_rate.ts';

export type Protocol = 'A' | 'B' | 'C';
export type Fencing = 'dont-care' | 'resource-only' | 'resource-and-stonith';

/** What the volume engine needs to know about one resource on this node. */
export interface VolumeConfig {
  readonly resource: string;
  readonly self: {
    readonly name: string;
    readonly address: string;
    readonly disk: string;
    readonly metaDisk: string;
  };
  readonly peer: { readonly name: string; readonly address: string };
  /** Data size; absent = everything in the backing file that metadata does not use. */
  readonly sizeBytes?: number;
  readonly protocol: Protocol;
  readonly net: {
    readonly timeoutMs: number;
    readonly pingIntervalMs: number;
    /**
     * drbd.conf `ping-timeout`: how long a ping may wait for its answer before the peer counts
     * as lost. halo applies it to the on-demand peer check (`checkPeer`), not to the periodic
     * pings, which keep `ping-int` + `timeout`.
     */
    readonly pingTimeoutMs: number;
    readonly koCount: number;
    readonly connectIntervalMs: number;
    readonly allowTwoPrimaries: boolean;
    readonly afterSb0: AfterSb0;
    readonly afterSb1: AfterSb1;
    readonly afterSb2: AfterSb2;
    readonly cramHmacAlg?: string;
    readonly sharedSecret?: string;
    readonly csumsAlg?: string;
    readonly verifyAlg?: string;
    /**
     * `tls yes`: the replication stream is encrypted (AES-256-GCM). Default no: authenticated
     * and replay-protected but in the clear, as DRBD sends data, at a tenth of the CPU.
     */
    readonly tls?: boolean;
  };
  readonly fencing: Fencing;
  /** 0 = unlimited. With `resyncDynamic`, only the first guess. */
  readonly resyncRateBytesPerSec: number;
  /** The dynamic resync-rate controller (c-plan-ahead > 0), or absent for a fixed rate. */
  readonly resyncDynamic?: DynamicResyncRate;
  readonly alExtents: number;
  readonly handlers: Readonly<Record<string, string>>;
}

/**
 * DRBD defaults (drbd.conf(5), 8.4): timeout 6 s, ping-int 10 s, ping-timeout 500 ms, ko-count 7,
 * connect-int 10 s.
 */
export const DEFAULTS = {
  timeoutMs: 6000,
  pingIntervalMs: 10_000,
  pingTimeoutMs: 500,
  koCount: 7,
  connectIntervalMs: 10_000,
  alExtents: 127,
} as const;

const AFTER0: readonly AfterSb0[] = [
  'disconnect',
  'discard-younger-primary',
  'discard-older-primary',
  'discard-zero-changes',
  'discard-least-changes',
  'discard-local',
  'discard-remote',
];
const AFTER1: readonly AfterSb1[] = [
  'disconnect',
  'consensus',
  'violently-as0p',
  'discard-secondary',
  'call-pri-lost-after-sb',
];
const AFTER2: readonly AfterSb2[] = ['disconnect', 'violently-as0p', 'call-pri-lost-after-sb'];

/**
 * drbd.conf handler scripts of DRBD's Pacemaker integration, and the halo built-in each maps to
 * (`halo volume fence-peer|unfence-peer`, which edit halo's CIB as those scripts edit
 * Pacemaker's). `halo:fence-peer` / `halo:unfence-peer` name the built-ins directly.
 */
const BUILTIN_HANDLERS: Readonly<Record<string, BuiltinHandler>> = {
  'crm-fence-peer.sh': 'fence-peer',
  'crm-fence-peer.9.sh': 'fence-peer',
  'crm-unfence-peer.sh': 'unfence-peer',
  'crm-unfence-peer.9.sh': 'unfence-peer',
  'halo:fence-peer': 'fence-peer',
  'halo:unfence-peer': 'unfence-peer',
};

export type BuiltinHandler = 'fence-peer' | 'unfence-peer';

/** The halo built-in a handler command stands for, if any (by the script's file name). */
export function builtinHandler(cmd: string): BuiltinHandler | undefined {
  const first = cmd.trim().split(/\s+/)[0] ?? '';
  return BUILTIN_HANDLERS[first.slice(first.lastIndexOf('/') + 1)];
}

/** Parses a DRBD size like `33M`, `250K`, `1G` or `500` (KiB when no unit, as drbd.conf rates). */
export function parseDrbdSize(value: string, what: string, unitless = 1024): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)(?:[bB]|iB)?$/.exec(value.trim());
  if (!m) throw new HaloError('bad-config', `${what}: cannot parse size "${value}" (expected e.g. 40M)`);
  const n = Number(m[1]);
  const unit = m[2]!.toUpperCase();
  const mult = unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : unit === 'G' ? 1024 ** 3 : unitless;
  return Math.round(n * mult);
}

function pick<T extends string>(value: string | undefined, allowed: readonly T[], dflt: T, what: string): T {
  if (value === undefined) return dflt;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new HaloError('bad-config', `${what} "${value}" is not one of: ${allowed.join(', ')}`);
}

function num(value: string | undefined, dflt: number, scale: number, what: string): number {
  if (value === undefined) return dflt;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new HaloError('bad-config', `${what} "${value}" is not a number`);
  return n * scale;
}

/** drbd.conf `ping-timeout`: tenths of a second, 1..300 as DRBD accepts (default 5 = 500 ms). */
function pingTimeoutMs(value: string | undefined, what: string): number {
  if (value === undefined) return DEFAULTS.pingTimeoutMs;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 300)
    throw new HaloError('bad-config', `${what} "${value}" must be 1..300 (tenths of a second)`);
  return n * 100;
}

/**
 * The dynamic resync controller's settings, when it is on: `c-plan-ahead` > 0, or (without
 * c-plan-ahead) any other c-* option. halo keeps a plain `resync-rate`/`rate` fixed unless
 * asked, where DRBD 8.4 turned the controller on by default. Units as drbd.conf: tenths of a
 * second (c-plan-ahead, c-delay-target), sectors (c-fill-target), KiB/s (c-max-rate,
 * c-min-rate), each with an optional K/M/G suffix where it is a size.
 */
function dynamicRate(
  res: DrbdResource,
  name: string,
  get: (key: string) => string | undefined,
): DynamicResyncRate | undefined {
  const plan = get('c-plan-ahead');
  const others = ['c-fill-target', 'c-delay-target', 'c-max-rate', 'c-min-rate'].some(
    (k) => get(k) !== undefined,
  );
  const what = (k: string) => `${where(res)}resource ${name} ${k}`;
  const tenths = (k: string, dflt: number): number => {
    const v = get(k);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 300)
      throw new HaloError('bad-config', `${what(k)} "${v}" must be 0..300 (tenths of a second)`);
    return n;
  };
  const planSteps = tenths(
    'c-plan-ahead',
    plan === undefined && others ? DYNAMIC_RESYNC_DEFAULTS.planAheadSteps : 0,
  );
  if (planSteps === 0) return undefined;
  const size = (k: string, dflt: number, unitless: number): number => {
    const v = get(k);
    return v === undefined ? dflt : parseDrbdSize(v, what(k), unitless);
  };
  const d = DYNAMIC_RESYNC_DEFAULTS;
  const cfg: DynamicResyncRate = {
    planAheadSteps: planSteps,
    fillTargetBytes: size('c-fill-target', d.fillTargetBytes, 512),
    delayTargetMs: tenths('c-delay-target', d.delayTargetMs / 100) * 100,
    maxRateBytesPerSec: size('c-max-rate', d.maxRateBytesPerSec, 1024),
    minRateBytesPerSec: size('c-min-rate', d.minRateBytesPerSec, 1024),
    initialRateBytesPerSec: d.initialRateBytesPerSec,
  };
  if (cfg.maxRateBytesPerSec <= 0)
    throw new HaloError('bad-config', `${what('c-max-rate')} must be more than 0`);
  if (cfg.fillTargetBytes === 0 && cfg.delayTargetMs === 0)
    throw new HaloError('bad-config', `${what('c-delay-target')}: 0 needs a c-fill-target`);
  return cfg;
}

function where(res: DrbdResource): string {
  return res.pos ? `${res.pos.file}:${res.pos.line}:${res.pos.column}: ` : '';
}

/**
 * Converts resource `name` of a parsed drbd.conf into a VolumeConfig for node `self`.
 * Errors name the resource, the host and the missing statement.
 */
export function volumeConfigFromDrbd(conf: DrbdConfig, name: string, selfName: string): VolumeConfig {
  const res = conf.resources.find((r) => r.name === name);
  if (!res) {
    const known = conf.resources.map((r) => r.name).join(', ') || 'none';
    throw new HaloError(
      'unknown-resource',
      `resource "${name}" is not in ${conf.files[0] ?? 'the config'} (known: ${known})`,
    );
  }
  const me = res.hosts.find((h) => h.name === selfName);
  if (!me) {
    throw new HaloError(
      'unknown-node',
      `${where(res)}resource ${name} has no "on ${selfName}" section (hosts: ${res.hosts.map((h) => h.name).join(', ')}); pass --node`,
    );
  }
  const others = res.hosts.filter((h) => h.name !== selfName);
  if (others.length !== 1) {
    throw new HaloError(
      'bad-config',
      `${where(res)}resource ${name} needs exactly 2 hosts, found ${res.hosts.length}`,
    );
  }
  const peer = others[0]!;
  const opt = (section: string, key: string) => drbdOption(conf, res, section, key);
  const need = (h: DrbdHost, v: string | undefined, what: string): string => {
    if (v) return v;
    throw new HaloError('bad-config', `${where(res)}resource ${name}, host ${h.name}: no ${what} statement`);
  };
  const protocol = drbdProtocol(conf, res).toUpperCase();
  if (protocol !== 'A' && protocol !== 'B' && protocol !== 'C') {
    throw new HaloError(
      'bad-config',
      `${where(res)}resource ${name}: protocol "${protocol}" must be A, B or C`,
    );
  }
  const resyncDynamic = dynamicRate(res, name, (k) => opt('disk', k) ?? opt('syncer', k) ?? opt('net', k));
  const rate =
    opt('syncer', 'rate') ??
    opt('disk', 'resync-rate') ??
    (resyncDynamic ? undefined : opt('disk', 'c-max-rate'));
  const handlers: Record<string, string> = {};
  for (const s of [...conf.common.sections, ...res.sections]) {
    if (s.name !== 'handlers') continue;
    for (const [k, v] of s.options) handlers[k] = v;
  }
  const fencing = pick(
    opt('disk', 'fencing') ?? opt('net', 'fencing'),
    ['dont-care', 'resource-only', 'resource-and-stonith'] as const,
    'dont-care',
    'fencing',
  );
  if (fencing === 'resource-and-stonith' && !handlers['fence-peer']) {
    // Without a handler nothing could ever report the peer fenced: I/O would stay suspended.
    throw new HaloError(
      'bad-config',
      `${where(res)}resource ${name}: fencing resource-and-stonith needs a fence-peer handler (e.g. handlers { fence-peer "/usr/lib/drbd/crm-fence-peer.sh"; }, which halo runs as its own cluster fence-peer)`,
    );
  }
  return {
    resource: name,
    self: {
      name: me.name,
      address: need(me, me.address, 'address'),
      disk: need(me, me.disk ?? res.disk, 'disk'),
      metaDisk: me.metaDisk ?? res.metaDisk ?? 'internal',
    },
    peer: { name: peer.name, address: need(peer, peer.address, 'address') },
    protocol,
    net: {
      timeoutMs: num(opt('net', 'timeout'), DEFAULTS.timeoutMs, 100, 'net timeout'),
      pingIntervalMs: num(opt('net', 'ping-int'), DEFAULTS.pingIntervalMs, 1000, 'net ping-int'),
      pingTimeoutMs: pingTimeoutMs(
        opt('net', 'ping-timeout'),
        `${where(res)}resource ${name} net ping-timeout`,
      ),
      koCount: num(opt('net', 'ko-count'), DEFAULTS.koCount, 1, 'net ko-count'),
      connectIntervalMs: num(opt('net', 'connect-int'), DEFAULTS.connectIntervalMs, 1000, 'net connect-int'),
      allowTwoPrimaries:
        opt('net', 'allow-two-primaries') !== undefined && opt('net', 'allow-two-primaries') !== 'no',
      afterSb0: pick(opt('net', 'after-sb-0pri'), AFTER0, 'disconnect', 'after-sb-0pri'),
      afterSb1: pick(opt('net', 'after-sb-1pri'), AFTER1, 'disconnect', 'after-sb-1pri'),
      afterSb2: pick(opt('net', 'after-sb-2pri'), AFTER2, 'disconnect', 'after-sb-2pri'),
      cramHmacAlg: opt('net', 'cram-hmac-alg'),
      sharedSecret: opt('net', 'shared-secret'),
      csumsAlg: opt('net', 'csums-alg') ?? opt('syncer', 'csums-alg'),
      verifyAlg: opt('net', 'verify-alg') ?? opt('syncer', 'verify-alg'),
      tls: pick(opt('net', 'tls'), ['yes', 'no'] as const, 'no', 'net tls') === 'yes',
    },
    fencing,
    resyncRateBytesPerSec: rate ? parseDrbdSize(rate, `resource ${name} resync rate`) : 0,
    ...(resyncDynamic
      ? {
          resyncDynamic: {
            ...resyncDynamic,
            initialRateBytesPerSec: rate
              ? parseDrbdSize(rate, `resource ${name} resync rate`)
              : resyncDynamic.initialRateBytesPerSec,
          },
        }
      : {}),
    alExtents: num(
      opt('disk', 'al-extents') ?? opt('syncer', 'al-extents'),
      DEFAULTS.alExtents,
      1,
      'al-extents',
    ),
    handlers,
  };
}
