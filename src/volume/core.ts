import { assert } from '../lib/assert.ts';
import { Bitmap, BLOCK_BYTES, blocksOf } from './bitmap.ts';
import type { Protocol, VolumeConfig } from './config.ts';
import { type DiskOp, DiskQueue, MAX_DISK_OPS } from './disk_queue.ts';
import { type Decision, decide, type NodeView } from './handshake.ts';
import { type HandshakeMsg, MAX_REASON_CHARS, type PeerMsg, WIRE_VERSION } from './messages.ts';
import {
  type ConnState,
  claimsMoreInSync,
  type DiskState,
  type Generations,
  grownMetadata,
  newCurrent,
  type Role,
  syncSourceDone,
  UUID_JUST_CREATED,
  type VolumeMetadata,
  withRoleBit,
} from './metadata.ts';
import { RESYNC_STEP_MS, ResyncRateController } from './resync_rate.ts';

/**
 * The volume state machine (pure). The shell feeds it events and carries out its actions, in
 * order: `persist` before anything that follows it depends on the metadata being on disk (the
 * core itself holds back acks and writes until `persisted` arrives; a `persist` with
 * `dataSync` first makes completed data writes durable), `send` in order on the
 * replication stream, disk actions in any order (the core orders conflicting ones itself).
 */

export type CoreEvent =
  | {
      readonly e: 'write';
      readonly id: number;
      readonly offset: number;
      readonly data: Uint8Array;
      readonly fua: boolean;
    }
  | { readonly e: 'flush'; readonly id: number }
  | { readonly e: 'diskDone'; readonly op: number; readonly ok: boolean; readonly data?: Uint8Array }
  | { readonly e: 'persisted'; readonly seq: number }
  | { readonly e: 'transportUp' }
  | { readonly e: 'transportDown'; readonly reason: string }
  | { readonly e: 'peer'; readonly msg: PeerMsg }
  | { readonly e: 'tick'; readonly nowMs: number }
  /**
   * A handler the core asked for (`handler` action) has exited: `exitCode` is its exit status,
   * null when it could not run or was killed. Only fence-peer's result changes state.
   */
  | { readonly e: 'handlerDone'; readonly name: string; readonly exitCode: number | null }
  /**
   * The `growDisk` the core asked for is over. `ok`: the metadata now sits where a disk of
   * `sizeBytes` data bytes keeps it and the device reads and writes that many bytes. Not ok:
   * nothing changed on this disk; `sizeBytes` is what it can hold and `reason` says why.
   */
  | { readonly e: 'growDone'; readonly ok: boolean; readonly sizeBytes: number; readonly reason: string };

export type CoreAction =
  | {
      readonly a: 'diskWrite';
      readonly op: number;
      readonly offset: number;
      readonly data: Uint8Array;
      readonly fua: boolean;
    }
  | { readonly a: 'diskRead'; readonly op: number; readonly offset: number; readonly length: number }
  | { readonly a: 'diskFlush'; readonly op: number }
  | {
      readonly a: 'persist';
      readonly seq: number;
      readonly meta: VolumeMetadata;
      /**
       * The metadata claims more blocks in sync than the last one (bits cleared, activity-log
       * extents dropped, the disk upgraded): the shell must make every completed data write
       * durable (fdatasync of the data device) BEFORE it writes this metadata, wherever the
       * metadata lives.
       */
      readonly dataSync: boolean;
    }
  | { readonly a: 'send'; readonly msg: PeerMsg }
  | { readonly a: 'ack'; readonly id: number; readonly ok: boolean }
  | { readonly a: 'openTransport' }
  | { readonly a: 'closeTransport'; readonly reason: string }
  | { readonly a: 'handler'; readonly name: string }
  | { readonly a: 'role'; readonly role: Role }
  /**
   * Online grow: make this disk hold `sizeBytes` data bytes (with `extendFile`, a regular
   * backing file may be extended to hold them; otherwise the disk must already be that big),
   * moving the metadata crash-safely, then widen the device; answer with `growDone`. No
   * metadata write is in flight when this is emitted and none is emitted until `growDone`.
   */
  | { readonly a: 'growDisk'; readonly sizeBytes: number; readonly extendFile: boolean }
  /** The outcome of an online grow this node started (`startGrow`), for whoever asked. */
  | { readonly a: 'growFinished'; readonly result: GrowResult }
  /** The outcome of a peer check (`checkPeer`), for whoever asked; one per check. */
  | { readonly a: 'peerChecked'; readonly result: PeerCheckResult }
  | { readonly a: 'log'; readonly level: 'info' | 'warn' | 'error'; readonly msg: string };

export type AdminResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: string; readonly message: string };

export type GrowResult =
  | {
      readonly ok: true;
      readonly oldBytes: number;
      readonly newBytes: number;
      /** Blocks of the new area marked out of sync (0 with assume-clean). */
      readonly newAreaBlocks: number;
    }
  | { readonly ok: false; readonly code: string; readonly message: string };

/**
 * What a peer check (`checkPeer`) found. answered: a PingAck came back in time, the peer is
 * alive (and everything it sent before the PingAck, such as a demote's State, has arrived).
 * lost: the connection is gone, dropped by the check itself (no answer in time) or for another
 * reason while it ran; `reason` says which. not-connected: there was no connection to check.
 */
export type PeerCheckResult =
  | { readonly peer: 'answered' }
  | { readonly peer: 'lost'; readonly reason: string }
  | { readonly peer: 'not-connected'; readonly conn: ConnState };

/** An application request that arrived while the volume was growing, replayed after it. */
type HeldIo =
  | {
      readonly kind: 'write';
      readonly id: number;
      readonly offset: number;
      readonly data: Uint8Array;
      readonly fua: boolean;
    }
  | { readonly kind: 'flush'; readonly id: number };

/**
 * An online grow in progress on this node. The initiator sends GrowReq; the peer grows its
 * disk and answers GrowReply; the initiator grows its own and sends GrowDone. The node whose
 * data the new area takes (the Primary; with none, the initiator) then sends GrowResync and
 * resyncs the new area as SyncSource. While a grow runs, a Primary holds new writes and
 * flushes (they wait, in order; none fails) and replays them once both disks grew.
 */
interface GrowRun {
  /** This node ran `resize` (it reports the outcome); otherwise the peer asked. */
  readonly initiator: boolean;
  /**
   * asking: GrowReq sent, waiting for GrowReply (initiator). local: this node's own growDisk
   * is wanted or running. waitDone: this node grew, waiting for GrowDone (peer). catchUp: the
   * peer's handshake showed a larger volume (a grow cut short before this node grew): this node
   * grows to match, then handshakes again.
   */
  phase: 'asking' | 'local' | 'waitDone' | 'catchUp';
  readonly fromBytes: number;
  readonly sizeBytes: number;
  readonly extendFile: boolean;
  readonly assumeClean: boolean;
  /** growDisk emitted and growDone not yet received. */
  diskBusy: boolean;
  /** The connection was lost while the disk grew: end the grow once growDone arrives. */
  aborted: string | undefined;
  /** Bounded by the NBD server's requests in flight per client (MAX_IN_FLIGHT). */
  readonly held: HeldIo[];
}

export interface CorePorts {
  /** A fresh random 64-bit generation identifier. */
  readonly freshUuid: () => bigint;
  /** Digest of a block for csums-alg / verify-alg. */
  readonly digest: (data: Uint8Array) => string;
}

/** Blocks per verify or checksum-resync request (128 KiB; one digest per block travels). */
export const MAX_RUN_BLOCKS = 32;
/** Blocks per plain resync request (1 MiB): fewer, larger messages keep resync disk-bound. */
export const RESYNC_RUN_BLOCKS = 256;
/** Resync requests in flight (8 MiB with 1 MiB runs; 32 in flight measured no faster here). */
export const MAX_RESYNC_INFLIGHT = 8;
export const MAX_VERIFY_INFLIGHT = 16;
/** Activity-log extent: 4 MiB as in DRBD. */
export const AL_EXTENT_BYTES = 4 * 1024 * 1024;
const AL_EXTENT_BLOCKS = AL_EXTENT_BYTES / BLOCK_BYTES;
/**
 * The activity log works as DRBD's: an extent stays in the log until the log holds `al-extents`
 * extents and a new one needs room; then the least recently used extent with no write in
 * flight leaves (in the same metadata write that adds the new one; the data is made durable
 * first unless a flush already did). Extents idle for this long also leave: at any time if a
 * flush already made their writes durable (a metadata write with no data sync, which stalls
 * nothing), otherwise only once the volume has had no write for this long (nothing waits on
 * that data sync). So a busy volume never pays a data sync for cooling, and a crashed Primary
 * resyncs the extents written since the last flush plus the truly hot ones.
 */
export const AL_COOL_MS = 1000;
/**
 * A sequential stream that is about to need a new extent gets it (and the following ones, up
 * to this many ahead of the write) in one metadata write issued ahead of time, which the
 * stream's writes do not wait for until they reach those extents.
 */
export const AL_AHEAD_EXTENTS = 4;
/** A write starting within this many blocks of where the previous one ended is sequential. */
const SEQ_SLACK_BLOCKS = 256;
/**
 * A peer's WriteAck means the data reached its page cache, not its disk. While writes the peer
 * acknowledged are not yet covered by a barrier (which the peer answers only after fdatasync),
 * the Primary sends one this often, so those writes stop counting as possibly lost (they keep
 * their activity-log extents hot and are marked out of sync if the connection drops).
 */
export const PEER_SYNC_INTERVAL_MS = 250;
/** Controller steps run in one tick at most (a tick that comes very late does not burst). */
const MAX_RATE_STEPS_PER_TICK = 20;
/** How often a resync target persists its shrinking bitmap (resume point after a crash). */
const RESYNC_PERSIST_INTERVAL_MS = 1000;

/**
 * What must still happen before an application write's extents may cool: its local write, and
 * (when it was sent) the peer making it durable or the blocks being marked out of sync. The
 * write and its peer record both point at it, so settling needs no lookup.
 */
interface SettleState {
  readonly exts: readonly number[];
  left: number;
}

interface AppWrite {
  readonly id: number;
  readonly settle: SettleState;
  readonly offset: number;
  readonly data: Uint8Array;
  readonly fua: boolean;
  readonly first: number;
  readonly count: number;
  needSeq: number;
  released: boolean;
  localDone: boolean;
  localOk: boolean;
  /** Sent to the peer and still waiting for what the protocol needs before acking. */
  awaitPeer: boolean;
  recvAcked: boolean;
  writeAcked: boolean;
  seq: number;
}

interface PeerPending {
  readonly first: number;
  readonly count: number;
  /** Byte range (allow-two-primaries conflict detection). */
  readonly offset: number;
  readonly length: number;
  readonly sentMs: number;
  readonly writeId: number;
  readonly fua: boolean;
  readonly settle: SettleState;
}

interface Flush {
  readonly id: number;
  localDone: boolean;
  barrierSeq: number;
  barrierDone: boolean;
}

interface ResyncRun {
  readonly first: number;
  readonly count: number;
  touched: boolean;
  data: Uint8Array | undefined;
  acksLeft: number;
}

export interface ResyncProgress {
  readonly role: 'source' | 'target';
  readonly totalBlocks: number;
  doneBlocks: number;
  sentBytes: number;
  readonly startMs: number;
  readonly full: boolean;
}

export interface CoreStatus {
  readonly resource: string;
  readonly node: string;
  readonly peer: string;
  readonly role: Role;
  readonly disk: DiskState;
  readonly conn: ConnState;
  readonly peerRole: Role | 'Unknown';
  readonly peerDisk: DiskState;
  readonly protocol: Protocol;
  readonly gen: Generations;
  readonly outOfSyncBlocks: number;
  readonly resync: ResyncProgress | undefined;
  readonly verify:
    | {
        readonly doneBlocks: number;
        readonly totalBlocks: number;
        readonly outOfSync: number;
        readonly running: boolean;
      }
    | undefined;
  readonly counters: Readonly<
    Record<
      'ns' | 'nr' | 'dw' | 'dr' | 'al' | 'pe' | 'ua' | 'ap' | 'resyncBytesSent' | 'resyncBytesReceived',
      number
    >
  >;
  readonly nowMs: number;
  readonly lastDecision: string;
  /** A fence-peer handler is running (its result is awaited). */
  readonly fencing: boolean;
  /** I/O is suspended (resource-and-stonith): no write or flush is acknowledged. */
  readonly ioSuspended: boolean;
  /** The peer is known to be outdated (fenced) by this node. */
  readonly peerOutdated: boolean;
  /** allow-two-primaries: concurrent writes to the same bytes detected (and resolved). */
  readonly writeConflicts: number;
  /** Data bytes of the volume (what the NBD export offers new connections). */
  readonly sizeBytes: number;
  /** An online grow in progress here, if any; `heldIos` writes and flushes wait for it. */
  readonly resize:
    | { readonly phase: GrowRun['phase']; readonly toBytes: number; readonly heldIos: number }
    | undefined;
}

export class VolumeCore {
  private out: CoreAction[] = [];
  private gen: Generations;
  private role: Role = 'Secondary';
  private disk: DiskState;
  private bitmap: Bitmap;
  /**
   * Activity-log extents, least recently used first: a Set keeps insertion order, so a touch is
   * a delete and an add (constant time on every write, however large al-extents is).
   */
  private readonly al = new Set<number>();
  /** Per AL extent: the persist seq whose metadata first holds it (a write into it waits for that). */
  private readonly alSince = new Map<number, number>();
  /** Per AL extent: writes not yet settled (arrived, and not yet both written locally and confirmed
   * by the peer or marked out of sync). Only an extent with none may leave the log. */
  private readonly extBusy = new Map<number, number>();
  private readonly extLastUseMs = new Map<number, number>();
  /**
   * Local durability, to drop extents without a data sync: every local application write that
   * completes gets the next number; per extent the number of its last one; and the number up
   * to which a completed flush (or data-syncing persist) made the writes durable.
   */
  private localDone = 0;
  private readonly extLocalDone = new Map<number, number>();
  private durableUpTo = 0;
  /** What the data sync of the persist in flight makes durable (0: it syncs nothing). */
  private persistDurableMark = 0;
  /** Extents that left the log, since the last persist, with all their writes already durable. */
  private readonly droppedDurable = new Set<number>();
  private syncSourceUuid: bigint;
  private crashedPrimary: boolean;
  private peerOutdated: boolean;
  private blocks: number;
  /** The online grow in progress, if any. */
  private grow: GrowRun | undefined;
  /** The larger peer's handshake, taken once this node grew to match (phase catchUp). */
  private catchUpHandshake: HandshakeMsg | undefined;
  /** This node's handshake showed a smaller peer: it grows to match and handshakes again. */
  private awaitingPeerCatchUp = false;

  private conn: ConnState = 'StandAlone';
  private wantConnect = false;
  private transportOpen = false;
  private handshakeDone = false;
  private discardMyData = false;
  private peerRole: Role | 'Unknown' = 'Unknown';
  private peerDisk: DiskState = 'DUnknown';
  private lastDecision = '';

  private persistSeq = 0;
  private persistedSeq = 0;
  private persistInFlight = false;
  /** The metadata of the last `persist` emitted (what the next one is compared against). */
  private lastPersisted: VolumeMetadata;

  private readonly queue = new DiskQueue();
  private readonly writes = new Map<number, AppWrite>();
  private readonly awaitingPersist: AppWrite[] = [];
  private readonly peerPending = new Map<number, PeerPending>();
  /** Writes the peer acknowledged but has not yet made durable (no barrier acked since). */
  private readonly peerUnstable = new Map<number, PeerPending>();
  /** Per barrier in flight: the last data sequence sent before it (what its ack covers). */
  private readonly barrierCovers = new Map<number, number>();
  /** The periodic peer-sync barrier in flight (0 = none), and when the last one was sent. */
  private syncBarrierSeq = 0;
  private lastSyncBarrierMs = 0;
  private readonly flushes = new Map<number, Flush>();
  private readonly barrierToFlush = new Map<number, number>();
  private sendSeq = 0;
  private barrierSeq = 0;

  private nowMs = 0;
  /** When the last application write arrived, and the block after its end (sequential detection). */
  private lastAppWriteMs = 0;
  private lastWriteEnd = -1;
  private lastHeardMs = 0;
  private lastPingMs = 0;
  /**
   * The peer check under way: its ping went out, and it waits for a PingAck until `deadlineMs`.
   * The core learns the time only from ticks, so the deadline is set at the first tick after
   * the request: the wait is never shorter than `timeoutMs` (at most a tick longer).
   */
  private peerCheck: { readonly timeoutMs: number; deadlineMs: number | undefined } | undefined;
  private rateBudget = 0;
  /** The dynamic resync-rate controller (c-plan-ahead), when configured. */
  private readonly rateCtl: ResyncRateController | undefined;
  private lastRateStepMs = 0;
  /** Resync bytes the peer acknowledged since the controller's last step. */
  private resyncAckedSinceStep = 0;
  private apAtLastStep = 0;

  private resync: ResyncProgress | undefined;
  private resyncCursor = 0;
  private readonly resyncRuns = new Map<number, ResyncRun>();
  /** Blocks covered by resyncRuns (at most MAX_RESYNC_INFLIGHT runs: found by a scan, not a per-block map). */
  private resyncBlocksInFlight = 0;
  private resyncTargetPending = 0;
  private resyncDoneMsg: { current: bigint; history: readonly [bigint, bigint] } | undefined;
  private lastResyncPersistMs = 0;
  private resyncDirty = false;
  /** The metadata write that records this node as Inconsistent resync target. */
  private resyncTargetSeq = 0;

  /** A fence-peer handler is running. */
  private fencing = false;
  /** allow-two-primaries: peer writes received while Primary, until their WriteAck is sent. */
  private readonly peerInProgress = new Map<number, { offset: number; data: Uint8Array; fua: boolean }>();
  /** allow-two-primaries: concurrent writes to the same bytes seen on both Primaries. */
  private writeConflicts = 0;
  /**
   * I/O suspended until the peer is fenced (DRBD's `susp-fen`): writes still go to the local
   * disk, but neither they nor flushes are acknowledged, so no write the peer lacks is ever
   * reported done before the cluster knows the peer must not be promoted.
   */
  private ioFrozen = false;

  private verify:
    | { cursor: number; inflight: number; done: number; oos: number; running: boolean }
    | undefined;
  private readonly counters = {
    ns: 0,
    nr: 0,
    dw: 0,
    dr: 0,
    al: 0,
    pe: 0,
    ua: 0,
    ap: 0,
    resyncBytesSent: 0,
    resyncBytesReceived: 0,
  };

  /** What the write path's disk ops call back into (made once: no closures per write). */
  private readonly opSink: DiskOpSink = {
    emit: (a) => this.emit(a),
    localWriteDone: (w, ok) => this.onLocalWriteDone(w, ok),
    peerWriteDone: (op, ok) => this.onPeerWriteDone(op, ok),
  };

  constructor(
    private readonly cfg: VolumeConfig,
    meta: VolumeMetadata,
    private readonly ports: CorePorts,
  ) {
    this.blocks = Math.ceil(meta.sizeBytes / BLOCK_BYTES);
    this.rateCtl = cfg.resyncDynamic ? new ResyncRateController(cfg.resyncDynamic) : undefined;
    this.lastPersisted = meta;
    this.bitmap = new Bitmap(this.blocks, meta.bitmap);
    this.gen = meta.gen;
    this.disk = meta.disk;
    this.syncSourceUuid = meta.syncSourceUuid;
    this.peerOutdated = meta.peerOutdated;
    this.crashedPrimary = meta.crashedPrimary;
    if (meta.running) {
      // We crashed: anything in a hot extent may differ from the peer.
      for (const ext of meta.activityLog) this.markBlocks(ext * AL_EXTENT_BLOCKS, AL_EXTENT_BLOCKS);
      if (meta.role === 'Primary') this.crashedPrimary = true;
      this.log(
        'warn',
        `recovering from a crash: ${meta.activityLog.length} activity-log extents marked out of sync`,
      );
    }
    this.gen = withRoleBit(this.gen, false);
    this.requestPersist();
  }

  get sizeBytes(): number {
    return this.blocks * BLOCK_BYTES;
  }

  /** Takes the actions produced so far (etcd-raft's Ready). */
  takeActions(): CoreAction[] {
    const a = this.out;
    this.out = [];
    return a;
  }

  private emit(a: CoreAction): void {
    this.out.push(a);
  }

  private log(level: 'info' | 'warn' | 'error', msg: string): void {
    this.emit({ a: 'log', level, msg: `${this.cfg.resource}: ${msg}` });
  }

  metadata(running = true): VolumeMetadata {
    return {
      gen: this.gen,
      role: this.role,
      disk: this.disk,
      sizeBytes: this.blocks * BLOCK_BYTES,
      activityLog: [...this.al],
      syncSourceUuid: this.syncSourceUuid,
      running,
      peerOutdated: this.peerOutdated,
      crashedPrimary: this.crashedPrimary,
      bitmap: this.bitmap.copy(),
    };
  }

  private requestPersist(): number {
    this.persistSeq++;
    if (!this.persistInFlight) this.startPersist();
    return this.persistSeq;
  }

  private startPersist(): void {
    this.persistInFlight = true;
    const meta = this.metadata();
    // Persist before you ack: metadata saying a block is in sync must not reach disk before
    // the data it describes (a resync target's cleared bits, a cooled activity-log extent, the
    // UpToDate at the end of a resync). One data sync covers every block a persist clears.
    // Extents whose writes a flush already made durable leave the log without one.
    const prev =
      this.droppedDurable.size === 0
        ? this.lastPersisted
        : {
            ...this.lastPersisted,
            activityLog: this.lastPersisted.activityLog.filter((e) => !this.droppedDurable.has(e)),
          };
    this.droppedDurable.clear();
    const dataSync = claimsMoreInSync(prev, meta);
    this.persistDurableMark = dataSync ? this.localDone : 0;
    this.lastPersisted = meta;
    this.emit({ a: 'persist', seq: this.persistSeq, meta, dataSync });
  }

  // ---------------------------------------------------------------- events

  step(ev: CoreEvent): void {
    switch (ev.e) {
      case 'write': {
        this.onWrite(ev.id, ev.offset, ev.data, ev.fua);
        return;
      }
      case 'flush': {
        this.onFlush(ev.id);
        return;
      }
      case 'diskDone':
        this.queue.complete(ev.op, ev.ok, ev.data);
        {
          this.pumpAll();
          return;
        }
      case 'persisted': {
        this.onPersisted(ev.seq);
        return;
      }
      case 'transportUp': {
        this.onTransportUp();
        return;
      }
      case 'transportDown': {
        this.onTransportDown(ev.reason);
        return;
      }
      case 'peer':
        this.lastHeardMs = this.nowMs;
        this.onPeer(ev.msg);
        {
          this.pumpAll();
          return;
        }
      case 'tick': {
        this.onTick(ev.nowMs);
        return;
      }
      case 'handlerDone': {
        this.onHandlerDone(ev.name, ev.exitCode);
        return;
      }
      case 'growDone': {
        this.onGrowDisk(ev.ok, ev.sizeBytes, ev.reason);
        return;
      }
    }
  }

  private pumpAll(): void {
    this.queue.pump(this.persistedSeq);
    this.pumpResync();
    this.pumpVerify();
  }

  private onPersisted(seq: number): void {
    assert(seq <= this.persistSeq, `persisted seq ${seq} was never requested`);
    this.persistedSeq = Math.max(this.persistedSeq, seq);
    this.persistInFlight = false;
    this.durableUpTo = Math.max(this.durableUpTo, this.persistDurableMark);
    this.persistDurableMark = 0;
    // A local grow waits for the metadata write in flight, and holds later ones back.
    if ((this.grow?.phase === 'local' || this.grow?.phase === 'catchUp') && !this.grow.diskBusy)
      this.emitGrowDisk(this.grow);
    else if (this.persistSeq > this.persistedSeq) this.startPersist();
    while (this.awaitingPersist.length > 0 && this.awaitingPersist[0]!.needSeq <= this.persistedSeq) {
      this.releaseWrite(this.awaitingPersist.shift()!);
    }
    for (const w of this.writes.values()) this.maybeAck(w);
    this.pumpAll();
  }

  // ---------------------------------------------------------------- application I/O

  private onWrite(id: number, offset: number, data: Uint8Array, fua: boolean): void {
    if (this.grow && this.role === 'Primary') {
      this.grow.held.push({ kind: 'write', id, offset, data, fua });
      return;
    }
    if (this.role !== 'Primary' || offset < 0 || offset + data.length > this.sizeBytes) {
      this.emit({ a: 'ack', id, ok: false });
      return;
    }
    const { first, count } = blocksOf(offset, data.length);
    const exts = extentsOf(first, count);
    const w: AppWrite = {
      id,
      settle: { exts, left: 1 },
      offset,
      data,
      fua,
      first,
      count,
      needSeq: 0,
      released: false,
      localDone: false,
      localOk: true,
      awaitPeer: false,
      recvAcked: false,
      writeAcked: false,
      seq: 0,
    };
    this.writes.set(id, w);
    this.counters.ap++;
    // The write holds its extents from now on: none of them may leave the log before it settles.
    for (const e of exts) {
      this.extBusy.set(e, (this.extBusy.get(e) ?? 0) + 1);
      this.extLastUseMs.set(e, this.nowMs);
    }
    const sequential = this.lastWriteEnd >= 0 && Math.abs(first - this.lastWriteEnd) <= SEQ_SLACK_BLOCKS;
    this.lastWriteEnd = first + count;
    this.lastAppWriteMs = this.nowMs;
    w.needSeq = this.touchActivityLog(exts, sequential);
    // A write waits behind earlier ones so that the stream carries writes in submission order.
    if (w.needSeq > this.persistedSeq || this.awaitingPersist.length > 0) {
      w.needSeq = Math.max(w.needSeq, this.awaitingPersist.at(-1)?.needSeq ?? 0);
      this.awaitingPersist.push(w);
    } else {
      this.releaseWrite(w);
    }
    this.pumpAll();
  }

  /**
   * Puts a write's extents into the activity log (and, for a sequential stream, the extents
   * ahead of it); returns the persist seq whose metadata must be on disk before the write may
   * be released (0 if it already is).
   */
  private touchActivityLog(exts: readonly number[], sequential: boolean): number {
    const added: number[] = [];
    let need = 0;
    for (const ext of exts) {
      if (this.al.has(ext)) {
        this.al.delete(ext);
        this.al.add(ext);
        need = Math.max(need, this.alSince.get(ext) ?? 0);
        continue;
      }
      this.al.add(ext);
      this.droppedDurable.delete(ext);
      added.push(ext);
    }
    const next = (exts.at(-1) ?? Number.POSITIVE_INFINITY) + 1;
    const extents = Math.ceil(this.blocks / AL_EXTENT_BLOCKS);
    // A small log spends at most a quarter of itself on extents nobody wrote yet.
    const ahead = Math.min(AL_AHEAD_EXTENTS, Math.floor(this.cfg.alExtents / 4));
    if (sequential && ahead > 0 && next < extents && !this.al.has(next)) {
      for (let e = next; e < Math.min(extents, next + ahead); e++) {
        if (this.al.has(e)) continue;
        this.al.add(e);
        this.droppedDurable.delete(e);
        this.extLastUseMs.set(e, this.nowMs); // idle from now, not since the epoch
        added.push(e);
      }
    }
    if (added.length === 0) return need > this.persistedSeq ? need : 0;
    this.counters.al += added.length;
    this.evictOverflow(added);
    const seq = this.requestPersist();
    for (const e of added) this.alSince.set(e, seq);
    // The write needs its own extents on disk, not the ones activated ahead of it.
    return exts.some((e) => added.includes(e)) ? seq : need > this.persistedSeq ? need : 0;
  }

  /**
   * While the log holds more than `al-extents`, the least recently used extent with no write
   * in flight leaves it (never one in `keep`). The caller persists: the same metadata write
   * makes the data durable first, and the bitmap in it keeps any block the peer lacks.
   * With every extent busy the log stays over its size until writes settle (tick retries).
   */
  private evictOverflow(keep: readonly number[] = []): boolean {
    let evicted = false;
    while (this.al.size > this.cfg.alExtents) {
      let victim: number | undefined;
      for (const e of this.al) {
        if ((this.extBusy.get(e) ?? 0) === 0 && !keep.includes(e)) {
          victim = e;
          break;
        }
      }
      if (victim === undefined) break;
      this.dropExtent(victim);
      this.al.delete(victim);
      evicted = true;
    }
    return evicted;
  }

  /** Every write into the extent completed locally and a flush made it durable since. */
  private extDurable(e: number): boolean {
    return (this.extBusy.get(e) ?? 0) === 0 && (this.extLocalDone.get(e) ?? 0) <= this.durableUpTo;
  }

  private dropExtent(e: number): void {
    if (this.extDurable(e)) this.droppedDurable.add(e);
    this.extLocalDone.delete(e);
    this.alSince.delete(e);
    this.extBusy.delete(e);
    this.extLastUseMs.delete(e);
  }

  private releaseWrite(w: AppWrite): void {
    w.released = true;
    if (this.handshakeDone && this.peerDisk !== 'DUnknown') {
      w.settle.left++;
      w.seq = ++this.sendSeq;
      w.awaitPeer = true;
      this.peerPending.set(w.seq, {
        first: w.first,
        count: w.count,
        offset: w.offset,
        length: w.data.length,
        sentMs: this.nowMs,
        writeId: w.id,
        fua: w.fua,
        settle: w.settle,
      });
      this.counters.pe++;
      this.counters.ns += w.data.length;
      this.emit({ a: 'send', msg: { t: 'Data', seq: w.seq, offset: w.offset, fua: w.fua, data: w.data } });
    } else {
      this.markBlocks(w.first, w.count);
    }
    if (this.resync?.role === 'source') this.touchResync(w.first, w.count);
    this.queue.add(new LocalWriteOp(this.opSink, w));
    if (this.peerInProgress.size > 0) this.reapplyPeerWritesOver(w);
  }

  /** An application write's local disk write completed. */
  private onLocalWriteDone(w: AppWrite, ok: boolean): void {
    w.localDone = true;
    w.localOk = ok;
    this.localDone++;
    for (let e = Math.floor(w.first / AL_EXTENT_BLOCKS); e * AL_EXTENT_BLOCKS < w.first + w.count; e++)
      this.extLocalDone.set(e, this.localDone);
    this.settle(w.settle);
    this.counters.dw += w.data.length;
    this.maybeAck(w);
  }

  /** One of a write's settle conditions happened; at zero its extents may cool. */
  private settle(st: SettleState): void {
    // Each condition settles once; a write already settled stays so.
    if (st.left <= 0) return;
    st.left--;
    if (st.left > 0) return;
    for (const e of st.exts) {
      this.extBusy.set(e, (this.extBusy.get(e) ?? 1) - 1);
      this.extLastUseMs.set(e, this.nowMs);
    }
  }

  /**
   * Evicts over-full extents that settled, and cools extents idle for AL_COOL_MS: at any time
   * those whose writes a flush already made durable (a metadata write without a data sync,
   * which stalls nothing), the others only once the volume has had no write for AL_COOL_MS.
   */
  private coolActivityLog(): void {
    let changed = this.evictOverflow();
    const quiet = this.nowMs - this.lastAppWriteMs >= AL_COOL_MS;
    const cold: number[] = [];
    for (const e of this.al) {
      if (
        (this.extBusy.get(e) ?? 0) === 0 &&
        this.nowMs - (this.extLastUseMs.get(e) ?? 0) >= AL_COOL_MS &&
        (quiet || this.extDurable(e))
      )
        cold.push(e);
    }
    if (cold.length > 0) {
      for (const e of cold) {
        this.al.delete(e);
        this.dropExtent(e);
      }
      changed = true;
    }
    if (changed) this.requestPersist();
  }

  private peerSatisfied(w: AppWrite): boolean {
    if (!w.awaitPeer) return true;
    const p: Protocol = this.cfg.protocol;
    if (p === 'A') return true;
    if (p === 'B') return w.recvAcked || w.writeAcked;
    return w.writeAcked;
  }

  private maybeAck(w: AppWrite): void {
    if (this.ioFrozen) return;
    if (!w.localDone || w.needSeq > this.persistedSeq || !this.peerSatisfied(w)) return;
    this.writes.delete(w.id);
    this.emit({ a: 'ack', id: w.id, ok: w.localOk });
  }

  private onFlush(id: number): void {
    if (this.grow && this.role === 'Primary') {
      this.grow.held.push({ kind: 'flush', id });
      return;
    }
    const f: Flush = { id, localDone: false, barrierSeq: 0, barrierDone: true };
    let mark = 0;
    this.flushes.set(id, f);
    if (this.handshakeDone && this.peerDisk !== 'DUnknown') {
      f.barrierSeq = this.sendBarrier();
      f.barrierDone = false;
      this.barrierToFlush.set(f.barrierSeq, id);
    }
    this.queue.add({
      kind: 'flush',
      first: 0,
      count: this.blocks,
      needSeq: 0,
      start: (op) => {
        // The disk queue starts a flush after every write queued before it finished.
        mark = this.localDone;
        this.emit({ a: 'diskFlush', op });
      },
      done: (ok) => {
        f.localDone = true;
        if (ok) this.durableUpTo = Math.max(this.durableUpTo, mark);
        if (!ok) this.log('error', 'local flush failed');
        this.maybeAckFlush(f);
      },
    });
    this.pumpAll();
  }

  /** Sends a barrier; its ack says every write sent before it is durable on the peer. */
  private sendBarrier(): number {
    const seq = ++this.barrierSeq;
    this.barrierCovers.set(seq, this.sendSeq);
    this.emit({ a: 'send', msg: { t: 'Barrier', seq } });
    return seq;
  }

  private onBarrierAck(seq: number): void {
    const covers = this.barrierCovers.get(seq);
    this.barrierCovers.delete(seq);
    if (seq === this.syncBarrierSeq) this.syncBarrierSeq = 0;
    if (covers !== undefined) {
      for (const [dataSeq, p] of this.peerUnstable) {
        if (dataSeq > covers) continue;
        this.peerUnstable.delete(dataSeq);
        this.settle(p.settle);
      }
    }
    const id = this.barrierToFlush.get(seq);
    this.barrierToFlush.delete(seq);
    const f = id === undefined ? undefined : this.flushes.get(id);
    if (f) {
      f.barrierDone = true;
      this.maybeAckFlush(f);
    }
  }

  private maybeAckFlush(f: Flush): void {
    if (this.ioFrozen) return;
    if (!f.localDone || !f.barrierDone) return;
    this.flushes.delete(f.id);
    this.emit({ a: 'ack', id: f.id, ok: true });
  }

  private markBlocks(first: number, count: number): void {
    for (let b = first; b < first + count && b < this.blocks; b++) this.bitmap.set(b);
  }

  // ---------------------------------------------------------------- admin

  promote(force: boolean): AdminResult {
    if (this.role === 'Primary') return { ok: true };
    if (this.conn === 'SyncTarget')
      return fail('sync-target', 'cannot promote while this disk is resync target');
    if (this.handshakeDone && this.peerRole === 'Primary' && !this.cfg.net.allowTwoPrimaries) {
      return fail('peer-is-primary', 'the peer is Primary and allow-two-primaries is not set');
    }
    if (this.disk !== 'UpToDate' && !force) {
      return fail('not-uptodate', `disk is ${this.disk}; promoting it needs --force`);
    }
    if (this.gen.current === UUID_JUST_CREATED || (force && this.disk !== 'UpToDate')) {
      // Forced promotion: this disk becomes the reference; a connected peer must resync fully.
      this.gen = {
        current: this.ports.freshUuid() | 1n,
        bitmap: 0n,
        history: [this.gen.current === UUID_JUST_CREATED ? 0n : this.gen.current, this.gen.history[0]],
      };
      this.disk = 'UpToDate';
      this.syncSourceUuid = 0n;
      this.role = 'Primary';
      this.requestPersist();
      this.emit({ a: 'role', role: 'Primary' });
      if (this.handshakeDone)
        this.dropConnection('forced promotion: reconnecting to start a full sync', { fence: false });
      return { ok: true };
    }
    this.role = 'Primary';
    if (!this.handshakeDone || this.peerDisk === 'DUnknown') {
      if (this.gen.bitmap === 0n) this.gen = newCurrent(this.gen, this.ports.freshUuid(), true);
      else this.gen = withRoleBit(this.gen, true);
      this.startFencing('promoted without a connected peer');
    } else {
      this.gen = withRoleBit(this.gen, true);
      this.sendState();
    }
    this.requestPersist();
    this.emit({ a: 'role', role: 'Primary' });
    return { ok: true };
  }

  demote(): AdminResult {
    if (this.role === 'Secondary') return { ok: true };
    if (this.writes.size > 0 || this.flushes.size > 0)
      return fail('busy', 'writes are still in flight; retry');
    if (this.grow) return fail('busy', 'an online resize is running; retry when it is over');
    this.role = 'Secondary';
    // Nothing is in flight (checked above) and a Secondary takes no writes: nothing to hold.
    this.ioFrozen = false;
    this.gen = withRoleBit(this.gen, false);
    this.requestPersist();
    this.emit({ a: 'role', role: 'Secondary' });
    if (this.handshakeDone) this.sendState();
    return { ok: true };
  }

  connect(discardMyData: boolean): AdminResult {
    this.discardMyData = discardMyData;
    if (this.wantConnect) return { ok: true };
    this.wantConnect = true;
    this.conn = 'Connecting';
    this.emit({ a: 'openTransport' });
    return { ok: true };
  }

  disconnect(): AdminResult {
    this.wantConnect = false;
    if (this.handshakeDone) {
      // A deliberate disconnect from a Primary: the Secondary will miss what follows, so it
      // is outdated (and can only be promoted with --force). From a Secondary, it outdates
      // itself for the same reason.
      if (this.role === 'Primary') this.emit({ a: 'send', msg: { t: 'Outdate' } });
      else if (this.peerRole === 'Primary') this.outdateSelf('disconnected from the Primary on request');
    }
    if (this.transportOpen) this.dropConnection('disconnect requested');
    this.conn = 'StandAlone';
    return { ok: true };
  }

  /** Starts online verify from this node (needs a connected peer in sync). */
  startVerify(): AdminResult {
    if (this.conn !== 'Connected')
      return fail('not-connected', `verify needs connection state Connected, not ${this.conn}`);
    this.verify = { cursor: 0, inflight: 0, done: 0, oos: 0, running: true };
    this.log('info', `online verify started over ${this.blocks} blocks`);
    this.pumpAll();
    return { ok: true };
  }

  /** Discards this node's data: marks every block out of sync and the disk Inconsistent. */
  invalidate(): AdminResult {
    if (this.role === 'Primary') return fail('is-primary', 'cannot invalidate a Primary');
    this.bitmap.setAll();
    this.disk = 'Inconsistent';
    this.requestPersist();
    if (this.handshakeDone) this.dropConnection('invalidated: reconnecting to resync');
    return { ok: true };
  }

  /**
   * `resume-io`: the administrator resumes suspended I/O without the peer being fenced (DRBD's
   * `drbdadm resume-io`). Writes acknowledged from now on may be missing on the peer.
   */
  resumeIo(): AdminResult {
    if (!this.ioFrozen) return { ok: true };
    this.log('warn', `I/O resumed by the administrator; ${this.cfg.peer.name} was not fenced`);
    this.fencing = false;
    this.thaw('resume-io');
    return { ok: true };
  }

  /**
   * Checks now that the connected peer is alive, instead of at the next `ping-int`: sends a
   * Ping and, when no PingAck arrives within `timeoutMs` (ticks measure it), drops the
   * connection as a lost peer's (out-of-sync marking, fence-peer per the fencing policy, a new
   * current UUID on a Primary, reconnecting). The outcome comes as one `peerChecked` action.
   * A check already under way answers this request too (its deadline is not moved). This is
   * DRBD's ping-timeout, applied on demand: a peer that answers is never dropped.
   */
  checkPeer(timeoutMs: number): AdminResult {
    assert(Number.isSafeInteger(timeoutMs) && timeoutMs > 0, `peer check timeout ${timeoutMs} ms`);
    if (!this.handshakeDone) {
      this.emit({ a: 'peerChecked', result: { peer: 'not-connected', conn: this.conn } });
      return { ok: true };
    }
    if (this.peerCheck) return { ok: true };
    this.peerCheck = { timeoutMs, deadlineMs: undefined };
    this.log('info', `checking ${this.cfg.peer.name}: a ping must be answered within ${timeoutMs} ms`);
    this.emit({ a: 'send', msg: { t: 'Ping' } });
    return { ok: true };
  }

  private endPeerCheck(result: PeerCheckResult): void {
    if (!this.peerCheck) return;
    this.peerCheck = undefined;
    if (result.peer === 'answered') this.log('info', `${this.cfg.peer.name} answered the ping: it is alive`);
    this.emit({ a: 'peerChecked', result });
  }

  /** Drops the connection when the peer check's ping went unanswered; true when it did. */
  private tickPeerCheck(nowMs: number): boolean {
    const c = this.peerCheck;
    if (!c) return false;
    if (c.deadlineMs === undefined) {
      c.deadlineMs = nowMs + c.timeoutMs;
      return false;
    }
    if (nowMs < c.deadlineMs) return false;
    this.dropConnection(
      `no answer from ${this.cfg.peer.name} to a ping within ${c.timeoutMs} ms (peer check)`,
    );
    return true;
  }

  // ---------------------------------------------------------------- online grow

  /**
   * `halo volume resize` with the engine running: grows the volume on both nodes while
   * Connected (DRBD's `drbdadm resize`). `sizeBytes` is what this node's disk will hold (the
   * shell checked it can); the peer must reach exactly the same size or refuses, and then
   * nothing changed on either node. The outcome arrives as a `growFinished` action.
   */
  startGrow(req: { sizeBytes: number; extendFile: boolean; assumeClean: boolean }): AdminResult {
    const blocked = this.growBlocked();
    if (!blocked.ok) return blocked;
    const bad = this.badGrowSize(req.sizeBytes);
    if (bad) return fail('bad-size', bad);
    this.grow = {
      initiator: true,
      phase: 'asking',
      fromBytes: this.sizeBytes,
      sizeBytes: req.sizeBytes,
      extendFile: req.extendFile,
      assumeClean: req.assumeClean,
      diskBusy: false,
      aborted: undefined,
      held: [],
    };
    this.log('info', `online resize: asking ${this.cfg.peer.name} to grow to ${req.sizeBytes} bytes`);
    this.emit({ a: 'send', msg: { t: 'GrowReq', ...req } });
    return { ok: true };
  }

  /** Whether an online grow could start now (the shell asks before it measures the disk). */
  growBlocked(): AdminResult {
    const res = this.cfg.resource;
    if (this.grow) return fail('busy', 'an online resize is already running');
    if (this.conn !== 'Connected' || !this.handshakeDone)
      return fail(
        'not-connected',
        `online resize needs ${this.cfg.peer.name} Connected, but the connection is ${this.conn}${this.resync ? ' (wait for the resync to finish)' : ''}: connect first (halo volume connect ${res} on both nodes), or resize offline: halo volume down ${res}, then halo volume resize ${res} on each node, then up`,
      );
    if (this.role === 'Primary' && this.peerRole === 'Primary')
      return fail('two-primaries', 'both nodes are Primary: demote one before an online resize');
    if (this.verify?.running) return fail('busy', 'online verify is running; resize when it is over');
    // The new area's resync ends with the target UpToDate: only right if the rest already is.
    if (this.disk !== 'UpToDate' || this.peerDisk !== 'UpToDate')
      return fail(
        'not-uptodate',
        `online resize needs both disks UpToDate (here ${this.disk}, ${this.cfg.peer.name} ${this.peerDisk}): wait for the sync, or resize offline on each node`,
      );
    return { ok: true };
  }

  /** Why `sizeBytes` is no size to grow to (undefined when it is one). */
  private badGrowSize(sizeBytes: number): string | undefined {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes % BLOCK_BYTES !== 0)
      return `size ${sizeBytes} is not a multiple of ${BLOCK_BYTES} bytes`;
    if (sizeBytes <= this.sizeBytes)
      return `size ${sizeBytes} is not larger than the volume (${this.sizeBytes} bytes); halo does not shrink volumes`;
    return undefined;
  }

  private onGrowReq(sizeBytes: number, extendFile: boolean, assumeClean: boolean): void {
    const refuse = (reason: string) => {
      this.log('warn', `online resize asked by ${this.cfg.peer.name} refused: ${reason}`);
      this.emit({ a: 'send', msg: { t: 'GrowReply', ok: false, sizeBytes: this.sizeBytes, reason } });
    };
    const why = this.grow
      ? 'a resize is already running there'
      : this.conn !== 'Connected'
        ? `its connection is ${this.conn}, not Connected`
        : this.verify?.running
          ? 'online verify is running there'
          : this.disk !== 'UpToDate' || this.peerDisk !== 'UpToDate'
            ? `its disk is ${this.disk} and it sees ${this.disk === 'UpToDate' ? 'the initiator' : 'its peer'} as ${this.peerDisk}, not both UpToDate`
            : this.badGrowSize(sizeBytes);
    if (why !== undefined) {
      refuse(why);
      return;
    }
    this.grow = {
      initiator: false,
      phase: 'local',
      fromBytes: this.sizeBytes,
      sizeBytes,
      extendFile,
      assumeClean,
      diskBusy: false,
      aborted: undefined,
      held: [],
    };
    this.log('info', `online resize: ${this.cfg.peer.name} asks to grow to ${sizeBytes} bytes`);
    if (!this.persistInFlight) this.emitGrowDisk(this.grow);
  }

  /** The local grow: only with no metadata write in flight, and it holds later ones back. */
  private emitGrowDisk(g: GrowRun): void {
    assert(!this.persistInFlight && !g.diskBusy, 'a local grow overlaps a metadata write');
    g.diskBusy = true;
    this.persistInFlight = true;
    this.emit({ a: 'growDisk', sizeBytes: g.sizeBytes, extendFile: g.extendFile });
  }

  private onGrowReply(ok: boolean, sizeBytes: number, reason: string): void {
    const g = this.grow;
    if (!g?.initiator || g.phase !== 'asking') {
      this.log('warn', `ignoring an unexpected GrowReply from ${this.cfg.peer.name}`);
      return;
    }
    if (!ok) {
      this.endGrow(
        fail(
          'peer-refused',
          `${this.cfg.peer.name} refused to grow to ${g.sizeBytes} bytes: ${reason} (${this.cfg.peer.name} can hold ${sizeBytes} data bytes); nothing changed on either node`,
        ),
      );
      return;
    }
    if (sizeBytes !== g.sizeBytes) {
      this.endGrow(
        fail('grow-failed', `${this.cfg.peer.name} grew to ${sizeBytes} bytes, not ${g.sizeBytes}`),
      );
      this.dropConnection(`${this.cfg.peer.name} grew to the wrong size`);
      return;
    }
    g.phase = 'local';
    if (!this.persistInFlight) this.emitGrowDisk(g);
  }

  /** The shell's answer to `growDisk`. */
  private onGrowDisk(ok: boolean, sizeBytes: number, reason: string): void {
    const g = this.grow;
    assert(g?.diskBusy === true, 'growDone without a growDisk in flight');
    g.diskBusy = false;
    this.persistInFlight = false;
    if (ok) this.applyGrow(g, sizeBytes);
    if (!this.persistInFlight && this.persistSeq > this.persistedSeq) this.startPersist();
    const peer = this.cfg.peer.name;
    if (g.phase === 'catchUp') {
      this.endGrow(undefined);
      const stash = this.catchUpHandshake;
      this.catchUpHandshake = undefined;
      if (g.aborted !== undefined || !stash) {
        this.pumpAll();
        return; // The connection went meanwhile: the next handshake compares sizes again.
      }
      if (!ok) {
        this.refuse(
          `size mismatch: ${this.sizeBytes} here, ${stash.sizeBytes} on ${peer} (a resize there that did not finish here), and this disk cannot grow to it: ${reason}; grow this backing disk, then halo volume resize ${this.cfg.resource} here`,
        );
        return;
      }
      // The peer waits for a handshake at the size it has: send one, then take its own.
      this.emit({ a: 'send', msg: this.handshakeMsg() });
      this.onHandshake(stash);
      this.pumpAll();
      return;
    }
    if (g.aborted !== undefined) {
      this.endGrow(
        fail(
          'connection-lost',
          `connection to ${peer} lost during the resize (${g.aborted}); this node ${ok ? `grew to ${sizeBytes} bytes` : 'is unchanged'}; if the sizes now differ, the smaller node grows to match when the nodes reconnect`,
        ),
      );
      this.pumpAll();
      return;
    }
    if (!g.initiator) {
      const why = reason.slice(0, MAX_REASON_CHARS);
      this.emit({ a: 'send', msg: { t: 'GrowReply', ok, sizeBytes, reason: why } });
      if (ok) g.phase = 'waitDone';
      else this.endGrow(undefined);
      this.pumpAll();
      return;
    }
    if (!ok) {
      // The peer grew and this disk did not: the sizes differ and the next handshake says so.
      this.endGrow(
        fail(
          'grow-failed',
          `${peer} grew to ${g.sizeBytes} bytes but this node cannot: ${reason}; the nodes now differ in size and will not connect until this disk can hold ${g.sizeBytes} bytes: grow it, then halo volume connect ${this.cfg.resource} here`,
        ),
      );
      this.dropConnection(`resize failed here after ${peer} grew`);
      return;
    }
    this.emit({ a: 'send', msg: { t: 'GrowDone', sizeBytes } });
    this.finishGrow(g);
  }

  /** This disk holds `sizeBytes` now: so do the core and its bitmap. */
  private applyGrow(g: GrowRun, sizeBytes: number): void {
    assert(sizeBytes % BLOCK_BYTES === 0 && sizeBytes >= this.sizeBytes, `cannot grow to ${sizeBytes}`);
    const first = this.blocks;
    this.blocks = sizeBytes / BLOCK_BYTES;
    this.bitmap = this.bitmap.grownTo(this.blocks);
    // The new area holds whatever each disk held there: out of sync unless the administrator
    // said otherwise (--assume-clean). The shell's metadata write marked it already.
    if (!g.assumeClean) this.markBlocks(first, this.blocks - first);
    this.lastPersisted = grownMetadata(this.lastPersisted, sizeBytes);
    this.requestPersist();
    this.log('info', `grew from ${g.fromBytes} to ${sizeBytes} bytes`);
  }

  /** The initiator's GrowDone: both disks grew. */
  private onGrowDoneMsg(sizeBytes: number): void {
    const g = this.grow;
    if (g?.initiator !== false || g.phase !== 'waitDone' || sizeBytes !== this.sizeBytes) {
      this.dropConnection(`unexpected GrowDone (${sizeBytes} bytes) from ${this.cfg.peer.name}`);
      return;
    }
    this.finishGrow(g);
  }

  /** Both disks grew: the source of the new area starts its resync, held I/O goes on. */
  private finishGrow(g: GrowRun): void {
    const first = Math.ceil(g.fromBytes / BLOCK_BYTES);
    const count = this.blocks - first;
    const source = this.role === 'Primary' || (this.peerRole !== 'Primary' && g.initiator) ? 'self' : 'peer';
    if (!g.assumeClean && count > 0 && source === 'self') {
      // Sent before any write the held ones produce, so the peer is SyncTarget when they land.
      this.emit({ a: 'send', msg: { t: 'GrowResync', first, count, current: this.gen.current } });
      this.startResyncSource(false);
    }
    this.endGrow({
      ok: true,
      oldBytes: g.fromBytes,
      newBytes: this.sizeBytes,
      newAreaBlocks: g.assumeClean ? 0 : count,
    });
  }

  /** The source of the new area says it follows as resync: become its SyncTarget. */
  private onGrowResync(first: number, count: number, current: bigint): void {
    if (this.grow || this.conn !== 'Connected' || this.role === 'Primary' || !this.validRange(first, count)) {
      this.dropConnection(`unexpected GrowResync of blocks ${first}+${count} from ${this.cfg.peer.name}`);
      return;
    }
    this.markBlocks(first, count);
    this.startResyncTarget(false, current);
  }

  /** The connection dropped during a grow. */
  private abortGrow(reason: string): void {
    const g = this.grow!;
    if (g.diskBusy) {
      g.aborted = reason; // ends when the disk is done (it may have grown)
      return;
    }
    if (g.phase === 'catchUp') {
      // Waiting for a metadata write to finish before growing: nothing changed yet.
      this.catchUpHandshake = undefined;
      this.endGrow(undefined);
      return;
    }
    const grown = this.sizeBytes !== g.fromBytes;
    this.endGrow(
      fail(
        'connection-lost',
        `connection to ${this.cfg.peer.name} lost during the resize (${reason}); ${grown ? `this node grew to ${this.sizeBytes} bytes` : 'this node is unchanged'}, ${this.cfg.peer.name} may ${grown ? 'not have' : 'have'}: if the sizes differ, the smaller node grows to match when the nodes reconnect`,
      ),
    );
  }

  /** The grow is over: the initiator reports `result`, held I/O is replayed in order. */
  private endGrow(result: GrowResult | undefined): void {
    const g = this.grow!;
    this.grow = undefined;
    if (g.initiator && result) {
      this.emit({ a: 'growFinished', result });
      if (!result.ok) this.log('error', `online resize failed: ${result.message}`);
    }
    for (const h of g.held) {
      if (h.kind === 'write') this.onWrite(h.id, h.offset, h.data, h.fua);
      else this.onFlush(h.id);
    }
  }

  // ---------------------------------------------------------------- resource fencing

  /**
   * Runs the fence-peer handler when the policy asks for it (`fencing resource-only` or
   * `resource-and-stonith`) and the peer is not already known to be outdated. With
   * resource-and-stonith, I/O is suspended until the handler reports the peer fenced.
   */
  private startFencing(why: string): void {
    if (this.cfg.fencing === 'dont-care' || this.peerOutdated) return;
    if (this.cfg.fencing === 'resource-and-stonith') this.ioFrozen = true;
    if (this.fencing) return;
    this.fencing = true;
    this.log(
      'warn',
      `${why}: running fence-peer for ${this.cfg.peer.name}${this.ioFrozen ? ' (I/O suspended until it returns)' : ''}`,
    );
    this.emit({ a: 'handler', name: 'fence-peer' });
  }

  /** fence-peer's exit code, as DRBD defines it (3..7); anything else means it failed. */
  private onHandlerDone(name: string, code: number | null): void {
    if (name !== 'fence-peer' || !this.fencing) return;
    this.fencing = false;
    const peer = this.cfg.peer.name;
    switch (code) {
      case 3:
        this.peerFenced('Inconsistent', `${peer}'s disk is inconsistent or worse`);
        return;
      case 4:
        this.peerFenced('Outdated', `${peer} was fenced (outdated)`);
        return;
      case 7:
        this.peerFenced('Outdated', `${peer} was stonithed`);
        return;
      case 5:
        if (this.disk === 'UpToDate') {
          this.peerFenced('Outdated', `${peer} is unreachable, assumed to be dead`);
          return;
        }
        this.log('error', `fence-peer: ${peer} is unreachable and this disk is ${this.disk}; nothing done`);
        return;
      case 6:
        // The peer is Primary: this node is the one that must not serve (DRBD outdates itself).
        this.outdateSelf(`fence-peer: ${peer} is Primary`);
        if (this.role === 'Primary') this.ioFrozen = true;
        this.log(
          'error',
          `fence-peer: ${peer} is Primary; this disk is now Outdated and I/O stays suspended: demote this node`,
        );
        return;
      default:
        this.log(
          'error',
          `fence-peer handler failed (exit ${code ?? 'none'}); ${peer} is not fenced${this.ioFrozen ? '; I/O stays suspended until it is (or: halo volume resume-io)' : ''}`,
        );
    }
  }

  private peerFenced(disk: DiskState, why: string): void {
    this.peerOutdated = true;
    if (!this.handshakeDone) this.peerDisk = disk;
    this.requestPersist();
    this.log('info', `fence-peer: ${why}`);
    this.thaw(why);
  }

  /** Resumes suspended I/O: everything held back is acknowledged as it completes. */
  private thaw(why: string): void {
    if (!this.ioFrozen) return;
    this.ioFrozen = false;
    this.log('info', `I/O resumed: ${why}`);
    for (const w of this.writes.values()) this.maybeAck(w);
    for (const f of this.flushes.values()) this.maybeAckFlush(f);
  }

  private outdateSelf(reason: string): void {
    if (this.disk !== 'UpToDate' && this.disk !== 'Consistent') return;
    this.disk = 'Outdated';
    this.requestPersist();
    this.log('warn', `disk outdated: ${reason}`);
  }

  private sendState(): void {
    this.emit({ a: 'send', msg: { t: 'State', role: this.role, disk: this.disk } });
  }

  // ---------------------------------------------------------------- connection

  private onTransportUp(): void {
    if (!this.wantConnect) {
      this.emit({ a: 'closeTransport', reason: 'not connecting (StandAlone)' });
      return;
    }
    this.transportOpen = true;
    this.handshakeDone = false;
    this.lastHeardMs = this.nowMs;
    this.emit({ a: 'send', msg: this.handshakeMsg() });
  }

  private handshakeMsg(): HandshakeMsg {
    return {
      t: 'Handshake',
      version: WIRE_VERSION,
      node: this.cfg.self.name,
      protocol: this.cfg.protocol,
      sizeBytes: this.sizeBytes,
      current: this.gen.current,
      bitmapUuid: this.gen.bitmap,
      history: this.gen.history,
      role: this.role,
      disk: this.disk,
      crashedPrimary: this.crashedPrimary,
      discardMyData: this.discardMyData,
      syncSourceUuid: this.syncSourceUuid,
      bitmap: this.bitmap.copy(),
    };
  }

  /** `fence: false` for a drop this node makes only to reconnect at once (no peer is lost). */
  private dropConnection(reason: string, opts: { fence: boolean } = { fence: true }): void {
    this.emit({ a: 'closeTransport', reason });
    this.onTransportDown(reason, opts.fence);
  }

  private onTransportDown(reason: string, fence = true): void {
    const wasUp = this.handshakeDone;
    this.transportOpen = false;
    this.handshakeDone = false;
    this.awaitingPeerCatchUp = false;
    this.peerRole = 'Unknown';
    this.peerDisk = 'DUnknown';
    if (wasUp) this.log('warn', `connection to ${this.cfg.peer.name} lost: ${reason}`);
    this.endPeerCheck({ peer: 'lost', reason });
    // Whatever the peer has not confirmed is out of sync.
    // So is whatever it confirmed but did not yet make durable: it may have lost power.
    for (const pending of [this.peerPending, this.peerUnstable]) {
      for (const p of pending.values()) {
        this.markBlocks(p.first, p.count);
        this.settle(p.settle);
      }
      pending.clear();
    }
    this.barrierCovers.clear();
    this.syncBarrierSeq = 0;
    let seq = this.persistedSeq;
    if (wasUp && this.role === 'Primary' && this.gen.bitmap === 0n) {
      this.gen = newCurrent(this.gen, this.ports.freshUuid(), true);
      if (fence) this.startFencing(`lost ${this.cfg.peer.name} while Primary`);
    }
    if (wasUp) seq = this.requestPersist();
    for (const w of this.writes.values()) {
      if (w.awaitPeer) {
        w.awaitPeer = false;
        w.needSeq = Math.max(w.needSeq, seq);
      }
    }
    for (const f of this.flushes.values()) {
      f.barrierDone = true;
      this.maybeAckFlush(f);
    }
    this.barrierToFlush.clear();
    if (this.grow) this.abortGrow(reason);
    this.stopResync();
    if (this.verify?.running) {
      this.verify.running = false;
      this.log('warn', `verify interrupted at block ${this.verify.cursor}`);
    }
    this.conn = this.wantConnect ? 'Connecting' : 'StandAlone';
    if (this.wantConnect) this.emit({ a: 'openTransport' });
    for (const w of this.writes.values()) this.maybeAck(w);
  }

  private view(): NodeView {
    return {
      name: this.cfg.self.name,
      gen: this.gen,
      role: this.role,
      disk: this.disk,
      weight: this.bitmap.weight,
      crashedPrimary: this.crashedPrimary,
      discardMyData: this.discardMyData,
      syncSourceUuid: this.syncSourceUuid,
    };
  }

  /**
   * The peer's volume has another size. An online grow cut short (the connection went after one
   * node grew and before the other did) leaves exactly that, so the smaller node grows to the
   * larger size (extending a regular backing file if needed), as the grow would have done, and
   * handshakes again; the larger node waits for that handshake on the same connection. Only when
   * the smaller disk cannot grow is the connection refused, naming both sizes. Never shrinks.
   */
  private onSizeMismatch(m: HandshakeMsg): void {
    const peer = m.node;
    if (m.sizeBytes < this.sizeBytes) {
      if (!this.awaitingPeerCatchUp)
        this.log(
          'warn',
          `${peer} holds ${m.sizeBytes} bytes and this node ${this.sizeBytes} (a resize that did not finish there): waiting for ${peer} to grow to match`,
        );
      this.awaitingPeerCatchUp = true;
      return;
    }
    if (this.grow || !Number.isSafeInteger(m.sizeBytes) || m.sizeBytes % BLOCK_BYTES !== 0) {
      this.refuse(
        `size mismatch: ${this.sizeBytes} here, ${m.sizeBytes} on ${peer}; grow both backing disks and run halo volume resize ${this.cfg.resource} on each node`,
      );
      return;
    }
    this.log(
      'warn',
      `${peer} holds ${m.sizeBytes} bytes and this node ${this.sizeBytes} (a resize that did not finish here): growing to match`,
    );
    this.catchUpHandshake = m;
    this.grow = {
      initiator: false,
      phase: 'catchUp',
      fromBytes: this.sizeBytes,
      sizeBytes: m.sizeBytes,
      extendFile: true,
      assumeClean: false,
      diskBusy: false,
      aborted: undefined,
      held: [],
    };
    if (!this.persistInFlight) this.emitGrowDisk(this.grow);
  }

  private onHandshake(m: HandshakeMsg): void {
    const version = m.version ?? 1;
    if (version !== WIRE_VERSION) {
      this.refuse(
        `wire format version mismatch: halo-${WIRE_VERSION} here, halo-${version} on ${m.node}; run the same halo version on both nodes`,
      );
      return;
    }
    if (m.protocol !== this.cfg.protocol) {
      this.refuse(`protocol mismatch: ${this.cfg.protocol} here, ${m.protocol} on ${m.node}`);
      return;
    }
    if (m.sizeBytes !== this.sizeBytes) {
      this.onSizeMismatch(m);
      return;
    }
    this.awaitingPeerCatchUp = false;
    if (m.node !== this.cfg.peer.name) {
      this.refuse(`expected peer ${this.cfg.peer.name}, got ${m.node}`);
      return;
    }
    if (m.bitmap.length !== this.bitmap.bits.length) {
      this.refuse('peer bitmap has the wrong size');
      return;
    }
    const peer: NodeView = {
      name: m.node,
      gen: { current: m.current, bitmap: m.bitmapUuid, history: m.history },
      role: m.role,
      disk: m.disk,
      weight: new Bitmap(this.blocks, m.bitmap).weight,
      crashedPrimary: m.crashedPrimary,
      discardMyData: m.discardMyData,
      syncSourceUuid: m.syncSourceUuid,
    };
    if (m.role === 'Primary' && this.role === 'Primary' && !this.cfg.net.allowTwoPrimaries) {
      // Both Primary: only a split brain can explain it, handled below by after-sb-2pri.
    }
    const d: Decision = decide(this.view(), peer, {
      after0: this.cfg.net.afterSb0,
      after1: this.cfg.net.afterSb1,
      after2: this.cfg.net.afterSb2,
    });
    this.lastDecision = `${d.kind}: ${d.rule}`;
    this.log('info', `handshake with ${m.node}: ${this.lastDecision}`);
    this.peerRole = m.role;
    this.peerDisk = m.disk;
    this.discardMyData = false;
    if (d.kind === 'in-sync' || d.kind === 'source' || d.kind === 'target') {
      // The peer is back and will receive every write (or resync them): nothing it lacks can
      // be promoted any more, so suspended I/O resumes, as DRBD does on reconnect.
      this.fencing = false;
      this.thaw(`${m.node} reconnected`);
    }
    switch (d.kind) {
      case 'unrelated':
      case 'refuse': {
        this.refuse(d.rule);
        return;
      }
      case 'split-brain':
        this.log('error', `split brain detected with ${m.node}, not resolved: ${d.rule}`);
        this.emit({ a: 'handler', name: 'split-brain' });
        if (d.priLost) this.emit({ a: 'handler', name: 'pri-lost-after-sb' });
        {
          this.refuse('split brain');
          return;
        }
      case 'in-sync':
        this.handshakeDone = true;
        this.crashedPrimary = false;
        this.conn = 'Connected';
        if (this.disk !== 'Inconsistent' && (m.disk === 'UpToDate' || this.disk === 'UpToDate'))
          this.disk = 'UpToDate';
        if (this.peerDisk !== 'Inconsistent' && this.disk === 'UpToDate') this.peerDisk = 'UpToDate';
        this.peerOutdated = false;
        this.requestPersist();
        return;
      case 'source':
      case 'target':
        this.handshakeDone = true;
        this.crashedPrimary = false;
        if (d.splitBrain) this.log('warn', `split brain auto-resolved: ${d.rule}`);
        if (d.full) this.bitmap.setAll();
        else this.bitmap.merge(m.bitmap);
        if (d.kind === 'source') this.startResyncSource(d.full);
        else this.startResyncTarget(d.full, m.current);
        return;
    }
  }

  private refuse(reason: string): void {
    this.log('error', `refusing connection to ${this.cfg.peer.name}: ${reason}`);
    this.wantConnect = false;
    this.dropConnection(reason);
    this.conn = 'StandAlone';
  }

  private onPeer(msg: PeerMsg): void {
    if (msg.t === 'Handshake') {
      if (!this.transportOpen || this.handshakeDone) {
        this.dropConnection('unexpected handshake');
        return;
      }
      this.onHandshake(msg);
      return;
    }
    if (this.handshakeDone && this.queue.size >= MAX_DISK_OPS) {
      // A peer that sends faster than our disk absorbs would grow memory without bound; drop
      // it. Whatever it had in flight is marked on its side and resynced after reconnecting.
      this.dropConnection(`peer overran the disk queue (${this.queue.size} operations waiting)`);
      return;
    }
    if (msg.t === 'Ping') {
      // Answered as soon as the transport is open, handshake or not: a peer checking this node
      // (checkPeer) must never take a handshake still under way here for a dead node.
      if (this.transportOpen) this.emit({ a: 'send', msg: { t: 'PingAck' } });
      return;
    }
    if (!this.handshakeDone) {
      // Messages of an older connection or out of order: never act on them.
      return;
    }
    switch (msg.t) {
      case 'Data': {
        this.onPeerData(msg.seq, msg.offset, msg.fua, msg.data);
        return;
      }
      case 'RecvAck':
      case 'WriteAck':
      case 'NegAck': {
        this.onPeerAck(msg.t, msg.seq);
        return;
      }
      case 'Barrier': {
        this.onBarrier(msg.seq);
        return;
      }
      case 'BarrierAck': {
        this.onBarrierAck(msg.seq);
        return;
      }
      case 'ResyncData': {
        this.onResyncData(msg.first, msg.data);
        return;
      }
      case 'ResyncAck': {
        this.onResyncAck(msg.first, msg.count, msg.ok);
        return;
      }
      case 'ResyncCsum': {
        this.onResyncCsum(msg.first, msg.digests);
        return;
      }
      case 'ResyncNeed': {
        this.onResyncNeed(msg.first, msg.need);
        return;
      }
      case 'ResyncDone':
        this.resyncDoneMsg = { current: msg.current, history: msg.history };
        this.maybeFinishTarget();
        return;
      case 'VerifyReq': {
        this.onVerifyReq(msg.first, msg.digests);
        return;
      }
      case 'VerifyReply': {
        this.onVerifyReply(msg.first, msg.differ);
        return;
      }
      case 'State':
        this.peerRole = msg.role;
        if (msg.disk !== 'Inconsistent' || this.peerDisk !== 'Inconsistent') this.peerDisk = msg.disk;
        return;
      case 'Outdate':
        if (this.role === 'Secondary') this.outdateSelf(`${this.cfg.peer.name} disconnected while Primary`);
        return;
      case 'PingAck':
        // Any PingAck while checking: the peer runs (one answering an older ping still proves
        // it ran a moment ago; erring that way only leaves the connection up).
        this.endPeerCheck({ peer: 'answered' });
        return;
      case 'GrowReq':
        this.onGrowReq(msg.sizeBytes, msg.extendFile, msg.assumeClean);
        return;
      case 'GrowReply':
        this.onGrowReply(msg.ok, msg.sizeBytes, msg.reason);
        return;
      case 'GrowDone':
        this.onGrowDoneMsg(msg.sizeBytes);
        return;
      case 'GrowResync':
        this.onGrowResync(msg.first, msg.count, msg.current);
        return;
    }
  }

  private validRange(first: number, count: number): boolean {
    return Number.isSafeInteger(first) && first >= 0 && count >= 0 && first + count <= this.blocks;
  }

  private onPeerData(seq: number, offset: number, fua: boolean, data: Uint8Array): void {
    if (
      offset + data.length > this.sizeBytes ||
      (this.role === 'Primary' && !this.cfg.net.allowTwoPrimaries)
    ) {
      this.emit({ a: 'send', msg: { t: 'NegAck', seq } });
      return;
    }
    if (this.cfg.protocol === 'B') this.emit({ a: 'send', msg: { t: 'RecvAck', seq } });
    this.counters.nr += data.length;
    if (this.role === 'Primary') {
      this.onDualPrimaryData(seq, offset, fua, data);
      return;
    }
    this.queue.add(new PeerWriteOp(this.opSink, seq, offset, data, fua));
  }

  /** A peer write (this node Secondary) reached the disk: the peer learns it. */
  private onPeerWriteDone(op: PeerWriteOp, ok: boolean): void {
    this.counters.dw += op.data.length;
    if (this.handshakeDone) this.emit({ a: 'send', msg: { t: ok ? 'WriteAck' : 'NegAck', seq: op.seq } });
  }

  // ---------------------------------------------------------------- allow-two-primaries

  /**
   * Concurrent writes to the same bytes from both Primaries must end the same on both disks.
   * The node whose name sorts first wins every conflict: there, a peer write is applied only
   * outside the bytes of its own unfinished writes; on the other node the winner's write is
   * applied after its own (and applied again after an own write released later while the
   * winner's is still in progress). Each conflict is reported.
   */
  private onDualPrimaryData(seq: number, offset: number, fua: boolean, data: Uint8Array): void {
    // Own writes the peer has not applied yet: not yet sent, or sent and not yet WriteAcked.
    // (One the peer already applied came before this peer write there too: plain order.)
    const mine: Array<{ offset: number; length: number }> = [];
    for (const w of this.writes.values())
      if (!w.released && overlap(w.offset, w.data.length, offset, data.length))
        mine.push({ offset: w.offset, length: w.data.length });
    for (const p of this.peerPending.values())
      if (overlap(p.offset, p.length, offset, data.length)) mine.push({ offset: p.offset, length: p.length });
    const wins = this.cfg.self.name < this.cfg.peer.name;
    if (mine.length > 0)
      this.reportConflict(offset, data.length, wins ? this.cfg.self.name : this.cfg.peer.name);
    const pieces = wins && mine.length > 0 ? subtractRanges(offset, data, mine) : [{ offset, data }];
    const entry = { offset, data, fua };
    this.peerInProgress.set(seq, entry);
    let left = pieces.length;
    let allOk = true;
    const finish = () => {
      this.peerInProgress.delete(seq);
      if (this.handshakeDone) this.emit({ a: 'send', msg: { t: allOk ? 'WriteAck' : 'NegAck', seq } });
    };
    if (left === 0) {
      finish();
      return;
    }
    for (const piece of pieces) {
      this.queuePeerWrite(piece.offset, piece.data, fua, (ok) => {
        allOk &&= ok;
        if (--left === 0) finish();
      });
    }
  }

  private queuePeerWrite(offset: number, data: Uint8Array, fua: boolean, done: (ok: boolean) => void): void {
    const { first, count } = blocksOf(offset, data.length);
    this.queue.add({
      kind: 'write',
      first,
      count,
      needSeq: 0,
      start: (op) => this.emit({ a: 'diskWrite', op, offset, data, fua }),
      done: (ok) => {
        this.counters.dw += data.length;
        done(ok);
      },
    });
  }

  /** On the node that loses conflicts: a local write released over a winner's write in progress. */
  private reapplyPeerWritesOver(w: AppWrite): void {
    if (!this.cfg.net.allowTwoPrimaries || this.cfg.self.name < this.cfg.peer.name) return;
    // In the order they arrived, each in-progress peer write again, but only where it meets
    // this write: later peer writes still win over earlier ones, and bytes outside this write
    // keep whatever the peer wrote last.
    let reported = false;
    for (const p of this.peerInProgress.values()) {
      const from = Math.max(p.offset, w.offset);
      const to = Math.min(p.offset + p.data.length, w.offset + w.data.length);
      if (from >= to) continue;
      if (!reported) this.reportConflict(w.offset, w.data.length, this.cfg.peer.name);
      reported = true;
      this.queuePeerWrite(from, p.data.subarray(from - p.offset, to - p.offset), p.fua, () => {});
    }
  }

  private reportConflict(offset: number, length: number, winner: string): void {
    this.writeConflicts++;
    this.log(
      'warn',
      `allow-two-primaries: concurrent writes to bytes ${offset}..${offset + length - 1} on both Primaries; ${winner}'s data wins on both disks`,
    );
  }

  private onPeerAck(kind: 'RecvAck' | 'WriteAck' | 'NegAck', seq: number): void {
    const p = this.peerPending.get(seq);
    if (!p) return;
    const w = this.writes.get(p.writeId);
    if (kind === 'RecvAck') {
      if (w?.seq === seq) w.recvAcked = true;
    } else {
      this.peerPending.delete(seq);
      this.counters.pe--;
      if (kind === 'NegAck') this.markBlocks(p.first, p.count);
      // A FUA write is durable when acknowledged; any other waits for the next barrier.
      if (kind === 'WriteAck' && !p.fua) this.peerUnstable.set(seq, p);
      else this.settle(p.settle);
      if (w?.seq === seq) w.writeAcked = true;
    }
    if (w) this.maybeAck(w);
  }

  private onBarrier(seq: number): void {
    this.queue.add({
      kind: 'flush',
      first: 0,
      count: this.blocks,
      needSeq: 0,
      start: (op) => this.emit({ a: 'diskFlush', op }),
      done: () => {
        if (this.handshakeDone) this.emit({ a: 'send', msg: { t: 'BarrierAck', seq } });
      },
    });
  }

  // ---------------------------------------------------------------- resync

  private startResyncSource(full: boolean): void {
    this.conn = 'SyncSource';
    this.peerDisk = 'Inconsistent';
    this.resync = {
      role: 'source',
      totalBlocks: this.bitmap.weight,
      doneBlocks: 0,
      sentBytes: 0,
      startMs: this.nowMs,
      full,
    };
    this.resyncCursor = 0;
    this.requestPersist();
    this.log('info', `resync as SyncSource: ${this.bitmap.weight} blocks${full ? ' (full sync)' : ''}`);
  }

  private startResyncTarget(full: boolean, sourceUuid: bigint): void {
    this.conn = 'SyncTarget';
    this.disk = 'Inconsistent';
    this.syncSourceUuid = sourceUuid;
    this.resync = {
      role: 'target',
      totalBlocks: this.bitmap.weight,
      doneBlocks: 0,
      sentBytes: 0,
      startMs: this.nowMs,
      full,
    };
    this.resyncDoneMsg = undefined;
    this.resyncTargetPending = 0;
    this.resyncTargetSeq = this.requestPersist();
    this.log('info', `resync as SyncTarget: ${this.bitmap.weight} blocks${full ? ' (full sync)' : ''}`);
  }

  private stopResync(): void {
    if (!this.resync) return;
    this.log('warn', `resync interrupted with ${this.bitmap.weight} blocks left`);
    this.resync = undefined;
    this.resyncRuns.clear();
    this.resyncBlocksInFlight = 0;
    this.resyncDoneMsg = undefined;
    this.requestPersist();
  }

  private touchResync(first: number, count: number): void {
    for (const run of this.resyncRuns.values())
      if (run.first < first + count && first < run.first + run.count) run.touched = true;
  }

  /** The resync run in flight that covers block `b`, if any. */
  private runAt(b: number): ResyncRun | undefined {
    for (const run of this.resyncRuns.values()) if (b >= run.first && b < run.first + run.count) return run;
    return undefined;
  }

  /** Where the first run in flight that starts after block `b` starts (or the device's end). */
  private nextRunStart(b: number): number {
    let next = this.blocks;
    for (const run of this.resyncRuns.values()) if (run.first > b && run.first < next) next = run.first;
    return next;
  }

  private pumpResync(): void {
    const rs = this.resync;
    if (rs?.role !== 'source' || !this.handshakeDone) return;
    const limited = this.cfg.resyncRateBytesPerSec > 0 || this.rateCtl !== undefined;
    let wrapped = false;
    const maxRun = this.cfg.net.csumsAlg ? MAX_RUN_BLOCKS : RESYNC_RUN_BLOCKS;
    while (this.resyncRuns.size < MAX_RESYNC_INFLIGHT && (!limited || this.rateBudget > 0)) {
      // Under a rate limit a run never exceeds what the budget allows right now.
      const runLimit = limited
        ? Math.max(1, Math.min(maxRun, Math.floor(this.rateBudget / BLOCK_BYTES)))
        : maxRun;
      let b = this.bitmap.nextSet(this.resyncCursor);
      for (let r = b >= 0 ? this.runAt(b) : undefined; r; r = b >= 0 ? this.runAt(b) : undefined)
        b = this.bitmap.nextSet(r.first + r.count);
      if (b < 0) {
        if (!wrapped && this.resyncCursor > 0 && this.bitmap.weight > this.resyncBlocksInFlight) {
          this.resyncCursor = 0;
          wrapped = true;
          continue;
        }
        if (this.resyncRuns.size === 0 && this.bitmap.weight === 0) this.finishSource();
        return;
      }
      let count = 1;
      const end = Math.min(b + runLimit, this.nextRunStart(b));
      while (b + count < end && this.bitmap.get(b + count)) count++;
      this.resyncCursor = b + count;
      if (limited) this.rateBudget -= count * BLOCK_BYTES;
      this.startResyncRun(b, count);
    }
  }

  private startResyncRun(first: number, count: number): void {
    const run: ResyncRun = { first, count, touched: false, data: undefined, acksLeft: 0 };
    this.resyncRuns.set(first, run);
    this.resyncBlocksInFlight += count;
    this.queue.add({
      kind: 'read',
      first,
      count,
      needSeq: 0,
      start: (op) =>
        this.emit({ a: 'diskRead', op, offset: first * BLOCK_BYTES, length: count * BLOCK_BYTES }),
      done: (ok, data) => this.onResyncRead(run, ok, data),
    });
  }

  private endRun(run: ResyncRun): void {
    if (this.resyncRuns.get(run.first) === run) {
      this.resyncRuns.delete(run.first);
      this.resyncBlocksInFlight -= run.count;
    }
  }

  private onResyncRead(run: ResyncRun, ok: boolean, data: Uint8Array | undefined): void {
    if (this.resyncRuns.get(run.first) !== run) return;
    if (!ok || !data || run.touched || !this.handshakeDone) {
      // Written meanwhile (or a read error): the bits stay set and a later pass resends.
      this.endRun(run);
      this.resyncCursor = Math.min(this.resyncCursor, run.first);
      return;
    }
    this.counters.dr += data.length;
    if (this.cfg.net.csumsAlg) {
      run.data = data;
      const digests: string[] = [];
      for (let i = 0; i < run.count; i++)
        digests.push(this.ports.digest(data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES)));
      this.emit({ a: 'send', msg: { t: 'ResyncCsum', first: run.first, digests } });
      return;
    }
    run.acksLeft = 1;
    this.sendResyncData(run.first, data);
  }

  private sendResyncData(first: number, data: Uint8Array): void {
    this.resync!.sentBytes += data.length;
    this.counters.resyncBytesSent += data.length;
    this.counters.ns += data.length;
    this.emit({ a: 'send', msg: { t: 'ResyncData', first, data } });
  }

  private onResyncNeed(first: number, need: readonly boolean[]): void {
    const run = this.resyncRuns.get(first);
    if (!run?.data || need.length !== run.count) return;
    for (let i = 0; i < run.count; i++) {
      if (need[i] === true) {
        run.acksLeft++;
        this.sendResyncData(first + i, run.data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES));
      } else {
        this.bitmap.clear(first + i);
        this.resync!.doneBlocks++;
        this.resyncAckedSinceStep += BLOCK_BYTES;
      }
    }
    if (run.acksLeft === 0) this.endRun(run);
  }

  private onResyncAck(first: number, count: number, ok: boolean): void {
    const run = this.runAt(first);
    if (!run || !this.resync) return;
    if (ok) {
      for (let b = first; b < first + count && b < run.first + run.count; b++) this.bitmap.clear(b);
      this.resync.doneBlocks += count;
      this.resyncAckedSinceStep += count * BLOCK_BYTES;
    }
    run.acksLeft--;
    if (run.acksLeft <= 0) this.endRun(run);
  }

  private finishSource(): void {
    this.gen = syncSourceDone(this.gen);
    const done = this.resync!;
    this.resync = undefined;
    this.conn = 'Connected';
    this.peerDisk = 'UpToDate';
    this.peerOutdated = false;
    this.requestPersist();
    this.emit({ a: 'send', msg: { t: 'ResyncDone', current: this.gen.current, history: this.gen.history } });
    this.log(
      'info',
      `resync finished as SyncSource: ${done.doneBlocks} blocks, ${done.sentBytes} bytes sent`,
    );
  }

  private onResyncData(first: number, data: Uint8Array): void {
    const count = data.length / BLOCK_BYTES;
    if (this.resync?.role !== 'target' || !Number.isInteger(count) || !this.validRange(first, count)) {
      this.emit({
        a: 'send',
        msg: { t: 'ResyncAck', first, count: Math.max(0, Math.floor(count)), ok: false },
      });
      return;
    }
    this.resyncTargetPending++;
    this.counters.resyncBytesReceived += data.length;
    this.counters.nr += data.length;
    const rs = this.resync;
    this.queue.add({
      kind: 'write',
      first,
      count,
      // The Inconsistent state reaches disk before the first resync write does. Later
      // persists (the shrinking bitmap) are resume points no resync write depends on: waiting
      // for them would stall resync behind fdatasyncs of everything written so far.
      needSeq: this.resyncTargetSeq,
      start: (op) => this.emit({ a: 'diskWrite', op, offset: first * BLOCK_BYTES, data, fua: false }),
      done: (ok) => {
        this.resyncTargetPending--;
        if (ok) for (let b = first; b < first + count; b++) this.bitmap.clear(b);
        if (this.resync === rs && rs) rs.doneBlocks += count;
        this.resyncDirty = true;
        if (this.handshakeDone) this.emit({ a: 'send', msg: { t: 'ResyncAck', first, count, ok } });
        this.maybeFinishTarget();
      },
    });
  }

  private onResyncCsum(first: number, digests: readonly string[]): void {
    const count = digests.length;
    if (
      this.resync?.role !== 'target' ||
      count === 0 ||
      count > MAX_RUN_BLOCKS ||
      !this.validRange(first, count)
    ) {
      this.emit({ a: 'send', msg: { t: 'ResyncNeed', first, need: digests.map(() => true) } });
      return;
    }
    this.readAndCompare(first, digests, (need) => {
      need.forEach((n, i) => {
        if (!n) this.bitmap.clear(first + i);
      });
      if (this.handshakeDone) this.emit({ a: 'send', msg: { t: 'ResyncNeed', first, need } });
    });
  }

  /**
   * Reads `digests.length` blocks from `first` and tells `then`, per block, whether the local
   * block's digest differs from the peer's (a failed read counts as different). Shared by
   * checksum-based resync and online verify.
   */
  private readAndCompare(first: number, digests: readonly string[], then: (differ: boolean[]) => void): void {
    const count = digests.length;
    this.queue.add({
      kind: 'read',
      first,
      count,
      needSeq: 0,
      start: (op) =>
        this.emit({ a: 'diskRead', op, offset: first * BLOCK_BYTES, length: count * BLOCK_BYTES }),
      done: (ok, data) =>
        then(
          digests.map(
            (d, i) =>
              !ok || !data || this.ports.digest(data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES)) !== d,
          ),
        ),
    });
  }

  private maybeFinishTarget(): void {
    const done = this.resyncDoneMsg;
    if (!done || this.resyncTargetPending > 0 || this.resync?.role !== 'target') return;
    const rs = this.resync;
    this.gen = { current: done.current & ~1n, bitmap: 0n, history: [done.history[0], done.history[1]] };
    this.disk = 'UpToDate';
    this.syncSourceUuid = 0n;
    this.bitmap.clearAll();
    this.resync = undefined;
    this.resyncDoneMsg = undefined;
    this.conn = 'Connected';
    this.peerDisk = 'UpToDate';
    this.requestPersist();
    this.log('info', `resync finished as SyncTarget: ${rs.doneBlocks} blocks received`);
    this.emit({ a: 'handler', name: 'after-resync-target' });
  }

  // ---------------------------------------------------------------- verify

  private pumpVerify(): void {
    const v = this.verify;
    if (!v?.running || !this.handshakeDone) return;
    while (v.inflight < MAX_VERIFY_INFLIGHT && v.cursor < this.blocks) {
      const first = v.cursor;
      const count = Math.min(MAX_RUN_BLOCKS, this.blocks - first);
      v.cursor += count;
      v.inflight++;
      this.queue.add({
        kind: 'read',
        first,
        count,
        needSeq: 0,
        start: (op) =>
          this.emit({ a: 'diskRead', op, offset: first * BLOCK_BYTES, length: count * BLOCK_BYTES }),
        done: (ok, data) => {
          if (!ok || !data || this.verify !== v || !v.running) return;
          const digests: string[] = [];
          for (let i = 0; i < count; i++)
            digests.push(this.ports.digest(data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES)));
          this.emit({ a: 'send', msg: { t: 'VerifyReq', first, digests } });
        },
      });
    }
  }

  private onVerifyReq(first: number, digests: readonly string[]): void {
    const count = digests.length;
    if (count === 0 || count > MAX_RUN_BLOCKS || !this.validRange(first, count)) {
      this.emit({ a: 'send', msg: { t: 'VerifyReply', first, differ: digests.map(() => true) } });
      return;
    }
    this.readAndCompare(first, digests, (differ) => {
      differ.forEach((d, i) => {
        if (d) this.bitmap.set(first + i);
      });
      if (differ.some((d) => d)) this.requestPersist();
      if (this.handshakeDone) this.emit({ a: 'send', msg: { t: 'VerifyReply', first, differ } });
    });
  }

  private onVerifyReply(first: number, differ: readonly boolean[]): void {
    const v = this.verify;
    if (!v?.running) return;
    v.inflight--;
    differ.forEach((d, i) => {
      if (d && this.validRange(first + i, 1)) {
        v.oos++;
        this.bitmap.set(first + i);
        this.log(
          'warn',
          `verify: block ${first + i} (sector ${((first + i) * BLOCK_BYTES) / 512}) differs from ${this.cfg.peer.name}`,
        );
      }
    });
    v.done += differ.length;
    if (v.cursor >= this.blocks && v.inflight === 0) {
      v.running = false;
      this.requestPersist();
      this.log(
        'info',
        `online verify finished: ${v.oos} out-of-sync blocks (${v.oos * 4} KiB); disconnect and connect to resync them`,
      );
    }
  }

  // ---------------------------------------------------------------- time

  private onTick(nowMs: number): void {
    const dt = Math.max(0, nowMs - this.nowMs);
    this.nowMs = nowMs;
    const rate = this.cfg.resyncRateBytesPerSec;
    if (this.rateCtl) this.stepRateController(this.rateCtl);
    else if (rate > 0) this.rateBudget = Math.min(rate, this.rateBudget + (rate * dt) / 1000);
    if (this.handshakeDone) {
      if (this.tickPeerCheck(nowMs)) return;
      const silentMs = nowMs - this.lastHeardMs;
      if (silentMs > this.cfg.net.pingIntervalMs + this.cfg.net.timeoutMs) {
        this.dropConnection(`no message from ${this.cfg.peer.name} for ${silentMs} ms`);
        return;
      }
      if (nowMs - this.lastPingMs >= this.cfg.net.pingIntervalMs) {
        this.lastPingMs = nowMs;
        this.emit({ a: 'send', msg: { t: 'Ping' } });
      }
      const ko = this.cfg.net.koCount > 0 ? this.cfg.net.timeoutMs * this.cfg.net.koCount : 0;
      if (ko > 0) {
        for (const p of this.peerPending.values()) {
          if (nowMs - p.sentMs > ko) {
            this.dropConnection(`ko-count: a write waited ${nowMs - p.sentMs} ms for the peer`);
            return;
          }
          break; // Oldest first: Map keeps insertion order.
        }
      }
    }
    if (
      this.handshakeDone &&
      this.peerUnstable.size > 0 &&
      this.syncBarrierSeq === 0 &&
      nowMs - this.lastSyncBarrierMs >= PEER_SYNC_INTERVAL_MS
    ) {
      this.lastSyncBarrierMs = nowMs;
      this.syncBarrierSeq = this.sendBarrier();
    }
    this.coolActivityLog();
    if (this.resyncDirty && nowMs - this.lastResyncPersistMs >= RESYNC_PERSIST_INTERVAL_MS) {
      this.resyncDirty = false;
      this.lastResyncPersistMs = nowMs;
      this.requestPersist();
    }
    this.pumpAll();
  }

  /** Runs the dynamic resync controller once per RESYNC_STEP_MS of time that passed. */
  private stepRateController(ctl: ResyncRateController): void {
    const max = this.cfg.resyncDynamic!.maxRateBytesPerSec;
    // Catch up after a long gap by at most one plan's worth of steps (ticks may come late).
    for (let n = 0; this.nowMs - this.lastRateStepMs >= RESYNC_STEP_MS && n < MAX_RATE_STEPS_PER_TICK; n++) {
      this.lastRateStepMs += RESYNC_STEP_MS;
      if (this.resync?.role !== 'source') {
        this.rateBudget = 0;
        continue;
      }
      let inFlight = 0;
      for (const r of this.resyncRuns.values()) inFlight += r.count * BLOCK_BYTES;
      const req = ctl.step({
        ackedBytes: this.resyncAckedSinceStep,
        inFlightBytes: inFlight,
        appIo: this.counters.ap !== this.apAtLastStep,
      });
      this.resyncAckedSinceStep = 0;
      this.apAtLastStep = this.counters.ap;
      // Unused allowance carries over for at most a second at c-max-rate.
      this.rateBudget = Math.min(max, this.rateBudget + req);
    }
    if (this.nowMs - this.lastRateStepMs >= RESYNC_STEP_MS) this.lastRateStepMs = this.nowMs;
  }

  // ---------------------------------------------------------------- status

  status(): CoreStatus {
    return {
      resource: this.cfg.resource,
      node: this.cfg.self.name,
      peer: this.cfg.peer.name,
      role: this.role,
      disk: this.disk,
      conn: this.conn,
      peerRole: this.peerRole,
      peerDisk: this.peerDisk,
      protocol: this.cfg.protocol,
      gen: this.gen,
      outOfSyncBlocks: this.bitmap.weight,
      resync: this.resync ? { ...this.resync } : undefined,
      verify: this.verify
        ? {
            doneBlocks: this.verify.done,
            totalBlocks: this.blocks,
            outOfSync: this.verify.oos,
            running: this.verify.running,
          }
        : undefined,
      counters: { ...this.counters, ua: this.writes.size },
      nowMs: this.nowMs,
      lastDecision: this.lastDecision,
      fencing: this.fencing,
      ioSuspended: this.ioFrozen,
      peerOutdated: this.peerOutdated,
      writeConflicts: this.writeConflicts,
      sizeBytes: this.sizeBytes,
      resize: this.grow
        ? { phase: this.grow.phase, toBytes: this.grow.sizeBytes, heldIos: this.grow.held.length }
        : undefined,
    };
  }

  /** For tests and the simulator: is block `b` marked out of sync? */
  isMarked(b: number): boolean {
    return this.bitmap.get(b);
  }
}

/** The core's side of the write path's disk ops (see `opSink`). */
interface DiskOpSink {
  emit(a: CoreAction): void;
  localWriteDone(w: AppWrite, ok: boolean): void;
  peerWriteDone(op: PeerWriteOp, ok: boolean): void;
}

/**
 * The disk op of an application write (Primary). A class rather than an object of closures:
 * one is made per replicated write, and its methods cost nothing to create.
 */
class LocalWriteOp implements DiskOp {
  readonly kind = 'write';
  readonly needSeq = 0;
  readonly first: number;
  readonly count: number;

  constructor(
    private readonly sink: DiskOpSink,
    private readonly w: AppWrite,
  ) {
    this.first = w.first;
    this.count = w.count;
  }

  start(op: number): void {
    const w = this.w;
    this.sink.emit({ a: 'diskWrite', op, offset: w.offset, data: w.data, fua: w.fua });
  }

  done(ok: boolean): void {
    this.sink.localWriteDone(this.w, ok);
  }
}

/** The disk op of a write the peer replicated to this Secondary (see LocalWriteOp). */
class PeerWriteOp implements DiskOp {
  readonly kind = 'write';
  readonly needSeq = 0;
  readonly first: number;
  readonly count: number;

  constructor(
    private readonly sink: DiskOpSink,
    readonly seq: number,
    readonly offset: number,
    readonly data: Uint8Array,
    readonly fua: boolean,
  ) {
    const { first, count } = blocksOf(offset, data.length);
    this.first = first;
    this.count = count;
  }

  start(op: number): void {
    this.sink.emit({ a: 'diskWrite', op, offset: this.offset, data: this.data, fua: this.fua });
  }

  done(ok: boolean): void {
    this.sink.peerWriteDone(this, ok);
  }
}

function extentsOf(first: number, count: number): number[] {
  const out: number[] = [];
  const last = Math.floor((first + count - 1) / AL_EXTENT_BLOCKS);
  for (let e = Math.floor(first / AL_EXTENT_BLOCKS); e <= last; e++) out.push(e);
  return out;
}

function overlap(a: number, aLen: number, b: number, bLen: number): boolean {
  return a < b + bLen && b < a + aLen;
}

/** The parts of [offset, offset+data.length) outside every range in `holes`, with their bytes. */
function subtractRanges(
  offset: number,
  data: Uint8Array,
  holes: readonly { offset: number; length: number }[],
): Array<{ offset: number; data: Uint8Array }> {
  let parts = [{ from: offset, to: offset + data.length }];
  for (const h of holes) {
    const next: typeof parts = [];
    for (const p of parts) {
      if (!overlap(p.from, p.to - p.from, h.offset, h.length)) {
        next.push(p);
        continue;
      }
      if (p.from < h.offset) next.push({ from: p.from, to: h.offset });
      if (h.offset + h.length < p.to) next.push({ from: h.offset + h.length, to: p.to });
    }
    parts = next;
  }
  return parts.map((p) => ({ offset: p.from, data: data.subarray(p.from - offset, p.to - offset) }));
}

function fail(
  code: string,
  message: string,
): { readonly ok: false; readonly code: string; readonly message: string } {
  return { ok: false, code, message };
}
