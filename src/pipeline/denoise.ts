import { InternalError } from "../errors.js";
import type { Nchw } from "../image/tensor.js";
import { UNET_IO } from "../models/unet.js";
import type { FeedValue, Session } from "../runtime/session.js";
import type { NoiseSource, Scheduler } from "../schedulers/scheduler.js";
import type { ControlGuidance } from "./control-guidance.js";
import { GenerationAborted } from "./generation-aborted.js";
import type { InpaintChannels } from "./inpainting.js";
import { batchConditions, type PromptConditions } from "./unet-condition.js";

/** Everything one batch's denoising needs, prepared by the pipeline for its family and task. */
export interface DenoiseInput {
  unet: Session;
  /** With its timesteps set (and its begin index, for image-to-image). */
  scheduler: Scheduler;
  /** The timesteps to run, in order. */
  timesteps: readonly number[];
  /** The starting latents [B, C, h, w]: noise scaled to the first sigma, or a noised init image. */
  latents: Float32Array;
  shape: Nchw;
  noise: NoiseSource;
  /**
   * The classifier-free guidance the loop applies: above 1 the negative and positive halves run in one batch;
   * 1 or less the positive half alone (guidance off, or embedded in the conditions as LCM's is).
   */
  cfgScale: number;
  conditions: PromptConditions;
  /** A refiner that takes over from model call `at` on, with its own UNet and conditions (refiner.ts). */
  handOver?: { at: number; unet: Session; conditions: PromptConditions };
  /** An inpainting checkpoint's extra input channels. */
  inpaint?: InpaintChannels;
  /**
   * ControlNets: their residuals go to `control.unet` (the UNet that takes them), which replaces `unet`. Not with a
   * hand-over (a refiner's UNet takes no residuals).
   */
  control?: ControlGuidance;
  /** Legacy inpainting with an ordinary checkpoint: what to put back outside the mask after every step. */
  blend?: { keep: Float32Array; original: Float32Array; addedNoise: Float32Array };
  signal?: AbortSignal;
  /** Asked after each step but the last: true ends the loop there, returning the latents as they stand. */
  skip?: () => boolean;
  onStep: (step: number, steps: number, latents: Float32Array) => void;
}

/**
 * The denoising loop, the same for every family (diffusers' pipelines' `__call__` loop): scale the model input,
 * add an inpainting model's channels, predict with classifier-free guidance (the negative and positive halves in
 * one batch), step the scheduler, put back the known region for legacy inpainting, report progress. Guidance
 * scale 1 or less runs the positive half alone (guidance off, as distilled models use it). Returns the final
 * latents [B, C, h, w]. With a hand-over, the refiner's UNet and conditions replace the model's from that call
 * on; the latents, the scheduler's state and the noise stream carry on unchanged.
 */
export async function denoise(input: DenoiseInput): Promise<Float32Array> {
  const { scheduler, timesteps, shape, cfgScale, inpaint, blend, signal, handOver } = input;
  const [B, lc, h, w] = shape;
  const per = lc * h * w;
  const guided = cfgScale > 1;
  const copies = guided ? 2 * B : B;
  const control = input.control;
  if (control && handOver)
    throw new InternalError(
      "ControlNets cannot guide a refiner's UNet: the pipeline refuses that combination before the loop",
    );
  const stages = [
    { from: 0, unet: control?.unet ?? input.unet, conditions: batchConditions(input.conditions, B, guided) },
  ];
  if (handOver)
    stages.push({
      from: handOver.at,
      unet: handOver.unet,
      conditions: batchConditions(handOver.conditions, B, guided),
    });
  let latents = input.latents;
  for (let i = 0; i < timesteps.length; i++) {
    if (signal?.aborted) throw new GenerationAborted();
    const t = timesteps[i]!;
    const { unet, conditions } = stages[stages.length > 1 && i >= stages[1]!.from ? 1 : 0]!;
    // A sampler with churn raises the sample to its sigma_hat first; the model is then called at that level.
    let modelT = t;
    if (scheduler.churn) ({ sample: latents, timestep: modelT } = scheduler.churn(latents, t, input.noise));
    const scaled = scheduler.scaleModelInput(latents, t);
    const x = inpaint ? concatChannels([scaled, inpaint.mask, inpaint.maskedLatents], [lc, 1, lc], B, h * w) : scaled;
    const sample = guided ? repeat(x, 2) : x;
    const feeds: Record<string, FeedValue> = {
      [UNET_IO.sample]: { data: sample, dims: [copies, inpaint ? 2 * lc + 1 : lc, h, w] },
      [UNET_IO.timestep]: { data: Float32Array.of(modelT), dims: [1] },
      ...conditions,
    };
    // A ControlNet sees the latents without an inpainting model's extra channels (diffusers' control_model_input).
    const residuals = control
      ? await control.residuals(
          i,
          timesteps.length,
          inpaint
            ? { ...feeds, [UNET_IO.sample]: { data: guided ? repeat(scaled, 2) : scaled, dims: [copies, lc, h, w] } }
            : feeds,
          copies,
        )
      : {};
    const out = await unet.run({ ...feeds, ...residuals });
    const pred = out[UNET_IO.out]!.data;
    let eps: Float32Array;
    if (guided) {
      const n = B * per;
      eps = new Float32Array(n);
      for (let k = 0; k < n; k++) eps[k] = pred[k]! + cfgScale * (pred[n + k]! - pred[k]!);
    } else {
      eps = pred;
    }
    latents = scheduler.step(eps, t, latents, input.noise);
    if (blend) {
      // Outside the mask, the original at the noise level of the next timestep (the original itself at the end).
      const next = timesteps[i + 1];
      const known = next === undefined ? blend.original : scheduler.addNoise(blend.original, blend.addedNoise, next);
      const keep = blend.keep;
      for (let k = 0; k < latents.length; k++) latents[k] = keep[k]! * known[k]! + (1 - keep[k]!) * latents[k]!;
    }
    input.onStep(i + 1, timesteps.length, latents);
    if (i + 1 < timesteps.length && input.skip?.()) break;
  }
  if (signal?.aborted) throw new GenerationAborted();
  return latents;
}

/** Concatenates [B, c_i, hw] tensors along channels, image by image. */
function concatChannels(parts: Float32Array[], channels: number[], B: number, hw: number): Float32Array {
  const total = channels.reduce((a, b) => a + b, 0);
  const out = new Float32Array(B * total * hw);
  for (let b = 0; b < B; b++) {
    let offset = b * total * hw;
    parts.forEach((part, i) => {
      const n = channels[i]! * hw;
      out.set(part.subarray(b * n, (b + 1) * n), offset);
      offset += n;
    });
  }
  return out;
}

function repeat(a: Float32Array, times: number): Float32Array {
  const out = new Float32Array(a.length * times);
  for (let i = 0; i < times; i++) out.set(a, i * a.length);
  return out;
}
