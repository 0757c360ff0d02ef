import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { type Command, Option } from 'commander';
import { parseCibXmlFile } from '../cib/cib_xml_fs.ts';
import { durationMsOr, parseDuration } from '../cib/duration.ts';
import type { Cib } from '../cib/model.ts';
import { clusterProperty } from '../cib/resources.ts';
import { renderStatus } from '../controller/crm_mon.ts';
import { activeInNodeState } from '../controller/status.ts';
import { controlSocketPath, DEFAULT_CONFIG_FILE, loadConfig, parseConfig } from '../daemon/config.ts';
import { queryControl } from '../daemon/control.ts';
import {
  type DaemonStatus,
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  MAX_LEAVE_TIMEOUT_MS,
  MEMBER_CHANGE_TIMEOUT_MS,
  type MemberChangeOutcome,
  type MemberRemoveOptions,
} from '../daemon/daemon.ts';
import { resolveSelf, runDaemon } from '../daemon/run.ts';
import { formatDiagnostic, HaloError } from '../lib/errors.ts';
import type { LogLevel } from '../lib/ports.ts';
import { isProfileName, PROFILE_NAMES } from '../membership/profiles.ts';
import { schedule } from '../scheduler/schedule.ts';
import { DEFAULT_KEY_FILE, generateKeyFile } from '../transport/key_file.ts';
import { type InitPlan, localHost, nodeEntry, planFromSource, readMembershipSource } from './cluster_from.ts';
import { example } from './help.ts';

export { DEFAULT_CONFIG_FILE };

/** Extra wait for a membership answer beyond the daemon's own commit timeout. */
const CONTROL_SLACK_MS = 5_000;
/** How often `cluster leave` looks at what still runs on the node it drains, to print progress. */
const LEAVE_PROGRESS_POLL_MS = 1_000;

interface ConfigDoc {
  nodes: Array<Record<string, unknown>>;
  quorum?: Record<string, unknown>;
}

function readConfigDoc(path: string): ConfigDoc {
  return JSON.parse(readFileSync(path, 'utf8')) as ConfigDoc;
}

/** What `join` and `leave` can do instead when no daemon answers. */
const JOIN_WHEN_DOWN = 'or pass --offline to edit only the config';
const LEAVE_WHEN_DOWN =
  "or, with the whole cluster stopped, remove the node from the config's nodes on every node";

/** Asks the local daemon; a daemon that does not answer means the cluster is down here. */
async function askDaemon(path: string, line: string, whenDown: string, timeoutMs?: number): Promise<unknown> {
  try {
    return await queryControl(path, line, timeoutMs);
  } catch (err) {
    if ((err as HaloError).code !== 'daemon-unreachable') throw err;
    throw new HaloError(
      'cluster-down',
      `no daemon answers on ${path}: start the cluster first (halo daemon), ${whenDown}`,
      { cause: err },
    );
  }
}

function memberError(what: string, r: Extract<MemberChangeOutcome, { ok: false }>): HaloError {
  const leader = r.leader ? ` (leader: ${r.leader})` : '';
  return new HaloError(r.code, `${what}: ${r.message}${leader}`);
}

/**
 * `halo keygen`, `halo daemon`, `halo cluster init|join` and `halo status`: making a cluster,
 * running a node, and looking at it.
 */
export function registerClusterCommands(program: Command): void {
  example(
    program
      .command('keygen')
      .description('write a new random 32-byte cluster key (mode 0600); copy it to every node')
      .option('--file <path>', 'key file', DEFAULT_KEY_FILE)
      .option(
        '--force',
        'replace an existing key (a daemon started with it cannot talk to nodes still on the old one)',
      ),
    'halo keygen   # /etc/halo/authkey; refuses to replace an existing key',
    'halo keygen --file /etc/halo/authkey --force   # replace it; daemons read it when they start',
  ).action((o: { file: string; force?: boolean }) =>
    guard(() => {
      generateKeyFile(o.file, { force: o.force === true });
      process.stdout.write(`wrote cluster key ${o.file} (mode 0600); copy it to every node of the cluster\n`);
    }),
  );

  example(
    program
      .command('daemon')
      .description(
        'run this node in the foreground until SIGTERM (JSON logs on stderr): links, membership, quorum, the Raft DC and the resource manager',
      )
      .option('--config <file>', 'cluster config', DEFAULT_CONFIG_FILE)
      .option('--node <name>', 'which configured node this is (default: found by local addresses)')
      .option('--witness', 'run as the quorum witness: votes, runs no resources')
      .option(
        '--join',
        'join a running cluster (after `halo cluster join` on a member) instead of forming one',
      )
      .addOption(
        new Option('--log-level <level>', 'log level')
          .choices(['debug', 'info', 'warn', 'error'])
          .default('info'),
      ),
    'halo daemon --config /etc/halo/halo.json --node node01',
    "halo daemon --join   # a new node, after 'halo cluster join' for it on a member",
    'halo daemon --witness   # on the witness host (configured with "witness": true)',
  ).action(
    async (o: { config: string; node?: string; witness?: boolean; join?: boolean; logLevel: LogLevel }) => {
      await guardAsync(async () => {
        process.exitCode = await runDaemon({
          configFile: o.config,
          ...(o.node === undefined ? {} : { node: o.node }),
          witness: o.witness === true,
          join: o.join === true,
          logLevel: o.logLevel,
        });
      });
    },
  );

  const cluster = program
    .command('cluster')
    .description('create a cluster, add nodes to it and remove them, while it runs');
  example(
    cluster
      .command('init')
      .description(
        'write the config and a new key for a new cluster; copy both to every node, then start `halo daemon` on each. With --from, the nodes, links, port, timing and quorum come from the corosync.conf or Heartbeat ha.cf the cluster used so far (what it cannot say, --node adds)',
      )
      .argument('[name]', 'cluster name (with --from a corosync.conf: default totem.cluster_name)')
      .option(
        '--node <name=addr[,addr…]>',
        "a node and its address on each link (repeat); with --from, the address of a file's node that the file does not give",
        collect,
        [],
      )
      .option('--from <file>', 'take the membership from this corosync.conf or Heartbeat ha.cf')
      .option('--witness <name=addr>', 'a quorum witness (votes, runs no resources)')
      .addOption(
        new Option(
          '--profile <profile>',
          'timing profile (with --from: default the closest to the file’s timing)',
        )
          .choices([...PROFILE_NAMES])
          .default('lan'),
      )
      .option('--config <file>', 'config file to write', DEFAULT_CONFIG_FILE)
      .option('--key-file <file>', 'key file to write', DEFAULT_KEY_FILE)
      .option('--dry-run', 'print the config that would be written, write nothing')
      .option('--force', 'overwrite an existing config and key'),
    'halo cluster init web --node node01=10.0.0.2,192.168.1.2 --node node02=10.0.0.3,192.168.1.3',
    'halo cluster init db --node alpha=10.0.0.1 --node beta=10.0.0.2 --witness tie=10.0.0.9',
    'halo cluster init --from /etc/corosync/corosync.conf --dry-run   # corosync 2/3 nodelist: names, ring0_addr…, nodeid, mcastport, token, two_node',
    'halo cluster init web --from /etc/corosync/corosync.conf --node n1=10.0.0.1 --node n2=10.0.0.2   # corosync 1.x: no nodelist, so every node by hand',
    'halo cluster init web --from /etc/ha.d/ha.cf --node node01=10.0.0.1 --node node02=10.0.0.2   # ha.cf: node names, udpport, deadtime; addresses by hand (ucast peers are used where unambiguous)',
  ).action(
    (
      name: string | undefined,
      o: {
        node: string[];
        from?: string;
        witness?: string;
        profile: string;
        config: string;
        keyFile: string;
        dryRun?: boolean;
        force?: boolean;
      },
      cmd: Command,
    ) =>
      guard(() => {
        let plan: InitPlan;
        if (o.from !== undefined) {
          const src = readMembershipSource(o.from, localHost());
          const explicit = cmd.getOptionValueSource('profile') !== 'default';
          plan = planFromSource(src, {
            ...(name === undefined ? {} : { name }),
            nodeSpecs: o.node,
            ...(o.witness === undefined ? {} : { witness: o.witness }),
            ...(explicit && isProfileName(o.profile) ? { profile: o.profile } : {}),
            keyFile: o.keyFile,
          });
        } else {
          if (name === undefined)
            throw new HaloError(
              'bad-argument',
              "give the cluster name: 'halo cluster init NAME --node NAME=ADDR …'",
            );
          if (o.node.length === 0)
            throw new HaloError(
              'bad-argument',
              'give each node with --node NAME=ADDR[,ADDR…], or take them from a corosync.conf or ha.cf with --from FILE',
            );
          const nodes = o.node.map((spec, i) => nodeEntry(spec, i + 1, false));
          if (o.witness) nodes.push(nodeEntry(o.witness, nodes.length + 1, true));
          const twoNode = nodes.filter((n) => !n.witness).length === 2 && !o.witness;
          plan = {
            doc: { cluster: name, keyFile: o.keyFile, profile: o.profile, quorum: { twoNode }, nodes },
            summary: [],
            twoNode,
          };
        }
        // Refuse anything the daemon would refuse, before writing anything.
        parseConfig(JSON.stringify(plan.doc), o.from ? `the config made from ${o.from}` : 'the config');
        if (!o.dryRun && !o.force) {
          if (exists(o.config))
            throw new HaloError('config-exists', `${o.config} already exists; pass --force to replace it`);
          if (exists(o.keyFile))
            throw new HaloError(
              'key-file-exists',
              `${o.keyFile} already exists; pass --force to replace the cluster key`,
            );
        }
        for (const line of plan.summary) process.stdout.write(`${line}\n`);
        if (o.dryRun) {
          process.stdout.write(
            `dry run: nothing written; ${o.config} would be:\n${JSON.stringify(plan.doc, null, 2)}\n`,
          );
          return;
        }
        writeConfig(o.config, plan.doc);
        generateKeyFile(o.keyFile, { force: o.force === true });
        process.stdout.write(
          `wrote ${o.config} and ${o.keyFile}; copy both to every node and start 'halo daemon' on each${plan.twoNode ? '\nnote: two nodes without a witness: a survivor continues alone only after fencing its peer' : ''}\n`,
        );
      }),
  );
  example(
    cluster
      .command('join')
      .description(
        'add a node to the running cluster (a Raft membership change through this host’s daemon) and to the config file; then copy the config and key to the new node and start it with `halo daemon --join`',
      )
      .argument('<name>', 'new node name')
      .requiredOption('--addr <addr[,addr…]>', 'the node’s address on each link')
      .option('--id <n>', 'node id (default: next free)')
      .option('--witness', 'the new node is a quorum witness')
      .option('--config <file>', 'config file to change', DEFAULT_CONFIG_FILE)
      .option('--node <name>', 'which configured node this host is (default: found by local addresses)')
      .option('--socket <path>', 'control socket of the daemon to ask (overrides --node)')
      .option(
        '--offline',
        'only edit the config file, for a cluster that is not running (restart every daemon after)',
      ),
    "halo cluster join node03 --addr 10.0.0.4,192.168.1.4   # then 'halo daemon --join' on node03",
    'halo cluster join tie --addr 10.0.0.9 --witness',
    'halo cluster join node03 --addr 10.0.0.4 --offline   # cluster stopped: edit the config only',
  ).action(
    async (
      name: string,
      o: {
        addr: string;
        id?: string;
        witness?: boolean;
        config: string;
        node?: string;
        socket?: string;
        offline?: boolean;
      },
    ) =>
      guardAsync(async () => {
        const cfg = loadConfig(o.config);
        const doc = readConfigDoc(o.config);
        let live: { path: string; ids: number[] } | undefined;
        if (!o.offline) {
          const path = o.socket ?? controlSocketPath(cfg, resolveSelf(cfg, o.node));
          const st = (await askDaemon(path, 'status', JOIN_WHEN_DOWN)) as DaemonStatus;
          live = { path, ids: st.members.map((m) => m.id) };
        }
        let id = Math.max(...cfg.nodes.map((n) => n.id), ...(live?.ids ?? [])) + 1;
        if (o.id !== undefined) {
          id = Number(o.id);
          if (!Number.isInteger(id))
            throw new HaloError('bad-argument', `--id must be an integer, got '${o.id}'`);
        }
        const entry = nodeEntry(`${name}=${o.addr}`, id, o.witness === true);
        doc.nodes.push(entry);
        if (doc.quorum?.twoNode) {
          // A third vote (node or witness) gives a real majority; two_node no longer applies.
          doc.quorum.twoNode = false;
        }
        parseConfig(JSON.stringify(doc), o.config); // refuse anything the daemon would refuse
        if (live) {
          const r = (await askDaemon(
            live.path,
            `member-add ${JSON.stringify(entry)}`,
            JOIN_WHEN_DOWN,
            MEMBER_CHANGE_TIMEOUT_MS + CONTROL_SLACK_MS,
          )) as MemberChangeOutcome;
          if (!r.ok) throw memberError(`cannot add ${name}`, r);
        }
        writeConfig(o.config, doc);
        process.stdout.write(
          live
            ? `added ${o.witness ? 'witness' : 'node'} ${name} (id ${id}) to the running cluster and to ${o.config}; copy it and the key to ${name} and start 'halo daemon --join' there; copy the config to the other nodes too\n`
            : `added ${o.witness ? 'witness' : 'node'} ${name} (id ${id}) to ${o.config}; copy it to every node and restart their daemons\n`,
        );
      }),
  );
  example(
    cluster
      .command('leave')
      .description(
        'remove a node (default: this one) from the running cluster and from the config file; the removed node’s daemon stops',
      )
      .argument('[name]', 'node to remove (default: this host’s node)')
      .option('--config <file>', 'config file to change', DEFAULT_CONFIG_FILE)
      .option('--node <name>', 'which configured node this host is (default: found by local addresses)')
      .option('--socket <path>', 'control socket of the daemon to ask (overrides --node)')
      .option(
        '--timeout <duration>',
        'how long an online node may take to have its resources moved away (default: the shutdown-escalation property, else 60s)',
      )
      .option(
        '--force',
        'remove a node that is not online even though the CIB shows resources active there (the DC still fences it before starting them elsewhere)',
      ),
    "halo cluster leave   # this host's node: its resources move to the other nodes first",
    'halo cluster leave node03   # from any member',
    'halo cluster leave node03 --force   # node03 died with resources on it: remove it anyway (the DC still fences it first)',
  ).action(
    async (
      name: string | undefined,
      o: { config: string; node?: string; socket?: string; timeout?: string; force?: boolean },
    ) =>
      guardAsync(async () => {
        const cfg = loadConfig(o.config);
        const path = o.socket ?? controlSocketPath(cfg, resolveSelf(cfg, o.node));
        const target = name ?? ((await askDaemon(path, 'status', LEAVE_WHEN_DOWN)) as DaemonStatus).node;
        const timeoutMs = await leaveTimeoutMs(path, o.timeout);
        const opts: MemberRemoveOptions = { timeoutMs, ...(o.force ? { force: true } : {}) };
        const progress = watchLeave(path, target, timeoutMs);
        let r: MemberChangeOutcome;
        try {
          r = (await askDaemon(
            path,
            `member-remove ${target} ${JSON.stringify(opts)}`,
            LEAVE_WHEN_DOWN,
            timeoutMs + MEMBER_CHANGE_TIMEOUT_MS + CONTROL_SLACK_MS,
          )) as MemberChangeOutcome;
        } finally {
          progress.stop();
        }
        if (!r.ok) throw memberError(`cannot remove ${target}`, r);
        const doc = readConfigDoc(o.config);
        const rest = doc.nodes.filter((n) => n.name !== target);
        let note = '';
        if (rest.length === doc.nodes.length) note = ` (it was not in ${o.config})`;
        else if (rest.length === 0) note = ` (${o.config} left as it is: it would list no node)`;
        else {
          writeConfig(o.config, { ...doc, nodes: rest });
          note = ` and from ${o.config}; copy it to every node`;
        }
        process.stdout.write(`removed ${target} (id ${r.id}) from the running cluster${note}\n`);
      }),
  );

  example(
    program
      .command('status')
      .description(
        "what this node's daemon sees: members and their links, quorum, the DC (Raft leader) and term, and where the resources run (like crm_mon -1)",
      )
      .option('--config <file>', 'cluster config', DEFAULT_CONFIG_FILE)
      .option('--node <name>', 'ask this node’s daemon (default: found by local addresses)')
      .option('--socket <path>', 'control socket path (overrides --config/--node)')
      .option('--cib <file>', 'show this CIB XML file instead, as crm_mon does (default: $CIB_file)')
      .addOption(new Option('--output <format>', 'output format').choices(['text', 'json']).default('text')),
    'halo status',
    'halo status --output json',
    'halo status --socket /run/halo-lab/n1/halo.sock   # node n1 of `halo lab up`',
    'CIB_file=cib.xml halo status   # a CIB file offline, like crm_mon -1 with CIB_file',
  ).action(async (o: { config: string; node?: string; socket?: string; cib?: string; output: string }) => {
    await guardAsync(async () => {
      const cibFile = o.cib ?? process.env.CIB_file;
      if (cibFile !== undefined && cibFile !== '') {
        const text = statusOfCibFile(cibFile);
        process.stdout.write(
          o.output === 'json' ? `${JSON.stringify({ cib: cibFile, resources: { text } }, null, 2)}\n` : text,
        );
        return;
      }
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
        process.stdout.write(`${JSON.stringify({ ...st, ...(resources ? { resources } : {}) }, null, 2)}\n`);
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

/**
 * How long `cluster leave` lets the daemon drain an online node: `--timeout`, else the cluster's
 * shutdown-escalation (as a node's own clean shutdown), else DEFAULT_SHUTDOWN_TIMEOUT_MS.
 */
async function leaveTimeoutMs(path: string, text: string | undefined): Promise<number> {
  if (text !== undefined) {
    const d = parseDuration(text);
    if (!d.ok) throw new HaloError('bad-argument', `--timeout: ${d.reason}`);
    if (d.ms > MAX_LEAVE_TIMEOUT_MS)
      throw new HaloError(
        'bad-argument',
        `--timeout: at most ${MAX_LEAVE_TIMEOUT_MS / 60_000} minutes, got '${text}'`,
      );
    return d.ms;
  }
  const view = (await askDaemon(path, 'cib', LEAVE_WHEN_DOWN)) as { cib?: Cib };
  const escalation = view.cib ? clusterProperty(view.cib, 'shutdown-escalation') : undefined;
  return Math.min(MAX_LEAVE_TIMEOUT_MS, durationMsOr(escalation, DEFAULT_SHUTDOWN_TIMEOUT_MS));
}

/**
 * Prints, while the daemon drains `target`, what the CIB (this daemon's view) still shows active
 * there, each time that changes. Best effort: a read that fails is skipped.
 */
function watchLeave(path: string, target: string, timeoutMs: number): { stop(): void } {
  let said = '';
  let stopped = false;
  const look = async (): Promise<void> => {
    const view = (await queryControl(path, 'cib').catch(() => undefined)) as { cib?: Cib } | undefined;
    if (stopped || !view?.cib) return;
    const entry = view.cib.configuration.nodes.find((n) => n.uname === target);
    const state = view.cib.status.find(
      (s) => s.uname === target || (entry !== undefined && s.id === entry.id),
    );
    const active = state ? activeInNodeState(state) : [];
    const now = active.join(', ');
    if (now === said) return;
    if (now !== '')
      process.stdout.write(
        `${target} still runs ${now}; waiting for the DC to move ${active.length === 1 ? 'it' : 'them'} to other nodes (up to ${Math.round(timeoutMs / 1000)} s)\n`,
      );
    else process.stdout.write(`nothing runs on ${target} any more\n`);
    said = now;
  };
  const timer = setInterval(() => void look(), LEAVE_PROGRESS_POLL_MS);
  void look();
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
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
    `Packets: accepted ${p.accepted}, malformed ${p.malformed}, foreign ${p.foreign}, forged ${p.forged}, replayed ${p.replayed}, bad payload ${p.badPayload}, unconfirmed heartbeats ${p.unconfirmed}, stale heartbeats ${p.staleHeartbeats ?? 0}, stale after fence ${p.staleAfterFence ?? 0}`,
  );
  return `${lines.join('\n')}\n`;
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

/**
 * Errors that mean "no cluster to ask" or "bad input" exit 2, as README's exit codes say; what
 * remains is a refusal (the cluster, or an existing file, said no) and exits 1.
 */
const EXIT_2_CODES: ReadonlySet<string> = new Set([
  'bad-source-file',
  'source-unreadable',
  'missing-node-address',
  'cib-unreadable',
  'bad-cib',
  'daemon-unreachable',
  'cluster-down',
  'control-timeout',
  'config-unreadable',
  'bad-argument',
  'bad-config',
  'bad-answer',
]);

function report(err: unknown): void {
  if (err instanceof HaloError) {
    process.stderr.write(`halo: ${err.message} [${err.code}]\n`);
    process.exitCode = EXIT_2_CODES.has(err.code) ? 2 : 1;
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

/**
 * `crm_mon -1` of a CIB file (`CIB_file=cib.xml crm_mon -1`): the DC and quorum as the file
 * records them (dc-uuid, have-quorum), nodes and resources from its status section.
 */
function statusOfCibFile(file: string): string {
  let parsed: ReturnType<typeof parseCibXmlFile>;
  try {
    parsed = parseCibXmlFile(file);
  } catch (err) {
    throw new HaloError('cib-unreadable', `${file}: cannot read the CIB file (${(err as Error).message})`, {
      cause: err,
    });
  }
  if (!parsed.ok) throw new HaloError('bad-cib', parsed.diagnostics.map(formatDiagnostic).join('\n'));
  const cib = parsed.cib;
  const attr = (name: string) => cib.attrs.find(([k]) => k === name)?.[1];
  const dcId = attr('dc-uuid');
  const dc = dcId === undefined ? null : (cib.configuration.nodes.find((n) => n.id === dcId)?.uname ?? dcId);
  const quorate = attr('have-quorum') === '1' || attr('have-quorum') === 'true';
  return renderStatus({
    cib,
    dc,
    quorate,
    nowMs: Date.now(),
    schedule: (c: Cib, now: number) => schedule(c, now, { textOutput: true }),
  });
}

async function guardAsync(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    report(err);
  }
}

// ---------------------------------------------------------------------------------------------
// `cluster init --from FILE`: the membership part of a corosync.conf or a Heartbeat ha.cf.

/** halo's node names (src/daemon/config.ts checks the same). */
