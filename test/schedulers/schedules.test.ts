import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { RawSchedulerConfig } from "../../src/schedulers/config.js";
import { parseSchedulerConfigJson } from "../../src/schedulers/config.js";
import {
  DDIMScheduler,
  DDPMScheduler,
  DPMSolverMultistepScheduler,
  EulerAncestralDiscreteScheduler,
  EulerDiscreteScheduler,
  LCMScheduler,
  LMSDiscreteScheduler,
  PNDMScheduler,
  UniPCMultistepScheduler,
  type Scheduler,
} from "../../src/schedulers/index.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { expectClose, expectTimesteps } from "./trace.js";

interface Entry {
  scheduler: string;
  overrides: Record<string, unknown>;
  steps: number;
  timesteps: number[];
  sigmas?: number[];
  init_noise_sigma: number;
}

const FACTORIES: Record<
  string,
  (config: RawSchedulerConfig, overrides: Record<string, unknown>) => Scheduler & { sigmas?: ArrayLike<number> }
> = {
  DDIM: (c, o) => DDIMScheduler.fromConfig(c, o),
  PNDM: (c, o) => PNDMScheduler.fromConfig(c, o),
  LMSDiscrete: (c, o) => LMSDiscreteScheduler.fromConfig(c, o),
  EulerDiscrete: (c, o) => EulerDiscreteScheduler.fromConfig(c, o),
  EulerAncestralDiscrete: (c, o) => EulerAncestralDiscreteScheduler.fromConfig(c, o),
  DPMSolverMultistep: (c, o) => DPMSolverMultistepScheduler.fromConfig(c, o),
  UniPCMultistep: (c, o) => UniPCMultistepScheduler.fromConfig(c, o),
  LCM: (c, o) => LCMScheduler.fromConfig(c, o),
  DDPM: (c, o) => DDPMScheduler.fromConfig(c, o),
};

function loadSchedules(): { base: RawSchedulerConfig; entries: Entry[] } {
  const json = parseSchedulerConfigJson(readFileSync(ref("goldens/schedulers/schedules.json"), "utf8"));
  return { base: json.base_config_sd15 as RawSchedulerConfig, entries: json.entries as Entry[] };
}

const label = (e: Entry) => `${e.scheduler} ${JSON.stringify(e.overrides)} x${e.steps}`;

describe.skipIf(!HAVE_REFERENCE)("schedules", () => {
  const { base, entries } = HAVE_REFERENCE ? loadSchedules() : { base: {}, entries: [] };
  const classes = [...new Set(entries.map((e) => e.scheduler))];

  it("covers every scheduler class in the reference's schedule table", () => {
    expect(classes.filter((c) => !FACTORIES[c])).toEqual([]);
    expect(entries.length).toBeGreaterThan(200);
  });

  for (const name of classes) {
    it(`match diffusers ${name} timesteps${entries.some((e) => e.scheduler === name && e.sigmas) ? ", sigmas" : ""} and init_noise_sigma for every spacing and step count`, () => {
      for (const e of entries.filter((x) => x.scheduler === name)) {
        const s = FACTORIES[name]!(base, e.overrides);
        s.setTimesteps(e.steps);
        expectTimesteps(s.timesteps, e.timesteps, label(e));
        if (e.sigmas) expectClose(s.sigmas!, e.sigmas, `${label(e)} sigmas`);
        expect(Math.abs(s.initNoiseSigma - e.init_noise_sigma), `${label(e)} init_noise_sigma`).toBeLessThanOrEqual(
          e.init_noise_sigma * 1e-7,
        );
      }
    });
  }
});
