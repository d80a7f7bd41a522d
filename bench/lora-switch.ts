/**
 * What a LoRA costs on full-size SD1.5 (issue 16 item 5): a checkpoint with random fp16 weights and a rank-32 kohya
 * LoRA over every attention projection, feed-forward layer and convolution of the UNet and every projection of the
 * text encoder (random values: speed does not depend on them). Measured in one process, as a server or a library
 * caller switches LoRAs between generations:
 * - switch: from the merged set A to set B, until the text encoder and the UNet are ready again (the file read, its
 *   deltas lowered into the stored layouts, the changed weights rebuilt with them merged in the open sessions,
 *   live-weights.ts); wall time and the CPU time of the process's threads, which on a machine shared with other
 *   work says more than the wall time; against the cached load of the plain networks;
 * - extra RSS after a guided 512 px UNet step with the LoRA merged, against the same step without it, and the peak
 *   during the switch;
 * - extra disk: what the compile cache grew by, and the LoRA file;
 * - step time of one guided 512 px UNet step (batch 2) with and without the LoRA.
 *
 *   npm run bench:lora
 *   npm run bench:lora -- --checkpoint-dir /tmp/sd15-random   keep the 2.1 GB checkpoint (and the LoRA) for the next run
 *   npm run bench:lora -- --threads 2 --json
 *   npm run bench:lora -- --layers attention   kohya's plain LoRA: attention and feed-forward only, no convolutions
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SD15 } from "../src/configs/pipeline.js";
import { UNET_IO } from "../src/models/unet.js";
import { Loras, type WantedLora } from "../src/pipeline/loras.js";
import { openCheckpoint } from "../src/models/open-checkpoint.js";
import { Networks } from "../src/pipeline/networks.js";
import type { Checkpoint } from "../src/weights/checkpoint.js";
import { randomCheckpoint, writeFp16 } from "./random-checkpoint.js";

const { values: args } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    threads: { type: "string" },
    rank: { type: "string", default: "32" },
    // "all" (the case): attention, feed-forward and every convolution; "attention": kohya's plain LoRA (no convs)
    layers: { type: "string", default: "all" },
    "checkpoint-dir": { type: "string" },
  },
});
const threads = Number(args.threads ?? availableParallelism());
const rank = Number(args.rank);
const log = (msg: string) => process.stderr.write(`${msg}\n`);

/** Every layer a LoRA trainer's "all attention and conv layers" adapts: matrices and filters of the UNet's blocks, the text encoder's projections. */
const UNET_LAYERS =
  args.layers === "attention"
    ? /\.(to_[qkv]|to_out\.0|proj_in|proj_out|ff\.net\.0\.proj|ff\.net\.2)$/
    : /\.(to_[qkv]|to_out\.0|proj_in|proj_out|ff\.net\.0\.proj|ff\.net\.2|conv1|conv2|conv_shortcut|conv)$|^conv_(in|out)$/;
const TEXT_LAYERS = /\.(q_proj|k_proj|v_proj|out_proj|fc1|fc2)$/;

/** A kohya LoRA file (random fp16 factors) over the chosen layers of the checkpoint, written once; its size. */
function writeLora(path: string, ckpt: Checkpoint): { bytes: number; modules: number } {
  const modules: { name: string; out: number; rest: number; conv?: readonly number[] }[] = [];
  for (const [prefix, source, pattern] of [
    ["lora_unet_", ckpt.unet, UNET_LAYERS],
    ["lora_te_", ckpt.textEncoder, TEXT_LAYERS],
  ] as const) {
    for (const key of source.keys()) {
      const module = key.replace(/\.weight$/, "");
      const shape = source.shape(key);
      if (!key.endsWith(".weight") || (shape.length !== 2 && shape.length !== 4) || !pattern.test(module)) continue;
      modules.push({
        name: prefix + module.replaceAll(".", "_"),
        out: shape[0]!,
        rest: shape.slice(1).reduce((a, b) => a * b, 1),
        conv: shape.length === 4 ? shape : undefined,
      });
    }
  }
  if (!existsSync(path)) {
    const shapes = new Map<string, readonly number[]>();
    for (const m of modules) {
      shapes.set(`${m.name}.lora_down.weight`, m.conv ? [rank, m.conv[1]!, m.conv[2]!, m.conv[3]!] : [rank, m.rest]);
      shapes.set(`${m.name}.lora_up.weight`, m.conv ? [m.out, rank, 1, 1] : [m.out, rank]);
      // A 0-d alpha of random value: the merge costs the same whatever it is.
      shapes.set(`${m.name}.alpha`, []);
    }
    writeFp16(path, shapes);
  }
  return { bytes: statSync(path).size, modules: modules.length };
}

function du(path: string): number {
  const s = statSync(path);
  if (!s.isDirectory()) return s.size;
  return readdirSync(path).reduce((n, e) => n + du(join(path, e)), 0);
}

/** The cache's entries, without its private scratch folder. */
function cacheBytes(dir: string): number {
  return readdirSync(dir)
    .filter((n) => !n.startsWith("."))
    .reduce((n, e) => n + du(join(dir, e)), 0);
}

/** Peak RSS since the last reset (Linux: /proc/self/status VmHWM, reset through clear_refs). */
function resetPeak(): void {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
  } catch {
    // not Linux: the peak is then the process's
  }
}
/** RSS after a garbage collection where one can be asked for (`--expose-gc`, as bench:lora runs it). */
function settledRss(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss;
}

function peakRss(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), "diffuse-bench-lora-"));
  const ckptDir = args["checkpoint-dir"] ?? join(scratch, "checkpoint");
  mkdirSync(ckptDir, { recursive: true });
  const cacheDir = join(scratch, "cache");
  try {
    log(`writing or opening the random SD1.5 checkpoint in ${ckptDir}`);
    const ckpt = openCheckpoint(randomCheckpoint(ckptDir, SD15, { layout: "diffusers", dtype: "F16" }).path);
    const loraPath = join(ckptDir, `lora-${args.layers}-rank${rank}.safetensors`);
    const lora = writeLora(loraPath, ckpt);
    log(`LoRA: ${lora.modules} modules, rank ${rank}, ${(lora.bytes / 2 ** 20).toFixed(0)} MiB`);
    const nets = await Networks.open(ckpt, { cacheDir, threads });
    const loras = new Loras(ckpt, nets);
    const open = async () => {
      await nets.get("text_encoder");
      await nets.get("unet");
    };
    const time = async (fn: () => Promise<unknown>) => {
      const t = performance.now();
      await fn();
      return (performance.now() - t) / 1000;
    };
    log("building the cache entries (first use of the checkpoint)");
    const build = await time(open);
    await nets.release();
    const plainLoad = await time(open);
    log(`plain cached load ${plainLoad.toFixed(1)} s`);

    // One guided 512 px step: batch 2 of 64x64 latents.
    const feeds = {
      [UNET_IO.sample]: { data: new Float32Array(2 * 4 * 64 * 64).fill(0.1), dims: [2, 4, 64, 64] },
      [UNET_IO.timestep]: { data: Float32Array.of(500), dims: [1] },
      [UNET_IO.encoderHiddenStates]: { data: new Float32Array(2 * 77 * 768).fill(0.01), dims: [2, 77, 768] },
    };
    const step = async (runs: number) => {
      const times: number[] = [];
      for (let i = 0; i < runs; i++) times.push(await time(async () => (await nets.get("unet")).run(feeds)));
      return Math.min(...times);
    };
    await step(1); // warm-up
    const stepPlain = await step(2);
    const rssPlain = settledRss();
    const diskBefore = cacheBytes(cacheDir);
    log(`plain step ${stepPlain.toFixed(2)} s, RSS ${(rssPlain / 2 ** 30).toFixed(2)} GiB`);

    const set = (weight: number): WantedLora[] => [
      { name: "bench", source: loraPath, textEncoder: weight, unet: weight },
    ];
    const switchTo = async (wanted: WantedLora[]) => {
      resetPeak();
      const cpu = process.cpuUsage();
      const seconds = await time(async () => {
        (await loras.apply(wanted)).release();
        await open();
      });
      const used = process.cpuUsage(cpu);
      // CPU time of every thread of the process (onnxruntime's included): what the switch costs whatever else runs.
      return { seconds, cpu: (used.user + used.system) / 1e6, peak: peakRss() };
    };
    const first = await switchTo(set(0.8));
    log(`switch none -> LoRA x0.8 ${first.seconds.toFixed(1)} s`);
    await step(1);
    const stepLora = await step(2);
    const rssLora = settledRss();
    const reweight = await switchTo(set(0.5));
    log(`switch x0.8 -> x0.5 ${reweight.seconds.toFixed(1)} s`);
    const off = await switchTo([]);
    log(`switch LoRA -> none ${off.seconds.toFixed(1)} s`);
    const diskAfter = cacheBytes(cacheDir);
    await nets.release();
    ckpt.close();

    const result = {
      machine: {
        cores: availableParallelism(),
        threads,
        load: loadavg()
          .map((l) => l.toFixed(2))
          .join(" "),
      },
      lora: { modules: lora.modules, rank, bytes: lora.bytes },
      seconds: {
        build,
        plainLoad,
        switchFirst: first.seconds,
        switchWeight: reweight.seconds,
        switchOff: off.seconds,
        stepPlain,
        stepLora,
      },
      cpuSeconds: { switchFirst: first.cpu, switchWeight: reweight.cpu, switchOff: off.cpu },
      rss: { plain: rssPlain, lora: rssLora, peakSwitch: first.peak },
      disk: { cacheBefore: diskBefore, cacheGrowth: diskAfter - diskBefore },
    };
    if (args.json) {
      process.stdout.write(JSON.stringify(result) + "\n");
      return;
    }
    const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
    const rows: [string, string][] = [
      [
        "LoRA",
        `${lora.modules} modules (UNet attention, feed-forward${args.layers === "attention" ? "" : ", convs"}; text encoder projections), rank ${rank}, ${(lora.bytes / 2 ** 20).toFixed(0)} MiB fp16`,
      ],
      ["cache entries built (first use, once)", `${build.toFixed(1)} s`],
      ["cached load, text encoder + UNet, no LoRA", `${plainLoad.toFixed(1)} s`],
      ["switch: none -> LoRA x0.8 (file read, merge)", `${first.seconds.toFixed(1)} s (CPU ${first.cpu.toFixed(1)} s)`],
      ["switch: LoRA x0.8 -> x0.5", `${reweight.seconds.toFixed(1)} s (CPU ${reweight.cpu.toFixed(1)} s)`],
      ["switch: LoRA -> none", `${off.seconds.toFixed(1)} s (CPU ${off.cpu.toFixed(1)} s)`],
      ["guided 512 px UNet step, no LoRA", `${stepPlain.toFixed(2)} s`],
      ["guided 512 px UNet step, LoRA merged", `${stepLora.toFixed(2)} s`],
      ["RSS after a step, no LoRA", gib(rssPlain)],
      [
        "RSS after a step, LoRA merged (extra)",
        `${gib(rssLora)} (${rssLora >= rssPlain ? "+" : ""}${((rssLora - rssPlain) / 2 ** 20).toFixed(0)} MiB)`,
      ],
      ["peak RSS during the first switch", gib(first.peak)],
      ["compile cache", `${gib(diskBefore)}; grew by ${diskAfter - diskBefore} bytes over 3 switches`],
      ["extra disk for the LoRA", `its file, ${(lora.bytes / 2 ** 20).toFixed(0)} MiB`],
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    process.stdout.write(
      `LoRA switch on full-size SD1.5 (random weights), ${threads} threads, load average ${result.machine.load}\n`,
    );
    for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
