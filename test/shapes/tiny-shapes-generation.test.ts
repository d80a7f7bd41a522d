import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { evaluate, scoreTable, type Scores } from "../../scripts/shapes/eval.js";
import { evaluateSketches, sketchTable } from "../../scripts/shapes/eval-sketch.js";
import { heldOutCases } from "../../scripts/shapes/held-out.js";
import { sketchCases } from "../../scripts/shapes/sketch.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";

/**
 * The embedded model follows prompts it never saw in training: ten held-out colour x shape x background
 * combinations, generated as `diffuse generate` would (default sampler, 20 steps, the model's recommended guidance),
 * read back by the judge; and it turns rough sketches into the prompted object where the sketch put it.
 */

const MODEL = resolve(import.meta.dirname, "../../models/tiny-shapes");

describe.skipIf(!existsSync(join(MODEL, "model_index.json")))("tiny-shapes model", () => {
  let pipe: StableDiffusionPipeline;
  let heldOut: Scores;

  beforeAll(async () => {
    pipe = await loadPipeline(MODEL);
    heldOut = await evaluate(pipe, heldOutCases(10), pipe.defaultCfgScale);
    console.log(scoreTable([heldOut]));
    for (const r of heldOut.results.filter((r) => !r.all)) {
      const o = r.judgement.object;
      console.log(
        `missed: "${r.case.prompt}" (seed ${r.case.seed}) -> ${r.judgement.background} background, ${o ? `${o.size} ${o.colour} ${o.shape} ${o.position}` : "no object"}`,
      );
    }
  });
  afterAll(async () => {
    await pipe?.close();
  });

  it("draws background, object colour and shape right for at least 8 of 10 held-out prompts", () => {
    const right = heldOut.results.filter((r) => r.right.background && r.right.colour && r.right.shape);
    expect(right.length).toBeGreaterThanOrEqual(8);
  });

  it("recommends its own guidance (generation_config.json), below SD's usual 7 that over-steers it", () => {
    expect(pipe.defaultCfgScale).toBe(3);
  });

  it("draws at least 8 of 10 held-out prompts fully right (background, colour, position, shape)", () => {
    expect(heldOut.results.filter((r) => r.all).length).toBeGreaterThanOrEqual(8);
  });

  it("turns at least 8 of 10 rough sketches into an object of the prompted colour where the blob was (strength 0.6)", async () => {
    const s = await evaluateSketches(pipe, sketchCases(10), { strength: 0.6 });
    console.log(sketchTable([s]));
    for (const r of s.results.filter((r) => !(r.right.position && r.right.colour))) {
      const o = r.judgement.object;
      console.log(
        `missed: "${r.sketch.prompt}" blob ${r.sketch.expected.position} -> ${o ? `${o.colour} ${o.shape} ${o.position}` : "no object"}`,
      );
    }
    expect(s.results.filter((r) => r.right.position && r.right.colour).length).toBeGreaterThanOrEqual(8);
  });
});
