/**
 * The 32-bit Mersenne Twister (MT19937) as PyTorch's CPU generator runs it: seeded with the standard
 * `init_genrand` recurrence from the low 32 bits of the seed, tempered output, state regenerated 624 words
 * at a time. Any deviation here shifts every value of every noise tensor, so it is kept minimal and exact.
 */
const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

export class MT19937 {
  private readonly state = new Uint32Array(N);
  /** Index of the next untempered word; N means the block is used up and must be regenerated. */
  private index = N;

  /** `seed` is reduced to its low 32 bits, as PyTorch's engine does with a 64-bit seed. */
  constructor(seed: number | bigint) {
    const s = this.state;
    s[0] = typeof seed === "bigint" ? Number(BigInt.asUintN(32, seed)) : seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = s[i - 1]!;
      // Math.imul keeps the 32-bit wrap-around product that a double multiplication would lose.
      s[i] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + i) >>> 0;
    }
  }

  /** The next 32-bit output as a non-negative integer. */
  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.state[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Fills `out` with successive outputs; the same sequence as calling nextUint32 out.length times. */
  fill(out: Uint32Array): void {
    const s = this.state;
    let idx = this.index;
    for (let i = 0; i < out.length; i++) {
      if (idx >= N) {
        this.twist();
        idx = 0;
      }
      let y = s[idx++]!;
      y ^= y >>> 11;
      y ^= (y << 7) & 0x9d2c5680;
      y ^= (y << 15) & 0xefc60000;
      y ^= y >>> 18;
      out[i] = y;
    }
    this.index = idx;
  }

  private twist(): void {
    const s = this.state;
    for (let k = 0; k < N; k++) {
      const y = (s[k]! & UPPER_MASK) | (s[(k + 1) % N]! & LOWER_MASK);
      s[k] = s[(k + M) % N]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    this.index = 0;
  }
}
