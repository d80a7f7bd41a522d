/**
 * Resampling of single-channel float planes with a triangle (linear) kernel that widens when shrinking, so
 * downscaling averages every input pixel (no aliasing of the image into the watermark band) and upscaling is
 * bilinear. Pixel centres are aligned (the edges of input and output coincide), the convention that makes
 * "the same picture at another size" map position to position.
 */

/** Row-major `width` x `height` samples. */
export interface Plane {
  readonly width: number;
  readonly height: number;
  readonly data: Float64Array;
}

interface Taps {
  readonly start: Int32Array;
  readonly count: Int32Array;
  readonly weights: Float64Array;
  readonly stride: number;
}

/** Taps mapping `inSize` samples onto `outSize`; positions past the input's ends clamp to its edge samples. */
function taps(inSize: number, outSize: number): Taps {
  const scale = outSize / inSize;
  const support = Math.max(1, 1 / scale);
  const stride = Math.ceil(2 * support) + 2;
  const start = new Int32Array(outSize),
    count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * stride);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) / scale - 0.5;
    const lo = Math.ceil(centre - support),
      hi = Math.floor(centre + support);
    let total = 0,
      n = 0;
    const first = Math.max(0, Math.min(inSize - 1, lo));
    start[o] = first;
    // Gather weights per clamped input index; near the edges several taps fold onto the edge sample.
    for (let i = lo; i <= hi; i++) {
      const w = 1 - Math.abs(i - centre) / support;
      if (w <= 0) continue;
      const idx = Math.max(0, Math.min(inSize - 1, i)) - first;
      if (idx < 0 || idx >= stride) continue;
      weights[o * stride + idx] += w;
      n = Math.max(n, idx + 1);
      total += w;
    }
    count[o] = n;
    for (let k = 0; k < n; k++) weights[o * stride + k] /= total;
  }
  return { start, count, weights, stride };
}

/** Resizes the plane to `width` x `height`. */
export function resizePlane(plane: Plane, width: number, height: number): Plane {
  const tx = taps(plane.width, width);
  const ty = taps(plane.height, height);
  // Horizontal pass: every input row to `width` samples.
  const rows = new Float64Array(plane.height * width);
  for (let y = 0; y < plane.height; y++) {
    const inRow = y * plane.width,
      outRow = y * width;
    for (let o = 0; o < width; o++) {
      const s = inRow + tx.start[o]!,
        wo = o * tx.stride;
      let acc = 0;
      for (let k = 0; k < tx.count[o]!; k++) acc += plane.data[s + k]! * tx.weights[wo + k]!;
      rows[outRow + o] = acc;
    }
  }
  // Vertical pass.
  const out = new Float64Array(width * height);
  for (let o = 0; o < height; o++) {
    const wo = o * ty.stride,
      first = ty.start[o]!;
    for (let k = 0; k < ty.count[o]!; k++) {
      const w = ty.weights[wo + k]!,
        src = (first + k) * width,
        dst = o * width;
      for (let x = 0; x < width; x++) out[dst + x] += w * rows[src + x]!;
    }
  }
  return { width, height, data: out };
}
