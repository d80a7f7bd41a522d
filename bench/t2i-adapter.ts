/**
 * What a T2I-Adapter costs on full-size SD1.5 (random weights: speed does not depend on values) at 512 px, next to
 * the plain guided UNet step (batch 2), the way the pipeline runs them: graphs through the compile cache with the
 * runtime's layout. The adapter (a published SD1.5 sketch adapter's shape: a 1-channel map, channels 320/640/1280/1280,
 * 2 ResNets per block) runs once per generation; its features go to the UNet variant that takes them at every step.
 *
 *   npx tsx bench/t2i-adapter.ts               table on stdout
 *   npx tsx bench/t2i-adapter.ts --json       one JSON object
 *   npx tsx bench/t2i-adapter.ts --runs 5 --size 64 --threads 2 --checkpoint DIR
 *
 * Rows, interleaved because the machine is shared: the plain UNet step; the adapter UNet step (features added inside
 * its down blocks); the adapter itself (once per generation); the plain step again and the adapter step again. Each:
 * one warm-up run, then the median (and the fastest) of --runs. `--checkpoint`: a full-size SD1.5 diffusers folder
 * to reuse (default: the one the benches keep under /tmp/bench-ckpt, else a random one written to a scratch folder).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SD15 } from "../src/configs/pipeline.js";
import { t2iAdapterConfigFromDiffusers } from "../src/configs/t2i-adapter.js";
import { openCheckpoint } from "../src/models/open-checkpoint.js";
import { t2iAdapterParamShapes } from "../src/models/param-shapes.js";
import { adapterFeatureName, buildT2IAdapter, T2I_ADAPTER_IO } from "../src/models/t2i-adapter.js";
import { intrablockResidualName, intrablockShapes } from "../src/models/unet-blocks.js";
import { buildUNet, UNET_IO } from "../src/models/unet.js";
import { graphFlops } from "../src/onnx/flops.js";
import { CachedSessions, DEFAULT_ATTENTION, Networks, type UNetVariant } from "../src/pipeline/networks.js";
import { CompileCache } from "../src/runtime/compile-cache.js";
import type { FeedValue } from "../src/runtime/session.js";
import { ScopedWeights } from "../src/weights/weight-source.js";
import { randomCheckpoint } from "./random-checkpoint.js";
import { medianTiming } from "./median-timing.js";
import { randn } from "./network-rows.js";
import { randomWeights } from "./random-weights.js";

const { values: args } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    runs: { type: "string", default: "3" },
    size: { type: "string", default: "64" },
    threads: { type: "string" },
    checkpoint: { type: "string", default: "/tmp/bench-ckpt/sd1-19c245a19a-f16" },
  },
});
const runs = Number(args.runs);
const size = Number(args.size);
const threads = Number(args.threads ?? availableParallelism());
const log = (m: string) => process.stderr.write(`${m}\n`);

/** TencentARC's SD1.5 sketch adapter in diffusers' config (t2i-adapter_diffusers sketch: a grey edge map). */
const ADAPTER = t2iAdapterConfigFromDiffusers({
  in_channels: 1,
  channels: [320, 640, 1280, 1280],
  num_res_blocks: 2,
  downscale_factor: 8,
  adapter_type: "full_adapter",
});

const time = (run: () => Promise<unknown>) => medianTiming(runs, run);

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), "diffuse-bench-t2i-"));
  const opts = { cacheDir: join(scratch, "cache"), threads, attention: DEFAULT_ATTENTION };
  const rows: { name: string; what: string; seconds: number; fastest: number; gflops: number }[] = [];
  try {
    log(
      `threads ${threads}, ${size * 8} px, batch 2, load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(" ")}`,
    );
    let ckpt = args.checkpoint;
    if (!existsSync(join(ckpt, "model_index.json"))) {
      mkdirSync(join(scratch, "checkpoint"));
      ckpt = randomCheckpoint(join(scratch, "checkpoint"), SD15, { layout: "diffusers", dtype: "F16" }).path;
    }
    log(`checkpoint ${ckpt}`);
    const nets = await Networks.open(openCheckpoint(ckpt), opts);
    const feeds: Record<string, FeedValue> = {
      [UNET_IO.sample]: { data: randn(2 * 4 * size * size, 1), dims: [2, 4, size, size] },
      [UNET_IO.timestep]: { data: Float32Array.of(500), dims: [1] },
      [UNET_IO.encoderHiddenStates]: { data: randn(2 * 77 * 768, 2), dims: [2, 77, 768] },
    };
    const w = new ScopedWeights(nets.checkpoint.unet);
    const at = { attention: DEFAULT_ATTENTION, batch: 2, height: size, width: size };
    const unetFlops = graphFlops(buildUNet(SD15.unet, w, at));
    const adapterUnetFlops = graphFlops(buildUNet(SD15.unet, w, { ...at, adapterResiduals: true }));

    const adapterWeights = new ScopedWeights(randomWeights(t2iAdapterParamShapes(ADAPTER), 7));
    const adapterSessions = new CachedSessions<"t2i_adapter">(
      "0".repeat(64),
      new CompileCache(opts.cacheDir),
      opts,
      () => buildT2IAdapter(ADAPTER, adapterWeights),
    );
    const adapter = await adapterSessions.get("t2i_adapter");
    const map = {
      [T2I_ADAPTER_IO.cond]: {
        data: randn(64 * size * size, 3).map((v) => (v > 0.8 ? 1 : 0)),
        dims: [1, 1, 8 * size, 8 * size],
      },
    };
    const features = await adapter.run(map);
    const residuals: Record<string, FeedValue> = {};
    intrablockShapes(SD15.unet, size, size).forEach(([c, h, wd], i) => {
      const f = features[adapterFeatureName(i)];
      residuals[intrablockResidualName(i)] = f
        ? { data: f.data, dims: f.dims }
        : { data: new Float32Array(c * h * wd), dims: [1, c, h, wd] };
    });

    // One UNet in memory at a time, alternating, so that drifts of the shared machine show in both.
    const step = async (variant: UNetVariant, name: string, what: string, extra: Record<string, FeedValue>) => {
      const session = await nets.get(variant);
      rows.push({
        name,
        what,
        ...(await time(() => session.run({ ...feeds, ...extra }))),
        gflops: variant === "unet" ? unetFlops : adapterUnetFlops,
      });
      log(`${what}: ${rows.at(-1)!.seconds.toFixed(2)} s`);
      await nets.release(variant);
    };
    await step("unet", "unet", "UNet step (plain graph)", {});
    await step("unet_adapter", "unet_adapter", "UNet step with the adapter's residuals", residuals);
    rows.push({
      name: "adapter",
      what: "T2I-Adapter on the 512 px map (once per generation)",
      ...(await time(() => adapter.run(map))),
      gflops: graphFlops(buildT2IAdapter(ADAPTER, adapterWeights, { height: 8 * size, width: 8 * size })),
    });
    log(`adapter: ${rows.at(-1)!.seconds.toFixed(2)} s`);
    await adapterSessions.release();
    await step("unet", "unet_again", "UNet step (plain graph), again", {});
    await step("unet_adapter", "unet_adapter_again", "UNet step with the adapter's residuals, again", residuals);
    await nets.release();
    nets.checkpoint.close();
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const best = (names: string[], key: "seconds" | "fastest") =>
    Math.min(...rows.filter((r) => names.includes(r.name)).map((r) => r[key]));
  const plain = best(["unet", "unet_again"], "seconds");
  const withAdapter = best(["unet_adapter", "unet_adapter_again"], "seconds");
  const adapterRow = rows.find((r) => r.name === "adapter")!;
  const result = {
    threads,
    size: size * 8,
    loadAverage: loadavg(),
    rows: rows.map((r) => ({ ...r, gflopsPerSecond: r.gflops / r.seconds / 1e9 })),
    adapterOverStep: adapterRow.seconds / plain,
    adapterStepOverPlain: withAdapter / plain,
    adapterStepOverPlainFastest:
      best(["unet_adapter", "unet_adapter_again"], "fastest") / best(["unet", "unet_again"], "fastest"),
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const lines = [
    `| ${size * 8} px, batch 2 (one guided step), ${threads} threads | median s | fastest s | GFLOP | GFLOP/s (median) | vs plain step (median) |`,
    "| --- | --- | --- | --- | --- | --- |",
    ...rows.map(
      (r) =>
        `| ${r.what} | ${r.seconds.toFixed(2)} | ${r.fastest.toFixed(2)} | ${(r.gflops / 1e9).toFixed(0)} | ${(r.gflops / r.seconds / 1e9).toFixed(1)} | ${((100 * r.seconds) / plain).toFixed(0)}% |`,
    ),
    "",
    `The adapter costs ${(100 * result.adapterOverStep).toFixed(0)}% of one plain step, once per generation (${((100 * result.adapterOverStep) / 20).toFixed(1)}% of a 20-step generation); ` +
      `a step with its residuals takes ${(100 * (result.adapterStepOverPlain - 1)).toFixed(1)}% more than a plain one by the medians, ${(100 * (result.adapterStepOverPlainFastest - 1)).toFixed(1)}% by the fastest runs.`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

await main();
