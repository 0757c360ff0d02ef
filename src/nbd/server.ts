import { existsSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import type { Logger } from '../lib/ports.ts';
import { nullLogger } from '../lib/ports.ts';
import type { BlockDevice } from './block_device.ts';
import {
  ClientFlag,
  Cmd,
  CmdFlag,
  checkRequest,
  decodeInfoRequest,
  Errno,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoName,
  encodeListEntry,
  encodeOptionReply,
  encodeSimpleReplyHeader,
  Info,
  MAX_REQUEST_PAYLOAD,
  NbdServerDecoder,
  Opt,
  type OptionMsg,
  Rep,
  type RequestMsg,
  TransmissionFlag,
} from './codec.ts';

/** Requests executing at once per connection; past this we stop reading the socket. */
export const MAX_IN_FLIGHT = 64;
/** Options a client may send before it must pick an export (stops option loops). */
const MAX_OPTIONS = 128;

export interface NbdExport {
  readonly name: string;
  readonly device: BlockDevice;
  readonly readOnly?: boolean;
  readonly description?: string;
}

export interface NbdServerStats {
  connections: number;
  requests: number;
  errors: number;
  dropped: number;
}

export interface NbdListenOptions {
  readonly unixPath?: string;
  /** TCP port on 127.0.0.1 (0 = pick one). */
  readonly tcpPort?: number;
  readonly host?: string;
}

/**
 * An NBD server: fixed newstyle handshake, simple replies. Every request is bounds-checked
 * before it reaches the device; a stream the decoder cannot follow is dropped. Requests run
 * concurrently (bounded by MAX_IN_FLIGHT); the device orders overlapping writes.
 */
export class NbdServer {
  private readonly exports = new Map<string, NbdExport>();
  private readonly sockets = new Set<net.Socket>();
  private server: net.Server | undefined;
  private unixPath: string | undefined;
  readonly stats: NbdServerStats = { connections: 0, requests: 0, errors: 0, dropped: 0 };

  constructor(
    exps: readonly NbdExport[],
    private readonly log: Logger = nullLogger,
  ) {
    for (const e of exps) this.exports.set(e.name, e);
  }

  /** Starts listening; resolves with the address (socket path or port). */
  async listen(opts: NbdListenOptions): Promise<string | number> {
    const server = net.createServer((sock) => this.accept(sock));
    this.server = server;
    if (opts.unixPath !== undefined) {
      if (existsSync(opts.unixPath)) unlinkSync(opts.unixPath);
      this.unixPath = opts.unixPath;
      await new Promise<void>((res, rej) => {
        server.once('error', rej);
        server.listen(opts.unixPath, () => res());
      });
      return opts.unixPath;
    }
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(opts.tcpPort ?? 0, opts.host ?? '127.0.0.1', () => res());
    });
    const addr = server.address();
    return typeof addr === 'object' && addr !== null ? addr.port : 0;
  }

  /** Stops accepting and drops every client (used when the volume stops being Primary). */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((res) => server.close(() => res()));
    if (this.unixPath && existsSync(this.unixPath)) unlinkSync(this.unixPath);
  }

  get clientCount(): number {
    return this.sockets.size;
  }

  private accept(sock: net.Socket): void {
    this.stats.connections++;
    this.sockets.add(sock);
    sock.setNoDelay?.(true);
    const conn = new Connection(sock, this.exports, this.stats, this.log);
    sock.on('close', () => this.sockets.delete(sock));
    conn.start();
  }
}

class Connection {
  private readonly decoder = new NbdServerDecoder();
  private noZeroes = false;
  private options = 0;
  private exp: NbdExport | undefined;
  private inFlight = 0;
  private closed = false;
  private pumping = false;
  private corked = false;

  constructor(
    private readonly sock: net.Socket,
    private readonly exports: Map<string, NbdExport>,
    private readonly stats: NbdServerStats,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.sock.on('data', (chunk) => {
      // Socket reads arrive in fresh buffers nobody else keeps: no need to copy them.
      this.decoder.push(chunk, true);
      this.pump();
    });
    this.sock.on('error', () => this.drop('socket error'));
    this.sock.on('close', () => {
      this.closed = true;
    });
    this.sock.write(encodeGreeting());
  }

  private drop(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.stats.dropped++;
    this.log.log('warn', `nbd: dropping client: ${reason}`, { component: 'nbd' });
    this.sock.destroy();
  }

  private send(b: Uint8Array): void {
    if (this.closed) return;
    // Replies finished in one event-loop turn leave in one vectored write: fewer syscalls,
    // and a pipelining client wakes once for the lot instead of once per reply.
    if (!this.corked) {
      this.corked = true;
      this.sock.cork();
      setImmediate(() => {
        this.corked = false;
        this.sock.uncork();
      });
    }
    this.sock.write(b);
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.closed && this.inFlight < MAX_IN_FLIGHT) {
        const msg = this.decoder.next();
        if (!msg) break;
        if (msg.kind === 'fatal') {
          this.drop(msg.reason);
          return;
        }
        if (msg.kind === 'clientFlags') this.noZeroes = (msg.flags & ClientFlag.NO_ZEROES) !== 0;
        else if (msg.kind === 'option') this.onOption(msg);
        else this.onRequest(msg);
      }
      if (this.inFlight >= MAX_IN_FLIGHT) this.sock.pause();
    } finally {
      this.pumping = false;
    }
  }

  private flagsFor(e: NbdExport): number {
    let f =
      TransmissionFlag.HAS_FLAGS |
      TransmissionFlag.SEND_FLUSH |
      TransmissionFlag.SEND_FUA |
      TransmissionFlag.SEND_TRIM |
      TransmissionFlag.SEND_WRITE_ZEROES;
    if (e.readOnly) f |= TransmissionFlag.READ_ONLY;
    return f;
  }

  private onOption(m: OptionMsg): void {
    if (++this.options > MAX_OPTIONS) {
      this.drop('too many options');
      return;
    }
    switch (m.option) {
      case Opt.EXPORT_NAME: {
        const e = this.exports.get(Buffer.from(m.data).toString('utf8')) ?? this.defaultExport(m.data);
        // EXPORT_NAME has no error reply: an unknown name means closing the connection.
        if (!e) {
          this.drop('unknown export name');
          return;
        }
        this.exp = e;
        this.send(encodeExportNameReply(e.device.sizeBytes, this.flagsFor(e), this.noZeroes));
        this.decoder.enterTransmission();
        return;
      }
      case Opt.ABORT:
        this.send(encodeOptionReply(m.option, Rep.ACK));
        this.sock.end();
        this.closed = true;
        return;
      case Opt.LIST:
        if (m.data.length !== 0) {
          this.send(encodeOptionReply(m.option, Rep.ERR_INVALID));
          return;
        }
        for (const name of this.exports.keys()) {
          this.send(encodeOptionReply(m.option, Rep.SERVER, encodeListEntry(name)));
        }
        {
          this.send(encodeOptionReply(m.option, Rep.ACK));
          return;
        }
      case Opt.INFO:
      case Opt.GO: {
        this.onInfoOrGo(m);
        return;
      }
      default: {
        this.send(encodeOptionReply(m.option, Rep.ERR_UNSUP));
        return;
      }
    }
  }

  private defaultExport(name: Uint8Array): NbdExport | undefined {
    // An empty name selects the default export when there is exactly one.
    if (name.length !== 0 || this.exports.size !== 1) return undefined;
    return this.exports.values().next().value;
  }

  private onInfoOrGo(m: OptionMsg): void {
    const req = decodeInfoRequest(m.data);
    if (!req) {
      this.send(encodeOptionReply(m.option, Rep.ERR_INVALID));
      return;
    }
    const e = this.exports.get(req.name) ?? this.defaultExport(Buffer.from(req.name));
    if (!e) {
      this.send(encodeOptionReply(m.option, Rep.ERR_UNKNOWN));
      return;
    }
    this.send(encodeOptionReply(m.option, Rep.INFO, encodeInfoExport(e.device.sizeBytes, this.flagsFor(e))));
    if (req.infos.includes(Info.NAME))
      this.send(encodeOptionReply(m.option, Rep.INFO, encodeInfoName(e.name)));
    if (req.infos.includes(Info.BLOCK_SIZE)) {
      this.send(encodeOptionReply(m.option, Rep.INFO, encodeInfoBlockSize(1, 4096, MAX_REQUEST_PAYLOAD)));
    }
    this.send(encodeOptionReply(m.option, Rep.ACK));
    if (m.option === Opt.GO) {
      this.exp = e;
      this.decoder.enterTransmission();
    }
  }

  private onRequest(r: RequestMsg): void {
    const e = this.exp;
    if (!e) {
      this.drop('request before export chosen');
      return;
    }
    this.stats.requests++;
    if (r.type === Cmd.DISC) {
      this.closed = true;
      this.sock.end();
      return;
    }
    const err = checkRequest(r, e.device.sizeBytes, e.readOnly === true);
    if (err !== 0) {
      this.stats.errors++;
      this.send(encodeSimpleReplyHeader(err, r.handle));
      return;
    }
    this.inFlight++;
    this.execute(e.device, r).then(
      (data) => this.complete(r, 0, data),
      (cause: unknown) => {
        this.log.log('error', `nbd: request failed: ${(cause as Error).message}`, { component: 'nbd' });
        this.complete(r, Errno.EIO, undefined);
      },
    );
  }

  private complete(r: RequestMsg, err: number, data: Uint8Array | undefined): void {
    this.inFlight--;
    if (err !== 0) this.stats.errors++;
    this.send(encodeSimpleReplyHeader(err, r.handle));
    if (err === 0 && data) this.send(data);
    if (!this.closed && this.inFlight < MAX_IN_FLIGHT) {
      this.sock.resume();
      this.pump();
    }
  }

  private async execute(dev: BlockDevice, r: RequestMsg): Promise<Uint8Array | undefined> {
    const off = Number(r.offset);
    const fua = (r.flags & CmdFlag.FUA) !== 0;
    switch (r.type) {
      case Cmd.READ:
        return r.length === 0 ? new Uint8Array(0) : dev.read(off, r.length);
      case Cmd.WRITE:
        if (r.length > 0) await dev.write(off, r.data, fua);
        else if (fua) await dev.flush();
        return undefined;
      case Cmd.FLUSH:
        await dev.flush();
        return undefined;
      case Cmd.TRIM:
        if (r.length > 0) await dev.trim(off, r.length);
        if (fua) await dev.flush();
        return undefined;
      case Cmd.WRITE_ZEROES:
        if (r.length > 0) await dev.writeZeroes(off, r.length, fua);
        return undefined;
      case Cmd.CACHE:
        return undefined;
      default:
        return undefined;
    }
  }
}
