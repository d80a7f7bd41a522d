import { quantizePerChannel } from "./quantize-conv.js";
import { quantizePerColumn } from "./quantize-linear.js";
import { DataType, Graph, type InitializerDef, type NodeDef, type ScratchBuffers } from "./graph.js";

/**
 * Weight-only int8: the large fp32 weights of a graph stored as int8 with fp32 scales, each behind a
 * DequantizeLinear, so that the graph computes in fp32 with slightly rounded weights and its file holds a quarter of
 * the bytes. For networks whose arithmetic is cheap but whose weights are large on disk (a text encoder, run once per
 * generation): no activation is quantized, so nothing needs calibrating.
 *
 * - A MatMul's constant [K, N] right operand (a linear layer's transposed weight): symmetric int8 with one scale per
 *   output column (quantize-linear.ts's quantizePerColumn), dequantized along axis 1.
 * - A Gather's constant [rows, D] table (a token embedding): one scale per row (quantize-conv.ts's
 *   quantizePerChannel, a row being a "channel"), dequantized along axis 0, so that a rare token's small row keeps
 *   its own resolution.
 *
 * A weight is quantized only when every node reading it is such a reader of the same kind (one DequantizeLinear then
 * serves them all). onnxruntime folds a DequantizeLinear of constants into an fp32 constant at session creation only
 * when its QDQ passes are off (SessionOptions.foldDequantize); otherwise it runs at each call.
 */

export interface QuantizeWeightsOptions {
  /** Weights to leave as they are (the model's choice), by their initializer. */
  keep?: (weight: InitializerDef) => boolean;
}

/** How a weight is read: as a MatMul's right operand (scales per column) or a Gather's table (scales per row). */
type Reader = "matmul" | "gather";

/** The graph with its eligible weights as int8 + scales, each dequantized once in front of its readers. */
export function quantizeWeights(graph: Graph, opts: QuantizeWeightsOptions = {}): Graph {
  const inits = graph.initializers;
  // Each initializer's readers: the kind they agree on, or null when any reader is of another kind.
  const readers = new Map<string, Reader | null>();
  for (const node of graph.nodes)
    node.inputs.forEach((input, slot) => {
      if (!inits.has(input)) return;
      const kind = readerKind(node, slot);
      const seen = readers.get(input);
      readers.set(input, seen === undefined || seen === kind ? kind : null);
    });
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));

  const chosen = new Map<string, { kind: Reader; defs: [InitializerDef, InitializerDef] }>();
  for (const [name, kind] of readers) {
    const w = inits.get(name)!;
    if (!kind || graphOutputs.has(name) || w.dtype !== DataType.FLOAT || w.dims.length !== 2) continue;
    if (opts.keep?.(w)) continue;
    chosen.set(name, { kind, defs: quantizedWeight(w, kind) });
  }

  const out = new Graph(graph.name);
  out.inputs.push(...graph.inputs);
  out.outputs.push(...graph.outputs);
  const dequantized = (name: string) => `${name}#dequantized`;
  // The dequantizations first: a node list in topological order stays so.
  for (const [name, { kind, defs }] of chosen)
    out.nodes.push({
      opType: "DequantizeLinear",
      name: `${name}#dequantize`,
      inputs: [defs[0].name, defs[1].name],
      outputs: [dequantized(name)],
      attributes: { axis: kind === "matmul" ? 1 : 0 },
    });
  for (const node of graph.nodes)
    out.nodes.push(
      node.inputs.some((i) => chosen.has(i))
        ? { ...node, inputs: node.inputs.map((i) => (chosen.has(i) ? dequantized(i) : i)) }
        : node,
    );
  for (const [name, def] of inits) {
    const q = chosen.get(name);
    if (!q) out.initializers.set(name, def);
    else for (const d of q.defs) out.initializers.set(d.name, d);
  }
  return out;
}

/** What kind of weight reader `node` is for its input at `slot`, or null when it is none. */
function readerKind(node: NodeDef, slot: number): Reader | null {
  if ((node.domain ?? "") !== "") return null;
  if (node.opType === "MatMul" && slot === 1) return "matmul";
  if (node.opType === "Gather" && slot === 0 && (node.attributes.axis ?? 0) === 0) return "gather";
  return null;
}

/**
 * The int8 tensor and its scales, computed lazily as the graph is serialized: the int8 tensor's loader keeps the
 * scales, so the scale initializer, written next, does not read the weight again.
 */
function quantizedWeight(w: InitializerDef, kind: Reader): [InitializerDef, InitializerDef] {
  const [rows, cols] = w.dims as [number, number];
  let scales: Float32Array | undefined;
  const quantize = (scratch?: ScratchBuffers) => {
    const data = w.load(scratch) as Float32Array;
    const r = kind === "matmul" ? quantizePerColumn(data, rows, cols) : quantizePerChannel(data, rows);
    scales = r.scales;
    return r;
  };
  return [
    { name: `${w.name}#int8`, dims: w.dims, dtype: DataType.INT8, load: (s) => quantize(s).q },
    {
      name: `${w.name}#scale`,
      dims: [kind === "matmul" ? cols : rows],
      dtype: DataType.FLOAT,
      load: (s) => scales ?? quantize(s).scales,
    },
  ];
}
