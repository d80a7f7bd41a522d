/**
 * Speed of the full-size SD1.5 networks on this machine (random weights: speed does not depend on values).
 *
 *   npm run bench                       table on stdout
 *   npm run bench -- --json             one JSON object on stdout
 *   npm run bench -- --attention matmul --opt extended --threads 2 --only unet512,vae512
 *   npm run bench -- --only unet512,safety224   what a checked live preview adds to a step
 *   npm run bench -- --only unetload --loads 5     UNet load times only (build, first load, 5 cached loads)
 *
 * Load times: "first" builds the session from the cache entry (and saves onnxruntime's optimized graph beside it),
 * "cached" opens that optimized graph, as every later run of `diffuse generate` does.
 * Each network: one warm-up run, then the median of 3. GFLOP/s counts the MatMul/Conv work at the run's shapes
 * and is compared with a large MatMul's GFLOP/s measured in this process with the same threads (the ceiling).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SD15 } from "../src/configs/pipeline.js";
import { buildClipText, CLIP_TEXT_IO } from "../src/models/clip-text.js";
import { clipTextParamShapes, unetParamShapes, vaeParamShapes } from "../src/models/param-shapes.js";
import { buildUNet, UNET_IO } from "../src/models/unet.js";
import { buildVaeDecoder, VAE_IO } from "../src/models/vae.js";
import type { AttentionKind } from "../src/onnx/builder.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { graphFlops } from "../src/onnx/flops.js";
import { DataType } from "../src/onnx/graph.js";
import { CompileCache } from "../src/runtime/compile-cache.js";
import { openCachedSession, optimizedCopyProblem } from "../src/runtime/optimized-copy.js";
import { Session, type FeedValue, type SessionOptions } from "../src/runtime/session.js";
import { ScopedWeights } from "../src/weights/weight-source.js";
import { DEFAULT_ATTENTION } from "../src/pipeline/networks.js";
import { SAFETY_IO } from "../src/models/safety-checker.js";
import { randomSafetyChecker, randomWeights } from "./random-weights.js";

const { values: args } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    attention: { type: "string", default: DEFAULT_ATTENTION },
    opt: { type: "string", default: "all" },
    threads: { type: "string" },
    runs: { type: "string", default: "3" },
    only: { type: "string" },
    loads: { type: "string", default: "1" },
  },
});
const threads = Number(args.threads ?? availableParallelism());
const runs = Number(args.runs);
const loads = Math.max(1, Number(args.loads));
const attention = args.attention as AttentionKind;
const sessionOpts: SessionOptions = { threads, optimization: args.opt as SessionOptions["optimization"] };
const only = args.only ? new Set(args.only.split(",")) : undefined;
const wanted = (name: string) => !only || only.has(name);
const log = (msg: string) => process.stderr.write(`${msg}\n`);

function randn(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i += 2) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u1 = (s + 1) / 4294967297;
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u2 = s / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

async function timeRuns(session: Session, feeds: Record<string, FeedValue>): Promise<number> {
  await session.run(feeds); // warm-up: first run allocates and tunes
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

async function matmulCeiling(): Promise<number> {
  const n = 2048;
  const g = new GraphBuilder("matmul");
  const a = g.input("a", DataType.FLOAT, [n, n], [n, n]);
  const b = g.initializer("b", [n, n], () => randn(n * n, 7));
  g.output(g.matmul(a, b), "y", [n, n]);
  const dir = mkdtempSync(join(tmpdir(), "diffuse-bench-mm-"));
  const session = await Session.create(new CompileCache(dir).write("mm", g), sessionOpts);
  const seconds = await timeRuns(session, { a: { data: randn(n * n, 3), dims: [n, n] } });
  await session.release();
  rmSync(dir, { recursive: true, force: true });
  return (2 * n ** 3) / seconds / 1e9;
}

interface Row { name: string; what: string; seconds: number; gflops: number }

async function main(): Promise<void> {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-bench-"));
  const cache = new CompileCache(cacheDir);
  const rows: Row[] = [];
  const result: Record<string, unknown> = { threads, attention, optimization: args.opt };
  try {
    log(`threads ${threads}, attention ${attention}, optimization ${args.opt}`);
    const matmulGflops = await matmulCeiling();
    result.matmulGflops = round(matmulGflops);
    log(`MatMul 2048^3 ceiling: ${matmulGflops.toFixed(1)} GFLOP/s`);

    if (wanted("unet512") || wanted("unet256") || wanted("unetload")) {
      const unetWeights = new ScopedWeights(randomWeights(unetParamShapes(SD15.unet)));
      let t0 = performance.now();
      const path = cache.write("unet", buildUNet(SD15.unet, unetWeights, { attention, batch: 2, height: 64, width: 64 }));
      result.buildSeconds = round((performance.now() - t0) / 1000);
      log(`UNet built and written in ${result.buildSeconds} s`);
      t0 = performance.now();
      let unet = await openCachedSession(path, sessionOpts);
      result.firstLoadSeconds = round((performance.now() - t0) / 1000);
      await unet.release();
      // A cached load is what every later `diffuse generate` does: validate the entry, open the optimized copy.
      const cachedLoads: number[] = [];
      const lookups: number[] = [];
      for (let i = 0; i < loads; i++) {
        if (i > 0) await unet.release();
        t0 = performance.now();
        const hit = cache.lookup("unet");
        if (!hit.hit) throw new Error("cache entry not valid after writing");
        lookups.push(round((performance.now() - t0) / 1000));
        unet = await openCachedSession(hit.path, sessionOpts);
        cachedLoads.push(round((performance.now() - t0) / 1000));
      }
      // The checks of the optimized copy that every cached load makes, timed alone (they are a few ms of it).
      const copyChecks: number[] = [];
      for (let i = 0; i < loads; i++) {
        t0 = performance.now();
        const problem = optimizedCopyProblem(path);
        if (problem) throw new Error(`optimized copy not valid after the first load: ${problem}`);
        copyChecks.push(round((performance.now() - t0) / 1000));
      }
      result.cachedLoadSeconds = median(cachedLoads);
      result.cachedLoadsSeconds = cachedLoads;
      result.entryCheckSeconds = median(lookups);
      result.optimizedCopyCheckSeconds = median(copyChecks);
      log(`UNet session: first load ${result.firstLoadSeconds} s, cached load ${result.cachedLoadSeconds} s (median of ${loads}: ${cachedLoads.join(", ")}; of which checking the entry ${result.entryCheckSeconds} s, checking the optimized copy ${result.optimizedCopyCheckSeconds} s)`);
      const context = randn(2 * 77 * 768, 5);
      for (const [name, size] of [["unet512", 64], ["unet256", 32]] as const) {
        if (!wanted(name)) continue;
        const flops = graphFlops(buildUNet(SD15.unet, unetWeights, { attention, batch: 2, height: size, width: size }));
        const seconds = await timeRuns(unet, {
          [UNET_IO.sample]: { data: randn(2 * 4 * size * size, 1), dims: [2, 4, size, size] },
          [UNET_IO.timestep]: { data: Float32Array.of(500), dims: [1] },
          [UNET_IO.encoderHiddenStates]: { data: context, dims: [2, 77, 768] },
        });
        rows.push({ name, what: `UNet ${size * 8}px, batch 2 (one guided step)`, seconds, gflops: flops / seconds / 1e9 });
        log(`${name}: ${seconds.toFixed(2)} s`);
      }
      await unet.release();
      rmSync(cache.entryDir("unet"), { recursive: true, force: true }); // frees the disk before the VAE is built
    }

    if (wanted("vae512")) {
      const w = new ScopedWeights(randomWeights(vaeParamShapes(SD15.vae)));
      const g = buildVaeDecoder(SD15.vae, w, { attention, height: 512, width: 512 });
      const flops = graphFlops(g);
      const session = await Session.create(cache.write("vae", g), sessionOpts);
      const seconds = await timeRuns(session, { [VAE_IO.latent]: { data: randn(4 * 64 * 64, 2), dims: [1, 4, 64, 64] } });
      rows.push({ name: "vae512", what: "VAE decode 512px", seconds, gflops: flops / seconds / 1e9 });
      log(`vae512: ${seconds.toFixed(2)} s`);
      await session.release();
    }

    if (wanted("text77")) {
      const w = new ScopedWeights(randomWeights(clipTextParamShapes(SD15.textEncoder)));
      const g = buildClipText(SD15.textEncoder, w);
      const flops = graphFlops(g) * 2; // built at batch 1, run at batch 2
      const session = await Session.create(cache.write("text", g), sessionOpts);
      const ids = BigInt64Array.from({ length: 2 * 77 }, (_, i) => BigInt((i * 7919) % 49408));
      const seconds = await timeRuns(session, { [CLIP_TEXT_IO.inputIds]: { data: ids, dims: [2, 77] } });
      rows.push({ name: "text77", what: "text encoder, 77 tokens, batch 2", seconds, gflops: flops / seconds / 1e9 });
      await session.release();
    }

    if (wanted("safety224")) {
      // What a checked preview costs on top of the preview itself (npm run bench:preview times the rest).
      const { graph } = randomSafetyChecker();
      const flops = graphFlops(graph);
      const session = await Session.create(cache.write("safety", graph), sessionOpts);
      const seconds = await timeRuns(session, { [SAFETY_IO.pixelValues]: { data: randn(3 * 224 * 224, 4), dims: [1, 3, 224, 224] } });
      rows.push({ name: "safety224", what: "safety checker (CLIP ViT-L/14, 224px), 1 image", seconds, gflops: flops / seconds / 1e9 });
      log(`safety224: ${seconds.toFixed(2)} s`);
      await session.release();
    }
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }

  const matmul = result.matmulGflops as number;
  for (const r of rows) result[r.name] = { seconds: round(r.seconds), gflops: round(r.gflops), ceilingRatio: round(r.gflops / matmul) };
  result.peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  if (args.json) {
    process.stdout.write(JSON.stringify(result) + "\n");
    return;
  }
  const lines = [
    `| network | seconds | GFLOP/s | of MatMul ceiling (${matmul} GFLOP/s) |`,
    "| --- | --- | --- | --- |",
    ...rows.map((r) => `| ${r.what} | ${r.seconds.toFixed(2)} | ${r.gflops.toFixed(1)} | ${((100 * r.gflops) / matmul).toFixed(0)}% |`),
    "",
    `threads ${threads}, attention ${attention}, graph optimization ${args.opt}`,
    `UNet graph build + write ${result.buildSeconds ?? "-"} s, first load ${result.firstLoadSeconds ?? "-"} s, cached load ${result.cachedLoadSeconds ?? "-"} s`,
    `peak RSS ${result.peakRssMb} MB`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

await main();
