import { InputError } from "../errors.js";
import { VAE_IO } from "../models/vae.js";
import type { Int8Network } from "../models/precision.js";
import type { Session } from "../runtime/session.js";
import { createScheduler, type RawSchedulerConfig } from "../schedulers/index.js";
import type { Checkpoint } from "../weights/checkpoint.js";
import { BatchNoise } from "./batch-noise.js";
import { denoise } from "./denoise.js";
import type { CalibrationRecipe } from "./int8-shipped-calibration.js";
import { latentShape, latentSpace } from "./latent-space.js";
import type { Conditioner } from "./unet-condition.js";

/**
 * The representative runs int8 calibration measures activation ranges on (NetworkOptions.calibrate): a few prompts
 * denoised from noise with the fp32 UNet through a schedule of a few Euler steps, so the ranges cover the
 * timesteps from pure noise to a clean image as a generation visits them (post-training quantization of diffusion
 * models calibrates on such trajectories, e.g. Q-Diffusion), and the final latents decoded by the VAE. One range
 * per tensor over all of them. At half the model's native size: a feature's range depends little on the image size,
 * and the runs cost a quarter.
 */

const PROMPTS = [
  "a photograph of a red fox sitting in a snowy forest at dawn",
  "an oil painting of a harbour with sailing boats, warm evening light",
  "a portrait of an old man with a grey beard, studio lighting, detailed",
  "a watercolor sketch of a city street with people and umbrellas in the rain",
];
const STEPS = 8;
const CFG_SCALE = 7;
const SAMPLER = "Euler";

/** What the runs are for a model (int8-shipped-calibration.ts writes it into a shipped file). */
export function calibrationRecipe(config: Checkpoint["config"]): CalibrationRecipe {
  const space = latentSpace(config);
  const size = Math.max(8 * space.factor, (config.unet.sampleSize * space.factor) / 2);
  return { sampler: SAMPLER, prompts: PROMPTS, steps: STEPS, cfgScale: CFG_SCALE, width: size, height: size };
}

export interface CalibrationParts {
  checkpoint: Checkpoint;
  conditioner: Conditioner;
  schedulerConfig: RawSchedulerConfig;
  /** The UNet the VAE's calibration takes its latents from (either precision: only the decoder is observed then). */
  unet: () => Promise<Session>;
}

/** NetworkOptions.calibrate for a loaded model: runs the observed network as a generation would. */
export function calibrationRuns(
  parts: () => CalibrationParts,
): (network: Int8Network, session: Session) => Promise<void> {
  /** Final latents of the UNet's calibration, reused by the VAE's when it comes in the same process. */
  let finals: Float32Array[] | undefined;
  return async (network, session) => {
    const p = parts();
    const { config } = p.checkpoint;
    if (p.checkpoint.inpainting || config.unet.timeCondProjDim !== null)
      throw new InputError(
        `int8 calibration runs text-to-image trajectories, which ${p.checkpoint.path} (an ${p.checkpoint.inpainting ? "inpainting" : "LCM"} UNet) does not take; use precision fp32 for it`,
      );
    const space = latentSpace(config);
    const recipe = calibrationRecipe(config);
    const shape = latentShape(space, 1, recipe.width, recipe.height);
    if (network === "unet" || !finals) {
      const unet = network === "unet" ? session : await p.unet();
      finals = [];
      for (const [i, prompt] of recipe.prompts.entries()) {
        const conditions = await p.conditioner.encode({
          prompt,
          negativePrompt: "",
          guided: true,
          clipSkip: 1,
          width: recipe.width,
          height: recipe.height,
        });
        const scheduler = createScheduler(recipe.sampler, p.schedulerConfig, { sdxl: config.family === "sdxl" });
        scheduler.setTimesteps(recipe.steps);
        const noise = new BatchNoise([BigInt(i + 1)]);
        const start = noise.randn(shape).map((v) => v * scheduler.initNoiseSigma);
        finals.push(
          await denoise({
            unet,
            scheduler,
            timesteps: Array.from(scheduler.timesteps),
            latents: start,
            shape,
            noise,
            cfgScale: recipe.cfgScale,
            conditions,
            onStep: () => {},
          }),
        );
      }
    }
    if (network === "vae_decoder") {
      for (const latents of finals) {
        const z = latents.map((v) => v / space.scalingFactor);
        await session.run({ [VAE_IO.latent]: { data: z, dims: shape } });
      }
    }
  };
}
