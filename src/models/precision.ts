import { InputError } from "../errors.js";
import type { ActivationRanges } from "../onnx/activation-ranges.js";
import type { Graph, NodeDef } from "../onnx/graph.js";
import { quantizableConvs, quantizeConv } from "../onnx/quantize-conv.js";
import { quantizeLinear } from "../onnx/quantize-linear.js";
import { quantizeWeights } from "../onnx/quantize-weights.js";

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
/** Every network with an int8 form, in the order they are calibrated (the VAE's runs take the UNet's latents). */
export const INT8_NETWORKS: readonly Int8Network[] = ["unet", "vae_decoder"];

/**
 * Which layers of each network go int8 and which stay fp32: model knowledge, applied to the built fp32 graph by the
 * SD-agnostic passes of onnx/ (quantize-linear.ts: linear layers, activations quantized at run time, one scale per
 * row (token) in the UNet; quantize-conv.ts: convolutions, activations at calibrated static scales).
 *
 * Measured on a full-size random-weight SD1.5 (`bench/int8.ts`: one call at 256 px, and 20 Euler a steps at 512 px,
 * int8 vs fp32 on the same seed), which choices carry the error: the convolutions that replace the whole signal
 * rather than add to it (READS_RESIDUAL_STREAM) took the per-step error from 3-4% to 6-10% with run-time input
 * ranges, and one call's to 23% with static ones; a per-tensor range on the feed-forward's GEGLU output (its largest
 * value ~20x its rms) added ~3%, per-row ranges half of that at the same speed; the transformers' proj_in (its
 * output is the transformer's whole stream) ~2%. Kept in fp32:
 * - the UNet's time embedding (and SDXL's add_embedding) and every ResNet's time_emb_proj: they multiply one row
 *   per batch item, where int8 saves nothing and quantizing the activations costs as much as the product, and their
 *   error would shift every feature map of a block at once;
 * - conv_in and conv_out of both networks (and the VAE's post_quant_conv): the few latent channels they read or
 *   write carry the whole signal, and they are a small share of the work;
 * - the UNet's full-signal convolutions (READS_RESIDUAL_STREAM), the transformers' proj_in and proj_out (their
 *   input and output are the transformer's whole stream);
 * - cross-attention's keys and values (attn2.to_k/to_v): 77 text tokens, where int8 saves nothing;
 * - the UNet's first ResNet (FIRST_RESNET), and the feed-forward's second product (ff.net.2, its input GEGLU's
 *   heavy-tailed product) in the transformers at full latent resolution (FULL_RESOLUTION_ATTENTIONS);
 * - attention's own products (softmax(QKᵀ)V), inside MultiHeadAttention: an explicit attention with int8 products
 *   (MatMulIntegerToFloat on per-row quantized Q, K, probabilities and V) ran its products twice as fast but wrote
 *   the [Lq, Lk] scores out in passes (scales, softmax, row max, quantize) the fused kernel never makes: at 4096
 *   tokens as much CPU time as MultiHeadAttention or up to 30% more, and 2-5% output error on peaked attention.
 * With calibrated ranges clipped for the least 8-bit error (onnx/activation-ranges.ts), one call at 256 px and
 * t=900 was 3.09% off fp32; keeping one group more in fp32 took it to: proj_out 2.77%, the first ResNet 2.79%
 * (all of down_blocks.0's convolutions 2.68%), every ff.net.2 2.64% (~4x the work of proj_out), cross-attention's
 * keys and values 3.02% (free), any other group 2.92-3.06%. With proj_out, cross-attention's k/v and the first
 * ResNet kept, t=950: 2.40%; ff.net.2 at full resolution too (all of down_blocks.0's convolutions as well): 1.84%.
 */
export function int8Graph(network: Int8Network, graph: Graph, ranges: ActivationRanges): Graph {
  const keepConv = network === "unet" ? keepUnetConv : keepVaeConv;
  const convs = quantizeConv(graph, { ranges, keep: (n) => keepConv(weightOf(n)) });
  const linears = quantizeLinear(convs, {
    keep: (n) => network === "unet" && keepUnetLinear(weightOf(n)),
    perRow: () => network === "unet",
  });
  // What stays fp32 for how little work it is, not for its error, is kept on disk as int8 all the same.
  return quantizeWeights(linears, { keep: (w) => !ROUNDED_FP32.some((part) => w.name.includes(part)) });
}

/**
 * Linear layers kept in fp32 arithmetic because int8 would save no time (one row per batch item, or 77 text
 * tokens), whose weights are stored as int8 (weight-only, quantize-weights.ts: fp32 arithmetic on rounded weights,
 * about 0.5% off per layer): 36 MB less on disk for an SD1.5. The transformers' proj_in and proj_out, kept for their
 * error, keep their weights as they are.
 */
const ROUNDED_FP32 = ["time_embedding.", "add_embedding.", ".time_emb_proj.", ".attn2.to_k.", ".attn2.to_v."];

/**
 * The networks whose int8 form is weight-only: the text encoders (every family's, SDXL's second included). They run
 * once per generation, so their speed does not matter but their size on disk does (SD1.5's 0.25 GB of a 1.28 GB
 * int8 cache at fp16, SDXL's bigG 1.4 GB): their weights are stored as int8 and computed with in fp32, and nothing
 * needs calibrating. Their graphs stay fp32 (the rounded weights are stored as int8 and rebuilt as fp32 at load).
 */
export type WeightOnlyInt8Network = "text_encoder";

/**
 * The weight-only int8 form of a network (onnx/quantize-weights.ts): the linear layers' weights with one scale per
 * output channel, and the token-embedding table with one per row (per token: a rare token's small row keeps its own
 * resolution). The position embeddings, layer norms and biases (small) stay as they are.
 *
 * Measured on the full-size random-weight SD1.5 (its last hidden state for four prompts, int8 vs fp32), with every
 * linear layer in int8 the conditioning is 1.15% off; the error comes mostly from attention's value path: with
 * v_proj and out_proj kept as they are it is 0.70% (with q_proj and k_proj kept instead, whose error the softmax
 * damps, 1.13%; the token embedding alone 0.30%). Those two stay in the checkpoint's precision (fp16 on disk for
 * most): 12% of SD1.5's text encoder, 15 MB more on disk than all-int8. The full-size random-weight SDXL's encoders
 * with them kept: 0.76% (CLIP-L's penultimate states), 0.86% (bigG's) and 0.96% (the pooled projection).
 */
export function weightOnlyInt8Graph(_network: WeightOnlyInt8Network, graph: Graph): Graph {
  return quantizeWeights(graph, { keep: (w) => KEEP_TEXT_ENCODER.some((part) => w.name.includes(part)) });
}

/** Attention's value path: its error reaches the residual stream undamped (see weightOnlyInt8Graph). */
const KEEP_TEXT_ENCODER = [".self_attn.v_proj.", ".self_attn.out_proj."];

/** The tensors whose ranges calibration must measure for `int8Graph`: each quantized convolution's input and output. */
export function calibratedTensors(network: Int8Network, graph: Graph): string[] {
  const keepConv = network === "unet" ? keepUnetConv : keepVaeConv;
  const convs = quantizableConvs(graph).filter((n) => !keepConv(weightOf(n)));
  return [...new Set(convs.flatMap((n) => [n.inputs[0]!, n.outputs[0]!]))];
}

function keepUnetLinear(weight: string): boolean {
  return (
    weight.startsWith("time_embedding.") ||
    weight.startsWith("add_embedding.") ||
    weight.includes(".time_emb_proj.") ||
    weight.includes(".proj_in.") ||
    weight.includes(".proj_out.") ||
    weight.includes(".attn2.to_k.") ||
    weight.includes(".attn2.to_v.") ||
    (weight.includes(".ff.net.2.") && FULL_RESOLUTION_ATTENTIONS.some((block) => weight.startsWith(block)))
  );
}

function keepUnetConv(weight: string): boolean {
  return (
    weight.startsWith("conv_in.") ||
    weight.startsWith("conv_out.") ||
    weight.startsWith(FIRST_RESNET) ||
    READS_RESIDUAL_STREAM.some((part) => weight.includes(part))
  );
}

/**
 * The convolutions that read the raw residual stream and replace it (not a normalized tensor whose result is added
 * to it): the ResNets' 1x1 shortcuts and the down- and upsamplers. Their error lands on the whole signal, and the
 * stream's range over a generation is several times one run's (about ±78 where one run sees ±20 in the
 * random-weight SD1.5), so a static uint8 scale is coarse; run-time ranges did not help either (above).
 */
const READS_RESIDUAL_STREAM = [".conv_shortcut.", ".downsamplers.", ".upsamplers."];

/**
 * The UNet's first ResNet, at full latent resolution on conv_in's output: its output is the skip the last up block
 * reads, the shortest path from the input to conv_out, which carries most of the prediction at high noise levels.
 */
const FIRST_RESNET = "down_blocks.0.resnets.0.";

/**
 * The transformers at full latent resolution in SD1.x and SD2.x (4096 tokens at 512 px): their outputs reach conv_out
 * through the fewest layers. SDXL has none (its first and last blocks are ResNets only).
 */
const FULL_RESOLUTION_ATTENTIONS = ["down_blocks.0.attentions.", "up_blocks.3.attentions."];

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
