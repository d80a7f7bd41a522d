/**
 * The variance-preserving parametrisation the DDPM-family schedulers (DDIM, DDPM, PNDM, LCM) work in:
 * x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, with abar = alphas_cumprod indexed by integer training timestep.
 */
import { InputError } from "../errors.js";
import { f32 } from "./numerics.js";

/** alphas_cumprod[t] for an integer training timestep, with a clear error for anything else. */
export function alphaAt(alphasCumprod: Float32Array, timestep: number): number {
  if (!Number.isInteger(timestep) || timestep < 0 || timestep >= alphasCumprod.length) {
    throw new InputError(
      `timestep ${timestep} is not a training timestep (an integer from 0 to ${alphasCumprod.length - 1}): pass one of scheduler.timesteps`,
    );
  }
  return alphasCumprod[timestep];
}

/** sqrt(abar_t) x0 + sqrt(1 - abar_t) noise: the forward process, as img2img uses it. */
export function vpAddNoise(
  alphasCumprod: Float32Array,
  original: Float32Array,
  noise: Float32Array,
  timestep: number,
): Float32Array {
  const abar = alphaAt(alphasCumprod, timestep);
  const a = f32(Math.sqrt(abar));
  const b = f32(Math.sqrt(f32(1 - abar)));
  const out = new Float32Array(original.length);
  for (let i = 0; i < out.length; i++) out[i] = a * original[i] + b * noise[i];
  return out;
}

/**
 * The model's clean-sample and noise estimates (x0, eps) at a timestep with cumulative alpha `abar`, for the
 * three parametrisations; float64 arrays.
 */
export function vpEstimates(
  prediction: string,
  modelOutput: Float32Array,
  sample: Float32Array,
  abar: number,
): { x0: Float64Array; eps: Float64Array } {
  const n = sample.length;
  const x0 = new Float64Array(n);
  const eps = new Float64Array(n);
  const sqrtA = f32(Math.sqrt(abar));
  const sqrtB = f32(Math.sqrt(f32(1 - abar)));
  switch (prediction) {
    case "epsilon":
      for (let i = 0; i < n; i++) {
        x0[i] = (sample[i] - sqrtB * modelOutput[i]) / sqrtA;
        eps[i] = modelOutput[i];
      }
      break;
    case "sample":
      for (let i = 0; i < n; i++) {
        x0[i] = modelOutput[i];
        eps[i] = (sample[i] - sqrtA * modelOutput[i]) / sqrtB;
      }
      break;
    case "v_prediction":
      for (let i = 0; i < n; i++) {
        x0[i] = sqrtA * sample[i] - sqrtB * modelOutput[i];
        eps[i] = sqrtA * modelOutput[i] + sqrtB * sample[i];
      }
      break;
    default:
      throw new InputError(
        `prediction_type "${prediction}" is not supported: use "epsilon", "v_prediction" or "sample"`,
      );
  }
  return { x0, eps };
}

/** Clamps x0 to [-range, range] in place (clip_sample, for pixel-space models). */
export function clipSample(x0: Float64Array, range: number): void {
  for (let i = 0; i < x0.length; i++) x0[i] = Math.min(Math.max(x0[i], -range), range);
}

/** Refuses a step before setTimesteps, or a begin index outside the schedule. */
export function checkBeginIndex(index: number, length: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= length) {
    throw new InputError(
      `begin index ${index} is outside the schedule of ${length} model calls: call setTimesteps first and pass an index into timesteps`,
    );
  }
}
