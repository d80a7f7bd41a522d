import type { Mask, RgbImage } from "./codec.js";

/** A rectangle of pixels: x1, y1 inclusive, x2, y2 exclusive (PIL's box). */
export interface CropRegion {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/**
 * A1111's "only masked" region: the bounding box of every pixel of the mask that is not 0 (after its blur, so the
 * blur's reach counts), grown by `padding` on each side within the image; undefined for a mask with nothing to
 * repaint.
 */
export function maskCropRegion(mask: Mask, padding: number): CropRegion | undefined {
  let x1 = mask.width,
    y1 = mask.height,
    x2 = 0,
    y2 = 0;
  for (let y = 0; y < mask.height; y++) {
    for (let x = 0; x < mask.width; x++) {
      if (mask.data[y * mask.width + x]! <= 0) continue;
      if (x < x1) x1 = x;
      if (x >= x2) x2 = x + 1;
      if (y < y1) y1 = y;
      if (y >= y2) y2 = y + 1;
    }
  }
  if (x2 === 0) return undefined;
  return {
    x1: Math.max(x1 - padding, 0),
    y1: Math.max(y1 - padding, 0),
    x2: Math.min(x2 + padding, mask.width),
    y2: Math.min(y2 + padding, mask.height),
  };
}

/**
 * Grows a region to the aspect ratio of the size it is inpainted at (a 128x32 stroke inpainted at 512x512 becomes
 * 128x128), centred on it and shifted back inside the image where it would cross an edge; clipped to the image
 * when the image is too small for the ratio. A1111's expand_crop_region, with its integer arithmetic.
 */
export function expandCropRegion(
  region: CropRegion,
  workWidth: number,
  workHeight: number,
  imageWidth: number,
  imageHeight: number,
): CropRegion {
  let { x1, y1, x2, y2 } = region;
  const ratioRegion = (x2 - x1) / (y2 - y1);
  const ratioWork = workWidth / workHeight;
  // Python's int() truncates toward zero and // floors: the growth is never negative here, so both floor.
  if (ratioRegion > ratioWork) {
    const grow = Math.trunc((x2 - x1) / ratioWork - (y2 - y1));
    [y1, y2] = shiftInside(y1 - Math.floor(grow / 2), y2 + grow - Math.floor(grow / 2), imageHeight);
  } else {
    const grow = Math.trunc((y2 - y1) * ratioWork - (x2 - x1));
    [x1, x2] = shiftInside(x1 - Math.floor(grow / 2), x2 + grow - Math.floor(grow / 2), imageWidth);
  }
  return { x1, y1, x2, y2 };
}

/** Past the far edge: shift back; past the near edge: shift forward; still past the far edge: clip. */
function shiftInside(a: number, b: number, n: number): [number, number] {
  if (b >= n) {
    a -= b - n;
    b = n;
  }
  if (a < 0) {
    b -= a;
    a = 0;
  }
  if (b >= n) b = n;
  return [a, b];
}

/** The pixels of an image inside a region. */
export function cropImage(image: RgbImage, r: CropRegion): RgbImage {
  const w = r.x2 - r.x1;
  const h = r.y2 - r.y1;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    data.set(
      image.data.subarray(((r.y1 + y) * image.width + r.x1) * 3, ((r.y1 + y) * image.width + r.x2) * 3),
      y * w * 3,
    );
  return { width: w, height: h, data };
}

/** The values of a mask inside a region. */
export function cropMask(mask: Mask, r: CropRegion): Mask {
  const w = r.x2 - r.x1;
  const h = r.y2 - r.y1;
  const data = new Float32Array(w * h);
  for (let y = 0; y < h; y++)
    data.set(mask.data.subarray((r.y1 + y) * mask.width + r.x1, (r.y1 + y) * mask.width + r.x2), y * w);
  return { width: w, height: h, data };
}
