import { InternalError } from "../errors.js";
import type { AttentionKind, GraphBuilder } from "../onnx/builder.js";
import { DataType, type Value } from "../onnx/graph.js";
import type { ScopedWeights } from "../weights/weight-source.js";
import type { UNetEncoderConfig } from "../configs/unet.js";
import { conv2d, groupNorm, layerNorm, linear } from "./layers.js";

/**
 * The encoder half of UNet2DConditionModel, written once for the two networks made of it: the UNet (unet.ts), which
 * adds the up path, and the ControlNet (controlnet.ts), a trained copy of this half whose outputs are added to the
 * UNet's skip connections. Both read their weights through the same diffusers module tree (`time_embedding`,
 * `conv_in`, `down_blocks.*`, `mid_block`), so one builder serves both checkpoints.
 */

/** Graph input names shared by the UNet and the ControlNet (they take the same latents, timestep and conditions). */
export const ENCODER_IO = {
  sample: "sample", // [batch, in_channels, h, w] latents (scaled model input)
  timestep: "timestep", // float [1] or [batch] (one per batch item, as SDXL refiners and LCM use)
  encoderHiddenStates: "encoder_hidden_states", // [batch, tokens, cross_attention_dim]
  /**
   * SDXL (addition_embed_type "text_time") only: the pooled text embeds [batch, P] (text_encoder_2's text_embeds) and
   * the time ids [batch, N] (SDXL base: original size, crop top-left, target size = 6 ids; refiner: original size,
   * crop, aesthetic score = 5), with P + N * addition_time_embed_dim = projection_class_embeddings_input_dim.
   */
  textEmbeds: "text_embeds",
  timeIds: "time_ids",
  /** LCM (time_cond_proj_dim set) only: the guidance embedding [batch, time_cond_proj_dim] (diffusers' timestep_cond). */
  timestepCond: "timestep_cond",
} as const;

/**
 * The names of the residuals a ControlNet adds to a UNet: one per skip connection (conv_in's output, every down
 * layer, every downsampler, in that order) and one for the mid block's output. The ControlNet's outputs and the
 * UNet's extra inputs carry the same names, so one network's results feed the other as they are.
 */
export function downResidualName(index: number): string {
  return `down_block_additional_residual_${index}`;
}
export const MID_RESIDUAL = "mid_block_additional_residual";

/**
 * The names of the residuals a T2I-Adapter adds inside a UNet (diffusers' down_intrablock_additional_residuals): one
 * per down level, then one for the mid block's output. The adapter's feature maps are fed to them in order.
 */
export function intrablockResidualName(index: number): string {
  return `down_intrablock_additional_residual_${index}`;
}

/**
 * The shape [channels, height, width] of each intrablock residual for latents of h x w, in order: per down level
 * the output of its last ResNet-and-attention pair on a cross-attention level (before its downsampler), or the
 * level's output after its downsampler on a plain level; then the mid block's output (when the UNet has one).
 */
export function intrablockShapes(config: UNetEncoderConfig, height: number, width: number): [number, number, number][] {
  const levels = config.blockOutChannels.length;
  const sizes: [number, number][] = [[height, width]];
  for (let l = 1; l < levels; l++) sizes.push([Math.ceil(sizes[l - 1]![0] / 2), Math.ceil(sizes[l - 1]![1] / 2)]);
  const shapes = config.blockOutChannels.map((c, l): [number, number, number] => {
    const cross = config.downBlockTypes[l] === "CrossAttnDownBlock2D";
    return [c, ...sizes[cross || l === levels - 1 ? l : l + 1]!];
  });
  if (config.midBlockType !== null) shapes.push([config.blockOutChannels[levels - 1]!, ...sizes[levels - 1]!]);
  return shapes;
}

/** The channels of each skip connection, in order (conv_in's, each down layer's, each downsampler's). */
export function skipChannels(config: UNetEncoderConfig): number[] {
  return residualShapes(config, 1, 1).down.map(([c]) => c);
}

/**
 * The shape [channels, height, width] of every skip connection for latents of h x w, and of the mid block's output:
 * what a ControlNet's residuals are. Each stride-2 convolution (kernel 3, padding 1) rounds an odd size up.
 */
export function residualShapes(
  config: UNetEncoderConfig,
  height: number,
  width: number,
): { down: [number, number, number][]; mid: [number, number, number] } {
  const levels = config.blockOutChannels.length;
  const sizes: [number, number][] = [[height, width]];
  for (let l = 1; l < levels; l++) sizes.push([Math.ceil(sizes[l - 1]![0] / 2), Math.ceil(sizes[l - 1]![1] / 2)]);
  const down: [number, number, number][] = [[config.blockOutChannels[0]!, height, width]];
  for (let l = 0; l < levels; l++) {
    const c = config.blockOutChannels[l]!;
    for (let j = 0; j < config.layersPerBlock[l]!; j++) down.push([c, ...sizes[l]!]);
    if (l < levels - 1) down.push([c, ...sizes[l + 1]!]);
  }
  return { down, mid: [config.blockOutChannels[levels - 1]!, ...sizes[levels - 1]!] };
}

export interface EncoderBuildOptions {
  /** Nominal sizes for build-time shape checks; the graph itself accepts any batch, size and token count. */
  batch?: number;
  height?: number;
  width?: number;
  tokens?: number;
  /** Nominal count of SDXL time ids (6 for the base model, 5 for the refiner); the graph accepts either split. */
  timeIds?: number;
  attention?: AttentionKind;
}

/** What the blocks need besides their weights: the graph, the architecture, the time embedding and the text. */
export interface BlockContext {
  g: GraphBuilder;
  config: UNetEncoderConfig;
  temb: Value;
  context: Value;
  attention: AttentionKind;
}

/**
 * Declares the inputs every encoder takes (latents, timestep, text, and SDXL's or LCM's extra conditions) and
 * builds the time embedding. `w` is scoped at the network's root.
 */
export function encoderInputs(
  g: GraphBuilder,
  config: UNetEncoderConfig,
  w: ScopedWeights,
  opts: EncoderBuildOptions = {},
): { sample: Value; ctx: BlockContext } {
  const batch = opts.batch ?? 2;
  const height = opts.height ?? 8;
  const width = opts.width ?? 8;
  const tokens = opts.tokens ?? 77;
  const sample = g.input(
    ENCODER_IO.sample,
    DataType.FLOAT,
    ["batch", config.inChannels, "height", "width"],
    [batch, config.inChannels, height, width],
  );
  const timestep = g.input(ENCODER_IO.timestep, DataType.FLOAT, ["timestep_batch"], [1]);
  const context = g.input(
    ENCODER_IO.encoderHiddenStates,
    DataType.FLOAT,
    ["batch", "tokens", config.crossAttentionDim],
    [batch, tokens, config.crossAttentionDim],
  );
  const temb = g.scoped("time_embedding", () => timeEmbedding(g, config, w, timestep, batch, opts.timeIds ?? 6));
  return { sample, ctx: { g, config, temb, context, attention: opts.attention ?? "matmul" } };
}

/**
 * The down levels from conv_in's output `h`: per level its ResNets (each followed by a spatial transformer on
 * cross-attention levels), then a stride-2 conv except on the last level. Returns the output and every skip
 * connection, conv_in's first, in the order the up path (or a ControlNet's zero convolutions) takes them.
 * `intrablock`: a T2I-Adapter's residuals, one per level (intrablockShapes says where each enters).
 */
export function downBlocks(
  ctx: BlockContext,
  w: ScopedWeights,
  h: Value,
  intrablock?: readonly Value[],
): { h: Value; skips: Value[] } {
  const { g, config } = ctx;
  const levels = config.blockOutChannels.length;
  const skips: Value[] = [h];
  for (let i = 0; i < levels; i++) {
    const block = w.sub("down_blocks").sub(i);
    const channels = config.blockOutChannels[i]!;
    const cross = config.downBlockTypes[i] === "CrossAttnDownBlock2D";
    g.scoped(block.prefix, () => {
      for (let j = 0; j < config.layersPerBlock[i]!; j++) {
        h = resnetBlock(ctx, block.sub("resnets").sub(j), h, channels);
        if (cross)
          h = transformer2d(
            ctx,
            block.sub("attentions").sub(j),
            h,
            config.attentionHeads[i]!,
            config.downTransformerLayers[i]![j]!,
          );
        // A T2I-Adapter's residual enters a cross-attention level with its last ResNet-and-attention pair.
        if (cross && intrablock && j === config.layersPerBlock[i]! - 1) h = g.add(h, intrablock[i]!);
        skips.push(h);
      }
      if (i < levels - 1) {
        h = conv2d(g, block.sub("downsamplers.0.conv"), h, channels, 3, { stride: 2, pads: [1, 1, 1, 1] });
        skips.push(h);
      }
      // A plain level gets it on its output (after the downsampler), which diffusers adds in place: so its last
      // skip connection, the same tensor, has it too.
      if (!cross && intrablock) {
        h = g.add(h, intrablock[i]!);
        skips[skips.length - 1] = h;
      }
    });
  }
  return { h, skips };
}

/** The mid block (ResNet, transformer, ResNet; or a single ResNet), or `h` unchanged when the config has none. */
export function midBlock(ctx: BlockContext, w: ScopedWeights, h: Value): Value {
  const { g, config } = ctx;
  if (config.midBlockType === null) return h;
  const levels = config.blockOutChannels.length;
  const mid = w.sub("mid_block");
  const midChannels = config.blockOutChannels[levels - 1]!;
  return g.scoped("mid_block", () => {
    // UNetMidBlock2D as UNet2DConditionModel builds it (num_layers 0, no attention) is a single ResNet.
    if (config.midBlockType === "UNetMidBlock2D") return resnetBlock(ctx, mid.sub("resnets.0"), h, midChannels);
    let m = resnetBlock(ctx, mid.sub("resnets.0"), h, midChannels);
    m = transformer2d(ctx, mid.sub("attentions.0"), m, config.attentionHeads[levels - 1]!, config.midTransformerLayers);
    return resnetBlock(ctx, mid.sub("resnets.1"), m, midChannels);
  });
}

/**
 * diffusers' Timesteps (get_timestep_embedding): [..., 1] values -> [..., dim] sin/cos features. The frequencies
 * are constants computed in float32 like the reference (exp of float32 exponents).
 */
function sinusoid(g: GraphBuilder, config: UNetEncoderConfig, t: Value, dim: number): Value {
  const half = dim / 2;
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround(Math.fround(-Math.log(10000) * i) / (half - config.freqShift));
    freqs[i] = Math.exp(exponent);
  }
  const rank = t.shape.length;
  const args = g.mul(t, g.constant(freqs, [...Array.from({ length: rank - 1 }, () => 1), half])); // [..., half]
  const sin = g.unary("Sin", args);
  const cos = g.unary("Cos", args);
  return g.concat(config.flipSinToCos ? [cos, sin] : [sin, cos], rank - 1);
}

/**
 * Timesteps then TimestepEmbedding: [T] -> [T, 4*C0], plus what the config adds to it: LCM's guidance embedding
 * (cond_proj, added to the sinusoid before linear_1) and SDXL's add_embedding of the pooled text embeds and the
 * sinusoids of the time ids (added after linear_2).
 */
function timeEmbedding(
  g: GraphBuilder,
  config: UNetEncoderConfig,
  w: ScopedWeights,
  timestep: Value,
  batch: number,
  timeIds: number,
): Value {
  const dim = config.blockOutChannels[0]!;
  const width = 4 * dim;
  const te = w.sub("time_embedding");
  let proj = sinusoid(g, config, g.unsqueeze(timestep, [1]), dim); // [T, dim]
  if (config.timeCondProjDim !== null) {
    const cond = g.input(
      ENCODER_IO.timestepCond,
      DataType.FLOAT,
      ["batch", config.timeCondProjDim],
      [batch, config.timeCondProjDim],
    );
    proj = g.add(proj, linear(g, te.sub("cond_proj"), cond, dim, { bias: false })); // [B, dim]
  }
  let emb = linear(g, te.sub("linear_2"), g.silu(linear(g, te.sub("linear_1"), proj, width)), width);
  if (config.additionEmbedType === "text_time") {
    emb = g.add(
      emb,
      g.scoped("add_embedding", () => addEmbedding(g, config, w, batch, timeIds)),
    );
  }
  return emb;
}

/** SDXL's TimestepEmbedding over [pooled text embeds, sinusoids of the time ids] (diffusers' get_aug_embed). */
function addEmbedding(
  g: GraphBuilder,
  config: UNetEncoderConfig,
  w: ScopedWeights,
  batch: number,
  timeIds: number,
): Value {
  const idDim = config.additionTimeEmbedDim!;
  const total = config.projectionClassEmbeddingsInputDim!;
  const pooled = total - timeIds * idDim;
  if (pooled <= 0)
    throw new InternalError(
      `UNet config: projection_class_embeddings_input_dim ${total} leaves no room for ${timeIds} time ids of ${idDim}`,
    );
  const textEmbeds = g.input(ENCODER_IO.textEmbeds, DataType.FLOAT, ["batch", "text_embeds_dim"], [batch, pooled]);
  const ids = g.input(ENCODER_IO.timeIds, DataType.FLOAT, ["batch", "time_ids"], [batch, timeIds]);
  // [B, N] -> [B, N, idDim] -> [B, N*idDim]: the reference flattens the ids, embeds each and reshapes per batch item.
  const idEmbeds = g.reshape(sinusoid(g, config, g.unsqueeze(ids, [2]), idDim), [0, -1]);
  const x = g.concat([textEmbeds, idEmbeds], 1); // [B, total]
  const ae = w.sub("add_embedding");
  const width = 4 * config.blockOutChannels[0]!;
  return linear(g, ae.sub("linear_2"), g.silu(linear(g, ae.sub("linear_1"), x, width)), width);
}

/** ResnetBlock2D: GroupNorm-SiLU-Conv, plus the projected time embedding, GroupNorm-SiLU-Conv, shortcut. */
export function resnetBlock(ctx: BlockContext, w: ScopedWeights, x: Value, outChannels: number): Value {
  const { g, config } = ctx;
  return g.scoped(w.prefix.split(".").slice(-2).join("."), () => {
    let h = g.silu(groupNorm(g, w.sub("norm1"), x, config.normNumGroups, config.normEps));
    h = conv2d(g, w.sub("conv1"), h, outChannels, 3);
    const t = linear(g, w.sub("time_emb_proj"), g.silu(ctx.temb), outChannels); // [T, C]
    h = g.add(h, g.unsqueeze(t, [2, 3]));
    h = g.silu(groupNorm(g, w.sub("norm2"), h, config.normNumGroups, config.normEps));
    h = conv2d(g, w.sub("conv2"), h, outChannels, 3);
    // A 1x1 projection of the input where the channel count changes (diffusers' use_in_shortcut).
    const shortcut = x.shape[1] !== outChannels ? conv2d(g, w.sub("conv_shortcut"), x, outChannels, 1) : x;
    return g.add(shortcut, h);
  });
}

/** Transformer2DModel: GroupNorm, proj_in, BasicTransformerBlocks over the flattened pixels, proj_out, residual. */
export function transformer2d(ctx: BlockContext, w: ScopedWeights, x: Value, heads: number, layers: number): Value {
  const { g, config } = ctx;
  return g.scoped(w.prefix.split(".").slice(-2).join("."), () => {
    const [, c] = x.shape as [number, number, number, number];
    // GroupNorm eps is 1e-6 inside the transformer, whatever norm_eps says (diffusers hard-codes it).
    let h = groupNorm(g, w.sub("norm"), x, config.normNumGroups, 1e-6);
    const toTokens = (v: Value) => g.transpose(g.reshape(v, [0, 0, -1]), [0, 2, 1]); // [B,C,H,W] -> [B,HW,C]
    // SD1.x's projections are 1x1 convolutions, SD2's and SDXL's linear layers: the same product per pixel, taken
    // on tokens for both, so that int8 gives them a float output (no static range on the transformer's stream).
    const pointwise = !config.useLinearProjection;
    h = linear(g, w.sub("proj_in"), toTokens(h), c, { pointwise });
    for (let i = 0; i < layers; i++) h = basicTransformerBlock(ctx, w.sub("transformer_blocks").sub(i), h, heads);
    const toImage = (v: Value) => g.reshapeLike(g.transpose(v, [0, 2, 1]), x);
    h = toImage(linear(g, w.sub("proj_out"), h, c, { pointwise }));
    return g.add(h, x);
  });
}

/** Self-attention, cross-attention to the text, GEGLU feed-forward; each pre-normed with a residual. */
function basicTransformerBlock(ctx: BlockContext, w: ScopedWeights, x: Value, heads: number): Value {
  const { g } = ctx;
  x = g.add(x, attention(ctx, w.sub("attn1"), layerNorm(g, w.sub("norm1"), x, 1e-5), undefined, heads));
  x = g.add(x, attention(ctx, w.sub("attn2"), layerNorm(g, w.sub("norm2"), x, 1e-5), ctx.context, heads));
  const ff = w.sub("ff");
  const h = layerNorm(g, w.sub("norm3"), x, 1e-5);
  // GEGLU with diffusers' FeedForward default width: inner = 4 x dim, projected to value and gate at once.
  const dim = x.shape[2]!;
  const inner = 4 * dim;
  const proj = linear(g, ff.sub("net.0.proj"), h, 2 * inner); // [B, L, 2*inner]
  const [value, gate] = g.split(proj, 2, [inner, inner]) as [Value, Value];
  return g.add(x, linear(g, ff.sub("net.2"), g.mul(value, g.gelu(gate)), dim));
}

function attention(ctx: BlockContext, w: ScopedWeights, x: Value, context: Value | undefined, heads: number): Value {
  const { g } = ctx;
  const kv = context ?? x;
  // diffusers' Attention in the UNet: q, k, v without bias (attention_bias false), the output projection with one.
  const dim = x.shape[2]!;
  const q = linear(g, w.sub("to_q"), x, dim, { bias: false });
  const k = linear(g, w.sub("to_k"), kv, dim, { bias: false });
  const v = linear(g, w.sub("to_v"), kv, dim, { bias: false });
  return linear(g, w.sub("to_out.0"), g.attention(q, k, v, heads, { kind: ctx.attention }), dim);
}
