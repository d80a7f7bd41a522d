import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  evaluateScribbles,
  scribbleSettings,
  scribbleTable,
  type ScribbleRow,
} from "../../scripts/shapes/eval-scribble.js";
import { scribbleCases } from "../../scripts/shapes/scribble-sketch.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";

/**
 * The bar's measurement in small (scripts/shapes/eval-scribble.ts runs all of it): rough pen drawings of a shape at a
 * position, none seen in training, with prompts that do not say where; the embedded model with its scribble ControlNet
 * keeps the drawn shape and position, where plain image to image from the same drawing at the same strength does not.
 */

const ROOT = resolve(import.meta.dirname, "../..");
const COUNT = 5;

describe("tiny-shapes model with its scribble ControlNet", () => {
  let pipe: StableDiffusionPipeline;
  const rows = new Map<string, ScribbleRow>();

  beforeAll(async () => {
    pipe = await loadPipeline(join(ROOT, "models/tiny-shapes"));
    const drawings = scribbleCases(COUNT);
    for (const s of scribbleSettings(join(ROOT, "models/tiny-shapes-scribble"), 0.8))
      rows.set(s.name, await evaluateScribbles(pipe, drawings, s.name, s.options));
    console.log(scribbleTable([...rows.values()]));
  });
  afterAll(async () => {
    await pipe?.close();
  });

  const kept = (name: string) => rows.get(name)!.scores.results.filter((r) => r.right.shape && r.right.position).length;

  it("from noise, the ControlNet keeps the drawn shape and position in every one of 5 drawings", () => {
    expect(kept("ControlNet, text to image")).toBe(COUNT);
  });

  it("from the drawing at strength 0.8, it keeps them in at least 4 of 5, and plain image to image at that strength in fewer", () => {
    expect(kept("ControlNet, image to image 0.8")).toBeGreaterThanOrEqual(4);
    expect(kept("image to image 0.8")).toBeLessThan(kept("ControlNet, image to image 0.8"));
  });
});
