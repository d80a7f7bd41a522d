import { afterAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { controlNetConfigFromDiffusers } from "../../src/configs/controlnet.js";
import { controlNetParamShapes } from "../../src/models/param-shapes.js";
import { ControlGuidance } from "../../src/pipeline/control-guidance.js";
import { ControlNetModel } from "../../src/pipeline/controlnet-model.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { golden, HAVE_REFERENCE, maxPixelDiff, ref, relErr } from "../helpers/fixtures.js";
import { PROMPT } from "../helpers/pipeline-parity.js";
import { f32Bytes, removeTempDirs, tempDir, writeSafetensors } from "../weights/safetensors-writer.js";

const CONTROL_IMAGE = ref("goldens/controlnet-tiny/control_scribble.png");

describe("ControlNet guidance window", () => {
  it("follows diffusers' controlnet_keep: call i of n acts unless i/n < start or (i+1)/n > end", () => {
    const keep = (n: number, start: number, end: number) =>
      Array.from({ length: n }, (_, i) => ControlGuidance.active(i, n, start, end));
    // The golden's PNDM run: 9 model calls, end 0.5 keeps calls 0-3 (4/9 <= 0.5 < 5/9).
    expect(keep(9, 0, 0.5)).toEqual([true, true, true, true, false, false, false, false, false]);
    expect(keep(9, 0, 1)).toEqual(Array(9).fill(true));
    expect(keep(10, 0.3, 1)).toEqual([false, false, false, true, true, true, true, true, true, true]);
    expect(keep(4, 0.5, 0.5)).toEqual([false, false, false, false]);
  });
});

describe.skipIf(!HAVE_REFERENCE)(
  "ControlNet pipeline on sd15-tiny + controlnet-tiny reproduces diffusers' StableDiffusionControlNetPipeline",
  () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-controlnet-"));
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
      removeTempDirs();
    });

    const cases = [
      {
        fixture: "txt2img",
        end: 1,
        model: ref("models/controlnet-tiny"),
        config: undefined,
        layout: "diffusers folder",
      },
      {
        fixture: "txt2img_guidance_end_0.5",
        end: 0.5,
        model: ref("models/controlnet-tiny"),
        config: undefined,
        layout: "diffusers folder",
      },
      {
        fixture: "txt2img",
        end: 1,
        model: ref("models/controlnet-tiny.ldm.safetensors"),
        config: ref("models/controlnet-tiny"),
        layout: "single file + config",
      },
    ];
    for (const c of cases) {
      it(`${c.fixture} (${c.layout}): scale 0.8, guidance end ${c.end}, PNDM 8 steps: latents after every step and the image within 1/255`, async () => {
        const p = await load();
        const gold = golden(`goldens/controlnet-tiny/${c.fixture}.safetensors`);
        const perStep = gold.get("latents_after_step");
        const n = 4 * 8 * 8;
        const errors: number[] = [];
        const { images, controlMaps } = await p.generate({
          prompt: PROMPT,
          negativePrompt: "blurry, low quality",
          steps: 8,
          cfgScale: 7.5,
          seed: 42,
          sampler: "pndm",
          width: 64,
          height: 64,
          controlnet: [{ image: CONTROL_IMAGE, model: c.model, config: c.config, weight: 0.8, guidanceEnd: c.end }],
          onStep: (e) => errors.push(relErr(e.latents, perStep.subarray((e.step - 1) * n, e.step * n))),
        });
        expect(errors.length).toBe(gold.shape("latents_after_step")[0]);
        for (const e of errors) expect(e).toBeLessThan(1e-4);
        expect(maxPixelDiff(images[0]!.image.data, gold.get("image_uint8"))).toBeLessThanOrEqual(1);
        // The map the ControlNet saw is the image itself (module none), as diffusers takes it.
        expect(Float32Array.from(controlMaps[0]!.data, (v) => v / 255)).toEqual(
          nhwc(gold.get("controlnet_cond"), 64, 64),
        );
        expect(images[0]!.infotext).toMatch(
          new RegExp(
            `ControlNet 0: "Module: none, Model: controlnet-tiny(\\.ldm)? \\[[0-9a-f]{8}\\], Weight: 0\\.8, Resize Mode: Crop and Resize, Guidance Start: 0\\.0, Guidance End: ${c.end === 1 ? "1\\.0" : "0\\.5"}, Pixel Perfect: False, Control Mode: Balanced"`,
          ),
        );
      });
    }

    it("two ControlNets add their residuals: the same unit twice at 0.4 each is one unit at 0.8", async () => {
      const p = await load();
      const base = {
        prompt: PROMPT,
        negativePrompt: "blurry, low quality",
        steps: 3,
        cfgScale: 7.5,
        seed: 42,
        sampler: "pndm",
        width: 64,
        height: 64,
      };
      const unit = { image: CONTROL_IMAGE, model: ref("models/controlnet-tiny") };
      const once = await p.generate({ ...base, controlnet: [{ ...unit, weight: 0.8 }] });
      const twice = await p.generate({
        ...base,
        controlnet: [
          { ...unit, weight: 0.4 },
          { ...unit, weight: 0.4 },
        ],
      });
      expect(
        maxPixelDiff(twice.images[0]!.image.data, Float32Array.from(once.images[0]!.image.data)),
      ).toBeLessThanOrEqual(1);
      expect(twice.images[0]!.infotext).toContain("ControlNet 1: ");
      // And a ControlNet changes the picture: without it, the image differs.
      const plain = await p.generate(base);
      expect(maxPixelDiff(plain.images[0]!.image.data, Float32Array.from(once.images[0]!.image.data))).toBeGreaterThan(
        10,
      );
    });

    it("keeps one UNet variant loaded: a controlled generation releases the plain UNet, a plain one the residual UNet", async () => {
      const p = await load();
      const base = { prompt: PROMPT, steps: 1, width: 64, height: 64, seed: 1 };
      await p.generate(base);
      expect(p.networks.has("unet")).toBe(true);
      await p.generate({ ...base, controlnet: [{ image: CONTROL_IMAGE, model: ref("models/controlnet-tiny") }] });
      expect(p.networks.has("unet_control")).toBe(true);
      expect(p.networks.has("unet")).toBe(false);
      await p.generate(base);
      expect(p.networks.has("unet")).toBe(true);
      expect(p.networks.has("unet_control")).toBe(false);
    });

    it("refuses a ControlNet of another family, a bad weight and a guidance window that never opens, naming the fix", async () => {
      const p = await load();
      const base = { prompt: PROMPT, steps: 2, width: 64, height: 64 };
      await expect(
        p.generate({
          ...base,
          controlnet: [{ image: CONTROL_IMAGE, model: ref("models/controlnet-tiny"), weight: 3 }],
        }),
      ).rejects.toThrow(/weight 3 is invalid: use a number from 0 to 2/);
      await expect(
        p.generate({
          ...base,
          controlnet: [
            { image: CONTROL_IMAGE, model: ref("models/controlnet-tiny"), guidanceStart: 0.8, guidanceEnd: 0.2 },
          ],
        }),
      ).rejects.toThrow(/guidance start 0.8 is after guidance end 0.2/);
      await expect(
        p.generate({
          ...base,
          controlnet: [{ image: CONTROL_IMAGE, model: ref("models/controlnet-tiny"), module: "hed_magic" }],
        }),
      ).rejects.toThrow(/module "hed_magic" is unknown: use one of none/);
      await expect(
        p.generate({ ...base, controlnet: [{ image: CONTROL_IMAGE, model: ref("models/sd15-tiny") }] }),
      ).rejects.toThrow(/sd15-tiny\/config\.json: missing \(a diffusers ControlNet folder holds config\.json/);
      // A ControlNet attending to 40-wide text (as sd2v-tiny's) cannot guide sd15-tiny's UNet (32-wide).
      await expect(
        p.generate({ ...base, controlnet: [{ image: CONTROL_IMAGE, model: otherWidthControlNet(40) }] }),
      ).rejects.toThrow(/40-wide text\) does not fit the model .*32-wide text.*made for the model's family/);
    });
  },
);

describe.skipIf(!HAVE_REFERENCE)("ControlNet sessions and the compile cache", () => {
  it("builds a ControlNet's graph once per file: a second load opens the cached entry, keyed by the ControlNet's own hash", async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-controlnet-cache-"));
    const open = async () => {
      const status: string[] = [];
      const cn = await ControlNetModel.open(ref("models/controlnet-tiny.ldm.safetensors"), {
        cacheDir,
        threads: 1,
        config: ref("models/controlnet-tiny"),
        onStatus: (m) => status.push(m),
      });
      await cn.session();
      await cn.close();
      return status;
    };
    expect((await open()).some((m) => /building the controlnet graph/.test(m))).toBe(true);
    expect((await open()).some((m) => /building/.test(m))).toBe(false);
    const entries = readdirSync(cacheDir).filter((n) => n.includes("-controlnet-"));
    expect(entries).toHaveLength(1);
    expect(
      entries[0]!.startsWith(
        createHash("sha256")
          .update(readFileSync(ref("models/controlnet-tiny.ldm.safetensors")))
          .digest("hex")
          .slice(0, 24),
      ),
    ).toBe(true);
  });
});

/** A copy of controlnet-tiny whose attention takes `width`-wide text (zero weights): a ControlNet for another family. */
function otherWidthControlNet(width: number): string {
  const dir = tempDir("other-controlnet");
  const config = {
    ...JSON.parse(readFileSync(ref("models/controlnet-tiny/config.json"), "utf8")),
    cross_attention_dim: width,
  };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  const shapes = controlNetParamShapes(controlNetConfigFromDiffusers(config));
  writeSafetensors(
    join(dir, "diffusion_pytorch_model.safetensors"),
    [...shapes].map(([name, shape]) => ({
      name,
      dtype: "F32",
      shape,
      data: f32Bytes(new Float32Array(shape.reduce((a, b) => a * b, 1))),
    })),
  );
  return dir;
}

/** NCHW [1 or 2, 3, h, w] (first image) -> HWC, as the map's bytes are laid out. */
function nhwc(nchw: Float32Array, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w * 3);
  for (let c = 0; c < 3; c++) for (let i = 0; i < h * w; i++) out[i * 3 + c] = nchw[c * h * w + i]!;
  return out;
}

describe.skipIf(!HAVE_REFERENCE)("a LoRA with a ControlNet (sd15-tiny + controlnet-tiny)", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-controlnet-lora-"));
  const loraDir = mkdtempSync(join(tmpdir(), "diffuse-controlnet-loras-"));
  copyFileSync(ref("models/sd15-tiny-adapters/lora-kohya.safetensors"), join(loraDir, "lora-kohya.safetensors"));
  let pipe: StableDiffusionPipeline | undefined;
  afterAll(async () => {
    await pipe?.close();
    rmSync(cacheDir, { recursive: true, force: true });
    rmSync(loraDir, { recursive: true, force: true });
  });

  it("the UNet that takes residuals gets the LoRA too: at weight 0 the ControlNet leaves the LoRA's image as it is", async () => {
    pipe = await loadPipeline(ref("models/sd15-tiny"), {
      cacheDir,
      loraDir,
      threads: 1,
      safetyChecker: false,
      watermark: false,
      provenance: false,
    });
    const job = { prompt: `${PROMPT} <lora:lora-kohya:0.8>`, steps: 4, seed: 7, width: 64, height: 64 };
    const plain = await pipe.generate({ ...job, prompt: PROMPT });
    const withLora = await pipe.generate(job);
    const silentControl = await pipe.generate({
      ...job,
      controlnet: [{ image: CONTROL_IMAGE, model: ref("models/controlnet-tiny"), weight: 0 }],
    });
    // The LoRA changes the picture; a ControlNet that adds nothing does not take the change away.
    expect(maxPixelDiff(withLora.images[0]!.image.data, plain.images[0]!.image.data)).toBeGreaterThan(2);
    expect(maxPixelDiff(silentControl.images[0]!.image.data, withLora.images[0]!.image.data)).toBeLessThanOrEqual(1);
  });
});
