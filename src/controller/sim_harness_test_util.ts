import { parseCrm } from '../cib/crm.ts';
import type { Cib } from '../cib/model.ts';
import { schedule } from '../scheduler/schedule.ts';
import { Controller } from './controller.ts';
import type { ControllerConfig, ControllerEffect, ControllerEvent } from './types.ts';

/**
 * Test-only harness: one controller (the DC under test) with the REAL scheduler, a simulated
 * clock, and a fake executor/fencer that plays every node's agents in memory. Effects become
 * result events, which are fed back until the cluster is quiet (bounded).
 */
export const T0 = 1_700_000_000_000;
const MAX_STEPS = 200_000;

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
  readonly fences: { target: string; ok: boolean; atMs: number }[] = [];
  readonly effects: ControllerEffect[] = [];
  /** Whether the fence device succeeds. */
  fenceOk = true;
  /** Resources whose start fails on a node (`node:rsc`). */
  readonly failStart = new Set<string>();
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
    for (const n of nodes) {
      this.alive.add(n);
      this.running.set(n, new Map());
    }
  }

  /** Feeds an event and every result it causes until nothing more happens. */
  send(ev: ControllerEvent): void {
    this.queue.push(ev);
    this.settle();
  }

  settle(): void {
    for (let i = 0; this.queue.length > 0; i++) {
      if (i > MAX_STEPS) throw new Error('cluster did not settle');
      const ev = this.queue.shift()!;
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
          m.delete(op.rsc);
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
    } else if (e.type === 'fence') {
      this.fences.push({ target: e.target, ok: this.fenceOk, atMs: this.nowMs });
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
