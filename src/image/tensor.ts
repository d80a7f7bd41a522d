import { InternalError } from "../errors.js";
import type { RgbImage } from "./codec.js";

/** [batch, channels, height, width], PyTorch's layout for images and latents. */
export type Nchw = readonly [number, number, number, number];

export interface ImageTensor {
  readonly data: Float32Array;
  readonly shape: Nchw;
}

/**
 * byte -> [-1, 1] as diffusers' VaeImageProcessor computes it in float32: x / 255, then 2x - 1. A table of
 * the 256 results keeps the per-pixel work to a lookup and makes both ends exact (0 -> -1, 255 -> 1).
 */
const BYTE_TO_SIGNED: Float32Array = (() => {
  const t = new Float32Array(256);
  for (let v = 0; v < 256; v++) t[v] = Math.fround(Math.fround(v / 255) * 2 - 1);
  return t;
})();

/**
 * [-1, 1] -> byte as diffusers postprocesses VAE output, step by step in float32:
 * (x / 2 + 0.5).clamp(0, 1), * 255, then numpy's round (half to even). NaN (a diverged run) becomes 0,
 * where numpy's cast would give an unspecified byte.
 */
export function signedToByte(x: number): number {
  let u = Math.fround(Math.fround(x / 2) + 0.5);
  if (!(u > 0)) return 0; // also catches NaN
  if (u > 1) u = 1;
  return roundHalfEven(Math.fround(u * 255));
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  // Math.round takes .5 up; numpy takes it to the even neighbour.
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * One RGB image as a [1, 3, H, W] tensor in [0, 1] (byte / 255 in float32): how diffusers hands a ControlNet its
 * control image (VaeImageProcessor with do_normalize off).
 */
export function imageToUnitTensor(image: RgbImage): ImageTensor {
  const plane = image.width * image.height;
  if (image.data.length !== plane * 3)
    throw new InternalError(
      `image has ${image.data.length} bytes, expected ${plane * 3} for ${image.width}x${image.height} RGB`,
    );
  const data = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) data[c * plane + i] = Math.fround(image.data[i * 3 + c]! / 255);
  }
  return { data, shape: [1, 3, image.height, image.width] };
}

/** One RGB image as a [1, 3, H, W] tensor in [-1, 1], the VAE encoder's input. */
export function imageToTensor(image: RgbImage): ImageTensor {
  return imagesToTensor([image]);
}

/** Several same-sized RGB images as one [N, 3, H, W] batch in [-1, 1]. */
export function imagesToTensor(images: readonly RgbImage[]): ImageTensor {
  if (images.length === 0) throw new InternalError("imagesToTensor needs at least one image");
  const { width, height } = images[0]!;
  const plane = width * height;
  const data = new Float32Array(images.length * 3 * plane);
  images.forEach((image, n) => {
    if (image.width !== width || image.height !== height) {
      throw new InternalError(
        `image ${n} is ${image.width}x${image.height} but image 0 is ${width}x${height}: resize them to one size before batching`,
      );
    }
    if (image.data.length !== plane * 3) {
      throw new InternalError(
        `image ${n} has ${image.data.length} bytes, expected ${plane * 3} for ${width}x${height} RGB`,
      );
    }
    const base = n * 3 * plane;
    const px = image.data;
    for (let i = 0; i < plane; i++) {
      data[base + i] = BYTE_TO_SIGNED[px[3 * i]!]!;
      data[base + plane + i] = BYTE_TO_SIGNED[px[3 * i + 1]!]!;
      data[base + 2 * plane + i] = BYTE_TO_SIGNED[px[3 * i + 2]!]!;
    }
  });
  return { data, shape: [images.length, 3, height, width] };
}

/** A [N, 3, H, W] tensor in [-1, 1] (the VAE decoder's output) back to N RGB images. */
export function tensorToImages(data: Float32Array, shape: Nchw): RgbImage[] {
  const [n, c, height, width] = shape;
  if (c !== 3) throw new InternalError(`expected an RGB tensor [N, 3, H, W], got shape [${shape.join(", ")}]`);
  const plane = width * height;
  if (data.length !== n * 3 * plane) {
    throw new InternalError(`tensor of shape [${shape.join(", ")}] needs ${n * 3 * plane} values, got ${data.length}`);
  }
  const images: RgbImage[] = [];
  for (let b = 0; b < n; b++) {
    const base = b * 3 * plane;
    const px = new Uint8Array(plane * 3);
    for (let i = 0; i < plane; i++) {
      px[3 * i] = signedToByte(data[base + i]!);
      px[3 * i + 1] = signedToByte(data[base + plane + i]!);
      px[3 * i + 2] = signedToByte(data[base + 2 * plane + i]!);
    }
    images.push({ width, height, data: px });
  }
  return images;
}
