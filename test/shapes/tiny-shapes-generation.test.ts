import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { evaluate, scoreTable } from "../../scripts/shapes/eval.js";
import { evaluateSketches, sketchTable } from "../../scripts/shapes/eval-sketch.js";
import { heldOutCases } from "../../scripts/shapes/held-out.js";
import { sketchCases } from "../../scripts/shapes/sketch.js";
import { loadPipeline } from "../../src/pipeline/stable-diffusion.js";

/**
 * The embedded model follows prompts it never saw in training: ten held-out colour x shape x background
 * combinations, generated with the default sampler at 20 steps and cfg 7, read back by the judge.
 */

const MODEL = resolve(import.meta.dirname, "../../models/tiny-shapes");

describe.skipIf(!existsSync(join(MODEL, "model_index.json")))("tiny-shapes model on held-out prompts", () => {
  it("draws at least 8 of 10 held-out prompts fully right (background, colour, position, shape)", async () => {
    const pipe = await loadPipeline(MODEL);
    try {
      const s = await evaluate(pipe, heldOutCases(10), 7);
      console.log(scoreTable([s]));
      for (const r of s.results.filter((r) => !r.all)) {
        const o = r.judgement.object;
        console.log(`missed: "${r.case.prompt}" (seed ${r.case.seed}) -> ${r.judgement.background} background, ${o ? `${o.size} ${o.colour} ${o.shape} ${o.position}` : "no object"}`);
      }
      expect(s.results.filter((r) => r.all).length).toBeGreaterThanOrEqual(8);
    } finally {
      await pipe.close();
    }
  });

  it("turns at least 8 of 10 rough sketches into the prompted object where the blob was (strength 0.7)", async () => {
    const pipe = await loadPipeline(MODEL);
    try {
      const s = await evaluateSketches(pipe, sketchCases(10), { strength: 0.7 });
      console.log(sketchTable([s]));
      for (const r of s.results.filter((r) => !(r.right.position && r.right.colour))) {
        const o = r.judgement.object;
        console.log(`missed: "${r.sketch.prompt}" blob ${r.sketch.expected.position} -> ${o ? `${o.colour} ${o.shape} ${o.position}` : "no object"}`);
      }
      expect(s.results.filter((r) => r.right.position && r.right.colour).length).toBeGreaterThanOrEqual(8);
    } finally {
      await pipe.close();
    }
  });
});
