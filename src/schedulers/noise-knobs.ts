/**
 * k-diffusion's two knobs of the samplers that draw fresh noise while sampling (A1111's `eta` and `s_noise`):
 * eta is the share of each step that is fresh noise (it scales the ancestral step's sigma_up, or the SDE's noise
 * share; 0 makes the sampler deterministic), s_noise scales the noise drawn. Both default to 1, A1111's values
 * for the ancestral and SDE samplers, which leave every sampler exactly as without them.
 */
import { InputError } from "../errors.js";

export interface NoiseKnobs {
  eta: number;
  sNoise: number;
}

export const DEFAULT_NOISE_KNOBS: Readonly<NoiseKnobs> = Object.freeze({ eta: 1, sNoise: 1 });

/** The knobs with defaults filled; an InputError naming the knob for a value that is not finite and >= 0. */
export function checkedNoiseKnobs(label: string, knobs: Partial<NoiseKnobs> = {}): NoiseKnobs {
  const out = { ...DEFAULT_NOISE_KNOBS, ...knobs };
  for (const [key, name] of [
    ["eta", "eta"],
    ["sNoise", "s_noise"],
  ] as const) {
    const v = out[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
      throw new InputError(`${label}: ${name} must be a finite number >= 0, got ${v}; A1111's default is 1`);
  }
  return out;
}
