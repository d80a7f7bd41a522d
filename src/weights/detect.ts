import { CheckpointError, UnsupportedModelError } from "../errors.js";
import type { ModelFamily, PipelineConfig } from "../configs/pipeline.js";
import { textEncoderConfigFromTransformers, type TextEncoderConfig } from "../configs/text-encoder.js";
import { unetConfigFromDiffusers, type UNetConfig } from "../configs/unet.js";
import { vaeConfigFromDiffusers, type VaeConfig } from "../configs/vae.js";
import { LDM_PREFIXES, mapLdmShapes, type Component } from "./ldm-keymap.js";
import type { WeightSource } from "./weight-source.js";

/**
 * What architecture a set of tensors has: the family (SD1, SD2, SDXL), the inpainting variant, and the configs
 * that the shapes determine. The reverse direction (the shapes a config implies) is the network builders' to
 * say (models/param-shapes.ts); `checkShapes` here compares a weight source with such a list.
 */

export type ShapeMap = ReadonlyMap<string, readonly number[]>;
type Json = Record<string, unknown>;

const PLANNED = "SD2/SDXL support is planned; use an SD1.x checkpoint";

/** Published SD1.x sizes: when a checkpoint has them, the defaults for what shapes cannot show are certain. */
const SD1_SIZES = {
  unetChannels: [320, 640, 1280, 1280],
  contextDim: 768,
  vaeChannels: [128, 256, 512, 512],
  textHidden: 768,
};

/** What SD1 weights cannot show, with the values of the published SD1 configs (v1-inference.yaml). */
const SD1_DEFAULTS = {
  unetHeads: 8,          // num_heads: 8 at every level (the head width grows with the channels)
  normGroups: 32,        // GroupNorm(32, C) throughout UNet and VAE
  sampleSize: 64,        // trained at 512 px = 64 latent pixels
  vaeScaling: 0.18215,
  textHeadWidth: 64,     // CLIP's attention heads are 64 wide: ViT-L/14's 768 hidden -> 12 heads
  textAct: "quick_gelu",
  eosTokenId: 2,         // legacy value of the SD configs; pooling then takes the argmax of the ids
} as const;

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

// First match wins: SDXL files also carry SD1-looking UNet keys, SD2 ones SD1-looking VAE keys.
const FAMILY_PROBES: readonly FamilyProbe[] = [
  { family: "sdxl", test: (s) => prefixed(s, "conditioner.embedders.", "SDXL text conditioners") },
  { family: "sdxl", test: (s) => prefixed(s, `${LDM_PREFIXES.unet}label_emb.`, "SDXL size/crop embedding") },
  { family: "sd2", test: (s) => prefixed(s, "cond_stage_model.model.", "OpenCLIP ViT-H text encoder") },
  {
    family: "sd2",
    test: (s) => {
      const k = [...s.keys()].find((n) => n.startsWith(LDM_PREFIXES.unet) && n.endsWith(".attn2.to_k.weight"));
      return k && s.get(k)![1] === 1024 ? `cross-attention width 1024 in "${k}"` : undefined;
    },
  },
  { family: "sd1", test: (s) => prefixed(s, LDM_PREFIXES.textEncoder, "CLIP ViT-L text encoder") },
];

function prefixed(s: ShapeMap, prefix: string, what: string): string | undefined {
  return present(s, (k) => k.startsWith(prefix)) && `${what}, ${prefix}*`;
}

function present(s: ShapeMap, pred: (k: string) => boolean): string | undefined {
  for (const k of s.keys()) if (pred(k)) return `"${k}" present`;
  return undefined;
}

/** Files that are not whole checkpoints, recognised by a key, with what to do instead. */
const NOT_A_CHECKPOINT: ReadonlyArray<readonly [RegExp, string]> = [
  [/^lora_(unet|te\d?)_|\.lora_(down|up)\.weight$|\.lora_[AB]\.weight$/, "a LoRA, which modifies a checkpoint: open an SD1.x checkpoint and apply the LoRA to it"],
  [/^(string_to_param|emb_params|clip_[lg])(\.|$)/, "a textual-inversion embedding: use it with an SD1.x checkpoint"],
  [/^(encoder|decoder)\.conv_in\.weight$/, "a standalone VAE: open an SD1.x checkpoint (a VAE swap is a separate option)"],
  [/^(conv_in|time_embedding\.linear_1|down_blocks\.0\.resnets\.0\.conv1)\.weight$/, "one component of a diffusers folder: open the whole folder (the one with model_index.json)"],
  [/^text_model\.embeddings\.token_embedding\.weight$/, "a bare text encoder: open a whole SD1.x checkpoint"],
];

/** The family of a single-file checkpoint from its key names (and one width). */
export function detectLdmFamily(shapes: ShapeMap, origin: string): FamilyEvidence {
  if (!present(shapes, (k) => k.startsWith(LDM_PREFIXES.unet))) {
    for (const [re, what] of NOT_A_CHECKPOINT) {
      const k = [...shapes.keys()].find((n) => re.test(n));
      if (k) throw new CheckpointError(`${origin}: this looks like ${what} (it has "${k}" and no ${LDM_PREFIXES.unet}* tensors)`);
    }
    throw new CheckpointError(
      `${origin}: no ${LDM_PREFIXES.unet}* tensors, so this is not a single-file Stable Diffusion checkpoint ` +
        `(first keys: ${[...shapes.keys()].slice(0, 3).map((k) => `"${k}"`).join(", ") || "none"})`,
    );
  }
  for (const p of FAMILY_PROBES) {
    const evidence = p.test(shapes);
    if (evidence) return { family: p.family, evidence };
  }
  throw new CheckpointError(
    `${origin}: has a UNet but no text encoder (expected ${LDM_PREFIXES.textEncoder}* for SD1.x); ` +
      `UNet-only files cannot be run alone: use a full checkpoint`,
  );
}

/** The family of a diffusers folder from its config files. */
export function detectDiffusersFamily(modelIndex: Json | undefined, unet: Json, textEncoder: Json | undefined): FamilyEvidence {
  const cls = String(modelIndex?._class_name ?? "");
  if (cls.includes("XL")) return { family: "sdxl", evidence: `model_index.json _class_name ${cls}` };
  if (modelIndex && "text_encoder_2" in modelIndex) return { family: "sdxl", evidence: "model_index.json lists text_encoder_2" };
  if (unet.addition_embed_type === "text_time") return { family: "sdxl", evidence: "unet addition_embed_type text_time" };
  if (unet.cross_attention_dim === 1024) return { family: "sd2", evidence: "unet cross_attention_dim 1024" };
  if (textEncoder?.hidden_act === "gelu") return { family: "sd2", evidence: "text_encoder hidden_act gelu (OpenCLIP)" };
  if (unet.use_linear_projection === true) return { family: "sd2", evidence: "unet use_linear_projection" };
  return { family: "sd1", evidence: "CLIP ViT-L style text encoder and conv projections" };
}

/** Throws UnsupportedModelError for the families this version recognises but cannot run. */
export function refuseUnsupportedFamily(f: FamilyEvidence, origin: string): void {
  if (f.family === "sd1") return;
  const name = f.family === "sd2" ? "Stable Diffusion 2.x" : "Stable Diffusion XL";
  throw new UnsupportedModelError(`${origin}: this is a ${name} checkpoint (${f.evidence}); ${PLANNED}`);
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
  config: PipelineConfig;
  /** Values the weights cannot show, taken from the SD1 defaults. */
  assumed: string[];
  /** The sizes are SD1's published ones, so every assumed value is certain. Otherwise pass a config folder. */
  standardSizes: boolean;
}

/**
 * Detects a single-file checkpoint in the original layout from its {name: shape} map: refuses SD2/SDXL, then
 * derives the SD1 configs from the shapes.
 */
export function detectLdmCheckpoint(stored: ShapeMap, origin: string): Detection {
  const f = detectLdmFamily(stored, origin);
  refuseUnsupportedFamily(f, origin);
  for (const c of ["vae", "textEncoder"] as const) {
    if (!present(stored, (k) => k.startsWith(LDM_PREFIXES[c]))) {
      throw new CheckpointError(`${origin}: no ${LDM_PREFIXES[c]}* tensors; an SD1.x single-file checkpoint holds the UNet, the VAE and the text encoder`);
    }
  }
  const shapes = {
    unet: mapLdmShapes("unet", stored, origin),
    vae: mapLdmShapes("vae", stored, origin),
    textEncoder: mapLdmShapes("textEncoder", stored, origin),
  };
  const where = (c: Component) => `${origin} (${LDM_PREFIXES[c]}*)`;
  const unet = unetConfigFromShapes(shapes.unet, where("unet"));
  const vae = vaeConfigFromShapes(shapes.vae, where("vae"));
  const textEncoder = textEncoderConfigFromShapes(shapes.textEncoder, where("textEncoder"));
  if (unet.crossAttentionDim !== textEncoder.hiddenSize) {
    throw new CheckpointError(
      `${origin}: the UNet attends to ${unet.crossAttentionDim}-wide text features but the text encoder produces ${textEncoder.hiddenSize}; ` +
        `the UNet and text encoder come from different models`,
    );
  }
  const inpainting = inpaintingFromInChannels(unet.inChannels, origin);
  const standardSizes =
    same(unet.blockOutChannels, SD1_SIZES.unetChannels) && unet.crossAttentionDim === SD1_SIZES.contextDim &&
    same(vae.blockOutChannels, SD1_SIZES.vaeChannels) && textEncoder.hiddenSize === SD1_SIZES.textHidden;
  const assumed = [
    `UNet attention heads ${SD1_DEFAULTS.unetHeads} per level`,
    `group norm groups ${SD1_DEFAULTS.normGroups} (UNet and VAE)`,
    `text encoder attention heads ${textEncoder.numAttentionHeads} (head width ${SD1_DEFAULTS.textHeadWidth})`,
    `text encoder activation ${SD1_DEFAULTS.textAct}`,
    `VAE scaling factor ${SD1_DEFAULTS.vaeScaling}`,
    `sample size ${SD1_DEFAULTS.sampleSize}`,
    "epsilon prediction",
  ];
  return {
    family: f.family,
    evidence: f.evidence,
    inpainting,
    config: { family: "sd1", predictionType: "epsilon", unet, vae, textEncoder },
    assumed,
    standardSizes,
  };
}

function same(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function need(s: ShapeMap, name: string, rank: number, origin: string): readonly number[] {
  const shape = s.get(name);
  if (!shape) throw new CheckpointError(`${origin}: missing tensor "${name}", needed to tell the architecture; the checkpoint is incomplete`);
  if (shape.length !== rank) {
    throw new CheckpointError(`${origin}: "${name}" has shape [${shape.join(",")}], expected ${rank} dimensions; the checkpoint is of another architecture`);
  }
  return shape;
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

/** Level count from block indices, which must run 0..n-1 without gaps. */
function levelsOf(s: ShapeMap, re: RegExp, what: string, origin: string): number {
  const ids = indices(s, re);
  if (ids.length === 0 || ids.some((v, i) => v !== i)) {
    throw new CheckpointError(`${origin}: ${what} indices [${ids.join(",")}] are not 0..n-1; the checkpoint is incomplete or of another architecture`);
  }
  return ids.length;
}

/** UNetConfig from diffusers-named UNet shapes; heads and norm groups take the SD1 defaults. */
export function unetConfigFromShapes(s: ShapeMap, origin: string): UNetConfig {
  const [c0, inChannels] = need(s, "conv_in.weight", 4, origin) as [number, number];
  const outChannels = need(s, "conv_out.weight", 4, origin)[0]!;
  const levels = levelsOf(s, /^down_blocks\.(\d+)\./, "down block", origin);
  const upLevels = levelsOf(s, /^up_blocks\.(\d+)\./, "up block", origin);
  if (upLevels !== levels) throw new CheckpointError(`${origin}: ${levels} down levels but ${upLevels} up levels; the UNet is incomplete`);
  const layersPerBlock = levelsOf(s, /^down_blocks\.0\.resnets\.(\d+)\./, "down_blocks.0 resnet", origin);
  const blockOutChannels: number[] = [];
  const downBlockTypes: string[] = [];
  const upBlockTypes: string[] = [];
  const transformerLayers: number[] = [];
  let crossAttentionDim: number | undefined;
  let linear: boolean | undefined;
  for (let l = 0; l < levels; l++) {
    blockOutChannels.push(need(s, `down_blocks.${l}.resnets.0.conv1.weight`, 4, origin)[0]!);
    const attn = `down_blocks.${l}.attentions.0`;
    const hasAttn = s.has(`${attn}.proj_in.weight`);
    downBlockTypes.push(hasAttn ? "CrossAttnDownBlock2D" : "DownBlock2D");
    upBlockTypes.push(s.has(`up_blocks.${l}.attentions.0.proj_in.weight`) ? "CrossAttnUpBlock2D" : "UpBlock2D");
    transformerLayers.push(hasAttn ? indices(s, new RegExp(`^${attn.replace(/\./g, "\\.")}\\.transformer_blocks\\.(\\d+)\\.`)).length : 1);
    if (hasAttn) {
      crossAttentionDim ??= need(s, `${attn}.transformer_blocks.0.attn2.to_k.weight`, 2, origin)[1];
      linear ??= s.get(`${attn}.proj_in.weight`)!.length === 2;
    }
  }
  if (blockOutChannels[0] !== c0) {
    throw new CheckpointError(`${origin}: conv_in has ${c0} output channels but the first level ${blockOutChannels[0]}; the UNet is inconsistent`);
  }
  crossAttentionDim ??= need(s, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight", 2, origin)[1];
  return unetConfigFromDiffusers({
    in_channels: inChannels,
    out_channels: outChannels,
    block_out_channels: blockOutChannels,
    down_block_types: downBlockTypes,
    up_block_types: upBlockTypes,
    layers_per_block: layersPerBlock,
    cross_attention_dim: crossAttentionDim,
    attention_head_dim: SD1_DEFAULTS.unetHeads,
    transformer_layers_per_block: transformerLayers,
    use_linear_projection: linear ?? false,
    norm_num_groups: SD1_DEFAULTS.normGroups,
    sample_size: SD1_DEFAULTS.sampleSize,
  });
}

/** VaeConfig from diffusers-named VAE shapes; norm groups and scaling factor take the SD1 defaults. */
export function vaeConfigFromShapes(s: ShapeMap, origin: string): VaeConfig {
  const inChannels = need(s, "encoder.conv_in.weight", 4, origin)[1]!;
  const outChannels = need(s, "decoder.conv_out.weight", 4, origin)[0]!;
  const latentChannels = need(s, "decoder.conv_in.weight", 4, origin)[1]!;
  const levels = levelsOf(s, /^encoder\.down_blocks\.(\d+)\./, "encoder down block", origin);
  const blockOutChannels = Array.from({ length: levels }, (_, l) => need(s, `encoder.down_blocks.${l}.resnets.0.conv1.weight`, 4, origin)[0]!);
  return vaeConfigFromDiffusers({
    in_channels: inChannels,
    out_channels: outChannels,
    latent_channels: latentChannels,
    block_out_channels: blockOutChannels,
    layers_per_block: levelsOf(s, /^encoder\.down_blocks\.0\.resnets\.(\d+)\./, "encoder.down_blocks.0 resnet", origin),
    norm_num_groups: SD1_DEFAULTS.normGroups,
    scaling_factor: SD1_DEFAULTS.vaeScaling,
    use_quant_conv: s.has("quant_conv.weight"),
    use_post_quant_conv: s.has("post_quant_conv.weight"),
    mid_block_add_attention: s.has("encoder.mid_block.attentions.0.to_q.weight"),
  });
}

/** TextEncoderConfig from transformers-named CLIP text shapes; heads assume CLIP's 64-wide heads. */
export function textEncoderConfigFromShapes(s: ShapeMap, origin: string): TextEncoderConfig {
  const [vocab, hidden] = need(s, "text_model.embeddings.token_embedding.weight", 2, origin) as [number, number];
  const positions = need(s, "text_model.embeddings.position_embedding.weight", 2, origin)[0]!;
  const intermediate = need(s, "text_model.encoder.layers.0.mlp.fc1.weight", 2, origin)[0]!;
  return textEncoderConfigFromTransformers({
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: levelsOf(s, /^text_model\.encoder\.layers\.(\d+)\./, "text encoder layer", origin),
    num_attention_heads: hidden % SD1_DEFAULTS.textHeadWidth === 0 ? hidden / SD1_DEFAULTS.textHeadWidth : 1,
    max_position_embeddings: positions,
    hidden_act: SD1_DEFAULTS.textAct,
    eos_token_id: SD1_DEFAULTS.eosTokenId,
  });
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
    problems.push(`${w.origin}: ${missing.length} ${what} tensor(s) missing, first "${k}" (expected shape [${expected.get(k)!.join(",")}])`);
  }
  const wrong = [...expected.keys()].filter((k) => w.has(k) && !same(w.shape(k), expected.get(k)!));
  if (wrong.length) {
    const k = wrong[0]!;
    problems.push(`${locate(k)} has shape [${w.shape(k).join(",")}], expected [${expected.get(k)!.join(",")}]${wrong.length > 1 ? ` (and ${wrong.length - 1} more)` : ""}`);
  }
  const extra = w.keys().filter((k) => !expected.has(k));
  if (extra.length) problems.push(`${locate(extra[0]!)} is not part of the ${what}${extra.length > 1 ? ` (and ${extra.length - 1} more unexpected)` : ""}`);
  if (problems.length) throw new CheckpointError(`${problems.join("; ")}; ${hint}`);
}
