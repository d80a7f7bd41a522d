/**
 * A1111's sampler knobs on our samplers: eta and s_noise against k-diffusion's loops replayed independently in
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

interface Run {
  sampler: string;
  schedule: string;
  steps: number;
  eta: number;
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

/** The pipeline's loop on N values: the initial noise from `start`'s first draw, the sampler's from `noise`. */
function run(sampler: string, options: SchedulerOptions, steps: number, start: BatchNoise, noise: NoiseSource) {
  const s = createScheduler(sampler, SD, options);
  s.setTimesteps(steps);
  let x: Float32Array = start.randn([N]).map((v) => v * s.initNoiseSigma);
  for (const t of s.timesteps) x = s.step(eps(s.scaleModelInput(x, t)), t, x, noise);
  return x;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]! - b[k]!));
  return m;
}

describe("eta and s_noise match k-diffusion's samplers (reference replayed in Python)", () => {
  for (const r of FIXTURE.runs) {
    it(`${r.sampler} (${r.schedule}) with eta ${r.eta}, s_noise ${r.s_noise}, ENSD ${r.ensd}`, () => {
      const start = new BatchNoise([BigInt(FIXTURE.seed)]);
      const x = run(
        r.sampler,
        { schedule: r.schedule, eta: r.eta, sNoise: r.s_noise },
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
