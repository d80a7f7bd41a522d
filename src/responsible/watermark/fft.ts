/**
 * Complex FFT for power-of-two sizes, 1-D and square 2-D, on split real/imaginary arrays. Enough for the
 * robust watermark's tiles (128 x 128); a plan holds its twiddles and bit-reversal table so a detector that
 * tries many alignments reuses them.
 */
import { InternalError } from "../../errors.js";

export class Fft {
  readonly size: number;
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;
  private readonly reversed: Uint32Array;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 2 || (size & (size - 1)) !== 0)
      throw new InternalError(`FFT size ${size} is not a power of two`);
    this.size = size;
    this.cos = new Float64Array(size / 2);
    this.sin = new Float64Array(size / 2);
    for (let i = 0; i < size / 2; i++) {
      this.cos[i] = Math.cos((2 * Math.PI * i) / size);
      this.sin[i] = Math.sin((2 * Math.PI * i) / size);
    }
    const bits = Math.log2(size);
    this.reversed = new Uint32Array(size);
    for (let i = 0; i < size; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.reversed[i] = r;
    }
  }

  /**
   * In-place transform of `size` samples read with a stride (so rows and columns of a 2-D array both work).
   * Forward is sum x[n] e^{-2 pi i k n / N}; inverse uses +i and does not divide by N.
   */
  transform(re: Float64Array, im: Float64Array, offset = 0, stride = 1, inverse = false): void {
    const n = this.size;
    for (let i = 0; i < n; i++) {
      const j = this.reversed[i]!;
      if (j > i) {
        const a = offset + i * stride,
          b = offset + j * stride;
        let t = re[a]!;
        re[a] = re[b]!;
        re[b] = t;
        t = im[a]!;
        im[a] = im[b]!;
        im[b] = t;
      }
    }
    const sign = inverse ? 1 : -1;
    for (let half = 1; half < n; half *= 2) {
      const step = n / (2 * half);
      for (let start = 0; start < n; start += 2 * half) {
        for (let k = 0; k < half; k++) {
          const wr = this.cos[k * step]!,
            wi = sign * this.sin[k * step]!;
          const a = offset + (start + k) * stride,
            b = a + half * stride;
          const xr = re[b]! * wr - im[b]! * wi;
          const xi = re[b]! * wi + im[b]! * wr;
          re[b] = re[a]! - xr;
          im[b] = im[a]! - xi;
          re[a] = re[a]! + xr;
          im[a] = im[a]! + xi;
        }
      }
    }
  }

  /** In-place 2-D transform of a size x size row-major array. */
  transform2d(re: Float64Array, im: Float64Array, inverse = false): void {
    const n = this.size;
    for (let r = 0; r < n; r++) this.transform(re, im, r * n, 1, inverse);
    for (let c = 0; c < n; c++) this.transform(re, im, c, n, inverse);
  }
}
