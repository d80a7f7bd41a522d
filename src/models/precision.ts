import type { Graph, NodeDef } from "../onnx/graph.js";
import { quantizeLinear } from "../onnx/quantize-linear.js";

/** The arithmetic a network's heavy layers run in: fp32 (the default) or int8 (issue 20). */
export type Precision = "fp32" | "int8";
export const PRECISIONS: readonly Precision[] = ["fp32", "int8"];

/**
 * Which layers of each network go int8, and which stay fp32: model knowledge, applied to the built graph by the
 * SD-agnostic passes of onnx/ (quantize-linear.ts).
 *
 * Kept in fp32 in the UNet: the time embedding (and SDXL's add_embedding) and every ResNet's time_emb_proj. They
 * multiply a handful of rows (one per batch item), where int8 saves nothing and quantizing the activations per
 * tensor costs as much as the product, and their error would shift every feature map of a block at once.
 * Attention's own products (softmax(QKᵀ)V) are inside MultiHeadAttention and stay fp32.
 */
export function unetInt8(graph: Graph): Graph {
  return quantizeLinear(graph, { keep: (node) => keepUnetLinear(weightOf(node)) });
}

/** The VAE decoder: its only linear layers are the mid block's attention projections, all quantized. */
export function vaeDecoderInt8(graph: Graph): Graph {
  return quantizeLinear(graph);
}

function keepUnetLinear(weight: string): boolean {
  return (
    weight.startsWith("time_embedding.") || weight.startsWith("add_embedding.") || weight.includes(".time_emb_proj.")
  );
}

/** The constant operand of a MatMul: a checkpoint key (the builders name initializers after them). */
function weightOf(node: NodeDef): string {
  return node.inputs[1] ?? "";
}
