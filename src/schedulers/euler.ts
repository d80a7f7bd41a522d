/**
 * Euler: the first-order solver of the probability-flow ODE in sigma space (Karras et al. 2022, algorithm 2
 * without churn). A1111's "Euler"; the reference's EulerDiscreteScheduler. With churn knobs (A1111's s_churn,
 * s_tmin, s_tmax, s_noise) it is k-diffusion's sample_euler with churn: algorithm 2 in full.
 */
import type { BetaConfig } from "./betas.js";
import { LINEAR_BETAS, SIGMA_SCHEDULE_FLAGS, resolveConfig, unsupported, type RawSchedulerConfig } from "./config.js";
import { type ChurnKnobs, checkedChurnKnobs, churnSample } from "./churn.js";
import { f32 } from "./numerics.js";
import type { NoiseSource, PredictionType, TimestepSpacing } from "./scheduler.js";
import { SigmaScheduler, divideBy, inputScale } from "./sigma-scheduler.js";
import { logSigmas, sigmaToT, trainSigmas } from "./sigmas.js";

export interface EulerDiscreteConfig extends BetaConfig {
  prediction_type: PredictionType;
  interpolation_type: "linear" | "log_linear";
  use_karras_sigmas: boolean;
  use_exponential_sigmas: boolean;
  use_beta_sigmas: boolean;
  sigma_min: number | null;
  sigma_max: number | null;
  timestep_spacing: TimestepSpacing;
  timestep_type: "discrete" | "continuous";
  steps_offset: number;
  rescale_betas_zero_snr: boolean;
  final_sigmas_type: "zero" | "sigma_min";
}

export class EulerDiscreteScheduler extends SigmaScheduler<EulerDiscreteConfig> {
  static readonly defaults: Readonly<EulerDiscreteConfig> = Object.freeze({
    ...LINEAR_BETAS,
    prediction_type: "epsilon",
    interpolation_type: "linear",
    ...SIGMA_SCHEDULE_FLAGS,
    sigma_min: null,
    sigma_max: null,
    timestep_spacing: "linspace",
    timestep_type: "discrete",
    steps_offset: 0,
    rescale_betas_zero_snr: false,
    final_sigmas_type: "zero",
  });

  static fromConfig(
    config: RawSchedulerConfig,
    overrides: Partial<EulerDiscreteConfig> = {},
    churn: Partial<ChurnKnobs> = {},
  ): EulerDiscreteScheduler {
    return new EulerDiscreteScheduler(resolveConfig(EulerDiscreteScheduler.defaults, config, overrides), churn);
  }

  readonly order = 1;
  readonly churnKnobs: ChurnKnobs;
  /** The current step's sigma_hat, when churn raised it. */
  private raised: { index: number; sigma: number } | undefined;
  /** The step the run's churn started at: gamma divides s_churn by the steps the run takes. */
  private churnStart: number | undefined;

  constructor(config: Partial<EulerDiscreteConfig> = {}, churn: Partial<ChurnKnobs> = {}) {
    const name = "EulerDiscreteScheduler";
    super(EulerDiscreteScheduler.defaults, config, {
      name,
      betaSchedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
      nudgeZeroSnr: true,
    });
    const c = this.config;
    if (c.interpolation_type !== "linear")
      unsupported(name, "interpolation_type", c.interpolation_type, 'interpolation_type "linear"');
    if (c.timestep_type === "continuous" && c.prediction_type === "v_prediction") {
      unsupported(name, "timestep_type", c.timestep_type, 'timestep_type "discrete"');
    }
    this.churnKnobs = checkedChurnKnobs("Euler", churn);
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    const schedule = this.buildSchedule(numInferenceSteps, {
      sigmaMin: c.sigma_min,
      sigmaMax: c.sigma_max,
      finalSigma: c.final_sigmas_type === "sigma_min" ? trainSigmas(this.alphasCumprod)[0] : 0,
    });
    // The reference hands the model float32 timesteps.
    schedule.timesteps = schedule.timesteps.map(f32);
    this.resetRun(schedule, numInferenceSteps);
    this.raised = undefined;
    this.churnStart = undefined;
  }

  churn(sample: Float32Array, timestep: number, noise?: NoiseSource): { sample: Float32Array; timestep: number } {
    if (this.churnKnobs.sChurn === 0) return { sample, timestep };
    const i = this.currentIndex(timestep);
    this.churnStart ??= i;
    const steps = this.sigmas.length - 1 - this.churnStart;
    const out = churnSample(this.churnKnobs, "Euler", this.sigmas[i], steps, sample, noise);
    this.raised = out.sigmaHat === this.sigmas[i] ? undefined : { index: i, sigma: out.sigmaHat };
    if (!this.raised) return { sample: out.sample, timestep };
    return { sample: out.sample, timestep: sigmaToT(out.sigmaHat, logSigmas(trainSigmas(this.alphasCumprod))) };
  }

  override scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    return divideBy(sample, inputScale(this.sigmaOfCall(this.currentIndex(timestep))));
  }

  /** The sigma call `i` works at: the schedule's, or sigma_hat when churn raised it. */
  private sigmaOfCall(i: number): number {
    return this.raised?.index === i ? this.raised.sigma : this.sigmas[i];
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    const i = this.currentIndex(timestep);
    const sigma = this.sigmaOfCall(i);
    this.raised = undefined;
    const denoised = this.denoisedAt(modelOutput, sample, sigma);
    const dt = f32(this.sigmas[i + 1] - sigma);
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) {
      const derivative = (sample[k] - denoised[k]) / sigma;
      out[k] = sample[k] + derivative * dt;
    }
    this.stepIndex = i + 1;
    return out;
  }
}
