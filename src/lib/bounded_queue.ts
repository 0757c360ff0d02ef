import { assert } from './assert.ts';

/**
 * A FIFO with a named maximum (ARCHITECTURE rule 7). `push` reports whether the item fit, so the
 * caller decides what overflow means (drop and count, back-pressure, or error).
 */
export class BoundedQueue<T> {
  private items: T[] = [];
  private head = 0;
  readonly max: number;

  constructor(max: number) {
    assert(Number.isInteger(max) && max > 0, `BoundedQueue: max must be a positive integer, got ${max}`);
    this.max = max;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): boolean {
    if (this.length >= this.max) return false;
    this.items.push(item);
    return true;
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.head++;
    // Compact once the consumed prefix dominates, keeping shift amortized O(1).
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  drain(): T[] {
    const out = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return out;
  }
}
