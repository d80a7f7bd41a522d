import { GraphBuilder } from "../onnx/builder.js";
import { DataType, type Value } from "../onnx/graph.js";
import type { ScopedWeights } from "../weights/weight-source.js";
import type { TextEncoderConfig } from "../configs/text-encoder.js";
import { layerNorm, linear, param } from "./layers.js";

/** Graph I/O names of the text encoder. */
export const CLIP_TEXT_IO = {
  inputIds: "input_ids",             // int64 [batch, tokens]
  lastHidden: "last_hidden_state",   // [batch, tokens, hidden]: final_layer_norm(output of the last layer)
  hiddenStates: "hidden_states",     // [layers + 1, batch, tokens, hidden]: embeddings, then every layer's output
} as const;

/**
 * CLIPTextModel (transformers): token + position embeddings, pre-norm transformer layers with a causal mask,
 * final layer norm. `w` is scoped at the model root (keys `text_model.*`).
 * All hidden states are outputs so the pipeline can pick any "clip skip" layer (and applies the final norm to it).
 */
export function buildClipText(config: TextEncoderConfig, w: ScopedWeights, opts: { tokens?: number } = {}): GraphBuilder {
  const g = new GraphBuilder("clip_text");
  const tokens = opts.tokens ?? config.maxPositionEmbeddings;
  const hidden = config.hiddenSize;
  const tm = w.sub("text_model");
  const ids = g.input(CLIP_TEXT_IO.inputIds, DataType.INT64, ["batch", "tokens"], [1, tokens]);

  const emb = tm.sub("embeddings");
  const tokenTable = param(g, emb, "token_embedding.weight", [config.vocabSize, hidden]);
  const positionTable = param(g, emb, "position_embedding.weight", [config.maxPositionEmbeddings, hidden]);
  // Positions 0..tokens-1: the first rows of the table, sliced at run time so shorter inputs work too.
  const seqLen = g.gather(g.op("Shape", [ids], [2], {}, { dtype: DataType.INT64 }), g.int64s([1]), 0);
  const positions = g.op("Slice", [positionTable, g.int64s([0]), seqLen, g.int64s([0])], [tokens, hidden]);
  let x = g.scoped("text_model.embeddings", () => g.add(g.gather(tokenTable, ids, 0), positions)); // [B, L, D]

  // Causal mask: position i attends to j <= i. Built for the maximum length and sliced like the positions.
  const max = config.maxPositionEmbeddings;
  const maskData = new Float32Array(max * max);
  for (let i = 0; i < max; i++) for (let j = i + 1; j < max; j++) maskData[i * max + j] = -Infinity;
  const fullMask = g.constant(maskData, [max, max]);
  const mask = g.op("Slice", [fullMask, g.int64s([0, 0]), g.op("Concat", [seqLen, seqLen], [2], { axis: 0 }, { dtype: DataType.INT64 }), g.int64s([0, 1])], [tokens, tokens]);

  const states: Value[] = [x];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const layer = tm.sub("encoder.layers").sub(i);
    x = g.scoped(layer.prefix, () => encoderLayer(g, layer, x, mask, config));
    states.push(x);
  }
  const last = g.scoped("text_model.final_layer_norm", () => layerNorm(g, tm.sub("final_layer_norm"), x, config.layerNormEps));
  g.output(last, CLIP_TEXT_IO.lastHidden, ["batch", "tokens", hidden]);
  const stacked = g.concat(states.map((s) => g.unsqueeze(s, [0])), 0);
  g.output(stacked, CLIP_TEXT_IO.hiddenStates, [config.numHiddenLayers + 1, "batch", "tokens", hidden]);
  return g;
}

function encoderLayer(g: GraphBuilder, w: ScopedWeights, x: Value, mask: Value, config: TextEncoderConfig): Value {
  const eps = config.layerNormEps;
  const h = layerNorm(g, w.sub("layer_norm1"), x, eps);
  const attn = w.sub("self_attn");
  const d = config.hiddenSize;
  const q = linear(g, attn.sub("q_proj"), h, d);
  const k = linear(g, attn.sub("k_proj"), h, d);
  const v = linear(g, attn.sub("v_proj"), h, d);
  const a = g.attention(q, k, v, config.numAttentionHeads, { mask });
  x = g.add(x, linear(g, attn.sub("out_proj"), a, d));

  const mlp = w.sub("mlp");
  let m = linear(g, mlp.sub("fc1"), layerNorm(g, w.sub("layer_norm2"), x, eps), config.intermediateSize);
  m = config.hiddenAct === "quick_gelu" ? g.quickGelu(m) : g.gelu(m);
  return g.add(x, linear(g, mlp.sub("fc2"), m, config.hiddenSize));
}
