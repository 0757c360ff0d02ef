import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exitQuietlyWhenReaderGone } from './main.ts';

const COMPILED = import.meta.url.endsWith('.js');
const MAIN = fileURLToPath(new URL(COMPILED ? './main.js' : './main.ts', import.meta.url));
/** bin/halo.js runs dist/, so it is tested only when the tests run compiled (after a build). */
const BIN = fileURLToPath(new URL(COMPILED ? '../../../bin/halo.js' : '../../bin/halo.js', import.meta.url));
/** Generous: one CLI start under tsx on a busy machine. */
const RUN_TIMEOUT_MS = 60_000;

/**
 * Runs the CLI with stdout a pipe whose reading end this side closes before the CLI writes a
 * byte (as `head` does once it has read enough, here without the race): every write then fails
 * with EPIPE. Resolves with the exit status and what the CLI wrote on stderr.
 */
function runWithReaderGone(argv: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`halo ${argv.join(' ')} still runs after ${RUN_TIMEOUT_MS} ms; stderr: ${stderr}`));
    }, RUN_TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('halo writing to a reader that has gone (`halo volume --help | head`)', () => {
  it('src/cli/main.ts run directly exits 0 without a word on stderr', async () => {
    const r = await runWithReaderGone([...(COMPILED ? [] : ['--import', 'tsx']), MAIN, 'volume', '--help']);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
  });

  it('bin/halo.js exits 0 without a word on stderr', {
    skip: !COMPILED && 'runs dist/: compiled tests only',
  }, async () => {
    const r = await runWithReaderGone([BIN, 'volume', '--help']);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
  });

  it('exits with the code the command already set, and other write errors stay errors', () => {
    const stdout = new EventEmitter();
    const exits: number[] = [];
    const proc = {
      stdout,
      exitCode: 2 as number | undefined,
      exit: (code: number) => {
        exits.push(code);
      },
    };
    exitQuietlyWhenReaderGone(proc);
    const epipe = (): Error => Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    stdout.emit('error', epipe());
    proc.exitCode = undefined;
    stdout.emit('error', epipe());
    assert.deepEqual(exits, [2, 0]);
    assert.throws(() => stdout.emit('error', Object.assign(new Error('write EIO'), { code: 'EIO' })), /EIO/);
  });
});
