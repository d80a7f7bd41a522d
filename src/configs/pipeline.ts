import { textEncoderConfigFromTransformers, type TextEncoderConfig } from "./text-encoder.js";
import { unetConfigFromDiffusers, type UNetConfig } from "./unet.js";
import { vaeConfigFromDiffusers, type VaeConfig } from "./vae.js";

export type ModelFamily = "sd1" | "sd2" | "sdxl";
export type PredictionType = "epsilon" | "v_prediction";

/** The networks of one Stable Diffusion model, and what the family and training decide around them. */
export interface PipelineConfig {
  family: ModelFamily;
  predictionType: PredictionType;
  unet: UNetConfig;
  vae: VaeConfig;
  textEncoder: TextEncoderConfig;
}

/** The published Stable Diffusion 1.x architecture (v1-inference.yaml / runwayml/stable-diffusion-v1-5). */
export const SD15: PipelineConfig = {
  family: "sd1",
  predictionType: "epsilon",
  unet: unetConfigFromDiffusers({ sample_size: 64, norm_num_groups: 32, attention_head_dim: 8 }),
  vae: vaeConfigFromDiffusers({}),
  textEncoder: textEncoderConfigFromTransformers({}),
};
