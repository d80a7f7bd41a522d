/**
 * LMS: linear multistep (Adams-Bashforth style) in sigma space, using up to the last four ODE derivatives. A1111's
 * "LMS"; the reference's LMSDiscreteScheduler.
 */
import type { BetaConfig } from "./betas.js";
import { LINEAR_BETAS, SIGMA_SCHEDULE_FLAGS, resolveConfig, type RawSchedulerConfig } from "./config.js";
import type { PredictionType, TimestepSpacing } from "./scheduler.js";
import { SigmaScheduler } from "./sigma-scheduler.js";

export interface LMSDiscreteConfig extends BetaConfig {
  use_karras_sigmas: boolean;
  use_exponential_sigmas: boolean;
  use_beta_sigmas: boolean;
  prediction_type: PredictionType;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
}

/** How many past derivatives the multistep formula uses (the reference's default `order` argument of step). */
const LMS_ORDER = 4;

export class LMSDiscreteScheduler extends SigmaScheduler<LMSDiscreteConfig> {
  static readonly defaults: Readonly<LMSDiscreteConfig> = Object.freeze({
    ...LINEAR_BETAS,
    ...SIGMA_SCHEDULE_FLAGS,
    prediction_type: "epsilon",
    timestep_spacing: "linspace",
    steps_offset: 0,
  });

  static fromConfig(config: RawSchedulerConfig, overrides: Partial<LMSDiscreteConfig> = {}): LMSDiscreteScheduler {
    return new LMSDiscreteScheduler(resolveConfig(LMSDiscreteScheduler.defaults, config, overrides));
  }

  readonly order = 1;
  /** The latest ODE derivatives, oldest first. */
  private derivatives: Float64Array[] = [];

  constructor(config: Partial<LMSDiscreteConfig> = {}) {
    super(LMSDiscreteScheduler.defaults, config, {
      name: "LMSDiscreteScheduler",
      betaSchedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
    });
  }

  setTimesteps(numInferenceSteps: number): void {
    this.resetRun(this.buildSchedule(numInferenceSteps), numInferenceSteps);
    this.derivatives = [];
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    const i = this.currentIndex(timestep);
    const sigma = this.sigmas[i];
    const denoised = this.denoisedAt(modelOutput, sample, sigma);
    const derivative = new Float64Array(sample.length);
    for (let k = 0; k < sample.length; k++) derivative[k] = (sample[k] - denoised[k]) / sigma;
    this.derivatives.push(derivative);
    if (this.derivatives.length > LMS_ORDER) this.derivatives.shift();

    const order = Math.min(i + 1, LMS_ORDER);
    const out = Float64Array.from(sample);
    // A run started part-way (img2img) has fewer derivatives than its order; the reference then uses the
    // leading coefficients with the derivatives it has.
    const used = Math.min(order, this.derivatives.length);
    for (let back = 0; back < used; back++) {
      const coeff = this.lmsCoefficient(order, i, back);
      const d = this.derivatives[this.derivatives.length - 1 - back];
      for (let k = 0; k < out.length; k++) out[k] += coeff * d[k];
    }
    this.stepIndex = i + 1;
    return Float32Array.from(out);
  }

  /**
   * The weight of the derivative taken `back` steps ago: the integral from sigma_t to sigma_{t+1} of its
   * Lagrange basis polynomial over the last `order` sigmas. The reference integrates numerically (scipy quad to
   * 1e-4); its Gauss-Kronrod rule is exact for these cubic-at-most polynomials, so we integrate exactly.
   */
  private lmsCoefficient(order: number, t: number, back: number): number {
    const s = this.sigmas;
    // Expand prod_{k != back} (tau - s[t-k]) / (s[t-back] - s[t-k]) into power-series coefficients.
    let poly = [1];
    for (let k = 0; k < order; k++) {
      if (k === back) continue;
      const denom = s[t - back] - s[t - k];
      const next = new Array<number>(poly.length + 1).fill(0);
      for (let p = 0; p < poly.length; p++) {
        next[p + 1] += poly[p] / denom;
        next[p] -= (poly[p] * s[t - k]) / denom;
      }
      poly = next;
    }
    const antiderivative = (x: number): number => poly.reduce((acc, c, p) => acc + (c * x ** (p + 1)) / (p + 1), 0);
    return antiderivative(s[t + 1]) - antiderivative(s[t]);
  }
}
