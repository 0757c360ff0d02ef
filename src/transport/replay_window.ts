import { assert } from '../lib/assert.ts';

/**
 * How far behind the newest accepted sequence number a packet may arrive and still be accepted
 * (once). 1024 packets covers reordering across 8 links at the fastest heartbeat rate with room
 * to spare, the same order as IPsec's and WireGuard's windows.
 */
export const REPLAY_WINDOW_BITS = 1024;

const WORDS = REPLAY_WINDOW_BITS / 32;

export type ReplayVerdict = 'fresh' | 'replayed' | 'too-old';

/**
 * A sliding bitmap over sequence numbers for one (sender, boot epoch). `check` is side-effect
 * free so that a packet is only `accept`ed after it authenticated: a forged packet must never
 * move the window (that would let an attacker make real packets look old).
 *
 * Sequence numbers are integers in [0, 2^48), exact in a JS number.
 */
export class ReplayWindow {
  /** Highest accepted sequence number, or -1 before the first. */
  private highest = -1;
  /** Bit (seq % BITS) is set when seq was accepted and is within the window. */
  private readonly bits = new Uint32Array(WORDS);

  get highestSeq(): number {
    return this.highest;
  }

  check(seq: number): ReplayVerdict {
    assert(Number.isSafeInteger(seq) && seq >= 0, `ReplayWindow.check: bad seq ${seq}`);
    if (seq > this.highest) return 'fresh';
    if (this.highest - seq >= REPLAY_WINDOW_BITS) return 'too-old';
    return this.testBit(seq) ? 'replayed' : 'fresh';
  }

  /** Records `seq` as seen. The caller has checked it is fresh and authentic. */
  accept(seq: number): void {
    assert(this.check(seq) === 'fresh', `ReplayWindow.accept: seq ${seq} is not fresh`);
    if (seq > this.highest) {
      const advance = seq - this.highest;
      if (advance >= REPLAY_WINDOW_BITS) {
        this.bits.fill(0);
      } else {
        // Clear the slots that slide out of the window (they now stand for new, unseen seqs).
        for (let s = this.highest + 1; s < seq; s++) this.clearBit(s);
      }
      this.highest = seq;
    }
    this.setBit(seq);
  }

  private testBit(seq: number): boolean {
    const i = seq % REPLAY_WINDOW_BITS;
    return ((this.bits[i >>> 5]! >>> (i & 31)) & 1) === 1;
  }

  private setBit(seq: number): void {
    const i = seq % REPLAY_WINDOW_BITS;
    this.bits[i >>> 5] = this.bits[i >>> 5]! | (1 << (i & 31));
  }

  private clearBit(seq: number): void {
    const i = seq % REPLAY_WINDOW_BITS;
    this.bits[i >>> 5] = this.bits[i >>> 5]! & ~(1 << (i & 31));
  }
}
