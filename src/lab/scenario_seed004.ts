/**
 * `halo lab up --scenario seed-004`: seed 004's Heartbeat v1 cluster (ApacheCon EU 2009, "High
 * Availability != High-cost") on two lab nodes. The seed's files — ha.cf, haresources, authkeys,
 * drbd.conf and drbdlinks.conf — are written in the seed's shape and imported into the running
 * cluster by `halo import`'s own code (src/cli/import_cmd.ts); the resource line is the seed's:
 *
 *     n1 198.18.0.200 drbddisk::r0 Filesystem::LAB/dev/drbd0::LAB/drbd::ext3 drbdlinks apache2
 *
 * What the lab substitutes, and why (everything else is as the seed writes it):
 * - node names (node01/node02 → n1/n2), the VIP (xxx.xxx.xxx.xxx → 198.18.0.200 on the lab's
 *   link 0), drbd.conf's disks (a file per node) and addresses (each node's link 0);
 * - paths that would otherwise touch this host, whose file system all lab nodes share: the
 *   device (/dev/drbd0 → LAB/dev/drbd0), the mount point (/drbd → LAB/drbd), Heartbeat's log
 *   files, and drbdlinks' local paths (/etc/apache2, /var/www, /usr/lib/cgi-bin → the same
 *   paths under LAB/root). LAB/root is each node's own directory: a tmpfs mounted in its daemon's
 *   mount namespace, like a machine's own disk, so one node's links and Apache pid file are never
 *   another node's.
 *
 * What the lab adds to the imported configuration (`seed004LabConfiguration`), and why:
 * - a fence device (`halo:lab-fence`), stonith-enabled=true, stonith-action=off and
 *   no-quorum-policy=stop (as the web scenario has them): Heartbeat v1 had no fencing, but halo's
 *   two-node rule lets the survivor take over only after its peer is fenced;
 * - `device_link` on drbddisk_r0 (the lab's device path instead of /dev/halo/r0 on this host);
 * - `apache2` runs through the OCF apache agent with its config file on the replicated volume
 *   (as the seed's drbdlinks arranges): Debian's /etc/init.d/apache2 would start the host's one
 *   Apache with /etc/apache2, shared by every lab node;
 * - that config includes each node's own settings (in its root, outside the volume), which set
 *   an `X-Served-By` header naming the node: the page cannot say which node served it, and
 *   `halo lab bench failover` must know.
 *
 * What `lab up` does first, as the seed's admin did by hand (slides 13–16): backing files,
 * `drbdadm create-md r0` and `up` on both nodes, the first node forced Primary and the initial
 * sync, `mkfs.ext3`, Apache's configuration and web root copied onto the volume, Secondary
 * again. Both engines stay up and connected, as the drbd init script kept them: drbddisk only
 * promotes and demotes.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Configuration, NvSet, Primitive, Resource } from '../cib/model.ts';
import {
  convertImport,
  type ImportConversion,
  importExitCode,
  importIntoCluster,
  readImportSources,
} from '../cli/import_cmd.ts';
import { queryControl } from '../daemon/control.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { HaloError } from '../lib/errors.ts';
import {
  createSyncedVolume,
  DEFAULT_LAB_DIR,
  LAB_STATE_FILE,
  type LabNodeState,
  type LabState,
  labDown,
  labUp,
  scenarioHost,
  volumeCli,
} from './lab.ts';
import { LAB_VIP, type ScenarioFiles, type ScenarioHost } from './scenarios.ts';

/** The seed's replicated resource and its port (drbd.conf: `address 10.0.0.2:7789`). */
export const SEED004_VOLUME = 'r0';
export const SEED004_VOLUME_PORT = 7789;
/** Each node's backing file (data + internal metadata): the seed's web tree is small. */
export const SEED004_DISK_MIB = 16;
/** The haresources line's resource ids, as `halo import` names them. */
export const SEED004_GROUP = 'group_1';
export const SEED004_APACHE_RESOURCE = 'apache2';
export const SEED004_DRBDDISK_RESOURCE = `drbddisk_${SEED004_VOLUME}`;
/** The text every page of the seed's site starts with (the OCF apache agent's monitor looks for it). */
export const SEED004_PAGE_MARK = 'halo lab seed-004';
/**
 * Each node's own Apache settings, relative to its root: outside the replicated volume and not
 * linked by drbdlinks, like a machine's own /etc. Its one file names the node in an
 * `X-Served-By` header, so a client (the failover bench) can tell which node answered: the page
 * itself lives on the volume and is the same whichever node serves it.
 */
export const SEED004_NODE_APACHE_DIR = 'etc/apache2-node';
/** The seed's drbdlinks.conf links, as paths relative to / (slide 22). */
export const SEED004_LINKED_PATHS = ['etc/apache2', 'var/www', 'usr/lib/cgi-bin'] as const;
const APACHE_MODULES = '/usr/lib/apache2/modules';
const APACHE_BIN = '/usr/sbin/apache2';
/** Size of each node's own root (links, pid file, Apache's error log). */
const NODE_ROOT_TMPFS = 'size=4m,mode=0755';
const _VOLUME_STEP_TIMEOUT_MS = 60_000;
const _VOLUME_SYNC_DEADLINE_MS = 120_000;
const SCENARIO_LOAD_DEADLINE_MS = 30_000;
const STATUS_TIMEOUT_MS = 1_500;
const POLL_MS = 200;

/** Where seed-004 keeps things, all under the lab directory (the parent of `scenario/`). */
export function seed004Paths(host: ScenarioHost): {
  lab: string;
  drbdConf: string;
  drbdlinksConf: string;
  device: string;
  mount: string;
  root: string;
  logDir: string;
  disk: (node: string) => string;
  runDir: (node: string) => string;
} {
  const lab = dirname(host.scenarioDir);
  return {
    lab,
    drbdConf: join(host.scenarioDir, 'drbd.conf'),
    drbdlinksConf: join(host.scenarioDir, 'drbdlinks.conf'),
    device: join(lab, 'dev', 'drbd0'),
    mount: join(lab, 'drbd'),
    root: join(lab, 'root'),
    logDir: join(lab, 'log'),
    disk: (node) => join(lab, node, 'volume.img'),
    // The daemons' HALO_VOLUME_RUN_DIR (lab.ts), so the agent finds the engines lab up started.
    runDir: (node) => join(lab, node, 'volume'),
  };
}

/** The seed's files for these nodes (see the module comment for what is substituted). */
export function seed004Files(nodes: readonly string[], host: ScenarioHost): ScenarioFiles {
  const d = seed004Paths(host);
  const [first] = nodes;
  if (first === undefined) throw new HaloError('bad-argument', 'seed-004 needs its nodes');
  const on = nodes.map(
    (n, i) => `on ${n} {
device ${d.device};
disk
${d.disk(n)};
address ${host.nodeAddrs?.[n] ?? `198.18.0.${i + 1}`}:${SEED004_VOLUME_PORT};
meta-disk internal;
}`,
  );
  return {
    files: {
      'ha.cf': `debugfile ${d.logDir}/ha-debug
logfile ${d.logDir}/ha-log
Logfacility local0
keepalive 2
deadtime 60
warntime 30
initdead 120
udpport 697
auto_failback off
${nodes.map((n) => `node ${n}`).join('\n')}
debug 0
`,
      haresources: `${first} ${LAB_VIP} drbddisk::${SEED004_VOLUME} Filesystem::${d.device}::${d.mount}::ext3 drbdlinks apache2\n`,
      authkeys: 'auth 1\n1 sha1 your_super_secure_password\n',
      'drbd.conf': `global {
usage-count yes;
}
common {
protocol C;
}
resource ${SEED004_VOLUME} {
${on.join('\n')}
}
`,
      'drbdlinks.conf': SEED004_LINKED_PATHS.map((p) => `link('${join(d.root, p)}', '${join(d.mount, p)}')`)
        .join('\n')
        .concat('\n'),
    },
    next: `curl http://${LAB_VIP}/ from the client namespace (Apache, its config and pages on the replicated volume ${SEED004_VOLUME}, mounted at ${d.mount} on the active node)`,
  };
}

/** Apache's configuration as the seed keeps it on the volume (its `rsync -az /etc/apache2 /drbd/etc/`). */
export function seed004ApacheConf(host: ScenarioHost): string {
  const d = seed004Paths(host);
  const m = (name: string, file: string) => `LoadModule ${name}_module ${APACHE_MODULES}/mod_${file}.so`;
  return `# halo lab seed-004: Apache's configuration on the replicated volume. drbdlinks links
# ${d.root}/etc/apache2 here on the node that runs the service; the pid file and error log are in
# that node's own root (${d.root}, a tmpfs per node), the pages on the volume.
ServerRoot ${d.root}/etc/apache2
ServerName seed004.lab.invalid
Listen 80
PidFile ${d.root}/run/apache2.pid
DefaultRuntimeDir ${d.root}/run
ErrorLog ${d.root}/log/error.log
LogLevel warn
User www-data
Group www-data
${m('mpm_event', 'mpm_event')}
${m('authz_core', 'authz_core')}
${m('dir', 'dir')}
${m('mime', 'mime')}
${m('headers', 'headers')}
TypesConfig /dev/null
AddType text/html .html
DocumentRoot ${d.root}/var/www
<Directory ${d.root}/var/www>
    Require all granted
</Directory>
DirectoryIndex index.html
# This node's own settings (its root, not the volume): the X-Served-By header naming it.
IncludeOptional ${d.root}/${SEED004_NODE_APACHE_DIR}/*.conf
`;
}

/** A node's own Apache settings (SEED004_NODE_APACHE_DIR/served-by.conf in its root). */
export function seed004NodeApacheConf(node: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(node))
    throw new HaloError('bad-argument', `seed-004 node name '${node}' is not a plain host name`);
  return `Header always set X-Served-By "${node}"\n`;
}

export function seed004Page(token: string): string {
  return `<html><body><p>${SEED004_PAGE_MARK}: this page lives on the replicated volume ${SEED004_VOLUME} (${token})</p></body></html>\n`;
}

// ---------------------------------------------------------------------------------------------
// The lab's additions to the imported configuration

function params(id: string, pairs: readonly (readonly [string, string])[]): NvSet[] {
  const setId = `${id}-instance_attributes`;
  return [
    {
      kind: 'instance_attributes',
      id: setId,
      pairs: pairs.map(([name, value]) => ({ id: `${setId}-${name}`, name, value })),
    },
  ];
}

function primitive(id: string, agent: string, pairs: readonly (readonly [string, string])[]): Primitive {
  const [cls, provider, type] = agent.split(':');
  return {
    kind: 'primitive',
    id,
    class: cls!,
    ...(type === undefined ? { type: provider! } : { provider: provider!, type }),
    metaAttributes: [],
    instanceAttributes: params(id, pairs),
    utilization: [],
    operations: [],
  };
}

function withParam(p: Primitive, name: string, value: string): Primitive {
  const [first, ...rest] = p.instanceAttributes;
  if (!first) return { ...p, instanceAttributes: params(p.id, [[name, value]]) };
  const pairs = [...first.pairs.filter((x) => x.name !== name), { id: `${first.id}-${name}`, name, value }];
  return { ...p, instanceAttributes: [{ ...first, pairs }, ...rest] };
}

/**
 * The imported configuration with the lab's additions (see the module comment): fencing, the
 * lab's device path, and Apache through the OCF agent with its config on the volume.
 */
export function seed004LabConfiguration(
  c: Configuration,
  host: ScenarioHost,
  netnsPrefix: string,
): Configuration {
  const d = seed004Paths(host);
  const local = (p: Primitive): Primitive => {
    if (p.class === 'heartbeat' && p.type === 'drbddisk') return withParam(p, 'device_link', d.device);
    if (p.id !== SEED004_APACHE_RESOURCE) return p;
    return {
      ...primitive(p.id, 'ocf:heartbeat:apache', [
        ['configfile', `${d.root}/etc/apache2/apache2.conf`],
        ['httpd', APACHE_BIN],
        ['statusurl', 'http://localhost/'],
        ['testregex', SEED004_PAGE_MARK],
      ]),
      operations: [
        {
          id: `${p.id}-monitor-5s`,
          name: 'monitor',
          interval: '5s',
          timeout: '20s',
          instanceAttributes: [],
          metaAttributes: [],
        },
      ],
    };
  };
  const resources: Resource[] = c.resources.map((r) => {
    if (r.kind === 'group') return { ...r, members: r.members.map(local) };
    if (r.kind === 'primitive') return local(r);
    return r;
  });
  const fence = primitive('fence-lab', 'halo:lab-fence', [['netns_prefix', netnsPrefix]]);
  const props = 'cib-bootstrap-options';
  const keep = c.crmConfig.map((s) => ({
    ...s,
    pairs: s.pairs.filter((p) => !['stonith-enabled', 'stonith-action', 'no-quorum-policy'].includes(p.name)),
  }));
  const set = keep.find((s) => s.id === props);
  const added = [
    ['stonith-enabled', 'true'],
    ['stonith-action', 'off'],
    ['no-quorum-policy', 'stop'],
  ].map(([name, value]) => ({ id: `${props}-${name}`, name: name!, value: value! }));
  const crmConfig = set
    ? keep.map((s) => (s === set ? { ...s, pairs: [...s.pairs, ...added] } : s))
    : [...keep, { kind: 'cluster_property_set' as const, id: props, pairs: added }];
  return { ...c, crmConfig, resources: [fence, ...resources] };
}

// ---------------------------------------------------------------------------------------------
// lab up

export interface Seed004UpOptions {
  readonly dir?: string;
  /** The seed is a two-node cluster: anything else is refused before anything is made. */
  readonly nodes?: number;
  readonly witness?: boolean;
  readonly profile?: string;
  readonly tag?: string;
  readonly say?: (line: string) => void;
}

/**
 * Brings up seed 004: a two-node lab (lab.ts), each node's own root, the replicated volume
 * made as the seed's admin made it, then the seed's files imported into the running cluster.
 * On any failure it removes the whole lab, then throws.
 */
export async function seed004Up(opts: Seed004UpOptions = {}): Promise<LabState> {
  const dir = opts.dir ?? DEFAULT_LAB_DIR;
  const say = opts.say ?? (() => {});
  if ((opts.nodes ?? 2) !== 2 || opts.witness)
    throw new HaloError(
      'bad-argument',
      `scenario seed-004 is the seed's two-node Heartbeat cluster: use --nodes 2 without --witness, got ${opts.nodes} nodes${opts.witness ? ' and a witness' : ''}`,
    );
  if (!existsCommand(APACHE_BIN))
    throw new HaloError(
      'not-installed',
      `scenario seed-004 runs the seed's Apache: ${APACHE_BIN} is missing (apt-get install apache2-bin)`,
    );
  const state = await labUp({
    dir,
    nodes: 2,
    ...(opts.profile ? { profile: opts.profile } : {}),
    ...(opts.tag ? { tag: opts.tag } : {}),
    say,
  });
  try {
    const nodes = state.nodes.filter((n) => !n.witness);
    const host: ScenarioHost = {
      ...scenarioHost(dir),
      nodeAddrs: Object.fromEntries(nodes.map((n) => [n.name, n.addrs[0]!])),
    };
    const d = seed004Paths(host);
    const sc = seed004Files(
      nodes.map((n) => n.name),
      host,
    );
    mkdirSync(host.scenarioDir, { recursive: true });
    for (const [f, text] of Object.entries(sc.files))
      writeFileSync(join(host.scenarioDir, f), text, { mode: f === 'authkeys' ? 0o600 : 0o644 });
    for (const p of [d.logDir, dirname(d.device), d.mount, d.root]) mkdirSync(p, { recursive: true });
    // Apache's workers (www-data) must get through the lab directory to the volume's pages.
    chmodSync(d.lab, 0o711);
    for (const n of nodes) makeNodeRoot(n, d.root);
    const token = await prepareVolume(nodes, host, say);
    const loaded: LabState = {
      ...state,
      scenario: 'seed-004',
      scenarioLoad: await importSeedFiles(state, host),
    };
    writeState(loaded);
    say(`scenario seed-004: ${loaded.scenarioLoad}`);
    say(`the page carries the token ${token}`);
    return loaded;
  } catch (err) {
    await labDown(dir).catch(() => {});
    throw err;
  }
}

function existsCommand(path: string): boolean {
  try {
    execFileSync('test', ['-x', path]);
    return true;
  } catch {
    return false;
  }
}

/** lab.json, written as lab.ts writes it (whole file, then rename). */
function writeState(s: LabState): void {
  const file = join(s.dir, LAB_STATE_FILE);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(s, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

/**
 * The node's own root: a tmpfs in its daemon's mount namespace (agents inherit it), holding the
 * node's original /etc/apache2, /var/www and /usr/lib/cgi-bin (what drbdlinks moves aside),
 * its run and log directories, and its own Apache settings (SEED004_NODE_APACHE_DIR: the
 * X-Served-By header naming the node). It goes when the node's processes go (fence, reboot, lab down).
 */
function makeNodeRoot(n: LabNodeState, root: string): void {
  if (n.pid === null) throw new HaloError('daemon-died', `the daemon of ${n.name} is not running`);
  const script = `set -e
mount -t tmpfs -o ${NODE_ROOT_TMPFS} halo-lab-root "$1"
cd "$1"
mkdir -p etc/apache2 var/www usr/lib/cgi-bin run log ${SEED004_NODE_APACHE_DIR}
printf '%s\\n' "$2's own Apache directory; drbdlinks moves it aside while the service runs here" > etc/apache2/README
printf '%s\\n' "<p>$2's own /var/www: never served through the VIP</p>" > var/www/index.html
printf '%s' "$3" > ${SEED004_NODE_APACHE_DIR}/served-by.conf
`;
  execFileSync(
    'nsenter',
    ['-t', String(n.pid), '-m', '--', 'sh', '-c', script, 'sh', root, n.name, seed004NodeApacheConf(n.name)],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 10_000,
    },
  );
}

/** Longest wait for a just-started daemon to be in its own mount namespace. */
const NODE_BOOT_DEADLINE_MS = 10_000;

/**
 * What a seed-004 node runs at boot before its cluster resources, as the seed's machines did:
 * its own root (a fresh tmpfs, like a rebooted disk's /etc and /var) and the drbd init step
 * (`drbdadm up r0`: the engine up as Secondary, connecting to its peer and resyncing what it
 * missed). For `halo lab chaos --restart` of a seed-004 node, after its daemon started.
 */
export async function seed004NodeBoot(state: LabState, name: string): Promise<string> {
  const n = state.nodes.find((x) => x.name === name);
  if (!n?.pid) throw new HaloError('unknown-node', `no running lab node named '${name}'`);
  const host: ScenarioHost = { ...scenarioHost(state.dir), nodeAddrs: {} };
  const d = seed004Paths(host);
  // `ip netns exec` unshares the mount namespace just before it runs the daemon: wait for it.
  const own = readlinkSafe('/proc/self/ns/mnt');
  const until = Date.now() + NODE_BOOT_DEADLINE_MS;
  while (readlinkSafe(`/proc/${n.pid}/ns/mnt`) === own) {
    if (Date.now() > until)
      throw new HaloError('timeout', `the daemon of ${name} has no mount namespace of its own yet`);
    await sleep(POLL_MS);
  }
  makeNodeRoot(n, d.root);
  volumeCli(['-c', d.drbdConf, '--node', n.name, '--run-dir', d.runDir(n.name), 'up', SEED004_VOLUME], n.ns);
  return `${name}: own root mounted at ${d.root}, volume ${SEED004_VOLUME} up (Secondary, connecting)`;
}

function readlinkSafe(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/**
 * The seed's slides 13–16: create-md and up on both nodes, the first forced Primary and synced,
 * ext3 made, Apache's config and pages copied in, then Secondary, both engines left up and
 * connected. Returns the token the page carries.
 */
async function prepareVolume(nodes: readonly LabNodeState[], host: ScenarioHost, say: (l: string) => void) {
  const d = seed004Paths(host);
  const res = SEED004_VOLUME;
  const g = (n: LabNodeState) => ['-c', d.drbdConf, '--node', n.name, '--run-dir', d.runDir(n.name)];
  await createSyncedVolume(nodes, res, SEED004_DISK_MIB, d);
  const first = nodes[0]!;
  say(`volume ${res}: initial sync done (${SEED004_DISK_MIB} MiB per node); mkfs.ext3 on ${first.name}`);
  const mnt = join(d.lab, 'mkfs-mnt');
  const token = `${Date.now().toString(36)}-${process.pid}`;
  volumeCli([...g(first), 'attach', res, '--mount', mnt, '--mkfs', 'ext3']);
  try {
    for (const p of SEED004_LINKED_PATHS) mkdirSync(join(mnt, p), { recursive: true, mode: 0o755 });
    writeFileSync(join(mnt, 'etc/apache2/apache2.conf'), seed004ApacheConf(host));
    writeFileSync(join(mnt, 'var/www/index.html'), seed004Page(token));
    execFileSync('sync', ['-f', join(mnt, 'var/www/index.html')]);
  } finally {
    volumeCli([...g(first), 'detach', res]);
    rmSync(mnt, { recursive: true, force: true });
  }
  volumeCli([...g(first), 'secondary', res]);
  return token;
}

/**
 * `halo import` of the seed's five files into the running cluster (through the DC), with the
 * lab's additions. Returns a sentence saying what happened.
 */
async function importSeedFiles(state: LabState, host: ScenarioHost): Promise<string> {
  const files = ['ha.cf', 'haresources', 'authkeys', 'drbd.conf', 'drbdlinks.conf'].map((f) =>
    join(host.scenarioDir, f),
  );
  const read = readImportSources(files);
  if (read.errors.length > 0) throw new HaloError('bad-scenario', read.errors.join('; '));
  const conv = convertImport(read.sources);
  if (!conv.ok) throw new HaloError('bad-scenario', conv.errors.join('; '));
  const lab: ImportConversion = {
    ...conv.value,
    configuration: seed004LabConfiguration(conv.value.configuration, host, `h${state.tag}-`),
  };
  const until = Date.now() + SCENARIO_LOAD_DEADLINE_MS;
  let last = 'no DC elected yet';
  while (Date.now() < until) {
    const dc = await findDc(state);
    if (dc) {
      try {
        const r = await importIntoCluster(dc.controlSocket, lab, { mode: 'replace', dryRun: false });
        return `imported ${r.conversion.label} (+ the lab's fence device and Apache agent) via DC ${dc.name} at log index ${r.committed.join(', ')}`;
      } catch (err) {
        if (importExitCode(err) === undefined) throw err;
        last = (err as Error).message;
        if (importExitCode(err) === 1) throw new HaloError('bad-scenario', last);
      }
    }
    await sleep(POLL_MS);
  }
  throw new HaloError('timeout', `seed-004 not imported within ${SCENARIO_LOAD_DEADLINE_MS} ms: ${last}`);
}

async function findDc(state: LabState): Promise<LabNodeState | undefined> {
  for (const n of state.nodes) {
    try {
      const st = (await queryControl(n.controlSocket, 'status', STATUS_TIMEOUT_MS)) as DaemonStatus;
      const dc = state.nodes.find((x) => x.name === st.dc);
      if (dc) return dc;
    } catch {
      // Not answering yet; ask the next one.
    }
  }
  return undefined;
}

/** The node's own root as its daemon sees it: where `rel` (e.g. etc/apache2) points, if a link. */
export function nodeRootLink(n: LabNodeState, root: string, rel: string): string | undefined {
  if (n.pid === null) return undefined;
  try {
    return execFileSync('nsenter', ['-t', String(n.pid), '-m', '--', 'readlink', join(root, rel)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5_000,
    }).trim();
  } catch {
    return undefined;
  }
}

/** Reads a file in a node's mount namespace (its own root, its mount). */
export function readInNode(n: LabNodeState, path: string): string | undefined {
  if (n.pid === null) return undefined;
  try {
    return execFileSync('nsenter', ['-t', String(n.pid), '-m', '--', 'cat', path], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5_000,
    });
  } catch {
    return undefined;
  }
}
