import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { golden, HAVE_REFERENCE, maxPixelDiff, ref, relErr } from "../helpers/fixtures.js";

const PROMPT = "a photo of an astronaut riding a horse on mars";

describe.skipIf(!HAVE_REFERENCE)("text-to-image on sd15-tiny reproduces diffusers' StableDiffusionPipeline", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-txt2img-"));
  let pipe: StableDiffusionPipeline;
  const load = async () => (pipe ??= await loadPipeline(ref("models/sd15-tiny"), { cacheDir, threads: 1 }));

  const cases = [
    { fixture: "txt2img", sampler: "pndm", steps: 4, seed: 31 },
    { fixture: "txt2img_dpmpp2m_karras", sampler: "DPM++ 2M Karras", steps: 6, seed: 31 },
    { fixture: "txt2img_euler_a_seed42", sampler: "Euler a", steps: 5, seed: 42 },
  ];
  for (const c of cases) {
    it(`${c.fixture}: ${c.sampler}, ${c.steps} steps, seed ${c.seed}: latents after every step and the image`, async () => {
      const p = await load();
      const gold = golden(`goldens/sd15-tiny/${c.fixture}.safetensors`);
      const perStep = gold.get("latents_after_step");
      const n = 4 * 8 * 8;
      const errors: number[] = [];
      const { images } = await p.generate({
        prompt: PROMPT,
        negativePrompt: "",
        steps: c.steps,
        cfgScale: 7.5,
        seed: c.seed,
        sampler: c.sampler,
        width: 64,
        height: 64,
        onStep: (e) => errors.push(relErr(e.latents, perStep.subarray((e.step - 1) * n, e.step * n))),
      });
      expect(errors.length).toBe(gold.shape("latents_after_step")[0]);
      for (const e of errors) expect(e).toBeLessThan(1e-4);
      expect(maxPixelDiff(images[0]!.image.data, gold.get("image_uint8"))).toBeLessThanOrEqual(1);
    });
  }

  it("seed 2^32+42 (as a string) makes the reference's seed-42 image: PyTorch's generator keeps the low 32 bits; the infotext keeps the seed as given", async () => {
    const p = await load();
    const gold = golden("goldens/sd15-tiny/txt2img_euler_a_seed42.safetensors");
    const { images, parameters } = await p.generate({
      prompt: PROMPT,
      negativePrompt: "",
      steps: 5,
      cfgScale: 7.5,
      seed: String(2n ** 32n + 42n),
      sampler: "Euler a",
      width: 64,
      height: 64,
    });
    expect(parameters.seed).toBe(4294967338n);
    expect(images[0]!.seed).toBe(4294967338n);
    expect(maxPixelDiff(images[0]!.image.data, gold.get("image_uint8"))).toBeLessThanOrEqual(1);
    expect(images[0]!.infotext).toMatch(/, Seed: 4294967338, /);
  });

  it("seed 4294967301 gives the same image as seed 5 and is written as 4294967301; a batch from 2^64-2 takes 2^64-2 and 2^64-1", async () => {
    const p = await load();
    const base = {
      prompt: PROMPT,
      negativePrompt: "",
      steps: 3,
      cfgScale: 7.5,
      sampler: "Euler a",
      width: 64,
      height: 64,
    };
    const five = (await p.generate({ ...base, seed: 5 })).images[0]!;
    const big = (await p.generate({ ...base, seed: 4294967301n })).images[0]!;
    expect(Buffer.from(big.image.data).equals(Buffer.from(five.image.data))).toBe(true);
    expect(big.infotext).toMatch(/, Seed: 4294967301, /);
    expect(five.infotext).toMatch(/, Seed: 5, /);

    // Image j of a batch takes seed + j, exactly, up to the last seed: its low 32 bits are those of 2^32-2 and 2^32-1.
    const batch = await p.generate({ ...base, seed: "18446744073709551614", batchSize: 2 });
    expect(batch.images.map((i) => i.seed)).toEqual([18446744073709551614n, 18446744073709551615n]);
    expect(batch.images[1]!.infotext).toMatch(/, Seed: 18446744073709551615, /);
    const low = await p.generate({ ...base, seed: 4294967294, batchSize: 2 });
    for (const j of [0, 1])
      expect(Buffer.from(batch.images[j]!.image.data).equals(Buffer.from(low.images[j]!.image.data))).toBe(true);
  });

  it("img2img: strength 0.6, 10 steps, seed 7: the noised start, latents after every step and the image", async () => {
    const p = await load();
    const gold = golden("goldens/sd15-tiny/img2img.safetensors");
    const inputs = golden("goldens/sd15-tiny/img2img_inputs.safetensors");
    const sharp = (await import("sharp")).default;
    const hwc = Uint8Array.from(inputs.get("image_uint8_hwc"));
    const png = await sharp(hwc, { raw: { width: 64, height: 64, channels: 3 } })
      .png()
      .toBuffer();
    const perStep = gold.get("latents_after_step");
    const n = 4 * 8 * 8;
    const errors: number[] = [];
    const { images } = await p.generate({
      prompt: PROMPT,
      negativePrompt: "",
      steps: 10,
      cfgScale: 7.5,
      seed: 7,
      sampler: "pndm",
      initImage: png,
      denoisingStrength: 0.6,
      width: 64,
      height: 64,
      onStep: (e) => errors.push(relErr(e.latents, perStep.subarray((e.step - 1) * n, e.step * n))),
    });
    expect(errors.length).toBe(gold.shape("latents_after_step")[0]);
    for (const e of errors) expect(e).toBeLessThan(1e-4);
    expect(maxPixelDiff(images[0]!.image.data, gold.get("image_uint8"))).toBeLessThanOrEqual(1);
  });
});
