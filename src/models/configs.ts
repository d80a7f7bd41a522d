/**
 * Typed architecture configs of the networks we build. Field meanings follow diffusers' / transformers'
 * config.json keys (named in the comments); `fromDiffusers*` read those files.
 */

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

export interface VaeConfig {
  inChannels: number;                 // in_channels (3)
  outChannels: number;                // out_channels (3)
  latentChannels: number;             // latent_channels (4)
  blockOutChannels: number[];         // block_out_channels
  layersPerBlock: number;             // layers_per_block
  normNumGroups: number;              // norm_num_groups
  scalingFactor: number;              // scaling_factor (0.18215 for SD1)
  useQuantConv: boolean;              // use_quant_conv
  usePostQuantConv: boolean;          // use_post_quant_conv
  midBlockAddAttention: boolean;      // mid_block_add_attention
}

export interface TextEncoderConfig {
  vocabSize: number;                  // vocab_size
  hiddenSize: number;                 // hidden_size
  intermediateSize: number;           // intermediate_size
  numHiddenLayers: number;            // num_hidden_layers
  numAttentionHeads: number;          // num_attention_heads
  maxPositionEmbeddings: number;      // max_position_embeddings
  hiddenAct: "quick_gelu" | "gelu";   // hidden_act
  layerNormEps: number;               // layer_norm_eps
  eosTokenId: number;                 // eos_token_id (legacy value 2 in SD configs: pooling then uses argmax of ids)
}

export type ModelFamily = "sd1" | "sd2" | "sdxl";
export type PredictionType = "epsilon" | "v_prediction";

export interface PipelineConfig {
  family: ModelFamily;
  predictionType: PredictionType;
  unet: UNetConfig;
  vae: VaeConfig;
  textEncoder: TextEncoderConfig;
}

type Json = Record<string, unknown>;

function perLevel(value: unknown, levels: number, fallback: number): number[] {
  if (Array.isArray(value)) return value.map(Number);
  const v = value === null || value === undefined ? fallback : Number(value);
  return Array.from({ length: levels }, () => v);
}

export function unetConfigFromDiffusers(c: Json): UNetConfig {
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

export function vaeConfigFromDiffusers(c: Json): VaeConfig {
  return {
    inChannels: Number(c.in_channels ?? 3),
    outChannels: Number(c.out_channels ?? 3),
    latentChannels: Number(c.latent_channels ?? 4),
    blockOutChannels: (c.block_out_channels as number[]) ?? [128, 256, 512, 512],
    layersPerBlock: Number(c.layers_per_block ?? 2),
    normNumGroups: Number(c.norm_num_groups ?? 32),
    scalingFactor: Number(c.scaling_factor ?? 0.18215),
    useQuantConv: Boolean(c.use_quant_conv ?? true),
    usePostQuantConv: Boolean(c.use_post_quant_conv ?? true),
    midBlockAddAttention: Boolean(c.mid_block_add_attention ?? true),
  };
}

export function textEncoderConfigFromTransformers(c: Json): TextEncoderConfig {
  return {
    vocabSize: Number(c.vocab_size ?? 49408),
    hiddenSize: Number(c.hidden_size ?? 768),
    intermediateSize: Number(c.intermediate_size ?? 3072),
    numHiddenLayers: Number(c.num_hidden_layers ?? 12),
    numAttentionHeads: Number(c.num_attention_heads ?? 12),
    maxPositionEmbeddings: Number(c.max_position_embeddings ?? 77),
    hiddenAct: (c.hidden_act as "quick_gelu" | "gelu") ?? "quick_gelu",
    layerNormEps: Number(c.layer_norm_eps ?? 1e-5),
    eosTokenId: Number(c.eos_token_id ?? 2),
  };
}

/** The published Stable Diffusion 1.x architecture (v1-inference.yaml / runwayml/stable-diffusion-v1-5). */
export const SD15: PipelineConfig = {
  family: "sd1",
  predictionType: "epsilon",
  unet: unetConfigFromDiffusers({ sample_size: 64, norm_num_groups: 32, attention_head_dim: 8 }),
  vae: vaeConfigFromDiffusers({}),
  textEncoder: textEncoderConfigFromTransformers({}),
};
