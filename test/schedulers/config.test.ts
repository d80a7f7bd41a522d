import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { parseSchedulerConfigJson, resolveConfig } from "../../src/schedulers/config.js";
import {
  DPMSolverMultistepScheduler,
  EulerDiscreteScheduler,
  LMSDiscreteScheduler,
} from "../../src/schedulers/index.js";

describe("resolveConfig (from_config semantics)", () => {
  const defaults = {
    beta_start: 0.0001,
    timestep_spacing: "linspace",
    use_karras_sigmas: false,
    trained_betas: null as number[] | null,
  };

  it("takes known keys from the config, ignores unknown and private ones, and lets overrides win", () => {
    const c = resolveConfig(
      defaults,
      { beta_start: 0.00085, skip_prk_steps: true, _class_name: "PNDMScheduler" },
      { use_karras_sigmas: true },
    );
    expect(c).toEqual({
      beta_start: 0.00085,
      timestep_spacing: "linspace",
      use_karras_sigmas: true,
      trained_betas: null,
    });
  });

  it("falls back to this class's defaults for keys the writer listed in _use_default_values", () => {
    const c = resolveConfig(defaults, { timestep_spacing: "leading", _use_default_values: ["timestep_spacing"] });
    expect(c.timestep_spacing).toBe("linspace");
  });

  it("treats null as the default and rejects a value of the wrong JSON type with the key's name", () => {
    expect(resolveConfig(defaults, { beta_start: null }).beta_start).toBe(0.0001);
    expect(() => resolveConfig(defaults, { beta_start: "0.1" })).toThrow(/"beta_start" should be a number/);
    expect(() => resolveConfig(defaults, { beta_start: "0.1" })).toThrow(InputError);
  });
});

describe("scheduler configs", () => {
  it("reject unsupported option values with an InputError saying what to set", () => {
    expect(() => new EulerDiscreteScheduler({ beta_schedule: "cosine" as never })).toThrow(
      /beta_schedule "cosine" is not supported/,
    );
    expect(() => new EulerDiscreteScheduler({ prediction_type: "x0" as never })).toThrow(InputError);
    expect(() => new LMSDiscreteScheduler({ timestep_spacing: "middle" as never })).toThrow(/timestep_spacing/);
    expect(() => new DPMSolverMultistepScheduler({ algorithm_type: "dpmsolver", final_sigmas_type: "zero" })).toThrow(
      /final_sigmas_type/,
    );
    expect(() => new EulerDiscreteScheduler({ use_beta_sigmas: true })).toThrow(/use_beta_sigmas/);
  });

  it("reject step counts outside 1..num_train_timesteps", () => {
    const s = new EulerDiscreteScheduler();
    expect(() => s.setTimesteps(0)).toThrow(InputError);
    expect(() => s.setTimesteps(1001)).toThrow(/from 1 to 1000/);
    expect(() => s.setTimesteps(2.5)).toThrow(InputError);
  });

  it("accept configs written for another scheduler class, as when swapping samplers", () => {
    const unipcStyle = { solver_type: "bh2", beta_schedule: "scaled_linear", beta_start: 0.00085, beta_end: 0.012 };
    expect(DPMSolverMultistepScheduler.fromConfig(unipcStyle).config.solver_type).toBe("midpoint");
  });
});

describe("parseSchedulerConfigJson", () => {
  it("reads Python's bare -Infinity, Infinity and NaN, leaving strings alone", () => {
    const c = parseSchedulerConfigJson(
      '{"lambda_min_clipped": -Infinity, "a": Infinity, "b": NaN, "s": "-Infinity NaN", "l": [1, -Infinity]}',
    );
    expect(c.lambda_min_clipped).toBe(-Infinity);
    expect(c.a).toBe(Infinity);
    expect(c.b).toBeNaN();
    expect(c.s).toBe("-Infinity NaN");
    expect(c.l).toEqual([1, -Infinity]);
  });

  it("names the file in an InputError for broken JSON or a non-object", () => {
    expect(() => parseSchedulerConfigJson("{", "models/x/scheduler/scheduler_config.json")).toThrow(
      /models\/x\/scheduler\/scheduler_config.json is not valid JSON/,
    );
    expect(() => parseSchedulerConfigJson("[1]")).toThrow(InputError);
  });
});
