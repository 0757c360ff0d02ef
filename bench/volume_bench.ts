/**
 * Volume benchmark (printed, never asserted): write throughput and sync-write latency through
 * NBD for protocols C, B and A, each against the same NBD server over an unreplicated local
 * file measured in the same run; then full and partial resync throughput against the
 * physical limits measured in the same run (disk, raw TCP link, halo's stream link).
 *
 *   node --import tsx bench/volume_bench.ts [--size-mib 64] [--protocols C,B,A] [--repeat N] [--no-warmup] [--no-resync] [--resync-only] [--rand-only] [--lat-only] [--help]
 *
 * `--help` lists the options; a bad one (unknown, without its value, or a value out of range:
 * size 1..65536 MiB, protocols from A, B, C, repeat 1..20) exits 2 before anything starts.
 * `--repeat N` measures baseline and replicated N times in turn and prints the median ratios
 * with their range (single ratios on a shared 2-core box swing widely). Before the first
 * measurement of each protocol, one unreported pass warms both servers (the engines are new for
 * each protocol, the baseline server is not); `--no-warmup` skips it. `--resync-only` skips
 * the write phases. `--rand-only` adds a longer random-write phase (profiling aid: run with `node --cpu-prof`;
 * the engines inherit the flag); `--lat-only` skips the throughput phases (HALO_BENCH_PAUSE=S
 * waits S seconds before the latency phase and prints the pids to attach a tracer to;
 * HALO_BENCH_KEEP=1 keeps the work folder with the engines' logs; HALO_BENCH_LAT_WRITES=N sets the
 * latency phase's write count, 300 by default). Resync is reported twice: including the reconnect (connect-int)
 * and from the moment the target reports SyncTarget.
 *
 * Fairness: both sides get the same client, the same NBD server code, the same write pattern
 * and the same durability points (a FLUSH ends each throughput phase; the latency phase uses
 * FUA writes), and the baseline is re-measured right before each protocol. Every backing
 * file, the baseline's included, is fully written and fdatasync'd before anything is
 * measured, so no side pays for block allocation the other does not.
 * `cores` is CPU time per wall second of each process during a phase (from /proc), then CPU
 * time per MiB or per write (USER_HZ resolution: 10 ms per process per phase): on this
 * 2-core box the unreplicated path runs 2 processes, the replicated one 3, all on one disk.
 *
 * Ceiling: each round also measures the minimal replica (min_replica.ts): the same NBD server
 * writing its file and, in parallel, sending each write over raw TCP to a process that writes a
 * second file, with nothing else a replica needs. On one box both copies share its cores and
 * its disk, so this, not the unreplicated server, is what any replication can reach here; the
 * bench prints protocol C's figures against it as well.
 *
 * Both engines run as real processes (`halo volume run`) replicating over TCP on 127.0.0.1;
 * the baseline is this file re-run as `--serve FILE SOCK` (our NbdServer on a FileBlockDevice).
 * The client is a pipelined NBD client in this process. `--serve`, `--serve-tee FILE SOCK PORT`,
 * `--tee-sink FILE PORT`, `--fsync-probe FILE START N` and `--sink KIND PORT MIB` are internal
 * modes (this file re-run as a child), not options.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { selfCommand } from '../src/cli/volume_cmd.ts';
import { FileBlockDevice } from '../src/nbd/block_device.ts';
import { Cmd, CmdFlag, encodeInfoRequest, encodeOption, encodeRequest, Opt } from '../src/nbd/codec.ts';
import { NbdServer } from '../src/nbd/server.ts';
import { StreamChannel, StreamServer } from '../src/transport/stream.ts';
import type { CoreStatus } from '../src/volume/core.ts';
import { controlRequest } from '../src/volume/engine.ts';
import { type BenchArgs, benchArgs, flag, listOf, oneOf, option, wholeNumber } from './args.ts';
import { minimalResyncMiBs, TeeDevice, teeSink } from './min_replica.ts';

/** Largest device: the bench writes several files of this size (baseline, probes, both nodes). */
const MAX_SIZE_MIB = 65_536;

const CLI = {
  name: 'volume_bench',
  summary:
    'Write throughput and sync-write latency through NBD for protocols C, B and A against an unreplicated file, then full and partial resync against the disk and link limits (printed, never asserted).',
  options: {
    'size-mib': option({
      metavar: 'N',
      help: 'device size in MiB',
      check: wholeNumber(1, MAX_SIZE_MIB),
      default: '64',
    }),
    protocols: option({
      metavar: 'LIST',
      help: 'replication protocols to measure, in order',
      check: listOf(oneOf(['A', 'B', 'C'])),
      default: 'C,B,A',
    }),
    repeat: option({
      metavar: 'N',
      help: 'baseline/replicated alternations per protocol (above 1, median ratios are printed too)',
      check: wholeNumber(1, 20),
      default: '1',
    }),
    'no-warmup': flag('skip the unreported warm-up pass before each protocol'),
    'no-resync': flag('skip the full and partial resync figures (protocol C)'),
    'resync-only': flag('skip the write phases'),
    'rand-only': flag('add a longer random-write phase (profiling aid, with node --cpu-prof)'),
    'lat-only': flag('skip the throughput phases (sequential and random writes)'),
  },
  notes: [
    'Environment: HALO_BENCH_LAT_WRITES=N latency-phase writes (300); HALO_BENCH_PAUSE=S wait S seconds',
    'before the latency phase and print the pids; HALO_BENCH_KEEP=1 keep the work folder and engine logs.',
  ],
} as const;

type VolumeBenchArgs = BenchArgs<typeof CLI.options>;

/** A pipelined NBD client: up to `depth` requests in flight. */
class Client {
  private buf = Buffer.alloc(0);
  private waiters = new Map<bigint, () => void>();
  private handle = 1n;
  private hsResolve: (() => void) | undefined;
  private constructor(private readonly sock: net.Socket) {}

  static async connect(path: string): Promise<Client> {
    const sock = net.connect(path);
    const c = new Client(sock);
    await new Promise<void>((res, rej) => {
      sock.once('connect', res);
      sock.once('error', rej);
    });
    sock.on('data', (d) => c.onData(d));
    await new Promise<void>((res) => {
      c.hsResolve = res;
      sock.write(Buffer.from([0, 0, 0, 3]));
      sock.write(encodeOption(Opt.GO, encodeInfoRequest('r0', [])));
    });
    return c;
  }

  private phase: 'greet' | 'opts' | 'tx' = 'greet';
  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.phase === 'greet') {
        if (this.buf.length < 18) return;
        this.buf = this.buf.subarray(18);
        this.phase = 'opts';
      } else if (this.phase === 'opts') {
        if (this.buf.length < 20) return;
        const len = this.buf.readUInt32BE(16);
        if (this.buf.length < 20 + len) return;
        const type = this.buf.readUInt32BE(12);
        this.buf = this.buf.subarray(20 + len);
        if (type === 1) {
          this.phase = 'tx';
          this.hsResolve?.();
        }
      } else {
        if (this.buf.length < 16) return;
        const h = this.buf.readBigUInt64BE(8);
        const err = this.buf.readUInt32BE(4);
        this.buf = this.buf.subarray(16);
        if (err !== 0) throw new Error(`NBD error ${err}`);
        this.waiters.get(h)?.();
        this.waiters.delete(h);
      }
    }
  }

  request(type: number, offset: number, data: Uint8Array, flags = 0, length = data.length): Promise<void> {
    const handle = this.handle++;
    return new Promise((res) => {
      this.waiters.set(handle, res);
      // Header and payload leave in one vectored write; the payload is never copied here.
      this.sock.cork();
      this.sock.write(encodeRequest({ type, handle, offset: BigInt(offset), length, flags }));
      if (data.length > 0) this.sock.write(data);
      this.sock.uncork();
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

async function pipelined(n: number, depth: number, op: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await op(next++);
  };
  await Promise.all(Array.from({ length: depth }, worker));
}

/** CPU seconds (user + system) a process used so far, from /proc (0 if it is gone). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return 0;
  }
}

function cpuOf(pids: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
}

/** CPU seconds per wall second of each process since `before` (10 ms resolution). */
function coresSince(before: Record<string, number>, pids: Record<string, number>, secs: number): string {
  return Object.entries(pids)
    .map(([k, pid]) => `${k} ${((cpuSeconds(pid) - before[k]!) / secs).toFixed(2)} cores`)
    .join(', ');
}

/** Engine and core counters of every engine, flattened as `node.name` (empty for the baseline). */
type Snap = () => Promise<Record<string, number>>;

/**
 * Runs `fn` (`ops` operations) and reports, per named process, CPU seconds per wall second
 * meanwhile and CPU time per operation (which other load on the box hardly changes), and which
 * counters `snap` sees change.
 */
async function withCores(
  pids: Record<string, number>,
  snap: Snap,
  ops: { n: number; unit: 'ms/MiB' | 'us/write' },
  fn: () => Promise<void>,
): Promise<{ secs: number; cores: string }> {
  const all = { client: process.pid, ...pids };
  const before = Object.fromEntries(Object.entries(all).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const c0 = await snap();
  const t = performance.now();
  await fn();
  const secs = (performance.now() - t) / 1000;
  const c1 = await snap();
  const scale = ops.unit === 'ms/MiB' ? 1e3 : 1e6;
  const cores = Object.entries(all)
    .map(([k, pid]) => {
      const cpu = cpuSeconds(pid) - before[k]!;
      return `${k} ${(cpu / secs).toFixed(2)} cores ${((cpu * scale) / ops.n).toFixed(ops.unit === 'ms/MiB' ? 2 : 0)} ${ops.unit}`;
    })
    .join(', ');
  const changed = Object.keys(c1)
    .filter((k) => c1[k] !== c0[k])
    .map((k) => `${k} +${Math.round(c1[k]! - (c0[k] ?? 0))}`);
  return { secs, cores: changed.length > 0 ? `${cores}] [${changed.join(', ')}` : cores };
}

/** Counters worth watching in a write phase, from each engine's status reply. */
function engineSnap(runDirs: Record<string, string>): Snap {
  return async () => {
    const out: Record<string, number> = {};
    for (const [name, runDir] of Object.entries(runDirs)) {
      const r = await controlRequest(runDir, 'r0', { cmd: 'status' }).catch(() => undefined);
      const eng = (r?.engine ?? {}) as Record<string, number>;
      const st = r?.status as CoreStatus | undefined;
      for (const k of [
        'persists',
        'persistDataSyncs',
        'persistMs',
        'persistSlotMs',
        'persistQueuedMs',
        'batches',
        'peerMsgs',
        'diskFlushes',
      ])
        out[`${name}.${k}`] = eng[k] ?? 0;
      out[`${name}.al`] = st?.counters.al ?? 0;
    }
    return out;
  };
}

interface Result {
  seqMiBs: number;
  randMiBs: number;
  latP50Us: number;
  latMeanUs: number;
  seqCores: string;
  randCores: string;
  latCores: string;
}

/** Random 4 KiB writes per measurement (64 MiB: long enough to outlast timer-driven work). */
const RAND_WRITES = 16384;
const LAT_WRITES = Number(process.env.HALO_BENCH_LAT_WRITES ?? 300);

async function measure(
  o: VolumeBenchArgs,
  sock: string,
  pids: Record<string, number>,
  snap: Snap = async () => ({}),
): Promise<Result> {
  const sizeBytes = o['size-mib'] * 2 ** 20;
  const c = await Client.connect(sock);
  const mib = randomBytes(1 << 20);
  const seqN = Math.floor(sizeBytes / (1 << 20));
  const latOnly = o['lat-only'];
  const seq = await withCores(pids, snap, { n: seqN, unit: 'ms/MiB' }, async () => {
    if (latOnly) return;
    await pipelined(seqN, 8, (i) => c.request(Cmd.WRITE, i * 2 ** 20, mib));
    await c.request(Cmd.FLUSH, 0, new Uint8Array(0));
  });
  const seqMiBs = latOnly ? Number.NaN : seqN / seq.secs;
  const four = randomBytes(4096);
  const blocks = Math.floor(sizeBytes / 4096);
  if (o['rand-only']) {
    // Profiling aid: a longer random-write phase alone, after the device is written once.
    const t = performance.now();
    await pipelined(4 * RAND_WRITES, 32, (i) =>
      c.request(Cmd.WRITE, ((i * 2654435761) % blocks) * 4096, four),
    );
    console.log(
      `rand-only: ${((4 * RAND_WRITES * 4096) / (1 << 20) / ((performance.now() - t) / 1000)).toFixed(1)} MiB/s`,
    );
  }
  const offs = Array.from({ length: RAND_WRITES }, (_v, i) => ((i * 2654435761) % blocks) * 4096);
  const rand = await withCores(pids, snap, { n: RAND_WRITES, unit: 'us/write' }, async () => {
    if (latOnly) return;
    await pipelined(RAND_WRITES, 32, (i) => c.request(Cmd.WRITE, offs[i]!, four));
    await c.request(Cmd.FLUSH, 0, new Uint8Array(0));
  });
  const randMiBs = latOnly ? Number.NaN : (RAND_WRITES * 4096) / (1 << 20) / rand.secs;
  const lats: number[] = [];
  if (process.env.HALO_BENCH_PAUSE) {
    // Profiling aid: time to attach strace/perf to the printed pids before the latency phase.
    console.log(`latency phase in ${process.env.HALO_BENCH_PAUSE} s; pids ${JSON.stringify(pids)}`);
    await new Promise((r) => setTimeout(r, Number(process.env.HALO_BENCH_PAUSE) * 1000));
  }
  const lat = await withCores(pids, snap, { n: LAT_WRITES, unit: 'us/write' }, async () => {
    for (let i = 0; i < LAT_WRITES; i++) {
      const s = performance.now();
      await c.request(Cmd.WRITE, offs[i % offs.length]!, four, CmdFlag.FUA);
      lats.push((performance.now() - s) * 1000);
    }
  });
  lats.sort((a, b) => a - b);
  c.close();
  return {
    seqMiBs,
    randMiBs,
    latP50Us: lats[Math.floor(lats.length / 2)]!,
    latMeanUs: lats.reduce((a, b) => a + b, 0) / lats.length,
    seqCores: seq.cores,
    randCores: rand.cores,
    latCores: lat.cores,
  };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Writes every byte of `path` (zeroes) and makes it durable: no side pays for allocation. */
function fillFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  try {
    const zero = Buffer.alloc(1 << 20);
    for (let at = 0; at < bytes; at += zero.length)
      writeSync(fd, zero, 0, Math.min(zero.length, bytes - at), at);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Sequential 1 MiB writes over an already written file, then fdatasync: the disk's rate. */
function diskMiBs(path: string, mib: number): number {
  fillFile(path, mib * 2 ** 20);
  const fd = openSync(path, 'r+');
  try {
    const data = randomBytes(1 << 20);
    const t = performance.now();
    for (let i = 0; i < mib; i++) writeSync(fd, data, 0, data.length, i * 2 ** 20);
    fdatasyncSync(fd);
    return mib / ((performance.now() - t) / 1000);
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
}

/**
 * 4 KiB write + fdatasync latencies (µs, sorted) of `n` writes in a child process per file,
 * all children starting together: what FUA costs when one disk serves one node, or (two
 * files) both nodes of the pair, as it does when the bench runs both engines on one box.
 */
async function fsyncLatencies(files: string[], n: number): Promise<number[][]> {
  const self = fileURLToPath(import.meta.url);
  const start = Date.now() + 300;
  const runs = files.map(
    (f) =>
      new Promise<number[]>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          [...process.execArgv, self, '--fsync-probe', f, String(start), String(n)],
          {
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        let out = '';
        child.stdout!.on('data', (d) => {
          out += d;
        });
        child.on('exit', (code) =>
          code === 0
            ? resolve(JSON.parse(out) as number[])
            : reject(new Error(`fsync probe exited with ${code}`)),
        );
      }),
  );
  return Promise.all(runs);
}

function fsyncProbe(path: string, startMs: number, n: number): void {
  const fd = openSync(path, 'w');
  const blocks = 256;
  for (let i = 0; i < blocks; i++) writeSync(fd, Buffer.alloc(4096), 0, 4096, i * 4096);
  fdatasyncSync(fd);
  const b = randomBytes(4096);
  while (Date.now() < startMs) {
    // spin until the common start
  }
  const lats: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    writeSync(fd, b, 0, 4096, ((i * 37) % blocks) * 4096);
    fdatasyncSync(fd);
    lats.push((performance.now() - t) * 1000);
  }
  closeSync(fd);
  rmSync(path, { force: true });
  process.stdout.write(JSON.stringify(lats.sort((x, y) => x - y)));
}

/** Two files written at once (1 MiB writes, interleaved) and then both fdatasync'd at once. */
async function diskPairMiBs(dir: string, mib: number): Promise<number> {
  const paths = [join(dir, 'pair-a.img'), join(dir, 'pair-b.img')];
  for (const p of paths) fillFile(p, mib * 2 ** 20);
  const handles = await Promise.all(paths.map((p) => open(p, 'r+')));
  try {
    const data = randomBytes(1 << 20);
    const t = performance.now();
    for (let i = 0; i < mib; i++) for (const h of handles) writeSync(h.fd, data, 0, data.length, i * 2 ** 20);
    await Promise.all(handles.map((h) => h.datasync()));
    return mib / ((performance.now() - t) / 1000);
  } finally {
    for (const h of handles) await h.close();
    for (const p of paths) rmSync(p, { force: true });
  }
}

const LINK_KEY = Buffer.alloc(32, 7);
const LINK_OPTS = { clusterKey: LINK_KEY, clusterId: 1 } as const;

/**
 * The link between two processes on this box: `mib` MiB in 1 MiB messages to a child process
 * that answers once it has them all. Raw TCP, or halo's stream: sealed (AES-256-GCM) or signed (GMAC).
 */
async function linkMiBs(kind: 'tcp' | 'sealed' | 'signed', mib: number, port: number): Promise<number> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(
    process.execPath,
    [...process.execArgv, self, '--sink', kind, String(port), String(mib)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  try {
    await new Promise<void>((res) => child.stdout!.once('data', () => res()));
    const data = randomBytes(1 << 20);
    if (kind === 'tcp') {
      const sock = net.connect(port, '127.0.0.1');
      sock.setNoDelay(true);
      await new Promise<void>((res) => sock.once('connect', res));
      const done = new Promise<void>((res) => sock.once('data', () => res()));
      const t = performance.now();
      for (let i = 0; i < mib; i++) {
        if (!sock.write(data)) await new Promise<void>((res) => sock.once('drain', res));
      }
      await done;
      sock.destroy();
      return mib / ((performance.now() - t) / 1000);
    }
    const ch = await StreamChannel.connect(
      { host: '127.0.0.1', port },
      { ...LINK_OPTS, self: 1, expectPeer: 2, mode: kind },
    );
    const done = new Promise<void>((res) => ch.once('message', () => res()));
    const t = performance.now();
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < mib; i++) {
      inFlight.push(ch.send(data));
      if (inFlight.length >= 8) await inFlight.shift();
    }
    await done;
    ch.close();
    return mib / ((performance.now() - t) / 1000);
  } finally {
    child.kill('SIGTERM');
  }
}

/** Round trips of one byte over TCP on 127.0.0.1 to a child process that echoes it (µs, sorted). */
async function tcpRoundTrips(port: number, n: number): Promise<number[]> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [...process.execArgv, self, '--sink', 'echo', String(port), '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise<void>((res) => child.stdout!.once('data', () => res()));
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    await new Promise<void>((res) => sock.once('connect', res));
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await new Promise<void>((res) => {
        sock.once('data', () => res());
        sock.write('x');
      });
      out.push((performance.now() - t) * 1000);
    }
    sock.destroy();
    return out.sort((a, b) => a - b);
  } finally {
    child.kill('SIGTERM');
  }
}

async function sink(kind: string, port: number, mib: number): Promise<void> {
  const want = mib * 2 ** 20; // not `<<`: 2 GiB would overflow 32 bits
  let got = 0;
  if (kind === 'echo') {
    const server = net.createServer((sock) => {
      sock.setNoDelay(true);
      sock.on('error', () => {});
      sock.on('data', (d) => sock.write(d));
    });
    await new Promise<void>((res) => server.listen(port, '127.0.0.1', res));
  } else if (kind === 'tcp') {
    const server = net.createServer((sock) => {
      sock.on('error', () => {});
      sock.on('data', (d) => {
        const before = got;
        got += d.length;
        if (got >= want && before < want) sock.write('k');
      });
    });
    await new Promise<void>((res) => server.listen(port, '127.0.0.1', res));
  } else {
    await StreamServer.listen(
      { host: '127.0.0.1', port },
      {
        ...LINK_OPTS,
        self: 2,
        mode: kind === 'signed' ? 'signed' : 'sealed',
        accept: (p) => p === 1,
        onChannel: (ch) =>
          ch.on('message', (m) => {
            const before = got;
            got += m.length;
            if (got >= want && before < want) ch.send(Buffer.from('k')).catch(() => {});
          }),
      },
    );
  }
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => process.exit(0));
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Waits (bounded) for `runDir`'s node to be Connected and UpToDate; returns when it was first
 * seen as SyncTarget (polled every 5 ms), so resync time can be told apart from reconnecting.
 */
async function waitResync(runDir: string): Promise<{ syncStart: number | undefined; end: number }> {
  let syncStart: number | undefined;
  const end = Date.now() + 120_000;
  for (;;) {
    const s = await status(runDir);
    if (s?.conn === 'SyncTarget' && syncStart === undefined) syncStart = performance.now();
    if (s?.conn === 'Connected' && s.disk === 'UpToDate') return { syncStart, end: performance.now() };
    if (Date.now() > end) throw new Error('bench: timed out waiting for resync');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function status(runDir: string): Promise<CoreStatus | undefined> {
  const r = await controlRequest(runDir, 'r0', { cmd: 'status' }).catch(() => undefined);
  return r?.ok ? (r.status as CoreStatus) : undefined;
}

function cli(conf: string, node: string, runDir: string, argv: string[]): void {
  const { exec, args: pre } = selfCommand();
  try {
    execFileSync(exec, [...pre, 'volume', '-c', conf, '--node', node, '--run-dir', runDir, ...argv], {
      stdio: 'pipe',
    });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`bench: volume ${argv.join(' ')} on ${node} failed: ${stderr || (err as Error).message}`);
  }
}

async function pair(dir: string, protocol: string, sizeMiB: number, port: number, downs: Array<() => void>) {
  const conf = join(dir, `drbd-${protocol}.conf`);
  const img = (n: string) => join(dir, `${protocol}-${n}.img`);
  writeFileSync(
    conf,
    `resource r0 {
  protocol ${protocol};
  net { shared-secret "bench"; connect-int 1; }
  on alpha { device /dev/drbd0; disk ${img('alpha')}; address 127.0.0.1:${port}; meta-disk internal; }
  on bravo { device /dev/drbd0; disk ${img('bravo')}; address 127.0.0.1:${port + 1}; meta-disk internal; }
}
`,
  );
  const runDir = (n: string) => join(dir, `run-${protocol}-${n}`);
  // Registered before anything starts, so a failure below still stops both engines.
  downs.push(() => {
    for (const n of ['alpha', 'bravo']) {
      try {
        cli(conf, n, runDir(n), ['down', 'r0']);
      } catch {
        // already down
      }
    }
  });
  for (const n of ['alpha', 'bravo']) {
    fillFile(img(n), (sizeMiB + 2) * 2 ** 20);
    cli(conf, n, runDir(n), ['create-md', 'r0']);
    cli(conf, n, runDir(n), ['up', 'r0']);
  }
  const pids: Record<string, number> = {};
  for (const n of ['alpha', 'bravo']) {
    const r = await controlRequest(runDir(n), 'r0', { cmd: 'status' });
    pids[n === 'alpha' ? 'primary' : 'secondary'] = Number(r?.pid ?? 0);
  }
  const cpu0 = cpuOf(pids);
  const t = performance.now();
  cli(conf, 'alpha', runDir('alpha'), ['primary', '--force', 'r0']);
  const w = await waitResync(runDir('bravo'));
  const fullSyncS = (w.end - t) / 1000;
  const fullResyncS = (w.end - (w.syncStart ?? t)) / 1000;
  const fullCores = coresSince(cpu0, pids, fullSyncS);
  return { conf, runDir, img, fullSyncS, fullResyncS, fullCores, pids };
}

async function main(o: VolumeBenchArgs): Promise<void> {
  const sizeMiB = o['size-mib'];
  const dir = mkdtempSync(join(tmpdir(), 'halo-vbench-'));
  const children: ChildProcess[] = [];
  const downs: Array<() => void> = [];
  try {
    const base = join(dir, 'plain.img');
    fillFile(base, sizeMiB * 2 ** 20);
    const baseSock = join(dir, 'plain.sock');
    const self = fileURLToPath(import.meta.url);
    const server = spawn(process.execPath, [...process.execArgv, self, '--serve', base, baseSock], {
      stdio: 'inherit',
    });
    children.push(server);
    await waitFor('baseline server', async () => existsSync(baseSock));
    console.log(`load: ${execFileSync('uptime').toString().trim()}`);
    const disk = diskMiBs(join(dir, 'disk-probe.img'), sizeMiB);
    // Ports from a random base, so two benches on one box (or a stale engine) do not collide.
    let port = 20000 + 10 * Math.floor(Math.random() * 3000);
    const tcp = await linkMiBs('tcp', 4 * sizeMiB, port++);
    const sealed = await linkMiBs('sealed', 2 * sizeMiB, port++);
    const signed = await linkMiBs('signed', 4 * sizeMiB, port++);
    const rtt = await tcpRoundTrips(port++, 1000);
    // The minimal replica (min_replica.ts): the same NBD server writing a local file and, in
    // parallel, a second one through another process over raw TCP.
    const teeSock = join(dir, 'tee.sock');
    const teePort = port++;
    for (const f of ['tee-local.img', 'tee-remote.img']) fillFile(join(dir, f), sizeMiB * 2 ** 20);
    const teeSink = spawn(
      process.execPath,
      [...process.execArgv, self, '--tee-sink', join(dir, 'tee-remote.img'), String(teePort)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(teeSink);
    await new Promise<void>((res) => teeSink.stdout!.once('data', () => res()));
    const teeServer = spawn(
      process.execPath,
      [...process.execArgv, self, '--serve-tee', join(dir, 'tee-local.img'), teeSock, String(teePort)],
      { stdio: 'inherit' },
    );
    children.push(teeServer);
    await waitFor('minimal replica', async () => existsSync(teeSock));
    const teePids = { server: teeServer.pid!, sink: teeSink.pid! };
    const disk2 = await diskPairMiBs(dir, sizeMiB);
    // Before any write phase: both files are still the zeroes fillFile wrote (in page cache).
    const resyncCeiling = await minimalResyncMiBs(join(dir, 'tee-local.img'), teePort, sizeMiB);
    const [alone] = await fsyncLatencies([join(dir, 'fsync-a')], LAT_WRITES);
    const both = await fsyncLatencies([join(dir, 'fsync-a'), join(dir, 'fsync-b')], LAT_WRITES);
    const p50 = (l: number[]) => l[Math.floor(l.length / 2)]!;
    const limit = Math.min(disk, tcp);
    console.log(
      `physical limits    : disk (1 MiB writes + fdatasync) ${disk.toFixed(0)} MiB/s | link (raw TCP, 2 processes) ${tcp.toFixed(0)} MiB/s | sealed stream (AES-GCM, tls yes) ${sealed.toFixed(0)} MiB/s | signed stream (GMAC, the default) ${signed.toFixed(0)} MiB/s`,
    );
    console.log(
      `one box, two nodes: 1 MiB writes + fdatasync to two files at once ${disk2.toFixed(0)} MiB/s each (${((100 * disk2) / disk).toFixed(0)}% of one) | 4 KiB write + fdatasync p50 alone ${p50(alone!).toFixed(0)} us, two at once ${p50(both[0]!).toFixed(0)}/${p50(both[1]!).toFixed(0)} us (${(p50(both[0]!) / p50(alone!)).toFixed(2)}x) | TCP round trip between two processes p50 ${p50(rtt).toFixed(0)} us (the baseline's FUA write crosses one, a replicated one two)`,
    );
    console.log(
      `minimal resync    : ${resyncCeiling.toFixed(0)} MiB/s (${((100 * resyncCeiling) / limit).toFixed(0)}% of min(disk, link)): 1 MiB reads of a file sent over raw TCP to a process that writes them to another file, then fdatasync; what any resync can reach on this box`,
    );
    console.log(
      `volume bench: ${sizeMiB} MiB device, NBD over a unix socket, replication over TCP on 127.0.0.1`,
    );
    const repeat = o.repeat;
    for (const protocol of o.protocols) {
      const p = await pair(dir, protocol, sizeMiB, port, downs);
      port += 2;
      // The baseline runs right before each protocol: load on this shared box drifts within
      // minutes, so each ratio compares two measurements taken seconds apart.
      const ratio = (x: number, y: number) => `${((100 * x) / y).toFixed(0)}%`;
      if (!o['resync-only']) {
        type Ratios = { seq: number[]; rand: number[]; fua: number[] };
        const ratios: Ratios = { seq: [], rand: [], fua: [] };
        const ceiling: Ratios = { seq: [], rand: [], fua: [] };
        const ofCeiling: Ratios = { seq: [], rand: [], fua: [] };
        if (!o['no-warmup']) {
          // Each protocol gets a fresh engine pair while the baseline server has run before:
          // one unreported pass through every phase warms both (JIT, page cache) alike.
          await measure(o, baseSock, { server: server.pid! });
          if (protocol === o.protocols[0]) await measure(o, teeSock, teePids);
          await measure(o, join(p.runDir('alpha'), 'r0.nbd'), p.pids);
        }
        for (let round = 0; round < repeat; round++) {
          const plain = await measure(o, baseSock, { server: server.pid! });
          console.log(
            `unreplicated file : seq 1MiB ${plain.seqMiBs.toFixed(1)} MiB/s | rand 4KiB ${plain.randMiBs.toFixed(1)} MiB/s | 4KiB FUA p50 ${plain.latP50Us.toFixed(0)} us mean ${plain.latMeanUs.toFixed(0)} us`,
          );
          console.log(`  cores: seq [${plain.seqCores}] rand [${plain.randCores}] fua [${plain.latCores}]`);
          const tee = await measure(o, teeSock, teePids);
          console.log(
            `minimal replica   : seq 1MiB ${tee.seqMiBs.toFixed(1)} MiB/s (${ratio(tee.seqMiBs, plain.seqMiBs)}) | rand 4KiB ${tee.randMiBs.toFixed(1)} MiB/s (${ratio(tee.randMiBs, plain.randMiBs)}) | 4KiB FUA p50 ${tee.latP50Us.toFixed(0)} us (${(tee.latP50Us / plain.latP50Us).toFixed(2)}x) mean ${tee.latMeanUs.toFixed(0)} us`,
          );
          console.log(`  cores: seq [${tee.seqCores}] rand [${tee.randCores}] fua [${tee.latCores}]`);
          ceiling.seq.push(tee.seqMiBs / plain.seqMiBs);
          ceiling.rand.push(tee.randMiBs / plain.randMiBs);
          ceiling.fua.push(tee.latP50Us / plain.latP50Us);
          const snap = engineSnap({ primary: p.runDir('alpha'), secondary: p.runDir('bravo') });
          const r = await measure(o, join(p.runDir('alpha'), 'r0.nbd'), p.pids, snap);
          console.log(
            `protocol ${protocol}        : seq 1MiB ${r.seqMiBs.toFixed(1)} MiB/s (${ratio(r.seqMiBs, plain.seqMiBs)}) | rand 4KiB ${r.randMiBs.toFixed(1)} MiB/s (${ratio(r.randMiBs, plain.randMiBs)}) | 4KiB FUA p50 ${r.latP50Us.toFixed(0)} us (${(r.latP50Us / plain.latP50Us).toFixed(2)}x) mean ${r.latMeanUs.toFixed(0)} us`,
          );
          console.log(`  cores: seq [${r.seqCores}] rand [${r.randCores}] fua [${r.latCores}]`);
          ratios.seq.push(r.seqMiBs / plain.seqMiBs);
          ratios.rand.push(r.randMiBs / plain.randMiBs);
          ratios.fua.push(r.latP50Us / plain.latP50Us);
          ofCeiling.seq.push(r.seqMiBs / tee.seqMiBs);
          ofCeiling.rand.push(r.randMiBs / tee.randMiBs);
          ofCeiling.fua.push(r.latP50Us / tee.latP50Us);
        }
        if (repeat > 1) {
          const pct = (xs: number[]) =>
            `${(100 * median(xs)).toFixed(0)}% (${(100 * Math.min(...xs)).toFixed(0)}–${(100 * Math.max(...xs)).toFixed(0)})`;
          const times = (xs: number[]) =>
            `${median(xs).toFixed(2)}x (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
          console.log(
            `protocol ${protocol}, median of ${repeat} alternations (range): seq ${pct(ratios.seq)} | rand 4KiB ${pct(ratios.rand)} | 4KiB FUA p50 ${times(ratios.fua)}`,
          );
          console.log(
            `minimal replica, of unreplicated   : seq ${pct(ceiling.seq)} | rand 4KiB ${pct(ceiling.rand)} | 4KiB FUA p50 ${times(ceiling.fua)}`,
          );
          console.log(
            `protocol ${protocol}, of minimal replica: seq ${pct(ofCeiling.seq)} | rand 4KiB ${pct(ofCeiling.rand)} | 4KiB FUA p50 ${times(ofCeiling.fua)}`,
          );
        }
      }
      if (protocol === 'C' && !o['no-resync']) {
        console.log(
          `full initial sync  : ${sizeMiB} MiB in ${p.fullSyncS.toFixed(2)} s = ${(sizeMiB / p.fullSyncS).toFixed(1)} MiB/s (includes promotion and reconnect); resync alone ${(sizeMiB / p.fullResyncS).toFixed(1)} MiB/s = ${ratio(sizeMiB / p.fullResyncS, limit)} of min(disk, link), ${ratio(sizeMiB / p.fullResyncS, signed)} of the signed stream, ${ratio(sizeMiB / p.fullResyncS, resyncCeiling)} of the minimal resync`,
        );
        console.log(`  cores: [${p.fullCores}] (source = primary)`);
        // Partial resync: disconnect, dirty a quarter of the device, reconnect.
        cli(p.conf, 'bravo', p.runDir('bravo'), ['disconnect', 'r0']);
        await waitFor('disconnect', async () => (await status(p.runDir('alpha')))?.conn !== 'Connected');
        const c = await Client.connect(join(p.runDir('alpha'), 'r0.nbd'));
        const mib = randomBytes(1 << 20);
        const quarter = Math.max(1, Math.floor(sizeMiB / 4));
        await pipelined(quarter, 8, (i) => c.request(Cmd.WRITE, i * 4 * (1 << 20), mib));
        c.close();
        const dirty = (await status(p.runDir('alpha')))!.outOfSyncBlocks;
        const before = (await status(p.runDir('alpha')))!.counters.resyncBytesSent;
        const cpu0 = cpuOf(p.pids);
        const t = performance.now();
        cli(p.conf, 'bravo', p.runDir('bravo'), ['connect', 'r0']);
        const w = await waitResync(p.runDir('bravo'));
        const secs = (w.end - t) / 1000;
        const syncSecs = (w.end - (w.syncStart ?? t)) / 1000;
        const sent = (await status(p.runDir('alpha')))!.counters.resyncBytesSent - before;
        const mibSent = sent / (1 << 20);
        const partialCores = coresSince(cpu0, p.pids, secs);
        console.log(
          `partial resync     : ${dirty} dirty blocks, ${mibSent.toFixed(1)} MiB sent in ${secs.toFixed(2)} s = ${(mibSent / secs).toFixed(1)} MiB/s (includes reconnect); resync alone ${(mibSent / syncSecs).toFixed(1)} MiB/s = ${ratio(mibSent / syncSecs, limit)} of min(disk, link), ${ratio(mibSent / syncSecs, signed)} of the signed stream, ${ratio(mibSent / syncSecs, resyncCeiling)} of the minimal resync`,
        );
        console.log(`  cores: [${partialCores}]`);
      }
      downs.pop()!();
    }
  } finally {
    for (const d of downs) d();
    for (const c of children) c.kill('SIGTERM');
    if (process.env.HALO_BENCH_KEEP) console.log(`kept ${dir} (engine logs: run-*/r0.log)`);
    else rmSync(dir, { recursive: true, force: true });
  }
  console.log(`load: ${execFileSync('uptime').toString().trim()}`);
}

// Internal modes first (this file re-run as a child by the bench itself), then the options.
const args = process.argv.slice(2);
if (args[0] === '--serve') {
  const dev = await FileBlockDevice.open(args[1]!);
  const server = new NbdServer([{ name: 'r0', device: dev }]);
  await server.listen({ unixPath: args[2]! });
  process.on('SIGTERM', () => process.exit(0));
} else if (args[0] === '--serve-tee') {
  const dev = await TeeDevice.open(args[1]!, Number(args[3]));
  const server = new NbdServer([{ name: 'r0', device: dev }]);
  await server.listen({ unixPath: args[2]! });
  process.on('SIGTERM', () => process.exit(0));
} else if (args[0] === '--tee-sink') {
  await teeSink(args[1]!, Number(args[2]));
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => process.exit(0));
} else if (args[0] === '--fsync-probe') {
  fsyncProbe(args[1]!, Number(args[2]), Number(args[3]));
} else if (args[0] === '--sink') {
  await sink(args[1]!, Number(args[2]), Number(args[3]));
} else {
  await main(benchArgs(CLI));
}
