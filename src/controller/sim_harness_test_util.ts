import assert from 'node:assert/strict';
import { parseCrm } from '../cib/crm.ts';
import type { Cib, NodeState } from '../cib/model.ts';
import { schedule } from '../scheduler/schedule.ts';
import { Controller } from './controller.ts';
import { applyStatusChanges } from './status.ts';
import type { ControllerConfig, ControllerEffect, ControllerEvent, ExecOp } from './types.ts';

/**
 * Test-only harness: one controller (the DC under test) with the REAL scheduler, a simulated
 * clock, and a fake executor/fencer that plays every node's agents in memory. Effects become
 * result events, which are fed back until the cluster is quiet (bounded).
 */
export const T0 = 1_700_000_000_000;
const MAX_STEPS = 200_000;
/**
 * How far ahead each renewal of the DC's leader lease reaches (Raft's election timeout, roughly:
 * a quorum acknowledged the leader just now).
 */
export const SIM_LEASE_MS = 1_000;

export function crmCib(text: string): Cib {
  const r = parseCrm(text, 'test.crm');
  if (!r.ok) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return r.cib;
}

export interface ExecRecord {
  readonly node: string;
  readonly rsc: string;
  readonly action: string;
  readonly intervalMs: number;
  readonly atMs: number;
}

export class ClusterSim {
  nowMs = T0;
  readonly ctl: Controller;
  /** What really runs where: node → resource → role. */
  readonly running = new Map<string, Map<string, 'Started' | 'Promoted'>>();
  /** Nodes whose executors answer (members that are alive). */
  readonly alive = new Set<string>();
  readonly execs: ExecRecord[] = [];
  /** Each fence effect; `delayMs` is the wait the DC asked for (priority-fencing-delay). */
  readonly fences: { target: string; ok: boolean; atMs: number; delayMs?: number }[] = [];
  readonly effects: ControllerEffect[] = [];
  /** Whether the fence device succeeds. */
  fenceOk = true;
  /** Unfencing (`on`) requests, in order, and whether the device answers them with success. */
  readonly unfences: { target: string; ok: boolean; atMs: number }[] = [];
  unfenceOk = true;
  /**
   * Whether a quorum keeps acknowledging the DC: then every event is preceded by a renewal of
   * its leader lease to `nowMs + SIM_LEASE_MS`. Turn off to model a DC cut off from Raft.
   */
  leaseRenewing = true;
  /** Resources whose start fails on a node (`node:rsc`). */
  readonly failStart = new Set<string>();
  /** Resources whose stop fails on a node (`node:rsc`): they keep running there. */
  readonly failStop = new Set<string>();
  /**
   * Whether the node entries the DC asks for (`add-nodes`) are committed: then the shell's
   * work is played at once, a `cib` event with them added. Turn off to model a proposal lost.
   */
  commitNodeEntries = true;
  /** The replicated CIB as the controller was last handed it. */
  cib: Cib;
  private readonly queue: ControllerEvent[] = [];

  constructor(cib: Cib, nodes: readonly string[], cfg: Partial<ControllerConfig> = {}) {
    this.ctl = new Controller(
      {
        self: nodes[0]!,
        fencing: 'stonith',
        leaseMs: 2_000,
        detectionSlackMs: 500,
        recheckIntervalMs: 900_000,
        ...cfg,
      },
      (c, now) => schedule(c, now, { textOutput: false }),
      cib,
    );
    this.cib = cib;
    for (const n of nodes) {
      this.alive.add(n);
      this.running.set(n, new Map());
    }
  }

  /** Feeds an event and every result it causes until nothing more happens. */
  send(ev: ControllerEvent): void {
    if (this.leaseRenewing) this.queue.push({ type: 'lease', untilMs: this.nowMs + SIM_LEASE_MS });
    this.queue.push(ev);
    this.settle();
  }

  settle(): void {
    for (let i = 0; this.queue.length > 0; i++) {
      if (i > MAX_STEPS) throw new Error('cluster did not settle');
      const ev = this.queue.shift()!;
      if (ev.type === 'cib') this.cib = ev.cib;
      for (const e of this.ctl.handle(ev, this.nowMs)) this.apply(e);
    }
  }

  advance(ms: number): void {
    this.nowMs += ms;
    this.send({ type: 'tick' });
  }

  where(rsc: string): string[] {
    return [...this.running].filter(([, m]) => m.has(rsc)).map(([n]) => n);
  }

  /** Kills a node: its processes die with it (as fencing or a crash would leave it). */
  crash(node: string): void {
    this.alive.delete(node);
    this.running.get(node)?.clear();
  }

  /** Cuts a node off: it stops answering but what it runs keeps running. */
  partition(node: string): void {
    this.alive.delete(node);
  }

  private apply(e: ControllerEffect): void {
    this.effects.push(e);
    if (e.type === 'exec') {
      if (!this.alive.has(e.node)) return; // lost node: never answers
      const { op } = e;
      this.execs.push({
        node: e.node,
        rsc: op.rsc,
        action: op.action,
        intervalMs: op.intervalMs,
        atMs: this.nowMs,
      });
      const m = this.running.get(e.node)!;
      let rc = 0;
      switch (op.action) {
        case 'start':
          if (this.failStart.has(`${e.node}:${op.rsc}`)) rc = 1;
          else m.set(op.rsc, 'Started');
          break;
        case 'stop':
          if (this.failStop.has(`${e.node}:${op.rsc}`)) rc = 1;
          else m.delete(op.rsc);
          break;
        case 'promote':
          m.set(op.rsc, 'Promoted');
          break;
        case 'demote':
          m.set(op.rsc, 'Started');
          break;
        case 'monitor':
          rc = m.get(op.rsc) === 'Promoted' ? 8 : m.has(op.rsc) ? 0 : 7;
          break;
      }
      this.queue.push({
        type: 'op-result',
        node: e.node,
        token: e.token,
        rsc: op.rsc,
        action: op.action,
        intervalMs: op.intervalMs,
        outcome: { rc, opStatus: 0, execTimeMs: 5 },
      });
    } else if (e.type === 'add-nodes') {
      if (!this.commitNodeEntries) return;
      // What the shell and Raft do: add the entries the configuration lacks, remove none.
      const cfg = this.cib.configuration;
      const have = new Set(cfg.nodes.map((n) => n.uname));
      const add = e.nodes
        .filter((n) => !have.has(n.uname))
        .map((n) => ({ id: n.id, uname: n.uname, instanceAttributes: [], utilization: [] }));
      const cib: Cib = { ...this.cib, configuration: { ...cfg, nodes: [...cfg.nodes, ...add] } };
      this.queue.push({ type: 'cib', cib });
    } else if (e.type === 'remove-nodes') {
      if (!this.commitNodeEntries) return;
      // What the shell and Raft do: delete those entries, keep every other.
      const cfg = this.cib.configuration;
      const nodes = cfg.nodes.filter((n) => !e.nodes.includes(n.uname));
      this.queue.push({ type: 'cib', cib: { ...this.cib, configuration: { ...cfg, nodes } } });
    } else if (e.type === 'fence' && e.action === 'on') {
      // Unfencing: the node stays up; the device answers as `unfenceOk` says.
      this.unfences.push({ target: e.target, ok: this.unfenceOk, atMs: this.nowMs });
      this.queue.push({
        type: 'fence-result',
        token: e.token,
        target: e.target,
        ok: this.unfenceOk,
        reason: this.unfenceOk ? 'fence_scsi: on' : 'fence_scsi: no key registered',
      });
    } else if (e.type === 'fence') {
      // The shell would wait `e.delayMs` first; the sim records it and fences at once.
      this.fences.push({
        target: e.target,
        ok: this.fenceOk,
        atMs: this.nowMs,
        ...(e.delayMs !== undefined ? { delayMs: e.delayMs } : {}),
      });
      if (this.fenceOk) {
        this.running.get(e.target)?.clear();
        this.alive.delete(e.target);
      }
      this.queue.push({
        type: 'fence-result',
        token: e.token,
        target: e.target,
        ok: this.fenceOk,
        reason: this.fenceOk ? 'lab-fence: off' : 'fence device unreachable',
      });
    }
  }

  /** A recurring monitor reports the resource gone on `node` (the agent's process died). */
  monitorFails(node: string, rsc: string, intervalMs: number): void {
    this.running.get(node)?.delete(rsc);
    this.send({
      type: 'op-result',
      node,
      rsc,
      action: 'monitor',
      intervalMs,
      outcome: { rc: 7, opStatus: 0, execTimeMs: 3 },
    });
  }

  logs(): string[] {
    return this.effects
      .filter((e): e is Extract<ControllerEffect, { type: 'log' }> => e.type === 'log')
      .map((e) => e.msg);
  }
}

/** Brings a cluster of `nodes` up: everyone a member, quorate, nodes[0] the DC. */
export function startCluster(
  text: string,
  nodes: readonly string[],
  cfg: Partial<ControllerConfig> = {},
): ClusterSim {
  const sim = new ClusterSim(crmCib(text), nodes, cfg);
  sim.send({ type: 'membership', members: nodes });
  sim.send({ type: 'quorum', quorate: true, fenceNeeded: [] });
  sim.send({ type: 'dc', isDc: true });
  return sim;
}

/**
 * One side of a two-node split: `self` is DC, loses `peer`, and (corosync two_node: each side
 * keeps quorum) halo's two-node rule asks for the peer's fence. `before` sees the cluster just
 * before the split (the sim fences at once, and recovery follows).
 */
export function twoNodeSplitSide(
  text: string,
  self: string,
  peer: string,
  before?: (sim: ClusterSim) => void,
): ClusterSim {
  const sim = startCluster(text, [self, peer]);
  before?.(sim);
  sim.partition(peer);
  sim.send({ type: 'membership', members: [self], why: 'no heartbeat on 2 links for 310 ms' });
  sim.send({ type: 'quorum', quorate: true, fenceNeeded: [peer], reason: 'two-node cluster' });
  return sim;
}

type Role = 'Started' | 'Promoted';

/**
 * Test-only harness with one controller per node (every node's view, not just the DC's), the
 * REAL scheduler and a simulated clock. Nodes can be isolated (a partition: what they run keeps
 * running) or taken down (the daemon gone; with `crash`, its processes too). Who is DC is each
 * node's own belief, as Raft would leave it: a DC cut off keeps believing it leads, but its
 * leader lease is renewed only while it reaches a majority. Messages follow the shell's rules
 * (host.ts): an `exec` reaches its node only if it is reachable from the sender; a result goes to
 * the node's own controller and to the DC it believes in, if reachable.
 *
 * Invariant checked on every start and promote: a primitive never becomes active on a second
 * node while it is still active on another (`violations`).
 */
export class ControllerCluster {
  nowMs = T0;
  readonly nodes: readonly string[];
  readonly ctls = new Map<string, Controller>();
  readonly running = new Map<string, Map<string, Role>>();
  readonly isolated = new Set<string>();
  /** Nodes whose daemon is not running. */
  readonly down = new Set<string>();
  /** Every operation that reached an executor, with who asked for it. */
  readonly execs: (ExecRecord & { readonly by: string; readonly token: string })[] = [];
  readonly fences: { by: string; target: string; atMs: number }[] = [];
  readonly selfFences: { node: string; reason: string; atMs: number }[] = [];
  readonly logs: { node: string; msg: string }[] = [];
  readonly violations: string[] = [];
  /** Resources whose stop fails on a node (`node:rsc`). */
  readonly failStop = new Set<string>();
  /** Resources whose stop never returns on a node (`node:rsc`): a hung agent. */
  readonly hangStop = new Set<string>();
  /** Each node's boot epoch: `boot` makes a new one, as a restarted daemon's heartbeats carry. */
  readonly epochs = new Map<string, number>();
  /**
   * Nodes whose last heartbeats are still in flight when a fence of them returns: the fencing
   * node's membership hears them once more right after the fence result (old boot epoch).
   */
  readonly beatsInFlightAtFence = new Set<string>();
  /** Operations sent to a node that could not receive them (down or cut off), with the sender. */
  readonly undelivered: { by: string; node: string; rsc: string; action: string; atMs: number }[] = [];
  /** What each node's membership last reported (by `detect`). */
  private readonly lastMembers = new Map<string, string[]>();
  /**
   * The replicated status: every `status-changes` effect of a node that believed it was DC, as
   * if committed at once. A new DC is handed it (a `cib` event) before it takes over.
   */
  private status: NodeState[] = [];
  private readonly dcBelief = new Map<string, string | null>();
  private readonly queue: { node: string; ev: ControllerEvent }[] = [];
  private readonly cib: Cib;
  private readonly cfg: Partial<ControllerConfig>;

  constructor(cib: Cib, nodes: readonly string[], cfg: Partial<ControllerConfig> = {}) {
    this.nodes = nodes;
    this.cib = cib;
    this.cfg = cfg;
    for (const n of nodes) {
      this.running.set(n, new Map());
      this.boot(n);
    }
  }

  /** A fresh daemon on `node` (its controller knows nothing yet). */
  boot(node: string): void {
    this.down.delete(node);
    this.epochs.set(node, (this.epochs.get(node) ?? 0) + 1);
    this.dcBelief.set(node, null);
    this.ctls.set(
      node,
      new Controller(
        {
          self: node,
          fencing: 'stonith',
          leaseMs: 2_000,
          detectionSlackMs: 500,
          recheckIntervalMs: 900_000,
          ...this.cfg,
        },
        (c, now) => schedule(c, now, { textOutput: false }),
        this.cib,
      ),
    );
  }

  reachable(a: string, b: string): boolean {
    if (this.down.has(a) || this.down.has(b)) return false;
    return a === b || (!this.isolated.has(a) && !this.isolated.has(b));
  }

  private live(): string[] {
    return this.nodes.filter((n) => !this.down.has(n));
  }

  private reachesMajority(node: string): boolean {
    return this.nodes.filter((n) => this.reachable(node, n)).length * 2 > this.nodes.length;
  }

  /**
   * Every live node learns the membership it can see now (with each member's boot epoch), and
   * whether that is quorate. With `quorum: false` only the membership: a daemon that fed the
   * members it hears again before it recomputed quorum.
   */
  detect(opts: { readonly quorum?: boolean } = {}): void {
    for (const n of this.live()) {
      const members = this.nodes.filter((m) => this.reachable(n, m));
      this.lastMembers.set(n, members);
      this.deliver(n, { type: 'membership', members, epochs: this.epochsOf(members) });
      if (opts.quorum !== false)
        this.deliver(n, { type: 'quorum', quorate: this.reachesMajority(n), fenceNeeded: [] });
    }
    this.settle();
  }

  /**
   * `node`'s membership hears `members` with their current boot epochs, reachable or not: late
   * packets (heartbeats sent before a node was fenced, read after).
   */
  hear(node: string, members: readonly string[]): void {
    this.deliver(node, { type: 'membership', members, epochs: this.epochsOf(members) });
    this.settle();
  }

  private epochsOf(members: readonly string[]): Record<string, number> {
    return Object.fromEntries(members.map((m) => [m, this.epochs.get(m) ?? 0]));
  }

  /** `dc` wins an election: it and every node it reaches believe it leads. */
  elect(dc: string): void {
    assert.ok(this.reachesMajority(dc), `${dc} cannot win an election without a majority`);
    for (const n of this.live()) {
      if (!this.reachable(dc, n)) continue;
      const was = this.dcBelief.get(n);
      this.dcBelief.set(n, dc);
      if (n === dc) {
        this.deliver(n, { type: 'cib', cib: { ...this.cib, status: this.status, hasStatus: true } });
        this.deliver(n, { type: 'lease', untilMs: this.nowMs + SIM_LEASE_MS });
        this.deliver(n, { type: 'dc', isDc: true });
      } else if (was === n) this.deliver(n, { type: 'dc', isDc: false });
    }
    this.settle();
  }

  dcOf(node: string): string | null {
    return this.dcBelief.get(node) ?? null;
  }

  /** Time passes: leases renew for DCs that reach a majority, then every live node ticks. */
  advance(ms: number, stepMs = 100): void {
    for (let t = 0; t < ms; t += stepMs) {
      this.nowMs += Math.min(stepMs, ms - t);
      for (const n of this.live()) {
        if (this.dcBelief.get(n) === n && this.reachesMajority(n))
          this.deliver(n, { type: 'lease', untilMs: this.nowMs + SIM_LEASE_MS });
        this.deliver(n, { type: 'tick' });
      }
      this.settle();
    }
  }

  /** `node` sets a node attribute through the DC it believes in (attrd's path). */
  setAttribute(node: string, name: string, value: string | undefined): boolean {
    const dc = this.dcBelief.get(node);
    if (!dc || !this.reachable(node, dc)) return false;
    this.deliver(dc, { type: 'node-attribute', node, name, value });
    this.settle();
    return true;
  }

  /** The daemon on `node` ends; with `processes`, what it ran dies too (a crash or power loss). */
  stopDaemon(node: string, processes: boolean): void {
    this.down.add(node);
    if (processes) this.running.get(node)!.clear();
  }

  /** A recurring monitor on `node` finds `rsc` gone (its process died). */
  monitorFails(node: string, rsc: string, intervalMs: number): void {
    this.running.get(node)!.delete(rsc);
    const ev: ControllerEvent = {
      type: 'op-result',
      node,
      rsc,
      action: 'monitor',
      intervalMs,
      outcome: { rc: 7, opStatus: 0, execTimeMs: 3 },
    };
    this.deliver(node, ev);
    const dc = this.dcBelief.get(node);
    if (dc && dc !== node && this.reachable(node, dc)) this.deliver(dc, ev);
    this.settle();
  }

  where(rsc: string): string[] {
    return this.nodes.filter((n) => this.running.get(n)!.has(rsc));
  }

  /** A transition action (not a local-safety stop) `node` issued at or after `fromMs`. */
  dcActionsBy(node: string, fromMs = Number.NEGATIVE_INFINITY): string[] {
    return [
      ...this.execs
        .filter((e) => e.by === node && !e.token.startsWith('local:') && e.atMs >= fromMs)
        .map((e) => `${e.rsc} ${e.action} on ${e.node}`),
      ...this.fences.filter((f) => f.by === node && f.atMs >= fromMs).map((f) => `fence ${f.target}`),
    ];
  }

  private deliver(node: string, ev: ControllerEvent): void {
    this.queue.push({ node, ev });
  }

  settle(): void {
    for (let i = 0; this.queue.length > 0; i++) {
      if (i > MAX_STEPS) throw new Error('cluster did not settle');
      const { node, ev } = this.queue.shift()!;
      if (this.down.has(node)) continue;
      for (const e of this.ctls.get(node)!.handle(ev, this.nowMs)) this.apply(node, e);
    }
  }

  private apply(from: string, e: ControllerEffect): void {
    switch (e.type) {
      case 'exec':
        if (this.reachable(from, e.node)) this.run(from, e.token, e.node, e.op);
        else
          this.undelivered.push({
            by: from,
            node: e.node,
            rsc: e.op.rsc,
            action: e.op.action,
            atMs: this.nowMs,
          });
        return;
      case 'fence': {
        if (e.action === 'on') {
          // Unfencing leaves the node up.
          this.deliver(from, {
            type: 'fence-result',
            token: e.token,
            target: e.target,
            ok: true,
            reason: 'on',
          });
          return;
        }
        this.fences.push({ by: from, target: e.target, atMs: this.nowMs });
        this.running.get(e.target)?.clear();
        this.down.add(e.target);
        this.deliver(from, {
          type: 'fence-result',
          token: e.token,
          target: e.target,
          ok: true,
          reason: 'lab-fence: off',
        });
        if (this.beatsInFlightAtFence.has(e.target)) {
          // Its last heartbeats (sent before the fence killed it) are read right after.
          const members = [...new Set([...(this.lastMembers.get(from) ?? [from]), e.target])];
          this.deliver(from, { type: 'membership', members, epochs: this.epochsOf(members) });
        }
        return;
      }
      case 'self-fence':
        this.selfFences.push({ node: from, reason: e.reason, atMs: this.nowMs });
        this.running.get(from)!.clear();
        this.down.add(from);
        return;
      case 'log':
        this.logs.push({ node: from, msg: e.msg });
        return;
      case 'status-changes':
        // A deposed DC cannot commit: only one that reaches a majority changes the status.
        if (this.reachesMajority(from)) this.status = applyStatusChanges(this.status, e.changes);
        return;
      default:
        return;
    }
  }

  private run(by: string, token: string, node: string, op: ExecOp): void {
    this.execs.push({
      node,
      rsc: op.rsc,
      action: op.action,
      intervalMs: op.intervalMs,
      atMs: this.nowMs,
      by,
      token,
    });
    const m = this.running.get(node)!;
    let rc = 0;
    if (op.action === 'start' || op.action === 'promote') {
      const elsewhere = this.nodes.filter((n) => n !== node && this.running.get(n)!.has(op.rsc));
      if (elsewhere.length > 0 && !op.rsc.includes(':'))
        this.violations.push(
          `${op.rsc} ${op.action} on ${node} at +${this.nowMs - T0} ms while active on ${elsewhere.join(', ')}`,
        );
    }
    switch (op.action) {
      case 'start':
        m.set(op.rsc, 'Started');
        break;
      case 'stop':
        if (this.hangStop.has(`${node}:${op.rsc}`)) return;
        if (this.failStop.has(`${node}:${op.rsc}`)) rc = 1;
        else m.delete(op.rsc);
        break;
      case 'promote':
        m.set(op.rsc, 'Promoted');
        break;
      case 'demote':
        m.set(op.rsc, 'Started');
        break;
      case 'monitor':
        rc = m.get(op.rsc) === 'Promoted' ? 8 : m.has(op.rsc) ? 0 : 7;
        break;
    }
    const result: ControllerEvent = {
      type: 'op-result',
      node,
      token,
      rsc: op.rsc,
      action: op.action,
      intervalMs: op.intervalMs,
      outcome: { rc, opStatus: 0, execTimeMs: 5 },
    };
    // As the host does: the node's own controller always hears it, and the node that asked for
    // it too (whoever this node believes is DC: a node just restarted may not know yet).
    this.deliver(node, result);
    if (by !== node && this.reachable(node, by)) this.deliver(by, result);
  }
}
