/**
 * Speed of the full-size SD1.5 networks on this machine, and what the compile cache costs: a checkpoint with
 * random fp16 weights (speed does not depend on values) is written to a temp folder and opened as a user's would be.
 *
 *   npm run bench                       table on stdout
 *   npm run bench -- --json             one JSON object on stdout
 *   npm run bench -- --attention matmul --opt extended --threads 2 --only unet512,vae512
 *   npm run bench -- --only unet512,safety224   what a checked live preview adds to a step
 *   npm run bench -- --only load --loads 3      first use and 3 cached loads only
 *   npm run bench -- --checkpoint-dir /tmp/sd15-random   keep the 2.1 GB checkpoint there for the next run
 *   npm run bench -- --cache-weights fp32        the cache's other storage: twice the disk, no rebuild at load
 *
 * First use: hashing the checkpoint, then for each network deriving its cache key, building its entry (weights
 * read, converted, laid out and written) and loading it. Cached load: a new process opening the same checkpoint
 * with the cache in place, as every later `diffuse generate` does (median of --loads). Cache size: the entries on
 * disk per network, against the checkpoint's own size.
 * Each network: one warm-up run, then the median of 3. GFLOP/s counts the MatMul/Conv work at the run's shapes
 * and is compared with a large MatMul's GFLOP/s measured in this process with the same threads (the ceiling).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SD15 } from "../src/configs/pipeline.js";
import { buildClipText, CLIP_TEXT_IO } from "../src/models/clip-text.js";
import { buildUNet, UNET_IO } from "../src/models/unet.js";
import { buildVaeDecoder, VAE_IO } from "../src/models/vae.js";
import type { AttentionKind } from "../src/onnx/builder.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { graphFlops } from "../src/onnx/flops.js";
import { DataType } from "../src/onnx/graph.js";
import { CompileCache } from "../src/runtime/compile-cache.js";
import { Session, type FeedValue, type SessionOptions } from "../src/runtime/session.js";
import { ScopedWeights } from "../src/weights/weight-source.js";
import { DEFAULT_ATTENTION, Networks, type NetworkName, type NetworkOptions } from "../src/pipeline/networks.js";
import { SAFETY_IO } from "../src/models/safety-checker.js";
import { checkpointBytes, randomCheckpoint } from "./random-checkpoint.js";
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
    "checkpoint-dir": { type: "string" },
    "cache-weights": { type: "string", default: "compact" },
    // internal: a cached load in its own process
    "cached-child": { type: "string" },
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
const NETWORKS: NetworkName[] = ["text_encoder", "unet", "vae_decoder"];

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
  return median(times);
}

/** A session on a graph with random fp32 weights, through the compile cache as any graph. */
async function cachedSession(dir: string, key: string, graph: GraphBuilder): Promise<Session> {
  return Session.create(new CompileCache(dir).write(key, graph), sessionOpts);
}

async function matmulCeiling(): Promise<number> {
  const n = 2048;
  const g = new GraphBuilder("matmul");
  const a = g.input("a", DataType.FLOAT, [n, n], [n, n]);
  const b = g.initializer("b", [n, n], () => randn(n * n, 7));
  g.output(g.matmul(a, b), "y", [n, n]);
  const dir = mkdtempSync(join(tmpdir(), "diffuse-bench-mm-"));
  const session = await cachedSession(dir, "mm", g);
  const seconds = await timeRuns(session, { a: { data: randn(n * n, 3), dims: [n, n] } });
  await session.release();
  rmSync(dir, { recursive: true, force: true });
  return (2 * n ** 3) / seconds / 1e9;
}

type Timings = Record<string, number>;

/** Opens the checkpoint and loads its networks, with the time of each phase (hash, and per network key/build/load). */
async function openNetworks(ckptDir: string, cacheDir: string): Promise<{ nets: Networks; timings: Timings; totals: Timings }> {
  const timings: Timings = {};
  const totals: Timings = {};
  const onTiming: NetworkOptions["onTiming"] = (t) => {
    timings[t.network ? `${t.network}.${t.phase}` : t.phase] = round(t.seconds);
  };
  const t0 = performance.now();
  const cacheWeights = args["cache-weights"] as NetworkOptions["cacheWeights"];
  const nets = await Networks.open(randomCheckpoint(ckptDir, SD15), { cacheDir, attention, cacheWeights, onTiming, ...sessionOpts });
  totals.hash = round((performance.now() - t0) / 1000);
  for (const name of NETWORKS) {
    const t = performance.now();
    await nets.get(name);
    totals[name] = round((performance.now() - t) / 1000);
  }
  totals.total = round((performance.now() - t0) / 1000);
  return { nets, timings, totals };
}

/** Bytes on disk of each network's cache entries. */
function cacheSizes(cacheDir: string): Record<string, number> {
  const sizes: Record<string, number> = {};
  for (const name of readdirSync(cacheDir)) {
    const network = NETWORKS.find((n) => name.includes(`-${n}-`));
    if (!network) continue;
    sizes[network] = (sizes[network] ?? 0) + du(join(cacheDir, name));
  }
  sizes.total = Object.values(sizes).reduce((a, b) => a + b, 0);
  return sizes;
}

function du(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.blocks * 512;
  return readdirSync(path).reduce((n, f) => n + du(join(path, f)), 0);
}

interface Row { name: string; what: string; seconds: number; gflops: number }

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), "diffuse-bench-"));
  const ckptDir = args["checkpoint-dir"] ?? join(scratch, "checkpoint");
  const cacheDir = join(scratch, "cache");
  mkdirSync(ckptDir, { recursive: true });
  const rows: Row[] = [];
  const result: Record<string, unknown> = { threads, attention, optimization: args.opt, cacheWeights: args["cache-weights"], loadAverage: loadavg().map(round) };
  try {
    log(`threads ${threads}, attention ${attention}, optimization ${args.opt}, load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
    const matmulGflops = await matmulCeiling();
    result.matmulGflops = round(matmulGflops);
    log(`MatMul 2048^3 ceiling: ${matmulGflops.toFixed(1)} GFLOP/s`);

    if (wanted("load") || wanted("unet512") || wanted("unet256") || wanted("vae512") || wanted("text77")) {
      let t = performance.now();
      randomCheckpoint(ckptDir, SD15).close();
      result.checkpointBytes = checkpointBytes(ckptDir);
      log(`checkpoint (random fp16 weights, ${gb(result.checkpointBytes as number)}) ready in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      const { nets, timings, totals } = await openNetworks(ckptDir, cacheDir);
      result.firstUse = { ...totals, phases: timings, peakRssMb: peakRssMb() };
      log(`first use: ${JSON.stringify(result.firstUse)}`);
      const sizes = cacheSizes(cacheDir);
      result.cacheBytes = sizes;
      result.cacheToCheckpoint = round(sizes.total! / (result.checkpointBytes as number));
      log(`cache on disk: ${Object.entries(sizes).map(([k, v]) => `${k} ${gb(v)}`).join(", ")} (${result.cacheToCheckpoint}x the checkpoint)`);

      if (wanted("load")) {
        const cached: Record<string, unknown>[] = [];
        for (let i = 0; i < loads; i++) {
          const child = spawnSync(process.execPath, ["--import", "tsx", new URL(import.meta.url).pathname, "--cached-child", cacheDir, "--checkpoint-dir", ckptDir, "--cache-weights", String(args["cache-weights"]), "--attention", attention, "--opt", String(args.opt), "--threads", String(threads)], { encoding: "utf8" });
          if (child.status !== 0) throw new Error(`cached load failed: ${child.stderr}`);
          cached.push(JSON.parse(child.stdout.trim().split("\n").pop()!));
          log(`cached load ${i + 1}: ${JSON.stringify(cached.at(-1))}`);
        }
        const pick = (k: string) => median(cached.map((c) => (c.totals as Timings)[k]!));
        result.cachedLoad = { ...Object.fromEntries(["hash", ...NETWORKS, "total"].map((k) => [k, pick(k)])), peakRssMb: median(cached.map((c) => c.peakRssMb as number)), runs: cached };
      }

      const context = randn(2 * 77 * 768, 5);
      for (const [name, size] of [["unet512", 64], ["unet256", 32]] as const) {
        if (!wanted(name)) continue;
        const unet = await nets.get("unet");
        const flops = graphFlops(buildUNet(SD15.unet, new ScopedWeights(nets.checkpoint.unet), { attention, batch: 2, height: size, width: size }));
        const seconds = await timeRuns(unet, {
          [UNET_IO.sample]: { data: randn(2 * 4 * size * size, 1), dims: [2, 4, size, size] },
          [UNET_IO.timestep]: { data: Float32Array.of(500), dims: [1] },
          [UNET_IO.encoderHiddenStates]: { data: context, dims: [2, 77, 768] },
        });
        rows.push({ name, what: `UNet ${size * 8}px, batch 2 (one guided step)`, seconds, gflops: flops / seconds / 1e9 });
        log(`${name}: ${seconds.toFixed(2)} s`);
      }
      if (wanted("vae512")) {
        const flops = graphFlops(buildVaeDecoder(SD15.vae, new ScopedWeights(nets.checkpoint.vae), { attention, height: 512, width: 512 }));
        const seconds = await timeRuns(await nets.get("vae_decoder"), { [VAE_IO.latent]: { data: randn(4 * 64 * 64, 2), dims: [1, 4, 64, 64] } });
        rows.push({ name: "vae512", what: "VAE decode 512px", seconds, gflops: flops / seconds / 1e9 });
        log(`vae512: ${seconds.toFixed(2)} s`);
      }
      if (wanted("text77")) {
        const flops = graphFlops(buildClipText(SD15.textEncoder, new ScopedWeights(nets.checkpoint.textEncoder))) * 2; // built at batch 1, run at batch 2
        const ids = BigInt64Array.from({ length: 2 * 77 }, (_, i) => BigInt((i * 7919) % 49408));
        const seconds = await timeRuns(await nets.get("text_encoder"), { [CLIP_TEXT_IO.inputIds]: { data: ids, dims: [2, 77] } });
        rows.push({ name: "text77", what: "text encoder, 77 tokens, batch 2", seconds, gflops: flops / seconds / 1e9 });
      }
      await nets.release();
      nets.checkpoint.close();
    }

    if (wanted("safety224")) {
      // What a checked preview costs on top of the preview itself (npm run bench:preview times the rest).
      const { graph } = randomSafetyChecker();
      const flops = graphFlops(graph);
      const session = await cachedSession(join(scratch, "safety"), "safety", graph);
      const seconds = await timeRuns(session, { [SAFETY_IO.pixelValues]: { data: randn(3 * 224 * 224, 4), dims: [1, 3, 224, 224] } });
      rows.push({ name: "safety224", what: "safety checker (CLIP ViT-L/14, 224px), 1 image", seconds, gflops: flops / seconds / 1e9 });
      log(`safety224: ${seconds.toFixed(2)} s`);
      await session.release();
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  const matmul = result.matmulGflops as number;
  for (const r of rows) result[r.name] = { seconds: round(r.seconds), gflops: round(r.gflops), ceilingRatio: round(r.gflops / matmul) };
  result.peakRssMb = peakRssMb();
  if (args.json) {
    process.stdout.write(JSON.stringify(result) + "\n");
    return;
  }
  const first = result.firstUse as (Timings & { phases: Timings }) | undefined;
  const cached = result.cachedLoad as Timings | undefined;
  const sizes = result.cacheBytes as Record<string, number> | undefined;
  const phase = (n: string, p: string) => (first?.phases[`${n}.${p}`] !== undefined ? first.phases[`${n}.${p}`]!.toFixed(2) : "-");
  const lines = [
    `| network | seconds | GFLOP/s | of MatMul ceiling (${matmul} GFLOP/s) |`,
    "| --- | --- | --- | --- |",
    ...rows.map((r) => `| ${r.what} | ${r.seconds.toFixed(2)} | ${r.gflops.toFixed(1)} | ${((100 * r.gflops) / matmul).toFixed(0)}% |`),
    "",
  ];
  if (first && sizes) {
    lines.push(
      `| first use (s) / cache | key | build | load | total | cached load (s) | cache on disk |`,
      "| --- | --- | --- | --- | --- | --- | --- |",
      `| hash the checkpoint | | | | ${first.hash!.toFixed(2)} | ${cached?.hash?.toFixed(2) ?? "-"} | |`,
      ...NETWORKS.map((n) => `| ${n} | ${phase(n, "key")} | ${phase(n, "build")} | ${phase(n, "load")} | ${first[n]!.toFixed(2)} | ${cached?.[n]?.toFixed(2) ?? "-"} | ${gb(sizes[n] ?? 0)} |`),
      `| all | | | | ${first.total!.toFixed(2)} | ${cached?.total?.toFixed(2) ?? "-"} | ${gb(sizes.total!)} (${result.cacheToCheckpoint}x the ${gb(result.checkpointBytes as number)} checkpoint) |`,
      "",
      `peak RSS: first use ${first.peakRssMb} MB${cached ? `, cached load ${cached.peakRssMb} MB` : ""}, whole run ${result.peakRssMb} MB`,
    );
  }
  lines.push(`threads ${threads}, attention ${attention}, graph optimization ${args.opt}, load average at start ${(result.loadAverage as number[]).join(" ")}`);
  process.stdout.write(lines.join("\n") + "\n");
}

/** A cached load in this process: what `diffuse generate` does once the cache holds the checkpoint's networks. */
async function cachedChild(cacheDir: string): Promise<void> {
  const { nets, timings, totals } = await openNetworks(args["checkpoint-dir"]!, cacheDir);
  await nets.release();
  nets.checkpoint.close();
  process.stdout.write(JSON.stringify({ totals, phases: timings, peakRssMb: peakRssMb() }) + "\n");
}

function peakRssMb(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

function gb(bytes: number): string {
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

if (args["cached-child"]) await cachedChild(args["cached-child"]);
else await main();
