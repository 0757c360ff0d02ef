/**
 * The daemon's entry point for development and tests: `node --import tsx src/daemon/main.ts
 * --config FILE [--node NAME] [--witness] [--log-level debug]`. Same code path as
 * `halo daemon`, without loading the rest of the CLI.
 */
import { parseArgs } from 'node:util';
import { HaloError } from '../lib/errors.ts';
import type { LogLevel } from '../lib/ports.ts';
import { runDaemon } from './run.ts';

const LEVELS: readonly string[] = ['debug', 'info', 'warn', 'error'];

try {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      node: { type: 'string' },
      witness: { type: 'boolean', default: false },
      'log-level': { type: 'string', default: 'info' },
    },
  });
  if (!values.config) throw new HaloError('bad-argument', 'missing --config FILE');
  const level = values['log-level'] ?? 'info';
  if (!LEVELS.includes(level))
    throw new HaloError('bad-argument', `--log-level must be one of ${LEVELS.join(', ')}`);
  process.exitCode = await runDaemon({
    configFile: values.config,
    ...(values.node === undefined ? {} : { node: values.node }),
    witness: values.witness ?? false,
    logLevel: level as LogLevel,
  });
} catch (err) {
  const code = (err as { code?: string }).code;
  process.stderr.write(`halo daemon: ${(err as Error).message}${code ? ` [${code}]` : ''}\n`);
  process.exitCode = 1;
}
