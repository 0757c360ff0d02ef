import { createHash } from 'node:crypto';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { type Cib, emptyCib, type NodeState } from '../cib/model.ts';
import { validateCibCommand } from '../consensus/cib_state_machine.ts';
import { renderStatus } from '../controller/crm_mon.ts';
import { type AttachedController, attachController } from '../controller/daemon_glue.ts';
import { cibForScheduling } from '../controller/status.ts';
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
import { controlSocketPath, type DaemonConfig, type NodeConfig } from './config.ts';
import { serveControl } from './control.ts';

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
}

export type ProposeOutcome =
  | {
      readonly ok: true;
      readonly index: number;
      readonly term: number;
      readonly applied: boolean;
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
  };
}

/** Two-node takeover: pause between attempts (fence refused or failed, re-adding a voter). */
export const TAKEOVER_RETRY_MS = 1_000;

/** Messages waiting for a stream to connect, per peer and purpose. */
export const MAX_QUEUED_STREAM_MESSAGES = 16;

/** The tick period: a few per keepalive so detection is late by at most a fraction of a beat. */
export function tickPeriodMs(keepaliveMs: number): number {
  return Math.max(2, Math.min(10, Math.floor(keepaliveMs / 4)));
}

/**
 * The composition root of one node: transport + membership + quorum (+ consensus), on real
 * sockets and timers. Owns every timer and socket it makes; `stop()` releases all of them.
 */
export class Daemon {
  private readonly cfg: DaemonConfig;
  private readonly self: NodeConfig;
  private readonly peers: NodeConfig[];
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
  private timers: NodeJS.Timeout[] = [];
  private readonly witnessVotes = new Map<number, number | null>();
  private readonly fenced = new Set<number>();
  private readonly fenceRequested = new Set<number>();
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
  private fedQuorum = '';
  private takeoverRetryAtMs = 0;
  private readdRetryAtMs = 0;

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
      });
      const part = this.consensus;
      this.onStreamPurpose('raft', (ch) => ch.on('message', (m) => part.receive(ch.peer, m)));
    }
    const peerIds = new Set(this.peers.map((p) => p.id));
    this.streams = await StreamServer.listen(this.self.stream, {
      clusterKey: key,
      clusterId,
      self: this.self.id,
      accept: (peer) => peerIds.has(peer),
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
          this.fenced.add(id);
          this.updateQuorum();
        },
        selfFence: (reason) => {
          this.log.log('error', `self-fencing: ${reason}`, { event: 'self-fence' });
          if (this.opts.selfFence) this.opts.selfFence(reason);
          else process.kill(process.pid, 'SIGKILL');
        },
        replicatedCib: replicated,
      },
      replicated(),
      this.cfg.timing,
    );
    this.feedController();
  }

  /**
   * Tells the controller what changed since it was last told: committed CIB (by identity),
   * members (by name, witnesses left out), DC. Cheap when nothing changed; runs every tick and
   * right after a membership change.
   */
  private feedController(): void {
    const host = this.ctl?.host;
    if (!host || this.stopped) return;
    const cib = this.consensus?.cib?.();
    if (cib && cib !== this.fedCib) {
      this.fedCib = cib;
      host.committedCib(cib);
    }
    const ids = this.memberIds();
    const members = this.cfg.nodes.filter((n) => !n.witness && ids.has(n.id)).map((n) => n.name);
    const key = members.join(',');
    if (key !== this.fedMembers) {
      this.fedMembers = key;
      host.membership(members);
    }
    this.feedQuorum(this.quorumState ?? this.updateQuorum());
    const dc = this.consensus?.status().leader ?? null;
    if (dc !== this.fedDc) {
      this.fedDc = dc;
      host.dc(dc);
    }
  }

  private feedQuorum(state: QuorumState): void {
    if (!this.ctl) return;
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
    this.control?.close();
    this.log.log('info', `node ${this.self.name} stopped`, { event: 'stopped' });
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
   * answers once it is committed and applied here.
   */
  private command(line: string): unknown {
    if (line === 'status') return this.status();
    if (line === 'crm_mon') return this.crmMon();
    if (line === 'cib') return this.viewCib();
    const sp = line.indexOf(' ');
    const [cmd, arg] = sp < 0 ? [line, ''] : [line.slice(0, sp), line.slice(sp + 1)];
    if (cmd === 'cib') {
      if (!this.consensus?.propose) return { error: 'consensus is not running on this node' };
      let v: unknown;
      try {
        v = JSON.parse(arg);
      } catch {
        return { error: 'cib: argument is not JSON' };
      }
      const problem = validateCibCommand(v);
      if (problem) return { error: `cib: ${problem}` };
      return this.consensus.propose(JSON.stringify(v), PROPOSE_TIMEOUT_MS);
    }
    return { error: `unknown command '${cmd.slice(0, 40)}' (known: status, crm_mon, cib, cib JSON)` };
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
    void ctl.fenceForTakeover(name).then((r) => {
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
      this.fenced.add(peer);
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
        if (ok && this.detector?.state(peer) === 'lost') this.fenced.add(peer);
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
            this.fenced.delete(ev.peer);
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

  private nameOf(id: number): string {
    return this.cfg.nodes.find((n) => n.id === id)?.name ?? `#${id}`;
  }
}

function endpointText(ep: { host: string; port: number } | undefined): string {
  if (!ep) return '-';
  return ep.host.includes(':') ? `[${ep.host}]:${ep.port}` : `${ep.host}:${ep.port}`;
}
