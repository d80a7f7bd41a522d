import type { ConfigJson } from "./json.js";

/** AutoencoderKL's architecture; field meanings follow diffusers' config.json keys (named in the comments). */
export interface VaeConfig {
  inChannels: number; // in_channels (3)
  outChannels: number; // out_channels (3)
  latentChannels: number; // latent_channels (4)
  blockOutChannels: number[]; // block_out_channels
  layersPerBlock: number; // layers_per_block
  normNumGroups: number; // norm_num_groups
  scalingFactor: number; // scaling_factor (0.18215 for SD1 and SD2, 0.13025 for SDXL)
  /**
   * force_upcast: SDXL's VAE overflows in float16 and diffusers runs it in float32. Our graphs compute in float32
   * throughout, so this changes nothing here; it is kept so that a half-precision runtime can honour it.
   */
  forceUpcast: boolean;
  useQuantConv: boolean; // use_quant_conv
  usePostQuantConv: boolean; // use_post_quant_conv
  midBlockAddAttention: boolean; // mid_block_add_attention
}

export function vaeConfigFromDiffusers(c: ConfigJson): VaeConfig {
  return {
    inChannels: Number(c.in_channels ?? 3),
    outChannels: Number(c.out_channels ?? 3),
    latentChannels: Number(c.latent_channels ?? 4),
    blockOutChannels: (c.block_out_channels as number[]) ?? [128, 256, 512, 512],
    layersPerBlock: Number(c.layers_per_block ?? 2),
    normNumGroups: Number(c.norm_num_groups ?? 32),
    scalingFactor: Number(c.scaling_factor ?? 0.18215),
    forceUpcast: Boolean(c.force_upcast ?? true),
    useQuantConv: Boolean(c.use_quant_conv ?? true),
    usePostQuantConv: Boolean(c.use_post_quant_conv ?? true),
    midBlockAddAttention: Boolean(c.mid_block_add_attention ?? true),
  };
}
