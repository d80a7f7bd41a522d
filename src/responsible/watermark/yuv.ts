/**
 * OpenCV's `cvtColor` between BGR and YUV (BT.601, not YCrCb), reproduced to the bit, because the dwtDct
 * watermark of Stable Diffusion lives in the U plane as OpenCV computes it and a one-level difference there
 * moves a block across a quantisation boundary.
 *
 * Pixels are interleaved 3-channel arrays in OpenCV's channel order: B, G, R in and Y, U, V out.
 * Two arithmetics, as OpenCV has them:
 * - 8-bit: 14-bit fixed point with round-half-up descaling and saturation to 0..255.
 * - 32-bit float: float32 arithmetic with OpenCV's float coefficients, and a chroma offset of 0.5 (OpenCV
 *   assumes float images lie in 0..1). SDXL passed 0..255 floats, so its U plane sits around 0.5 rather
 *   than 128 and is negative wherever blue is below luma (yellows, reds, greens): one of the quirks its
 *   watermark depends on.
 */

const SHIFT = 14;
const HALF = 1 << (SHIFT - 1);

// BT.601 weights scaled by 2^14 and the float ones, as OpenCV rounds them.
const B2Y = 1868,
  G2Y = 9617,
  R2Y = 4899;
const B2U = 8061,
  R2V = 14369;
const U2B = 33292,
  U2G = -6472,
  V2G = -9519,
  V2R = 18678;

const f = Math.fround;
const B2YF = f(0.114),
  G2YF = f(0.587),
  R2YF = f(0.299);
const B2UF = f(0.492),
  R2VF = f(0.877);
const U2BF = f(2.032),
  U2GF = f(-0.395),
  V2GF = f(-0.581),
  V2RF = f(1.14);
/** OpenCV's "half" of the float range, the chroma offset. */
const FLOAT_DELTA = 0.5;
/** float32 lanes of the AVX2 code OpenCV dispatches to. */
const LANES = 8;

function saturate8(v: number): number {
  return v < 0 ? 0 : Math.min(v, 255);
}

/** cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV) for uint8 images. */
export function bgrToYuv8(bgr: Uint8Array): Uint8Array {
  const out = new Uint8Array(bgr.length);
  const delta = 128 << SHIFT;
  for (let i = 0; i < bgr.length; i += 3) {
    const b = bgr[i]!,
      g = bgr[i + 1]!,
      r = bgr[i + 2]!;
    const y = (b * B2Y + g * G2Y + r * R2Y + HALF) >> SHIFT;
    out[i] = saturate8(y);
    out[i + 1] = saturate8(((b - y) * B2U + delta + HALF) >> SHIFT);
    out[i + 2] = saturate8(((r - y) * R2V + delta + HALF) >> SHIFT);
  }
  return out;
}

/** cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR) for uint8 images. */
export function yuvToBgr8(yuv: Uint8Array): Uint8Array {
  const out = new Uint8Array(yuv.length);
  for (let i = 0; i < yuv.length; i += 3) {
    const y = yuv[i]!,
      u = yuv[i + 1]! - 128,
      v = yuv[i + 2]! - 128;
    // `>>` floors, as OpenCV's CV_DESCALE does on negative sums.
    out[i] = saturate8(y + ((u * U2B + HALF) >> SHIFT));
    out[i + 1] = saturate8(y + ((u * U2G + v * V2G + HALF) >> SHIFT));
    out[i + 2] = saturate8(y + ((v * V2R + HALF) >> SHIFT));
  }
  return out;
}

/**
 * Single-rounding float32 a*b + c, as the fused multiply-add of OpenCV's vectorised float path. The product
 * of two float32 values is exact in a double, so one rounding of the double sum to float32 matches FMA
 * except in rare double-rounding ties, far below the 1e-3 tolerance of the SDXL comparison.
 */
function fma32(a: number, b: number, c: number): number {
  return f(a * b + c);
}

/**
 * cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV) for float32 images `width` pixels wide (no clamping: floats are not
 * saturated). OpenCV converts row by row, AVX2 vectors of 8 pixels first, then the last width % 8 pixels of
 * the row in scalar code, which the compiler contracted into multiply-adds associated differently; both are
 * reproduced so rows whose width is not a multiple of 8 match too.
 */
export function bgrToYuvFloat(bgr: Float32Array, width: number): Float32Array {
  const out = new Float32Array(bgr.length);
  const vectorised = width - (width % LANES);
  for (let i = 0, x = 0; i < bgr.length; i += 3, x = x + 1 === width ? 0 : x + 1) {
    const b = bgr[i]!,
      g = bgr[i + 1]!,
      r = bgr[i + 2]!;
    const y =
      x < vectorised ? fma32(b, B2YF, fma32(g, G2YF, f(r * R2YF))) : fma32(r, R2YF, fma32(b, B2YF, f(g * G2YF)));
    out[i] = y;
    out[i + 1] = fma32(f(b - y), B2UF, FLOAT_DELTA);
    out[i + 2] = fma32(f(r - y), R2VF, FLOAT_DELTA);
  }
  return out;
}

/** cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR) for float32 images (vector and scalar code associate alike here). */
export function yuvToBgrFloat(yuv: Float32Array): Float32Array {
  const out = new Float32Array(yuv.length);
  for (let i = 0; i < yuv.length; i += 3) {
    const y = yuv[i]!,
      u = f(yuv[i + 1]! - FLOAT_DELTA),
      v = f(yuv[i + 2]! - FLOAT_DELTA);
    out[i] = fma32(u, U2BF, y);
    out[i + 1] = fma32(v, V2GF, fma32(u, U2GF, y));
    out[i + 2] = fma32(v, V2RF, y);
  }
  return out;
}
