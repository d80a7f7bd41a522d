import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { decodeImage, type RgbImage } from "../../src/image/codec.js";
import { latentPreview } from "../../src/image/preview.js";
import type { GenerateParams, StepPreview } from "../../src/pipeline/params.js";
import { loadPipeline, type LoadOptions } from "../../src/pipeline/load-pipeline.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { preprocessForClip, SafetyChecker, strongBlur } from "../../src/responsible/safety-checker.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { flagsEverything, flagsNothing, TINY_CHECKER, writeTinyChecker } from "../helpers/safety-fixtures.js";
import { removeTempDirs, tempDir } from "../weights/safetensors-writer.js";

const MODEL = ref("models/sd15-tiny");
const PARAMS: GenerateParams = {
  prompt: "a photo of a cat",
  negativePrompt: "",
  steps: 6,
  seed: 1,
  width: 64,
  height: 64,
};
const SHAPE = [1, 4, 8, 8] as const;

interface Seen {
  step: number;
  /** What the preview would show without any safeguard: the latent approximation at image size. */
  unchecked: RgbImage;
  preview: StepPreview;
}

const same = (a: RgbImage, b: RgbImage): boolean =>
  a.width === b.width && a.height === b.height && Buffer.from(a.data).equals(Buffer.from(b.data));
const isBlack = (img: RgbImage): boolean => img.data.every((v) => v === 0);

describe.skipIf(!HAVE_REFERENCE)(
  "step previews obey the safety checker and its policy (sd15-tiny, the tiny checker)",
  () => {
    const cacheDir = tempDir("preview-safety-cache");
    const open: StableDiffusionPipeline[] = [];
    /** The unchecked run: every step's latent approximation and the final image, and their CLIP embeddings. */
    let reference: { previews: RgbImage[]; final: RgbImage; embeds: Float32Array[] };

    async function pipeline(opts: LoadOptions): Promise<StableDiffusionPipeline> {
      // Every preview checked: these tests are about what a check decides; the share of time is tested on its own.
      const p = await loadPipeline(MODEL, { cacheDir, threads: 1, previewCheckShare: Infinity, ...opts });
      open.push(p);
      return p;
    }

    /** Generates, asking for every step's preview as it happens (as a watcher of the server does). */
    async function run(pipe: StableDiffusionPipeline, ask = 1): Promise<{ seen: Seen[]; final: RgbImage }> {
      const asked: Promise<Seen>[] = [];
      const { images } = await pipe.generate({
        ...PARAMS,
        onStep: (e) => {
          const unchecked = latentPreview(e.latents, SHAPE, { scale: 8 });
          for (let i = 0; i < ask; i++)
            asked.push(e.preview().then((preview) => ({ step: e.step, unchecked, preview })));
        },
      });
      return { seen: await Promise.all(asked), final: images[0]!.image };
    }

    /** A copy of the tiny checker whose first concept is `embedding`, firing above `threshold`; no other concept fires. */
    function checkerFor(embedding: Float32Array, threshold: number): string {
      const file = SafetensorsFile.open(ref("models/safety-tiny/safety_checker/model.safetensors"));
      const concepts = file.float32("concept_embeds");
      file.close();
      concepts.set(embedding, 0);
      const thresholds = new Float32Array(17).fill(2);
      thresholds[0] = threshold;
      return writeTinyChecker(tempDir("preview-safety-checker"), {
        concept_embeds: concepts,
        concept_embeds_weights: thresholds,
        special_care_embeds_weights: new Float32Array(3).fill(2),
      });
    }

    const cosine = (a: Float32Array, b: Float32Array): number => {
      let ab = 0,
        aa = 0,
        bb = 0;
      for (let i = 0; i < a.length; i++) (ab += a[i]! * b[i]!), (aa += a[i]! * a[i]!), (bb += b[i]! * b[i]!);
      return ab / Math.sqrt(aa * bb);
    };

    beforeAll(async () => {
      const pipe = await pipeline({ safetyChecker: false });
      const previews: RgbImage[] = [];
      const { images } = await pipe.generate({
        ...PARAMS,
        onStep: (e) => previews.push(latentPreview(e.latents, SHAPE, { scale: 8 })),
      });
      const final = images[0]!.image;
      const checker = await SafetyChecker.load(TINY_CHECKER, { threads: 1 });
      const all = [...previews, final];
      const e = await checker.embed(await preprocessForClip(all, checker.preprocess), all.length);
      await checker.release();
      const p = checker.config.projectionDim;
      reference = { previews, final, embeds: all.map((_, i) => e.imageEmbeds.slice(i * p, (i + 1) * p)) };
    });

    afterAll(async () => {
      for (const p of open) await p.close();
      removeTempDirs();
    });

    it("without a checker: every step's preview is the latent approximation at image size, unchecked, as before", async () => {
      const { seen } = await run(await pipeline({ safetyChecker: false }));
      expect(seen.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6]);
      for (const s of seen) {
        expect(s.preview.safety).toBe("unchecked");
        expect(same(await decodeImage(s.preview.png!), s.unchecked)).toBe(true);
      }
    });

    it("a checker that flags everything, block policy: no step shows a preview, each says the checker withheld it", async () => {
      const { seen, final } = await run(
        await pipeline({ safetyChecker: flagsEverything(tempDir("preview-safety-all")), safetyPolicy: "block" }),
      );
      expect(seen).toHaveLength(6);
      for (const s of seen) expect(s.preview).toEqual({ png: undefined, safety: "blocked", step: s.step });
      expect(isBlack(final)).toBe(true);
    });

    it("blur policy: every preview is blurred as the final image is: not the unchecked preview but the policy's blur of it", async () => {
      const { seen } = await run(
        await pipeline({ safetyChecker: flagsEverything(tempDir("preview-safety-all")), safetyPolicy: "blur" }),
      );
      expect(seen).toHaveLength(6);
      for (const s of seen) {
        expect(s.preview.safety).toBe("blurred");
        const shown = await decodeImage(s.preview.png!);
        expect(same(shown, s.unchecked)).toBe(false);
        expect(same(shown, await strongBlur(s.unchecked))).toBe(true);
      }
    });

    it("flag policy: previews are shown unaltered and marked flagged, as the final image is", async () => {
      const { seen, final } = await run(
        await pipeline({ safetyChecker: flagsEverything(tempDir("preview-safety-all")), safetyPolicy: "flag" }),
      );
      for (const s of seen) {
        expect(s.preview.safety).toBe("flagged");
        expect(same(await decodeImage(s.preview.png!), s.unchecked)).toBe(true);
      }
      expect(same(final, reference.final)).toBe(true);
    });

    it("a checker that flags nothing: previews are the unchecked ones, marked passed; asked twice per step, each is made and checked once", async () => {
      const pipe = await pipeline({
        safetyChecker: flagsNothing(tempDir("preview-safety-none")),
        safetyPolicy: "block",
      });
      const check = vi.spyOn(SafetyChecker.prototype, "check");
      try {
        const { seen } = await run(pipe, 2);
        expect(seen).toHaveLength(12);
        for (const s of seen) {
          expect(s.preview.safety).toBe("passed");
          expect(same(await decodeImage(s.preview.png!), s.unchecked)).toBe(true);
        }
        // Both askers of a step got the very same PNG: it was encoded once.
        for (let i = 0; i < 12; i += 2) expect(seen[i]!.preview.png).toBe(seen[i + 1]!.preview.png);
        // Six previews and the final image.
        expect(check).toHaveBeenCalledTimes(7);
      } finally {
        check.mockRestore();
      }
    });

    it("the last step's preview waits for the final image's verdict: withheld when only the final image is flagged", async () => {
      const target = reference.embeds[6]!;
      const previewCos = reference.embeds.slice(0, 6).map((e) => cosine(e, target));
      // The concept is the final image itself (cosine 1); every preview is far from it and passes on its own.
      expect(Math.max(...previewCos)).toBeLessThan(0.9);
      const { seen, final } = await run(
        await pipeline({ safetyChecker: checkerFor(target, 0.95), safetyPolicy: "block" }),
      );
      expect(isBlack(final)).toBe(true);
      expect(seen.map((s) => s.preview.safety)).toEqual(["passed", "passed", "passed", "passed", "passed", "blocked"]);
      expect(seen[5]!.preview.png).toBeUndefined();
    });

    it("once a preview is flagged, every later one is withheld without another check, though it would pass on its own", async () => {
      const target = reference.embeds[0]!;
      const others = reference.embeds.slice(1).map((e) => cosine(e, target));
      // The first preview is the concept (cosine 1); the later ones and the final image stay below the threshold.
      const threshold = (1 + Math.max(...others)) / 2;
      expect(1 - threshold).toBeGreaterThan(0.002);
      const pipe = await pipeline({ safetyChecker: checkerFor(target, threshold), safetyPolicy: "block" });
      const check = vi.spyOn(SafetyChecker.prototype, "check");
      try {
        const { seen, final } = await run(pipe);
        expect(seen.map((s) => s.preview.safety)).toEqual([
          "blocked",
          "blocked",
          "blocked",
          "blocked",
          "blocked",
          "blocked",
        ]);
        // The final image is judged on its own and passes.
        expect(same(final, reference.final)).toBe(true);
        // The first preview and the final image only.
        expect(check).toHaveBeenCalledTimes(2);
      } finally {
        check.mockRestore();
      }
    });
  },
);
