import { afterAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import { loadPipeline, type LoadOptions } from "../../src/pipeline/load-pipeline.js";
import type { StepPreview } from "../../src/pipeline/params.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { TaesdModel } from "../../src/pipeline/taesd-model.js";
import { latentSpace } from "../../src/pipeline/latent-space.js";
import { golden, HAVE_REFERENCE, maxPixelDiff, ref } from "../helpers/fixtures.js";
import { PROMPT } from "../helpers/pipeline-parity.js";
import { flagsEverything } from "../helpers/safety-fixtures.js";
import { removeTempDirs, tempDir } from "../weights/safetensors-writer.js";

/** goldens/sd15-tiny/txt2img's recipe, whose final latents are goldens/taesd-tiny's decode input. */
const TXT2IMG = {
  prompt: PROMPT,
  negativePrompt: "",
  steps: 4,
  cfgScale: 7.5,
  seed: 31,
  sampler: "pndm",
  width: 64,
  height: 64,
};

describe.skipIf(!HAVE_REFERENCE)("TAESD in the pipeline (taesd-tiny on sd15-tiny)", () => {
  const cacheDir = tempDir("taesd-cache");
  const open: StableDiffusionPipeline[] = [];
  const pipeline = async (opts: LoadOptions) => {
    const p = await loadPipeline(ref("models/sd15-tiny"), {
      cacheDir,
      threads: 1,
      watermark: false,
      provenance: false,
      previewCheckShare: Infinity,
      ...opts,
    });
    open.push(p);
    return p;
  };
  afterAll(async () => {
    for (const p of open) await p.close();
    removeTempDirs();
  });

  for (const [name, path] of [
    ["diffusers folder", ref("models/taesd-tiny")],
    ["madebyollin's files", ref("models/taesd-tiny-madebyollin")],
  ] as const) {
    it(`as the final decoder (--vae, ${name}): the image is diffusers' StableDiffusionPipeline(vae=taesd) output within 1/255`, async () => {
      const pipe = await pipeline({ vae: path, safetyChecker: false });
      const { images } = await pipe.generate(TXT2IMG);
      expect(
        maxPixelDiff(images[0]!.image.data, golden("goldens/taesd-tiny/taesd.safetensors").get("decode/image_uint8")),
      ).toBeLessThanOrEqual(1);
    });
  }

  it("as the preview decoder: each step's preview is TAESD's decode of that step's latents at full size; the final image stays the VAE's", async () => {
    const pipe = await pipeline({ previewDecoder: ref("models/taesd-tiny"), safetyChecker: false });
    const taesd = await TaesdModel.open(ref("models/taesd-tiny"), latentSpace(pipe.config), { cacheDir, threads: 1 });
    const seen: { latents: Float32Array; preview: Promise<StepPreview> }[] = [];
    const { images } = await pipe.generate({
      ...TXT2IMG,
      onStep: (e) => seen.push({ latents: e.latents.slice(), preview: e.preview() }),
    });
    expect(seen).toHaveLength(5); // PNDM: 4 steps are 5 model calls
    for (const s of seen) {
      const p = await s.preview;
      expect(p.safety).toBe("unchecked");
      const pixels = await sharp(p.png!).raw().toBuffer();
      const expected = await taesd.decode(s.latents, [1, 4, 8, 8]);
      expect(maxPixelDiff(pixels, Float32Array.from(expected.data))).toBe(0);
    }
    // The last preview is TAESD's decode of the final latents: the golden's TAESD image; the final image the VAE's.
    const last = await sharp((await seen[4]!.preview).png!)
      .raw()
      .toBuffer();
    expect(
      maxPixelDiff(last, golden("goldens/taesd-tiny/taesd.safetensors").get("decode/image_uint8")),
    ).toBeLessThanOrEqual(1);
    expect(
      maxPixelDiff(images[0]!.image.data, golden("goldens/sd15-tiny/txt2img.safetensors").get("image_uint8")),
    ).toBeLessThanOrEqual(1);
    await taesd.close();
  });

  it("TAESD previews still go through the safety checker: with a checker that flags everything and policy block, none is shown", async () => {
    const pipe = await pipeline({
      previewDecoder: ref("models/taesd-tiny"),
      safetyChecker: flagsEverything(tempDir("taesd-checker")),
      safetyPolicy: "block",
    });
    const previews: Promise<StepPreview>[] = [];
    await pipe.generate({ ...TXT2IMG, onStep: (e) => previews.push(e.preview()) });
    for (const p of await Promise.all(previews)) {
      expect(p.safety).toBe("blocked");
      expect(p.png).toBeUndefined();
    }
  });
});
