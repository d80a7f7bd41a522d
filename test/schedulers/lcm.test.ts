import { describe, expect, it } from "vitest";
import { LCMScheduler } from "../../src/schedulers/lcm.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { expectClose, loadTrace, recordedNoise, replayTrace } from "./trace.js";

describe.skipIf(!HAVE_REFERENCE)("LCMScheduler", () => {
  it("matches diffusers LCM trace for 4 steps, re-noising after every step but the last", () => {
    replayTrace(loadTrace("lcm"), (c) => LCMScheduler.fromConfig(c));
  });

  it("exposes the same denoised estimate as the reference at every step", () => {
    const trace = loadTrace("lcm");
    const s = LCMScheduler.fromConfig(trace.config);
    s.setTimesteps(trace.steps);
    const noise = recordedNoise(trace);
    let x: Float32Array = Float32Array.from(trace.get("x_init"));
    s.timesteps.forEach((t, i) => {
      x = s.step(trace.slice("model_outputs", i), t, x, noise);
      expectClose(s.denoised!, trace.slice("denoised", i), `denoised ${i}`);
    });
  });
});

describe("LCMScheduler schedule", () => {
  it("spreads img2img steps over the first `strength` of the distillation grid", () => {
    const s = new LCMScheduler();
    s.setTimesteps(4, 0.5);
    expect([...s.timesteps]).toEqual([499, 379, 259, 139]);
  });
});
