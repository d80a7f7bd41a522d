import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { DataType, type Graph } from "../../src/onnx/graph.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { NCHWC_DOMAIN, nchwcLayout } from "../../src/runtime/nchwc-layout.js";
import { nchwcBlockSize } from "../../src/runtime/nchwc-probe.js";
import { Session, type SessionOptions } from "../../src/runtime/session.js";

const values = (n: number, seed: number) =>
  Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.61 + seed) / Math.sqrt(n / 8));

/**
 * conv_in (3 -> 32, reads the plain input), a conv after an elementwise op (needs its input reordered), a 1x1
 * shortcut fed straight by conv_in, their sum into a strided conv, and a conv with 4 outputs (not a whole block).
 */
function convNet(): GraphBuilder {
  const g = new GraphBuilder("convs");
  const w = (name: string, dims: number[], seed: number) =>
    g.initializer(name, dims, () =>
      values(
        dims.reduce((a, b) => a * b, 1),
        seed,
      ),
    );
  const x = g.input("x", DataType.FLOAT, [1, 3, 16, 16], [1, 3, 16, 16]);
  const h = g.conv2d(x, w("in.w", [32, 3, 3, 3], 1), w("in.b", [32], 2));
  const a = g.conv2d(g.unary("Sigmoid", h), w("a.w", [32, 32, 3, 3], 3), w("a.b", [32], 4));
  const s = g.conv2d(h, w("s.w", [32, 32, 1, 1], 5), undefined);
  const d = g.conv2d(g.add(a, s), w("d.w", [32, 32, 3, 3], 6), w("d.b", [32], 7), { stride: 2, pads: [1, 1, 1, 1] });
  g.output(g.conv2d(d, w("out.w", [4, 32, 3, 3], 8), w("out.b", [4], 9)), "y", [1, 4, 8, 8]);
  return g;
}

async function run(graph: Graph, opts: SessionOptions): Promise<Float32Array> {
  const s = await Session.create(serializeGraph(graph), { threads: 1, ...opts });
  const y = (await s.run({ x: { data: values(3 * 16 * 16, 10), dims: [1, 3, 16, 16] } })).y!.data;
  await s.release();
  return y;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0,
    m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

describe("onnxruntime's NCHWc layout written into the graph", () => {
  const memo = join(mkdtempSync(join(tmpdir(), "diffuse-nchwc-")), "nchwc.json");

  it("finds the runtime's block size once and remembers it", async () => {
    const block = await nchwcBlockSize(memo);
    // onnxruntime has NCHWc kernels for x64 with AVX2 (8) or AVX-512 (16)
    if (process.arch === "x64") expect([8, 16]).toContain(block);
    expect(existsSync(memo)).toBe(true);
    expect(Object.values(JSON.parse(readFileSync(memo, "utf8")))).toEqual([block]);
    expect(await nchwcBlockSize(memo)).toBe(block);
  });

  it("rewrites the convolutions that fill whole blocks, and computes what the plain graph computes", async () => {
    const block = await nchwcBlockSize(memo);
    const plain = convNet();
    const laid = nchwcLayout(plain, block);
    if (block === 1) {
      expect(laid).toBe(plain);
      return;
    }
    const ops = laid.nodes.map((n) => `${n.domain === NCHWC_DOMAIN ? "nchwc:" : ""}${n.opType}`);
    expect(ops.filter((o) => o === "nchwc:Conv")).toHaveLength(4);
    expect(ops.filter((o) => o === "Conv")).toHaveLength(1); // 4 output channels: left to onnxruntime
    expect(ops.filter((o) => o === "nchwc:ReorderInput")).toHaveLength(2); // after Sigmoid and after Add; the shortcut reads conv_in's blocked output
    expect(laid.initializers.has("in.w")).toBe(false);
    // Our kernels as written (no optimizer) against the plain graph without optimizer...
    const reference = await run(plain, { optimization: "disabled" });
    expect(maxRelDiff(await run(laid, { optimization: "disabled" }), reference)).toBeLessThan(1e-5);
    // ...and against onnxruntime's own rewrite of the plain graph (which also folds the Add into a Conv).
    expect(
      maxRelDiff(await run(laid, { optimization: "all" }), await run(plain, { optimization: "all" })),
    ).toBeLessThan(1e-5);
  });

  it("upsamples blocked: a nearest 2x Resize feeds the next convolution its blocked output, with the same values", async () => {
    const block = await nchwcBlockSize(memo);
    if (block === 1) return; // no blocked layout on this CPU: nothing to rewrite
    const c = 2 * block;
    const g = new GraphBuilder("upsample");
    const x = g.input("x", DataType.FLOAT, [1, c, 5, 7], [1, c, 5, 7]);
    const up = g.upsampleNearest2x(x);
    g.output(up, "up", [1, c, 10, 14]);
    const w = g.initializer("w", [c, c, 3, 3], () => values(c * c * 9, 2));
    g.output(
      g.conv2d(
        up,
        w,
        g.initializer("b", [c], () => values(c, 3)),
      ),
      "y",
      [1, c, 10, 14],
    );
    const laid = nchwcLayout(g, block);
    const ops = laid.nodes.map((n) => `${n.domain === NCHWC_DOMAIN ? "nchwc:" : ""}${n.opType}`);
    expect(ops).not.toContain("Resize");
    expect(ops.filter((o) => o === "nchwc:Upsample")).toHaveLength(1);
    // Only the small input is reordered: the convolution reads the upsampled tensor as the Upsample wrote it.
    expect(ops.filter((o) => o === "nchwc:ReorderInput")).toHaveLength(1);
    const upsampled = laid.nodes.find((n) => n.opType === "Upsample")!.outputs[0];
    expect(laid.nodes.find((n) => n.opType === "Conv")!.inputs[0]).toBe(upsampled);
    const feeds = { x: { data: values(c * 35, 1), dims: [1, c, 5, 7] } };
    const outputs = async (graph: Graph) => {
      const s = await Session.create(serializeGraph(graph), { threads: 1, optimization: "disabled" });
      const r = await s.run(feeds);
      await s.release();
      return r;
    };
    const [plain, blocked] = [await outputs(g), await outputs(laid)];
    expect(blocked.up!.data).toEqual(plain.up!.data); // a copy of values, bit for bit
    expect(maxRelDiff(blocked.y!.data, plain.y!.data)).toBeLessThan(1e-5);
  });

  it("blocks the filters an upsampling convolution folds in the graph, permuting them there, and keeps its 3x3 filter stored once", async () => {
    const block = await nchwcBlockSize(memo);
    if (block === 1) return; // no blocked layout on this CPU: nothing to rewrite
    const c = 2 * block;
    const g = new GraphBuilder("upsample_conv");
    const x = g.input("x", DataType.FLOAT, [1, c, "h", "w"], [1, c, 5, 7]);
    const like = g.input("like", DataType.FLOAT, [1, 1, "H", "W"], [1, 1, 9, 14]);
    const w = g.initializer("w", [c, c, 3, 3], () => values(c * c * 9, 2));
    const b = g.initializer("b", [c], () => values(c, 3));
    g.output(g.upsampleConv3x3(g.unary("Sigmoid", x), w, b, like), "y", [1, c, "H", "W"]);
    const laid = nchwcLayout(g, block);
    const ops = laid.nodes.map((n) => `${n.domain === NCHWC_DOMAIN ? "nchwc:" : ""}${n.opType}`);
    // Four 2x2 convolutions (one per output parity) and the two that make the edges of odd sizes.
    expect(ops.filter((o) => o === "nchwc:Conv")).toHaveLength(6);
    expect(ops).not.toContain("Conv");
    // Their outputs interleaved blocked, reordered once.
    expect(ops).not.toContain("DepthToSpace");
    expect(ops.filter((o) => o === "nchwc:ReorderOutput")).toHaveLength(3);
    // The 3x3 filter is read as it is (to fold the 2x2 ones), so it is stored as it is and nowhere else.
    const stored = [...laid.initializers.values()].filter((d) => d.dims.length === 4);
    expect(stored.map((d) => d.name)).toEqual(["w"]);
    const feeds = (h: number, wd: number, oh: number, ow: number) => ({
      x: { data: values(c * h * wd, 1), dims: [1, c, h, wd] },
      like: { data: new Float32Array(oh * ow), dims: [1, 1, oh, ow] },
    });
    for (const optimization of ["disabled", "all"] as const) {
      const [plain, blocked] = await Promise.all(
        [g, laid].map((graph) => Session.create(serializeGraph(graph), { threads: 1, optimization })),
      );
      const sizes: [number, number, number, number][] = [
        [5, 7, 10, 14],
        [5, 7, 9, 13],
      ];
      for (const size of sizes) {
        const [a, z] = [await plain!.run(feeds(...size)), await blocked!.run(feeds(...size))];
        expect(z.y!.dims).toEqual([1, c, size[2], size[3]]);
        expect(maxRelDiff(z.y!.data, a.y!.data), `${optimization} ${size}`).toBeLessThan(1e-5);
      }
      await Promise.all([plain!.release(), blocked!.release()]);
    }
  });

  it("leaves a graph without eligible convolutions as it was", () => {
    const g = new GraphBuilder("mm");
    const x = g.input("x", DataType.FLOAT, [1, 8], [1, 8]);
    g.output(
      g.matmul(
        x,
        g.initializer("w", [8, 8], () => values(64, 1)),
      ),
      "y",
      [1, 8],
    );
    const laid = nchwcLayout(g, 16);
    expect(laid.nodes.map((n) => n.opType)).toEqual(["MatMul", "Identity"]);
    expect([...laid.initializers.keys()]).toEqual(["w"]);
  });
});
