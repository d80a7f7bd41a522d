/**
 * Scores the scribble ControlNet of the tiny shapes model: rough pen drawings of a shape at a position
 * (scribble-sketch.ts's evaluation cases, made from seeds no training drawing uses), each with a prompt that names
 * colour, shape and background but not the position, through the library's pipeline; the judge reads the picture.
 * "kept" counts pictures whose object has the drawn shape where it was drawn. Three ways to use the drawing:
 *   - the ControlNet from noise (text to image guided by the drawing's scribble map, as the page's scribble mode);
 *   - image to image from the drawing at --strength, with the ControlNet;
 *   - plain image to image from the drawing at --strength, without it.
 *
 *   npx tsx scripts/shapes/eval-scribble.ts [--controlnet models/tiny-shapes-scribble] [--model models/tiny-shapes]
 *                                           [--count 20] [--strength 0.8] [--steps 20] [--save dir]
 */
import { parseArgs } from "node:util";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { imageSaver } from "./eval.js";
import { evaluateSketches, SKETCH_SCORED, type SketchOptions, type SketchScores } from "./eval-sketch.js";
import { rateTable } from "./rate-table.js";
import type { Sketch } from "./sketch.js";
import { scribbleCases } from "./scribble-sketch.js";

export const SCRIBBLE_COLUMNS = ["kept", ...SKETCH_SCORED] as const;
type Column = (typeof SCRIBBLE_COLUMNS)[number];

export interface ScribbleRow {
  readonly name: string;
  readonly count: number;
  /** "kept": shape and position both right; then each attribute alone. */
  readonly rates: Readonly<Record<Column, number>>;
  readonly scores: SketchScores;
}

/** The ways the evaluation uses each drawing, in table order. */
export function scribbleSettings(controlnet: string, strength: number): { name: string; options: SketchOptions }[] {
  const control = { model: controlnet, module: "scribble" };
  return [
    { name: "ControlNet, text to image", options: { strength: 1, init: false, control } },
    { name: `ControlNet, image to image ${strength}`, options: { strength, control } },
    { name: `image to image ${strength}`, options: { strength } },
  ];
}

export async function evaluateScribbles(
  pipe: StableDiffusionPipeline,
  drawings: readonly Sketch[],
  name: string,
  options: SketchOptions,
): Promise<ScribbleRow> {
  const scores = await evaluateSketches(pipe, drawings, options);
  const kept = scores.results.filter((r) => r.right.shape && r.right.position).length / scores.results.length;
  return {
    name,
    count: scores.count,
    rates: { kept, ...Object.fromEntries(SKETCH_SCORED.map((a) => [a, scores.rates[a]])) } as Record<Column, number>,
    scores,
  };
}

export function scribbleTable(rows: readonly ScribbleRow[]): string {
  return rateTable(
    "drawing used as",
    SCRIBBLE_COLUMNS,
    rows.map((r) => ({ key: r.name, count: r.count, rates: r.rates })),
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      controlnet: { type: "string", default: "models/tiny-shapes-scribble" },
      model: { type: "string", default: "models/tiny-shapes" },
      count: { type: "string", default: "20" },
      strength: { type: "string", default: "0.8" },
      steps: { type: "string", default: "20" },
      save: { type: "string" },
    },
  });
  const count = Number(values.count),
    strength = Number(values.strength),
    steps = Number(values.steps);
  if (!Number.isInteger(count) || count < 1) throw new Error(`--count ${values.count}: expected a positive integer`);
  if (!(strength > 0 && strength <= 1)) throw new Error(`--strength ${values.strength}: expected a number in (0, 1]`);
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps ${values.steps}: expected a positive integer`);
  const drawings = scribbleCases(count);
  const pipe = await loadPipeline(values.model!);
  try {
    const rows: ScribbleRow[] = [];
    for (const [k, s] of scribbleSettings(values.controlnet!, strength).entries()) {
      const start = performance.now();
      const save = imageSaver(values.save, `${k}-${s.name.replace(/[^a-z0-9.]+/gi, "-").toLowerCase()}`);
      rows.push(
        await evaluateScribbles(pipe, drawings, s.name, {
          ...s.options,
          steps,
          onImage: (r, png) => save?.(r.index, r.right.shape && r.right.position, r.sketch.prompt, png),
        }),
      );
      console.error(`${s.name}: ${count} images in ${((performance.now() - start) / 1000).toFixed(1)} s`);
    }
    console.log(
      `scribble drawings (scripts/shapes/scribble-sketch.ts, cases 0-${count - 1}), prompts without position words, cfg ${pipe.defaultCfgScale} (the model's default), ${steps} steps, ControlNet ${values.controlnet}`,
    );
    console.log(scribbleTable(rows));
  } finally {
    await pipe.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
