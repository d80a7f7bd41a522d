import { describe, expect, it } from "vitest";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { DataType } from "../../src/onnx/graph.js";
import { CompileCache } from "../../src/runtime/compile-cache.js";
import { Session } from "../../src/runtime/session.js";

const N = 64;
const weight = Float32Array.from({ length: N * N }, (_, i) => Math.sin(i * 0.37));

/** y = x W with W big enough (16 KiB) to be stored as external data. */
function graph(): GraphBuilder {
  const g = new GraphBuilder("matmul");
  const x = g.input("x", DataType.FLOAT, [1, N], [1, N]);
  g.output(
    g.matmul(
      x,
      g.initializer("w", [N, N], () => weight),
    ),
    "y",
    [1, N],
  );
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

/** Values of a half: what an fp16 checkpoint holds once converted to fp32. */
const halfExact = Float32Array.from({ length: N * N }, (_, i) => Math.round(Math.sin(i * 0.37) * 1024) / 4096);

function halfGraph(name = "half"): GraphBuilder {
  const g = new GraphBuilder(name);
  const x = g.input("x", DataType.FLOAT, [1, N], [1, N]);
  const h = g.matmul(
    x,
    g.initializer("w", [N, N], () => halfExact),
  );
  g.output(
    g.matmul(
      h,
      g.initializer("v", [N, N], () => weight),
    ),
    "y",
    [1, N],
  );
  return g;
}

async function outputs(cache: CompileCache, key: string, build: () => GraphBuilder): Promise<number[]> {
  const s = await cache.open(cache.getOrBuild(key, build), { threads: 1 });
  const y = Array.from(
    (await s.run({ x: { data: Float32Array.from({ length: N }, (_, i) => (i % 5) / 5), dims: [1, N] } })).y!.data,
  );
  await s.release();
  return y;
}

describe("compact weights in the compile cache", () => {
  it("keeps weights that are halves in half the bytes, and computes exactly what the fp32 entry computes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-compact-"));
    const compact = new CompileCache(dir);
    const plain = new CompileCache(mkdtempSync(join(tmpdir(), "diffuse-plain-")), { storage: "fp32" });
    const y = await outputs(compact, "k", halfGraph);
    expect(await outputs(plain, "k", halfGraph)).toEqual(y);
    expect(readdirSync(join(dir, "k")).sort()).toEqual(["manifest.json", "model.onnx", "weights.half"]);
    const stored = statSync(join(dir, "k", "weights.half")).size;
    // w as fp16 (8 KiB) and v as fp32 (16 KiB), each aligned to 4 KiB
    expect(stored).toBeLessThanOrEqual(N * N * 2 + N * N * 4 + 4096);
    expect(stored).toBeLessThan(statSync(join(plain.dir, "k", "weights.bin")).size);
    expect(await outputs(compact, "k", halfGraph)).toEqual(y); // a cached load
  });

  it("leaves no rebuilt weights behind once the session is open", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-compact-"));
    const cache = new CompileCache(dir);
    const s = await cache.open(cache.getOrBuild("k", halfGraph), { threads: 1 });
    const scratch = [join(dir, ".scratch"), `/dev/shm/diffuse-${process.getuid?.() ?? "user"}`];
    for (const root of scratch)
      if (existsSync(root)) expect(readdirSync(root).filter((n) => n.startsWith(".k~"))).toEqual([]);
    await s.release();
  });

  it("detects a damaged segment table in the manifest and rebuilds the entry", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-compact-"));
    const cache = new CompileCache(dir);
    const y = await outputs(cache, "k", halfGraph);
    const file = join(dir, "k", "manifest.json");
    const m = JSON.parse(readFileSync(file, "utf8"));
    m.expand.segments[0].storedOffset += 4096;
    writeFileSync(file, JSON.stringify(m));
    expect(cache.lookup("k")).toMatchObject({ hit: false, reason: "manifest corrupted" });
    expect(await outputs(cache, "k", halfGraph)).toEqual(y);
  });

  it("deletes entries of the older format and the entries a new one replaces when it builds, and nothing else", () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-compact-"));
    const cache = new CompileCache(dir);
    const old = join(dir, "abc-unet-ms-mha-g1");
    mkdirSync(join(old, "optimized"), { recursive: true });
    writeFileSync(join(old, "manifest.json"), JSON.stringify({ version: 1, key: "abc-unet-ms-mha-g1" }));
    writeFileSync(join(old, "weights.bin"), "x");
    const newer = join(dir, "abc-unet-future");
    mkdirSync(newer);
    writeFileSync(join(newer, "manifest.json"), JSON.stringify({ version: 99, key: "abc-unet-future" }));
    cache.getOrBuild("abc-unet-1", halfGraph, undefined, "abc-unet-");
    cache.getOrBuild("abc-vae-1", halfGraph, undefined, "abc-vae-");
    expect(readdirSync(dir).sort()).toEqual(["abc-unet-1", "abc-unet-future", "abc-vae-1"]);
    cache.getOrBuild("abc-unet-2", halfGraph, undefined, "abc-unet-");
    expect(readdirSync(dir).sort()).toEqual(["abc-unet-2", "abc-unet-future", "abc-vae-1"]);
    const kept = cache.lookup("abc-vae-1");
    expect(kept.hit).toBe(true);
    expect(cache.getOrBuild("abc-vae-1", halfGraph).id).toBe(kept.hit ? kept.id : "");
  });
});
