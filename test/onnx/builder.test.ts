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
    const g = buildUNet(SD15.unet, new ScopedWeights(shapeOnlyWeights(unetParamShapes(SD15.unet))), { batch: 2, height: 64, width: 64 });
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
