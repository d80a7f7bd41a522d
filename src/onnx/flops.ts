import type { Graph } from "./graph.js";

/**
 * Floating-point operations (2 per multiply-add) of the graph's MatMul, Gemm and Conv nodes at the nominal
 * shapes it was built with: the work that dominates a diffusion network, used to report GFLOP/s.
 */
export function graphFlops(graph: Graph): number {
  const shapeOf = (name: string) => graph.shapeOf(name);
  let flops = 0;
  for (const n of graph.nodes) {
    if (n.opType === "MatMul") {
      const a = shapeOf(n.inputs[0]!);
      const b = shapeOf(n.inputs[1]!);
      const y = shapeOf(n.outputs[0]!);
      if (!a || !b || !y) continue;
      const k = a[a.length - 1]!;
      flops += 2 * k * y.reduce((p, d) => p * d, 1);
    } else if (n.opType === "Conv") {
      const w = shapeOf(n.inputs[1]!);
      const y = shapeOf(n.outputs[0]!);
      if (!w || !y) continue;
      const perOutput = w.slice(1).reduce((p, d) => p * d, 1);
      flops += 2 * perOutput * y.reduce((p, d) => p * d, 1);
    } else if (n.opType === "MultiHeadAttention") {
      const q = shapeOf(n.inputs[0]!);
      const k = shapeOf(n.inputs[1]!);
      if (!q || !k) continue;
      const [b, lq, d] = q as [number, number, number];
      flops += 2 * 2 * b * lq * k[1]! * d;
    }
  }
  return flops;
}
