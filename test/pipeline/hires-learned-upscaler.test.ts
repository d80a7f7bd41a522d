/**
 * The hires fix with a learned upscaler: loadPipeline's upscalerSearch finds ESRGAN / Real-ESRGAN files in A1111's
 * models/ESRGAN (as /sdapi/v1/upscalers and `diffuse upscale` do), and the hires fix names them by file name.
 */
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defaultModelPath } from "../../src/default-model.js";
import { parseInfotext } from "../../src/image/infotext.js";
import { readImageParameters } from "../../src/image/image-parameters.js";
import { requestFromInfotext } from "../../src/pipeline/infotext-request.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { GenerateParams } from "../../src/pipeline/params.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { OWN_FIXTURES } from "../helpers/fixtures.js";
import { removeTempDirs, tempDir } from "../weights/safetensors-writer.js";

const BASE: GenerateParams = {
  prompt: "a blue square",
  steps: 3,
  sampler: "Euler a",
  width: 64,
  height: 64,
  seed: 7,
  jobId: "hires-learned-test",
};
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/** An A1111 installation with the tiny RRDBNet fixture and a corrupt model file in its models/ESRGAN. */
function webui(): string {
  const root = tempDir("hires-webui");
  mkdirSync(join(root, "models", "Stable-diffusion"), { recursive: true });
  mkdirSync(join(root, "models", "ESRGAN"), { recursive: true });
  copyFileSync(join(OWN_FIXTURES, "rrdbnet", "x4-old.pth"), join(root, "models", "ESRGAN", "tiny-esrgan-4x.pth"));
  writeFileSync(join(root, "models", "ESRGAN", "broken-4x.pth"), "this is not a torch.save file");
  return root;
}

describe("hires fix with an RRDBNet upscaler from models/ESRGAN, embedded model 64 -> 128 px", () => {
  const cacheDir = tempDir("hires-learned-cache");
  const root = webui();
  let pipe: StableDiffusionPipeline | undefined;
  const load = async () =>
    (pipe ??= await loadPipeline(defaultModelPath(), {
      cacheDir,
      threads: 1,
      upscalerSearch: { modelsDirs: [root], searchDefaults: false, home: join(root, "no-diffuse-home") },
    }));
  afterAll(async () => {
    await pipe?.close();
    removeTempDirs();
  });

  for (const upscaler of ["Latent", "tiny-esrgan-4x"]) {
    it(`${upscaler}: 128x128, "Hires upscaler: ${upscaler}" in the infotext, and png-info's request makes it again`, async () => {
      const p = await load();
      const r = await p.generate({ ...BASE, hires: { scale: 2, upscaler, steps: 2, denoisingStrength: 0.6 } });
      const img = r.images[0]!;
      expect([img.image.width, img.image.height]).toEqual([128, 128]);
      expect(parseInfotext(img.infotext).extra["Hires upscaler"]).toBe(upscaler);
      const stored = await readImageParameters(await img.png());
      const request = requestFromInfotext(parseInfotext(stored.parameters!));
      expect(request.hires).toEqual({ scale: 2, upscaler, steps: 2, denoisingStrength: 0.6 });
      const again = await p.generate({ ...request, jobId: BASE.jobId });
      expect(same(again.images[0]!.image.data, img.image.data)).toBe(true);
    });
  }

  it("the RRDBNet runs: its image differs from Lanczos's, and a corrupt file in its place gives that file's error", async () => {
    const p = await load();
    const hires = { scale: 2, steps: 2, denoisingStrength: 0.6 };
    const learned = await p.generate({ ...BASE, hires: { ...hires, upscaler: "tiny-esrgan-4x" } });
    const lanczos = await p.generate({ ...BASE, hires: { ...hires, upscaler: "Lanczos" } });
    expect(same(learned.images[0]!.image.data, lanczos.images[0]!.image.data)).toBe(false);
    await expect(p.generate({ ...BASE, hires: { ...hires, upscaler: "broken-4x" } })).rejects.toThrow(/broken-4x\.pth/);
  });

  it("an unknown upscaler is refused listing the model files found", async () => {
    const p = await load();
    await expect(p.generate({ ...BASE, hires: { upscaler: "4x-UltraSharp" } })).rejects.toThrow(
      /unknown hires upscaler "4x-UltraSharp": use one of "Latent", .*"Lanczos", "Nearest", .*"tiny-esrgan-4x"/,
    );
  });
});
