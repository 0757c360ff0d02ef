/**
 * The least replication an NBD server can do, as a reference for the volume bench: our
 * NbdServer over a device that writes each request to a local file and, at the same time,
 * sends it over raw TCP to a second process, which writes it to its own file (the same
 * FileBlockDevice code) and answers; a write completes when both are done, as with protocol C.
 *
 * No generation identifiers, bitmap, activity log, ordering rules, authentication or
 * reconnect: nothing a real replica needs beyond moving the bytes and writing them twice. On
 * one box it measures what a second copy costs there (CPU, disk, loopback), so halo's figures
 * can be read against this ceiling as well as against the unreplicated server.
 *
 * Wire format, each way: a request is id (u64), offset (u64), length (u32), kind (u8: 0 write,
 * 1 FUA write, 2 flush, 3 write zeroes), then `length` data bytes for a write; a reply is the
 * request's id (u64). Bench-only code: it trusts its peer.
 */
import { open } from 'node:fs/promises';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { ByteQueue } from '../src/lib/byte_queue.ts';
import { type BlockDevice, FileBlockDevice } from '../src/nbd/block_device.ts';

const REQ_BYTES = 21;
const KIND_WRITE = 0;
const KIND_FUA = 1;
const KIND_FLUSH = 2;
const KIND_ZEROES = 3;

/** A local FileBlockDevice whose writes and flushes are also done by a remote `teeSink`. */
export class TeeDevice implements BlockDevice {
  private nextId = 1n;
  private readonly waiting = new Map<bigint, () => void>();
  private readonly replies = new ByteQueue();

  private constructor(
    private readonly local: FileBlockDevice,
    private readonly sock: net.Socket,
  ) {
    sock.on('data', (d: Buffer) => {
      this.replies.push(d);
      while (this.replies.size >= 8) {
        const id = this.replies.take(8).readBigUInt64BE(0);
        this.waiting.get(id)?.();
        this.waiting.delete(id);
      }
    });
  }

  static async open(path: string, port: number): Promise<TeeDevice> {
    const local = await FileBlockDevice.open(path);
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    await new Promise<void>((res, rej) => {
      sock.once('connect', res);
      sock.once('error', rej);
    });
    return new TeeDevice(local, sock);
  }

  get sizeBytes(): number {
    return this.local.sizeBytes;
  }

  private remote(kind: number, offset: number, length: number, data?: Uint8Array): Promise<void> {
    const id = this.nextId++;
    const head = Buffer.allocUnsafe(REQ_BYTES);
    head.writeBigUInt64BE(id, 0);
    head.writeBigUInt64BE(BigInt(offset), 8);
    head.writeUInt32BE(length, 16);
    head.writeUInt8(kind, 20);
    return new Promise((res) => {
      this.waiting.set(id, res);
      this.sock.cork();
      this.sock.write(head);
      if (data) this.sock.write(data);
      this.sock.uncork();
    });
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.local.read(offset, length);
  }

  async write(offset: number, data: Uint8Array, fua: boolean): Promise<void> {
    await Promise.all([
      this.remote(fua ? KIND_FUA : KIND_WRITE, offset, data.length, data),
      this.local.write(offset, data, fua),
    ]);
  }

  async flush(): Promise<void> {
    await Promise.all([this.remote(KIND_FLUSH, 0, 0), this.local.flush()]);
  }

  trim(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length, false);
  }

  async writeZeroes(offset: number, length: number, fua: boolean): Promise<void> {
    await Promise.all([
      this.remote(KIND_ZEROES, offset, length),
      this.local.writeZeroes(offset, length, fua),
    ]);
  }

  async close(): Promise<void> {
    this.sock.destroy();
    await this.local.close();
  }
}

/** The remote half: listens on 127.0.0.1:`port` (0: any) and does each request to the file at `path`. */
export async function teeSink(path: string, port: number): Promise<net.Server> {
  const dev = await FileBlockDevice.open(path);
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('error', () => {});
    const input = new ByteQueue();
    // A flush covers every write before it: it waits for the ones still running.
    const running = new Set<Promise<void>>();
    // Replies of one event-loop turn leave in one write, as the NBD server's do.
    let corked = false;
    const reply = (id: Buffer) => {
      if (!corked) {
        corked = true;
        sock.cork();
        setImmediate(() => {
          corked = false;
          sock.uncork();
        });
      }
      sock.write(id);
    };
    sock.on('data', (d: Buffer) => {
      input.push(d);
      for (;;) {
        if (input.size < REQ_BYTES) return;
        const head = input.peek(REQ_BYTES);
        const length = head.readUInt32BE(16);
        const kind = head.readUInt8(20);
        const withData = kind === KIND_WRITE || kind === KIND_FUA;
        if (input.size < REQ_BYTES + (withData ? length : 0)) return;
        const h = Buffer.from(input.take(REQ_BYTES));
        const offset = Number(h.readBigUInt64BE(8));
        let done: Promise<void>;
        if (kind === KIND_FLUSH) done = Promise.all(running).then(() => dev.flush());
        else {
          const w =
            kind === KIND_ZEROES
              ? dev.writeZeroes(offset, length, false)
              : dev.write(offset, input.take(length), kind === KIND_FUA);
          running.add(w);
          done = w.finally(() => running.delete(w));
        }
        done.then(
          () => reply(h.subarray(0, 8)),
          (e: Error) => {
            console.error(`tee sink: ${e.message}`);
            sock.destroy();
          },
        );
      }
    });
  });
  server.on('close', () => void dev.close());
  await new Promise<void>((res) => server.listen(port, '127.0.0.1', res));
  return server;
}

/**
 * The least a resync does: reads `mib` MiB of the file at `path` in 1 MiB pieces (8 in
 * flight), sends each as a write to the `teeSink` on `port`, and ends with a flush there.
 * Returns MiB/s: disk to TCP to disk through two processes in this runtime, with nothing else.
 */
export async function minimalResyncMiBs(path: string, port: number, mib: number): Promise<number> {
  const src = await open(path, 'r');
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  try {
    await new Promise<void>((res, rej) => {
      sock.once('connect', res);
      sock.once('error', rej);
    });
    const waiting = new Map<bigint, () => void>();
    const replies = new ByteQueue();
    sock.on('data', (d: Buffer) => {
      replies.push(d);
      while (replies.size >= 8) {
        const id = replies.take(8).readBigUInt64BE(0);
        waiting.get(id)?.();
        waiting.delete(id);
      }
    });
    let nextId = 1n;
    const send = (kind: number, offset: number, data?: Buffer): Promise<void> => {
      const id = nextId++;
      const head = Buffer.allocUnsafe(REQ_BYTES);
      head.writeBigUInt64BE(id, 0);
      head.writeBigUInt64BE(BigInt(offset), 8);
      head.writeUInt32BE(data?.length ?? 0, 16);
      head.writeUInt8(kind, 20);
      return new Promise((res) => {
        waiting.set(id, res);
        sock.cork();
        sock.write(head);
        if (data) sock.write(data);
        sock.uncork();
      });
    };
    const t = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < mib) {
        const at = next++ * 2 ** 20;
        const buf = Buffer.allocUnsafe(2 ** 20);
        const { bytesRead } = await src.read(buf, 0, buf.length, at);
        await send(KIND_WRITE, at, buf.subarray(0, bytesRead));
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    await send(KIND_FLUSH, 0);
    return mib / ((performance.now() - t) / 1000);
  } finally {
    sock.destroy();
    await src.close();
  }
}
