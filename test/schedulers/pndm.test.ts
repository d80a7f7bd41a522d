import { describe, expect, it } from "vitest";
import { PNDMScheduler } from "../../src/schedulers/pndm.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { loadTrace, replayTrace } from "./trace.js";

describe.skipIf(!HAVE_REFERENCE)("PNDMScheduler", () => {
  it("matches diffusers PNDM (PLMS, skip_prk_steps) trace: 10 steps in 11 model calls", () => {
    replayTrace(loadTrace("pndm"), (c) => PNDMScheduler.fromConfig(c));
  });
});

describe("PNDMScheduler with Runge-Kutta warm-up", () => {
  it("takes 12 Runge-Kutta calls over the first 3 steps, with half-stride midpoints, then one PLMS call per step", () => {
    const s = new PNDMScheduler({
      skip_prk_steps: false,
      beta_schedule: "scaled_linear",
      beta_start: 0.00085,
      beta_end: 0.012,
      steps_offset: 1,
    });
    s.setTimesteps(10);
    expect([...s.timesteps]).toEqual([
      901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601, 501, 401, 301, 201, 101, 1,
    ]);
  });
});
