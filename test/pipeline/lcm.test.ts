import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { guidanceScaleEmbedding } from "../../src/pipeline/guidance-embedding.js";
import { golden, HAVE_REFERENCE, relErr } from "../helpers/fixtures.js";
import {
  expectGoldenRun,
  maxPixelDiff,
  PipelineCache,
  PROMPT,
  tinyLayouts,
  type TinyLayout,
} from "../helpers/pipeline-parity.js";

const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-lcm-"));

describe.skipIf(!HAVE_REFERENCE)("LCM reproduces diffusers' LatentConsistencyModelPipeline on lcm-tiny", () => {
  const layouts = tinyLayouts("lcm-tiny");
  const pipes = new PipelineCache({ cacheDir, threads: 1, safetyChecker: false });
  const load = (l: TinyLayout) => pipes.load(l);
  afterAll(() => pipes.closeAll());

  it("the guidance embedding of w = guidance - 1 is the reference's timestep_cond", () => {
    const gold = golden("goldens/lcm-tiny/txt2img.safetensors").get("timestep_cond");
    // Not bit-exact: sin(7000 x f) turns one float32 ulp of PyTorch's exp(f) into 1e-4 of the value.
    expect(relErr(guidanceScaleEmbedding(8, 32), gold)).toBeLessThan(1e-4);
  });

  for (const l of layouts) {
    it(`${l.name}: the model's defaults (LCM sampler, 4 steps) at guidance 8, seed 42: embedded guidance without a CFG batch, fresh noise between steps, the image decoded from the last denoised`, async () => {
      const p = await load(l);
      expect([p.defaultSampler, p.defaultSteps, p.defaultCfgScale]).toEqual(["lcm", 4, 8.5]);
      await expectGoldenRun(p, "goldens/lcm-tiny/txt2img.safetensors", {
        prompt: PROMPT,
        cfgScale: 8,
        seed: 42,
        width: 64,
        height: 64,
      });
    });
  }

  it("the guidance scale changes the image through the embedding; the negative prompt does not (there is no unconditional pass)", async () => {
    const p = await load(layouts[0]!);
    const want = golden("goldens/lcm-tiny/txt2img.safetensors").get("image_uint8");
    const params = { prompt: PROMPT, cfgScale: 8, seed: 42, width: 64, height: 64 };
    expect(
      maxPixelDiff(
        (await p.generate({ ...params, negativePrompt: "blurry, low quality" })).images[0]!.image.data,
        want,
      ),
    ).toBeLessThanOrEqual(1);
    expect(maxPixelDiff((await p.generate({ ...params, cfgScale: 2 })).images[0]!.image.data, want)).toBeGreaterThan(0);
  });
});
