import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defaultModelPath } from "../../src/default-model.js";
import { InputError } from "../../src/errors.js";
import { parseInfotext } from "../../src/image/infotext.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { GenerateParams } from "../../src/pipeline/params.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";

// Euler is deterministic after the initial noise: an image is then a function of that noise alone, so strength 1
// must give exactly the subseed's image (an ancestral sampler's later noise still comes from the seed, as in A1111).
const BASE: GenerateParams = {
  prompt: "a red circle",
  steps: 3,
  sampler: "Euler",
  width: 64,
  height: 64,
  // The robust watermark carries the job's id (random unless given): one id, so equal noise gives equal pixels.
  jobId: "variation-test",
};
/** Compared as one buffer: a failing toEqual on thousands of bytes prints (and takes) too long. */
const same = (a: { image: { data: Uint8Array } }, b: { image: { data: Uint8Array } }) =>
  Buffer.from(a.image.data).equals(Buffer.from(b.image.data));

describe("variation seeds on the embedded model (A1111's subseed / subseed_strength)", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-variation-"));
  let pipe: StableDiffusionPipeline | undefined;
  const load = async () => (pipe ??= await loadPipeline(defaultModelPath(), { cacheDir, threads: 1 }));
  afterAll(async () => pipe?.close());
  const pixels = async (p: Partial<GenerateParams>) => (await (await load()).generate({ ...BASE, ...p })).images;

  it("strength 0 makes exactly the seed's image, and writes no variation fields", async () => {
    const [plain] = await pixels({ seed: 5 });
    const [zero] = await pixels({ seed: 5, subseed: 99, subseedStrength: 0 });
    expect(same(zero!, plain!)).toBe(true);
    expect(zero!.infotext).not.toMatch(/Variation seed/);
    expect(zero!.subseed).toBeUndefined();
  });

  it("strength 1 makes exactly the variation seed's image; the infotext keeps the seed and names the variation", async () => {
    const [subseedAlone] = await pixels({ seed: 99 });
    const [one] = await pixels({ seed: 5, subseed: 99, subseedStrength: 1 });
    expect(same(one!, subseedAlone!)).toBe(true);
    const info = parseInfotext(one!.infotext);
    expect(info.seed).toBe(5n);
    expect(info.extra["Variation seed"]).toBe("99");
    expect(info.extra["Variation seed strength"]).toBe("1");
  });

  it("in between: a batch shares the seed and counts up the variation seed; each image is reproducible alone", async () => {
    const batch = await pixels({ seed: 5, subseed: 99, subseedStrength: 0.4, batchSize: 2 });
    expect(batch.map((i) => i.seed)).toEqual([5n, 5n]);
    expect(batch.map((i) => i.subseed)).toEqual([99n, 100n]);
    expect(parseInfotext(batch[1]!.infotext).extra["Variation seed"]).toBe("100");
    const [alone] = await pixels({ seed: 5, subseed: 100, subseedStrength: 0.4 });
    expect(same(alone!, batch[1]!)).toBe(true);
    const [plain] = await pixels({ seed: 5 });
    const [other] = await pixels({ seed: 100 });
    expect(same(alone!, plain!)).toBe(false);
    expect(same(alone!, other!)).toBe(false);
  });

  it("seed resize from the same size changes nothing; from another size it is written as A1111 writes it", async () => {
    const [plain] = await pixels({ seed: 5 });
    const [sameSize] = await pixels({ seed: 5, seedResizeFromW: 64, seedResizeFromH: 64 });
    expect(same(sameSize!, plain!)).toBe(true);
    const [resized] = await pixels({ seed: 5, seedResizeFromW: 48, seedResizeFromH: 80 });
    expect(same(resized!, plain!)).toBe(false);
    expect(parseInfotext(resized!.infotext).extra["Seed resize from"]).toBe("48x80");
  });

  it("a random variation seed is drawn and reported; bad strengths and sizes are refused before any compute", async () => {
    const [img] = await pixels({ seed: 5, subseedStrength: 0.5 });
    expect(img!.subseed).toBeTypeOf("bigint");
    const p = await load();
    await expect(p.generate({ ...BASE, subseedStrength: 1.5 })).rejects.toThrow(InputError);
    await expect(p.generate({ ...BASE, subseedStrength: 1.5 })).rejects.toThrow(/variation seed strength 1.5/);
    await expect(p.generate({ ...BASE, subseedStrength: 0.5, subseed: "x" })).rejects.toThrow(/variation seed/);
    await expect(p.generate({ ...BASE, seedResizeFromW: 4, seedResizeFromH: 64 })).rejects.toThrow(
      /seed resize from width 4/,
    );
  });
});
