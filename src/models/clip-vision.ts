import { CheckpointError } from "../errors.js";
import { visionTokens, type VisionConfig } from "../configs/vision.js";
import { GraphBuilder, type AttentionKind } from "../onnx/builder.js";
import { DataType, type Value } from "../onnx/graph.js";
import type { ScopedWeights } from "../weights/weight-source.js";
import { conv2d, layerNorm, linear, param } from "./layers.js";

/** Graph I/O names of the vision tower. */
export const CLIP_VISION_IO = {
  pixelValues: "pixel_values", // [batch, channels, image, image], CLIP-normalised
  pooled: "pooled_output", // [batch, hidden]: post_layernorm(class token of the last layer)
  imageEmbeds: "image_embeds", // [batch, projection]: visual_projection(pooled)
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
export function clipVisionTower(
  g: GraphBuilder,
  config: VisionConfig,
  w: ScopedWeights,
  pixels: Value,
  opts: { attention?: AttentionKind } = {},
): VisionTowerOutputs {
  const hidden = config.hiddenSize;
  const tokens = visionTokens(config);
  const emb = w.sub("embeddings");
  const x0 = g.scoped(emb.prefix, () => {
    const patches = conv2d(g, emb.sub("patch_embedding"), pixels, hidden, config.patchSize, {
      stride: config.patchSize,
      pads: [0, 0, 0, 0],
      bias: false,
    }); // [B, D, h, w]
    const seq = g.transpose(g.reshape(patches, [0, 0, -1]), [0, 2, 1]); // [B, h*w, D]
    // The class token, broadcast to the batch at run time: Expand to [batch, 1, D].
    const cls = g.reshape(param(g, emb, "class_embedding", [hidden]), [1, 1, hidden]);
    const batch = g.gather(g.op("Shape", [pixels], [4], {}, { dtype: DataType.INT64 }), g.int64s([0]), 0);
    const target = g.op("Concat", [batch, g.int64s([1, hidden])], [3], { axis: 0 }, { dtype: DataType.INT64 });
    const clsBatch = g.op("Expand", [cls, target], [pixels.shape[0]!, 1, hidden]);
    const joined = g.concat([clsBatch, seq], 1); // [B, tokens, D]
    if (joined.shape[1] !== tokens) {
      throw new CheckpointError(
        `${w.source.origin}: ${joined.shape[1]} tokens from ${config.imageSize} px images in ${config.patchSize} px patches, expected ${tokens}`,
      );
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
function encoderLayer(
  g: GraphBuilder,
  w: ScopedWeights,
  x: Value,
  config: VisionConfig,
  kind: AttentionKind | undefined,
): Value {
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
  return g.input(
    CLIP_VISION_IO.pixelValues,
    DataType.FLOAT,
    ["batch", config.numChannels, s, s],
    [batch, config.numChannels, s, s],
  );
}

/** `visual_projection`: a Linear without bias from the pooled output to the joint embedding space. */
export function visualProjection(g: GraphBuilder, config: VisionConfig, w: ScopedWeights, pooled: Value): Value {
  return g.scoped(w.prefix, () => linear(g, w, pooled, config.projectionDim, { bias: false }));
}

/**
 * CLIPVisionModel (+ the visual projection when `projection` is given, as CLIPVisionModelWithProjection and
 * the safety checker have it) as a standalone graph. Outputs `pooled_output` and, with a projection, `image_embeds`.
 * `tower` is scoped at the CLIPVisionTransformer: `vision_model.vision_model` in a safety_checker/ file,
 * `vision_model` in a CLIPModel or CLIPVisionModelWithProjection file.
 */
export function buildClipVision(
  config: VisionConfig,
  tower: ScopedWeights,
  projection?: ScopedWeights,
  opts: { attention?: AttentionKind } = {},
): GraphBuilder {
  const g = new GraphBuilder("clip_vision");
  const pixels = visionInput(g, config);
  const { pooled } = clipVisionTower(g, config, tower, pixels, opts);
  g.output(pooled, CLIP_VISION_IO.pooled, ["batch", config.hiddenSize]);
  if (projection)
    g.output(visualProjection(g, config, projection, pooled), CLIP_VISION_IO.imageEmbeds, [
      "batch",
      config.projectionDim,
    ]);
  return g;
}
