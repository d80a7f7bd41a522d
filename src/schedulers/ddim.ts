/**
 * DDIM (Song et al. 2020): the deterministic (eta = 0) non-Markovian sampler that steps straight from x_t to
 * x_{t-k} through the model's x0 estimate. A1111's "DDIM"; the reference's DDIMScheduler.
 */
import { InputError } from "../errors.js";
import type { BetaConfig } from "./betas.js";
import { LINEAR_BETAS, THRESHOLDING_OFF, resolveConfig, type RawSchedulerConfig } from "./config.js";
import { f32 } from "./numerics.js";
import type { NoiseSource, PredictionType, TimestepSpacing } from "./scheduler.js";
import { alphaAt, clipSample, vpEstimates } from "./vp.js";
import { VpScheduler } from "./vp-scheduler.js";

export interface DDIMConfig extends BetaConfig {
  clip_sample: boolean;
  set_alpha_to_one: boolean;
  steps_offset: number;
  prediction_type: PredictionType;
  thresholding: boolean;
  dynamic_thresholding_ratio: number;
  clip_sample_range: number;
  sample_max_value: number;
  timestep_spacing: TimestepSpacing;
  rescale_betas_zero_snr: boolean;
}

export interface DDIMOptions {
  /** Weight of fresh noise per step (0: deterministic DDIM, 1: DDPM-like). Needs a NoiseSource when > 0. */
  eta?: number;
}

export class DDIMScheduler extends VpScheduler<DDIMConfig> {
  static readonly defaults: Readonly<DDIMConfig> = Object.freeze({
    ...LINEAR_BETAS,
    clip_sample: true,
    set_alpha_to_one: true,
    steps_offset: 0,
    prediction_type: "epsilon",
    ...THRESHOLDING_OFF,
    clip_sample_range: 1.0,
    timestep_spacing: "leading",
    rescale_betas_zero_snr: false,
  });

  static fromConfig(
    config: RawSchedulerConfig,
    overrides: Partial<DDIMConfig> = {},
    options: DDIMOptions = {},
  ): DDIMScheduler {
    return new DDIMScheduler(resolveConfig(DDIMScheduler.defaults, config, overrides), options);
  }

  readonly eta: number;
  /** alphas_cumprod "before" t=0: 1 (set_alpha_to_one) or abar_0. */
  private readonly finalAlphaCumprod: number;

  constructor(config: Partial<DDIMConfig> = {}, options: DDIMOptions = {}) {
    super(DDIMScheduler.defaults, config, {
      name: "DDIMScheduler",
      betaSchedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
    });
    this.eta = options.eta ?? 0;
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array {
    this.requireSchedule();
    const c = this.config;
    // The previous timestep is one stride back whatever the spacing, as in the reference.
    const prevTimestep = timestep - Math.floor(c.num_train_timesteps / this.numInferenceSteps);
    const abar = alphaAt(this.alphasCumprod, timestep);
    const abarPrev = prevTimestep >= 0 ? this.alphasCumprod[prevTimestep] : this.finalAlphaCumprod;
    const { x0, eps } = vpEstimates(c.prediction_type, modelOutput, sample, abar);
    if (c.clip_sample) clipSample(x0, c.clip_sample_range);

    const betaPrev = f32(1 - abarPrev);
    const variance = f32(f32(betaPrev / f32(1 - abar)) * f32(1 - f32(abar / abarPrev)));
    const std = f32(this.eta * f32(Math.sqrt(variance)));
    const dirCoeff = f32(Math.sqrt(f32(betaPrev - f32(std * std))));
    const x0Coeff = f32(Math.sqrt(abarPrev));
    // The reference draws whenever eta > 0, even where the variance is 0, which keeps a seeded generator in step.
    const z = this.eta > 0 ? requireNoise(noise).randn([sample.length]) : undefined;
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) out[i] = x0Coeff * x0[i] + dirCoeff * eps[i] + (z ? std * z[i] : 0);
    return out;
  }
}

function requireNoise(noise: NoiseSource | undefined): NoiseSource {
  if (!noise)
    throw new InputError(
      "DDIM with eta > 0 adds fresh noise every step: pass a NoiseSource (the run's seeded generator) to step()",
    );
  return noise;
}
