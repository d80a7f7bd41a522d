import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { trainingSchedule } from "../../src/schedulers/betas.js";
import {
  createScheduler,
  type EulerDiscreteScheduler,
  type HeunDiscreteScheduler,
  resolveSamplerSchedule,
  STABLE_DIFFUSION_SCHEDULER_CONFIG,
  type Scheduler,
} from "../../src/schedulers/index.js";
import {
  findScheduleType,
  listScheduleTypes,
  requireScheduleType,
  scheduleSigmas,
  type ScheduleType,
} from "../../src/schedulers/schedule-types.js";
import { trainSigmas } from "../../src/schedulers/sigmas.js";

/** Made by scripts/reference/schedule_types.py from k-diffusion's and A1111's formulas (torch float32). */
const fixture = JSON.parse(
  readFileSync(new URL("../fixtures/schedule-types/sigmas.json", import.meta.url), "utf8"),
) as {
  training_sigmas: number[];
  schedules: Record<string, Record<string, number[]>>;
};
const table = Float32Array.from(fixture.training_sigmas);

function expectSigmas(actual: Float64Array, expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (expected[i] === 0) expect(actual[i]).toBe(0);
    else expect(Math.abs(actual[i] - expected[i]) / Math.abs(expected[i])).toBeLessThan(1e-6);
  }
}

describe("schedule types", () => {
  const types = listScheduleTypes().filter((t) => t.name !== "automatic");

  it("lists A1111's twelve schedule types in its order", () => {
    expect(listScheduleTypes().map((t) => t.label)).toEqual([
      "Automatic",
      "Uniform",
      "Karras",
      "Exponential",
      "Polyexponential",
      "SGM Uniform",
      "KL Optimal",
      "Align Your Steps",
      "Simple",
      "Normal",
      "DDIM",
      "Beta",
    ]);
  });

  for (const type of types) {
    for (const steps of ["1", "4", "20", "50", "7", "11"]) {
      it(`${type.label} sigmas for ${steps} steps equal the reference formula's (rel err < 1e-6)`, () => {
        const expected = fixture.schedules[type.name]![steps]!;
        expectSigmas(scheduleSigmas(type.name, Number(steps), { sigmas: table, sdxl: false }), expected);
      });
    }
  }

  it("Align Your Steps uses NVIDIA's SDXL table for SDXL models", () => {
    for (const steps of ["1", "4", "20", "50", "11"]) {
      expectSigmas(
        scheduleSigmas("align_your_steps", Number(steps), { sigmas: table, sdxl: true }),
        fixture.schedules["align_your_steps_sdxl"]![steps]!,
      );
    }
  });

  it("names are found by A1111's label, its internal name or an alias, in any case", () => {
    const cases: [string, ScheduleType][] = [
      ["Karras", "karras"],
      ["karras", "karras"],
      ["SGM Uniform", "sgm_uniform"],
      ["sgm_uniform", "sgm_uniform"],
      ["SGMUniform", "sgm_uniform"],
      ["align-your-steps", "align_your_steps"],
      ["KL Optimal", "kl_optimal"],
    ];
    for (const [name, type] of cases) expect(findScheduleType(name)?.name).toBe(type);
  });

  it("an unknown name is an InputError that lists the valid ones", () => {
    expect(() => requireScheduleType("Karas")).toThrow(InputError);
    expect(() => requireScheduleType("Karas")).toThrow(
      /unknown schedule type "Karas": use one of "Automatic", "Uniform", "Karras".*"Beta"/,
    );
  });
});

describe("samplers with a schedule type", () => {
  // The SD config: leading spacing, scaled_linear betas, as every SD1/SD2 checkpoint's scheduler_config.json.
  const sdTable = trainSigmas(
    trainingSchedule(
      {
        num_train_timesteps: 1000,
        beta_start: 0.00085,
        beta_end: 0.012,
        beta_schedule: "scaled_linear",
        trained_betas: null,
      },
      ["scaled_linear"],
    ).alphasCumprod,
  );
  const karras20 = scheduleSigmas("karras", 20, { sigmas: sdTable, sdxl: false });

  for (const sampler of ["euler", "Euler a", "LMS", "DPM++ 2M", "DPM++ 2M SDE", "dpm++sde"]) {
    it(`${sampler} with schedule "Karras" walks the Karras sigmas (A1111's scheduler field is not ignored)`, () => {
      const s = createScheduler(sampler, STABLE_DIFFUSION_SCHEDULER_CONFIG, { schedule: "Karras" }) as Scheduler & {
        sigmas: Float64Array;
      };
      s.setTimesteps(20);
      const perStep =
        s.order === 2 ? Float64Array.from([s.sigmas[0], ...s.sigmas.filter((_, i) => i % 2 === 1)]) : s.sigmas;
      expectSigmas(perStep, [...karras20]);
      // k-diffusion starts from noise * sigmas[0], whatever the config's spacing (the multistep solvers work in
      // VP variables, where the start is unit noise).
      expect(s.initNoiseSigma).toBeCloseTo(sampler.startsWith("DPM++ 2M") ? 1 : karras20[0], 5);
    });
  }

  it("Heun with schedule Exponential: each model call's sigma from the exponential schedule", () => {
    const s = createScheduler("heun", STABLE_DIFFUSION_SCHEDULER_CONFIG, {
      schedule: "exponential",
    }) as HeunDiscreteScheduler;
    s.setTimesteps(4);
    const exp4 = scheduleSigmas("exponential", 4, { sigmas: sdTable, sdxl: false });
    expect([...s.sigmas]).toEqual([exp4[0], exp4[1], exp4[1], exp4[2], exp4[2], exp4[3], exp4[3], exp4[4]]);
  });

  it("a sampler name ending in a schedule type is that sampler with that schedule, as A1111 reads it", () => {
    expect(resolveSamplerSchedule("Euler Karras").sampler.name).toBe("euler");
    expect(resolveSamplerSchedule("Euler Karras").schedule.label).toBe("Karras");
    expect(resolveSamplerSchedule("DPM++ 2M SGM Uniform").schedule.name).toBe("sgm_uniform");
    // A combined name we have as a sampler of its own stays that sampler; an explicit schedule wins over a suffix.
    expect(resolveSamplerSchedule("DPM++ 2M Karras").sampler.name).toBe("dpm++2m-karras");
    expect(resolveSamplerSchedule("Euler Karras", "Exponential").schedule.name).toBe("exponential");
    expect(resolveSamplerSchedule("Euler", "Automatic").schedule.name).toBe("automatic");
  });

  it("the schedule changes the sigmas: Euler with Automatic keeps its own schedule", () => {
    const plain = createScheduler("euler", STABLE_DIFFUSION_SCHEDULER_CONFIG) as EulerDiscreteScheduler;
    const automatic = createScheduler("euler", STABLE_DIFFUSION_SCHEDULER_CONFIG, {
      schedule: "Automatic",
    }) as EulerDiscreteScheduler;
    plain.setTimesteps(20);
    automatic.setTimesteps(20);
    expect([...automatic.sigmas]).toEqual([...plain.sigmas]);
    expect(plain.sigmas[1]).not.toBeCloseTo(karras20[1], 3);
  });

  it("samplers with their own timestep grid refuse a schedule type, naming the ones that take it", () => {
    expect(() => createScheduler("DDIM", STABLE_DIFFUSION_SCHEDULER_CONFIG, { schedule: "Karras" })).toThrow(
      InputError,
    );
    expect(() => createScheduler("DDIM", STABLE_DIFFUSION_SCHEDULER_CONFIG, { schedule: "Karras" })).toThrow(
      /"DDIM" walks its own timestep grid.*use schedule type "Automatic".*"Euler a"/,
    );
    expect(() => createScheduler("DDIM", STABLE_DIFFUSION_SCHEDULER_CONFIG, { schedule: "Automatic" })).not.toThrow();
  });

  it("an unknown schedule type fails before any scheduler is built", () => {
    expect(() => createScheduler("euler", STABLE_DIFFUSION_SCHEDULER_CONFIG, { schedule: "Karrass" })).toThrow(
      /unknown schedule type "Karrass": use one of/,
    );
  });
});
