/**
 * One level of the 2-D Haar wavelet transform with PyWavelets' arithmetic (`pywt.dwt2` / `pywt.idwt2` with
 * 'haar' on an even-sized plane), operation for operation: the dwtDct watermark truncates the inverse to
 * bytes and picks the largest coefficient of each block, so a last-bit difference can change a pixel or the
 * block's chosen coefficient. PyWavelets filters along rows (axis 0) first, then columns; it inverts in the
 * reverse order; each output sample is a two-term sum of filter tap times sample.
 *
 * `float32` reproduces PyWavelets on float32 input (it keeps the dtype): every product and sum rounded to
 * single precision, with the taps themselves rounded to float32.
 */

export type Precision = "float64" | "float32";

/** The four sub-bands, each `width` x `height` (half the plane's size), row-major. */
export interface HaarBands {
  readonly width: number;
  readonly height: number;
  /** cA: low-pass both ways. */
  readonly approx: Float64Array;
  /** cH: high-pass along rows (vertical change), low-pass along columns. */
  readonly horizontal: Float64Array;
  /** cV: low-pass along rows, high-pass along columns (horizontal change). */
  readonly vertical: Float64Array;
  /** cD: high-pass both ways. */
  readonly diagonal: Float64Array;
}

interface Arithmetic {
  /** The tap 1/sqrt(2) in this precision. */
  readonly tap: number;
  readonly round: (x: number) => number;
}

function arithmetic(precision: Precision): Arithmetic {
  return precision === "float32"
    ? { tap: Math.fround(Math.SQRT1_2), round: Math.fround }
    : { tap: Math.SQRT1_2, round: (x) => x };
}

/**
 * Forward transform of a `width` x `height` plane (both even) read through `at(x, y)`, so callers can pass a
 * channel of an interleaved image or a region of a larger plane without copying.
 */
export function haarForward(
  at: (x: number, y: number) => number,
  width: number,
  height: number,
  precision: Precision = "float64",
): HaarBands {
  const { tap: s, round: r } = arithmetic(precision);
  const w2 = width / 2,
    h2 = height / 2;
  // Pass 1, along rows: pairs of lines (2i, 2i+1) into a low and a high half-height plane.
  const low = new Float64Array(h2 * width);
  const high = new Float64Array(h2 * width);
  for (let i = 0; i < h2; i++) {
    for (let x = 0; x < width; x++) {
      const a = at(x, 2 * i),
        b = at(x, 2 * i + 1);
      // PyWavelets' convolution sums the tap on the second sample first: the decomposition high-pass is [-s, s].
      low[i * width + x] = r(r(s * b) + r(s * a));
      high[i * width + x] = r(r(-s * b) + r(s * a));
    }
  }
  const bands = {
    width: w2,
    height: h2,
    approx: new Float64Array(w2 * h2),
    horizontal: new Float64Array(w2 * h2),
    vertical: new Float64Array(w2 * h2),
    diagonal: new Float64Array(w2 * h2),
  };
  // Pass 2, along columns of each half.
  for (let i = 0; i < h2; i++) {
    for (let j = 0; j < w2; j++) {
      const k = i * width + 2 * j,
        o = i * w2 + j;
      const la = low[k]!,
        lb = low[k + 1]!,
        ha = high[k]!,
        hb = high[k + 1]!;
      bands.approx[o] = r(r(s * lb) + r(s * la));
      bands.vertical[o] = r(r(-s * lb) + r(s * la));
      bands.horizontal[o] = r(r(s * hb) + r(s * ha));
      bands.diagonal[o] = r(r(-s * hb) + r(s * ha));
    }
  }
  return bands;
}

/** Inverse transform: a plane of 2*width x 2*height, row-major. */
export function haarInverse(bands: HaarBands, precision: Precision = "float64"): Float64Array {
  const { tap: s, round: r } = arithmetic(precision);
  const { width: w2, height: h2 } = bands;
  const width = 2 * w2,
    height = 2 * h2;
  // Pass 1, along columns (the last axis is undone first): approx+vertical -> low, horizontal+diagonal -> high.
  const low = new Float64Array(h2 * width);
  const high = new Float64Array(h2 * width);
  for (let i = 0; i < h2; i++) {
    for (let j = 0; j < w2; j++) {
      const o = i * w2 + j,
        k = i * width + 2 * j;
      const sa = r(s * bands.approx[o]!),
        sv = r(s * bands.vertical[o]!);
      const sh = r(s * bands.horizontal[o]!),
        sd = r(s * bands.diagonal[o]!);
      // Reconstruction taps: low-pass [s, s], high-pass [s, -s]; approximation first, detail added to it.
      low[k] = r(sa + sv);
      low[k + 1] = r(sa - sv);
      high[k] = r(sh + sd);
      high[k + 1] = r(sh - sd);
    }
  }
  // Pass 2, along rows.
  const out = new Float64Array(width * height);
  for (let i = 0; i < h2; i++) {
    for (let x = 0; x < width; x++) {
      const sl = r(s * low[i * width + x]!),
        sh = r(s * high[i * width + x]!);
      out[2 * i * width + x] = r(sl + sh);
      out[(2 * i + 1) * width + x] = r(sl - sh);
    }
  }
  return out;
}
