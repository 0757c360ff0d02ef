/**
 * `halo configure`, `halo node` and `halo resource`: the administrator's commands in crm's
 * shape. Each command builds an `AdminEdit` (src/admin/edits.ts), applies it to a CIB, and
 * either writes the result or, with `--dry-run`, prints the Transition Summary the change would
 * cause and writes nothing.
 *
 * Where the CIB comes from: `--cib FILE` (or the environment variable `CIB_file`, as for
 * Pacemaker's tools) edits that CIB XML file in place, atomically (temporary file, fsync,
 * rename), and refuses to write if the file changed since it was read. Without it the command
 * needs a running cluster; sending edits to the daemon is not wired yet, so it says so and
 * exits 2. The seam for that is `CibTarget`: a live target would send the `AdminEdit` over the
 * daemon's control socket, where the leader applies it to its current CIB and proposes the
 * `CibCommand`s that `toCibCommands` derives.
 *
 * Exit codes: 0 done (or nothing to change); 1 the edit was refused (unknown resource or
 * node, invalid value, referenced resource, …) and nothing changed; 2 usage, unreadable or
 * invalid CIB file, no cluster to talk to, or a command that needs a running cluster.
 */
import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { type Command, Option } from 'commander';
import { toCibCommands } from '../admin/cib_commands.ts';
import { formatPreview, previewTransition } from '../admin/dry_run.ts';
import { cibAttr } from '../admin/edit_result.ts';
import { type AdminEdit, applyEdit, type EditResult } from '../admin/edits.ts';
import { nodeAttributeValue } from '../admin/node_edits.ts';
import { failCounts, locate } from '../admin/resource_edits.ts';
import { parseCibXml, serializeCibXml } from '../cib/cib_xml.ts';
import { crmQuote, parseCrm, serializeCrm } from '../cib/crm.ts';
import { detectFormat } from '../cib/detect.ts';
import type { Cib } from '../cib/model.ts';
import { nodeName } from '../cib/resources.ts';
import { validateCib } from '../cib/validate.ts';
import { formatDiagnostic } from '../lib/errors.ts';

/** Largest CIB or configuration file read (a 10 000-resource CIB with history is ~40 MB). */
export const ADMIN_MAX_FILE_BYTES = 256 * 1024 * 1024;

export const NO_CLUSTER_MESSAGE =
  'no running cluster found (is `halo daemon` running? use --cib FILE to edit a CIB file offline)';

/** Thrown inside a command to stop it with a message and an exit code. */
class Exit extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

interface CommonOpts {
  cib?: string;
  dryRun?: boolean;
  output: string;
  force?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Targets

/** Where edits go. Today only a CIB file; a running cluster will be another implementation. */
interface CibTarget {
  readonly name: string;
  read(): Cib;
  write(before: Cib, after: Cib): void;
}

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
class CibFileTarget implements CibTarget {
  private text = '';
  constructor(readonly name: string) {}

  read(): Cib {
    this.text = readLimited(this.name);
    const parsed = parseCibXml(this.text, this.name);
    if (!parsed.ok) throw new Exit(2, parsed.diagnostics.map(formatDiagnostic).join('\n'));
    return parsed.cib;
  }

  /** Writes atomically; refuses if someone else changed the file since `read`. */
  write(_before: Cib, after: Cib): void {
    const now = readLimited(this.name);
    if (now !== this.text)
      throw new Exit(
        2,
        `${this.name}: error: the file changed while this command ran; nothing written, run it again`,
      );
    const tmp = join(dirname(this.name), `.${basename(this.name)}.halo-${process.pid}.tmp`);
    const mode = statSync(this.name).mode & 0o777;
    try {
      const fd = openSync(tmp, 'wx', mode);
      try {
        writeSync(fd, serializeCibXml(after));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.name);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new Exit(
        2,
        `${this.name}: error: cannot write the file (${(err as Error).message}); it is unchanged`,
      );
    }
  }
}

function resolveTarget(o: CommonOpts): CibTarget {
  const file = o.cib ?? process.env.CIB_file;
  if (file !== undefined && file !== '') return new CibFileTarget(file);
  throw new Exit(2, `halo: ${NO_CLUSTER_MESSAGE}`);
}

// ---------------------------------------------------------------------------------------------
// Running commands

function checkOutput(o: CommonOpts): void {
  if (o.output !== 'text' && o.output !== 'json')
    throw new Exit(2, `halo: --output must be text or json, not '${o.output}'`);
}

/** Runs a command body, turning `Exit` into a message and an exit code. */
function guard(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof Exit)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exitCode = err.exitCode;
  }
}

function refused(r: Extract<EditResult, { ok: false }>, o: CommonOpts): never {
  if (o.output === 'json')
    process.stdout.write(`${JSON.stringify({ ok: false, error: r.error }, null, 2)}\n`);
  throw new Exit(1, `halo: error: ${r.error.message}`);
}

/** Applies an edit to the target: prints the preview (dry run) or writes the change. */
function runEdit(o: CommonOpts, build: (cib: Cib) => AdminEdit): void {
  checkOutput(o);
  const target = resolveTarget(o);
  const before = target.read();
  const nowMs = Date.now();
  const r = applyEdit(before, build(before), nowMs);
  if (!r.ok) refused(r, o);
  const json = o.output === 'json';
  const notes = r.notes.map((n) => `note: ${n}\n`).join('');
  if (o.dryRun) {
    const p = previewTransition(before, r.cib, nowMs);
    if (json) {
      const plan = toCibCommands(before, r.cib);
      process.stdout.write(
        `${JSON.stringify({ ok: true, dryRun: true, changed: r.changed, notes: r.notes, transition: p, commands: plan.commands.map((c) => c.op), unsupported: plan.unsupported }, null, 2)}\n`,
      );
    } else process.stdout.write(`${notes}${formatPreview(p)}`);
    return;
  }
  if (r.changed) target.write(before, r.cib);
  const epoch = cibAttr(r.cib, 'epoch') ?? '0';
  const numUpdates = cibAttr(r.cib, 'num_updates') ?? '0';
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ ok: true, changed: r.changed, target: target.name, epoch, numUpdates, notes: r.notes }, null, 2)}\n`,
    );
    return;
  }
  const what = r.changed
    ? `updated ${target.name} (epoch ${epoch}, num_updates ${numUpdates})`
    : `nothing to change in ${target.name}`;
  process.stdout.write(`${notes}${what}\n`);
}

/** Reads the target for a query command. */
function readTarget(o: CommonOpts): Cib {
  checkOutput(o);
  return resolveTarget(o).read();
}

function print(o: CommonOpts, json: unknown, text: string): void {
  process.stdout.write(o.output === 'json' ? `${JSON.stringify(json, null, 2)}\n` : text);
}

function common(cmd: Command, opts: { dryRun?: boolean; force?: string } = {}): Command {
  cmd
    .option('--cib <file>', 'edit this CIB XML file offline (default: $CIB_file; else the running cluster)')
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

function example(cmd: Command, text: string): Command {
  return cmd.addHelpText('after', `\nExample:\n  ${text}\n`);
}

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

function registerConfigure(program: Command): void {
  const configure = program
    .command('configure')
    .description('show and change the cluster configuration (like crm configure)');
  example(
    common(configure.command('show').description('print the configuration in crm syntax (or XML)'), {
      dryRun: false,
    }).option('--xml', 'print CIB XML'),
    'halo configure show --cib cib.xml',
  ).action((o: CommonOpts & { xml?: boolean }) =>
    guard(() => {
      const cib = readTarget(o);
      if (o.output === 'json') print(o, cib.configuration, '');
      else process.stdout.write(o.xml ? serializeCibXml(cib) : serializeCrm(cib));
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
    guard(() => runEdit(o, () => loadEdit(b === undefined ? [a] : [a, b]))),
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
      guard(() =>
        runEdit(o, () => ({ op: 'set-options', table, pairs: nameValues(words), force: o.force === true })),
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
      guard(() => runEdit(o, () => ({ op: 'add-crm', text: crmLine(kind, words) }))),
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
    guard(() => runEdit(o, () => ({ op: 'delete', id, force: o.force === true }))),
  );
}

// ---------------------------------------------------------------------------------------------
// halo node

function registerNode(program: Command): void {
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
      common(node.command(name).description(description).argument('<node>')).addOption(lifetimeOption()),
      `halo node ${name} thelibrary-node1 --cib cib.xml --dry-run`,
    ).action((n: string, o: CommonOpts & { lifetime: 'forever' | 'reboot' }) =>
      guard(() => runEdit(o, () => ({ op, node: n, on, lifetime: o.lifetime }))),
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
      guard(() => {
        if (value !== undefined || o.delete) {
          if (name === undefined) throw new Exit(2, 'halo: --delete needs the attribute NAME');
          runEdit(o, () => ({
            op: 'node-attribute',
            node: n,
            name,
            value: o.delete ? null : value!,
            lifetime: o.lifetime,
          }));
          return;
        }
        showNodeAttributes(readTarget(o), n, name, o);
      }),
  );
}

function showNodeAttributes(cib: Cib, node: string, name: string | undefined, o: CommonOpts): void {
  if (name !== undefined) {
    const v = nodeAttributeValue(cib, node, name);
    if (!v.ok) throw new Exit(1, `halo: error: ${v.message}`);
    print(
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
    o,
    { node, attributes: rows },
    rows.map((r) => `${r.name}=${r.value} (${r.lifetime})\n`).join('') || `${node} has no attributes\n`,
  );
}

// ---------------------------------------------------------------------------------------------
// halo resource

function registerResource(program: Command): void {
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
    ).action((rsc: string, o: CommonOpts) => guard(() => runEdit(o, () => edit(rsc))));
  }
  example(
    common(
      resource
        .command('restart')
        .description('stop a resource, wait until it is stopped, start it')
        .argument('<rsc>'),
      { dryRun: false },
    ),
    'halo resource restart g_all',
  ).action((rsc: string, o: CommonOpts) =>
    guard(() => {
      const target = resolveTarget(o);
      throw new Exit(
        2,
        `halo: restart needs a running cluster: it stops '${rsc}', waits until the stop has finished, then starts it again, and a CIB file (${target.name}) has nobody to wait for; offline, use 'halo resource stop ${rsc}' then 'halo resource start ${rsc}'`,
      );
    }),
  );
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
        guard(() =>
          runEdit(o, () => ({
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
      guard(() => runEdit(o, () => ({ op, rsc, ...(n === undefined ? {} : { node: n }) }))),
    );
  }
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
    guard(() => {
      const verb = action ?? 'show';
      if (verb === 'delete') {
        runEdit(o, () => ({ op: 'failcount-delete', rsc, ...(n === undefined ? {} : { node: n }) }));
        return;
      }
      if (verb !== 'show') throw new Exit(2, `halo: failcount action must be show or delete, not '${verb}'`);
      const r = failCounts(readTarget(o), rsc, n);
      if (!r.ok) refused(r.error as Extract<EditResult, { ok: false }>, o);
      const text =
        r.counts.length === 0
          ? `no failures recorded for '${rsc}'\n`
          : r.counts
              .map(
                (c) =>
                  `${c.resource} on ${c.node}${c.operation ? ` (${c.operation})` : ''}: fail-count=${c.count}\n`,
              )
              .join('');
      print(o, { resource: rsc, total: r.total, counts: r.counts }, text);
    }),
  );
  example(
    common(
      resource.command('locate').description('say where a resource runs, from the status').argument('<rsc>'),
      { dryRun: false },
    ),
    'halo resource locate ms_drbd --cib cib.xml',
  ).action((rsc: string, o: CommonOpts) =>
    guard(() => {
      const r = locate(readTarget(o), rsc, Date.now());
      if (!r.ok) refused(r.error as Extract<EditResult, { ok: false }>, o);
      const text =
        r.active.length === 0
          ? `resource ${rsc} is NOT running\n`
          : r.active
              .map(
                (a) =>
                  `resource ${a.instance} is running on: ${a.node}${a.role === 'Promoted' ? ' Promoted' : ''}${a.failed ? ' (FAILED)' : ''}\n`,
              )
              .join('');
      print(o, { resource: rsc, active: r.active }, text);
    }),
  );
}

/** Registers `halo configure`, `halo node` and `halo resource`. */
export function registerAdminCommands(program: Command): void {
  registerConfigure(program);
  registerNode(program);
  registerResource(program);
}
