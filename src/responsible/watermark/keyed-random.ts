/**
 * Keyed pseudo-random numbers for the robust watermark: HMAC-SHA256 of a label and a block counter under the
 * watermark key. Whoever lacks the key cannot predict the patterns (so cannot read or forge the mark without
 * it); the same key always gives the same patterns, on any machine, which the detector depends on.
 */
import { createHmac } from "node:crypto";

export class KeyedRandom {
  private block = new Uint8Array(0);
  private used = 0;
  private counter = 0;

  constructor(
    private readonly key: string,
    private readonly label: string,
  ) {}

  /** A uniform 32-bit unsigned integer. */
  uint32(): number {
    if (this.used + 4 > this.block.length) {
      this.block = createHmac("sha256", this.key)
        .update(`${this.label}\u0000${this.counter++}`)
        .digest();
      this.used = 0;
    }
    const b = this.block,
      i = this.used;
    this.used += 4;
    return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.uint32() / 2 ** 32;
  }

  /** Uniform integer in [0, n), without modulo bias worth speaking of for the small n used here. */
  below(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.below(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}
