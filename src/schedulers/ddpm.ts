/**
 * DDPM (Ho et al. 2020): ancestral sampling of the training Markov chain, with fresh noise at every step but
 * the last. Slow (it wants hundreds of steps) but the reference point for the others. The reference's
 * DDPMScheduler with its fixed variance types.
 */
import { InputError } from "../errors.js";
import type { BetaConfig } from "./betas.js";
import {
  LINEAR_BETAS,
  THRESHOLDING_OFF,
  checkOneOf,
  resolveConfig,
  unsupported,
  type RawSchedulerConfig,
} from "./config.js";
import { f32 } from "./numerics.js";
import type { NoiseSource, PredictionType, TimestepSpacing } from "./scheduler.js";
import { alphaAt, clipSample, vpEstimates } from "./vp.js";
import { VpScheduler } from "./vp-scheduler.js";

export type DDPMVarianceType =
  | "fixed_small"
  | "fixed_small_log"
  | "fixed_large"
  | "fixed_large_log"
  | "learned"
  | "learned_range";

export interface DDPMConfig extends BetaConfig {
  variance_type: DDPMVarianceType;
  clip_sample: boolean;
  prediction_type: PredictionType;
  thresholding: boolean;
  dynamic_thresholding_ratio: number;
  clip_sample_range: number;
  sample_max_value: number;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
  rescale_betas_zero_snr: boolean;
}

export class DDPMScheduler extends VpScheduler<DDPMConfig> {
  static readonly defaults: Readonly<DDPMConfig> = Object.freeze({
    ...LINEAR_BETAS,
    variance_type: "fixed_small",
    clip_sample: true,
    prediction_type: "epsilon",
    ...THRESHOLDING_OFF,
    clip_sample_range: 1.0,
    timestep_spacing: "leading",
    steps_offset: 0,
    rescale_betas_zero_snr: false,
  });

  static fromConfig(config: RawSchedulerConfig, overrides: Partial<DDPMConfig> = {}): DDPMScheduler {
    return new DDPMScheduler(resolveConfig(DDPMScheduler.defaults, config, overrides));
  }

  constructor(config: Partial<DDPMConfig> = {}) {
    super(DDPMScheduler.defaults, config, {
      name: "DDPMScheduler",
      betaSchedules: ["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"],
    });
    const c = this.config;
    checkOneOf("variance_type", c.variance_type, [
      "fixed_small",
      "fixed_small_log",
      "fixed_large",
      "fixed_large_log",
      "learned",
      "learned_range",
    ]);
    // learned variances need a model that predicts them; fixed_large_log yields NaN noise in the reference.
    if (!["fixed_small", "fixed_small_log", "fixed_large"].includes(c.variance_type)) {
      unsupported(
        "DDPMScheduler",
        "variance_type",
        c.variance_type,
        'variance_type "fixed_small", "fixed_small_log" or "fixed_large"',
      );
    }
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array {
    this.requireSchedule();
    const c = this.config;
    const prevT = timestep - Math.floor(c.num_train_timesteps / this.numInferenceSteps);
    const abar = alphaAt(this.alphasCumprod, timestep);
    const abarPrev = prevT >= 0 ? this.alphasCumprod[prevT] : 1;
    const beta = f32(1 - abar);
    const betaPrev = f32(1 - abarPrev);
    const alphaT = f32(abar / abarPrev);
    const betaT = f32(1 - alphaT);

    const { x0 } = vpEstimates(c.prediction_type, modelOutput, sample, abar);
    if (c.clip_sample) clipSample(x0, c.clip_sample_range);
    // Mean of the posterior q(x_{t-1} | x_t, x0) (formula 7 of the DDPM paper).
    const x0Coeff = f32(f32(f32(Math.sqrt(abarPrev)) * betaT) / beta);
    const xCoeff = f32(f32(f32(Math.sqrt(alphaT)) * betaPrev) / beta);
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) out[i] = x0Coeff * x0[i] + xCoeff * sample[i];
    if (timestep > 0) {
      if (!noise)
        throw new InputError(
          "DDPM adds fresh noise every step: pass a NoiseSource (the run's seeded generator) to step()",
        );
      const z = noise.randn([sample.length]);
      const std = this.noiseStd(betaPrev, beta, betaT);
      for (let i = 0; i < out.length; i++) out[i] += std * z[i];
    }
    return out;
  }

  /** The std of the step's fresh noise for the configured variance type. */
  private noiseStd(betaPrev: number, beta: number, betaT: number): number {
    // The posterior variance, floored so its log stays finite at t=0.
    const small = Math.max(f32(f32(betaPrev / beta) * betaT), 1e-20);
    switch (this.config.variance_type) {
      case "fixed_small":
        return f32(Math.sqrt(small));
      case "fixed_small_log":
        return f32(Math.exp(f32(0.5 * f32(Math.log(small)))));
      case "fixed_large":
        return f32(Math.sqrt(betaT));
      default:
        throw new InputError(`variance_type "${this.config.variance_type}" is not supported`);
    }
  }
}
