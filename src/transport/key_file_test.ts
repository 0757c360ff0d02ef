import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateKeyFile, loadKeyFile } from './key_file.ts';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'halo-key-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('keygen writes a 32-byte key readable only by its owner, and it loads back', () => {
  withDir((dir) => {
    const f = join(dir, 'sub', 'authkey');
    generateKeyFile(f);
    assert.equal(statSync(f).mode & 0o777, 0o600);
    assert.match(readFileSync(f, 'utf8'), /^[0-9a-f]{64}\n$/);
    assert.equal(loadKeyFile(f).length, 32);
  });
});

test('keygen refuses to overwrite an existing key unless forced', () => {
  withDir((dir) => {
    const f = join(dir, 'authkey');
    generateKeyFile(f);
    const first = readFileSync(f, 'utf8');
    assert.throws(() => generateKeyFile(f), { code: 'key-file-exists' });
    generateKeyFile(f, { force: true });
    assert.notEqual(readFileSync(f, 'utf8'), first);
  });
});

test('a key file readable by group or others is refused with the chmod to fix it', () => {
  withDir((dir) => {
    const f = join(dir, 'authkey');
    generateKeyFile(f);
    chmodSync(f, 0o640);
    assert.throws(
      () => loadKeyFile(f),
      (e: Error & { code?: string }) => {
        return e.code === 'key-file-permissions' && /mode 640/.test(e.message) && /chmod 600/.test(e.message);
      },
    );
  });
});

test('a base64 key is accepted and a malformed key is refused', () => {
  withDir((dir) => {
    const f = join(dir, 'authkey');
    writeFileSync(f, `${Buffer.alloc(32, 7).toString('base64')}\n`, { mode: 0o600 });
    assert.deepEqual(loadKeyFile(f), Buffer.alloc(32, 7));
    writeFileSync(f, 'not a key\n', { mode: 0o600 });
    assert.throws(() => loadKeyFile(f), { code: 'key-file-invalid' });
    assert.throws(() => loadKeyFile(join(dir, 'nope')), { code: 'key-file-missing' });
  });
});
