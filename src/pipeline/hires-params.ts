import { InputError } from "../errors.js";
import { MAX_IMAGE_SIDE } from "../image/codec.js";
import { canonicalUpscaler, DEFAULT_HIRES_UPSCALER } from "./hires-upscalers.js";
import type { HiresParams, ResolvedHires } from "./params.js";
import { checkedInteger as whole, checkedNumber as real } from "./param-checks.js";
import { samplerAndSchedule } from "./sampler-choice.js";

/** A1111's txt2img default denoising strength, which its hires fix uses. */
export const DEFAULT_HIRES_DENOISING = 0.75;
const DEFAULT_HIRES_SCALE = 2;
/** The latent grid: A1111 floors the upscaled size to it (its latents are size / 8). */
const GRID = 8;

/** The first pass a hires fix follows: its size, prompts and sampler as asked. */
export interface FirstPass {
  width: number;
  height: number;
  prompt: string;
  negativePrompt: string;
  sampler: string;
  schedule: string | undefined;
}

/**
 * Checks the hires fix and works out its sizes as A1111's calculate_target_resolution: a scale multiplies the
 * first pass's size; one resize side keeps the aspect ratio; both sides upscale to cover them, then crop the
 * centre (in whole latent cells) to the requested size. Sizes are floored to the latent grid, as A1111's latents
 * are. `upscalers`: the pipeline's own pixel upscalers.
 */
export function resolveHires(h: HiresParams, first: FirstPass, upscalers: readonly string[] = []): ResolvedHires {
  if (h === null || typeof h !== "object") throw new InputError("hires must be an object (scale, upscaler, ...)");
  const upscaler = canonicalUpscaler(h.upscaler ?? DEFAULT_HIRES_UPSCALER, upscalers);
  const side = (name: string, v: number | undefined) =>
    v === undefined
      ? 0
      : whole(name, v, 0, MAX_IMAGE_SIDE, `use 0 (unset) or a size in pixels up to ${MAX_IMAGE_SIDE}`);
  const resizeX = side("hires resize width", h.resizeX);
  const resizeY = side("hires resize height", h.resizeY);
  const { width, height } = first;
  let upX: number;
  let upY: number;
  let truncX = 0;
  let truncY = 0;
  let scale: number | undefined;
  if (resizeX === 0 && resizeY === 0) {
    scale = real(
      "hires scale",
      h.scale ?? DEFAULT_HIRES_SCALE,
      0,
      16,
      "use a factor above 0 and up to 16 (2 is usual)",
    );
    if (scale === 0) throw new InputError("hires scale 0 is invalid: use a factor above 0 (2 is usual)");
    upX = Math.floor(width * scale);
    upY = Math.floor(height * scale);
  } else if (resizeY === 0) {
    upX = resizeX;
    upY = Math.floor((resizeX * height) / width);
  } else if (resizeX === 0) {
    upX = Math.floor((resizeY * width) / height);
    upY = resizeY;
  } else {
    // Cover the requested size, keeping the aspect ratio, then crop what sticks out.
    if (width / height < resizeX / resizeY) {
      upX = resizeX;
      upY = Math.floor((resizeX * height) / width);
    } else {
      upX = Math.floor((resizeY * width) / height);
      upY = resizeY;
    }
    truncX = Math.floor((upX - resizeX) / GRID);
    truncY = Math.floor((upY - resizeY) / GRID);
  }
  const upscaleWidth = Math.floor(upX / GRID) * GRID;
  const upscaleHeight = Math.floor(upY / GRID) * GRID;
  const finalWidth = upscaleWidth - truncX * GRID;
  const finalHeight = upscaleHeight - truncY * GRID;
  if (finalWidth < GRID || finalHeight < GRID || upscaleWidth > MAX_IMAGE_SIDE || upscaleHeight > MAX_IMAGE_SIDE) {
    throw new InputError(
      `the hires fix would work at ${upX}x${upY} from ${width}x${height}: each side must come to 8 to ${MAX_IMAGE_SIDE} pixels; ` +
        "lower the scale or the resize (or the first pass's size)",
    );
  }
  const steps = whole("hires steps", h.steps ?? 0, 0, 1000, "use 0 (as many as the first pass) or up to 1000");
  const denoisingStrength = real(
    "hires denoising strength",
    h.denoisingStrength ?? DEFAULT_HIRES_DENOISING,
    0,
    1,
    "use a number above 0 and up to 1 (how much the second pass repaints; 0.5-0.75 is usual)",
  );
  if (denoisingStrength === 0)
    throw new InputError(
      "hires denoising strength 0 leaves the second pass nothing to do: use a number above 0 (0.5-0.75 is usual)",
    );
  for (const [name, text] of [
    ["hires prompt", h.prompt],
    ["hires negative prompt", h.negativePrompt],
  ] as const) {
    if (text !== undefined && typeof text !== "string") throw new InputError(`the ${name} must be a string`);
    if (text?.includes("\0"))
      throw new InputError(
        `the ${name} contains a NUL character (U+0000), which the image's metadata cannot hold; remove it`,
      );
  }
  const { sampler, schedule } = samplerAndSchedule(h.sampler ?? first.sampler, h.schedule ?? first.schedule);
  return {
    upscaler,
    ...(scale !== undefined ? { scale } : { resizeX, resizeY }),
    upscaleWidth,
    upscaleHeight,
    width: finalWidth,
    height: finalHeight,
    steps,
    denoisingStrength,
    prompt: h.prompt || first.prompt,
    negativePrompt: h.negativePrompt || first.negativePrompt,
    sampler,
    schedule,
  };
}
