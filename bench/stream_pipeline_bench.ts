/**
 * The ceiling resync can reach in this runtime, printed (never asserted): the same pipeline a
 * resync runs — read 1 MiB from a file, send it over halo's signed stream, write it to a file
 * on the other side, acknowledge — with nothing else (no volume engine, no metadata, no
 * bitmap). `volume_bench.ts` compares the engine's resync against the disk and the link; this
 * shows how much of the gap is the engine and how much is Node's socket and file path.
 *
 *   node --import tsx bench/stream_pipeline_bench.ts [--mib 1024] [--window 8] [--run-mib 1] [--help]
 *
 * `--mib`: MiB sent (1..65536); `--window`: messages in flight (1..1024); `--run-mib`: MiB per
 * message (1..1024). `--help` lists the options; a bad one exits 2 before anything is created.
 * Prints MiB/s and each process's CPU (cores, ms per MiB). Both files live in a fresh temp dir,
 * fully written and synced before the clock starts; the receiver is a child process (this file
 * re-run as `--receive FILE PORT`, an internal mode, not an option).
 */
import { spawn } from 'node:child_process';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { StreamChannel, StreamServer } from '../src/transport/stream.ts';
import { type BenchArgs, benchArgs, option, wholeNumber } from './args.ts';

const KEY = Buffer.alloc(32, 9);
const MIB = 2 ** 20;

const CLI = {
  name: 'stream_pipeline_bench',
  summary:
    "The ceiling resync can reach in this runtime: read 1 MiB pieces of a file, send them over halo's signed stream to a child process that writes them to a file and acknowledges (printed, never asserted).",
  options: {
    // Two files of this size are written to the temp dir first.
    mib: option({ metavar: 'N', help: 'MiB to send', check: wholeNumber(1, 65_536), default: '1024' }),
    window: option({ metavar: 'N', help: 'messages in flight', check: wholeNumber(1, 1024), default: '8' }),
    'run-mib': option({ metavar: 'N', help: 'MiB per message', check: wholeNumber(1, 1024), default: '1' }),
  },
} as const;

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function receiver(file: string, port: number): Promise<void> {
  const fh = await open(file, 'r+');
  await StreamServer.listen(
    { host: '127.0.0.1', port },
    {
      clusterKey: KEY,
      clusterId: 1,
      self: 2,
      mode: 'signed',
      accept: (p) => p === 1,
      onChannel: (ch) =>
        ch.on('message', (m) => {
          const at = m.readUInt32BE(0) * MIB;
          const data = m.subarray(4);
          void fh.write(data, 0, data.length, at).then(() => ch.send(Buffer.from(m.subarray(0, 4))));
        }),
    },
  );
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => process.exit(0));
}

function fill(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  const zero = Buffer.alloc(MIB);
  for (let i = 0; i < mib; i++) writeSync(fd, zero, 0, MIB, i * MIB);
  fdatasyncSync(fd);
  closeSync(fd);
}

async function main(o: BenchArgs<typeof CLI.options>): Promise<void> {
  const mib = o.mib;
  const window = o.window;
  const run = o['run-mib'];
  const dir = mkdtempSync(join(tmpdir(), 'halo-pipe-'));
  const port = 20000 + Math.floor(Math.random() * 30000);
  fill(join(dir, 'source.img'), mib);
  fill(join(dir, 'target.img'), mib);
  const child = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), '--receive', join(dir, 'target.img'), String(port)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await new Promise<void>((res, rej) => {
      child.stdout!.once('data', () => res());
      child.once('exit', (code) => rej(new Error(`receiver exited with ${code}`)));
    });
    const ch = await StreamChannel.connect(
      { host: '127.0.0.1', port },
      { clusterKey: KEY, clusterId: 1, self: 1, expectPeer: 2, mode: 'signed' },
    );
    const src = await open(join(dir, 'source.img'), 'r');
    let next = 0;
    let acked = 0;
    let inFlight = 0;
    const c0 = process.cpuUsage();
    const k0 = cpuSeconds(child.pid!);
    const t = performance.now();
    await new Promise<void>((done) => {
      const pump = () => {
        while (inFlight < window && next < mib) {
          const first = next;
          const n = Math.min(run, mib - first);
          next += n;
          inFlight++;
          const buf = Buffer.allocUnsafeSlow(n * MIB);
          void src.read(buf, 0, buf.length, first * MIB).then(() => {
            const head = Buffer.alloc(4);
            head.writeUInt32BE(first, 0);
            return ch.sendParts([head, buf]);
          });
        }
      };
      ch.on('message', (m) => {
        inFlight--;
        acked += Math.min(run, mib - m.readUInt32BE(0));
        if (acked >= mib) done();
        else pump();
      });
      pump();
    });
    const secs = (performance.now() - t) / 1000;
    const c = process.cpuUsage(c0);
    const sender = (c.user + c.system) / 1e6;
    const recv = cpuSeconds(child.pid!) - k0;
    console.log(
      `stream pipeline: ${mib} MiB in ${run} MiB messages, ${window} in flight: ${(mib / secs).toFixed(0)} MiB/s | sender ${(sender / secs).toFixed(2)} cores ${((sender * 1000) / mib).toFixed(2)} ms/MiB | receiver ${(recv / secs).toFixed(2)} cores ${((recv * 1000) / mib).toFixed(2)} ms/MiB`,
    );
    ch.close();
    await src.close();
  } finally {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

// The internal receiver mode first (this file re-run as a child by main), then the options.
const args = process.argv.slice(2);
if (args[0] === '--receive') await receiver(args[1]!, Number(args[2]));
else await main(benchArgs(CLI));
