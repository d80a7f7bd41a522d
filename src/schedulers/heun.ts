/**
 * Heun: the second-order (trapezoidal) solver of the probability-flow ODE in sigma space, Karras et al. (2022)
 * algorithm 1 without churn. Each step calls the model twice, at sigma_i and at the Euler guess for
 * sigma_{i+1}, and averages the two slopes; the last step, which ends at sigma = 0, is a plain Euler step. So
 * n steps take 2n - 1 model calls, and `timesteps` lists each call. A1111's "Heun"; the reference's
 * HeunDiscreteScheduler. With churn knobs (A1111's s_churn, s_tmin, s_tmax, s_noise) each step's first call is
 * made at the churned sigma_hat, as k-diffusion's sample_heun.
 */
import type { BetaConfig } from "./betas.js";
import { LDM_LINEAR_BETAS, SIGMA_SCHEDULE_FLAGS, resolveConfig, type RawSchedulerConfig } from "./config.js";
import { type ChurnKnobs, checkedChurnKnobs, churnSample } from "./churn.js";
import { f32 } from "./numerics.js";
import type { NoiseSource, PredictionType, TimestepSpacing } from "./scheduler.js";
import { SigmaScheduler, divideBy, inputScale, interleaveForTwoStages } from "./sigma-scheduler.js";
import { logSigmas, sigmaToT, trainSigmas } from "./sigmas.js";

export interface HeunDiscreteConfig extends BetaConfig {
  prediction_type: PredictionType;
  use_karras_sigmas: boolean;
  use_exponential_sigmas: boolean;
  use_beta_sigmas: boolean;
  clip_sample: boolean;
  clip_sample_range: number;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
}

export class HeunDiscreteScheduler extends SigmaScheduler<HeunDiscreteConfig> {
  static readonly defaults: Readonly<HeunDiscreteConfig> = Object.freeze({
    ...LDM_LINEAR_BETAS,
    prediction_type: "epsilon",
    ...SIGMA_SCHEDULE_FLAGS,
    clip_sample: false,
    clip_sample_range: 1.0,
    timestep_spacing: "linspace",
    steps_offset: 0,
  });

  static fromConfig(
    config: RawSchedulerConfig,
    overrides: Partial<HeunDiscreteConfig> = {},
    churn: Partial<ChurnKnobs> = {},
  ): HeunDiscreteScheduler {
    return new HeunDiscreteScheduler(resolveConfig(HeunDiscreteScheduler.defaults, config, overrides), churn);
  }

  readonly churnKnobs: ChurnKnobs;
  /** The current step's sigma_hat (for its first call), when churn raised it. */
  private raised: { index: number; sigma: number } | undefined;
  /** The step the run's churn started at. */
  private churnStart: number | undefined;

  readonly order = 2;
  /** First-stage state kept for the second call: its slope, step size and starting sample. */
  private firstStage: { derivative: Float64Array; dt: number; sample: Float32Array } | undefined;

  constructor(config: Partial<HeunDiscreteConfig> = {}, churn: Partial<ChurnKnobs> = {}) {
    super(HeunDiscreteScheduler.defaults, config, {
      name: "HeunDiscreteScheduler",
      betaSchedules: ["linear", "scaled_linear", "squaredcos_cap_v2", "exp"],
    });
    this.churnKnobs = checkedChurnKnobs("Heun", churn);
  }

  /** A step's first call (even index) is churned; n steps have 2n sigmas (the inner ones twice, then 0). */
  churn(sample: Float32Array, timestep: number, noise?: NoiseSource): { sample: Float32Array; timestep: number } {
    if (this.churnKnobs.sChurn === 0 || this.firstStage !== undefined) return { sample, timestep };
    const i = this.currentIndex(timestep);
    this.churnStart ??= i / 2;
    const steps = this.sigmas.length / 2 - this.churnStart;
    const out = churnSample(this.churnKnobs, "Heun", this.sigmas[i], steps, sample, noise);
    this.raised = out.sigmaHat === this.sigmas[i] ? undefined : { index: i, sigma: out.sigmaHat };
    if (!this.raised) return { sample: out.sample, timestep };
    return { sample: out.sample, timestep: sigmaToT(out.sigmaHat, logSigmas(trainSigmas(this.alphasCumprod))) };
  }

  override scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const i = this.currentIndex(timestep);
    return divideBy(sample, inputScale(this.raised?.index === i ? this.raised.sigma : this.sigmas[i]));
  }

  /** True when the next call starts a step (rather than finishing one). */
  get inFirstStage(): boolean {
    return this.firstStage === undefined;
  }

  setTimesteps(numInferenceSteps: number): void {
    this.resetRun(interleaveForTwoStages(this.buildSchedule(numInferenceSteps)), numInferenceSteps);
    this.firstStage = undefined;
    this.raised = undefined;
    this.churnStart = undefined;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    const i = this.currentIndex(timestep);
    const pending = this.firstStage;
    const out = new Float32Array(sample.length);
    if (pending === undefined) {
      const sigma = this.raised?.index === i ? this.raised.sigma : this.sigmas[i];
      this.raised = undefined;
      const denoised = this.denoisedAt(modelOutput, sample, sigma);
      const dt = f32(this.sigmas[i + 1] - sigma);
      const derivative = new Float64Array(sample.length);
      for (let k = 0; k < out.length; k++) {
        derivative[k] = (sample[k] - denoised[k]) / sigma;
        out[k] = sample[k] + derivative[k] * dt;
      }
      this.firstStage = { derivative, dt, sample };
    } else {
      // Second call: the model was evaluated at the Euler guess for sigma_next; average the two slopes.
      const sigmaNext = this.sigmas[i];
      const denoised = this.denoisedAt(modelOutput, sample, sigmaNext);
      for (let k = 0; k < out.length; k++) {
        const slope = (pending.derivative[k] + (sample[k] - denoised[k]) / sigmaNext) / 2;
        out[k] = pending.sample[k] + slope * pending.dt;
      }
      this.firstStage = undefined;
    }
    this.stepIndex = i + 1;
    return out;
  }

  /** Heun alone among the sigma samplers offers clip_sample. */
  protected override denoisedAt(modelOutput: Float32Array, sample: Float32Array, sigma: number): Float64Array {
    const x0 = super.denoisedAt(modelOutput, sample, sigma);
    if (this.config.clip_sample) {
      const r = this.config.clip_sample_range;
      for (let k = 0; k < x0.length; k++) x0[k] = Math.min(Math.max(x0[k], -r), r);
    }
    return x0;
  }
}
