import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { DataType } from "../../src/onnx/graph.js";
import { quantizeWeights } from "../../src/onnx/quantize-weights.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";

const V = 5; // table rows (tokens)
const D = 4; // table width = the weight's input features
const N = 3; // output features

/**
 * A [V, D] table whose rows exercise the quantizer: row 0 has max |w| 127 (scale exactly 1) and values at .5
 * (rounded half to even: 2.5 -> 2, -3.5 -> -4), row 1 is all zeros, row 2's extreme is negative (it maps to -127,
 * never -128), rows 3 and 4 are generic and of very different magnitudes (each keeps its own scale).
 */
const TABLE = Float32Array.from(
  [
    [127, 2.5, -3.5, 0.5],
    [0, 0, 0, 0],
    [1, -8, 0.03, 2],
    [0.011, -0.02, 0.0049, 0.013],
    [300, -120, 45.6, 7],
  ].flat(),
);
/** A [D, N] weight (MatMul's right operand, [in, out]): column 0 at scale 1 with a -127, column 1 zeros. */
const WEIGHT = Float32Array.from(
  [
    [127, 0, 0.25],
    [-127, 0, -0.75],
    [1.5, 0, 0.1],
    [-2.5, 0, 0.5],
  ].flat(),
);
const IDS = BigInt64Array.from([4n, 0n, 3n, 1n, 2n, 3n]);

/** ids [2, 3] -> Gather(table) -> MatMul(weight): the embeddings and the product as outputs. */
function net(): GraphBuilder {
  const g = new GraphBuilder("embed");
  const ids = g.input("ids", DataType.INT64, [2, 3], [2, 3]);
  const e = g.gather(
    g.initializer("table", [V, D], () => TABLE),
    ids,
    0,
  );
  g.output(e, "e", [2, 3, D]);
  g.output(
    g.matmul(
      e,
      g.initializer("w", [D, N], () => WEIGHT),
    ),
    "y",
    [2, 3, N],
  );
  return g;
}

/** numpy's rint (round half to even), written here from its definition. */
function rint(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** Symmetric int8 of `values` at one scale: max |v| / 127, 1 when all are zero; q saturated to [-127, 127]. */
function quantized(values: number[]): { q: number[]; scale: number } {
  const m = Math.max(...values.map(Math.abs));
  const scale = m === 0 ? 1 : m / 127;
  return { q: values.map((v) => Math.max(-127, Math.min(127, rint(v / scale)))), scale };
}

/** The table's rows and the weight's columns quantized and dequantized, independently of the code under test. */
function reference() {
  const rows = [...Array(V).keys()].map((r) => quantized([...TABLE.slice(r * D, (r + 1) * D)]));
  const cols = [...Array(N).keys()].map((c) => quantized([...Array(D).keys()].map((k) => WEIGHT[k * N + c]!)));
  // fp32 values: each q times its fp32 scale, rounded to fp32.
  const times = (q: number, scale: number) => Math.fround(q * Math.fround(scale));
  const table = rows.flatMap(({ q, scale }) => q.map((v) => times(v, scale)));
  const weight = [...Array(D * N).keys()].map((i) => times(cols[i % N]!.q[Math.floor(i / N)]!, cols[i % N]!.scale));
  return { rows, cols, table, weight };
}

describe("quantizeWeights: weight-only int8 for MatMul weights and Gather tables", () => {
  it("rounds the table per row and the weight per column, half to even, within [-127, 127]", () => {
    const g = quantizeWeights(net());
    const ref = reference();
    const table = g.initializers.get("table")!;
    const w = g.initializers.get("w")!;
    // The graph is the fp32 one: same nodes, same fp32 initializers, their values rounded.
    expect(g.nodes).toEqual(net().nodes);
    expect([table.dtype, w.dtype]).toEqual([DataType.FLOAT, DataType.FLOAT]);
    expect([table.int8?.axis, w.int8?.axis]).toEqual([0, 1]);

    const t = table.int8!.quantized();
    expect([...t.q]).toEqual(ref.rows.flatMap((r) => r.q));
    expect([...t.q].slice(0, 2 * D)).toEqual([127, 2, -4, 0, 0, 0, 0, 0]);
    expect(Math.min(...t.q)).toBe(-127); // row 2's -8 is -127, not -128
    expect([...t.scales]).toEqual(ref.rows.map((r) => Math.fround(r.scale)));
    expect(t.scales[1]).toBe(1); // the zero row
    expect([...(table.load() as Float32Array)]).toEqual(ref.table);

    const c = w.int8!.quantized();
    expect([...c.q]).toEqual([...Array(D * N).keys()].map((i) => ref.cols[i % N]!.q[Math.floor(i / N)]!));
    expect([0, 1, 2, 3].map((k) => c.q[k * N])).toEqual([127, -127, 2, -2]); // 1.5 -> 2, -2.5 -> -2
    expect([0, 1, 2, 3].map((k) => c.q[k * N + 1])).toEqual([0, 0, 0, 0]);
    expect([...c.scales]).toEqual(ref.cols.map((r) => Math.fround(r.scale)));
    expect([...(w.load() as Float32Array)]).toEqual(ref.weight);
  });

  it("computes with the rounded weights in fp32", async () => {
    const session = await Session.create(serializeGraph(quantizeWeights(net())), { threads: 1 });
    const out = await session.run({ ids: { data: IDS, dims: [2, 3] } });
    await session.release();
    const { table, weight } = reference();
    const close = (a: number, b: number) =>
      expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(b)));
    const ids = [...IDS].map(Number);
    const e = ids.flatMap((id) => table.slice(id * D, (id + 1) * D));
    e.forEach((v, i) => close(out.e!.data[i]!, v));
    expect(out.e!.data.slice(3 * D, 4 * D)).toEqual(new Float32Array(D)); // token 1: the zero row
    for (let t = 0; t < ids.length; t++)
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < D; k++) acc += e[t * D + k]! * weight[k * N + n]!;
        close(out.y!.data[t * N + n]!, acc);
      }
  });

  it("leaves kept weights and weights that other nodes read as they are", () => {
    const g = new GraphBuilder("mixed");
    const x = g.input("x", DataType.FLOAT, [2, 64], [2, 64]);
    const halves = () => new Float32Array(64 * 64).fill(0.5);
    const shared = g.initializer("shared", [64, 64], halves);
    const y = g.add(g.matmul(x, shared), g.matmul(x, g.initializer("kept", [64, 64], halves)));
    const z = g.matmul(g.add(y, g.gather(shared, g.int64s([0, 1]), 0)), g.initializer("next", [64, 2], halves));
    g.output(g.matmul(g.concat([z, z], 1), g.initializer("go", [4, 64], halves)), "y", [2, 64]);
    const q = quantizeWeights(g, { keep: (w) => w.name === "kept" });
    const rounded = [...q.initializers.values()].filter((i) => i.int8).map((i) => i.name);
    // "shared" is both a MatMul's weight and a Gather's table: one scale layout cannot serve both.
    expect(rounded).toEqual(["next", "go"]);
    expect([...q.initializers.keys()]).toEqual([...g.initializers.keys()]);
  });
});
