import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { DataType, MS_DOMAIN } from "../../src/onnx/graph.js";
import { quantizeLinear } from "../../src/onnx/quantize-linear.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";

const K = 8;
const N = 4;

/**
 * A [K, N] weight whose columns exercise the quantizer: column 0 has max |w| 127 (scale exactly 1) and values at
 * .5 (rounded half to even: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2), column 1 is all zeros, columns 2 and 3 are generic.
 */
function weight(): Float32Array {
  const w = new Float32Array(K * N);
  const col0 = [127, 2.5, 3.5, -2.5, 0.5, 1.5, -127, 10.49];
  for (let k = 0; k < K; k++) {
    w[k * N] = col0[k]!;
    w[k * N + 1] = 0;
    w[k * N + 2] = Math.sin(k * 1.3) * 0.05;
    w[k * N + 3] = Math.cos(k * 0.7 + 1) * 3;
  }
  return w;
}
const bias = Float32Array.from([0.5, -1, 2, 0.25]);
const input = Float32Array.from({ length: 3 * K }, (_, i) => Math.sin(i * 0.37) * 4 - 1);

/** x [3, K] MatMul w [K, N] + b, then a Relu (so the Add is not the graph's output). */
function linearNet(): GraphBuilder {
  const g = new GraphBuilder("linear");
  const x = g.input("x", DataType.FLOAT, [3, K], [3, K]);
  const w = g.initializer("w", [K, N], () => weight());
  const b = g.initializer("b", [N], () => bias);
  g.output(g.relu(g.add(g.matmul(x, w), b)), "y", [3, N]);
  return g;
}

/** Written here from the definitions (numpy's rint, symmetric per-column int8), not from the code under test. */
function rint(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}
function referenceWeights(): { q: number[]; scales: number[] } {
  const w = weight();
  const scales = [...Array(N).keys()].map((n) => {
    let m = 0;
    for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(w[k * N + n]!));
    return m === 0 ? 1 : m / 127;
  });
  const q = [...w].map((v, i) => Math.max(-127, Math.min(127, rint(v / scales[i % N]!))));
  return { q, scales };
}

/**
 * onnxruntime's DynamicQuantizeLinear + integer product, as its spec defines them: the activations' range includes
 * 0, scale = (max - min) / 255, zero point = saturate(rint(-min / scale)), q = saturate(rint(x / scale) + zp).
 */
function referenceOutput(): Float32Array {
  const { q, scales } = referenceWeights();
  const min = Math.min(0, ...input);
  const max = Math.max(0, ...input);
  const sx = (max - min) / 255;
  const zp = Math.max(0, Math.min(255, rint(-min / sx)));
  const qx = [...input].map((v) => Math.max(0, Math.min(255, rint(v / sx) + zp)));
  const y = new Float32Array(3 * N);
  for (let r = 0; r < 3; r++)
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += (qx[r * K + k]! - zp) * q[k * N + n]!;
      y[r * N + n] = Math.max(0, acc * sx * scales[n]! + bias[n]!);
    }
  return y;
}

describe("quantizeLinear: MatMul by a constant weight as DynamicQuantizeMatMul", () => {
  it("stores int8 weights with one scale per output column, rounded half to even", () => {
    const g = quantizeLinear(linearNet());
    const q = g.initializers.get("w#int8")!;
    const s = g.initializers.get("w#scale")!;
    expect(q.dtype).toBe(DataType.INT8);
    expect(q.dims).toEqual([K, N]);
    expect(s.dims).toEqual([N]);
    const ref = referenceWeights();
    expect([...(q.load() as Int8Array)]).toEqual(ref.q);
    // Column 0 rounds half to even: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, 0.5 -> 0, 1.5 -> 2, 10.49 -> 10.
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((k) => ref.q[k * N])).toEqual([127, 2, 4, -2, 0, 2, -127, 10]);
    const scales = s.load() as Float32Array;
    ref.scales.forEach((v, i) => expect(scales[i]).toBeCloseTo(v, 7));
    expect(g.initializers.has("w")).toBe(false);
  });

  it("folds the bias Add into the node and computes what the int8 reference computes", async () => {
    const g = quantizeLinear(linearNet());
    const nodes = g.nodes.map((n) => `${n.domain ?? ""}:${n.opType}`);
    expect(nodes).toEqual([`${MS_DOMAIN}:DynamicQuantizeMatMul`, ":Relu", ":Identity"]);
    const session = await Session.create(serializeGraph(g), { threads: 1 });
    const y = (await session.run({ x: { data: input, dims: [3, K] } })).y!.data;
    await session.release();
    const ref = referenceOutput();
    for (let i = 0; i < ref.length; i++) expect(y[i]).toBeCloseTo(ref[i]!, 4);
  });

  it("leaves the MatMuls the caller keeps, and products of two activations, in fp32", () => {
    const g = new GraphBuilder("two");
    const x = g.input("x", DataType.FLOAT, [3, K], [3, K]);
    const a = g.matmul(
      x,
      g.initializer("keep.weight", [K, K], () => new Float32Array(K * K).fill(1)),
    );
    const b = g.matmul(
      a,
      g.initializer("go.weight", [K, N], () => weight()),
    );
    g.output(g.matmul(b, g.transpose(b, [1, 0])), "y", [3, 3]);
    const q = quantizeLinear(g, { keep: (n) => n.inputs[1] === "keep.weight" });
    expect(q.nodes.map((n) => n.opType)).toEqual([
      "MatMul",
      "DynamicQuantizeMatMul",
      "Transpose",
      "MatMul",
      "Identity",
    ]);
    expect([...q.initializers.keys()]).toEqual(["keep.weight", "go.weight#int8", "go.weight#scale"]);
  });

  it("leaves products computed from weights alone (folded at load, e.g. upsampleConv3x3's filters) in fp32", () => {
    const g = new GraphBuilder("upsample");
    const x = g.input("x", DataType.FLOAT, [1, 2, 3, 3], [1, 2, 3, 3]);
    const filter = g.initializer("up.conv.weight", [2, 2, 3, 3], () =>
      Float32Array.from({ length: 36 }, (_, i) => Math.sin(i) * 0.3),
    );
    g.output(g.upsampleConv3x3(x, filter, undefined), "y", [1, 2, 6, 6]);
    const matmuls = g.nodes.filter((n) => n.opType === "MatMul").length;
    expect(matmuls).toBeGreaterThan(0);
    const q = quantizeLinear(g);
    expect(q.nodes.filter((n) => n.opType === "MatMul")).toHaveLength(matmuls);
    expect(q.nodes.some((n) => n.domain === MS_DOMAIN)).toBe(false);
  });
});

describe("quantizeLinear perRow: one activation scale per row, for inputs with heavy tails", () => {
  /** x [2, 3, K] MatMul w + b: rows of very different magnitudes (row 0 of batch 0 is 100x the others). */
  const rows = Float32Array.from({ length: 2 * 3 * K }, (_, i) => Math.sin(i * 0.61 + 0.3) * (i < K ? 100 : 1));
  function net(): GraphBuilder {
    const g = new GraphBuilder("rows");
    const x = g.input("x", DataType.FLOAT, ["batch", 3, K], [2, 3, K]);
    const w = g.initializer("w", [K, N], () => weight());
    const b = g.initializer("b", [N], () => bias);
    g.output(g.add(g.matmul(x, w), b), "y", ["batch", 3, N]);
    return g;
  }
  async function run(g: GraphBuilder | ReturnType<typeof quantizeLinear>): Promise<Float32Array> {
    const session = await Session.create(serializeGraph(g), { threads: 1 });
    const y = (await session.run({ x: { data: rows, dims: [2, 3, K] } })).y!.data as Float32Array;
    await session.release();
    return y;
  }

  it("computes what the per-row int8 reference computes (scale max|row| / 127, zero point 128)", async () => {
    const g = quantizeLinear(net(), { perRow: () => true });
    const ops = g.nodes.map((n) => n.opType);
    expect(ops).toContain("MatMulIntegerToFloat");
    expect(ops).not.toContain("DynamicQuantizeMatMul");
    const y = await run(g);
    const { q, scales } = referenceWeights();
    expect(y).toHaveLength(6 * N);
    for (let r = 0; r < 6; r++) {
      const row = [...rows.slice(r * K, (r + 1) * K)];
      const s = Math.max(...row.map(Math.abs)) / 127;
      const qx = row.map((v) => Math.max(0, Math.min(255, rint(v / s) + 128)));
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += (qx[k]! - 128) * q[k * N + n]!;
        expect(y[r * N + n]).toBeCloseTo(acc * scales[n]! * s + bias[n]!, 3);
      }
    }
  });

  it("keeps the small rows' precision that one per-tensor range loses", async () => {
    const reference = await run(net());
    const error = (y: Float32Array) => {
      let num = 0;
      let den = 0;
      for (let i = 3 * N; i < y.length; i++) {
        num += (y[i]! - reference[i]!) ** 2;
        den += reference[i]! ** 2;
      }
      return Math.sqrt(num / den);
    };
    // Batch 1's rows only (no row of 100s among them): the per-tensor scale is set by batch 0's first row.
    const perTensor = error(await run(quantizeLinear(net())));
    const perRow = error(await run(quantizeLinear(net(), { perRow: () => true })));
    expect(perRow).toBeLessThan(0.02);
    expect(perTensor).toBeGreaterThan(5 * perRow);
  });
});
