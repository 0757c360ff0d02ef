import { join } from 'node:path';
import type { Cib } from '../cib/model.ts';
import { Executor } from '../executor/executor.ts';
import { Fencer } from '../executor/fence.ts';
import { ShellAgentRunner } from '../executor/runner.ts';
import { assertNever } from '../lib/assert.ts';
import type { Logger } from '../lib/ports.ts';
import { schedule } from '../scheduler/schedule.ts';
import { ControllerHost, type ControllerWire } from './host.ts';
import type { ExecOp, OpOutcome, StatusChange } from './types.ts';

/**
 * Everything a daemon needs to host the controller, in one call: `attachController(hooks, cib)`
 * builds this node's executor (real agents), the fencer (the CIB's fence devices), the
 * controller host, and the `controller` stream purpose between nodes. The daemon then feeds it
 * membership, quorum, the DC and committed CIBs (see README.md in this folder).
 */

/** A controller message larger than this is not one of ours. */
export const MAX_WIRE_BYTES = 1 << 20;
export const CONTROLLER_STREAM_PURPOSE = 'controller';

/** What the daemon offers (all of it exists on `Daemon` / `ConsensusPart` today, named as there). */
export interface DaemonHooks {
  readonly self: string;
  /** Per-node state directory; agents' HA_RSCTMP goes under it. */
  readonly stateDir: string;
  readonly logger: Logger;
  readonly wallMs: () => number;
  idOf(name: string): number | undefined;
  nameOf(id: number): string;
  sendOnStream(peer: number, purpose: string, payload: Uint8Array): void;
  onStreamPurpose(
    purpose: string,
    handler: (ch: { readonly peer: number; on(ev: 'message', cb: (m: Buffer) => void): unknown }) => void,
  ): void;
  /** Proposes a replicated CIB command (JSON); resolves once applied or with why not. */
  propose(data: string): Promise<{ readonly ok: boolean; readonly message?: string }>;
  /** Feeds the two-node rule: quorum's `fenced` set. */
  markFenced(nodeId: number): void;
  /** This node must stop now (watchdog reboot on a real machine; the lab kills the daemon). */
  selfFence(reason: string): void;
}

/** Lease and slack from the membership timing: a node stops within two deadtimes of losing quorum. */
export function controllerTiming(t: { readonly deadtimeMs: number; readonly deadtimeMaxMs: number }): {
  leaseMs: number;
  detectionSlackMs: number;
} {
  return { leaseMs: 2 * t.deadtimeMs, detectionSlackMs: t.deadtimeMaxMs };
}

export function encodeWire(m: ControllerWire): Buffer {
  return Buffer.from(JSON.stringify(m), 'utf8');
}

const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isRecordOfStrings = (v: unknown): v is Record<string, string> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every(isStr);

/** Decodes a controller message, or says why it is not one. Never throws. */
export function decodeWire(bytes: Uint8Array): ControllerWire | string {
  if (bytes.length > MAX_WIRE_BYTES) return `message of ${bytes.length} bytes exceeds ${MAX_WIRE_BYTES}`;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return 'not JSON';
  }
  if (typeof v !== 'object' || v === null) return 'not an object';
  const m = v as Record<string, unknown>;
  if (m.kind === 'exec') {
    const op = m.op as Partial<ExecOp> | undefined;
    if (!isStr(m.token) || !op || !isStr(op.rsc) || !isStr(op.agent) || !isStr(op.action))
      return 'exec: missing token, rsc, agent or action';
    if (!isNum(op.intervalMs) || !isNum(op.timeoutMs) || !isNum(op.startDelayMs) || !isNum(op.expectedRc))
      return 'exec: bad numbers';
    if (!isRecordOfStrings(op.params) || !isRecordOfStrings(op.meta))
      return 'exec: params and meta must map strings to strings';
    return { kind: 'exec', token: m.token, op: op as ExecOp };
  }
  if (m.kind === 'result') {
    const o = m.outcome as Partial<OpOutcome> | undefined;
    if (!isStr(m.node) || !isStr(m.rsc) || !isStr(m.action) || !isNum(m.intervalMs))
      return 'result: missing node, rsc, action or interval';
    if (m.token !== undefined && !isStr(m.token)) return 'result: bad token';
    if (!o || !isNum(o.rc) || !isNum(o.opStatus) || !isNum(o.execTimeMs)) return 'result: bad outcome';
    if (o.attributes !== undefined && !isRecordOfStrings(o.attributes)) return 'result: bad attributes';
    return m as ControllerWire;
  }
  return `unknown kind ${JSON.stringify(m.kind)?.slice(0, 32)}`;
}

/**
 * Status changes as replicated CIB commands. `op` and `attr` are the state machine's existing
 * `record-op-result` and transient `set-node-attribute`; `node` and `op-removed` need two new
 * commands there (`replace-node-state`, `delete-op-result`), applied as `applyStatusChanges` does.
 */
export function statusCommands(changes: readonly StatusChange[]): string[] {
  return changes.map((c): string => {
    switch (c.kind) {
      case 'op':
        return JSON.stringify({ op: 'record-op-result', node: c.node, resource: c.resource, result: c.op });
      case 'attr':
        return JSON.stringify({
          op: 'set-node-attribute',
          node: c.node,
          name: c.name,
          value: c.value,
          lifetime: 'reboot',
        });
      case 'node':
        return JSON.stringify({ op: 'replace-node-state', node: c.node, state: c.state });
      case 'op-removed':
        return JSON.stringify({ op: 'delete-op-result', node: c.node, resource: c.rsc, id: c.opId });
      default:
        return assertNever(c, 'status change');
    }
  });
}

export interface AttachedController {
  readonly host: ControllerHost;
  readonly executor: Executor;
  /** Malformed controller messages dropped so far. */
  dropped(): number;
  close(): void;
}

export function attachController(
  h: DaemonHooks,
  cib: Cib,
  timing: { readonly deadtimeMs: number; readonly deadtimeMaxMs: number },
): AttachedController {
  const log = h.logger.child({ component: 'controller' });
  const runner = new ShellAgentRunner({ stateDir: join(h.stateDir, 'rsctmp') });
  let host: ControllerHost | undefined;
  let dropped = 0;
  const executor = new Executor({ runner, logger: h.logger, onResult: (r) => host?.localResult(r) });
  // Status changes are proposed in order, one at a time, so the replicated status never reorders.
  let proposing = Promise.resolve();
  host = new ControllerHost(
    {
      config: {
        self: h.self,
        fencing: 'stonith',
        ...controllerTiming(timing),
        recheckIntervalMs: 15 * 60_000,
      },
      schedule: (c, now) => schedule(c, now, { textOutput: false }),
      executor,
      fence: async (target, action, devices, c) => {
        const r = await new Fencer({ runner, devices, levels: c.configuration.fencingTopology }).fence(
          target,
          action,
        );
        return { ok: r.ok, reason: r.reason };
      },
      sendToNode: (node, msg) => {
        const id = h.idOf(node);
        if (id !== undefined) h.sendOnStream(id, CONTROLLER_STREAM_PURPOSE, encodeWire(msg));
      },
      publishStatus: (changes) => {
        for (const cmd of statusCommands(changes)) {
          proposing = proposing.then(async () => {
            const r = await h.propose(cmd).catch((e: Error) => ({ ok: false, message: e.message }));
            if (!r.ok) log.log('warn', `status change not replicated: ${r.message ?? 'refused'}`);
          });
        }
      },
      nodeFenced: (node) => {
        const id = h.idOf(node);
        if (id !== undefined) h.markFenced(id);
      },
      selfFence: (reason) => h.selfFence(reason),
      logger: h.logger,
      wallMs: h.wallMs,
    },
    cib,
  );
  const attached = host;
  h.onStreamPurpose(CONTROLLER_STREAM_PURPOSE, (ch) =>
    ch.on('message', (bytes) => {
      const m = decodeWire(bytes);
      if (typeof m === 'string') {
        dropped++;
        log.log('warn', `dropped a controller message from ${h.nameOf(ch.peer)}: ${m}`);
        return;
      }
      attached.receive(h.nameOf(ch.peer), m);
    }),
  );
  attached.start();
  return {
    host: attached,
    executor,
    dropped: () => dropped,
    close() {
      attached.stop();
      executor.close();
    },
  };
}
