import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { GenerateParams } from "../../src/pipeline/params.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { maxPixelDiff } from "../helpers/pipeline-parity.js";

/**
 * stage-memory.ts: a generation short of memory lets go of its text encoders once the prompts are encoded and of
 * its VAE decoder after its last decode, so that neither sits in memory beside the other stages' working memory.
 */
describe.skipIf(!HAVE_REFERENCE)("a generation that releases its finished networks (sdxl-tiny)", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-stage-memory-"));
  const pipes: StableDiffusionPipeline[] = [];
  afterAll(async () => {
    for (const p of pipes) await p.close();
    rmSync(cacheDir, { recursive: true, force: true });
  });
  const open = async (stageMemory: "keep" | "release" | "auto") => {
    const p = await loadPipeline(ref("models/sdxl-tiny"), { cacheDir, threads: 1, safetyChecker: false, stageMemory });
    pipes.push(p);
    return p;
  };
  const params: GenerateParams = { prompt: "a red cube", steps: 2, cfgScale: 5, seed: 3, width: 64, height: 64 };
  const loaded = (p: StableDiffusionPipeline) =>
    (["text_encoder", "text_encoder_2", "unet", "vae_decoder"] as const).filter((n) => p.networks.has(n));

  it("release: the text encoders are gone before the first UNet step and the VAE decoder after the decode; the next generation reopens them and makes the same image", async () => {
    const kept = await open("keep");
    const reference = (await kept.generate(params)).images[0]!.image.data;
    expect(loaded(kept)).toEqual(["text_encoder", "text_encoder_2", "unet", "vae_decoder"]);

    const p = await open("release");
    const duringSteps: string[][] = [];
    for (let i = 0; i < 2; i++) {
      const { images } = await p.generate({ ...params, onStep: () => duringSteps.push(loaded(p)) });
      expect(maxPixelDiff(images[0]!.image.data, reference)).toBe(0);
      expect(loaded(p)).toEqual(["unet"]);
    }
    expect(duringSteps).toEqual([["unet"], ["unet"], ["unet"], ["unet"]]);
  });

  it("auto keeps every network of a small model loaded", async () => {
    const p = await open("auto");
    await p.generate(params);
    expect(loaded(p)).toEqual(["text_encoder", "text_encoder_2", "unet", "vae_decoder"]);
  });
});
