import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { findScheduleType, listScheduleTypes, requireScheduleType, scheduleSigmas, type ScheduleType } from "../../src/schedulers/schedule-types.js";

/** Made by scripts/reference/schedule_types.py from k-diffusion's and A1111's formulas (torch float32). */
const fixture = JSON.parse(readFileSync(new URL("../fixtures/schedule-types/sigmas.json", import.meta.url), "utf8")) as {
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
      "Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal", "Align Your Steps",
      "Simple", "Normal", "DDIM", "Beta",
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
      expectSigmas(scheduleSigmas("align_your_steps", Number(steps), { sigmas: table, sdxl: true }), fixture.schedules["align_your_steps_sdxl"]![steps]!);
    }
  });

  it("names are found by A1111's label, its internal name or an alias, in any case", () => {
    const cases: [string, ScheduleType][] = [["Karras", "karras"], ["karras", "karras"], ["SGM Uniform", "sgm_uniform"], ["sgm_uniform", "sgm_uniform"], ["SGMUniform", "sgm_uniform"], ["align-your-steps", "align_your_steps"], ["KL Optimal", "kl_optimal"]];
    for (const [name, type] of cases) expect(findScheduleType(name)?.name).toBe(type);
  });

  it("an unknown name is an InputError that lists the valid ones", () => {
    expect(() => requireScheduleType("Karas")).toThrow(InputError);
    expect(() => requireScheduleType("Karas")).toThrow(/unknown schedule type "Karas": use one of "Automatic", "Uniform", "Karras".*"Beta"/);
  });
});
