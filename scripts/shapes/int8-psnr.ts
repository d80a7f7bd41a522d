/**
 * How far int8 images are from fp32's on the tiny shapes model: the held-out prompts generated at both precisions
 * with the same seeds, and the PSNR of each int8 image against its fp32 twin (the decoded pixels, 0-255). Issue 20's
 * bar is a median of at least 30 dB.
 *
 *   npx tsx scripts/shapes/int8-psnr.ts [model] [--count 30] [--steps 20]
 */
import { parseArgs } from "node:util";
import type { RgbImage } from "../../src/image/codec.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import { heldOutCases } from "./held-out.js";

function psnr(a: RgbImage, b: RgbImage): number {
  let se = 0;
  for (let i = 0; i < a.data.length; i++) se += (a.data[i]! - b.data[i]!) ** 2;
  return se === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10((255 * 255) / (se / a.data.length));
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { count: { type: "string", default: "30" }, steps: { type: "string", default: "20" } },
});
const model = positionals[0] ?? "models/tiny-shapes";
const cases = heldOutCases(Number(values.count));
const steps = Number(values.steps);
const images = async (precision: "fp32" | "int8") => {
  const pipe = await loadPipeline(model, { precision });
  const out: RgbImage[] = [];
  for (const c of cases) out.push((await pipe.generate({ prompt: c.prompt, seed: c.seed, steps })).images[0]!.image);
  await pipe.close();
  return out;
};
const fp32 = await images("fp32");
const int8 = await images("int8");
const values_ = int8.map((img, i) => psnr(img, fp32[i]!)).sort((a, b) => a - b);
const at = (q: number) => values_[Math.min(values_.length - 1, Math.floor(q * values_.length))]!;
console.log(
  `${model}, ${cases.length} held-out prompts, ${steps} steps, model's guidance: PSNR int8 vs fp32 median ${at(0.5).toFixed(1)} dB, min ${values_[0]!.toFixed(1)} dB, 10th percentile ${at(0.1).toFixed(1)} dB, max ${at(1).toFixed(1)} dB`,
);
