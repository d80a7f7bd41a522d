import { InternalError } from "../errors.js";
import { GraphBuilder } from "../onnx/builder.js";
import { DataType, type Value } from "../onnx/graph.js";
import type { ScopedWeights } from "../weights/weight-source.js";
import { conditioningDownscale, type ControlNetConfig } from "../configs/controlnet.js";
import { conv2d } from "./layers.js";
import {
  downBlocks,
  downResidualName,
  ENCODER_IO,
  encoderInputs,
  midBlock,
  MID_RESIDUAL,
  skipChannels,
  type EncoderBuildOptions,
} from "./unet-blocks.js";

/** Graph I/O names of the ControlNet besides the encoder's inputs (unet-blocks.ts ENCODER_IO). */
export const CONTROLNET_IO = {
  ...ENCODER_IO,
  /** The control image [1, conditioning_channels, 8h, 8w] in [0, 1] (diffusers' controlnet_cond), RGB: the hint graph's input. */
  cond: "controlnet_cond",
  /** The conditioning embedding of the control image [1 or batch, C0, h, w]: the hint graph's output, the main graph's input. */
  hint: "controlnet_hint",
  /** [1]: multiplies every residual (diffusers' conditioning_scale), so the scale costs no pass over them in JS. */
  scale: "conditioning_scale",
} as const;

/**
 * diffusers' ControlNetModel (guess mode off, no pooled conditions) as two graphs. This one is the part that runs at
 * every step: the conditioning embedding of the control image (`controlnet_hint`, from buildControlNetHint, broadcast
 * over the batch) added to conv_in's output; the UNet's encoder half (unet-blocks.ts, the same code the UNet runs);
 * each skip connection and the mid block's output through its zero convolution, times the conditioning scale.
 * Outputs carry the names of the UNet's residual inputs (downResidualName, MID_RESIDUAL), so they feed it directly.
 * `w` is scoped at the ControlNet root (diffusers names: controlnet_down_blocks.N, controlnet_mid_block, the UNet's own).
 */
export function buildControlNet(
  config: ControlNetConfig,
  w: ScopedWeights,
  opts: EncoderBuildOptions = {},
): GraphBuilder {
  const g = new GraphBuilder("controlnet");
  const height = opts.height ?? 8;
  const width = opts.width ?? 8;
  const { sample, ctx } = encoderInputs(g, config, w, { ...opts, height, width });
  const c0 = config.blockOutChannels[0]!;
  const hint = g.input(
    CONTROLNET_IO.hint,
    DataType.FLOAT,
    ["hint_batch", c0, "height", "width"],
    [1, c0, height, width],
  );
  const scale = g.input(CONTROLNET_IO.scale, DataType.FLOAT, [1], [1]);

  const first = g.add(
    g.scoped("conv_in", () => conv2d(g, w.sub("conv_in"), sample, c0, 3)),
    hint,
  );
  const down = downBlocks(ctx, w, first);
  const mid = midBlock(ctx, w, down.h);

  const channels = skipChannels(config);
  if (channels.length !== down.skips.length)
    throw new InternalError(
      `ControlNet: ${down.skips.length} skip connections, but the config implies ${channels.length}`,
    );
  down.skips.forEach((skip, i) => {
    const out = g.scoped(`controlnet_down_blocks.${i}`, () =>
      conv2d(g, w.sub("controlnet_down_blocks").sub(i), skip, channels[i]!, 1),
    );
    g.output(g.mul(out, scale), downResidualName(i), [
      "batch",
      channels[i]!,
      `residual_${i}_height`,
      `residual_${i}_width`,
    ]);
  });
  const midChannels = config.blockOutChannels[config.blockOutChannels.length - 1]!;
  const midOut = g.scoped("controlnet_mid_block", () => conv2d(g, w.sub("controlnet_mid_block"), mid, midChannels, 1));
  g.output(g.mul(midOut, scale), MID_RESIDUAL, ["batch", midChannels, "mid_height", "mid_width"]);
  return g;
}

/**
 * The ControlNet's conditioning embedding as a graph of its own: the control image [1, 3, 8h, 8w] to the features
 * added to conv_in's output. It depends on the image alone, so it runs once per generation, not at every step, and
 * for one image however large the batch (at 512 px its full-resolution convolutions cost a sixth of the ControlNet).
 */
export function buildControlNetHint(
  config: ControlNetConfig,
  w: ScopedWeights,
  opts: { height?: number; width?: number } = {},
): GraphBuilder {
  const g = new GraphBuilder("controlnet_hint");
  const factor = conditioningDownscale(config);
  const [h, wd] = [(opts.height ?? 8) * factor, (opts.width ?? 8) * factor];
  const cond = g.input(
    CONTROLNET_IO.cond,
    DataType.FLOAT,
    ["batch", config.conditioningChannels, "cond_height", "cond_width"],
    [1, config.conditioningChannels, h, wd],
  );
  const c0 = config.blockOutChannels[0]!;
  const hint = g.scoped("controlnet_cond_embedding", () =>
    conditioningEmbedding(
      g,
      config,
      w.sub("controlnet_cond_embedding"),
      config.channelOrder === "bgr" ? flipChannels(g, cond) : cond,
      c0,
    ),
  );
  g.output(hint, CONTROLNET_IO.hint, ["batch", c0, "height", "width"]);
  return g;
}

/**
 * ControlNetConditioningEmbedding: conv_in and SiLU, then per level but the last a same-size conv and a stride-2
 * conv (each followed by SiLU), then conv_out (zero-initialised in training) to conv_in's channels.
 */
function conditioningEmbedding(
  g: GraphBuilder,
  config: ControlNetConfig,
  w: ScopedWeights,
  cond: Value,
  outChannels: number,
): Value {
  const levels = config.conditioningEmbeddingOutChannels;
  let h = g.silu(conv2d(g, w.sub("conv_in"), cond, levels[0]!, 3));
  for (let i = 0; i < levels.length - 1; i++) {
    h = g.silu(conv2d(g, w.sub("blocks").sub(2 * i), h, levels[i]!, 3));
    h = g.silu(conv2d(g, w.sub("blocks").sub(2 * i + 1), h, levels[i + 1]!, 3, { stride: 2, pads: [1, 1, 1, 1] }));
  }
  return conv2d(g, w.sub("conv_out"), h, outChannels, 3);
}

/** RGB -> BGR (diffusers flips the control image for checkpoints trained on BGR). */
function flipChannels(g: GraphBuilder, x: Value): Value {
  const [r, gr, b] = g.split(x, 1, [1, 1, 1]) as [Value, Value, Value];
  return g.concat([b, gr, r], 1);
}
