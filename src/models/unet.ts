import { InternalError } from "../errors.js";
import { GraphBuilder } from "../onnx/builder.js";
import { DataType, type Value } from "../onnx/graph.js";
import type { ScopedWeights } from "../weights/weight-source.js";
import type { UNetConfig } from "../configs/unet.js";
import { conv2d, groupNorm, upsampleConv } from "./layers.js";
import {
  downBlocks,
  downResidualName,
  ENCODER_IO,
  encoderInputs,
  intrablockResidualName,
  intrablockShapes,
  midBlock,
  MID_RESIDUAL,
  resnetBlock,
  skipChannels,
  transformer2d,
  type EncoderBuildOptions,
} from "./unet-blocks.js";

/** Graph I/O names of the UNet (the inputs are the encoder's, unet-blocks.ts). */
export const UNET_IO = {
  ...ENCODER_IO,
  out: "out_sample", // [batch, out_channels, h, w] predicted noise (or v)
} as const;

export interface UNetBuildOptions extends EncoderBuildOptions {
  /**
   * Also take ControlNet residuals as inputs (unet-blocks.ts names them): one per skip connection, added to it
   * before the up path uses it, and one added to the mid block's output, as diffusers' UNet does with
   * down_block_additional_residuals / mid_block_additional_residual. A separate graph, so the plain UNet pays nothing.
   */
  controlResiduals?: boolean;
  /**
   * Also take a T2I-Adapter's residuals as inputs (unet-blocks.ts intrablockResidualName, intrablockShapes): one per
   * down level, added inside it, and one added to the mid block's output, as diffusers' UNet does with
   * down_intrablock_additional_residuals. Their batch may be 1 (broadcast: the adapter's features are the same for
   * every image and both guidance halves). A separate graph, so the plain UNet pays nothing.
   */
  adapterResiduals?: boolean;
}

/**
 * UNet2DConditionModel as Stable Diffusion 1.x, 2.x, XL and their distillations use it (diffusers' module tree):
 * the encoder half (unet-blocks.ts: time embeddings, conv_in, down blocks, the mid block), then up blocks that
 * concatenate the skip connections, and the output head. `w` is scoped at the UNet root.
 */
export function buildUNet(config: UNetConfig, w: ScopedWeights, opts: UNetBuildOptions = {}): GraphBuilder {
  const g = new GraphBuilder("unet");
  const levels = config.blockOutChannels.length;
  if (config.downBlockTypes.length !== levels || config.upBlockTypes.length !== levels) {
    throw new InternalError(
      `UNet config: ${levels} levels but ${config.downBlockTypes.length} down / ${config.upBlockTypes.length} up blocks`,
    );
  }
  const batch = opts.batch ?? 2;
  const { sample, ctx } = encoderInputs(g, config, w, {
    ...opts,
    height: opts.height ?? config.sampleSize,
    width: opts.width ?? config.sampleSize,
  });

  const first = g.scoped("conv_in", () => conv2d(g, w.sub("conv_in"), sample, config.blockOutChannels[0]!, 3));
  const intrablock = opts.adapterResiduals ? intrablockInputs(g, config, sample) : undefined;
  const down = downBlocks(ctx, w, first, intrablock);
  const skips = opts.controlResiduals ? withResiduals(g, down.skips, config, batch) : down.skips;
  let h = midBlock(ctx, w, down.h);
  if (intrablock && config.midBlockType !== null) h = g.add(h, intrablock[levels]!);
  if (opts.controlResiduals) {
    const channels = config.blockOutChannels[levels - 1]!;
    h = g.add(h, g.input(MID_RESIDUAL, DataType.FLOAT, ["batch", channels, "mid_height", "mid_width"], h.shape));
    if (h.shape[1] !== channels)
      throw new InternalError(`UNet: mid block has ${h.shape[1]} channels, expected ${channels}`);
  }

  const reversedChannels = [...config.blockOutChannels].reverse();
  const reversedHeads = [...config.attentionHeads].reverse();
  const reversedLayers = [...config.layersPerBlock].reverse();
  for (let i = 0; i < levels; i++) {
    const block = w.sub("up_blocks").sub(i);
    const channels = reversedChannels[i]!;
    const cross = config.upBlockTypes[i] === "CrossAttnUpBlock2D";
    g.scoped(block.prefix, () => {
      for (let j = 0; j < reversedLayers[i]! + 1; j++) {
        const skip = skips.pop();
        if (!skip) throw new InternalError(`UNet: up level ${i} has more layers than there are skip connections`);
        h = resnetBlock(ctx, block.sub("resnets").sub(j), g.concat([h, skip], 1), channels);
        if (cross)
          h = transformer2d(
            ctx,
            block.sub("attentions").sub(j),
            h,
            reversedHeads[i]!,
            config.upTransformerLayers[i]![j]!,
          );
      }
      // Upsampled to the size of the skip connection that comes next, as diffusers does (forward_upsample_size)
      // when the latent size is not a multiple of 2^(levels-1): a stride-2 convolution rounds odd sizes up.
      if (i < levels - 1)
        h = upsampleConv(g, block.sub("upsamplers.0.conv"), h, channels, { like: skips[skips.length - 1]! });
    });
  }
  if (skips.length !== 0) throw new InternalError(`UNet: ${skips.length} skip connections left unused`);

  h = g.scoped("conv_norm_out", () =>
    g.silu(groupNorm(g, w.sub("conv_norm_out"), h, config.normNumGroups, config.normEps)),
  );
  const out = g.scoped("conv_out", () => conv2d(g, w.sub("conv_out"), h, config.outChannels, 3));
  g.output(out, UNET_IO.out, ["batch", config.outChannels, "height", "width"]);
  return g;
}

/** The T2I-Adapter residual inputs, of batch 1 at the nominal sizes (intrablockShapes). */
function intrablockInputs(g: GraphBuilder, config: UNetConfig, sample: Value): Value[] {
  const [, , h, w] = sample.shape as [number, number, number, number];
  return intrablockShapes(config, h, w).map(([c, rh, rw], i) =>
    g.input(
      intrablockResidualName(i),
      DataType.FLOAT,
      ["intrablock_batch", c, `intrablock_${i}_height`, `intrablock_${i}_width`],
      [1, c, rh, rw],
    ),
  );
}

/** Each skip connection plus its ControlNet residual, a graph input of the skip's shape. */
function withResiduals(g: GraphBuilder, skips: readonly Value[], config: UNetConfig, batch: number): Value[] {
  const channels = skipChannels(config);
  if (channels.length !== skips.length)
    throw new InternalError(`UNet: ${skips.length} skip connections, but the config implies ${channels.length}`);
  return skips.map((skip, i) => {
    const [, c, h, w] = skip.shape as [number, number, number, number];
    const residual = g.input(
      downResidualName(i),
      DataType.FLOAT,
      ["batch", c, `residual_${i}_height`, `residual_${i}_width`],
      [batch, c, h, w],
    );
    return g.add(skip, residual);
  });
}
