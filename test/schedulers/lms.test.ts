import { describe, it } from "vitest";
import { LMSDiscreteScheduler } from "../../src/schedulers/lms.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { loadTrace, replayTrace } from "./trace.js";

describe.skipIf(!HAVE_REFERENCE)("LMSDiscreteScheduler", () => {
  it("matches diffusers LMSDiscrete trace for 10 steps", () => {
    replayTrace(loadTrace("lms"), (c) => LMSDiscreteScheduler.fromConfig(c));
  });
});
