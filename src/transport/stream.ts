import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { HaloError } from '../lib/errors.ts';
import {
  decodeHello,
  deriveSessionKeys,
  encodeHello,
  FrameOpener,
  FrameSealer,
  HELLO_BYTES,
  type StreamMode,
  type StreamRole,
} from './stream_frames.ts';
import type { Endpoint } from './udp_transport.ts';

export { MAX_STREAM_MESSAGE_BYTES } from './stream_frames.ts';

/** A peer that does not finish the handshake within this long is disconnected. */
export const STREAM_HANDSHAKE_TIMEOUT_MS = 5_000;
/** Messages held for a channel nobody listens to yet (between handshake and `on('message')`). */
export const MAX_BACKLOG_MESSAGES = 1024;
/** What a mode mismatch means to an admin (volume replication is the only signed user). */
const MODE_HINT =
  'sealed = encrypted, signed = authenticated only; for a volume, set the same "tls" in both nodes\' net sections';
/** Bound on connections a server keeps in handshake at once (each is cheap, but not free). */
export const MAX_PENDING_HANDSHAKES = 64;

export interface StreamOptions {
  readonly clusterKey: Uint8Array;
  readonly clusterId: number;
  /** Our node id, sent in the Hello and bound into the session keys. */
  readonly self: number;
  readonly handshakeTimeoutMs?: number;
  /**
   * `sealed` (default) encrypts and authenticates; `signed` only authenticates (bulk data on a
   * trusted link: volume replication without `tls yes`). Both ends must use the same mode.
   */
  readonly mode?: StreamMode;
}

type Phase = 'hello' | 'finished' | 'open' | 'closed';

/**
 * A reliable, ordered, authenticated and encrypted message channel to one peer over TCP, for
 * large messages (Raft snapshots, volume resync and replication). Messages up to
 * MAX_STREAM_MESSAGE_BYTES; bigger transfers are chunked by the caller.
 *
 * Events: `message` (Buffer, in send order), `close` (Error when the channel failed: bad
 * frame, peer vanished; undefined after a clean `close()`). After `close` nothing more is
 * delivered, and `send` rejects with `stream-closed`. A failed frame closes the channel: the
 * caller reconnects and resumes from what the peer acknowledged at its own protocol level.
 */
export class StreamChannel extends EventEmitter<{
  message: [Buffer];
  close: [Error | undefined];
  newListener: [string | symbol, (...args: unknown[]) => void];
}> {
  private phase: Phase = 'hello';
  private pending = Buffer.alloc(0);
  private sealer: FrameSealer | undefined;
  private opener: FrameOpener | undefined;
  private readonly myHello: Buffer;
  private peerId = 0;
  private readonly ready: Promise<void>;
  private settle!: { resolve: () => void; reject: (e: Error) => void };
  private readonly timer: NodeJS.Timeout;
  private backlog: Buffer[] = [];

  private constructor(
    private readonly socket: Socket,
    private readonly role: StreamRole,
    private readonly opts: StreamOptions & { expectPeer?: number; accept?: (peer: number) => boolean },
  ) {
    super();
    this.myHello = encodeHello({
      role,
      mode: opts.mode ?? 'sealed',
      clusterId: opts.clusterId,
      nodeId: opts.self,
      nonce: randomBytes(32),
    });
    this.ready = new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // A handshake failure is reported through `ready`; don't let it count as unhandled meanwhile.
    this.ready.catch(() => {});
    const timeoutMs = opts.handshakeTimeoutMs ?? STREAM_HANDSHAKE_TIMEOUT_MS;
    this.timer = setTimeout(
      () => this.fail(new HaloError('stream-handshake', `no handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
    // Messages that arrive before anyone listens (they can share a TCP segment with the
    // handshake) are held and delivered, in order, once the first listener is attached.
    this.on('newListener', (event) => {
      if (event === 'message' && this.backlog.length > 0) queueMicrotask(() => this.flushBacklog());
    });
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (err) =>
      this.fail(
        new HaloError('stream-io', `stream to node ${this.peerId || '?'}: ${err.message}`, { cause: err }),
      ),
    );
    socket.on('close', () =>
      this.fail(
        this.phase === 'open'
          ? new HaloError('stream-closed', `node ${this.peerId} closed the stream`)
          : new HaloError('stream-handshake', 'connection closed during handshake'),
      ),
    );
    if (role === 'client') socket.write(this.myHello);
  }

  /** The authenticated node id of the other side. */
  get peer(): number {
    return this.peerId;
  }

  get isOpen(): boolean {
    return this.phase === 'open';
  }

  /** Queues one message; resolves once the kernel has accepted it (back-pressure via drain). */
  send(msg: Uint8Array): Promise<void> {
    return this.sendParts([msg]);
  }

  /**
   * Sends the concatenation of `parts` as one message without first copying it together (the
   * frame goes out as one vectored write). The parts must not change until the promise settles.
   */
  sendParts(parts: readonly Uint8Array[]): Promise<void> {
    if (this.phase !== 'open' || !this.sealer)
      return Promise.reject(new HaloError('stream-closed', 'stream is not open'));
    const pieces = this.sealer.sealParts(parts);
    return new Promise((resolve, reject) => {
      const sock = this.socket;
      sock.cork();
      for (let i = 0; i < pieces.length - 1; i++) sock.write(pieces[i]!);
      sock.write(pieces[pieces.length - 1]!, (err) =>
        err ? reject(new HaloError('stream-io', err.message, { cause: err })) : resolve(),
      );
      sock.uncork();
    });
  }

  close(): void {
    if (this.phase === 'closed') return;
    this.finish(undefined);
    this.socket.end();
  }

  /** Opens a channel to `ep` and completes the handshake. Rejects with a HaloError naming the problem. */
  static async connect(
    ep: Endpoint,
    opts: StreamOptions & { expectPeer?: number; localAddress?: string },
  ): Promise<StreamChannel> {
    const socket = createConnection({
      host: ep.host,
      port: ep.port,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    const ch = new StreamChannel(socket, 'client', opts);
    await ch.ready;
    return ch;
  }

  /** Used by StreamServer for each accepted socket. */
  static async accept(
    socket: Socket,
    opts: StreamOptions & { accept?: (peer: number) => boolean },
  ): Promise<StreamChannel> {
    const ch = new StreamChannel(socket, 'server', opts);
    await ch.ready;
    return ch;
  }

  private onData(d: Buffer): void {
    if (this.phase === 'closed') return;
    if (this.phase === 'hello') {
      this.pending = Buffer.concat([this.pending, d]);
      if (this.pending.length < HELLO_BYTES) return;
      const helloBytes = this.pending.subarray(0, HELLO_BYTES);
      const rest = this.pending.subarray(HELLO_BYTES);
      this.pending = Buffer.alloc(0);
      if (!this.onHello(Buffer.from(helloBytes))) return;
      if (rest.length === 0) return;
      d = rest;
    }
    // Socket reads arrive in fresh buffers nobody else keeps: no need to copy them.
    const r = this.opener!.push(d, true);
    if (!r.ok) {
      this.fail(new HaloError('stream-forged', `stream from node ${this.peerId}: ${r.error}`));
      return;
    }
    for (const msg of r.messages) {
      if (this.phase === 'finished') {
        const peerRole: StreamRole = this.role === 'client' ? 'server' : 'client';
        if (!FrameOpener.isFinished(msg, peerRole)) {
          this.fail(new HaloError('stream-handshake', 'peer sent data before finishing the handshake'));
          return;
        }
        this.phase = 'open';
        clearTimeout(this.timer);
        this.settle.resolve();
        continue;
      }
      if (this.phase !== 'open') return;
      this.deliver(msg);
    }
  }

  private deliver(msg: Buffer): void {
    if (this.backlog.length === 0 && this.listenerCount('message') > 0) {
      this.emit('message', msg);
      return;
    }
    if (this.backlog.length >= MAX_BACKLOG_MESSAGES) {
      this.fail(
        new HaloError(
          'stream-backlog',
          `stream from node ${this.peerId}: ${MAX_BACKLOG_MESSAGES} messages and nobody listening`,
        ),
      );
      return;
    }
    this.backlog.push(msg);
  }

  private flushBacklog(): void {
    while (this.backlog.length > 0 && this.listenerCount('message') > 0 && this.phase === 'open') {
      this.emit('message', this.backlog.shift()!);
    }
  }

  private onHello(bytes: Buffer): boolean {
    const h = decodeHello(bytes);
    const expectRole: StreamRole = this.role === 'client' ? 'server' : 'client';
    let problem: string | undefined;
    if (typeof h === 'string') problem = h;
    else if (h.role !== expectRole) problem = `peer speaks as ${h.role}, expected ${expectRole}`;
    else if (h.clusterId !== this.opts.clusterId) problem = `peer is in another cluster (id ${h.clusterId})`;
    else if ((h.mode ?? 'sealed') !== (this.opts.mode ?? 'sealed'))
      problem = `peer wants a ${h.mode} stream, this side a ${this.opts.mode ?? 'sealed'} one (${MODE_HINT})`;
    else if (h.nodeId === this.opts.self) problem = 'peer claims our own node id';
    else if (this.opts.expectPeer !== undefined && h.nodeId !== this.opts.expectPeer)
      problem = `expected node ${this.opts.expectPeer}, peer says ${h.nodeId}`;
    else if (this.opts.accept && !this.opts.accept(h.nodeId))
      problem = `node ${h.nodeId} is not accepted here`;
    if (problem !== undefined || typeof h === 'string') {
      const err = new HaloError('stream-handshake', `stream handshake refused: ${problem}`);
      if (this.role === 'server' && typeof h !== 'string' && h.mode !== (this.opts.mode ?? 'sealed')) {
        // A mode mismatch is a config mistake on one side: our Hello lets the client name it too.
        this.finish(err);
        this.socket.end(this.myHello);
        return false;
      }
      this.fail(err);
      return false;
    }
    this.peerId = h.nodeId;
    if (this.role === 'server') this.socket.write(this.myHello);
    const clientHello = this.role === 'client' ? this.myHello : bytes;
    const serverHello = this.role === 'client' ? bytes : this.myHello;
    const keys = deriveSessionKeys(this.opts.clusterKey, clientHello, serverHello);
    const mode = this.opts.mode ?? 'sealed';
    this.sealer = new FrameSealer(this.role === 'client' ? keys.c2s : keys.s2c, mode);
    this.opener = new FrameOpener(this.role === 'client' ? keys.s2c : keys.c2s, mode);
    this.socket.write(this.sealer.finished(this.role));
    this.phase = 'finished';
    return true;
  }

  private fail(err: Error): void {
    if (this.phase === 'closed') return;
    this.finish(err);
    this.socket.destroy();
  }

  private finish(err: Error | undefined): void {
    const wasOpen = this.phase === 'open';
    this.phase = 'closed';
    clearTimeout(this.timer);
    if (!wasOpen) this.settle.reject(err ?? new HaloError('stream-closed', 'closed during handshake'));
    else this.emit('close', err);
  }
}

/**
 * Accepts stream channels on one TCP endpoint. `onChannel` gets every channel that completed
 * the handshake; connections that fail it are closed and counted in `refused`.
 */
export class StreamServer {
  refused = 0;
  private pending = 0;

  private constructor(private readonly server: Server) {}

  static async listen(
    ep: Endpoint,
    opts: StreamOptions & {
      accept?: (peer: number) => boolean;
      onChannel: (ch: StreamChannel) => void;
      onRefused?: (err: Error) => void;
    },
  ): Promise<StreamServer> {
    const server = createServer();
    const s = new StreamServer(server);
    server.on('connection', (socket) => {
      if (s.pending >= MAX_PENDING_HANDSHAKES) {
        s.refused++;
        socket.destroy();
        return;
      }
      s.pending++;
      StreamChannel.accept(socket, opts).then(
        (ch) => {
          s.pending--;
          opts.onChannel(ch);
        },
        (err: Error) => {
          s.pending--;
          s.refused++;
          opts.onRefused?.(err);
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new HaloError('bind-failed', `cannot listen for streams on ${ep.host}:${ep.port}: ${err.message}`, {
            cause: err,
          }),
        ),
      );
      server.listen(ep.port, ep.host, () => resolve());
    });
    return s;
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  close(): void {
    this.server.close();
  }
}
