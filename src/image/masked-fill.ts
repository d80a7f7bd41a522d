import type { Mask, RgbImage } from "./codec.js";

/**
 * A1111's "fill" for the masked content: the masked region is painted over with ever less blurred copies of
 * what surrounds it (Gaussian blurs of radius 256, 64, 16 (twice), 4 (four times), 2 (twice), then the image
 * itself), each laid over the last, so the model starts from the region's colours rather than from what was
 * there. The kept region (mask 0) comes out unchanged. Blurs weigh each pixel by how much it is kept (alpha 1 -
 * mask, premultiplied), so the masked pixels lend nothing; they are PIL's GaussianBlur (three extended box blurs
 * per axis, edges extended), computed in floating point.
 */
export function maskedFill(image: RgbImage, mask: Mask): RgbImage {
  const n = image.width * image.height;
  // Premultiplied R, G, B and alpha planes of the image with the masked region transparent.
  const planes = [0, 1, 2, 3].map(() => new Float32Array(n));
  for (let i = 0; i < n; i++) {
    const a = 1 - mask.data[i]!;
    for (let c = 0; c < 3; c++) planes[c]![i] = (image.data[i * 3 + c]! / 255) * a;
    planes[3]![i] = a;
  }
  const acc = [0, 1, 2, 3].map(() => new Float32Array(n));
  for (const [radius, repeats] of FILL_PASSES) {
    const blurred = planes.map((p) => gaussianBlurPil(p, image.width, image.height, radius));
    for (let r = 0; r < repeats; r++) {
      for (let i = 0; i < n; i++) {
        // Porter-Duff "over" on premultiplied values.
        const keep = 1 - blurred[3]![i]!;
        for (let c = 0; c < 4; c++) acc[c]![i] = blurred[c]![i]! + acc[c]![i]! * keep;
      }
    }
  }
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const a = acc[3]![i]!;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = a > 0 ? Math.round(Math.min(1, acc[c]![i]! / a) * 255) : 0;
  }
  return { width: image.width, height: image.height, data: out };
}

const FILL_PASSES: readonly (readonly [number, number])[] = [
  [256, 1],
  [64, 1],
  [16, 2],
  [4, 4],
  [2, 2],
  [0, 1],
];

/** PIL's GaussianBlur(radius): three box blurs per axis whose fractional width gives the Gaussian's variance. */
export function gaussianBlurPil(src: Float32Array, width: number, height: number, radius: number): Float32Array {
  const box = boxRadius(radius, 3);
  if (box === 0) return src.slice();
  let cur = src;
  for (let pass = 0; pass < 3; pass++) cur = boxBlur(cur, width, height, box, true);
  for (let pass = 0; pass < 3; pass++) cur = boxBlur(cur, width, height, box, false);
  return cur;
}

/** The fractional box radius of PIL's _gaussian_blur_radius: `passes` boxes of it have variance radius^2. */
export function boxRadius(radius: number, passes: number): number {
  const sigma2 = (radius * radius) / passes;
  const l = Math.floor((Math.sqrt(12 * sigma2 + 1) - 1) / 2);
  const a = ((2 * l + 1) * (l * (l + 1) - 3 * sigma2)) / (6 * (sigma2 - (l + 1) * (l + 1)));
  return l + a;
}

/** A box of 2r + 1 pixels whose two outermost ones weigh the fraction of r, edge pixels repeated beyond the image. */
function boxBlur(src: Float32Array, width: number, height: number, r: number, alongRows: boolean): Float32Array {
  const whole = Math.floor(r);
  const scale = 1 / (2 * r + 1);
  const edge = (r - whole) * scale;
  const out = new Float32Array(src.length);
  const [lines, len] = alongRows ? [height, width] : [width, height];
  const step = alongRows ? 1 : width;
  // Each line copied once with its edge pixels repeated whole + 1 times on each side, so the running sum reads a
  // plain array: padded[j] is the line's pixel j - pad.
  const pad = whole + 1;
  const padded = new Float64Array(len + 2 * pad);
  for (let line = 0; line < lines; line++) {
    const base = alongRows ? line * width : line;
    for (let j = 0; j < padded.length; j++) padded[j] = src[base + Math.min(len - 1, Math.max(0, j - pad)) * step]!;
    let sum = 0;
    for (let j = pad - whole; j <= pad + whole; j++) sum += padded[j]!;
    for (let i = 0; i < len; i++) {
      const c = i + pad;
      out[base + i * step] = sum * scale + (padded[c - whole - 1]! + padded[c + whole + 1]!) * edge;
      if (i + 1 < len) sum += padded[c + whole + 1]! - padded[c - whole]!;
    }
  }
  return out;
}
