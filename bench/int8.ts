/**
 * int8 against fp32 on a model (a full-size random-weight checkpoint, say), both loaded in this one process as
 * loadPipeline loads them (the int8 one calibrated on first use) and timed alternately (run i of fp32, run i of
 * int8, ...), so that the load other processes put on the machine hits both alike: the UNet's guided step and the
 * VAE decode, wall time and this process's CPU time (onnxruntime's threads do not spin here, so CPU time is the work
 * done, which other processes on the cores do not stretch), with the output's relative error int8 vs fp32 on the
 * same inputs. With --trajectory N: a generation of N Euler a steps at both precisions, same seed: the relative
 * error of the UNet's output at each step (each along its own trajectory) and of the final latents.
 * Text encoders (`--only text_encoder,text_encoder_2`; their int8 form is weight-only): a few prompts' conditioning,
 * the last and penultimate hidden states and the pooled output, int8 vs fp32 (the worst prompt's error).
 *
 *   npx tsx bench/int8.ts --checkpoint /tmp/bench-ckpt/sd1-19c245a19a-f16 --px 512 --runs 3 --trajectory 20
 *   npx tsx bench/int8.ts --checkpoint ... --only unet --cache /tmp/int8-cache   (keeps the built entries)
 *   npx tsx bench/int8.ts --checkpoint ... --only text_encoder,text_encoder_2 --runs 3
 */
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CLIP_TEXT_IO } from "../src/models/clip-text.js";
import { UNET_IO } from "../src/models/unet.js";
import { VAE_IO } from "../src/models/vae.js";
import { loadPipeline } from "../src/pipeline/load-pipeline.js";
import type { NetworkName } from "../src/pipeline/networks.js";
import type { StableDiffusionPipeline } from "../src/pipeline/stable-diffusion.js";
import type { FeedValue, RunResult, Session } from "../src/runtime/session.js";
import { ClipTokenizer } from "../src/tokenizer/clip-tokenizer.js";
import { guidedUnetFeeds, randn } from "./network-rows.js";

const { values: args } = parseArgs({
  options: {
    checkpoint: { type: "string", default: "/tmp/bench-ckpt/sd1-19c245a19a-f16" },
    px: { type: "string", default: "512" },
    runs: { type: "string", default: "3" },
    threads: { type: "string" },
    only: { type: "string", default: "unet,vae_decoder" },
    cache: { type: "string" },
    // A single file carries no tokenizer: folders with vocab.json and merges.txt (the families bench uses the tiny
    // reference models' own, tokenizerTemplate in random-checkpoint.ts).
    tokenizer: { type: "string" },
    "tokenizer-2": { type: "string" },
    trajectory: { type: "string", default: "0" },
  },
});
const threads = Number(args.threads ?? availableParallelism());
const px = Number(args.px);
const log = (m: string) => process.stderr.write(`${m}\n`);

function relError(a: Float32Array, ref: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (a[i]! - ref[i]!) ** 2;
    den += ref[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

/** The prompts a text encoder's conditioning is compared on. */
const PROMPTS = [
  "",
  "a photograph of an astronaut riding a horse on mars",
  "an oil painting of a harbour with sailing boats, warm evening light, by a famous impressionist",
  "portrait of an old fisherman, dramatic lighting, 85mm, highly detailed, (smile:1.2)",
];

/** What a network's output is compared on: for a text encoder, its parts the pipeline conditions on, per prompt. */
type Compared = (r: Record<string, RunResult>) => Record<string, Float32Array[]>;

async function feedsFor(
  pipe: StableDiffusionPipeline,
  name: NetworkName,
): Promise<{ feeds: Record<string, FeedValue>; outs: string[]; compared: Compared }> {
  const { config } = pipe.networks.checkpoint;
  const size = px / 8;
  if (name === "text_encoder" || name === "text_encoder_2") {
    const te = name === "text_encoder" ? config.textEncoder : config.textEncoder2!;
    const tokenizer =
      name === "text_encoder_2" && args["tokenizer-2"]
        ? await ClipTokenizer.load(args["tokenizer-2"], { defaultPadToken: "!" })
        : pipe.tokenizer;
    const ids = BigInt64Array.from(
      PROMPTS.flatMap((p) => tokenizer.encode(p)),
      (v) => BigInt(v),
    );
    const n = PROMPTS.length;
    const h = te.hiddenSize;
    const perPrompt = (data: Float32Array) =>
      PROMPTS.map((_, i) => data.subarray((i * data.length) / n, ((i + 1) * data.length) / n));
    const pooled = te.projectionDim !== null ? CLIP_TEXT_IO.textEmbeds : CLIP_TEXT_IO.pooled;
    return {
      feeds: {
        [CLIP_TEXT_IO.inputIds]: { data: ids, dims: [n, 77] },
        [CLIP_TEXT_IO.extraTokens]: { data: new Float32Array(h), dims: [1, h] },
      },
      outs: [CLIP_TEXT_IO.lastHidden, CLIP_TEXT_IO.hiddenStates, pooled],
      compared: (r) => {
        const states = r[CLIP_TEXT_IO.hiddenStates]!.data;
        const layer = states.length / (te.numHiddenLayers + 1);
        return {
          last: perPrompt(r[CLIP_TEXT_IO.lastHidden]!.data),
          penultimate: perPrompt(states.subarray((te.numHiddenLayers - 1) * layer, te.numHiddenLayers * layer)),
          pooled: perPrompt(r[pooled]!.data),
        };
      },
    };
  }
  const single = (feeds: Record<string, FeedValue>, out: string) => ({
    feeds,
    outs: [out],
    compared: ((r) => ({ output: [r[out]!.data] })) as Compared,
  });
  if (name === "vae_decoder") {
    const c = config.vae.latentChannels;
    return single({ [VAE_IO.latent]: { data: randn(c * size * size, 2), dims: [1, c, size, size] } }, VAE_IO.decoded);
  }
  return single(guidedUnetFeeds(config, px), UNET_IO.out);
}

async function timed(session: Session, feeds: Record<string, FeedValue>, outs: string[]) {
  const t = performance.now();
  const cpu = process.cpuUsage();
  const r = await session.run(feeds, outs);
  const used = process.cpuUsage(cpu);
  return { seconds: (performance.now() - t) / 1000, cpu: (used.user + used.system) / 1e6, outputs: r };
}

/** Each compared part's relative error int8 vs fp32: of its worst prompt, where it has several. */
function errors(compared: Compared, q: Record<string, RunResult>, ref: Record<string, RunResult>): string {
  const a = compared(q);
  const b = compared(ref);
  const parts = Object.entries(b).map(([part, refs]) => {
    const worst = Math.max(...refs.map((r, i) => relError(a[part]![i]!, r)));
    return `${part} ${(100 * worst).toFixed(2)}%`;
  });
  return parts.length === 1 ? parts[0]!.replace(/^\S+ /, "") : parts.join(", ");
}

/** A generation's UNet outputs (one per model call) and its final latents. */
async function trajectory(pipe: StableDiffusionPipeline, steps: number) {
  const outputs: Float32Array[] = [];
  (await pipe.networks.get("unet")).observe((o) => outputs.push(o[UNET_IO.out]!.data.slice()));
  let latents = new Float32Array(0);
  await pipe.generate({
    prompt: "a lighthouse on a cliff at dusk",
    seed: 7,
    steps,
    width: px,
    height: px,
    sampler: "Euler a",
    onStep: (e) => {
      if (e.latents) latents = e.latents.slice();
    },
  });
  return { outputs, latents };
}

const scratch = args.cache ?? mkdtempSync(join(tmpdir(), "diffuse-int8-"));
try {
  const open = async (precision: "fp32" | "int8") => {
    const t = performance.now();
    const cpu = process.cpuUsage();
    const pipe = await loadPipeline(args.checkpoint, {
      cacheDir: scratch,
      threads,
      spinning: false,
      precision,
      tokenizer: args.tokenizer,
      tokenizer2: args["tokenizer-2"],
      onStatus: (m) => log(`${precision}: ${m}`),
      onTiming: (t) => t.network && log(`${precision} ${t.network} ${t.phase}: ${t.seconds.toFixed(1)} s`),
    });
    for (const name of args.only.split(",") as NetworkName[]) await pipe.networks.get(name);
    const used = process.cpuUsage(cpu);
    const cpuSeconds = (used.user + used.system) / 1e6;
    log(`${precision}: loaded in ${((performance.now() - t) / 1000).toFixed(1)} s (CPU ${cpuSeconds.toFixed(1)} s)`);
    return pipe;
  };
  // int8 first: its calibration holds an observed fp32 network, which must not sit beside a loaded fp32 model
  // (SDXL's UNet is 10 GB in fp32).
  const int8 = await open("int8");
  const fp32 = await open("fp32");
  const rows: string[] = [];
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const name of args.only.split(",") as NetworkName[]) {
    const { feeds, outs, compared } = await feedsFor(fp32, name);
    const s = { fp32: await fp32.networks.get(name), int8: await int8.networks.get(name) };
    const ref = await timed(s.fp32, feeds, outs); // warm-ups
    const q = await timed(s.int8, feeds, outs);
    const err = errors(compared, q.outputs, ref.outputs);
    const t = { fp32: [] as number[], int8: [] as number[], fp32cpu: [] as number[], int8cpu: [] as number[] };
    for (let i = 0; i < Number(args.runs); i++) {
      for (const p of ["fp32", "int8"] as const) {
        const r = await timed(s[p], feeds, outs);
        t[p].push(r.seconds);
        t[`${p}cpu`].push(r.cpu);
      }
      log(
        `${name} run ${i + 1}: fp32 ${t.fp32.at(-1)!.toFixed(2)} s (CPU ${t.fp32cpu.at(-1)!.toFixed(2)} s), int8 ${t.int8.at(-1)!.toFixed(2)} s (CPU ${t.int8cpu.at(-1)!.toFixed(2)} s), load ${loadavg()[0]!.toFixed(2)}`,
      );
    }
    // --runs 0: the warm-ups alone (their error, their times).
    if (t.fp32.length === 0)
      Object.assign(t, { fp32: [ref.seconds], int8: [q.seconds], fp32cpu: [ref.cpu], int8cpu: [q.cpu] });
    const [f, i8, fc, ic] = [med(t.fp32), med(t.int8), med(t.fp32cpu), med(t.int8cpu)];
    rows.push(
      `| ${name} ${px}px | ${f.toFixed(2)} | ${i8.toFixed(2)} | ${(f / i8).toFixed(2)}x | ${fc.toFixed(2)} | ${ic.toFixed(2)} | ${(fc / ic).toFixed(2)}x | ${err} |`,
    );
  }
  const lines = [
    "| network | fp32 wall (s) | int8 wall (s) | ratio | fp32 CPU (s) | int8 CPU (s) | CPU ratio | rel. error int8 vs fp32 |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
    `threads ${threads}, medians of ${args.runs} alternating runs, load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  ];
  // The table first: a trajectory takes long.
  process.stdout.write(`${lines.splice(0).join("\n")}\n`);
  const steps = Number(args.trajectory);
  if (steps > 0) {
    const a = await trajectory(fp32, steps);
    const b = await trajectory(int8, steps);
    const errs = a.outputs.map((o, i) => relError(b.outputs[i]!, o));
    lines.push(
      `${steps} Euler a steps at ${px}px, same seed: UNet output error per step ${errs.map((e) => `${(100 * e).toFixed(2)}%`).join(" ")}`,
      `  max ${(100 * Math.max(...errs)).toFixed(2)}%, final latents ${(100 * relError(b.latents, a.latents)).toFixed(2)}%`,
    );
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  await fp32.close();
  await int8.close();
} finally {
  if (!args.cache) rmSync(scratch, { recursive: true, force: true });
}
