import { UnsupportedModelError } from "../errors.js";
import type { ConfigJson } from "./json.js";

/**
 * CLIPTextModel / CLIPTextModelWithProjection's architecture; field meanings follow transformers' config.json keys
 * (named in the comments).
 */
export interface TextEncoderConfig {
  vocabSize: number; // vocab_size
  hiddenSize: number; // hidden_size
  intermediateSize: number; // intermediate_size
  numHiddenLayers: number; // num_hidden_layers
  numAttentionHeads: number; // num_attention_heads
  maxPositionEmbeddings: number; // max_position_embeddings
  hiddenAct: "quick_gelu" | "gelu"; // hidden_act
  layerNormEps: number; // layer_norm_eps
  /**
   * eos_token_id. The legacy value 2 of the SD configs makes transformers pool at the argmax of the input ids (the
   * first <|endoftext|>, the largest id of CLIP's vocabulary); any other value pools at the first eos_token_id.
   */
  eosTokenId: number;
  /** projection_dim of a CLIPTextModelWithProjection (SDXL's second encoder: text_embeds); null for a CLIPTextModel. */
  projectionDim: number | null;
}

/**
 * Parses transformers' config.json. Whether the model has the projection comes from `architectures` unless the
 * caller knows the class (a diffusers model_index.json names it).
 */
export function textEncoderConfigFromTransformers(
  c: ConfigJson,
  opts: { withProjection?: boolean; origin?: string } = {},
): TextEncoderConfig {
  const origin = opts.origin ?? "text_encoder/config.json";
  const act = c.hidden_act ?? "quick_gelu";
  if (act !== "quick_gelu" && act !== "gelu") {
    throw new UnsupportedModelError(
      `${origin}: hidden_act ${JSON.stringify(act)} is not supported (CLIP text encoders use "quick_gelu" or "gelu")`,
    );
  }
  const architectures = Array.isArray(c.architectures) ? c.architectures : [];
  const withProjection = opts.withProjection ?? architectures.includes("CLIPTextModelWithProjection");
  const hiddenSize = Number(c.hidden_size ?? 768);
  return {
    vocabSize: Number(c.vocab_size ?? 49408),
    hiddenSize,
    intermediateSize: Number(c.intermediate_size ?? 3072),
    numHiddenLayers: Number(c.num_hidden_layers ?? 12),
    numAttentionHeads: Number(c.num_attention_heads ?? 12),
    maxPositionEmbeddings: Number(c.max_position_embeddings ?? 77),
    hiddenAct: act,
    layerNormEps: Number(c.layer_norm_eps ?? 1e-5),
    eosTokenId: Number(c.eos_token_id ?? 2),
    // transformers' CLIPTextConfig default projection_dim is 512.
    projectionDim: withProjection ? Number(c.projection_dim ?? 512) : null,
  };
}
