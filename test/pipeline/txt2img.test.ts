import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPipeline, type StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

const PROMPT = "a photo of an astronaut riding a horse on mars";

/** Largest difference between our pixels and the reference's uint8 image. */
function maxPixelDiff(a: Uint8Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

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
        prompt: PROMPT, negative_prompt: "", steps: c.steps, cfg_scale: 7.5, seed: c.seed, sampler_name: c.sampler, width: 64, height: 64,
        onStep: (e) => errors.push(relErr(e.latents, perStep.subarray((e.step - 1) * n, e.step * n))),
      });
      expect(errors.length).toBe(gold.shape("latents_after_step")[0]);
      for (const e of errors) expect(e).toBeLessThan(1e-4);
      expect(maxPixelDiff(images[0]!.image.data, gold.get("image_uint8"))).toBeLessThanOrEqual(1);
    });
  }

  it("img2img: strength 0.6, 10 steps, seed 7: the noised start, latents after every step and the image", async () => {
    const p = await load();
    const gold = golden("goldens/sd15-tiny/img2img.safetensors");
    const inputs = golden("goldens/sd15-tiny/img2img_inputs.safetensors");
    const sharp = (await import("sharp")).default;
    const hwc = Uint8Array.from(inputs.get("image_uint8_hwc"));
    const png = await sharp(hwc, { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer();
    const perStep = gold.get("latents_after_step");
    const n = 4 * 8 * 8;
    const errors: number[] = [];
    const { images } = await p.generate({
      prompt: PROMPT, negative_prompt: "", steps: 10, cfg_scale: 7.5, seed: 7, sampler_name: "pndm",
      init_images: [png], denoising_strength: 0.6, width: 64, height: 64,
      onStep: (e) => errors.push(relErr(e.latents, perStep.subarray((e.step - 1) * n, e.step * n))),
    });
    expect(errors.length).toBe(gold.shape("latents_after_step")[0]);
    for (const e of errors) expect(e).toBeLessThan(1e-4);
    expect(maxPixelDiff(images[0]!.image.data, gold.get("image_uint8"))).toBeLessThanOrEqual(1);
  });
});
