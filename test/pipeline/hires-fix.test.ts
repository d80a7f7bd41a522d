import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defaultModelPath } from "../../src/default-model.js";
import { InputError } from "../../src/errors.js";
import { parseInfotext } from "../../src/image/infotext.js";
import { readImageParameters } from "../../src/image/image-parameters.js";
import type { PixelUpscaler } from "../../src/pipeline/hires-upscalers.js";
import { requestFromInfotext } from "../../src/pipeline/infotext-request.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { GenerateParams } from "../../src/pipeline/params.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";

// The robust watermark carries the job's id (random unless given): one id for all, so equal requests give equal pixels.
const BASE: GenerateParams = {
  prompt: "a blue square",
  steps: 3,
  sampler: "Euler a",
  width: 64,
  height: 64,
  seed: 7,
  jobId: "hires-test",
};
/** Compared as one buffer: a failing toEqual on 50,000 bytes would print (and take) minutes. */
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

describe("hires fix on the embedded model, 64 -> 128 px (A1111's enable_hr)", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-hires-"));
  // A pixel upscaler given by name, as learned upscalers will be: it records its calls and doubles each pixel.
  const calls: number[][] = [];
  const doubler: PixelUpscaler = async (rgb, w, h, ow, oh) => {
    calls.push([rgb.length, w, h, ow, oh]);
    const out = new Uint8Array(ow * oh * 3);
    for (let y = 0; y < oh; y++)
      for (let x = 0; x < ow; x++)
        for (let c = 0; c < 3; c++)
          out[(y * ow + x) * 3 + c] = rgb[(((y * h) / oh) | 0) * w * 3 + (((x * w) / ow) | 0) * 3 + c]!;
    return out;
  };
  let pipe: StableDiffusionPipeline | undefined;
  const load = async () =>
    (pipe ??= await loadPipeline(defaultModelPath(), { cacheDir, threads: 1, upscalers: { Doubler: doubler } }));
  afterAll(async () => pipe?.close());

  for (const upscaler of ["Latent", "Lanczos"]) {
    it(`${upscaler}: a 128x128 image, both passes in the progress, A1111's infotext, and png-info's request makes it again`, async () => {
      const p = await load();
      const steps: [number, number][] = [];
      const r = await p.generate({
        ...BASE,
        hires: { scale: 2, upscaler, denoisingStrength: 0.6, steps: 2 },
        onStep: (e) => steps.push([e.step, e.steps]),
      });
      const img = r.images[0]!;
      expect([img.image.width, img.image.height]).toEqual([128, 128]);
      // 3 first-pass steps, then 2 of the second pass, counted as one run of 5 as A1111's progress does.
      expect(steps).toEqual([1, 2, 3, 4, 5].map((s) => [s, 5]));
      const info = parseInfotext(img.infotext);
      expect([info.width, info.height]).toEqual([64, 64]);
      expect(info.denoisingStrength).toBe(0.6);
      expect(info.extra["Hires upscale"]).toBe("2");
      expect(info.extra["Hires steps"]).toBe("2");
      expect(info.extra["Hires upscaler"]).toBe(upscaler);
      expect(info.extra["Hires prompt"]).toBeUndefined();
      // What png-info reads from the PNG is the same request, which makes the same image.
      const stored = await readImageParameters(await img.png());
      const request = requestFromInfotext(parseInfotext(stored.parameters!));
      expect(request.hires).toEqual({ scale: 2, upscaler, steps: 2, denoisingStrength: 0.6 });
      const again = await p.generate({ ...request, jobId: BASE.jobId });
      expect(same(again.images[0]!.image.data, img.image.data)).toBe(true);
      expect(again.images[0]!.infotext).toBe(img.infotext);
    });
  }

  it("the upscalers differ from each other and from a plain 128x128 generation", async () => {
    const p = await load();
    const latent = await p.generate({ ...BASE, hires: { upscaler: "Latent" } });
    const lanczos = await p.generate({ ...BASE, hires: { upscaler: "Lanczos" } });
    const plain = await p.generate({ ...BASE, width: 128, height: 128 });
    expect(same(latent.images[0]!.image.data, lanczos.images[0]!.image.data)).toBe(false);
    expect(same(latent.images[0]!.image.data, plain.images[0]!.image.data)).toBe(false);
    // The defaults A1111 has: scale 2, upscaler Latent, strength 0.75, as many steps as the first pass.
    expect(latent.parameters.hires).toMatchObject({ width: 128, height: 128, steps: 0, denoisingStrength: 0.75 });
    expect(parseInfotext(latent.images[0]!.infotext).extra["Hires steps"]).toBeUndefined();
  });

  it("a pixel upscaler given by name gets the first pass's RGB bytes and the target size", async () => {
    const p = await load();
    calls.length = 0;
    const r = await p.generate({ ...BASE, batchSize: 2, hires: { upscaler: "doubler", resizeX: 96 } });
    expect(calls).toEqual([
      [64 * 64 * 3, 64, 64, 96, 96],
      [64 * 64 * 3, 64, 64, 96, 96],
    ]);
    expect(r.images.map((i) => [i.image.width, i.image.height])).toEqual([
      [96, 96],
      [96, 96],
    ]);
    const info = parseInfotext(r.images[0]!.infotext);
    expect(info.extra["Hires upscaler"]).toBe("Doubler");
    expect(info.extra["Hires resize"]).toBe("96x0");
    expect(info.extra["Hires upscale"]).toBeUndefined();
  });

  it("both resize sides: upscaled to cover them, the centre cropped (A1111's truncate)", async () => {
    const p = await load();
    const r = await p.generate({ ...BASE, hires: { resizeX: 128, resizeY: 96 } });
    expect([r.images[0]!.image.width, r.images[0]!.image.height]).toEqual([128, 96]);
    expect(r.parameters.hires).toMatchObject({ upscaleWidth: 128, upscaleHeight: 128, width: 128, height: 96 });
  });

  it("its own prompt and sampler are written as A1111 writes them", async () => {
    const p = await load();
    const r = await p.generate({
      ...BASE,
      hires: { prompt: "a green square", sampler: "DPM++ 2M", schedule: "Karras", steps: 2 },
    });
    const info = parseInfotext(r.images[0]!.infotext);
    expect(info.extra["Hires prompt"]).toBe("a green square");
    expect(info.extra["Hires sampler"]).toBe("DPM++ 2M");
    expect(info.extra["Hires schedule type"]).toBe("Karras");
    const again = await p.generate({ ...requestFromInfotext(info), jobId: BASE.jobId });
    expect(same(again.images[0]!.image.data, r.images[0]!.image.data)).toBe(true);
  });

  it("bad hires requests are refused before any compute, naming the fix", async () => {
    const p = await load();
    const refuse = (hires: GenerateParams["hires"], message: RegExp) =>
      expect(p.generate({ ...BASE, hires })).rejects.toThrow(message);
    await refuse(
      { upscaler: "ESRGAN_4x" },
      /unknown hires upscaler "ESRGAN_4x": use one of "Latent", .*"Lanczos", "Nearest".*"Doubler"/,
    );
    await refuse({ denoisingStrength: 0 }, /hires denoising strength 0/);
    await refuse({ scale: 100 }, /hires scale 100/);
    await refuse({ scale: 0.01 }, /each side must come to 8/);
    await refuse({ sampler: "nope" }, /unknown sampler "nope"/);
    await expect(p.generate({ ...BASE, hires: {}, initImage: new Uint8Array(4) })).rejects.toThrow(InputError);
  });
});
