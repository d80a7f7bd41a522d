import { InternalError } from "../errors.js";

/** ONNX element types we emit (values of onnx.TensorProto.DataType). */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10 } as const;
export type DataType = (typeof DataType)[keyof typeof DataType];

/** Standard opset: 17 brings LayerNormalization, which ORT runs as one kernel. */
export const OPSET = 17;
export const MS_DOMAIN = "com.microsoft";

/**
 * A tensor flowing through the graph. `shape` is the nominal shape at the sizes the graph was built for:
 * every op asserts it at build time, while the serialized graph keeps batch and spatial sizes dynamic
 * (reshapes use 0 / -1 or runtime shapes, never the nominal numbers).
 */
export interface Value {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DataType;
}

export type AttributeValue = number | string | number[] | { floats: number[] } | { int: number } | { float: number };

export interface NodeDef {
  readonly opType: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  readonly domain?: string;
}

type TensorData = Float32Array | BigInt64Array | Int32Array | Uint16Array | Int8Array | Uint8Array;

/**
 * How a weight initializer holds the checkpoint tensor it was made from: as it is ([out, in] or [out, in, kh, kw]),
 * a 2-D [out, in] matrix stored transposed ([in, out], so that MatMul needs no Transpose), or a 4-D convolution
 * filter in onnxruntime's blocked NCHWc layout (runtime/nchwc-layout.ts).
 */
export type WeightLayout =
  | { readonly kind: "as-is" }
  | { readonly kind: "transposed" }
  | { readonly kind: "blocked"; readonly filter: "OIHWBiBo" | "OIHWBo"; readonly block: number };

/**
 * The checkpoint tensor an initializer holds: its name in the network's weights and its layout. Code that changes
 * weights after a graph was built (LoRA deltas merged as the weights are loaded) finds its tensors through it.
 */
export interface WeightOrigin {
  readonly key: string;
  readonly layout: WeightLayout;
}

/** An initializer whose data may be produced lazily (weights are read from the checkpoint only while serializing). */
/**
 * Float buffers reused from one initializer's load to the next: `slot` tells apart the buffers one load uses at
 * once (say, the weight as read and its transpose), `length` is exactly the size wanted.
 */
export type ScratchBuffers = (slot: number, length: number) => Float32Array;

/** ScratchBuffers that grow to the largest request of each slot. */
export function scratchBuffers(): ScratchBuffers {
  const slots: Float32Array[] = [];
  return (slot, length) => {
    if ((slots[slot]?.length ?? -1) < length) slots[slot] = new Float32Array(length);
    return slots[slot]!.subarray(0, length);
  };
}

export interface InitializerDef {
  readonly name: string;
  readonly dims: readonly number[];
  readonly dtype: DataType;
  /**
   * The data. With `scratch`, it may be written into (and returned as) one of its buffers, which stays valid only
   * until the next load given the same scratch: serialization reads initializers one at a time, and weights read
   * into memory that is reused from weight to weight skip the page faults of fresh memory, which dominated building
   * a graph on some virtual machines.
   */
  readonly load: (scratch?: ScratchBuffers) => TensorData;
  /** Set for the checkpoint's weights (not for the graph's own constants). */
  readonly origin?: WeightOrigin;
  /** Set where the fp32 values are exactly int8 values times a scale per row or column (Int8Values). */
  readonly int8?: Int8Values;
}

/**
 * An fp32 2-D tensor whose values are exactly q × scale (q an int8 in [-127, 127], one scale per row for axis 0, per
 * column for axis 1; onnx/quantize-weights.ts): a store may keep q and the scales, a quarter of the bytes, and give
 * back the same fp32 values (each the fp32 product q × scale).
 */
export interface Int8Values {
  readonly axis: 0 | 1;
  quantized(scratch?: ScratchBuffers): { q: Int8Array; scales: Float32Array };
}

export interface GraphIO {
  readonly name: string;
  readonly dtype: DataType;
  /** Dimensions: a number, or a symbolic name for a dynamic axis. */
  readonly dims: readonly (number | string)[];
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function assertShape(v: Value, expected: readonly number[], what: string): void {
  if (v.shape.length !== expected.length || v.shape.some((d, i) => expected[i] !== -1 && d !== expected[i])) {
    throw new InternalError(`${what}: ${v.name} has shape [${v.shape.join(",")}], expected [${expected.join(",")}]`);
  }
}

/**
 * Numpy-style broadcast of two shapes, used by the elementwise ops' shape checks.
 */
export function broadcast(a: readonly number[], b: readonly number[], what: string): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1)
      throw new InternalError(`${what}: cannot broadcast [${a.join(",")}] with [${b.join(",")}]`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/**
 * The float values the graph computes from its initializers alone (a filter derived from another, say), which
 * onnxruntime folds into constants at load (not the initializers themselves). Nodes are in topological order.
 */
export function constantValues(graph: Graph): Set<string> {
  const constant = new Set<string>(graph.initializers.keys());
  for (const n of graph.nodes) {
    if ((n.domain ?? "") === "" && n.inputs.every((i) => i === "" || constant.has(i)))
      for (const o of n.outputs) constant.add(o);
  }
  for (const name of graph.initializers.keys()) constant.delete(name);
  return constant;
}

/**
 * The core of the graph builder: values, nodes, initializers and a scope stack that names nodes after the
 * checkpoint's module paths ("down_blocks.0.resnets.1.conv1"). Op helpers live in ops.ts.
 */
export class Graph {
  readonly nodes: NodeDef[] = [];
  readonly initializers = new Map<string, InitializerDef>();
  readonly inputs: GraphIO[] = [];
  readonly outputs: GraphIO[] = [];
  private readonly values = new Map<string, Value>();
  private readonly scopes: string[] = [];
  private readonly usedNames = new Set<string>();
  private constants = 0;

  constructor(readonly name: string) {}

  /** Runs `fn` with node names prefixed by `scope` (a module path). */
  scoped<T>(scope: string, fn: () => T): T {
    this.scopes.push(scope);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** A node or value name unique in the graph, under the current scope. */
  uniqueName(base: string): string {
    const prefix = this.scopes.filter(Boolean).join(".");
    const stem = prefix ? `${prefix}/${base}` : base;
    let name = stem;
    for (let i = 1; this.usedNames.has(name); i++) name = `${stem}_${i}`;
    this.usedNames.add(name);
    return name;
  }

  input(name: string, dtype: DataType, dims: readonly (number | string)[], nominal: readonly number[]): Value {
    this.inputs.push({ name, dtype, dims });
    this.usedNames.add(name);
    return this.register({ name, shape: nominal, dtype });
  }

  output(v: Value, name: string, dims: readonly (number | string)[]): void {
    if (v.name !== name) this.node("Identity", [v], {}, { outputNames: [name], shapes: [v.shape] });
    this.outputs.push({ name, dtype: v.dtype, dims });
  }

  /** Registers an initializer (a weight or a constant). Its name must be unique: checkpoint keys are. */
  initializer(
    name: string,
    dims: readonly number[],
    load: (scratch?: ScratchBuffers) => TensorData,
    dtype: DataType = DataType.FLOAT,
    origin?: WeightOrigin,
  ): Value {
    if (this.initializers.has(name)) return this.values.get(name)!;
    this.initializers.set(name, origin ? { name, dims, dtype, load, origin } : { name, dims, dtype, load });
    this.usedNames.add(name);
    return this.register({ name, shape: dims, dtype });
  }

  /** A small constant tensor (shapes, axes, scalars), named under the current scope. */
  constant(data: number[] | Float32Array, dims: readonly number[], dtype: DataType = DataType.FLOAT): Value {
    const name = this.uniqueName(`const_${this.constants++}`);
    const values = Array.from(data);
    const load = (): TensorData => {
      switch (dtype) {
        case DataType.INT64:
          return BigInt64Array.from(values, (v) => BigInt(v));
        case DataType.INT32:
          return Int32Array.from(values);
        case DataType.FLOAT:
          return Float32Array.from(values);
        default:
          throw new InternalError(`constant of dtype ${dtype} not supported`);
      }
    };
    return this.initializer(name, dims, load, dtype);
  }

  int64s(values: number[]): Value {
    return this.constant(values, [values.length], DataType.INT64);
  }

  /**
   * Adds a node. `shapes` gives the nominal shape of each output (the caller's shape inference).
   */
  node(
    opType: string,
    inputs: readonly (Value | undefined)[],
    attributes: Record<string, AttributeValue> = {},
    opts: {
      shapes: readonly (readonly number[])[];
      dtypes?: DataType[];
      domain?: string;
      outputNames?: string[];
      name?: string;
    },
  ): Value[] {
    const nodeName = this.uniqueName(opts.name ?? opType);
    const outputs = opts.shapes.map((shape, i) => {
      const name = opts.outputNames?.[i] ?? (opts.shapes.length === 1 ? nodeName : `${nodeName}:${i}`);
      if (opts.outputNames?.[i]) this.usedNames.add(name);
      return this.register({ name, shape: [...shape], dtype: opts.dtypes?.[i] ?? inputs[0]?.dtype ?? DataType.FLOAT });
    });
    this.nodes.push({
      opType,
      name: nodeName,
      inputs: inputs.map((v) => v?.name ?? ""),
      outputs: outputs.map((o) => o.name),
      attributes,
      domain: opts.domain,
    });
    return outputs;
  }

  /** Single-output convenience. */
  op(
    opType: string,
    inputs: readonly (Value | undefined)[],
    shape: readonly number[],
    attributes: Record<string, AttributeValue> = {},
    opts: { dtype?: DataType; domain?: string; name?: string } = {},
  ): Value {
    return this.node(opType, inputs, attributes, {
      shapes: [shape],
      dtypes: opts.dtype === undefined ? undefined : [opts.dtype],
      domain: opts.domain,
      name: opts.name,
    })[0]!;
  }

  /** The nominal shape of a value (input, initializer or node output) by name. */
  shapeOf(name: string): readonly number[] | undefined {
    return this.values.get(name)?.shape;
  }

  private register(v: Value): Value {
    this.values.set(v.name, v);
    return v;
  }
}
