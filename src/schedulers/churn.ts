/**
 * Karras et al. (2022)'s churn, as k-diffusion's sample_euler, sample_heun and sample_dpm_2 take it and A1111 passes
 * it (s_churn, s_tmin, s_tmax, s_noise): before the first model call of step i, the sample is raised from sigma_i to
 * sigma_hat = sigma_i (1 + gamma) with fresh noise of std sqrt(sigma_hat^2 - sigma_i^2) s_noise, where
 * gamma = min(s_churn / steps, sqrt(2) - 1) for sigma_i within [s_tmin, s_tmax] (0 elsewhere) and `steps` is the
 * number of steps the run takes; the step then proceeds from sigma_hat. With s_churn above 0 a standard normal is
 * drawn on every step, gamma 0 or not, as k-diffusion draws it (A1111 hands it the run's generator), so the draws
 * stay in step with A1111's. s_churn 0, the default, draws nothing and changes nothing.
 */
import { InputError } from "../errors.js";
import type { NoiseSource } from "./scheduler.js";

export interface ChurnKnobs {
  sChurn: number;
  sTmin: number;
  /** Infinity: no upper bound (A1111's s_tmax 0). */
  sTmax: number;
  sNoise: number;
}

export const NO_CHURN: Readonly<ChurnKnobs> = Object.freeze({ sChurn: 0, sTmin: 0, sTmax: Infinity, sNoise: 1 });

/** The knobs with defaults filled (s_tmax 0 is no bound, as A1111's); an InputError naming a bad one. */
export function checkedChurnKnobs(label: string, knobs: Partial<ChurnKnobs> = {}): ChurnKnobs {
  const out = { ...NO_CHURN, ...knobs };
  for (const [key, name] of [
    ["sChurn", "s_churn"],
    ["sTmin", "s_tmin"],
    ["sTmax", "s_tmax"],
    ["sNoise", "s_noise"],
  ] as const) {
    const v = out[key];
    if (typeof v !== "number" || Number.isNaN(v) || v < 0 || (v === Infinity && key !== "sTmax"))
      throw new InputError(`${label}: ${name} must be a finite number >= 0, got ${v}`);
  }
  if (out.sTmax === 0) out.sTmax = Infinity;
  return out;
}

/**
 * Churns `sample` at sigma for a run of `steps` steps: the raised sample and sigma_hat (sigma itself, and the
 * sample untouched, where gamma is 0). Draws from `noise` whenever s_churn is above 0.
 */
export function churnSample(
  k: ChurnKnobs,
  label: string,
  sigma: number,
  steps: number,
  sample: Float32Array,
  noise: NoiseSource | undefined,
): { sample: Float32Array; sigmaHat: number } {
  if (k.sChurn === 0) return { sample, sigmaHat: sigma };
  if (!noise)
    throw new InputError(`${label} with s_churn adds fresh noise: pass a NoiseSource (the run's seeded generator)`);
  const eps = noise.randn([sample.length]);
  const gamma = k.sTmin <= sigma && sigma <= k.sTmax ? Math.min(k.sChurn / steps, Math.SQRT2 - 1) : 0;
  if (gamma === 0) return { sample, sigmaHat: sigma };
  const sigmaHat = sigma * (gamma + 1);
  const std = Math.sqrt(sigmaHat * sigmaHat - sigma * sigma) * k.sNoise;
  return { sample: Float32Array.from(sample, (v, i) => v + eps[i]! * std), sigmaHat };
}
