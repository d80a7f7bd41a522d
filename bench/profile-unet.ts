/**
 * Where one guided UNet step's time goes, by onnxruntime's profiler: the pipeline's own UNet session (as loadPipeline
 * opens it, at --precision fp32 or int8, the int8 one calibrated on first use) with profiling on, one warm-up run
 * and one profiled run, kernel times summed by op type and the slowest nodes listed. What issue 20's bound on the
 * int8 speed-up is computed from (attention's share, the products', the rest).
 *
 *   npx tsx bench/profile-unet.ts --checkpoint /tmp/bench-ckpt/<sd1 folder> --precision int8 --cache /tmp/int8-cache
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import ort from "onnxruntime-node";
import { parsePrecision } from "../src/models/precision.js";
import { loadPipeline } from "../src/pipeline/load-pipeline.js";
import { guidedUnetFeeds } from "./network-rows.js";

const { values: args } = parseArgs({
  options: {
    checkpoint: { type: "string", default: "/tmp/bench-ckpt/sd1-66f13bfda1-f16" },
    precision: { type: "string", default: "fp32" },
    px: { type: "string", default: "512" },
    threads: { type: "string" },
    cache: { type: "string" },
    nodes: { type: "string", default: "15" },
  },
});
const precision = parsePrecision(args.precision, "--precision");
const px = Number(args.px);
const profiles = mkdtempSync(join(tmpdir(), "diffuse-profile-"));
const scratch = args.cache ?? mkdtempSync(join(tmpdir(), "diffuse-profile-cache-"));

// onnxruntime's profiler is a session option, which the pipeline does not expose: set on every session created here.
const create = ort.InferenceSession.create.bind(ort.InferenceSession) as (...a: unknown[]) => unknown;
(ort.InferenceSession as unknown as { create: (...a: unknown[]) => unknown }).create = (model: unknown, options = {}) =>
  create(model, { ...(options as object), enableProfiling: true, profileFilePrefix: join(profiles, "unet") });

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

try {
  const pipe = await loadPipeline(args.checkpoint, {
    cacheDir: scratch,
    threads: Number(args.threads ?? availableParallelism()),
    spinning: false,
    precision,
    onStatus: (m) => process.stderr.write(`${m}\n`),
  });
  const unet = await pipe.networks.get("unet");
  const feeds = guidedUnetFeeds(pipe.networks.checkpoint.config, px);
  await unet.run(feeds);
  await unet.run(feeds);
  // The session's profile is written when it ends; every session of the pipeline wrote one: the UNet's has its run.
  await pipe.networks.release();
  const events = readdirSync(profiles)
    .map((f) => JSON.parse(readFileSync(join(profiles, f), "utf8")) as ProfileEvent[])
    .find((e) => e.some((x) => x.args?.op_name === "MultiHeadAttention" || x.args?.op_name === "QLinearConv"));
  if (!events) throw new Error(`no UNet profile among ${readdirSync(profiles).join(", ")}`);
  const runs = events.filter((e) => e.name === "model_run");
  const last = runs[runs.length - 1]!;
  const byOp = new Map<string, number>();
  const nodes: [string, string, number][] = [];
  for (const e of events)
    if (e.cat === "Node" && e.name.endsWith("_kernel_time") && e.ts >= last.ts) {
      const op = e.args?.op_name ?? "?";
      byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
      nodes.push([op, e.name.replace(/_kernel_time$/, ""), e.dur]);
    }
  const total = [...byOp.values()].reduce((a, b) => a + b, 0);
  const s = (us: number) => (us / 1e6).toFixed(3);
  console.log(`${precision} UNet at ${px} px, guided (batch 2): run ${s(last.dur)} s, kernels ${s(total)} s`);
  console.log("| op | seconds | share |\n| --- | --- | --- |");
  for (const [op, d] of [...byOp].sort((a, b) => b[1] - a[1]))
    console.log(`| ${op} | ${s(d)} | ${((100 * d) / total).toFixed(1)}% |`);
  console.log(`\nslowest nodes:`);
  for (const [op, name, d] of nodes.sort((a, b) => b[2] - a[2]).slice(0, Number(args.nodes)))
    console.log(`  ${s(d)} s ${op} ${name}`);
} finally {
  rmSync(profiles, { recursive: true, force: true });
  if (!args.cache) rmSync(scratch, { recursive: true, force: true });
}
