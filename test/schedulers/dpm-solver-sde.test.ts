/**
 * The reference has no DPM++ SDE trace (its Brownian-tree noise is seeded apart from the pipeline's generator,
 * so no port can reproduce it). These tests check the schedule against EulerDiscrete's reference schedules and
 * the sampler against properties: exact denoisers, noise draw counts and the Brownian structure of the noise.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { parseSchedulerConfigJson, type RawSchedulerConfig } from "../../src/schedulers/config.js";
import {
  DPMSolverSDEScheduler,
  EulerAncestralDiscreteScheduler,
  STABLE_DIFFUSION_SCHEDULER_CONFIG as SD,
} from "../../src/schedulers/index.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { gaussian, maxAbsDiff, pointMass, sample, SeededNormal, sigmaOfTimestep } from "./models.js";
import { expectClose, expectTimesteps } from "./trace.js";

describe.skipIf(!HAVE_REFERENCE)("DPMSolverSDEScheduler schedule", () => {
  it("steps through diffusers EulerDiscrete's sigmas, each second call conditioned on the step's geometric-midpoint sigma", () => {
    const json = parseSchedulerConfigJson(readFileSync(ref("goldens/schedulers/schedules.json"), "utf8"));
    const base = json.base_config_sd15 as RawSchedulerConfig;
    const entries = (
      json.entries as {
        scheduler: string;
        overrides: Record<string, unknown>;
        steps: number;
        timesteps: number[];
        sigmas: number[];
      }[]
    ).filter((e) => e.scheduler === "EulerDiscrete");
    for (const e of entries) {
      const s = DPMSolverSDEScheduler.fromConfig(base, e.overrides);
      s.setTimesteps(e.steps);
      const what = `DPM++ SDE ${JSON.stringify(e.overrides)} x${e.steps}`;
      const n = e.steps;
      expect(s.timesteps.length).toBe(2 * n - 1);
      expectTimesteps(
        s.timesteps.filter((_, i) => i % 2 === 0),
        e.timesteps,
        what,
      );
      expectClose(s.sigmas, [e.sigmas[0]!, ...e.sigmas.slice(1, -1).flatMap((v) => [v, v]), 0], `${what} sigmas`);
      for (let k = 0; k + 1 < n; k++) {
        const mid = Math.sqrt(e.sigmas[k]! * e.sigmas[k + 1]!);
        expect(
          Math.abs(sigmaOfTimestep(s.alphasCumprod, s.timesteps[2 * k + 1]!) / mid - 1),
          `${what} midpoint ${k}`,
        ).toBeLessThan(1e-5);
      }
    }
  });
});

describe("DPMSolverSDEScheduler", () => {
  const xT = new SeededNormal(1).randn([4096]);

  it("calls the model 2n - 1 times and draws two noises per step, none on the final Euler step", () => {
    for (const steps of [1, 2, 10]) {
      const noise = new SeededNormal(9);
      const { calls } = sample(
        DPMSolverSDEScheduler.fromConfig(SD, { use_karras_sigmas: true }),
        steps,
        xT,
        pointMass(new Float32Array(xT.length)),
        noise,
      );
      expect(calls).toBe(2 * steps - 1);
      expect(noise.draws).toBe(2 * (steps - 1));
    }
  });

  it("lands on x0 when the model is an exact denoiser of a point mass at x0, whatever the noise", () => {
    const x0 = new SeededNormal(2).randn([xT.length]);
    const { x } = sample(
      DPMSolverSDEScheduler.fromConfig(SD, { use_karras_sigmas: true }),
      10,
      xT,
      pointMass(x0),
      new SeededNormal(3),
    );
    expect(maxAbsDiff(x, x0)).toBeLessThan(1e-5);
  });

  it("samples Gaussian data with the data's variance, closer than Euler a at the same steps", () => {
    const sd = 0.5;
    const big = new SeededNormal(4).randn([32768]);
    const variance = (x: Float32Array) => x.reduce((a, v) => a + v * v, 0) / x.length;
    const sde = sample(
      DPMSolverSDEScheduler.fromConfig(SD, { use_karras_sigmas: true }),
      40,
      big,
      gaussian(sd),
      new SeededNormal(5),
    );
    expect(Math.abs(variance(sde.x) - sd * sd)).toBeLessThan(0.01);
    const sde10 = sample(
      DPMSolverSDEScheduler.fromConfig(SD, { use_karras_sigmas: true }),
      10,
      big,
      gaussian(sd),
      new SeededNormal(6),
    );
    const ea10 = sample(EulerAncestralDiscreteScheduler.fromConfig(SD), 10, big, gaussian(sd), new SeededNormal(6));
    expect(Math.abs(variance(sde10.x) - sd * sd)).toBeLessThan(Math.abs(variance(ea10.x) - sd * sd));
  });

  it("correlates the two stage noises of a step as Brownian increments over nested intervals", () => {
    // With x0 predicted as 0 from a zero sample, each stage's output is its noise times sigma_up.
    const s = DPMSolverSDEScheduler.fromConfig(SD, { use_karras_sigmas: true, prediction_type: "sample" });
    s.setTimesteps(5);
    const n = 200_000;
    const zero = new Float32Array(n);
    const noise = new SeededNormal(11);
    const first = s.step(zero, s.timesteps[0]!, zero, noise);
    const second = s.step(zero, s.timesteps[1]!, first, noise);
    let ab = 0,
      aa = 0,
      bb = 0;
    for (let i = 0; i < n; i++) {
      ab += first[i]! * second[i]!;
      aa += first[i]! * first[i]!;
      bb += second[i]! * second[i]!;
    }
    const [sigma, next] = [s.sigmas[0]!, s.sigmas[1]!];
    const mid = Math.sqrt(sigma * next);
    expect(ab / Math.sqrt(aa * bb)).toBeCloseTo(Math.sqrt((sigma - mid) / (sigma - next)), 2);
  });

  it("refuses to step without a noise source, saying to pass the seeded generator", () => {
    const s = DPMSolverSDEScheduler.fromConfig(SD);
    s.setTimesteps(4);
    const x = new Float32Array(4);
    expect(() => s.step(x, s.timesteps[0]!, x)).toThrow(InputError);
  });
});
