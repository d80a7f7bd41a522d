import type { GraphBuilder } from "../onnx/builder.js";
import type { Value } from "../onnx/graph.js";
import type { ScopedWeights } from "../weights/weight-source.js";

/**
 * PyTorch modules as graph fragments: each takes the module's scoped weights (`w` = the module path in the
 * checkpoint) so initializers carry the checkpoint's key names.
 */

/** A checkpoint tensor as an initializer, read only when the graph is serialized. */
export function param(g: GraphBuilder, w: ScopedWeights, name: string, expected?: readonly number[]): Value {
  const shape = w.shape(name);
  checkShape(w, name, shape, expected);
  return g.initializer(w.path(name), shape, () => w.get(name));
}

function checkShape(w: ScopedWeights, name: string, shape: readonly number[], expected?: readonly number[]): void {
  if (!expected) return;
  if (expected.length !== shape.length || expected.some((d, i) => d !== -1 && d !== shape[i])) {
    // ScopedWeights.get raises the CheckpointError with file, key and both shapes.
    w.get(name, expected);
  }
}

/** torch.nn.Linear: y = x Wᵀ + b. The weight is stored transposed ([in, out]) so MatMul needs no Transpose. */
export function linear(g: GraphBuilder, w: ScopedWeights, x: Value, outFeatures?: number): Value {
  const inFeatures = x.shape[x.shape.length - 1]!;
  const [out, inp] = w.shape("weight") as [number, number];
  checkShape(w, "weight", [out, inp], [outFeatures ?? -1, inFeatures]);
  const weightT = g.initializer(w.path("weight"), [inp, out], () => transpose2d(w.get("weight"), out, inp));
  const y = g.matmul(x, weightT);
  return w.has("bias") ? g.add(y, param(g, w, "bias", [out])) : y;
}

/** torch.nn.Conv2d with its weight [out, in, kh, kw] and optional bias. */
export function conv2d(g: GraphBuilder, w: ScopedWeights, x: Value, opts: { stride?: number; pads?: [number, number, number, number] } = {}): Value {
  const weight = param(g, w, "weight", [-1, x.shape[1]!, -1, -1]);
  const bias = w.has("bias") ? param(g, w, "bias", [weight.shape[0]!]) : undefined;
  return g.conv2d(x, weight, bias, opts);
}

export function groupNorm(g: GraphBuilder, w: ScopedWeights, x: Value, groups: number, eps: number): Value {
  const c = x.shape[1]!;
  return g.groupNorm(x, param(g, w, "weight", [c]), param(g, w, "bias", [c]), groups, eps);
}

export function layerNorm(g: GraphBuilder, w: ScopedWeights, x: Value, eps: number): Value {
  const c = x.shape[x.shape.length - 1]!;
  return g.layerNorm(x, param(g, w, "weight", [c]), param(g, w, "bias", [c]), eps);
}

export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[row + c]!;
  }
  return out;
}
