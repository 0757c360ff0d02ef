import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';
import { HaloError } from '../lib/errors.ts';

/**
 * The daemon's local control socket: a unix socket (mode 0600) where a client writes one
 * command line (`status`) and reads one JSON document back, then the server closes. Only
 * local root can connect; nothing here is reachable from the network.
 */
/**
 * One request line at most: a whole configuration (`cib {"op":"replace-configuration",…}`, seed
 * 003's is ~4 KiB as JSON) must fit, as must the state machine's own command limit (4 MiB).
 */
export const MAX_CONTROL_REQUEST_BYTES = 4 << 20;
export const MAX_CONTROL_RESPONSE_BYTES = 4 << 20;

/** Answers one command line; may be async (e.g. a proposal that waits for commit). */
export type ControlHandler = (command: string) => unknown;

export async function serveControl(path: string, handler: ControlHandler): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  // A socket file left by a crashed daemon is removed; one a live daemon answers on is not.
  if (await answers(path)) {
    throw new HaloError('already-running', `a daemon is already answering on ${path}; stop it first`);
  }
  rmSync(path, { force: true });
  const server = createServer((conn) => {
    let buf = '';
    let bytes = 0;
    let answered = false;
    conn.setEncoding('utf8');
    conn.on('error', () => conn.destroy());
    conn.on('data', (chunk: string) => {
      if (answered) return;
      buf += chunk;
      bytes += Buffer.byteLength(chunk);
      if (bytes > MAX_CONTROL_REQUEST_BYTES) {
        answered = true;
        buf = '';
        conn.end(`${JSON.stringify({ error: `request longer than ${MAX_CONTROL_REQUEST_BYTES} bytes` })}\n`);
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0 || answered) return;
      answered = true;
      const line = buf.slice(0, nl).trim();
      Promise.resolve()
        .then(() => handler(line))
        .then(
          (reply) => conn.end(`${JSON.stringify(reply)}\n`),
          (err: Error) => conn.end(`${JSON.stringify({ error: err.message })}\n`),
        );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new HaloError('control-socket-failed', `cannot listen on ${path}: ${err.message}`, { cause: err }),
      ),
    );
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = createConnection(path);
    conn.on('connect', () => {
      conn.destroy();
      resolve(true);
    });
    conn.on('error', () => resolve(false));
  });
}

/** Sends one command to a daemon's control socket and returns its parsed JSON answer. */
export function queryControl(path: string, command: string, timeoutMs = 3000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new HaloError('control-timeout', `no answer from ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(`${command}\n`));
    conn.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_CONTROL_RESPONSE_BYTES) conn.destroy(new Error('answer too long'));
    });
    conn.on('error', (err) => {
      clearTimeout(timer);
      reject(
        new HaloError(
          'daemon-unreachable',
          `cannot talk to the daemon at ${path}: ${err.message}; is 'halo daemon' running?`,
          {
            cause: err,
          },
        ),
      );
    });
    conn.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf));
      } catch (err) {
        reject(new HaloError('bad-answer', `daemon at ${path} sent invalid JSON`, { cause: err }));
      }
    });
  });
}
