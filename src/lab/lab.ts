import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Configuration } from '../cib/model.ts';
import { queryControl } from '../daemon/control.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { DAEMON_NODE_FLAGS } from '../daemon/node_flags.ts';
import { HaloError } from '../lib/errors.ts';
import { abortDeadNodeFuse, abortFuseConnection, boundLoopDevices } from '../lib/fuse.ts';
import { pidAlive } from '../lib/pid.ts';
import { generateKeyFile } from '../transport/key_file.ts';
import { createLabNet, isRoot } from './netns.ts';
import {
  LAB_VIP,
  type ScenarioHost,
  type ScenarioName,
  SEED003_DISK_MIB,
  SEED003_INDEX,
  SEED003_VOLUME,
  scenarioConfiguration,
  scenarioFiles,
  seed003Paths,
} from './scenarios.ts';
import { prepareSeed003Filesystem } from './seed003_data.ts';

/**
 * `halo lab`: a whole cluster on this machine. One network namespace per node with two links
 * (two bridges, like a bonded pair), one client namespace, and one `halo daemon` per node
 * started inside its namespace, detached, with its own config, key, state directory, control
 * socket and log under the lab directory (`/run/halo-lab/<node>/…`). Everything made is written
 * to `lab.json` before the next thing is made, so `status`, `chaos` and `down` work from any
 * later process and `down` can remove a half-built lab.
 */
export const DEFAULT_LAB_DIR = '/run/halo-lab';
export const LAB_STATE_FILE = 'lab.json';
export const LAB_LINKS = 2;
export const MAX_LAB_NODES = 16;
/** How long `up` waits for every daemon's control socket (tsx start-up on a busy 2-core host). */
export const DAEMON_START_DEADLINE_MS = 60_000;
/**
 * How long `down` waits after SIGTERM before SIGKILL. A daemon's SIGTERM is a clean shutdown
 * (its resources are stopped first, the volume demoted and detached), which takes seconds on a
 * busy host; what is left after this is killed and cleaned up by `down` itself.
 */
export const STOP_GRACE_MS = 30_000;
/**
 * How long `down` lets the clean shutdowns run before a second SIGTERM cuts their wait short.
 * All nodes leave at once, so the last ones lose quorum and could not finish cleanly anyway; the
 * lab removes what they ran itself.
 */
export const CLEAN_STOP_MS = 10_000;
const DAEMON_PORT = 5405;
const POLL_MS = 100;
const STATUS_TIMEOUT_MS = 1_500;

export interface LabNodeState {
  readonly name: string;
  readonly ns: string;
  /** Position on the lab net (names the switch-side veths `n<index>l<link>`). */
  readonly index: number;
  readonly addrs: readonly string[];
  readonly witness: boolean;
  readonly dir: string;
  readonly configFile: string;
  readonly controlSocket: string;
  readonly logFile: string;
  pid: number | null;
  paused: boolean;
  cutLinks: number[];
}

export interface LabState {
  readonly version: 1;
  readonly dir: string;
  readonly tag: string;
  readonly switchNs: string;
  /** Every namespace made, switch first. */
  readonly namespaces: readonly string[];
  readonly links: number;
  readonly scenario: ScenarioName | null;
  /** What happened when the scenario was loaded into the replicated CIB. */
  scenarioLoad?: string;
  /**
   * seed-003: each daemon gets a private `dev/` (tmpfs in its own mount namespace) where the
   * volume agent publishes the Primary's device, so no node ever sees a peer's device. Until a
   * promote replaces it, `dev/r0` there points at this read-only, empty loop device, on which
   * fsck fails at once (a Filesystem start that comes too early fails and is retried).
   */
  deviceGuard?: { readonly dir: string; readonly link: string; readonly loop: string };
  /** Mount points for the nodes' private /etc/halo and /var/lib/halo that `up` had to create. */
  madeMountPoints?: readonly string[];
  readonly client: { readonly name: string; readonly ns: string; readonly addr: string };
  readonly nodes: LabNodeState[];
  readonly createdAtMs: number;
}

export interface LabUpOptions {
  readonly dir?: string;
  readonly nodes?: number;
  readonly witness?: boolean;
  readonly scenario?: ScenarioName;
  readonly profile?: string;
  readonly tag?: string;
  readonly say?: (line: string) => void;
}

function needRoot(): void {
  if (!isRoot()) {
    throw new HaloError(
      'needs-root',
      'halo lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces, veth links and bridges; run it with sudo. Without root, run one `halo daemon --config FILE --node NAME` per node on 127.0.0.x addresses (see `halo cluster init`).',
    );
  }
}

export function readLabState(dir = DEFAULT_LAB_DIR): LabState {
  const file = join(dir, LAB_STATE_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new HaloError('no-lab', `no lab is up: ${file} does not exist; start one with 'halo lab up'`);
  }
  try {
    const s = JSON.parse(text) as LabState;
    if (s.version !== 1 || !Array.isArray(s.nodes)) throw new Error('unknown layout');
    return s;
  } catch (err) {
    throw new HaloError(
      'bad-lab-state',
      `${file}: not a lab state file (${(err as Error).message}); remove the lab by hand: ip netns list | grep '^h'`,
    );
  }
}

function writeLabState(s: LabState): void {
  const file = join(s.dir, LAB_STATE_FILE);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(s, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

/** How to run the daemon: from source with tsx, or the compiled file beside this one. */
function daemonCommand(): { argv: string[]; cwd: string } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    return {
      argv: [
        ...DAEMON_NODE_FLAGS,
        '--import',
        'tsx',
        fileURLToPath(new URL('../daemon/main.ts', import.meta.url)),
      ],
      cwd: resolve(dirname(here), '../..'),
    };
  }
  return {
    argv: [...DAEMON_NODE_FLAGS, fileURLToPath(new URL('../daemon/main.js', import.meta.url))],
    cwd: resolve(dirname(here), '../../..'),
  };
}

/**
 * Where a lab daemon finds its config and keeps its state: the same paths as on a real machine.
 * Each daemon runs in its own mount namespace (the one `ip netns exec` makes) where its node's
 * `etc/` and `lib/` directories are bind-mounted on these, so no node can read another's key,
 * Raft log or volume metadata, and nothing of the lab shows in the host's own /etc/halo.
 */
export const LAB_NODE_ETC = '/etc/halo';
export const LAB_NODE_STATE = '/var/lib/halo';
/**
 * Host-wide record of the mount points above that some lab created (one empty file per path),
 * shared by every lab on the host: when labs overlap, the one that made a directory may go down
 * while another still has it mounted, so whichever lab goes down last removes it.
 */
const LAB_MADE_MOUNT_POINTS = '/run/halo-lab-made-mount-points';
const madeMarker = (d: string): string => join(LAB_MADE_MOUNT_POINTS, d.replaceAll('/', '_'));
const LAB_NODE_CONFIG = `${LAB_NODE_ETC}/halo.json`;

/** How often and how long to look again at a command line caught in the middle of an exec. */
const CMDLINE_RETRIES = 5;
const CMDLINE_RETRY_MS = 20;

/** /proc/PID/cmdline; read empty while the process is between `ip netns exec` and node's exec. */
function cmdlineOf(pid: number): string[] {
  for (let i = 0; ; i++) {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (argv[0] || i >= CMDLINE_RETRIES) return argv;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, CMDLINE_RETRY_MS);
  }
}

/** Whether `pid` is still the daemon this lab started (not a reused PID, not another lab's). */
export function isLabDaemon(n: LabNodeState): boolean {
  if (n.pid === null) return false;
  try {
    const argv = cmdlineOf(n.pid);
    const at = argv.indexOf('--node');
    if (at < 0 || argv[at + 1] !== n.name) return false;
    if (!argv.includes(n.configFile) && !argv.includes(LAB_NODE_CONFIG)) return false;
    // Still `ip netns exec NS …` (for a moment after the spawn), or a process that lives in this
    // node's network namespace (nsfs inodes match).
    if (argv[0]?.endsWith('ip') && argv[1] === 'netns' && argv[3] === n.ns) return true;
    return statSync(`/proc/${n.pid}/ns/net`).ino === statSync(`/run/netns/${n.ns}`).ino;
  } catch {
    return false;
  }
}

/**
 * Makes the mount points for the nodes' private /etc/halo and /var/lib/halo where the host has
 * none. Returns the directories it created (`lab down` removes them once no namespace uses them).
 */
function ensureNodeMountPoints(): string[] {
  const made: string[] = [];
  for (const d of [LAB_NODE_ETC, LAB_NODE_STATE]) {
    if (existsSync(d)) continue;
    mkdirSync(d, { recursive: true, mode: 0o755 });
    mkdirSync(LAB_MADE_MOUNT_POINTS, { recursive: true, mode: 0o755 });
    writeFileSync(madeMarker(d), '');
    made.push(d);
  }
  return made;
}

/** Whether any process on this host (any mount namespace) has something mounted on `path`. */
function mountedAnywhere(path: string): boolean {
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return true;
  }
  for (const pid of pids) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
    } catch {
      continue;
    }
    // Field 5 of mountinfo is the mount point (as that namespace sees it).
    if (text.split('\n').some((l) => l.split(' ')[4] === path)) return true;
  }
  return false;
}

/** Removes the mount points `up` created, unless a lab daemon elsewhere still mounts on them. */
function removeNodeMountPoints(made: readonly string[] | undefined): string[] {
  const done: string[] = [];
  const candidates = new Set(made ?? []);
  for (const d of [LAB_NODE_ETC, LAB_NODE_STATE]) if (existsSync(madeMarker(d))) candidates.add(d);
  for (const d of candidates) {
    // Still mounted in another lab's namespace: that lab's `down` removes it (the marker stays).
    if (mountedAnywhere(d)) continue;
    try {
      rmdirSync(d);
      done.push(`removed ${d}`);
    } catch {
      // Not empty (something else put files there, so it is no longer the lab's) or gone.
    }
    rmSync(madeMarker(d), { force: true });
  }
  try {
    rmdirSync(LAB_MADE_MOUNT_POINTS);
  } catch {
    // Absent, or another lab's mount point is still recorded.
  }
  return done;
}

/**
 * The shell prologue run inside the node's new mount namespace before the daemon: private
 * /etc/halo and /var/lib/halo, and for seed-003 the private `dev/` tmpfs with the device guard.
 * `ip netns exec` has already made mounts there private to the namespace.
 */
function namespacePrologue(n: LabNodeState, guard: LabState['deviceGuard'] | undefined): string[] {
  const script = [
    'set -e',
    // Another lab's `down` may have just removed an empty mount point it had made: make it
    // again, recorded like the ones `up` makes, so the last lab down removes it.
    ...[LAB_NODE_ETC, LAB_NODE_STATE].map(
      (d) => `[ -d ${d} ] || { mkdir -p ${d} ${LAB_MADE_MOUNT_POINTS} && : > ${madeMarker(d)}; }`,
    ),
    `mount --bind "$1" ${LAB_NODE_ETC}`,
    `mount --bind "$2" ${LAB_NODE_STATE}`,
    ...(guard ? ['mount -t tmpfs -o size=64k,mode=0755 halo-lab-dev "$3"', 'ln -s "$4" "$3/$5"'] : []),
    `shift ${guard ? 5 : 2}`,
    'exec "$@"',
  ].join('\n');
  return [
    'sh',
    '-c',
    script,
    'sh',
    join(n.dir, 'etc'),
    join(n.dir, 'lib'),
    ...(guard ? [guard.dir, guard.loop, guard.link] : []),
  ];
}

/** How daemons this process started ended (for start-up errors). */
const daemonExits = new Map<number, string>();

function spawnDaemon(n: LabNodeState, guard?: LabState['deviceGuard']): number {
  const cmd = daemonCommand();
  const fd = openSync(n.logFile, 'a');
  try {
    const args = [
      'netns',
      'exec',
      n.ns,
      ...namespacePrologue(n, guard),
      process.execPath,
      ...cmd.argv,
      '--config',
      LAB_NODE_CONFIG,
      '--node',
      n.name,
    ];
    if (n.witness) args.push('--witness');
    const child = spawn('ip', args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      cwd: cmd.cwd,
      // Each node's volume engines keep their sockets apart (the nodes share one file system).
      env: { ...process.env, HALO_VOLUME_RUN_DIR: join(n.dir, 'volume') },
    });
    child.unref();
    if (child.pid === undefined)
      throw new HaloError('spawn-failed', `could not start the daemon of ${n.name}`);
    const pid = child.pid;
    child.on('exit', (code, signal) => {
      daemonExits.set(pid, signal ? `killed by ${signal}` : `exited with code ${code}`);
    });
    return pid;
  } finally {
    closeSync(fd);
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

async function waitForDaemons(s: LabState, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  const pending = new Set(s.nodes.map((n) => n.name));
  while (pending.size > 0) {
    for (const n of s.nodes) {
      if (!pending.has(n.name)) continue;
      // Only the child's exit event counts: reading /proc while `ip netns exec` execs node has
      // been seen to report a live daemon as gone.
      if (n.pid === null || daemonExits.has(n.pid))
        throw new HaloError(
          'daemon-died',
          `the daemon of ${n.name} ${daemonExits.get(n.pid ?? -1) ?? 'exited'} during start-up; its log: ${n.logFile}\n${tail(n.logFile)}`,
        );
      try {
        await queryControl(n.controlSocket, 'status', STATUS_TIMEOUT_MS);
        pending.delete(n.name);
      } catch {
        // Not listening yet.
      }
    }
    if (pending.size === 0) return;
    if (Date.now() > until)
      throw new HaloError(
        'timeout',
        `daemons of ${[...pending].join(', ')} did not answer within ${deadlineMs} ms; logs in ${s.dir}/<node>/daemon.log`,
      );
    await sleep(POLL_MS);
  }
}

function tail(file: string, lines = 12): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Builds the lab and starts its daemons. On any failure it removes what it made, then throws. */
export async function labUp(opts: LabUpOptions = {}): Promise<LabState> {
  needRoot();
  const dir = opts.dir ?? DEFAULT_LAB_DIR;
  const count = opts.nodes ?? 3;
  const say = opts.say ?? (() => {});
  if (!Number.isInteger(count) || count < 1 || count > MAX_LAB_NODES) {
    throw new HaloError('bad-argument', `--nodes must be 1..${MAX_LAB_NODES}, got ${count}`);
  }
  if (opts.scenario === 'seed-003' && (count !== 2 || opts.witness)) {
    throw new HaloError(
      'bad-argument',
      `scenario seed-003 is the seed's two-node cluster (one replicated volume between two nodes): use --nodes 2 without --witness, got ${count} nodes${opts.witness ? ' and a witness' : ''}`,
    );
  }
  if (existsSync(join(dir, LAB_STATE_FILE))) {
    throw new HaloError(
      'lab-exists',
      `a lab is already up (${join(dir, LAB_STATE_FILE)}); run 'halo lab down' first`,
    );
  }
  const names = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  const all = opts.witness ? [...names, 'w'] : names;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const net = createLabNet({
    nodes: all,
    links: LAB_LINKS,
    clients: ['client'],
    ...(opts.tag ? { tag: opts.tag } : {}),
  });
  const client = net.node('client');
  const state: LabState = {
    version: 1,
    dir,
    tag: net.tag,
    switchNs: net.switchNs,
    namespaces: [net.switchNs, ...net.nodes.map((n) => n.ns)],
    links: LAB_LINKS,
    scenario: opts.scenario ?? null,
    client: { name: 'client', ns: client.ns, addr: client.addrs[0]! },
    nodes: all.map((name, index) => {
      const n = net.node(name);
      const ndir = join(dir, name);
      return {
        name,
        ns: n.ns,
        index,
        addrs: n.addrs,
        witness: name === 'w',
        dir: ndir,
        configFile: join(ndir, 'etc', 'halo.json'),
        controlSocket: join(ndir, 'halo.sock'),
        logFile: join(ndir, 'daemon.log'),
        pid: null,
        paused: false,
        cutLinks: [],
      };
    }),
    createdAtMs: Date.now(),
  };
  writeLabState(state);
  try {
    state.madeMountPoints = ensureNodeMountPoints();
    writeLabState(state);
    writeNodeFiles(state, opts.profile ?? 'lan');
    const host: ScenarioHost = {
      ...scenarioHost(dir),
      nodeAddrs: Object.fromEntries(state.nodes.map((n) => [n.name, n.addrs[0]!])),
    };
    if (opts.scenario) {
      const sc = scenarioFiles(opts.scenario, names, `h${net.tag}-`, host);
      mkdirSync(join(dir, 'scenario'), { recursive: true });
      for (const [f, text] of Object.entries(sc.files)) writeFileSync(join(dir, 'scenario', f), text);
      if (opts.scenario === 'seed-003') {
        const d = seed003Paths(host);
        mkdirSync(dirname(d.deviceLink), { recursive: true });
        const img = join(dir, 'device-guard.img');
        writeFileSync(img, Buffer.alloc(DEVICE_GUARD_BYTES));
        const loop = execFileSync('losetup', ['-r', '-f', '--show', img], { encoding: 'utf8' }).trim();
        state.deviceGuard = { dir: dirname(d.deviceLink), link: basename(d.deviceLink), loop };
        writeLabState(state);
        await prepareSeed003Volume(
          state.nodes.filter((n) => !n.witness),
          host,
          say,
        );
      }
    }
    for (const n of state.nodes) {
      n.pid = spawnDaemon(n, state.deviceGuard);
      writeLabState(state);
      say(
        `started ${n.name}${n.witness ? ' (witness)' : ''} in ${n.ns}: pid ${n.pid}, ${n.addrs.join(' + ')}`,
      );
    }
    await waitForDaemons(state, DAEMON_START_DEADLINE_MS);
    if (opts.scenario) {
      state.scenarioLoad = await loadScenario(
        state,
        scenarioConfiguration(scenarioFiles(opts.scenario, names, `h${net.tag}-`, host)),
      );
      writeLabState(state);
      say(`scenario ${opts.scenario}: ${state.scenarioLoad}`);
    }
  } catch (err) {
    await labDown(dir).catch(() => {});
    throw err;
  }
  return state;
}

/** Where a lab in `dir` keeps its scenario files, and the node binary that runs its web server. */
export function scenarioHost(dir: string): ScenarioHost {
  return { scenarioDir: join(resolve(dir), 'scenario'), nodeBin: process.execPath };
}

/** How long to wait for a DC to accept the scenario (Raft election after start-up). */
const SCENARIO_LOAD_DEADLINE_MS = 30_000;
const PROPOSE_WAIT_MS = 7_000;

/**
 * Proposes the scenario's configuration to the replicated CIB through the DC's control socket
 * (`cib {"op":"replace-configuration",…}`). Returns a sentence saying what happened; a refusal
 * is reported, not thrown, so the lab stays up for inspection.
 */
async function loadScenario(s: LabState, configuration: Configuration): Promise<string> {
  const command = `cib ${JSON.stringify({ op: 'replace-configuration', configuration })}`;
  const until = Date.now() + SCENARIO_LOAD_DEADLINE_MS;
  let last = 'no DC elected yet';
  while (Date.now() < until) {
    for (const n of s.nodes) {
      let st: DaemonStatus;
      try {
        st = (await queryControl(n.controlSocket, 'status', STATUS_TIMEOUT_MS)) as DaemonStatus;
      } catch {
        continue;
      }
      const dc = s.nodes.find((x) => x.name === st.dc);
      if (!dc) continue;
      const r = (await queryControl(dc.controlSocket, command, PROPOSE_WAIT_MS).catch((e: Error) => ({
        error: e.message,
      }))) as {
        ok?: boolean;
        index?: number;
        error?: string;
        message?: string;
        code?: string;
      };
      if (r.ok === true)
        return `configuration committed to the replicated CIB at log index ${r.index} (via DC ${dc.name})`;
      last = r.error ?? `${r.code}: ${r.message}`;
      if (r.error !== undefined) return `not loaded: the DC ${dc.name} refused it: ${last}`;
    }
    await sleep(200);
  }
  return `not loaded within ${SCENARIO_LOAD_DEADLINE_MS} ms: ${last}`;
}

function writeNodeFiles(s: LabState, profile: string): void {
  const key = join(s.dir, 'authkey');
  generateKeyFile(key, { force: true });
  const nodes = s.nodes.map((n, i) => ({
    id: i + 1,
    name: n.name,
    links: n.addrs.map((a) => `${a}:${DAEMON_PORT}`),
    ...(n.witness ? { witness: true } : {}),
  }));
  const voters = s.nodes.filter((n) => !n.witness).length;
  for (const n of s.nodes) {
    mkdirSync(join(n.dir, 'etc'), { recursive: true, mode: 0o700 });
    mkdirSync(join(n.dir, 'lib'), { recursive: true, mode: 0o700 });
    // Each node has its own copy of the key, as separate machines would.
    copyFileSync(key, join(n.dir, 'etc', 'authkey'));
    const cfg = {
      cluster: `lab-${s.tag}`,
      // As the daemon sees them in its own mount namespace (namespacePrologue).
      keyFile: `${LAB_NODE_ETC}/authkey`,
      profile,
      sendMode: 'best',
      stateDir: LAB_NODE_STATE,
      controlSocket: n.controlSocket,
      quorum: { twoNode: voters === 2 && !s.nodes.some((x) => x.witness) },
      nodes,
    };
    writeFileSync(n.configFile, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  }
}

export interface LabNodeReport {
  readonly name: string;
  readonly ns: string;
  readonly addrs: readonly string[];
  readonly pid: number | null;
  readonly running: boolean;
  readonly paused: boolean;
  readonly cutLinks: readonly number[];
  readonly status?: DaemonStatus;
  readonly error?: string;
}

/** `crm_mon` as a daemon answers it (src/daemon/daemon.ts). */
export interface CrmMonAnswer {
  readonly text: string;
  readonly dc: string | null;
  readonly source: 'dc' | 'replicated' | 'none';
}

/** Which lab nodes have the VIP on an interface that is up (`ip -n NS addr show up`). */
export function vipHolders(state: LabState): string[] {
  return state.nodes
    .filter((n) => {
      try {
        return execFileSync('ip', ['-n', n.ns, '-o', 'addr', 'show', 'up'], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        }).includes(` ${LAB_VIP}/`);
      } catch {
        return false;
      }
    })
    .map((n) => n.name);
}

/** The resources as the DC reports them (`crm_mon -1`), asked of the DC's daemon. */
export async function labResources(state: LabState): Promise<CrmMonAnswer | undefined> {
  let fallback: CrmMonAnswer | undefined;
  for (const n of state.nodes) {
    if (!isLabDaemon(n) || n.paused || n.witness) continue;
    try {
      const a = (await queryControl(n.controlSocket, 'crm_mon', STATUS_TIMEOUT_MS * 2)) as CrmMonAnswer;
      if (typeof a?.text !== 'string') continue;
      if (a.source === 'dc') return a;
      const dc = state.nodes.find((x) => x.name === a.dc);
      if (dc && dc !== n && isLabDaemon(dc) && !dc.paused) {
        const d = (await queryControl(dc.controlSocket, 'crm_mon', STATUS_TIMEOUT_MS * 2).catch(
          () => undefined,
        )) as CrmMonAnswer | undefined;
        if (d?.source === 'dc') return d;
      }
      fallback ??= a;
    } catch {
      // Try the next node.
    }
  }
  return fallback;
}

export async function labStatus(dir = DEFAULT_LAB_DIR): Promise<{
  state: LabState;
  nodes: LabNodeReport[];
  resources?: CrmMonAnswer;
  vip: string[];
}> {
  const state = readLabState(dir);
  const nodes: LabNodeReport[] = [];
  for (const n of state.nodes) {
    const running = isLabDaemon(n);
    const base = {
      name: n.name,
      ns: n.ns,
      addrs: n.addrs,
      pid: n.pid,
      running,
      paused: n.paused,
      cutLinks: n.cutLinks,
    };
    if (!running || n.paused) {
      nodes.push(base);
      continue;
    }
    try {
      nodes.push({
        ...base,
        status: (await queryControl(n.controlSocket, 'status', STATUS_TIMEOUT_MS)) as DaemonStatus,
      });
    } catch (err) {
      nodes.push({ ...base, error: (err as Error).message });
    }
  }
  const resources = await labResources(state);
  return { state, nodes, ...(resources ? { resources } : {}), vip: vipHolders(state) };
}

export function renderLabStatus(r: {
  state: LabState;
  nodes: readonly LabNodeReport[];
  resources?: CrmMonAnswer;
  vip?: readonly string[];
}): string {
  const s = r.state;
  const lines = [
    `lab ${s.tag} in ${s.dir}: ${s.nodes.length} nodes, ${s.links} links each${s.scenario ? `, scenario ${s.scenario}` : ''}`,
  ];
  const dc = r.nodes.find((n) => n.status?.dc)?.status?.dc ?? null;
  const cib = r.nodes.find((n) => n.status?.consensus?.cib)?.status?.consensus?.cib;
  lines.push(
    `DC: ${dc ?? 'none'}${cib ? `; replicated CIB epoch ${cib.epoch}, num_updates ${cib.numUpdates}` : ''}${s.scenarioLoad ? `; scenario: ${s.scenarioLoad}` : ''}`,
  );
  for (const n of r.nodes) {
    const state = !n.running
      ? 'DOWN (daemon not running)'
      : n.paused
        ? 'PAUSED (SIGSTOP)'
        : n.error
          ? `UNREACHABLE (${n.error})`
          : 'running';
    const q = n.status
      ? `, quorum ${n.status.quorum.quorate ? 'yes' : 'no'} (${n.status.quorum.votes}/${n.status.quorum.expectedVotes})`
      : '';
    const members = n.status
      ? `, sees ${n.status.members
          .filter((m) => m.state === 'member' || m.state === 'self')
          .map((m) => m.name)
          .join(' ')}`
      : '';
    const cut = n.cutLinks.length ? `, links cut: ${n.cutLinks.join(',')}` : '';
    lines.push(
      `  ${n.name.padEnd(4)} ${n.addrs.join(' ').padEnd(26)} pid ${String(n.pid ?? '-').padEnd(8)} ${state}${q}${members}${cut}`,
    );
  }
  if (s.scenario) {
    const holders = r.vip ?? [];
    lines.push(
      `VIP ${LAB_VIP}: ${holders.length === 0 ? 'on no node' : `on ${holders.join(', ')}`}${holders.length > 1 ? ' (MORE THAN ONE NODE)' : ''}`,
    );
  }
  lines.push(
    `client: ${s.client.ns} (${s.client.addr}); run commands there with: ip netns exec ${s.client.ns} CMD`,
  );
  if (r.resources) {
    lines.push(
      '',
      `Resources (${r.resources.source === 'dc' ? `as the DC ${r.resources.dc} sees them` : 'from the replicated CIB; the DC did not answer'}):`,
      r.resources.text.trimEnd(),
    );
  }
  return lines.join('\n');
}

/**
 * Removes the lab: stops every daemon it started (by recorded PID, checked against its command
 * line), deletes every namespace it made and its directory. Returns what it did, line by line.
 */
export async function labDown(dir = DEFAULT_LAB_DIR): Promise<string[]> {
  needRoot();
  const state = readLabState(dir);
  const done: string[] = [];
  const ours = state.nodes.filter((n) => isLabDaemon(n));
  for (const n of ours) {
    process.kill(n.pid!, 'SIGTERM');
    if (n.paused) process.kill(n.pid!, 'SIGCONT');
  }
  const until = Date.now() + STOP_GRACE_MS;
  const cleanUntil = Date.now() + CLEAN_STOP_MS;
  while (ours.some((n) => pidAlive(n.pid!)) && Date.now() < cleanUntil) await sleep(POLL_MS);
  for (const n of ours) {
    if (!pidAlive(n.pid!)) continue;
    process.kill(n.pid!, 'SIGTERM');
    done.push(
      `asked ${n.name} (pid ${n.pid}) again to stop: its clean shutdown took over ${CLEAN_STOP_MS} ms`,
    );
  }
  while (ours.some((n) => pidAlive(n.pid!)) && Date.now() < until) await sleep(POLL_MS);
  for (const n of ours) {
    if (pidAlive(n.pid!)) {
      process.kill(n.pid!, 'SIGKILL');
      done.push(`killed ${n.name} (pid ${n.pid}) after ${STOP_GRACE_MS} ms`);
    } else {
      done.push(`stopped ${n.name} (pid ${n.pid})`);
    }
  }
  // Whatever the cluster started inside the nodes (web server…) goes with them.
  for (const ns of state.namespaces) {
    // First fail the I/O of nbdfuse processes whose node is gone: killing them with their ext4
    // still mounted would leave them in D state and their loop devices attached.
    const aborted = abortDeadNodeFuse(ns, resolve(dir));
    if (aborted.length) done.push(`aborted FUSE connection(s) ${aborted.join(', ')} in ${ns}`);
    const k = killNamespaceProcesses(ns);
    if (k) done.push(`killed ${k} processes left in ${ns}`);
  }
  done.push(...releaseVolumeLeftovers(resolve(dir)));
  done.push(...removeNodeMountPoints(state.madeMountPoints));
  for (const ns of [...state.namespaces].reverse()) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      done.push(`deleted namespace ${ns}`);
    } catch {
      // Already gone.
    }
  }
  rmSync(dir, { recursive: true, force: true });
  done.push(`removed ${dir}`);
  return done;
}

export type ChaosFault = 'kill' | 'cut-link' | 'partition' | 'pause' | 'heal' | 'restart';

export interface ChaosOptions {
  readonly fault: ChaosFault;
  readonly node?: string;
  readonly link?: number;
}

/** The node the fault hits by default: the DC as the live daemons report it, else the first node. */
async function defaultTarget(state: LabState): Promise<LabNodeState> {
  for (const n of state.nodes) {
    if (!isLabDaemon(n) || n.paused) continue;
    try {
      const st = (await queryControl(n.controlSocket, 'status', STATUS_TIMEOUT_MS)) as DaemonStatus;
      const dc = state.nodes.find((x) => x.name === st.dc);
      if (dc) return dc;
    } catch {
      // Try the next one.
    }
  }
  return state.nodes.find((n) => !n.witness) ?? state.nodes[0]!;
}

function setLink(state: LabState, n: LabNodeState, link: number, up: boolean): void {
  execFileSync('ip', ['-n', state.switchNs, 'link', 'set', `n${n.index}l${link}`, up ? 'up' : 'down'], {
    stdio: 'pipe',
  });
}

/** Kill rounds: processes may fork while we kill. */
const MAX_KILL_ROUNDS = 10;

/**
 * SIGKILLs every process inside a lab namespace (`ip netns pids`: resources the cluster started
 * there, e.g. the web server, which outlive the daemon). Returns how many it killed.
 */
export function killNamespaceProcesses(ns: string): number {
  let killed = 0;
  for (let round = 0; round < MAX_KILL_ROUNDS; round++) {
    let pids: number[] = [];
    try {
      pids = execFileSync('ip', ['netns', 'pids', ns], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      })
        .split(/\s+/)
        .filter(Boolean)
        .map(Number)
        .filter((p) => p > 1 && p !== process.pid);
    } catch {
      break;
    }
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // Gone already.
      }
    }
    execFileSync('sleep', ['0.05']);
  }
  return killed;
}

/**
 * What a reboot does to a lab node before its daemon starts again: nothing of the old boot runs
 * (leftover processes in its namespace are killed: resources survive a kill -9 of the daemon),
 * addresses a resource added (the VIP) are gone, and every link is up on both sides (a fence
 * device may have taken them down). Returns what it did.
 */
function bootNode(state: LabState, n: LabNodeState): string {
  const did: string[] = [];
  const aborted = abortDeadNodeFuse(n.ns, resolve(state.dir));
  if (aborted.length) did.push(`aborted FUSE connection(s) ${aborted.join(', ')} of the old boot`);
  const killed = killNamespaceProcesses(n.ns);
  if (killed) did.push(`killed ${killed} leftover processes`);
  did.push(...releaseVolumeLeftovers(resolve(n.dir)));
  for (let l = 0; l < state.links; l++) {
    const dev = `link${l}`;
    const own = n.addrs[l];
    let text = '';
    try {
      text = execFileSync('ip', ['-n', n.ns, '-o', '-4', 'addr', 'show', 'dev', dev], { encoding: 'utf8' });
    } catch {
      continue;
    }
    for (const m of text.matchAll(/inet (\S+)/g)) {
      const cidr = m[1]!;
      if (cidr.split('/')[0] === own) continue;
      execFileSync('ip', ['-n', n.ns, 'addr', 'del', cidr, 'dev', dev], { stdio: 'ignore' });
      did.push(`removed ${cidr} from ${dev}`);
    }
    execFileSync('ip', ['-n', n.ns, 'link', 'set', dev, 'up'], { stdio: 'ignore' });
    setLink(state, n, l, true);
  }
  did.push('links up');
  return did.join(', ');
}

/**
 * The node a fault without --node goes to: restart boots a node whose daemon is down, heal
 * repairs a node that was cut or paused, every other fault hits the default target.
 */
async function chaosTarget(state: LabState, fault: ChaosFault): Promise<LabNodeState | undefined> {
  if (fault === 'restart') {
    const down = state.nodes.find((x) => !isLabDaemon(x));
    if (!down)
      throw new HaloError('already-running', "every lab node's daemon is running: nothing to restart");
    return down;
  }
  if (fault === 'heal') {
    const hurt = state.nodes.find((x) => x.cutLinks.length > 0 || x.paused);
    if (hurt) return hurt;
  }
  return defaultTarget(state);
}

/** Injects one fault (or heals) and returns a sentence saying what was done. */
export async function labChaos(dir: string, o: ChaosOptions): Promise<string> {
  needRoot();
  const state = readLabState(dir);
  const n =
    o.node !== undefined ? state.nodes.find((x) => x.name === o.node) : await chaosTarget(state, o.fault);
  if (!n)
    throw new HaloError(
      'unknown-node',
      `no lab node named '${o.node}' (nodes: ${state.nodes.map((x) => x.name).join(', ')})`,
    );
  const link = o.link ?? 0;
  if (!Number.isInteger(link) || link < 0 || link >= state.links)
    throw new HaloError('bad-argument', `--link must be 0..${state.links - 1}, got ${o.link}`);
  let what: string;
  switch (o.fault) {
    case 'kill': {
      if (!isLabDaemon(n)) throw new HaloError('not-running', `the daemon of ${n.name} is not running`);
      process.kill(n.pid!, 'SIGKILL');
      what = `killed the daemon of ${n.name} (kill -9 ${n.pid})`;
      n.pid = null;
      n.paused = false;
      break;
    }
    case 'cut-link':
      setLink(state, n, link, false);
      if (!n.cutLinks.includes(link)) n.cutLinks.push(link);
      what = `cut link ${link} of ${n.name}`;
      break;
    case 'partition':
      for (let l = 0; l < state.links; l++) {
        setLink(state, n, l, false);
        if (!n.cutLinks.includes(l)) n.cutLinks.push(l);
      }
      what = `isolated ${n.name}: all ${state.links} links cut`;
      break;
    case 'pause':
      if (!isLabDaemon(n)) throw new HaloError('not-running', `the daemon of ${n.name} is not running`);
      process.kill(n.pid!, 'SIGSTOP');
      n.paused = true;
      what = `paused the daemon of ${n.name} (SIGSTOP ${n.pid})`;
      break;
    case 'heal':
      for (const l of n.cutLinks) setLink(state, n, l, true);
      if (n.paused && isLabDaemon(n)) process.kill(n.pid!, 'SIGCONT');
      what = `healed ${n.name}: links ${n.cutLinks.length ? n.cutLinks.join(',') : 'none'} restored${n.paused ? ', daemon resumed' : ''}`;
      n.cutLinks = [];
      n.paused = false;
      break;
    case 'restart': {
      if (isLabDaemon(n))
        throw new HaloError('already-running', `the daemon of ${n.name} is running (pid ${n.pid})`);
      const boot = bootNode(state, n);
      n.pid = spawnDaemon(n, state.deviceGuard);
      n.paused = false;
      n.cutLinks = [];
      what = `restarted ${n.name} as a rebooted machine (${boot}): daemon pid ${n.pid}`;
      break;
    }
  }
  writeLabState(state);
  if (o.fault === 'restart' && state.scenario === 'seed-004') {
    // A rebooted seed-004 node also runs the seed's boot steps (its own root, `drbdadm up r0`):
    // without them it has no volume engine and replication never becomes whole. Imported when
    // needed: scenario_seed004.ts builds on this module.
    const { seed004NodeBoot } = await import('./scenario_seed004.ts');
    try {
      what += `\n${await seed004NodeBoot(state, n.name)}`;
    } catch (err) {
      throw new HaloError(
        'boot-steps-failed',
        `${what}, but its boot steps failed: ${(err as Error).message}`,
      );
    }
  }
  return what;
}

/** Volume CLI steps at `lab up` (engines starting under tsx on a busy host; the initial sync). */
const VOLUME_STEP_TIMEOUT_MS = 60_000;
/** Size of the device guard's backing file (zeros: no filesystem on it). */
const DEVICE_GUARD_BYTES = 1 << 20;
const VOLUME_SYNC_DEADLINE_MS = 120_000;

/** Runs `halo volume ARGS` (the engine's own entry), inside `ns` when given; returns stdout. */
export function volumeCli(args: readonly string[], ns?: string): string {
  const here = fileURLToPath(import.meta.url);
  const entry = fileURLToPath(
    new URL(`../volume/engine_main${here.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
  );
  const node = [...(here.endsWith('.ts') ? ['--import', 'tsx'] : []), entry, 'volume', ...args];
  const [cmd, argv] = ns
    ? ['ip', ['netns', 'exec', ns, process.execPath, ...node]]
    : [process.execPath, node];
  try {
    return execFileSync(cmd as string, argv as string[], {
      encoding: 'utf8',
      timeout: VOLUME_STEP_TIMEOUT_MS,
      cwd: daemonCommand().cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new HaloError(
      'volume-setup-failed',
      `halo volume ${args.join(' ')}${ns ? ` (in ${ns})` : ''} failed: ${(e.stderr ?? '').trim() || e.message}`,
    );
  }
}

/** Where a scenario keeps a replicated volume's config, per-node run dirs and disk files. */
export interface LabVolumePaths {
  readonly drbdConf: string;
  runDir(node: string): string;
  disk(node: string): string;
}

/**
 * A fresh replicated volume on the lab's nodes: a zeroed disk file of `diskMib` MiB per node,
 * fresh metadata, both engines up and connected, the first node forced Primary and the full
 * initial sync waited for (bounded). Leaves the first node Primary.
 */
export async function createSyncedVolume(
  nodes: readonly LabNodeState[],
  res: string,
  diskMib: number,
  d: LabVolumePaths,
): Promise<void> {
  const g = (n: LabNodeState) => ['-c', d.drbdConf, '--node', n.name, '--run-dir', d.runDir(n.name)];
  for (const n of nodes) {
    mkdirSync(d.runDir(n.name), { recursive: true });
    closeSync(openSync(d.disk(n.name), 'w'));
    execFileSync('truncate', ['-s', `${diskMib}M`, d.disk(n.name)]);
    volumeCli([...g(n), 'create-md', res]);
  }
  for (const n of nodes) volumeCli([...g(n), 'up', res], n.ns);
  const first = nodes[0]!;
  volumeCli([...g(first), 'primary', '--force', res]);
  const until = Date.now() + VOLUME_SYNC_DEADLINE_MS;
  for (;;) {
    const st = JSON.parse(volumeCli([...g(first), '--output', 'json', 'status', res])) as VolumeStatusJson;
    if (st.disk === 'UpToDate' && (nodes.length < 2 || st.peerDisk === 'UpToDate')) return;
    if (Date.now() > until)
      throw new HaloError(
        'volume-setup-failed',
        `the initial sync of ${res} did not finish within ${VOLUME_SYNC_DEADLINE_MS} ms: ${st.role} ${st.disk}/${st.peerDisk} ${st.conn}`,
      );
    await sleep(200);
  }
}

/**
 * The seed-003 volume's state on a lab node as `halo volume status` reports it (asked of that
 * node's engine through its control socket), or undefined when no engine runs there.
 */
export function labVolumeStatus(state: LabState, node: string): VolumeStatusJson | undefined {
  const n = state.nodes.find((x) => x.name === node);
  if (!n) throw new HaloError('unknown-node', `no lab node named '${node}'`);
  const d = seed003Paths(scenarioHost(state.dir));
  const runDir = d.runDir(n.name);
  if (!existsSync(join(runDir, `${SEED003_VOLUME}.ctl`)) && !existsSync(runDir)) return undefined;
  try {
    return JSON.parse(
      volumeCli([
        '-c',
        d.drbdConf,
        '--node',
        n.name,
        '--run-dir',
        runDir,
        '--output',
        'json',
        'status',
        SEED003_VOLUME,
      ]),
    ) as VolumeStatusJson;
  } catch {
    return undefined;
  }
}

export interface VolumeStatusJson {
  readonly role: string;
  readonly disk: string;
  readonly conn: string;
  readonly peerDisk: string;
}

/**
 * Seed-003's volume, made as an admin would before handing it to the cluster: a backing file per
 * node, fresh metadata, both engines up and connected, the first node forced Primary (fresh disks
 * are Inconsistent and never get a promotion score), the full initial sync, one mkfs.ext4 and the
 * first page written through the attached device, then Secondary and down on both. The cluster
 * starts it again through `ocf:linbit:drbd` (halo:volume).
 */
async function prepareSeed003Volume(
  nodes: readonly LabNodeState[],
  host: ScenarioHost,
  say: (line: string) => void,
): Promise<void> {
  const d = seed003Paths(host);
  const res = SEED003_VOLUME;
  const g = (n: LabNodeState) => ['-c', d.drbdConf, '--node', n.name, '--run-dir', d.runDir(n.name)];
  await createSyncedVolume(nodes, res, SEED003_DISK_MIB, d);
  const first = nodes[0]!;
  say(`volume ${res}: initial sync done (${SEED003_DISK_MIB} MiB per node), making ext4 on ${first.name}`);
  const mnt = join(dirname(host.scenarioDir), 'mkfs-mnt');
  volumeCli([...g(first), 'attach', res, '--mount', mnt, '--mkfs', 'ext4']);
  try {
    writeFileSync(
      join(mnt, SEED003_INDEX),
      `<p>halo lab seed-003: this page lives on the replicated volume ${res}</p>\n`,
    );
    mkdirSync(join(mnt, 'files'), { recursive: true });
    prepareSeed003Filesystem(mnt, host, say);
    execFileSync('sync', ['-f', join(mnt, SEED003_INDEX)]);
  } finally {
    volumeCli([...g(first), 'detach', res]);
    rmSync(mnt, { recursive: true, force: true });
  }
  volumeCli([...g(first), 'secondary', res]);
  for (const n of nodes) volumeCli([...g(n), 'down', res]);
}

/**
 * Longest wait for one `losetup -d` or `umount -l` while cleaning up: with I/O stuck on a dead
 * FUSE daemon they can block, and a lab going down must not hang with them.
 */
const LOSETUP_TIMEOUT_MS = 10_000;

/**
 * Loop devices and FUSE mounts a volume left under `dir` when its node was killed (a fenced
 * node's nbdfuse dies with it, but its loop device is the kernel's and stays). Returns what it freed.
 */
export function releaseVolumeLeftovers(dir: string): string[] {
  const done: string[] = [];
  const mountsUnder = (): { at: string; fuse: boolean }[] => {
    let text = '';
    try {
      text = readFileSync('/proc/self/mounts', 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .map((line) => line.split(' '))
      .filter((f) => f[1]?.replace(/\\040/g, ' ').startsWith(`${dir}/`))
      .map((f) => ({ at: f[1]!.replace(/\\040/g, ' '), fuse: (f[2] ?? '').startsWith('fuse') }));
  };
  const umount = (at: string) => {
    try {
      execFileSync('umount', ['-l', at], { stdio: 'ignore', timeout: LOSETUP_TIMEOUT_MS });
      done.push(`unmounted ${at}`);
    } catch {
      // Gone meanwhile.
    }
  };
  // The nbdfuse daemons are dead (or stopped) by now: abort their FUSE connections first, so
  // I/O of the filesystems and loop devices on them fails at once instead of waiting forever.
  for (const m of mountsUnder())
    if (m.fuse && abortFuseConnection(m.at)) done.push(`aborted the FUSE connection of ${m.at}`);
  // Filesystems on the volume first, then its loop devices, then the nbdfuse mounts under them.
  for (const m of mountsUnder()) if (!m.fuse) umount(m.at);
  // A loop device whose nbdfuse lived in a node's (now dead) mount namespace shows its backing
  // file relative to that namespace ("/disk"): the agent's attach record names it.
  const recorded = new Set(attachRecords(dir));
  for (const l of boundLoopDevices()) {
    const back = l.backFile;
    if (!back.startsWith(`${dir}/`) && !(recorded.has(l.name) && back === '/disk')) continue;
    try {
      execFileSync('losetup', ['-d', l.name], { stdio: 'ignore', timeout: LOSETUP_TIMEOUT_MS });
      done.push(`freed loop device ${l.name} (${back})`);
    } catch {
      // Busy (still mounted somewhere): the kernel frees it when that goes.
    }
  }
  for (const m of mountsUnder()) umount(m.at);
  // The records describe a boot that is over (a reboot empties /run): a later promote must not
  // "detach" a loop device number that by now belongs to someone else.
  for (const f of attachRecordFiles(dir)) {
    rmSync(f, { force: true });
    done.push(`removed ${f}`);
  }
  return done;
}

/** Volume attach records (`<node>/volume/*.attach.json`, or `volume/` for a node dir) under `dir`. */
function attachRecordFiles(dir: string): string[] {
  const out: string[] = [];
  const volumeDirs = [join(dir, 'volume')];
  try {
    for (const e of readdirSync(dir, { withFileTypes: true }))
      if (e.isDirectory()) volumeDirs.push(join(dir, e.name, 'volume'));
  } catch {
    return out;
  }
  for (const v of volumeDirs) {
    let names: string[] = [];
    try {
      names = readdirSync(v).filter((f) => f.endsWith('.attach.json'));
    } catch {
      continue;
    }
    for (const f of names) out.push(join(v, f));
  }
  return out;
}

/** Loop devices named by the volume attach records under a lab dir. */
function attachRecords(dir: string): string[] {
  const out: string[] = [];
  for (const f of attachRecordFiles(dir)) {
    try {
      const loop = (JSON.parse(readFileSync(f, 'utf8')) as { loop?: unknown }).loop;
      if (typeof loop === 'string' && loop.startsWith('/dev/loop')) out.push(loop);
    } catch {
      // Half-written record: nothing to free.
    }
  }
  return out;
}
