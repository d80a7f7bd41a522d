/**
 * int8 against fp32 on a full-size random-weight checkpoint, both opened in this one process and timed alternately
 * (run i of fp32, run i of int8, ...), so that the load other processes put on the machine hits both alike: the
 * SD1.5 (or SD2/SDXL) UNet's guided step and the VAE decode, with the output's relative error int8 vs fp32 on the
 * same inputs.
 *
 *   npx tsx bench/int8.ts --checkpoint /tmp/bench-ckpt/sd1-19c245a19a-f16 --px 512 --runs 3
 *   npx tsx bench/int8.ts --checkpoint ... --only unet --cache /tmp/int8-cache   (keeps the built entries)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { timeIdCount } from "../src/configs/pipeline.js";
import { openCheckpoint } from "../src/models/open-checkpoint.js";
import { UNET_IO } from "../src/models/unet.js";
import { VAE_IO } from "../src/models/vae.js";
import { Networks, type NetworkName } from "../src/pipeline/networks.js";
import type { FeedValue, Session } from "../src/runtime/session.js";
import { randn } from "./network-rows.js";

const { values: args } = parseArgs({
  options: {
    checkpoint: { type: "string", default: "/tmp/bench-ckpt/sd1-19c245a19a-f16" },
    px: { type: "string", default: "512" },
    runs: { type: "string", default: "3" },
    threads: { type: "string" },
    only: { type: "string", default: "unet,vae_decoder" },
    cache: { type: "string" },
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

function feedsFor(nets: Networks, name: NetworkName): { feeds: Record<string, FeedValue>; out: string } {
  const { config } = nets.checkpoint;
  const size = px / 8;
  if (name === "vae_decoder") {
    const c = config.vae.latentChannels;
    return {
      feeds: { [VAE_IO.latent]: { data: randn(c * size * size, 2), dims: [1, c, size, size] } },
      out: VAE_IO.decoded,
    };
  }
  const u = config.unet;
  const feeds: Record<string, FeedValue> = {
    [UNET_IO.sample]: { data: randn(2 * u.inChannels * size * size, 1), dims: [2, u.inChannels, size, size] },
    [UNET_IO.timestep]: { data: Float32Array.of(500), dims: [1] },
    [UNET_IO.encoderHiddenStates]: { data: randn(2 * 77 * u.crossAttentionDim, 5), dims: [2, 77, u.crossAttentionDim] },
  };
  const ids = timeIdCount(config);
  if (ids > 0) {
    const pooled = (config.textEncoder2 ?? config.textEncoder).projectionDim!;
    feeds[UNET_IO.textEmbeds] = { data: randn(2 * pooled, 6), dims: [2, pooled] };
    feeds[UNET_IO.timeIds] = { data: Float32Array.from([px, px, 0, 0, px, px, px, px, 0, 0, px, px]), dims: [2, ids] };
  }
  return { feeds, out: UNET_IO.out };
}

async function timed(session: Session, feeds: Record<string, FeedValue>, out: string) {
  const t = performance.now();
  const r = await session.run(feeds, [out]);
  return { seconds: (performance.now() - t) / 1000, data: r[out]!.data };
}

const scratch = args.cache ?? mkdtempSync(join(tmpdir(), "diffuse-int8-"));
try {
  const checkpoint = openCheckpoint(args.checkpoint);
  const open = (precision: "fp32" | "int8") =>
    Networks.open(checkpoint, {
      cacheDir: scratch,
      threads,
      precision,
      onTiming: (t) => t.network && log(`${precision} ${t.network} ${t.phase}: ${t.seconds.toFixed(1)} s`),
    });
  const nets = { fp32: await open("fp32"), int8: await open("int8") };
  const rows: string[] = [];
  for (const name of args.only.split(",") as NetworkName[]) {
    const { feeds, out } = feedsFor(nets.fp32, name);
    const s = { fp32: await nets.fp32.get(name), int8: await nets.int8.get(name) };
    const ref = await timed(s.fp32, feeds, out); // warm-ups
    const q = await timed(s.int8, feeds, out);
    const err = relError(q.data, ref.data);
    const times = { fp32: [] as number[], int8: [] as number[] };
    for (let i = 0; i < Number(args.runs); i++) {
      times.fp32.push((await timed(s.fp32, feeds, out)).seconds);
      times.int8.push((await timed(s.int8, feeds, out)).seconds);
      log(
        `${name} run ${i + 1}: fp32 ${times.fp32.at(-1)!.toFixed(2)} s, int8 ${times.int8.at(-1)!.toFixed(2)} s, load ${loadavg()[0]!.toFixed(2)}`,
      );
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const [f, i8] = [med(times.fp32), med(times.int8)];
    rows.push(
      `| ${name} ${px}px | ${f.toFixed(2)} | ${i8.toFixed(2)} | ${(f / i8).toFixed(2)}x | ${(100 * err).toFixed(2)}% |`,
    );
    await nets.fp32.release(name);
    await nets.int8.release(name);
  }
  process.stdout.write(
    [
      `| network | fp32 (s) | int8 (s) | fp32/int8 | rel. error int8 vs fp32 |`,
      "| --- | --- | --- | --- | --- |",
      ...rows,
      `threads ${threads}, median of ${args.runs} alternating runs, load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(" ")}`,
    ].join("\n") + "\n",
  );
  checkpoint.close();
} finally {
  if (!args.cache) rmSync(scratch, { recursive: true, force: true });
}
