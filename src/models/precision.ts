import { InputError } from "../errors.js";
import type { ActivationRanges } from "../onnx/activation-ranges.js";
import type { Graph, NodeDef } from "../onnx/graph.js";
import { quantizableConvs, quantizeConv } from "../onnx/quantize-conv.js";
import { quantizeLinear } from "../onnx/quantize-linear.js";

/** The arithmetic a network's heavy layers run in: fp32 (the default) or int8 (issue 20). */
export type Precision = "fp32" | "int8";
export const PRECISIONS: readonly Precision[] = ["fp32", "int8"];

/** A precision from user input (`what` names where it came from, e.g. "--precision"), or an InputError. */
export function parsePrecision(value: string, what: string): Precision {
  if ((PRECISIONS as readonly string[]).includes(value)) return value as Precision;
  throw new InputError(
    `${what} ${JSON.stringify(value)}: expected one of ${PRECISIONS.join(", ")} (fp32 is the default)`,
  );
}

/** The networks that have an int8 form. */
export type Int8Network = "unet" | "vae_decoder";

/**
 * Which layers of each network go int8 and which stay fp32: model knowledge, applied to the built fp32 graph by the
 * SD-agnostic passes of onnx/ (quantize-linear.ts: linear layers, activations quantized at run time;
 * quantize-conv.ts: convolutions, activations at calibrated static scales).
 *
 * Kept in fp32:
 * - the UNet's time embedding (and SDXL's add_embedding) and every ResNet's time_emb_proj: they multiply one row
 *   per batch item, where int8 saves nothing and quantizing the activations costs as much as the product, and their
 *   error would shift every feature map of a block at once;
 * - conv_in and conv_out of both networks (and the VAE's post_quant_conv): the few latent channels they read or
 *   write carry the whole signal, and they are a small share of the work;
 * - attention's own products (softmax(QKᵀ)V), inside MultiHeadAttention.
 */
export function int8Graph(network: Int8Network, graph: Graph, ranges: ActivationRanges): Graph {
  const keepConv = network === "unet" ? keepUnetConv : keepVaeConv;
  const convs = quantizeConv(graph, { ranges, keep: (n) => keepConv(weightOf(n)) });
  return quantizeLinear(convs, { keep: (n) => network === "unet" && keepUnetLinear(weightOf(n)) });
}

/** The tensors whose ranges calibration must measure for `int8Graph`: each quantized convolution's input and output. */
export function calibratedTensors(network: Int8Network, graph: Graph): string[] {
  const keepConv = network === "unet" ? keepUnetConv : keepVaeConv;
  const convs = quantizableConvs(graph).filter((n) => !keepConv(weightOf(n)));
  return [...new Set(convs.flatMap((n) => [n.inputs[0]!, n.outputs[0]!]))];
}

function keepUnetLinear(weight: string): boolean {
  return (
    weight.startsWith("time_embedding.") || weight.startsWith("add_embedding.") || weight.includes(".time_emb_proj.")
  );
}

function keepUnetConv(weight: string): boolean {
  return (
    weight.startsWith("conv_in.") ||
    weight.startsWith("conv_out.") ||
    READS_RESIDUAL_STREAM.some((part) => weight.includes(part))
  );
}

/**
 * The convolutions that read the raw residual stream (not a normalized tensor): the ResNets' 1x1 shortcuts, the
 * down- and upsamplers, and the transformers' proj_out. That stream's range over a generation is several times its
 * typical magnitude (calibrating the random-weight SD1.5: about ±78 where one run sees ±20), so one static uint8
 * scale for it is coarse: measured on a 20-step trajectory they carried most of the int8 error.
 */
const READS_RESIDUAL_STREAM = [".conv_shortcut.", ".downsamplers.", ".upsamplers.", ".proj_out."];

function keepVaeConv(weight: string): boolean {
  return (
    weight.startsWith("decoder.conv_in.") ||
    weight.startsWith("decoder.conv_out.") ||
    weight.startsWith("post_quant_conv.")
  );
}

/** The constant operand of a MatMul or Conv: a checkpoint key (the builders name initializers after them). */
function weightOf(node: NodeDef): string {
  return node.inputs[1] ?? "";
}
