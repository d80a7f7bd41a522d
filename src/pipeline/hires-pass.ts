import { InputError } from "../errors.js";
import type { RgbImage } from "../image/codec.js";
import { interpolate } from "../image/interpolate.js";
import type { Nchw } from "../image/tensor.js";
import { TorchGenerator } from "../random/torch-generator.js";
import type { Scheduler } from "../schedulers/index.js";
import { GenerationAborted } from "./generation-aborted.js";
import type { HiresUpscaler } from "./hires-upscalers.js";
import type { ResolvedHires } from "./params.js";
import type { VaeCodec } from "./vae-codec.js";

/**
 * The hires fix between its two passes, as AUTOMATIC1111's sample_hr_pass: the first pass's latents [B, C, h, w]
 * upscaled to the hires size (latent upscalers resize the latents; pixel upscalers decode, resize the pixels and
 * encode again), then cropped to the requested size when both resize sides were given. `seeds`: the batch's, for
 * the VAE's posterior sample (see below).
 */
export async function upscaleFirstPass(
  latents: Float32Array,
  shape: Nchw,
  hires: ResolvedHires,
  upscaler: HiresUpscaler,
  codec: VaeCodec,
  seeds: readonly bigint[],
  signal?: AbortSignal,
): Promise<Float32Array> {
  const [batch, channels, h, w] = shape;
  const { factor } = codec.space;
  const upH = hires.upscaleHeight / factor;
  const upW = hires.upscaleWidth / factor;
  let up: Float32Array;
  if (upscaler.kind === "latent") {
    up = interpolate(latents, shape, upH, upW, upscaler.mode, upscaler.antialias);
  } else {
    const width = w * factor;
    const height = h * factor;
    const images = await codec.decode(latents, batch, width, height);
    const large: RgbImage[] = [];
    for (const image of images) {
      if (signal?.aborted) throw new GenerationAborted();
      const data = await upscaler.upscale(image.data, width, height, hires.upscaleWidth, hires.upscaleHeight, signal);
      if (!(data instanceof Uint8Array) || data.length !== hires.upscaleWidth * hires.upscaleHeight * 3)
        throw new InputError(
          `hires upscaler "${upscaler.name}" returned ${data?.length ?? "no"} bytes for a ${hires.upscaleWidth}x${hires.upscaleHeight} RGB image (expected ${hires.upscaleWidth * hires.upscaleHeight * 3}): fix the upscaler`,
        );
      large.push({ width: hires.upscaleWidth, height: hires.upscaleHeight, data });
    }
    // A1111 samples the VAE's posterior with torch's global generator, which its ImageRNG last seeded with the
    // batch's last seed and which nothing draws from in between: a fresh generator of that seed.
    up = await codec.encodeImages(large, new TorchGenerator(seeds[seeds.length - 1]!));
  }
  const cropY = upH - hires.height / factor;
  const cropX = upW - hires.width / factor;
  if (cropX === 0 && cropY === 0) return up;
  // A1111 cuts floor(crop / 2) latent rows at the top and the rest at the bottom (likewise for columns).
  return cropLatents(
    up,
    [batch, channels, upH, upW],
    Math.floor(cropY / 2),
    Math.floor(cropX / 2),
    upH - cropY,
    upW - cropX,
  );
}

function cropLatents(x: Float32Array, shape: Nchw, top: number, left: number, oh: number, ow: number): Float32Array {
  const [batch, channels, h, w] = shape;
  const out = new Float32Array(batch * channels * oh * ow);
  for (let p = 0; p < batch * channels; p++)
    for (let y = 0; y < oh; y++)
      out.set(x.subarray((p * h + top + y) * w + left, (p * h + top + y) * w + left + ow), (p * oh + y) * ow);
  return out;
}

/**
 * The second pass's schedule as A1111 runs img2img with a given step count (setup_img2img_steps): a schedule of
 * steps / strength steps (strength capped at 0.999), of which the last `steps` run. Sets the scheduler's timesteps
 * and begin index; returns the timesteps to run.
 */
export function hiresTimesteps(scheduler: Scheduler, steps: number, strength: number): number[] {
  const total = Math.floor(steps / Math.min(strength, 0.999));
  scheduler.setTimesteps(total);
  const begin = (total - steps) * scheduler.order;
  scheduler.setBeginIndex(begin);
  return Array.from(scheduler.timesteps).slice(begin);
}
