import { assert } from './assert.ts';

/**
 * Bytes received from a stream and not yet consumed, kept as the chunks they came in: a large
 * message arriving in many chunks is joined once, when the reader takes it, instead of being
 * re-copied on every chunk (which makes receiving an n-byte message cost O(n²) copying).
 * Pure: the decoders of the NBD server and of halo's streams read their input through it.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private bytes = 0;

  /** Bytes buffered and not yet taken. */
  get size(): number {
    return this.bytes;
  }

  /** With `owned`, the caller hands `chunk` over (never modifies it again) and it is not copied. */
  push(chunk: Uint8Array, owned = false): void {
    if (chunk.length === 0) return;
    this.chunks.push(
      owned ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.from(chunk),
    );
    this.bytes += chunk.length;
  }

  /** The next `n` bytes (n ≤ size) without taking them; copied only if they span chunks. */
  peek(n: number): Buffer {
    assert(n <= this.bytes, `peek of ${n} bytes with ${this.bytes} buffered`);
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  /** Removes and returns the next `n` bytes (n ≤ size); copied only if they span chunks. */
  take(n: number): Buffer {
    assert(n <= this.bytes, `take of ${n} bytes with ${this.bytes} buffered`);
    this.bytes -= n;
    const first = this.chunks[0];
    if (n === 0 || !first) return Buffer.alloc(0);
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    for (let at = 0; at < n; ) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }

  /** Drops everything buffered. */
  clear(): void {
    this.chunks = [];
    this.bytes = 0;
  }
}
