import { describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { DataType } from "../../src/onnx/graph.js";
import { CompileCache } from "../../src/runtime/compile-cache.js";
import { openCachedSession, optimizedCopyProblem } from "../../src/runtime/optimized-copy.js";
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
  const get = () => cache.getOrBuild("k1", graph, (e) => events.push(e.hit)).path;

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

  it("evicts the build of an entry it is told to, and leaves a newer build alone", () => {
    const first = cache.getOrBuild("k2", graph);
    cache.evict("k2", first.id);
    expect(cache.lookup("k2")).toMatchObject({ hit: false, reason: "not built yet" });
    const second = cache.getOrBuild("k2", graph);
    expect(second.id).not.toBe(first.id);
    cache.evict("k2", first.id); // a process that was refused the first build, late
    expect(cache.lookup("k2")).toMatchObject({ hit: true, id: second.id });
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
  const x = Float32Array.from({ length: N }, (_, i) => (i % 5) / 5);
  const run = async (path: string): Promise<number[]> => {
    const s = await openCachedSession(path, { threads: 1 });
    const y = Array.from((await s.run({ x: { data: x, dims: [1, N] } })).y!.data);
    await s.release();
    return y;
  };
  /** Where the optimized weights are, wherever in the entry a version keeps them. */
  const find = (dir: string, name: string): string => {
    const hit = (readdirSync(dir, { recursive: true }) as string[]).find((p) => basename(p) === name);
    if (!hit) throw new Error(`no ${name} in ${dir}`);
    return join(dir, hit);
  };

  it("saves onnxruntime's optimized graph on first open and reuses it, with the same outputs; a broken copy is rebuilt", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-opt-"));
    const path = new CompileCache(dir).write("k", graph());
    const y1 = await run(path);
    const marker = join(dir, "k", "optimized", "optimized.json");
    expect(existsSync(marker)).toBe(true);
    expect(existsSync(join(dir, "k", "optimized", "model.opt.onnx"))).toBe(true);
    expect(optimizedCopyProblem(path)).toBeUndefined();
    expect(await run(path)).toEqual(y1);
    // A marker that no longer matches the files (a half-written copy) is dropped and the copy written again.
    writeFileSync(marker, JSON.stringify({ ...JSON.parse(readFileSync(marker, "utf8")), weightsBytes: 1 }));
    expect(optimizedCopyProblem(path)).toMatch(/sizes differ/);
    expect(await run(path)).toEqual(y1);
    expect(JSON.parse(readFileSync(marker, "utf8")).weightsBytes).toBeGreaterThan(1);
    expect(readdirSync(join(dir, "k")).sort()).toEqual(["manifest.json", "model.onnx", "optimized", "weights.bin"]);
  });

  it("detects optimized weights overwritten with other bytes of the same size, rebuilds the copy, and draws what the intact copy drew", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-opt-"));
    const path = new CompileCache(dir).write("k", graph());
    const intact = await run(path);
    expect(await run(path)).toEqual(intact); // served by the optimized copy
    const weights = find(join(dir, "k"), "weights.opt.bin");
    writeFileSync(weights, randomBytes(statSync(weights).size));
    expect(await run(path)).toEqual(intact);
    expect(optimizedCopyProblem(path)).toBeUndefined();
    expect(await run(path)).toEqual(intact);
  });

  it("replaces an optimized copy that passes its checks but that onnxruntime refuses", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-opt-"));
    const path = new CompileCache(dir).write("k", graph());
    const intact = await run(path);
    const model = join(dir, "k", "optimized", "model.opt.onnx");
    const marker = join(dir, "k", "optimized", "optimized.json");
    const garbage = Buffer.from("not an onnx graph");
    writeFileSync(model, garbage);
    const before = JSON.parse(readFileSync(marker, "utf8"));
    writeFileSync(marker, JSON.stringify({ ...before, modelBytes: garbage.length, modelSha256: createHash("sha256").update(garbage).digest("hex") }));
    expect(optimizedCopyProblem(path)).toBeUndefined(); // the checks cannot tell
    expect(await run(path)).toEqual(intact);
    expect(JSON.parse(readFileSync(marker, "utf8")).id).not.toBe(before.id);
    expect(readFileSync(model).equals(garbage)).toBe(false);
    expect(await run(path)).toEqual(intact);
  });

  it("detects a changed value in the optimized graph file (a small initializer kept inline), rebuilds, and draws what the intact copy drew", async () => {
    const bias = Float32Array.from({ length: N }, (_, i) => 1 + i / N);
    const g = new GraphBuilder("matmul-bias");
    const input = g.input("x", DataType.FLOAT, [1, N], [1, N]);
    g.output(g.add(g.matmul(input, g.initializer("w", [N, N], () => weight)), g.initializer("b", [N], () => bias)), "y", [1, N]);
    const dir = mkdtempSync(join(tmpdir(), "diffuse-opt-"));
    const path = new CompileCache(dir).write("k", g);
    const intact = await run(path);
    expect(await run(path)).toEqual(intact);
    const model = find(join(dir, "k"), "model.opt.onnx");
    const bytes = readFileSync(model);
    const at = bytes.indexOf(Buffer.from(bias.buffer)); // 256 bytes: under the 1 KiB that go to the weights file
    expect(at).toBeGreaterThan(0);
    bytes[at + 4 * 10 + 3] ^= 0x01; // bias[10], sign bit
    writeFileSync(model, bytes);
    expect(await run(path)).toEqual(intact);
    expect(optimizedCopyProblem(path)).toBeUndefined();
  });
});
