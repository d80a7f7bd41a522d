import type { Nchw } from "../image/tensor.js";
import { TorchGenerator } from "../random/torch-generator.js";
import type { BatchNoise } from "./batch-noise.js";

/**
 * AUTOMATIC1111's variation seeds and seed resizing, applied to a batch's initial noise (its ImageRNG.first()):
 * - each image's noise is spherically interpolated (slerp) towards the noise of its variation seed (subseed) by
 *   `strength` (0: the seed's noise, 1: the subseed's);
 * - with `resizeFrom`, the noise is drawn at that size (in latent cells) and pasted, centred, into the noise of
 *   the actual size, so a seed keeps most of its composition at another size.
 * Only the first draw is affected: each image's generator advances by its share as without variation, so the
 * noise of later steps (ancestral samplers) still comes from the image's seed.
 */
export interface Variation {
  /** Image j's variation seed (A1111: subseed + j; 0 for an image without one). */
  subseeds: readonly bigint[];
  /** 0 to 1; 0 leaves the noise as it is. */
  strength: number;
  /** The latent size the seed's noise is drawn at (A1111's seed_resize_from_w/h divided by 8). */
  resizeFrom?: { width: number; height: number };
}

/** The batch's initial noise [B, C, H, W] from its generators, with the variation applied. */
export function initialNoise(noise: BatchNoise, shape: Nchw, variation: Variation | undefined): Float32Array {
  const drawn = noise.randn(shape);
  if (!variation || (variation.strength === 0 && !variation.resizeFrom)) return drawn;
  const [batch, c, h, w] = shape;
  const per = c * h * w;
  const from = variation.resizeFrom ?? { width: w, height: h };
  const small: Nchw = [1, c, from.height, from.width];
  for (let j = 0; j < batch; j++) {
    // A1111 draws the seed's noise afresh at the other size; at the same size it is the generator's draw itself.
    let base = variation.resizeFrom
      ? new TorchGenerator(noise.seeds[j]!).randn(small)
      : drawn.subarray(j * per, (j + 1) * per);
    if (variation.strength !== 0) {
      const sub = new TorchGenerator(variation.subseeds[j] ?? 0n).randn(small);
      base = slerp(variation.strength, base, sub, [c, from.height, from.width]);
    }
    if (variation.resizeFrom)
      pasteCentred(base, [c, from.height, from.width], drawn.subarray(j * per, (j + 1) * per), h, w);
    else drawn.set(base, j * per);
  }
  return drawn;
}

/**
 * A1111's slerp (modules/rng.py) on one image's noise [C, H, W]: it normalises along dimension 1 (the rows), so
 * each (channel, column) is its own vector of H values with its own angle. When the mean cosine exceeds 0.9995
 * it falls back to a straight mix, in A1111's order (`low * val + high * (1 - val)`). float32 as in PyTorch.
 */
export function slerp(
  val: number,
  low: Float32Array,
  high: Float32Array,
  shape: readonly [number, number, number],
): Float32Array {
  const [c, h, w] = shape;
  const f = Math.fround;
  const dots = new Float32Array(c * w);
  let dotSum = 0;
  for (let ch = 0; ch < c; ch++) {
    for (let x = 0; x < w; x++) {
      let nl = 0;
      let nh = 0;
      for (let y = 0; y < h; y++) {
        const i = (ch * h + y) * w + x;
        nl += low[i]! * low[i]!;
        nh += high[i]! * high[i]!;
      }
      const ln = f(Math.sqrt(nl));
      const hn = f(Math.sqrt(nh));
      let dot = 0;
      for (let y = 0; y < h; y++) {
        const i = (ch * h + y) * w + x;
        dot += f(low[i]! / ln) * f(high[i]! / hn);
      }
      dots[ch * w + x] = dot;
      dotSum += dots[ch * w + x]!;
    }
  }
  const out = new Float32Array(c * h * w);
  if (dotSum / (c * w) > 0.9995) {
    for (let i = 0; i < out.length; i++) out[i] = low[i]! * val + high[i]! * (1 - val);
    return out;
  }
  for (let ch = 0; ch < c; ch++) {
    for (let x = 0; x < w; x++) {
      const omega = f(Math.acos(dots[ch * w + x]!));
      const so = f(Math.sin(omega));
      const a = f(f(Math.sin(f((1 - val) * omega))) / so);
      const b = f(f(Math.sin(f(val * omega))) / so);
      for (let y = 0; y < h; y++) {
        const i = (ch * h + y) * w + x;
        out[i] = f(a * low[i]!) + f(b * high[i]!);
      }
    }
  }
  return out;
}

/**
 * A1111's paste of noise drawn at another size into the image's own noise: centred, cut where it is larger
 * (Python's floor division decides the odd pixel).
 */
function pasteCentred(
  noise: Float32Array,
  [c, nh, nw]: readonly [number, number, number],
  into: Float32Array,
  h: number,
  w: number,
): void {
  let dx = Math.floor((w - nw) / 2);
  let dy = Math.floor((h - nh) / 2);
  const cw = dx >= 0 ? nw : nw + 2 * dx;
  const ch = dy >= 0 ? nh : nh + 2 * dy;
  const tx = Math.max(dx, 0);
  const ty = Math.max(dy, 0);
  dx = Math.max(-dx, 0);
  dy = Math.max(-dy, 0);
  for (let k = 0; k < c; k++) {
    for (let y = 0; y < ch; y++) {
      for (let x = 0; x < cw; x++) into[(k * h + ty + y) * w + tx + x] = noise[(k * nh + dy + y) * nw + dx + x]!;
    }
  }
}
