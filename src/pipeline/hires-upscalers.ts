import { InputError } from "../errors.js";
import { resamplePixels } from "../image/codec.js";
import type { InterpolationMode } from "../image/interpolate.js";

/**
 * The upscalers of the hires fix, by AUTOMATIC1111's names. The "Latent ..." ones resize the latents with
 * torch's interpolate modes (A1111's shared.latent_upscale_modes); the others decode the first pass, resize the
 * pixels and encode again. A pixel upscaler is a plain function, so learned ones (ESRGAN and the like) plug in
 * by name through PipelineParts.upscalers without the pipeline knowing how they work.
 */
export type PixelUpscaler = (
  rgb: Uint8Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  signal?: AbortSignal,
) => Promise<Uint8Array>;

/**
 * Pixel upscalers a pipeline has by name besides the built-in ones: the names known now (a folder of model files
 * may change while a server runs), and one by its canonical name. `close` frees what they hold (onnxruntime
 * sessions of learned upscalers).
 */
export interface NamedUpscalers {
  names(): readonly string[];
  get(name: string): PixelUpscaler | undefined;
  close?(): Promise<void>;
}

/** Upscalers given as functions (LoadOptions.upscalers), with nothing to free. */
export function upscalersOf(given: Readonly<Record<string, PixelUpscaler>> = {}): NamedUpscalers {
  return { names: () => Object.keys(given), get: (name) => given[name] };
}

export type HiresUpscaler =
  | { kind: "latent"; name: string; mode: InterpolationMode; antialias: boolean }
  | { kind: "pixel"; name: string; upscale: PixelUpscaler };

/** A1111's default when a request names none (shared.latent_upscale_default_mode). */
export const DEFAULT_HIRES_UPSCALER = "Latent";

const LATENT_MODES: Readonly<Record<string, { mode: InterpolationMode; antialias: boolean }>> = {
  Latent: { mode: "bilinear", antialias: false },
  "Latent (antialiased)": { mode: "bilinear", antialias: true },
  "Latent (bicubic)": { mode: "bicubic", antialias: false },
  "Latent (bicubic antialiased)": { mode: "bicubic", antialias: true },
  "Latent (nearest)": { mode: "nearest", antialias: false },
  "Latent (nearest-exact)": { mode: "nearest-exact", antialias: false },
};

const lanczos: PixelUpscaler = (rgb, w, h, ow, oh) => resamplePixels(rgb, w, h, ow, oh, "lanczos3");

/**
 * A1111's non-learned pixel upscalers. Its "None" upscales nothing itself, and resize_image then stretches the
 * image to the size with Lanczos: the same as "Lanczos".
 */
const BUILTIN_PIXEL: Readonly<Record<string, PixelUpscaler>> = {
  Lanczos: lanczos,
  Nearest: (rgb, w, h, ow, oh) => resamplePixels(rgb, w, h, ow, oh, "nearest"),
  None: lanczos,
};

/** The latent upscalers' names, as A1111's /sdapi/v1/latent-upscale-modes lists them. */
export function latentUpscalerNames(): string[] {
  return Object.keys(LATENT_MODES);
}

/** Every upscaler name a request may use: the latent modes, the built-in pixel ones, then `extra`. */
export function hiresUpscalerNames(extra: readonly string[] = []): string[] {
  return [...Object.keys(LATENT_MODES), ...Object.keys(BUILTIN_PIXEL), ...extra.filter((n) => !(n in BUILTIN_PIXEL))];
}

/** The canonical spelling of an upscaler name (case and surrounding spaces aside), or an InputError listing them. */
export function canonicalUpscaler(name: string, extra: readonly string[] = []): string {
  const names = hiresUpscalerNames(extra);
  if (typeof name === "string") {
    const wanted = name.trim().toLowerCase();
    const found = names.find((n) => n.toLowerCase() === wanted);
    if (found) return found;
  }
  throw new InputError(
    `unknown hires upscaler ${JSON.stringify(name)}: use one of ${names.map((n) => JSON.stringify(n)).join(", ")}`,
  );
}

/** The upscaler a canonical name stands for; `extra` are the pipeline's own pixel upscalers. */
export function findHiresUpscaler(name: string, extra: NamedUpscalers = upscalersOf()): HiresUpscaler {
  const canonical = canonicalUpscaler(name, extra.names());
  const latent = LATENT_MODES[canonical];
  if (latent) return { kind: "latent", name: canonical, ...latent };
  return { kind: "pixel", name: canonical, upscale: extra.get(canonical) ?? BUILTIN_PIXEL[canonical]! };
}
