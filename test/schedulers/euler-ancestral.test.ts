import { describe, expect, it } from "vitest";
import { EulerAncestralDiscreteScheduler } from "../../src/schedulers/euler-ancestral.js";
import { InputError } from "../../src/errors.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { loadTrace, replayTrace } from "./trace.js";

describe.skipIf(!HAVE_REFERENCE)("EulerAncestralDiscreteScheduler", () => {
  it("matches diffusers EulerAncestralDiscrete trace for 10 steps, drawing noise on every step", () => {
    replayTrace(loadTrace("euler_ancestral"), (c) => EulerAncestralDiscreteScheduler.fromConfig(c));
  });
});

describe("EulerAncestralDiscreteScheduler without a noise source", () => {
  it("refuses to step and says to pass the seeded generator", () => {
    const s = new EulerAncestralDiscreteScheduler({
      beta_schedule: "scaled_linear",
      beta_start: 0.00085,
      beta_end: 0.012,
    });
    s.setTimesteps(4);
    const x = new Float32Array(4);
    expect(() => s.step(x, s.timesteps[0]!, x)).toThrow(InputError);
    expect(() => s.step(x, s.timesteps[0]!, x)).toThrow(/NoiseSource/);
  });
});
