import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { releaseFuseMount } from '../lib/fuse.ts';
import { SeededRng } from '../lib/prng.ts';
import { FileBlockDevice, MemoryBlockDevice } from './block_device.ts';
import {
  Cmd,
  CmdFlag,
  Errno,
  encodeInfoRequest,
  encodeOption,
  encodeRequest,
  Info,
  MAX_REQUEST_PAYLOAD,
  Opt,
  REQUEST_MAGIC,
} from './codec.ts';
import { NbdServer } from './server.ts';

const run = promisify(execFile);

/** A tiny NBD client over a raw socket, so tests can send anything, including garbage. */
class RawClient {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;
  constructor(readonly sock: net.Socket) {
    sock.on('data', (c) => {
      this.buf = Buffer.concat([this.buf, c]);
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on('error', () => {});
  }
  static async connect(path: string): Promise<RawClient> {
    const sock = net.connect(path);
    await new Promise<void>((res, rej) => {
      sock.once('connect', res);
      sock.once('error', rej);
    });
    return new RawClient(sock);
  }
  async read(n: number): Promise<Buffer> {
    for (let i = 0; i < 1000 && this.buf.length < n; i++) {
      if (this.closed) throw new Error(`connection closed with ${this.buf.length}/${n} bytes`);
      await new Promise<void>((res) => this.waiters.push(res));
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  async waitClosed(): Promise<void> {
    for (let i = 0; i < 1000 && !this.closed; i++) await new Promise<void>((res) => this.waiters.push(res));
  }
  write(b: Uint8Array): void {
    this.sock.write(b);
  }
  /** Handshake + NBD_OPT_GO on the default export. */
  async go(): Promise<void> {
    const greet = await this.read(18);
    assert.equal(greet.subarray(0, 8).toString(), 'NBDMAGIC');
    this.write(Buffer.from([0, 0, 0, 3]));
    this.write(encodeOption(Opt.GO, encodeInfoRequest('', [])));
    for (;;) {
      const hdr = await this.read(20);
      const type = hdr.readUInt32BE(12);
      await this.read(hdr.readUInt32BE(16));
      if (type === 1) return;
      assert.ok(type === 3, `unexpected reply type ${type}`);
    }
  }
  async reply(withData = 0): Promise<{ error: number; handle: bigint; data: Buffer }> {
    const h = await this.read(16);
    assert.equal(h.readUInt32BE(0), 0x67446698);
    const error = h.readUInt32BE(4);
    const data = error === 0 && withData > 0 ? await this.read(withData) : Buffer.alloc(0);
    return { error, handle: h.readBigUInt64BE(8), data };
  }
  close(): void {
    this.sock.destroy();
  }
}

async function withServer(size: number, fn: (sock: string, dev: MemoryBlockDevice) => Promise<void>) {
  const dir = mkdtempSync(join(tmpdir(), 'halo-nbd-'));
  const dev = new MemoryBlockDevice(size);
  const server = new NbdServer([{ name: 'vol', device: dev }]);
  const sock = join(dir, 'nbd.sock');
  await server.listen({ unixPath: sock });
  try {
    await fn(sock, dev);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a client can write, read back, flush and trim through the handshake and transmission phase', async () => {
  await withServer(1 << 20, async (sock, dev) => {
    const c = await RawClient.connect(sock);
    await c.go();
    const data = randomBytes(8192);
    c.write(
      encodeRequest(
        { type: Cmd.WRITE, handle: 7n, offset: 4096n, length: data.length, flags: CmdFlag.FUA },
        data,
      ),
    );
    assert.deepEqual((await c.reply()).error, 0);
    c.write(encodeRequest({ type: Cmd.READ, handle: 8n, offset: 4096n, length: data.length }));
    const r = await c.reply(data.length);
    assert.equal(r.handle, 8n);
    assert.deepEqual(r.data, data);
    c.write(encodeRequest({ type: Cmd.FLUSH, handle: 9n, offset: 0n, length: 0 }));
    assert.equal((await c.reply()).error, 0);
    assert.ok(dev.flushes >= 1);
    c.write(encodeRequest({ type: Cmd.TRIM, handle: 10n, offset: 4096n, length: 4096 }));
    assert.equal((await c.reply()).error, 0);
    c.write(encodeRequest({ type: Cmd.WRITE_ZEROES, handle: 11n, offset: 8192n, length: 4096 }));
    assert.equal((await c.reply()).error, 0);
    assert.ok(dev.bytes.subarray(4096, 12288).every((b) => b === 0));
    c.write(encodeRequest({ type: Cmd.DISC, handle: 12n, offset: 0n, length: 0 }));
    await c.waitClosed();
  });
});

test('NBD_OPT_LIST names the export and NBD_OPT_INFO reports its size without entering transmission', async () => {
  await withServer(1 << 20, async (sock) => {
    const c = await RawClient.connect(sock);
    await c.read(18);
    c.write(Buffer.from([0, 0, 0, 1]));
    c.write(encodeOption(Opt.LIST));
    let hdr = await c.read(20);
    assert.equal(hdr.readUInt32BE(12), 2);
    const entry = await c.read(hdr.readUInt32BE(16));
    assert.equal(entry.subarray(4).toString(), 'vol');
    hdr = await c.read(20);
    assert.equal(hdr.readUInt32BE(12), 1);
    c.write(encodeOption(Opt.INFO, encodeInfoRequest('vol', [Info.BLOCK_SIZE])));
    hdr = await c.read(20);
    const info = await c.read(hdr.readUInt32BE(16));
    assert.equal(info.readBigUInt64BE(2), 1n << 20n);
    for (;;) {
      hdr = await c.read(20);
      await c.read(hdr.readUInt32BE(16));
      if (hdr.readUInt32BE(12) !== 3) break;
    }
    c.write(encodeOption(Opt.INFO, encodeInfoRequest('nope', [])));
    hdr = await c.read(20);
    assert.equal(hdr.readUInt32BE(12), 0x80000006, 'unknown export is an error reply');
    c.write(encodeOption(Opt.EXPORT_NAME, Buffer.from('vol')));
    const reply = await c.read(10);
    assert.equal(reply.readBigUInt64BE(0), 1n << 20n);
    c.close();
  });
});

test('requests past the end, huge reads and unknown commands get errors and never touch the device', async () => {
  await withServer(64 * 1024, async (sock, dev) => {
    const c = await RawClient.connect(sock);
    await c.go();
    const four = Buffer.alloc(4096, 0xaa);
    c.write(encodeRequest({ type: Cmd.WRITE, handle: 1n, offset: 62n * 1024n, length: 4096 }, four));
    assert.equal((await c.reply()).error, Errno.ENOSPC);
    c.write(encodeRequest({ type: Cmd.WRITE, handle: 2n, offset: 2n ** 63n, length: 4096 }, four));
    assert.equal((await c.reply()).error, Errno.ENOSPC);
    c.write(encodeRequest({ type: Cmd.READ, handle: 3n, offset: 0n, length: 0xffffffff }));
    assert.equal((await c.reply()).error, Errno.EINVAL);
    c.write(encodeRequest({ type: 99, handle: 4n, offset: 0n, length: 16 }));
    assert.equal((await c.reply()).error, Errno.EINVAL);
    c.write(encodeRequest({ type: Cmd.TRIM, handle: 5n, offset: 60n * 1024n, length: 8192 }));
    assert.equal((await c.reply()).error, Errno.ENOSPC);
    assert.ok(
      dev.bytes.every((b) => b === 0),
      'device unchanged',
    );
    // A request with a bad magic loses framing: the server disconnects.
    c.write(encodeRequest({ type: Cmd.READ, handle: 6n, offset: 0n, length: 512, magic: 0xdeadbeef }));
    await c.waitClosed();
    assert.ok(c.closed);
  });
});

test('a WRITE announcing more than the payload limit is dropped instead of buffered', async () => {
  await withServer(64 * 1024, async (sock) => {
    const c = await RawClient.connect(sock);
    await c.go();
    c.write(encodeRequest({ type: Cmd.WRITE, handle: 1n, offset: 0n, length: MAX_REQUEST_PAYLOAD + 1 }));
    await c.waitClosed();
    assert.ok(c.closed);
  });
});

test('random garbage after the handshake never crashes the server or writes outside the device', async () => {
  const rng = new SeededRng(6);
  await withServer(64 * 1024, async (sock, dev) => {
    for (let round = 0; round < 60; round++) {
      const c = await RawClient.connect(sock);
      await c.go();
      // Mostly well-framed requests with random fields, sometimes raw noise.
      for (let i = 0; i < 20 && !c.closed; i++) {
        if (rng.int(10) === 0) {
          c.write(randomBytes(1 + rng.int(64)));
          continue;
        }
        const type = rng.int(9);
        const length = [0, 1, 4096, 65536, 0xffffffff][rng.int(5)]!;
        const offset = BigInt(rng.int(3) === 0 ? rng.int(1 << 30) : rng.int(64 * 1024));
        const payload = type === Cmd.WRITE && length <= 65536 ? Buffer.alloc(length, 0x5a) : Buffer.alloc(0);
        c.write(encodeRequest({ type, handle: BigInt(i), offset, length, flags: rng.int(32) }, payload));
      }
      c.close();
    }
    // The server still answers a well-behaved client correctly.
    const c = await RawClient.connect(sock);
    await c.go();
    c.write(encodeRequest({ type: Cmd.READ, handle: 1n, offset: 0n, length: 16 }));
    assert.equal((await c.reply(16)).error, 0);
    c.close();
    assert.equal(dev.bytes.length, 64 * 1024);
  });
});

test('garbage during option haggling gets an error reply or a disconnect', async () => {
  await withServer(4096, async (sock) => {
    const c = await RawClient.connect(sock);
    await c.read(18);
    c.write(Buffer.from([0, 0, 0, 1]));
    c.write(encodeOption(42, Buffer.from('x')));
    const hdr = await c.read(20);
    assert.equal(hdr.readUInt32BE(12), 0x80000001);
    c.write(encodeOption(Opt.GO, Buffer.from([0, 0, 0, 200, 1])));
    const hdr2 = await c.read(20);
    assert.equal(hdr2.readUInt32BE(12), 0x80000003);
    c.write(Buffer.alloc(16, 0xff));
    await c.waitClosed();
    assert.ok(c.closed);
  });
  assert.equal(REQUEST_MAGIC, 0x25609513);
});

/**
 * nbdfuse daemonizes once mounted, and its daemon keeps inherited pipes open, so it runs with
 * stdio ignored; we wait for the FUSE file to appear (bounded).
 */
export async function startNbdfuse(diskPath: string, sock: string): Promise<void> {
  const child = spawn('nbdfuse', [diskPath, '--unix', sock], { stdio: 'ignore' });
  let exitCode: number | null = null;
  child.on('exit', (code) => {
    exitCode = code ?? -1;
  });
  for (let i = 0; i < 200; i++) {
    if (exitCode !== null && exitCode !== 0) throw new Error(`nbdfuse exited with ${exitCode}`);
    if (exitCode === 0 || existsSync(diskPath)) {
      if (existsSync(diskPath)) return;
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error('nbdfuse did not mount within 10 s');
}

function have(tool: string): boolean {
  try {
    execFileSync('which', [tool], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('nbdinfo and qemu-io talk to the server over a file-backed device', {
  skip: !have('nbdinfo'),
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-nbd-'));
  const file = join(dir, 'backing.img');
  writeFileSync(file, Buffer.alloc(8 << 20));
  const dev = await FileBlockDevice.open(file);
  const server = new NbdServer([{ name: 'vol', device: dev }]);
  const sock = join(dir, 'nbd.sock');
  await server.listen({ unixPath: sock });
  try {
    const { stdout } = await run('nbdinfo', ['--json', `nbd+unix:///vol?socket=${sock}`]);
    const info = JSON.parse(stdout);
    assert.equal(info.exports[0]['export-size'], 8 << 20);
    const list = await run('nbdinfo', ['--list', `nbd+unix://?socket=${sock}`]);
    assert.match(list.stdout, /vol/);
    if (have('qemu-io')) {
      const uri = `nbd+unix:///vol?socket=${sock}`;
      await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5c 1M 64k', '-c', 'flush', uri]);
      const rd = await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0x5c 1M 64k', uri]);
      assert.doesNotMatch(rd.stdout + rd.stderr, /Pattern verification failed/);
      const bad = await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0x11 1M 4k', uri]).catch((e) => e);
      assert.match(String(bad.stdout) + String(bad.stderr), /Pattern verification failed/);
    }
    if (have('nbdcopy')) {
      const out = join(dir, 'copy.img');
      await run('nbdcopy', [`nbd+unix:///vol?socket=${sock}`, out]);
      assert.deepEqual(execFileSync('cmp', [file, out]).length, 0);
    }
  } finally {
    await server.close();
    await dev.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an ext4 filesystem made through nbdfuse and a loop device holds files', {
  skip: !have('nbdfuse') || process.getuid?.() !== 0,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-nbdfs-'));
  const file = join(dir, 'backing.img');
  writeFileSync(file, Buffer.alloc(32 << 20));
  const dev = await FileBlockDevice.open(file);
  const server = new NbdServer([{ name: 'vol', device: dev }]);
  const sock = join(dir, 'nbd.sock');
  const fuseDir = join(dir, 'fuse');
  const mnt = join(dir, 'mnt');
  mkdirSync(fuseDir);
  mkdirSync(mnt);
  await server.listen({ unixPath: sock });
  let loop = '';
  let fused = false;
  let mounted = false;
  // Every command here talks to our in-process server, so none may block the event loop.
  try {
    await startNbdfuse(join(fuseDir, 'disk'), sock);
    fused = true;
    loop = (await run('losetup', ['-f', '--show', join(fuseDir, 'disk')])).stdout.trim();
    await run('mkfs.ext4', ['-q', '-F', loop]);
    await run('mount', [loop, mnt]);
    mounted = true;
    writeFileSync(join(mnt, 'hello.txt'), 'hello from halo\n');
    await run('sync', ['-f', join(mnt, 'hello.txt')]);
    await run('umount', [mnt]);
    mounted = false;
    const fsck = await run('e2fsck', ['-fn', loop]);
    assert.match(fsck.stdout, /files/);
    await dev.flush();
    // The bytes reached the backing file: debugfs reads the file back without any NBD.
    const cat = await run('debugfs', ['-R', 'cat /hello.txt', file]);
    assert.equal(cat.stdout, 'hello from halo\n');
  } finally {
    if (mounted) await run('umount', ['-l', mnt]).catch(() => {});
    if (loop) await run('losetup', ['-d', loop]).catch(() => {});
    if (fused) await releaseFuseMount(fuseDir);
    await server.close();
    await dev.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
