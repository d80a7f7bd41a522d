/**
 * The detector's view of an image: its luminance with the slow variations taken out and each neighbourhood
 * scaled to unit contrast. A natural image is mostly low-frequency energy and busy regions dwarf smooth ones;
 * the watermark is a faint, evenly spread texture. Subtracting a local mean and dividing by the local
 * contrast makes the host look like noise of even strength, against which correlation with the keyed patterns
 * is the optimal detector.
 */
import type { Plane } from "./resample.js";

/** Gaussian blur, separable, edges clamped. */
export function blurPlane(plane: Plane, sigma: number): Plane {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const kernel = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) sum += kernel[i + radius] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < kernel.length; i++) kernel[i]! /= sum;
  const { width, height, data } = plane;
  const tmp = new Float64Array(data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let k = -radius; k <= radius; k++)
        acc += kernel[k + radius]! * data[y * width + Math.min(width - 1, Math.max(0, x + k))]!;
      tmp[y * width + x] = acc;
    }
  }
  const out = new Float64Array(data.length);
  for (let y = 0; y < height; y++) {
    for (let k = -radius; k <= radius; k++) {
      const w = kernel[k + radius]!,
        src = Math.min(height - 1, Math.max(0, y + k)) * width,
        dst = y * width;
      for (let x = 0; x < width; x++) out[dst + x] += w * tmp[src + x]!;
    }
  }
  return { width, height, data: out };
}

export interface WhitenOptions {
  /** Scale (pixels) of the local mean removed. */
  readonly meanSigma: number;
  /** Scale (pixels) over which contrast is measured. */
  readonly contrastSigma: number;
  /** Contrast floor (luminance levels): flat areas are not amplified beyond this. */
  readonly floor: number;
}

export function whiten(plane: Plane, options: WhitenOptions): Plane {
  const mean = blurPlane(plane, options.meanSigma);
  const residual = new Float64Array(plane.data.length);
  for (let i = 0; i < residual.length; i++) residual[i] = plane.data[i]! - mean.data[i]!;
  const energy = new Float64Array(residual.length);
  for (let i = 0; i < energy.length; i++) energy[i] = residual[i]! * residual[i]!;
  const local = blurPlane({ width: plane.width, height: plane.height, data: energy }, options.contrastSigma);
  const floor2 = options.floor * options.floor;
  for (let i = 0; i < residual.length; i++) residual[i]! /= Math.sqrt(local.data[i]! + floor2);
  return { width: plane.width, height: plane.height, data: residual };
}
