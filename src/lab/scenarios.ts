import { dirname, join } from 'node:path';
import { parseCrm } from '../cib/crm.ts';
import { heartbeatToCib } from '../cib/heartbeat.ts';
import type { Configuration } from '../cib/model.ts';
import { HaloError } from '../lib/errors.ts';

/**
 * The configurations `halo lab up --scenario …` writes into the lab. Each is what an admin
 * would load into a real cluster of these node names, with the virtual IP on the lab's link 0
 * network (198.18.0.0/24, see netns.ts) so the client namespace can reach it.
 */
export const SCENARIOS = ['web', 'seed-003', 'seed-004'] as const;
/** What `halo lab up` runs without `--scenario`. */
export const DEFAULT_SCENARIO: ScenarioName = 'web';
/** The web scenario's HTTP port on the VIP. */
export const LAB_WEB_PORT = 80;
/** The web server's script, written under the lab's `scenario/` directory. */
export const WEB_SERVER_FILE = 'www.cjs';
/** The web scenario's resource names (the bench reads their start times from the daemons' logs). */
export const WEB_VIP_RESOURCE = 'vip';
export const WEB_SERVER_RESOURCE = 'www';
export type ScenarioName = (typeof SCENARIOS)[number];

/** The lab's virtual IP: on link 0, above every node and client address. */
export const LAB_VIP = '198.18.0.200';

export function isScenario(s: string): s is ScenarioName {
  return (SCENARIOS as readonly string[]).includes(s);
}

export interface ScenarioFiles {
  /** File name → content, written under the lab's `scenario/` directory. */
  readonly files: Readonly<Record<string, string>>;
  /** What a person should look at once it runs. */
  readonly next: string;
}

/**
 * The web scenario's server: a few lines of node:http answering every request with the node
 * that serves it (found from its own network namespace: `ip netns identify`), so a client sees
 * failover in the answers. Run by `halo:process` as `node www.cjs PREFIX`.
 */
export function webServerScript(): string {
  return `// halo lab web server (scenario web): answers with the lab node it runs on.
'use strict';
const http = require('node:http');
const { execFileSync } = require('node:child_process');
const prefix = process.argv[2] || '';
let node = 'unknown';
try {
  const ns = execFileSync('ip', ['netns', 'identify', String(process.pid)], { encoding: 'utf8' }).trim();
  node = ns.startsWith(prefix) ? ns.slice(prefix.length) : ns || 'unknown';
} catch {}
const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.setHeader('connection', 'close');
  res.end('halo lab web: served by ' + node + '\\n');
});
server.listen(${LAB_WEB_PORT}, '0.0.0.0');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;
}

/** The seed-003 scenario's replicated volume (drbd.conf resource name). */
export const SEED003_VOLUME = 'r0';
/** Its replication port on link 0, as in the seed's drbd.conf (7788 + 1: halo's default). */
export const SEED003_VOLUME_PORT = 7789;
/** Size of each node's backing disk file (data + internal metadata). */
export const SEED003_DISK_MIB = 32;
export const SEED003_SERVER_FILE = 'seed003_www.cjs';
export const SEED003_VIP_RESOURCE = 'p_ip';
export const SEED003_SERVER_RESOURCE = 'p_www';
/** The page `lab up` writes on the fresh filesystem (what the client must still see after failover). */
export const SEED003_INDEX = 'index.html';

/**
 * Where seed-003 keeps things, all under the lab directory (the parent of `scenario/`). The mount
 * point is one path for both nodes: each daemon runs in its own mount namespace (`ip netns exec`
 * makes one), so the Primary's mount is seen only there. The device link is per lab (not
 * /dev/halo/r0, which two labs on one host would share).
 */
export function seed003Paths(host: ScenarioHost): {
  drbdConf: string;
  deviceLink: string;
  mount: string;
  disk: (node: string) => string;
  runDir: (node: string) => string;
} {
  const lab = dirname(host.scenarioDir);
  return {
    drbdConf: join(host.scenarioDir, 'drbd.conf'),
    deviceLink: join(lab, 'dev', SEED003_VOLUME),
    mount: join(lab, 'data'),
    disk: (node) => join(lab, node, 'volume.img'),
    runDir: (node) => join(lab, node, 'volume'),
  };
}

/** drbd.conf for the lab: one resource, each node's disk file, replication on its link 0 address. */
export function seed003DrbdConf(nodes: readonly string[], host: ScenarioHost): string {
  const d = seed003Paths(host);
  const on = nodes.map((n, i) => {
    const addr = host.nodeAddrs?.[n] ?? `198.18.0.${i + 1}`;
    return `  on ${n} {
    device /dev/drbd0;
    disk ${d.disk(n)};
    address ${addr}:${SEED003_VOLUME_PORT};
    meta-disk internal;
  }`;
  });
  return `# halo lab seed-003: the seed's drbd0, renamed ${SEED003_VOLUME}, on per-node disk files.
resource ${SEED003_VOLUME} {
  protocol C;
  net {
    # Notice a vanished peer within ~2 s (the defaults take 6-16 s); a lab link is a veth.
    timeout 20;
    ping-int 1;
    after-sb-0pri discard-zero-changes;
    after-sb-1pri discard-secondary;
    after-sb-2pri disconnect;
  }
${on.join('\n')}
}
`;
}

/**
 * The seed-003 web server: serves files from the replicated mount (argv[3]). GET / answers with
 * the node serving it and the mount's index.html; GET /files/NAME returns a file as it is;
 * PUT /files/NAME stores the body durably (temp file, fsync, rename, fsync the directory) and
 * answers its sha256, so a client can check after a failover that what it stored survived.
 */
export function seed003ServerScript(): string {
  return `// halo lab seed-003 web server: files on the replicated volume.
'use strict';
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const prefix = process.argv[2] || '';
const root = process.argv[3];
if (!root) { console.error('usage: seed003_www.cjs NETNS_PREFIX DOCROOT'); process.exit(2); }
let node = 'unknown';
try {
  const ns = execFileSync('ip', ['netns', 'identify', String(process.pid)], { encoding: 'utf8' }).trim();
  node = ns.startsWith(prefix) ? ns.slice(prefix.length) : ns || 'unknown';
} catch {}
const MAX_BODY = 1 << 20;
function fileOf(url) {
  const m = /^[/]files[/]([A-Za-z0-9_.-]{1,100})$/.exec(url);
  return m && !m[1].startsWith('.') ? path.join(root, 'files', m[1]) : null;
}
function send(res, code, text) {
  res.statusCode = code;
  res.setHeader('content-type', 'text/plain');
  res.setHeader('connection', 'close');
  res.setHeader('x-served-by', node);
  res.end(text);
}
const server = http.createServer((req, res) => {
  try {
    if (req.method === 'GET' && req.url === '/') {
      const page = fs.readFileSync(path.join(root, '${SEED003_INDEX}'), 'utf8');
      return send(res, 200, 'halo lab seed-003: served by ' + node + '\\n' + page);
    }
    const file = fileOf(req.url || '');
    if (!file) return send(res, 404, 'not found\\n');
    if (req.method === 'GET') return send(res, 200, fs.readFileSync(file));
    if (req.method !== 'PUT') return send(res, 405, 'GET or PUT\\n');
    const parts = [];
    let size = 0;
    req.on('data', (c) => { size += c.length; if (size <= MAX_BODY) parts.push(c); });
    req.on('end', () => {
      try {
        if (size > MAX_BODY) return send(res, 413, 'body over ' + MAX_BODY + ' bytes\\n');
        const body = Buffer.concat(parts);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        const tmp = file + '.tmp';
        const fd = fs.openSync(tmp, 'w');
        try { fs.writeSync(fd, body); fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
        fs.renameSync(tmp, file);
        const dfd = fs.openSync(path.dirname(file), 'r');
        try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
        send(res, 201, crypto.createHash('sha256').update(body).digest('hex') + '\\n');
      } catch (e) { send(res, 500, String(e && e.message) + '\\n'); }
    });
  } catch (e) {
    send(res, e && e.code === 'ENOENT' ? 404 : 500, String(e && e.message) + '\\n');
  }
});
server.listen(${LAB_WEB_PORT}, '0.0.0.0');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;
}

/** Where the lab puts the web scenario's files, for the `halo:process` parameters. */
export interface ScenarioHost {
  /** The lab's `scenario/` directory (absolute). */
  readonly scenarioDir: string;
  /** Absolute path of the node binary that runs the web server. */
  readonly nodeBin: string;
  /** Each node's link 0 address (seed-003's drbd.conf); default 198.18.0.<position>. */
  readonly nodeAddrs?: Readonly<Record<string, string>>;
}

const DEFAULT_HOST: ScenarioHost = { scenarioDir: '/run/halo-lab/scenario', nodeBin: '/usr/bin/node' };

function nodeLines(nodes: readonly string[]): string {
  return nodes.map((n, i) => `node ${i + 1}: ${n}`).join('\n');
}

/** `netnsPrefix` (the lab's `h<tag>-`) tells `halo:lab-fence` which namespaces are the nodes. */
export function scenarioFiles(
  name: ScenarioName,
  nodes: readonly string[],
  netnsPrefix = 'h',
  host: ScenarioHost = DEFAULT_HOST,
): ScenarioFiles {
  if (nodes.length === 0) throw new HaloError('bad-argument', 'a scenario needs at least one node');
  switch (name) {
    case 'web':
      // stonith-action=off: a fenced lab node stays off (links down) until `halo lab chaos
      // --restart` boots it, as a powered-off machine would; a "reboot" would bring its links
      // back with the old VIP still configured on them.
      return {
        files: {
          'cib.crm': `${nodeLines(nodes)}
primitive fence-lab halo:lab-fence params netns_prefix=${netnsPrefix}
primitive vip halo:vip params ip=${LAB_VIP} cidr_netmask=24 nic=link0 op monitor interval=2s
primitive www halo:process params binfile="${host.nodeBin}" cmdline_options="${host.scenarioDir}/${WEB_SERVER_FILE} ${netnsPrefix}" logfile=${host.scenarioDir}/www.log stop_grace_ms=1000 op monitor interval=2s timeout=20s
group g-web vip www
property stonith-enabled=true stonith-action=off no-quorum-policy=stop
rsc_defaults resource-stickiness=100
`,
          [WEB_SERVER_FILE]: webServerScript(),
        },
        next: `curl http://${LAB_VIP}/ from the client namespace`,
      };
    case 'seed-003': {
      // Seed 003's playground: a replicated volume (ms_drbd), its ext4 filesystem, the VIP and a
      // web server whose files live on the replicated filesystem, grouped and colocated on the
      // promoted volume, with the seed's properties (but stonith on: halo's two-node rule fences
      // the peer before taking over). The seed's MySQL is left out. start-failure-is-fatal=false
      // (not in the seed): halo's scheduler does not yet hold g_all's start until the promote has
      // finished, so p_fs may try the device before it is published; that start fails and is
      // retried on the same node instead of banning it.
      const d = seed003Paths(host);
      return {
        files: {
          'cib.crm': `${nodeLines(nodes)}
primitive fence-lab halo:lab-fence params netns_prefix=${netnsPrefix}
primitive p_drbd ocf:linbit:drbd params drbd_resource=${SEED003_VOLUME} config=${d.drbdConf} device_link=${d.deviceLink} link_conf_device=false op monitor interval=15s role=Master op monitor interval=30s role=Slave op start timeout=120s op promote timeout=60s
ms ms_drbd p_drbd meta master-max=1 master-node-max=1 clone-max=2 clone-node-max=1 notify=true
primitive p_fs ocf:heartbeat:Filesystem params device=${d.deviceLink} directory=${d.mount} fstype=ext4 run_fsck=force op start timeout=20s op stop timeout=60s op monitor interval=10s timeout=40s
primitive ${SEED003_VIP_RESOURCE} halo:vip params ip=${LAB_VIP} cidr_netmask=24 nic=link0 op monitor interval=2s
primitive ${SEED003_SERVER_RESOURCE} halo:process params binfile="${host.nodeBin}" cmdline_options="${host.scenarioDir}/${SEED003_SERVER_FILE} ${netnsPrefix} ${d.mount}" logfile=${host.scenarioDir}/www.log stop_grace_ms=1000 op monitor interval=2s timeout=20s
group g_all p_fs ${SEED003_VIP_RESOURCE} ${SEED003_SERVER_RESOURCE}
colocation c_drbd inf: g_all ms_drbd:Master
order o_afterdrbd inf: ms_drbd:promote g_all:start
property stonith-enabled=true stonith-action=off no-quorum-policy=stop default-resource-stickiness=100 start-failure-is-fatal=false
`,
          'drbd.conf': seed003DrbdConf(nodes, host),
          [SEED003_SERVER_FILE]: seed003ServerScript(),
        },
        next: `curl http://${LAB_VIP}/ from the client namespace (files on the replicated volume ${SEED003_VOLUME}, mounted at ${d.mount} on the Primary)`,
      };
    }
    case 'seed-004':
      // Seed 004: Heartbeat v1 files imported as they are.
      return {
        files: {
          'ha.cf': `keepalive 200ms
deadtime 1
warntime 500ms
initdead 10
udpport 694
bcast link0 link1
auto_failback off
${nodes.map((n) => `node ${n}`).join('\n')}
`,
          haresources: `${nodes[0]} IPaddr::${LAB_VIP}/24/link0 drbddisk::r0 Filesystem::/dev/drbd0::/srv/www::ext4 drbdlinks apache2\n`,
          authkeys: 'auth 1\n1 sha1 halo-lab-not-a-secret\n',
        },
        next: `curl http://${LAB_VIP}/ from the client namespace`,
      };
  }
}

/**
 * The scenario as a cluster configuration, parsed exactly as `halo import` would parse the files
 * (crm syntax, or Heartbeat's ha.cf + haresources + authkeys as they are). Throws `bad-scenario`
 * naming file:line:col if a scenario file does not parse (a bug here, not user input).
 */
export function scenarioConfiguration(sc: ScenarioFiles): Configuration {
  const f = sc.files;
  if (f['cib.crm'] !== undefined) {
    const r = parseCrm(f['cib.crm'], 'scenario/cib.crm');
    if (!r.ok)
      throw new HaloError(
        'bad-scenario',
        r.diagnostics.map((d) => `${d.pos.file}:${d.pos.line}:${d.pos.column}: ${d.message}`).join('; '),
      );
    return r.cib.configuration;
  }
  const r = heartbeatToCib({
    haCf: { text: f['ha.cf'] ?? '', file: 'scenario/ha.cf' },
    ...(f.haresources !== undefined
      ? { haresources: { text: f.haresources, file: 'scenario/haresources' } }
      : {}),
    ...(f.authkeys !== undefined
      ? { authkeys: { text: f.authkeys, file: 'scenario/authkeys', mode: 0o600 } }
      : {}),
  });
  if (!r.cib.ok)
    throw new HaloError(
      'bad-scenario',
      r.cib.diagnostics.map((d) => `${d.pos.file}:${d.pos.line}:${d.pos.column}: ${d.message}`).join('; '),
    );
  return r.cib.cib.configuration;
}
