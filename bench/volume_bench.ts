/**
 * Volume benchmark (printed, never asserted): write throughput and sync-write latency through
 * NBD for protocols C, B and A, each against the same NBD server over an unreplicated local
 * file measured in the same run; then full and partial resync throughput.
 *
 *   node --import tsx bench/volume_bench.ts [--size-mib 64] [--protocols C,B,A] [--no-resync] [--rand-only]
 *
 * `--rand-only` adds a longer random-write phase (profiling aid: run with `node --cpu-prof`;
 * the engines inherit the flag). Resync is reported twice: including the reconnect (connect-int)
 * and from the moment the target reports SyncTarget.
 *
 * Both engines run as real processes (`halo volume run`) replicating over TCP on 127.0.0.1;
 * the baseline is this file re-run as `--serve FILE SOCK` (our NbdServer on a FileBlockDevice).
 * The client is a pipelined NBD client in this process.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { selfCommand } from '../src/cli/volume_cmd.ts';
import { FileBlockDevice } from '../src/nbd/block_device.ts';
import { Cmd, CmdFlag, encodeInfoRequest, encodeOption, encodeRequest, Opt } from '../src/nbd/codec.ts';
import { NbdServer } from '../src/nbd/server.ts';
import type { CoreStatus } from '../src/volume/core.ts';
import { controlRequest } from '../src/volume/engine.ts';

const args = process.argv.slice(2);

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
      this.sock.write(encodeRequest({ type, handle, offset: BigInt(offset), length, flags }, data));
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

interface Result {
  seqMiBs: number;
  randMiBs: number;
  latP50Us: number;
  latMeanUs: number;
}

async function measure(sock: string, sizeBytes: number): Promise<Result> {
  const c = await Client.connect(sock);
  const mib = randomBytes(1 << 20);
  const seqN = Math.floor(sizeBytes / (1 << 20));
  let t = performance.now();
  await pipelined(seqN, 8, (i) => c.request(Cmd.WRITE, i << 20, mib));
  await c.request(Cmd.FLUSH, 0, new Uint8Array(0));
  const seqMiBs = seqN / ((performance.now() - t) / 1000);
  if (args.includes('--rand-only')) {
    // Profiling aid: a longer random-write phase alone, after the device is written once.
    const four = randomBytes(4096);
    const blocks = Math.floor(sizeBytes / 4096);
    t = performance.now();
    await pipelined(4 * 4096, 32, (i) => c.request(Cmd.WRITE, ((i * 2654435761) % blocks) * 4096, four));
    console.log(
      `rand-only: ${((4 * 4096 * 4096) / (1 << 20) / ((performance.now() - t) / 1000)).toFixed(1)} MiB/s`,
    );
  }
  const four = randomBytes(4096);
  const randN = 4096;
  const blocks = Math.floor(sizeBytes / 4096);
  const offs = Array.from({ length: randN }, (_v, i) => ((i * 2654435761) % blocks) * 4096);
  t = performance.now();
  await pipelined(randN, 32, (i) => c.request(Cmd.WRITE, offs[i]!, four));
  await c.request(Cmd.FLUSH, 0, new Uint8Array(0));
  const randMiBs = (randN * 4096) / (1 << 20) / ((performance.now() - t) / 1000);
  const lats: number[] = [];
  for (let i = 0; i < 300; i++) {
    const s = performance.now();
    await c.request(Cmd.WRITE, offs[i]!, four, CmdFlag.FUA);
    lats.push((performance.now() - s) * 1000);
  }
  lats.sort((a, b) => a - b);
  c.close();
  return {
    seqMiBs,
    randMiBs,
    latP50Us: lats[Math.floor(lats.length / 2)]!,
    latMeanUs: lats.reduce((a, b) => a + b, 0) / lats.length,
  };
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
  execFileSync(exec, [...pre, 'volume', '-c', conf, '--node', node, '--run-dir', runDir, ...argv], {
    stdio: 'pipe',
  });
}

async function pair(dir: string, protocol: string, sizeMiB: number, port: number) {
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
  for (const n of ['alpha', 'bravo']) {
    execFileSync('truncate', ['-s', `${sizeMiB + 2}M`, img(n)]);
    cli(conf, n, runDir(n), ['create-md', 'r0']);
    cli(conf, n, runDir(n), ['up', 'r0']);
  }
  const t = performance.now();
  cli(conf, 'alpha', runDir('alpha'), ['primary', '--force', 'r0']);
  const w = await waitResync(runDir('bravo'));
  const fullSyncS = (w.end - t) / 1000;
  const fullResyncS = (w.end - (w.syncStart ?? t)) / 1000;
  return { conf, runDir, img, fullSyncS, fullResyncS };
}

async function main(): Promise<void> {
  const sizeMiB = Number(args[args.indexOf('--size-mib') + 1] ?? 64) || 64;
  const sizeBytes = sizeMiB << 20;
  const dir = mkdtempSync(join(tmpdir(), 'halo-vbench-'));
  const children: ChildProcess[] = [];
  const downs: Array<() => void> = [];
  try {
    const base = join(dir, 'plain.img');
    execFileSync('truncate', ['-s', `${sizeMiB}M`, base]);
    const baseSock = join(dir, 'plain.sock');
    const self = fileURLToPath(import.meta.url);
    const server = spawn(process.execPath, [...process.execArgv, self, '--serve', base, baseSock], {
      stdio: 'inherit',
    });
    children.push(server);
    await waitFor('baseline server', async () => existsSync(baseSock));
    const plain = await measure(baseSock, sizeBytes);
    console.log(
      `volume bench: ${sizeMiB} MiB device, NBD over a unix socket, replication over TCP on 127.0.0.1`,
    );
    console.log(
      `unreplicated file : seq 1MiB ${plain.seqMiBs.toFixed(1)} MiB/s | rand 4KiB ${plain.randMiBs.toFixed(1)} MiB/s | 4KiB FUA p50 ${plain.latP50Us.toFixed(0)} us mean ${plain.latMeanUs.toFixed(0)} us`,
    );
    let port = 17800;
    const pi = args.indexOf('--protocols');
    const protocols = pi >= 0 ? (args[pi + 1] ?? 'C,B,A').split(',') : ['C', 'B', 'A'];
    for (const protocol of protocols) {
      const p = await pair(dir, protocol, sizeMiB, port);
      port += 2;
      downs.push(() => {
        for (const n of ['alpha', 'bravo']) {
          try {
            cli(p.conf, n, p.runDir(n), ['down', 'r0']);
          } catch {
            // already down
          }
        }
      });
      const r = await measure(join(p.runDir('alpha'), 'r0.nbd'), sizeBytes);
      const ratio = (x: number, y: number) => `${((100 * x) / y).toFixed(0)}%`;
      console.log(
        `protocol ${protocol}        : seq 1MiB ${r.seqMiBs.toFixed(1)} MiB/s (${ratio(r.seqMiBs, plain.seqMiBs)}) | rand 4KiB ${r.randMiBs.toFixed(1)} MiB/s (${ratio(r.randMiBs, plain.randMiBs)}) | 4KiB FUA p50 ${r.latP50Us.toFixed(0)} us (${(r.latP50Us / plain.latP50Us).toFixed(2)}x) mean ${r.latMeanUs.toFixed(0)} us`,
      );
      if (protocol === 'C' && !args.includes('--no-resync')) {
        console.log(
          `full initial sync  : ${sizeMiB} MiB in ${p.fullSyncS.toFixed(2)} s = ${(sizeMiB / p.fullSyncS).toFixed(1)} MiB/s (includes promotion and reconnect); resync alone ${(sizeMiB / p.fullResyncS).toFixed(1)} MiB/s`,
        );
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
        const t = performance.now();
        cli(p.conf, 'bravo', p.runDir('bravo'), ['connect', 'r0']);
        const w = await waitResync(p.runDir('bravo'));
        const secs = (w.end - t) / 1000;
        const syncSecs = (w.end - (w.syncStart ?? t)) / 1000;
        const sent = (await status(p.runDir('alpha')))!.counters.resyncBytesSent - before;
        const mibSent = sent / (1 << 20);
        console.log(
          `partial resync     : ${dirty} dirty blocks, ${mibSent.toFixed(1)} MiB sent in ${secs.toFixed(2)} s = ${(mibSent / secs).toFixed(1)} MiB/s (includes reconnect); resync alone ${(mibSent / syncSecs).toFixed(1)} MiB/s`,
        );
      }
      downs.pop()!();
    }
  } finally {
    for (const d of downs) d();
    for (const c of children) c.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

if (args[0] === '--serve') {
  const dev = await FileBlockDevice.open(args[1]!);
  const server = new NbdServer([{ name: 'r0', device: dev }]);
  await server.listen({ unixPath: args[2]! });
  process.on('SIGTERM', () => process.exit(0));
} else {
  await main();
}
