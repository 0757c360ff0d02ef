/**
 * `halo configure`, `halo node` and `halo resource`: the administrator's commands in crm's
 * shape. Each command builds an `AdminEdit` (src/admin/edits.ts), applies it to a CIB, and
 * either writes the result or, with `--dry-run`, prints the Transition Summary the change would
 * cause and writes nothing.
 *
 * Where the CIB comes from: `--cib FILE` (or the environment variable `CIB_file`, as for
 * Pacemaker's tools) edits that CIB XML file in place, atomically (temporary file, fsync,
 * rename), and refuses to write if the file changed since it was read. Without it the command
 * goes to this node's daemon (control socket from `--socket`, or from the cluster config):
 * node attributes and cluster properties are proposed as the `set-node-attribute` /
 * `set-property` CibCommands they are; every other edit reads the cluster's CIB (`cib`), is
 * applied to it in memory, and the difference is proposed (`toCibCommands`: a whole
 * `replace-configuration`, transient attributes, `delete-op-result`). Queries and `--dry-run`
 * read the cluster's CIB and change nothing. A proposal must go to the DC; another node's
 * daemon refuses it and names the DC.
 *
 * A read-modify-write of the configuration is compare-and-set: the `replace-configuration`
 * carries the epoch of the CIB the edit was computed from, and the cluster refuses it if
 * another change committed in between ("the configuration changed since it was read (epoch 12,
 * now 13): nothing was changed"). An edit that is a pure function of the current CIB (start,
 * stop, move, ban, clear, delete, a crm object from the command line, defaults) is then
 * computed once more from a fresh read and proposed again, once: that is what Pacemaker's
 * tools do, which apply such changes to whatever the CIB holds. An edit a person made by
 * looking at the configuration (`configure edit`, `configure load FILE`) is never redone by
 * the tool: it stops, and the person decides whether the other change should survive.
 *
 * Exit codes: 0 done (or nothing to change); 1 the edit was refused (unknown resource or
 * node, invalid value, referenced resource, the configuration changed since it was read, …)
 * and nothing changed; 2 usage, unreadable or
 * invalid CIB file, no cluster to talk to, a command the chosen target cannot carry out, or a
 * change the cluster did not commit.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Command, Option } from 'commander';
import { directCibCommands, toCibCommands } from '../admin/cib_commands.ts';
import { formatPreview, previewTransition } from '../admin/dry_run.ts';
import { cibAttr } from '../admin/edit_result.ts';
import { type AdminEdit, applyEdit, type EditError, type EditResult } from '../admin/edits.ts';
import { nodeAttributeValue } from '../admin/node_edits.ts';
import { failCounts, locate } from '../admin/resource_edits.ts';
import { parseCibXml, serializeCibXml } from '../cib/cib_xml.ts';
import { crmQuote, parseCrm, serializeCrm, serializeCrmReport } from '../cib/crm.ts';
import { detectFormat } from '../cib/detect.ts';
import { parseDuration } from '../cib/duration.ts';
import type { Cib } from '../cib/model.ts';
import { nodeName } from '../cib/resources.ts';
import { validateCib } from '../cib/validate.ts';
import { type CibCommand, encodeCibCommand, validateCibCommand } from '../consensus/cib_state_machine.ts';
import { loadConfig as loadDaemonConfig } from '../daemon/config.ts';
import { MAX_CONTROL_REQUEST_BYTES, queryControl } from '../daemon/control.ts';
import { PROPOSE_TIMEOUT_MS } from '../daemon/daemon.ts';
import { resolveSelf } from '../daemon/run.ts';
import { writeFileAtomic } from '../lib/atomic_file.ts';
import { formatDiagnostic } from '../lib/errors.ts';
import { DEFAULT_CONFIG_FILE } from './cluster_cmd.ts';
import { example } from './help.ts';
import {
  LiveClusterError,
  liveControlSocket,
  NO_CLUSTER_MESSAGE,
  type ProposeReply,
  readLiveView,
} from './live_cib.ts';

/** Largest CIB or configuration file read (a 10 000-resource CIB with history is ~40 MB). */
export const ADMIN_MAX_FILE_BYTES = 256 * 1024 * 1024;

export { NO_CLUSTER_MESSAGE };

/** Thrown inside a command to stop it with a message and an exit code. */
class Exit extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The cluster refused a compare-and-set change because its configuration moved on since the
 * CIB was read; nothing changed. `reason` is the cluster's sentence naming both epochs. The
 * caller decides whether to recompute the edit or to stop (`runLiveEdit`).
 */
class ConfigurationConflict extends Exit {
  constructor(readonly reason: string) {
    super(1, `halo: error: ${reason}; run the command again`);
  }
}

interface CommonOpts {
  cib?: string;
  config?: string;
  socket?: string;
  dryRun?: boolean;
  output: string;
  force?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Targets

function readLimited(file: string): string {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new Exit(2, `${file}: error: cannot read the file (${(err as Error).message})`);
  }
  if (size > ADMIN_MAX_FILE_BYTES)
    throw new Exit(2, `${file}: error: file is ${size} bytes; the limit is ${ADMIN_MAX_FILE_BYTES}`);
  return readFileSync(file, 'utf8');
}

/** A CIB XML file, edited in place like Pacemaker's tools do with `CIB_file`. */
class CibFileTarget {
  private text = '';
  constructor(readonly name: string) {}

  read(): Cib {
    this.text = readLimited(this.name);
    const parsed = parseCibXml(this.text, this.name);
    if (!parsed.ok) throw new Exit(2, parsed.diagnostics.map(formatDiagnostic).join('\n'));
    return parsed.cib;
  }

  /** Writes atomically; refuses if someone else changed the file since `read`. */
  write(after: Cib): void {
    const now = readLimited(this.name);
    if (now !== this.text)
      throw new Exit(
        2,
        `${this.name}: error: the file changed while this command ran; nothing written, run it again`,
      );
    try {
      writeFileAtomic(this.name, serializeCibXml(after), statSync(this.name).mode & 0o777);
    } catch (err) {
      throw new Exit(
        2,
        `${this.name}: error: cannot write the file (${(err as Error).message}); it is unchanged`,
      );
    }
  }
}

/** The CIB file to edit offline: --cib, else $CIB_file; undefined means the running cluster. */
function cibFile(o: CommonOpts): string | undefined {
  const file = o.cib ?? process.env.CIB_file;
  return file === undefined || file === '' ? undefined : file;
}

/** This node's daemon control socket (from --socket, or the cluster config), or exit 2. */
function liveSocket(o: CommonOpts): string {
  try {
    return liveControlSocket({
      ...(o.socket === undefined ? {} : { socket: o.socket }),
      ...(o.config === undefined ? {} : { config: o.config }),
    });
  } catch (err) {
    if (err instanceof LiveClusterError) throw new Exit(err.exitCode, err.message);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Running commands

function checkOutput(o: CommonOpts): void {
  if (o.output !== 'text' && o.output !== 'json')
    throw new Exit(2, `halo: --output must be text or json, not '${o.output}'`);
}

/** Runs a command body, turning `Exit` into a message and an exit code. */
async function guard(io: Io, fn: () => void | Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (!(err instanceof Exit) && !(err instanceof LiveClusterError)) throw err;
    io.err(`${err.message}\n`);
    process.exitCode = err.exitCode;
  }
}

function refused(io: Io, error: EditError, o: CommonOpts): never {
  if (o.output === 'json') io.out(`${JSON.stringify({ ok: false, error }, null, 2)}\n`);
  throw new Exit(1, `halo: error: ${error.message}`);
}

/** The error inside a refused result (queries hand back refusals as EditResults). */
function errorOf(r: EditResult): EditError {
  return r.ok ? { code: 'invalid-argument', message: 'internal: expected a refusal' } : r.error;
}

/**
 * A CIB already read, for an edit that was made by looking at it (`configure edit`): the edit
 * is applied to this CIB, and the write is refused if the file or the cluster changed since.
 */
interface ReadCib {
  readonly cib: Cib;
  /** The file it came from (offline); undefined for the running cluster's. */
  readonly file?: CibFileTarget;
}

/** Applies an edit: to the CIB file, or to the running cluster. */
async function runEdit(io: Io, o: CommonOpts, build: () => AdminEdit, read?: ReadCib): Promise<void> {
  checkOutput(o);
  const file = cibFile(o);
  if (file === undefined) return runLiveEdit(io, o, build(), read?.cib);
  const target = read?.file ?? new CibFileTarget(file);
  const before = read?.cib ?? target.read();
  const nowMs = Date.now();
  const r = applyEdit(before, build(), nowMs);
  if (!r.ok) refused(io, r.error, o);
  if (o.dryRun) return printPreview(io, o, before, r, nowMs);
  if (r.changed) target.write(r.cib);
  const epoch = cibAttr(r.cib, 'epoch') ?? '0';
  const numUpdates = cibAttr(r.cib, 'num_updates') ?? '0';
  const what = r.changed
    ? `updated ${target.name} (epoch ${epoch}, num_updates ${numUpdates})`
    : `nothing to change in ${target.name}`;
  print(
    io,
    o,
    { ok: true, changed: r.changed, target: target.name, epoch, numUpdates, notes: r.notes },
    `${notesText(io, o, r)}${what}\n`,
  );
}

/**
 * The edit's notes as text lines for standard output; its warnings (a configuration that is
 * accepted but risky, e.g. a DRBD filesystem not tied to the promoted ms) go to standard error
 * now, as other tools' warnings do. JSON output carries both in `notes` instead.
 */
function notesText(io: Io, o: CommonOpts, r: Extract<EditResult, { ok: true }>): string {
  if (o.output === 'json') return '';
  for (const n of r.notes) if (n.startsWith('warning: ')) io.err(`${n}\n`);
  return r.notes
    .filter((n) => !n.startsWith('warning: '))
    .map((n) => `note: ${n}\n`)
    .join('');
}

/** `--dry-run`: the transition the edit would cause, and (JSON) the commands it would send. */
function printPreview(
  io: Io,
  o: CommonOpts,
  before: Cib,
  r: Extract<EditResult, { ok: true }>,
  nowMs: number,
): void {
  const p = previewTransition(before, r.cib, nowMs);
  if (o.output !== 'json') {
    io.out(`${notesText(io, o, r)}${formatPreview(p)}`);
    return;
  }
  const plan = toCibCommands(before, r.cib);
  const json = {
    ok: true,
    dryRun: true,
    changed: r.changed,
    notes: r.notes,
    transition: p,
    commands: plan.commands.map((c) => c.op),
    unsupported: plan.unsupported,
  };
  print(io, o, json, '');
}

/** A proposal waits up to PROPOSE_TIMEOUT_MS for its commit; the socket allows a margin on top. */
const LIVE_REPLY_TIMEOUT_MS = PROPOSE_TIMEOUT_MS + 2_000;

async function ask(socket: string, line: string): Promise<unknown> {
  try {
    return await queryControl(socket, line, LIVE_REPLY_TIMEOUT_MS);
  } catch (err) {
    throw new Exit(2, `halo: ${NO_CLUSTER_MESSAGE}: ${(err as Error).message}`);
  }
}

/** How long a read waits for this node's view of the CIB to catch up with what has committed. */
const LIVE_READ_CATCH_UP_MS = 5_000;
const LIVE_READ_POLL_MS = 100;

/**
 * The cluster's CIB as this node's daemon sees it (the DC's view when this node is the DC).
 * That view can trail the replicated CIB for a moment after a commit, and editing a stale copy
 * would undo the commit, so the read waits (bounded) until the view's epoch has reached the
 * committed one that `status` reports.
 */
async function readLiveCib(socket: string): Promise<Cib> {
  const deadline = Date.now() + LIVE_READ_CATCH_UP_MS;
  for (;;) {
    const reply = (await ask(socket, 'cib')) as { cib?: Cib; error?: string };
    if (reply.error !== undefined || typeof reply.cib !== 'object' || reply.cib === null)
      throw new Exit(
        2,
        `halo: the daemon at ${socket} did not send its CIB: ${reply.error ?? 'no CIB in the answer'}`,
      );
    const st = (await ask(socket, 'status')) as { consensus?: { cib?: { epoch?: number } } };
    const committed = st.consensus?.cib?.epoch ?? 0;
    if (Number(cibAttr(reply.cib, 'epoch') ?? '0') >= committed) return reply.cib;
    if (Date.now() > deadline)
      throw new Exit(
        2,
        `halo: the daemon's view of the CIB is at epoch ${cibAttr(reply.cib, 'epoch')} but epoch ${committed} has committed; try again in a moment`,
      );
    await sleep(LIVE_READ_POLL_MS);
  }
}

/**
 * Proposes CibCommands one by one, each answered once committed. Every command is checked
 * first (shape and the control socket's size limit), so none is sent if any cannot be. A
 * compare-and-set command the cluster refused throws ConfigurationConflict; the commands after
 * it are not sent, so nothing changed (`toCibCommands` puts the configuration first).
 */
async function propose(
  io: Io,
  o: CommonOpts,
  socket: string,
  commands: readonly CibCommand[],
  notes: readonly string[] = [],
): Promise<void> {
  const lines = commands.map((c) => `cib ${encodeCibCommand(c)}`);
  for (const [k, c] of commands.entries()) {
    const problem = validateCibCommand(c);
    if (problem)
      throw new Exit(2, `halo: the cluster cannot take this change yet: ${problem}; use --cib FILE offline`);
    const bytes = Buffer.byteLength(lines[k]!) + 1;
    if (bytes > MAX_CONTROL_REQUEST_BYTES)
      throw new Exit(
        2,
        `halo: this change is a ${bytes}-byte ${c.op} command, but the daemon's control socket takes at most ${MAX_CONTROL_REQUEST_BYTES} bytes per request; nothing was sent (use --cib FILE offline)`,
      );
  }
  const committed: number[] = [];
  for (const line of lines) {
    const reply = (await ask(socket, line)) as ProposeReply;
    if ('error' in reply)
      throw new Exit(2, `halo: the daemon at ${socket} refused the command: ${reply.error}`);
    if (!reply.ok && reply.code === 'member-node')
      refused(io, { code: 'member-node', message: reply.message }, o);
    if (!reply.ok)
      throw new Exit(
        2,
        `halo: the change was not committed (${reply.code}): ${reply.message}${reply.leader && !reply.message.includes(reply.leader) ? `; the DC is ${reply.leader}` : ''}`,
      );
    if (!reply.applied && reply.code === 'conflict')
      throw new ConfigurationConflict(reply.message ?? 'the configuration changed since it was read');
    if (!reply.applied)
      refused(
        io,
        { code: 'invalid-argument', message: reply.message ?? 'the cluster rejected the change' },
        o,
      );
    committed.push(reply.index);
  }
  print(
    io,
    o,
    { ok: true, committed, ...(notes.length > 0 ? { notes } : {}) },
    `${notes.map((n) => `note: ${n}\n`).join('')}committed to the cluster (log index ${committed.join(', ')})\n`,
  );
}

/**
 * Whether a refused compare-and-set edit may be computed again from a fresh read and proposed
 * once more. Yes for edits that say what to change in words that mean the same on any CIB
 * (stop this resource, ban it from that node): that is what the person asked for, and it is
 * what Pacemaker does with them. No for `load` (a file, or the text of an editor session): it
 * was written against the configuration the person saw, and silently replacing someone else's
 * newer change with it is the lost update this is here to prevent.
 */
function recomputesOnConflict(edit: AdminEdit): boolean {
  switch (edit.op) {
    case 'load':
      return false;
    case 'node-standby':
    case 'node-maintenance':
    case 'node-attribute':
    case 'resource-target-role':
    case 'resource-managed':
    case 'resource-move':
    case 'resource-ban':
    case 'resource-clear':
    case 'resource-cleanup':
    case 'failcount-delete':
    case 'set-options':
    case 'add-crm':
    case 'delete':
      return true;
    default: {
      const never: never = edit;
      throw new Error(`unknown edit ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Sends an edit to the running cluster. Node attributes and properties go as the direct
 * commands they are (they apply to whatever CIB the cluster holds when they commit); every
 * other edit is applied to the CIB read from the daemon (or to `base`, the one the person
 * edited) and the difference is proposed, compare-and-set against that CIB's version. On a
 * conflict the edit is computed again from a fresh read, once, if `recomputesOnConflict`
 * allows it and there is no `base`; otherwise the command stops with ConfigurationConflict.
 */
async function runLiveEdit(io: Io, o: CommonOpts, edit: AdminEdit, base?: Cib): Promise<void> {
  const socket = liveSocket(o);
  const direct = directCibCommands(edit);
  if (direct && !direct.ok)
    refused(io, { code: direct.code as EditError['code'], message: direct.message }, o);
  if (direct && !o.dryRun) return propose(io, o, socket, direct.commands);
  try {
    return await proposeEdit(io, o, socket, edit, base ?? (await readLiveCib(socket)));
  } catch (err) {
    if (!(err instanceof ConfigurationConflict)) throw err;
    if (base !== undefined || !recomputesOnConflict(edit))
      refused(
        io,
        {
          code: 'conflict',
          message: `${err.reason}; see what changed ('halo configure show'), then run the command again`,
        },
        o,
      );
    io.err(`note: ${err.reason}; applying the change again to the current configuration\n`);
  }
  try {
    return await proposeEdit(io, o, socket, edit, await readLiveCib(socket));
  } catch (err) {
    if (!(err instanceof ConfigurationConflict)) throw err;
    refused(
      io,
      {
        code: 'conflict',
        message: `${err.reason} (it changed again during a second try); run the command again`,
      },
      o,
    );
  }
}

/** One attempt of `runLiveEdit`: apply `edit` to `before` and propose the difference. */
async function proposeEdit(
  io: Io,
  o: CommonOpts,
  socket: string,
  edit: AdminEdit,
  before: Cib,
): Promise<void> {
  const nowMs = Date.now();
  const r = applyEdit(before, edit, nowMs);
  if (!r.ok) refused(io, r.error, o);
  if (o.dryRun) return printPreview(io, o, before, r, nowMs);
  if (!r.changed) {
    print(
      io,
      o,
      { ok: true, changed: false, notes: r.notes },
      `${notesText(io, o, r)}nothing to change in the cluster\n`,
    );
    return;
  }
  const plan = toCibCommands(before, r.cib, { compareAndSet: true });
  if (plan.unsupported.length > 0)
    throw new Exit(2, `halo: the cluster cannot take this change yet: ${plan.unsupported.join('; ')}`);
  // The notes are printed with the outcome: an attempt refused as a conflict changed nothing.
  return propose(io, o, socket, plan.commands, r.notes);
}

/** Reads the CIB for a query command: the file, or the running cluster's. */
async function readTarget(o: CommonOpts): Promise<Cib> {
  checkOutput(o);
  const file = cibFile(o);
  if (file === undefined) return readLiveCib(liveSocket(o));
  return new CibFileTarget(file).read();
}

function print(io: Io, o: CommonOpts, json: unknown, text: string): void {
  io.out(o.output === 'json' ? `${JSON.stringify(json, null, 2)}\n` : text);
}

function common(cmd: Command, opts: { dryRun?: boolean; force?: string } = {}): Command {
  cmd
    .option('--cib <file>', 'edit this CIB XML file offline (default: $CIB_file; else the running cluster)')
    .option(
      '--config <file>',
      `cluster config naming this node's control socket (default ${DEFAULT_CONFIG_FILE})`,
    )
    .option('--socket <path>', "this node's daemon control socket (overrides --config)")
    .addOption(new Option('--output <format>', 'text or json').default('text'));
  if (opts.dryRun !== false)
    cmd.option('--dry-run', 'print the transition the change would cause; change nothing');
  if (opts.force) cmd.option('--force', opts.force);
  return cmd;
}

const LIFETIMES = ['forever', 'reboot'] as const;
const lifetimeOption = (): Option =>
  new Option('--lifetime <lifetime>', 'forever (in the configuration) or reboot (transient, in the status)')
    .choices([...LIFETIMES])
    .default('forever');

// ---------------------------------------------------------------------------------------------
// halo configure

/** Splits `k=v` words; quotes values the shell unquoted so crm text reads them back whole. */
function nameValues(words: readonly string[]): { name: string; value: string }[] {
  return words.map((w) => {
    const i = w.indexOf('=');
    if (i <= 0) throw new Exit(2, `halo: expected NAME=VALUE, got '${w}'`);
    return { name: w.slice(0, i), value: w.slice(i + 1) };
  });
}

/** Rebuilds crm text from shell words, quoting what the shell unquoted. */
function crmLine(kind: string, words: readonly string[]): string {
  const quoted = words.map((w) => {
    if (!/\s/.test(w) && !w.includes('"')) return w;
    const i = w.indexOf('=');
    return i > 0 ? `${w.slice(0, i)}=${crmQuote(w.slice(i + 1))}` : crmQuote(w);
  });
  return [kind, ...quoted].join(' ');
}

const CRM_OBJECTS: readonly (readonly [string, string, string])[] = [
  [
    'primitive',
    'add a primitive resource',
    'halo configure primitive web ocf:heartbeat:IPaddr2 params ip=192.168.42.23 op monitor interval=10s --cib cib.xml',
  ],
  [
    'group',
    'add a group (members that exist move into it)',
    'halo configure group g_web p_sip p_nginx --cib cib.xml',
  ],
  [
    'clone',
    'add a clone of an existing primitive or group',
    'halo configure clone cl_ping p_pingtest --cib cib.xml',
  ],
  [
    'ms',
    'add a promotable clone (crm ms)',
    'halo configure ms ms_drbd p_drbd meta promoted-max=1 notify=true --cib cib.xml',
  ],
  [
    'location',
    'add a location constraint',
    'halo configure location l_web g_all 100: thelibrary-node1 --cib cib.xml',
  ],
  [
    'colocation',
    'add a colocation constraint',
    'halo configure colocation c_drbd inf: g_all ms_drbd:Master --cib cib.xml',
  ],
  [
    'order',
    'add an order constraint',
    'halo configure order o_drbd Mandatory: ms_drbd:promote g_all:start --cib cib.xml',
  ],
];

function loadEdit(args: readonly string[]): AdminEdit {
  const [a, b] = args;
  const mode = b === undefined ? 'replace' : a;
  const file = b ?? a!;
  if (mode !== 'replace' && mode !== 'update')
    throw new Exit(2, `halo: load method must be replace or update, not '${mode}'`);
  const text = readLimited(file);
  const det = detectFormat(text, file);
  let parsed: ReturnType<typeof parseCrm>;
  if (det?.format === 'crm') parsed = parseCrm(text, file);
  else if (det?.format === 'xml') parsed = parseCibXml(text, file);
  else
    throw new Exit(
      2,
      `${file}: error: expected crm configuration text or CIB XML${det ? ` (this looks like ${det.format}; use halo import)` : ''}`,
    );
  if (!parsed.ok) throw new Exit(2, parsed.diagnostics.map(formatDiagnostic).join('\n'));
  const errors = validateCib(parsed.cib, parsed.positions, file).filter((d) => d.severity === 'error');
  if (errors.length > 0) throw new Exit(1, errors.map(formatDiagnostic).join('\n'));
  return { op: 'load', mode, configuration: parsed.cib.configuration, file };
}

/**
 * `configure edit`: writes the configuration as crm text to a private temporary file, runs
 * $EDITOR (else vi) on it, and turns the result into a `load replace`. Refuses configurations
 * crm text cannot express whole (they would lose parts). On a parse error the edited text is
 * kept and its path printed, so the work is not lost. Otherwise the caller removes `dir` once
 * the change is written, or keeps it if it is not (see `registerConfigure`).
 */
function editInEditor(cib: Cib): { edit: AdminEdit; file: string; dir: string } | undefined {
  const report = serializeCrmReport(cib);
  if (report.unsupported.length > 0)
    throw new Exit(
      2,
      `halo: the configuration has parts crm text cannot express (${report.unsupported.join('; ')}); edit the XML and use 'halo configure load replace FILE.xml'`,
    );
  const dir = mkdtempSync(join(tmpdir(), 'halo-edit-'));
  const file = join(dir, 'configuration.crm');
  writeFileSync(file, report.text, { mode: 0o600 });
  const editor = process.env.VISUAL || process.env.EDITOR || 'vi';
  const ran = spawnSync(`${editor} '${file}'`, { shell: true, stdio: 'inherit' });
  if (ran.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Exit(
      2,
      `halo: the editor '${editor}' failed (${ran.error?.message ?? `exit ${ran.status}`}); nothing changed`,
    );
  }
  const text = readFileSync(file, 'utf8');
  if (text === report.text) {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  const parsed = parseCrm(text, file);
  const errors = parsed.ok
    ? validateCib(parsed.cib, parsed.positions, file).filter((d) => d.severity === 'error')
    : parsed.diagnostics.filter((d) => d.severity === 'error');
  if (!parsed.ok || errors.length > 0)
    throw new Exit(
      1,
      `${errors.map(formatDiagnostic).join('\n')}\nhalo: nothing changed; your edited text is kept in ${file}`,
    );
  return {
    edit: {
      op: 'load',
      mode: 'replace',
      configuration: parsed.cib.configuration,
      file: 'edited configuration',
    },
    file,
    dir,
  };
}

/** The CIB `configure edit` shows in the editor; the change is applied to this very CIB. */
async function readForEditor(o: CommonOpts): Promise<ReadCib> {
  checkOutput(o);
  const file = cibFile(o);
  if (file === undefined) return { cib: await readLiveCib(liveSocket(o)) };
  const target = new CibFileTarget(file);
  return { cib: target.read(), file: target };
}

/**
 * `configure NAME=VALUE …` (argv as process.argv, the command at argv[2]) as `configure property
 * NAME=VALUE …`: tutorials write `crm configure no-quorum-policy=stop`, and no configure verb has
 * an `=` in it, so the meaning is plain. Returns the argv to parse and a note when it changed.
 */
export function configurePropertyShorthand(argv: readonly string[]): { argv: string[]; note?: string } {
  const word = argv[3];
  if (argv[2] !== 'configure' || word === undefined || !/^[A-Za-z][\w.-]*=/.test(word))
    return { argv: [...argv] };
  return {
    argv: [...argv.slice(0, 3), 'property', ...argv.slice(3)],
    note: `halo: read 'configure ${word}' as 'configure property ${word}'`,
  };
}

function registerConfigure(program: Command, io: Io): void {
  const configure = program
    .command('configure')
    .description('show and change the cluster configuration (like crm configure)');
  example(
    common(configure.command('show').description('print the configuration in crm syntax (or XML)'), {
      dryRun: false,
    }).option('--xml', 'print CIB XML'),
    'halo configure show --cib cib.xml',
  ).action((o: CommonOpts & { xml?: boolean }) =>
    guard(io, async () => {
      const cib = await readTarget(o);
      if (o.output === 'json') print(io, o, cib.configuration, '');
      else io.out(o.xml ? serializeCibXml(cib) : serializeCrm(cib));
    }),
  );
  example(
    common(
      configure
        .command('load')
        .description('replace or update the configuration from a crm or XML file (crm configure load)')
        .argument('<method-or-file>', 'replace | update, or the file (then replace)')
        .argument('[file]', 'crm text or CIB XML'),
    ),
    'halo configure load update extra.crm --cib cib.xml --dry-run',
  ).action((a: string, b: string | undefined, o: CommonOpts) =>
    guard(io, () => runEdit(io, o, () => loadEdit(b === undefined ? [a] : [a, b]))),
  );
  example(
    common(
      configure.command('edit').description('edit the configuration as crm text in $EDITOR, then load it'),
    ),
    'EDITOR=nano halo configure edit --cib cib.xml --dry-run',
  ).action((o: CommonOpts) =>
    guard(io, async () => {
      // The edit is applied to the CIB the editor showed, not to a later read: a change someone
      // else made meanwhile makes the write fail (conflict) instead of being replaced unseen.
      const read = await readForEditor(o);
      const edited = editInEditor(read.cib);
      if (edited === undefined) {
        io.out('no changes\n');
        return;
      }
      try {
        await runEdit(io, o, () => edited.edit, read);
      } catch (err) {
        if (err instanceof Exit)
          throw new Exit(err.exitCode, `${err.message}\nhalo: your edited text is kept in ${edited.file}`);
        throw err;
      }
      rmSync(edited.dir, { recursive: true, force: true });
    }),
  );
  const tables = [
    [
      'property',
      "set cluster properties (checked against Pacemaker's cluster options)",
      'halo configure property stonith-enabled=true no-quorum-policy=stop --cib cib.xml',
    ],
    [
      'rsc_defaults',
      'set resource defaults',
      'halo configure rsc_defaults resource-stickiness=100 --cib cib.xml',
    ],
    ['op_defaults', 'set operation defaults', 'halo configure op_defaults timeout=60s --cib cib.xml'],
  ] as const;
  for (const [table, description, ex] of tables) {
    example(
      common(configure.command(table).description(description).argument('<name=value...>'), {
        force: 'accept names halo does not know',
      }),
      ex,
    ).action((words: string[], o: CommonOpts) =>
      guard(io, () =>
        runEdit(io, o, () => ({
          op: 'set-options',
          table,
          pairs: nameValues(words),
          force: o.force === true,
        })),
      ),
    );
  }
  for (const [kind, description, ex] of CRM_OBJECTS) {
    example(
      common(configure.command(kind).description(`${description}, in crm syntax`).argument('<words...>'))
        .allowUnknownOption()
        .allowExcessArguments(),
      ex,
    ).action((words: string[], o: CommonOpts) =>
      guard(io, () => runEdit(io, o, () => ({ op: 'add-crm', text: crmLine(kind, words) }))),
    );
  }
  example(
    common(
      configure.command('delete').description('delete a resource, constraint or node by id').argument('<id>'),
      {
        force: 'also delete constraints that refer to it, and delete it even while it runs',
      },
    ),
    'halo configure delete l_all_ping --cib cib.xml',
  ).action((id: string, o: CommonOpts) =>
    guard(io, () => runEdit(io, o, () => ({ op: 'delete', id, force: o.force === true }))),
  );
}

// ---------------------------------------------------------------------------------------------
// halo node

/**
 * The node a command without a NODE argument means, as `crm node standby` means the local one:
 * offline (a CIB file) this host's name, as Pacemaker's tools take `uname -n`; on a running
 * cluster the node of the cluster config whose link address is on this host. Says which.
 */
function thisNode(io: Io, o: CommonOpts): string {
  let name: string;
  if (cibFile(o) !== undefined) name = hostname();
  else {
    try {
      name = resolveSelf(loadDaemonConfig(o.config ?? DEFAULT_CONFIG_FILE), undefined);
    } catch (err) {
      throw new Exit(2, `halo: name the node: this host's node is unknown (${(err as Error).message})`);
    }
  }
  io.err(`halo: no node named; using this host's node '${name}'\n`);
  return name;
}

function registerNode(program: Command, io: Io): void {
  const node = program
    .command('node')
    .description('node standby, maintenance and attributes (like crm node)');
  const toggles = [
    ['standby', 'node-standby', true, 'put a node in standby: it runs no resources'],
    ['online', 'node-standby', false, 'take a node out of standby'],
    ['maintenance', 'node-maintenance', true, 'put a node in maintenance: its resources are left alone'],
    ['ready', 'node-maintenance', false, 'take a node out of maintenance'],
  ] as const;
  for (const [name, op, on, description] of toggles) {
    example(
      common(
        node
          .command(name)
          .description(description)
          .argument('[node]', 'the node (default: this host, as crm node does)'),
      ).addOption(lifetimeOption()),
      `halo node ${name} thelibrary-node1 --cib cib.xml --dry-run`,
    ).action((n: string | undefined, o: CommonOpts & { lifetime: 'forever' | 'reboot' }) =>
      guard(io, () => {
        const target = n ?? thisNode(io, o);
        return runEdit(io, o, () => ({ op, node: target, on, lifetime: o.lifetime }));
      }),
    );
  }
  example(
    common(
      node
        .command('attribute')
        .description('show, set or delete a node attribute')
        .argument('<node>')
        .argument('[name]')
        .argument('[value]'),
    )
      .option('--delete', 'delete the attribute')
      .addOption(lifetimeOption()),
    'halo node attribute thelibrary-node1 rack 2 --cib cib.xml',
  ).action(
    (
      n: string,
      name: string | undefined,
      value: string | undefined,
      o: CommonOpts & { delete?: boolean; lifetime: 'forever' | 'reboot' },
    ) =>
      guard(io, async () => {
        if (value !== undefined || o.delete) {
          if (name === undefined) throw new Exit(2, 'halo: --delete needs the attribute NAME');
          return runEdit(io, o, () => ({
            op: 'node-attribute',
            node: n,
            name,
            value: o.delete ? null : value!,
            lifetime: o.lifetime,
          }));
        }
        showNodeAttributes(io, await readTarget(o), n, name, o);
      }),
  );
}

function showNodeAttributes(io: Io, cib: Cib, node: string, name: string | undefined, o: CommonOpts): void {
  if (name !== undefined) {
    const v = nodeAttributeValue(cib, node, name);
    if (!v.ok) throw new Exit(1, `halo: error: ${v.message}`);
    print(
      io,
      o,
      { node, name, value: v.value ?? null, lifetime: v.lifetime ?? null },
      v.value === undefined ? `${name} is not set on ${node}\n` : `${name}=${v.value} (${v.lifetime})\n`,
    );
    return;
  }
  const configured = cib.configuration.nodes.find((n) => nodeName(n) === node);
  const state = cib.status.find((s) => s.uname === node);
  if (!configured && !state) {
    const v = nodeAttributeValue(cib, node, 'x');
    throw new Exit(1, `halo: error: ${v.ok ? `unknown node '${node}'` : v.message}`);
  }
  const rows: { name: string; value: string; lifetime: string }[] = [];
  for (const s of configured?.instanceAttributes ?? [])
    for (const p of s.pairs) rows.push({ name: p.name, value: p.value ?? '', lifetime: 'forever' });
  for (const s of state?.transientAttributes ?? [])
    for (const p of s.pairs) rows.push({ name: p.name, value: p.value ?? '', lifetime: 'reboot' });
  print(
    io,
    o,
    { node, attributes: rows },
    rows.map((r) => `${r.name}=${r.value} (${r.lifetime})\n`).join('') || `${node} has no attributes\n`,
  );
}

// ---------------------------------------------------------------------------------------------
// halo resource

function registerResource(program: Command, io: Io): void {
  const resource = program
    .command('resource')
    .description('start, stop, move and clean up resources (like crm resource)');
  const simple = [
    [
      'start',
      'let a resource run (meta target-role=Started)',
      (rsc: string): AdminEdit => ({ op: 'resource-target-role', rsc, role: 'Started' }),
    ],
    [
      'stop',
      'stop a resource (meta target-role=Stopped)',
      (rsc: string): AdminEdit => ({ op: 'resource-target-role', rsc, role: 'Stopped' }),
    ],
    [
      'manage',
      'let the cluster manage a resource again (is-managed=true)',
      (rsc: string): AdminEdit => ({ op: 'resource-managed', rsc, managed: true }),
    ],
    [
      'unmanage',
      'leave a resource alone (is-managed=false)',
      (rsc: string): AdminEdit => ({ op: 'resource-managed', rsc, managed: false }),
    ],
  ] as const;
  for (const [name, description, edit] of simple) {
    example(
      common(resource.command(name).description(description).argument('<rsc>')),
      `halo resource ${name} g_all --cib cib.xml --dry-run`,
    ).action((rsc: string, o: CommonOpts) => guard(io, () => runEdit(io, o, () => edit(rsc))));
  }
  example(
    common(
      resource
        .command('restart')
        .description('stop a resource, wait until it is stopped, start it, wait until it runs')
        .argument('<rsc>'),
      { dryRun: false },
    ).option(
      '--timeout <duration>',
      `how long to wait for the stop and for the start (default ${RESTART_TIMEOUT_MS / 1000}s each)`,
    ),
    'halo resource restart g_all',
  ).action((rsc: string, o: CommonOpts & { timeout?: string }) =>
    guard(io, () => {
      const file = cibFile(o);
      if (file !== undefined)
        throw new Exit(
          2,
          `halo: restart needs a running cluster: it stops '${rsc}', waits until the stop has finished, then starts it again, and a CIB file (${file}) has nobody to wait for; offline, use 'halo resource stop ${rsc}' then 'halo resource start ${rsc}'`,
        );
      return restartLive(io, o, rsc);
    }),
  );
  registerPlacement(resource, io);
  registerResourceQueries(resource, io);
}

/** How long `resource restart` waits for the stop, and then for the start, unless --timeout. */
export const RESTART_TIMEOUT_MS = 120_000;
const RESTART_POLL_MS = 250;

/** Where `rsc` is active in the cluster's view now (instances as `id@node`). */
async function activeOn(socket: string, rsc: string): Promise<string[]> {
  const view = await readLiveView(socket);
  const l = locate(view.cib, rsc, Date.now());
  if (!l.ok) throw new Exit(2, `halo: cannot tell where '${rsc}' runs: ${errorOf(l.error).message}`);
  return l.active.map((a) => `${a.instance}@${a.node}`);
}

/** Polls until `done(active)` holds, or throws Exit(2) with `late` after `timeoutMs`. */
async function waitActive(
  socket: string,
  rsc: string,
  timeoutMs: number,
  done: (active: readonly string[]) => boolean,
  late: (active: readonly string[]) => string,
): Promise<readonly string[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const active = await activeOn(socket, rsc);
    if (done(active)) return active;
    if (Date.now() > until) throw new Exit(2, late(active));
    await sleep(RESTART_POLL_MS);
  }
}

/**
 * `resource restart` on a running cluster, as crm does it: target-role=Stopped, wait until the
 * cluster reports every instance stopped, then target-role=Started and wait until it runs
 * again. Each step is bounded; a step that does not finish says what state it left.
 */
async function restartLive(io: Io, o: CommonOpts & { timeout?: string }, rsc: string): Promise<void> {
  checkOutput(o);
  let timeoutMs = RESTART_TIMEOUT_MS;
  if (o.timeout !== undefined) {
    const d = parseDuration(o.timeout);
    if (!d.ok || d.ms <= 0)
      throw new Exit(2, `halo: --timeout: ${d.ok ? `'${o.timeout}' must be more than 0` : d.reason}`);
    timeoutMs = d.ms;
  }
  const socket = liveSocket(o);
  const quiet: Io = { out: () => {}, err: (t) => io.err(t) };
  const t0 = Date.now();
  await runLiveEdit(quiet, o, { op: 'resource-target-role', rsc, role: 'Stopped' });
  await waitActive(
    socket,
    rsc,
    timeoutMs,
    (a) => a.length === 0,
    (a) =>
      `halo: '${rsc}' did not stop within ${timeoutMs} ms (still active: ${a.join(', ')}); it is left with target-role=Stopped: see 'halo status', then 'halo resource start ${rsc}'`,
  );
  const stoppedMs = Date.now() - t0;
  await runLiveEdit(quiet, o, { op: 'resource-target-role', rsc, role: 'Started' });
  const active = await waitActive(
    socket,
    rsc,
    timeoutMs,
    (a) => a.length > 0,
    () =>
      `halo: '${rsc}' was stopped and set to start (target-role=Started), but is not running after ${timeoutMs} ms: see 'halo status' and 'halo explain ${rsc}'`,
  );
  const startedMs = Date.now() - t0 - stoppedMs;
  print(
    io,
    o,
    { ok: true, resource: rsc, stoppedMs, startedMs, active },
    `restarted ${rsc}: stopped in ${stoppedMs} ms, running again after ${startedMs} ms on ${active.join(', ')}\n`,
  );
}

/** `halo resource move|ban|clear|cleanup`: where a resource may run, and forgetting failures. */
function registerPlacement(resource: Command, io: Io): void {
  const moves = [
    [
      'move',
      'resource-move',
      'run a resource on NODE (a cli-prefer location); without NODE, ban it from where it runs',
      'halo resource move g_all thelibrary-node2 --lifetime PT1H --cib cib.xml',
    ],
    [
      'ban',
      'resource-ban',
      'keep a resource off NODE (a cli-ban location); without NODE, off where it runs',
      'halo resource ban g_all thelibrary-node1 --cib cib.xml',
    ],
  ] as const;
  for (const [name, op, description, ex] of moves) {
    example(
      common(resource.command(name).description(description).argument('<rsc>').argument('[node]'))
        .option('--lifetime <duration>', 'the constraint expires after this (PT1H, 30min)')
        .option('--promoted', 'only the promoted role of a promotable clone'),
      ex,
    ).action(
      (rsc: string, n: string | undefined, o: CommonOpts & { lifetime?: string; promoted?: boolean }) =>
        guard(io, () =>
          runEdit(io, o, () => ({
            op,
            rsc,
            ...(n === undefined ? {} : { node: n }),
            ...(o.lifetime === undefined ? {} : { lifetime: o.lifetime }),
            ...(o.promoted ? { promoted: true } : {}),
          })),
        ),
    );
  }
  const nodeScoped = [
    ['clear', 'resource-clear', 'remove the move/ban constraints of a resource (on NODE only, if given)'],
    ['cleanup', 'resource-cleanup', 'forget failed operations and fail counts (on NODE only, if given)'],
  ] as const;
  for (const [name, op, description] of nodeScoped) {
    example(
      common(resource.command(name).description(description).argument('<rsc>').argument('[node]')),
      `halo resource ${name} g_all --cib cib.xml`,
    ).action((rsc: string, n: string | undefined, o: CommonOpts) =>
      guard(io, () => runEdit(io, o, () => ({ op, rsc, ...(n === undefined ? {} : { node: n }) }))),
    );
  }
}

/** `halo resource failcount|locate`: questions answered from the status section. */
function registerResourceQueries(resource: Command, io: Io): void {
  example(
    common(
      resource
        .command('failcount')
        .description('show or delete fail counts')
        .argument('<rsc>')
        .argument('[action]', 'show (default) or delete')
        .argument('[node]'),
    ),
    'halo resource failcount p_nginx show thelibrary-node2 --cib cib.xml',
  ).action((rsc: string, action: string | undefined, n: string | undefined, o: CommonOpts) =>
    guard(io, async () => {
      const verb = action ?? 'show';
      if (verb === 'delete') {
        return runEdit(io, o, () => ({
          op: 'failcount-delete',
          rsc,
          ...(n === undefined ? {} : { node: n }),
        }));
      }
      if (verb !== 'show') throw new Exit(2, `halo: failcount action must be show or delete, not '${verb}'`);
      const r = failCounts(await readTarget(o), rsc, n);
      if (!r.ok) refused(io, errorOf(r.error), o);
      const text =
        r.counts.length === 0
          ? `no failures recorded for '${rsc}'\n`
          : r.counts
              .map(
                (c) =>
                  `${c.resource} on ${c.node}${c.operation ? ` (${c.operation})` : ''}: fail-count=${c.count}\n`,
              )
              .join('');
      print(io, o, { resource: rsc, total: r.total, counts: r.counts }, text);
    }),
  );
  example(
    common(
      resource.command('locate').description('say where a resource runs, from the status').argument('<rsc>'),
      { dryRun: false },
    ),
    'halo resource locate ms_drbd --cib cib.xml',
  ).action((rsc: string, o: CommonOpts) =>
    guard(io, async () => {
      const r = locate(await readTarget(o), rsc, Date.now());
      if (!r.ok) refused(io, errorOf(r.error), o);
      const text =
        r.active.length === 0
          ? `resource ${rsc} is NOT running\n`
          : r.active
              .map(
                (a) =>
                  `resource ${a.instance} is running on: ${a.node}${a.role === 'Promoted' ? ' Promoted' : ''}${a.failed ? ' (FAILED)' : ''}\n`,
              )
              .join('');
      print(io, o, { resource: rsc, active: r.active }, text);
    }),
  );
}

/** Where the commands write: the process's stdout/stderr, or a test's buffers. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const PROCESS_IO: Io = {
  out: (text) => {
    process.stdout.write(text);
  },
  err: (text) => {
    process.stderr.write(text);
  },
};

/** Registers `halo configure`, `halo node` and `halo resource`. */
export function registerAdminCommands(program: Command, io: Io = PROCESS_IO): void {
  registerConfigure(program, io);
  registerNode(program, io);
  registerResource(program, io);
}
