/**
 * The daemon's entry point: `node [DAEMON_NODE_FLAGS] src/daemon/main.js [daemon] --config FILE
 * [--node NAME] [--witness] [--join] [--log-level debug]`. Same code path as `halo daemon`,
 * without loading the rest of the CLI (commander and every command's modules cost ≈ 3–4 MB of
 * RSS per daemon), so `bin/halo.js daemon …` can hand over to this file. A leading `daemon`
 * argument is accepted for that.
 */
import { parseArgs } from 'node:util';
import { HaloError } from '../lib/errors.ts';
import type { LogLevel } from '../lib/ports.ts';
import { DEFAULT_CONFIG_FILE } from './config.ts';
import { runDaemon } from './run.ts';

const LEVELS: readonly string[] = ['debug', 'info', 'warn', 'error'];

try {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      config: { type: 'string', default: DEFAULT_CONFIG_FILE },
      node: { type: 'string' },
      witness: { type: 'boolean', default: false },
      join: { type: 'boolean', default: false },
      'log-level': { type: 'string', default: 'info' },
    },
  });
  if (positionals.length > 1 || (positionals.length === 1 && positionals[0] !== 'daemon'))
    throw new HaloError('bad-argument', `unexpected argument '${positionals.at(-1)?.slice(0, 40)}'`);
  if (values.help) {
    process.stdout.write(
      `usage: halo daemon [--config FILE (default ${DEFAULT_CONFIG_FILE})] [--node NAME] [--witness] [--join] [--log-level debug|info|warn|error]\n`,
    );
    process.exit(0);
  }
  if (!values.config) throw new HaloError('bad-argument', 'missing --config FILE');
  const level = values['log-level'] ?? 'info';
  if (!LEVELS.includes(level))
    throw new HaloError('bad-argument', `--log-level must be one of ${LEVELS.join(', ')}`);
  process.exitCode = await runDaemon({
    configFile: values.config,
    ...(values.node === undefined ? {} : { node: values.node }),
    witness: values.witness ?? false,
    join: values.join ?? false,
    logLevel: level as LogLevel,
  });
} catch (err) {
  const code = (err as { code?: string }).code;
  process.stderr.write(`halo daemon: ${(err as Error).message}${code ? ` [${code}]` : ''}\n`);
  process.exitCode = 1;
}
