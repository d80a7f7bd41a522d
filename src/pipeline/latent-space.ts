import type { PipelineConfig } from "../configs/pipeline.js";

/**
 * The latent space a model denoises in, read from its config rather than assumed: SD1, SD2 and SDXL all use
 * 4 channels at 1/8 of the image's size today, but the scaling factor differs (0.18215, 0.13025) and the
 * factor follows from the VAE's depth.
 */
export interface LatentSpace {
  /** Latent channels (the VAE's latent_channels). */
  readonly channels: number;
  /** Image pixels per latent pixel along each side: 2^(VAE levels - 1). */
  readonly factor: number;
  /** The VAE's scaling_factor: latents are scaled by it after encoding and divided by it before decoding. */
  readonly scalingFactor: number;
}

export function latentSpace(config: PipelineConfig): LatentSpace {
  return {
    channels: config.vae.latentChannels,
    factor: 2 ** (config.vae.blockOutChannels.length - 1),
    scalingFactor: config.vae.scalingFactor,
  };
}

/** The latent shape [B, C, h, w] of a batch of images of the given size. */
export function latentShape(
  space: LatentSpace,
  batch: number,
  width: number,
  height: number,
): [number, number, number, number] {
  return [batch, space.channels, height / space.factor, width / space.factor];
}
