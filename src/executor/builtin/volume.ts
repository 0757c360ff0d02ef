import { spawn } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, extname, join, resolve as resolvePath } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseDrbdConf } from '../../cib/drbd_conf.ts';
import { nodeDrbdIo } from '../../cib/drbd_conf_fs.ts';
import type { DrbdConfig, DrbdResource } from '../../cib/drbd_model.ts';
import { formatDiagnostic, HaloError } from '../../lib/errors.ts';
import { abortFuseConnection, FUSE_RELEASE_WAIT_MS, releaseFuseMount } from '../../lib/fuse.ts';
import { pidAlive } from '../../lib/pid.ts';
import { volumeConfigFromDrbd } from '../../volume/config.ts';
import type { CoreStatus } from '../../volume/core.ts';
import { controlRequest, nbdSocketPath } from '../../volume/engine.ts';
import { runProcess } from '../process.ts';
import { OCF_RC } from '../rc.ts';
import { describeFailure, HELPER_TIMEOUT_MS, helper, SYSTEM_PATH } from './exec.ts';
import type { BuiltinAgent, BuiltinContext, BuiltinOutcome } from './types.ts';

/**
 * `halo:volume`: a promotable agent for halo's replicated volumes, the equivalent of
 * `ocf:linbit:drbd`. It drives the volume engine (src/volume) the way the linbit agent drives
 * `drbdadm`: start = engine up + connect (Secondary), promote = Primary, demote = Secondary,
 * stop = engine down. On promote it also attaches the exported volume as a block device
 * (nbdfuse + a loop device, no mount) and publishes it at `device_link`, so a Filesystem
 * resource mounts `device=/dev/halo/RES` just as it would mount `/dev/drbd0`.
 *
 * Monitor and start report a promotion score the way the linbit agent's crm_master calls do,
 * as the node attribute `master-<resource>` (see `promotionScore`).
 *
 * Which `on HOST` section is this node: the `node` parameter, else the host name when the
 * resource has a section for it, else the section whose address is configured on a local
 * interface (in the agent's network namespace). The last rule lets one clone definition serve
 * every node even where host names do not match (lab namespaces share one host name).
 */

/** Where engines keep their sockets and logs (the CLI's default; HALO_VOLUME_RUN_DIR overrides). */
export const VOLUME_RUN_DIR_DEFAULT = '/run/halo/volume';
export const VOLUME_CONFIG_DEFAULT = '/etc/drbd.conf';
/** Read when `config` is not set and VOLUME_CONFIG_DEFAULT does not exist (halo's own config dir). */
export const VOLUME_CONFIG_HALO = '/etc/halo/drbd.conf';
/** Where the Primary's block device is published: DEVICE_LINK_DIR/RES. */
export const DEVICE_LINK_DIR = '/dev/halo';
/** Poll interval while waiting for a real process (engine exit, nbdfuse mount). */
const POLL_MS = 50;
/** Longest wait for nbdfuse to show its file, and for an engine to exit after `down`. */
const SETTLE_MS = 15_000;
/** Pause between promote attempts while the peer is still Primary. */
const PROMOTE_RETRY_MS = 250;
/**
 * While a Primary peer blocks the promote and answered the last check, it is checked again this
 * often: a peer that dies while the promote waits is then dropped within a check, not after the
 * engine's ping-int + timeout.
 */
const PEER_RECHECK_MS = 2_000;
/**
 * The promote loop stops retrying this long before the operation's timeout, so the action ends
 * with the engine's reason rather than being killed as timed out.
 */
const PROMOTE_FINISH_MS = 1_000;
/**
 * Meta attribute the controller puts on promote actions: the nodes the cluster has fenced
 * successfully and that have not rejoined since (space-separated), like Pacemaker's notify
 * variables. A peer named there is off, so its replication connection is dead even while the
 * engine has not noticed yet (it would only after its ping timeout).
 */
export const FENCED_NODES_META = 'halo-fenced-nodes';

/**
 * Promotion scores, on ocf:linbit:drbd's scale (its adjust_master_score levels): a Primary or
 * an UpToDate disk that knows its peer is no newer gets the top score; an UpToDate disk that
 * cannot see its peer gets less (the peer may be as good and already running), so a connected
 * node wins a tie; a Consistent disk gets a token score. Inconsistent, Outdated, Diskless and
 * unknown disks get none: the engine refuses to promote them without --force, so offering them
 * would only make a promote fail.
 */
export const PROMOTION_SCORE = {
  upToDateKnownPeer: 10_000,
  upToDateAlone: 1_000,
  consistent: 5,
} as const;

export interface VolumeAgentOptions {
  /** The program that runs `volume … up RES` (default: this halo's volume engine entry). */
  readonly engine?: { readonly exec: string; readonly args: readonly string[] };
}

interface VolumeParams {
  readonly resource: string;
  readonly configPath: string;
  readonly runDir: string;
  readonly deviceLink: string;
  readonly node?: string;
  readonly linkConfDevice: boolean;
  /** `drbddisk`: Heartbeat's drbddisk semantics on a plain (not promotable) resource. */
  readonly mode: 'promotable' | 'drbddisk';
}

interface Resolved {
  readonly p: VolumeParams;
  readonly node: string;
  /** This node's backing disk (undefined when the config could not be read). */
  readonly disk?: string;
  /** The drbd.conf `device` of this node (e.g. /dev/drbd0), if any. */
  readonly confDevice?: string;
  /** Replication addresses (`ADDR:PORT`) of this node and its peer, from drbd.conf. */
  readonly link?: { readonly self: string; readonly peer: string; readonly peerName: string };
}

/** What promote left behind, in the CLI's attach.json format (so `halo volume detach` undoes it). */
interface AttachState {
  fuseDir: string;
  loop: string;
  mount: string;
}

const configured = (ctx: BuiltinContext, why: string): BuiltinOutcome => ({
  rc: OCF_RC.OCF_ERR_CONFIGURED,
  exitReason: `halo:volume ${ctx.resource}: ${why}`,
});
const generic = (ctx: BuiltinContext, why: string): BuiltinOutcome => ({
  rc: OCF_RC.OCF_ERR_GENERIC,
  exitReason: `halo:volume ${ctx.resource}: ${why}`,
});

function defaultEngine(): { exec: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  const entry = fileURLToPath(new URL(`../../volume/engine_main${extname(here)}`, import.meta.url));
  return { exec: process.execPath, args: [...process.execArgv, entry] };
}

function parseParams(ctx: BuiltinContext): VolumeParams | BuiltinOutcome {
  const resource = ctx.params.drbd_resource ?? '';
  if (resource === '')
    return configured(ctx, "parameter 'drbd_resource' is required (the resource name in drbd.conf)");
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(resource))
    return configured(ctx, `drbd_resource '${resource}' is not a resource name (letters, digits, _ . -)`);
  const abs = (name: string, v: string | undefined, dflt: string): string | BuiltinOutcome => {
    const val = v === undefined || v === '' ? dflt : v;
    return val.startsWith('/')
      ? val
      : configured(ctx, `parameter '${name}' must be an absolute path, got '${val}'`);
  };
  const fallback =
    !existsSync(VOLUME_CONFIG_DEFAULT) && existsSync(VOLUME_CONFIG_HALO)
      ? VOLUME_CONFIG_HALO
      : VOLUME_CONFIG_DEFAULT;
  const configPath = abs('config', ctx.params.config, fallback);
  const runDir = abs(
    'run_dir',
    ctx.params.run_dir,
    process.env.HALO_VOLUME_RUN_DIR ?? VOLUME_RUN_DIR_DEFAULT,
  );
  const deviceLink = abs('device_link', ctx.params.device_link, join(DEVICE_LINK_DIR, resource));
  for (const v of [configPath, runDir, deviceLink]) if (typeof v !== 'string') return v;
  const link = ctx.params.link_conf_device ?? 'true';
  if (!['true', 'false', 'yes', 'no', '1', '0'].includes(link))
    return configured(ctx, `link_conf_device must be true or false, got '${link}'`);
  const mode = ctx.params.mode || 'promotable';
  if (mode !== 'promotable' && mode !== 'drbddisk')
    return configured(ctx, `mode must be promotable or drbddisk, got '${mode}'`);
  return {
    resource,
    mode,
    configPath: configPath as string,
    runDir: runDir as string,
    deviceLink: deviceLink as string,
    linkConfDevice: ['true', 'yes', '1'].includes(link),
    ...(ctx.params.node ? { node: ctx.params.node } : {}),
  };
}

/** Addresses configured in the agent's namespace (without prefix length). */
async function localAddresses(ctx: BuiltinContext): Promise<Set<string>> {
  const r = await helper(['ip', '-o', 'addr', 'show'], ctx);
  const out = new Set<string>();
  for (const m of r.stdout.matchAll(/\sinet6?\s+([0-9a-fA-F.:]+)\//g)) out.add(m[1]!);
  return out;
}

/** The address part of drbd.conf's `ADDR:PORT` (IPv6 may be written `[ADDR]:PORT`). */
function addressOnly(a: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(a);
  if (v6) return v6[1]!;
  return a.replace(/:\d+$/, '');
}

async function chooseNode(
  ctx: BuiltinContext,
  p: VolumeParams,
  res: DrbdResource,
): Promise<string | BuiltinOutcome> {
  const names = res.hosts.map((h) => h.name);
  if (p.node !== undefined) {
    if (names.includes(p.node)) return p.node;
    return configured(
      ctx,
      `resource ${p.resource} in ${p.configPath} has no "on ${p.node}" section (hosts: ${names.join(', ')})`,
    );
  }
  const host = hostname();
  if (names.includes(host)) return host;
  const local = await localAddresses(ctx);
  const mine = res.hosts.filter((h) => h.address !== undefined && local.has(addressOnly(h.address)));
  if (mine.length === 1) return mine[0]!.name;
  return configured(
    ctx,
    `cannot tell which host of resource ${p.resource} this node is: host name '${host}' is not one of ${names.join(', ')} and ${mine.length === 0 ? 'no' : 'more than one'} host address is local; set the 'node' parameter`,
  );
}

/** Reads drbd.conf and works out this node; bad input is OCF_ERR_CONFIGURED with the reason. */
async function resolve(ctx: BuiltinContext, p: VolumeParams): Promise<Resolved | BuiltinOutcome> {
  let text: string;
  try {
    text = readFileSync(p.configPath, 'utf8');
  } catch (err) {
    return configured(ctx, `cannot read config ${p.configPath}: ${(err as Error).message}`);
  }
  let conf: DrbdConfig;
  try {
    const parsed = parseDrbdConf(text, p.configPath, nodeDrbdIo);
    if (!parsed.ok) return configured(ctx, parsed.diagnostics.map(formatDiagnostic).join('; '));
    conf = parsed.config;
  } catch (err) {
    return configured(ctx, `${p.configPath}: ${(err as Error).message}`);
  }
  const res = conf.resources.find((r) => r.name === p.resource);
  if (!res) {
    const known = conf.resources.map((r) => r.name).join(', ') || 'none';
    return configured(
      ctx,
      `drbd_resource '${p.resource}' is not defined in ${p.configPath} (defined: ${known})`,
    );
  }
  const node = await chooseNode(ctx, p, res);
  if (typeof node !== 'string') return node;
  let disk: string;
  let link: Resolved['link'];
  try {
    const vc = volumeConfigFromDrbd(conf, p.resource, node); // checks addresses, disks, options
    disk = vc.self.disk;
    link = { self: vc.self.address, peer: vc.peer.address, peerName: vc.peer.name };
  } catch (err) {
    if (err instanceof HaloError) return configured(ctx, err.message);
    throw err;
  }
  // `device /dev/drbd0 minor 0;` names a path; `device minor 0;` names none.
  const device = (res.hosts.find((h) => h.name === node)?.device ?? res.device)?.split(/\s+/)[0];
  return { p, node, disk, link, ...(device?.startsWith('/') ? { confDevice: device } : {}) };
}

type EngineStatus = (CoreStatus & { pid: number; nbd: string | null }) | undefined;

/** The engine's status; undefined when no engine listens. Throws when it answers badly. */
async function engineStatus(p: VolumeParams, timeoutMs: number): Promise<EngineStatus> {
  const r = await controlRequest(p.runDir, p.resource, { cmd: 'status' }, timeoutMs);
  if (!r) return undefined;
  if (r.ok !== true) throw new HaloError('engine-failed', `status: ${String(r.message ?? 'failed')}`);
  return { ...(r.status as CoreStatus), pid: Number(r.pid), nbd: (r.nbd as string | null) ?? null };
}

async function engineCommand(p: VolumeParams, req: object, timeoutMs: number): Promise<string | undefined> {
  const r = await controlRequest(p.runDir, p.resource, req, timeoutMs);
  if (!r) return 'the engine is not running';
  return r.ok === true ? undefined : String(r.message ?? r.code ?? 'failed');
}

/** The crm_master-style attribute: `master-<primitive>` (clone instance suffix dropped). */
function scoreAttribute(ctx: BuiltinContext, s: EngineStatus): Record<string, string> {
  const unique = ctx.meta.globally_unique === 'true' || ctx.meta['globally-unique'] === 'true';
  const name = `master-${unique ? ctx.resource : ctx.resource.replace(/:\d+$/, '')}`;
  const score = s === undefined ? undefined : promotionScore(s);
  // An empty value is "no score": the scheduler reads it as absent, as after `crm_master -D`.
  return { [name]: score === undefined ? '' : String(score) };
}

/** The promotion score for an engine state (undefined = must not be promoted). Pure. */
export function promotionScore(
  s: Pick<CoreStatus, 'role' | 'disk' | 'conn' | 'peerDisk'>,
): number | undefined {
  if (s.role === 'Primary' && s.disk === 'UpToDate') return PROMOTION_SCORE.upToDateKnownPeer;
  switch (s.disk) {
    case 'UpToDate': {
      const peerKnown =
        s.conn === 'Connected' ||
        s.conn === 'SyncSource' ||
        ['Outdated', 'Inconsistent', 'UpToDate'].includes(s.peerDisk);
      return peerKnown ? PROMOTION_SCORE.upToDateKnownPeer : PROMOTION_SCORE.upToDateAlone;
    }
    case 'Consistent':
      return PROMOTION_SCORE.consistent;
    case 'Inconsistent':
    case 'Outdated':
    case 'Diskless':
    case 'DUnknown':
      return undefined;
  }
}

function attachFile(p: VolumeParams): string {
  return join(p.runDir, `${p.resource}.attach.json`);
}

function readAttach(p: VolumeParams): AttachState | undefined {
  try {
    return JSON.parse(readFileSync(attachFile(p), 'utf8')) as AttachState;
  } catch {
    return undefined;
  }
}

/** Whether the engine program exists; its absence is OCF_ERR_INSTALLED. */
function engineMissing(engine: { exec: string; args: readonly string[] }): string | undefined {
  const files = [engine.exec, ...engine.args.filter((a) => a.startsWith('/') && /\.(ts|js|mjs)$/.test(a))];
  const gone = files.find((f) => !existsSync(f));
  return gone === undefined ? undefined : `the volume engine ${gone} is not installed`;
}

/** Links that publish the Primary's device: device_link, and drbd.conf's `device` if it is free. */
function linksOf(r: Resolved): { path: string; required: boolean }[] {
  const out = [{ path: r.p.deviceLink, required: true }];
  if (r.p.linkConfDevice && r.confDevice && r.confDevice !== r.p.deviceLink)
    out.push({ path: r.confDevice, required: false });
  return out;
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * Points the links at `loop`. A path held by something other than a symlink is never replaced:
 * for device_link that is an error; for drbd.conf's device (a real /dev/drbd0 from kernel DRBD)
 * it is skipped.
 */
function publish(r: Resolved, loop: string): string | undefined {
  for (const { path, required } of linksOf(r)) {
    if (existsSync(path) || isSymlink(path)) {
      if (!isSymlink(path)) {
        if (required) return `device_link ${path} exists and is not a symlink; refusing to replace it`;
        continue;
      }
      rmSync(path, { force: true });
    }
    mkdirSync(dirname(path), { recursive: true });
    symlinkSync(loop, path);
  }
  return undefined;
}

/** Removes the links that point at `loop` (links a peer's promote made are left alone). */
function unpublish(r: Resolved, loop: string): void {
  for (const { path } of linksOf(r))
    if (isSymlink(path) && readlinkSync(path) === loop) rmSync(path, { force: true });
}

/** Where `loop` (or a link to it) is mounted in this mount namespace, if anywhere. */
function mountedAt(loop: string, links: readonly string[]): string | undefined {
  const names = new Set([loop, ...links]);
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const source = post.split(' ')[1];
    if (source !== undefined && names.has(source)) return pre.split(' ')[4];
  }
  return undefined;
}

/**
 * Attaches the Primary's NBD export as a block device: nbdfuse shows it as a file, losetup
 * makes a loop device of that file. Nothing is mounted. nbdfuse runs in its own session so it
 * outlives this operation; it runs in the executor's mount namespace (not `ip netns exec`'s
 * throwaway one), where the loop device's backing file must stay visible. Idempotent.
 */
async function attach(ctx: BuiltinContext, p: VolumeParams): Promise<AttachState | string> {
  const old = readAttach(p);
  if (old?.loop && existsSync(old.loop) && existsSync(join(old.fuseDir, 'disk'))) return old;
  if (old) await detachState(ctx, old);
  const fuseDir = join(p.runDir, `${p.resource}.fuse`);
  const disk = join(fuseDir, 'disk');
  mkdirSync(fuseDir, { recursive: true });
  const child = spawn('nbdfuse', [disk, '--unix', nbdSocketPath(p.runDir, p.resource)], {
    stdio: 'ignore',
    detached: true,
    env: { PATH: SYSTEM_PATH, LC_ALL: 'C' },
  });
  let exit: string | undefined;
  child.on('error', (e) => {
    exit = e.message;
  });
  child.on('exit', (c, s) => {
    exit = `exited ${c ?? s}`;
  });
  child.unref();
  const deadline = performance.now() + Math.min(SETTLE_MS, ctx.timeoutMs);
  while (!existsSync(disk)) {
    if (exit !== undefined || performance.now() > deadline || ctx.signal.aborted) {
      if (child.pid !== undefined && exit === undefined) process.kill(child.pid, 'SIGTERM');
      return `nbdfuse did not show ${disk} (${exit ?? 'timed out'})`;
    }
    await sleep(POLL_MS);
  }
  const state: AttachState & { nbdfusePid?: number } = {
    fuseDir,
    loop: '',
    mount: '',
    ...(child.pid !== undefined ? { nbdfusePid: child.pid } : {}),
  };
  const argv = ['losetup', '-f', '--show', disk];
  const lo = await helper(argv, { signal: ctx.signal });
  if (lo.exitCode !== 0) {
    await detachState(ctx, state);
    return describeFailure(argv, lo);
  }
  state.loop = lo.stdout.trim();
  writeFileSync(attachFile(p), JSON.stringify(state));
  return state;
}

/** Undoes attach (and a CLI attach's mount); the caller checks nothing else still uses it. */
async function detachState(ctx: BuiltinContext, s: AttachState & { nbdfusePid?: number }): Promise<void> {
  const opts = { signal: ctx.signal, timeoutMs: HELPER_TIMEOUT_MS };
  // With nbdfuse dead, every I/O on its file (the filesystem's sync at unmount, the loop
  // device's flush at detach) would wait forever in D state: abort the FUSE connection first
  // so it fails at once.
  const daemonGone = nbdfuseGone(s.nbdfusePid);
  if (daemonGone) abortFuseConnection(s.fuseDir);
  if (s.mount && (await helper(['umount', s.mount], opts)).exitCode !== 0)
    await helper(['umount', '-l', s.mount], opts);
  if (s.loop && existsSync(s.loop)) await helper(['losetup', '-d', s.loop], opts);
  // Retries while the detached loop device lets go of the FUSE file, then unmounts lazily.
  await releaseFuseMount(s.fuseDir, FUSE_RELEASE_WAIT_MS, { daemonGone });
  if (s.nbdfusePid !== undefined && pidAlive(s.nbdfusePid)) process.kill(s.nbdfusePid, 'SIGTERM');
}

/** Whether the recorded nbdfuse is gone (exited, or a zombie); false when no pid was recorded. */
function nbdfuseGone(pid: number | undefined): boolean {
  return pid !== undefined && !pidAlive(pid);
}

/** Unpublishes and detaches; refuses while the device is mounted (stop the Filesystem first). */
async function detach(ctx: BuiltinContext, r: Resolved): Promise<string | undefined> {
  const s = readAttach(r.p);
  // Without a record of our loop device, links may be a peer's (a shared /dev): leave them.
  if (!s) return undefined;
  const where = s.loop
    ? mountedAt(
        s.loop,
        linksOf(r).map((l) => l.path),
      )
    : undefined;
  if (where !== undefined && where !== s.mount)
    return `${s.loop} is still mounted at ${where}; stop the Filesystem resource on it first`;
  if (s.loop) unpublish(r, s.loop);
  await detachState(ctx, s);
  rmSync(attachFile(r.p), { force: true });
  return undefined;
}

function remainingMs(ctx: BuiltinContext, t0: number): number {
  return Math.max(1000, ctx.timeoutMs - (performance.now() - t0) - 500);
}

/** The operation's time left (no floor, unlike `remainingMs`). */
function leftMs(ctx: BuiltinContext, t0: number): number {
  return ctx.timeoutMs - (performance.now() - t0);
}

async function start(
  ctx: BuiltinContext,
  r: Resolved,
  engine: { exec: string; args: readonly string[] },
): Promise<BuiltinOutcome> {
  const t0 = performance.now();
  const running = await engineStatus(r.p, remainingMs(ctx, t0));
  if (!running) {
    // A missing backing disk is this node's problem (OCF_ERR_INSTALLED): the peer may run it.
    if (r.disk !== undefined && !existsSync(r.disk))
      return {
        rc: OCF_RC.OCF_ERR_INSTALLED,
        exitReason: `halo:volume ${ctx.resource}: backing disk ${r.disk} of ${r.node} does not exist (create it, then: halo volume create-md ${r.p.resource})`,
      };
    const missing = engineMissing(engine);
    if (missing)
      return { rc: OCF_RC.OCF_ERR_INSTALLED, exitReason: `halo:volume ${ctx.resource}: ${missing}` };
    mkdirSync(r.p.runDir, { recursive: true });
    // `volume … up` starts the engine in its own session (it outlives this operation) inside the
    // node's network namespace, waits until it listens, and asks it to connect.
    const argv = [
      ...engine.args,
      'volume',
      '-c',
      r.p.configPath,
      '--node',
      r.node,
      '--run-dir',
      r.p.runDir,
      'up',
      r.p.resource,
    ];
    const up = await runProcess({
      argv: [engine.exec, ...argv],
      // The engine's fence-peer/unfence-peer handlers find this node's daemon through these.
      env: { PATH: SYSTEM_PATH, LC_ALL: 'C', ...clusterEnv() },
      // From the package root, so a loader in execArgv (`--import tsx`) resolves as it did here.
      cwd: fileURLToPath(new URL('../../../', import.meta.url)),
      timeoutMs: remainingMs(ctx, t0),
      signal: ctx.signal,
      ...(ctx.netns !== undefined ? { netns: ctx.netns } : {}),
    });
    if (up.exitCode !== 0) return generic(ctx, describeFailure(['halo', 'volume', 'up', r.p.resource], up));
  } else if (running.conn === 'StandAlone') {
    const why = await engineCommand(r.p, { cmd: 'connect' }, remainingMs(ctx, t0));
    if (why) return generic(ctx, `connect: ${why}`);
  }
  const st = await engineStatus(r.p, remainingMs(ctx, t0));
  if (!st) return generic(ctx, 'the engine exited right after start');
  return {
    rc: OCF_RC.OCF_SUCCESS,
    stdout: `${r.p.resource} up on ${r.node}: ${st.role} ${st.disk} ${st.conn}\n`,
    attributes: scoreAttribute(ctx, st),
  };
}

async function stop(ctx: BuiltinContext, r: Resolved): Promise<BuiltinOutcome> {
  const t0 = performance.now();
  const busy = await detach(ctx, r);
  if (busy) return generic(ctx, busy);
  const st = await engineStatus(r.p, remainingMs(ctx, t0));
  if (st) {
    // `down` demotes, disconnects and records a clean shutdown; then the engine exits.
    await engineCommand(r.p, { cmd: 'down' }, remainingMs(ctx, t0)).catch(() => undefined);
    const deadline = performance.now() + Math.min(SETTLE_MS, remainingMs(ctx, t0) - 500);
    while (pidAlive(st.pid) && performance.now() < deadline && !ctx.signal.aborted) await sleep(POLL_MS);
    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      if (!pidAlive(st.pid)) break;
      process.kill(st.pid, sig);
      for (let i = 0; i < 40 && pidAlive(st.pid); i++) await sleep(POLL_MS);
    }
    if (pidAlive(st.pid)) return generic(ctx, `engine pid ${st.pid} survived SIGKILL`);
  }
  return { rc: OCF_RC.OCF_SUCCESS, attributes: scoreAttribute(ctx, undefined) };
}

/**
 * Promote: the engine goes Primary (see `becomePrimary`), then the block device is attached and
 * published. `t0` is when the operation began (drbddisk's start brings the engine up first, and
 * both share one timeout).
 */
async function promote(ctx: BuiltinContext, r: Resolved, t0 = performance.now()): Promise<BuiltinOutcome> {
  const st = await engineStatus(r.p, remainingMs(ctx, t0));
  if (!st)
    return {
      rc: OCF_RC.OCF_NOT_RUNNING,
      exitReason: `halo:volume ${ctx.resource}: not started, cannot promote`,
    };
  let notes: string[] = [];
  let fencing: Promise<BuiltinOutcome | undefined> = Promise.resolve(undefined);
  if (st.role !== 'Primary') {
    const became = await becomePrimary(ctx, r, t0);
    if ('rc' in became) return became;
    notes = became.notes;
    fencing = fenceOutcome(ctx, r, t0);
  }
  // The block device is attached while fence-peer runs (as DRBD's promote returns with I/O
  // frozen): reads work, and writes are acknowledged only once the peer is fenced. Should the
  // handler say this node is the stale one, the device is detached again and the promote fails.
  const [fenced, s] = await Promise.all([fencing, attach(ctx, r.p)]);
  if (fenced) {
    if (typeof s !== 'string') {
      await detach(ctx, r);
      // fenceOutcome's demote of a stale (Outdated) disk is refused while writes the attach
      // made are held by the suspended I/O: release them (they only reach this stale disk, which
      // the resync from the peer overwrites) and demote it for good.
      const after = await engineStatus(r.p, remainingMs(ctx, t0)).catch(() => undefined);
      if (after?.role === 'Primary' && after.disk === 'Outdated') {
        if (after.ioSuspended) await engineCommand(r.p, { cmd: 'resume-io' }, remainingMs(ctx, t0));
        for (let i = 0; i < STALE_DEMOTE_TRIES; i++) {
          const why = await engineCommand(r.p, { cmd: 'secondary' }, remainingMs(ctx, t0));
          if (why === undefined) break;
          await sleep(POLL_MS);
        }
      }
    }
    return fenced;
  }
  if (typeof s === 'string') return generic(ctx, `promoted, but attaching the block device failed: ${s}`);
  const bad = publish(r, s.loop);
  if (bad) return generic(ctx, bad);
  const now = await engineStatus(r.p, remainingMs(ctx, t0));
  return {
    rc: OCF_RC.OCF_SUCCESS,
    stdout: `${notes.map((n) => `${n}\n`).join('')}${r.p.resource} Primary on ${r.node}: ${s.loop} published at ${linksOf(
      r,
    )
      .map((l) => l.path)
      .join(', ')}\n`,
    attributes: scoreAttribute(ctx, now),
  };
}

/**
 * Asks the engine to go Primary. Like ocf:linbit:drbd's promote loop, while the peer is still
 * Primary (a lost node whose connection the engine still holds, or a demote on the peer still
 * under way) it keeps asking until shortly before the operation's timeout; once the peer demotes
 * or is cut off, the promote goes through. Two Primaries never happen: the engine refuses each
 * try while it sees a Primary peer.
 *
 * Waiting out the engine's own timeout (ping-int + timeout: up to 16 s with drbd.conf's
 * defaults) would add that to every failover where the old Primary vanished without a reset
 * (links cut, node powered off), so a blocking Primary peer is checked at once: a peer the
 * cluster says it fenced loses its connection outright (`dropFencedPeer`); any other is pinged
 * (`check-peer`) and dropped as lost only if it does not answer within ping-timeout, which is
 * what the engine would do itself at its next ping. A peer that answers keeps its connection,
 * and the promote fails in the end saying it is alive and Primary. Returns lines saying what was
 * done to the peer, or the refusal.
 */
async function becomePrimary(
  ctx: BuiltinContext,
  r: Resolved,
  t0: number,
): Promise<{ notes: string[] } | BuiltinOutcome> {
  const notes: string[] = [];
  let dropped = false;
  let alive: string | undefined;
  let nextCheckMs = 0;
  let why = await engineCommand(r.p, { cmd: 'primary' }, remainingMs(ctx, t0));
  while (why !== undefined && !ctx.signal.aborted && leftMs(ctx, t0) > PROMOTE_RETRY_MS + PROMOTE_FINISH_MS) {
    const now = await engineStatus(r.p, remainingMs(ctx, t0)).catch(() => undefined);
    const peerPrimary = now?.peerRole === 'Primary';
    let pauseMs = peerPrimary ? PROMOTE_RETRY_MS : 0;
    if (peerPrimary && !dropped && peerFencedByCluster(ctx, r)) {
      // The cluster fenced the peer (it is off): its connection is dead though the engine has
      // not noticed yet. The engine reconnects on its own, so the peer resyncs when it returns.
      notes.push(await dropFencedPeer(ctx, r));
      dropped = true;
      pauseMs = POLL_MS;
    } else if (peerPrimary && performance.now() >= nextCheckMs) {
      const c = await checkPeer(ctx, r, t0);
      nextCheckMs = performance.now() + PEER_RECHECK_MS;
      if (c.peer === 'answered') alive = c.note;
      else {
        if (!notes.includes(c.note)) notes.push(c.note);
        if (c.peer === 'lost') pauseMs = 0;
      }
    }
    if (pauseMs > 0) await sleep(pauseMs);
    why = await engineCommand(r.p, { cmd: 'primary' }, remainingMs(ctx, t0));
    // Refused for another reason (the disk, not the peer): retrying will not change it.
    if (!peerPrimary) break;
  }
  if (why === undefined) return { notes };
  return generic(ctx, `promote on ${r.node} refused: ${why}${alive ? `; ${alive}` : ''}`);
}

/**
 * Asks the engine to ping its peer now (`check-peer`, bounded by drbd.conf's ping-timeout in
 * the engine and by the operation's time left here). `note` says what happened, for the
 * operation's output or its failure reason.
 */
async function checkPeer(
  ctx: BuiltinContext,
  r: Resolved,
  t0: number,
): Promise<{ peer: 'answered' | 'lost' | 'not-connected' | 'unknown'; note: string }> {
  const peer = r.link?.peerName ?? 'the peer';
  let reply: Record<string, unknown> | undefined;
  try {
    // Leaves the promote loop its margin to end with a reason (remainingMs has a 1 s floor).
    const waitMs = Math.max(POLL_MS, leftMs(ctx, t0) - PROMOTE_FINISH_MS);
    reply = await controlRequest(r.p.runDir, r.p.resource, { cmd: 'check-peer' }, waitMs);
  } catch (err) {
    return { peer: 'unknown', note: `could not check ${peer}: ${(err as Error).message}` };
  }
  if (!reply) return { peer: 'unknown', note: `could not check ${peer}: the engine is not running` };
  if (reply.ok !== true)
    return { peer: 'unknown', note: `could not check ${peer}: ${String(reply.message ?? reply.code)}` };
  switch (reply.peer) {
    case 'answered':
      return {
        peer: 'answered',
        note: `${peer} answered a ping: it is alive and Primary (demote or stop it there first)`,
      };
    case 'lost':
      return {
        peer: 'lost',
        note: `${peer} was Primary but did not answer a ping in time: its replication connection was dropped as lost (${String(reply.reason)})`,
      };
    default:
      return { peer: 'not-connected', note: `${peer} was no longer connected when checked` };
  }
}

/** Demote attempts of a stale disk whose held writes are draining (POLL_MS apart). */
const STALE_DEMOTE_TRIES = 20;

/** Whether the promote action says the cluster has fenced this volume's peer (FENCED_NODES_META). */
export function peerFencedByCluster(ctx: Pick<BuiltinContext, 'meta'>, r: Pick<Resolved, 'link'>): boolean {
  const fenced = (ctx.meta[FENCED_NODES_META] ?? '').split(/[\s,]+/).filter((n) => n !== '');
  return r.link !== undefined && fenced.includes(r.link.peerName);
}

/** The `ss` filter for the replication connections between `self` and `peer` (drbd.conf `ADDR:PORT`). */
export function replicationSocketFilter(self: string, peer: string): string[] {
  const port = (a: string) => /:(\d+)$/.exec(a)?.[1];
  const peerAddr = addressOnly(peer);
  const [selfPort, peerPort] = [port(self), port(peer)];
  if (selfPort === undefined || peerPort === undefined)
    throw new HaloError('bad-address', `replication addresses need a port: ${self}, ${peer}`);
  return [
    'dst',
    peerAddr.includes(':') ? `[${peerAddr}]` : peerAddr,
    'and',
    '(',
    'dport',
    '=',
    `:${peerPort}`,
    'or',
    'sport',
    '=',
    `:${selfPort}`,
    ')',
  ];
}

/**
 * Destroys this node's TCP sockets to the fenced peer's replication address (`ss -K`, in the
 * node's namespace): the engine sees its connection fail as if the link had died, and continues
 * alone. Returns a line saying what it did (also when nothing matched or `ss` failed: the
 * promote loop then falls back to waiting for the engine's own ping timeout).
 */
async function dropFencedPeer(ctx: BuiltinContext, r: Resolved): Promise<string> {
  const link = r.link!;
  const argv = ['ss', '-t', '-n', '-K', ...replicationSocketFilter(link.self, link.peer)];
  const out = await helper(argv, { netns: ctx.netns, signal: ctx.signal });
  if (out.exitCode !== 0)
    return `could not drop the connection to fenced ${link.peerName}: ${describeFailure(argv, out)}`;
  const n = out.stdout.split('\n').filter((l) => /^\S+\s+\d+\s+\d+\s/.test(l)).length;
  return `${link.peerName} was fenced by the cluster: dropped ${n} replication connection(s) to ${link.peer}`;
}

/**
 * After promoting without a peer, the engine runs fence-peer (drbd.conf `fencing`). Waits
 * (bounded by the operation's timeout) for its result: when the peer turned out to have fenced
 * this node first (the cluster says this node's data is stale), the engine outdated its disk:
 * it is demoted again and the promote fails; when fencing failed, I/O stays suspended and the
 * promote fails saying so. Undefined when the promote stands.
 */
async function fenceOutcome(
  ctx: BuiltinContext,
  r: Resolved,
  t0: number,
): Promise<BuiltinOutcome | undefined> {
  let st = await engineStatus(r.p, remainingMs(ctx, t0));
  while (st?.fencing && !ctx.signal.aborted && remainingMs(ctx, t0) > POLL_MS * 2) {
    await sleep(POLL_MS);
    st = await engineStatus(r.p, remainingMs(ctx, t0));
  }
  if (st?.role !== 'Primary') return undefined;
  if (st.disk === 'Outdated') {
    await engineCommand(r.p, { cmd: 'secondary' }, remainingMs(ctx, t0));
    return {
      ...generic(
        ctx,
        `promote on ${r.node} refused: ${st.peer} fenced this node (its data is stale); it stays Secondary with an Outdated disk until it resyncs from ${st.peer}`,
      ),
      attributes: scoreAttribute(ctx, await engineStatus(r.p, remainingMs(ctx, t0)).catch(() => undefined)),
    };
  }
  if (st.ioSuspended)
    return generic(
      ctx,
      `Primary on ${r.node}, but I/O is suspended: fence-peer has not fenced ${st.peer}${st.fencing ? ' yet' : ' (it failed; see the engine log)'}; 'halo volume resume-io ${r.p.resource}' overrides`,
    );
  return undefined;
}

async function demote(ctx: BuiltinContext, r: Resolved): Promise<BuiltinOutcome> {
  const t0 = performance.now();
  const busy = await detach(ctx, r);
  if (busy) return generic(ctx, busy);
  const st = await engineStatus(r.p, remainingMs(ctx, t0));
  if (!st) return { rc: OCF_RC.OCF_NOT_RUNNING, exitReason: `halo:volume ${ctx.resource}: not running` };
  if (st.role === 'Primary') {
    const why = await engineCommand(r.p, { cmd: 'secondary' }, remainingMs(ctx, t0));
    if (why) return generic(ctx, `demote refused: ${why}`);
  }
  const now = await engineStatus(r.p, remainingMs(ctx, t0));
  return { rc: OCF_RC.OCF_SUCCESS, attributes: scoreAttribute(ctx, now) };
}

async function monitor(ctx: BuiltinContext, r: Resolved): Promise<BuiltinOutcome> {
  const st = await engineStatus(r.p, Math.max(1000, ctx.timeoutMs - 500));
  if (!st) return { rc: OCF_RC.OCF_NOT_RUNNING, attributes: scoreAttribute(ctx, undefined) };
  const attributes = scoreAttribute(ctx, st);
  const stdout = `${r.p.resource} on ${r.node}: ${st.role} ${st.disk}/${st.peerDisk} ${st.conn}\n`;
  if (st.role !== 'Primary') return { rc: OCF_RC.OCF_SUCCESS, stdout, attributes };
  const s = readAttach(r.p);
  const link = r.p.deviceLink;
  if (!s?.loop || !existsSync(s.loop) || !isSymlink(link) || readlinkSync(link) !== s.loop) {
    return {
      rc: OCF_RC.OCF_FAILED_PROMOTED,
      stdout,
      attributes,
      exitReason: `halo:volume ${ctx.resource}: Primary, but its block device is not published at ${link}`,
    };
  }
  return { rc: OCF_RC.OCF_RUNNING_PROMOTED, stdout, attributes };
}

function param(name: string, shortdesc: string, longdesc: string, dflt?: string, required = false) {
  return {
    name,
    required,
    unique: name === 'drbd_resource',
    type: 'string',
    ...(dflt !== undefined ? { default: dflt } : {}),
    shortdesc,
    longdesc,
  };
}

const METADATA = {
  name: 'volume',
  version: '1.0',
  shortdesc: 'Replicated volume (built-in, like ocf:linbit:drbd)',
  longdesc:
    'Manages a halo replicated volume defined in drbd.conf as a promotable clone: start brings the engine up as Secondary and connects it to its peer, promote makes it Primary and publishes its block device at device_link (not mounted: put a Filesystem resource on it), demote unpublishes it and goes back to Secondary, stop takes the engine down. Monitor returns 0 for Secondary, 8 for Primary and sets the promotion score (master-RESOURCE) from the disk state.',
  parameters: [
    param(
      'drbd_resource',
      'Resource name in drbd.conf',
      'The name after "resource" in drbd.conf.',
      undefined,
      true,
    ),
    param(
      'config',
      'drbd.conf to read',
      `Path of the DRBD configuration (drbd.conf syntax, with includes). Default: ${VOLUME_CONFIG_DEFAULT}, or ${VOLUME_CONFIG_HALO} when only that exists.`,
      VOLUME_CONFIG_DEFAULT,
    ),
    param(
      'node',
      "This node's name in drbd.conf",
      'The "on HOST" section that is this node. Default: the host name, else the host whose address is configured locally.',
    ),
    param(
      'device_link',
      'Where to publish the block device',
      `A symlink to the loop device, made on promote and removed on demote. Default: ${DEVICE_LINK_DIR}/RESOURCE.`,
    ),
    param(
      'link_conf_device',
      "Also publish drbd.conf's device path",
      'When true (default), the device named in drbd.conf (e.g. /dev/drbd0) is linked too, unless a real device already has that path, so configurations written for kernel DRBD mount unchanged.',
      'true',
    ),
    param(
      'run_dir',
      'Engine socket directory',
      `Where the engine keeps its control and NBD sockets and log. Default: $HALO_VOLUME_RUN_DIR or ${VOLUME_RUN_DIR_DEFAULT}.`,
      VOLUME_RUN_DIR_DEFAULT,
    ),
  ],
  actions: [
    { name: 'start', timeout: '240s' },
    { name: 'promote', timeout: '90s' },
    { name: 'demote', timeout: '90s' },
    { name: 'notify', timeout: '90s' },
    { name: 'stop', timeout: '100s' },
    { name: 'monitor', timeout: '20s', interval: '20s', role: 'Promoted' },
    { name: 'monitor', timeout: '20s', interval: '30s', role: 'Unpromoted' },
    { name: 'validate-all', timeout: '10s' },
    { name: 'meta-data', timeout: '5s' },
  ],
};

/**
 * Heartbeat's `drbddisk::RES`: start = promote (bringing the engine up first if needed), stop =
 * demote (the engine stays up as Secondary and keeps replicating), status = running while Primary.
 */
async function runDrbddisk(
  ctx: BuiltinContext,
  r: Resolved,
  engine: { exec: string; args: readonly string[] },
): Promise<BuiltinOutcome> {
  switch (ctx.action) {
    case 'start': {
      const t0 = performance.now();
      const up = await start(ctx, r, engine);
      return up.rc === OCF_RC.OCF_SUCCESS ? promote(ctx, r, t0) : up;
    }
    case 'stop': {
      const d = await demote(ctx, r);
      return d.rc === OCF_RC.OCF_NOT_RUNNING ? { rc: OCF_RC.OCF_SUCCESS } : d;
    }
    case 'monitor':
    case 'status': {
      const m = await monitor(ctx, r);
      if (m.rc === OCF_RC.OCF_RUNNING_PROMOTED) return { ...m, rc: OCF_RC.OCF_SUCCESS };
      if (m.rc === OCF_RC.OCF_SUCCESS) return { ...m, rc: OCF_RC.OCF_NOT_RUNNING };
      return m.rc === OCF_RC.OCF_FAILED_PROMOTED ? { ...m, rc: OCF_RC.OCF_ERR_GENERIC } : m;
    }
    case 'validate-all':
      return { rc: OCF_RC.OCF_SUCCESS };
    default:
      return {
        rc: OCF_RC.OCF_ERR_UNIMPLEMENTED,
        exitReason: `halo:volume (drbddisk) has no action '${ctx.action}'`,
      };
  }
}

/**
 * Where this node's daemon listens, for the engine's fence-peer handler (`halo volume
 * fence-peer`): HALO_CONTROL_SOCKET / HALO_CLUSTER_CONFIG / HALO_CLUSTER_NODE when the daemon
 * running this executor exported them, else its own command line (`--config FILE.json
 * --node NAME`), so a daemon started with a config outside /etc/halo (the lab) is found too.
 */
function clusterEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['HALO_CONTROL_SOCKET', 'HALO_CLUSTER_CONFIG', 'HALO_CLUSTER_NODE']) {
    const v = process.env[k];
    if (v) out[k] = v;
  }
  const flag = (name: string): string | undefined => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const config = flag('--config');
  if (!out.HALO_CLUSTER_CONFIG && config?.endsWith('.json')) {
    out.HALO_CLUSTER_CONFIG = resolvePath(config);
    const node = flag('--node');
    if (!out.HALO_CLUSTER_NODE && node) out.HALO_CLUSTER_NODE = node;
  }
  return out;
}

/** A stop or probe of a node without a usable config still finds an engine by name and run dir. */
function bareResolved(p: VolumeParams): Resolved {
  return { p, node: p.node ?? hostname() };
}

export function volumeAgent(opts: VolumeAgentOptions = {}): BuiltinAgent {
  const engine = opts.engine ?? defaultEngine();
  return {
    type: 'volume',
    metadata: METADATA,
    async run(ctx) {
      const p = parseParams(ctx);
      if ('rc' in p) return p;
      if (ctx.action === 'notify') return { rc: OCF_RC.OCF_SUCCESS };
      const r = await resolve(ctx, p);
      if ('rc' in r) {
        // Stopping (or probing) something that is not running succeeds whatever the config says.
        if (ctx.action === 'stop') return stop(ctx, bareResolved(p));
        if (ctx.action === 'monitor' && (await engineStatus(p, 5000).catch(() => 'error')) === undefined)
          return { rc: OCF_RC.OCF_NOT_RUNNING };
        return r;
      }
      if (p.mode === 'drbddisk') {
        // A plain resource: it offers no promotion score.
        const { attributes: _score, ...outcome } = await runDrbddisk(ctx, r, engine);
        return outcome;
      }
      switch (ctx.action) {
        case 'start':
          return start(ctx, r, engine);
        case 'stop':
          return stop(ctx, r);
        case 'promote':
          return promote(ctx, r);
        case 'demote':
          return demote(ctx, r);
        case 'monitor':
        case 'status':
          return monitor(ctx, r);
        case 'validate-all': {
          const missing = engineMissing(engine);
          if (missing)
            return { rc: OCF_RC.OCF_ERR_INSTALLED, exitReason: `halo:volume ${ctx.resource}: ${missing}` };
          return { rc: OCF_RC.OCF_SUCCESS, stdout: `${p.resource}: this node is ${r.node}\n` };
        }
        default:
          return {
            rc: OCF_RC.OCF_ERR_UNIMPLEMENTED,
            exitReason: `halo:volume has no action '${ctx.action}'`,
          };
      }
    },
  };
}
