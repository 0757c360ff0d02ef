import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { HaloError } from '../lib/errors.ts';
import { MAX_EPOCH } from '../transport/packet.ts';

/**
 * Returns this start's boot epoch and persists it (fsync) before any packet is sent: the
 * epoch is part of every GCM nonce, so it must never repeat for a node id. It is the larger of
 * the last epoch + 1 and the wall clock in seconds, so even a wiped state dir cannot go back
 * unless the clock does too.
 */
export function nextBootEpoch(stateDir: string, node: string, wallMs: number): number {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = join(stateDir, `${node}.epoch`);
  let last = 0;
  try {
    const text = readFileSync(file, 'utf8').trim();
    last = Number(text);
    if (!Number.isSafeInteger(last) || last < 0) {
      throw new HaloError(
        'bad-state',
        `${file}: '${text}' is not a boot epoch; remove the file to start over`,
      );
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const epoch = Math.max(last + 1, Math.floor(wallMs / 1000));
  if (epoch > MAX_EPOCH) throw new HaloError('bad-state', `${file}: boot epoch ${epoch} overflows 32 bits`);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `${epoch}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  return epoch;
}
