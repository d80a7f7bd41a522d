/**
 * The estimate of a generation's memory and time (generation-estimate.ts) on a profile of known shapes, against
 * figures worked out by hand here: SD 1.5's widths (UNet 320 channels at its first level, VAE decoder 256 at full
 * resolution), 20 tensors of the UNet's width per row and latent position, 4.5 KiB per pixel of decode at 256
 * channels, 200 MiB of runtime.
 */
import { describe, expect, it } from "vitest";
import { checkMemory, estimateGeneration, type ModelProfile } from "../../src/pipeline/generation-estimate.js";
import type { ResolvedHires } from "../../src/pipeline/params.js";

const profile: ModelProfile = {
  weights: { unet: 3_000_000_000, vae: 300_000_000, textEncoders: 500_000_000, refiner: 0 },
  latentFactor: 8,
  unetChannels: 320,
  decoderChannels: 256,
  unetFlops: { linear: 180e6, quadratic: 30e3 },
  decodeFlops: { linear: 9e6, quadratic: 0 },
  guidanceDoublesRows: true,
};
const request = {
  width: 512,
  height: 512,
  batchSize: 1,
  batchCount: 1,
  steps: 10,
  sampler: "euler",
  cfgScale: 7,
  denoisingStrength: 0.75,
  initImage: undefined,
  hires: undefined,
  controlnet: undefined,
};

describe("the memory and time estimate of a generation", () => {
  it("512x512 guided, one image: weights + UNet (20 x 2 rows x 4096 x 320 x 4) + decode (512^2 x 4608) + runtime", () => {
    const e = estimateGeneration(profile, request, { threads: 2 });
    expect(e.parts).toEqual({ weights: 3_800_000_000, unet: 209_715_200, decode: 1_207_959_552, runtime: 209_715_200 });
    expect(e.bytes).toBe(5_427_389_952);
    // 10 calls x 2 rows x (180e6 x 4096 / 90e9 + 30e3 x 4096^2 / 15e9) s + the decode 9e6 x 4096 / 90e9, on 2 threads.
    expect(e.seconds).toBeCloseTo((10 * 2 * (8.192 + 33.554432) + 0.4096) / 2, 6);
  });

  it("no guidance halves the UNet's rows; a batch of 3 triples them; the text encoders released leave the weights", () => {
    expect(estimateGeneration(profile, { ...request, cfgScale: 1 }, { threads: 1 }).parts.unet).toBe(104_857_600);
    expect(estimateGeneration(profile, { ...request, batchSize: 3 }, { threads: 1 }).parts.unet).toBe(629_145_600);
    const released = estimateGeneration(profile, request, { threads: 1, textEncodersReleased: true });
    expect(released.parts.weights).toBe(3_300_000_000);
  });

  it("the hires fix: the UNet and the decode at the hires size, 1024x1024", () => {
    const hires: ResolvedHires = {
      width: 1024,
      height: 1024,
      upscaleWidth: 1024,
      upscaleHeight: 1024,
      steps: 0,
      denoisingStrength: 0.5,
      upscaler: "Latent",
      sampler: "euler",
    } as ResolvedHires;
    const e = estimateGeneration(profile, { ...request, hires }, { threads: 1 });
    expect(e.parts.unet).toBe(838_860_800);
    expect(e.parts.decode).toBe(4_831_838_208);
  });

  it("a ControlNet adds 0.42 of the UNet's weights", () => {
    const e = estimateGeneration(profile, { ...request, controlnet: [{}] as never }, { threads: 1 });
    expect(e.parts.weights).toBe(3_800_000_000 + 1_260_000_000);
  });

  it("over the limit: refused with the estimate, the limit and the largest size of its shape that fits", () => {
    // 256x256: 3.8e9 + 20 x 2 x 1024 x 320 x 4 + 256^2 x 4608 + 200 MiB = 4,364,133,888 bytes; 264x264 is over it.
    const limit = 4_364_133_888;
    const { refusal, estimate } = checkMemory(profile, request, { threads: 1 }, limit);
    expect(estimate.bytes).toBe(5_427_389_952);
    expect(refusal).toBe(
      "a 512x512 generation needs about 5.1 GiB of memory (weights 3.5 GiB, UNet working memory 0.2 GiB, VAE decode " +
        "1.1 GiB, runtime 0.2 GiB), over the limit of 4.1 GiB: the largest size of its shape that fits is 256x256",
    );
    expect(checkMemory(profile, request, { threads: 1 }, 5_427_389_952).refusal).toBeUndefined();
    expect(checkMemory(profile, request, { threads: 1 }, 3_000_000_000).refusal).toContain("not even 64 px fits");
  });
});
