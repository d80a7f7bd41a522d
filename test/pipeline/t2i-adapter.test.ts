import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AdapterGuidance } from "../../src/pipeline/adapter-guidance.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { goldenAt, HAVE_REFERENCE, maxPixelDiff, OWN_FIXTURES, ref, relErr } from "../helpers/fixtures.js";

const DIR = join(OWN_FIXTURES, "t2i-adapter");

describe("T2I-Adapter guidance window", () => {
  it("feeds the active adapters' features summed, and zeros at calls outside every window", () => {
    const shapes = [[1, 1, 2] as const, [1, 1, 1] as const];
    const a = { features: [Float32Array.of(1, 2), Float32Array.of(3)], start: 0, end: 0.5 };
    const b = { features: [Float32Array.of(10, 20)], start: 0.25, end: 1 };
    const g = new AdapterGuidance([a, b], shapes);
    const at = (i: number) => {
      const feeds = g.residuals(i, 4);
      return [0, 1].map((k) => Array.from(feeds[`down_intrablock_additional_residual_${k}`]!.data as Float32Array));
    };
    // Call 0: a only; call 1: both (b's missing second feature adds nothing); calls 2-3: b only.
    expect(at(0)).toEqual([[1, 2], [3]]);
    expect(at(1)).toEqual([[11, 22], [3]]);
    expect(at(3)).toEqual([[10, 20], [0]]);
    expect(g.residuals(0, 4)["down_intrablock_additional_residual_0"]!.dims).toEqual([1, 1, 1, 2]);
    const none = new AdapterGuidance([{ ...a, start: 0.6, end: 0.7 }], shapes);
    expect(Array.from(none.residuals(0, 4)["down_intrablock_additional_residual_0"]!.data as Float32Array)).toEqual([
      0, 0,
    ]);
  });
});

describe.skipIf(!HAVE_REFERENCE)("T2I-Adapter pipeline on sd15-tiny (test/fixtures/t2i-adapter)", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-t2i-"));
  let pipe: StableDiffusionPipeline | undefined;
  const load = async () =>
    (pipe ??= await loadPipeline(ref("models/sd15-tiny"), {
      cacheDir,
      threads: 1,
      safetyChecker: false,
      watermark: false,
      provenance: false,
    }));
  afterAll(async () => {
    await pipe?.close();
  });
  const gold = goldenAt(join(DIR, "txt2img-sd15-tiny-104x72.safetensors"));
  const m = gold.metadata();
  const recipe = {
    prompt: m.prompt!,
    negativePrompt: m.negative_prompt,
    steps: Number(m.steps),
    cfgScale: Number(m.cfg_scale),
    seed: Number(m.seed),
    sampler: m.sampler!,
    width: Number(m.width),
    height: Number(m.height),
  };
  const unit = (model: string, weight = Number(m.adapter_scale)) => ({
    image: join(DIR, m.control_image!),
    model,
    weight,
    guidanceStart: Number(m.guidance_start),
    guidanceEnd: Number(m.guidance_end),
  });

  for (const [layout, file] of [
    ["TencentARC's original file", "sd15-tiny-adapter.pth.safetensors"],
    ["diffusers folder", "sd15-tiny-adapter"],
  ] as const) {
    it(`${layout}: weight 0.8, guidance ${m.guidance_start}-${m.guidance_end}, Euler: latents after every step and the image match the reference`, async () => {
      const p = await load();
      const perStep = gold.get("latents_after_step");
      const n = perStep.length / gold.shape("latents_after_step")[0]!;
      const errors: number[] = [];
      const { images } = await p.generate({
        ...recipe,
        controlnet: [unit(join(DIR, file))],
        onStep: (e) => errors.push(relErr(e.latents, perStep.subarray((e.step - 1) * n, e.step * n))),
      });
      expect(errors.length).toBe(Number(m.steps));
      for (const e of errors) expect(e).toBeLessThan(1e-4);
      expect(maxPixelDiff(images[0]!.image.data, gold.get("image_uint8"))).toBeLessThanOrEqual(1);
      // As A1111's ControlNet extension writes an adapter unit: a ControlNet entry naming the adapter's title.
      expect(images[0]!.infotext).toMatch(
        new RegExp(
          `ControlNet 0: "Module: none, Model: ${file.replace(/\.safetensors$/, "").replace(/\./g, "\\.")} \\[[0-9a-f]{8}\\], Weight: 0\\.8, Resize Mode: Crop and Resize, Guidance Start: 0\\.1, Guidance End: 0\\.7,`,
        ),
      );
      expect(p.networks.has("unet_adapter")).toBe(true);
      expect(p.networks.has("unet")).toBe(false);
    });
  }

  it("the adapter acts only inside its window: with the window closed the run is the plain one", async () => {
    const p = await load();
    const plain = await p.generate({ ...recipe, steps: 3 });
    const closed = await p.generate({
      ...recipe,
      steps: 3,
      controlnet: [{ ...unit(join(DIR, "sd15-tiny-adapter")), guidanceStart: 0.9, guidanceEnd: 0.95 }],
    });
    const open = await p.generate({
      ...recipe,
      steps: 3,
      controlnet: [{ ...unit(join(DIR, "sd15-tiny-adapter"), 2), guidanceStart: 0, guidanceEnd: 1 }],
    });
    const px = (r: typeof plain) => Float32Array.from(r.images[0]!.image.data);
    expect(maxPixelDiff(closed.images[0]!.image.data, px(plain))).toBe(0);
    expect(maxPixelDiff(open.images[0]!.image.data, px(plain))).toBeGreaterThan(4);
  });

  it("runs beside a ControlNet (the UNet taking both residuals): an adapter at weight 0 leaves the ControlNet's image", async () => {
    const p = await load();
    const base = { ...recipe, steps: 2, width: 64, height: 64 };
    const controlNet = {
      image: ref("goldens/controlnet-tiny/control_scribble.png"),
      model: ref("models/controlnet-tiny"),
    };
    const alone = await p.generate({ ...base, controlnet: [controlNet] });
    const both = await p.generate({ ...base, controlnet: [controlNet, unit(join(DIR, "sd15-tiny-adapter"), 0)] });
    expect(p.networks.has("unet_control_adapter")).toBe(true);
    expect(p.networks.has("unet_control")).toBe(false);
    expect(
      maxPixelDiff(both.images[0]!.image.data, Float32Array.from(alone.images[0]!.image.data)),
    ).toBeLessThanOrEqual(1);
    expect(both.images[0]!.infotext).toMatch(
      /ControlNet 1: "Module: none, Model: sd15-tiny-adapter \[[0-9a-f]{8}\], Weight: 0\.0,/,
    );
  });

  it("refuses an adapter made for another family, naming the shapes and the fix", async () => {
    const p = await load();
    await expect(
      p.generate({ ...recipe, width: 64, height: 64, controlnet: [unit(join(DIR, "sdxl-tiny-adapter"))] }),
    ).rejects.toThrow(
      /does not fit the model .*sd15-tiny.*features are \[16,4,4\].*UNet takes \[16,8,8\].*SDXL ones for SDXL/,
    );
    await expect(
      p.generate({ ...recipe, width: 72, height: 64, controlnet: [unit(join(DIR, "sdxl-tiny-adapter"))] }),
    ).rejects.toThrow(
      /unshuffles the control map by 16: use a width and height that are multiples of 16 \(not 72x64\)/,
    );
  });
});
