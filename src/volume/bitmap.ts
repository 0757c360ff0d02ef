import { assert } from '../lib/assert.ts';

/** Bytes covered by one bitmap bit, as in DRBD: one bit per 4 KiB block. */
export const BLOCK_BYTES = 4096;

/** A dirty bitmap, one bit per block, with a maintained count of set bits (the "weight"). */
export class Bitmap {
  readonly bits: Uint8Array;
  private weightValue = 0;

  constructor(
    readonly blocks: number,
    bits?: Uint8Array,
  ) {
    assert(Number.isInteger(blocks) && blocks >= 0, `bitmap blocks must be a count, got ${blocks}`);
    const bytes = Math.ceil(blocks / 8);
    this.bits = new Uint8Array(bytes);
    if (bits) {
      assert(bits.length === bytes, `bitmap of ${blocks} blocks needs ${bytes} bytes, got ${bits.length}`);
      this.bits.set(bits);
      // Bits past the last block are never meaningful.
      if (blocks % 8 !== 0 && bytes > 0) this.bits[bytes - 1]! &= (1 << (blocks % 8)) - 1;
      this.weightValue = 0;
      for (const b of this.bits) this.weightValue += popcount8(b);
    }
  }

  get weight(): number {
    return this.weightValue;
  }

  get(block: number): boolean {
    return ((this.bits[block >> 3]! >> (block & 7)) & 1) === 1;
  }

  set(block: number): void {
    assert(block >= 0 && block < this.blocks, `block ${block} outside bitmap of ${this.blocks}`);
    const m = 1 << (block & 7);
    const i = block >> 3;
    if ((this.bits[i]! & m) === 0) {
      this.bits[i]! |= m;
      this.weightValue++;
    }
  }

  clear(block: number): void {
    assert(block >= 0 && block < this.blocks, `block ${block} outside bitmap of ${this.blocks}`);
    const m = 1 << (block & 7);
    const i = block >> 3;
    if ((this.bits[i]! & m) !== 0) {
      this.bits[i]! &= ~m;
      this.weightValue--;
    }
  }

  setRange(first: number, count: number): void {
    for (let b = first; b < first + count; b++) this.set(b);
  }

  setAll(): void {
    for (let b = 0; b < this.blocks; b++) this.set(b);
  }

  clearAll(): void {
    this.bits.fill(0);
    this.weightValue = 0;
  }

  /** ORs another bitmap of the same size into this one. */
  merge(other: Uint8Array): void {
    assert(other.length === this.bits.length, 'bitmap sizes differ');
    for (let i = 0; i < other.length; i++) {
      const add = other[i]! & ~this.bits[i]!;
      if (add !== 0) {
        this.bits[i]! |= add;
        this.weightValue += popcount8(add);
      }
    }
    if (this.blocks % 8 !== 0 && this.bits.length > 0) {
      const last = this.bits.length - 1;
      const extra = this.bits[last]! & ~((1 << (this.blocks % 8)) - 1);
      if (extra) {
        this.bits[last]! &= ~extra;
        this.weightValue -= popcount8(extra);
      }
    }
  }

  /** The first set bit at or after `from`, or -1. Skips zero bytes quickly. */
  nextSet(from: number): number {
    let b = from;
    while (b < this.blocks) {
      if ((b & 7) === 0 && this.bits[b >> 3] === 0) {
        b += 8;
        continue;
      }
      if (this.get(b)) return b;
      b++;
    }
    return -1;
  }

  copy(): Uint8Array {
    return this.bits.slice();
  }

  /** A bitmap of `blocks` (at least this one's) holding this one's bits; the new bits are clear. */
  grownTo(blocks: number): Bitmap {
    assert(blocks >= this.blocks, `cannot shrink a bitmap of ${this.blocks} blocks to ${blocks}`);
    const bits = new Uint8Array(Math.ceil(blocks / 8));
    bits.set(this.bits);
    return new Bitmap(blocks, bits);
  }
}

function popcount8(x: number): number {
  let n = 0;
  for (let v = x; v !== 0; v &= v - 1) n++;
  return n;
}

/** Blocks [first, first+count) touched by a byte range. */
export function blocksOf(offset: number, length: number): { first: number; count: number } {
  const first = Math.floor(offset / BLOCK_BYTES);
  const last = Math.floor((offset + Math.max(length, 1) - 1) / BLOCK_BYTES);
  return { first, count: last - first + 1 };
}
