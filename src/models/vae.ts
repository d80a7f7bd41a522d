import { GraphBuilder, type AttentionKind } from "../onnx/builder.js";
import { DataType, type Value } from "../onnx/graph.js";
import type { ScopedWeights } from "../weights/weight-source.js";
import type { VaeConfig } from "../configs/vae.js";
import { conv2d, groupNorm, linear, upsampleConv } from "./layers.js";

/** Graph I/O names of the VAE halves. */
export const VAE_IO = {
  image: "image", // encoder input [batch, 3, H, W] in [-1, 1]
  mean: "mean", // encoder outputs [batch, latent, H/8, W/8]: the posterior's mean ...
  logvar: "logvar", // ... and log-variance (clamped to [-30, 20] as the reference does)
  latent: "latent", // decoder input: latents already divided by scaling_factor
  decoded: "decoded", // decoder output [batch, 3, H, W], unclamped
} as const;

const EPS = 1e-6; // every GroupNorm in AutoencoderKL uses eps 1e-6

interface Ctx {
  g: GraphBuilder;
  config: VaeConfig;
  attention: AttentionKind;
}

export interface VaeBuildOptions {
  /** Nominal image size for shape checks; the graph accepts any multiple of 8. */
  height?: number;
  width?: number;
  attention?: AttentionKind;
  /**
   * How the decoder's upsamplers compute a 3x3 convolution of the nearest-2x map: "parity" (default) as four 2x2
   * convolutions of the map itself (layers.upsampleConv: 1.2x less CPU for the whole fp32 decode at 512 px), their
   * filters folded from the stored 3x3 ones in the graph; "nearest" by upsampling first and convolving with the
   * stored filters, which is what the int8 form quantizes (onnx/quantize-conv.ts takes stored filters only).
   */
  upsampling?: "parity" | "nearest";
}

/** AutoencoderKL's encoder (+ quant_conv): image -> posterior mean and log-variance. `w` at the VAE root. */
export function buildVaeEncoder(config: VaeConfig, w: ScopedWeights, opts: VaeBuildOptions = {}): GraphBuilder {
  const g = new GraphBuilder("vae_encoder");
  const ctx: Ctx = { g, config, attention: opts.attention ?? "matmul" };
  const [h0, w0] = [opts.height ?? 64, opts.width ?? 64];
  const image = g.input(
    VAE_IO.image,
    DataType.FLOAT,
    ["batch", config.inChannels, "height", "width"],
    [1, config.inChannels, h0, w0],
  );
  const enc = w.sub("encoder");
  const levels = config.blockOutChannels.length;

  const c = config.latentChannels;
  let h = conv2d(g, enc.sub("conv_in"), image, config.blockOutChannels[0]!, 3);
  for (let i = 0; i < levels; i++) {
    const block = enc.sub("down_blocks").sub(i);
    const channels = config.blockOutChannels[i]!;
    g.scoped(block.prefix, () => {
      for (let j = 0; j < config.layersPerBlock; j++) h = resnetBlock(ctx, block.sub("resnets").sub(j), h, channels);
      // The reference pads right and bottom by one, then convolves with stride 2 and no padding.
      if (i < levels - 1)
        h = conv2d(g, block.sub("downsamplers.0.conv"), h, channels, 3, { stride: 2, pads: [0, 0, 1, 1] });
    });
  }
  h = midBlock(ctx, enc.sub("mid_block"), h);
  h = g.silu(groupNorm(g, enc.sub("conv_norm_out"), h, config.normNumGroups, EPS));
  h = conv2d(g, enc.sub("conv_out"), h, 2 * c, 3);
  if (config.useQuantConv) h = conv2d(g, w.sub("quant_conv"), h, 2 * c, 1);
  const [mean, logvar] = g.split(h, 1, [c, c]) as [Value, Value];
  const clamped = g.op("Clip", [logvar, g.scalar(-30), g.scalar(20)], logvar.shape);
  const dims = ["batch", c, "latent_height", "latent_width"];
  g.output(mean, VAE_IO.mean, dims);
  g.output(clamped, VAE_IO.logvar, dims);
  return g;
}

/** post_quant_conv + AutoencoderKL's decoder: latents -> image in about [-1, 1]. `w` at the VAE root. */
export function buildVaeDecoder(config: VaeConfig, w: ScopedWeights, opts: VaeBuildOptions = {}): GraphBuilder {
  const g = new GraphBuilder("vae_decoder");
  const ctx: Ctx = { g, config, attention: opts.attention ?? "matmul" };
  const [h0, w0] = [(opts.height ?? 64) / 8, (opts.width ?? 64) / 8];
  const latent = g.input(
    VAE_IO.latent,
    DataType.FLOAT,
    ["batch", config.latentChannels, "latent_height", "latent_width"],
    [1, config.latentChannels, h0, w0],
  );
  const dec = w.sub("decoder");
  const levels = config.blockOutChannels.length;

  const top = config.blockOutChannels[levels - 1]!;
  let h = config.usePostQuantConv ? conv2d(g, w.sub("post_quant_conv"), latent, config.latentChannels, 1) : latent;
  h = conv2d(g, dec.sub("conv_in"), h, top, 3);
  h = midBlock(ctx, dec.sub("mid_block"), h);
  const reversed = [...config.blockOutChannels].reverse();
  for (let i = 0; i < levels; i++) {
    const block = dec.sub("up_blocks").sub(i);
    const channels = reversed[i]!;
    g.scoped(block.prefix, () => {
      for (let j = 0; j < config.layersPerBlock + 1; j++)
        h = resnetBlock(ctx, block.sub("resnets").sub(j), h, channels);
      // The int8 decode quantizes the upsamplers' stored filters ("nearest"): with upsampleConv's folded ones they
      // ran in fp32 there, 1.5x the CPU of the whole int8 decode; stored 2x2 filters would grow the cache by 16/9.
      if (i < levels - 1) {
        const conv = block.sub("upsamplers.0.conv");
        h =
          opts.upsampling === "nearest"
            ? conv2d(g, conv, g.upsampleNearest2x(h), channels, 3)
            : upsampleConv(g, conv, h, channels);
      }
    });
  }
  h = g.silu(groupNorm(g, dec.sub("conv_norm_out"), h, config.normNumGroups, EPS));
  h = conv2d(g, dec.sub("conv_out"), h, config.outChannels, 3);
  g.output(h, VAE_IO.decoded, ["batch", config.outChannels, "height", "width"]);
  return g;
}

/** ResnetBlock2D without time embedding; a 1x1 shortcut projection where the channel count changes. */
function resnetBlock(ctx: Ctx, w: ScopedWeights, x: Value, outChannels: number): Value {
  const { g, config } = ctx;
  let h = conv2d(g, w.sub("conv1"), g.silu(groupNorm(g, w.sub("norm1"), x, config.normNumGroups, EPS)), outChannels, 3);
  h = conv2d(g, w.sub("conv2"), g.silu(groupNorm(g, w.sub("norm2"), h, config.normNumGroups, EPS)), outChannels, 3);
  const shortcut = x.shape[1] !== outChannels ? conv2d(g, w.sub("conv_shortcut"), x, outChannels, 1) : x;
  return g.add(shortcut, h);
}

/** UNetMidBlock2D: resnet, single-head self-attention over all pixels, resnet. */
function midBlock(ctx: Ctx, w: ScopedWeights, x: Value): Value {
  const { g, config } = ctx;
  return g.scoped(w.prefix, () => {
    const c = x.shape[1]!;
    let h = resnetBlock(ctx, w.sub("resnets.0"), x, c);
    if (config.midBlockAddAttention) h = attentionBlock(ctx, w.sub("attentions.0"), h);
    return resnetBlock(ctx, w.sub("resnets.1"), h, c);
  });
}

function attentionBlock(ctx: Ctx, w: ScopedWeights, x: Value): Value {
  const { g, config } = ctx;
  const normed = groupNorm(g, w.sub("group_norm"), x, config.normNumGroups, EPS);
  const tokens = g.transpose(g.reshape(normed, [0, 0, -1]), [0, 2, 1]); // [B, HW, C]
  const c = x.shape[1]!;
  const q = linear(g, w.sub("to_q"), tokens, c);
  const k = linear(g, w.sub("to_k"), tokens, c);
  const v = linear(g, w.sub("to_v"), tokens, c);
  const a = linear(g, w.sub("to_out.0"), g.attention(q, k, v, 1, { kind: ctx.attention }), c);
  return g.add(g.reshapeLike(g.transpose(a, [0, 2, 1]), x), x);
}
