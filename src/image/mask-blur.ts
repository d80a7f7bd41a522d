import type { Mask } from "./codec.js";

/**
 * A1111's mask blur: a Gaussian of standard deviation `sigmaX` along rows, then one of `sigmaY` along columns, each
 * over 2 * int(2.5 * sigma + 0.5) + 1 taps (the kernel size A1111 hands OpenCV's GaussianBlur), with OpenCV's
 * default border (reflect without repeating the edge pixel) and the result rounded to 8 bits, as A1111 blurs an
 * 8-bit mask. A sigma of 0 leaves that axis alone.
 */
export function blurMask(mask: Mask, sigmaX: number, sigmaY: number): Mask {
  let data = mask.data;
  if (sigmaX > 0) data = blurAxis(data, mask.width, mask.height, sigmaX, true);
  if (sigmaY > 0) data = blurAxis(data, mask.width, mask.height, sigmaY, false);
  return data === mask.data ? mask : { width: mask.width, height: mask.height, data };
}

/** OpenCV's Gaussian kernel for a size and sigma: exp(-x^2 / 2 sigma^2) over the taps, summing to 1. */
export function gaussianKernel(sigma: number): Float64Array {
  const size = 2 * Math.floor(2.5 * sigma + 0.5) + 1;
  const k = new Float64Array(size);
  const centre = (size - 1) / 2;
  let sum = 0;
  for (let i = 0; i < size; i++) {
    k[i] = Math.exp(-((i - centre) ** 2) / (2 * sigma * sigma));
    sum += k[i]!;
  }
  for (let i = 0; i < size; i++) k[i]! /= sum;
  return k;
}

/** OpenCV's BORDER_REFLECT_101: ... 2 1 | 0 1 2 ... n-1 | n-2 ..., folded until inside (kernels wider than the image). */
export function reflect101(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

function blurAxis(src: Float32Array, width: number, height: number, sigma: number, alongRows: boolean): Float32Array {
  const k = gaussianKernel(sigma);
  const r = (k.length - 1) / 2;
  const out = new Float32Array(src.length);
  const [lines, len] = alongRows ? [height, width] : [width, height];
  const step = alongRows ? 1 : width;
  // Each line is copied once with its reflected border, so the convolution itself reads a plain array.
  const padded = new Float64Array(len + 2 * r);
  for (let line = 0; line < lines; line++) {
    const base = alongRows ? line * width : line;
    for (let i = -r; i < len + r; i++) padded[i + r] = src[base + reflect101(i, len) * step]!;
    for (let i = 0; i < len; i++) {
      let acc = 0;
      for (let t = 0; t < k.length; t++) acc += k[t]! * padded[i + t]!;
      // An 8-bit mask in, an 8-bit mask out: each pass rounds to a byte as OpenCV's does.
      out[base + i * step] = Math.round(Math.min(1, Math.max(0, acc)) * 255) / 255;
    }
  }
  return out;
}
