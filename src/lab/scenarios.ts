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
/** What `halo lab up` runs without `--scenario` (seed-003 needs replicated volumes, still being built). */
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

/** Where the lab puts the web scenario's files, for the `halo:process` parameters. */
export interface ScenarioHost {
  /** The lab's `scenario/` directory (absolute). */
  readonly scenarioDir: string;
  /** Absolute path of the node binary that runs the web server. */
  readonly nodeBin: string;
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
    case 'seed-003':
      // Seed 003's playground: a replicated volume, its filesystem, the VIP, nginx and a database,
      // grouped and colocated on the promoted volume, with the seed's properties.
      return {
        files: {
          'cib.crm': `${nodeLines(nodes)}
primitive fence-lab halo:lab-fence params netns_prefix=${netnsPrefix}
primitive p_drbd ocf:linbit:drbd params drbd_resource=r0 op monitor interval=15s role=Master op monitor interval=30s role=Slave
ms ms_drbd p_drbd meta master-max=1 master-node-max=1 clone-max=2 clone-node-max=1 notify=true
primitive p_fs ocf:heartbeat:Filesystem params device=/dev/drbd0 directory=/srv/data fstype=ext4
primitive p_ip halo:vip params ip=${LAB_VIP} cidr_netmask=24 nic=link0 op monitor interval=2s
primitive p_nginx ocf:heartbeat:nginx op monitor interval=5s
primitive p_db ocf:heartbeat:mysql op monitor interval=10s
group g_all p_fs p_ip p_nginx p_db
colocation c_all_on_drbd inf: g_all ms_drbd:Master
order o_drbd_before_all inf: ms_drbd:promote g_all:start
property stonith-enabled=true no-quorum-policy=stop default-resource-stickiness=100
`,
        },
        next: `curl http://${LAB_VIP}/ from the client namespace; the database listens on ${LAB_VIP}:3306`,
      };
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
