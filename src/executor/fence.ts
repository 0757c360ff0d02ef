import { durationMsOr } from '../cib/duration.ts';
import type { FencingLevel } from '../cib/model.ts';
import { HaloError } from '../lib/errors.ts';
import { parseAgentSpec } from './agent_spec.ts';
import type { AgentMetadata } from './metadata.ts';
import { rcName } from './rc.ts';
import type { AgentRunner } from './runner.ts';

/**
 * The fencer: powers a node off (or reboots it) through fence devices, the way Pacemaker's
 * fencer does. A device is a fence agent (`stonith:fence_ipmilan`, or a built-in fence agent
 * such as `halo:lab-fence`) plus parameters. Which devices may fence a node follows
 * `pcmk_host_check` (static-list / dynamic-list / status / none), the value passed as the
 * agent's port follows `pcmk_host_map`; each device action is retried `pcmk_<action>_retries`
 * times within its timeout. With a fencing topology the levels are tried in index order and a
 * level succeeds only when every one of its devices does.
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

export class Fencer {
  private readonly runner: AgentRunner;
  private readonly devices: Map<string, FenceDevice>;
  private readonly levels: readonly FencingLevel[];
  private readonly defaultTimeoutMs: number;
  private readonly metaCache = new Map<string, AgentMetadata>();

  constructor(opts: {
    runner: AgentRunner;
    devices: readonly FenceDevice[];
    levels?: readonly FencingLevel[];
    defaultTimeoutMs?: number;
  }) {
    this.runner = opts.runner;
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

  /** Runs one action on one device with retries; `target` is a node name (mapped to a port). */
  async runDevice(deviceId: string, action: FenceAction, target?: string): Promise<FenceAttempt[]> {
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
    const timeoutMs = this.timeoutFor(device, action);
    const deadline = performance.now() + timeoutMs;
    const attempts: FenceAttempt[] = [];
    for (let i = 0; i <= retries; i++) {
      const left = Math.max(1, Math.round(deadline - performance.now()));
      const r = await this.runner.run({
        agent: device.agent,
        resource: device.id,
        action: agentAction,
        intervalMs: 0,
        timeoutMs: left,
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
      });
      // status "off" (rc 7) is an answer, not a failure to retry.
      if (r.status === 'done' && (r.rc === 0 || (r.rc === 7 && action === 'status'))) break;
      if (r.status === 'notInstalled' || performance.now() >= deadline) break;
    }
    return attempts;
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
   * tries each device that can fence the target until one succeeds.
   */
  async fence(target: string, action: 'off' | 'on' | 'reboot'): Promise<FenceReport> {
    const all: FenceAttempt[] = [];
    const levels = this.levelsFor(target);
    const plans: { level?: number; devices: string[] }[] =
      levels.length > 0
        ? levels.map((l) => ({ level: Number(l.index), devices: l.devices.split(',').map((s) => s.trim()) }))
        : [];
    if (plans.length === 0) {
      for (const id of this.devices.keys())
        if (await this.canFence(id, target)) plans.push({ devices: [id] });
    }
    if (plans.length === 0) {
      return {
        target,
        action,
        ok: false,
        attempts: [],
        reason: `no fence device can fence ${target} (check pcmk_host_list / pcmk_host_map)`,
      };
    }
    for (const plan of plans) {
      const steps: [string, FenceAction][] =
        action === 'reboot' && plan.devices.length > 1
          ? [
              ...plan.devices.map((d): [string, FenceAction] => [d, 'off']),
              ...plan.devices.map((d): [string, FenceAction] => [d, 'on']),
            ]
          : plan.devices.map((d): [string, FenceAction] => [d, action]);
      let ok = true;
      for (const [device, act] of steps) {
        const attempts = await this.runDevice(device, act, target);
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
        return {
          target,
          action,
          ok: true,
          ...(plan.level !== undefined ? { level: plan.level } : {}),
          attempts: all,
          reason: `${action} of ${target} succeeded via ${where}`,
        };
      }
    }
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
