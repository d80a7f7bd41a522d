import { UnsupportedModelError } from "../errors.js";
import type { ConfigJson } from "./json.js";
import { unetEncoderConfigFromDiffusers, type UNetEncoderConfig } from "./unet.js";

/**
 * diffusers' ControlNetModel: a copy of a UNet's encoder half (time embedding, conv_in, down blocks, mid block) plus
 * the conditioning embedding that turns the control image into conv_in-sized features, and one zero-initialised
 * 1x1 convolution per skip connection and for the mid block. Field meanings follow its config.json keys.
 */
export interface ControlNetConfig extends UNetEncoderConfig {
  conditioningChannels: number; // conditioning_channels (3: an RGB control image)
  /** conditioning_embedding_out_channels: channels of the embedding's levels, e.g. [16, 32, 96, 256]; each level but the last halves the size. */
  conditioningEmbeddingOutChannels: number[];
  /** controlnet_conditioning_channel_order: "bgr" checkpoints were trained on BGR images; the graph flips the channels. */
  channelOrder: "rgb" | "bgr";
}

/** The published SD1.x / SD2.x / SDXL ControlNets' conditioning embedding (lllyasviel's input_hint_block). */
export const DEFAULT_CONDITIONING_EMBEDDING = [16, 32, 96, 256];

export function controlNetConfigFromDiffusers(c: ConfigJson, origin = "controlnet/config.json"): ControlNetConfig {
  if (c.global_pool_conditions === true) {
    throw new UnsupportedModelError(
      `${origin}: global_pool_conditions true (the "shuffle" ControlNet's pooled conditions) is not supported`,
    );
  }
  const order = c.controlnet_conditioning_channel_order ?? "rgb";
  if (order !== "rgb" && order !== "bgr") {
    throw new UnsupportedModelError(
      `${origin}: controlnet_conditioning_channel_order ${JSON.stringify(order)} is not supported (rgb or bgr)`,
    );
  }
  const encoder = unetEncoderConfigFromDiffusers(c, origin);
  if (encoder.midBlockType === null)
    throw new UnsupportedModelError(
      `${origin}: mid_block_type null: a ControlNet needs a mid block (its last residual)`,
    );
  if (encoder.timeCondProjDim !== null)
    throw new UnsupportedModelError(`${origin}: time_cond_proj_dim is not a ControlNet option`);
  const embedding = (c.conditioning_embedding_out_channels as number[] | undefined) ?? DEFAULT_CONDITIONING_EMBEDDING;
  if (!Array.isArray(embedding) || embedding.length < 1 || embedding.some((v) => !Number.isInteger(v) || v <= 0)) {
    throw new UnsupportedModelError(
      `${origin}: conditioning_embedding_out_channels ${JSON.stringify(embedding)} must be a list of positive integers`,
    );
  }
  return {
    ...encoder,
    conditioningChannels: Number(c.conditioning_channels ?? 3),
    conditioningEmbeddingOutChannels: embedding.map(Number),
    channelOrder: order,
  };
}

/**
 * How much smaller than the control image the latents are: the conditioning embedding halves the image once per
 * level but the last (8 for the published ControlNets, whose latents are 1/8 of the image).
 */
export function conditioningDownscale(c: ControlNetConfig): number {
  return 2 ** (c.conditioningEmbeddingOutChannels.length - 1);
}
