import type { ParamShapes } from "../src/models/param-shapes.js";
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
