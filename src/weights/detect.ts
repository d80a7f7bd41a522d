import { CheckpointError, UnsupportedModelError } from "../errors.js";
import { TEXT_CONDITIONING, type ModelFamily, type PipelineConfig, type PredictionType } from "../configs/pipeline.js";
import { textEncoderConfigFromTransformers, type TextEncoderConfig } from "../configs/text-encoder.js";
import { unetConfigFromDiffusers, type UNetConfig } from "../configs/unet.js";
import { vaeConfigFromDiffusers, type VaeConfig } from "../configs/vae.js";
import { LDM_PARTS, mapLdmShapes, type Component, type LdmPart } from "./ldm-keymap.js";
import { PART_PATTERNS, type PartKind } from "./part-patterns.js";
import type { WeightSource } from "./weight-source.js";

/**
 * What architecture a set of tensors has: the family (SD1, SD2, SDXL base or refiner), the inpainting variant, and
 * the configs that the shapes determine, with each family's published values for what shapes cannot show. The
 * reverse direction (the shapes a config implies) is the network builders' to say (models/param-shapes.ts);
 * `checkShapes` here compares a weight source with such a list.
 */

export type ShapeMap = ReadonlyMap<string, readonly number[]>;
type Json = Record<string, unknown>;

const UNET_PREFIX = "model.diffusion_model.";

/**
 * What weights cannot show, per family, with the values of the published configs (v1-inference.yaml,
 * stabilityai/stable-diffusion-2-1 and -2-1-base, stabilityai/stable-diffusion-xl-base-1.0 and -refiner-1.0), and
 * the widths those values are certain for. Distilled models (BK-SDM, SSD-1B, Segmind Vega) keep their family's
 * widths with fewer blocks, levels or transformer layers, which the shapes show.
 */
interface FamilyDefaults {
  name: string;
  /** UNet channels per level (a distilled UNet may have fewer levels), cross-attention width, VAE channels, text widths. */
  widths: { unet: readonly number[]; context: number; vae: readonly number[]; text: readonly number[] };
  /** Attention heads of a level with this many channels (SD1: 8 everywhere; later families: 64-wide heads). */
  heads: (channels: number) => number;
  normGroups: number;
  /** Latent size the model was trained at (for SD2 it depends on the prediction type, see predictionDefaults). */
  sampleSize: number;
  vaeScaling: number;
}

const CLIP_HEAD_WIDTH = 64; // CLIP and OpenCLIP text towers use 64-wide heads (ViT-L 768 -> 12, ViT-H 1024 -> 16, bigG 1280 -> 20)

const FAMILY_DEFAULTS: Readonly<Record<ModelFamily, FamilyDefaults>> = {
  sd1: {
    name: "Stable Diffusion 1.x",
    widths: { unet: [320, 640, 1280, 1280], context: 768, vae: [128, 256, 512, 512], text: [768] },
    heads: () => 8,
    normGroups: 32,
    sampleSize: 64,
    vaeScaling: 0.18215,
  },
  sd2: {
    name: "Stable Diffusion 2.x",
    widths: { unet: [320, 640, 1280, 1280], context: 1024, vae: [128, 256, 512, 512], text: [1024] },
    heads: (c) => c / 64,
    normGroups: 32,
    sampleSize: 96,
    vaeScaling: 0.18215,
  },
  sdxl: {
    name: "Stable Diffusion XL",
    widths: { unet: [320, 640, 1280], context: 2048, vae: [128, 256, 512, 512], text: [768, 1280] },
    heads: (c) => c / 64,
    normGroups: 32,
    sampleSize: 128,
    vaeScaling: 0.13025,
  },
  "sdxl-refiner": {
    name: "Stable Diffusion XL refiner",
    widths: { unet: [384, 768, 1536, 1536], context: 1280, vae: [128, 256, 512, 512], text: [1280] },
    heads: (c) => c / 64,
    normGroups: 32,
    sampleSize: 128,
    vaeScaling: 0.13025,
  },
};

/** The published UNet widths of a family (per level, and the cross-attention width) and its pooled text width. */
export function familyWidths(family: ModelFamily): { unet: readonly number[]; context: number; pooled: number } {
  const w = FAMILY_DEFAULTS[family].widths;
  return { unet: w.unet, context: w.context, pooled: w.text[w.text.length - 1]! };
}

/** A human name for a family, for messages. */
export function familyName(family: ModelFamily): string {
  return FAMILY_DEFAULTS[family].name;
}

/** The family whose UNet cross-attends to text of this width (768 SD1, 1024 SD2, 2048 SDXL, 1280 the SDXL refiner). */
export function familyOfContextWidth(width: number): ModelFamily | undefined {
  return (Object.keys(FAMILY_DEFAULTS) as ModelFamily[]).find((f) => FAMILY_DEFAULTS[f].widths.context === width);
}

export interface FamilyEvidence {
  family: ModelFamily;
  /** The key or value that decided it, for messages. */
  evidence: string;
}

interface FamilyProbe {
  family: ModelFamily;
  /** Returns the evidence when the probe fires. */
  test(shapes: ShapeMap): string | undefined;
}

// First match wins: refiners also carry SDXL's label_emb, SDXL files SD1-looking UNet keys, SD2 ones SD1-looking VAE
// keys. diffusers' from_single_file tells them apart by the same keys (CHECKPOINT_KEY_NAMES in single_file_utils.py).
const FAMILY_PROBES: readonly FamilyProbe[] = [
  {
    family: "sdxl-refiner",
    test: (s) =>
      present(s, (k) => k.startsWith(`${UNET_PREFIX}label_emb.`))
        ? prefixed(s, "conditioner.embedders.0.model.", "SDXL refiner's single OpenCLIP bigG conditioner")
        : undefined,
  },
  { family: "sdxl", test: (s) => prefixed(s, "conditioner.embedders.", "SDXL text conditioners") },
  { family: "sdxl", test: (s) => prefixed(s, `${UNET_PREFIX}label_emb.`, "SDXL size/crop embedding") },
  { family: "sd2", test: (s) => prefixed(s, "cond_stage_model.model.", "OpenCLIP ViT-H text encoder") },
  {
    family: "sd2",
    test: (s) => {
      const k = [...s.keys()].find((n) => n.startsWith(UNET_PREFIX) && n.endsWith(".attn2.to_k.weight"));
      return k && s.get(k)![1] === 1024 ? `cross-attention width 1024 in "${k}"` : undefined;
    },
  },
  { family: "sd1", test: (s) => prefixed(s, "cond_stage_model.transformer.", "CLIP ViT-L text encoder") },
];

function prefixed(s: ShapeMap, prefix: string, what: string): string | undefined {
  return present(s, (k) => k.startsWith(prefix)) && `${what}, ${prefix}*`;
}

function present(s: ShapeMap, pred: (k: string) => boolean): string | undefined {
  for (const k of s.keys()) if (pred(k)) return `"${k}" present`;
  return undefined;
}

/** What to do instead with a file that is a part or an add-on (part-patterns.ts says which). */
const NOT_A_CHECKPOINT: Readonly<Record<PartKind, string>> = {
  lora: "a LoRA, which modifies a checkpoint: open a checkpoint and apply the LoRA to it",
  embedding: "a textual-inversion embedding: use it with a checkpoint",
  controlnet: "a ControlNet, which guides a checkpoint: open a checkpoint and use the ControlNet with it",
  "t2i-adapter": "a T2I-Adapter, which guides a checkpoint: open a checkpoint and use the adapter as a control model",
  vae: "a standalone VAE: open a whole checkpoint (a VAE swap is a separate option)",
  "diffusers-component": "one component of a diffusers folder: open the whole folder (the one with model_index.json)",
  "text-encoder": "a bare text encoder: open a whole checkpoint",
};

/** The family of a single-file checkpoint from its key names (and one width). */
export function detectLdmFamily(shapes: ShapeMap, origin: string): FamilyEvidence {
  if (!present(shapes, (k) => k.startsWith(UNET_PREFIX))) {
    for (const [kind, re] of PART_PATTERNS) {
      const k = [...shapes.keys()].find((n) => re.test(n));
      if (k)
        throw new CheckpointError(
          `${origin}: this looks like ${NOT_A_CHECKPOINT[kind]} (it has "${k}" and no ${UNET_PREFIX}* tensors)`,
        );
    }
    throw new CheckpointError(
      `${origin}: no ${UNET_PREFIX}* tensors, so this is not a single-file Stable Diffusion checkpoint ` +
        `(first keys: ${
          [...shapes.keys()]
            .slice(0, 3)
            .map((k) => `"${k}"`)
            .join(", ") || "none"
        })`,
    );
  }
  for (const p of FAMILY_PROBES) {
    const evidence = p.test(shapes);
    if (evidence) return { family: p.family, evidence };
  }
  throw new CheckpointError(
    `${origin}: has a UNet but no text encoder (cond_stage_model.* for SD1/SD2, conditioner.embedders.* for SDXL); ` +
      `UNet-only files cannot be run alone: use a full checkpoint`,
  );
}

/** The family of a diffusers folder from its config files. */
export function detectDiffusersFamily(
  modelIndex: Json | undefined,
  unet: Json,
  textEncoder: Json | undefined,
): FamilyEvidence {
  const cls = String(modelIndex?._class_name ?? "");
  const xl = cls.includes("XL")
    ? `model_index.json _class_name ${cls}`
    : modelIndex && "text_encoder_2" in modelIndex
      ? "model_index.json lists text_encoder_2"
      : unet.addition_embed_type === "text_time"
        ? "unet addition_embed_type text_time"
        : undefined;
  if (xl) {
    // The refiner has no CLIP ViT-L (text_encoder [null, null]) and conditions on an aesthetic score.
    const te = modelIndex?.text_encoder;
    const noClipL =
      modelIndex !== undefined && (te === undefined || (Array.isArray(te) && te.every((v) => v === null)));
    if (noClipL || modelIndex?.requires_aesthetics_score === true) {
      return {
        family: "sdxl-refiner",
        evidence: `${xl}, ${noClipL ? "no text_encoder" : "requires_aesthetics_score"}`,
      };
    }
    return { family: "sdxl", evidence: xl };
  }
  if (unet.cross_attention_dim === 1024) return { family: "sd2", evidence: "unet cross_attention_dim 1024" };
  if (textEncoder?.hidden_act === "gelu") return { family: "sd2", evidence: "text_encoder hidden_act gelu (OpenCLIP)" };
  if (unet.use_linear_projection === true) return { family: "sd2", evidence: "unet use_linear_projection" };
  return { family: "sd1", evidence: "CLIP ViT-L style text encoder and conv projections" };
}

/** Whether a UNet with these input channels is an inpainting model; refuses the conditioning variants we cannot feed. */
export function inpaintingFromInChannels(inChannels: number, origin: string): boolean {
  if (inChannels === 4) return false;
  if (inChannels === 9) return true;
  const guess = inChannels === 8 ? " (InstructPix2Pix-style image conditioning?)" : "";
  throw new UnsupportedModelError(
    `${origin}: the UNet takes ${inChannels} input channels${guess}; supported are 4 (text-to-image) and 9 (inpainting)`,
  );
}

export interface Detection {
  family: ModelFamily;
  evidence: string;
  inpainting: boolean;
  /** The configs read from the shapes, with the family's defaults for the rest (prediction: see predictionDefaults). */
  config: PipelineConfig;
  /** Where each of the family's networks lives in the file. */
  parts: readonly LdmPart[];
  /** Values the weights cannot show, taken from the family's published configs. */
  assumed: string[];
  /** The widths are the family's published ones, so every assumed value is certain. Otherwise pass a config folder. */
  standardSizes: boolean;
}

const COMPONENT_WORDS: Readonly<Record<Component, string>> = {
  unet: "UNet",
  vae: "VAE",
  textEncoder: "text encoder",
  textEncoder2: "second text encoder",
  controlnet: "ControlNet",
};

/**
 * Detects a single-file checkpoint in the original layout from its {name: shape} map: the family, then the configs
 * that the shapes determine, with the family's published values for the rest.
 */
export function detectLdmCheckpoint(stored: ShapeMap, origin: string): Detection {
  const f = detectLdmFamily(stored, origin);
  const defaults = FAMILY_DEFAULTS[f.family];
  const parts = LDM_PARTS[f.family];
  for (const part of parts) {
    if (!present(stored, (k) => k.startsWith(part.prefix))) {
      throw new CheckpointError(
        `${origin}: no ${part.prefix}* tensors (the ${COMPONENT_WORDS[part.component]}); a ${defaults.name} single-file checkpoint ` +
          `holds ${parts.map((p) => `${p.prefix}*`).join(", ")}`,
      );
    }
  }
  const shapes = new Map(parts.map((p) => [p.component, mapLdmShapes(p, stored, origin)] as const));
  const where = (p: LdmPart) => `${origin} (${p.prefix}*)`;
  const part = (c: Component) => parts.find((p) => p.component === c)!;
  const texts = parts
    .filter((p) => p.layout === "clip" || p.layout === "open-clip")
    .map((p) => textEncoderFromShapes(shapes.get(p.component)!, where(p), p, f.family));
  const pooledWidth = texts[texts.length - 1]!.projectionDim;
  const unet = unetConfigFromShapes(shapes.get("unet")!, where(part("unet")), f.family, pooledWidth);
  const vae = vaeConfigFromShapes(shapes.get("vae")!, where(part("vae")), f.family);
  const context = texts.reduce((sum, t) => sum + t.hiddenSize, 0);
  if (unet.crossAttentionDim !== context) {
    throw new CheckpointError(
      `${origin}: the UNet attends to ${unet.crossAttentionDim}-wide text features but the text encoder${texts.length > 1 ? "s produce" : " produces"} ${context}; ` +
        `the UNet and text encoder come from different models`,
    );
  }
  const inpainting = inpaintingFromInChannels(unet.inChannels, origin);
  const w = defaults.widths;
  const standardSizes =
    unet.blockOutChannels.length <= w.unet.length &&
    unet.blockOutChannels.every((c, i) => c === w.unet[i]) &&
    unet.crossAttentionDim === w.context &&
    same(vae.blockOutChannels, w.vae) &&
    same(
      texts.map((t) => t.hiddenSize),
      w.text,
    );
  const assumed = [
    `UNet attention heads [${unet.attentionHeads.join(",")}] (${f.family === "sd1" ? "8 per level" : "64-wide heads"})`,
    `group norm groups ${defaults.normGroups} (UNet and VAE)`,
    ...texts.map(
      (t, i) =>
        `text encoder${texts.length > 1 ? ` ${i + 1}` : ""}: ${t.numAttentionHeads} heads (64 wide), activation ${t.hiddenAct}`,
    ),
    `VAE scaling factor ${defaults.vaeScaling}`,
    ...(unet.additionTimeEmbedDim !== null
      ? [`${TEXT_CONDITIONING[f.family].timeIds.length} time ids (${TEXT_CONDITIONING[f.family].timeIds.join(", ")})`]
      : []),
    f.family === "sd2"
      ? "prediction type and sample size from the weights (see predictionDefaults)"
      : `sample size ${defaults.sampleSize}, epsilon prediction`,
  ];
  const config: PipelineConfig = {
    family: f.family,
    predictionType: "epsilon",
    unet,
    vae,
    textEncoder: texts[0]!,
    ...(texts[1] ? { textEncoder2: texts[1] } : {}),
  };
  return {
    family: f.family,
    evidence: f.evidence,
    inpainting,
    config: predictionDefaults(config, "epsilon"),
    parts,
    assumed,
    standardSizes,
  };
}

/**
 * A detected config with its prediction type and what the tools tie to it: SD2 768-v models are v-prediction at
 * 96 latent pixels (768 px) with upcast attention, SD2 512-base models epsilon at 64 (the published configs of
 * stabilityai/stable-diffusion-2-1 and -2-1-base). Other families keep their sample size.
 */
export function predictionDefaults(config: PipelineConfig, prediction: PredictionType): PipelineConfig {
  if (config.family !== "sd2") return { ...config, predictionType: prediction };
  const v = prediction === "v_prediction";
  return {
    ...config,
    predictionType: prediction,
    unet: { ...config.unet, sampleSize: v ? 96 : 64, upcastAttention: v },
  };
}

/**
 * The diffusers name of the tensor whose spread tells an SD2 v-prediction UNet from an epsilon one: ComfyUI's rule
 * (comfy/supported_models.py, SD20.model_type) reads output_blocks.11.1.transformer_blocks.0.norm1.bias, the last
 * up level's last attention; v-prediction when its standard deviation exceeds 0.09. Inpainting UNets are epsilon.
 */
export function sd2PredictionProbe(unet: UNetConfig): string | undefined {
  if (unet.inChannels !== 4) return undefined;
  const levels = unet.blockOutChannels.length;
  const lastLayer = unet.layersPerBlock[0]!; // the last up level has layersPerBlock[0] + 1 layers
  return unet.upBlockTypes[levels - 1] === "CrossAttnUpBlock2D"
    ? `up_blocks.${levels - 1}.attentions.${lastLayer}.transformer_blocks.0.norm1.bias`
    : undefined;
}

/** ComfyUI's threshold on the probe's population standard deviation. */
export function sd2PredictionFromProbe(values: Float32Array): PredictionType {
  let mean = 0;
  for (const v of values) mean += v;
  mean /= values.length || 1;
  let variance = 0;
  for (const v of values) variance += (v - mean) ** 2;
  return Math.sqrt(variance / (values.length || 1)) > 0.09 ? "v_prediction" : "epsilon";
}

/**
 * Tensors of a single file's OpenCLIP tower (diffusers names) that the pipeline never runs, given the text encoder
 * config it uses: the text_projection when the config has none (SD2), and SD2's last block when the file holds one
 * more block than the config's layers (the stored tower is whole; SD2 stops one block short). diffusers'
 * from_single_file leaves out the same tensors (SD_2_TEXT_ENCODER_KEYS_TO_IGNORE).
 */
export function unusedTextTensor(
  family: ModelFamily,
  text: TextEncoderConfig,
  names: readonly string[],
): (name: string) => boolean {
  const layer = (k: string) => Number(/^text_model\.encoder\.layers\.(\d+)\./.exec(k)?.[1] ?? -1);
  const stored = new Set(names.map(layer).filter((l) => l >= 0)).size;
  const extraBlock = family === "sd2" && stored === text.numHiddenLayers + 1;
  return (k) =>
    (text.projectionDim === null && k === "text_projection.weight") ||
    (extraBlock && layer(k) === text.numHiddenLayers);
}

function same(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function need(s: ShapeMap, name: string, rank: number, origin: string): readonly number[] {
  const shape = s.get(name);
  if (!shape)
    throw new CheckpointError(
      `${origin}: missing tensor "${name}", needed to tell the architecture; the checkpoint is incomplete`,
    );
  if (shape.length !== rank) {
    throw new CheckpointError(
      `${origin}: "${name}" has shape [${shape.join(",")}], expected ${rank} dimensions; the checkpoint is of another architecture`,
    );
  }
  return shape;
}

/** Whether a transformer's proj_in is a Linear ([C, C], SD2 and SDXL) rather than a 1x1 conv ([C, C, 1, 1], SD1). */
function linearProjection(s: ShapeMap, name: string, origin: string): boolean {
  const shape = s.get(name);
  if (!shape)
    throw new CheckpointError(
      `${origin}: missing tensor "${name}", needed to tell the architecture; the checkpoint is incomplete`,
    );
  return shape.length === 2;
}

/** The distinct values of the first capture group over all names. */
function indices(s: ShapeMap, re: RegExp): number[] {
  const out = new Set<number>();
  for (const k of s.keys()) {
    const m = re.exec(k);
    if (m) out.add(Number(m[1]));
  }
  return [...out].sort((a, b) => a - b);
}

/** Count of blocks from their indices, which must run 0..n-1 without gaps (0 when there are none and `optional`). */
function countOf(s: ShapeMap, re: RegExp, what: string, origin: string, optional = false): number {
  const ids = indices(s, re);
  if ((ids.length === 0 && !optional) || ids.some((v, i) => v !== i)) {
    throw new CheckpointError(
      `${origin}: ${what} indices [${ids.join(",")}] are not 0..n-1; the checkpoint is incomplete or of another architecture`,
    );
  }
  return ids.length;
}

const esc = (prefix: string) => prefix.replace(/\./g, "\\.");

/** Transformer blocks inside one attention (0 when the attention is absent). */
function depthOf(s: ShapeMap, attention: string, origin: string): number {
  return countOf(
    s,
    new RegExp(`^${esc(attention)}\\.transformer_blocks\\.(\\d+)\\.`),
    `${attention} transformer block`,
    origin,
    true,
  );
}

/** The encoder half of a UNet (or ControlNet) read from its diffusers-named shapes: config.json fields and what the up path needs. */
export interface EncoderShapes {
  /** config.json keys of the encoder part, with the family's values for what shapes cannot show. */
  json: Record<string, unknown>;
  /** Transformer blocks of the mid block's attention (0 without one). */
  midDepth: number;
  /** From the first attention found, when the encoder has one. */
  crossAttentionDim?: number;
  linear?: boolean;
}

/**
 * The encoder half from diffusers-named shapes: levels, ResNets and transformer depth per level and per block (so
 * distilled models need no config), the mid block, SDXL's add_embedding and LCM's cond_proj; heads and norm groups
 * from the family defaults. `pooledWidth`: the pooled text width SDXL's add_embedding takes besides the ids.
 */
export function encoderFromShapes(
  s: ShapeMap,
  origin: string,
  family: ModelFamily,
  pooledWidth: number | null,
): EncoderShapes {
  const defaults = FAMILY_DEFAULTS[family];
  const inChannels = need(s, "conv_in.weight", 4, origin)[1]!;
  const c0 = need(s, "conv_in.weight", 4, origin)[0]!;
  const levels = countOf(s, /^down_blocks\.(\d+)\./, "down block", origin);
  const blockOutChannels: number[] = [];
  const layersPerBlock: number[] = [];
  const downBlockTypes: string[] = [];
  const downDepths: number[][] = [];
  let crossAttentionDim: number | undefined;
  let linear: boolean | undefined;
  for (let l = 0; l < levels; l++) {
    blockOutChannels.push(need(s, `down_blocks.${l}.resnets.0.conv1.weight`, 4, origin)[0]!);
    const layers = countOf(
      s,
      new RegExp(`^down_blocks\\.${l}\\.resnets\\.(\\d+)\\.`),
      `down_blocks.${l} resnet`,
      origin,
    );
    layersPerBlock.push(layers);
    const depths = Array.from({ length: layers }, (_, j) => depthOf(s, `down_blocks.${l}.attentions.${j}`, origin));
    const cross = depths.some((d) => d > 0);
    downBlockTypes.push(cross ? "CrossAttnDownBlock2D" : "DownBlock2D");
    downDepths.push(depths);
    if (cross) {
      const attn = `down_blocks.${l}.attentions.0`;
      crossAttentionDim ??= need(s, `${attn}.transformer_blocks.0.attn2.to_k.weight`, 2, origin)[1];
      linear ??= linearProjection(s, `${attn}.proj_in.weight`, origin);
    }
  }
  if (blockOutChannels[0] !== c0) {
    throw new CheckpointError(
      `${origin}: conv_in has ${c0} output channels but the first level ${blockOutChannels[0]}; the network is inconsistent`,
    );
  }
  const midDepth = depthOf(s, "mid_block.attentions.0", origin);
  const midBlockType =
    midDepth > 0 ? "UNetMidBlock2DCrossAttn" : s.has("mid_block.resnets.0.conv1.weight") ? "UNetMidBlock2D" : null;
  if (midDepth > 0) {
    crossAttentionDim ??= need(s, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight", 2, origin)[1];
    linear ??= linearProjection(s, "mid_block.attentions.0.proj_in.weight", origin);
  }
  const addEmbedding = s.get("add_embedding.linear_1.weight");
  const condProj = s.get("time_embedding.cond_proj.weight");
  let timeIdWidth: number | null = null;
  if (addEmbedding) {
    // SDXL's add_embedding takes the pooled text embeds and one sinusoid per time id (6 for the base model, 5 for
    // the refiner), so the id width follows from the input width: 256 in the published models.
    const ids = TEXT_CONDITIONING[family].timeIds.length;
    const total = need(s, "add_embedding.linear_1.weight", 2, origin)[1]!;
    timeIdWidth = pooledWidth !== null && ids > 0 ? (total - pooledWidth) / ids : NaN;
    if (!Number.isInteger(timeIdWidth) || timeIdWidth <= 0 || timeIdWidth % 2 !== 0) {
      throw new CheckpointError(
        `${origin}: add_embedding takes ${total} features, which is not the pooled text width ${pooledWidth ?? "(none)"} plus ${ids} time ids of one even width; ` +
          `the network does not belong to this ${familyName(family)} model's text encoders`,
      );
    }
  }
  return {
    json: {
      in_channels: inChannels,
      block_out_channels: blockOutChannels,
      down_block_types: downBlockTypes,
      layers_per_block: layersPerBlock.every((n) => n === layersPerBlock[0]) ? layersPerBlock[0] : layersPerBlock,
      attention_head_dim: blockOutChannels.map(defaults.heads),
      transformer_layers_per_block: downDepths,
      mid_block_type: midBlockType,
      norm_num_groups: defaults.normGroups,
      addition_embed_type: addEmbedding ? "text_time" : null,
      addition_time_embed_dim: timeIdWidth,
      projection_class_embeddings_input_dim: addEmbedding
        ? need(s, "add_embedding.linear_1.weight", 2, origin)[1]
        : null,
      time_cond_proj_dim: condProj ? need(s, "time_embedding.cond_proj.weight", 2, origin)[1] : null,
    },
    midDepth,
    ...(crossAttentionDim !== undefined ? { crossAttentionDim } : {}),
    ...(linear !== undefined ? { linear } : {}),
  };
}

/**
 * UNetConfig from diffusers-named UNet shapes: the encoder half (encoderFromShapes), then the up levels and the
 * output head; heads, norm groups and sample size from the family defaults.
 */
export function unetConfigFromShapes(
  s: ShapeMap,
  origin: string,
  family: ModelFamily = "sd1",
  pooledWidth: number | null = null,
): UNetConfig {
  const defaults = FAMILY_DEFAULTS[family];
  const encoder = encoderFromShapes(s, origin, family, pooledWidth);
  const outChannels = need(s, "conv_out.weight", 4, origin)[0]!;
  const levels = (encoder.json.block_out_channels as number[]).length;
  const layersPerBlock = (encoder.json.transformer_layers_per_block as number[][]).map((d) => d.length);
  const upLevels = countOf(s, /^up_blocks\.(\d+)\./, "up block", origin);
  if (upLevels !== levels)
    throw new CheckpointError(`${origin}: ${levels} down levels but ${upLevels} up levels; the UNet is incomplete`);
  const upBlockTypes: string[] = [];
  const upDepths: number[][] = [];
  let { crossAttentionDim, linear } = encoder;
  for (let l = 0; l < levels; l++) {
    const layers = countOf(s, new RegExp(`^up_blocks\\.${l}\\.resnets\\.(\\d+)\\.`), `up_blocks.${l} resnet`, origin);
    if (layers !== layersPerBlock[levels - 1 - l]! + 1) {
      throw new CheckpointError(
        `${origin}: up_blocks.${l} has ${layers} resnets but down_blocks.${levels - 1 - l} has ${layersPerBlock[levels - 1 - l]} (expected one more); the UNet is inconsistent`,
      );
    }
    const depths = Array.from({ length: layers }, (_, j) => depthOf(s, `up_blocks.${l}.attentions.${j}`, origin));
    const cross = depths.some((d) => d > 0);
    upBlockTypes.push(cross ? "CrossAttnUpBlock2D" : "UpBlock2D");
    upDepths.push(depths);
    if (cross) {
      crossAttentionDim ??= need(s, `up_blocks.${l}.attentions.0.transformer_blocks.0.attn2.to_k.weight`, 2, origin)[1];
      linear ??= linearProjection(s, `up_blocks.${l}.attentions.0.proj_in.weight`, origin);
    }
  }
  if (crossAttentionDim === undefined)
    throw new CheckpointError(
      `${origin}: the UNet has no cross-attention anywhere; it is not a text-conditioned Stable Diffusion UNet`,
    );
  const config = unetConfigFromDiffusers(
    {
      ...encoder.json,
      out_channels: outChannels,
      up_block_types: upBlockTypes,
      cross_attention_dim: crossAttentionDim,
      reverse_transformer_layers_per_block: upDepths,
      use_linear_projection: linear ?? false,
      sample_size: defaults.sampleSize,
    },
    origin,
  );
  // diffusers derives the mid block's depth from the last level's; the weights say it directly.
  return encoder.midDepth > 0 ? { ...config, midTransformerLayers: encoder.midDepth } : config;
}

/** VaeConfig from diffusers-named VAE shapes; norm groups and scaling factor from the family. */
export function vaeConfigFromShapes(s: ShapeMap, origin: string, family: ModelFamily = "sd1"): VaeConfig {
  const { vaeScaling: scalingFactor, normGroups } = FAMILY_DEFAULTS[family];
  const inChannels = need(s, "encoder.conv_in.weight", 4, origin)[1]!;
  const outChannels = need(s, "decoder.conv_out.weight", 4, origin)[0]!;
  const latentChannels = need(s, "decoder.conv_in.weight", 4, origin)[1]!;
  const levels = countOf(s, /^encoder\.down_blocks\.(\d+)\./, "encoder down block", origin);
  const blockOutChannels = Array.from(
    { length: levels },
    (_, l) => need(s, `encoder.down_blocks.${l}.resnets.0.conv1.weight`, 4, origin)[0]!,
  );
  return vaeConfigFromDiffusers({
    in_channels: inChannels,
    out_channels: outChannels,
    latent_channels: latentChannels,
    block_out_channels: blockOutChannels,
    layers_per_block: countOf(s, /^encoder\.down_blocks\.0\.resnets\.(\d+)\./, "encoder.down_blocks.0 resnet", origin),
    norm_num_groups: normGroups,
    scaling_factor: scalingFactor,
    use_quant_conv: s.has("quant_conv.weight"),
    use_post_quant_conv: s.has("post_quant_conv.weight"),
    mid_block_add_attention: s.has("encoder.mid_block.attentions.0.to_q.weight"),
  });
}

/** TextEncoderConfig from transformers-named CLIP text shapes; heads assume CLIP's 64-wide heads. */
export function textEncoderConfigFromShapes(
  s: ShapeMap,
  origin: string,
  opts: { act?: "quick_gelu" | "gelu"; layers?: number } = {},
): TextEncoderConfig {
  const [vocab, hidden] = need(s, "text_model.embeddings.token_embedding.weight", 2, origin) as [number, number];
  const positions = need(s, "text_model.embeddings.position_embedding.weight", 2, origin)[0]!;
  const intermediate = need(s, "text_model.encoder.layers.0.mlp.fc1.weight", 2, origin)[0]!;
  const projection = s.get("text_projection.weight");
  return textEncoderConfigFromTransformers(
    {
      vocab_size: vocab,
      hidden_size: hidden,
      intermediate_size: intermediate,
      num_hidden_layers:
        opts.layers ?? countOf(s, /^text_model\.encoder\.layers\.(\d+)\./, "text encoder layer", origin),
      num_attention_heads: hidden % CLIP_HEAD_WIDTH === 0 ? hidden / CLIP_HEAD_WIDTH : 1,
      max_position_embeddings: positions,
      hidden_act: opts.act ?? "quick_gelu",
      // The legacy value of every SD text encoder config: pooling takes the argmax of the ids.
      eos_token_id: 2,
      projection_dim: projection?.[0],
    },
    { withProjection: projection !== undefined, origin },
  );
}

/**
 * A single file's text encoder: CLIP ViT-L (transformers layout, quick_gelu) or an OpenCLIP tower (gelu). SD2 uses
 * OpenCLIP ViT-H's penultimate block output with the final norm ("penultimate" in the original code), so its text
 * encoder is the stored blocks less the last, as diffusers' stabilityai/stable-diffusion-2-1 config has it (23 of
 * 24; from_single_file ignores resblocks.23) and without text_projection, which SD2 never uses. SDXL uses every
 * bigG block (the penultimate hidden state for the context, the last for the pooled text_embeds) and its projection.
 */
function textEncoderFromShapes(s: ShapeMap, origin: string, part: LdmPart, family: ModelFamily): TextEncoderConfig {
  if (part.layout === "clip") return textEncoderConfigFromShapes(s, origin, { act: "quick_gelu" });
  const stored = countOf(s, /^text_model\.encoder\.layers\.(\d+)\./, "text encoder layer", origin);
  if (family === "sd2") {
    const withoutProjection = new Map([...s].filter(([k]) => k !== "text_projection.weight"));
    return textEncoderConfigFromShapes(withoutProjection, origin, { act: "gelu", layers: Math.max(1, stored - 1) });
  }
  return textEncoderConfigFromShapes(s, origin, { act: "gelu" });
}

// ---- the shapes a config implies (diffusers names) ----

/**
 * Checks that a component has exactly the tensors its config implies. A mismatch means the config (detected or
 * given) does not describe these weights, which would otherwise surface as a wrong image or a builder crash.
 */
export function checkShapes(
  w: WeightSource & { locate?(name: string): string },
  expected: ReadonlyMap<string, readonly number[]>,
  what: string,
  hint: string,
): void {
  const locate = (k: string) => w.locate?.(k) ?? `${w.origin}: "${k}"`;
  const problems: string[] = [];
  const missing = [...expected.keys()].filter((k) => !w.has(k));
  if (missing.length) {
    const k = missing[0]!;
    problems.push(
      `${w.origin}: ${missing.length} ${what} tensor(s) missing, first "${k}" (expected shape [${expected.get(k)!.join(",")}])`,
    );
  }
  const wrong = [...expected.keys()].filter((k) => w.has(k) && !same(w.shape(k), expected.get(k)!));
  if (wrong.length) {
    const k = wrong[0]!;
    problems.push(
      `${locate(k)} has shape [${w.shape(k).join(",")}], expected [${expected.get(k)!.join(",")}]${wrong.length > 1 ? ` (and ${wrong.length - 1} more)` : ""}`,
    );
  }
  const extra = w.keys().filter((k) => !expected.has(k));
  if (extra.length)
    problems.push(
      `${locate(extra[0]!)} is not part of the ${what}${extra.length > 1 ? ` (and ${extra.length - 1} more unexpected)` : ""}`,
    );
  if (problems.length) throw new CheckpointError(`${problems.join("; ")}; ${hint}`);
}
