import { describe, it } from "vitest";
import { DDIMScheduler } from "../../src/schedulers/ddim.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { loadTrace, replayTrace, resumeTrace } from "./trace.js";

describe.skipIf(!HAVE_REFERENCE)("DDIMScheduler", () => {
  it("matches diffusers DDIM trace for 10 steps", () => {
    replayTrace(loadTrace("ddim"), (c) => DDIMScheduler.fromConfig(c));
  });
  it("resumes the reference trace part-way after setBeginIndex, as img2img starts", () => {
    resumeTrace(loadTrace("ddim"), (c) => DDIMScheduler.fromConfig(c), 4);
  });
  it("matches diffusers DDIM trace for 10 steps with v-prediction (SD2 config)", () => {
    replayTrace(loadTrace("ddim_v"), (c) => DDIMScheduler.fromConfig(c));
  });
});
