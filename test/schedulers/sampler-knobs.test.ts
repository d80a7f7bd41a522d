/**
 * A1111's sampler knobs on our samplers: eta, s_noise and the churn (s_churn, s_tmin, s_tmax of Euler, Heun and
 * DPM2) against k-diffusion's loops replayed independently in
 * float64 (scripts/reference/sampler_knobs.py wrote test/fixtures/sampler-knobs/runs.json from the papers'
 * formulas, with torch's CPU generator for the noise), the eta noise seed delta (ENSD) through the pipeline's
 * sampler noise, eta 0 making every noisy sampler deterministic once its initial noise is drawn, and the
 * defaults leaving every sampler exactly as it was.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BatchNoise } from "../../src/pipeline/batch-noise.js";
import { samplerNoise } from "../../src/pipeline/sampler-knobs.js";
import {
  createScheduler,
  type SchedulerOptions,
  STABLE_DIFFUSION_SCHEDULER_CONFIG as SD,
} from "../../src/schedulers/index.js";
import type { NoiseSource } from "../../src/schedulers/scheduler.js";
import { logSigmas, trainSigmas } from "../../src/schedulers/sigmas.js";

interface Run {
  sampler: string;
  schedule: string;
  steps: number;
  eta?: number;
  s_churn?: number;
  s_tmin?: number;
  s_tmax?: number;
  s_noise: number;
  ensd: number;
  x: number[];
}
const FIXTURE = JSON.parse(readFileSync(new URL("../fixtures/sampler-knobs/runs.json", import.meta.url), "utf8")) as {
  n: number;
  seed: number;
  runs: Run[];
};
const N = FIXTURE.n;

/** The reference's model: eps(u) = 0.8 u + 0.2 sin(k) of the scaled input, whatever the timestep. */
const eps = (u: Float32Array) => Float32Array.from(u, (v, k) => 0.8 * v + 0.2 * Math.sin(k));

/**
 * The pipeline's loop on N values: the initial noise from `start`'s first draw, the sampler's from `noise`; a
 * sampler with churn raises the sample before each model call (the model here ignores the timestep it is given).
 */
function run(sampler: string, options: SchedulerOptions, steps: number, start: BatchNoise, noise: NoiseSource) {
  const s = createScheduler(sampler, SD, options);
  s.setTimesteps(steps);
  let x: Float32Array = start.randn([N]).map((v) => v * s.initNoiseSigma);
  for (const t of s.timesteps) {
    if (s.churn) x = s.churn(x, t, noise).sample;
    x = s.step(eps(s.scaleModelInput(x, t)), t, x, noise);
  }
  return x;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]! - b[k]!));
  return m;
}

describe("eta, s_noise and churn match k-diffusion's samplers (reference replayed in Python)", () => {
  for (const r of FIXTURE.runs) {
    const knobs =
      r.s_churn === undefined
        ? `eta ${r.eta}, s_noise ${r.s_noise}, ENSD ${r.ensd}`
        : `s_churn ${r.s_churn}, s_tmin ${r.s_tmin}, s_tmax ${r.s_tmax}, s_noise ${r.s_noise}`;
    it(`${r.sampler} (${r.schedule}) with ${knobs}`, () => {
      const start = new BatchNoise([BigInt(FIXTURE.seed)]);
      const churn = r.s_churn === undefined ? {} : { sChurn: r.s_churn, sTmin: r.s_tmin, sTmax: r.s_tmax };
      const x = run(
        r.sampler,
        { schedule: r.schedule, ...(r.eta !== undefined ? { eta: r.eta } : {}), sNoise: r.s_noise, ...churn },
        r.steps,
        start,
        // Once the initial noise is drawn, the sampler's noise: the same generator, or seed + ENSD's.
        samplerNoise(start, r.ensd || undefined),
      );
      // float32 samples against a float64 replay: far below what a wrong eta, s_noise or noise stream moves.
      expect(maxDiff(x, r.x)).toBeLessThan(2e-4);
    });
  }
});

const NOISY = ["Euler a", "DPM2 a", "DPM++ 2S a", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 3M SDE"];

describe("eta 0 makes the ancestral and SDE samplers deterministic after the initial noise", () => {
  for (const sampler of NOISY) {
    it(`${sampler}: eta 0 gives the same result whatever the sampler's noise, eta 1 does not`, () => {
      const withNoise = (eta: number, seed: bigint) =>
        run(sampler, { eta }, 6, new BatchNoise([7n]), new BatchNoise([seed]));
      expect(maxDiff(withNoise(0, 1n), withNoise(0, 2n))).toBe(0);
      expect(maxDiff(withNoise(1, 1n), withNoise(1, 2n))).toBeGreaterThan(1e-3);
    });
  }
});

describe("the defaults change nothing", () => {
  for (const sampler of [...NOISY, "DDIM", "Euler", "Heun", "DPM2", "DPM++ 2M"]) {
    it(`${sampler}: eta and s_noise at A1111's defaults give the same bits as without them`, () => {
      const plain = run(sampler, {}, 5, new BatchNoise([3n]), new BatchNoise([4n]));
      const eta = sampler === "DDIM" ? 0 : 1;
      const explicit = run(sampler, { eta, sNoise: 1 }, 5, new BatchNoise([3n]), new BatchNoise([4n]));
      expect(Buffer.from(explicit.buffer).equals(Buffer.from(plain.buffer))).toBe(true);
    });
  }

  it("samplers without an eta ignore it, as A1111 does (Euler, DPM++ 2M, LMS)", () => {
    for (const sampler of ["Euler", "DPM++ 2M", "LMS"]) {
      const plain = run(sampler, {}, 5, new BatchNoise([3n]), new BatchNoise([4n]));
      const other = run(sampler, { eta: 0.3, sNoise: 0.5 }, 5, new BatchNoise([3n]), new BatchNoise([4n]));
      expect(Buffer.from(other.buffer).equals(Buffer.from(plain.buffer))).toBe(true);
    }
  });

  it("DDIM takes eta (A1111's eta_ddim): above 0 its result depends on the sampler's noise", () => {
    const ddim = (seed: bigint) => run("DDIM", { eta: 0.7 }, 5, new BatchNoise([3n]), new BatchNoise([seed]));
    expect(maxDiff(ddim(1n), ddim(2n))).toBeGreaterThan(1e-3);
  });
});

describe("churn calls the model at sigma_hat", () => {
  const logs = logSigmas(trainSigmas(createSchedulerAlphas()));
  /** The sigma a timestep stands for: the log-sigma table interpolated, the inverse of sigma_to_t. */
  const sigmaOf = (t: number) => {
    const low = Math.min(Math.floor(t), logs.length - 2);
    return Math.exp(logs[low]! + (t - low) * (logs[low + 1]! - logs[low]!));
  };

  for (const sampler of ["Euler", "Heun", "DPM2"]) {
    it(`${sampler}: a churned step's first call is at sigma_hat = sigma (1 + gamma), its input scaled for it`, () => {
      // Churn below sigma 5 only: sigma_hat then stays within the training sigmas, which the timestep can name.
      const s = createScheduler(sampler, SD, { schedule: "Karras", sChurn: 1, sTmax: 5 });
      s.setTimesteps(8);
      const noise = new BatchNoise([2n]);
      let x: Float32Array = new BatchNoise([1n]).randn([N]).map((v) => v * s.initNoiseSigma);
      const raised: number[] = [];
      s.timesteps.forEach((t, i) => {
        const c = s.churn!(x, t, noise);
        const scaled = s.scaleModelInput(c.sample, t);
        // A step's first call (DPM2's second, at the midpoint, has a test of its own).
        const first = sampler !== "DPM2" || i % 2 === 0;
        if (first && c.timestep !== t && sigmaOf(t) <= 5) {
          // gamma = min(s_churn / steps, sqrt(2) - 1) = 1 / 8.
          const hat = sigmaOf(t) * (1 + 1 / 8);
          raised.push(sigmaOf(c.timestep) / hat);
          expect(scaled[3]! * Math.sqrt(hat * hat + 1)).toBeCloseTo(c.sample[3]!, 4);
        }
        x = s.step(eps(scaled), t, c.sample, noise);
      });
      expect(raised.length).toBeGreaterThan(2);
      for (const r of raised) expect(r).toBeCloseTo(1, 5);
    });
  }

  it("DPM2: a churned step's second call is at the log-midpoint of sigma_hat and sigma_{i+1}", () => {
    const s = createScheduler("DPM2", SD, { schedule: "Karras", sChurn: 1, sTmax: 5 });
    s.setTimesteps(8);
    const noise = new BatchNoise([2n]);
    let x: Float32Array = new BatchNoise([1n]).randn([N]).map((v) => v * s.initNoiseSigma);
    const walk = Array.from(s.timesteps, sigmaOf);
    let checked = 0;
    let hat: number | undefined;
    for (let i = 0; i < s.timesteps.length; i++) {
      const t = s.timesteps[i]!;
      const c = s.churn!(x, t, noise);
      if (hat !== undefined && c.timestep !== t) {
        // This call is the second stage of the churned step: walk[i + 1] is the next step's sigma_{i+1}.
        expect(c.sample).toBe(x);
        expect(sigmaOf(c.timestep) / Math.sqrt(hat * walk[i + 1]!)).toBeCloseTo(1, 5);
        checked++;
        hat = undefined;
      } else hat = c.timestep !== t ? sigmaOf(c.timestep) : undefined;
      x = s.step(eps(s.scaleModelInput(c.sample, t)), t, c.sample, noise);
    }
    expect(checked).toBeGreaterThan(1);
  });

  it("s_churn 0 (the default) draws nothing and moves nothing", () => {
    for (const sampler of ["Euler", "Heun", "DPM2"]) {
      const s = createScheduler(sampler, SD);
      s.setTimesteps(4);
      const x = new Float32Array(N).fill(1);
      const silent: NoiseSource = {
        randn: () => {
          throw new Error("drew noise");
        },
      };
      expect(s.churn!(x, s.timesteps[0]!, silent)).toEqual({ sample: x, timestep: s.timesteps[0] });
    }
  });
});

/** SD's training alphas_cumprod, as the samplers configured from SD's scheduler config hold them. */
function createSchedulerAlphas(): Float32Array {
  return (createScheduler("Euler", SD) as unknown as { alphasCumprod: Float32Array }).alphasCumprod;
}
