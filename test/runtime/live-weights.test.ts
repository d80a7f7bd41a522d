import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { DataType } from "../../src/onnx/graph.js";
import { CompileCache } from "../../src/runtime/compile-cache.js";
import type { Session, SessionOptions } from "../../src/runtime/session.js";
import type { TensorPatch, WeightPatches } from "../../src/runtime/weight-patch.js";

const N = 64;
const RANK = 2;
/** Values that are halves, so the entry keeps them compact and every open rebuilds a private fp32 file. */
const half = (n: number, seed: number) =>
  Float32Array.from({ length: n }, (_, i) => Math.round(Math.sin(i * 0.37 + seed) * 1024) / 4096);

/** m = z W (a MatMul weight) and y = conv(x, C), C [4, 16, 3, 3]: a convolution of fewer output channels than an NCHWc block. */
function graph(): GraphBuilder {
  const g = new GraphBuilder("live");
  const z = g.input("z", DataType.FLOAT, [1, N], [1, N]);
  const x = g.input("x", DataType.FLOAT, [1, 16, 8, 8], [1, 16, 8, 8]);
  g.output(
    g.matmul(
      z,
      g.initializer("w", [N, N], () => half(N * N, 1)),
    ),
    "m",
    [1, N],
  );
  g.output(
    g.conv2d(
      x,
      g.initializer("c", [4, 16, 3, 3], () => half(4 * 16 * 9, 2)),
      undefined,
    ),
    "y",
    [1, 4, 8, 8],
  );
  return g;
}

const feeds = {
  z: { data: Float32Array.from({ length: N }, (_, i) => Math.cos(i)), dims: [1, N] },
  x: { data: Float32Array.from({ length: 16 * 64 }, (_, i) => Math.sin(i * 0.1)), dims: [1, 16, 8, 8] },
};

async function outputs(s: Session): Promise<{ m: Float32Array; y: Float32Array }> {
  const r = await s.run(feeds);
  return { m: r.m!.data.slice(), y: r.y!.data.slice() };
}

function product(m: number, n: number, seed: number): TensorPatch {
  const values = (k: number) => Float32Array.from({ length: k }, (_, i) => Math.sin(i * 1.3 + seed) * 0.1);
  return { kind: "product", a: values(m * RANK), b: values(RANK * n), m, r: RANK, n };
}

describe("weights of an open session rewritten in place (live-weights.ts)", () => {
  const cache = new CompileCache(mkdtempSync(join(tmpdir(), "diffuse-live-")));
  const entry = () => cache.getOrBuild("live", graph);
  const patches: WeightPatches = new Map([
    ["w", [product(N, N, 1)]],
    ["c", [product(4, 16 * 9, 2)]],
  ]);

  it("with every weight kept mapped, the session computes what one opened with the patches computes, and the entry's own weights again without them", async () => {
    const opts: SessionOptions = { threads: 1, weightsInPlace: true };
    const { session, weights } = await cache.openLive(entry(), opts);
    const plain = await outputs(session);
    const patched = await cache.openLive(entry(), opts, patches);
    const want = await outputs(patched.session);
    await patched.session.release();
    expect(want.m).not.toEqual(plain.m);
    expect(want.y).not.toEqual(plain.y);

    expect(await weights!.rewrite(patches)).toBe(true);
    expect(await outputs(session)).toEqual(want);
    expect(await weights!.rewrite(new Map())).toBe(true);
    expect(await outputs(session)).toEqual(plain);
    await session.release();
  });

  it.runIf(process.platform === "linux" && process.arch === "x64")(
    "refuses, writing nothing, a change to a weight onnxruntime copied at load (its NCHWc pass on the 4-channel conv), and still rewrites the ones it maps",
    async () => {
      const { session, weights } = await cache.openLive(entry(), { threads: 1 });
      const plain = await outputs(session);
      expect(await weights!.rewrite(patches)).toBe(false);
      expect(await outputs(session)).toEqual(plain);
      const onlyW: WeightPatches = new Map([["w", patches.get("w")!]]);
      const patched = await cache.openLive(entry(), { threads: 1 }, onlyW);
      const want = await outputs(patched.session);
      await patched.session.release();
      expect(await weights!.rewrite(onlyW)).toBe(true);
      expect(await outputs(session)).toEqual(want);
      await session.release();
    },
  );

  it("an entry kept as fp32 and opened without patches maps the cache's own file, which nothing may write: no live weights", async () => {
    const fp32 = new CompileCache(mkdtempSync(join(tmpdir(), "diffuse-live-fp32-")), { storage: "fp32" });
    const opened = await fp32.openLive(fp32.getOrBuild("live", graph), { threads: 1 });
    expect(opened.weights).toBeUndefined();
    await opened.session.release();
  });
});
