/**
 * Scores image-to-image from rough sketches (sketch.ts): each sketch goes through the pipeline with a prompt that
 * names colour, shape and background but not the position, and the judge reads where the object came out.
 */
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { encodePng } from "../../src/image/codec.js";
import { judge, type Judgement } from "./judge.js";
import { rateTable } from "./rate-table.js";
import type { Sketch } from "./sketch.js";

export const SKETCH_SCORED = ["position", "colour", "shape", "background"] as const;
type SketchScored = (typeof SKETCH_SCORED)[number];

export interface SketchResult {
  /** Position in the list evaluated, also the seed it was generated with. */
  readonly index: number;
  readonly sketch: Sketch;
  readonly judgement: Judgement;
  readonly right: Readonly<Record<SketchScored, boolean>>;
}

export interface SketchScores {
  readonly strength: number;
  readonly count: number;
  readonly rates: Readonly<Record<SketchScored | "all", number>>;
  readonly results: readonly SketchResult[];
}

export interface SketchOptions {
  /** Image-to-image from the sketch at this strength; 1 with `init: false` is text to image. */
  readonly strength: number;
  /** Whether the sketch is the initial image (default true); false: text to image, the sketch only guides a ControlNet. */
  readonly init?: boolean;
  /** A ControlNet guided by the sketch through a preprocessor (e.g. a scribble ControlNet with module "scribble"). */
  readonly control?: { readonly model: string; readonly module: string; readonly weight?: number };
  /** Guidance; the model's default (its generation_config.json, else 7) when left out. */
  readonly cfg?: number;
  readonly steps?: number;
  readonly onImage?: (r: SketchResult, png: () => Promise<Buffer>) => void | Promise<void>;
}

export function scoreSketch(index: number, sketch: Sketch, j: Judgement): SketchResult {
  const o = j.object;
  const e = sketch.expected;
  return {
    index,
    sketch,
    judgement: j,
    right: {
      position: o?.position === e.position,
      colour: o?.colour === e.colour,
      shape: o?.shape === e.shape,
      background: j.background === e.background,
    },
  };
}

/** Seeds are the sketch's index, so a run is reproducible and each sketch gets its own noise. */
export async function evaluateSketches(
  pipe: StableDiffusionPipeline,
  sketches: readonly Sketch[],
  opts: SketchOptions,
): Promise<SketchScores> {
  const results: SketchResult[] = [];
  for (const [i, sketch] of sketches.entries()) {
    const png = await encodePng(sketch.image);
    const { images } = await pipe.generate({
      prompt: sketch.prompt,
      seed: i,
      steps: opts.steps ?? 20,
      cfgScale: opts.cfg ?? pipe.defaultCfgScale,
      ...(opts.init === false ? {} : { initImage: png, denoisingStrength: opts.strength }),
      ...(opts.control
        ? {
            controlnet: [
              { image: png, model: opts.control.model, module: opts.control.module, weight: opts.control.weight ?? 1 },
            ],
          }
        : {}),
    });
    const r = scoreSketch(i, sketch, judge(images[0]!.image));
    results.push(r);
    await opts.onImage?.(r, () => images[0]!.png());
  }
  const rate = (f: (r: SketchResult) => boolean) => results.filter(f).length / results.length;
  const rates = Object.fromEntries([
    ...SKETCH_SCORED.map((a) => [a, rate((r) => r.right[a])]),
    ["all", rate((r) => SKETCH_SCORED.every((a) => r.right[a]))],
  ]) as Record<SketchScored | "all", number>;
  return { strength: opts.strength, count: sketches.length, rates, results };
}

export function sketchTable(all: readonly SketchScores[]): string {
  return rateTable(
    "strength",
    [...SKETCH_SCORED, "all"] as const,
    all.map((s) => ({ key: s.strength, count: s.count, rates: s.rates })),
  );
}
