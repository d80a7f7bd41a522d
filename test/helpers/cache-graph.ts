import { GraphBuilder } from "../../src/onnx/builder.js";
import { DataType } from "../../src/onnx/graph.js";

/**
 * A small two-layer network whose weights (1.5 MiB) go to the external weights file of a cache entry: w2's values
 * are halves, so the entry keeps it as fp16 and rebuilds it at each open, and w1's are not.
 */
export const CACHE_GRAPH_WIDTH = 512;

export function cacheGraph(): GraphBuilder {
  const n = CACHE_GRAPH_WIDTH;
  const g = new GraphBuilder("two-layer");
  const x = g.input("x", DataType.FLOAT, [1, n], [1, n]);
  const w1 = g.initializer("w1", [n, n], () => Float32Array.from({ length: n * n }, (_, i) => Math.sin(i * 0.37) / 8));
  const b1 = g.initializer("b1", [n], () => Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.11)));
  const w2 = g.initializer("w2", [n, n], () =>
    Float32Array.from({ length: n * n }, (_, i) => Math.round(Math.cos(i * 0.23) * 1024) / 8192),
  );
  const h = g.unary("Sigmoid", g.add(g.matmul(x, w1), b1));
  g.output(g.matmul(h, w2), "y", [1, n]);
  return g;
}

export const cacheGraphInput = (): Float32Array =>
  Float32Array.from({ length: CACHE_GRAPH_WIDTH }, (_, i) => ((i % 7) - 3) / 3);
