import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import { ActivationStatistics, observeRanges, type Range } from "../../src/onnx/activation-ranges.js";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { DataType, type Graph } from "../../src/onnx/graph.js";
import { quantizableConvs, quantizeConv, quantizePerChannel, uint8Params } from "../../src/onnx/quantize-conv.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";

const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed));
const input = values(16 * 8 * 8, 1);

/** Two 3x3 convolutions of 16 channels with a SiLU between them, as a ResNet block has. */
function convNet(): GraphBuilder {
  const g = new GraphBuilder("convs");
  const w = (name: string, dims: number[], seed: number) =>
    g.initializer(name, dims, () =>
      values(
        dims.reduce((a, b) => a * b, 1),
        seed,
      ).map((v) => v * 0.1),
    );
  const x = g.input("x", DataType.FLOAT, [1, 16, 8, 8], [1, 16, 8, 8]);
  const h = g.conv2d(x, w("a.weight", [16, 16, 3, 3], 2), w("a.bias", [16], 3));
  g.output(g.conv2d(g.silu(h), w("b.weight", [16, 16, 3, 3], 4), w("b.bias", [16], 5)), "y", [1, 16, 8, 8]);
  return g;
}

async function run(graph: Graph, saveOptimized?: string) {
  const s = await Session.create(serializeGraph(graph), {
    threads: 1,
    prepack: true,
    ...(saveOptimized ? { saveOptimized: { modelPath: saveOptimized } } : {}),
  });
  const out = await s.run({ x: { data: input, dims: [1, 16, 8, 8] } });
  await s.release();
  return out;
}

describe("quantizeConv: convolutions as QDQ groups onnxruntime fuses into QLinearConv", () => {
  it("uint8 activations over a range widened to 0, int8 filters per output channel", () => {
    expect(uint8Params({ min: -1, max: 3 })).toEqual({ scale: 4 / 255, zeroPoint: 64 }); // 63.75 -> 64
    const positive = uint8Params({ min: 0.5, max: 2.55 }); // 0 is in the range: [0, 2.55]
    expect(positive.scale).toBeCloseTo(0.01, 12);
    expect(positive.zeroPoint).toBe(0);
    const { q, scales } = quantizePerChannel(Float32Array.from([1, -0.5, 0.25, 0, 0, 0]), 2);
    expect([...scales]).toEqual([Math.fround(1 / 127), 1]);
    expect([...q]).toEqual([127, -64, 32, 0, 0, 0]); // -63.5 -> -64 and 31.75 -> 32, halves to even
  });

  // Two convolutions, each with its input and output quantized to 8 bits: a few percent (issue 20 measured ~1.7% for one).
  it("runs as QLinearConv (never ConvInteger) within 5% of fp32, from ranges measured by observers", async () => {
    const g = convNet();
    const tensors = [...new Set(quantizableConvs(g).flatMap((n) => [n.inputs[0]!, n.outputs[0]!]))];
    const statistics = new ActivationStatistics();
    statistics.add(await run(observeRanges(g, tensors)));
    const ranges = statistics.ranges();
    expect([...ranges.keys()].sort()).toEqual([...tensors].sort());
    const reference = (await run(g)).y!.data;
    const path = join(mkdtempSync(join(tmpdir(), "diffuse-qconv-")), "optimized.onnx");
    const q = quantizeConv(g, { ranges });
    const y = (await run(q, path)).y!.data;
    let num = 0;
    let den = 0;
    for (let i = 0; i < y.length; i++) {
      num += (y[i]! - reference[i]!) ** 2;
      den += reference[i]! ** 2;
    }
    expect(Math.sqrt(num / den)).toBeLessThan(0.05);
    expect(Math.sqrt(num / den)).toBeGreaterThan(0); // int8 did run
    const ops = onnxProto.onnx.ModelProto.decode(readFileSync(path)).graph!.node!.map((n) => n.opType);
    expect(ops.filter((o) => o === "QLinearConv")).toHaveLength(2);
    expect(ops).not.toContain("ConvInteger");
    expect(ops).not.toContain("Conv");
  });

  it("leaves a convolution fp32 when the model keeps it or its ranges are unknown", () => {
    const g = convNet();
    const all = new Map<string, Range>(
      quantizableConvs(g).flatMap((n) => [n.inputs[0]!, n.outputs[0]!].map((t) => [t, { min: -1, max: 1 }] as const)),
    );
    const kept = quantizeConv(g, { ranges: all, keep: (n) => n.inputs[1] === "a.weight" });
    expect(kept.nodes.filter((n) => n.opType === "Conv").map((n) => n.inputs[1])).toEqual(["a.weight", "b.weight#dq0"]);
    const partial = quantizeConv(g, { ranges: new Map() });
    expect(partial.nodes.map((n) => n.opType)).toEqual(g.nodes.map((n) => n.opType));
  });
});
