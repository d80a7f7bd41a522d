import { GraphBuilder } from "../onnx/builder.js";
import { DataType, type Value } from "../onnx/graph.js";
import type { ScopedWeights } from "../weights/weight-source.js";
import type { TextEncoderConfig } from "../configs/text-encoder.js";
import { layerNorm, linear, param } from "./layers.js";

/** Graph I/O names of the text encoder. */
export const CLIP_TEXT_IO = {
  inputIds: "input_ids", // int64 [batch, tokens]
  lastHidden: "last_hidden_state", // [batch, tokens, hidden]: final_layer_norm(output of the last layer)
  /**
   * [layers + 1, batch, tokens, hidden]: the embeddings, then every layer's output, without the final norm. SDXL
   * conditions on index layers - 1 (the penultimate layer, "hidden_states[-2]") of both encoders, unnormed.
   */
  hiddenStates: "hidden_states",
  /** [batch, hidden]: last_hidden_state at each sequence's end-of-text token (transformers' pooler_output). */
  pooled: "pooler_output",
  /** [batch, projection_dim]: the pooled output through text_projection (CLIPTextModelWithProjection only; SDXL's pooled embeds). */
  textEmbeds: "text_embeds",
  /**
   * Graphs built with `extraTokens` only: float [rows, hidden], token embeddings for ids from vocab_size on (id
   * vocab_size + i takes row i): textual-inversion vectors, given with each run so that embeddings never change the
   * graph. At least one row (zeros when no id uses it).
   */
  extraTokens: "extra_token_embeddings",
} as const;

/**
 * CLIPTextModel or CLIPTextModelWithProjection (transformers): token + position embeddings, pre-norm transformer
 * layers with a causal mask, final layer norm, pooling at the end-of-text token, and the projection when the config
 * has one. `w` is scoped at the model root (keys `text_model.*`, `text_projection.weight`).
 * All hidden states are outputs so the pipeline can pick any "clip skip" layer (and applies the final norm to it).
 */
export function buildClipText(
  config: TextEncoderConfig,
  w: ScopedWeights,
  opts: { tokens?: number; extraTokens?: boolean } = {},
): GraphBuilder {
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
  const tokenEmbeddings = opts.extraTokens
    ? g.scoped("text_model.embeddings", () => withExtraTokens(g, tokenTable, ids, config))
    : g.gather(tokenTable, ids, 0);
  let x = g.scoped("text_model.embeddings", () => g.add(tokenEmbeddings, positions)); // [B, L, D]

  // Causal mask: position i attends to j <= i. Built for the maximum length and sliced like the positions.
  const max = config.maxPositionEmbeddings;
  const maskData = new Float32Array(max * max);
  for (let i = 0; i < max; i++) for (let j = i + 1; j < max; j++) maskData[i * max + j] = -Infinity;
  const fullMask = g.constant(maskData, [max, max]);
  const mask = g.op(
    "Slice",
    [
      fullMask,
      g.int64s([0, 0]),
      g.op("Concat", [seqLen, seqLen], [2], { axis: 0 }, { dtype: DataType.INT64 }),
      g.int64s([0, 1]),
    ],
    [tokens, tokens],
  );

  const states: Value[] = [x];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const layer = tm.sub("encoder.layers").sub(i);
    x = g.scoped(layer.prefix, () => encoderLayer(g, layer, x, mask, config));
    states.push(x);
  }
  const last = g.scoped("text_model.final_layer_norm", () =>
    layerNorm(g, tm.sub("final_layer_norm"), x, config.layerNormEps),
  );
  g.output(last, CLIP_TEXT_IO.lastHidden, ["batch", "tokens", hidden]);
  const stacked = g.concat(
    states.map((s) => g.unsqueeze(s, [0])),
    0,
  );
  g.output(stacked, CLIP_TEXT_IO.hiddenStates, [config.numHiddenLayers + 1, "batch", "tokens", hidden]);

  const pooled = g.scoped("pooler", () => poolAtEndOfText(g, last, ids, config.eosTokenId));
  g.output(pooled, CLIP_TEXT_IO.pooled, ["batch", hidden]);
  if (config.projectionDim !== null) {
    const projected = g.scoped("text_projection", () =>
      linear(g, w.sub("text_projection"), pooled, config.projectionDim!, { bias: false }),
    );
    g.output(projected, CLIP_TEXT_IO.textEmbeds, ["batch", config.projectionDim]);
  }
  return g;
}

/**
 * Token embeddings where ids below vocab_size read the checkpoint's table and the others the rows of the
 * extraTokens input (textual inversion, as diffusers appends them to the table): each table is gathered with its
 * ids clamped into range, and the id picks which one it takes.
 */
function withExtraTokens(g: GraphBuilder, table: Value, ids: Value, config: TextEncoderConfig): Value {
  const [batch, tokens] = ids.shape as [number, number];
  const hidden = config.hiddenSize;
  const extra = g.input(CLIP_TEXT_IO.extraTokens, DataType.FLOAT, ["extra_tokens", hidden], [1, hidden]);
  const vocab = g.constant([config.vocabSize], [], DataType.INT64);
  const own = g.gather(
    table,
    g.op(
      "Min",
      [ids, g.constant([config.vocabSize - 1], [], DataType.INT64)],
      ids.shape,
      {},
      { dtype: DataType.INT64 },
    ),
    0,
  );
  const added = g.gather(
    extra,
    g.op("Max", [g.sub(ids, vocab), g.constant([0], [], DataType.INT64)], ids.shape, {}, { dtype: DataType.INT64 }),
    0,
  );
  const isAdded = g.unsqueeze(g.op("GreaterOrEqual", [ids, vocab], ids.shape, {}, { dtype: DataType.BOOL }), [2]);
  return g.op("Where", [isAdded, added, own], [batch, tokens, hidden], {}, { dtype: DataType.FLOAT });
}

/**
 * transformers' CLIPTextTransformer pooling: the row of each sequence's end-of-text token. With the legacy
 * eos_token_id 2 of the SD configs that is the argmax of the ids (<|endoftext|> has CLIP's largest id); otherwise
 * the first position holding eos_token_id. ArgMax returns the first maximum, as torch.argmax does.
 */
function poolAtEndOfText(g: GraphBuilder, last: Value, ids: Value, eosTokenId: number): Value {
  const [batch, , hidden] = last.shape as [number, number, number];
  const scores =
    eosTokenId === 2
      ? g.op("Cast", [ids], ids.shape, { to: DataType.INT32 }, { dtype: DataType.INT32 })
      : g.op(
          "Cast",
          [g.op("Equal", [ids, g.constant([eosTokenId], [], DataType.INT64)], ids.shape, {}, { dtype: DataType.BOOL })],
          ids.shape,
          { to: DataType.INT32 },
          { dtype: DataType.INT32 },
        );
  const position = g.op("ArgMax", [scores], [batch, 1], { axis: 1, keepdims: 1 }, { dtype: DataType.INT64 }); // [B, 1]
  return g.op("GatherND", [last, position], [batch, hidden], { batch_dims: 1 });
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
