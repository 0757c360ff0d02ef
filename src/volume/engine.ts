import { spawn } from 'node:child_process';
import { createHash, getHashes, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import { HaloError } from '../lib/errors.ts';
import type { Logger } from '../lib/ports.ts';
import { type BlockDevice, FileBlockDevice } from '../nbd/block_device.ts';
import { NbdServer } from '../nbd/server.ts';
import { StreamChannel, StreamServer } from '../transport/stream.ts';
import type { VolumeConfig } from './config.ts';
import {
  type AdminResult,
  type CoreAction,
  type CoreStatus,
  type GrowResult,
  type PeerCheckResult,
  VolumeCore,
} from './core.ts';
import { handlerArgv } from './handlers.ts';
import { decodePeerMsg, encodeLengthPrefixedPeerMsgParts } from './messages.ts';
import { initialMetadata, type VolumeMetadata } from './metadata.ts';
import { computeLayout, MetadataStore } from './metadata_store.ts';
import { GROW_REFUSALS, growOnline, onlineGrowTarget } from './resize.ts';

/** Core ticks (timeouts, pings, resync rate) this often. */
const TICK_MS = 50;
/** Largest write handed to the core as one replicated write (the stream carries ≤ 16 MiB). */
const MAX_WRITE_CHUNK = 4 * 1024 * 1024;
/**
 * Peer messages produced in one turn of the event loop go out together as one stream message
 * (fewer syscalls and seals: replication of small writes is syscall-bound otherwise), up to
 * this size. A frame is authenticated as a whole, so the peer can open none of it before the
 * last byte arrived: small frames let it decrypt and write the first megabyte while this side
 * still seals the next (the two processes work in parallel instead of taking turns).
 */
const MAX_BATCH_BYTES = 256 * 1024;
/** Control requests larger than this are refused. */
const MAX_CONTROL_BYTES = 64 * 1024;
/** An admin command sent over the control socket. */
export interface ControlRequest {
  readonly cmd?: string;
  readonly force?: boolean;
  readonly discardMyData?: boolean;
  /** resize: the data bytes to grow to (`--size`; backing files are extended to hold them). */
  readonly sizeBytes?: number;
  /** resize: do not resync the new area (`--assume-clean`). */
  readonly assumeClean?: boolean;
  /** check-peer: how long the ping may wait for its answer (default: drbd.conf's ping-timeout). */
  readonly timeoutMs?: number;
}

/** The longest check-peer wait a request may ask for (DRBD's own ping-timeout limit: 30 s). */
export const MAX_CHECK_PEER_MS = 30_000;

/** First reconnect attempt after a loss comes quickly; later ones every connect-int. */
const FIRST_RECONNECT_MS = 200;

export interface EnginePaths {
  readonly runDir: string;
}

export function controlSocketPath(runDir: string, res: string): string {
  return join(runDir, `${res}.ctl`);
}
export function nbdSocketPath(runDir: string, res: string): string {
  return join(runDir, `${res}.nbd`);
}

function splitAddress(addr: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(addr.trim());
  if (!m) throw new HaloError('bad-config', `address "${addr}" is not HOST:PORT`);
  return { host: m[1]!, port: Number(m[2]) };
}

export async function fileBytes(path: string): Promise<number> {
  try {
    const st = await stat(path);
    if (st.isFile()) return st.size;
    // A block device: its size is where reading stops.
    const fh = await open(path, 'r');
    try {
      let lo = 0;
      let hi = 2 ** 50;
      const one = Buffer.alloc(1);
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        const { bytesRead } = await fh.read(one, 0, 1, mid);
        if (bytesRead === 1) lo = mid;
        else hi = mid;
      }
      return hi;
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new HaloError('device-open-failed', `cannot open backing disk ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

export async function openLayout(cfg: VolumeConfig) {
  const size = await fileBytes(cfg.self.disk);
  return computeLayout({
    backingPath: cfg.self.disk,
    fileBytes: size,
    metaDisk: cfg.self.metaDisk,
    sizeBytes: cfg.sizeBytes,
  });
}

/** `create-md`: writes fresh metadata. Refuses to overwrite valid metadata unless `force`. */
export async function createMetadata(cfg: VolumeConfig, force: boolean): Promise<{ dataBytes: number }> {
  const layout = await openLayout(cfg);
  const store = await MetadataStore.open(layout);
  try {
    if (!force && (await store.load())) {
      throw new HaloError(
        'metadata-exists',
        `${layout.metaPath} already has halo metadata for ${cfg.resource}; use --force to wipe it`,
      );
    }
    await store.wipe();
    await store.write(initialMetadata(layout.dataBytes, Math.ceil(layout.dataBytes / 4096 / 8)));
    return { dataBytes: layout.dataBytes };
  } finally {
    await store.close();
  }
}

export async function readMetadata(cfg: VolumeConfig): Promise<VolumeMetadata> {
  const store = await MetadataStore.open(await openLayout(cfg));
  try {
    const meta = await store.load();
    if (!meta)
      throw new HaloError(
        'no-metadata',
        `no halo metadata on ${cfg.self.disk} for ${cfg.resource}; run create-md first`,
      );
    return meta;
  } finally {
    await store.close();
  }
}

/** The secret that keys the replication stream: drbd.conf's shared-secret, bound to the resource. */
function streamKey(cfg: VolumeConfig): Buffer {
  return createHash('sha256')
    .update(`halo-volume\0${cfg.resource}\0${cfg.net.sharedSecret ?? ''}`)
    .digest();
}

type Pending = { resolve: () => void; reject: (e: Error) => void };

/** What the shell did, for `status` replies and the bench (cumulative since start). */
export interface EngineCounters {
  /** Metadata writes, and how many of them first made the data durable. */
  persists: number;
  persistDataSyncs: number;
  /** Milliseconds spent in metadata writes (including their data syncs), in the slot write
   * alone, and waiting behind the previous metadata write. */
  persistMs: number;
  persistSlotMs: number;
  persistQueuedMs: number;
  /** Stream messages sent (each a batch of peer messages) and the peer messages in them. */
  batches: number;
  peerMsgs: number;
  diskFlushes: number;
}

/**
 * Runs one volume on this node: the core, the backing file, the metadata store, the
 * replication stream to the peer, the NBD export while Primary, and the control socket.
 */
export class VolumeEngine {
  private core!: VolumeCore;
  private dev!: FileBlockDevice;
  private store!: MetadataStore;
  private channel: StreamChannel | undefined;
  private server: StreamServer | undefined;
  private nbd: NbdServer | undefined;
  private control: net.Server | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private reconnect: NodeJS.Timeout | undefined;
  private wantTransport = false;
  private connecting = false;
  private persistChain: Promise<void> = Promise.resolve();
  /** Metadata writes started or chained and not yet settled. */
  private persistsPending = 0;
  private readonly pending = new Map<number, Pending>();
  private outbox: Uint8Array[] = [];
  private outboxBytes = 0;
  private endOfTurnScheduled = false;
  /** Local writes held until this turn's messages to the peer are sent (protocols B, C). */
  private deferredWrites: CoreAction[] = [];
  private nextId = 1;
  private stopped = false;
  /** The control request waiting for the online grow it started (see `resize`). */
  private growWaiter: ((r: GrowResult) => void) | undefined;
  /** Control requests waiting for the peer check under way (see `checkPeer`). */
  private peerCheckWaiters: Array<(r: PeerCheckResult) => void> = [];
  readonly counters: EngineCounters = {
    persists: 0,
    persistDataSyncs: 0,
    persistMs: 0,
    persistSlotMs: 0,
    persistQueuedMs: 0,
    batches: 0,
    peerMsgs: 0,
    diskFlushes: 0,
  };
  private readonly selfId: number;
  private readonly peerId: number;
  private exitResolve!: () => void;
  readonly exited: Promise<void> = new Promise((r) => {
    this.exitResolve = r;
  });

  constructor(
    readonly cfg: VolumeConfig,
    private readonly paths: EnginePaths,
    private readonly log: Logger,
  ) {
    this.selfId = cfg.self.name < cfg.peer.name ? 1 : 2;
    this.peerId = 3 - this.selfId;
  }

  async start(): Promise<void> {
    const layout = await openLayout(this.cfg);
    this.store = await MetadataStore.open(layout, { dsync: true });
    const meta = await this.store.load();
    if (!meta)
      throw new HaloError(
        'no-metadata',
        `no halo metadata on ${this.cfg.self.disk}; run create-md first (or, if the disk grew, halo volume resize ${this.cfg.resource})`,
      );
    if (meta.sizeBytes !== layout.dataBytes) {
      throw new HaloError(
        'size-mismatch',
        `metadata says ${meta.sizeBytes} bytes but the disk holds ${layout.dataBytes}; if the disk grew, run halo volume resize ${this.cfg.resource}`,
      );
    }
    this.dev = await FileBlockDevice.open(this.cfg.self.disk, { sizeBytes: layout.dataBytes, base: 0 });
    // csums-alg / verify-alg name a kernel crypto hash (sha1, md5, sha256, crc32c…); use it when
    // node:crypto has it, else zlib's crc32 (both nodes read the same config, so they agree).
    const alg = this.cfg.net.csumsAlg ?? this.cfg.net.verifyAlg;
    const digestAlg = alg && getHashes().includes(alg) ? alg : undefined;
    this.core = new VolumeCore(this.cfg, meta, {
      freshUuid: () => randomBytes(8).readBigUInt64BE(0) & ~1n,
      digest: (d) => (digestAlg ? createHash(digestAlg).update(d).digest('hex') : crc32(d).toString(16)),
    });
    mkdirSync(this.paths.runDir, { recursive: true });
    const { host, port } = splitAddress(this.cfg.self.address);
    this.server = await StreamServer.listen(
      { host, port },
      {
        clusterKey: streamKey(this.cfg),
        clusterId: crc32(this.cfg.resource),
        self: this.selfId,
        mode: this.cfg.net.tls ? 'sealed' : 'signed',
        accept: (peer) => peer === this.peerId,
        onChannel: (ch) => this.adopt(ch),
        onRefused: (err) =>
          this.log.log('warn', `replication: refused a connection: ${err.message}`, { component: 'volume' }),
      },
    );
    this.flushActions();
    await this.startControl();
    this.ticker = setInterval(() => this.step({ e: 'tick', nowMs: performance.now() }), TICK_MS);
    this.step({ e: 'tick', nowMs: performance.now() });
    this.log.log(
      'info',
      `volume ${this.cfg.resource} running on ${this.cfg.self.name}: ${layout.dataBytes} bytes`,
      {
        component: 'volume',
      },
    );
  }

  status(): CoreStatus {
    return this.core.status();
  }

  private step(ev: Parameters<VolumeCore['step']>[0]): void {
    if (this.stopped) return;
    this.core.step(ev);
    this.flushActions();
  }

  private flushActions(): void {
    const actions = this.core.takeActions();
    if (this.cfg.protocol === 'A') {
      // Protocol A acks on the local write alone, so that write goes first: its FUA sync is
      // then not queued behind sealing and sending the same data to the peer. (Disk actions
      // may run in any order relative to sends; sends keep their order.)
      for (const a of actions) if (a.a === 'diskWrite') this.apply(a);
      for (const a of actions) if (a.a !== 'diskWrite') this.apply(a);
      return;
    }
    // Protocols B and C wait for the peer, so the peer's copy is the critical path: this
    // turn's writes are sent before any of them is written here (see endOfTurn).
    for (const a of actions) {
      if (a.a === 'diskWrite') {
        this.deferredWrites.push(a);
        this.scheduleEndOfTurn();
      } else this.apply(a);
    }
  }

  /**
   * Runs once the current event (an NBD read holding many requests, a stream message holding
   * many peer messages, a batch of completions) has been handled, as a microtask: everything
   * queued for the peer leaves as one batch, then the deferred local writes start. A
   * microtask rather than setImmediate: an acknowledgement produced after an fdatasync leaves
   * in the same turn instead of one event-loop iteration later.
   */
  private scheduleEndOfTurn(): void {
    if (this.endOfTurnScheduled) return;
    this.endOfTurnScheduled = true;
    queueMicrotask(() => this.endOfTurn());
  }

  private endOfTurn(): void {
    this.endOfTurnScheduled = false;
    this.flushOutbox();
    const writes = this.deferredWrites;
    this.deferredWrites = [];
    for (const a of writes) this.apply(a);
  }

  private apply(a: CoreAction): void {
    switch (a.a) {
      case 'diskWrite':
        this.dev.write(a.offset, a.data, a.fua).then(
          () => this.step({ e: 'diskDone', op: a.op, ok: true }),
          (err: Error) => this.diskError(a.op, err),
        );
        return;
      case 'diskRead':
        this.dev.read(a.offset, a.length).then(
          (data) => this.step({ e: 'diskDone', op: a.op, ok: true, data }),
          (err: Error) => this.diskError(a.op, err),
        );
        return;
      case 'diskFlush':
        this.counters.diskFlushes++;
        this.dev.flush().then(
          () => this.step({ e: 'diskDone', op: a.op, ok: true }),
          (err: Error) => this.diskError(a.op, err),
        );
        return;
      case 'persist': {
        const { seq, meta, dataSync } = a;
        // Metadata that clears out-of-sync bits or activity-log extents describes data already
        // written: that data is made durable first (internal metadata too: the kernel may write
        // the metadata slot back before the data pages, so one fdatasync after both is not
        // enough). One fdatasync per metadata write, however many blocks it clears.
        const c = this.counters;
        const queued = performance.now();
        let t0 = 0;
        let t1 = 0;
        const run = async (): Promise<void> => {
          t0 = performance.now();
          c.persistQueuedMs += t0 - queued;
          c.persists++;
          if (dataSync) {
            c.persistDataSyncs++;
            await this.dev.flush();
          }
          t1 = performance.now();
          await this.store.write(meta);
        };
        // The core keeps one persist in flight, so this one normally starts at once (its I/O
        // is submitted before this turn's sealing and sending); the chain only guards order.
        const started = this.persistsPending > 0 ? this.persistChain.then(run) : run();
        this.persistsPending++;
        this.persistChain = started.then(
          () => {
            const t2 = performance.now();
            c.persistMs += t2 - t0;
            c.persistSlotMs += t2 - t1;
            this.persistsPending--;
            this.step({ e: 'persisted', seq });
          },
          (err: Error) => {
            this.persistsPending--;
            this.fatal(`cannot write metadata: ${err.message}`);
          },
        );
        return;
      }
      case 'send':
        if (this.channel?.isOpen) this.queueSend(encodeLengthPrefixedPeerMsgParts(a.msg));
        return;
      case 'ack': {
        const p = this.pending.get(a.id);
        this.pending.delete(a.id);
        if (p) {
          if (a.ok) p.resolve();
          else p.reject(new HaloError('io-error', 'write failed'));
        }
        return;
      }
      case 'openTransport':
        this.wantTransport = true;
        this.scheduleConnect(FIRST_RECONNECT_MS);
        return;
      case 'closeTransport': {
        this.flushOutbox();
        this.wantTransport = false;
        const ch = this.channel;
        this.channel = undefined;
        ch?.close();
        return;
      }
      case 'handler': {
        this.runHandler(a.name);
        return;
      }
      case 'role':
        if (a.role === 'Primary')
          this.startExport().catch((err: Error) =>
            this.log.log('error', `nbd export: ${err.message}`, { component: 'volume' }),
          );
        else this.stopExport().catch(() => {});
        return;
      case 'log':
        this.log.log(a.level, a.msg, { component: 'volume', resource: this.cfg.resource });
        return;
      case 'growDisk':
        this.growDisk(a.sizeBytes, a.extendFile);
        return;
      case 'growFinished': {
        const w = this.growWaiter;
        this.growWaiter = undefined;
        w?.(a.result);
        return;
      }
      case 'peerChecked': {
        const waiters = this.peerCheckWaiters;
        this.peerCheckWaiters = [];
        for (const w of waiters) w(a.result);
        return;
      }
    }
  }

  /**
   * The local half of an online grow (the core holds its metadata writes back meanwhile):
   * moves the metadata crash-safely as the offline resize does, reopens the store where the
   * metadata now lives, and widens the device. A refusal changes nothing; any other failure
   * may leave the move half done, in the state a crash would, so the engine stops and an
   * offline `halo volume resize` finishes it.
   */
  private growDisk(sizeBytes: number, extendFile: boolean): void {
    const grown = (ok: boolean, size: number, reason: string) => {
      // Even while stopping: the core's size must match the metadata on disk for the final write.
      this.core.step({ e: 'growDone', ok, sizeBytes: size, reason });
      if (this.stopped) this.core.takeActions();
      else this.flushActions();
    };
    const run = async (): Promise<void> => {
      let layout: Awaited<ReturnType<typeof growOnline>>['layout'];
      try {
        ({ layout } = await growOnline(this.cfg, this.store.layout, { sizeBytes, extendFile }));
      } catch (err) {
        if (!(err instanceof HaloError && GROW_REFUSALS.has(err.code))) throw err;
        const can = await openLayout(this.cfg).then(
          (l) => Math.max(l.dataBytes, this.core.sizeBytes),
          () => this.core.sizeBytes,
        );
        grown(false, can, err.message);
        return;
      }
      const store = await MetadataStore.open(layout, { dsync: true });
      await store.load(); // continues from the sequence numbers of the moved slots
      const old = this.store;
      this.store = store;
      await old.close().catch(() => {});
      await this.dev.grow(sizeBytes);
      this.log.log('info', `volume ${this.cfg.resource} grew to ${sizeBytes} bytes here`, {
        component: 'volume',
      });
      grown(true, sizeBytes, '');
    };
    this.persistsPending++;
    this.persistChain = this.persistChain
      .then(run)
      .catch((err: Error) =>
        this.fatal(
          `online resize failed while moving the metadata: ${err.message}; run halo volume resize ${this.cfg.resource} (offline) to finish it`,
        ),
      )
      .finally(() => {
        this.persistsPending--;
      });
  }

  private diskError(op: number, err: Error): void {
    this.log.log('error', `disk I/O failed: ${err.message}`, { component: 'volume' });
    this.step({ e: 'diskDone', op, ok: false });
  }

  private fatal(msg: string): void {
    this.log.log('error', msg, { component: 'volume' });
    void this.stop(false);
  }

  // ---------------------------------------------------------------- replication stream

  /**
   * Queues one encoded message, its length already in front (its pieces are framed as one,
   * never copied together).
   */
  private queueSend(parts: readonly Uint8Array[]): void {
    let n = 0;
    for (const p of parts) n += p.length;
    if (this.outboxBytes + n > MAX_BATCH_BYTES) this.flushOutbox();
    for (const p of parts) this.outbox.push(p);
    this.outboxBytes += n;
    this.counters.peerMsgs++;
    this.scheduleEndOfTurn();
  }

  private flushOutbox(): void {
    if (this.outbox.length === 0) return;
    const batch = this.outbox;
    this.outbox = [];
    this.outboxBytes = 0;
    this.counters.batches++;
    if (this.channel?.isOpen) this.channel.sendParts(batch).catch(() => {});
  }

  /** Splits a stream message into peer messages; undefined when the framing is broken. */
  private static unbatch(buf: Buffer): Buffer[] | undefined {
    const out: Buffer[] = [];
    for (let at = 0; at < buf.length; ) {
      if (at + 4 > buf.length) return undefined;
      const len = buf.readUInt32BE(at);
      if (at + 4 + len > buf.length) return undefined;
      out.push(buf.subarray(at + 4, at + 4 + len));
      at += 4 + len;
    }
    return out;
  }

  private scheduleConnect(delayMs: number): void {
    // The node whose name sorts first dials; the other only accepts. One channel, no races.
    if (this.selfId !== 1 || this.reconnect || this.channel || this.stopped) return;
    this.reconnect = setTimeout(() => {
      this.reconnect = undefined;
      void this.dial();
    }, delayMs);
  }

  private async dial(): Promise<void> {
    if (!this.wantTransport || this.channel || this.connecting || this.stopped) return;
    this.connecting = true;
    const ep = splitAddress(this.cfg.peer.address);
    try {
      const ch = await StreamChannel.connect(ep, {
        clusterKey: streamKey(this.cfg),
        clusterId: crc32(this.cfg.resource),
        self: this.selfId,
        mode: this.cfg.net.tls ? 'sealed' : 'signed',
        expectPeer: this.peerId,
        handshakeTimeoutMs: this.cfg.net.timeoutMs,
        localAddress: splitAddress(this.cfg.self.address).host,
      });
      this.connecting = false;
      this.adopt(ch);
    } catch {
      this.connecting = false;
      this.scheduleConnect(this.cfg.net.connectIntervalMs);
    }
  }

  private adopt(ch: StreamChannel): void {
    if (this.channel || !this.wantTransport || this.stopped) {
      ch.close();
      return;
    }
    this.channel = ch;
    this.outbox = [];
    this.outboxBytes = 0;
    // Replication is latency-bound (protocol C waits for the peer's ack on every write);
    // StreamChannel turns Nagle's algorithm off on every socket it owns.
    ch.on('message', (buf) => {
      const parts = VolumeEngine.unbatch(buf) ?? ['bad batch framing'];
      for (const part of parts) {
        if (this.channel !== ch) return;
        const msg = typeof part === 'string' ? part : decodePeerMsg(part);
        if (typeof msg === 'string') {
          this.log.log('warn', `replication: dropping connection after a malformed message: ${msg}`, {
            component: 'volume',
          });
          this.channel = undefined;
          ch.close();
          this.step({ e: 'transportDown', reason: msg });
          return;
        }
        this.step({ e: 'peer', msg });
      }
    });
    ch.on('close', (err) => {
      if (this.channel !== ch) return;
      this.channel = undefined;
      this.step({ e: 'transportDown', reason: err ? err.message : 'peer closed the connection' });
      if (this.wantTransport) this.scheduleConnect(FIRST_RECONNECT_MS);
    });
    this.step({ e: 'transportUp' });
  }

  // ---------------------------------------------------------------- handlers

  private runHandler(name: string): void {
    const cmd = this.cfg.handlers[name];
    if (!cmd) {
      // No handler configured: report it as failed (the core decides what that means).
      setImmediate(() => this.step({ e: 'handlerDone', name, exitCode: null }));
      return;
    }
    const env = {
      ...process.env,
      DRBD_RESOURCE: this.cfg.resource,
      DRBD_PEER: this.cfg.peer.name,
      DRBD_PEERS: this.cfg.peer.name,
      DRBD_PEER_ADDRESS: splitAddress(this.cfg.peer.address).host,
      DRBD_PEER_AF: 'ipv4',
      DRBD_MY_ADDRESS: splitAddress(this.cfg.self.address).host,
      DRBD_MY_AF: 'ipv4',
      DRBD_BACKING_DEV: this.cfg.self.disk,
      DRBD_CONF: process.env.DRBD_CONF ?? '',
      DRBD_MINOR: '0',
      HALO_HANDLER: name,
    };
    this.log.log('info', `running ${name} handler: ${cmd}`, { component: 'volume' });
    const [file, ...args] = handlerArgv(cmd, this.cfg);
    const child = spawn(file!, args, { env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', (err) => {
      this.log.log('error', `${name} handler failed to start: ${err.message}`, { component: 'volume' });
      this.step({ e: 'handlerDone', name, exitCode: null });
    });
    child.on('exit', (code) => {
      this.log.log('info', `${name} handler exited with ${code}`, { component: 'volume' });
      this.step({ e: 'handlerDone', name, exitCode: code });
    });
  }

  // ---------------------------------------------------------------- NBD export

  /** The volume as a BlockDevice: writes and flushes go through the core, reads are local. */
  blockDevice(): BlockDevice {
    const submit = (offset: number, data: Uint8Array, fua: boolean): Promise<void> => {
      const id = this.nextId++;
      return new Promise<void>((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        this.step({ e: 'write', id, offset, data, fua });
      });
    };
    const write = (offset: number, data: Uint8Array, fua: boolean): Promise<void> => {
      // Nearly every write is one chunk: its own promise, no async wrapper or Promise.all.
      if (data.length <= MAX_WRITE_CHUNK) return submit(offset, data, fua);
      const parts: Promise<void>[] = [];
      for (let at = 0; at < data.length; at += MAX_WRITE_CHUNK) {
        parts.push(submit(offset + at, data.subarray(at, Math.min(data.length, at + MAX_WRITE_CHUNK)), fua));
      }
      return Promise.all(parts).then(() => undefined);
    };
    const flush = (): Promise<void> => {
      const id = this.nextId++;
      return new Promise<void>((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        this.step({ e: 'flush', id });
      });
    };
    const core = this.core;
    return {
      // Live: an online grow widens it. The NBD server reads it when a client connects (a
      // connection keeps the size it was told) and to check each request.
      get sizeBytes() {
        return core.sizeBytes;
      },
      read: (offset, length) => this.dev.read(offset, length),
      write,
      flush,
      trim: (offset, length) => write(offset, new Uint8Array(length), false),
      writeZeroes: (offset, length, fua) => write(offset, new Uint8Array(length), fua),
      close: async () => {},
    };
  }

  private async startExport(): Promise<void> {
    if (this.nbd || this.stopped) return;
    const nbd = new NbdServer([{ name: this.cfg.resource, device: this.blockDevice() }], this.log);
    this.nbd = nbd;
    await nbd.listen({ unixPath: nbdSocketPath(this.paths.runDir, this.cfg.resource) });
  }

  private async stopExport(): Promise<void> {
    const nbd = this.nbd;
    this.nbd = undefined;
    await nbd?.close();
  }

  // ---------------------------------------------------------------- control socket

  private async startControl(): Promise<void> {
    const path = controlSocketPath(this.paths.runDir, this.cfg.resource);
    if (existsSync(path)) unlinkSync(path);
    const server = net.createServer((sock) => {
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString('utf8');
        if (buf.length > MAX_CONTROL_BYTES) return sock.destroy();
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = '';
        this.handleControl(line).then(
          (reply) =>
            sock.end(
              `${JSON.stringify(reply, (_k, v) => (typeof v === 'bigint' ? v.toString(16).toUpperCase().padStart(16, '0') : v))}\n`,
            ),
          (err: Error) =>
            sock.end(`${JSON.stringify({ ok: false, code: 'internal', message: err.message })}\n`),
        );
      });
      sock.on('error', () => {});
    });
    this.control = server;
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(path, () => res());
    });
  }

  private async handleControl(line: string): Promise<unknown> {
    let req: ControlRequest;
    try {
      req = JSON.parse(line);
    } catch {
      return { ok: false, code: 'bad-request', message: 'control request is not JSON' };
    }
    return this.command(req);
  }

  /** Runs one admin command (what the control socket does for the CLI). */
  async command(req: ControlRequest): Promise<unknown> {
    const done = (r: AdminResult) => {
      this.flushActions();
      return r;
    };
    switch (req.cmd) {
      case 'status':
        return {
          ok: true,
          status: this.core.status(),
          pid: process.pid,
          engine: this.counters,
          nbd: this.nbd ? nbdSocketPath(this.paths.runDir, this.cfg.resource) : null,
          stream: this.cfg.net.tls ? 'sealed' : 'signed',
        };
      case 'primary': {
        const r = done(this.core.promote(req.force === true));
        if (r.ok) await this.startExport();
        return r;
      }
      case 'secondary': {
        // Stop serving first, so nobody writes to a Secondary.
        await this.stopExport();
        const r = done(this.core.demote());
        if (!r.ok && this.core.status().role === 'Primary') await this.startExport();
        return r;
      }
      case 'connect':
        return done(this.core.connect(req.discardMyData === true));
      case 'disconnect':
        return done(this.core.disconnect());
      case 'verify':
        return done(this.core.startVerify());
      case 'invalidate':
        return done(this.core.invalidate());
      case 'resume-io':
        return done(this.core.resumeIo());
      case 'resize':
        return this.resize(req);
      case 'check-peer':
        return this.checkPeer(req);
      case 'down':
        setImmediate(() => void this.stop(true));
        return { ok: true };
      default:
        return {
          ok: false,
          code: 'bad-request',
          message: `unknown control command ${JSON.stringify(req.cmd)}`,
        };
    }
  }

  /**
   * `check-peer`: pings the peer now and answers once the core knows (within the request's
   * `timeoutMs`, default drbd.conf's ping-timeout, plus at most two ticks): `{ok, peer:
   * 'answered'}` when the peer is alive, `{ok, peer: 'lost', reason}` when the connection was
   * dropped (as a lost peer's: fence-peer runs per the fencing policy), `{ok, peer:
   * 'not-connected', conn}` when there was none. Concurrent requests share one check.
   */
  private async checkPeer(req: ControlRequest): Promise<unknown> {
    const t = req.timeoutMs ?? this.cfg.net.pingTimeoutMs;
    if (!Number.isSafeInteger(t) || t < 1 || t > MAX_CHECK_PEER_MS)
      return {
        ok: false,
        code: 'bad-request',
        message: `check-peer: timeoutMs ${String(req.timeoutMs)} must be a whole number of milliseconds, 1..${MAX_CHECK_PEER_MS}`,
      };
    const outcome = new Promise<PeerCheckResult>((resolve) => this.peerCheckWaiters.push(resolve));
    this.core.checkPeer(t);
    this.flushActions();
    return { ok: true, ...(await outcome) };
  }

  /**
   * `halo volume resize` with the engine running: grows the volume on both nodes while
   * Connected, and answers once both disks grew (the new area's resync goes on after).
   */
  private async resize(req: ControlRequest): Promise<unknown> {
    if (this.growWaiter) return { ok: false, code: 'busy', message: 'an online resize is already running' };
    if (req.sizeBytes !== undefined && !Number.isSafeInteger(req.sizeBytes))
      return {
        ok: false,
        code: 'bad-request',
        message: `resize: sizeBytes ${String(req.sizeBytes)} is not a number`,
      };
    const blocked = this.core.growBlocked();
    if (!blocked.ok) return blocked;
    let target: number;
    try {
      target = await onlineGrowTarget(this.cfg, {
        oldBytes: this.core.sizeBytes,
        ...(req.sizeBytes !== undefined ? { sizeBytes: req.sizeBytes } : {}),
      });
    } catch (err) {
      if (err instanceof HaloError) return { ok: false, code: err.code, message: err.message };
      throw err;
    }
    const outcome = new Promise<GrowResult>((resolve) => {
      this.growWaiter = resolve;
    });
    const started = this.core.startGrow({
      sizeBytes: target,
      extendFile: req.sizeBytes !== undefined,
      assumeClean: req.assumeClean === true,
    });
    this.flushActions();
    if (!started.ok) {
      this.growWaiter = undefined;
      return started;
    }
    return outcome;
  }

  /** Stops everything; with `clean`, demotes and records a clean shutdown in the metadata. */
  async stop(clean: boolean): Promise<void> {
    if (this.stopped) return;
    const w = this.growWaiter;
    this.growWaiter = undefined;
    w?.({
      ok: false,
      code: 'stopped',
      message: `the engine for ${this.cfg.resource} stopped during the resize`,
    });
    const checks = this.peerCheckWaiters;
    this.peerCheckWaiters = [];
    for (const c of checks) c({ peer: 'lost', reason: `the engine for ${this.cfg.resource} stopped` });
    await this.stopExport();
    if (clean) {
      this.core.demote();
      this.core.disconnect();
      this.flushActions();
    }
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    if (this.reconnect) clearTimeout(this.reconnect);
    this.channel?.close();
    this.server?.close();
    this.control?.close();
    await this.persistChain.catch(() => {});
    // The clean-shutdown record drops the activity log, so the data goes to disk before it.
    const dataDurable = await this.dev?.flush().then(
      () => true,
      () => false,
    );
    if (clean && dataDurable)
      await this.store.write({ ...this.core.metadata(false), activityLog: [] }).catch(() => {});
    await this.dev?.close().catch(() => {});
    await this.store?.close().catch(() => {});
    const path = controlSocketPath(this.paths.runDir, this.cfg.resource);
    if (existsSync(path)) unlinkSync(path);
    this.exitResolve();
  }
}

/** Sends one control request to a running engine; undefined when none is listening. */
export async function controlRequest(
  runDir: string,
  res: string,
  req: object,
  timeoutMs = 10_000,
): Promise<Record<string, unknown> | undefined> {
  const path = controlSocketPath(runDir, res);
  if (!existsSync(path)) return undefined;
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new HaloError('control-timeout', `engine for ${res} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (d) => {
      buf += d.toString('utf8');
    });
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf));
      } catch {
        reject(new HaloError('control-bad-reply', `engine for ${res} sent an unreadable reply`));
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(undefined);
      else
        reject(
          new HaloError('control-failed', `cannot reach engine for ${res}: ${err.message}`, { cause: err }),
        );
    });
  });
}
