import { dirname, join } from 'node:path';
import { parseCrm } from '../cib/crm.ts';
import { heartbeatToCib } from '../cib/heartbeat.ts';
import type { Configuration } from '../cib/model.ts';
import { HaloError } from '../lib/errors.ts';
import { seed004Files } from './scenario_seed004.ts';

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
/**
 * Size of each node's backing disk file (data + internal metadata): ext4 with the MariaDB data
 * directory (about 20 MiB with the small InnoDB files of SEED003_MY_CNF), the web root and the logs.
 */
export const SEED003_DISK_MIB = 64;
/** The seed's resource names (its fs_drbd is p_fs here, and inside g_all; see scenarioFiles). */
export const SEED003_VIP_RESOURCE = 'p_sip';
export const SEED003_SERVER_RESOURCE = 'p_nginx';
export const SEED003_DB_RESOURCE = 'p_mysql';
export const SEED003_FS_RESOURCE = 'p_fs';
export const SEED003_VOLUME_RESOURCE = 'p_drbd';
/** The page `lab up` writes on the fresh filesystem (what the client must still see after failover). */
export const SEED003_INDEX = 'index.html';
/** Scenario files: nginx's site, its start wrapper, MariaDB's option file and first-boot SQL. */
export const SEED003_NGINX_CONF = 'nginx.conf';
export const SEED003_NGINX_WRAPPER = 'nginx_node.sh';
export const SEED003_MY_CNF = 'my.cnf';
export const SEED003_DB_INIT_SQL = 'mysql_init.sql';
/**
 * The database the lab's clients use over TCP on the VIP (`mysql -h VIP -u halo -p…`): a lab
 * account with a lab password (the lab is a private network of namespaces on one machine).
 */
export const SEED003_DB = {
  port: 3306,
  name: 'halo_bench',
  user: 'halo',
  password: 'halo-lab-not-a-secret',
  /** Rows the failover bench writes before each fault and counts after it. */
  table: 'bench_rows',
} as const;

/**
 * Where seed-003 keeps things, all under the lab directory (the parent of `scenario/`). The mount
 * point is one path for both nodes: each daemon runs in its own mount namespace (`ip netns exec`
 * makes one), so the Primary's mount is seen only there. The device link is per lab (not
 * /dev/halo/r0, which two labs on one host would share).
 *
 * `nodeRun` is each node's own runtime directory, like a machine's /run: the lab mounts a small
 * tmpfs there in every daemon's mount namespace (the `dev/` directory of lab.ts's device guard),
 * so the services' pid files and sockets never collide between nodes (which otherwise share this
 * host's file system and PID space) and vanish when the node "reboots".
 */
export function seed003Paths(host: ScenarioHost): {
  drbdConf: string;
  deviceLink: string;
  mount: string;
  disk: (node: string) => string;
  runDir: (node: string) => string;
  nodeRun: string;
  datadir: string;
  docroot: string;
  logDir: string;
} {
  const lab = dirname(host.scenarioDir);
  const mount = join(lab, 'data');
  const deviceLink = join(lab, 'dev', SEED003_VOLUME);
  return {
    drbdConf: join(host.scenarioDir, 'drbd.conf'),
    deviceLink,
    mount,
    disk: (node) => join(lab, node, 'volume.img'),
    runDir: (node) => join(lab, node, 'volume'),
    nodeRun: dirname(deviceLink),
    // As in the seed: MySQL's data in /var/drbd/mysql, the docroot in /var/drbd/www/html, logs in /var/drbd/log.
    datadir: join(mount, 'mysql'),
    docroot: join(mount, 'www', 'html'),
    logDir: join(mount, 'log'),
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
    # Notice a vanished peer within ~2 s (ping-int + timeout; the defaults take 16 s) and try to
    # reconnect every second (default 10 s): a rebooted peer is Connected and resyncing at once,
    # which shortens the time a Secondary misses writes. A lab link is a veth.
    timeout 9;
    ping-int 1;
    connect-int 1;
    after-sb-0pri discard-zero-changes;
    after-sb-1pri discard-secondary;
    after-sb-2pri disconnect;
  }
  # The seed's resource fencing: a Primary that loses its peer holds writes until the handler
  # has put a constraint in the CIB that keeps the peer from being promoted (its data is now
  # stale); the constraint goes away once the peer has resynced. Without it, a Secondary that
  # missed writes while disconnected could be promoted after the Primary dies.
  disk {
    fencing resource-and-stonith;
  }
  handlers {
    fence-peer "/usr/lib/drbd/crm-fence-peer.sh";
    after-resync-target "/usr/lib/drbd/crm-unfence-peer.sh";
  }
${on.join('\n')}
}
`;
}

/**
 * The seed's nginx site (docroot and logs on the replicated volume), run by ocf:heartbeat:nginx.
 * The pid file is in the node's own run directory: the agent decides "running" from it, and a
 * shared one would make each node see the other's nginx. Every answer names the node that served
 * it (`X-Served-By: $hostname`, see seed003NginxWrapper), so a client sees the failover.
 */
export function seed003NginxConf(host: ScenarioHost): string {
  const d = seed003Paths(host);
  return `# halo lab seed-003: the seed's nginx site, on the replicated volume.
worker_processes 1;
pid ${d.nodeRun}/nginx.pid;
error_log ${d.logDir}/nginx_error.log;
events {
  worker_connections 256;
}
http {
  include /etc/nginx/mime.types;
  default_type text/plain;
  # The bench probes every 10 ms: buffer the access log instead of a write per request.
  access_log ${d.logDir}/nginx_access.log combined buffer=32k flush=5s;
  server {
    listen *:${LAB_WEB_PORT};
    server_name foobar.example.com;
    add_header X-Served-By $hostname always;
    location / {
      root ${d.docroot}/;
    }
  }
}
`;
}

/**
 * ocf:heartbeat:nginx's `httpd`: nginx itself, started in a UTS namespace of its own whose
 * hostname is the lab node's name (found from the network namespace it runs in), as it would be
 * on a machine of its own; the lab's nodes otherwise share this host's hostname.
 */
export function seed003NginxWrapper(netnsPrefix: string): string {
  return `#!/bin/sh
# halo lab seed-003: run nginx with the lab node's name as its hostname.
case " $* " in
  # Version and config checks need no hostname: spare them the namespace work.
  *" -t "*|*" -v "*|*" -V "*) exec /usr/sbin/nginx "$@" ;;
esac
node=$(ip netns identify $$ 2>/dev/null)
node=\${node#${netnsPrefix}}
[ -n "$node" ] || exec /usr/sbin/nginx "$@"
exec unshare --uts /bin/sh -c 'hostname "$0" && exec /usr/sbin/nginx "$@"' "$node" "$@"
`;
}

/**
 * MariaDB's option file (the seed's my.cnf with datadir on the volume): listens on every address
 * of the node (the VIP comes and goes with the group), and keeps InnoDB's files small enough for
 * the lab's volume. Commits are durable: every commit's log write is flushed (the default
 * innodb_flush_log_at_trx_commit=1, spelled out), which with protocol C means on both nodes.
 */
export function seed003MyCnf(host: ScenarioHost): string {
  const d = seed003Paths(host);
  return `# halo lab seed-003: MariaDB with its data on the replicated volume.
[mysqld]
datadir = ${d.datadir}
bind-address = 0.0.0.0
port = ${SEED003_DB.port}
skip-name-resolve
innodb_flush_log_at_trx_commit = 1
innodb_buffer_pool_size = 16M
innodb_log_file_size = 4M
innodb_data_file_path = ibdata1:10M:autoextend
innodb_autoextend_increment = 1
performance_schema = OFF
`;
}

/**
 * SQL run once when the data directory is made (`mariadb-install-db --extra-file`): the lab's
 * client account (any host: clients come through the VIP) and the bench's table. No anonymous
 * accounts, so the lab account is the one a client gets.
 */
export function seed003DbInitSql(): string {
  const db = SEED003_DB;
  return `-- halo lab seed-003: the lab's database and client account.
FLUSH PRIVILEGES;
DELETE FROM mysql.global_priv WHERE User = '';
FLUSH PRIVILEGES;
CREATE DATABASE ${db.name};
CREATE USER '${db.user}'@'%' IDENTIFIED BY '${db.password}';
GRANT ALL ON ${db.name}.* TO '${db.user}'@'%';
CREATE TABLE ${db.name}.${db.table} (
  id BIGINT NOT NULL PRIMARY KEY,
  trial INT NOT NULL,
  note VARCHAR(100) NOT NULL
) ENGINE = InnoDB;
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
      // Seed 003's playground: a replicated volume (ms_drbd), its ext4 filesystem, the VIP, nginx
      // and MariaDB (the seed's MySQL) with their data on the replicated filesystem, grouped and
      // colocated on the promoted volume, with the seed's properties (but stonith on: halo's
      // two-node rule fences the peer before taking over). Unlike the seed, the filesystem is in
      // g_all (the seed leaves fs_drbd outside, unconstrained), and the seed's ping clone is left
      // out (its targets are on the internet; the lab has none). ocf:heartbeat:mysql and nginx
      // get per-node pid and socket paths (nodeRun) and their data on the volume. The Secondary's
      // monitor runs every 2 s: it publishes the promotion score, which a resync clears and only a
      // monitor restores; with the seed's 30 s a failover right after a resync waited for it.
      const d = seed003Paths(host);
      const db = SEED003_DB;
      const s = host.scenarioDir;
      return {
        files: {
          'cib.crm': `${nodeLines(nodes)}
primitive fence-lab halo:lab-fence params netns_prefix=${netnsPrefix}
primitive ${SEED003_VOLUME_RESOURCE} ocf:linbit:drbd params drbd_resource=${SEED003_VOLUME} config=${d.drbdConf} device_link=${d.deviceLink} link_conf_device=false op monitor interval=10s role=Master op monitor interval=2s role=Slave op start timeout=120s op promote timeout=60s
ms ms_drbd ${SEED003_VOLUME_RESOURCE} meta master-max=1 master-node-max=1 clone-max=2 clone-node-max=1 notify=true
primitive ${SEED003_FS_RESOURCE} ocf:heartbeat:Filesystem params device=${d.deviceLink} directory=${d.mount} fstype=ext4 run_fsck=force op start timeout=20s op stop timeout=60s op monitor interval=10s timeout=40s
primitive ${SEED003_VIP_RESOURCE} halo:vip params ip=${LAB_VIP} cidr_netmask=24 nic=link0 op monitor interval=2s
primitive ${SEED003_SERVER_RESOURCE} ocf:heartbeat:nginx params configfile=${s}/${SEED003_NGINX_CONF} httpd=${s}/${SEED003_NGINX_WRAPPER} op monitor interval=10s timeout=60s op start timeout=30s op stop timeout=20s
primitive ${SEED003_DB_RESOURCE} ocf:heartbeat:mysql params binary=/usr/sbin/mariadbd client_binary=/usr/bin/mariadb config=${s}/${SEED003_MY_CNF} datadir=${d.datadir} socket=${d.nodeRun}/mysqld/mysqld.sock pid=${d.nodeRun}/mysqld/mysqld.pid log=${d.logDir}/mysql_error.log user=mysql group=mysql test_user=${db.user} test_passwd=${db.password} test_table=${db.name}.${db.table} op monitor interval=10s timeout=60s op start timeout=60s op stop timeout=30s
group g_all ${SEED003_FS_RESOURCE} ${SEED003_VIP_RESOURCE} ${SEED003_SERVER_RESOURCE} ${SEED003_DB_RESOURCE}
colocation c_drbd inf: g_all ms_drbd:Master
order o_afterdrbd inf: ms_drbd:promote g_all:start
property stonith-enabled=true stonith-action=off no-quorum-policy=stop default-resource-stickiness=100
`,
          'drbd.conf': seed003DrbdConf(nodes, host),
          [SEED003_NGINX_CONF]: seed003NginxConf(host),
          [SEED003_NGINX_WRAPPER]: seed003NginxWrapper(netnsPrefix),
          [SEED003_MY_CNF]: seed003MyCnf(host),
          [SEED003_DB_INIT_SQL]: seed003DbInitSql(),
        },
        next: `curl http://${LAB_VIP}/ and mariadb -h ${LAB_VIP} -u ${db.user} -p${db.password} ${db.name} from the client namespace (data on the replicated volume ${SEED003_VOLUME}, mounted at ${d.mount} on the Primary)`,
      };
    }
    case 'seed-004':
      // Seed 004's Heartbeat files in the seed's shape; `halo lab up` runs them through seed004Up.
      return seed004Files(nodes, host);
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
