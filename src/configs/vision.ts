import { CheckpointError, UnsupportedModelError } from "../errors.js";
import type { ConfigJson } from "./json.js";

/** The activations a CLIP vision tower may name in its config. */
export type VisionActivation = "quick_gelu" | "gelu";

/**
 * A CLIP vision tower (transformers' CLIPVisionConfig) plus the width of the projection that follows it.
 * Defaults are transformers' CLIPVisionConfig defaults; the safety checker's ViT-L/14 overrides most of them.
 */
export interface VisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numChannels: number;
  imageSize: number;
  patchSize: number;
  hiddenAct: VisionActivation;
  layerNormEps: number;
  /** Output width of `visual_projection` (CLIPConfig.projection_dim when the vision config sits inside a CLIPConfig). */
  projectionDim: number;
}

export const VISION_DEFAULTS: VisionConfig = {
  hiddenSize: 768,
  intermediateSize: 3072,
  numHiddenLayers: 12,
  numAttentionHeads: 12,
  numChannels: 3,
  imageSize: 224,
  patchSize: 32,
  hiddenAct: "quick_gelu",
  layerNormEps: 1e-5,
  projectionDim: 512,
};

/**
 * Parses transformers' config.json: either a CLIPConfig (the safety checker's, with a nested `vision_config`
 * and the projection width at the top level) or a bare CLIPVisionConfig.
 */
export function visionConfigFromTransformers(json: ConfigJson, origin = "config.json"): VisionConfig {
  const isObject = (x: unknown): x is ConfigJson => typeof x === "object" && x !== null && !Array.isArray(x);
  const nested = isObject(json.vision_config) || isObject(json.vision_config_dict);
  // Configs written by transformers 4.2x (Stable Diffusion 1.x's safety_checker/) also carry `vision_config_dict`,
  // the overrides those versions applied on top of `vision_config`; apply them the same way.
  const v: ConfigJson = nested
    ? {
        ...(isObject(json.vision_config) ? json.vision_config : {}),
        ...(isObject(json.vision_config_dict) ? json.vision_config_dict : {}),
      }
    : json;
  const num = (value: unknown, fallback: number): number =>
    value === undefined || value === null ? fallback : Number(value);
  const act = String(v.hidden_act ?? VISION_DEFAULTS.hiddenAct);
  if (act !== "quick_gelu" && act !== "gelu") {
    throw new UnsupportedModelError(
      `${origin}: vision_config.hidden_act "${act}" is not supported; CLIP vision towers use "quick_gelu" (ViT-L/14) or "gelu"`,
    );
  }
  const config: VisionConfig = {
    hiddenSize: num(v.hidden_size, VISION_DEFAULTS.hiddenSize),
    intermediateSize: num(v.intermediate_size, VISION_DEFAULTS.intermediateSize),
    numHiddenLayers: num(v.num_hidden_layers, VISION_DEFAULTS.numHiddenLayers),
    numAttentionHeads: num(v.num_attention_heads, VISION_DEFAULTS.numAttentionHeads),
    numChannels: num(v.num_channels, VISION_DEFAULTS.numChannels),
    imageSize: num(v.image_size, VISION_DEFAULTS.imageSize),
    patchSize: num(v.patch_size, VISION_DEFAULTS.patchSize),
    hiddenAct: act,
    layerNormEps: num(v.layer_norm_eps, VISION_DEFAULTS.layerNormEps),
    // In a CLIPConfig the projection belongs to the outer model; vision_config.projection_dim is unused there.
    projectionDim: num(nested ? json.projection_dim : v.projection_dim, VISION_DEFAULTS.projectionDim),
  };
  checkVisionConfig(config, origin);
  return config;
}

export function checkVisionConfig(c: VisionConfig, origin: string): void {
  const ints = [
    c.hiddenSize,
    c.intermediateSize,
    c.numHiddenLayers,
    c.numAttentionHeads,
    c.numChannels,
    c.imageSize,
    c.patchSize,
    c.projectionDim,
  ];
  if (ints.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new CheckpointError(
      `${origin}: vision config has a size that is not a positive whole number (${JSON.stringify(c)}); the config file is damaged`,
    );
  }
  if (c.hiddenSize % c.numAttentionHeads !== 0) {
    throw new CheckpointError(
      `${origin}: hidden_size ${c.hiddenSize} is not divisible by num_attention_heads ${c.numAttentionHeads}; fix vision_config`,
    );
  }
  if (c.imageSize % c.patchSize !== 0) {
    throw new CheckpointError(
      `${origin}: image_size ${c.imageSize} is not a multiple of patch_size ${c.patchSize}; fix vision_config`,
    );
  }
}

/** Number of tokens the tower sees: one per patch plus the class token. */
export function visionTokens(config: VisionConfig): number {
  return (config.imageSize / config.patchSize) ** 2 + 1;
}
