import type { RrdbnetConfig } from "../configs/rrdbnet.js";
import { GraphBuilder } from "../onnx/builder.js";
import { DataType, type Value } from "../onnx/graph.js";
import type { ScopedWeights } from "../weights/weight-source.js";
import { conv2d, upsampleConv } from "./layers.js";

/** Graph I/O names of the upscaler network. */
export const RRDBNET_IO = {
  image: "image", // [batch, 3, H, W] in [0, 1]
  upscaled: "upscaled", // [batch, 3, H * scale, W * scale], unclamped
} as const;

/** Residual scaling of the dense blocks and of each RRDB (ESRGAN's beta). */
const RESIDUAL_SCALE = 0.2;
const LEAKY_SLOPE = 0.2;

/**
 * RRDBNet as Real-ESRGAN (BasicSR) names it: conv_first, `blocks` residual-in-residual dense blocks and the trunk
 * conv (conv_body) added to the first features, then per upsampling a nearest x2 resize, a conv and LeakyReLU,
 * the HR conv with LeakyReLU and conv_last. Real-ESRGAN's x2 and x1 models pixel-unshuffle the input first, so
 * the trunk runs at a quarter (or a sixteenth) of the pixels. `w` at the root, in Real-ESRGAN's names
 * (weights/rrdbnet-checkpoint.ts renames the old ESRGAN layout).
 */
export function buildRrdbnet(
  config: RrdbnetConfig,
  w: ScopedWeights,
  nominal = { height: 64, width: 64 },
): GraphBuilder {
  const g = new GraphBuilder("rrdbnet");
  const c = config.imageChannels;
  const image = g.input(
    RRDBNET_IO.image,
    DataType.FLOAT,
    ["batch", c, "height", "width"],
    [1, c, nominal.height, nominal.width],
  );
  const input = config.unshuffle > 1 ? pixelUnshuffle(g, image, config.unshuffle) : image;
  const first = conv2d(g, w.sub("conv_first"), input, config.features, 3);
  let trunk = first;
  for (let b = 0; b < config.blocks; b++)
    trunk = g.scoped(`body.${b}`, () => rrdb(g, w.sub("body").sub(b), trunk, config.growth));
  let h = g.add(first, conv2d(g, w.sub("conv_body"), trunk, config.features, 3));
  for (let i = 1; i <= config.upsamples; i++)
    h = leakyRelu(g, upsampleConv(g, w.sub(`conv_up${i}`), h, config.features));
  h = leakyRelu(g, conv2d(g, w.sub("conv_hr"), h, config.features, 3));
  g.output(conv2d(g, w.sub("conv_last"), h, c, 3), RRDBNET_IO.upscaled, ["batch", c, "out_height", "out_width"]);
  return g;
}

/** Residual in residual: three dense blocks, their output scaled by 0.2 and added to the input. */
function rrdb(g: GraphBuilder, w: ScopedWeights, x: Value, growth: number): Value {
  let h = x;
  for (const name of ["rdb1", "rdb2", "rdb3"]) h = denseBlock(g, w.sub(name), h, growth);
  return g.add(g.mul(h, g.scalar(RESIDUAL_SCALE)), x);
}

/**
 * Residual dense block: conv1..conv4 each see the input and every earlier output concatenated and add `growth`
 * channels (LeakyReLU 0.2); conv5 maps all of them back to the input's channels, scaled by 0.2 and added to it.
 */
function denseBlock(g: GraphBuilder, w: ScopedWeights, x: Value, growth: number): Value {
  const features = [x];
  for (let i = 1; i <= 4; i++)
    features.push(leakyRelu(g, conv2d(g, w.sub(`conv${i}`), g.concat(features, 1), growth, 3)));
  const out = conv2d(g, w.sub("conv5"), g.concat(features, 1), x.shape[1]!, 3);
  return g.add(g.mul(out, g.scalar(RESIDUAL_SCALE)), x);
}

function leakyRelu(g: GraphBuilder, x: Value): Value {
  return g.op("LeakyRelu", [x], x.shape, { alpha: { float: LEAKY_SLOPE } });
}

/**
 * torch's F.pixel_unshuffle(x, r): channel c * r² + i * r + j of the output is pixel (i, j) of each r x r cell of
 * channel c. ONNX's SpaceToDepth orders the output channels cell-major ((i * r + j) * C + c); a Gather over the
 * channels reorders them, which keeps the spatial sizes dynamic.
 */
function pixelUnshuffle(g: GraphBuilder, x: Value, r: number): Value {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const shape = [n, c * r * r, Math.floor(h / r), Math.floor(w / r)];
  const cellMajor = g.op("SpaceToDepth", [x], shape, { blocksize: r });
  const order: number[] = [];
  for (let ch = 0; ch < c; ch++) for (let k = 0; k < r * r; k++) order.push(k * c + ch);
  return g.gather(cellMajor, g.int64s(order), 1);
}
