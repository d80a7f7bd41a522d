/**
 * Speed of the full-size networks of each family on this machine, against the issue's diffusers + PyTorch figures,
 * and what the compile cache costs. Each family's checkpoint has random weights (speed does not depend on values)
 * and is written to a temp folder as users' checkpoints come (SD1.5: a diffusers folder, fp16; SD2.1 and SDXL: one
 * .safetensors file in the published key layout, fp16), then opened as a user's would be.
 *
 *   npm run bench                                 every family: SD1.5, SD2.1, SDXL base
 *   npm run bench -- --family sd15,sdxl           some of them (in parts: see --sd15-step)
 *   npm run bench -- --family sdxl --sd15-step 6.1    scale the PyTorch figures by an SD1.5 step of an earlier run
 *   npm run bench -- --json                       one JSON object on stdout
 *   npm run bench -- --attention matmul --opt extended --threads 2 --only unet512,vae512
 *   npm run bench -- --only unet512,safety224     what a checked live preview adds to a step
 *   npm run bench -- --only load --loads 3        SD1.5's first use and 3 cached loads only
 *   npm run bench -- --checkpoint-dir /tmp/bench-models   keep the checkpoints there for the next run
 *   npm run bench -- --cache-weights fp32         the cache's other storage: twice the disk, no rebuild at load
 *   npm run bench -- --prepack                    sessions with onnxruntime's packed MatMul weights (SessionOptions.prepack)
 *   npm run bench -- --precision int8             the same table at int8 (calibrated at first use), and each row's
 *                                                 fp32 time and ratio measured in the same run (fp32 phases first)
 *
 * Per family, each phase in a process of its own, so that its peak RSS is its own:
 * - first use: hashing the checkpoint, then for each network deriving its cache key, building its entry (weights
 *   read, converted, laid out and written) and loading it; then the cache's size on disk against the checkpoint's;
 * - cached load and the rows: a new process opens the same checkpoint with the cache in place, as every later
 *   `diffuse generate` does, loads every network a generation uses and times the family's rows (one warm-up run,
 *   then the median of --runs, or of --long-runs for a network whose warm-up took over 30 s). Its peak RSS is what a
 *   generation at the largest size measured needs (SDXL: 1024 px); further cached loads (--loads) time the load alone;
 * - SDXL only: the single file loads and generates at 512 px with 1 step through `diffuse generate` (the tiny
 *   reference model's tokenizers as --tokenizer/--tokenizer-2), and `diffuse inspect` must report sdxl, the
 *   builders' parameter counts and the file's sha256.
 * The PyTorch figures are scaled by our SD1.5 guided step of this run (or --sd15-step) over the 5.94 s it took where
 * they were measured. GFLOP/s counts the MatMul/Conv work at the run's shapes, against a large MatMul's GFLOP/s
 * measured in this process with the same threads (the ceiling).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { availableParallelism, freemem, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SDXL_BASE } from "../src/configs/pipeline.js";
import { openCheckpoint } from "../src/models/open-checkpoint.js";
import { clipTextParamShapes, paramCount, unetParamShapes, vaeParamShapes } from "../src/models/param-shapes.js";
import type { AttentionKind } from "../src/onnx/builder.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { graphFlops } from "../src/onnx/flops.js";
import { DataType } from "../src/onnx/graph.js";
import { SAFETY_IO } from "../src/models/safety-checker.js";
import { DEFAULT_ATTENTION, Networks, type NetworkName, type NetworkOptions } from "../src/pipeline/networks.js";
import { decodeWorkingBytes, fp32WeightBytes, releasesFinishedNetworks } from "../src/pipeline/stage-memory.js";
import { CompileCache } from "../src/runtime/compile-cache.js";
import { Session, type FeedValue, type SessionOptions } from "../src/runtime/session.js";
import {
  FAMILIES,
  randn,
  REFERENCE_SD15_STEP,
  ROWS,
  SDXL_PEAK_RSS,
  type FamilyName,
  type Timing,
} from "./network-rows.js";
import { randomCheckpoint, tokenizerTemplate, type RandomCheckpoint } from "./random-checkpoint.js";
import { parsePrecision, type Precision } from "../src/models/precision.js";
import { loadPipeline } from "../src/pipeline/load-pipeline.js";
import { randomSafetyChecker } from "./random-weights.js";

const { values: args } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    family: { type: "string", default: "sd15,sd21,sdxl" },
    "sd15-step": { type: "string" },
    attention: { type: "string", default: DEFAULT_ATTENTION },
    opt: { type: "string", default: "all" },
    threads: { type: "string" },
    runs: { type: "string", default: "3" },
    "long-runs": { type: "string", default: "1" },
    only: { type: "string" },
    loads: { type: "string", default: "1" },
    "checkpoint-dir": { type: "string" },
    "cache-weights": { type: "string", default: "compact" },
    prepack: { type: "boolean", default: false },
    precision: { type: "string", default: "fp32" },
    // internal: one phase of one family in a process of its own
    child: { type: "string" },
    "child-family": { type: "string" },
    "child-checkpoint": { type: "string" },
    "child-cache": { type: "string" },
    "child-rows": { type: "string" },
    "child-precision": { type: "string", default: "fp32" },
  },
});
const precision = parsePrecision(args.precision, "--precision");
const threads = Number(args.threads ?? availableParallelism());
const attention = args.attention as AttentionKind;
const sessionOpts: SessionOptions = {
  threads,
  optimization: args.opt as SessionOptions["optimization"],
  prepack: args.prepack,
};
const only = args.only ? new Set(args.only.split(",")) : undefined;
const wanted = (name: string) => !only || only.has(name);
const log = (msg: string) => process.stderr.write(`${msg}\n`);
/** A warm-up longer than this makes a network "long": timed --long-runs times instead of --runs. */
const LONG_RUN_S = 30;
const DIFFUSE_CLI = join(import.meta.dirname, "diffuse-cli.ts");

type Timings = Record<string, number>;

/** What a phase process reports (its last stdout line). */
interface PhaseReport {
  totals: Timings;
  phases: Timings;
  peakRssMb: number;
  rows?: Record<string, RowResult>;
  /** Whether the text encoders were released before the UNet rows, as a generation at that size does. */
  releasedTextEncoders?: boolean;
  /** Weights kept in tmpfs (compact entries are rebuilt there) and mapped by the sessions, and how much of it RSS counts. */
  tmpfs?: { mappedMb: number; residentMb: number };
}

interface RowResult {
  seconds: number;
  gflops: number;
  cpuShare: number;
  /** The process's peak RSS so far, plus the mapped tmpfs weights RSS does not count: the memory held at its peak. */
  peakHeldMb?: number;
}

async function timeRuns(session: Session, feeds: Record<string, FeedValue>): Promise<Timing> {
  const t0 = performance.now();
  await session.run(feeds); // warm-up: first run allocates and tunes
  const warm = (performance.now() - t0) / 1000;
  const n = Math.max(1, Number(warm > LONG_RUN_S ? args["long-runs"] : args.runs));
  const times: number[] = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await session.run(feeds);
    times.push((performance.now() - t) / 1000);
  }
  const cpu = process.cpuUsage(cpu0);
  const wall = times.reduce((a, b) => a + b, 0);
  return { seconds: median(times), cpuShare: (cpu.user + cpu.system) / 1e6 / wall / threads };
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
  const { seconds } = await timeRuns(session, { a: { data: randn(n * n, 3), dims: [n, n] } });
  await session.release();
  rmSync(dir, { recursive: true, force: true });
  return (2 * n ** 3) / seconds / 1e9;
}

/** Opens the family's checkpoint and loads every network a generation uses, with the time of each phase. */
async function openNetworks(
  family: FamilyName,
  path: string,
  cacheDir: string,
  childPrecision: Precision = "fp32",
): Promise<{ nets: Networks; timings: Timings; totals: Timings }> {
  const { config, networks } = FAMILIES[family];
  const timings: Timings = {};
  const totals: Timings = {};
  const onTiming: NetworkOptions["onTiming"] = (t) => {
    timings[t.network ? `${t.network}.${t.phase}` : t.phase] = round(t.seconds);
  };
  const t0 = performance.now();
  const cacheWeights = args["cache-weights"] as NetworkOptions["cacheWeights"];
  const options = { cacheDir, attention, cacheWeights, onTiming, ...sessionOpts };
  // int8 calibrates on first use by running the model's conditioner and UNet: the pipeline's loader wires that up
  // (the single files' tokenizers are the tiny reference models', as the single-file check's).
  const tiny = tokenizerTemplate(config.family);
  const nets =
    childPrecision === "int8"
      ? (
          await loadPipeline(path, {
            ...options,
            precision: "int8",
            prediction: config.predictionType,
            tokenizer: join(tiny, "tokenizer"),
            tokenizer2: config.textEncoder2 ? join(tiny, "tokenizer_2") : undefined,
            safetyChecker: false,
          })
        ).networks
      : await Networks.open(openCheckpoint(path, { prediction: config.predictionType }), options);
  totals.hash = round((performance.now() - t0) / 1000);
  for (const name of networks) {
    const t = performance.now();
    await nets.get(name);
    totals[name] = round((performance.now() - t) / 1000);
  }
  totals.total = round((performance.now() - t0) / 1000);
  return { nets, timings, totals };
}

/** One phase of one family, in this (child) process: first use, or a cached load and the rows named. */
async function phaseChild(): Promise<void> {
  const family = args["child-family"] as FamilyName;
  const { nets, timings, totals } = await openNetworks(
    family,
    args["child-checkpoint"]!,
    args["child-cache"]!,
    parsePrecision(args["child-precision"]!, "--child-precision"),
  );
  const report: PhaseReport = { totals, phases: timings, peakRssMb: 0 };
  if (args.child === "run") {
    report.rows = {};
    const rows = (args["child-rows"] ?? "")
      .split(",")
      .filter(Boolean)
      .map((id) => ROWS.find((r) => r.id === id)!);
    // As a generation at the largest size measured would (stage-memory.ts): the text encoders are released before
    // the first UNet step when memory is short, so the peak is what such a generation holds.
    const px = Math.max(0, ...rows.map((r) => r.px ?? 0));
    const { unet, vae, textEncoder, textEncoder2 } = nets.checkpoint;
    const release = releasesFinishedNetworks("auto", {
      weightBytes: fp32WeightBytes([unet, vae, textEncoder, textEncoder2]),
      decodeBytes: decodeWorkingBytes(px, px),
    });
    report.releasedTextEncoders = false;
    for (const row of rows) {
      const id = row.id;
      if (row.px !== undefined && release && !report.releasedTextEncoders) {
        await nets.release("text_encoder", "text_encoder_2");
        report.releasedTextEncoders = true;
        log("text encoders released before the UNet (memory short for a generation at this size: stage-memory.ts)");
      }
      const { seconds, cpuShare, flops } = await row.measure(nets, timeRuns, attention);
      const tmpfs = tmpfsWeights();
      const peakHeldMb = peakRssMb() + (tmpfs ? tmpfs.mappedMb - tmpfs.residentMb : 0);
      report.rows[id] = {
        seconds: round(seconds),
        gflops: round(flops / seconds / 1e9),
        cpuShare: round(cpuShare),
        peakHeldMb,
      };
      log(
        `${id}: ${seconds.toFixed(2)} s (CPU share ${cpuShare.toFixed(2)}, load average ${loadavg()[0]!.toFixed(2)}), memory held at its peak so far ${peakHeldMb} MB`,
      );
    }
    report.tmpfs = tmpfsWeights();
  }
  await nets.release();
  nets.checkpoint.close();
  report.peakRssMb = peakRssMb();
  process.stdout.write(JSON.stringify(report) + "\n");
}

function runPhase(
  phase: "first-use" | "run",
  family: FamilyName,
  checkpoint: string,
  cacheDir: string,
  rows: readonly string[] = [],
  childPrecision: Precision = "fp32",
): PhaseReport {
  const child = spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      new URL(import.meta.url).pathname,
      "--child",
      phase,
      "--child-family",
      family,
      "--child-checkpoint",
      checkpoint,
      "--child-cache",
      cacheDir,
      "--child-rows",
      rows.join(","),
      "--cache-weights",
      String(args["cache-weights"]),
      "--attention",
      attention,
      "--opt",
      String(args.opt),
      "--threads",
      String(threads),
      "--runs",
      String(args.runs),
      "--long-runs",
      String(args["long-runs"]),
      ...(args.prepack ? ["--prepack"] : []),
      "--child-precision",
      childPrecision,
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 64 * 2 ** 20 },
  );
  if (child.status !== 0)
    throw new Error(`${family} ${phase} failed (exit ${child.status ?? child.signal}); its messages are above`);
  return JSON.parse(child.stdout.trim().split("\n").pop()!) as PhaseReport;
}

/** Bytes on disk of each network's cache entries. */
function cacheSizes(cacheDir: string, networks: readonly NetworkName[]): Record<string, number> {
  const sizes: Record<string, number> = {};
  for (const name of readdirSync(cacheDir)) {
    const network = networks.find((n) => name.includes(`-${n}-`));
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

interface SingleFileCheck {
  ok: boolean;
  problems: string[];
  generateSeconds?: number;
  image?: { path: string; width: number; height: number };
  inspect?: {
    family: string;
    components: Record<string, { params: number; dtype: string }>;
    hash: string;
    sha256: string;
  };
}

/**
 * The published-layout SDXL file through the real CLI: `diffuse generate` at 512 px, 1 step (with the first-use
 * cache, so the graphs are not built twice), then `diffuse inspect`, whose family, parameter counts and hash must be
 * sdxl, the builders' counts and the file's sha256 (computed here by sha256sum).
 */
function singleFileCheck(ckpt: RandomCheckpoint, cacheDir: string, scratch: string): SingleFileCheck {
  const problems: string[] = [];
  const cli = (argv: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", DIFFUSE_CLI, ...argv], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, DIFFUSE_CACHE: cacheDir },
      maxBuffer: 64 * 2 ** 20,
    });
  const tiny = tokenizerTemplate("sdxl");
  const out = join(scratch, "sdxl-512.png");
  const t0 = performance.now();
  const gen = cli([
    "generate",
    "a lighthouse at dusk",
    "--model",
    ckpt.path,
    "--tokenizer",
    join(tiny, "tokenizer"),
    "--tokenizer-2",
    join(tiny, "tokenizer_2"),
    "-W",
    "512",
    "-H",
    "512",
    "--steps",
    "1",
    "--seed",
    "1",
    "--threads",
    String(threads),
    "-o",
    out,
    "--json",
    "--no-progress",
  ]);
  const check: SingleFileCheck = { ok: false, problems, generateSeconds: round((performance.now() - t0) / 1000) };
  if (gen.status !== 0) {
    problems.push(`diffuse generate exited ${gen.status ?? gen.signal}`);
  } else {
    const png = readFileSync(out);
    // The PNG's IHDR chunk: width and height as big-endian 32-bit integers at bytes 16 and 20.
    check.image = { path: out, width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
    if (check.image.width !== 512 || check.image.height !== 512)
      problems.push(`the image is ${check.image.width}x${check.image.height}, not 512x512`);
  }
  const ins = cli(["inspect", ckpt.path, "--json"]);
  if (ins.status !== 0) {
    problems.push(`diffuse inspect exited ${ins.status ?? ins.signal}`);
  } else {
    const r = JSON.parse(ins.stdout.trim().split("\n").pop()!) as NonNullable<SingleFileCheck["inspect"]>;
    check.inspect = { family: r.family, components: r.components, hash: r.hash, sha256: r.sha256 };
    if (r.family !== "sdxl") problems.push(`inspect reports family ${r.family}`);
    const want: Record<string, number> = {
      unet: paramCount(unetParamShapes(SDXL_BASE.unet)),
      vae: paramCount(vaeParamShapes(SDXL_BASE.vae)),
      text_encoder: paramCount(clipTextParamShapes(SDXL_BASE.textEncoder)),
      text_encoder_2: paramCount(clipTextParamShapes(SDXL_BASE.textEncoder2!)),
    };
    for (const [k, n] of Object.entries(want))
      if (r.components[k]?.params !== n)
        problems.push(`inspect reports ${r.components[k]?.params} ${k} parameters, the builder declares ${n}`);
    const sum = spawnSync("sha256sum", [ckpt.path], { encoding: "utf8" });
    const sha = sum.status === 0 ? sum.stdout.split(/\s/)[0] : undefined;
    if (sha === undefined) problems.push("sha256sum failed, so the hash was not checked");
    else if (r.sha256 !== sha || r.hash !== sha.slice(0, 10))
      problems.push(`inspect reports hash ${r.hash} (sha256 ${r.sha256}), the file's sha256 is ${sha}`);
  }
  check.ok = problems.length === 0;
  return check;
}

interface FamilyResult {
  checkpoint: { layout: string; bytes: number; writeSeconds: number; reused: boolean };
  firstUse: PhaseReport;
  cacheBytes: Record<string, number>;
  cacheToCheckpoint: number;
  cachedLoad: Timings & { peakRssMb: number };
  /** Peak RSS of the process that loaded every network and ran the rows. */
  runPeakRssMb: number;
  rows: Record<string, RowResult>;
  tmpfs?: PhaseReport["tmpfs"];
  releasedTextEncoders?: boolean;
  /** runPeakRssMb plus the tmpfs weights RSS did not count: the memory the generation holds at its peak. */
  runPeakHeldMb: number;
  singleFile?: SingleFileCheck;
  /** With --precision int8: the int8 phases, run after the fp32 ones on the same checkpoint and cache folder. */
  int8?: { firstUse: PhaseReport; rows: Record<string, RowResult>; cacheBytes: number; runPeakRssMb: number };
}

async function main(): Promise<void> {
  const families = args.family.split(",").map((f) => f.trim()) as FamilyName[];
  for (const f of families)
    if (!(f in FAMILIES)) throw new Error(`--family ${f}: not one of ${Object.keys(FAMILIES).join(", ")}`);
  const scratch = mkdtempSync(join(tmpdir(), "diffuse-bench-"));
  const ckptDir = args["checkpoint-dir"] ?? join(scratch, "checkpoints");
  const result: Record<string, unknown> = {
    threads,
    attention,
    optimization: args.opt,
    cacheWeights: args["cache-weights"],
    prepack: args.prepack,
    precision,
    loadAverage: loadavg().map(round),
    memoryGb: { total: round(totalmem() / 2 ** 30), free: round(freemem() / 2 ** 30) },
  };
  const byFamily: Partial<Record<FamilyName, FamilyResult>> = {};
  let safety: RowResult | undefined;
  try {
    log(
      `threads ${threads}, attention ${attention}, optimization ${args.opt}, load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(" ")}, memory free ${(freemem() / 2 ** 30).toFixed(1)} of ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    );
    const matmulGflops = await matmulCeiling();
    result.matmulGflops = round(matmulGflops);
    log(`MatMul 2048^3 ceiling: ${matmulGflops.toFixed(1)} GFLOP/s`);

    for (const family of families) {
      const rows = ROWS.filter((r) => r.family === family && wanted(r.id)).map((r) => r.id);
      const loads = family === "sd15" && wanted("load") ? Math.max(1, Number(args.loads)) : 1;
      const check = family === "sdxl" && wanted("sdxl-generate");
      if (!rows.length && !(family === "sd15" && wanted("load")) && !check) continue;
      const fam = FAMILIES[family];
      log(
        `\n== ${family}: load average ${loadavg()
          .map((x) => x.toFixed(2))
          .join(" ")}, memory free ${(freemem() / 2 ** 30).toFixed(1)} GiB`,
      );
      const t = performance.now();
      const ckpt = randomCheckpoint(ckptDir, fam.config, fam.layout);
      const writeSeconds = round((performance.now() - t) / 1000);
      log(
        `checkpoint (random fp16 weights, ${fam.layout.layout}, ${gb(ckpt.bytes)}) ${ckpt.written ? "written" : "reused"} in ${writeSeconds} s: ${ckpt.path}`,
      );
      const cacheDir = join(scratch, `cache-${family}`);
      const firstUse = runPhase("first-use", family, ckpt.path, cacheDir);
      log(`first use: ${JSON.stringify(firstUse)}`);
      const sizes = cacheSizes(cacheDir, fam.networks);
      log(
        `cache on disk: ${Object.entries(sizes)
          .map(([k, v]) => `${k} ${gb(v)}`)
          .join(", ")} (${round(sizes.total! / ckpt.bytes)}x the checkpoint)`,
      );
      const runs = [runPhase("run", family, ckpt.path, cacheDir, rows)];
      for (let i = 1; i < loads; i++) runs.push(runPhase("run", family, ckpt.path, cacheDir));
      runs.forEach((r, i) => log(`cached load ${i + 1}: ${JSON.stringify(r.totals)}, peak RSS ${r.peakRssMb} MB`));
      const pick = (k: string) => median(runs.map((r) => r.totals[k]!));
      byFamily[family] = {
        checkpoint: { layout: fam.layout.layout, bytes: ckpt.bytes, writeSeconds, reused: !ckpt.written },
        firstUse,
        cacheBytes: sizes,
        cacheToCheckpoint: round(sizes.total! / ckpt.bytes),
        cachedLoad: {
          ...Object.fromEntries(["hash", ...fam.networks, "total"].map((k) => [k, pick(k)])),
          peakRssMb: median(runs.map((r) => r.peakRssMb)),
        },
        runPeakRssMb: runs[0]!.peakRssMb,
        rows: runs[0]!.rows ?? {},
        tmpfs: runs[0]!.tmpfs,
        releasedTextEncoders: runs[0]!.releasedTextEncoders,
        runPeakHeldMb: runs[0]!.peakRssMb + (runs[0]!.tmpfs ? runs[0]!.tmpfs.mappedMb - runs[0]!.tmpfs.residentMb : 0),
      };
      if (precision === "int8") {
        const fp32Entries = new Set(readdirSync(cacheDir));
        const firstUse8 = runPhase("first-use", family, ckpt.path, cacheDir, [], "int8");
        log(`int8 first use: ${JSON.stringify(firstUse8)}`);
        const run8 = runPhase("run", family, ckpt.path, cacheDir, rows, "int8");
        // The int8 entries and calibrated ranges (the text encoders' entries are fp32's, shared).
        const int8Bytes = readdirSync(cacheDir)
          .filter((n) => !fp32Entries.has(n) && n.includes("-int8-"))
          .reduce((sum, n) => sum + du(join(cacheDir, n)), 0);
        log(`int8 cache entries on disk: ${gb(int8Bytes)}`);
        byFamily[family]!.int8 = {
          firstUse: firstUse8,
          rows: run8.rows ?? {},
          cacheBytes: int8Bytes,
          runPeakRssMb: run8.peakRssMb,
        };
      }
      if (check) {
        log("single-file SDXL through the CLI: generate at 512 px, 1 step; inspect");
        byFamily[family]!.singleFile = singleFileCheck(ckpt, cacheDir, scratch);
        log(`single-file check: ${JSON.stringify(byFamily[family]!.singleFile)}`);
      }
      rmSync(cacheDir, { recursive: true, force: true });
    }

    if (families.includes("sd15") && wanted("safety224")) {
      // What a checked preview costs on top of the preview itself (npm run bench:preview times the rest).
      const { graph } = randomSafetyChecker();
      const flops = graphFlops(graph);
      const session = await cachedSession(join(scratch, "safety"), "safety", graph);
      const { seconds, cpuShare } = await timeRuns(session, {
        [SAFETY_IO.pixelValues]: { data: randn(3 * 224 * 224, 4), dims: [1, 3, 224, 224] },
      });
      safety = { seconds: round(seconds), gflops: round(flops / seconds / 1e9), cpuShare: round(cpuShare) };
      log(`safety224: ${seconds.toFixed(2)} s`);
      await session.release();
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  const matmul = result.matmulGflops as number;
  const sd15Step =
    byFamily.sd15?.rows.unet512?.seconds ?? (args["sd15-step"] !== undefined ? Number(args["sd15-step"]) : undefined);
  const scale = sd15Step !== undefined ? sd15Step / REFERENCE_SD15_STEP : undefined;
  const table = ROWS.flatMap((spec) => {
    const fp32 = byFamily[spec.family]?.rows[spec.id];
    // At int8 the table is int8's, with the fp32 time of the same run beside it.
    const r = precision === "int8" ? byFamily[spec.family]?.int8?.rows[spec.id] : fp32;
    if (!r) return [];
    const scaled = spec.pytorch !== undefined && scale !== undefined ? spec.pytorch * scale : undefined;
    const speedup = scaled !== undefined ? scaled / r.seconds : undefined;
    return [
      {
        id: spec.id,
        what: spec.what,
        ...r,
        ceilingRatio: round(r.gflops / matmul),
        pytorch: spec.pytorch,
        pytorchScaled: scaled && round(scaled),
        speedup: speedup && round(speedup),
        target: spec.target,
        met: spec.target !== undefined && speedup !== undefined ? speedup >= spec.target : undefined,
        fp32Seconds: precision === "int8" ? fp32?.seconds : undefined,
        int8Ratio: precision === "int8" && fp32 ? round(fp32.seconds / r.seconds) : undefined,
      },
    ];
  });
  const sdxl = byFamily.sdxl;
  const heldGb = (row: string) =>
    sdxl?.rows[row]?.peakHeldMb !== undefined ? round(sdxl.rows[row]!.peakHeldMb! / 1024) : undefined;
  const rss = sdxl?.rows["sdxl-unet1024"]
    ? {
        unet1024Gb: heldGb("sdxl-unet1024"),
        vae1024Gb: heldGb("sdxl-vae1024"),
        rssGb: round(sdxl.runPeakRssMb / 1024),
        textEncodersReleased: sdxl.releasedTextEncoders ?? false,
        heldGb: round(sdxl.runPeakHeldMb / 1024),
        ...SDXL_PEAK_RSS,
        met: sdxl.runPeakHeldMb / 1024 < SDXL_PEAK_RSS.limitGb,
      }
    : undefined;
  Object.assign(result, {
    sd15Step,
    pytorchScale: scale && round(scale),
    rows: table,
    families: byFamily,
    safety224: safety,
    sdxlPeakRss: rss,
  });
  if (args.json) {
    process.stdout.write(JSON.stringify(result) + "\n");
    return;
  }

  const s = (x: number | undefined, digits = 2) => (x === undefined ? "-" : x.toFixed(digits));
  // At int8, "ours" is int8 (GFLOP/s counts the fp32 work), beside fp32's time in the same run and the ratio.
  const int8Head = precision === "int8" ? " fp32, this run (s) | fp32 / int8 |" : "";
  const int8Rule = precision === "int8" ? " --- | --- |" : "";
  const lines = [
    `| network | ours (s) | CPU share | PyTorch, issue (s) | PyTorch scaled (s) | speed-up | target | met | GFLOP/s | of MatMul ceiling (${matmul} GFLOP/s) |${int8Head}`,
    `| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |${int8Rule}`,
    ...table.map(
      (r) =>
        `| ${r.what} | ${s(r.seconds)} | ${s(r.cpuShare)} | ${s(r.pytorch)} | ${s(r.pytorchScaled)} | ${r.speedup === undefined ? "-" : `${s(r.speedup)}x`} | ${r.target === undefined ? "-" : `>= ${r.target}x`} | ${r.met === undefined ? "-" : r.met ? "yes" : "NO"} | ${s(r.gflops, 1)} | ${((100 * r.gflops) / matmul).toFixed(0)}% |` +
        (precision === "int8"
          ? ` ${s(r.fp32Seconds)} | ${r.int8Ratio === undefined ? "-" : `${s(r.int8Ratio)}x`} |`
          : ""),
    ),
    ...(safety
      ? [
          `| safety checker (CLIP ViT-L/14, 224px), 1 image | ${s(safety.seconds)} | ${s(safety.cpuShare)} | - | - | - | - | - | ${s(safety.gflops, 1)} | ${((100 * safety.gflops) / matmul).toFixed(0)}% |`,
        ]
      : []),
    "(CPU share: CPU time over wall time x threads while timing; well under 1 means other processes took cores and the time is too long)",
    "",
  ];
  if (rss) {
    lines.push(
      `SDXL peak memory, every network loaded (fp32 weights), held = peak RSS + the mapped tmpfs weights RSS does not count; PyTorch ${rss.pytorchGb} GB, target < ${rss.limitGb} GB:`,
      `  through the text encoders and UNet steps up to 1024 px: ${s(rss.unet1024Gb)} GB held${rss.textEncodersReleased ? " (text encoders released before the UNet, as a generation at 1024 px does here: stage-memory.ts)" : ""}`,
      `  with the VAE decode at 1024 px too: ${s(rss.vae1024Gb ?? rss.heldGb)} GB held (peak RSS ${rss.rssGb.toFixed(2)} GB): ${rss.met ? "met" : "NOT MET"}`,
      "",
    );
  }
  for (const [family, f] of Object.entries(byFamily) as [FamilyName, FamilyResult][]) {
    const first = f.firstUse;
    const phase = (n: string, p: string) =>
      first.phases[`${n}.${p}`] !== undefined ? first.phases[`${n}.${p}`]!.toFixed(2) : "-";
    lines.push(
      `| ${family} first use (s) / cache | key | build | load | total | cached load (s) | cache on disk |`,
      "| --- | --- | --- | --- | --- | --- | --- |",
      `| hash the checkpoint | | | | ${first.totals.hash!.toFixed(2)} | ${s(f.cachedLoad.hash)} | |`,
      ...FAMILIES[family].networks.map(
        (n) =>
          `| ${n} | ${phase(n, "key")} | ${phase(n, "build")} | ${phase(n, "load")} | ${first.totals[n]!.toFixed(2)} | ${s(f.cachedLoad[n])} | ${gb(f.cacheBytes[n] ?? 0)} |`,
      ),
      `| all | | | | ${first.totals.total!.toFixed(2)} | ${s(f.cachedLoad.total)} | ${gb(f.cacheBytes.total!)} (${f.cacheToCheckpoint}x the ${gb(f.checkpoint.bytes)} ${f.checkpoint.layout} checkpoint) |`,
      "",
      `${family} peak RSS: first use ${first.peakRssMb} MB, cached load and rows ${f.runPeakRssMb} MB` +
        (f.tmpfs
          ? ` (+ ${f.tmpfs.mappedMb - f.tmpfs.residentMb} MB of mapped tmpfs weights RSS does not count: ${f.runPeakHeldMb} MB held)`
          : ""),
      "",
    );
    if (f.int8) {
      const t = f.int8.firstUse.phases;
      const calibration = Object.entries(t)
        .filter(([k]) => k.endsWith(".calibrate"))
        .map(([k, v]) => `${k.split(".")[0]} ${v.toFixed(1)} s`);
      lines.push(
        `${family} int8: first use ${f.int8.firstUse.totals.total!.toFixed(1)} s (calibration: ${calibration.join(", ") || "kept from before"}), int8 entries on disk ${gb(f.int8.cacheBytes)}, peak RSS of the rows ${f.int8.runPeakRssMb} MB`,
        "",
      );
    }
    if (f.singleFile) {
      const c = f.singleFile;
      lines.push(
        `SDXL single file (published layout, fp16): ${c.ok ? "OK" : `FAILED: ${c.problems.join("; ")}`}`,
        `  diffuse generate 512x512, 1 step: ${c.image ? `${c.image.width}x${c.image.height} image` : "no image"} in ${s(c.generateSeconds, 1)} s (cached graphs)`,
        ...(c.inspect
          ? [
              `  diffuse inspect: family ${c.inspect.family}, ${Object.entries(c.inspect.components)
                .map(([k, v]) => `${k} ${v.params.toLocaleString("en-US")} (${v.dtype})`)
                .join(", ")}, hash ${c.inspect.hash}`,
            ]
          : []),
        "",
      );
    }
  }
  lines.push(
    scale !== undefined
      ? `PyTorch figures scaled by ${round(scale)} = our SD1.5 guided 512 px step ${s(sd15Step)} s / ${REFERENCE_SD15_STEP} s`
      : "PyTorch figures not scaled: run with sd15 in --family or pass --sd15-step",
    `threads ${threads}, attention ${attention}, graph optimization ${args.opt}, prepacking ${args.prepack ? "on" : "off"}, load average at start ${(result.loadAverage as number[]).join(" ")}, memory ${JSON.stringify(result.memoryGb)} GiB`,
  );
  process.stdout.write(lines.join("\n") + "\n");
}

/**
 * The deleted tmpfs files this process maps: the fp32 weights of compact cache entries, rebuilt in /dev/shm and
 * deleted once mapped. Their pages stay in memory as long as the sessions map them, all of them, but RSS counts
 * only the pages touched (onnxruntime never touches the originals of the MatMul weights it prepacked).
 */
function tmpfsWeights(): { mappedMb: number; residentMb: number } | undefined {
  let smaps: string;
  try {
    smaps = readFileSync("/proc/self/smaps", "utf8");
  } catch {
    return undefined;
  }
  let mapped = 0,
    resident = 0,
    inShm = false;
  for (const line of smaps.split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      inShm = header[1]!.startsWith("/dev/shm/") && header[1]!.endsWith("(deleted)");
      continue;
    }
    if (!inShm) continue;
    const m = /^(Size|Rss):\s+(\d+) kB/.exec(line);
    if (m?.[1] === "Size") mapped += Number(m[2]);
    else if (m?.[1] === "Rss") resident += Number(m[2]);
  }
  return { mappedMb: Math.round(mapped / 1024), residentMb: Math.round(resident / 1024) };
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

if (args.child) await phaseChild();
else await main();
