import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { HaloError } from '../lib/errors.ts';

/**
 * Builds a private network of Linux network namespaces for tests and `halo lab`: one namespace
 * per node, plus one "switch" namespace holding one bridge per link. Each node gets one veth per
 * link, so a single link of a single node can be cut (like pulling one cable of a bonded pair).
 *
 * Addresses come from 198.18.0.0/15, the range RFC 2544 sets aside for benchmark networks: it
 * is routed nowhere, and every address used exists only inside the namespaces made here.
 * Link L, node index i (0-based) gets 198.18.L.(i+1)/24.
 *
 * Needs root (CAP_NET_ADMIN). Everything made is named `h<tag>…` so `destroy()` (and
 * `destroyStale`) remove exactly what was made, even after a crash.
 */
export interface LabNode {
  readonly name: string;
  readonly ns: string;
  /** Address on each link, index = link number. */
  readonly addrs: readonly string[];
  /** Interface name inside the node namespace for each link: `link0`, `link1`, … */
  readonly ifaces: readonly string[];
}

export interface LabNet {
  readonly tag: string;
  readonly switchNs: string;
  readonly nodes: readonly LabNode[];
  readonly links: number;
  node(name: string): LabNode;
  /** Runs a command inside a node's namespace and returns stdout. Throws on non-zero exit. */
  exec(nodeName: string, argv: readonly string[]): string;
  /** Takes one link of one node down at the switch side (the node sees carrier loss). */
  cutLink(nodeName: string, link: number): void;
  restoreLink(nodeName: string, link: number): void;
  /** Deletes every namespace made for this net. Idempotent; never throws. */
  destroy(): void;
}

export interface LabNetOptions {
  readonly nodes: readonly string[];
  readonly links?: number;
  /** Short tag (≤ 5 chars, [a-z0-9]); random when absent. */
  readonly tag?: string;
  /** Extra namespaces on link 0 that run no node (e.g. a test client). Counted after nodes. */
  readonly clients?: readonly string[];
}

const MAX_LINKS = 8;
const MAX_NODES = 32;

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function hasNetnsSupport(): boolean {
  if (!isRoot()) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

function ip(args: readonly string[]): string {
  try {
    return execFileSync('ip', [...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new HaloError('netns-failed', `ip ${args.join(' ')} failed: ${stderr.trim()}`, { cause: err });
  }
}

export function createLabNet(opts: LabNetOptions): LabNet {
  const links = opts.links ?? 1;
  const names = [...opts.nodes, ...(opts.clients ?? [])];
  if (!Number.isInteger(links) || links < 1 || links > MAX_LINKS) {
    throw new HaloError('bad-argument', `links must be 1..${MAX_LINKS}, got ${links}`);
  }
  if (names.length < 1 || names.length > MAX_NODES) {
    throw new HaloError('bad-argument', `nodes+clients must be 1..${MAX_NODES}, got ${names.length}`);
  }
  const tag = opts.tag ?? randomBytes(3).toString('hex').slice(0, 5);
  if (!/^[a-z0-9]{1,5}$/.test(tag))
    throw new HaloError('bad-argument', `tag must be 1-5 of [a-z0-9], got '${tag}'`);
  const switchNs = `h${tag}-sw`;
  const made: string[] = [];
  const labNodes: LabNode[] = [];
  const destroy = (): void => {
    for (const ns of made.reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // Already gone.
      }
    }
    made.length = 0;
  };
  try {
    ip(['netns', 'add', switchNs]);
    made.push(switchNs);
    ip(['-n', switchNs, 'link', 'set', 'lo', 'up']);
    for (let l = 0; l < links; l++) {
      ip(['-n', switchNs, 'link', 'add', `br${l}`, 'type', 'bridge']);
      ip(['-n', switchNs, 'link', 'set', `br${l}`, 'up']);
    }
    names.forEach((name, i) => {
      const ns = `h${tag}-${name}`;
      ip(['netns', 'add', ns]);
      made.push(ns);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      const addrs: string[] = [];
      const ifaces: string[] = [];
      const nodeLinks = i < opts.nodes.length ? links : 1;
      for (let l = 0; l < nodeLinks; l++) {
        const outer = `n${i}l${l}`; // switch side, ≤ 15 chars
        const inner = `link${l}`;
        ip(['-n', switchNs, 'link', 'add', outer, 'type', 'veth', 'peer', 'name', inner, 'netns', ns]);
        ip(['-n', switchNs, 'link', 'set', outer, 'master', `br${l}`]);
        ip(['-n', switchNs, 'link', 'set', outer, 'up']);
        const addr = `198.18.${l}.${i + 1}`;
        ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', inner]);
        ip(['-n', ns, 'link', 'set', inner, 'up']);
        addrs.push(addr);
        ifaces.push(inner);
      }
      labNodes.push({ name, ns, addrs, ifaces });
    });
  } catch (err) {
    destroy();
    throw err;
  }
  const indexOf = (name: string): number => {
    const i = labNodes.findIndex((n) => n.name === name);
    if (i < 0) throw new HaloError('unknown-node', `no lab node named '${name}'`);
    return i;
  };
  return {
    tag,
    switchNs,
    nodes: labNodes,
    links,
    node: (name) => labNodes[indexOf(name)]!,
    exec(nodeName, argv) {
      const n = labNodes[indexOf(nodeName)]!;
      return execFileSync('ip', ['netns', 'exec', n.ns, ...argv], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    },
    cutLink(nodeName, link) {
      ip(['-n', switchNs, 'link', 'set', `n${indexOf(nodeName)}l${link}`, 'down']);
    },
    restoreLink(nodeName, link) {
      ip(['-n', switchNs, 'link', 'set', `n${indexOf(nodeName)}l${link}`, 'up']);
    },
    destroy,
  };
}

/** Removes namespaces left by an earlier crashed run with this tag (or all `h*-` lab ones). */
export function destroyStale(tag: string): void {
  const out = ip(['netns', 'list']);
  for (const line of out.split('\n')) {
    const ns = line.split(' ')[0];
    if (ns?.startsWith(`h${tag}-`)) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // Raced with another cleanup.
      }
    }
  }
}
