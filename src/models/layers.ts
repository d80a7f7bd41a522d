import type { GraphBuilder } from "../onnx/builder.js";
import { DataType, numel, type Value } from "../onnx/graph.js";
import { transpose2d } from "../weights/transpose.js";
import type { ScopedWeights } from "../weights/weight-source.js";

/**
 * PyTorch modules as graph fragments: each takes the module's scoped weights (`w` = the module path in the
 * checkpoint) so initializers carry the checkpoint's key names. Every parameter is declared with its full shape
 * (`ScopedWeights.expect`), which checks a checkpoint against the architecture and lets a shape recorder list
 * the architecture's parameters (models/param-shapes.ts).
 */

/** A checkpoint tensor of the given shape as an initializer, read only when the graph is serialized. */
export function param(g: GraphBuilder, w: ScopedWeights, name: string, shape: readonly number[]): Value {
  w.expect(name, shape);
  return g.initializer(
    w.path(name),
    shape,
    (scratch) => w.get(name, undefined, scratch?.(0, numel(shape))),
    DataType.FLOAT,
    { key: w.path(name), layout: { kind: "as-is" } },
  );
}

/**
 * torch.nn.Linear: y = x Wᵀ + b. The weight is stored transposed ([in, out]) so MatMul needs no Transpose.
 * `pointwise`: the weight is a 1x1 Conv2d filter ([out, in, 1, 1], e.g. SD1.x's transformer proj_in/proj_out), the
 * same product per pixel, taken here on tokens ([..., in]): one MatMul that int8 quantizes with a float output
 * (models/precision.ts), where a convolution's int8 form must also quantize its output.
 */
export function linear(
  g: GraphBuilder,
  w: ScopedWeights,
  x: Value,
  outFeatures: number,
  opts: { bias?: boolean; pointwise?: boolean } = {},
): Value {
  const inFeatures = x.shape[x.shape.length - 1]!;
  w.expect("weight", opts.pointwise ? [outFeatures, inFeatures, 1, 1] : [outFeatures, inFeatures]);
  const weightT = g.initializer(
    w.path("weight"),
    [inFeatures, outFeatures],
    (scratch) => {
      const n = inFeatures * outFeatures;
      return transpose2d(w.get("weight", undefined, scratch?.(0, n)), outFeatures, inFeatures, scratch?.(1, n));
    },
    DataType.FLOAT,
    {
      key: w.path("weight"),
      layout: { kind: "transposed" },
    },
  );
  const y = g.matmul(x, weightT);
  return opts.bias === false ? y : g.add(y, param(g, w, "bias", [outFeatures]));
}

export interface Conv2dOptions {
  stride?: number;
  /** [top, left, bottom, right]; default: half the kernel on every side ("same" for odd kernels at stride 1). */
  pads?: [number, number, number, number];
  bias?: boolean;
}

/** torch.nn.Conv2d with a square kernel: weight [out, in, k, k] and a bias unless `bias: false`. */
export function conv2d(
  g: GraphBuilder,
  w: ScopedWeights,
  x: Value,
  outChannels: number,
  kernel: number,
  opts: Conv2dOptions = {},
): Value {
  const weight = param(g, w, "weight", [outChannels, x.shape[1]!, kernel, kernel]);
  const bias = opts.bias === false ? undefined : param(g, w, "bias", [outChannels]);
  return g.conv2d(x, weight, bias, { stride: opts.stride, pads: opts.pads });
}

/**
 * torch's Conv2d(k=3, padding=1) after F.interpolate(mode="nearest") by 2 (to `like`'s size when given: 2x or one
 * less), computed without the upsampled map (GraphBuilder.upsampleConv3x3): the weight stays the checkpoint's 3x3
 * filter under its own key.
 */
export function upsampleConv(
  g: GraphBuilder,
  w: ScopedWeights,
  x: Value,
  outChannels: number,
  opts: { like?: Value; bias?: boolean } = {},
): Value {
  const weight = param(g, w, "weight", [outChannels, x.shape[1]!, 3, 3]);
  const bias = opts.bias === false ? undefined : param(g, w, "bias", [outChannels]);
  return g.upsampleConv3x3(x, weight, bias, opts.like);
}

export function groupNorm(g: GraphBuilder, w: ScopedWeights, x: Value, groups: number, eps: number): Value {
  const c = x.shape[1]!;
  return g.groupNorm(x, param(g, w, "weight", [c]), param(g, w, "bias", [c]), groups, eps);
}

export function layerNorm(g: GraphBuilder, w: ScopedWeights, x: Value, eps: number): Value {
  const c = x.shape[x.shape.length - 1]!;
  return g.layerNorm(x, param(g, w, "weight", [c]), param(g, w, "bias", [c]), eps);
}
