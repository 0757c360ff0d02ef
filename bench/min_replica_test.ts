import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { minimalResyncMiBs, TeeDevice, teeSink } from './min_replica.ts';

test('the minimal replica writes every request to both files', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-tee-'));
  const size = 8 << 20;
  const local = join(dir, 'local.img');
  const remote = join(dir, 'remote.img');
  writeFileSync(local, Buffer.alloc(size, 0xaa));
  writeFileSync(remote, Buffer.alloc(size, 0x55));
  let sink: net.Server | undefined;
  let dev: TeeDevice | undefined;
  try {
    // Port 0 is not known to the device; pick one from the listening server instead.
    sink = await teeSink(remote, 0);
    const port = (sink.address() as net.AddressInfo).port;
    dev = await TeeDevice.open(local, port);
    const big = randomBytes(3 << 20);
    const small = randomBytes(4096);
    // Both files start different: after writing every byte, they must be equal.
    const writes = [
      dev.write(0, big, false),
      dev.write(3 << 20, small, true),
      dev.writeZeroes((3 << 20) + 4096, (5 << 20) - 8192, false),
      dev.write(size - 4096, small, false),
    ];
    await dev.flush();
    await Promise.all(writes);
    const a = readFileSync(local);
    const b = readFileSync(remote);
    assert.ok(a.subarray(0, 3 << 20).equals(big));
    assert.ok(a.subarray(size - 4096).equals(small));
    assert.equal(
      a.subarray((3 << 20) + 4096, size - 4096).every((x) => x === 0),
      true,
    );
    assert.ok(a.equals(b), 'the remote file differs from the local one');
    assert.deepEqual(Buffer.from(await dev.read(3 << 20, 4096)), small);
  } finally {
    await dev?.close();
    sink?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the minimal resync copies a file to the sink and reports a rate', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halo-tee-'));
  const src = join(dir, 'src.img');
  const dst = join(dir, 'dst.img');
  const data = randomBytes(5 << 20);
  writeFileSync(src, data);
  writeFileSync(dst, Buffer.alloc(5 << 20));
  let sink: net.Server | undefined;
  try {
    sink = await teeSink(dst, 0);
    const rate = await minimalResyncMiBs(src, (sink.address() as net.AddressInfo).port, 5);
    assert.ok(rate > 0 && Number.isFinite(rate), `rate ${rate}`);
    assert.ok(readFileSync(dst).equals(data), 'the sink file differs from the source');
  } finally {
    sink?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
