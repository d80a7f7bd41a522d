import { afterAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { copyModelFolder } from "../helpers/fixture-copies.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { maxPixelDiff, PROMPT } from "../helpers/pipeline-parity.js";

const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-turbo-"));

describe.skipIf(!HAVE_REFERENCE)("Turbo / Lightning-style model folders decide their own defaults", () => {
  const opened: StableDiffusionPipeline[] = [];
  afterAll(async () => {
    for (const p of opened) await p.close();
  });
  /** sdxl-tiny as SDXL-Turbo ships: a trailing-spacing scheduler config, plus the recommendation file. */
  const turboFolder = (recommendation?: object) => {
    const dir = copyModelFolder("sdxl-tiny");
    const file = join(dir, "scheduler", "scheduler_config.json");
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), timestep_spacing: "trailing" }));
    if (recommendation) writeFileSync(join(dir, "generation_config.json"), JSON.stringify(recommendation));
    return dir;
  };
  const open = async (dir: string) => {
    const p = await loadPipeline(dir, { cacheDir, threads: 1, safetyChecker: false });
    opened.push(p);
    return p;
  };

  it("generation_config.json's steps, guidance and sampler are the defaults; the samplers follow the folder's trailing schedule", async () => {
    const turbo = await open(turboFolder({ num_inference_steps: 1, guidance_scale: 0, sampler_name: "euler" }));
    const steps: number[] = [];
    const r = await turbo.generate({
      prompt: PROMPT,
      seed: 3,
      width: 64,
      height: 64,
      onStep: (e) => steps.push(e.step),
    });
    expect(steps).toEqual([1]);
    expect(r.info).toMatch(/Steps: 1, Sampler: Euler, CFG scale: 0, Seed: 3,/);
    // One trailing step starts at t = 999 (pure noise) and lands on a clean estimate; the leading schedule's one step
    // is at t = 1 and leaves the noise almost as it was: the two images cannot agree.
    const leading = await open(copyModelFolder("sdxl-tiny"));
    const plain = await leading.generate({
      prompt: PROMPT,
      seed: 3,
      width: 64,
      height: 64,
      steps: 1,
      cfgScale: 0,
      sampler: "euler",
    });
    expect(maxPixelDiff(r.images[0]!.image.data, plain.images[0]!.image.data)).toBeGreaterThan(8);
    // Guidance 0 (or 1) runs the prompt alone: the same image either way.
    const one = await turbo.generate({ prompt: PROMPT, seed: 3, width: 64, height: 64, cfgScale: 1 });
    expect(Buffer.from(one.images[0]!.image.data).equals(Buffer.from(r.images[0]!.image.data))).toBe(true);
  });

  it("without a recommendation the usual defaults apply (20 steps, Euler a, cfg 7)", async () => {
    const p = await open(turboFolder());
    expect([p.defaultSteps, p.defaultSampler, p.defaultCfgScale]).toEqual([20, "euler-a", 7]);
  });
});
