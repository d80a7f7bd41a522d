import { textEncoderConfigFromTransformers, type TextEncoderConfig } from "./text-encoder.js";
import { unetConfigFromDiffusers, type UNetConfig } from "./unet.js";
import { vaeConfigFromDiffusers, type VaeConfig } from "./vae.js";

/**
 * The model families: each is the same UNet/VAE/CLIP architecture with its own sizes, text encoders and
 * conditioning. LCM, Turbo, Lightning and distilled models belong to the family whose architecture they share.
 */
export type ModelFamily = "sd1" | "sd2" | "sdxl" | "sdxl-refiner";
export type PredictionType = "epsilon" | "v_prediction";

/** The networks of one Stable Diffusion model, and what the family and training decide around them. */
export interface PipelineConfig {
  family: ModelFamily;
  predictionType: PredictionType;
  unet: UNetConfig;
  vae: VaeConfig;
  /**
   * The first (or only) text encoder: CLIP ViT-L/14 (SD1, SDXL base), OpenCLIP ViT-H/14 (SD2), or OpenCLIP
   * ViT-bigG/14 for the SDXL refiner, whose only encoder diffusers keeps in text_encoder_2/.
   */
  textEncoder: TextEncoderConfig;
  /** SDXL base's second encoder: OpenCLIP ViT-bigG/14 with its projection (diffusers' text_encoder_2/). */
  textEncoder2?: TextEncoderConfig;
}

/**
 * How a family's pipeline reads its text encoders (diffusers' encode_prompt):
 * - `hiddenState`: "last" = CLIP_TEXT_IO.lastHidden (final norm applied; SD1's clip skip picks an earlier layer and
 *   applies the final norm to it); "penultimate" = CLIP_TEXT_IO.hiddenStates[layers - 1], without the final norm, of
 *   every encoder, concatenated on the feature axis in encoder order (SDXL: [CLIP-L 768 | bigG 1280] = 2048).
 * - `pooled`: SDXL's UNet also takes the last encoder's CLIP_TEXT_IO.textEmbeds as UNET_IO.textEmbeds.
 * - `timeIds`: SDXL's UNET_IO.timeIds per image: base (original h, w, crop top, left, target h, w), refiner
 *   (original h, w, crop top, left, aesthetic score).
 */
export const TEXT_CONDITIONING: Readonly<
  Record<ModelFamily, { hiddenState: "last" | "penultimate"; pooled: boolean; timeIds: readonly string[] }>
> = {
  sd1: { hiddenState: "last", pooled: false, timeIds: [] },
  // SD2's 23-layer text encoder (OpenCLIP's 24 blocks less the last, "penultimate" in the original code) with its final norm.
  sd2: { hiddenState: "last", pooled: false, timeIds: [] },
  sdxl: {
    hiddenState: "penultimate",
    pooled: true,
    timeIds: ["original_height", "original_width", "crop_top", "crop_left", "target_height", "target_width"],
  },
  "sdxl-refiner": {
    hiddenState: "penultimate",
    pooled: true,
    timeIds: ["original_height", "original_width", "crop_top", "crop_left", "aesthetic_score"],
  },
};

/** The published Stable Diffusion 1.x architecture (v1-inference.yaml / runwayml/stable-diffusion-v1-5). */
export const SD15: PipelineConfig = {
  family: "sd1",
  predictionType: "epsilon",
  unet: unetConfigFromDiffusers({ sample_size: 64, norm_num_groups: 32, attention_head_dim: 8 }),
  vae: vaeConfigFromDiffusers({}),
  textEncoder: textEncoderConfigFromTransformers({}),
};

/** OpenCLIP ViT-H/14 as SD2 uses it: 23 of its 24 blocks (stabilityai/stable-diffusion-2-1 text_encoder/config.json). */
const OPEN_CLIP_VIT_H = {
  hidden_size: 1024,
  intermediate_size: 4096,
  num_attention_heads: 16,
  num_hidden_layers: 23,
  hidden_act: "gelu",
  projection_dim: 512,
};
/** OpenCLIP ViT-bigG/14 with its projection (stabilityai/stable-diffusion-xl-base-1.0 text_encoder_2/config.json). */
const OPEN_CLIP_VIT_BIGG = {
  hidden_size: 1280,
  intermediate_size: 5120,
  num_attention_heads: 20,
  num_hidden_layers: 32,
  hidden_act: "gelu",
  projection_dim: 1280,
};

/** The published Stable Diffusion 2.1 (768-v) architecture (stabilityai/stable-diffusion-2-1). */
export const SD21: PipelineConfig = {
  family: "sd2",
  predictionType: "v_prediction",
  unet: unetConfigFromDiffusers({
    sample_size: 96,
    attention_head_dim: [5, 10, 20, 20],
    cross_attention_dim: 1024,
    use_linear_projection: true,
    upcast_attention: true,
  }),
  vae: vaeConfigFromDiffusers({}),
  textEncoder: textEncoderConfigFromTransformers(OPEN_CLIP_VIT_H),
};

/** The published SDXL 1.0 base architecture (stabilityai/stable-diffusion-xl-base-1.0). */
export const SDXL_BASE: PipelineConfig = {
  family: "sdxl",
  predictionType: "epsilon",
  unet: unetConfigFromDiffusers({
    sample_size: 128,
    block_out_channels: [320, 640, 1280],
    down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types: ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    attention_head_dim: [5, 10, 20],
    transformer_layers_per_block: [1, 2, 10],
    cross_attention_dim: 2048,
    use_linear_projection: true,
    addition_embed_type: "text_time",
    addition_time_embed_dim: 256,
    projection_class_embeddings_input_dim: 2816,
  }),
  vae: vaeConfigFromDiffusers({ scaling_factor: 0.13025 }),
  textEncoder: textEncoderConfigFromTransformers({}),
  textEncoder2: textEncoderConfigFromTransformers(OPEN_CLIP_VIT_BIGG, { withProjection: true }),
};

/** The published SDXL 1.0 refiner architecture (stabilityai/stable-diffusion-xl-refiner-1.0). */
export const SDXL_REFINER: PipelineConfig = {
  family: "sdxl-refiner",
  predictionType: "epsilon",
  unet: unetConfigFromDiffusers({
    sample_size: 128,
    block_out_channels: [384, 768, 1536, 1536],
    down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    attention_head_dim: [6, 12, 24, 24],
    transformer_layers_per_block: 4,
    cross_attention_dim: 1280,
    use_linear_projection: true,
    addition_embed_type: "text_time",
    addition_time_embed_dim: 256,
    projection_class_embeddings_input_dim: 2560,
  }),
  vae: vaeConfigFromDiffusers({ scaling_factor: 0.13025 }),
  textEncoder: textEncoderConfigFromTransformers(OPEN_CLIP_VIT_BIGG, { withProjection: true }),
};

/** How many SDXL time ids the UNet takes: (projection input - pooled width) / id width; 0 without text_time. */
export function timeIdCount(config: PipelineConfig): number {
  const u = config.unet;
  if (u.additionEmbedType !== "text_time") return 0;
  const pooled = (config.textEncoder2 ?? config.textEncoder).projectionDim ?? 0;
  return (u.projectionClassEmbeddingsInputDim! - pooled) / u.additionTimeEmbedDim!;
}
