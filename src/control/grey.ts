import type { RgbImage } from "../image/codec.js";

/** Each pixel's luminance in [0, 255] with ITU-R BT.601 weights, as OpenCV's RGB-to-grey conversion computes it. */
export function luminance(image: RgbImage): Float32Array {
  const n = image.width * image.height;
  const out = new Float32Array(n);
  const d = image.data;
  for (let i = 0; i < n; i++) out[i] = 0.299 * d[i * 3]! + 0.587 * d[i * 3 + 1]! + 0.114 * d[i * 3 + 2]!;
  return out;
}

/** A 0/1 mask as a control map: white (255) where set, black elsewhere, in all three channels. */
export function maskImage(mask: Uint8Array, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < mask.length; i++) if (mask[i]) data.fill(255, i * 3, i * 3 + 3);
  return { width, height, data };
}
