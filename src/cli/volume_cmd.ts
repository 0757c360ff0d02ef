/**
 * `halo volume …`: drbdadm for halo's userspace replicated volumes. Reads drbd.conf, and talks
 * to the running engine of a resource through its control socket (`RUNDIR/RES.ctl`), as
 * drbdadm talks to the kernel. `up` starts the engine in the background; `run` runs it in the
 * foreground (systemd-friendly, logs to stderr).
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type Command, Option } from 'commander';
import { parseDrbdConf } from '../cib/drbd_conf.ts';
import { nodeDrbdIo } from '../cib/drbd_conf_fs.ts';
import type { DrbdConfig } from '../cib/drbd_model.ts';
import { formatDiagnostic, HaloError } from '../lib/errors.ts';
import { releaseFuseMount } from '../lib/fuse.ts';
import { pidAlive } from '../lib/pid.ts';
import type { LogFields, Logger, LogLevel } from '../lib/ports.ts';
import { parseDrbdSize, type VolumeConfig } from '../volume/config.ts';
import type { CoreStatus } from '../volume/core.ts';
import {
  controlRequest,
  createMetadata,
  nbdSocketPath,
  readMetadata,
  VolumeEngine,
} from '../volume/engine.ts';
import { misplacedMetadata, resizeVolume } from '../volume/resize.ts';
import { formatDrbdadmStatus, formatGi, formatProcDrbd } from '../volume/status_format.ts';
import { volumeConfigAt } from './drbd_check.ts';
import { example } from './help.ts';

const run = promisify(execFile);

/** Where engines keep their sockets and logs unless --run-dir says otherwise. */
export const DEFAULT_RUN_DIR = '/run/halo/volume';
/** How long `up` waits for a background engine to listen. */
const UP_TIMEOUT_MS = 15_000;
const POLL_MS = 50;

interface GlobalOpts {
  config?: string;
  node?: string;
  runDir: string;
  output: string;
}

/** drbdadm's word for every resource of the config (this node's, here). */
export const ALL_RESOURCES = 'all';

function loadConfig(g: GlobalOpts, res: string): VolumeConfig {
  return volumeConfigAt(readDrbdConf(g), res, g.node ?? hostname());
}

/** The resources of drbd.conf this node has an `on NODE` section in, in file order (`all`). */
function resourcesOfThisNode(g: GlobalOpts): string[] {
  const conf = readDrbdConf(g);
  const self = g.node ?? hostname();
  const names = conf.resources.filter((r) => r.hosts.some((h) => h.name === self)).map((r) => r.name);
  if (names.length === 0)
    throw new HaloError(
      'unknown-node',
      `no resource in ${conf.files[0] ?? 'drbd.conf'} has an "on ${self}" section (resources: ${conf.resources.map((r) => r.name).join(', ') || 'none'}); pass --node`,
    );
  return names;
}

function readDrbdConf(g: GlobalOpts): DrbdConfig {
  const file = g.config ?? '/etc/drbd.conf';
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new HaloError('config-unreadable', `cannot read ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const parsed = parseDrbdConf(text, file, nodeDrbdIo);
  if (!parsed.ok) {
    throw new HaloError('bad-config', parsed.diagnostics.map(formatDiagnostic).join('\n'));
  }
  return parsed.config;
}

function stderrLogger(fields: LogFields = {}): Logger {
  return {
    log(level: LogLevel, msg: string, f?: LogFields) {
      const extra = { ...fields, ...f };
      const kv = Object.entries(extra)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' ');
      process.stderr.write(`${new Date().toISOString()} ${level} ${msg}${kv ? ` (${kv})` : ''}\n`);
    },
    child(f: LogFields) {
      return stderrLogger({ ...fields, ...f });
    },
  };
}

/** The command that runs this CLI again (under tsx in development, compiled JS otherwise). */
export function selfCommand(): { exec: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  const entry = fileURLToPath(new URL(`../volume/engine_main${extname(here)}`, import.meta.url));
  return { exec: process.execPath, args: [...process.execArgv, entry] };
}

function print(g: GlobalOpts, text: string, json: unknown): void {
  if (g.output === 'json') {
    process.stdout.write(
      `${JSON.stringify(json, (_k, v) => (typeof v === 'bigint' ? v.toString(16).toUpperCase().padStart(16, '0') : v))}\n`,
    );
  } else process.stdout.write(text);
}

async function admin(g: GlobalOpts, res: string, req: object): Promise<Record<string, unknown>> {
  const reply = await controlRequest(g.runDir, res, req);
  if (!reply)
    throw new HaloError(
      'not-running',
      `volume ${res} is not running here; start it with "halo volume up ${res}"`,
    );
  if (reply.ok !== true)
    throw new HaloError(String(reply.code ?? 'failed'), `${res}: ${String(reply.message ?? 'failed')}`);
  return reply;
}

/** How long `resize` waits for an online grow (both nodes move their metadata; not the resync). */
const RESIZE_TIMEOUT_MS = 120_000;

/**
 * Online grow: the running engine asks its peer to grow, grows here, and answers once both did.
 * The NBD export's size is fixed per connection: clients that connect afterwards (a new
 * `attach`, or after a failover) see the new size.
 */
async function resizeOnline(
  g: GlobalOpts,
  res: string,
  sizeBytes: number | undefined,
  assumeClean: boolean,
): Promise<void> {
  const req = { cmd: 'resize', assumeClean, ...(sizeBytes !== undefined ? { sizeBytes } : {}) };
  const reply = await controlRequest(g.runDir, res, req, RESIZE_TIMEOUT_MS);
  if (!reply)
    throw new HaloError(
      'not-running',
      `volume ${res} stopped before the resize; run it again (offline if it stays down)`,
    );
  if (reply.ok !== true)
    throw new HaloError(String(reply.code ?? 'failed'), `${res}: ${String(reply.message ?? 'failed')}`);
  const { oldBytes, newBytes, newAreaBlocks } = reply as {
    oldBytes: number;
    newBytes: number;
    newAreaBlocks: number;
  };
  const resync =
    newAreaBlocks > 0
      ? `the new area (${newAreaBlocks} blocks) resyncs from the Primary now (halo volume status ${res})`
      : 'the new area is not resynced (--assume-clean)';
  print(
    g,
    `${res}: grown online from ${oldBytes} to ${newBytes} bytes on both nodes; ${resync}; NBD clients that connect from now on (attach, failover) see the new size\n`,
    { ...reply, online: true },
  );
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

async function up(g: GlobalOpts, res: string, cfg: VolumeConfig): Promise<void> {
  if (await controlRequest(g.runDir, res, { cmd: 'status' })) {
    await admin(g, res, { cmd: 'connect' });
    return;
  }
  mkdirSync(g.runDir, { recursive: true });
  const logPath = join(g.runDir, `${res}.log`);
  const fd = openSync(logPath, 'a');
  const { exec, args } = selfCommand();
  const argv = [
    ...args,
    'volume',
    '-c',
    g.config ?? '/etc/drbd.conf',
    '--node',
    cfg.self.name,
    '--run-dir',
    g.runDir,
    'run',
    res,
  ];
  const child = spawn(exec, argv, { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let exited: number | null = null;
  child.on('exit', (code) => {
    exited = code ?? -1;
  });
  child.unref();
  // Poll for the control socket (a real process starting: bounded, never a protocol wait).
  for (let waited = 0; waited < UP_TIMEOUT_MS; waited += POLL_MS) {
    if (exited !== null) {
      const tail = readFileSync(logPath, 'utf8').split('\n').slice(-5).join('\n');
      throw new HaloError('engine-failed', `engine for ${res} exited with ${exited}:\n${tail}`);
    }
    const st = await controlRequest(g.runDir, res, { cmd: 'status' }).catch(() => undefined);
    if (st) return;
    await sleep(POLL_MS);
  }
  throw new HaloError(
    'engine-timeout',
    `engine for ${res} did not listen within ${UP_TIMEOUT_MS} ms (log: ${logPath})`,
  );
}

async function runForeground(g: GlobalOpts, cfg: VolumeConfig): Promise<void> {
  const engine = new VolumeEngine(
    cfg,
    { runDir: g.runDir },
    stderrLogger({ resource: cfg.resource, node: cfg.self.name }),
  );
  await engine.start();
  await engine.command({ cmd: 'connect' });
  const stop = () => void engine.stop(true);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await engine.exited;
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
}

interface AttachState {
  fuseDir: string;
  loop: string;
  mount: string;
}

/** A program and its arguments, run without a shell. */
export interface MkfsCommand {
  readonly file: string;
  readonly args: readonly string[];
}

/**
 * What halo passes before the user's options: quiet, and "yes, this device" where the tool would
 * otherwise ask or refuse (mke2fs asks before formatting a device that holds a filesystem;
 * mkfs.xfs and mkfs.btrfs refuse to). The user's options come after, so they can override.
 */
const MKFS_DEFAULT_ARGS: Readonly<Record<string, readonly string[]>> = {
  ext2: ['-q', '-F'],
  ext3: ['-q', '-F'],
  ext4: ['-q', '-F'],
  xfs: ['-q', '-f'],
  btrfs: ['-q', '-f'],
};
/** A filesystem type as mkfs.TYPE names it: `ext4`, `xfs`, `vfat`, `fuse.sshfs`-like dotted names. */
const MKFS_TYPE = /^[a-z0-9]+(?:\.[a-z0-9]+)?$/;
/**
 * One word of --mkfs-options: what a shell would pass unchanged. Quotes, backslashes, `$`,
 * globs, `;`, `|`, `&`, redirections and the like would change meaning in a shell, and guessing
 * which meaning was wanted could format with the wrong options, so they are refused.
 */
const MKFS_OPTION_WORD = /^[A-Za-z0-9_.,:=/+%@^-]+$/;
/** Most words --mkfs-options takes: more is a mistake, not a filesystem. */
const MAX_MKFS_OPTIONS = 64;

/**
 * `mkfs.TYPE [defaults] OPTIONS… DEVICE` for `halo volume attach --mkfs TYPE --mkfs-options
 * OPTIONS`. OPTIONS is split at spaces and tabs, as a shell splits plain words (`-j -m 0` →
 * `-j`, `-m`, `0`). Throws `bad-argument` for a TYPE that is not a plain name and for options
 * a shell would read differently (quotes, `$`, `;`…), naming the offending word.
 */
export function mkfsCommand(type: string, options: string | undefined, device: string): MkfsCommand {
  if (!MKFS_TYPE.test(type))
    throw new HaloError(
      'bad-argument',
      `--mkfs '${type}' is not a filesystem type; give one like ext4 or xfs`,
    );
  const words = (options ?? '').split(/[ \t]+/).filter((w) => w !== '');
  if (words.length > MAX_MKFS_OPTIONS)
    throw new HaloError(
      'bad-argument',
      `--mkfs-options has ${words.length} words, more than ${MAX_MKFS_OPTIONS}`,
    );
  const bad = words.find((w) => !MKFS_OPTION_WORD.test(w));
  if (bad !== undefined)
    throw new HaloError(
      'bad-argument',
      `--mkfs-options word ${JSON.stringify(bad)} has a character halo does not pass on (quotes, backslashes, $, ;, |, &, <, >, globs, newlines…): give plain words separated by spaces, e.g. --mkfs-options "-j -m 0"; for a value with spaces run mkfs yourself after attach without --mkfs`,
    );
  return { file: `mkfs.${type}`, args: [...(MKFS_DEFAULT_ARGS[type] ?? []), ...words, device] };
}

async function attach(
  g: GlobalOpts,
  res: string,
  mount: string,
  mkfs: { readonly type: string; readonly options?: string } | undefined,
): Promise<AttachState> {
  // Checked before anything is set up, so a bad option leaves nothing to undo.
  if (mkfs) mkfsCommand(mkfs.type, mkfs.options, '/dev/null');
  const sock = nbdSocketPath(g.runDir, res);
  if (!existsSync(sock))
    throw new HaloError('not-primary', `volume ${res} is not exported here (is it Primary?)`);
  const fuseDir = join(g.runDir, `${res}.fuse`);
  mkdirSync(fuseDir, { recursive: true });
  mkdirSync(mount, { recursive: true });
  const disk = join(fuseDir, 'disk');
  const child = spawn('nbdfuse', [disk, '--unix', sock], { stdio: 'ignore', detached: true });
  child.unref();
  let code: number | null = null;
  child.on('exit', (c) => {
    code = c ?? -1;
  });
  for (let waited = 0; !existsSync(disk); waited += POLL_MS) {
    if ((code !== null && code !== 0) || waited > UP_TIMEOUT_MS)
      throw new HaloError('nbdfuse-failed', `nbdfuse did not mount ${disk}`);
    await sleep(POLL_MS);
  }
  const state: AttachState = { fuseDir, loop: '', mount };
  try {
    state.loop = (await run('losetup', ['-f', '--show', disk])).stdout.trim();
    if (mkfs) {
      const cmd = mkfsCommand(mkfs.type, mkfs.options, state.loop);
      await run(cmd.file, [...cmd.args]);
    }
    await run('mount', [state.loop, mount]);
  } catch (err) {
    await detachState(state).catch(() => {});
    throw new HaloError('attach-failed', `attaching ${res} at ${mount} failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  writeFileSync(join(g.runDir, `${res}.attach.json`), JSON.stringify(state));
  return state;
}

async function detachState(s: AttachState): Promise<void> {
  if (s.mount)
    await run('umount', [s.mount]).catch(async () => run('umount', ['-l', s.mount]).catch(() => {}));
  if (s.loop) await run('losetup', ['-d', s.loop]).catch(() => {});
  await releaseFuseMount(s.fuseDir);
}

/** The cluster config the fence handlers read to find the daemons' control sockets. */
const CLUSTER_CONFIG_DEFAULT = '/etc/halo/halo.json';

/**
 * `fence-peer` / `unfence-peer`: halo's versions of DRBD's crm-fence-peer.sh and
 * crm-unfence-peer.sh, run by the engine as drbd.conf handlers (with DRBD_RESOURCE and
 * DRBD_PEER set) or by hand. They exit with the fence-peer codes (4 = peer fenced, 6 = this
 * node is the stale one, 1 = failed).
 */
function registerFenceCommands(vol: Command, g: () => GlobalOpts): void {
  for (const [verb, action, help, examples] of [
    [
      'fence-peer',
      'fence',
      'let only this node be promoted until the peer has resynced (a CIB constraint)',
      [
        'halo volume fence-peer r0 --peer node02   # by hand; exit 4 = peer fenced',
        'DRBD_RESOURCE=r0 DRBD_PEER=node02 halo volume fence-peer   # as in a DRBD handler',
      ],
    ],
    [
      'unfence-peer',
      'unfence',
      'remove the constraint fence-peer placed (after a resync)',
      ['halo volume unfence-peer r0   # after the resync (drbd.conf: after-resync-target)'],
    ],
  ] as const) {
    example(
      vol
        .command(`${verb} [res]`)
        .description(help)
        .option('--peer <name>', 'the peer node (default: $DRBD_PEER)')
        .option(
          '--socket <path>',
          "this node's daemon control socket (default: $HALO_CONTROL_SOCKET, else from the cluster config)",
        )
        .option(
          '--cluster-config <file>',
          'the cluster config (default: $HALO_CLUSTER_CONFIG, else /etc/halo/halo.json)',
        ),
      ...examples,
    ).action(
      async (resArg: string | undefined, o: { peer?: string; socket?: string; clusterConfig?: string }) => {
        const resource = resArg ?? process.env.DRBD_RESOURCE;
        const peer = o.peer ?? process.env.DRBD_PEER ?? '';
        if (!resource || (action === 'fence' && !peer)) {
          process.stderr.write(
            `halo volume ${verb}: name the resource and --peer (or set DRBD_RESOURCE and DRBD_PEER)\n`,
          );
          process.exitCode = 1;
          return;
        }
        // Loaded here, not at the top: the engine process never needs the cluster code otherwise.
        const { runClusterFence } = await import('../volume/cluster_fence.ts');
        const r = await runClusterFence({
          action,
          resource,
          self: g().node ?? hostname(),
          peer,
          clusterConfig: o.clusterConfig ?? process.env.HALO_CLUSTER_CONFIG ?? CLUSTER_CONFIG_DEFAULT,
          ...(process.env.HALO_CLUSTER_NODE ? { clusterNode: process.env.HALO_CLUSTER_NODE } : {}),
          ...((o.socket ?? process.env.HALO_CONTROL_SOCKET)
            ? { socket: (o.socket ?? process.env.HALO_CONTROL_SOCKET)! }
            : {}),
        });
        process.stderr.write(`halo volume ${verb} ${resource}: ${r.message}\n`);
        process.exitCode = r.exitCode;
      },
    );
  }
}

/** `halo volume` options that take a value (they may stand before `--`). */
const VOLUME_VALUE_OPTIONS = new Set(['-c', '--config', '--node', '--run-dir', '--output']);
/** `--` as a web page or word processor prints it. */
const TYPOGRAPHIC_DASHES = new Set(['\u2014', '\u2013']);

/**
 * drbdadm passes the options after `--` to drbdsetup: `drbdadm -- --overwrite-data-of-peer
 * primary r0`, `drbdadm -- -o primary drbd0`. For `halo volume` (argv as process.argv, the
 * subcommand at argv[2]) this moves such options after the verb, where halo's commands read
 * them: `halo volume primary --overwrite-data-of-peer r0`. A `—` or `–` in place of `--` (a
 * command copied from a web page) is read as `--`, with a note saying so. Any other argv is
 * returned as it is.
 */
export function drbdadmPassThrough(argv: readonly string[]): { argv: string[]; note?: string } {
  const same = { argv: [...argv] };
  if (argv[2] !== 'volume') return same;
  let i = 3;
  while (i < argv.length && argv[i] !== '--' && !TYPOGRAPHIC_DASHES.has(argv[i]!)) {
    const a = argv[i]!;
    if (!a.startsWith('-')) return same; // the verb came first: nothing to move
    i += VOLUME_VALUE_OPTIONS.has(a) ? 2 : 1;
  }
  if (i >= argv.length) return same;
  const dash = argv[i]!;
  let verb = i + 1;
  while (verb < argv.length && argv[verb]!.startsWith('-')) verb++;
  if (verb >= argv.length || verb === i + 1) return same;
  const moved = argv.slice(i + 1, verb);
  return {
    argv: [...argv.slice(0, i), argv[verb]!, ...moved, ...argv.slice(verb + 1)],
    ...(dash === '--'
      ? {}
      : {
          note: `halo volume: read '${dash}' as '--' (a typographic dash, probably copied from a web page)`,
        }),
  };
}

export function registerVolumeCommands(program: Command): void {
  const vol = program
    .command('volume')
    .description('replicated volumes (drbdadm for halo): drbd.conf in, NBD out')
    .option('-c, --config <file>', 'drbd.conf to read', '/etc/drbd.conf')
    .option('--node <name>', 'this host’s name in the config (default: hostname)')
    .option(
      '--run-dir <dir>',
      'where engines keep sockets and logs',
      process.env.HALO_VOLUME_RUN_DIR ?? DEFAULT_RUN_DIR,
    )
    .option('--output <format>', 'text or json', 'text')
    // Every verb's --help lists these too: they go before or after the verb.
    .configureHelp({ showGlobalOptions: true });
  example(
    vol,
    'halo volume create-md r0   # both nodes: a new volume r0 from /etc/drbd.conf',
    'halo volume up r0   # both nodes',
    'halo volume primary --force r0   # one node: its data becomes the sync source',
    'halo volume status --proc r0   # the initial sync',
    'halo volume attach r0 --mount /srv/data --mkfs ext4',
  );
  const g = (): GlobalOpts => vol.opts() as GlobalOpts;
  /**
   * Wraps a verb's action: HaloErrors become a message and exit 1 (3: not running). RES `all`
   * runs the verb for every resource of drbd.conf this node has an `on` section in, in file
   * order, as drbdadm does; each failure is reported and the others still run. Verbs that make
   * no sense for several resources at once (`run` blocks, `attach` has one mount point) say so.
   */
  const act =
    // biome-ignore lint/suspicious/noExplicitAny: commander passes (arg, opts, cmd) per command.
      (fn: (res: string, opts: any) => Promise<void>, all: 'each' | 'one' = 'each') =>
      async (res: string, opts: unknown) => {
        let names: readonly string[] = [res];
        try {
          if (res === ALL_RESOURCES) {
            if (all === 'one')
              throw new HaloError(
                'one-resource',
                `this verb takes one resource, not "${ALL_RESOURCES}"; name it (e.g. r0)`,
              );
            names = resourcesOfThisNode(g());
          }
        } catch (err) {
          if (!(err instanceof HaloError)) throw err;
          process.stderr.write(`halo volume: ${err.message}\n`);
          process.exitCode = 1;
          return;
        }
        for (const name of names) {
          try {
            await fn(name, opts);
          } catch (err) {
            if (!(err instanceof HaloError)) throw err;
            process.stderr.write(`halo volume: ${err.message}\n`);
            // Several failures: a refusal (1) outranks "not running" (3).
            // Bad input is 2, as everywhere in halo.
            const code = err.code === 'not-running' ? 3 : err.code === 'bad-argument' ? 2 : 1;
            process.exitCode = process.exitCode === 1 ? 1 : code;
          }
        }
      };

  example(
    vol
      .command('create-md <res>')
      .description('write fresh metadata (generation ids, bitmap) to the backing disk')
      .option('--force', 'overwrite existing metadata'),
    'halo volume create-md r0   # on each node, before its first up',
    'halo volume -c /etc/drbd.conf --node node01 create-md r0',
  ).action(
    act(async (res: string, o: { force?: boolean }) => {
      const cfg = loadConfig(g(), res);
      const moved = o.force ? undefined : await misplacedMetadata(cfg);
      if (moved)
        throw new HaloError(
          'metadata-exists',
          `${cfg.self.disk} grew and still holds halo metadata for ${res} (${moved.sizeBytes} bytes, disk ${moved.disk}); run "halo volume resize ${res}" to keep it, or create-md --force to start over`,
        );
      const r = await createMetadata(cfg, o.force === true);
      print(g(), `${res}: metadata created on ${cfg.self.disk}; ${r.dataBytes} data bytes\n`, {
        ok: true,
        ...r,
      });
    }),
  );
  example(
    vol
      .command('up <res>')
      .description('start the engine in the background (if needed; its log is RUN_DIR/RES.log) and connect'),
    'halo volume up r0   # on both nodes',
    'halo volume -c /etc/drbd.conf --node node01 up r0',
  ).action(
    act(async (res: string) => {
      const cfg = loadConfig(g(), res);
      await up(g(), res, cfg);
      print(g(), '', { ok: true });
    }),
  );
  example(
    vol
      .command('run <res>')
      .description(
        'run the engine in the foreground until SIGTERM, logging to stderr (what `up` starts in the background)',
      ),
    "halo volume run r0   # in the foreground, e.g. a systemd unit's ExecStart",
    'halo volume -c /etc/drbd.conf --node node02 run r0',
  ).action(act(async (res: string) => runForeground(g(), loadConfig(g(), res)), 'one'));
  example(
    vol.command('down <res>').description('demote, disconnect and stop the engine'),
    'halo volume down r0',
  ).action(
    act(async (res: string) => {
      const st = await controlRequest(g().runDir, res, { cmd: 'status' });
      if (!st) return;
      const pid = Number(st.pid);
      await admin(g(), res, { cmd: 'down' });
      for (let waited = 0; waited < UP_TIMEOUT_MS && pidAlive(pid); waited += POLL_MS) await sleep(POLL_MS);
    }),
  );
  for (const [verb, cmd, help, examples] of [
    [
      'secondary',
      'secondary',
      'demote to Secondary (stops serving NBD)',
      ["halo volume secondary r0   # after 'halo volume detach r0'"],
    ],
    [
      'disconnect',
      'disconnect',
      'drop the replication link and stay StandAlone (a Primary outdates its peer)',
      ["halo volume disconnect r0   # StandAlone until 'halo volume connect r0'"],
    ],
    [
      'verify',
      'verify',
      "compare every block with the connected peer (online verify); progress and out-of-sync KiB show in 'halo volume status'",
      [
        'halo volume verify r0',
        'halo volume status r0   # verify:running done:… out-of-sync:…KiB',
        'halo volume disconnect r0 && halo volume connect r0   # resync what verify found',
      ],
    ],
    [
      'invalidate',
      'invalidate',
      'discard local data: full resync from the peer',
      ['halo volume invalidate r0   # on the Secondary whose data to throw away'],
    ],
    [
      'resume-io',
      'resume-io',
      'resume I/O suspended by fencing without fencing the peer (risks lost writes)',
      ['halo volume resume-io r0   # status shows suspended:fencing and the peer cannot be fenced'],
    ],
  ] as const) {
    example(vol.command(`${verb} <res>`).description(help), ...examples).action(
      act(async (res: string) => {
        await admin(g(), res, { cmd });
        print(g(), '', { ok: true });
      }),
    );
  }
  registerFenceCommands(vol, g);
  example(
    vol
      .command('resize <res>')
      .description(
        'grow the volume after its backing disks grew: online (both nodes Connected, run on one) or offline (volume down, run on each)',
      )
      .option(
        '--size <size>',
        'grow backing regular files to hold this much data (e.g. 2G); online, each node extends its own',
      )
      .option(
        '--assume-clean',
        'online only: do not resync the new area (both disks hold the same there, e.g. zeroes)',
      ),
    'halo volume resize r0   # running and Connected, after lvextend on both nodes: grows both online',
    'halo volume resize r0 --size 2G   # backing files: grow them to hold 2 GiB of data (online: both nodes)',
    'halo volume resize r0   # volume down on this node: offline, then on the peer; the next up resyncs the new area',
  ).action(
    act(async (res: string, o: { size?: string; assumeClean?: boolean }) => {
      const cfg = loadConfig(g(), res);
      const sizeBytes = o.size === undefined ? undefined : parseDrbdSize(o.size, '--size', 1);
      if (await controlRequest(g().runDir, res, { cmd: 'status' })) {
        await resizeOnline(g(), res, sizeBytes, o.assumeClean === true);
        return;
      }
      if (o.assumeClean)
        throw new HaloError(
          'assume-clean-offline',
          `--assume-clean works only online (${res} running and Connected on both nodes); offline, the new area is always resynced`,
        );
      const r = await resizeVolume(cfg, sizeBytes === undefined ? {} : { sizeBytes });
      const text =
        r.newBytes === r.oldBytes
          ? `${res}: ${cfg.self.disk} has not grown; still ${r.oldBytes} bytes (grow it first, or pass --size for a file)\n`
          : `${res}: grown from ${r.oldBytes} to ${r.newBytes} bytes${r.grewFileBy > 0 ? ` (${cfg.self.disk} extended by ${r.grewFileBy})` : ''}; ${r.newAreaBlocks} new blocks will resync when the nodes connect; resize the peer too\n`;
      print(g(), text, { ok: true, ...r });
    }),
  );
  example(
    vol
      .command('primary <res>')
      .description('promote to Primary and serve the data over NBD (RUN_DIR/RES.nbd), which attach mounts')
      .option('--force', 'promote even an Inconsistent or Outdated disk')
      // drbdadm's older spellings of --force, as the tutorials write them (DRBD 8.3's
      // --overwrite-data-of-peer and its -o, DRBD 0.7's --do-what-I-say).
      .addOption(new Option('-o, --overwrite-data-of-peer', 'the same as --force').hideHelp())
      .addOption(new Option('--do-what-I-say', 'the same as --force').hideHelp()),
    'halo volume primary r0',
    'halo volume primary --force r0   # first time, on one node: its data becomes the sync source',
    'halo volume primary --force all   # every resource of drbd.conf this node has',
  ).action(
    act(async (res: string, o: { force?: boolean; overwriteDataOfPeer?: boolean; doWhatISay?: boolean }) => {
      const force = o.force === true || o.overwriteDataOfPeer === true || o.doWhatISay === true;
      await admin(g(), res, { cmd: 'primary', force });
      print(g(), '', { ok: true });
    }),
  );
  example(
    vol
      .command('connect <res>')
      .description(
        'connect to the peer again (after disconnect, or a split brain that left this node StandAlone)',
      )
      .option('--discard-my-data', 'resolve a split brain by throwing away this node’s changes'),
    'halo volume connect r0',
    'halo volume connect --discard-my-data r0   # split brain: on the node whose changes to drop',
  ).action(
    act(async (res: string, o: { discardMyData?: boolean }) => {
      await admin(g(), res, { cmd: 'connect', discardMyData: o.discardMyData === true });
      print(g(), '', { ok: true });
    }),
  );
  example(
    vol
      .command('status <res>')
      .description('show state like drbdadm status')
      .option('--proc', 'show it like /proc/drbd, with sync progress'),
    'halo volume status r0',
    'halo volume status --proc r0   # like cat /proc/drbd, with sync progress',
    'halo volume --output json status r0',
  ).action(
    act(async (res: string, o: { proc?: boolean }) => {
      const reply = await admin(g(), res, { cmd: 'status' });
      const s = reply.status as CoreStatus;
      // JSON also says how replication travels: signed (integrity only) or sealed (tls yes).
      print(g(), o.proc ? formatProcDrbd(s) : formatDrbdadmStatus(s), { ...s, stream: reply.stream });
    }),
  );
  example(
    vol
      .command('show-gi <res>')
      .description('print the generation identifiers (current:bitmap:history…), like drbdadm show-gi'),
    'halo volume show-gi r0   # from the running engine, else from the metadata on disk',
  ).action(
    act(async (res: string) => {
      const reply = await controlRequest(g().runDir, res, { cmd: 'status' });
      if (reply?.ok) {
        const s = reply.status as CoreStatus;
        print(g(), formatGi(s.gen, s.disk), s.gen);
        return;
      }
      const meta = await readMetadata(loadConfig(g(), res));
      print(g(), formatGi(meta.gen, meta.disk), meta.gen);
    }),
  );
  example(
    vol
      .command('attach <res>')
      .description(
        "mount the Primary's volume here: nbdfuse of its NBD export, a loop device, optionally mkfs, then mount",
      )
      .requiredOption('--mount <dir>', 'mount point')
      .option('--mkfs <type>', 'make a filesystem first (e.g. ext4): runs mkfs.TYPE on the device')
      .option(
        '--mkfs-options <opts>',
        'options for mkfs.TYPE, before the device: plain words separated by spaces (no quotes or shell characters)',
      ),
    'halo volume attach r0 --mount /srv/data --mkfs ext4   # first time, on the Primary',
    'halo volume attach r0 --mount /var/drbd --mkfs ext4 --mkfs-options "-j -m 0"   # seed 003: mkfs.ext4 -j -m 0, no reserved blocks',
    'halo volume attach r0 --mount /srv/data',
  ).action(
    act(async (res: string, o: { mount: string; mkfs?: string; mkfsOptions?: string }) => {
      if (o.mkfsOptions !== undefined && o.mkfs === undefined)
        throw new HaloError('bad-argument', '--mkfs-options needs --mkfs TYPE (e.g. --mkfs ext4)');
      const mkfs =
        o.mkfs === undefined
          ? undefined
          : { type: o.mkfs, ...(o.mkfsOptions === undefined ? {} : { options: o.mkfsOptions }) };
      const s = await attach(g(), res, o.mount, mkfs);
      print(g(), `${res}: mounted ${s.loop} at ${s.mount}\n`, s);
    }, 'one'),
  );
  example(
    vol.command('detach <res>').description('undo attach: umount, free the loop device, unmount nbdfuse'),
    "halo volume detach r0   # before 'halo volume secondary r0'",
  ).action(
    act(async (res: string) => {
      const file = join(g().runDir, `${res}.attach.json`);
      if (!existsSync(file)) throw new HaloError('not-attached', `${res} is not attached`);
      await detachState(JSON.parse(readFileSync(file, 'utf8')) as AttachState);
      rmSync(file, { force: true });
    }),
  );
}
