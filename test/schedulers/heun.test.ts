/**
 * The reference has no Heun trace: these tests check the schedule against EulerDiscrete's reference schedules
 * (Heun builds the same one and repeats it per stage) and the solver against properties of exact denoisers.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseSchedulerConfigJson, type RawSchedulerConfig } from "../../src/schedulers/config.js";
import {
  EulerDiscreteScheduler,
  HeunDiscreteScheduler,
  STABLE_DIFFUSION_SCHEDULER_CONFIG as SD,
} from "../../src/schedulers/index.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { gaussian, maxAbsDiff, pointMass, sample, SeededNormal } from "./models.js";
import { expectClose, expectTimesteps } from "./trace.js";

const repeatInner = (a: readonly number[], keepLast: boolean) =>
  keepLast
    ? [a[0]!, ...a.slice(1, -1).flatMap((v) => [v, v]), a[a.length - 1]!]
    : [a[0]!, ...a.slice(1).flatMap((v) => [v, v])];

describe.skipIf(!HAVE_REFERENCE)("HeunDiscreteScheduler schedule", () => {
  it("uses diffusers EulerDiscrete's timesteps and sigmas, every step after the first listed twice", () => {
    const json = parseSchedulerConfigJson(readFileSync(ref("goldens/schedulers/schedules.json"), "utf8"));
    const base = json.base_config_sd15 as RawSchedulerConfig;
    const entries = (
      json.entries as {
        scheduler: string;
        overrides: Record<string, unknown>;
        steps: number;
        timesteps: number[];
        sigmas: number[];
        init_noise_sigma: number;
      }[]
    ).filter((e) => e.scheduler === "EulerDiscrete");
    expect(entries.length).toBeGreaterThan(30);
    for (const e of entries) {
      const s = HeunDiscreteScheduler.fromConfig(base, e.overrides);
      s.setTimesteps(e.steps);
      const what = `Heun ${JSON.stringify(e.overrides)} x${e.steps}`;
      expectTimesteps(s.timesteps, repeatInner(e.timesteps, false), what);
      expectClose(s.sigmas, repeatInner(e.sigmas, true), `${what} sigmas`);
      expect(Math.abs(s.initNoiseSigma - e.init_noise_sigma)).toBeLessThanOrEqual(e.init_noise_sigma * 1e-7);
    }
  });
});

describe("HeunDiscreteScheduler", () => {
  const xT = new SeededNormal(1).randn([4096]);

  it("calls the model twice per step except the last: 2n - 1 calls for n steps", () => {
    for (const steps of [1, 2, 10, 25]) {
      const s = HeunDiscreteScheduler.fromConfig(SD);
      expect(s.order).toBe(2);
      const { calls } = sample(s, steps, xT, pointMass(new Float32Array(xT.length)));
      expect(calls).toBe(2 * steps - 1);
    }
  });

  it("lands on x0 when the model is an exact denoiser of a point mass at x0", () => {
    const x0 = new SeededNormal(2).randn([xT.length]);
    for (const karras of [false, true]) {
      const { x } = sample(HeunDiscreteScheduler.fromConfig(SD, { use_karras_sigmas: karras }), 10, xT, pointMass(x0));
      expect(maxAbsDiff(x, x0)).toBeLessThan(1e-5);
    }
  });

  it("is second order on Gaussian data: doubling the steps cuts its ODE error about 4x (Euler's about 2x)", () => {
    const sd = 0.5;
    const errors = (make: () => HeunDiscreteScheduler | EulerDiscreteScheduler) =>
      [10, 20].map((steps) => {
        const s = make();
        const { x } = sample(s, steps, xT, gaussian(sd));
        // The probability-flow ODE of N(0, sd^2) data scales x by sqrt(sd^2 + sigma^2) / sqrt(sd^2 + sigma_max^2).
        const sigmaMax = s.sigmas[0]!;
        const exact = xT.map((v) => (v * s.initNoiseSigma * sd) / Math.sqrt(sd * sd + sigmaMax * sigmaMax));
        return maxAbsDiff(x, exact);
      });
    const [heun10, heun20] = errors(() => HeunDiscreteScheduler.fromConfig(SD));
    const [euler10, euler20] = errors(() => EulerDiscreteScheduler.fromConfig(SD));
    expect(heun10! / heun20!).toBeGreaterThan(3.5);
    expect(euler10! / euler20!).toBeLessThan(2.5);
    expect(heun20!).toBeLessThan(euler20! / 5);
  });

  it("finishes each step from the sample it started from (second call averages the two slopes)", () => {
    const s = HeunDiscreteScheduler.fromConfig(SD);
    s.setTimesteps(3);
    const x = new SeededNormal(3).randn([16]);
    const eps1 = new SeededNormal(4).randn([16]);
    const eps2 = new SeededNormal(5).randn([16]);
    const [s0, s1] = [s.sigmas[0]!, s.sigmas[1]!];
    const guess = s.step(eps1, s.timesteps[0]!, x);
    expect(s.inFirstStage).toBe(false);
    const out = s.step(eps2, s.timesteps[1]!, guess);
    expect(s.inFirstStage).toBe(true);
    const expected = x.map((v, i) => v + ((eps1[i]! + eps2[i]!) / 2) * (s1 - s0));
    expect(maxAbsDiff(out, expected)).toBeLessThan(1e-5);
  });
});
