import { InternalError } from "../errors.js";
import type { Nchw } from "./tensor.js";

/**
 * Resampling of NCHW float tensors with the semantics of PyTorch's `torch.nn.functional.interpolate(x, size=...)`
 * (align_corners=False), which is what AUTOMATIC1111's latent upscalers call on the latents. Each output pixel
 * reads the same input pixels with the same weights as PyTorch's CPU kernels, so results agree to float rounding.
 */
export type InterpolationMode = "nearest" | "nearest-exact" | "bilinear" | "bicubic";

/** PyTorch's bicubic (not antialiased) uses Keys' cubic with a = -0.75; its antialiased one a = -0.5 (PIL's). */
const CUBIC_A = -0.75;
const CUBIC_AA_A = -0.5;

/** `x` [N, C, H, W] resampled to [N, C, outH, outW]. */
export function interpolate(
  x: Float32Array,
  shape: Nchw,
  outH: number,
  outW: number,
  mode: InterpolationMode,
  antialias = false,
): Float32Array {
  const [n, c, h, w] = shape;
  if (x.length !== n * c * h * w)
    throw new InternalError(`interpolate: ${x.length} values do not fill the shape [${shape.join(", ")}]`);
  if (!(Number.isInteger(outH) && Number.isInteger(outW) && outH > 0 && outW > 0))
    throw new InternalError(`interpolate: output size ${outW}x${outH} must be positive integers`);
  if (antialias && (mode === "bilinear" || mode === "bicubic")) {
    // Separable, width first then height, as PyTorch's antialiased kernel (and PIL) run it.
    const rows = resample1d(x, n * c * h, w, outW, 1, aaTaps(w, outW, mode));
    return resample1d(rows, n * c, h, outH, outW, aaTaps(h, outH, mode));
  }
  const ys = taps(h, outH, mode);
  const xs = taps(w, outW, mode);
  const out = new Float32Array(n * c * outH * outW);
  for (let p = 0; p < n * c; p++) {
    const src = p * h * w;
    const dst = p * outH * outW;
    for (let oy = 0; oy < outH; oy++) {
      const ty = ys[oy]!;
      for (let ox = 0; ox < outW; ox++) {
        const tx = xs[ox]!;
        let acc = 0;
        for (let i = 0; i < ty.index.length; i++) {
          let row = 0;
          const base = src + ty.index[i]! * w;
          for (let j = 0; j < tx.index.length; j++) row += tx.weight[j]! * x[base + tx.index[j]!]!;
          acc += ty.weight[i]! * row;
        }
        out[dst + oy * outW + ox] = acc;
      }
    }
  }
  return out;
}

/** The input positions one output position reads along an axis, and their weights. */
interface Taps {
  index: number[];
  weight: number[];
}

/** PyTorch's ratio for a size-given resize: input / output, as a float. */
function scaleOf(inSize: number, outSize: number): number {
  return Math.fround(inSize / outSize);
}

function taps(inSize: number, outSize: number, mode: InterpolationMode): Taps[] {
  const scale = scaleOf(inSize, outSize);
  const last = inSize - 1;
  return Array.from({ length: outSize }, (_, o) => {
    switch (mode) {
      case "nearest": {
        // PyTorch's nearest_idx: exact shortcuts for equal and doubled sizes, else floor(o * scale).
        const i =
          outSize === inSize ? o : outSize === 2 * inSize ? o >> 1 : Math.min(Math.floor(Math.fround(o * scale)), last);
        return { index: [i], weight: [1] };
      }
      case "nearest-exact":
        return { index: [Math.min(Math.floor(Math.fround((o + 0.5) * scale)), last)], weight: [1] };
      case "bilinear": {
        // area_pixel_compute_source_index, clamped at 0 for linear modes.
        const real = Math.max(Math.fround(Math.fround(scale * (o + 0.5)) - 0.5), 0);
        const i0 = Math.floor(real);
        const i1 = i0 < last ? i0 + 1 : i0;
        const l1 = Math.fround(real - i0);
        return { index: [i0, i1], weight: [1 - l1, l1] };
      }
      case "bicubic": {
        // Not clamped; the four taps are clamped to the edge instead (upsample_get_value_bounded).
        const real = Math.fround(Math.fround(scale * (o + 0.5)) - 0.5);
        const i0 = Math.floor(real);
        const t = Math.fround(real - i0);
        const clamp = (i: number) => Math.min(Math.max(i, 0), last);
        return {
          index: [clamp(i0 - 1), clamp(i0), clamp(i0 + 1), clamp(i0 + 2)],
          weight: [
            cubicOuter(t + 1, CUBIC_A),
            cubicInner(t, CUBIC_A),
            cubicInner(1 - t, CUBIC_A),
            cubicOuter(2 - t, CUBIC_A),
          ],
        };
      }
    }
  });
}

/** Keys' cubic on |x| <= 1. */
function cubicInner(x: number, a: number): number {
  return ((a + 2) * x - (a + 3)) * x * x + 1;
}

/** Keys' cubic on 1 < |x| < 2. */
function cubicOuter(x: number, a: number): number {
  return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
}

function triangle(x: number): number {
  const ax = Math.abs(x);
  return ax < 1 ? 1 - ax : 0;
}

function cubicAa(x: number): number {
  const ax = Math.abs(x);
  if (ax < 1) return cubicInner(ax, CUBIC_AA_A);
  if (ax < 2) return cubicOuter(ax, CUBIC_AA_A);
  return 0;
}

/**
 * PyTorch's antialiased taps (its `_compute_indices_min_size_weights_aa`, which follows PIL): the filter is
 * stretched by the scale when shrinking, the window is clipped at the edges and the weights renormalised.
 */
function aaTaps(inSize: number, outSize: number, mode: InterpolationMode): Taps[] {
  const scale = inSize / outSize;
  const [size, filter] = mode === "bicubic" ? [4, cubicAa] : [2, triangle];
  const support = scale >= 1 ? (size / 2) * scale : size / 2;
  const invScale = scale >= 1 ? 1 / scale : 1;
  return Array.from({ length: outSize }, (_, o) => {
    const center = scale * (o + 0.5);
    const min = Math.max(Math.trunc(center - support + 0.5), 0);
    const max = Math.min(Math.trunc(center + support + 0.5), inSize);
    const index: number[] = [];
    const weight: number[] = [];
    for (let i = min; i < max; i++) {
      index.push(i);
      weight.push(filter((i - center + 0.5) * invScale));
    }
    const total = weight.reduce((a, b) => a + b, 0);
    return { index, weight: total === 0 ? weight : weight.map((v) => v / total) };
  });
}

/**
 * One separable pass over `planes` blocks of `inSize` x `inner` values (position i, column k at i * inner + k),
 * resampled along i to `outSize`. Width pass: one plane per image row, inner 1; height pass: inner = the width.
 */
function resample1d(
  x: Float32Array,
  planes: number,
  inSize: number,
  outSize: number,
  inner: number,
  t: Taps[],
): Float32Array {
  const out = new Float32Array(planes * outSize * inner);
  for (let p = 0; p < planes; p++) {
    for (let k = 0; k < inner; k++) {
      const src = p * inSize * inner + k;
      const dst = p * outSize * inner + k;
      for (let o = 0; o < outSize; o++) {
        const tap = t[o]!;
        let acc = 0;
        for (let i = 0; i < tap.index.length; i++) acc += tap.weight[i]! * x[src + tap.index[i]! * inner]!;
        out[dst + o * inner] = acc;
      }
    }
  }
  return out;
}
