/**
 * What one live preview costs with a safety checker, piece by piece, against the preview without one (the
 * reference, measured in the same run):
 *
 *   npx tsx bench/preview.ts                          512 px, SD's checker architecture with random weights
 *   npx tsx bench/preview.ts --size 768 --threads 2
 *   npx tsx bench/preview.ts --checker path/to/safety_checker     a real checker folder (or the tiny fixture)
 *
 * Each piece: one warm-up, then the median of --runs. The checker's pass is the same at every size (it sees
 * 224x224); `npm run bench -- --only unet512,safety224` compares it with a UNet step.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { encodePng, type RgbImage } from "../src/image/codec.js";
import { latentPreview, latentPreviewPng } from "../src/image/preview.js";
import {
  CLIP_PREPROCESS,
  flaggedOutcome,
  preprocessForClip,
  SafetyChecker,
} from "../src/responsible/safety-checker.js";
import { SAFETY_IO } from "../src/models/safety-checker.js";
import { CompileCache } from "../src/runtime/compile-cache.js";
import { Session } from "../src/runtime/session.js";
import { randomSafetyChecker } from "./random-weights.js";

const { values: args } = parseArgs({
  options: {
    size: { type: "string", default: "512" },
    threads: { type: "string" },
    runs: { type: "string", default: "5" },
    checker: { type: "string" },
  },
});
const size = Number(args.size);
const threads = Number(args.threads ?? availableParallelism());
const runs = Number(args.runs);
if (!Number.isInteger(size) || size % 8 !== 0 || size < 8)
  throw new Error(`--size ${args.size}: expected a multiple of 8`);

async function median(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** Smooth latents in the range real ones have, so the PNG encoder sees an image, not white noise. */
function latents(h: number, w: number): Float32Array {
  const out = new Float32Array(4 * h * w);
  for (let c = 0; c < 4; c++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) out[(c * h + y) * w + x] = 1.5 * Math.sin((x + 3 * c) / 5) * Math.cos((y - c) / 7);
  return out;
}

const h = size / 8;
const x = latents(h, h);
const image: RgbImage = latentPreview(x, [1, 4, h, h], { scale: 8 });
const rows: { what: string; ms: number }[] = [];

rows.push({
  what: `preview: latent approximation x8 + PNG (${size}px), as without a checker`,
  ms: await median(() => latentPreviewPng(x, [1, 4, h, h], { scale: 8 })),
});
rows.push({
  what: "checker pre-processing (bicubic to 224, crop, normalise)",
  ms: await median(() => preprocessForClip([image], CLIP_PREPROCESS)),
});

const dir = mkdtempSync(join(tmpdir(), "diffuse-bench-preview-"));
try {
  const pixels = await preprocessForClip([image], CLIP_PREPROCESS);
  if (args.checker) {
    const checker = await SafetyChecker.load(args.checker, { threads });
    rows.push({ what: `checker network (${checker.origin})`, ms: await median(() => checker.checkPixels(pixels, 1)) });
    await checker.release();
  } else {
    const session = await Session.create(new CompileCache(dir).write("safety", randomSafetyChecker().graph), {
      threads,
    });
    rows.push({
      what: "checker network (CLIP ViT-L/14 at 224, random weights)",
      ms: await median(() => session.run({ [SAFETY_IO.pixelValues]: { data: pixels, dims: [1, 3, 224, 224] } })),
    });
    await session.release();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
rows.push({
  what: "blur policy on a flagged preview (blur + PNG)",
  ms: await median(async () => encodePng((await flaggedOutcome(image, "blur")).image)),
});

const base = rows[0]!.ms;
const checked = rows[0]!.ms + rows[1]!.ms + rows[2]!.ms;
process.stdout.write(
  [
    "| piece | ms | x preview without checker |",
    "| --- | --- | --- |",
    ...rows.map((r) => `| ${r.what} | ${r.ms.toFixed(1)} | ${(r.ms / base).toFixed(1)} |`),
    `| a checked preview that passes (preview + pre-processing + network) | ${checked.toFixed(1)} | ${(checked / base).toFixed(1)} |`,
    "",
    `threads ${threads}, ${runs} runs per piece (median)`,
  ].join("\n") + "\n",
);
