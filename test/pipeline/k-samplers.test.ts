/**
 * The k-diffusion-only samplers (DPM2, DPM2 a, DPM++ 2S a, DPM++ 3M SDE, Restart) end to end on sd15-tiny: text to
 * image and image to image through the pipeline's loop, with the infotext A1111 writes for them.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

const BASE = { prompt: "a red apple on a table", negativePrompt: "", cfgScale: 5, seed: 11, width: 64, height: 64 };
const SAMPLERS = ["DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 3M SDE", "Restart"];

describe.skipIf(!HAVE_REFERENCE)("k-diffusion samplers on sd15-tiny", () => {
  let pipe: StableDiffusionPipeline;
  const load = async () =>
    (pipe ??= await loadPipeline(ref("models/sd15-tiny"), {
      cacheDir: mkdtempSync(join(tmpdir(), "diffuse-k-samplers-")),
      threads: 1,
    }));

  it("each makes a finite 64x64 image unlike Euler's, and writes its A1111 name in the infotext", async () => {
    const p = await load();
    const euler = (await p.generate({ ...BASE, steps: 4, sampler: "Euler" })).images[0]!;
    for (const name of SAMPLERS) {
      let last: Float32Array | undefined;
      let calls = 0;
      const { images } = await p.generate({
        ...BASE,
        steps: 4,
        sampler: name,
        onStep: (e) => {
          calls++;
          last = e.latents;
        },
      });
      const image = images[0]!;
      // One event per model call: 2n - 1 for the two-stage samplers, n for DPM++ 3M SDE.
      expect(calls, name).toBe(name === "DPM++ 3M SDE" ? 4 : 7);
      expect(last?.length, name).toBe(4 * 8 * 8);
      expect(last!.every(Number.isFinite), name).toBe(true);
      expect(image.image.width, name).toBe(64);
      expect(image.image.height, name).toBe(64);
      expect(image.image.data.length, name).toBe(64 * 64 * 3);
      expect(Buffer.from(image.image.data).equals(Buffer.from(euler.image.data)), name).toBe(false);
      expect(image.infotext, name).toContain(`Sampler: ${name}, `);
    }
  });

  it("Restart at 20 steps (its restart segment on) and a schedule type other than the default", async () => {
    const p = await load();
    const restart = (await p.generate({ ...BASE, steps: 20, sampler: "restart" })).images[0]!;
    expect(restart.infotext).toContain("Sampler: Restart, ");
    const expo = await p.generate({ ...BASE, steps: 4, sampler: "DPM2", schedule: "Exponential" });
    const karras = await p.generate({ ...BASE, steps: 4, sampler: "DPM2" });
    expect(expo.images[0]!.infotext).toContain("Schedule type: Exponential");
    expect(Buffer.from(expo.images[0]!.image.data).equals(Buffer.from(karras.images[0]!.image.data))).toBe(false);
  });

  it("writes the schedule type A1111 resolves Automatic to (DPM2: Karras, DPM++ 3M SDE: Exponential), which reads back to the same image", async () => {
    const p = await load();
    const auto = (await p.generate({ ...BASE, steps: 3, sampler: "DPM2" })).images[0]!;
    expect(auto.infotext).toContain("Sampler: DPM2, Schedule type: Karras, ");
    const explicit = (await p.generate({ ...BASE, steps: 3, sampler: "DPM2", schedule: "Karras" })).images[0]!;
    expect(Buffer.from(explicit.image.data).equals(Buffer.from(auto.image.data))).toBe(true);
    const sde = (await p.generate({ ...BASE, steps: 3, sampler: "DPM++ 3M SDE" })).images[0]!;
    expect(sde.infotext).toContain("Sampler: DPM++ 3M SDE, Schedule type: Exponential, ");
    // A sampler whose Automatic is its own schedule writes none, as A1111.
    const euler = (await p.generate({ ...BASE, steps: 3, sampler: "Euler" })).images[0]!;
    expect(euler.infotext).not.toContain("Schedule type");
  });

  it("each runs image to image from part-way through its schedule", async () => {
    const p = await load();
    const px = new Uint8Array(64 * 64 * 3).map((_, i) => (i * 7) % 256);
    const init = await sharp(px, { raw: { width: 64, height: 64, channels: 3 } })
      .png()
      .toBuffer();
    for (const name of SAMPLERS) {
      const { images } = await p.generate({
        ...BASE,
        steps: 6,
        sampler: name,
        initImage: init,
        denoisingStrength: 0.5,
      });
      expect(images[0]!.image.data.length, name).toBe(64 * 64 * 3);
      expect(images[0]!.infotext, name).toContain("Denoising strength: 0.5");
    }
  });
});
