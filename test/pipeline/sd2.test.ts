import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import { golden, HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import {
  expectGoldenRun,
  maxPixelDiff,
  PipelineCache,
  PROMPT,
  tinyLayouts,
  type TinyLayout,
} from "../helpers/pipeline-parity.js";

const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-sd2-"));

describe.skipIf(!HAVE_REFERENCE)(
  "SD2 (v-prediction, OpenCLIP text encoder) reproduces diffusers' StableDiffusionPipeline on sd2v-tiny",
  () => {
    const layouts = tinyLayouts("sd2v-tiny");
    const pipes = new PipelineCache({ cacheDir, threads: 1, safetyChecker: false });
    const load = (l: TinyLayout) => pipes.load(l);
    afterAll(() => pipes.closeAll());

    for (const l of layouts) {
      it(`${l.name}: txt2img, DDIM v-prediction, 4 steps, cfg 7.5, seed 31: latents after every step and the image`, async () => {
        const p = await load(l);
        expect(p.schedulerConfig.prediction_type).toBe("v_prediction");
        await expectGoldenRun(p, "goldens/sd2v-tiny/txt2img.safetensors", {
          prompt: PROMPT,
          negativePrompt: "",
          steps: 4,
          cfgScale: 7.5,
          seed: 31,
          sampler: "ddim",
          width: 64,
          height: 64,
        });
      });

      it(`${l.name}: img2img, strength 0.6, 10 steps, seed 7`, async () => {
        const p = await load(l);
        const inputs = golden("goldens/sd2v-tiny/img2img_inputs.safetensors");
        const png = await sharp(Uint8Array.from(inputs.get("image_uint8_hwc")), {
          raw: { width: 64, height: 64, channels: 3 },
        })
          .png()
          .toBuffer();
        await expectGoldenRun(p, "goldens/sd2v-tiny/img2img.safetensors", {
          prompt: PROMPT,
          negativePrompt: "",
          steps: 10,
          cfgScale: 7.5,
          seed: 7,
          sampler: "ddim",
          initImage: png,
          denoisingStrength: 0.6,
          width: 64,
          height: 64,
        });
      });
    }

    it("clip skip changes nothing on SD2, as in A1111 (its OpenCLIP embedder always takes the penultimate layer); the infotext keeps it", async () => {
      const p = await load(layouts[0]!);
      const base = {
        prompt: PROMPT,
        negativePrompt: "",
        steps: 4,
        cfgScale: 7.5,
        seed: 31,
        sampler: "ddim",
        width: 64,
        height: 64,
      };
      const skipped = (await p.generate({ ...base, clipSkip: 2 })).images[0]!;
      expect(
        maxPixelDiff(skipped.image.data, golden("goldens/sd2v-tiny/txt2img.safetensors").get("image_uint8")),
      ).toBeLessThanOrEqual(1);
      expect(skipped.infotext).toMatch(/, Clip skip: 2, /);
    });

    it('prediction "epsilon" overrides the folder\'s v_prediction, for the checkpoint and the samplers', async () => {
      const p = await loadPipeline(ref("models/sd2v-tiny"), {
        cacheDir,
        threads: 1,
        safetyChecker: false,
        prediction: "epsilon",
      });
      try {
        expect(p.config.predictionType).toBe("epsilon");
        expect(p.schedulerConfig.prediction_type).toBe("epsilon");
        const { images } = await p.generate({
          prompt: PROMPT,
          negativePrompt: "",
          steps: 4,
          cfgScale: 7.5,
          seed: 31,
          sampler: "ddim",
          width: 64,
          height: 64,
        });
        expect(
          maxPixelDiff(images[0]!.image.data, golden("goldens/sd2v-tiny/txt2img.safetensors").get("image_uint8")),
        ).toBeGreaterThan(1);
      } finally {
        await p.close();
      }
    });

    it("the default size is the model's (sample size x VAE factor: 64 for the tiny model)", async () => {
      const p = await load(layouts[1]!);
      expect(p.defaultSize).toBe(64);
    });
  },
);
