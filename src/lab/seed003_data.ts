import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { HaloError } from '../lib/errors.ts';
import {
  type ScenarioHost,
  SEED003_DB_INIT_SQL,
  SEED003_INDEX,
  SEED003_MY_CNF,
  SEED003_NGINX_WRAPPER,
  SEED003_VOLUME,
} from './scenarios.ts';

/**
 * What seed-003 puts on its freshly made filesystem at `halo lab up`, as the seed's admin does by
 * hand once (mkdir /var/drbd/{mysql,www/html,log}, move the MySQL data directory there): the web
 * root with its page, the log directory, and a MariaDB data directory made by
 * `mariadb-install-db` with the lab's account and table. The cluster never initialises a
 * database: ocf:heartbeat:mysql only starts what is on the volume.
 */

/** The MariaDB tools the scenario runs (Debian's mariadb-server and mariadb-client). */
export const MARIADB_TOOLS = ['mariadb-install-db', 'mariadbd', 'mariadb'] as const;
/** mariadb-install-db on a busy two-core host: a few seconds, bounded. */
const INSTALL_DB_TIMEOUT_MS = 120_000;
/** The OS account MariaDB runs as (Debian's mariadb-server makes it). */
const DB_OS_USER = 'mysql';

/** Which needed tool is missing, if one is (for clear errors and test skips). */
export function missingSeed003Tool(): string | undefined {
  for (const tool of [...MARIADB_TOOLS, 'nginx', 'unshare']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return tool;
    }
  }
  if (!existsSync('/usr/lib/ocf/resource.d/heartbeat/mysql')) return 'ocf:heartbeat:mysql (resource-agents)';
  if (!existsSync('/usr/lib/ocf/resource.d/heartbeat/nginx')) return 'ocf:heartbeat:nginx (resource-agents)';
  return undefined;
}

function osIds(user: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  const f = line?.split(':');
  if (!f || f.length < 4)
    throw new HaloError(
      'db-setup-failed',
      `no '${user}' account in /etc/passwd: install MariaDB (apt-get install --no-install-recommends mariadb-server)`,
    );
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/**
 * Fills the new filesystem mounted at `mnt` (on the node that made it, before the cluster starts).
 * Also lets the services' accounts (mysql, nginx's www-data) reach the lab directory: it is made
 * 0700, and they need to pass through it (0711: no listing) to their files on the mount.
 */
export function prepareSeed003Filesystem(mnt: string, host: ScenarioHost, say: (l: string) => void): void {
  const tool = missingSeed003Tool();
  if (tool)
    throw new HaloError(
      'db-setup-failed',
      `seed-003 needs ${tool}: apt-get install --no-install-recommends mariadb-server nginx resource-agents`,
    );
  const lab = dirname(host.scenarioDir);
  chmodSync(lab, 0o711);
  chmodSync(join(host.scenarioDir, SEED003_NGINX_WRAPPER), 0o755);
  const docroot = join(mnt, 'www', 'html');
  mkdirSync(docroot, { recursive: true });
  mkdirSync(join(mnt, 'log'), { recursive: true });
  writeFileSync(
    join(docroot, SEED003_INDEX),
    `<p>halo lab seed-003: this page lives on the replicated volume ${SEED003_VOLUME}</p>\n`,
  );
  const datadir = join(mnt, 'mysql');
  mkdirSync(datadir, { recursive: true });
  const { uid, gid } = osIds(DB_OS_USER);
  chownSync(datadir, uid, gid);
  const started = Date.now();
  try {
    execFileSync(
      'mariadb-install-db',
      [
        `--defaults-file=${join(host.scenarioDir, SEED003_MY_CNF)}`,
        `--datadir=${datadir}`,
        `--user=${DB_OS_USER}`,
        '--auth-root-authentication-method=socket',
        '--skip-test-db',
        '--skip-name-resolve',
        `--extra-file=${join(host.scenarioDir, SEED003_DB_INIT_SQL)}`,
      ],
      { timeout: INSTALL_DB_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' },
    );
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    const out = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim().split('\n').slice(0, 6).join(' | ');
    throw new HaloError(
      'db-setup-failed',
      `mariadb-install-db --datadir=${datadir} failed: ${out || e.message}`,
    );
  }
  say(`database: MariaDB data directory made on the volume in ${Date.now() - started} ms`);
}
