import type { Graph } from "./graph.js";

/**
 * Floating-point operations (2 per multiply-add) of the graph's MatMul, Gemm and Conv nodes at the nominal
 * shapes it was built with: the work that dominates a diffusion network, used to report GFLOP/s.
 */
export function graphFlops(graph: Graph): number {
  const { linear, quadratic } = graphFlopsByGrowth(graph);
  return linear + quadratic;
}

/**
 * graphFlops split by how each part grows with the spatial size of an image network: `quadratic` is the
 * self-attention of the MultiHeadAttention nodes (queries and keys both one per position, so their product grows
 * with the square of the positions), `linear` everything else (convolutions, projections, cross-attention on a
 * fixed-length text). Scaling each by its own power gives the work at any size from one graph.
 */
export function graphFlopsByGrowth(graph: Graph): { linear: number; quadratic: number } {
  const shapeOf = (name: string) => graph.shapeOf(name);
  let flops = 0;
  let quadratic = 0;
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
      if (k[1] === lq) quadratic += 2 * 2 * b * lq * k[1]! * d;
      else flops += 2 * 2 * b * lq * k[1]! * d;
    }
  }
  return { linear: flops, quadratic };
}
