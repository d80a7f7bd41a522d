import type { ConfigJson } from "./json.js";

/** CLIPTextModel's architecture; field meanings follow transformers' config.json keys (named in the comments). */
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

export function textEncoderConfigFromTransformers(c: ConfigJson): TextEncoderConfig {
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
