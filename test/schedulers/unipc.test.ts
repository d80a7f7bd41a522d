import { describe, it } from "vitest";
import { UniPCMultistepScheduler } from "../../src/schedulers/unipc.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { loadTrace, replayTrace } from "./trace.js";

describe.skipIf(!HAVE_REFERENCE)("UniPCMultistepScheduler", () => {
  it("matches diffusers UniPCMultistep trace for 10 steps", () => {
    replayTrace(loadTrace("unipc"), (c) => UniPCMultistepScheduler.fromConfig(c));
  });
  it("matches diffusers UniPCMultistep trace for 10 steps with v-prediction", () => {
    replayTrace(loadTrace("unipc_v"), (c) => UniPCMultistepScheduler.fromConfig(c));
  });
});
