/**
 * Euler ancestral: each step goes down to sigma_down with an Euler step, then adds fresh noise of std sigma_up
 * so the marginal lands on sigma_next (sigma_down^2 + sigma_up^2 = sigma_next^2). A1111's "Euler a"; the
 * reference's EulerAncestralDiscreteScheduler. It draws noise on every step, the last included (with
 * sigma_up = 0 there), so a seeded generator stays in step with the reference. k-diffusion's eta scales sigma_up
 * (0: a deterministic Euler step to sigma_next) and s_noise the noise drawn, as A1111 passes them; both 1 by default.
 */
import { InputError } from "../errors.js";
import type { BetaConfig } from "./betas.js";
import { LINEAR_BETAS, resolveConfig, type RawSchedulerConfig } from "./config.js";
import { checkedNoiseKnobs, type NoiseKnobs } from "./noise-knobs.js";
import { f32 } from "./numerics.js";
import type { NoiseSource, PredictionType, TimestepSpacing } from "./scheduler.js";
import { SigmaScheduler } from "./sigma-scheduler.js";

export interface EulerAncestralDiscreteConfig extends BetaConfig {
  prediction_type: PredictionType;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
  rescale_betas_zero_snr: boolean;
}

export class EulerAncestralDiscreteScheduler extends SigmaScheduler<EulerAncestralDiscreteConfig> {
  static readonly defaults: Readonly<EulerAncestralDiscreteConfig> = Object.freeze({
    ...LINEAR_BETAS,
    prediction_type: "epsilon",
    timestep_spacing: "linspace",
    steps_offset: 0,
    rescale_betas_zero_snr: false,
  });

  static fromConfig(
    config: RawSchedulerConfig,
    overrides: Partial<EulerAncestralDiscreteConfig> = {},
    knobs: Partial<NoiseKnobs> = {},
  ): EulerAncestralDiscreteScheduler {
    return new EulerAncestralDiscreteScheduler(
      resolveConfig(EulerAncestralDiscreteScheduler.defaults, config, overrides),
      knobs,
    );
  }

  readonly order = 1;
  readonly knobs: NoiseKnobs;

  constructor(config: Partial<EulerAncestralDiscreteConfig> = {}, knobs: Partial<NoiseKnobs> = {}) {
    super(EulerAncestralDiscreteScheduler.defaults, config, {
      name: "EulerAncestralDiscreteScheduler",
      betaSchedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
      // The reference has no x0-prediction path for the ancestral sampler.
      predictions: ["epsilon", "v_prediction"],
      nudgeZeroSnr: true,
    });
    this.knobs = checkedNoiseKnobs("Euler a", knobs);
  }

  setTimesteps(numInferenceSteps: number): void {
    const schedule = this.buildSchedule(numInferenceSteps);
    schedule.timesteps = schedule.timesteps.map(f32);
    this.resetRun(schedule, numInferenceSteps);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array {
    if (!noise) {
      throw new InputError(
        "Euler a adds fresh noise every step: pass a NoiseSource (the run's seeded generator) to step()",
      );
    }
    const i = this.currentIndex(timestep);
    const sigma = this.sigmas[i];
    const denoised = this.denoisedAt(modelOutput, sample, sigma);
    const { up, down } = ancestralSplit(sigma, this.sigmas[i + 1], this.knobs.eta);
    const dt = f32(down - sigma);
    const z = noise.randn([sample.length]);
    const sNoise = this.knobs.sNoise;
    if (sNoise !== 1) for (let k = 0; k < z.length; k++) z[k] *= sNoise;
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) {
      const derivative = (sample[k] - denoised[k]) / sigma;
      out[k] = sample[k] + derivative * dt + z[k] * up;
    }
    this.stepIndex = i + 1;
    return out;
  }
}

/**
 * Splits the move from sigmaFrom to sigmaTo into a deterministic part (down to sigma_down) and fresh noise
 * (sigma_up), in float32 as the reference: sigma_down comes from a difference of squares that float32 rounds
 * visibly, and matching it keeps the trace within 1e-7. eta scales sigma_up, capped at sigmaTo as k-diffusion's
 * get_ancestral_step; eta 0 goes to sigmaTo itself without noise. eta 1 is the reference's arithmetic unchanged.
 */
export function ancestralSplit(sigmaFrom: number, sigmaTo: number, eta = 1): { up: number; down: number } {
  if (eta === 0) return { up: 0, down: sigmaTo };
  const from2 = f32(sigmaFrom * sigmaFrom);
  const to2 = f32(sigmaTo * sigmaTo);
  let up = f32(Math.sqrt(f32(f32(to2 * f32(from2 - to2)) / from2)));
  if (eta !== 1) up = Math.min(sigmaTo, f32(eta * up));
  const down = f32(Math.sqrt(f32(to2 - f32(up * up))));
  return { up, down };
}
