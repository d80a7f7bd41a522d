import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import { goldenAt, HAVE_REFERENCE, maxPixelDiff, OWN_FIXTURES, ref, relErr } from "../helpers/fixtures.js";

/**
 * Text to image at sizes that are multiples of 8 but whose latents 2^(levels-1) does not divide, against the
 * reference's run at that size (test/fixtures/odd-sizes, made by scripts/reference/odd_sizes.py: seeded initial
 * latents, Euler with the model's own schedule, classifier-free guidance). The recipe is the fixture's metadata.
 * The SDXL run's recipe has no negative prompt: the reference passed none, and force_zeros_for_empty_prompt (true in
 * sdxl-tiny's model_index.json) made its negative conditioning zeros (hidden states and pooled embeds); a request
 * without a negative prompt must give the same here.
 */

const RUNS = [
  { model: "sd15-tiny", fixture: "txt2img-sd15-tiny-104x72" },
  { model: "sd2v-tiny", fixture: "txt2img-sd2v-tiny-40x88" },
  { model: "sdxl-tiny", fixture: "txt2img-sdxl-tiny-56x104" },
];

describe.skipIf(!HAVE_REFERENCE)(
  "text-to-image at sizes that are not multiples of 2^(levels-1) latents reproduces the reference",
  () => {
    for (const run of RUNS) {
      it(`${run.model}: ${run.fixture.split("-").pop()} px (width x height), Euler: latents after every step and the image`, async () => {
        const gold = goldenAt(join(OWN_FIXTURES, "odd-sizes", `${run.fixture}.safetensors`));
        const m = gold.metadata();
        const [width, height] = [Number(m.width), Number(m.height)];
        const pipe = await loadPipeline(ref(`models/${run.model}`), {
          cacheDir: mkdtempSync(join(tmpdir(), "diffuse-odd-")),
          threads: 1,
        });
        const perStep = gold.get("latents_after_step");
        const n = perStep.length / gold.shape("latents_after_step")[0]!;
        const errors: number[] = [];
        const { images } = await pipe.generate({
          prompt: m.prompt!,
          negativePrompt: m.negative_prompt,
          steps: Number(m.steps),
          cfgScale: Number(m.cfg_scale),
          seed: Number(m.seed),
          sampler: m.sampler!,
          width,
          height,
          onStep: (e) => errors.push(relErr(e.latents, perStep.subarray((e.step - 1) * n, e.step * n))),
        });
        console.log(`${run.fixture}: latents rel err per step ${errors.map((e) => e.toExponential(2)).join(", ")}`);
        expect(errors.length).toBe(gold.shape("latents_after_step")[0]);
        for (const e of errors) expect(e).toBeLessThan(1e-4);
        const image = images[0]!.image;
        expect([image.width, image.height]).toEqual([width, height]);
        const diff = maxPixelDiff(image.data, gold.get("image_uint8"));
        console.log(`${run.fixture}: largest pixel difference ${diff}/255`);
        expect(diff).toBeLessThanOrEqual(1);
      });
    }
  },
);
