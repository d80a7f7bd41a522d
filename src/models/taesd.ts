import { GraphBuilder } from "../onnx/builder.js";
import { DataType, type Value } from "../onnx/graph.js";
import type { ScopedWeights } from "../weights/weight-source.js";
import type { TaesdConfig } from "../configs/taesd.js";
import { conv2d, upsampleConv } from "./layers.js";

/** Graph I/O names of TAESD's halves. */
export const TAESD_IO = {
  image: "image", // encoder input [batch, 3, H, W] in [-1, 1]
  latents: "latents", // encoder output / decoder input [batch, 4, H/8, W/8]: the UNet's latents
  decoded: "decoded", // decoder output [batch, 3, H, W] in [-1, 1] (unclamped)
} as const;

export interface TaesdBuildOptions {
  /** Nominal image size for shape checks; the graph accepts any multiple of 8. */
  height?: number;
  width?: number;
}

/**
 * diffusers' EncoderTiny in AutoencoderTiny's [-1, 1] convention: (x + 1) / 2, a conv per level (stride 2 and no bias
 * after the first), the level's TAESD blocks, and a conv to the latent channels. `w` at the AutoencoderTiny root
 * (weights `encoder.layers.N`, numbered as the reference's Sequential).
 */
export function buildTaesdEncoder(config: TaesdConfig, w: ScopedWeights, opts: TaesdBuildOptions = {}): GraphBuilder {
  const g = new GraphBuilder("taesd_encoder");
  const [h0, w0] = [opts.height ?? 64, opts.width ?? 64];
  const image = g.input(
    TAESD_IO.image,
    DataType.FLOAT,
    ["batch", config.inChannels, "height", "width"],
    [1, config.inChannels, h0, w0],
  );
  const layers = w.sub("encoder.layers");
  let index = 0;
  let h = g.mul(g.add(image, g.scalar(1)), g.scalar(0.5));
  config.encoderBlocks.forEach((blocks, i) => {
    const c = config.encoderChannels[i]!;
    h =
      i === 0
        ? conv2d(g, layers.sub(index++), h, c, 3)
        : conv2d(g, layers.sub(index++), h, c, 3, { stride: 2, pads: [1, 1, 1, 1], bias: false });
    for (let b = 0; b < blocks; b++) h = taesdBlock(g, layers.sub(index++), h, c);
  });
  g.output(conv2d(g, layers.sub(index), h, config.latentChannels, 3), TAESD_IO.latents, [
    "batch",
    config.latentChannels,
    "latent_height",
    "latent_width",
  ]);
  return g;
}

/**
 * diffusers' DecoderTiny in AutoencoderTiny's convention: latents squashed by m * tanh(x / m), a conv and ReLU, then
 * per level its TAESD blocks, a nearest upsampling and a conv without bias (the last level: the conv to RGB, with
 * bias), and the [0, 1] output mapped to [-1, 1]. `w` at the root (weights `decoder.layers.N`).
 */
export function buildTaesdDecoder(config: TaesdConfig, w: ScopedWeights, opts: TaesdBuildOptions = {}): GraphBuilder {
  const g = new GraphBuilder("taesd_decoder");
  const [h0, w0] = [(opts.height ?? 64) / 8, (opts.width ?? 64) / 8];
  const latents = g.input(
    TAESD_IO.latents,
    DataType.FLOAT,
    ["batch", config.latentChannels, "latent_height", "latent_width"],
    [1, config.latentChannels, h0, w0],
  );
  const layers = w.sub("decoder.layers");
  const m = config.latentMagnitude;
  let h = g.mul(g.unary("Tanh", g.mul(latents, g.scalar(1 / m))), g.scalar(m));
  h = g.relu(conv2d(g, layers.sub(0), h, config.decoderChannels[0]!, 3));
  let index = 2; // 1 is the ReLU
  const levels = config.decoderBlocks.length;
  config.decoderBlocks.forEach((blocks, i) => {
    const c = config.decoderChannels[i]!;
    for (let b = 0; b < blocks; b++) h = taesdBlock(g, layers.sub(index++), h, c);
    if (i === levels - 1) {
      h = conv2d(g, layers.sub(index++), h, config.outChannels, 3);
      return;
    }
    index++; // the Upsample has no weights
    h = upsampleConv(g, layers.sub(index++), h, c, { bias: false });
  });
  g.output(g.sub(g.mul(h, g.scalar(2)), g.scalar(1)), TAESD_IO.decoded, [
    "batch",
    config.outChannels,
    "height",
    "width",
  ]);
  return g;
}

/** AutoencoderTinyBlock: three 3x3 convs with ReLUs between, plus the input (1x1 conv when channels change), ReLU. */
function taesdBlock(g: GraphBuilder, w: ScopedWeights, x: Value, out: number): Value {
  let h = g.relu(conv2d(g, w.sub("conv.0"), x, out, 3));
  h = g.relu(conv2d(g, w.sub("conv.2"), h, out, 3));
  h = conv2d(g, w.sub("conv.4"), h, out, 3);
  const skip = x.shape[1] === out ? x : conv2d(g, w.sub("skip"), x, out, 1, { bias: false });
  return g.relu(g.add(h, skip));
}
