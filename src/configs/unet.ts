import { UnsupportedModelError } from "../errors.js";
import { perLevel, type ConfigJson } from "./json.js";

/** diffusers' mid_block_type values we build: a cross-attention mid block, a single ResNet, or none (distilled UNets). */
export type MidBlockType = "UNetMidBlock2DCrossAttn" | "UNetMidBlock2D" | null;

/**
 * The part of a UNet up to and including its middle block: the time embedding, conv_in, the down levels and the mid
 * block. A ControlNet is a copy of exactly this part (configs/controlnet.ts), so builders and parsers share it.
 * Field meanings follow diffusers' config.json keys (named in the comments).
 */
export interface UNetEncoderConfig {
  inChannels: number; // in_channels: 4, or 9 for inpainting checkpoints
  blockOutChannels: number[]; // block_out_channels, e.g. [320, 640, 1280, 1280]
  downBlockTypes: string[]; // down_block_types ("CrossAttnDownBlock2D" | "DownBlock2D")
  /** ResNets per down level (layers_per_block, one number or one per level); each up level has one more. */
  layersPerBlock: number[];
  crossAttentionDim: number; // cross_attention_dim (768 for SD1, 1024 for SD2, 2048 for SDXL)
  /**
   * Heads per level. diffusers' UNet2DConditionModel reads num_attention_heads and, when that is null, takes
   * attention_head_dim as the head COUNT (a naming quirk kept for compatibility): SD1's 8, SD2's [5,10,20,20].
   */
  attentionHeads: number[];
  /** Transformer blocks of each attention in each down level ([level][layer]; transformer_layers_per_block; 0 without attention). */
  downTransformerLayers: number[][];
  midBlockType: MidBlockType; // mid_block_type (null: no mid block, as in BK-SDM)
  midTransformerLayers: number; // transformer blocks of the mid block's attention (the last level's first; 0 without one)
  useLinearProjection: boolean; // use_linear_projection (false for SD1: 1x1 conv proj_in/out)
  upcastAttention: boolean; // upcast_attention (an fp16 remedy; changes nothing in fp32)
  normNumGroups: number; // norm_num_groups
  normEps: number; // norm_eps
  flipSinToCos: boolean; // flip_sin_to_cos
  freqShift: number; // freq_shift
  /** addition_embed_type: "text_time" (SDXL: pooled text embeds and size/crop ids added to the time embedding). */
  additionEmbedType: "text_time" | null;
  additionTimeEmbedDim: number | null; // addition_time_embed_dim: sinusoid width of each time id (SDXL 256)
  projectionClassEmbeddingsInputDim: number | null; // projection_class_embeddings_input_dim: pooled width + ids x that width
  /** time_cond_proj_dim: LCM's guidance embedding, projected (no bias) and added to the timestep's sinusoid. */
  timeCondProjDim: number | null;
}

/** UNet2DConditionModel's architecture: the encoder part, then the up path and the output head. */
export interface UNetConfig extends UNetEncoderConfig {
  outChannels: number; // out_channels
  upBlockTypes: string[]; // up_block_types ("UpBlock2D" | "CrossAttnUpBlock2D")
  /**
   * The same for the up levels in up order ([level][layer], layersPerBlock + 1 per level): reverse_transformer_layers_per_block
   * when given (SSD-1B and other asymmetric distillations), else the down levels' depths reversed.
   */
  upTransformerLayers: number[][];
  sampleSize: number; // sample_size (latent size the model was trained at)
}

/** Config keys whose non-default values describe architectures this builder does not have. */
const DEFAULTS_REQUIRED: ReadonlyArray<readonly [key: string, allowed: readonly unknown[]]> = [
  ["class_embed_type", [null, undefined]],
  ["num_class_embeds", [null, undefined]],
  ["encoder_hid_dim", [null, undefined]],
  ["encoder_hid_dim_type", [null, undefined]],
  ["time_embedding_type", ["positional", undefined]],
  ["time_embedding_act_fn", [null, undefined]],
  ["timestep_post_act", [null, undefined]],
  ["time_embedding_dim", [null, undefined]],
  ["act_fn", ["silu", undefined]],
  ["conv_in_kernel", [3, undefined]],
  ["conv_out_kernel", [3, undefined]],
  ["center_input_sample", [false, undefined]],
  ["dual_cross_attention", [false, undefined]],
  ["only_cross_attention", [false, undefined]],
  ["resnet_time_scale_shift", ["default", undefined]],
  ["resnet_skip_time_act", [false, undefined]],
  ["resnet_out_scale_factor", [1, undefined]],
  ["mid_block_scale_factor", [1, undefined]],
  ["downsample_padding", [1, undefined]],
  ["attention_type", ["default", undefined]],
  ["cross_attention_norm", [null, undefined]],
  ["class_embeddings_concat", [false, undefined]],
];

const DEFAULT_DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];
const DEFAULT_UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"];

export function unetConfigFromDiffusers(c: ConfigJson, origin = "unet/config.json"): UNetConfig {
  const encoder = unetEncoderConfigFromDiffusers(c, origin);
  const reversedLayers = [...encoder.layersPerBlock].reverse().map((n) => n + 1);
  let upTransformerLayers: number[][];
  if (c.reverse_transformer_layers_per_block === null || c.reverse_transformer_layers_per_block === undefined) {
    // diffusers reverses the per-level depths; per-block depths there need the reverse list (asymmetric UNets).
    const raw = Array.isArray(c.transformer_layers_per_block)
      ? c.transformer_layers_per_block
      : encoder.downTransformerLayers.map(() => c.transformer_layers_per_block ?? 1);
    if (raw.some(Array.isArray)) {
      throw new UnsupportedModelError(
        `${origin}: transformer_layers_per_block gives depths per block, so reverse_transformer_layers_per_block must give the up path's (as diffusers requires)`,
      );
    }
    upTransformerLayers = perBlock([...raw].reverse(), reversedLayers, "transformer_layers_per_block", origin);
  } else {
    upTransformerLayers = perBlock(
      c.reverse_transformer_layers_per_block,
      reversedLayers,
      "reverse_transformer_layers_per_block",
      origin,
    );
  }
  const upTypes = (c.up_block_types as string[]) ?? DEFAULT_UP;
  const config: UNetConfig = {
    ...encoder,
    outChannels: Number(c.out_channels ?? 4),
    upBlockTypes: upTypes,
    upTransformerLayers: zeroUnlessCross(upTransformerLayers, upTypes),
    sampleSize: Number(c.sample_size ?? 64),
  };
  checkUNetConfig(config, origin);
  return config;
}

/**
 * The encoder part of a UNet (or ControlNet) config.json: every key that describes the time embedding, the down levels
 * and the mid block, checked for architectures the builders do not have.
 */
export function unetEncoderConfigFromDiffusers(c: ConfigJson, origin: string): UNetEncoderConfig {
  for (const [key, allowed] of DEFAULTS_REQUIRED) {
    if (!allowed.includes(c[key])) {
      throw new UnsupportedModelError(
        `${origin}: ${key} ${JSON.stringify(c[key])} is not supported (Stable Diffusion UNets use ${JSON.stringify(allowed[0])})`,
      );
    }
  }
  const blockOutChannels = (c.block_out_channels as number[]) ?? [320, 640, 1280, 1280];
  const levels = blockOutChannels.length;
  // num_attention_heads wins when set; otherwise attention_head_dim holds the head count (diffusers' naming quirk).
  const heads = c.num_attention_heads ?? c.attention_head_dim ?? 8;
  const layersPerBlock = perLevel(c.layers_per_block, levels, 2);
  const downTransformerLayers = perBlock(
    c.transformer_layers_per_block,
    layersPerBlock,
    "transformer_layers_per_block",
    origin,
  );
  const midBlockType = c.mid_block_type === undefined ? "UNetMidBlock2DCrossAttn" : c.mid_block_type;
  if (midBlockType !== null && midBlockType !== "UNetMidBlock2DCrossAttn" && midBlockType !== "UNetMidBlock2D") {
    throw new UnsupportedModelError(
      `${origin}: mid_block_type ${JSON.stringify(midBlockType)} is not supported (UNetMidBlock2DCrossAttn, UNetMidBlock2D or null)`,
    );
  }
  const additionEmbedType = c.addition_embed_type ?? null;
  if (additionEmbedType !== null && additionEmbedType !== "text_time") {
    throw new UnsupportedModelError(
      `${origin}: addition_embed_type ${JSON.stringify(additionEmbedType)} is not supported (null, or "text_time" as in SDXL)`,
    );
  }
  const optional = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  // diffusers accepts one cross-attention width per level; Stable Diffusion models use one for all.
  const cross = Array.isArray(c.cross_attention_dim)
    ? [...new Set(c.cross_attention_dim.map(Number))]
    : [Number(c.cross_attention_dim ?? 768)];
  if (cross.length !== 1)
    throw new UnsupportedModelError(
      `${origin}: cross_attention_dim differs between levels (${JSON.stringify(c.cross_attention_dim)}); Stable Diffusion UNets use one width`,
    );
  // Levels without attention have no transformer blocks, whatever depth the config lists for them (diffusers ignores
  // it there); recording 0 keeps configs of the same architecture equal however they were written.
  const midTransformerLayers = downTransformerLayers[levels - 1]?.[0] ?? 1;
  const downTypes = (c.down_block_types as string[]) ?? DEFAULT_DOWN;
  const config: UNetEncoderConfig = {
    inChannels: Number(c.in_channels ?? 4),
    blockOutChannels,
    downBlockTypes: downTypes,
    layersPerBlock,
    crossAttentionDim: cross[0]!,
    attentionHeads: perLevel(heads, levels, 8),
    downTransformerLayers: zeroUnlessCross(downTransformerLayers, downTypes),
    midBlockType,
    // diffusers hands the mid block transformer_layers_per_block[-1]; with one attention it uses the first entry.
    midTransformerLayers: midBlockType === "UNetMidBlock2DCrossAttn" ? midTransformerLayers : 0,
    useLinearProjection: Boolean(c.use_linear_projection ?? false),
    upcastAttention: Boolean(c.upcast_attention ?? false),
    normNumGroups: Number(c.norm_num_groups ?? 32),
    normEps: Number(c.norm_eps ?? 1e-5),
    flipSinToCos: Boolean(c.flip_sin_to_cos ?? true),
    freqShift: Number(c.freq_shift ?? 0),
    additionEmbedType,
    additionTimeEmbedDim: optional(c.addition_time_embed_dim),
    projectionClassEmbeddingsInputDim: optional(c.projection_class_embeddings_input_dim),
    timeCondProjDim: optional(c.time_cond_proj_dim),
  };
  checkUNetEncoderConfig(config, origin);
  return config;
}

function zeroUnlessCross(depths: number[][], types: string[]): number[][] {
  return depths.map((d, i) => (types[i]?.startsWith("CrossAttn") ? d : d.map(() => 0)));
}

/** Consistency of the per-level lists and the SDXL embedding sizes, so that a bad config fails here with its name. */
export function checkUNetConfig(c: UNetConfig, origin: string): void {
  checkUNetEncoderConfig(c, origin);
  const levels = c.blockOutChannels.length;
  const lists: [string, unknown[]][] = [
    ["up_block_types", c.upBlockTypes],
    ["reverse_transformer_layers_per_block", c.upTransformerLayers],
  ];
  for (const [name, list] of lists) {
    if (list.length !== levels)
      throw new UnsupportedModelError(
        `${origin}: ${name} has ${list.length} entries for ${levels} levels (block_out_channels)`,
      );
  }
  for (const t of c.upBlockTypes)
    if (!["CrossAttnUpBlock2D", "UpBlock2D"].includes(t))
      throw new UnsupportedModelError(
        `${origin}: up block type "${t}" is not supported (CrossAttnUpBlock2D, UpBlock2D)`,
      );
  for (let i = 0; i < levels; i++) {
    const up = c.layersPerBlock[levels - 1 - i]! + 1;
    if (c.upTransformerLayers[i]!.length !== up) {
      throw new UnsupportedModelError(
        `${origin}: up level ${i} has ${up} layers but ${c.upTransformerLayers[i]!.length} transformer depths`,
      );
    }
  }
}

/** The same checks for the encoder part alone (a ControlNet's config). */
export function checkUNetEncoderConfig(c: UNetEncoderConfig, origin: string): void {
  const levels = c.blockOutChannels.length;
  const lists: [string, unknown[]][] = [
    ["down_block_types", c.downBlockTypes],
    ["layers_per_block", c.layersPerBlock],
    ["attention heads", c.attentionHeads],
    ["transformer_layers_per_block", c.downTransformerLayers],
  ];
  for (const [name, list] of lists) {
    if (list.length !== levels)
      throw new UnsupportedModelError(
        `${origin}: ${name} has ${list.length} entries for ${levels} levels (block_out_channels)`,
      );
  }
  for (const t of c.downBlockTypes)
    if (!["CrossAttnDownBlock2D", "DownBlock2D"].includes(t))
      throw new UnsupportedModelError(
        `${origin}: down block type "${t}" is not supported (CrossAttnDownBlock2D, DownBlock2D)`,
      );
  for (let i = 0; i < levels; i++) {
    if (c.downTransformerLayers[i]!.length !== c.layersPerBlock[i]) {
      throw new UnsupportedModelError(
        `${origin}: down level ${i} has ${c.layersPerBlock[i]} layers but ${c.downTransformerLayers[i]!.length} transformer depths`,
      );
    }
  }
  if (
    c.additionEmbedType === "text_time" &&
    (c.additionTimeEmbedDim === null || c.projectionClassEmbeddingsInputDim === null)
  ) {
    throw new UnsupportedModelError(
      `${origin}: addition_embed_type "text_time" needs addition_time_embed_dim and projection_class_embeddings_input_dim`,
    );
  }
}

/** A per-level value that may also be a list per block (diffusers accepts int, [int per level] or [[int per block]]). */
function perBlock(value: unknown, blocks: readonly number[], name: string, origin: string): number[][] {
  const levels = blocks.length;
  const perLevelValues: unknown[] = Array.isArray(value) ? value : Array.from({ length: levels }, () => value ?? 1);
  return perLevelValues.map((v, i) => uniform(v, blocks[i] ?? 0, name, origin));
}

function uniform(value: unknown, blocks: number, name: string, origin: string): number[] {
  if (Array.isArray(value)) {
    if (value.length !== blocks)
      throw new UnsupportedModelError(
        `${origin}: ${name} entry [${value.join(",")}] has ${value.length} values for ${blocks} blocks`,
      );
    return value.map(Number);
  }
  return Array.from({ length: blocks }, () => Number(value ?? 1));
}
