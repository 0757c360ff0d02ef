import { assert } from '../lib/assert.ts';
import type { Rng } from '../lib/ports.ts';
import { Bitmap, BLOCK_BYTES } from './bitmap.ts';
import type { VolumeConfig } from './config.ts';
import { DEFAULTS } from './config.ts';
import { type CoreAction, type GrowResult, type PeerCheckResult, VolumeCore } from './core.ts';
import type { PeerMsg } from './messages.ts';
import { grownMetadata, initialMetadata, type VolumeMetadata } from './metadata.ts';

/**
 * A deterministic two-node world for the volume core (used by tests and `sim/`): in-memory
 * disks, a network that can be cut, disk and metadata I/O that completes in a random order,
 * and crashes that lose everything not yet completed. Everything is driven by one seeded Rng.
 *
 * Each disk models a volatile write cache: a completed write is visible to reads at once but
 * only survives a power loss once a flush, a FUA write or a `dataSync` persist made it stable.
 * Metadata is stored apart from the data (external `meta-disk`), so a plain persist makes no
 * data stable.
 */

export function testConfig(
  self: string,
  peer: string,
  over: Partial<VolumeConfig['net']> & { protocol?: 'A' | 'B' | 'C'; rate?: number } = {},
): VolumeConfig {
  const { protocol, rate, ...net } = over;
  return {
    resource: 'r0',
    self: { name: self, address: '127.0.0.1:7788', disk: '/dev/null', metaDisk: 'internal' },
    peer: { name: peer, address: '127.0.0.1:7789' },
    protocol: protocol ?? 'C',
    net: {
      timeoutMs: DEFAULTS.timeoutMs,
      pingIntervalMs: DEFAULTS.pingIntervalMs,
      pingTimeoutMs: DEFAULTS.pingTimeoutMs,
      koCount: DEFAULTS.koCount,
      connectIntervalMs: 1000,
      allowTwoPrimaries: false,
      afterSb0: 'disconnect',
      afterSb1: 'disconnect',
      afterSb2: 'disconnect',
      ...net,
    },
    fencing: 'dont-care',
    resyncRateBytesPerSec: rate ?? 0,
    alExtents: 8,
    handlers: {},
  };
}

/** A cheap deterministic block digest (FNV-1a) for the simulated csums/verify. */
export function fnv(data: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i]!, 0x01000193) >>> 0;
  return h.toString(16);
}

interface PendingIo {
  readonly action: CoreAction;
  readonly epoch: number;
}

export class SimNode {
  core!: VolumeCore;
  disk: Uint8Array;
  /** What the disk holds after a power loss: only writes made durable. */
  stable: Uint8Array;
  persisted: VolumeMetadata;
  pending: PendingIo[] = [];
  epoch = 0;
  up = true;
  acked = new Set<number>();
  failedAcks = new Set<number>();
  handlers: string[] = [];
  logs: string[] = [];
  wantsTransport = false;
  /** Data bytes this disk can grow to (online resize); past it, growDisk fails. */
  capacityBytes = Number.POSITIVE_INFINITY;
  /** Outcomes of online grows this node started. */
  growResults: GrowResult[] = [];
  /** Outcomes of peer checks (checkPeer) on this node. */
  peerChecks: PeerCheckResult[] = [];

  constructor(
    readonly cfg: VolumeConfig,
    sizeBytes: number,
    private readonly rng: Rng,
  ) {
    this.disk = new Uint8Array(sizeBytes);
    this.stable = new Uint8Array(sizeBytes);
    this.persisted = initialMetadata(sizeBytes, Math.ceil(sizeBytes / BLOCK_BYTES / 8));
    this.boot();
  }

  boot(): void {
    this.epoch++;
    this.pending = [];
    this.up = true;
    this.wantsTransport = false;
    this.core = new VolumeCore(this.cfg, this.persisted, {
      freshUuid: () => (BigInt(this.rng.int(0x7fffffff)) << 32n) | BigInt(this.rng.int(0x7fffffff) * 2 + 2),
      digest: fnv,
    });
  }

  /** kill -9: every I/O not completed is lost; the disk keeps what completed. */
  crash(): void {
    this.up = false;
    this.pending = [];
    this.epoch++;
  }

  /** Power loss: like a crash, and the disk's volatile cache is lost too. */
  powerLoss(): void {
    this.crash();
    this.disk = this.stable.slice();
  }

  /** Every completed write becomes durable (fdatasync). */
  syncData(): void {
    this.stable = this.disk.slice();
  }

  bitmapWeight(): number {
    return new Bitmap(this.disk.length / BLOCK_BYTES, this.persisted.bitmap).weight;
  }
}

export class SimPair {
  readonly a: SimNode;
  readonly b: SimNode;
  /**
   * Messages in flight per direction; only delivered while the link is up and both ends run.
   * While the link is down without a reset (`setLink(false, { silent: true })`) they wait, as
   * TCP retransmits them, and arrive if the link comes back before either end gives up.
   */
  private wire = new Map<SimNode, PeerMsg[]>();
  linkUp = true;
  private connected = false;
  nowMs = 0;
  private nextId = 1;
  readonly writesAcked: Array<{ node: SimNode; id: number; offset: number; data: Uint8Array }> = [];
  private inflightWrites = new Map<number, { node: SimNode; offset: number; data: Uint8Array }>();
  /** Every write ever submitted, in submission order. */
  readonly issued: Array<{ id: number; offset: number; data: Uint8Array }> = [];

  constructor(
    readonly rng: Rng,
    sizeBytes: number,
    cfgA: VolumeConfig = testConfig('alpha', 'bravo'),
    cfgB: VolumeConfig = testConfig('bravo', 'alpha'),
  ) {
    this.a = new SimNode(cfgA, sizeBytes, rng);
    this.b = new SimNode(cfgB, sizeBytes, rng);
    this.wire.set(this.a, []);
    this.wire.set(this.b, []);
  }

  /**
   * A pair after its initial sync: connected, alpha promoted with --force, bravo UpToDate.
   * Throws when it does not get there (a test's setup failing, not its subject).
   */
  static synced(rng: Rng, sizeBytes: number, cfgA?: VolumeConfig, cfgB?: VolumeConfig): SimPair {
    const p = new SimPair(rng, sizeBytes, cfgA, cfgB);
    p.a.core.connect(false);
    p.b.core.connect(false);
    p.settle();
    assert(p.a.core.promote(true).ok, 'alpha cannot be promoted with --force');
    p.settle();
    assert(
      p.b.core.status().disk === 'UpToDate',
      `bravo is ${p.b.core.status().disk} after the initial sync`,
    );
    return p;
  }

  peerOf(n: SimNode): SimNode {
    return n === this.a ? this.b : this.a;
  }

  /** Both disks hold the same bytes. */
  sameDisks(): boolean {
    return Buffer.compare(Buffer.from(this.a.disk), Buffer.from(this.b.disk)) === 0;
  }

  /**
   * Where `n`'s disk lacks an acknowledged write: for each block, the data of its latest
   * acknowledged write or of a write submitted after it (applied, not yet acknowledged) must
   * be there. Returns a description of the first miss, or undefined.
   */
  missingAckedWrite(n: SimNode): string | undefined {
    const acked = new Set(this.writesAcked.map((w) => w.id));
    const perBlock = new Map<number, Array<{ id: number; data: Uint8Array }>>();
    for (const w of this.issued)
      for (let o = 0; o < w.data.length; o += BLOCK_BYTES) {
        const list = perBlock.get(w.offset + o) ?? [];
        list.push({ id: w.id, data: w.data.subarray(o, o + BLOCK_BYTES) });
        perBlock.set(w.offset + o, list);
      }
    for (const [off, list] of perBlock) {
      const k = list.findLastIndex((w) => acked.has(w.id));
      if (k < 0) continue;
      const have = Buffer.from(n.disk.subarray(off, off + BLOCK_BYTES));
      if (!list.slice(k).some((w) => Buffer.compare(have, Buffer.from(w.data)) === 0))
        return `acknowledged write ${list[k]!.id} at offset ${off} is missing on ${n.cfg.self.name}`;
    }
    return undefined;
  }

  write(node: SimNode, offset: number, data: Uint8Array, fua = false): number {
    const id = this.nextId++;
    this.inflightWrites.set(id, { node, offset, data });
    this.issued.push({ id, offset, data });
    node.core.step({ e: 'write', id, offset, data, fua });
    return id;
  }

  flush(node: SimNode): number {
    const id = this.nextId++;
    node.core.step({ e: 'flush', id });
    return id;
  }

  /** Moves actions out of both cores; returns true if anything happened. */
  private drain(): boolean {
    let any = false;
    for (const n of [this.a, this.b]) {
      if (!n.up) continue;
      for (const act of n.core.takeActions()) {
        any = true;
        this.apply(n, act);
      }
    }
    return any;
  }

  private apply(n: SimNode, act: CoreAction): void {
    switch (act.a) {
      case 'diskWrite':
      case 'diskRead':
      case 'diskFlush':
      case 'persist':
      case 'growDisk':
        n.pending.push({ action: act, epoch: n.epoch });
        return;
      case 'growFinished':
        n.growResults.push(act.result);
        return;
      case 'peerChecked':
        n.peerChecks.push(act.result);
        return;
      case 'send':
        if (this.connected) this.wire.get(this.peerOf(n))!.push(act.msg);
        return;
      case 'ack': {
        const w = this.inflightWrites.get(act.id);
        this.inflightWrites.delete(act.id);
        if (act.ok) {
          n.acked.add(act.id);
          if (w) this.writesAcked.push({ node: n, id: act.id, offset: w.offset, data: w.data });
        } else n.failedAcks.add(act.id);
        return;
      }
      case 'openTransport':
        n.wantsTransport = true;
        return;
      case 'closeTransport': {
        n.wantsTransport = false;
        // Like a TCP close: what was already sent still reaches the peer before the end.
        const peer = this.peerOf(n);
        const q = this.wire.get(peer)!;
        if (this.connected && this.linkUp && peer.up) {
          while (q.length > 0 && this.connected) peer.core.step({ e: 'peer', msg: q.shift()! });
        }
        this.cut();
        return;
      }
      case 'handler':
        n.handlers.push(act.name);
        return;
      case 'role':
        return;
      case 'log':
        n.logs.push(act.msg);
        return;
    }
  }

  /** Drops the connection (both sides notice). */
  private cut(): void {
    if (!this.connected) return;
    this.connected = false;
    this.wire.set(this.a, []);
    this.wire.set(this.b, []);
    for (const n of [this.a, this.b]) if (n.up) n.core.step({ e: 'transportDown', reason: 'link down' });
  }

  /**
   * Link down: by default both ends see their connection fail at once (a reset, a closed
   * socket). `silent`: packets just stop (a pulled cable, a dead switch, a frozen or powered-off
   * peer); the connection stays up on both ends until one of them drops it on its own timeout
   * (its `closeTransport` then ends the connection on both, as the reset would once the link
   * returns). Link up: held messages flow again.
   */
  setLink(up: boolean, opts: { silent?: boolean } = {}): void {
    this.linkUp = up;
    if (!up && opts.silent !== true) this.cut();
  }

  crash(n: SimNode): void {
    n.crash();
    this.cut();
  }

  powerLoss(n: SimNode): void {
    n.powerLoss();
    this.cut();
  }

  restart(n: SimNode): void {
    n.boot();
  }

  /** Completes one pending I/O of node n: a random one, except that persists finish in order. */
  private completeOne(n: SimNode): boolean {
    if (!n.up || n.pending.length === 0) return false;
    let i = this.rng.int(n.pending.length);
    if (n.pending[i]!.action.a === 'persist') i = n.pending.findIndex((q) => q.action.a === 'persist');
    const [p] = n.pending.splice(i, 1);
    const act = p!.action;
    switch (act.a) {
      case 'diskWrite':
        assert(act.offset + act.data.length <= n.disk.length, 'core wrote outside the device');
        n.disk.set(act.data, act.offset);
        if (act.fua) n.stable.set(act.data, act.offset);
        n.core.step({ e: 'diskDone', op: act.op, ok: true });
        break;
      case 'diskRead':
        assert(act.offset + act.length <= n.disk.length, 'core read outside the device');
        n.core.step({
          e: 'diskDone',
          op: act.op,
          ok: true,
          data: n.disk.slice(act.offset, act.offset + act.length),
        });
        break;
      case 'diskFlush':
        n.syncData();
        n.core.step({ e: 'diskDone', op: act.op, ok: true });
        break;
      case 'persist':
        if (act.dataSync) n.syncData();
        n.persisted = act.meta;
        n.core.step({ e: 'persisted', seq: act.seq });
        break;
      case 'growDisk':
        this.growDisk(n, act.sizeBytes);
        break;
      default:
        break;
    }
    return true;
  }

  /**
   * What the engine's local grow does: the disk grows (its new area keeps whatever it held:
   * here a fill byte per node, so only a resync makes the nodes agree) and the grown metadata,
   * new area marked, is written.
   */
  private growDisk(n: SimNode, sizeBytes: number): void {
    if (sizeBytes > n.capacityBytes) {
      n.core.step({
        e: 'growDone',
        ok: false,
        sizeBytes: n.capacityBytes,
        reason: `its disk holds at most ${n.capacityBytes} data bytes`,
      });
      return;
    }
    const fill = n === this.a ? 0xa1 : 0xb2;
    const grow = (old: Uint8Array) => {
      const next = new Uint8Array(sizeBytes).fill(fill);
      next.set(old);
      return next;
    };
    n.disk = grow(n.disk);
    n.stable = grow(n.stable);
    n.persisted = grownMetadata(n.persisted, sizeBytes);
    n.core.step({ e: 'growDone', ok: true, sizeBytes, reason: '' });
  }

  /** One scheduling step: deliver a message, complete an I/O, or connect. */
  stepOnce(): boolean {
    this.drain();
    if (
      !this.connected &&
      this.linkUp &&
      this.a.up &&
      this.b.up &&
      this.a.wantsTransport &&
      this.b.wantsTransport
    ) {
      this.connected = true;
      this.a.core.step({ e: 'transportUp' });
      this.b.core.step({ e: 'transportUp' });
      return true;
    }
    const choices: Array<() => boolean> = [];
    for (const n of [this.a, this.b]) {
      const q = this.wire.get(n)!;
      if (q.length > 0 && n.up && this.linkUp) {
        choices.push(() => {
          n.core.step({ e: 'peer', msg: q.shift()! });
          return true;
        });
      }
      if (n.up && n.pending.length > 0) choices.push(() => this.completeOne(n));
    }
    if (choices.length === 0) return this.drain();
    const ok = choices[this.rng.int(choices.length)]!();
    this.drain();
    return ok;
  }

  /** Advances simulated time (ticks both cores). */
  tick(ms: number): void {
    this.nowMs += ms;
    for (const n of [this.a, this.b]) if (n.up) n.core.step({ e: 'tick', nowMs: this.nowMs });
    this.drain();
  }

  /** Runs until nothing is left to do (bounded). */
  settle(maxSteps = 200_000): void {
    for (let i = 0; i < maxSteps; i++) {
      if (!this.stepOnce()) {
        this.tick(10);
        if (!this.stepOnce()) return;
      }
    }
    throw new Error(`simulation did not settle in ${maxSteps} steps`);
  }
}
