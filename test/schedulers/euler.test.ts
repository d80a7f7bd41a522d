import { describe, it } from "vitest";
import { EulerDiscreteScheduler } from "../../src/schedulers/euler.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { loadTrace, replayTrace, resumeTrace } from "./trace.js";

describe.skipIf(!HAVE_REFERENCE)("EulerDiscreteScheduler", () => {
  it("matches diffusers EulerDiscrete trace for 10 steps (leading spacing, SD1.5 config)", () => {
    replayTrace(loadTrace("euler"), (c) => EulerDiscreteScheduler.fromConfig(c));
  });
  it("matches diffusers EulerDiscrete trace for 10 steps with linspace spacing", () => {
    replayTrace(loadTrace("euler_linspace"), (c) => EulerDiscreteScheduler.fromConfig(c));
  });
  it("resumes the reference trace part-way after setBeginIndex, as img2img starts", () => {
    resumeTrace(loadTrace("euler"), (c) => EulerDiscreteScheduler.fromConfig(c), 4);
  });
  it("matches diffusers EulerDiscrete trace for 10 steps with v-prediction", () => {
    replayTrace(loadTrace("euler_v"), (c) => EulerDiscreteScheduler.fromConfig(c));
  });
});
