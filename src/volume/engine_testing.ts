/**
 * For tests: two real volume engines on loopback, with fresh disk files and metadata, and the
 * small waits they need. Not part of the engine; only `*_test.ts` files import it.
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { nullLogger } from '../lib/ports.ts';
import type { VolumeConfig } from './config.ts';
import { createMetadata, VolumeEngine } from './engine.ts';

/** How long a test waits for an engine condition. */
export const ENGINE_WAIT_MS = 30_000;

/** Polls `fn` every 20 ms until it holds; throws after ENGINE_WAIT_MS naming `what`. */
export async function waitUntil(what: string, fn: () => boolean): Promise<void> {
  const end = Date.now() + ENGINE_WAIT_MS;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Zeroed disks of `diskBytes` and fresh metadata for both configs; the engines, not started. */
export async function createEnginePair(
  ca: VolumeConfig,
  cb: VolumeConfig,
  dir: string,
  diskBytes: number,
): Promise<{ a: VolumeEngine; b: VolumeEngine }> {
  for (const c of [ca, cb]) writeFileSync(c.self.disk, Buffer.alloc(diskBytes));
  await createMetadata(ca, false);
  await createMetadata(cb, false);
  return {
    a: new VolumeEngine(ca, { runDir: join(dir, 'ra') }, nullLogger),
    b: new VolumeEngine(cb, { runDir: join(dir, 'rb') }, nullLogger),
  };
}

/**
 * Starts both engines, connects them, forces `a` Primary and waits for the initial sync.
 * Returns the engine's answer to `primary --force` (when it refused, without waiting).
 */
export async function connectAndSync(a: VolumeEngine, b: VolumeEngine): Promise<unknown> {
  await a.start();
  await b.start();
  await a.command({ cmd: 'connect' });
  await b.command({ cmd: 'connect' });
  await waitUntil('connection', () => a.status().conn === 'Connected');
  const promoted = await a.command({ cmd: 'primary', force: true });
  if ((promoted as { ok?: boolean }).ok !== true) return promoted;
  await waitUntil('initial sync', () => b.status().disk === 'UpToDate' && a.status().conn === 'Connected');
  return promoted;
}
