import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { type Command, Option } from 'commander';
import { controlSocketPath, loadConfig, parseConfig } from '../daemon/config.ts';
import { queryControl } from '../daemon/control.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { resolveSelf, runDaemon } from '../daemon/run.ts';
import { HaloError } from '../lib/errors.ts';
import type { LogLevel } from '../lib/ports.ts';
import { PROFILE_NAMES } from '../membership/profiles.ts';
import { DEFAULT_KEY_FILE, generateKeyFile } from '../transport/key_file.ts';

export const DEFAULT_CONFIG_FILE = '/etc/halo/halo.json';
const DEFAULT_PORT = 5405;

/**
 * `halo keygen`, `halo daemon`, `halo cluster init|join` and `halo status`: making a cluster,
 * running a node, and looking at it.
 */
export function registerClusterCommands(program: Command): void {
  program
    .command('keygen')
    .description('write a new random 32-byte cluster key (mode 0600); copy it to every node')
    .option('--file <path>', 'key file', DEFAULT_KEY_FILE)
    .option('--force', 'replace an existing key (cuts this node off until every node has the new key)')
    .action((o: { file: string; force?: boolean }) =>
      guard(() => {
        generateKeyFile(o.file, { force: o.force === true });
        process.stdout.write(
          `wrote cluster key ${o.file} (mode 0600); copy it to every node of the cluster\n`,
        );
      }),
    );

  program
    .command('daemon')
    .description('run this node: transport, membership, quorum and consensus')
    .option('--config <file>', 'cluster config', DEFAULT_CONFIG_FILE)
    .option('--node <name>', 'which configured node this is (default: found by local addresses)')
    .option('--witness', 'run as the quorum witness: votes, runs no resources')
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(['debug', 'info', 'warn', 'error'])
        .default('info'),
    )
    .action(async (o: { config: string; node?: string; witness?: boolean; logLevel: LogLevel }) => {
      await guardAsync(async () => {
        process.exitCode = await runDaemon({
          configFile: o.config,
          ...(o.node === undefined ? {} : { node: o.node }),
          witness: o.witness === true,
          logLevel: o.logLevel,
        });
      });
    });

  const cluster = program.command('cluster').description('create a cluster and add nodes to it');
  cluster
    .command('init')
    .description('write a config and a key for a new cluster')
    .argument('<name>', 'cluster name')
    .requiredOption('--node <name=addr[,addr…]>', 'a node and its address on each link (repeat)', collect, [])
    .option('--witness <name=addr>', 'a quorum witness (votes, runs no resources)')
    .addOption(new Option('--profile <profile>', 'timing profile').choices([...PROFILE_NAMES]).default('lan'))
    .option('--config <file>', 'config file to write', DEFAULT_CONFIG_FILE)
    .option('--key-file <file>', 'key file to write', DEFAULT_KEY_FILE)
    .option('--force', 'overwrite an existing config and key')
    .action(
      (
        name: string,
        o: {
          node: string[];
          witness?: string;
          profile: string;
          config: string;
          keyFile: string;
          force?: boolean;
        },
      ) =>
        guard(() => {
          const nodes = o.node.map((spec, i) => nodeEntry(spec, i + 1, false));
          if (o.witness) nodes.push(nodeEntry(o.witness, nodes.length + 1, true));
          const twoNode = nodes.filter((n) => !n.witness).length === 2 && !o.witness;
          const doc = { cluster: name, keyFile: o.keyFile, profile: o.profile, quorum: { twoNode }, nodes };
          if (!o.force && exists(o.config))
            throw new HaloError('config-exists', `${o.config} already exists; pass --force to replace it`);
          writeConfig(o.config, doc);
          generateKeyFile(o.keyFile, { force: o.force === true });
          process.stdout.write(
            `wrote ${o.config} and ${o.keyFile}; copy both to every node and start 'halo daemon' on each${twoNode ? '\nnote: two nodes without a witness: a survivor continues alone only after fencing its peer' : ''}\n`,
          );
        }),
    );
  cluster
    .command('join')
    .description('add a node to the cluster config (then copy the config to every node)')
    .argument('<name>', 'new node name')
    .requiredOption('--addr <addr[,addr…]>', 'the node’s address on each link')
    .option('--id <n>', 'node id (default: next free)')
    .option('--witness', 'the new node is a quorum witness')
    .option('--config <file>', 'config file to change', DEFAULT_CONFIG_FILE)
    .action((name: string, o: { addr: string; id?: string; witness?: boolean; config: string }) =>
      guard(() => {
        const cfg = loadConfig(o.config);
        const doc = JSON.parse(readFileSync(o.config, 'utf8')) as {
          nodes: Array<Record<string, unknown>>;
          quorum?: Record<string, unknown>;
        };
        const id = o.id === undefined ? Math.max(...cfg.nodes.map((n) => n.id)) + 1 : Number(o.id);
        doc.nodes.push(nodeEntry(`${name}=${o.addr}`, id, o.witness === true));
        if (doc.quorum?.twoNode) {
          // A third vote (node or witness) gives a real majority; two_node no longer applies.
          doc.quorum.twoNode = false;
        }
        parseConfig(JSON.stringify(doc), o.config); // refuse anything the daemon would refuse
        writeConfig(o.config, doc);
        process.stdout.write(
          `added ${o.witness ? 'witness' : 'node'} ${name} (id ${id}) to ${o.config}; copy it to every node and restart their daemons\n`,
        );
      }),
    );

  program
    .command('status')
    .description('members, links per member, quorum, DC (Raft leader) and term, as seen by this node')
    .option('--config <file>', 'cluster config', DEFAULT_CONFIG_FILE)
    .option('--node <name>', 'ask this node’s daemon (default: found by local addresses)')
    .option('--socket <path>', 'control socket path (overrides --config/--node)')
    .addOption(new Option('--output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (o: { config: string; node?: string; socket?: string; output: string }) => {
      await guardAsync(async () => {
        let path = o.socket;
        if (!path) {
          const cfg = loadConfig(o.config);
          path = controlSocketPath(cfg, resolveSelf(cfg, o.node));
        }
        const st = (await queryControl(path, 'status')) as DaemonStatus;
        // Where the resources run (crm_mon -1), from this node's controller: the DC's live view
        // when this node is the DC, else the replicated CIB. Older daemons do not answer it.
        const mon = (await queryControl(path, 'crm_mon').catch(() => undefined)) as
          | { text?: string; source?: string }
          | undefined;
        const resources = typeof mon?.text === 'string' ? mon : undefined;
        if (o.output === 'json') {
          process.stdout.write(
            `${JSON.stringify({ ...st, ...(resources ? { resources } : {}) }, null, 2)}\n`,
          );
          return;
        }
        process.stdout.write(formatStatus(st));
        if (resources) {
          const from =
            resources.source === 'dc'
              ? 'this node is the DC'
              : `from the replicated CIB; run halo status on the DC (${st.dc ?? 'none'}) for its live view`;
          process.stdout.write(`\nResources (${from}):\n${resources.text}`);
        }
      });
    });
}

/** Renders status like `crm_mon -1`: one header block, then one line per member and link. */
export function formatStatus(st: DaemonStatus): string {
  const lines: string[] = [];
  lines.push(`Cluster: ${st.cluster} (profile ${st.profile})`);
  lines.push(
    `Node: ${st.node} (id ${st.nodeId}${st.witness ? ', witness' : ''}, epoch ${st.epoch}, up ${Math.round(st.uptimeMs / 1000)} s)`,
  );
  const c = st.consensus;
  lines.push(
    `Current DC: ${st.dc ?? 'NONE'}${c ? ` (term ${c.term}, this node is ${c.role}, commit ${c.commit})` : ' (consensus not running)'}`,
  );
  if (c?.cib)
    lines.push(`CIB: epoch ${c.cib.epoch}, num_updates ${c.cib.numUpdates}, admin_epoch ${c.cib.adminEpoch}`);
  const q = st.quorum;
  lines.push(`Quorum: ${q.quorate ? 'yes' : 'NO'}: ${q.reason}`);
  lines.push('', 'Members:');
  for (const m of st.members) {
    const role = m.witness ? ' witness' : '';
    if (m.self) {
      lines.push(`  * ${m.name} (id ${m.id}${role}): self`);
      continue;
    }
    const heard = m.lastHeardMsAgo === null ? 'never heard' : `heard ${m.lastHeardMsAgo} ms ago`;
    const skew =
      m.clockSkewMs !== null && Math.abs(m.clockSkewMs) > 100
        ? `, clock ${m.clockSkewMs > 0 ? '+' : ''}${m.clockSkewMs} ms`
        : '';
    lines.push(`  * ${m.name} (id ${m.id}${role}): ${m.state}, ${heard}, deadtime ${m.deadtimeMs} ms${skew}`);
    for (const l of m.links) {
      const ago = l.lastHeardMsAgo === null ? 'never' : `${l.lastHeardMsAgo} ms ago`;
      lines.push(
        `      link ${l.link} ${l.local} -> ${l.remote}: ${l.state} (last ${ago}, rx ${l.received}, tx ${l.sent}${l.sendErrors ? `, send errors ${l.sendErrors}` : ''})`,
      );
    }
  }
  const p = st.packets;
  lines.push(
    '',
    `Packets: accepted ${p.accepted}, malformed ${p.malformed}, foreign ${p.foreign}, forged ${p.forged}, replayed ${p.replayed}, bad payload ${p.badPayload}, unconfirmed heartbeats ${p.unconfirmed}`,
  );
  return `${lines.join('\n')}\n`;
}

function nodeEntry(
  spec: string,
  id: number,
  witness: boolean,
): { id: number; name: string; links: string[]; witness?: boolean } {
  const m = /^([^=]+)=(.+)$/.exec(spec);
  if (!m) throw new HaloError('bad-argument', `'${spec}' is not name=addr[,addr…]`);
  const links = m[2]!.split(',').map(withPort);
  return { id, name: m[1]!, links, ...(witness ? { witness: true } : {}) };
}

/** `10.0.0.1` → `10.0.0.1:5405`, `fd00::1` → `[fd00::1]:5405`; an address with a port is kept. */
function withPort(addr: string): string {
  if (/^\[[0-9a-fA-F:.]+\]:\d+$/.test(addr) || /^[^:]+:\d+$/.test(addr)) return addr;
  return addr.includes(':') ? `[${addr}]:${DEFAULT_PORT}` : `${addr}:${DEFAULT_PORT}`;
}

function writeConfig(path: string, doc: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, `${JSON.stringify(doc, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function exists(path: string): boolean {
  try {
    readFileSync(path);
    return true;
  } catch {
    return false;
  }
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function report(err: unknown): void {
  if (err instanceof HaloError) {
    process.stderr.write(`halo: ${err.message} [${err.code}]\n`);
    process.exitCode = 1;
    return;
  }
  throw err;
}

function guard(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    report(err);
  }
}

async function guardAsync(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    report(err);
  }
}
