import { CheckpointError, UnsupportedModelError } from "../errors.js";
import { GraphBuilder, type AttentionKind } from "../onnx/builder.js";
import { DataType, type Value } from "../onnx/graph.js";
import type { ScopedWeights } from "../weights/weight-source.js";
import { conv2d, layerNorm, linear, param } from "./layers.js";

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

type Json = Record<string, unknown>;

const VISION_DEFAULTS: VisionConfig = {
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
export function visionConfigFromTransformers(json: Json, origin = "config.json"): VisionConfig {
  const isObject = (x: unknown): x is Json => typeof x === "object" && x !== null && !Array.isArray(x);
  const nested = isObject(json.vision_config) || isObject(json.vision_config_dict);
  // Configs written by transformers 4.2x (Stable Diffusion 1.x's safety_checker/) also carry `vision_config_dict`,
  // the overrides those versions applied on top of `vision_config`; apply them the same way.
  const v: Json = nested ? { ...(isObject(json.vision_config) ? json.vision_config : {}), ...(isObject(json.vision_config_dict) ? json.vision_config_dict : {}) } : json;
  const num = (value: unknown, fallback: number): number => (value === undefined || value === null ? fallback : Number(value));
  const act = String(v.hidden_act ?? VISION_DEFAULTS.hiddenAct);
  if (act !== "quick_gelu" && act !== "gelu") {
    throw new UnsupportedModelError(`${origin}: vision_config.hidden_act "${act}" is not supported; CLIP vision towers use "quick_gelu" (ViT-L/14) or "gelu"`);
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

/**
 * Reads the architecture off the tensors when no config.json comes with them (a bare .safetensors file).
 * The head count is not stored in any shape: CLIP's towers use 64-wide heads, which gives 16 for ViT-L/14.
 */
export function visionConfigFromWeights(tower: ScopedWeights, projection?: ScopedWeights): VisionConfig {
  const [hidden, channels, patch] = tower.shape("embeddings.patch_embedding.weight") as [number, number, number, number];
  const positions = tower.shape("embeddings.position_embedding.weight")[0]!;
  const grid = Math.round(Math.sqrt(positions - 1));
  let layers = 0;
  while (tower.sub("encoder.layers").sub(layers).has("layer_norm1.weight")) layers++;
  const config: VisionConfig = {
    hiddenSize: hidden,
    intermediateSize: layers > 0 ? tower.shape("encoder.layers.0.mlp.fc1.weight")[0]! : VISION_DEFAULTS.intermediateSize,
    numHiddenLayers: layers,
    numAttentionHeads: hidden % 64 === 0 ? hidden / 64 : 1,
    numChannels: channels,
    imageSize: grid * patch,
    patchSize: patch,
    hiddenAct: "quick_gelu",
    layerNormEps: VISION_DEFAULTS.layerNormEps,
    projectionDim: projection?.has("weight") ? projection.shape("weight")[0]! : hidden,
  };
  checkVisionConfig(config, tower.source.origin);
  return config;
}

function checkVisionConfig(c: VisionConfig, origin: string): void {
  const ints = [c.hiddenSize, c.intermediateSize, c.numHiddenLayers, c.numAttentionHeads, c.numChannels, c.imageSize, c.patchSize, c.projectionDim];
  if (ints.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new CheckpointError(`${origin}: vision config has a size that is not a positive whole number (${JSON.stringify(c)}); the config file is damaged`);
  }
  if (c.hiddenSize % c.numAttentionHeads !== 0) {
    throw new CheckpointError(`${origin}: hidden_size ${c.hiddenSize} is not divisible by num_attention_heads ${c.numAttentionHeads}; fix vision_config`);
  }
  if (c.imageSize % c.patchSize !== 0) {
    throw new CheckpointError(`${origin}: image_size ${c.imageSize} is not a multiple of patch_size ${c.patchSize}; fix vision_config`);
  }
}

/** Number of tokens the tower sees: one per patch plus the class token. */
export function visionTokens(config: VisionConfig): number {
  return (config.imageSize / config.patchSize) ** 2 + 1;
}

/** Graph I/O names of the vision tower. */
export const CLIP_VISION_IO = {
  pixelValues: "pixel_values",   // [batch, channels, image, image], CLIP-normalised
  pooled: "pooled_output",       // [batch, hidden]: post_layernorm(class token of the last layer)
  imageEmbeds: "image_embeds",   // [batch, projection]: visual_projection(pooled)
} as const;

export interface VisionTowerOutputs {
  /** [B, tokens, hidden]: the encoder's last hidden state (no final norm, as transformers returns it). */
  lastHidden: Value;
  /** [B, hidden]: post_layernorm applied to the class token. */
  pooled: Value;
}

/**
 * CLIPVisionTransformer as a graph fragment: patch embedding (a strided conv without bias), class token,
 * position embeddings, `pre_layrnorm`, the pre-norm encoder layers, and `post_layernorm` on the class token.
 * `w` is scoped at the transformer (keys `embeddings.*`, `pre_layrnorm.*`, `encoder.layers.N.*`, `post_layernorm.*`).
 */
export function clipVisionTower(g: GraphBuilder, config: VisionConfig, w: ScopedWeights, pixels: Value, opts: { attention?: AttentionKind } = {}): VisionTowerOutputs {
  const hidden = config.hiddenSize;
  const tokens = visionTokens(config);
  const emb = w.sub("embeddings");
  const x0 = g.scoped(emb.prefix, () => {
    const patches = conv2d(g, emb.sub("patch_embedding"), pixels, { stride: config.patchSize, pads: [0, 0, 0, 0] }); // [B, D, h, w]
    if (patches.shape[1] !== hidden) {
      throw new CheckpointError(`${w.source.origin}: "${emb.path("patch_embedding.weight")}" has ${patches.shape[1]} output channels, the config says hidden_size ${hidden}`);
    }
    const seq = g.transpose(g.reshape(patches, [0, 0, -1]), [0, 2, 1]); // [B, h*w, D]
    // The class token, broadcast to the batch at run time: Expand to [batch, 1, D].
    const cls = g.reshape(param(g, emb, "class_embedding", [hidden]), [1, 1, hidden]);
    const batch = g.gather(g.op("Shape", [pixels], [4], {}, { dtype: DataType.INT64 }), g.int64s([0]), 0);
    const target = g.op("Concat", [batch, g.int64s([1, hidden])], [3], { axis: 0 }, { dtype: DataType.INT64 });
    const clsBatch = g.op("Expand", [cls, target], [pixels.shape[0]!, 1, hidden]);
    const joined = g.concat([clsBatch, seq], 1); // [B, tokens, D]
    if (joined.shape[1] !== tokens) {
      throw new CheckpointError(`${w.source.origin}: ${joined.shape[1]} tokens from ${config.imageSize} px images in ${config.patchSize} px patches, expected ${tokens}`);
    }
    // position_ids are arange(tokens): the whole table, in order.
    return g.add(joined, param(g, emb, "position_embedding.weight", [tokens, hidden]));
  });

  let x = g.scoped(w.path("pre_layrnorm"), () => layerNorm(g, w.sub("pre_layrnorm"), x0, config.layerNormEps));
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const layer = w.sub("encoder.layers").sub(i);
    x = g.scoped(layer.prefix, () => encoderLayer(g, layer, x, config, opts.attention));
  }
  const pooled = g.scoped(w.path("post_layernorm"), () => {
    const cls = g.reshape(g.slice(x, 1, 0, 1), [0, hidden]); // [B, D]: the class token
    return layerNorm(g, w.sub("post_layernorm"), cls, config.layerNormEps);
  });
  return { lastHidden: x, pooled };
}

/** One CLIPEncoderLayer: x + attn(ln1(x)), then x + mlp(ln2(x)). No mask: every patch sees every patch. */
function encoderLayer(g: GraphBuilder, w: ScopedWeights, x: Value, config: VisionConfig, kind: AttentionKind | undefined): Value {
  const eps = config.layerNormEps;
  const h = layerNorm(g, w.sub("layer_norm1"), x, eps);
  const attn = w.sub("self_attn");
  const q = linear(g, attn.sub("q_proj"), h, config.hiddenSize);
  const k = linear(g, attn.sub("k_proj"), h, config.hiddenSize);
  const v = linear(g, attn.sub("v_proj"), h, config.hiddenSize);
  const a = g.attention(q, k, v, config.numAttentionHeads, { kind });
  x = g.add(x, linear(g, attn.sub("out_proj"), a, config.hiddenSize));

  const mlp = w.sub("mlp");
  let m = linear(g, mlp.sub("fc1"), layerNorm(g, w.sub("layer_norm2"), x, eps), config.intermediateSize);
  m = config.hiddenAct === "quick_gelu" ? g.quickGelu(m) : g.gelu(m);
  return g.add(x, linear(g, mlp.sub("fc2"), m, config.hiddenSize));
}

/** The pixel input of a vision graph: dynamic batch, the config's fixed image size. */
export function visionInput(g: GraphBuilder, config: VisionConfig, batch = 1): Value {
  const s = config.imageSize;
  return g.input(CLIP_VISION_IO.pixelValues, DataType.FLOAT, ["batch", config.numChannels, s, s], [batch, config.numChannels, s, s]);
}

/** `visual_projection`: a Linear without bias from the pooled output to the joint embedding space. */
export function visualProjection(g: GraphBuilder, config: VisionConfig, w: ScopedWeights, pooled: Value): Value {
  if (w.has("bias")) throw new CheckpointError(`${w.source.origin}: "${w.path("bias")}" exists, but CLIP's visual projection has no bias; this is not a CLIP checkpoint`);
  return g.scoped(w.prefix, () => linear(g, w, pooled, config.projectionDim));
}

/**
 * CLIPVisionModel (+ the visual projection when `projection` is given, as CLIPVisionModelWithProjection and
 * the safety checker have it) as a standalone graph. Outputs `pooled_output` and, with a projection, `image_embeds`.
 * `tower` is scoped at the CLIPVisionTransformer: `vision_model.vision_model` in a safety_checker/ file,
 * `vision_model` in a CLIPModel or CLIPVisionModelWithProjection file.
 */
export function buildClipVision(config: VisionConfig, tower: ScopedWeights, projection?: ScopedWeights, opts: { attention?: AttentionKind } = {}): GraphBuilder {
  const g = new GraphBuilder("clip_vision");
  const pixels = visionInput(g, config);
  const { pooled } = clipVisionTower(g, config, tower, pixels, opts);
  g.output(pooled, CLIP_VISION_IO.pooled, ["batch", config.hiddenSize]);
  if (projection) g.output(visualProjection(g, config, projection, pooled), CLIP_VISION_IO.imageEmbeds, ["batch", config.projectionDim]);
  return g;
}
