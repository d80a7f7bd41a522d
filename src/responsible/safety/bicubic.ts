import { InternalError } from "../../errors.js";
import type { RgbImage } from "../../image/codec.js";

/**
 * Bicubic resampling of 8-bit RGB as Pillow's `Image.resize(size, BICUBIC)` computes it, which is what
 * transformers' CLIPImageProcessor (and so the safety checker's reference pre-processing) runs:
 *
 * - a separable convolution, horizontal pass first, each pass rounded back to 8 bits;
 * - the cubic kernel with a = -0.5 (Catmull-Rom), support 2, stretched by the scale when shrinking
 *   (antialiasing), sampled at pixel centres ((i + 0.5) * scale);
 * - per output pixel the kernel weights are normalised to sum 1, then quantised to fixed point with 22
 *   fractional bits; sums start at one half for rounding and are clamped to 0..255.
 *
 * libvips (sharp) upsamples with an interpolator instead of this convolution, which on noisy images is several
 * levels away from Pillow; the safety checker's thresholds sit a thousandth apart, so the reference's numbers matter.
 */

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);
const SUPPORT = 2;

function cubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

interface Taps {
  /** First input index for each output index. */
  start: Int32Array;
  /** Number of taps for each output index. */
  count: Int32Array;
  /** Fixed-point weights, `width` per output index. */
  weights: Int32Array;
  width: number;
}

/** The kernel taps mapping `inSize` samples to `outSize`. */
function taps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = SUPPORT * filterScale;
  const width = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * width);
  const k = new Float64Array(width);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - lo;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const w = cubic((i + lo - center + 0.5) / filterScale);
      k[i] = w;
      sum += w;
    }
    for (let i = 0; i < n; i++) {
      const w = sum !== 0 ? k[i]! / sum : k[i]!;
      // Round half away from zero to the fixed-point grid.
      weights[o * width + i] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    start[o] = lo;
    count[o] = n;
  }
  return { start, count, weights, width };
}

function clip8(acc: number): number {
  const v = Math.floor(acc / ONE);
  return v < 0 ? 0 : Math.min(v, 255);
}

/** One pass along rows (horizontal) or columns (vertical) of interleaved RGB. */
function pass(src: Uint8Array, w: number, h: number, outW: number, outH: number, horizontal: boolean): Uint8Array {
  const t = horizontal ? taps(w, outW) : taps(h, outH);
  const out = new Uint8Array(outW * outH * 3);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const o = horizontal ? x : y;
      const lo = t.start[o]!;
      const n = t.count[o]!;
      const base = o * t.width;
      let r = HALF,
        g = HALF,
        b = HALF;
      for (let i = 0; i < n; i++) {
        const k = t.weights[base + i]!;
        const p = horizontal ? (y * w + lo + i) * 3 : ((lo + i) * w + x) * 3;
        r += src[p]! * k;
        g += src[p + 1]! * k;
        b += src[p + 2]! * k;
      }
      const q = (y * outW + x) * 3;
      out[q] = clip8(r);
      out[q + 1] = clip8(g);
      out[q + 2] = clip8(b);
    }
  }
  return out;
}

/** Resizes 8-bit RGB to width x height with Pillow's BICUBIC filter (passes skipped where a size is unchanged, as Pillow does). */
export function resizeBicubic(image: RgbImage, width: number, height: number): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new InternalError(`bicubic resize to ${width}x${height}: sizes must be positive whole numbers`);
  }
  let data = image.data;
  let w = image.width;
  if (width !== w) {
    data = pass(data, w, image.height, width, image.height, true);
    w = width;
  }
  if (height !== image.height) data = pass(data, w, image.height, w, height, false);
  return { width, height, data: data === image.data ? image.data.slice() : data };
}
