import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../lib/atomic_file.ts';
import { HaloError } from '../lib/errors.ts';
import { CLUSTER_KEY_BYTES } from './packet.ts';

/** Where `halo keygen` writes and the daemon reads the cluster key unless told otherwise. */
export const DEFAULT_KEY_FILE = '/etc/halo/authkey';
/** A key file is a few dozen bytes; anything bigger is not a key file. */
const MAX_KEY_FILE_BYTES = 4096;

/**
 * Writes a new random 32-byte cluster key as 64 hex characters and a newline, mode 0600,
 * atomically (temp file, fsync, rename). Refuses to replace an existing key unless `force`:
 * a replaced key silently cuts this node off from the rest of the cluster.
 */
export function generateKeyFile(path: string, opts: { force?: boolean } = {}): void {
  if (!opts.force && exists(path)) {
    throw new HaloError('key-file-exists', `${path} already exists; pass --force to replace the cluster key`);
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileAtomic(path, `${randomBytes(CLUSTER_KEY_BYTES).toString('hex')}\n`, 0o600);
}

/**
 * Reads a cluster key: 64 hex characters or 44 base64 characters (surrounding whitespace is
 * ignored). Refuses a file that group or others may read or write, as ssh does for private
 * keys: a key anyone on the machine can read authenticates nothing.
 */
export function loadKeyFile(path: string): Buffer {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (err) {
    throw new HaloError(
      'key-file-missing',
      `cannot read cluster key ${path}: ${(err as Error).message}; create one with 'halo keygen --file ${path}'`,
      { cause: err },
    );
  }
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
    throw new HaloError(
      'key-file-permissions',
      `cluster key ${path} has mode ${mode}, readable by group or others; run 'chmod 600 ${path}'`,
    );
  }
  if (st.size > MAX_KEY_FILE_BYTES) {
    throw new HaloError(
      'key-file-invalid',
      `cluster key ${path} is ${st.size} bytes; expected 64 hex or 44 base64 characters`,
    );
  }
  return parseKey(readFileSync(path, 'utf8').trim(), path);
}

export function parseKey(text: string, where: string): Buffer {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) {
    const b = Buffer.from(text, 'base64');
    if (b.length === CLUSTER_KEY_BYTES) return b;
  }
  throw new HaloError(
    'key-file-invalid',
    `cluster key ${where} is not 32 bytes as 64 hex or 44 base64 characters (got ${text.length} characters)`,
  );
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}
