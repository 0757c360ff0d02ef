import type { Cib } from '../cib/model.ts';
import { allPrimitives, evaluateNvSets, metaValue } from '../cib/resources.ts';
import type { Executor, ExecutorRequest } from '../executor/executor.ts';
import type { FenceDevice } from '../executor/fence.ts';
import type { OpResult } from '../executor/ops.ts';
import type { Logger } from '../lib/ports.ts';
import { Controller } from './controller.ts';
import { agentOf } from './resource_ops.ts';
import type {
  ControllerConfig,
  ControllerEffect,
  ControllerEvent,
  ExecOp,
  NodeEntry,
  OpOutcome,
  ScheduleFn,
  StatusChange,
} from './types.ts';

/**
 * The controller's shell inside a daemon: owns the tick timer, turns `exec` effects into
 * executor submissions (here, or on another node through `sendToNode`), runs fencing, forwards
 * this node's results (including later runs of recurring monitors) to the DC, and hands status
 * updates to the replicated CIB. The daemon feeds it membership, quorum, the DC and committed
 * CIBs; everything it does goes through the ports below, so tests wire hosts together in memory.
 */

/** Messages between hosts (carried reliably by the daemon, e.g. on a `controller` stream). */
export type ControllerWire =
  | { readonly kind: 'exec'; readonly token: string; readonly op: ExecOp }
  | {
      readonly kind: 'result';
      readonly node: string;
      readonly token?: string;
      readonly rsc: string;
      readonly action: string;
      readonly intervalMs: number;
      readonly outcome: OpOutcome;
    }
  /**
   * A node sets one of its own transient attributes through the DC (Pacemaker's attrd), e.g.
   * `shutdown` when it wants to leave cleanly. `value` null deletes it.
   */
  | {
      readonly kind: 'attribute';
      readonly node: string;
      readonly name: string;
      readonly value: string | null;
    };

/** A wait the controller asks for before a fencing (the fence effect's `delayMs`). */
export interface FenceRequestDelay {
  readonly ms: number;
  /** For the log line, e.g. "priority-fencing-delay: n1 runs the highest-priority resources". */
  readonly why: string;
}

export interface FenceOutcome {
  readonly ok: boolean;
  readonly reason: string;
}

export interface ControllerHostPorts {
  readonly config: ControllerConfig;
  readonly schedule: ScheduleFn;
  /** This node's executor (its `onResult` must call `host.localResult`). */
  readonly executor: Pick<Executor, 'submit'>;
  /**
   * Fences `target` with the CIB's devices (e.g. the executor's `Fencer`); `on` unfences it.
   * `delay`: wait this long first (priority-fencing-delay), abortably, before the first device
   * and its pcmk_delay.
   */
  readonly fence: (
    target: string,
    action: 'reboot' | 'off' | 'on',
    devices: readonly FenceDevice[],
    cib: Cib,
    delay?: FenceRequestDelay,
  ) => Promise<FenceOutcome>;
  /** Delivers a message to another node's host, in order; dropping it on a dead peer is fine. */
  readonly sendToNode: (node: string, msg: ControllerWire) => void;
  /** Proposes the DC's status changes to the replicated CIB, in order (see `applyStatusChanges`). */
  readonly publishStatus: (changes: readonly StatusChange[]) => void;
  /**
   * Adds these `<node>` entries to the replicated configuration, skipping any whose uname it
   * has by then, and never removing one (the `add-nodes` effect). A failure needs no report:
   * the DC asks again.
   */
  readonly addNodes: (nodes: readonly NodeEntry[]) => void;
  /**
   * Deletes the `<node>` entries with these unames from the replicated configuration, keeping
   * every other (the `remove-nodes` effect). A failure needs no report: the DC asks again.
   * Absent: entries are never deleted (a host without it logs the request and drops it).
   */
  readonly removeNodes?: (unames: readonly string[]) => void;
  readonly nodeFenced: (node: string, how: string) => void;
  /** This node could not stop its resources in time after losing quorum. */
  readonly selfFence: (reason: string) => void;
  /**
   * Whether this node's Raft leader lease holds right now (asked before every event while this
   * node is DC). The DC acts only while it does; see the controller's `lease` event.
   */
  readonly leaseValid: () => boolean;
  readonly logger: Logger;
  /** Wall clock (ms since the epoch): rules, failure-timeout and `last-rc-change` are wall times. */
  readonly wallMs: () => number;
  /** Run operations inside this network namespace (lab nodes). */
  readonly netns?: string;
}

/** Exec requests whose sender is remembered at once; more than this many running is a bug upstream. */
export const MAX_REMEMBERED_REQUESTS = 10_000;

/** The tick period: leases and timeouts are checked this often. */
export const CONTROLLER_TICK_MS = 100;
/**
 * How far ahead one "the lease holds" answer reaches. The host asks again before every event,
 * so this only matters when nothing reaches the host at all (a stalled process): then the DC's
 * lease runs out by itself two ticks later.
 */
export const LEASE_HORIZON_MS = 2 * CONTROLLER_TICK_MS;

/**
 * Fence devices configured in the CIB: every `stonith:` or `halo:lab-fence` primitive; with
 * `unfencing`, only those whose meta says provides=unfencing (the ones unfencing runs `on`).
 */
export function fenceDevicesFromCib(cib: Cib, only?: 'unfencing'): FenceDevice[] {
  const out: FenceDevice[] = [];
  for (const { resource: p } of allPrimitives(cib)) {
    const agent = agentOf(cib, p);
    if (!agent.startsWith('stonith:') && agent !== 'halo:lab-fence') continue;
    if (only === 'unfencing' && metaValue(p, 'provides', cib) !== 'unfencing') continue;
    out.push({ id: p.id, agent, params: Object.fromEntries(evaluateNvSets(p.instanceAttributes, { cib })) });
  }
  return out;
}

export class ControllerHost {
  private readonly core: Controller;
  private readonly log: Logger;
  private cib: Cib;
  private dcName: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The lease end last handed to the core (see `feed`). */
  private fedLeaseUntilMs = Number.NEGATIVE_INFINITY;
  /** One-shot operations (not recurring monitors) this node's executor is running now. */
  private localOpsRunning = 0;
  /** Who sent each exec still running here (token → node), oldest first. */
  private readonly requesters = new Map<string, string>();

  constructor(
    private readonly ports: ControllerHostPorts,
    cib: Cib,
  ) {
    this.cib = cib;
    this.core = new Controller(ports.config, ports.schedule, cib);
    this.log = ports.logger.child({ component: 'controller' });
  }

  start(): void {
    this.timer = setInterval(() => this.feed({ type: 'tick' }), CONTROLLER_TICK_MS);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  get controller(): Controller {
    return this.core;
  }

  // The daemon's inputs -------------------------------------------------------------------------

  /**
   * The members now; `extra.epochs` their boot epochs (a fenced node counts again only with a
   * newer one), `extra.nodeIds` their cluster node ids (for the `<node>` entries the DC adds),
   * `extra.removed` the nodes removed from the cluster (whose entries the DC deletes),
   * `extra.quorum` the quorum computed from these same members, applied together.
   */
  membership(
    members: readonly string[],
    why?: string,
    extra: Pick<
      Extract<ControllerEvent, { type: 'membership' }>,
      'epochs' | 'nodeIds' | 'removed' | 'quorum'
    > = {},
  ): void {
    this.feed({
      type: 'membership',
      members,
      ...(why !== undefined ? { why } : {}),
      ...(extra.epochs !== undefined ? { epochs: extra.epochs } : {}),
      ...(extra.nodeIds !== undefined ? { nodeIds: extra.nodeIds } : {}),
      ...(extra.removed !== undefined ? { removed: extra.removed } : {}),
      ...(extra.quorum !== undefined ? { quorum: extra.quorum } : {}),
    });
  }

  quorum(quorate: boolean, fenceNeeded: readonly string[], reason?: string): void {
    this.feed({ type: 'quorum', quorate, fenceNeeded, ...(reason !== undefined ? { reason } : {}) });
  }

  /**
   * Whether this node sees carrier on its own cluster links (src/daemon/link_carrier.ts): while
   * `isolated`, every fencing it issues waits halo-isolation-fencing-delay. Feed it when it
   * changes and before a fencing is decided.
   */
  linkCarrier(isolated: boolean, detail: string): void {
    this.feed({ type: 'link-carrier', isolated, detail });
  }

  /** The DC's name (the Raft leader), or null while there is none. */
  dc(name: string | null): void {
    this.dcName = name;
    this.fedLeaseUntilMs = Number.NEGATIVE_INFINITY;
    this.feed({ type: 'dc', isDc: name === this.ports.config.self });
  }

  committedCib(cib: Cib): void {
    this.cib = cib;
    this.feed({ type: 'cib', cib });
  }

  nodeAttribute(node: string, name: string, value: string | undefined): void {
    this.feed({ type: 'node-attribute', node, name, value });
  }

  cleanup(rsc: string, node?: string): void {
    this.feed({ type: 'cleanup', rsc, ...(node !== undefined ? { node } : {}) });
  }

  /**
   * Sets one of this node's transient attributes through the DC (here if this node is DC).
   * Returns false when there is no DC to ask; the caller retries.
   */
  setOwnAttribute(name: string, value: string | null): boolean {
    const self = this.ports.config.self;
    if (this.dcName === null || this.stopped) return false;
    if (this.dcName === self) this.nodeAttribute(self, name, value ?? undefined);
    else this.ports.sendToNode(this.dcName, { kind: 'attribute', node: self, name, value });
    return true;
  }

  /** Whether this node's executor is running a one-shot operation (start, stop, probe…) now. */
  localOpsBusy(): boolean {
    return this.localOpsRunning > 0;
  }

  /** A message from another node's host. */
  receive(from: string, msg: ControllerWire): void {
    if (msg.kind === 'exec') {
      // The result goes back to the node that asked, whoever this node believes is DC: a node
      // that just rejoined may not know the leader yet, and the DC waits for exactly this.
      if (this.requesters.size >= MAX_REMEMBERED_REQUESTS)
        this.requesters.delete(this.requesters.keys().next().value!);
      this.requesters.set(msg.token, from);
      this.runLocal(msg.token, msg.op);
      return;
    }
    if (msg.kind === 'attribute') {
      if (msg.node !== from) {
        this.log.log('warn', `dropping attribute ${msg.name} for ${msg.node} sent by ${from}`);
        return;
      }
      this.nodeAttribute(msg.node, msg.name, msg.value ?? undefined);
      return;
    }
    if (msg.node !== from) {
      this.log.log('warn', `dropping a result for ${msg.node} sent by ${from}`);
      return;
    }
    this.feed({
      type: 'op-result',
      node: msg.node,
      ...(msg.token ? { token: msg.token } : {}),
      rsc: msg.rsc,
      action: msg.action,
      intervalMs: msg.intervalMs,
      outcome: msg.outcome,
    });
  }

  /** Every result of this node's executor (wire `Executor`'s `onResult` here): recurring runs go to the DC. */
  localResult(r: OpResult): void {
    if (r.intervalMs > 0) this.report(undefined, r);
  }

  // Effects ---------------------------------------------------------------------------------------

  private feed(ev: ControllerEvent): void {
    if (this.stopped) return;
    const now = this.ports.wallMs();
    if (this.dcName === this.ports.config.self || ev.type === 'dc') this.feedLease(now);
    let fx: ControllerEffect[];
    try {
      fx = this.core.handle(ev, now);
    } catch (err) {
      this.log.log('error', `controller failed on ${ev.type}: ${(err as Error).message}`);
      throw err;
    }
    for (const e of fx) this.apply(e);
  }

  /**
   * Asks the port whether the leader lease holds and tells the core when that changed, or when
   * the last answer is half used up, so the core sees a lapse before the event that follows.
   */
  private feedLease(now: number): void {
    const valid = this.dcName === this.ports.config.self && this.ports.leaseValid();
    const until = valid ? now + LEASE_HORIZON_MS : Number.NEGATIVE_INFINITY;
    const lapsedNow = !valid && this.fedLeaseUntilMs > now;
    const renew = valid && until - this.fedLeaseUntilMs >= LEASE_HORIZON_MS / 2;
    if (!lapsedNow && !renew) return;
    this.fedLeaseUntilMs = until;
    for (const e of this.core.handle({ type: 'lease', untilMs: until }, now)) this.apply(e);
  }

  private apply(e: ControllerEffect): void {
    switch (e.type) {
      case 'exec':
        if (e.node === this.ports.config.self) this.runLocal(e.token, e.op);
        else this.ports.sendToNode(e.node, { kind: 'exec', token: e.token, op: e.op });
        return;
      case 'fence': {
        const cib = this.cib;
        const delay =
          e.delayMs !== undefined && e.delayMs > 0
            ? { ms: e.delayMs, why: e.delayReason ?? 'requested by the controller' }
            : undefined;
        // Unfencing (`on`) goes to the devices that provide it (meta provides=unfencing) only.
        const devices = fenceDevicesFromCib(cib, e.action === 'on' ? 'unfencing' : undefined);
        void this.ports
          .fence(e.target, e.action, devices, cib, delay)
          .catch((err: Error): FenceOutcome => ({ ok: false, reason: err.message }))
          .then((r) =>
            this.feed({ type: 'fence-result', token: e.token, target: e.target, ok: r.ok, reason: r.reason }),
          );
        return;
      }
      case 'node-fenced':
        this.ports.nodeFenced(e.node, e.how);
        return;
      case 'status-changes':
        this.ports.publishStatus(e.changes);
        return;
      case 'add-nodes':
        this.ports.addNodes(e.nodes);
        return;
      case 'remove-nodes':
        if (this.ports.removeNodes) this.ports.removeNodes(e.nodes);
        else this.log.log('warn', `not deleting the node entries of ${e.nodes.join(', ')}: this host cannot`);
        return;
      case 'self-fence':
        this.ports.selfFence(e.reason);
        return;
      case 'log':
        this.log.log(e.level, e.msg, e.fields);
        return;
    }
  }

  private runLocal(token: string, op: ExecOp): void {
    const req: ExecutorRequest = {
      resource: op.rsc,
      agent: op.agent,
      action: op.action,
      intervalMs: op.intervalMs,
      timeoutMs: op.timeoutMs,
      startDelayMs: op.startDelayMs,
      params: op.params,
      meta: op.meta,
      ...(this.ports.netns !== undefined ? { netns: this.ports.netns } : {}),
    };
    const oneShot = op.intervalMs === 0;
    if (oneShot) this.localOpsRunning++;
    const done = (): void => {
      if (oneShot) this.localOpsRunning--;
    };
    this.ports.executor.submit(req).then(
      (r) => {
        done();
        if (op.intervalMs === 0 && op.action !== 'monitor')
          this.log.log('info', `${op.rsc} ${op.action}: rc ${r.rc} in ${Math.round(r.execTimeMs)} ms`, {
            event: 'op-done',
            resource: op.rsc,
            op: op.action,
            rc: r.rc,
          });
        this.report(token, r);
      },
      (err: Error) => {
        done();
        this.report(token, {
          resource: op.rsc,
          action: op.action,
          intervalMs: op.intervalMs,
          rc: 1,
          opStatus: 4,
          execTimeMs: 0,
          queueTimeMs: 0,
          exitReason: `executor refused: ${err.message}`,
        });
      },
    );
  }

  private report(
    token: string | undefined,
    r: Pick<
      OpResult,
      'resource' | 'action' | 'intervalMs' | 'rc' | 'opStatus' | 'execTimeMs' | 'queueTimeMs'
    > &
      Partial<Pick<OpResult, 'exitReason' | 'opDigest' | 'attributes'>>,
  ): void {
    const outcome: OpOutcome = {
      rc: r.rc,
      opStatus: r.opStatus,
      execTimeMs: r.execTimeMs,
      queueTimeMs: r.queueTimeMs,
      ...(r.exitReason !== undefined ? { exitReason: r.exitReason } : {}),
      ...(r.opDigest !== undefined ? { opDigest: r.opDigest } : {}),
      ...(r.attributes !== undefined ? { attributes: r.attributes } : {}),
    };
    const self = this.ports.config.self;
    const msg: ControllerWire = {
      kind: 'result',
      node: self,
      ...(token !== undefined ? { token } : {}),
      rsc: r.resource,
      action: r.action,
      intervalMs: r.intervalMs,
      outcome,
    };
    // The local core always hears its own results (local safety); the DC hears everyone's. An
    // exec's result goes to the node that sent it; later runs of a monitor to the DC.
    const requester = token !== undefined ? this.requesters.get(token) : undefined;
    if (token !== undefined) this.requesters.delete(token);
    const to = requester ?? this.dcName;
    if (to === self || to === null) {
      this.receive(self, msg);
    } else {
      this.feed({
        type: 'op-result',
        node: self,
        rsc: r.resource,
        action: r.action,
        intervalMs: r.intervalMs,
        outcome,
        ...(token !== undefined ? { token } : {}),
      });
      this.ports.sendToNode(to, msg);
    }
  }
}
