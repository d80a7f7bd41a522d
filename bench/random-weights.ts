import type { VisionConfig } from "../src/configs/vision.js";
import { clipVisionParamShapes, type ParamShapes } from "../src/models/param-shapes.js";
import type { GraphBuilder } from "../src/onnx/builder.js";
import { buildSafetyChecker, safetyLayout } from "../src/models/safety-checker.js";
import type { WeightSource } from "../src/weights/weight-source.js";

/**
 * Seeded random weights for a full-size architecture: speed does not depend on the values, but they must keep
 * activations in a normal range (no overflow, no denormals), so weights are scaled by 1/sqrt(fan_in), norm
 * scales are 1 and biases small.
 */
export function randomWeights(shapes: ParamShapes, seed = 1): WeightSource {
  return {
    origin: "random weights",
    keys: () => [...shapes.keys()],
    has: (name) => shapes.has(name),
    shape: (name) => shapes.get(name)!,
    dtype: () => "F32",
    float32: (name) => {
      const shape = shapes.get(name)!;
      const n = shape.reduce((a, b) => a * b, 1);
      const out = new Float32Array(n);
      const isNorm = /norm/.test(name) && shape.length === 1;
      if (isNorm && name.endsWith(".weight")) return out.fill(1);
      const fanIn = shape.length > 1 ? n / shape[0]! : 1;
      const scale = name.endsWith(".bias") ? 0.01 : Math.sqrt(3 / fanIn);
      let s = (seed * 2654435761 + hashName(name)) >>> 0;
      for (let i = 0; i < n; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0; // LCG: fast, and the values do not matter
        out[i] = ((s / 4294967296) * 2 - 1) * scale;
      }
      return out;
    },
  };
}

function hashName(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}

/**
 * Stable Diffusion's safety checker (CompVis/stable-diffusion-safety-checker: CLIP ViT-L/14 at 224 px, 17 concept
 * and 3 special-care embeddings) as a graph with random weights.
 */
export function randomSafetyChecker(seed = 1): { config: VisionConfig; graph: GraphBuilder } {
  const config: VisionConfig = {
    hiddenSize: 1024,
    intermediateSize: 4096,
    numHiddenLayers: 24,
    numAttentionHeads: 16,
    numChannels: 3,
    imageSize: 224,
    patchSize: 14,
    hiddenAct: "quick_gelu",
    layerNormEps: 1e-5,
    projectionDim: 768,
  };
  const shapes = clipVisionParamShapes(config, { prefix: "vision_model.vision_model", projection: true });
  shapes.set("concept_embeds", [17, config.projectionDim]);
  shapes.set("concept_embeds_weights", [17]);
  shapes.set("special_care_embeds", [3, config.projectionDim]);
  shapes.set("special_care_embeds_weights", [3]);
  return {
    config,
    graph: buildSafetyChecker(config, safetyLayout(randomWeights(shapes, seed)), { concepts: 17, special: 3 }),
  };
}
