/**
 * Stand-ins for the UNet with known answers, for samplers that have no reference trace: exact denoisers of
 * simple data distributions, and a seeded Gaussian noise source.
 */
import type { NoiseSource, Scheduler } from "../../src/schedulers/scheduler.js";
import { logSigmas, trainSigmas } from "../../src/schedulers/sigmas.js";

/**
 * The noise level a model infers from its timestep: the training sigma table interpolated linearly in log sigma,
 * the exact inverse of the schedulers' sigma-to-timestep map (so Karras and midpoint timesteps come back to
 * their sigmas).
 */
export function sigmaOfTimestep(alphasCumprod: Float32Array, t: number): number {
  const logs = logSigmas(trainSigmas(alphasCumprod));
  const low = Math.min(Math.floor(t), logs.length - 2);
  const w = t - low;
  return Math.exp(logs[low]! + w * (logs[low + 1]! - logs[low]!));
}

/** An epsilon-predicting model that knows the denoised answer: eps = (x - D(x, sigma)) / sigma. */
export type Denoiser = (x: Float64Array, sigma: number) => Float64Array;

/** The data distribution is a point mass at x0: every denoiser output is x0. */
export const pointMass =
  (x0: Float32Array): Denoiser =>
  () =>
    Float64Array.from(x0);

/** The data are i.i.d. N(0, sd^2): the optimal denoiser shrinks x by sd^2 / (sd^2 + sigma^2). */
export const gaussian =
  (sd: number): Denoiser =>
  (x, sigma) =>
    x.map((v) => (v * sd * sd) / (sd * sd + sigma * sigma));

/**
 * Runs a sigma-space scheduler's whole loop with an exact epsilon model built from `denoise`. The model sees
 * only what a UNet sees (the scaled input and the timestep) and recovers sigma from the timestep.
 */
export function sample(
  s: Scheduler & { alphasCumprod: Float32Array },
  steps: number,
  xT: Float32Array,
  denoise: Denoiser,
  noise?: NoiseSource,
): { x: Float32Array; calls: number } {
  s.setTimesteps(steps);
  let x: Float32Array = xT.map((v) => v * s.initNoiseSigma);
  let calls = 0;
  for (const t of s.timesteps) {
    const input = s.scaleModelInput(x, t);
    const sigma = sigmaOfTimestep(s.alphasCumprod, t);
    const unscaled = Float64Array.from(input, (v) => v * Math.sqrt(sigma * sigma + 1));
    const d = denoise(unscaled, sigma);
    const eps = Float32Array.from(unscaled, (v, i) => (v - d[i]!) / sigma);
    calls++;
    x = s.step(eps, t, x, noise);
  }
  return { x, calls };
}

/** A seeded N(0, 1) source (mulberry32 + Box-Muller) for statistical checks; not torch-compatible. */
export class SeededNormal implements NoiseSource {
  draws = 0;
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  private uniform(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  }
  randn(shape: readonly number[]): Float32Array {
    this.draws++;
    const n = shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      out[i] = Math.sqrt(-2 * Math.log(this.uniform())) * Math.cos(2 * Math.PI * this.uniform());
    }
    return out;
  }
}

/** Always zero: turns the stochastic samplers into their deterministic skeletons. */
export class ZeroNoise implements NoiseSource {
  draws = 0;
  randn(shape: readonly number[]): Float32Array {
    this.draws++;
    return new Float32Array(shape.reduce((a, b) => a * b, 1));
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
