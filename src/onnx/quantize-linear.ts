import { InternalError } from "../errors.js";
import {
  constantValues,
  DataType,
  Graph,
  MS_DOMAIN,
  type InitializerDef,
  type NodeDef,
  type ScratchBuffers,
} from "./graph.js";

/**
 * Linear layers in int8: each MatMul by a constant [K, N] fp32 weight becomes onnxruntime's
 * com.microsoft.DynamicQuantizeMatMul, which quantizes its activations to uint8 per tensor at run time (their range
 * read from the tensor itself, so no calibration) and multiplies them by int8 weights with one scale per output
 * column. On a CPU with VNNI it runs such products 2.4-3.8x faster than fp32 (issue 20's probe). A bias Add that
 * only this product feeds is folded into the node's bias input.
 *
 * With `perRow`, the activations get one scale per row (token) instead (`perRowProduct`: QuantizeLinear along the
 * rows, then com.microsoft.MatMulIntegerToFloat), for inputs whose tails make one tensor-wide range coarse.
 *
 * The weights are quantized symmetrically per column (scale = max |w| / 127, zero point 0, values rounded half to
 * even as ONNX's QuantizeLinear does, within [-127, 127]), lazily as the graph is serialized: each int8 tensor is a
 * quarter of the fp32 one.
 */

export interface QuantizeLinearOptions {
  /** MatMuls to leave in fp32 (the model's choice: layers whose error hurts most). */
  keep?: (node: NodeDef) => boolean;
  /**
   * MatMuls whose activations are quantized per row (one scale per token) rather than per tensor: for inputs with
   * heavy tails, where one tensor-wide range spends the 256 levels on a few extreme values (GEGLU's product: its
   * largest value is ~20x its rms over a 512 px tensor, ~7x within one row). See `perRowProduct`.
   */
  perRow?: (node: NodeDef) => boolean;
}

/** Largest int8 magnitude used: symmetric, so -128 never occurs and a column's scale maps its max to exactly 127. */
export const INT8_MAX = 127;

/** Round half to even, as ONNX QuantizeLinear (and numpy's rint) rounds. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Quantizes a [K, N] row-major matrix per column: scales[n] = max_k |w[k, n]| / 127 (1 for an all-zero column, so
 * that dequantizing gives zeros), q = round(w / scale) saturated to [-127, 127].
 */
export function quantizePerColumn(w: Float32Array, k: number, n: number): { q: Int8Array; scales: Float32Array } {
  if (w.length !== k * n) throw new InternalError(`quantizePerColumn: ${w.length} values for [${k},${n}]`);
  const max = new Float32Array(n);
  for (let r = 0; r < k; r++) {
    const row = r * n;
    for (let c = 0; c < n; c++) {
      const a = Math.abs(w[row + c]!);
      if (a > max[c]!) max[c] = a;
    }
  }
  const scales = new Float32Array(n);
  const inverse = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    scales[c] = max[c]! > 0 ? max[c]! / INT8_MAX : 1;
    inverse[c] = 1 / scales[c]!;
  }
  const q = new Int8Array(k * n);
  for (let r = 0; r < k; r++) {
    const row = r * n;
    for (let c = 0; c < n; c++) {
      const v = roundHalfEven(w[row + c]! * inverse[c]!);
      q[row + c] = Math.min(INT8_MAX, Math.max(v, -INT8_MAX));
    }
  }
  return { q, scales };
}

/** The graph with its MatMuls by constant weights (except those `keep` names) as DynamicQuantizeMatMul. */
export function quantizeLinear(graph: Graph, opts: QuantizeLinearOptions = {}): Graph {
  const inits = graph.initializers;
  const readers = new Map<string, NodeDef[]>();
  for (const node of graph.nodes)
    for (const input of node.inputs) if (input) readers.set(input, [...(readers.get(input) ?? []), node]);
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  // A product of constants (GraphBuilder.upsampleConv3x3 sums a 3x3 filter's taps into 2x2 filters so) is arithmetic
  // on weights that onnxruntime folds once at load: quantized, it would round them and be redone at every run.
  const constants = constantValues(graph);

  const out = new Graph(graph.name);
  out.inputs.push(...graph.inputs);
  out.outputs.push(...graph.outputs);
  /** Bias Adds folded into a quantized product: skipped where they stood. */
  const folded = new Set<NodeDef>();
  /** Quantized tensors by the fp32 weight they replace, in its place among the initializers. */
  const replaced = new Map<string, InitializerDef[]>();
  /** Shape constants of the per-row products. */
  const shapes = new Map<string, InitializerDef>();

  for (const node of graph.nodes) {
    if (folded.has(node)) continue;
    const x = node.inputs[0]!;
    const weight = inits.has(x) || constants.has(x) ? undefined : eligibleWeight(node, inits);
    if (!weight || opts.keep?.(node)) {
      out.nodes.push(node);
      continue;
    }
    const [k, n] = weight.dims as [number, number];
    let quantized = replaced.get(weight.name);
    if (!quantized) {
      quantized = quantizedWeight(weight, k, n);
      replaced.set(weight.name, quantized);
    }
    const y = node.outputs[0]!;
    const next = readers.get(y);
    const add = next?.length === 1 && !graphOutputs.has(y) ? next[0]! : undefined;
    const biasName = add && biasOf(add, y, inits, n);
    if (add && biasName) folded.add(add);
    if (opts.perRow?.(node)) {
      out.nodes.push(...perRowProduct(node, quantized, biasName, biasName ? add!.outputs[0]! : y, [k, n], shapes));
      continue;
    }
    out.nodes.push({
      opType: "DynamicQuantizeMatMul",
      name: `${node.name}#int8`,
      inputs: [node.inputs[0]!, quantized[0]!.name, quantized[1]!.name, ...(biasName ? ["", biasName] : [])],
      outputs: [biasName ? add!.outputs[0]! : y],
      attributes: {},
      domain: MS_DOMAIN,
    });
  }

  const used = new Set(out.nodes.flatMap((nd) => nd.inputs));
  for (const def of [...PER_ROW_CONSTANTS, ...shapes.values()])
    if (used.has(def.name)) out.initializers.set(def.name, def);
  for (const [name, def] of inits) {
    for (const q of replaced.get(name) ?? []) if (used.has(q.name)) out.initializers.set(q.name, q);
    if (used.has(name)) out.initializers.set(name, def);
  }
  return out;
}

/** The [K, N] fp32 initializer a plain MatMul multiplies by, if it has one. */
function eligibleWeight(node: NodeDef, inits: ReadonlyMap<string, InitializerDef>): InitializerDef | undefined {
  if (node.opType !== "MatMul" || (node.domain ?? "") !== "" || node.inputs.length !== 2) return undefined;
  const w = inits.get(node.inputs[1]!);
  return w && w.dtype === DataType.FLOAT && w.dims.length === 2 ? w : undefined;
}

/** The name of the [N] fp32 constant `add` adds to `y`, if it is such an Add. */
function biasOf(add: NodeDef, y: string, inits: ReadonlyMap<string, InitializerDef>, n: number): string | undefined {
  if (add.opType !== "Add" || (add.domain ?? "") !== "" || add.inputs.length !== 2) return undefined;
  const other = add.inputs[0] === y ? add.inputs[1]! : add.inputs[1] === y ? add.inputs[0]! : undefined;
  const b = other === undefined ? undefined : inits.get(other);
  return b && b.dtype === DataType.FLOAT && b.dims.length === 1 && b.dims[0] === n ? b.name : undefined;
}

/**
 * The int8 weight and its column scales, loaded lazily. The weight loader computes both and keeps the scales (N
 * floats), so the scale initializer, written next, does not read the weight again.
 */
function quantizedWeight(weight: InitializerDef, k: number, n: number): [InitializerDef, InitializerDef] {
  let scales: Float32Array | undefined;
  const quantize = (scratch?: ScratchBuffers) => {
    const result = quantizePerColumn(weight.load(scratch) as Float32Array, k, n);
    scales = result.scales;
    return result;
  };
  return [
    { name: `${weight.name}#int8`, dims: [k, n], dtype: DataType.INT8, load: (scratch) => quantize(scratch).q },
    {
      name: `${weight.name}#scale`,
      dims: [n],
      dtype: DataType.FLOAT,
      load: (scratch) => scales ?? quantize(scratch).scales,
    },
  ];
}

/** The constants every per-row product shares. */
const PER_ROW_CONSTANTS: readonly InitializerDef[] = [
  { name: "int8#one", dims: [], dtype: DataType.FLOAT, load: () => Float32Array.of(1) },
  { name: "int8#per_level", dims: [], dtype: DataType.FLOAT, load: () => Float32Array.of(1 / INT8_MAX) },
  // The floor of a row's magnitude, so that an all-zero row gets a usable scale (and quantizes to its zero point).
  { name: "int8#tiny", dims: [], dtype: DataType.FLOAT, load: () => Float32Array.of(1e-30) },
  { name: "int8#zero_point", dims: [], dtype: DataType.UINT8, load: () => Uint8Array.of(128) },
  { name: "int8#zero_points", dims: [1], dtype: DataType.UINT8, load: () => Uint8Array.of(128) },
  { name: "int8#zero", dims: [1], dtype: DataType.INT64, load: () => BigInt64Array.of(0n) },
  { name: "int8#last", dims: [1], dtype: DataType.INT64, load: () => BigInt64Array.of(-1n) },
  { name: "int8#one_axis", dims: [1], dtype: DataType.INT64, load: () => BigInt64Array.of(1n) },
];

/** A [2] or [1] int64 shape constant, named for its values. */
function shapeConstant(values: number[], made: Map<string, InitializerDef>): string {
  const name = `int8#shape_${values.join("_")}`;
  if (!made.has(name))
    made.set(name, {
      name,
      dims: [values.length],
      dtype: DataType.INT64,
      load: () => BigInt64Array.from(values, (v) => BigInt(v)),
    });
  return name;
}

/**
 * x·W with x quantized per row: x as rows [R, K] (R = every leading axis), each row's scale its max |x| / 127 and
 * zero point 128 (uint8, symmetric: onnxruntime's fast integer products take unsigned activations), QuantizeLinear
 * along axis 0, com.microsoft.MatMulIntegerToFloat with a unit activation scale (int8 weights with their column
 * scales), then each row times its scale, the bias, and the leading axes back.
 */
function perRowProduct(
  node: NodeDef,
  [wq, ws]: InitializerDef[],
  bias: string | undefined,
  output: string,
  [k, n]: [number, number],
  made: Map<string, InitializerDef>,
): NodeDef[] {
  const nodes: NodeDef[] = [];
  const op = (opType: string, inputs: string[], suffix: string, attributes: NodeDef["attributes"] = {}) => {
    const y = `${node.name}#int8_${suffix}`;
    nodes.push({
      opType,
      name: y,
      inputs,
      outputs: [y],
      attributes,
      ...(opType === "MatMulIntegerToFloat" ? { domain: MS_DOMAIN } : {}),
    });
    return y;
  };
  const x = node.inputs[0]!;
  const lead = op("Slice", [op("Shape", [x], "shape"), "int8#zero", "int8#last"], "lead");
  const rows = op("Reshape", [x, shapeConstant([-1, k], made)], "rows");
  const magnitude = op(
    "Max",
    [
      op("ReduceMax", [rows], "max", { axes: [1], keepdims: 0 }),
      op("Neg", [op("ReduceMin", [rows], "min", { axes: [1], keepdims: 0 })], "neg_min"),
      "int8#tiny",
    ],
    "magnitude",
  );
  const scale = op("Mul", [magnitude, "int8#per_level"], "scale");
  const zeros = op("Expand", ["int8#zero_points", op("Shape", [scale], "row_count")], "zero_points");
  const q = op("QuantizeLinear", [rows, scale, zeros], "quantized", { axis: 0 });
  const product = op("MatMulIntegerToFloat", [q, wq!.name, "int8#one", ws!.name, "int8#zero_point"], "product");
  let y = op("Mul", [product, op("Unsqueeze", [scale, "int8#one_axis"], "row_scale")], "scaled");
  if (bias) y = op("Add", [y, bias], "biased");
  const shape = op("Concat", [lead, shapeConstant([n], made)], "out_shape", { axis: 0 });
  nodes.push({
    opType: "Reshape",
    name: `${node.name}#int8_out`,
    inputs: [y, shape],
    outputs: [output],
    attributes: {},
  });
  return nodes;
}
