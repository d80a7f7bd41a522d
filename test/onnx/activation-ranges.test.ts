import { describe, expect, it } from "vitest";
import {
  ActivationStatistics,
  clippedRange,
  observeRanges,
  SAMPLES_PER_RUN,
} from "../../src/onnx/activation-ranges.js";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { DataType } from "../../src/onnx/graph.js";
import { uint8Params } from "../../src/onnx/quantize-conv.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";

/** Deterministic standard normal values (Box-Muller on a fixed linear congruential sequence). */
function gaussian(n: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const uniform = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 0.5) / 2 ** 32;
  };
  return Float32Array.from(
    { length: n },
    () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()),
  );
}

/** The mean squared error of really quantizing `values` to uint8 over `range` and back (as QuantizeLinear does). */
function quantizationMse(values: Float32Array, range: { min: number; max: number }): number {
  const { scale, zeroPoint } = uint8Params(range);
  let sum = 0;
  for (const v of values) {
    const q = Math.min(255, Math.max(0, Math.round(v / scale) + zeroPoint));
    sum += ((q - zeroPoint) * scale - v) ** 2;
  }
  return sum / values.length;
}

describe("clippedRange: the uint8 range with the least quantization error", () => {
  // A feature map with heavy tails (Laplace: a few values many times the typical size, as calibration sees).
  const values = gaussian(200_000, 7).map((v, i) => Math.sign(v) * -Math.log(1 - ((i * 0.618034) % 1)));
  const extremes = { min: values.reduce((a, b) => Math.min(a, b)), max: values.reduce((a, b) => Math.max(a, b)) };

  it("clips rare extremes where rounding every other value more finely wins, as real quantization measures", () => {
    const chosen = clippedRange(extremes, [values]);
    expect(chosen.max).toBeLessThan(extremes.max * 0.9);
    expect(chosen.min).toBeGreaterThan(extremes.min * 0.9);
    const full = quantizationMse(values, extremes);
    const clipped = quantizationMse(values, chosen);
    expect(clipped).toBeLessThan(full * 0.9);
    // No range on a brute-force grid quantizes these values with clearly less error.
    let best = Number.POSITIVE_INFINITY;
    for (let a = 0.5; a <= 1; a += 0.05)
      for (let b = 0.5; b <= 1; b += 0.025)
        best = Math.min(best, quantizationMse(values, { min: extremes.min * a, max: extremes.max * b }));
    expect(clipped).toBeLessThan(best * 1.05);
  });

  it("keeps the full range of values spread evenly over it, and of no samples at all", () => {
    const even = Float32Array.from({ length: 10_000 }, (_, i) => -1 + (3 * i) / 9_999);
    const chosen = clippedRange({ min: -1, max: 2 }, [even]);
    expect(chosen.min).toBeLessThanOrEqual(-0.97);
    expect(chosen.max).toBeGreaterThanOrEqual(1.94);
    expect(clippedRange({ min: -1, max: 2 }, [])).toEqual({ min: -1, max: 2 });
    expect(clippedRange({ min: 0, max: 0 }, [new Float32Array(4)])).toEqual({ min: 0, max: 0 });
  });
});

describe("observeRanges: what a calibration run hands back of each tensor", () => {
  it("the extremes and an evenly spaced sample of about SAMPLES_PER_RUN values, at an odd stride", async () => {
    const n = 100_000;
    const g = new GraphBuilder("observed");
    const x = g.input("x", DataType.FLOAT, [1, n], [1, n]);
    const h = g.node("Neg", [x], {}, { shapes: [[1, n]] })[0]!;
    g.output(g.node("Neg", [h], {}, { shapes: [[1, n]] })[0]!, "y", [1, n]);
    const input = gaussian(n, 3);
    const s = await Session.create(serializeGraph(observeRanges(g, [h.name])), { threads: 1 });
    const out = await s.run({ x: { data: input, dims: [1, n] } });
    await s.release();
    const sample = out[`${h.name}#sample`]!.data;
    const stride = 2 * Math.floor(n / (2 * SAMPLES_PER_RUN)) + 1;
    expect(stride % 2).toBe(1);
    expect(sample.length).toBe(Math.ceil(n / stride));
    expect(sample.length).toBeGreaterThan(SAMPLES_PER_RUN / 2);
    for (let i = 0; i < sample.length; i += 97) expect(sample[i]).toBe(-input[i * stride]!);
    const stats = new ActivationStatistics();
    stats.add(out);
    stats.add(out);
    const negated = input.map((v) => -v);
    expect(stats.extremes().get(h.name)).toEqual({
      min: negated.reduce((a, b) => Math.min(a, b)),
      max: negated.reduce((a, b) => Math.max(a, b)),
    });
    expect(stats.ranges().get(h.name)).toEqual(clippedRange(stats.extremes().get(h.name)!, [sample, sample]));
  });
});
