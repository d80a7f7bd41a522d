import { InputError } from "../errors.js";
import { resizeImage } from "../image/codec.js";

/**
 * An upscaler by name, as A1111 lists them (`None`, `Lanczos`, `Nearest`, and each ESRGAN / Real-ESRGAN model file),
 * for the extras routes, `diffuse upscale` and hires fix alike: RGB bytes (3 per pixel) in, RGB bytes of exactly
 * the size asked for out.
 */
export interface Upscaler {
  readonly name: string;
  /** The model's native scale (4 for RealESRGAN_x4plus); undefined for the resize-only upscalers. */
  readonly scale?: number;
  /** The model file, for A1111's model_path; undefined for the resize-only ones. */
  readonly path?: string;
  upscale(
    rgb: Uint8Array,
    width: number,
    height: number,
    outWidth: number,
    outHeight: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array>;
  /** Frees what the upscaler holds (an onnxruntime session). */
  close(): Promise<void>;
}

/**
 * Upscaled images are bounded on each side (A1111's extras slider stops at 8192) and in pixels, since the result
 * and, for learned upscalers, a model pass past the target (a x4 model asked for x3) are held in memory.
 */
export const MAX_UPSCALE_SIDE = 8192;
export const MAX_UPSCALE_PIXELS = 8192 * 8192;

export function checkUpscaleSize(width: number, height: number, what: string): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new InputError(`${what} ${width}x${height} is not a size: width and height must be positive whole numbers`);
  if (width > MAX_UPSCALE_SIDE || height > MAX_UPSCALE_SIDE || width * height > MAX_UPSCALE_PIXELS)
    throw new InputError(
      `${what} ${width}x${height} is larger than the ${MAX_UPSCALE_SIDE}x${MAX_UPSCALE_SIDE} an upscale may produce; ask for a smaller scale`,
    );
}

/**
 * A1111's sizing for a model of a fixed scale: run the model (at most 3 times) until the image covers the target
 * size, then resize to exactly the target with Lanczos. A x4 model asked for x2 runs once and halves.
 */
export async function upscaleWithModel(
  pass: (rgb: Uint8Array, width: number, height: number) => Promise<Uint8Array>,
  scale: number,
  image: { rgb: Uint8Array; width: number; height: number },
  outWidth: number,
  outHeight: number,
): Promise<Uint8Array> {
  checkUpscaleSize(outWidth, outHeight, "the upscaled size");
  let { rgb, width, height } = image;
  for (let i = 0; i < 3 && (width < outWidth || height < outHeight) && scale > 1; i++) {
    checkUpscaleSize(width * scale, height * scale, `a x${scale} model pass from ${width}x${height} gives`);
    rgb = await pass(rgb, width, height);
    width *= scale;
    height *= scale;
  }
  if (width === outWidth && height === outHeight) return rgb;
  return (await resizeImage({ width, height, data: rgb }, outWidth, outHeight)).data;
}
