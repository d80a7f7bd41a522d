import { CheckpointError } from "../errors.js";
import type { VisionConfig } from "../configs/vision.js";
import { GraphBuilder } from "../onnx/builder.js";
import type { Value } from "../onnx/graph.js";
import { ScopedWeights, type WeightSource } from "../weights/weight-source.js";
import { clipVisionTower, visionInput, visualProjection } from "./clip-vision.js";
import { param } from "./layers.js";

/**
 * StableDiffusionSafetyChecker's network (diffusers): a CLIP ViT vision tower, its visual projection, and the
 * cosine similarities of the image embedding to the checker's concept and special-care embeddings. The decision
 * rule and the pre-processing around it live in responsible/safety-checker.ts.
 */

/** Graph I/O of the safety checker network. */
export const SAFETY_IO = {
  pixelValues: "pixel_values", // [batch, 3, 224, 224], CLIP-normalised (the reference's clip_input)
  pooled: "pooled_output", // [batch, hidden]
  imageEmbeds: "image_embeds", // [batch, projection]
  conceptCos: "concept_cos", // [batch, concepts]: cosine similarity to concept_embeds
  specialCos: "special_cos", // [batch, special]: cosine similarity to special_care_embeds
} as const;

/** Where each part of the checker sits in a weight file (the key prefixes differ between layouts). */
export interface SafetyLayout {
  /** The module holding concept_embeds, special_care_embeds, their weights and visual_projection. */
  root: ScopedWeights;
  /** The CLIPVisionTransformer (embeddings, pre_layrnorm, encoder, post_layernorm). */
  tower: ScopedWeights;
  projection: ScopedWeights;
}

const CONCEPT_KEYS = [
  "concept_embeds",
  "special_care_embeds",
  "concept_embeds_weights",
  "special_care_embeds_weights",
] as const;

/**
 * Finds the checker's modules by key suffix: `vision_model.vision_model.*` (the diffusers safety_checker/ folder
 * and the CompVis/stable-diffusion-safety-checker repository the original scripts load), the same under a
 * `safety_checker.` prefix (one file bundling a pipeline), or `vision_model.*` directly under the root (a state
 * dict saved from the inner CLIPVisionModel's level, as CLIPVisionModelWithProjection names it).
 * Buffers such as `embeddings.position_ids` are ignored.
 */
export function safetyLayout(source: WeightSource): SafetyLayout {
  const keys = source.keys();
  const conceptKey = keys.find((k) => k === "concept_embeds" || k.endsWith(".concept_embeds"));
  if (!conceptKey) {
    throw new CheckpointError(
      `${source.origin}: no "concept_embeds" tensor; this is not a Stable Diffusion safety checker (expected the safety_checker/ weights of a diffusers model, or CompVis/stable-diffusion-safety-checker)`,
    );
  }
  const rootPrefix = conceptKey.slice(0, -"concept_embeds".length).replace(/\.$/, "");
  const root = new ScopedWeights(source, rootPrefix);
  for (const k of CONCEPT_KEYS)
    if (!root.has(k))
      throw new CheckpointError(
        `${source.origin}: missing tensor "${root.path(k)}"; the safety checker file is incomplete`,
      );
  // The CLIPVisionModel sits at `vision_model` and its transformer at `vision_model.vision_model`; a state dict
  // saved one level down has the transformer at `vision_model` directly.
  const candidates = [root.sub("vision_model").sub("vision_model"), root.sub("vision_model")];
  const tower = candidates.find((c) => c.has("embeddings.patch_embedding.weight"));
  if (!tower) {
    throw new CheckpointError(
      `${source.origin}: no CLIP vision tower (looked for "${candidates.map((c) => c.path("embeddings.patch_embedding.weight")).join('" and "')}"); the safety checker file is incomplete`,
    );
  }
  const projection = root.sub("visual_projection");
  if (!projection.has("weight"))
    throw new CheckpointError(
      `${source.origin}: missing tensor "${projection.path("weight")}"; the safety checker file is incomplete`,
    );
  return { root, tower, projection };
}

/** x / max(‖x‖₂, 1e-12) over the last axis, as torch.nn.functional.normalize. */
function l2Normalize(g: GraphBuilder, x: Value): Value {
  const norm = g.op("ReduceL2", [x], [...x.shape.slice(0, -1), 1], { axes: [-1], keepdims: 1 });
  return g.div(x, g.op("Max", [norm, g.scalar(1e-12)], norm.shape));
}

/** cosine_distance(a, b) of the reference: normalize(a) @ normalize(b)ᵀ. a: [B, P], b: [N, P] -> [B, N]. */
function cosineSimilarity(g: GraphBuilder, a: Value, b: Value): Value {
  return g.matmul(l2Normalize(g, a), g.transpose(l2Normalize(g, b), [1, 0]));
}

/** The checker's network: vision tower, projection, and the cosine similarities to both embedding sets. */
export function buildSafetyChecker(
  config: VisionConfig,
  layout: SafetyLayout,
  counts: { concepts: number; special: number },
): GraphBuilder {
  const g = new GraphBuilder("safety_checker");
  const pixels = visionInput(g, config);
  const { pooled } = clipVisionTower(g, config, layout.tower, pixels);
  const embeds = visualProjection(g, config, layout.projection, pooled);
  const p = config.projectionDim;
  const concepts = param(g, layout.root, "concept_embeds", [counts.concepts, p]);
  const special = param(g, layout.root, "special_care_embeds", [counts.special, p]);
  g.output(pooled, SAFETY_IO.pooled, ["batch", config.hiddenSize]);
  g.output(embeds, SAFETY_IO.imageEmbeds, ["batch", p]);
  g.output(
    g.scoped("concept_cos", () => cosineSimilarity(g, embeds, concepts)),
    SAFETY_IO.conceptCos,
    ["batch", concepts.shape[0]!],
  );
  g.output(
    g.scoped("special_cos", () => cosineSimilarity(g, embeds, special)),
    SAFETY_IO.specialCos,
    ["batch", special.shape[0]!],
  );
  return g;
}
