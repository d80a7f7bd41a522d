import { describe, it } from "vitest";
import type { RawSchedulerConfig } from "../../src/schedulers/config.js";
import { DPMSolverMultistepScheduler } from "../../src/schedulers/dpm-solver-multistep.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { loadTrace, replayTrace } from "./trace.js";

describe.skipIf(!HAVE_REFERENCE)("DPMSolverMultistepScheduler", () => {
  it("matches diffusers DPMSolverMultistep (DPM++ 2M) trace for 10 steps", () => {
    replayTrace(loadTrace("dpmpp_2m"), (c) => DPMSolverMultistepScheduler.fromConfig(c));
  });
  it("matches diffusers DPMSolverMultistep trace with Karras sigmas (DPM++ 2M Karras) for 10 steps", () => {
    replayTrace(loadTrace("dpmpp_2m_karras"), (c) => DPMSolverMultistepScheduler.fromConfig(c));
  });
  it("starts afresh on setTimesteps: a second run on the same instance matches the trace again", () => {
    const trace = loadTrace("dpmpp_2m_karras");
    const s = DPMSolverMultistepScheduler.fromConfig(trace.config);
    const reuse = (_: RawSchedulerConfig) => s;
    replayTrace(trace, reuse);
    replayTrace(trace, reuse);
  });
  it("matches diffusers DPMSolverMultistep Karras trace for 10 steps with v-prediction", () => {
    replayTrace(loadTrace("dpmpp_2m_karras_v"), (c) => DPMSolverMultistepScheduler.fromConfig(c));
  });
});
