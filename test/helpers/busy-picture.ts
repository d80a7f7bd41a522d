import type { RgbImage } from "../../src/image/codec.js";
import { mulberry32 } from "./seeded-random.js";

/**
 * A picture busy at the robust watermark's scale, like the tiny test model's outputs: independent value noise in each
 * channel with a grain of `grain` pixels and a luminance standard deviation of about 27 levels (amplitude 200).
 */
export function busyPicture(width: number, height: number, seed: number, grain = 3, amplitude = 200): RgbImage {
  const rnd = mulberry32(seed);
  const gw = Math.ceil(width / grain) + 2;
  const gh = Math.ceil(height / grain) + 2;
  const knots = [0, 1, 2].map(() => Float64Array.from({ length: gw * gh }, () => rnd() - 0.5));
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const fx = x / grain,
        fy = y / grain,
        ix = Math.floor(fx),
        iy = Math.floor(fy),
        tx = fx - ix,
        ty = fy - iy;
      for (let c = 0; c < 3; c++) {
        const k = knots[c]!;
        const v =
          k[iy * gw + ix]! * (1 - tx) * (1 - ty) +
          k[iy * gw + ix + 1]! * tx * (1 - ty) +
          k[(iy + 1) * gw + ix]! * (1 - tx) * ty +
          k[(iy + 1) * gw + ix + 1]! * tx * ty;
        data[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(128 + amplitude * v)));
      }
    }
  return { width, height, data };
}
