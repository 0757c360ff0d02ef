import { type Command, Option } from 'commander';
import { type BenchFault, benchFailover, DEFAULT_ROWS_PER_TRIAL, renderBench } from '../lab/bench.ts';
import {
  type ChaosFault,
  DEFAULT_LAB_DIR,
  labChaos,
  labDown,
  labStatus,
  labUp,
  renderLabStatus,
} from '../lab/lab.ts';
import { seed004Up } from '../lab/scenario_seed004.ts';
import { DEFAULT_SCENARIO, isScenario, LAB_VIP, SCENARIOS } from '../lab/scenarios.ts';
import { HaloError } from '../lib/errors.ts';
import { example } from './help.ts';

/**
 * `halo lab up|status|down|chaos|bench`: a whole cluster on this machine in network namespaces
 * (see src/lab/lab.ts), fault injection, and the failover benchmark.
 */
export function registerLabCommands(program: Command): void {
  const lab = program
    .command('lab')
    .description('a whole cluster on this machine, in network namespaces (root)');
  const dirOption = (): Option => new Option('--dir <dir>', 'lab state directory').default(DEFAULT_LAB_DIR);

  example(
    lab
      .command('up')
      .description(
        'build network namespaces (2 links per node, one client), start one daemon per node and load a scenario (root)',
      )
      .option('--nodes <n>', 'number of nodes (default 3; 2 for the seed-003 and seed-004 scenarios)')
      .option('--witness', 'add a quorum witness node (w)')
      .addOption(
        new Option(
          '--scenario <name>',
          `configuration to load into the cluster (default ${DEFAULT_SCENARIO}: a VIP and a web server in a group, fenced by halo:lab-fence; seed-003: two nodes, a replicated volume made and synced at up, ext4 on it, a VIP, nginx serving files from it and MariaDB; seed-004: two nodes, the seed's ha.cf, haresources, authkeys, drbd.conf and drbdlinks.conf imported as they are (VIP, volume, ext3, drbdlinks, Apache); none: a bare cluster)`,
        ).choices([...SCENARIOS, 'none']),
      )
      .option(
        '--profile <profile>',
        'timing profile for the daemons (lan is the product default; lab is slower, for loaded CI machines)',
        'lan',
      )
      .addOption(dirOption()),
    'halo lab up   # 3 nodes, the web scenario: a VIP and a web server',
    'halo lab up --scenario seed-003   # 2 nodes: replicated volume, ext4, VIP, nginx, MariaDB',
    'halo lab up --nodes 2 --witness --scenario none --profile lab',
  ).action(
    async (o: { nodes?: string; witness?: boolean; scenario?: string; profile: string; dir: string }) =>
      guard(async () => {
        const scenario = o.scenario ?? DEFAULT_SCENARIO;
        const nodesText = o.nodes ?? (scenario === 'seed-003' || scenario === 'seed-004' ? '2' : '3');
        const nodes = Number(nodesText);
        if (!/^\d+$/.test(nodesText))
          throw new HaloError('bad-argument', `--nodes must be a whole number, got '${nodesText}'`);
        if (scenario !== 'none' && !isScenario(scenario))
          throw new HaloError('bad-argument', `unknown scenario '${scenario}'`);
        const say = (l: string): void => void process.stdout.write(`${l}\n`);
        const up = { dir: o.dir, nodes, witness: o.witness === true, profile: o.profile, say };
        const state =
          scenario === 'seed-004'
            ? await seed004Up(up)
            : await labUp({ ...up, ...(isScenario(scenario) ? { scenario } : {}) });
        say(`lab ${state.tag} is up in ${state.dir}`);
        const d = o.dir === DEFAULT_LAB_DIR ? '' : ` --dir ${o.dir}`;
        if (state.scenario) {
          say(
            `scenario ${state.scenario}: files in ${state.dir}/scenario/; the cluster starts its resources on one node within a few seconds`,
          );
        }
        say('next:');
        say(`  halo lab status${d}                      where everything runs (crm_mon view from the DC)`);
        if (state.scenario) {
          say(
            `  ip netns exec ${state.client.ns} curl http://${LAB_VIP}/   the service, from the client namespace`,
          );
          say(
            `  halo lab chaos --kill --node NODE${d}    kill the daemon of the node running it: the cluster fences NODE and moves the service`,
          );
          say(`  halo lab bench failover --trials 5${d}   measure the service gap (--fault kill|cut-link)`);
          say(`  halo lab chaos --restart --node NODE${d} boot a fenced or killed node again`);
        } else {
          say(
            `  halo lab chaos --kill [--node n1]${d}  (or --cut-link, --partition, --pause; --heal, --restart)`,
          );
        }
        say(`  halo lab down${d}`);
      }),
  );

  example(
    lab
      .command('status')
      .description('the lab’s nodes, their daemons and what each one sees')
      .addOption(new Option('--output <format>', 'output format').choices(['text', 'json']).default('text'))
      .addOption(dirOption()),
    'halo lab status',
    'halo lab status --output json',
  ).action(async (o: { output: string; dir: string }) =>
    guard(async () => {
      const r = await labStatus(o.dir);
      process.stdout.write(
        o.output === 'json' ? `${JSON.stringify(r, null, 2)}\n` : `${renderLabStatus(r)}\n`,
      );
    }),
  );

  example(
    lab
      .command('down')
      .description('stop every daemon and remove every namespace and file the lab made')
      .addOption(dirOption()),
    'halo lab down',
    "halo lab down --dir /tmp/lab   # a lab made by 'halo lab up --dir /tmp/lab'",
  ).action(async (o: { dir: string }) =>
    guard(async () => {
      for (const l of await labDown(o.dir)) process.stdout.write(`${l}\n`);
    }),
  );

  example(
    lab
      .command('chaos')
      .description(
        'inject one fault into a node (default: the DC), or undo one with --heal (default: a node that was cut or paused) or --restart (default: a node whose daemon is down)',
      )
      .option('--kill', 'kill -9 the node’s daemon')
      .option('--cut-link', 'take one link of the node down (see --link)')
      .option('--partition', 'cut every link of the node')
      .option('--pause', 'SIGSTOP the node’s daemon')
      .option('--heal', 'restore the node’s links and resume a paused daemon')
      .option('--restart', 'start a killed daemon again')
      .option('--node <name>', 'the node to hit')
      .option('--link <n>', 'link number for --cut-link', '0')
      .addOption(dirOption()),
    "halo lab chaos --kill --node n2   # kill -9 n2's daemon (scenarios then fence n2)",
    'halo lab chaos --cut-link --link 1   # the DC loses link 1 (undo: --heal --node NODE)',
    'halo lab chaos --restart --node n2   # boot n2 again after a kill or a fence',
  ).action(async (o: Record<string, string | boolean | undefined>) =>
    guard(async () => {
      const faults = (['kill', 'cutLink', 'partition', 'pause', 'heal', 'restart'] as const).filter(
        (f) => o[f] === true,
      );
      if (faults.length !== 1) {
        throw new HaloError(
          'bad-argument',
          'give exactly one of --kill, --cut-link, --partition, --pause, --heal, --restart',
        );
      }
      const fault = (faults[0] === 'cutLink' ? 'cut-link' : faults[0]) as ChaosFault;
      const linkText = String(o.link ?? '0');
      if (!/^\d+$/.test(linkText))
        throw new HaloError('bad-argument', `--link must be a link number, got '${linkText}'`);
      // A rebooted seed-004 node runs the seed's boot steps (its own root, drbd up) too.
      const what = await labChaos(String(o.dir), {
        fault,
        link: Number(linkText),
        ...(typeof o.node === 'string' ? { node: o.node } : {}),
      });
      process.stdout.write(`${what}\n`);
    }),
  );

  const bench = lab.command('bench').description('benchmarks on the running lab');
  example(
    bench
      .command('failover')
      .description(
        'trial after trial, inject a fault on the node serving the VIP (else the DC), measure detection, fencing and the service gap seen from the client, and boot the node again (web, seed-003 and seed-004 scenarios; seed-003 also checks rows and one Primary, seed-004 the page and one node with the volume, Apache and the mount)',
      )
      .option('--trials <n>', 'number of trials', '5')
      .addOption(
        new Option(
          '--fault <fault>',
          "kill: kill -9 the node's daemon; cut-link: cut every link of the node (a partition)",
        )
          .choices(['kill', 'cut-link'])
          .default('kill'),
      )
      .addOption(
        new Option('--scenario <name>', 'refuse to run unless the lab runs this scenario').choices([
          ...SCENARIOS,
        ]),
      )
      .option(
        '--rows <n>',
        `seed-003: rows written through the VIP (mariadb client) before each fault and counted after it (default ${DEFAULT_ROWS_PER_TRIAL})`,
      )
      .addOption(new Option('--output <format>', 'output format').choices(['text', 'json']).default('text'))
      .addOption(dirOption()),
    'halo lab bench failover --trials 5 --fault cut-link',
    'halo lab bench failover --scenario seed-003 --rows 500 --output json > bench.json',
    'halo lab bench failover --scenario seed-004 --trials 3   # the Heartbeat v1 tutorial: VIP, drbddisk, ext3, Apache',
  ).action(
    async (o: {
      trials: string;
      fault: string;
      scenario?: string;
      rows?: string;
      output: string;
      dir: string;
    }) =>
      guard(async () => {
        if (!/^\d+$/.test(o.trials) || Number(o.trials) < 1)
          throw new HaloError('bad-argument', `--trials must be a positive whole number, got '${o.trials}'`);
        if (o.rows !== undefined && !/^\d+$/.test(o.rows))
          throw new HaloError('bad-argument', `--rows must be a whole number, got '${o.rows}'`);
        const r = await benchFailover({
          dir: o.dir,
          trials: Number(o.trials),
          fault: o.fault as BenchFault,
          ...(o.scenario !== undefined && isScenario(o.scenario) ? { scenario: o.scenario } : {}),
          ...(o.rows !== undefined ? { rowsPerTrial: Number(o.rows) } : {}),
          say: (l) => void process.stderr.write(`${l}\n`),
        });
        process.stdout.write(o.output === 'json' ? `${JSON.stringify(r, null, 2)}\n` : `${renderBench(r)}\n`);
        // A failed acceptance check (lost rows, two Primaries, no failover, gap) fails the command.
        if (!r.ok) process.exitCode = 1;
      }),
  );
}

async function guard(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof HaloError) {
      process.stderr.write(`halo lab: ${err.message} [${err.code}]\n`);
      process.exitCode = err.code === 'bad-argument' ? 2 : 1;
      return;
    }
    throw err;
  }
}
