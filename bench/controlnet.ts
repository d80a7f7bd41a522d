/**
 * What a ControlNet costs per step on full-size SD1.5 (random weights: speed does not depend on values), next to the
 * plain UNet step, at 512 px with classifier-free guidance (batch 2), the way the pipeline runs them: graphs through
 * the compile cache with the runtime's layout, the ControlNet's residuals fed to the UNet variant that takes them.
 *
 *   npm run bench:control                 table on stdout
 *   npm run bench:control -- --json       one JSON object
 *   npm run bench:control -- --runs 5 --size 64 --threads 2
 *
 * Rows: the plain UNet step; the residual UNet with zero residuals (a step outside the guidance window: what the
 * residual inputs cost); the ControlNet's step part alone; a whole controlled step (ControlNet, then the residual
 * UNet); the plain UNet step again (the machine is shared: the two plain rows bracket the others); and, apart, the
 * conditioning embedding of the control image, which runs once per generation. Each: one warm-up run, then the median
 * (and the fastest) of --runs. The ratio is the controlled step over the plain one (target: at most 1.45), both with
 * the medians and with the fastest runs, the latter being the less disturbed by other work on the machine.
 * The plain UNet's graph is the one the pipeline has always built (the residual inputs are a separate graph).
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { controlNetConfigFromDiffusers } from "../src/configs/controlnet.js";
import { SD15 } from "../src/configs/pipeline.js";
import { buildControlNet, buildControlNetHint, CONTROLNET_IO } from "../src/models/controlnet.js";
import { controlNetParamShapes } from "../src/models/param-shapes.js";
import { residualShapes } from "../src/models/unet-blocks.js";
import { buildUNet, UNET_IO } from "../src/models/unet.js";
import { openCheckpoint } from "../src/models/open-checkpoint.js";
import { graphFlops } from "../src/onnx/flops.js";
import { ControlGuidance } from "../src/pipeline/control-guidance.js";
import { CachedSessions, DEFAULT_ATTENTION, Networks } from "../src/pipeline/networks.js";
import { CompileCache } from "../src/runtime/compile-cache.js";
import type { FeedValue, Session } from "../src/runtime/session.js";
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
  },
});
const runs = Number(args.runs);
const size = Number(args.size);
const threads = Number(args.threads ?? availableParallelism());
const log = (m: string) => process.stderr.write(`${m}\n`);

/** The published SD1.5 ControlNets' config (lllyasviel/control_v11p_sd15_*): the UNet's encoder, 8 heads. */
const CONTROLNET = controlNetConfigFromDiffusers({
  block_out_channels: SD15.unet.blockOutChannels,
  attention_head_dim: 8,
  cross_attention_dim: 768,
  layers_per_block: 2,
  down_block_types: SD15.unet.downBlockTypes,
  norm_num_groups: 32,
  conditioning_embedding_out_channels: [16, 32, 96, 256],
});

const time = (run: () => Promise<unknown>) => medianTiming(runs, run);

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), "diffuse-bench-control-"));
  const opts = { cacheDir: join(scratch, "cache"), threads, attention: DEFAULT_ATTENTION };
  const rows: { name: string; what: string; seconds: number; fastest: number; gflops: number }[] = [];
  try {
    log(
      `threads ${threads}, ${size * 8} px, batch 2, load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(" ")}`,
    );
    const ckptDir = join(scratch, "checkpoint");
    mkdirSync(ckptDir);
    const written = randomCheckpoint(ckptDir, SD15, { layout: "diffusers", dtype: "F16" });
    const nets = await Networks.open(openCheckpoint(written.path), opts);
    const feeds: Record<string, FeedValue> = {
      [UNET_IO.sample]: { data: randn(2 * 4 * size * size, 1), dims: [2, 4, size, size] },
      [UNET_IO.timestep]: { data: Float32Array.of(500), dims: [1] },
      [UNET_IO.encoderHiddenStates]: { data: randn(2 * 77 * 768, 2), dims: [2, 77, 768] },
    };
    const w = new ScopedWeights(nets.checkpoint.unet);
    const flops = (g: Parameters<typeof graphFlops>[0]) => graphFlops(g);
    const unetFlops = flops(
      buildUNet(SD15.unet, w, { attention: DEFAULT_ATTENTION, batch: 2, height: size, width: size }),
    );

    // One UNet in memory at a time: the plain one, then the residual variant.
    let plain = await nets.get("unet");
    rows.push({
      name: "unet",
      what: "UNet step (plain graph)",
      ...(await time(() => plain.run(feeds))),
      gflops: unetFlops,
    });
    log(`plain UNet: ${rows.at(-1)!.seconds.toFixed(2)} s`);
    await nets.release("unet");

    const controlUnet = await nets.get("unet_control");
    const shapes = residualShapes(SD15.unet, size, size);
    const cnWeights = randomWeights(controlNetParamShapes(CONTROLNET), 7);
    const cn = new CachedSessions<"controlnet" | "controlnet_hint">(
      "0".repeat(64),
      new CompileCache(opts.cacheDir),
      opts,
      (name, attention) =>
        name === "controlnet"
          ? buildControlNet(CONTROLNET, new ScopedWeights(cnWeights), { attention })
          : buildControlNetHint(CONTROLNET, new ScopedWeights(cnWeights)),
    );
    const controlnet: Session = await cn.get("controlnet");
    const cnFlops = flops(
      buildControlNet(CONTROLNET, new ScopedWeights(cnWeights), {
        attention: DEFAULT_ATTENTION,
        batch: 2,
        height: size,
        width: size,
      }),
    );
    const hint = (
      await (
        await cn.get("controlnet_hint")
      ).run({
        [CONTROLNET_IO.cond]: {
          data: randn(3 * 8 * size * 8 * size, 3).map((v) => (v > 0.8 ? 1 : 0)),
          dims: [1, 3, 8 * size, 8 * size],
        },
      })
    )[CONTROLNET_IO.hint]!;
    const unit = { session: controlnet, hint: hint.data, hintDims: hint.dims, scale: 1, start: 0, end: 1 };
    const idle = new ControlGuidance(controlUnet, [{ ...unit, start: 1, end: 1 }], shapes);
    const active = new ControlGuidance(controlUnet, [unit], shapes);
    const zeros = await idle.residuals(0, 2, feeds, 2);
    rows.push({
      name: "unet_control_idle",
      what: "residual UNet, zero residuals (outside the guidance window)",
      ...(await time(() => controlUnet.run({ ...feeds, ...zeros }))),
      gflops: unetFlops,
    });
    log(`residual UNet, zeros: ${rows.at(-1)!.seconds.toFixed(2)} s`);
    rows.push({
      name: "controlnet",
      what: "ControlNet alone (its part of every step)",
      ...(await time(() => active.residuals(0, 1, feeds, 2))),
      gflops: cnFlops,
    });
    log(`ControlNet: ${rows.at(-1)!.seconds.toFixed(2)} s`);
    rows.push({
      name: "controlled_step",
      what: "controlled step (ControlNet + residual UNet)",
      ...(await time(async () => controlUnet.run({ ...feeds, ...(await active.residuals(0, 1, feeds, 2)) }))),
      gflops: unetFlops + cnFlops,
    });
    log(`controlled step: ${rows.at(-1)!.seconds.toFixed(2)} s`);
    const hintSession = await cn.get("controlnet_hint");
    const image = { [CONTROLNET_IO.cond]: { data: randn(3 * 64 * size * size, 4), dims: [1, 3, 8 * size, 8 * size] } };
    const hintFlops = flops(
      buildControlNetHint(CONTROLNET, new ScopedWeights(cnWeights), { height: size, width: size }),
    );
    rows.push({
      name: "hint",
      what: "conditioning embedding of the control image (once per generation)",
      ...(await time(() => hintSession.run(image))),
      gflops: hintFlops,
    });
    await cn.release();
    await nets.release("unet_control");
    plain = await nets.get("unet");
    rows.push({
      name: "unet_again",
      what: "UNet step (plain graph), again",
      ...(await time(() => plain.run(feeds))),
      gflops: unetFlops,
    });
    log(`plain UNet again: ${rows.at(-1)!.seconds.toFixed(2)} s`);
    await nets.release();
    nets.checkpoint.close();
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const plainRows = rows.filter((r) => r.name === "unet" || r.name === "unet_again");
  const step = Math.min(...plainRows.map((r) => r.seconds));
  const fastestStep = Math.min(...plainRows.map((r) => r.fastest));
  const controlledRow = rows.find((r) => r.name === "controlled_step")!;
  const result = {
    threads,
    size: size * 8,
    loadAverage: loadavg(),
    rows: rows.map((r) => ({ ...r, gflopsPerSecond: r.gflops / r.seconds / 1e9 })),
    controlledOverPlain: controlledRow.seconds / step,
    controlledOverPlainFastest: controlledRow.fastest / fastestStep,
    target: 1.45,
  };
  if (args.json) {
    process.stdout.write(JSON.stringify(result) + "\n");
    return;
  }
  const lines = [
    `| ${size * 8} px, batch 2 (one guided step), ${threads} threads | median s | fastest s | GFLOP | GFLOP/s (median) | vs plain step (median) |`,
    "| --- | --- | --- | --- | --- | --- |",
    ...rows.map(
      (r) =>
        `| ${r.what} | ${r.seconds.toFixed(2)} | ${r.fastest.toFixed(2)} | ${(r.gflops / 1e9).toFixed(0)} | ${(r.gflops / r.seconds / 1e9).toFixed(1)} | ${((100 * r.seconds) / step).toFixed(0)}% |`,
    ),
    "",
    `A ControlNet adds ${(100 * (result.controlledOverPlain - 1)).toFixed(0)}% to a step by the medians, ${(100 * (result.controlledOverPlainFastest - 1)).toFixed(0)}% by the fastest runs (target: at most 45%).`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

await main();
