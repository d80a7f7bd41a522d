import { GraphBuilder } from "../onnx/builder.js";
import { DataType, type Value } from "../onnx/graph.js";
import type { ScopedWeights } from "../weights/weight-source.js";
import { adapterBlock, type T2IAdapterConfig } from "../configs/t2i-adapter.js";
import { conv2d } from "./layers.js";

/** Graph I/O names of the T2I-Adapter. */
export const T2I_ADAPTER_IO = {
  /** The control map [1, in_channels, H, W] in [0, 1], H and W multiples of the downscale factor. */
  cond: "adapter_cond",
} as const;

/** The name of feature map `i`: what the UNet adds inside its down blocks (unet-blocks.ts intrablockResidualName). */
export function adapterFeatureName(i: number): string {
  return `adapter_feature_${i}`;
}

/**
 * diffusers' T2IAdapter (FullAdapter, FullAdapterXL) as one graph: pixel unshuffle, conv_in, then per block an
 * optional 2x average pool, an optional 1x1 in_conv where the width changes, and its ResNets; every block's output is
 * a feature map. It depends on the control map alone, so it runs once per generation (the UNet adds its features at
 * every step). `w` is scoped at the adapter root (diffusers names: conv_in, body.N.in_conv, body.N.resnets.M.*).
 */
export function buildT2IAdapter(
  config: T2IAdapterConfig,
  w: ScopedWeights,
  opts: { height?: number; width?: number } = {},
): GraphBuilder {
  const g = new GraphBuilder("t2i_adapter");
  const r = config.downscaleFactor;
  const cond = g.input(
    T2I_ADAPTER_IO.cond,
    DataType.FLOAT,
    ["batch", config.inChannels, "height", "width"],
    [1, config.inChannels, opts.height ?? 4 * r, opts.width ?? 4 * r],
  );
  let h = g.scoped("conv_in", () => conv2d(g, w.sub("conv_in"), g.pixelUnshuffle(cond, r), config.channels[0]!, 3));
  config.channels.forEach((channels, i) => {
    const block = w.sub("body").sub(i);
    h = g.scoped(block.prefix, () => adapterBlockGraph(g, block, h, channels, adapterBlock(config, i).down, config));
    g.output(h, adapterFeatureName(i), ["batch", channels, `feature_${i}_height`, `feature_${i}_width`]);
  });
  return g;
}

/** AdapterBlock: the pool, the widening 1x1 conv, then AdapterResnetBlocks (3x3 conv, ReLU, 1x1 conv, plus input). */
function adapterBlockGraph(
  g: GraphBuilder,
  w: ScopedWeights,
  x: Value,
  channels: number,
  down: boolean,
  config: T2IAdapterConfig,
): Value {
  let h = down ? g.avgPool2x(x) : x;
  if (h.shape[1] !== channels) h = conv2d(g, w.sub("in_conv"), h, channels, 1);
  for (let j = 0; j < config.numResBlocks; j++) {
    const res = w.sub("resnets").sub(j);
    const inner = g.relu(conv2d(g, res.sub("block1"), h, channels, 3));
    h = g.add(h, conv2d(g, res.sub("block2"), inner, channels, 1));
  }
  return h;
}
