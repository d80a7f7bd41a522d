import { describe, expect, it } from "vitest";
import { resolveHires } from "../../src/pipeline/hires-params.js";
import { hiresTimesteps } from "../../src/pipeline/hires-pass.js";
import { createScheduler, STABLE_DIFFUSION_SCHEDULER_CONFIG } from "../../src/schedulers/index.js";

const first = { prompt: "p", negativePrompt: "n", sampler: "Euler a", schedule: undefined };

describe("the hires fix's sizes, as A1111's calculate_target_resolution works them out", () => {
  it("a scale multiplies the first pass's size, floored to the latent grid", () => {
    expect(resolveHires({ scale: 1.5 }, { ...first, width: 64, height: 96 })).toMatchObject({
      upscaleWidth: 96,
      upscaleHeight: 144,
      width: 96,
      height: 144,
    });
    // int(72 * 1.3) = 93 -> latents of 11 -> 88 pixels.
    expect(resolveHires({ scale: 1.3 }, { ...first, width: 72, height: 64 })).toMatchObject({ width: 88, height: 80 });
  });

  it("one resize side keeps the aspect ratio (integer division as A1111's)", () => {
    expect(resolveHires({ resizeX: 200 }, { ...first, width: 64, height: 96 })).toMatchObject({
      width: 200,
      height: 296, // 200 * 96 // 64 = 300 -> 37 latents
      upscaleHeight: 296,
    });
    expect(resolveHires({ resizeY: 128 }, { ...first, width: 96, height: 64 })).toMatchObject({
      width: 192,
      height: 128,
    });
  });

  it("both sides: cover them keeping the ratio, then crop whole latent cells to the size", () => {
    // 64x96 to 128x128: ratio 2/3 < 1, so width 128 and height 128 * 96 // 64 = 192, cropped by 8 latent rows.
    expect(resolveHires({ resizeX: 128, resizeY: 128 }, { ...first, width: 64, height: 96 })).toMatchObject({
      upscaleWidth: 128,
      upscaleHeight: 192,
      width: 128,
      height: 128,
      resizeX: 128,
      resizeY: 128,
    });
    expect(resolveHires({ resizeX: 128, resizeY: 128 }, { ...first, width: 64, height: 96 }).scale).toBeUndefined();
  });

  it("defaults: Latent, strength 0.75, the first pass's prompts and sampler", () => {
    expect(resolveHires({}, { ...first, width: 64, height: 64 })).toEqual({
      upscaler: "Latent",
      scale: 2,
      upscaleWidth: 128,
      upscaleHeight: 128,
      width: 128,
      height: 128,
      steps: 0,
      denoisingStrength: 0.75,
      prompt: "p",
      negativePrompt: "n",
      sampler: "Euler a",
      schedule: "automatic",
    });
    expect(resolveHires({ upscaler: " latent (BICUBIC) " }, { ...first, width: 64, height: 64 }).upscaler).toBe(
      "Latent (bicubic)",
    );
  });
});

describe("the hires pass's schedule, as A1111's setup_img2img_steps with a step count", () => {
  const euler = () => createScheduler("euler", STABLE_DIFFUSION_SCHEDULER_CONFIG);
  it("runs the last `steps` of a schedule of int(steps / strength) steps", () => {
    // int(4 / 0.6) = 6: the last 4 timesteps of a 6-step schedule.
    const full = euler();
    full.setTimesteps(6);
    expect(hiresTimesteps(euler(), 4, 0.6)).toEqual(Array.from(full.timesteps).slice(2));
  });
  it("strength 1 is capped at 0.999: int(20 / 0.999) = 20, the whole schedule", () => {
    const full = euler();
    full.setTimesteps(20);
    expect(hiresTimesteps(euler(), 20, 1)).toEqual(Array.from(full.timesteps));
  });
  it("a sampler of two model calls per step skips twice as many entries (Heun)", () => {
    const full = createScheduler("heun", STABLE_DIFFUSION_SCHEDULER_CONFIG);
    full.setTimesteps(4);
    const run = hiresTimesteps(createScheduler("heun", STABLE_DIFFUSION_SCHEDULER_CONFIG), 2, 0.5);
    expect(run).toEqual(Array.from(full.timesteps).slice(4));
  });
});
