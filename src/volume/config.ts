import type { DrbdConfig, DrbdHost, DrbdResource } from '../cib/drbd_model.ts';
import { drbdOption, drbdProtocol } from '../cib/drbd_model.ts';
import { HaloError } from '../lib/errors.ts';
import type { AfterSb0, AfterSb1, AfterSb2 } from './handshake.ts';

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
  };
  readonly fencing: Fencing;
  /** 0 = unlimited. */
  readonly resyncRateBytesPerSec: number;
  readonly alExtents: number;
  readonly handlers: Readonly<Record<string, string>>;
}

/** DRBD defaults (drbd.conf(5), 8.4): timeout 6 s, ping-int 10 s, ko-count 7, connect-int 10 s. */
export const DEFAULTS = {
  timeoutMs: 6000,
  pingIntervalMs: 10_000,
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
  const rate = opt('syncer', 'rate') ?? opt('disk', 'resync-rate') ?? opt('disk', 'c-max-rate');
  const handlers: Record<string, string> = {};
  for (const s of [...conf.common.sections, ...res.sections]) {
    if (s.name !== 'handlers') continue;
    for (const [k, v] of s.options) handlers[k] = v;
  }
  const fencing = opt('disk', 'fencing') ?? opt('net', 'fencing');
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
    },
    fencing: pick(
      fencing,
      ['dont-care', 'resource-only', 'resource-and-stonith'] as const,
      'dont-care',
      'fencing',
    ),
    resyncRateBytesPerSec: rate ? parseDrbdSize(rate, `resource ${name} resync rate`) : 0,
    alExtents: num(
      opt('disk', 'al-extents') ?? opt('syncer', 'al-extents'),
      DEFAULTS.alExtents,
      1,
      'al-extents',
    ),
    handlers,
  };
}
