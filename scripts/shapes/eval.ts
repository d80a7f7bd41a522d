/**
 * Scores a model on the held-out prompts: generates each with the project's pipeline, reads the picture back with
 * the judge, and prints how often each attribute came out as asked: at the model's own guidance ("model": its
 * generation_config.json, else 7), at SD's usual 7, and with guidance off (cfg 1).
 *
 *   npx tsx scripts/shapes/eval.ts [model] [--count 100] [--steps 20] [--cfg model,7,1] [--sketches 20]
 *                                 [--strength 0.6,0.7,0.8] [--save dir] [--precision fp32|int8]
 *
 * The model defaults to models/tiny-shapes; seeds are 0..count-1, the sampler the pipeline's default. Then it
 * scores image-to-image from rough sketches (eval-sketch.ts) at the model's guidance, each strength in turn
 * (--sketches 0 skips).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parsePrecision } from "../../src/models/precision.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { evaluateSketches, sketchTable, type SketchScores } from "./eval-sketch.js";
import { heldOutCases, type EvalCase } from "./held-out.js";
import { judge, type Judgement } from "./judge.js";
import { rateTable } from "./rate-table.js";
import { sketchCases } from "./sketch.js";

export const SCORED = ["background", "colour", "position", "shape", "size"] as const;
export type Scored = (typeof SCORED)[number];

/** The attributes the bar is set on; "all" means these four right in one picture (size is reported beside). */
export const BAR_ATTRIBUTES: readonly Scored[] = ["background", "colour", "position", "shape"];

export interface CaseResult {
  readonly case: EvalCase;
  readonly judgement: Judgement;
  readonly right: Readonly<Record<Scored, boolean>>;
  readonly all: boolean;
}

export interface Scores {
  readonly cfg: number;
  readonly count: number;
  /** Share right per attribute, and for all four bar attributes at once. */
  readonly rates: Readonly<Record<Scored | "all", number>>;
  readonly results: readonly CaseResult[];
}

export function score(c: EvalCase, j: Judgement): CaseResult {
  const o = j.object;
  const right: Record<Scored, boolean> = {
    background: j.background === c.expected.background,
    colour: o?.colour === c.expected.colour,
    position: o?.position === c.expected.position,
    shape: o?.shape === c.expected.shape,
    size: o?.size === c.expected.size,
  };
  return { case: c, judgement: j, right, all: BAR_ATTRIBUTES.every((a) => right[a]) };
}

export interface EvaluateOptions {
  readonly steps?: number;
  /** Called after each picture, e.g. to save it or show progress. */
  readonly onImage?: (r: CaseResult, png: () => Promise<Buffer>) => void | Promise<void>;
}

export async function evaluate(
  pipe: StableDiffusionPipeline,
  cases: readonly EvalCase[],
  cfg: number,
  opts: EvaluateOptions = {},
): Promise<Scores> {
  const results: CaseResult[] = [];
  for (const c of cases) {
    const { images } = await pipe.generate({ prompt: c.prompt, seed: c.seed, steps: opts.steps ?? 20, cfgScale: cfg });
    const r = score(c, judge(images[0]!.image));
    results.push(r);
    await opts.onImage?.(r, () => images[0]!.png());
  }
  const rate = (f: (r: CaseResult) => boolean) => results.filter(f).length / results.length;
  const rates = Object.fromEntries([
    ...SCORED.map((a) => [a, rate((r) => r.right[a])]),
    ["all", rate((r) => r.all)],
  ]) as Record<Scored | "all", number>;
  return { cfg, count: cases.length, rates, results };
}

export function scoreTable(all: readonly Scores[]): string {
  return rateTable(
    "cfg",
    [...SCORED, "all"] as const,
    all.map((s) => ({ key: s.cfg, count: s.count, rates: s.rates })),
  );
}

/** Writes each picture of a run into `root/sub` as `007-ok-a_big_red_star...png` (none without --save). */
export function imageSaver(root: string | undefined, sub: string) {
  if (root === undefined) return undefined;
  const dir = join(root, sub);
  mkdirSync(dir, { recursive: true });
  return async (index: number, ok: boolean, prompt: string, png: () => Promise<Buffer>) => {
    writeFileSync(
      join(dir, `${String(index).padStart(3, "0")}-${ok ? "ok" : "miss"}-${prompt.replace(/[^a-z]+/g, "_")}.png`),
      await png(),
    );
  };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      count: { type: "string", default: "100" },
      steps: { type: "string", default: "20" },
      cfg: { type: "string", default: "model,7,1" },
      sketches: { type: "string", default: "20" },
      strength: { type: "string", default: "0.6,0.7,0.8" },
      save: { type: "string" },
      precision: { type: "string", default: "fp32" },
    },
  });
  const model = positionals[0] ?? "models/tiny-shapes";
  const count = Number(values.count),
    steps = Number(values.steps);
  const cfgWords = values.cfg!.split(",");
  if (!Number.isInteger(count) || count < 1) throw new Error(`--count ${values.count}: expected a positive integer`);
  if (cfgWords.some((c) => c !== "model" && !Number.isFinite(Number(c))))
    throw new Error(
      `--cfg ${values.cfg}: expected numbers or "model" (the model's default) separated by commas, e.g. model,7,1`,
    );
  const sketchCount = Number(values.sketches);
  const strengths = values.strength!.split(",").map(Number);
  if (!Number.isInteger(sketchCount) || sketchCount < 0)
    throw new Error(`--sketches ${values.sketches}: expected a whole number (0 skips the sketch test)`);
  if (strengths.some((x) => !(x > 0 && x <= 1)))
    throw new Error(`--strength ${values.strength}: expected numbers in (0, 1] separated by commas, e.g. 0.6,0.7,0.8`);
  const pipe = await loadPipeline(model, { precision: parsePrecision(values.precision!, "--precision") });
  try {
    // "model" is the guidance the model recommends (generation_config.json); each value is scored once.
    const cfgs = [...new Set(cfgWords.map((c) => (c === "model" ? pipe.defaultCfgScale : Number(c))))];
    const cases = heldOutCases(count);
    const all: Scores[] = [];
    for (const cfg of cfgs) {
      const start = performance.now();
      const save = imageSaver(values.save, `cfg${cfg}`);
      const s = await evaluate(pipe, cases, cfg, {
        steps,
        onImage: (r, png) => save?.(r.case.seed, r.all, r.case.prompt, png),
      });
      all.push(s);
      console.error(`cfg ${cfg}: ${count} images in ${((performance.now() - start) / 1000).toFixed(1)} s`);
    }
    console.log(
      `held-out prompts of ${model}, seeds 0-${count - 1}, ${steps} steps, default sampler, precision ${values.precision}`,
    );
    console.log(scoreTable(all));
    if (sketchCount === 0) return;
    const sketches = sketchCases(sketchCount);
    const bySketch: SketchScores[] = [];
    for (const strength of strengths) {
      const start = performance.now();
      const save = imageSaver(values.save, `sketch${strength}`);
      const s = await evaluateSketches(pipe, sketches, {
        strength,
        steps,
        onImage: (r, png) => save?.(r.index, r.right.position, r.sketch.prompt, png),
      });
      bySketch.push(s);
      console.error(
        `sketches at strength ${strength}: ${sketchCount} images in ${((performance.now() - start) / 1000).toFixed(1)} s`,
      );
    }
    console.log(
      `\nsketch to image: ${sketchCount} rough sketches (scripts/shapes/sketch.ts), prompts without position words, cfg ${pipe.defaultCfgScale} (the model's default), ${steps} steps`,
    );
    console.log(sketchTable(bySketch));
  } finally {
    await pipe.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
