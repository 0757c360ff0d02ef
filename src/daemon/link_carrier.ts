import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { LinkCarrierFact } from '../controller/isolation_fencing.ts';

/**
 * Whether this node still has carrier on its own cluster links: the shell half of
 * halo-isolation-fencing-delay (src/controller/isolation_fencing.ts decides). A node that sees
 * no carrier on any link is the one cut off (its cable, switch port or NIC is gone), as opposed
 * to a peer that merely went silent; the controller then delays the fencing it issues so the
 * healthy side wins a two-node fence race.
 *
 * Each link's address (the daemon config's `links` host for this node) is looked up among the
 * local interfaces, and `/sys/class/net/<if>/carrier` says whether the wire is alive. The read
 * is a few small sysfs files (microseconds), so the daemon asks on its tick, at most every
 * `CARRIER_POLL_MS`, and afresh right before it fences: the fact is never staler than the
 * membership's own detection (a peer is lost only after deadtime, hundreds of ms at least).
 */

/** How old a reading may be before `read()` looks again (the daemon ticks every 2–10 ms). */
export const CARRIER_POLL_MS = 100;

/**
 * How often addresses are mapped to interfaces again (an address moved to another interface by
 * an administrator): a listing is cheap, but the fallback below spawns `ip`.
 */
export const RESOLVE_REFRESH_MS = 30_000;

/** While some link's address is on no interface, how often to look again. */
export const RESOLVE_RETRY_MS = 10_000;

export type LinkCarrierState =
  /** The interface reports carrier (or it is the loopback, which never loses it). */
  | 'carrier'
  | 'no-carrier'
  /** The address is on no local interface, or the interface could not be read. */
  | 'unknown';

export interface LinkCarrierLink {
  readonly link: number;
  readonly host: string;
  readonly iface: string | undefined;
  readonly state: LinkCarrierState;
}

export interface LinkCarrierReport extends LinkCarrierFact {
  readonly links: readonly LinkCarrierLink[];
}

/** Address (canonical text) → interface name, for every local address. */
export type AddressLister = () => ReadonlyMap<string, string>;

export interface LinkCarrierOptions {
  /** This node's link addresses, in link order (the config's `links` hosts). */
  readonly hosts: readonly string[];
  readonly nowMs: () => number;
  /** Where the interfaces are; tests may point elsewhere. Default `/sys/class/net`. */
  readonly sysClassNet?: string;
  /**
   * Lists the local addresses. Default: `os.networkInterfaces()`, then `ip -o addr show` for
   * addresses it lacks (libuv leaves out an interface that is not running, i.e. one without
   * carrier, which is exactly the one this module is about).
   */
  readonly listAddresses?: AddressLister;
}

/** IPv6 in one spelling (`::1`, not `0:0:0:0:0:0:0:1`); anything else as given, lower case. */
export function canonicalAddress(host: string): string {
  const h = host.trim().toLowerCase();
  if (isIP(h) !== 6) return h;
  try {
    return new URL(`http://[${h}]/`).hostname.slice(1, -1);
  } catch {
    return h;
  }
}

function isLoopback(host: string): boolean {
  const h = canonicalAddress(host);
  return (isIP(h) === 4 && h.startsWith('127.')) || h === '::1';
}

/** Running interfaces' addresses, as libuv lists them (no process spawned). */
function runningAddresses(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, addrs] of Object.entries(networkInterfaces()))
    for (const a of addrs ?? []) out.set(canonicalAddress(a.address), name);
  return out;
}

/** Every interface's addresses, carrier or not, from `ip -o addr show`; empty if `ip` fails. */
export function ipAddrAddresses(): Map<string, string> {
  const out = new Map<string, string>();
  let text: string;
  try {
    text = execFileSync('ip', ['-o', 'addr', 'show'], { encoding: 'utf8', stdio: 'pipe', timeout: 2000 });
  } catch {
    return out;
  }
  // "3: eth1    inet 10.0.0.1/24 brd 10.0.0.255 scope global eth1\ ..."
  for (const line of text.split('\n')) {
    const m = /^\d+:\s+([^\s@]+)(?:@\S+)?\s+inet6?\s+([^/\s]+)/.exec(line);
    if (m) out.set(canonicalAddress(m[2]!), m[1]!);
  }
  return out;
}

function defaultLister(wanted: readonly string[]): AddressLister {
  return () => {
    const found = runningAddresses();
    if (wanted.every((h) => found.has(h))) return found;
    for (const [addr, name] of ipAddrAddresses()) if (!found.has(addr)) found.set(addr, name);
    return found;
  };
}

/** A name the kernel could have given (no path tricks when it goes into a sysfs path). */
function plausibleInterfaceName(name: string): boolean {
  return /^[^/\s\0]{1,15}$/.test(name) && name !== '.' && name !== '..';
}

/**
 * Watches this node's cluster links' carrier. Not thread-safe and holds no timer: the owner
 * calls `read()` when it wants the fact (cheap when called more often than `CARRIER_POLL_MS`).
 */
export class LinkCarrierWatch {
  private readonly hosts: readonly string[];
  private readonly sys: string;
  private readonly list: AddressLister;
  private readonly ifaces = new Map<string, string>();
  private nextResolveMs = Number.NEGATIVE_INFINITY;
  private last: { readonly atMs: number; readonly report: LinkCarrierReport } | undefined;

  constructor(private readonly opts: LinkCarrierOptions) {
    this.hosts = opts.hosts.map(canonicalAddress);
    this.sys = opts.sysClassNet ?? '/sys/class/net';
    this.list = opts.listAddresses ?? defaultLister(this.hosts);
  }

  /**
   * The links' carrier now: isolated only when every link's interface is known and none has
   * carrier. A link on the loopback, or whose address is on no interface (a host name, a
   * typo, an interface not there yet), may still carry heartbeats, so it keeps the node from
   * counting as isolated. `fresh`: read even if the last reading is recent.
   */
  read(fresh = false): LinkCarrierReport {
    const now = this.opts.nowMs();
    if (!fresh && this.last && now - this.last.atMs < CARRIER_POLL_MS) return this.last.report;
    if (now >= this.nextResolveMs) this.resolve(now);
    const links = this.hosts.map((host, link): LinkCarrierLink => {
      const iface = this.ifaces.get(host);
      return { link, host, iface, state: this.stateOf(host, iface) };
    });
    const isolated = links.length > 0 && links.every((l) => l.state === 'no-carrier');
    const detail = links
      .map((l) => `link ${l.link} ${l.host}${l.iface ? ` on ${l.iface}` : ''}: ${l.state.replace('-', ' ')}`)
      .join('; ');
    const report = { isolated, detail, links };
    this.last = { atMs: now, report };
    return report;
  }

  private resolve(now: number): void {
    let found: ReadonlyMap<string, string>;
    try {
      found = this.list();
    } catch {
      found = new Map();
    }
    // An address not listed now keeps its last interface: a listing may leave out an interface
    // without carrier, and the sysfs read below says whether that interface still exists.
    for (const h of this.hosts) {
      const name = found.get(h);
      if (name !== undefined && plausibleInterfaceName(name)) this.ifaces.set(h, name);
    }
    const complete = this.hosts.every((h) => this.ifaces.has(h) || isLoopback(h));
    this.nextResolveMs = now + (complete ? RESOLVE_REFRESH_MS : RESOLVE_RETRY_MS);
  }

  private stateOf(host: string, iface: string | undefined): LinkCarrierState {
    if (isLoopback(host) || iface === 'lo') return 'carrier';
    if (iface === undefined) return 'unknown';
    try {
      return readFileSync(join(this.sys, iface, 'carrier'), 'utf8').trim() === '1' ? 'carrier' : 'no-carrier';
    } catch {
      // The kernel refuses to read `carrier` (EINVAL) while the interface is administratively
      // down: no frame leaves it either, so that is no carrier. A missing interface is unknown.
      try {
        const oper = readFileSync(join(this.sys, iface, 'operstate'), 'utf8').trim();
        return oper === 'down' ? 'no-carrier' : 'unknown';
      } catch {
        return 'unknown';
      }
    }
  }
}
