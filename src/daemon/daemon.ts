import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import type { Server } from 'node:net';
import { dirname, join } from 'node:path';
import { memberNodeDeletion } from '../admin/node_edits.ts';
import { durationMsOr } from '../cib/duration.ts';
import { type Cib, emptyCib, type NodeState } from '../cib/model.ts';
import { clusterProperty } from '../cib/resources.ts';
import { validateCibCommand } from '../consensus/cib_state_machine.ts';
import type { ConfChange } from '../consensus/types.ts';
import { renderStatus } from '../controller/crm_mon.ts';
import { type AttachedController, attachController } from '../controller/daemon_glue.ts';
import { activeInNodeState, cibForScheduling } from '../controller/status.ts';
import { SHUTDOWN_ATTRIBUTE } from '../controller/types.ts';
import { HaloError } from '../lib/errors.ts';
import type { Logger } from '../lib/ports.ts';
import { type DetectorEvent, FailureDetector, type PeerState } from '../membership/failure_detector.ts';
import { type Fencer, noFencer } from '../membership/fencer.ts';
import { decodeHeartbeat, encodeHeartbeat } from '../membership/heartbeat_codec.ts';
import { type QuorumState, QuorumTracker, WitnessBallot } from '../membership/quorum.ts';
import { schedule } from '../scheduler/schedule.ts';
import { loadKeyFile } from '../transport/key_file.ts';
import type { LinkEvent, LinkState } from '../transport/links.ts';
import { Channel, clusterIdFromDigest, type PacketCounters, type PacketHeader } from '../transport/packet.ts';
import { StreamChannel, StreamServer } from '../transport/stream.ts';
import { UdpTransport } from '../transport/udp_transport.ts';
import { nextBootEpoch } from './boot_epoch.ts';
import {
  controlSocketPath,
  type DaemonConfig,
  type NodeConfig,
  nodeToJson,
  parseNodeJson,
  withNodes,
} from './config.ts';
import { serveControl } from './control.ts';
import { type LinkCarrierReport, LinkCarrierWatch } from './link_carrier.ts';

/**
 * What the daemon needs from consensus (raft_driver.ts fills it in): fed every tick and every
 * datagram on the Raft channel; reports leader and term for `halo status`.
 */
export interface ConsensusPart {
  tick(): void;
  receive(from: number, payload: Buffer): void;
  status(): ConsensusStatus;
  stop(): void;
  /**
   * Proposes a replicated-state command (a JSON CibCommand); resolves once this node applied
   * it, or with why not (not the leader, superseded by a new leader, timed out).
   */
  propose?(data: string, timeoutMs: number): Promise<ProposeOutcome>;
  /**
   * The replicated CIB as applied on this node so far. A new object after every applied change
   * (the state machine never mutates in place), so the daemon sees changes by identity.
   */
  cib?(): Cib;
  /**
   * Two-node rule (consensus/mod.ts): null when this node may take over from `peer` once it is
   * fenced, else why not (e.g. it restarted and has not heard from a leader: wait_for_all).
   */
  checkForceSolo?(peer: string): string | null;
  /** After `peer` is confirmed off: lead {self} in a new term (the fence evidence is logged). */
  forceSoloAfterFence?(peer: string, fencedBy: string): { ok: boolean; message?: string };
  /** On the leader: propose adding `peer` back as a voter (after a forced solo). */
  addVoter?(peer: string): { ok: boolean; message?: string };
  /**
   * On the leader: adds or removes one voter (Raft single-server change); resolves once the
   * change is applied here. `member` is the new node's description (memberInfo JSON).
   */
  changeMembership?(
    cc: { type: 'addNode' | 'removeNode'; node: string; member?: string },
    timeoutMs: number,
  ): Promise<ProposeOutcome>;
}

export type ProposeOutcome =
  | {
      readonly ok: true;
      readonly index: number;
      readonly term: number;
      readonly applied: boolean;
      /**
       * When not applied: why, as the state machine's ApplyResult code (`conflict`: the
       * command expected another configuration version; `unknown-node`, `bad-command`).
       */
      readonly code?: string;
      readonly message?: string;
    }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly leader: string | null };

/** How long a `cib` control command waits for its change to commit. */
export const PROPOSE_TIMEOUT_MS = 5_000;

export interface ConsensusStatus {
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly commit: number;
  readonly applied: number;
  /** Version of the replicated CIB on this node (Pacemaker's epoch / num_updates). */
  readonly cib?: { readonly epoch: number; readonly numUpdates: number; readonly adminEpoch: number };
  /**
   * On the leader: whether its Raft leader lease holds now. The controller acts as DC only
   * while it does; a part that does not say is taken as holding no lease.
   */
  readonly leaseValid?: boolean;
}

export interface ConsensusContext {
  readonly config: DaemonConfig;
  readonly self: NodeConfig;
  /** Best-effort datagram (lost, duplicated or reordered at times): for small messages. */
  readonly send: (to: number, payload: Uint8Array) => void;
  /**
   * Reliable, ordered delivery over the peer's stream channel (purpose `raft`), for messages
   * too big for a datagram (snapshots). Still best-effort across reconnects: a message queued
   * while the channel is down may be dropped (counted), and Raft resends.
   */
  readonly sendLarge: (to: number, payload: Uint8Array) => void;
  readonly logger: Logger;
  readonly nowMs: () => number;
  /** `halo daemon --join`: a fresh node joins a running cluster instead of bootstrapping one. */
  readonly join?: boolean;
  /** Transport id of a node by name and back, including members added while running. */
  readonly idOf?: (name: string) => number | undefined;
  readonly nameOf?: (id: number) => string | undefined;
  /** A membership entry reached the log (`committed` false) or was applied (true). */
  readonly onConfChange?: (cc: ConfChange, committed: boolean) => void;
}

export interface DaemonOptions {
  readonly config: DaemonConfig;
  readonly node: string;
  /** `--witness`: the config must agree (a witness is known to every node's quorum). */
  readonly witness: boolean;
  readonly logger: Logger;
  readonly fencer?: Fencer;
  readonly consensus?: (ctx: ConsensusContext) => ConsensusPart;
  readonly nowMs?: () => number;
  readonly wallMs?: () => number;
  /**
   * Host the controller (resources, fencing; src/controller) when consensus offers a CIB.
   * Default true; tests of membership alone turn it off.
   */
  readonly controller?: boolean;
  /** What the controller does to fence this node itself (default: SIGKILL this process). */
  readonly selfFence?: (reason: string) => void;
  /** `--join`: this fresh node joins a running cluster (see ConsensusContext.join). */
  readonly join?: boolean;
  /** Called once this node's removal from the cluster (`halo cluster leave`) is committed. */
  readonly onRemoved?: () => void;
  /**
   * Reads whether this node has carrier on its own cluster links (default: a LinkCarrierWatch
   * on the config's link addresses, src/daemon/link_carrier.ts); the controller delays the
   * fencing this node issues while it has none. `fresh`: read now, not a recent reading.
   */
  readonly linkCarrier?: { read(fresh?: boolean): LinkCarrierReport };
}

export interface LinkStatus {
  readonly link: number;
  readonly local: string;
  readonly remote: string;
  readonly state: LinkState;
  readonly lastHeardMsAgo: number | null;
  readonly received: number;
  readonly sent: number;
  readonly sendErrors: number;
}

export interface MemberStatus {
  readonly id: number;
  readonly name: string;
  readonly self: boolean;
  readonly witness: boolean;
  readonly state: PeerState | 'self';
  readonly lastHeardMsAgo: number | null;
  readonly deadtimeMs: number | null;
  readonly meanIntervalMs: number | null;
  readonly clockSkewMs: number | null;
  readonly links: readonly LinkStatus[];
}

export interface DaemonStatus {
  readonly cluster: string;
  readonly node: string;
  readonly nodeId: number;
  readonly witness: boolean;
  readonly epoch: number;
  readonly profile: string;
  readonly pid: number;
  readonly uptimeMs: number;
  readonly members: readonly MemberStatus[];
  readonly quorum: QuorumState;
  readonly consensus: ConsensusStatus | null;
  /** The Designated Controller: the Raft leader's node name. */
  readonly dc: string | null;
  readonly packets: PacketCounters & {
    readonly badPayload: number;
    readonly streamDrops: number;
    /** Heartbeats that did not echo this node's boot epoch (startup, or replayed traffic). */
    readonly unconfirmed: number;
    /** Heartbeats from a fenced peer's fenced boot (sent before it died): dropped, no proof of life. */
    readonly staleAfterFence?: number;
    /** Heartbeats the failure detector ignored: an older boot epoch or a beat already counted. */
    readonly staleHeartbeats?: number;
  };
}

/** How long a clean shutdown waits for resources to move away (`shutdown-escalation` overrides it). */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 60_000;
/** How often a shutting-down node checks whether it may leave. */
const SHUTDOWN_POLL_MS = 100;
/** How often it repeats its shutdown request to the DC. */
const SHUTDOWN_REQUEST_EVERY_MS = 1_000;

export interface ShutdownOutcome {
  /** True when everything here was stopped and recorded before the daemon stopped. */
  readonly clean: boolean;
  readonly reason: string;
  readonly waitedMs: number;
}

/**
 * Waits `ms`, or less if `signal` aborts first. The listener it adds to `signal` is removed when
 * the wait ends either way: a clean shutdown polls every SHUTDOWN_POLL_MS on one long-lived
 * signal (the second SIGTERM's), and a listener left behind per poll made Node warn
 * "MaxListenersExceededWarning: 11 abort listeners" after a second of waiting.
 */
export function pauseUnlessAborted(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Serves until SIGTERM or SIGINT, then leaves cleanly (`Daemon.shutdown`); a second signal ends
 * the wait at once. Resolves once the daemon has stopped. `proc` is `process` outside tests.
 */
export async function shutdownOnSignals(
  daemon: Pick<Daemon, 'shutdown'>,
  proc: Pick<NodeJS.Process, 'on' | 'off'> = process,
  timeoutMs?: number,
): Promise<ShutdownOutcome> {
  const force = new AbortController();
  let signals = 0;
  let first: () => void = () => {};
  const firstSignal = new Promise<void>((resolve) => {
    first = resolve;
  });
  const onSignal = (): void => {
    signals++;
    if (signals === 1) first();
    else force.abort();
  };
  proc.on('SIGTERM', onSignal);
  proc.on('SIGINT', onSignal);
  try {
    await firstSignal;
    return await daemon.shutdown({
      signal: force.signal,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    });
  } finally {
    proc.off('SIGTERM', onSignal);
    proc.off('SIGINT', onSignal);
  }
}

/** Two-node takeover: pause between attempts (fence refused or failed, re-adding a voter). */
export const TAKEOVER_RETRY_MS = 1_000;
/**
 * A fenced peer's queued heartbeats are logged on the first drop and then every this many
 * (≈ 5 s of one peer's beats at `lan` over 2 links): visible, without a line per packet.
 */
const STALE_AFTER_FENCE_LOG_EVERY = 200;

/** Messages waiting for a stream to connect, per peer and purpose. */
export const MAX_QUEUED_STREAM_MESSAGES = 16;

/** Stream purpose on which a follower forwards a membership request to the leader. */
export const MEMBER_PURPOSE = 'member';
/**
 * Stream purpose on which a follower forwards a CIB proposal (`cib JSON` on its control socket)
 * to the leader; the leader answers with its ProposeOutcome and never forwards further.
 */
export const PROPOSE_PURPOSE = 'propose';
/**
 * How long a follower waits for the leader to connect and answer a forwarded proposal: the
 * leader's own commit timeout plus a connect. Below the CLI's wait (PROPOSE_TIMEOUT_MS + 2 s).
 */
export const PROPOSE_FORWARD_TIMEOUT_MS = PROPOSE_TIMEOUT_MS + 1_000;
/**
 * After the leader answered that a forwarded change committed, how long the follower waits to
 * apply it too, so its next `cib` view shows the change (it answers anyway after this).
 */
export const PROPOSE_LOCAL_APPLY_WAIT_MS = 500;
/** Poll period of that wait. */
const LOCAL_APPLY_POLL_MS = 10;
/** What a CIB proposal answers on the control socket. */
export type ProposeReply = ProposeOutcome | { readonly error: string };

/** What a member sends a node whose removal it applied. */
const REMOVED_NOTICE = 'removed';
/** How long a membership change (join/leave) may take to commit, forwarding included. */
export const MEMBER_CHANGE_TIMEOUT_MS = 10_000;
/** A membership request longer than this is not one. */
const MAX_MEMBER_REQUEST_BYTES = 4096;

/**
 * Longest drain a `member-remove` may ask for: one hour, far above any shutdown-escalation a
 * cluster uses, so a typo cannot keep a request (and the CLI) waiting for days.
 */
export const MAX_LEAVE_TIMEOUT_MS = 3_600_000;

/**
 * What `member-remove NAME [OPTIONS]` may carry after the name (JSON): `timeoutMs`, how long an
 * online node may take to have everything moved away (default: the CIB's shutdown-escalation);
 * `force`, remove a node that is not online even though the CIB shows resources active there.
 */
export interface MemberRemoveOptions {
  readonly timeoutMs?: number;
  readonly force?: boolean;
}

/** Splits `NAME [JSON]` of a `member-remove` request, or says what is wrong with it. */
export function parseMemberRemove(arg: string): { name: string; opts: MemberRemoveOptions } | string {
  const sp = arg.indexOf(' ');
  const name = sp < 0 ? arg : arg.slice(0, sp);
  const rest = sp < 0 ? '' : arg.slice(sp + 1).trim();
  if (name === '') return 'member-remove: needs a node name';
  if (rest === '') return { name, opts: {} };
  let v: unknown;
  try {
    v = JSON.parse(rest);
  } catch {
    return `member-remove: options after the name must be JSON, got '${rest.slice(0, 40)}'`;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    return 'member-remove: options must be a JSON object ({"timeoutMs": N, "force": true})';
  const o = v as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => k !== 'timeoutMs' && k !== 'force');
  if (unknown.length > 0)
    return `member-remove: unknown option ${unknown[0]!.slice(0, 40)} (known: timeoutMs, force)`;
  const t = o.timeoutMs;
  if (t !== undefined && (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > MAX_LEAVE_TIMEOUT_MS))
    return `member-remove: timeoutMs must be an integer from 0 to ${MAX_LEAVE_TIMEOUT_MS}, got ${JSON.stringify(t)?.slice(0, 40)}`;
  if (o.force !== undefined && typeof o.force !== 'boolean')
    return 'member-remove: force must be true or false';
  return {
    name,
    opts: {
      ...(t !== undefined ? { timeoutMs: t } : {}),
      ...(o.force !== undefined ? { force: o.force } : {}),
    },
  };
}

/**
 * Why removing a node that is not online is refused, or undefined when it may go: the CIB shows
 * `active` resources there, so it is a lost node the DC will fence and recover, and a removal
 * must not pre-empt that; `force` removes it anyway (the DC still fences it before recovery).
 */
export function offlineRemovalRefusal(
  node: string,
  active: readonly string[],
  force: boolean,
): string | undefined {
  if (active.length === 0 || force) return undefined;
  return `${node} is not online and the CIB shows ${active.join(', ')} active there: it is a lost node, which the DC fences before starting ${active.length === 1 ? 'it' : 'them'} elsewhere. Wait until that is done (halo status shows nothing on ${node}) and run leave again, or pass --force to remove it anyway (the DC still fences it first); nothing was changed`;
}

/** What `halo cluster join|leave` gets back from the daemon. */
export type MemberChangeOutcome =
  | { readonly ok: true; readonly node: string; readonly id: number; readonly index: number }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly leader?: string | null };

/**
 * Members added or removed while running (live `halo cluster join|leave`), persisted by every
 * daemon when it learns them from the Raft log, so a restart reaches them even if the config
 * file was not updated (`stateDir/<node>.members.json`).
 */
interface LearnedMembers {
  added: ReturnType<typeof nodeToJson>[];
  removed: string[];
}

/** The tick period: a few per keepalive so detection is late by at most a fraction of a beat. */
export function tickPeriodMs(keepaliveMs: number): number {
  return Math.max(2, Math.min(10, Math.floor(keepaliveMs / 4)));
}

/**
 * The composition root of one node: transport + membership + quorum (+ consensus), on real
 * sockets and timers. Owns every timer and socket it makes; `stop()` releases all of them.
 */
export class Daemon {
  private cfg: DaemonConfig;
  private readonly self: NodeConfig;
  private peers: NodeConfig[];
  private learned: LearnedMembers = { added: [], removed: [] };
  /**
   * Nodes removed from the cluster (committed) that have not joined again, in this run or an
   * earlier one: the DC deletes their `<node>` entries and never fences one that left idle.
   */
  private readonly removedMembers = new Set<string>();
  private removedSelf = false;
  private readonly log: Logger;
  private readonly nowMs: () => number;
  private readonly wallMs: () => number;
  private readonly fencer: Fencer;
  private transport: UdpTransport | undefined;
  private detector: FailureDetector<number> | undefined;
  private quorum: QuorumTracker | undefined;
  private ballot: WitnessBallot | undefined;
  private consensus: ConsensusPart | undefined;
  private control: Server | undefined;
  private streams: StreamServer | undefined;
  private key: Buffer | undefined;
  private clusterId = 0;
  private readonly streamHandlers = new Map<string, (ch: StreamChannel) => void>();
  /** Outgoing stream per (peer, purpose), opened on first use and reopened after a failure. */
  private readonly outStreams = new Map<string, { ch: StreamChannel | undefined; queue: Uint8Array[] }>();
  private streamDrops = 0;
  /** Streams peers opened to this node, closed by `stop()` (their handlers own them until then). */
  private readonly inStreams = new Set<StreamChannel>();
  private timers: NodeJS.Timeout[] = [];
  private readonly witnessVotes = new Map<number, number | null>();
  private readonly fenced = new Set<number>();
  /**
   * Each fenced peer's newest boot epoch seen when the fence returned: heartbeats of that epoch or
   * older come from the incarnation the fence killed (still in flight, or queued in a socket) and
   * are dropped; the peer counts again only with a newer epoch, i.e. after it restarted.
   */
  private readonly fencedEpochs = new Map<number, number>();
  /** Heartbeats dropped because they came from a fenced peer's fenced boot epoch. */
  private staleAfterFence = 0;
  private readonly fenceRequested = new Set<number>();
  /**
   * Two-node takeover fences in flight, by peer: aborted when the peer is a member again while
   * the fence still waits out a delay (halo-isolation-fencing-delay, priority-fencing-delay,
   * pcmk_delay), so a link that healed meanwhile does not get a rejoined peer fenced.
   */
  private readonly takeoverAborts = new Map<number, AbortController>();
  private quorumState: QuorumState | undefined;
  private epoch = 0;
  private beat = 0;
  private startedMs = 0;
  private badPayload = 0;
  private stopped = false;
  /** Authentic heartbeats that did not echo our boot epoch (see Heartbeat.echo). */
  private unconfirmed = 0;
  /** The highest boot epoch heard from each peer, echoed back in our heartbeats to it. */
  private readonly peerEpochs = new Map<number, number>();
  /** The controller hosted here (resources and fencing), once consensus runs. */
  private ctl: AttachedController | undefined;
  /** What the controller was last told: the CIB object, the DC, the member list. */
  private fedCib: Cib | undefined;
  private fedDc: string | null | undefined;
  private fedMembers = '';
  /** The removed nodes the controller was last told (sorted, comma-joined). */
  private fedRemoved = '';
  private fedQuorum = '';
  /** The members' boot epochs the controller was last told (JSON). */
  private fedEpochs = '';
  /** Set while feedController computes the quorum it hands over with the membership. */
  private quorumWithMembership = false;
  private takeoverRetryAtMs = 0;
  private readdRetryAtMs = 0;
  /** This node's links' carrier (for halo-isolation-fencing-delay), once the controller runs. */
  private carrier: { read(fresh?: boolean): LinkCarrierReport } | undefined;
  /** The link-carrier fact the controller was last told (`isolated|detail`). */
  private fedCarrier = '';

  constructor(private readonly opts: DaemonOptions) {
    this.cfg = opts.config;
    const self = this.cfg.nodes.find((n) => n.name === opts.node);
    if (!self) {
      const names = this.cfg.nodes.map((n) => n.name).join(', ');
      throw new HaloError('unknown-node', `${this.cfg.file}: no node named '${opts.node}' (nodes: ${names})`);
    }
    if (opts.witness && !self.witness) {
      throw new HaloError(
        'not-a-witness',
        `${this.cfg.file}: node '${self.name}' runs with --witness but is not configured with "witness": true`,
      );
    }
    this.self = self;
    this.peers = this.cfg.nodes.filter((n) => n !== self);
    this.log = opts.logger.child({ node: self.name });
    this.nowMs = opts.nowMs ?? (() => performance.now());
    this.wallMs = opts.wallMs ?? Date.now;
    this.fencer = opts.fencer ?? noFencer;
  }

  /** Starts everything; on any failure releases what was started and rethrows. */
  async start(): Promise<void> {
    try {
      await this.startParts();
    } catch (err) {
      this.stop();
      throw err;
    }
  }

  private async startParts(): Promise<void> {
    const key = loadKeyFile(this.cfg.keyFile);
    this.key = key;
    this.loadLearnedMembers();
    this.epoch = nextBootEpoch(this.cfg.stateDir, this.self.name, this.wallMs());
    const clusterId = clusterIdFromDigest(createHash('sha256').update(this.cfg.cluster).digest());
    this.clusterId = clusterId;
    const t = this.cfg.timing;
    this.startedMs = this.nowMs();
    this.detector = new FailureDetector<number>(
      t,
      this.peers.map((p) => p.id),
      this.startedMs,
    );
    this.quorum = new QuorumTracker(this.cfg.quorum, this.self.id);
    if (this.self.witness) {
      const voters = this.cfg.nodes.filter((n) => !n.witness).map((n) => n.id);
      // Hold longer than any node can keep counting our previous vote (see WitnessBallot).
      this.ballot = new WitnessBallot(voters, t.deadtimeMaxMs + t.deadtimeMs);
    }
    this.transport = new UdpTransport({
      self: this.self.id,
      links: this.self.links,
      peers: this.peers.map((p) => ({ id: p.id, links: p.links })),
      clusterKey: key,
      clusterId,
      epoch: this.epoch,
      sendMode: this.cfg.sendMode,
      // A link is down after the plain deadtime: links carry beats at the keepalive rate.
      linkDownAfterMs: t.deadtimeMs,
      nowMs: this.nowMs,
      logger: this.log,
      onMessage: (h, payload, link) => this.onMessage(h, payload, link),
      onLinkEvent: (ev) => this.onLinkEvent(ev),
    });
    await this.transport.start();
    if (this.opts.consensus) {
      const transport = this.transport;
      this.consensus = this.opts.consensus({
        config: this.cfg,
        self: this.self,
        send: (to, payload) => transport.send(to, Channel.raft, payload),
        sendLarge: (to, payload) => this.sendOnStream(to, 'raft', payload),
        logger: this.log.child({ component: 'consensus' }),
        nowMs: this.nowMs,
        join: this.opts.join === true,
        idOf: (name) => this.cfg.nodes.find((n) => n.name === name)?.id,
        nameOf: (id) => this.cfg.nodes.find((n) => n.id === id)?.name,
        onConfChange: (cc, committed) => this.onConfChange(cc, committed),
      });
      const part = this.consensus;
      this.onStreamPurpose('raft', (ch) => ch.on('message', (m) => part.receive(ch.peer, m)));
    }
    this.onStreamPurpose(MEMBER_PURPOSE, (ch) => this.serveForwardedMemberRequest(ch));
    this.onStreamPurpose(PROPOSE_PURPOSE, (ch) => this.serveForwardedProposal(ch));
    this.streams = await StreamServer.listen(this.self.stream, {
      clusterKey: key,
      clusterId,
      self: this.self.id,
      accept: (peer) => this.peers.some((p) => p.id === peer),
      onChannel: (ch) => this.onStream(ch),
      onRefused: (err) =>
        this.log.log('warn', `refused a stream connection: ${err.message}`, { event: 'stream-refused' }),
    });
    this.control = await serveControl(controlSocketPath(this.cfg, this.self.name), (cmd) =>
      this.command(cmd),
    );
    this.attachControllerIfPossible();
    this.timers.push(setInterval(() => this.sendHeartbeats(), t.keepaliveMs));
    this.timers.push(setInterval(() => this.tick(), tickPeriodMs(t.keepaliveMs)));
    this.sendHeartbeats();
    this.log.log(
      'info',
      `node ${this.self.name} started (cluster ${this.cfg.cluster}, profile ${this.cfg.profileName}, epoch ${this.epoch})`,
      {
        event: 'started',
        epoch: this.epoch,
        links: this.self.links.length,
        witness: this.self.witness,
      },
    );
  }

  /**
   * Hosts the controller (src/controller) on every non-witness node once consensus offers the
   * replicated CIB: resources run through the executor, fencing through the CIB's devices, and
   * the two-node fence goes through the controller instead of `requestFence`.
   */
  private attachControllerIfPossible(): void {
    const part = this.consensus;
    if (this.opts.controller === false || this.self.witness || !part?.cib || !part.propose) return;
    const propose = part.propose.bind(part);
    const replicated = part.cib.bind(part);
    this.ctl = attachController(
      {
        self: this.self.name,
        stateDir: join(this.cfg.stateDir, this.self.name),
        logger: this.log,
        wallMs: this.wallMs,
        idOf: (n) => this.cfg.nodes.find((x) => x.name === n)?.id,
        nameOf: (id) => this.nameOf(id),
        sendOnStream: (peer, purpose, payload) => this.sendOnStream(peer, purpose, payload),
        onStreamPurpose: (purpose, handler) => this.onStreamPurpose(purpose, handler),
        propose: async (data) => {
          const r = await propose(data, PROPOSE_TIMEOUT_MS);
          if (!r.ok) return { ok: false, message: `${r.code}: ${r.message}` };
          return r.applied ? { ok: true } : { ok: false, message: r.message ?? 'rejected by the CIB' };
        },
        markFenced: (id) => {
          this.markPeerFenced(id);
          this.updateQuorum();
        },
        selfFence: (reason) => {
          this.log.log('error', `self-fencing: ${reason}`, { event: 'self-fence' });
          if (this.opts.selfFence) this.opts.selfFence(reason);
          else process.kill(process.pid, 'SIGKILL');
        },
        replicatedCib: replicated,
        leaseValid: () => {
          const c = this.consensus;
          if (!c || this.stopped) return false;
          // Deliver the Raft ticks due by now first: after a pause the timer may not have run
          // yet, and a lease read before them would be stale.
          c.tick();
          const st = c.status();
          return st.leader === this.self.name && st.leaseValid === true;
        },
      },
      replicated(),
      this.cfg.timing,
    );
    this.carrier =
      this.opts.linkCarrier ??
      new LinkCarrierWatch({ hosts: this.self.links.map((l) => l.host), nowMs: this.nowMs });
    const unknown = this.carrier.read(true).links.filter((l) => l.state === 'unknown');
    if (unknown.length > 0)
      this.log.log(
        'info',
        `cannot read the carrier of ${unknown.map((l) => `link ${l.link} (${l.host}${l.iface ? ` on ${l.iface}` : ', on no local interface'})`).join(', ')}: this node never counts itself cut off from its links, so a two-node fence race is left to the fence devices' delays`,
        { event: 'link-carrier' },
      );
    this.feedController();
  }

  /**
   * Tells the controller whether this node has carrier on its links, if that changed. `fresh`
   * reads sysfs now (right before a fencing); otherwise a reading up to CARRIER_POLL_MS old.
   */
  private feedLinkCarrier(fresh: boolean): void {
    const host = this.ctl?.host;
    if (!host || !this.carrier || this.stopped) return;
    const r = this.carrier.read(fresh);
    const key = `${r.isolated}|${r.detail}`;
    if (key === this.fedCarrier) return;
    this.fedCarrier = key;
    host.linkCarrier(r.isolated, r.detail);
  }

  /**
   * Tells the controller what changed since it was last told: committed CIB (by identity),
   * members (by name, witnesses left out), DC. Cheap when nothing changed; runs every tick and
   * right after a membership change.
   */
  private feedController(): void {
    const host = this.ctl?.host;
    if (!host || this.stopped) return;
    // First: a membership change below may make the controller fence.
    this.feedLinkCarrier(false);
    const cib = this.consensus?.cib?.();
    if (cib && cib !== this.fedCib) {
      this.fedCib = cib;
      host.committedCib(cib);
    }
    const ids = this.memberIds();
    const members = this.cfg.nodes.filter((n) => !n.witness && ids.has(n.id)).map((n) => n.name);
    const key = members.join(',');
    // Each member's boot epoch (heartbeats carry it): the controller takes a node it fenced back
    // only once it shows a newer one.
    const peerEpochs = new Map(this.detector?.view().map((v) => [v.peer, v.epoch]) ?? []);
    const epochs: Record<string, number> = {};
    for (const n of this.cfg.nodes) {
      const e = n.id === this.self.id ? this.epoch : peerEpochs.get(n.id);
      if (members.includes(n.name) && e !== undefined) epochs[n.name] = e;
    }
    const epochKey = JSON.stringify(epochs);
    const removed = [...this.removedMembers]
      .filter((name) => !this.cfg.nodes.some((n) => n.name === name))
      .sort();
    const removedKey = removed.join(',');
    if (key !== this.fedMembers || epochKey !== this.fedEpochs || removedKey !== this.fedRemoved) {
      const before = new Set(this.fedMembers.split(','));
      for (const n of this.peers)
        if (!n.witness && before.has(n.name) !== members.includes(n.name)) this.closeStreamsTo(n.id);
      this.fedMembers = key;
      this.fedEpochs = epochKey;
      this.fedRemoved = removedKey;
      // The quorum of these same members goes with them, in one event: a DC told of members
      // before quorum (or the reverse) would schedule from a view that never existed.
      this.quorumWithMembership = true;
      let q: QuorumState;
      try {
        q = this.updateQuorum();
      } finally {
        this.quorumWithMembership = false;
      }
      const fenceNeeded = q.fenceNeeded.map((id) => this.nameOf(id));
      this.fedQuorum = `${q.quorate}|${fenceNeeded.join(',')}`;
      // Each member's node id goes along: the DC gives a member the CIB does not list a
      // `<node>` entry with it (witnesses are no members here, so never get one).
      const nodeIds = Object.fromEntries(
        this.cfg.nodes.filter((n) => members.includes(n.name)).map((n) => [n.name, String(n.id)]),
      );
      host.membership(members, undefined, {
        epochs,
        nodeIds,
        removed,
        quorum: { quorate: q.quorate, fenceNeeded, reason: q.reason },
      });
    }
    this.feedQuorum(this.quorumState ?? this.updateQuorum());
    const dc = this.consensus?.status().leader ?? null;
    if (dc !== this.fedDc) {
      this.fedDc = dc;
      host.dc(dc);
    }
  }

  /**
   * Closes this node's open streams to `peer` when it leaves or (re)joins the membership. A
   * peer that was cut off and then killed (a fence device downs its links first) never sends
   * the FIN or RST that would close our end, so without this the next messages (the DC's
   * probes of the rebooted node, in a lab run) go into a dead connection until TCP gives up,
   * minutes later, and the rejoined node looks hung. The next send connects afresh.
   */
  private closeStreamsTo(peer: number): void {
    for (const [key, out] of [...this.outStreams]) {
      // Closing an open channel removes its entry at once (its close handler); one still
      // connecting is left to finish or fail on its own.
      if (key.startsWith(`${peer}/`) && out.ch?.isOpen) out.ch.close();
    }
  }

  private feedQuorum(state: QuorumState): void {
    if (!this.ctl || this.quorumWithMembership) return;
    const fence = state.fenceNeeded.map((id) => this.nameOf(id));
    const key = `${state.quorate}|${fence.join(',')}`;
    if (key === this.fedQuorum) return;
    this.fedQuorum = key;
    this.ctl.host.quorum(state.quorate, fence, state.reason);
  }

  /** The CIB the controller schedules from (DC) or the replicated one, as JSON (`halo status --output json`). */
  private viewCib(): { source: 'dc' | 'replicated'; cib: Cib } {
    const view = this.ctl?.host.controller.view();
    if (view?.isDc) return { source: 'dc', cib: view.cib };
    return { source: 'replicated', cib: this.consensus?.cib?.() ?? emptyCib() };
  }

  /** `crm_mon -1`-like text of the resources: the DC's live view, else the replicated CIB. */
  private crmMon(): { text: string; dc: string | null; source: 'dc' | 'replicated' | 'none' } {
    const dc = this.consensus?.status().leader ?? null;
    const view = this.ctl?.host.controller.view();
    const quorate = this.quorumState?.quorate ?? false;
    const schedFn = (c: Cib, now: number) => schedule(c, now, { textOutput: true });
    if (view?.isDc)
      return {
        text: renderStatus({ cib: view.cib, dc, quorate, nowMs: this.wallMs(), schedule: schedFn }),
        dc,
        source: 'dc',
      };
    // Not the DC: the replicated status, with the membership as this node sees it (the
    // replicated records carry no membership fields).
    const base = this.consensus?.cib?.() ?? emptyCib();
    const ids = this.memberIds();
    const status = base.configuration.nodes.map((n): NodeState => {
      const s = base.status.find((x) => x.uname === n.uname || x.id === n.id);
      const up = this.cfg.nodes.some((c) => c.name === n.uname && ids.has(c.id));
      return {
        ...(s ?? { transientAttributes: [], resources: [], hasLrm: true }),
        id: n.id,
        uname: n.uname,
        inCcm: up ? 'true' : 'false',
        crmd: up ? 'online' : 'offline',
        join: up ? 'member' : 'down',
        expected: up ? 'member' : 'down',
      };
    });
    const cib = cibForScheduling(base, status, quorate, undefined);
    return {
      text: renderStatus({ cib, dc, quorate, nowMs: this.wallMs(), schedule: schedFn }),
      dc,
      source: this.consensus?.cib ? 'replicated' : 'none',
    };
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.ctl?.close();
    this.ctl = undefined;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.consensus?.stop();
    this.transport?.close();
    this.streams?.close();
    for (const out of this.outStreams.values()) out.ch?.close();
    this.outStreams.clear();
    for (const ch of this.inStreams) ch.close();
    this.inStreams.clear();
    this.control?.close();
    this.log.log('info', `node ${this.self.name} stopped`, { event: 'stopped' });
  }

  /**
   * A clean leave, as Pacemaker does it on `systemctl stop`: ask the DC to put this node in the
   * shutdown state (the `shutdown` transient attribute), so the scheduler stops what runs here
   * and starts it elsewhere; wait until that is done and recorded in the replicated CIB; then
   * `stop()`. Bounded by `timeoutMs` (default: the CIB's `shutdown-escalation`, else
   * DEFAULT_SHUTDOWN_TIMEOUT_MS); `signal` (a second SIGTERM) ends the wait at once. Either way
   * the daemon stops, with an error log naming what was still running: the other nodes then
   * treat this node as lost and fence it (or wait out its lease) before recovering that.
   */
  async shutdown(
    opts: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {},
  ): Promise<ShutdownOutcome> {
    const started = this.nowMs();
    const timeoutMs = opts.timeoutMs ?? this.shutdownTimeoutMs();
    let askedAt = Number.NEGATIVE_INFINITY;
    let waitingFor = '';
    for (;;) {
      const progress = this.shutdownProgress();
      const waitedMs = Math.round(this.nowMs() - started);
      if (progress.done || this.stopped) {
        await this.shareCommitBeforeLeaving();
        this.log.log('info', `shutting down cleanly after ${waitedMs} ms: ${progress.why}`, {
          event: 'shutdown',
          clean: true,
          waitedMs,
        });
        this.stop();
        return { clean: true, reason: progress.why, waitedMs };
      }
      const forced = opts.signal?.aborted === true;
      if (forced || waitedMs >= timeoutMs) {
        const reason = `${forced ? 'asked again to stop' : `shutdown timeout of ${timeoutMs} ms reached`} while waiting for ${progress.why}`;
        this.log.log(
          'error',
          `SHUTDOWN NOT CLEAN: exiting after ${waitedMs} ms, ${reason}; still running here: ${this.ctl?.host.controller.localActive().join(', ') || 'nothing known'}. The cluster will treat this node as lost (fence it, or wait out its lease) before recovering those.`,
          { event: 'shutdown', clean: false, waitedMs },
        );
        this.stop();
        return { clean: false, reason, waitedMs };
      }
      if (progress.why !== waitingFor) {
        waitingFor = progress.why;
        this.log.log('info', `shutting down: waiting for ${progress.why}`, { event: 'shutdown-wait' });
      }
      if (this.nowMs() - askedAt >= SHUTDOWN_REQUEST_EVERY_MS) {
        askedAt = this.nowMs();
        // Repeated: the DC may change, or the request may be lost with a connection.
        this.ctl?.host.setOwnAttribute(SHUTDOWN_ATTRIBUTE, String(Math.floor(this.wallMs() / 1000)));
      }
      await pauseUnlessAborted(SHUTDOWN_POLL_MS, opts.signal);
    }
  }

  /**
   * On the Raft leader: commits one more (idempotent) entry before leaving. Followers learn the
   * commit index only with the next append, so without this the node elected next could take
   * over before it has applied the records that say this node stopped everything, and treat it
   * as lost. Once this entry is committed, a majority holds it, so whoever wins the next
   * election holds it too and has applied everything before it.
   */
  private async shareCommitBeforeLeaving(): Promise<void> {
    const c = this.consensus;
    if (!c?.propose || this.stopped || c.status().leader !== this.self.name) return;
    const mine = c.cib?.().status.find((x) => x.uname === this.self.name);
    const value = mine?.transientAttributes
      .flatMap((set) => set.pairs)
      .find((p) => p.name === SHUTDOWN_ATTRIBUTE)?.value;
    if (value === undefined) return;
    const cmd = {
      op: 'set-node-attribute',
      node: this.self.name,
      name: SHUTDOWN_ATTRIBUTE,
      value,
      lifetime: 'reboot',
    };
    const r = await c.propose(JSON.stringify(cmd), PROPOSE_TIMEOUT_MS);
    if (!r.ok)
      this.log.log('warn', `could not share the last commit before leaving: ${r.message}`, {
        event: 'shutdown',
      });
  }

  private shutdownTimeoutMs(): number {
    const v = clusterProperty(this.consensus?.cib?.() ?? emptyCib(), 'shutdown-escalation');
    return durationMsOr(v, DEFAULT_SHUTDOWN_TIMEOUT_MS);
  }

  /** Whether this node may leave now, or what it still waits for. */
  private shutdownProgress(): { done: boolean; why: string } {
    const ctl = this.ctl;
    if (!ctl) return { done: true, why: 'no resources are managed on this node' };
    const core = ctl.host.controller;
    const local = core.localActive();
    const busy = ctl.host.localOpsBusy();
    if (!(this.quorumState?.quorate ?? false)) {
      // No DC can move anything; without quorum no-quorum-policy decides what runs here.
      if (local.length === 0 && !busy) return { done: true, why: 'no quorum and nothing running here' };
      return { done: false, why: `${local.join(', ')} to stop (no quorum: no-quorum-policy applies)` };
    }
    const cib = this.consensus?.cib?.() ?? emptyCib();
    const isSelf = (x: { readonly uname?: string; readonly id: string }): boolean =>
      x.uname === this.self.name || x.id === String(this.self.id);
    const mine = cib.status.find(isSelf);
    const recorded = mine ? activeInNodeState(mine) : [];
    if (!cib.configuration.nodes.some(isSelf) && local.length === 0 && !busy && recorded.length === 0) {
      // The scheduler places resources only on the configuration's nodes, and the DC keeps
      // transient attributes only for nodes it knows, so it refuses this node's shutdown request
      // ("ignoring attribute shutdown for unknown node", e.g. in a cluster whose CIB is still
      // empty) and waiting for it would last until shutdown-escalation. Nothing runs here,
      // nothing is recorded as active here and nothing can be placed here: nothing has to move.
      return {
        done: true,
        why: `${this.self.name} is not among the CIB's nodes and runs nothing, so nothing has to move`,
      };
    }
    const asked = mine?.transientAttributes.some((set) =>
      set.pairs.some((p) => p.name === SHUTDOWN_ATTRIBUTE && p.value !== undefined && p.value !== '0'),
    );
    if (!asked) return { done: false, why: 'the DC to record the shutdown request' };
    if (local.length > 0 || busy)
      return { done: false, why: `${local.join(', ') || 'running operations'} to stop here` };
    if (recorded.length > 0)
      return { done: false, why: `the cluster to record ${recorded.join(', ')} as stopped here` };
    const view = core.view();
    if (view.isDc && (view.transition !== undefined || view.schedulePending || ctl.pendingProposals() > 0))
      return { done: false, why: 'this DC to finish moving resources to the other nodes' };
    return { done: true, why: 'everything here is stopped and recorded' };
  }

  status(): DaemonStatus {
    const now = this.nowMs();
    const views = new Map((this.detector?.view() ?? []).map((v) => [v.peer, v]));
    const members = this.cfg.nodes.map((n): MemberStatus => {
      const v = views.get(n.id);
      const links = n === this.self ? [] : this.linkStatus(n, now);
      const ago = (ms: number | undefined): number | null => (ms === undefined ? null : Math.round(now - ms));
      return {
        id: n.id,
        name: n.name,
        self: n === this.self,
        witness: n.witness,
        state: n === this.self ? 'self' : (v?.state ?? 'unknown'),
        lastHeardMsAgo: ago(v?.lastHeardMs),
        deadtimeMs: v ? Math.round(v.deadtimeMs) : null,
        meanIntervalMs: v?.meanIntervalMs === undefined ? null : Math.round(v.meanIntervalMs * 10) / 10,
        clockSkewMs: v?.clockSkewMs ?? null,
        links,
      };
    });
    const consensus = this.consensus?.status() ?? null;
    return {
      cluster: this.cfg.cluster,
      node: this.self.name,
      nodeId: this.self.id,
      witness: this.self.witness,
      epoch: this.epoch,
      profile: this.cfg.profileName,
      pid: process.pid,
      uptimeMs: Math.round(now - this.startedMs),
      members,
      // Fresh, not as of the last tick: a caller that just saw a member join sees its vote.
      quorum: this.stopped ? (this.quorumState ?? this.updateQuorum()) : this.updateQuorum(),
      consensus,
      dc: consensus?.leader ?? null,
      packets: {
        ...(this.transport?.counters ?? { accepted: 0, malformed: 0, foreign: 0, forged: 0, replayed: 0 }),
        badPayload: this.badPayload,
        streamDrops: this.streamDrops,
        unconfirmed: this.unconfirmed,
        staleAfterFence: this.staleAfterFence,
        staleHeartbeats: [...views.values()].reduce((sum, v) => sum + v.staleHeartbeats, 0),
      },
    };
  }

  /**
   * Registers the handler for incoming streams opened with `purpose` (e.g. `volume:r0`,
   * `raft-snapshot`). The handler owns the channel from then on.
   */
  onStreamPurpose(purpose: string, handler: (ch: StreamChannel) => void): void {
    this.streamHandlers.set(purpose, handler);
  }

  /**
   * Opens an authenticated stream to `peer` for `purpose`: the first message on every stream
   * names its purpose, so one TCP port serves every subsystem. Rejects with a HaloError.
   */
  async openStream(peer: string, purpose: string): Promise<StreamChannel> {
    const n = this.peers.find((p) => p.name === peer);
    if (!n || !this.key)
      throw new HaloError('unknown-node', `no peer named '${peer}' (or the daemon is not started)`);
    const ch = await StreamChannel.connect(n.stream, {
      clusterKey: this.key,
      clusterId: this.clusterId,
      self: this.self.id,
      expectPeer: n.id,
    });
    await ch.send(Buffer.from(purpose));
    return ch;
  }

  /**
   * Sends `payload` on the cached stream to `peer` for `purpose`, connecting first if needed.
   * While connecting, up to MAX_QUEUED_STREAM_MESSAGES wait; beyond that, or when the connection
   * fails, messages are dropped and counted (callers like Raft retransmit).
   */
  sendOnStream(peer: number, purpose: string, payload: Uint8Array): void {
    const name = this.nameOf(peer);
    const key = `${peer}/${purpose}`;
    let out = this.outStreams.get(key);
    if (out?.ch?.isOpen) {
      out.ch.send(payload).catch(() => this.streamDrops++);
      return;
    }
    if (out) {
      if (out.queue.length >= MAX_QUEUED_STREAM_MESSAGES) this.streamDrops++;
      else out.queue.push(payload);
      return;
    }
    out = { ch: undefined, queue: [payload] };
    this.outStreams.set(key, out);
    const entry = out;
    this.openStream(name, purpose).then(
      (ch) => {
        entry.ch = ch;
        ch.on('close', () => this.outStreams.delete(key));
        for (const m of entry.queue.splice(0)) ch.send(m).catch(() => this.streamDrops++);
      },
      (err: Error) => {
        this.streamDrops += entry.queue.length;
        this.outStreams.delete(key);
        this.log.log('warn', `cannot open ${purpose} stream to ${name}: ${err.message}`, {
          event: 'stream-failed',
          peer: name,
        });
      },
    );
  }

  private onStream(ch: StreamChannel): void {
    const peer = this.nameOf(ch.peer);
    this.inStreams.add(ch);
    ch.on('close', () => this.inStreams.delete(ch));
    ch.once('message', (first) => {
      const purpose = first.toString('utf8');
      const handler = this.streamHandlers.get(purpose);
      if (!handler) {
        this.log.log(
          'warn',
          `closing stream from ${peer}: nothing here handles purpose '${purpose.slice(0, 64)}'`,
          { event: 'stream-refused', peer },
        );
        ch.close();
        return;
      }
      handler(ch);
    });
  }

  private linkStatus(n: NodeConfig, now: number): LinkStatus[] {
    return (this.transport?.links(n.id) ?? []).map((l) => ({
      link: l.link,
      local: endpointText(this.self.links[l.link]),
      remote: endpointText(n.links[l.link]),
      state: l.state,
      lastHeardMsAgo: l.lastHeardMs === undefined ? null : Math.round(now - l.lastHeardMs),
      received: l.received,
      sent: l.sent,
      sendErrors: l.sendErrors,
    }));
  }

  /**
   * Control commands: `status`; `cib JSON` proposes one CIB command (validated first) and
   * answers once it is committed and applied here. On a follower the proposal is forwarded to
   * the leader (see `proposeCib`).
   */
  private command(line: string): unknown {
    if (line === 'status') return this.status();
    if (line === 'crm_mon') return this.crmMon();
    if (line === 'cib') return this.viewCib();
    const sp = line.indexOf(' ');
    const [cmd, arg] = sp < 0 ? [line, ''] : [line.slice(0, sp), line.slice(sp + 1)];
    if (cmd === 'member-add' || cmd === 'member-remove') return this.memberCommand(line, false);
    if (cmd === 'cib') return this.proposeCib(arg, false);
    return {
      error: `unknown command '${cmd.slice(0, 40)}' (known: status, crm_mon, cib, cib JSON, member-add JSON, member-remove NAME)`,
    };
  }

  private sendHeartbeats(): void {
    const t = this.transport;
    if (!t) return;
    const members = this.memberIds();
    const witnessVote = this.ballot ? (this.ballot.vote(members, this.nowMs()) ?? null) : undefined;
    const beat = this.beat++;
    const wallMs = this.wallMs();
    for (const p of this.peers) {
      const echo = this.peerEpochs.get(p.id) ?? 0;
      const payload = encodeHeartbeat({
        beat,
        wallMs,
        echo,
        ...(witnessVote === undefined ? {} : { witnessVote }),
      });
      t.sendOnAllLinks(p.id, Channel.heartbeat, payload);
    }
  }

  private onMessage(h: PacketHeader, payload: Buffer, _link: number): void {
    if (h.channel === Channel.heartbeat) {
      const hb = decodeHeartbeat(payload);
      if (typeof hb === 'string') {
        this.badPayload++;
        this.log.log('debug', 'dropped heartbeat', { from: h.sender, reason: hb });
        return;
      }
      const fencedAt = this.fencedEpochs.get(h.sender);
      if (fencedAt !== undefined && h.epoch <= fencedAt) {
        // Sent by the incarnation the fence killed: no proof of life, no witness vote.
        if (this.staleAfterFence++ === 0 || this.staleAfterFence % STALE_AFTER_FENCE_LOG_EVERY === 0)
          this.log.log(
            'info',
            `ignoring heartbeats of ${this.nameOf(h.sender)} from boot epoch ${h.epoch}: it was fenced at epoch ${fencedAt} and counts again once it restarts (${this.staleAfterFence} dropped)`,
            {
              event: 'stale-after-fence',
              peer: this.nameOf(h.sender),
              epoch: h.epoch,
              fencedEpoch: fencedAt,
            },
          );
        return;
      }
      this.peerEpochs.set(h.sender, Math.max(this.peerEpochs.get(h.sender) ?? 0, h.epoch));
      if (hb.echo !== this.epoch) {
        // Not (yet) proof of life: the sender has not heard this boot of ours. Normal for one
        // beat after either side starts; persistent only for replayed traffic.
        this.unconfirmed++;
        return;
      }
      if (hb.witnessVote !== undefined) this.witnessVotes.set(h.sender, hb.witnessVote);
      const events = this.detector?.heartbeat(h.sender, this.nowMs(), {
        epoch: h.epoch,
        beat: hb.beat,
        senderWallMs: hb.wallMs,
        receiverWallMs: this.wallMs(),
      });
      this.onDetectorEvents(events ?? []);
    } else if (h.channel === Channel.raft) {
      this.consensus?.receive(h.sender, payload);
    } else {
      this.badPayload++;
    }
  }

  private tick(): void {
    const now = this.nowMs();
    this.onDetectorEvents(this.detector?.tick(now) ?? []);
    this.transport?.tick();
    this.updateQuorum();
    this.consensus?.tick();
    this.readdVoters();
    this.feedController();
  }

  private memberIds(): Set<number> {
    const members = new Set<number>([this.self.id]);
    for (const p of this.peers) {
      const s = this.detector?.state(p.id);
      if (s === 'member' || s === 'suspect') members.add(p.id);
    }
    return members;
  }

  private updateQuorum(): QuorumState {
    const q = this.quorum!;
    const votes = new Map<number, number | undefined>();
    for (const p of this.peers) {
      // Only a witness heard within warntime counts: a suspect witness may have switched its vote.
      if (p.witness && this.detector?.state(p.id) === 'member')
        votes.set(p.id, this.witnessVotes.get(p.id) ?? undefined);
    }
    for (const [peer, ac] of this.takeoverAborts)
      if (this.detector?.state(peer) === 'member')
        ac.abort(new Error(`${this.nameOf(peer)} is a member again`));
    const state = q.update({ members: this.memberIds(), witnessVotes: votes, fenced: this.fenced });
    const prev = this.quorumState;
    this.quorumState = state;
    if (!prev || prev.quorate !== state.quorate) {
      this.log.log(
        state.quorate ? 'info' : 'warn',
        `quorum ${state.quorate ? 'gained' : 'lost'}: ${state.reason}`,
        {
          event: 'quorum',
          quorate: state.quorate,
          votes: state.votes,
          expectedVotes: state.expectedVotes,
        },
      );
    }
    // With a controller, the two-node fence goes through the CIB's fence devices (controller).
    if (this.ctl) {
      this.feedQuorum(state);
      if (this.consensus?.forceSoloAfterFence)
        for (const peer of state.fenceNeeded) this.twoNodeTakeover(peer);
    } else for (const peer of state.fenceNeeded) this.requestFence(peer);
    return state;
  }

  /**
   * Two-node rule with consensus (consensus/mod.ts): the peer is lost and this node cannot
   * commit anything alone. If Raft lets it take over (`checkForceSolo`: not just restarted
   * without hearing a leader), fence the peer with the CIB's devices, then lead {self}; the
   * controller, now DC, recovers the peer's resources. Retried at most every second.
   */
  private twoNodeTakeover(peer: number): void {
    const c = this.consensus;
    const ctl = this.ctl;
    if (!c?.checkForceSolo || !c.forceSoloAfterFence || !ctl) return;
    const now = this.nowMs();
    if (this.fenceRequested.has(peer) || now < this.takeoverRetryAtMs) return;
    const name = this.nameOf(peer);
    const refused = c.checkForceSolo(name);
    if (refused) {
      this.takeoverRetryAtMs = now + TAKEOVER_RETRY_MS;
      this.log.log('warn', `not taking over from ${name}: ${refused}`, {
        event: 'takeover-refused',
        peer: name,
      });
      return;
    }
    this.fenceRequested.add(peer);
    this.log.log('warn', `fencing ${name}: two-node rule, this node takes over once ${name} is off`, {
      event: 'fence-request',
      peer: name,
    });
    // The controller decides whether this fence waits (no carrier on our links): tell it now.
    this.feedLinkCarrier(true);
    const abort = new AbortController();
    this.takeoverAborts.set(peer, abort);
    void ctl.fenceForTakeover(name, abort.signal).then((r) => {
      this.takeoverAborts.delete(peer);
      if (this.stopped) return;
      if (!r.ok || this.detector?.state(peer) !== 'lost') {
        this.fenceRequested.delete(peer);
        this.takeoverRetryAtMs = this.nowMs() + TAKEOVER_RETRY_MS;
        this.log.log('error', `fencing ${name} failed: ${r.ok ? 'it came back meanwhile' : r.reason}`, {
          event: 'fence-result',
          peer: name,
          ok: false,
        });
        return;
      }
      this.markPeerFenced(peer);
      const solo = c.forceSoloAfterFence!(name, `${r.reason}; requested by ${this.self.name}`.slice(0, 200));
      this.log.log(
        solo.ok ? 'warn' : 'error',
        solo.ok
          ? `fenced ${name} (${r.reason}); this node now leads alone until ${name} returns`
          : `fenced ${name} but could not take over: ${solo.message}`,
        { event: 'fence-result', peer: name, ok: true },
      );
      this.updateQuorum();
      this.feedController();
    });
  }

  /** After a forced solo: the leader adds the returned peer back as a voter. */
  private readdVoters(): void {
    const c = this.consensus;
    if (!c?.addVoter || !this.cfg.quorum.twoNode) return;
    const now = this.nowMs();
    if (now < this.readdRetryAtMs) return;
    const st = c.status() as ConsensusStatus & { voters?: readonly string[] };
    if (st.role !== 'leader' || !st.voters || st.voters.length !== 1) return;
    const ids = this.memberIds();
    for (const p of this.peers) {
      if (p.witness || !ids.has(p.id) || this.detector?.state(p.id) !== 'member') continue;
      this.readdRetryAtMs = now + TAKEOVER_RETRY_MS;
      const r = c.addVoter(p.name);
      this.log.log(
        r.ok ? 'info' : 'warn',
        r.ok ? `adding ${p.name} back as a voter` : `cannot add ${p.name} back yet: ${r.message}`,
        {
          event: 'add-voter',
          peer: p.name,
        },
      );
    }
  }

  /**
   * Records that `peer` is off: the two-node rule may count it as fenced, and every heartbeat of
   * the newest boot epoch seen from it so far (or older) is stale from now on. Any epoch seen
   * before the fence returned belongs to an incarnation the fence ended.
   */
  private markPeerFenced(peer: number): void {
    const seen = this.detector?.view().find((v) => v.peer === peer)?.epoch ?? 0;
    const epoch = Math.max(seen, this.peerEpochs.get(peer) ?? 0, this.fencedEpochs.get(peer) ?? 0);
    this.fenced.add(peer);
    this.fencedEpochs.set(peer, epoch);
  }

  private requestFence(peer: number): void {
    if (this.fenceRequested.has(peer)) return;
    this.fenceRequested.add(peer);
    const name = this.nameOf(peer);
    this.log.log(
      'warn',
      `fencing ${name}: two-node rule, this node may continue alone only once ${name} is off`,
      { event: 'fence-request', peer: name },
    );
    this.fencer.fence(peer, 'peer lost in a two-node cluster').then(
      (ok) => {
        if (ok && this.detector?.state(peer) === 'lost') this.markPeerFenced(peer);
        this.log.log(
          ok ? 'info' : 'error',
          `fencing ${name} ${ok ? 'succeeded' : 'did not confirm the node is off'}`,
          { event: 'fence-result', peer: name, ok },
        );
      },
      (err: unknown) =>
        this.log.log('error', `fencing ${name} failed: ${(err as Error).message}`, {
          event: 'fence-result',
          peer: name,
          ok: false,
        }),
    );
  }

  private onDetectorEvents(events: readonly DetectorEvent<number>[]): void {
    for (const ev of events) {
      switch (ev.kind) {
        case 'state': {
          const name = this.nameOf(ev.peer);
          if (ev.to === 'member') {
            // Only a heartbeat newer than the fenced boot gets here (onMessage drops the rest).
            this.fenced.delete(ev.peer);
            this.fencedEpochs.delete(ev.peer);
            this.fenceRequested.delete(ev.peer);
          }
          const links = this.transport?.links(ev.peer).length ?? 0;
          const why =
            ev.to === 'member'
              ? 'heartbeat received'
              : `no heartbeat on ${links} link${links === 1 ? '' : 's'} for ${Math.round(ev.silentMs)} ms (${ev.to === 'lost' ? 'deadtime' : 'warntime'} ${Math.round(ev.thresholdMs)} ms)`;
          const verb =
            ev.to === 'member'
              ? ev.from === 'unknown'
                ? 'joined'
                : 'rejoined'
              : ev.to === 'lost'
                ? 'lost'
                : 'suspect';
          this.log.log(ev.to === 'member' ? 'info' : 'warn', `node ${name} ${verb}: ${why}`, {
            event: 'member-state',
            peer: name,
            peerId: ev.peer,
            from: ev.from,
            to: ev.to,
            silentMs: Math.round(ev.silentMs),
          });
          this.feedController();
          break;
        }
        case 'clock-skew':
          this.log.log(
            'warn',
            `node ${this.nameOf(ev.peer)}'s clock differs from ours by ${Math.round(ev.skewMs)} ms (limit ${ev.limitMs} ms); run NTP on every node`,
            {
              event: 'clock-skew',
              peer: this.nameOf(ev.peer),
              skewMs: Math.round(ev.skewMs),
            },
          );
          break;
        case 'peer-restarted':
          this.log.log('info', `node ${this.nameOf(ev.peer)} restarted (epoch ${ev.epoch})`, {
            event: 'peer-restarted',
            peer: this.nameOf(ev.peer),
          });
          break;
        case 'paused':
          this.log.log(
            'warn',
            `this daemon was paused for ${Math.round(ev.pausedMs)} ms; not counting it as peer silence`,
            { event: 'paused', pausedMs: Math.round(ev.pausedMs) },
          );
          break;
      }
    }
  }

  private onLinkEvent(ev: LinkEvent): void {
    const name = this.nameOf(ev.peer);
    this.log.log(
      ev.to === 'up' ? 'info' : 'warn',
      `link ${ev.link} to ${name} ${ev.to}${ev.to === 'down' ? ` (silent ${Math.round(ev.silentMs)} ms)` : ''}`,
      {
        event: 'link-state',
        peer: name,
        link: ev.link,
        to: ev.to,
      },
    );
  }

  /**
   * `member-add {"name":…,"links":[…],…}` and `member-remove NAME` (from `halo cluster
   * join|leave`, or forwarded by a follower): the leader checks the request against the
   * current membership and proposes one Raft single-server change, answering once it is
   * applied; a follower forwards the request to the leader over the stream channel.
   */
  private async memberCommand(line: string, forwarded: boolean): Promise<MemberChangeOutcome> {
    const fail = (code: string, message: string, leader?: string | null): MemberChangeOutcome => ({
      ok: false,
      code,
      message,
      ...(leader === undefined ? {} : { leader }),
    });
    const c = this.consensus;
    if (!c?.changeMembership || this.stopped)
      return fail('no-consensus', 'consensus is not running on this node');
    if (line.length > MAX_MEMBER_REQUEST_BYTES)
      return fail('bad-member', `request longer than ${MAX_MEMBER_REQUEST_BYTES} bytes`);
    const sp = line.indexOf(' ');
    const cmd = sp < 0 ? line : line.slice(0, sp);
    const arg = sp < 0 ? '' : line.slice(sp + 1);
    if (cmd !== 'member-add' && cmd !== 'member-remove')
      return fail('bad-member', `unknown membership command '${cmd.slice(0, 40)}'`);
    let removal: { name: string; opts: MemberRemoveOptions } | undefined;
    if (cmd === 'member-remove') {
      const parsed = parseMemberRemove(arg);
      if (typeof parsed === 'string') return fail('bad-member', parsed);
      // The drain's bound is settled here, so the leader and a forwarding follower wait alike.
      removal = {
        name: parsed.name,
        opts: { ...parsed.opts, timeoutMs: parsed.opts.timeoutMs ?? this.shutdownTimeoutMs() },
      };
    }
    const leader = c.status().leader;
    if (leader !== this.self.name) {
      if (forwarded) return fail('not-leader', `${this.self.name} is not the leader`, leader);
      if (!leader)
        return fail('no-leader', 'the cluster has no leader (DC) now; is a majority of nodes up?', null);
      if (!removal) return this.forwardMemberRequest(leader, line, MEMBER_CHANGE_TIMEOUT_MS);
      return this.forwardMemberRequest(
        leader,
        `member-remove ${removal.name} ${JSON.stringify(removal.opts)}`,
        MEMBER_CHANGE_TIMEOUT_MS + (removal.opts.timeoutMs ?? 0),
      );
    }
    let change: { type: 'addNode' | 'removeNode'; node: string; member?: string };
    let id: number;
    if (cmd === 'member-add') {
      let raw: unknown;
      try {
        raw = JSON.parse(arg);
      } catch {
        return fail('bad-member', 'member-add: argument is not JSON');
      }
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
        return fail('bad-member', 'member-add: argument must be a JSON object (a node entry of the config)');
      const o = raw as Record<string, unknown>;
      try {
        const n = parseNodeJson(
          { ...o, id: o.id ?? Math.max(0, ...this.cfg.nodes.map((x) => x.id)) + 1 },
          'member-add',
        );
        withNodes(this.cfg.nodes, [n]);
        change = { type: 'addNode', node: n.name, member: JSON.stringify(nodeToJson(n)) };
        id = n.id;
      } catch (err) {
        return fail((err as HaloError).code ?? 'bad-member', (err as Error).message);
      }
    } else {
      const name = removal!.name;
      const n = this.cfg.nodes.find((x) => x.name === name);
      if (!n) {
        const names = this.cfg.nodes.map((x) => x.name).join(', ');
        return fail('unknown-node', `no member named '${name.slice(0, 64)}' (members: ${names})`);
      }
      const refused = await this.prepareRemoval(n, removal!.opts);
      if (refused) return refused;
      change = { type: 'removeNode', node: n.name };
      id = n.id;
    }
    const r = await c.changeMembership(change, MEMBER_CHANGE_TIMEOUT_MS);
    if (!r.ok) {
      // Refused for sure (not a timeout, after which it may still commit): the node stays and
      // runs resources again.
      if (change.type === 'removeNode' && r.code !== 'timeout') this.withdrawShutdown(change.node);
      return fail(r.code, r.message, r.leader);
    }
    return { ok: true, node: change.node, id, index: r.index };
  }

  /**
   * Before the leader removes `n` from the cluster (Pacemaker's `crm cluster remove`): a node that
   * is online is drained first, as its own clean shutdown would: the DC sets its `shutdown`
   * attribute, moves everything it runs elsewhere, and this waits (bounded by `opts.timeoutMs`)
   * until the DC has finished and the replicated CIB shows nothing active there; on timeout the
   * attribute is withdrawn and nothing changes. A node that is not online is removed at once if
   * the CIB shows nothing active there; otherwise it is a lost node the DC will fence and recover,
   * and removing it is refused unless `opts.force`. Resolves undefined when the removal may go on.
   */
  private async prepareRemoval(
    n: NodeConfig,
    opts: MemberRemoveOptions,
  ): Promise<MemberChangeOutcome | undefined> {
    const ctl = this.ctl;
    // A witness runs nothing; a daemon without a controller manages nothing.
    if (n.witness || !ctl) return undefined;
    const fail = (code: string, message: string): MemberChangeOutcome => ({ ok: false, code, message });
    const online = n.id === this.self.id || this.memberIds().has(n.id);
    if (!online) {
      const active = this.activeOnNode(n);
      const refused = offlineRemovalRefusal(n.name, active, opts.force === true);
      if (refused) return fail('node-active', refused);
      this.log.log(
        active.length === 0 ? 'info' : 'warn',
        active.length === 0
          ? `removing ${n.name}: it is not online and nothing is active there`
          : `removing ${n.name} (--force): it is not online and ${active.join(', ')} may still run there; the DC fences it before starting them elsewhere`,
        { event: 'member-remove', peer: n.name },
      );
      return undefined;
    }
    return this.drainForRemoval(n, opts.timeoutMs ?? this.shutdownTimeoutMs());
  }

  /** The online half of `prepareRemoval`: sets `shutdown` on `n` through this DC and waits. */
  private async drainForRemoval(n: NodeConfig, timeoutMs: number): Promise<MemberChangeOutcome | undefined> {
    const started = this.nowMs();
    const requestedSec = String(Math.floor(this.wallMs() / 1000));
    let waitingFor = '';
    this.log.log(
      'info',
      `removing ${n.name}: moving its resources away first (shutdown requested through the DC)`,
      {
        event: 'member-drain',
        peer: n.name,
      },
    );
    for (;;) {
      const waitedMs = Math.round(this.nowMs() - started);
      if (this.stopped)
        return { ok: false, code: 'stopped', message: 'the daemon stopped; nothing was removed' };
      const leader = this.consensus?.status().leader ?? null;
      if (leader !== this.self.name) {
        return {
          ok: false,
          code: 'not-leader',
          message: `${this.self.name} stopped being the leader (DC) while moving ${n.name}'s resources away; ${n.name} was not removed (its shutdown request stays until a DC clears it or it restarts): run halo cluster leave ${n.name} again`,
          leader,
        };
      }
      const p = this.drainProgress(n);
      if (p.done) {
        this.log.log('info', `removing ${n.name} after ${waitedMs} ms: ${p.why}`, {
          event: 'member-drain',
          peer: n.name,
          waitedMs,
        });
        return undefined;
      }
      if (waitedMs >= timeoutMs) {
        this.withdrawShutdown(n.name);
        const still =
          p.active.length > 0 ? `${p.active.join(', ')} still active there` : `waiting for ${p.why}`;
        this.log.log('warn', `not removing ${n.name}: ${still} after ${waitedMs} ms`, {
          event: 'member-drain',
          peer: n.name,
          waitedMs,
        });
        return {
          ok: false,
          code: 'drain-timeout',
          message: `${n.name} was not removed: ${still} after ${timeoutMs} ms (raise shutdown-escalation or pass --timeout, or find out why with halo status); its shutdown request was withdrawn and nothing was changed`,
        };
      }
      if (p.why !== waitingFor) {
        waitingFor = p.why;
        this.log.log('info', `removing ${n.name}: waiting for ${p.why}`, {
          event: 'member-drain',
          peer: n.name,
        });
      }
      // Idempotent on the DC: set again each poll, since a DC that took over adopts the
      // replicated status and forgets a request it had not published yet.
      if (p.configured) this.ctl?.host.nodeAttribute(n.name, SHUTDOWN_ATTRIBUTE, requestedSec);
      await pauseUnlessAborted(SHUTDOWN_POLL_MS, undefined);
    }
  }

  /** Takes back the shutdown request a drain set on `node` (best effort: on the DC only). */
  private withdrawShutdown(node: string): void {
    const view = this.ctl?.host.controller.view();
    if (!view?.isDc) return;
    const configured = view.cib.configuration.nodes.some((x) => x.uname === node);
    if (configured) this.ctl?.host.nodeAttribute(node, SHUTDOWN_ATTRIBUTE, undefined);
  }

  /** Resources the DC's view or the replicated CIB says may be active on `n`, sorted. */
  private activeOnNode(n: NodeConfig): string[] {
    const isNode = (x: { readonly uname?: string; readonly id: string }): boolean =>
      x.uname === n.name || x.id === String(n.id);
    const view = this.ctl?.host.controller.view();
    const dc = view?.isDc ? view.cib.status.find(isNode) : undefined;
    const replicated = (this.consensus?.cib?.() ?? emptyCib()).status.find(isNode);
    return [
      ...new Set([
        ...(dc ? activeInNodeState(dc) : []),
        ...(replicated ? activeInNodeState(replicated) : []),
      ]),
    ].sort();
  }

  /**
   * Whether `n` (online, being removed) runs nothing any more, as this DC and the replicated CIB
   * see it, and the DC has finished moving its resources elsewhere; or what it still waits for.
   */
  private drainProgress(n: NodeConfig): {
    done: boolean;
    why: string;
    active: string[];
    configured: boolean;
  } {
    const ctl = this.ctl!;
    const view = ctl.host.controller.view();
    const isNode = (x: { readonly uname?: string; readonly id: string }): boolean =>
      x.uname === n.name || x.id === String(n.id);
    if (!view.isDc) return { done: false, why: 'this node to act as DC', active: [], configured: false };
    const configured = view.cib.configuration.nodes.some(isNode);
    const active = this.activeOnNode(n);
    const local = n.id === this.self.id ? ctl.host.controller.localActive() : [];
    const busy = n.id === this.self.id && ctl.host.localOpsBusy();
    if (!configured && active.length === 0 && local.length === 0 && !busy)
      // Nothing can be placed on a node the CIB does not list, and the DC keeps no attributes
      // for it (it would never record the request): there is nothing to move.
      return {
        done: true,
        why: `${n.name} is not among the CIB's nodes and nothing is active there`,
        active,
        configured,
      };
    const recorded = (this.consensus?.cib?.() ?? emptyCib()).status
      .find(isNode)
      ?.transientAttributes.some((set) =>
        set.pairs.some((p) => p.name === SHUTDOWN_ATTRIBUTE && p.value !== undefined && p.value !== '0'),
      );
    if (!recorded)
      return { done: false, why: `the DC to record ${n.name}'s shutdown request`, active, configured };
    const running = [...new Set([...active, ...local])].sort();
    if (running.length > 0 || busy)
      return {
        done: false,
        why: `${running.join(', ') || 'running operations'} to stop on ${n.name}`,
        active: running,
        configured,
      };
    if (view.transition !== undefined || view.schedulePending || ctl.pendingProposals() > 0)
      return {
        done: false,
        why: `the DC to finish moving ${n.name}'s resources to the other nodes`,
        active,
        configured,
      };
    return {
      done: true,
      why: `nothing is active on ${n.name} any more and the DC has finished`,
      active,
      configured,
    };
  }

  /** Sends a membership request to the leader over an authenticated stream; resolves with its answer. */
  private async forwardMemberRequest(
    leader: string,
    line: string,
    waitMs: number,
  ): Promise<MemberChangeOutcome> {
    let ch: StreamChannel;
    try {
      ch = await this.openStream(leader, MEMBER_PURPOSE);
    } catch (err) {
      return {
        ok: false,
        code: 'leader-unreachable',
        message: `cannot reach the leader ${leader}: ${(err as Error).message}`,
        leader,
      };
    }
    try {
      const answer = new Promise<MemberChangeOutcome>((resolve) => {
        const timer = setTimeout(
          () =>
            resolve({
              ok: false,
              code: 'timeout',
              message: `no answer from the leader ${leader} within ${waitMs} ms`,
              leader,
            }),
          waitMs + TAKEOVER_RETRY_MS,
        );
        timer.unref();
        ch.once('message', (m) => {
          clearTimeout(timer);
          resolve(parseMemberAnswer(m));
        });
        ch.once('close', (err) => {
          clearTimeout(timer);
          resolve({
            ok: false,
            code: 'leader-unreachable',
            message: `the leader ${leader} closed the connection${err ? `: ${err.message}` : ''}`,
            leader,
          });
        });
      });
      await ch.send(Buffer.from(line));
      return await answer;
    } catch (err) {
      return { ok: false, code: 'leader-unreachable', message: (err as Error).message, leader };
    } finally {
      ch.close();
    }
  }

  /**
   * One CIB command (JSON) from the control socket, or forwarded by a follower (`forwarded`).
   * Malformed or invalid commands are refused here, before anything is sent. The leader
   * proposes it; a follower forwards it to the leader it knows and relays the answer, after
   * waiting (briefly) to apply the change itself. A forwarded command never travels further:
   * if this node is not the leader any more, it answers not-leader.
   */
  private async proposeCib(arg: string, forwarded: boolean): Promise<ProposeReply> {
    const c = this.consensus;
    if (!c?.propose || this.stopped) return { error: 'consensus is not running on this node' };
    let v: unknown;
    try {
      v = JSON.parse(arg);
    } catch {
      return { error: 'cib: argument is not JSON' };
    }
    const problem = validateCibCommand(v);
    if (problem) return { error: `cib: ${problem}` };
    const deletion = this.memberEntryDeletion(v as { op: string; configuration?: Cib['configuration'] });
    // A refusal of the cluster's (exit 1 in the CLI), not a malformed request.
    if (deletion) return { ok: false, code: 'member-node', message: deletion, leader: null };
    const data = JSON.stringify(v);
    const leader = c.status().leader;
    if (leader === this.self.name) return c.propose(data, PROPOSE_TIMEOUT_MS);
    if (forwarded)
      return {
        ok: false,
        code: 'not-leader',
        message: `${this.self.name} is not the leader (DC) any more; nothing was changed`,
        leader,
      };
    if (!leader)
      return {
        ok: false,
        code: 'no-leader',
        message: 'the cluster has no leader (DC) now, so nothing was changed; is a majority of nodes up?',
        leader: null,
      };
    const r = await this.forwardProposal(leader, data);
    if ('ok' in r && r.ok) await this.waitApplied(r.index, PROPOSE_LOCAL_APPLY_WAIT_MS);
    return r;
  }

  /**
   * Why a configuration replacement is refused here: it deletes the `<node>` entry of a member
   * of the cluster (see `memberNodeDeletion`). Checked on the node asked and again on the leader.
   */
  private memberEntryDeletion(cmd: { op: string; configuration?: Cib['configuration'] }): string | undefined {
    const current = this.consensus?.cib?.().configuration;
    if (cmd.op !== 'replace-configuration' || !cmd.configuration || !current) return undefined;
    const members = this.cfg.nodes.filter((n) => !n.witness).map((n) => n.name);
    return memberNodeDeletion(current, cmd.configuration, members);
  }

  /** Resolves once this node's consensus applied `index`, or after `waitMs` (bounded poll). */
  private async waitApplied(index: number, waitMs: number): Promise<void> {
    const until = this.nowMs() + waitMs;
    while (!this.stopped && (this.consensus?.status().applied ?? index) < index && this.nowMs() < until)
      await new Promise((resolve) => setTimeout(resolve, LOCAL_APPLY_POLL_MS).unref());
  }

  /**
   * Sends a validated CIB command to the leader over an authenticated stream and resolves with
   * its answer, or with why there is none within PROPOSE_FORWARD_TIMEOUT_MS.
   */
  private async forwardProposal(leader: string, data: string): Promise<ProposeReply> {
    const fail = (code: string, message: string): ProposeReply => ({ ok: false, code, message, leader });
    let ch: StreamChannel | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<ProposeReply>((resolve) => {
      timer = setTimeout(
        () =>
          resolve(
            fail(
              'timeout',
              `no answer from the leader ${leader} within ${PROPOSE_FORWARD_TIMEOUT_MS} ms; the change may still commit: check with 'halo configure show'`,
            ),
          ),
        PROPOSE_FORWARD_TIMEOUT_MS,
      );
      timer.unref();
    });
    let done = false;
    const exchange = async (): Promise<ProposeReply> => {
      let open: StreamChannel;
      try {
        open = await this.openStream(leader, PROPOSE_PURPOSE);
      } catch (err) {
        return fail('leader-unreachable', `cannot reach the leader ${leader}: ${(err as Error).message}`);
      }
      ch = open;
      // Connected only after the deadline: nobody waits for this answer any more.
      if (done) open.close();
      const answer = new Promise<ProposeReply>((resolve) => {
        open.once('message', (m) => resolve(parseProposeAnswer(m, leader)));
        open.once('close', (err) =>
          resolve(
            fail(
              'leader-unreachable',
              `the leader ${leader} closed the connection${err ? `: ${err.message}` : ''} before answering`,
            ),
          ),
        );
      });
      await open.send(Buffer.from(data));
      return answer;
    };
    try {
      return await Promise.race([
        exchange().catch((err: Error) => fail('leader-unreachable', err.message)),
        late,
      ]);
    } finally {
      done = true;
      clearTimeout(timer);
      ch?.close();
    }
  }

  /** The leader's side of a forwarded CIB proposal: one command, one answer. */
  private serveForwardedProposal(ch: StreamChannel): void {
    ch.once('message', (m) => {
      void this.proposeCib(m.toString('utf8'), true)
        .then((r) => ch.send(Buffer.from(JSON.stringify(r))))
        .catch(() => undefined)
        .finally(() => ch.close());
    });
  }

  /** The leader's side of a forwarded membership request: one request, one answer. */
  private serveForwardedMemberRequest(ch: StreamChannel): void {
    ch.once('message', (m) => {
      const line = m.toString('utf8');
      if (line === REMOVED_NOTICE) {
        // A member (authenticated by the cluster key) applied our removal. The leader stops
        // replicating to a node as soon as its removal is appended, so neither the entry nor
        // its commit may ever reach us: this notice is how a removed node learns it.
        this.selfRemoved(`told by ${this.nameOf(ch.peer)}`);
        ch.close();
        return;
      }
      void this.memberCommand(line, true)
        .then((r) => ch.send(Buffer.from(JSON.stringify(r))))
        .catch(() => undefined)
        .finally(() => ch.close());
    });
  }

  /**
   * A membership entry from the Raft log. An added node is reached as soon as its entry is in
   * the log (the leader replicates to it from then on); a removal takes effect once committed.
   * Fenced removals (two-node rule) keep the peer: it comes back as a voter.
   */
  private onConfChange(cc: ConfChange, committed: boolean): void {
    if (cc.type === 'addNode') {
      if (this.cfg.nodes.some((n) => n.name === cc.node)) return;
      if (cc.member === undefined) {
        this.log.log('warn', `node ${cc.node} joined Raft without an address; add it to ${this.cfg.file}`, {
          event: 'member-unknown',
          peer: cc.node,
        });
        return;
      }
      let n: NodeConfig;
      try {
        n = parseNodeJson(JSON.parse(cc.member), `member ${cc.node}`);
        if (n.name !== cc.node) throw new HaloError('bad-member', `entry names ${n.name}, not ${cc.node}`);
        withNodes(this.cfg.nodes, [n]);
      } catch (err) {
        this.log.log('error', `cannot add member ${cc.node}: ${(err as Error).message}`, {
          event: 'member-refused',
          peer: cc.node,
        });
        return;
      }
      this.addMember(n);
      return;
    }
    if (cc.type === 'fencedRemoveNode') return;
    if (cc.node === this.self.name) {
      if (committed) this.selfRemoved('the removal committed');
      return;
    }
    if (!committed) return;
    const gone = this.cfg.nodes.find((n) => n.name === cc.node);
    this.removeMember(cc.node);
    if (gone) this.tellRemoved(gone);
  }

  private selfRemoved(how: string): void {
    if (this.removedSelf) return;
    this.removedSelf = true;
    this.learned.removed = [...new Set([...this.learned.removed, this.self.name])];
    this.saveLearnedMembers();
    this.log.log('warn', `this node (${this.self.name}) was removed from the cluster (${how}); stopping`, {
      event: 'member-removed',
      peer: this.self.name,
    });
    this.opts.onRemoved?.();
  }

  /** Tells a removed node its removal committed (best effort: it may be down already). */
  private tellRemoved(n: NodeConfig): void {
    if (!this.key || this.stopped) return;
    StreamChannel.connect(n.stream, {
      clusterKey: this.key,
      clusterId: this.clusterId,
      self: this.self.id,
      expectPeer: n.id,
    }).then(
      async (ch) => {
        try {
          await ch.send(Buffer.from(MEMBER_PURPOSE));
          await ch.send(Buffer.from(REMOVED_NOTICE));
        } catch {
          // It went away meanwhile.
        } finally {
          ch.close();
        }
      },
      () => undefined,
    );
  }

  private addMember(n: NodeConfig): void {
    this.removedMembers.delete(n.name);
    this.setNodes([...this.cfg.nodes, n]);
    this.transport?.addPeer({ id: n.id, links: n.links });
    this.detector?.addPeer(n.id, this.nowMs());
    this.learned.removed = this.learned.removed.filter((x) => x !== n.name);
    this.learned.added = this.learned.added.filter((x) => x.name !== n.name);
    const inFile = this.opts.config.nodes.find((x) => x.name === n.name);
    if (!inFile || JSON.stringify(nodeToJson(inFile)) !== JSON.stringify(nodeToJson(n)))
      this.learned.added.push(nodeToJson(n));
    this.saveLearnedMembers();
    this.log.log(
      'info',
      `member ${n.name} (id ${n.id}) added to the cluster: links ${n.links.map((l) => endpointText(l)).join(', ')}`,
      { event: 'member-added', peer: n.name, peerId: n.id },
    );
  }

  private removeMember(name: string): void {
    const n = this.cfg.nodes.find((x) => x.name === name);
    if (!n) return;
    if (!n.witness) this.removedMembers.add(name);
    this.setNodes(this.cfg.nodes.filter((x) => x !== n));
    this.transport?.removePeer(n.id);
    this.detector?.removePeer(n.id);
    this.witnessVotes.delete(n.id);
    this.peerEpochs.delete(n.id);
    this.fenced.delete(n.id);
    this.fencedEpochs.delete(n.id);
    this.fenceRequested.delete(n.id);
    for (const [key, out] of this.outStreams) {
      if (!key.startsWith(`${n.id}/`)) continue;
      out.ch?.close();
      this.outStreams.delete(key);
    }
    this.learned.added = this.learned.added.filter((x) => x.name !== name);
    if (this.opts.config.nodes.some((x) => x.name === name) && !this.learned.removed.includes(name))
      this.learned.removed.push(name);
    this.saveLearnedMembers();
    this.log.log('info', `member ${name} (id ${n.id}) removed from the cluster`, {
      event: 'member-removed',
      peer: name,
      peerId: n.id,
    });
  }

  /** The effective member list changed: peers, quorum (two_node, expected votes), witness ballot. */
  private setNodes(nodes: NodeConfig[]): void {
    const qNodes = nodes.map((n) => ({ id: n.id, votes: n.votes, witness: n.witness }));
    const tracker = (this.quorum ?? new QuorumTracker(this.cfg.quorum, this.self.id)).withNodes(qNodes);
    if (this.quorum) this.quorum = tracker;
    this.cfg = { ...this.cfg, nodes, quorum: tracker.options };
    this.peers = nodes.filter((n) => n.name !== this.self.name);
    if (this.ballot) this.ballot.votingNodeIds = nodes.filter((n) => !n.witness).map((n) => n.id);
  }

  private learnedFile(): string {
    return join(this.cfg.stateDir, `${this.self.name}.members.json`);
  }

  /** Applies the members learned in earlier runs (see LearnedMembers) on top of the config file. */
  private loadLearnedMembers(): void {
    const file = this.learnedFile();
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new HaloError('state-unreadable', `cannot read ${file}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    let v: LearnedMembers;
    let added: NodeConfig[];
    try {
      v = JSON.parse(text) as LearnedMembers;
      if (
        !Array.isArray(v.added) ||
        !Array.isArray(v.removed) ||
        v.removed.some((x) => typeof x !== 'string')
      )
        throw new Error('expected {"added": [nodes], "removed": [names]}');
      added = v.added.map((a, i) => parseNodeJson(a, `added[${i}]`)).filter((a) => a.name !== this.self.name);
    } catch (err) {
      throw new HaloError(
        'bad-state',
        `${file}: not a members file (${(err as Error).message}); remove it to use the config's nodes`,
      );
    }
    if (v.removed.includes(this.self.name)) {
      throw new HaloError(
        'node-removed',
        `${file}: node ${this.self.name} left the cluster (halo cluster leave); to bring it back run 'halo cluster join' on a member, remove ${join(this.cfg.stateDir, this.self.name)}.* here and start it with --join`,
      );
    }
    const replaced = new Set([...v.removed, ...added.map((a) => a.name)]);
    const nodes = withNodes(
      this.opts.config.nodes.filter((n) => !replaced.has(n.name)),
      added,
    );
    this.learned = { added: added.map(nodeToJson), removed: v.removed };
    for (const name of v.removed) if (!added.some((a) => a.name === name)) this.removedMembers.add(name);
    this.setNodes(nodes);
  }

  private saveLearnedMembers(): void {
    const file = this.learnedFile();
    try {
      mkdirSync(dirname(file), { recursive: true });
      const tmp = `${file}.tmp`;
      const fd = openSync(tmp, 'w', 0o644);
      try {
        writeSync(fd, `${JSON.stringify(this.learned, null, 2)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
    } catch (err) {
      this.log.log('error', `cannot save the member list to ${file}: ${(err as Error).message}`, {
        event: 'members-save-failed',
      });
    }
  }

  private nameOf(id: number): string {
    return this.cfg.nodes.find((n) => n.id === id)?.name ?? `#${id}`;
  }
}

function parseMemberAnswer(m: Buffer): MemberChangeOutcome {
  try {
    const v = JSON.parse(m.toString('utf8')) as MemberChangeOutcome;
    if (typeof v === 'object' && v !== null && typeof v.ok === 'boolean') return v;
  } catch {
    // Fall through.
  }
  return { ok: false, code: 'bad-answer', message: 'the leader sent an invalid answer' };
}

/** The leader's answer to a forwarded proposal: a ProposeOutcome or `{error}`, else bad-answer. */
function parseProposeAnswer(m: Buffer, leader: string): ProposeReply {
  try {
    const v = JSON.parse(m.toString('utf8')) as Record<string, unknown> | null;
    if (typeof v === 'object' && v !== null) {
      if (typeof v.error === 'string') return { error: v.error };
      if (v.ok === true && typeof v.index === 'number' && typeof v.applied === 'boolean')
        return v as unknown as ProposeOutcome;
      if (v.ok === false && typeof v.code === 'string' && typeof v.message === 'string')
        return v as unknown as ProposeOutcome;
    }
  } catch {
    // Fall through.
  }
  return { ok: false, code: 'bad-answer', message: `the leader ${leader} sent an invalid answer`, leader };
}

function endpointText(ep: { host: string; port: number } | undefined): string {
  if (!ep) return '-';
  return ep.host.includes(':') ? `[${ep.host}]:${ep.port}` : `${ep.host}:${ep.port}`;
}
