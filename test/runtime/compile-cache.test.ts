import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { DataType } from "../../src/onnx/graph.js";
import { CompileCache, openCachedSession } from "../../src/runtime/compile-cache.js";
import { Session } from "../../src/runtime/session.js";

const N = 64;
const weight = Float32Array.from({ length: N * N }, (_, i) => Math.sin(i * 0.37));

/** y = x W with W big enough (16 KiB) to be stored as external data. */
function graph(): GraphBuilder {
  const g = new GraphBuilder("matmul");
  const x = g.input("x", DataType.FLOAT, [1, N], [1, N]);
  g.output(g.matmul(x, g.initializer("w", [N, N], () => weight)), "y", [1, N]);
  return g;
}

async function check(path: string): Promise<void> {
  const s = await Session.create(path, { threads: 1 });
  const x = Float32Array.from({ length: N }, (_, i) => i / N);
  const y = (await s.run({ x: { data: x, dims: [1, N] } })).y!.data;
  for (const j of [0, 17, N - 1]) {
    let e = 0;
    for (let i = 0; i < N; i++) e += x[i]! * weight[i * N + j]!;
    expect(y[j]).toBeCloseTo(e, 4);
  }
  await s.release();
}

describe("compile cache", () => {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-cache-"));
  const cache = new CompileCache(dir);
  const events: boolean[] = [];
  const get = () => cache.getOrBuild("k1", graph, (e) => events.push(e.hit));

  it("builds once, then serves the entry with external weights that onnxruntime loads", async () => {
    const p1 = get();
    const p2 = get();
    expect(p1).toBe(p2);
    expect(events).toEqual([false, true]);
    expect(readFileSync(join(dir, "k1", "weights.bin")).length).toBeGreaterThanOrEqual(N * N * 4);
    await check(p2);
  });

  it("detects a corrupted weights file and rebuilds it", async () => {
    const w = join(dir, "k1", "weights.bin");
    const bytes = readFileSync(w);
    bytes[100] ^= 0xff;
    writeFileSync(w, bytes);
    expect(cache.lookup("k1")).toMatchObject({ hit: false, reason: "weights file corrupted" });
    await check(get());
    expect(cache.lookup("k1").hit).toBe(true);
  });

  it("detects a truncated (half-written) entry and a missing manifest, and rebuilds", async () => {
    truncateSync(join(dir, "k1", "weights.bin"), 1000);
    expect(cache.lookup("k1").hit).toBe(false);
    await check(get());
    rmSync(join(dir, "k1", "manifest.json"));
    expect(cache.lookup("k1").hit).toBe(false);
    await check(get());
  });

  it("detects a corrupted graph file", () => {
    const m = join(dir, "k1", "model.onnx");
    const bytes = readFileSync(m);
    bytes[10] ^= 0x01;
    writeFileSync(m, bytes);
    expect(cache.lookup("k1")).toMatchObject({ hit: false, reason: "graph file corrupted" });
  });
});

describe("optimized graph cache", () => {
  it("saves onnxruntime's optimized graph on first open and reuses it, with the same outputs; a broken copy is rebuilt", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-opt-"));
    const path = new CompileCache(dir).write("k", graph());
    const first = await openCachedSession(path, { threads: 1 });
    const x = Float32Array.from({ length: N }, (_, i) => (i % 5) / 5);
    const y1 = (await first.run({ x: { data: x, dims: [1, N] } })).y!.data;
    await first.release();
    const marker = join(dir, "k", "optimized.json");
    expect(existsSync(marker)).toBe(true);
    expect(existsSync(join(dir, "k", "model.opt.onnx"))).toBe(true);
    const second = await openCachedSession(path, { threads: 1 });
    expect(Array.from((await second.run({ x: { data: x, dims: [1, N] } })).y!.data)).toEqual(Array.from(y1));
    await second.release();
    // A marker that no longer matches the files (a half-written copy) is dropped and the copy written again.
    writeFileSync(marker, JSON.stringify({ ...JSON.parse(readFileSync(marker, "utf8")), weightsBytes: 1 }));
    const third = await openCachedSession(path, { threads: 1 });
    expect(Array.from((await third.run({ x: { data: x, dims: [1, N] } })).y!.data)).toEqual(Array.from(y1));
    await third.release();
    expect(JSON.parse(readFileSync(marker, "utf8")).weightsBytes).toBeGreaterThan(1);
  });
});
