import { UnsupportedModelError } from "../errors.js";
import { perLevel, type ConfigJson } from "./json.js";

/**
 * diffusers' AutoencoderTiny (madebyollin's TAESD / TAESDXL): a small convolutional encoder and decoder that work on
 * the UNet's latents directly. Field meanings follow its config.json keys.
 */
export interface TaesdConfig {
  inChannels: number; // in_channels (3)
  outChannels: number; // out_channels (3)
  latentChannels: number; // latent_channels (4)
  encoderChannels: number[]; // encoder_block_out_channels (64 per level in the published models)
  decoderChannels: number[]; // decoder_block_out_channels
  encoderBlocks: number[]; // num_encoder_blocks (1, 3, 3, 3)
  decoderBlocks: number[]; // num_decoder_blocks (3, 3, 3, 1)
  /** latent_magnitude: the decoder first squashes latents to (-m, m) with m * tanh(x / m). */
  latentMagnitude: number;
  upsamplingScalingFactor: number; // upsampling_scaling_factor (2)
  /** scaling_factor: 1.0 for TAESD, whose latents are the UNet's (already scaled) latents. */
  scalingFactor: number;
}

/** The published TAESD and TAESDXL (madebyollin's files carry no config). */
export const TAESD_DEFAULTS: TaesdConfig = {
  inChannels: 3,
  outChannels: 3,
  latentChannels: 4,
  encoderChannels: [64, 64, 64, 64],
  decoderChannels: [64, 64, 64, 64],
  encoderBlocks: [1, 3, 3, 3],
  decoderBlocks: [3, 3, 3, 1],
  latentMagnitude: 3,
  upsamplingScalingFactor: 2,
  scalingFactor: 1,
};

export function taesdConfigFromDiffusers(c: ConfigJson, origin = "config.json"): TaesdConfig {
  for (const [key, allowed] of [
    ["act_fn", "relu"],
    ["upsample_fn", "nearest"],
    ["upsampling_scaling_factor", 2],
  ] as const) {
    if (c[key] !== undefined && c[key] !== allowed)
      throw new UnsupportedModelError(
        `${origin}: ${key} ${JSON.stringify(c[key])} is not supported (TAESD uses ${JSON.stringify(allowed)})`,
      );
  }
  if (c.shift_factor !== undefined && c.shift_factor !== null && Number(c.shift_factor) !== 0) {
    throw new UnsupportedModelError(
      `${origin}: shift_factor ${JSON.stringify(c.shift_factor)} is not supported (TAESD and TAESDXL use 0)`,
    );
  }
  const base = (c.block_out_channels as number[] | undefined) ?? TAESD_DEFAULTS.encoderChannels;
  const encoderBlocks = (c.num_encoder_blocks as number[] | undefined) ?? TAESD_DEFAULTS.encoderBlocks;
  const decoderBlocks = (c.num_decoder_blocks as number[] | undefined) ?? TAESD_DEFAULTS.decoderBlocks;
  const config: TaesdConfig = {
    inChannels: Number(c.in_channels ?? 3),
    outChannels: Number(c.out_channels ?? 3),
    latentChannels: Number(c.latent_channels ?? 4),
    encoderChannels: perLevel(c.encoder_block_out_channels ?? base, encoderBlocks.length, 64),
    decoderChannels: perLevel(c.decoder_block_out_channels ?? base, decoderBlocks.length, 64),
    encoderBlocks: encoderBlocks.map(Number),
    decoderBlocks: decoderBlocks.map(Number),
    latentMagnitude: Number(c.latent_magnitude ?? 3),
    upsamplingScalingFactor: Number(c.upsampling_scaling_factor ?? 2),
    scalingFactor: Number(c.scaling_factor ?? 1),
  };
  if (
    config.encoderChannels.length !== config.encoderBlocks.length ||
    config.decoderChannels.length !== config.decoderBlocks.length
  ) {
    throw new UnsupportedModelError(
      `${origin}: the block channel lists and num_encoder_blocks / num_decoder_blocks differ in length`,
    );
  }
  return config;
}
