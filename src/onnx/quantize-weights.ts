import { quantizePerChannel } from "./quantize-conv.js";
import { quantizePerColumn } from "./quantize-linear.js";
import { DataType, Graph, type InitializerDef, type NodeDef, type ScratchBuffers } from "./graph.js";

/**
 * Weight-only int8: the large fp32 weights of a graph rounded to int8 values times fp32 scales, so that the graph
 * computes in fp32 with slightly rounded weights and a store keeps a quarter of the bytes (InitializerDef.int8: the
 * compile cache writes q and the scales, and rebuilds the fp32 values as it loads the entry, as it does for fp16).
 * For networks whose arithmetic is cheap but whose weights are large on disk (a text encoder, run once per
 * generation): no activation is quantized, so nothing needs calibrating, and no node changes.
 *
 * - A MatMul's constant [K, N] right operand (a linear layer's transposed weight): symmetric int8 with one scale per
 *   output column (quantize-linear.ts's quantizePerColumn).
 * - A Gather's constant [rows, D] table (a token embedding): one scale per row (quantize-conv.ts's
 *   quantizePerChannel, a row being a "channel"), so that a rare token's small row keeps its own resolution.
 *
 * A weight is rounded only when every node reading it is such a reader of the same kind.
 *
 * Not DequantizeLinear nodes in the graph: onnxruntime either fuses them into 8-bit MatMulNBits (which also
 * quantizes the activations, and ran a text encoder 8-40x slower) or, with its QDQ passes off, folds them into fp32
 * constants at session creation at about 20 ns a weight on one thread (SDXL's text encoders took 36 s more to load
 * on this 2-core machine), holding the folded copy beside the int8 file.
 */

export interface QuantizeWeightsOptions {
  /** Weights to leave as they are (the model's choice), by their initializer. */
  keep?: (weight: InitializerDef) => boolean;
}

/** How a weight is read: as a MatMul's right operand (scales per column) or a Gather's table (scales per row). */
type Reader = "matmul" | "gather";

/** The graph with its eligible weights rounded to int8 values times per-row or per-column scales. */
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

  const out = new Graph(graph.name);
  out.inputs.push(...graph.inputs);
  out.outputs.push(...graph.outputs);
  out.nodes.push(...graph.nodes);
  for (const [name, def] of inits) {
    const kind = readers.get(name);
    const eligible = kind && !graphOutputs.has(name) && def.dtype === DataType.FLOAT && def.dims.length === 2;
    out.initializers.set(name, eligible && !opts.keep?.(def) ? rounded(def, kind) : def);
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

/** `w` rounded: its values q × scale, computed lazily as the graph is serialized, with their int8 form. */
function rounded(w: InitializerDef, kind: Reader): InitializerDef {
  const [rows, cols] = w.dims as [number, number];
  const quantized = (scratch?: ScratchBuffers) => {
    const data = w.load(scratch) as Float32Array;
    return kind === "matmul" ? quantizePerColumn(data, rows, cols) : quantizePerChannel(data, rows);
  };
  return {
    name: w.name,
    dims: w.dims,
    dtype: DataType.FLOAT,
    load: (scratch) => {
      const { q, scales } = quantized(scratch);
      // The weight as read is no longer needed: its buffer takes the rounded values.
      const out = scratch ? scratch(0, q.length) : new Float32Array(q.length);
      if (kind === "matmul") for (let i = 0; i < q.length; i++) out[i] = q[i]! * scales[i % cols]!;
      else for (let i = 0; i < q.length; i++) out[i] = q[i]! * scales[Math.floor(i / cols)]!;
      return out;
    },
    int8: { axis: kind === "matmul" ? 1 : 0, quantized },
  };
}
