import type { WeightSource } from "../../src/weights/weight-source.js";

/** Shapes without data: building a graph reads no tensor until serialization, so any read here is a bug. */
export function shapeOnlyWeights(shapes: ReadonlyMap<string, readonly number[]>, origin = "shape table"): WeightSource {
  return {
    origin,
    keys: () => [...shapes.keys()],
    has: (n) => shapes.has(n),
    shape: (n) => shapes.get(n)!,
    dtype: () => "F32",
    float32: (n) => {
      throw new Error(`unexpected read of ${n}: only shapes are available`);
    },
  };
}
