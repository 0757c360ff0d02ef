import { join } from 'node:path';
import type { Cib, ClusterNode, NodeState, OpHistory } from '../cib/model.ts';
import { clusterProperty, nodeName } from '../cib/resources.ts';
import { validateCibCommand } from '../consensus/cib_state_machine.ts';
import { Executor } from '../executor/executor.ts';
import { type FenceDevice, Fencer } from '../executor/fence.ts';
import { ShellAgentRunner } from '../executor/runner.ts';
import { assertNever } from '../lib/assert.ts';
import type { Logger } from '../lib/ports.ts';
import { schedule } from '../scheduler/schedule.ts';
import { ControllerHost, type ControllerWire, type FenceRequestDelay, fenceDevicesFromCib } from './host.ts';
import { applyStatusChanges } from './status.ts';
import type { ExecOp, NodeEntry, OpOutcome, StatusChange } from './types.ts';

/**
 * Everything a daemon needs to host the controller, in one call: `attachController(hooks, cib)`
 * builds this node's executor (real agents), the fencer (the CIB's fence devices), the
 * controller host, and the `controller` stream purpose between nodes. The daemon then feeds it
 * membership, quorum, the DC and committed CIBs (see README.md in this folder).
 */

/** A controller message larger than this is not one of ours. */
export const MAX_WIRE_BYTES = 1 << 20;
export const CONTROLLER_STREAM_PURPOSE = 'controller';
/** Longest node attribute name a peer may set through the controller stream. */
export const MAX_ATTRIBUTE_NAME_CHARS = 128;
/**
 * The transient attribute a DC commits on a node before fencing it. Committing needs a majority,
 * so a DC cut off from the cluster (which may still believe it leads for a moment, and whose
 * fence device may still work) cannot fence the nodes of the side that carries on.
 */
export const FENCE_INTENT_ATTRIBUTE = 'halo-fence-request';

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
  /** Whether this node is the Raft leader and its leader lease holds now (the DC acts only then). */
  leaseValid(): boolean;
  /**
   * The replicated CIB as applied here. Needed only while the state machine lacks
   * `replace-node-state` / `delete-op-result` (see `statusCommandsCompat`).
   */
  replicatedCib?(): Cib;
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
  if (m.kind === 'attribute') {
    if (!isStr(m.node) || !isStr(m.name) || !(m.value === null || isStr(m.value)))
      return 'attribute: missing node, name or value';
    if (m.name.length === 0 || m.name.length > MAX_ATTRIBUTE_NAME_CHARS)
      return `attribute: name must be 1..${MAX_ATTRIBUTE_NAME_CHARS} characters`;
    return { kind: 'attribute', node: m.node, name: m.name, value: m.value };
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

/**
 * Whether the replicated state machine knows `replace-node-state` and `delete-op-result` (asked
 * of its own validator, so this turns true by itself once src/consensus adds them).
 */
export function nodeStateCommandsSupported(): boolean {
  const state: NodeState = {
    id: 'probe',
    uname: 'probe',
    transientAttributes: [],
    resources: [],
    hasLrm: true,
  };
  return (
    validateCibCommand({ op: 'replace-node-state', node: 'probe', state }) === null &&
    validateCibCommand({ op: 'delete-op-result', node: 'probe', resource: 'r', id: 'r_last_0' }) === null
  );
}

/**
 * A removed `lrm_rsc_op` as the existing commands can say it: the same id, recorded as
 * cancelled (op-status 1). The scheduler skips cancelled records (as Pacemaker does), so for
 * placement it is as good as deleted; it only stays visible in the raw status section.
 */
export function cancelledRecord(op: Pick<OpHistory, 'id' | 'interval'>): OpHistory {
  return { id: op.id, operation: 'monitor', interval: op.interval, callId: '0', rcCode: '0', opStatus: '1' };
}

const attrPairs = (s: NodeState | undefined): Map<string, string> =>
  new Map(
    (s?.transientAttributes ?? []).flatMap((set) =>
      set.pairs.filter((p) => p.value !== undefined).map((p) => [p.name, p.value!] as const),
    ),
  );

/**
 * Status changes as the state machine's existing commands (`record-op-result`,
 * `set-node-attribute`), for when it lacks the two node-state commands. `replicated` is the
 * status section those commands apply to. A `node` change becomes its records and attributes,
 * with every record it drops written as cancelled and every attribute it drops deleted; an
 * `op-removed` becomes a cancelled record. What it cannot say: the node's membership fields
 * (`in_ccm`, `expected`), which only matter to a new DC's first guess before membership
 * corrects it (a node with history and no `in_ccm` is taken as lost, i.e. fenced again).
 */
export function statusCommandsCompat(
  changes: readonly StatusChange[],
  replicated: readonly NodeState[],
): string[] {
  const out: string[] = [];
  let cur: NodeState[] = [...replicated];
  const find = (node: string): NodeState | undefined => cur.find((s) => s.uname === node || s.id === node);
  const rec = (node: string, resource: object, op: OpHistory): void => {
    out.push(JSON.stringify({ op: 'record-op-result', node, resource, result: op }));
  };
  const attr = (node: string, name: string, value: string | null): void => {
    out.push(JSON.stringify({ op: 'set-node-attribute', node, name, value, lifetime: 'reboot' }));
  };
  for (const c of changes) {
    if (c.kind === 'node') {
      const old = find(c.node);
      const keep = new Set(c.state.resources.flatMap((r) => r.ops.map((o) => `${r.id}\u0000${o.id}`)));
      for (const r of old?.resources ?? []) {
        for (const o of r.ops) {
          if (!keep.has(`${r.id}\u0000${o.id}`) && o.opStatus !== '1')
            rec(c.node, { id: r.id }, cancelledRecord(o));
        }
      }
      for (const r of c.state.resources) {
        const { ops, attrs: _attrs, container: _c, ...resource } = r;
        for (const o of ops) rec(c.node, resource, o);
      }
      const before = attrPairs(old);
      const after = attrPairs(c.state);
      for (const k of before.keys()) if (!after.has(k)) attr(c.node, k, null);
      for (const [k, v] of after) if (before.get(k) !== v) attr(c.node, k, v);
    } else if (c.kind === 'op') {
      rec(c.node, c.resource, c.op);
    } else if (c.kind === 'attr') {
      attr(c.node, c.name, c.value);
    } else {
      const old = find(c.node)
        ?.resources.find((r) => r.id === c.rsc)
        ?.ops.find((o) => o.id === c.opId);
      if (old && old.opStatus !== '1') rec(c.node, { id: c.rsc }, cancelledRecord(old));
    }
    cur = applyStatusChanges(cur, [c]);
  }
  return out;
}

/**
 * The command that adds `nodes` to `cib`'s configuration (the `add-nodes` effect), or undefined
 * when it has them all. Entries whose uname or id the configuration has by now are skipped and
 * none is removed. It replaces the configuration read from `cib` only if that is still the
 * committed one (`expectedVersion`, compare-and-set): an administrator's edit committed in
 * between is not overwritten, this command is refused instead, and the DC, seeing the new
 * configuration, asks again. (A dedicated "add node" command would need no retry; see README.md.)
 */
export function addNodesCommand(cib: Cib, nodes: readonly NodeEntry[]): string | undefined {
  const configured = cib.configuration.nodes;
  const names = new Set(configured.map(nodeName));
  const ids = new Set(configured.map((n) => n.id));
  const add: ClusterNode[] = [];
  for (const n of nodes) {
    if (names.has(n.uname) || ids.has(n.id)) continue;
    names.add(n.uname);
    ids.add(n.id);
    add.push({ id: n.id, uname: n.uname, instanceAttributes: [], utilization: [] });
  }
  if (add.length === 0) return undefined;
  return JSON.stringify({
    op: 'replace-configuration',
    configuration: { ...cib.configuration, nodes: [...configured, ...add] },
    expectedVersion: configurationVersion(cib),
  });
}

/**
 * The command that deletes the `<node>` entries named in `unames` from `cib`'s configuration (the
 * `remove-nodes` effect: nodes removed from the cluster), or undefined when it has none of them.
 * Compare-and-set like `addNodesCommand`: a conflicting edit wins and the DC asks again.
 */
export function removeNodesCommand(cib: Cib, unames: readonly string[]): string | undefined {
  const configured = cib.configuration.nodes;
  const drop = new Set(unames);
  const nodes = configured.filter((n) => !drop.has(n.uname));
  if (nodes.length === configured.length) return undefined;
  return JSON.stringify({
    op: 'replace-configuration',
    configuration: { ...cib.configuration, nodes },
    expectedVersion: configurationVersion(cib),
  });
}

/** `cib`'s (admin_epoch, epoch): what a compare-and-set configuration change expects. */
function configurationVersion(cib: Cib): { adminEpoch: number; epoch: number } {
  const counter = (name: string): number => {
    const v = Number(cib.attrs.find(([k]) => k === name)?.[1] ?? '0');
    return Number.isSafeInteger(v) && v >= 0 ? v : 0;
  };
  return { adminEpoch: counter('admin_epoch'), epoch: counter('epoch') };
}

export interface AttachedController {
  readonly host: ControllerHost;
  readonly executor: Executor;
  /**
   * Fences `target` with the CIB's devices now, without the cluster's consent: only for the
   * two-node rule, where the survivor cannot commit anything until the peer is off (the
   * daemon checks `checkForceSolo` first, so a node that may not take over never fences).
   * `signal` ends it while it still waits out a delay (the peer came back meanwhile); an agent
   * already running is left to finish.
   */
  fenceForTakeover(target: string, signal?: AbortSignal): Promise<{ ok: boolean; reason: string }>;
  /** Malformed controller messages dropped so far. */
  dropped(): number;
  /** Status changes handed to Raft that have not been decided yet (committed or refused). */
  pendingProposals(): number;
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
  let inFlight = 0;
  const native = nodeStateCommandsSupported();
  if (!native)
    log.log(
      'info',
      'the replicated CIB lacks replace-node-state/delete-op-result: status changes go as records and attributes (removed records are written as cancelled)',
    );
  /**
   * Proposes a change of node entries in line with the status changes, computed from the
   * replicated CIB when its turn comes (so an entry committed meanwhile is not asked for twice);
   * `undefined` from `build` means nothing is left to do. A refusal is logged: the DC asks again.
   */
  const proposeNodeEntries = (build: (current: Cib) => string | undefined, what: string): void => {
    inFlight++;
    proposing = proposing.then(async () => {
      const cmd = build(h.replicatedCib?.() ?? host?.controller.view().cib ?? cib);
      const r: { readonly ok: boolean; readonly message?: string } =
        cmd === undefined
          ? { ok: true }
          : await h.propose(cmd).catch((e: Error) => ({ ok: false, message: e.message }));
      inFlight--;
      if (!r.ok) log.log('warn', `${what} (the DC asks again): ${r.message ?? 'refused'}`);
    });
  };
  // What the proposals so far will make of the replicated status (compat mode only).
  let shadow: NodeState[] = [...(h.replicatedCib?.().status ?? cib.status)];
  // Ends fencings still waiting out a pcmk_delay when the controller closes: a stopped daemon
  // must not fence afterwards.
  const closing = new AbortController();
  const runFence = async (
    target: string,
    action: 'reboot' | 'off' | 'on',
    devices: readonly FenceDevice[],
    c: Cib,
    delay?: FenceRequestDelay,
    signal?: AbortSignal,
  ): Promise<{ ok: boolean; reason: string }> => {
    const r = await new Fencer({
      runner,
      devices,
      levels: c.configuration.fencingTopology,
      logger: h.logger,
    }).fence(target, action, {
      signal: signal ? AbortSignal.any([closing.signal, signal]) : closing.signal,
      ...(delay ? { requestedDelay: delay } : {}),
    });
    return { ok: r.ok, reason: r.reason };
  };
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
      fence: async (target, action, devices, c, delay) => {
        const decided = await h
          .propose(
            JSON.stringify({
              op: 'set-node-attribute',
              node: target,
              name: FENCE_INTENT_ATTRIBUTE,
              value: `${action} by ${h.self} at ${h.wallMs()}`,
              lifetime: 'reboot',
            }),
          )
          .catch((e: Error) => ({ ok: false, message: e.message }));
        if (!decided.ok)
          return {
            ok: false,
            reason: `the cluster did not confirm the decision to fence ${target} (${decided.message ?? 'refused'}): this node may be the one cut off`,
          };
        return runFence(target, action, devices, c, delay);
      },
      sendToNode: (node, msg) => {
        const id = h.idOf(node);
        if (id !== undefined) h.sendOnStream(id, CONTROLLER_STREAM_PURPOSE, encodeWire(msg));
      },
      publishStatus: (changes) => {
        let cmds: string[];
        if (native) cmds = statusCommands(changes);
        else {
          // With nothing in flight the replicated CIB is the truth (another DC may have written it).
          if (inFlight === 0 && h.replicatedCib) shadow = [...h.replicatedCib().status];
          cmds = statusCommandsCompat(changes, shadow);
          shadow = applyStatusChanges(shadow, changes);
        }
        for (const cmd of cmds) {
          inFlight++;
          proposing = proposing.then(async () => {
            const r = await h.propose(cmd).catch((e: Error) => ({ ok: false, message: e.message }));
            inFlight--;
            if (!r.ok) log.log('warn', `status change not replicated: ${r.message ?? 'refused'}`);
          });
        }
      },
      addNodes: (nodes) =>
        proposeNodeEntries(
          (current) => addNodesCommand(current, nodes),
          `node entries for ${nodes.map((n) => n.uname).join(', ')} not added`,
        ),
      // The removed node's cleared node_state goes first (it is queued before).
      removeNodes: (unames) =>
        proposeNodeEntries(
          (current) => removeNodesCommand(current, unames),
          `node entries of ${unames.join(', ')} not deleted`,
        ),
      nodeFenced: (node) => {
        const id = h.idOf(node);
        if (id !== undefined) h.markFenced(id);
      },
      selfFence: (reason) => h.selfFence(reason),
      leaseValid: () => h.leaseValid(),
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
    pendingProposals: () => inFlight,
    fenceForTakeover(target, signal) {
      const c = h.replicatedCib?.() ?? cib;
      const action = clusterProperty(c, 'stonith-action') === 'off' ? 'off' : 'reboot';
      // This fence skips the core's fence effect (nothing can be committed before it), so the
      // waits the effect would carry (isolation, priority-fencing-delay) are asked for here: the
      // core decides, from the link-carrier fact the daemon fed it just before and the status.
      const wait = attached.controller.takeoverFenceDelay(target);
      if (wait)
        log.log(
          'warn',
          `fencing ${target} for the two-node takeover waits ${wait.delayMs} ms: ${wait.reason}`,
          { target, delayMs: wait.delayMs },
        );
      const delay = wait ? { ms: wait.delayMs, why: wait.reason } : undefined;
      return runFence(target, action, fenceDevicesFromCib(c), c, delay, signal).catch((e: Error) => ({
        ok: false,
        reason: e.message,
      }));
    },
    close() {
      closing.abort(new Error('the controller is closing'));
      attached.stop();
      executor.close();
    },
  };
}
