import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { dumpGraph } from "../../src/onnx/dump.js";
import { graphFlops } from "../../src/onnx/flops.js";
import { DataType } from "../../src/onnx/graph.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";
import { SD15 } from "../../src/configs/pipeline.js";
import { unetParamShapes } from "../../src/models/param-shapes.js";
import { buildUNet } from "../../src/models/unet.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { shapeOnlyWeights } from "../helpers/shape-only-weights.js";

describe("graph builder", () => {
  it("names initializers after checkpoint keys and nodes after module paths (SD1.5 UNet, shapes only)", () => {
    const g = buildUNet(SD15.unet, new ScopedWeights(shapeOnlyWeights(unetParamShapes(SD15.unet))), {
      batch: 2,
      height: 64,
      width: 64,
    });
    const dump = dumpGraph(g);
    expect(dump).toContain("init   down_blocks.0.resnets.0.conv1.weight [320,320,3,3]");
    expect(dump).toContain("init   mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight [768,1280]"); // stored transposed for MatMul
    expect(dump).toMatch(/down_blocks\.1\.attentions\.0\/[^\n]*= Softmax/);
    expect(g.shapeOf("out_sample")).toEqual([2, 4, 64, 64]);
    // One guided 512 px step of SD1.5 is about 2 x 0.8 TFLOP of multiply-adds in convolutions and matmuls.
    expect(graphFlops(g) / 1e12).toBeGreaterThan(1.4);
    expect(graphFlops(g) / 1e12).toBeLessThan(1.8);
  });

  it("refuses mismatched shapes at build time, naming the values", () => {
    const g = new GraphBuilder("bad");
    const a = g.input("a", DataType.FLOAT, [2, 3], [2, 3]);
    const b = g.input("b", DataType.FLOAT, [4, 5], [4, 5]);
    expect(() => g.matmul(a, b)).toThrow(/MatMul a \[2,3\] x b \[4,5\]: inner sizes differ/);
    expect(() => g.add(a, b)).toThrow(/cannot broadcast \[2,3\] with \[4,5\]/);
    expect(() => g.reshape(a, [4, -1])).toThrow(/sizes differ/);
  });

  it("keeps batch and spatial sizes dynamic: a graph built at 8x8 runs at 16x24", async () => {
    const g = new GraphBuilder("resize");
    const x = g.input("x", DataType.FLOAT, ["n", 2, "h", "w"], [1, 2, 8, 8]);
    const tokens = g.transpose(g.reshape(x, [0, 0, -1]), [0, 2, 1]);
    const back = g.reshapeLike(g.transpose(tokens, [0, 2, 1]), x);
    g.output(g.upsampleNearest2x(back), "y", ["n", 2, "h2", "w2"]);
    const s = await Session.create(serializeGraph(g), { threads: 1 });
    const data = Float32Array.from({ length: 3 * 2 * 16 * 24 }, (_, i) => i);
    const y = (await s.run({ x: { data, dims: [3, 2, 16, 24] } })).y!;
    expect(y.dims).toEqual([3, 2, 32, 48]);
    // Nearest 2x: output pixel (r, c) is input pixel (r>>1, c>>1), as torch's F.interpolate(mode="nearest").
    expect(y.data[1 * 32 * 48 + 5 * 48 + 7]).toBe(data[1 * 16 * 24 + 2 * 24 + 3]);
  });
});

/**
 * torch's nearest interpolation to an explicit size (aten/src/ATen/native/UpSample.h, nearest_idx): the same index
 * when the sizes match, i >> 1 when the output is exactly twice the input, otherwise
 * min(floor(i * (float)(in / out)), in - 1) computed in float32. Written out here as the reference for the graph.
 */
function torchNearestIndex(i: number, inSize: number, outSize: number): number {
  if (outSize === inSize) return i;
  if (outSize === 2 * inSize) return i >> 1;
  const scale = Math.fround(inSize / outSize);
  return Math.min(Math.floor(Math.fround(i * scale)), inSize - 1);
}

/** torch's Conv2d(3x3, padding 1) of F.interpolate(x, size=(H, W), mode="nearest"), written out plainly. */
function upsampleThenConv(
  x: Float32Array,
  [c, h, w]: number[],
  weight: Float32Array,
  bias: Float32Array,
  [H, W]: number[],
): Float32Array {
  const o = bias.length;
  const up = (ch: number, r: number, q: number) =>
    r < 0 || r >= H || q < 0 || q >= W ? 0 : x[(ch * h + torchNearestIndex(r, h, H)) * w + torchNearestIndex(q, w, W)]!;
  const y = new Float32Array(o * H * W);
  for (let k = 0; k < o; k++)
    for (let r = 0; r < H; r++)
      for (let q = 0; q < W; q++) {
        let sum = bias[k]!;
        for (let ch = 0; ch < c; ch++)
          for (let i = 0; i < 3; i++)
            for (let j = 0; j < 3; j++) sum += weight[((k * c + ch) * 3 + i) * 3 + j]! * up(ch, r + i - 1, q + j - 1);
        y[(k * H + r) * W + q] = sum;
      }
  return y;
}

describe("a 3x3 convolution of a nearest 2x upsampled map, computed at the low resolution", () => {
  const random = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.37 + seed));
  const [c, o] = [3, 5];
  const weight = random(o * c * 9, 1);
  const bias = random(o, 2);
  const build = (like: boolean) => {
    const g = new GraphBuilder("upsample_conv");
    const x = g.input("x", DataType.FLOAT, [1, c, "h", "w"], [1, c, 4, 5]);
    const target = like ? g.input("like", DataType.FLOAT, [1, 1, "H", "W"], [1, 1, 7, 10]) : undefined;
    const wv = g.initializer("w", [o, c, 3, 3], () => weight);
    const bv = g.initializer("b", [o], () => bias);
    g.output(g.upsampleConv3x3(x, wv, bv, target), "y", [1, o, "H", "W"]);
    return g;
  };
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

  it("equals the convolution of the upsampled map at twice the size", async () => {
    const s = await Session.create(serializeGraph(build(false)), { threads: 1 });
    for (const [h, w] of [
      [4, 5],
      [1, 1],
      [3, 8],
    ] as const) {
      const x = random(c * h * w, h * 10 + w);
      const y = (await s.run({ x: { data: x, dims: [1, c, h, w] } })).y!;
      expect(y.dims).toEqual([1, o, 2 * h, 2 * w]);
      expect(maxDiff(y.data, upsampleThenConv(x, [c, h, w], weight, bias, [2 * h, 2 * w])), `${h}x${w}`).toBeLessThan(
        1e-5,
      );
    }
  });

  it("equals it at the size of another tensor, one less than twice on either side (the UNet's odd latents)", async () => {
    const s = await Session.create(serializeGraph(build(true)), { threads: 1 });
    for (const [h, w, H, W] of [
      [4, 5, 8, 10],
      [4, 5, 7, 9],
      [4, 5, 8, 9],
      [4, 5, 7, 10],
      [5, 3, 9, 5],
      [1, 1, 1, 1],
      [1, 2, 1, 4],
      [2, 1, 3, 2],
    ] as const) {
      const x = random(c * h * w, h * 10 + w);
      const like = { data: new Float32Array(H * W), dims: [1, 1, H, W] };
      const y = (await s.run({ x: { data: x, dims: [1, c, h, w] }, like })).y!;
      expect(y.dims).toEqual([1, o, H, W]);
      const expected = upsampleThenConv(x, [c, h, w], weight, bias, [H, W]);
      expect(maxDiff(y.data, expected), `${h}x${w} -> ${H}x${W}`).toBeLessThan(1e-5);
    }
  });

  it("refuses a target size that is not 2x or one less", () => {
    const g = new GraphBuilder("bad_upsample");
    const x = g.input("x", DataType.FLOAT, [1, c, 4, 4], [1, c, 4, 4]);
    const like = g.input("like", DataType.FLOAT, [1, 1, 6, 8], [1, 1, 6, 8]);
    const wv = g.initializer("w", [o, c, 3, 3], () => weight);
    expect(() => g.upsampleConv3x3(x, wv, undefined, like)).toThrow(/4x4 cannot be upsampled to 6x8/);
  });
});
