import { setTimeout as sleepTimer } from 'node:timers/promises';
import { durationMsOr, parseDuration } from '../cib/duration.ts';
import type { FencingLevel } from '../cib/model.ts';
import { assert } from '../lib/assert.ts';
import { HaloError } from '../lib/errors.ts';
import { type Clock, type Logger, nullLogger } from '../lib/ports.ts';
import { parseAgentSpec } from './agent_spec.ts';
import type { AgentMetadata } from './metadata.ts';
import { OCF_RC, type OpStatusName, rcName } from './rc.ts';
import type { AgentRunner } from './runner.ts';

/**
 * The fencer: powers a node off (or reboots it) through fence devices, the way Pacemaker's
 * fencer does. A device is a fence agent (`stonith:fence_ipmilan`, or a built-in fence agent
 * such as `halo:lab-fence`) plus parameters. Which devices may fence a node follows
 * `pcmk_host_check` (static-list / dynamic-list / status / none), the value passed as the
 * agent's port follows `pcmk_host_map`; each device action is retried `pcmk_<action>_retries`
 * times within its timeout. With a fencing topology the levels are tried in index order and a
 * level succeeds only when every one of its devices does. Before an `off` or `reboot` a device
 * waits `pcmk_delay_base` plus a random part up to `pcmk_delay_max` (see `parseFencingDelay`).
 */

/** Default time for one device action (Pacemaker's stonith-timeout default). */
export const FENCE_TIMEOUT_DEFAULT_MS = 60_000;
/** Default retries of a failed off/reboot on one device (pcmk_off_retries default). */
export const FENCE_RETRIES_DEFAULT = 2;
/** Most retries accepted from configuration. */
export const MAX_FENCE_RETRIES = 10;
/** Longest list output parsed from a `list` action, in lines. */
const MAX_LIST_LINES = 10_000;

export type FenceAction = 'off' | 'on' | 'reboot' | 'status' | 'monitor' | 'list';
export const FENCE_ACTIONS: readonly FenceAction[] = ['off', 'on', 'reboot', 'status', 'monitor', 'list'];

export interface FenceDevice {
  readonly id: string;
  /** `stonith:fence_x`, bare `fence_x`, or `halo:lab-fence`. */
  readonly agent: string;
  readonly params: Readonly<Record<string, string>>;
}

export interface FenceAttempt {
  readonly device: string;
  readonly action: string;
  readonly rc: number;
  readonly rcName: string;
  readonly status: string;
  readonly output: string;
  readonly execTimeMs: number;
  /** The pcmk_delay wait before this attempt (only on the first attempt of a delayed action). */
  readonly delayMs?: number;
}

export interface FenceReport {
  readonly target: string;
  readonly action: FenceAction;
  readonly ok: boolean;
  /** The topology level that succeeded (when levels are configured). */
  readonly level?: number;
  readonly attempts: readonly FenceAttempt[];
  readonly reason: string;
}

/** Parses `pcmk_host_map` (`node:port;node2:port2`, also `=` and `,`/space separated). */
export function parseHostMap(text: string | undefined): Map<string, string> {
  const map = new Map<string, string>();
  for (const item of (text ?? '').split(/[;,\s]+/)) {
    const m = /^([^:=]+)[:=](.+)$/.exec(item);
    if (m) map.set(m[1]!, m[2]!);
  }
  return map;
}

function hostList(text: string | undefined): string[] {
  return (text ?? '').split(/[;,\s]+/).filter(Boolean);
}

/**
 * Fencing delays, as Pacemaker's fencer applies them. Pacemaker Explained, "Special Options for
 * Fencing Resources" (http://list.clusterlabs.org/pacemaker/doc/en-US/Pacemaker/2.0/html/Pacemaker_Explained/_special_options_for_fencing_resources.html;
 * the same table is in later editions' fencing chapter): the total delay "is derived from this
 * value [pcmk_delay_base] plus a random delay such that the sum is kept below the maximum
 * delay" (pcmk_delay_max). So the total is uniform in [base, max], not base + [0, max]; the
 * fencer does `delay = base + rand() % (max - base + 1)` (daemons/fenced/fenced_commands.c,
 * schedule_stonith_command), takes a max of 0 as "no random part" (max = base) and cuts a base
 * above the max down to the max with a warning. The base may also be a map per target,
 * "node1:1s;node2:5" (pacemaker-fenced metadata, `man pacemaker-fenced`): entries split at `;`,
 * space or tab, node and delay at the first `:` only (not `=` as pcmk_host_map also allows),
 * node names compared case-insensitively, a target without an entry gets 0.
 *
 * Where halo differs on purpose: Pacemaker truncates both values to whole seconds (a 500ms max
 * is no delay at all there); halo keeps milliseconds. Pacemaker logs a malformed map entry and
 * skips it; halo refuses the device for off/reboot until it is fixed, since fencing without the
 * intended delay is the very race the delay exists to prevent.
 */
export interface FencingDelay {
  /** The fixed part: pcmk_delay_base, or its entry for the target. */
  readonly baseMs: number;
  /** The longest total delay (equal to baseMs when pcmk_delay_max is unset or 0). */
  readonly maxMs: number;
  /** pcmk_delay_base as configured when it exceeded pcmk_delay_max and was cut down. */
  readonly clampedFromMs?: number;
}

export type FencingDelayParse =
  | ({ readonly ok: true } & FencingDelay)
  | { readonly ok: false; readonly reason: string };

/**
 * The longest delay accepted. Pacemaker has no limit; a typo such as `5m` for `5s`, or an ISO
 * `P5M` (five months), would hold every fencing of the target for that long, so past an hour
 * the value is refused as a mistake.
 */
export const MAX_FENCE_DELAY_MS = 3_600_000;

/** Actions that take a node down: the only ones delayed (Pacemaker's pcmk__is_fencing_action). */
const DELAYED_ACTIONS: ReadonlySet<FenceAction> = new Set<FenceAction>(['off', 'reboot']);

type DelayValue =
  | { readonly ok: true; readonly ms: number }
  | { readonly ok: false; readonly reason: string };

/** One delay in Pacemaker's duration syntax; `what` names it in messages, `param` in the fix. */
function delayValue(deviceId: string, param: string, what: string, text: string): DelayValue {
  const s = text.trim();
  const fix = `fix ${param} of fence device ${deviceId}`;
  if (s.startsWith('-'))
    return {
      ok: false,
      reason: `fence device ${deviceId}: ${what} '${text}' is negative (a delay is 0 or more, e.g. 5s); ${fix}`,
    };
  const d = parseDuration(s);
  if (!d.ok) return { ok: false, reason: `fence device ${deviceId}: ${what}: ${d.reason}; ${fix}` };
  if (d.ms > MAX_FENCE_DELAY_MS)
    return {
      ok: false,
      reason: `fence device ${deviceId}: ${what} '${text}' is ${d.ms} ms, more than the ${MAX_FENCE_DELAY_MS} ms halo accepts; ${fix}`,
    };
  return { ok: true, ms: d.ms };
}

/** pcmk_delay_base for `target`: a plain duration, or its entry in a `node:delay;…` map. */
function delayBase(deviceId: string, text: string, target: string | undefined): DelayValue {
  const s = text.trim();
  // Durations never contain ':' (parseDuration has no ISO hh:mm:ss form), so a ':' means a map.
  if (!s.includes(':')) return delayValue(deviceId, 'pcmk_delay_base', 'pcmk_delay_base', s);
  let ms: number | undefined;
  for (const entry of s.split(/[;\s]+/)) {
    if (entry === '') continue;
    const colon = entry.indexOf(':');
    const node = colon < 0 ? '' : entry.slice(0, colon);
    const value = colon < 0 ? '' : entry.slice(colon + 1);
    if (node === '' || value === '')
      return {
        ok: false,
        reason: `fence device ${deviceId}: pcmk_delay_base entry '${entry}' is not node:delay (write e.g. node1:5s;node2:0s, entries separated by ';'); fix pcmk_delay_base of fence device ${deviceId}`,
      };
    const d = delayValue(
      deviceId,
      'pcmk_delay_base',
      `pcmk_delay_base entry for ${node} (entries are separated by ';')`,
      value,
    );
    if (!d.ok) return d;
    // The first entry naming the target wins, as in Pacemaker.
    if (ms === undefined && target !== undefined && node.toLowerCase() === target.toLowerCase()) ms = d.ms;
  }
  return { ok: true, ms: ms ?? 0 };
}

/**
 * Reads a device's pcmk_delay_base and pcmk_delay_max for fencing `target` (undefined: checks
 * the values only, a map then yields 0). A bad value is an operating error returned with a
 * message naming the device and the parameter, for the fencer and for configuration checks.
 */
export function parseFencingDelay(device: FenceDevice, target: string | undefined): FencingDelayParse {
  const maxText = device.params.pcmk_delay_max;
  const max =
    maxText === undefined || maxText.trim() === ''
      ? { ok: true as const, ms: 0 }
      : delayValue(device.id, 'pcmk_delay_max', 'pcmk_delay_max', maxText);
  if (!max.ok) return max;
  const baseText = device.params.pcmk_delay_base;
  const base =
    baseText === undefined || baseText.trim() === ''
      ? { ok: true as const, ms: 0 }
      : delayBase(device.id, baseText, target);
  if (!base.ok) return base;
  const maxMs = max.ms === 0 ? base.ms : max.ms;
  if (base.ms > maxMs) return { ok: true, baseMs: maxMs, maxMs, clampedFromMs: base.ms };
  return { ok: true, baseMs: base.ms, maxMs };
}

/** The delay to wait: uniform whole milliseconds in [baseMs, maxMs], `random()` in [0, 1). */
export function fencingDelayMs(delay: FencingDelay, random: () => number): number {
  const r = random();
  assert(r >= 0 && r < 1, `random source returned ${r}, not a number in [0, 1)`);
  return delay.baseMs + Math.floor(r * (delay.maxMs - delay.baseMs + 1));
}

function notRun(
  device: FenceDevice,
  action: string,
  rc: number,
  status: OpStatusName,
  output: string,
): FenceAttempt {
  return { device: device.id, action, rc, rcName: rcName(rc), status, output, execTimeMs: 0 };
}

function abortReason(signal: AbortSignal): string {
  return signal.reason instanceof Error ? signal.reason.message : String(signal.reason ?? 'aborted');
}

/** The failed report of a fencing whose signal aborted; the cancelled attempt says where. */
function abortedReport(
  target: string,
  action: FenceAction,
  attempts: readonly FenceAttempt[],
  signal: AbortSignal,
): FenceReport {
  const last = attempts[attempts.length - 1];
  const why = last?.status === 'cancelled' ? last.output : abortReason(signal);
  return { target, action, ok: false, attempts, reason: `fencing ${target} (${action}) was aborted: ${why}` };
}

/** Waits `ms` unless `signal` aborts first (then rejects). */
function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return sleepTimer(ms, undefined, signal ? { signal } : {});
}

/** A delay the caller asks for before a fencing (the controller's priority-fencing-delay). */
export interface RequestedFenceDelay {
  readonly ms: number;
  /** Why, for the log line: "priority-fencing-delay: n1 runs the highest-priority resources". */
  readonly why: string;
}

export interface FencerOptions {
  readonly runner: AgentRunner;
  readonly devices: readonly FenceDevice[];
  readonly levels?: readonly FencingLevel[];
  readonly defaultTimeoutMs?: number;
  /** Where delays and refusals are logged (component `fencer`). */
  readonly logger?: Logger;
  /** Uniform in [0, 1): the random part of pcmk_delay_max (default Math.random; tests fix it). */
  readonly random?: () => number;
  /** Waits out a fencing delay, rejecting when the signal aborts (default: a timer; tests record). */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Measures an action's timeout (default performance.now; tests pair it with `sleep`). */
  readonly clock?: Pick<Clock, 'nowMs'>;
}

export class Fencer {
  private readonly runner: AgentRunner;
  private readonly devices: Map<string, FenceDevice>;
  private readonly levels: readonly FencingLevel[];
  private readonly defaultTimeoutMs: number;
  private readonly metaCache = new Map<string, AgentMetadata>();
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly clock: Pick<Clock, 'nowMs'>;

  constructor(opts: FencerOptions) {
    this.runner = opts.runner;
    this.log = (opts.logger ?? nullLogger).child({ component: 'fencer' });
    this.random = opts.random ?? Math.random;
    this.sleep = opts.sleep ?? abortableSleep;
    this.clock = opts.clock ?? { nowMs: () => performance.now() };
    this.devices = new Map(opts.devices.map((d) => [d.id, d]));
    this.levels = opts.levels ?? [];
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? FENCE_TIMEOUT_DEFAULT_MS;
    for (const d of opts.devices) {
      const spec = parseAgentSpec(d.agent);
      if (spec.cls !== 'stonith' && spec.cls !== 'halo') {
        throw new HaloError(
          'bad-fence-device',
          `fence device ${d.id}: agent ${d.agent} is not a fence agent (stonith:… or halo:lab-fence)`,
        );
      }
    }
    for (const l of this.levels) {
      for (const id of l.devices.split(',')) {
        if (!this.devices.has(id.trim())) {
          throw new HaloError(
            'bad-fence-device',
            `fencing level ${l.id}: device '${id.trim()}' is not defined`,
          );
        }
      }
    }
  }

  private async meta(device: FenceDevice): Promise<AgentMetadata | undefined> {
    if (!this.metaCache.has(device.agent)) {
      try {
        this.metaCache.set(device.agent, await this.runner.metadata(device.agent));
      } catch {
        return undefined;
      }
    }
    return this.metaCache.get(device.agent);
  }

  /** The parameter name the device expects the target in: pcmk_host_argument, else port/plug. */
  private async hostArgument(device: FenceDevice): Promise<string | undefined> {
    const explicit = device.params.pcmk_host_argument;
    if (explicit) return explicit === 'none' ? undefined : explicit;
    const meta = await this.meta(device);
    const names = new Set(meta?.parameters.map((p) => p.name) ?? ['port']);
    if (names.has('port')) return 'port';
    if (names.has('plug')) return 'plug';
    return undefined;
  }

  private timeoutFor(device: FenceDevice, action: string): number {
    return durationMsOr(
      device.params[`pcmk_${action}_timeout`] ?? device.params.pcmk_timeout,
      this.defaultTimeoutMs,
    );
  }

  /**
   * Runs one action on one device with retries; `target` is a node name (mapped to a port).
   * An `off` or `reboot` first waits the device's pcmk_delay (once, not before each retry). The
   * action's timeout starts after that wait, as in Pacemaker, where the delay is added to the
   * operation's timeout (fenced_remote.c, get_device_timeout) and the agent still gets its full
   * pcmk_<action>_timeout. Invalid delay settings end the call with one attempt that did not
   * run the agent; so does `signal` aborting during the delay, and aborting later stops before
   * the next retry (an agent already running is not killed).
   */
  async runDevice(
    deviceId: string,
    action: FenceAction,
    target?: string,
    opts: { readonly signal?: AbortSignal } = {},
  ): Promise<FenceAttempt[]> {
    const device = this.devices.get(deviceId);
    if (!device)
      throw new HaloError(
        'unknown-device',
        `no fence device '${deviceId}' (devices: ${[...this.devices.keys()].join(', ') || 'none'})`,
      );
    const agentAction = device.params[`pcmk_${action}_action`] || action;
    const params: Record<string, string> = { ...device.params };
    if (target !== undefined) {
      const port = parseHostMap(device.params.pcmk_host_map).get(target) ?? target;
      const arg = await this.hostArgument(device);
      if (arg) params[arg] = port;
      const meta = await this.meta(device);
      if (meta?.parameters.some((p) => p.name === 'nodename')) params.nodename = target;
    }
    const retriesText = device.params[`pcmk_${action}_retries`];
    const retries = Math.min(
      MAX_FENCE_RETRIES,
      Math.max(
        0,
        Number(retriesText ?? (action === 'off' || action === 'reboot' ? FENCE_RETRIES_DEFAULT : 0)) || 0,
      ),
    );
    const waited = await this.waitFencingDelay(device, action, agentAction, target, opts.signal);
    if ('failed' in waited) return [waited.failed];
    const timeoutMs = this.timeoutFor(device, action);
    const deadline = this.clock.nowMs() + timeoutMs;
    const attempts: FenceAttempt[] = [];
    for (let i = 0; i <= retries; i++) {
      if (opts.signal?.aborted) {
        attempts.push(
          this.aborted(
            device,
            action,
            agentAction,
            target,
            opts.signal,
            i === 0 ? 'before the agent ran' : 'before a retry',
          ),
        );
        break;
      }
      const left = Math.max(1, Math.round(deadline - this.clock.nowMs()));
      const r = await this.runner.run({
        agent: device.agent,
        resource: device.id,
        action: agentAction,
        intervalMs: 0,
        timeoutMs: left,
        // No signal: an agent already switching power is left to finish (or time out); an
        // abort only stops what has not started, a device still waiting out its delay included.
        params,
      });
      attempts.push({
        device: device.id,
        action: agentAction,
        rc: r.rc,
        rcName: rcName(r.rc),
        status: r.status,
        output: (r.stdout + r.stderr).trim().slice(-2000),
        execTimeMs: r.execTimeMs,
        ...(i === 0 && waited.delayMs > 0 ? { delayMs: waited.delayMs } : {}),
      });
      // status "off" (rc 7) is an answer, not a failure to retry.
      if (r.status === 'done' && (r.rc === 0 || (r.rc === 7 && action === 'status'))) break;
      if (r.status === 'notInstalled' || this.clock.nowMs() >= deadline) break;
    }
    return attempts;
  }

  /**
   * Waits the device's pcmk_delay before an off/reboot of `target` and logs it. Returns the
   * delay waited, or the attempt to report when the agent must not run: the delay settings are
   * invalid (running without the configured delay could let the cut-off side of a split win
   * the fencing race), or `signal` aborted the wait.
   */
  private async waitFencingDelay(
    device: FenceDevice,
    action: FenceAction,
    agentAction: string,
    target: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ readonly delayMs: number } | { readonly failed: FenceAttempt }> {
    if (!DELAYED_ACTIONS.has(action)) return { delayMs: 0 };
    const fields = { device: device.id, target, action };
    const delay = parseFencingDelay(device, target);
    if (!delay.ok) {
      this.log.log('error', `not running ${action} of ${target ?? '(no target)'}: ${delay.reason}`, fields);
      return { failed: notRun(device, agentAction, OCF_RC.OCF_ERR_CONFIGURED, 'invalid', delay.reason) };
    }
    if (delay.clampedFromMs !== undefined)
      this.log.log(
        'warn',
        `fence device ${device.id}: pcmk_delay_base (${delay.clampedFromMs} ms) is larger than pcmk_delay_max (${delay.maxMs} ms), using ${delay.maxMs} ms`,
        fields,
      );
    const delayMs = fencingDelayMs(delay, this.random);
    if (delayMs === 0) return { delayMs };
    this.log.log(
      'info',
      `delaying ${action} of ${target ?? '(no target)'} with fence device ${device.id} by ${delayMs} ms (pcmk_delay_base ${delay.baseMs} ms, pcmk_delay_max ${delay.maxMs} ms)`,
      { ...fields, delayMs },
    );
    try {
      await this.sleep(delayMs, signal);
    } catch (err) {
      if (!signal?.aborted) throw err;
    }
    if (signal?.aborted)
      return {
        failed: this.aborted(
          device,
          action,
          agentAction,
          target,
          signal,
          `during its ${delayMs} ms pcmk_delay, before the agent ran`,
        ),
      };
    return { delayMs };
  }

  /**
   * Waits the delay the caller asked for before an off/reboot of `target` and logs it; returns
   * the ms waited (0 for other actions or no delay). An abort ends the wait early (the caller
   * then checks the signal and runs no device).
   */
  private async waitRequestedDelay(
    target: string,
    action: FenceAction,
    delay: RequestedFenceDelay | undefined,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    if (delay === undefined || delay.ms === 0 || !DELAYED_ACTIONS.has(action)) return 0;
    assert(
      Number.isInteger(delay.ms) && delay.ms > 0 && delay.ms <= MAX_FENCE_DELAY_MS,
      `requested fencing delay ${delay.ms} ms is not a whole number of ms in [0, ${MAX_FENCE_DELAY_MS}]`,
    );
    const fields = { target, action, delayMs: delay.ms };
    this.log.log('info', `delaying fencing of ${target} by ${delay.ms} ms (${delay.why})`, fields);
    try {
      await this.sleep(delay.ms, signal);
    } catch (err) {
      if (!signal?.aborted) throw err;
    }
    if (signal?.aborted)
      this.log.log(
        'warn',
        `fencing ${target} (${action}) was aborted during its ${delay.ms} ms requested delay, before any device ran: ${abortReason(signal)}`,
        fields,
      );
    return delay.ms;
  }

  private aborted(
    device: FenceDevice,
    action: FenceAction,
    agentAction: string,
    target: string | undefined,
    signal: AbortSignal,
    when: string,
  ): FenceAttempt {
    const why = abortReason(signal);
    const msg = `${action} of ${target ?? '(no target)'} with fence device ${device.id} was aborted ${when}: ${why}`;
    this.log.log('warn', msg, { device: device.id, target, action });
    return notRun(device, agentAction, OCF_RC.OCF_ERR_GENERIC, 'cancelled', msg);
  }

  /** Whether a device may fence `target`, following pcmk_host_check. */
  async canFence(deviceId: string, target: string): Promise<boolean> {
    const device = this.devices.get(deviceId);
    if (!device) return false;
    const map = parseHostMap(device.params.pcmk_host_map);
    const list = hostList(device.params.pcmk_host_list);
    const meta = await this.meta(device);
    const has = (a: string): boolean => meta?.actions.some((x) => x.name === a) ?? false;
    const check =
      device.params.pcmk_host_check ||
      (list.length > 0 || map.size > 0
        ? 'static-list'
        : has('list')
          ? 'dynamic-list'
          : has('status')
            ? 'status'
            : 'none');
    switch (check) {
      case 'static-list':
        return list.includes(target) || map.has(target);
      case 'dynamic-list': {
        const attempts = await this.runDevice(deviceId, 'list');
        const last = attempts[attempts.length - 1];
        if (last?.rc !== 0) return false;
        const port = map.get(target) ?? target;
        return last.output
          .split('\n')
          .slice(0, MAX_LIST_LINES)
          .some((line) => line.split(/[,\s]+/)[0] === port);
      }
      case 'status': {
        const attempts = await this.runDevice(deviceId, 'status', target);
        const last = attempts[attempts.length - 1];
        return last !== undefined && last.status === 'done' && (last.rc === 0 || last.rc === 7);
      }
      case 'none':
        return true;
      default:
        throw new HaloError(
          'bad-fence-device',
          `fence device ${deviceId}: pcmk_host_check '${check}' is not static-list, dynamic-list, status or none`,
        );
    }
  }

  private levelsFor(target: string): FencingLevel[] {
    return this.levels
      .filter(
        (l) =>
          l.target === target || (l.targetPattern !== undefined && new RegExp(l.targetPattern).test(target)),
      )
      .sort((a, b) => Number(a.index) - Number(b.index));
  }

  /**
   * Fences `target`: with topology levels for it, tries each level in order (all devices of a
   * level must succeed; reboot across several devices is off on all, then on on all); without,
   * tries each device that can fence the target until one succeeds. Once `signal` aborts, no
   * further device is tried (one waiting out its pcmk_delay stops at once) and the report fails.
   *
   * `requestedDelay` (the controller's priority-fencing-delay) is waited once, for an off or
   * reboot, after the devices are chosen and before the first one runs, so it adds to that
   * device's pcmk_delay as in Pacemaker, where the requested delay is added to the device's
   * delay and only the first device of a topology gets it. An abort during it runs no device.
   */
  async fence(
    target: string,
    action: 'off' | 'on' | 'reboot',
    opts: { readonly signal?: AbortSignal; readonly requestedDelay?: RequestedFenceDelay } = {},
  ): Promise<FenceReport> {
    const all: FenceAttempt[] = [];
    const levels = this.levelsFor(target);
    const plans: { level?: number; devices: string[] }[] =
      levels.length > 0
        ? levels.map((l) => ({ level: Number(l.index), devices: l.devices.split(',').map((s) => s.trim()) }))
        : [];
    if (plans.length === 0) {
      for (const id of this.devices.keys()) {
        if (opts.signal?.aborted) break;
        if (await this.canFence(id, target)) plans.push({ devices: [id] });
      }
    }
    if (opts.signal?.aborted) return abortedReport(target, action, all, opts.signal);
    if (plans.length === 0) {
      return {
        target,
        action,
        ok: false,
        attempts: [],
        reason: `no fence device can fence ${target} (check pcmk_host_list / pcmk_host_map)`,
      };
    }
    const requestedMs = await this.waitRequestedDelay(target, action, opts.requestedDelay, opts.signal);
    if (opts.signal?.aborted && requestedMs > 0)
      return {
        target,
        action,
        ok: false,
        attempts: [],
        reason: `fencing ${target} (${action}) was aborted during its ${requestedMs} ms requested delay, before any device ran: ${abortReason(opts.signal)}`,
      };
    for (const plan of plans) {
      if (opts.signal?.aborted) break;
      const steps: [string, FenceAction][] =
        action === 'reboot' && plan.devices.length > 1
          ? [
              ...plan.devices.map((d): [string, FenceAction] => [d, 'off']),
              ...plan.devices.map((d): [string, FenceAction] => [d, 'on']),
            ]
          : plan.devices.map((d): [string, FenceAction] => [d, action]);
      let ok = true;
      for (const [device, act] of steps) {
        const attempts = await this.runDevice(device, act, target, opts);
        all.push(...attempts);
        const last = attempts[attempts.length - 1];
        if (last?.rc !== 0 || last.status !== 'done') {
          ok = false;
          break;
        }
      }
      if (ok) {
        const where =
          plan.level !== undefined
            ? `level ${plan.level} (${plan.devices.join(', ')})`
            : plan.devices.join(', ');
        const delayedMs = all.reduce((sum, a) => sum + (a.delayMs ?? 0), 0);
        const waited = [
          ...(requestedMs > 0 ? [`${requestedMs} ms of requested delay (${opts.requestedDelay!.why})`] : []),
          ...(delayedMs > 0 ? [`${delayedMs} ms of pcmk_delay`] : []),
        ];
        return {
          target,
          action,
          ok: true,
          ...(plan.level !== undefined ? { level: plan.level } : {}),
          attempts: all,
          reason: `${action} of ${target} succeeded via ${where}${waited.length > 0 ? ` after waiting ${waited.join(' and ')}` : ''}`,
        };
      }
    }
    if (opts.signal?.aborted) return abortedReport(target, action, all, opts.signal);
    const last = all[all.length - 1];
    return {
      target,
      action,
      ok: false,
      attempts: all,
      reason: `every fencing ${levels.length > 0 ? 'level' : 'device'} failed for ${target}; last: ${last ? `${last.device} ${last.action} rc ${last.rc} (${last.status}): ${last.output.split('\n').slice(-1)[0]}` : 'none'}`,
    };
  }
}
