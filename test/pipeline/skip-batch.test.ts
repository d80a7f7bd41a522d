/**
 * Skipping (A1111's skip): the batch asked to stop ends after the step it was asked at, its images decoded from the
 * latents as they stand, and the next batch runs in full. Tested by the steps reported and the images made.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultModelPath, loadPipeline, type StableDiffusionPipeline } from "../../src/index.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

describe.skipIf(!HAVE_REFERENCE)("skipping the rest of a batch (sd15-tiny)", () => {
  const cache = mkdtempSync(join(tmpdir(), "diffuse-skip-cache-"));
  let pipe: StableDiffusionPipeline;
  beforeAll(async () => {
    pipe = await loadPipeline(ref("models/sd15-tiny"), {
      cacheDir: cache,
      threads: 1,
      safetyChecker: false,
      watermark: false,
      provenance: false,
    });
  });
  afterAll(async () => {
    await pipe?.close();
    rmSync(cache, { recursive: true, force: true });
  });

  it("ends batch 0 after step 3 and runs batch 1's 8 steps; both images are made, the first unlike a full run", async () => {
    const seen: string[] = [];
    let skipped = false;
    const params = { prompt: "a red square", steps: 8, batchCount: 2, seed: 3 };
    const out = await pipe.generate({
      ...params,
      onStep: (e) => {
        seen.push(`${e.batch}:${e.step}`);
        if (e.batch === 0 && e.step === 3) skipped = true;
      },
      skipBatch: (batch) => batch === 0 && skipped,
    });
    expect(seen).toEqual(["0:1", "0:2", "0:3", ...[1, 2, 3, 4, 5, 6, 7, 8].map((s) => `1:${s}`)]);
    expect(out.images).toHaveLength(2);
    const full = await pipe.generate(params);
    expect(Buffer.from(out.images[1]!.image.data).equals(Buffer.from(full.images[1]!.image.data))).toBe(true);
    expect(Buffer.from(out.images[0]!.image.data).equals(Buffer.from(full.images[0]!.image.data))).toBe(false);
  });
});

describe("skipping during the hires fix (embedded model, 64 -> 128 px)", () => {
  const cache = mkdtempSync(join(tmpdir(), "diffuse-skip-hires-"));
  let pipe: StableDiffusionPipeline;
  beforeAll(async () => {
    pipe = await loadPipeline(defaultModelPath(), { cacheDir: cache, threads: 1 });
  });
  afterAll(async () => {
    await pipe?.close();
    rmSync(cache, { recursive: true, force: true });
  });
  const params = {
    prompt: "a red square",
    steps: 3,
    batchCount: 2,
    seed: 3,
    width: 64,
    height: 64,
    jobId: "skip-hires",
    hires: { scale: 2, upscaler: "Latent", denoisingStrength: 0.6, steps: 3 },
  };
  const run = async (skipAt: number) => {
    const seen: string[] = [];
    let skipped = false;
    const out = await pipe.generate({
      ...params,
      onStep: (e) => {
        seen.push(`${e.batch}:${e.step}`);
        if (e.batch === 0 && e.step === skipAt) skipped = true;
      },
      skipBatch: (batch) => batch === 0 && skipped,
    });
    return { seen, out };
  };
  const batch1 = [1, 2, 3, 4, 5, 6].map((s) => `1:${s}`);

  it("a skip in the second pass ends that pass (A1111 checks it in either pass's sampler loop)", async () => {
    const { seen, out } = await run(4);
    expect(seen).toEqual(["0:1", "0:2", "0:3", "0:4", ...batch1]);
    expect(out.images.map((i) => [i.image.width, i.image.height])).toEqual([
      [128, 128],
      [128, 128],
    ]);
    const full = await pipe.generate(params);
    expect(Buffer.from(out.images[1]!.image.data).equals(Buffer.from(full.images[1]!.image.data))).toBe(true);
    expect(Buffer.from(out.images[0]!.image.data).equals(Buffer.from(full.images[0]!.image.data))).toBe(false);
  });

  it("a skip in the first pass runs no step of the second: the upscaled first pass is decoded", async () => {
    const { seen, out } = await run(2);
    expect(seen).toEqual(["0:1", "0:2", ...batch1]);
    expect([out.images[0]!.image.width, out.images[0]!.image.height]).toEqual([128, 128]);
  });
});
