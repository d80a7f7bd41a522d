/**
 * Euler: the first-order solver of the probability-flow ODE in sigma space (Karras et al. 2022, algorithm 2
 * without churn). A1111's "Euler"; the reference's EulerDiscreteScheduler.
 */
import { trainingSchedule, type BetaConfig } from "./betas.js";
import { checkOneOf, resolveConfig, unsupported, type RawSchedulerConfig } from "./config.js";
import { f32 } from "./numerics.js";
import type { PredictionType, TimestepSpacing } from "./scheduler.js";
import { SigmaScheduler, buildSigmaSchedule, denoisedFromOutput } from "./sigma-scheduler.js";
import { trainSigmas } from "./sigmas.js";

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

export class EulerDiscreteScheduler extends SigmaScheduler {
  static readonly defaults: Readonly<EulerDiscreteConfig> = Object.freeze({
    num_train_timesteps: 1000,
    beta_start: 0.0001,
    beta_end: 0.02,
    beta_schedule: "linear",
    trained_betas: null,
    prediction_type: "epsilon",
    interpolation_type: "linear",
    use_karras_sigmas: false,
    use_exponential_sigmas: false,
    use_beta_sigmas: false,
    sigma_min: null,
    sigma_max: null,
    timestep_spacing: "linspace",
    timestep_type: "discrete",
    steps_offset: 0,
    rescale_betas_zero_snr: false,
    final_sigmas_type: "zero",
  });

  static fromConfig(config: RawSchedulerConfig, overrides: Partial<EulerDiscreteConfig> = {}): EulerDiscreteScheduler {
    return new EulerDiscreteScheduler(resolveConfig(EulerDiscreteScheduler.defaults, config, overrides));
  }

  readonly order = 1;
  readonly config: Readonly<EulerDiscreteConfig>;
  readonly alphasCumprod: Float32Array;

  constructor(config: Partial<EulerDiscreteConfig> = {}) {
    super();
    const c = resolveConfig(EulerDiscreteScheduler.defaults, {}, config);
    const name = "EulerDiscreteScheduler";
    checkOneOf("timestep_spacing", c.timestep_spacing, ["leading", "linspace", "trailing"]);
    checkOneOf("prediction_type", c.prediction_type, ["epsilon", "v_prediction", "sample"]);
    checkOneOf("final_sigmas_type", c.final_sigmas_type, ["zero", "sigma_min"]);
    if (c.interpolation_type !== "linear") unsupported(name, "interpolation_type", c.interpolation_type, 'interpolation_type "linear"');
    if (c.use_exponential_sigmas) unsupported(name, "use_exponential_sigmas", true, "use_karras_sigmas or the default schedule");
    if (c.use_beta_sigmas) unsupported(name, "use_beta_sigmas", true, "use_karras_sigmas or the default schedule");
    if (c.timestep_type === "continuous" && c.prediction_type === "v_prediction") {
      unsupported(name, "timestep_type", c.timestep_type, 'timestep_type "discrete"');
    }
    this.config = c;
    this.alphasCumprod = trainingSchedule(c, ["linear", "scaled_linear", "squaredcos_cap_v2"], c.rescale_betas_zero_snr).alphasCumprod;
    // Zero terminal SNR would make the first sigma infinite; the reference nudges it to fp16's smallest subnormal.
    if (c.rescale_betas_zero_snr) this.alphasCumprod[this.alphasCumprod.length - 1] = 2 ** -24;
  }

  protected get spacing(): TimestepSpacing {
    return this.config.timestep_spacing;
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    const schedule = buildSigmaSchedule(this.alphasCumprod, numInferenceSteps, {
      spacing: c.timestep_spacing,
      numTrain: c.num_train_timesteps,
      stepsOffset: c.steps_offset,
      karras: c.use_karras_sigmas,
      sigmaMin: c.sigma_min,
      sigmaMax: c.sigma_max,
      finalSigma: c.final_sigmas_type === "sigma_min" ? trainSigmas(this.alphasCumprod)[0] : 0,
    });
    // The reference hands the model float32 timesteps.
    schedule.timesteps = schedule.timesteps.map(f32);
    this.resetRun(schedule, numInferenceSteps);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    const i = this.currentIndex(timestep);
    const sigma = this.sigmas[i];
    const denoised = denoisedFromOutput(this.config.prediction_type, modelOutput, sample, sigma);
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
