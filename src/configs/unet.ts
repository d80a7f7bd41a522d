import { perLevel, type ConfigJson } from "./json.js";

/** UNet2DConditionModel's architecture; field meanings follow diffusers' config.json keys (named in the comments). */
export interface UNetConfig {
  inChannels: number;                 // in_channels: 4, or 9 for inpainting checkpoints
  outChannels: number;                // out_channels
  blockOutChannels: number[];         // block_out_channels, e.g. [320, 640, 1280, 1280]
  downBlockTypes: string[];           // down_block_types ("CrossAttnDownBlock2D" | "DownBlock2D")
  upBlockTypes: string[];             // up_block_types ("UpBlock2D" | "CrossAttnUpBlock2D")
  layersPerBlock: number;             // layers_per_block
  crossAttentionDim: number;          // cross_attention_dim (768 for SD1)
  /** Heads per level. SD1 stores the head COUNT in attention_head_dim (8); diffusers keeps that quirk. */
  attentionHeads: number[];
  transformerLayersPerBlock: number[]; // transformer_layers_per_block per level
  useLinearProjection: boolean;       // use_linear_projection (false for SD1: 1x1 conv proj_in/out)
  upcastAttention: boolean;           // upcast_attention (changes nothing in fp32)
  normNumGroups: number;              // norm_num_groups
  normEps: number;                    // norm_eps
  flipSinToCos: boolean;              // flip_sin_to_cos
  freqShift: number;                  // freq_shift
  sampleSize: number;                 // sample_size (latent size the model was trained at)
}

export function unetConfigFromDiffusers(c: ConfigJson): UNetConfig {
  const blockOutChannels = (c.block_out_channels as number[]) ?? [320, 640, 1280, 1280];
  const levels = blockOutChannels.length;
  // num_attention_heads wins when set; otherwise attention_head_dim holds the head count (diffusers' naming quirk).
  const heads = c.num_attention_heads ?? c.attention_head_dim ?? 8;
  return {
    inChannels: Number(c.in_channels ?? 4),
    outChannels: Number(c.out_channels ?? 4),
    blockOutChannels,
    downBlockTypes: (c.down_block_types as string[]) ?? ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    upBlockTypes: (c.up_block_types as string[]) ?? ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    layersPerBlock: Number(c.layers_per_block ?? 2),
    crossAttentionDim: Number(c.cross_attention_dim ?? 768),
    attentionHeads: perLevel(heads, levels, 8),
    transformerLayersPerBlock: perLevel(c.transformer_layers_per_block, levels, 1),
    useLinearProjection: Boolean(c.use_linear_projection ?? false),
    upcastAttention: Boolean(c.upcast_attention ?? false),
    normNumGroups: Number(c.norm_num_groups ?? 32),
    normEps: Number(c.norm_eps ?? 1e-5),
    flipSinToCos: Boolean(c.flip_sin_to_cos ?? true),
    freqShift: Number(c.freq_shift ?? 0),
    sampleSize: Number(c.sample_size ?? 64),
  };
}
