/**
 * DPM-Solver++ multistep (Lu et al. 2022): an exponential integrator in log-SNR that reuses the previous step's
 * model output for second order at one model call per step. With the defaults (dpmsolver++, order 2, midpoint)
 * it is A1111's "DPM++ 2M", with use_karras_sigmas "DPM++ 2M Karras", with sde-dpmsolver++ "DPM++ 2M SDE".
 * The reference's DPMSolverMultistepScheduler.
 *
 * Scalar coefficients are computed in float32 like the reference: they come from differences of log-SNRs
 * (h = lambda_t - lambda_s) and exp(-h) - 1, where float32 rounding shows at the 1e-6 level.
 */
import { InputError } from "../errors.js";
import type { BetaConfig } from "./betas.js";
import {
  LINEAR_BETAS,
  SIGMA_SCHEDULE_FLAGS,
  THRESHOLDING_OFF,
  checkOneOf,
  resolveConfig,
  unsupported,
  type RawSchedulerConfig,
} from "./config.js";
import { MultistepScheduler, lambdaOf } from "./multistep-scheduler.js";
import { checkedNoiseKnobs, type NoiseKnobs } from "./noise-knobs.js";
import { f32 } from "./numerics.js";
import type { NoiseSource, PredictionType, TimestepSpacing } from "./scheduler.js";
import { alphaSigmaOf } from "./sigmas.js";

export type DPMAlgorithm = "dpmsolver++" | "dpmsolver" | "sde-dpmsolver++" | "sde-dpmsolver";

export interface DPMSolverMultistepConfig extends BetaConfig {
  solver_order: number;
  prediction_type: PredictionType;
  thresholding: boolean;
  dynamic_thresholding_ratio: number;
  sample_max_value: number;
  algorithm_type: DPMAlgorithm;
  solver_type: "midpoint" | "heun";
  lower_order_final: boolean;
  euler_at_final: boolean;
  use_karras_sigmas: boolean;
  use_exponential_sigmas: boolean;
  use_beta_sigmas: boolean;
  use_lu_lambdas: boolean;
  final_sigmas_type: "zero" | "sigma_min";
  lambda_min_clipped: number;
  variance_type: string | null;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
  rescale_betas_zero_snr: boolean;
}

export class DPMSolverMultistepScheduler extends MultistepScheduler<DPMSolverMultistepConfig> {
  static readonly defaults: Readonly<DPMSolverMultistepConfig> = Object.freeze({
    ...LINEAR_BETAS,
    solver_order: 2,
    prediction_type: "epsilon",
    ...THRESHOLDING_OFF,
    algorithm_type: "dpmsolver++",
    solver_type: "midpoint",
    lower_order_final: true,
    euler_at_final: false,
    ...SIGMA_SCHEDULE_FLAGS,
    use_lu_lambdas: false,
    final_sigmas_type: "zero",
    lambda_min_clipped: -Infinity,
    variance_type: null,
    timestep_spacing: "linspace",
    steps_offset: 0,
    rescale_betas_zero_snr: false,
  });

  static fromConfig(
    config: RawSchedulerConfig,
    overrides: Partial<DPMSolverMultistepConfig> = {},
    knobs: Partial<NoiseKnobs> = {},
  ): DPMSolverMultistepScheduler {
    return new DPMSolverMultistepScheduler(
      resolveConfig(DPMSolverMultistepScheduler.defaults, config, overrides),
      knobs,
    );
  }

  /**
   * k-diffusion's eta and s_noise of sample_dpmpp_2m_sde (sde-dpmsolver++ only): with h_eta = (1 + eta) h the
   * step is x' = (sigma'/sigma) e^{-eta h} x + alpha' (1 - e^{-h_eta}) D + ..., its noise sigma' sqrt(1 - e^{-2 eta
   * h}) s_noise. eta 1 and s_noise 1 are the reference's SDE step exactly.
   */
  readonly knobs: NoiseKnobs;
  /** The converted outputs (x0 for the ++ variants, noise otherwise) of the last solver_order steps, oldest first. */
  private history: Float32Array[] = [];
  private lowerOrderNums = 0;

  constructor(config: Partial<DPMSolverMultistepConfig> = {}, knobs: Partial<NoiseKnobs> = {}) {
    const name = "DPMSolverMultistepScheduler";
    const rules = {
      name,
      betaSchedules: ["linear", "scaled_linear", "squaredcos_cap_v2"] as const,
      nudgeZeroSnr: true,
    };
    super(DPMSolverMultistepScheduler.defaults, config, rules, (c) => {
      // Configs written for DEIS or UniPC load into this class with the reference's substitutions.
      if ((c.algorithm_type as string) === "deis") c.algorithm_type = "dpmsolver++";
      if (["logrho", "bh1", "bh2"].includes(c.solver_type)) c.solver_type = "midpoint";
    });
    const c = this.config;
    checkOneOf("algorithm_type", c.algorithm_type, ["dpmsolver++", "dpmsolver", "sde-dpmsolver++", "sde-dpmsolver"]);
    checkOneOf("solver_type", c.solver_type, ["midpoint", "heun"]);
    if (![1, 2, 3].includes(c.solver_order))
      unsupported(name, "solver_order", c.solver_order, "solver_order 1, 2 or 3");
    if ((c.algorithm_type === "sde-dpmsolver" || c.algorithm_type === "sde-dpmsolver++") && c.solver_order === 3) {
      unsupported(
        name,
        "solver_order",
        3,
        "solver_order 1 or 2 for the SDE variants (the reference has no third-order SDE update)",
      );
    }
    if (c.variance_type === "learned" || c.variance_type === "learned_range") {
      unsupported(name, "variance_type", c.variance_type, "variance_type null (SD models predict noise only)");
    }
    if (c.use_karras_sigmas && c.use_lu_lambdas)
      unsupported(name, "use_lu_lambdas", true, "only one of use_karras_sigmas and use_lu_lambdas");
    if (!c.algorithm_type.endsWith("dpmsolver++") && c.final_sigmas_type === "zero") {
      throw new InputError(
        `${name}: final_sigmas_type "zero" needs a ++ algorithm_type; with "${c.algorithm_type}" set final_sigmas_type "sigma_min"`,
      );
    }
    this.knobs = checkedNoiseKnobs("DPM++ 2M SDE", knobs);
    if (c.algorithm_type !== "sde-dpmsolver++" && (this.knobs.eta !== 1 || this.knobs.sNoise !== 1))
      throw new InputError(
        `${name}: eta and s_noise apply to algorithm_type "sde-dpmsolver++" (DPM++ 2M SDE) only; leave them at 1 for "${c.algorithm_type}"`,
      );
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    this.startRun(numInferenceSteps, {
      luLambdas: c.use_lu_lambdas,
      lastTimestep: c.num_train_timesteps - this.clippedSteps(),
    });
    this.history = [];
    this.lowerOrderNums = 0;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array {
    const c = this.config;
    const stochastic = c.algorithm_type.startsWith("sde");
    if (stochastic && !noise)
      throw new InputError(
        `${c.algorithm_type} adds fresh noise every step: pass a NoiseSource (the run's seeded generator) to step()`,
      );
    const i = this.currentIndex(timestep);
    const len = this.timesteps.length;
    // Few-step runs end with lower orders: the multistep extrapolation is unstable on big final steps.
    const lowerOrderFinal =
      i === len - 1 && (c.euler_at_final || (c.lower_order_final && len < 15) || c.final_sigmas_type === "zero");
    const lowerOrderSecond = i === len - 2 && c.lower_order_final && len < 15;

    this.history.push(this.convertModelOutput(modelOutput, sample, this.sigmas[i]));
    if (this.history.length > c.solver_order) this.history.shift();

    const z = stochastic ? noise!.randn([sample.length]) : undefined;

    let out: Float32Array;
    if (c.solver_order === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) out = this.firstOrder(i, sample, z);
    else if (c.solver_order === 2 || this.lowerOrderNums < 2 || lowerOrderSecond) out = this.secondOrder(i, sample, z);
    else out = this.thirdOrder(i, sample);
    if (this.lowerOrderNums < c.solver_order) this.lowerOrderNums++;
    this.stepIndex = i + 1;
    return out;
  }

  /** Training steps at the noisy end whose log-SNR is below lambda_min_clipped (cosine schedules clip them). */
  private clippedSteps(): number {
    const min = this.config.lambda_min_clipped;
    let count = 0;
    for (const a of this.alphasCumprod) {
      const lambda = f32(f32(Math.log(f32(Math.sqrt(a)))) - f32(Math.log(f32(Math.sqrt(f32(1 - a))))));
      if (lambda < min) count++;
    }
    return count;
  }

  /** The model output as the quantity the solver integrates: x0 (++ variants) or noise. */
  private convertModelOutput(modelOutput: Float32Array, sample: Float32Array, sigma: number): Float32Array {
    const { alpha, sigma: s } = alphaSigmaOf(sigma);
    const prediction = this.config.prediction_type;
    const out = new Float32Array(sample.length);
    const dataPrediction = this.config.algorithm_type.endsWith("++");
    for (let i = 0; i < out.length; i++) {
      const m = modelOutput[i];
      const x = sample[i];
      if (dataPrediction) {
        out[i] = prediction === "epsilon" ? (x - s * m) / alpha : prediction === "v_prediction" ? alpha * x - s * m : m;
      } else {
        out[i] = prediction === "epsilon" ? m : prediction === "v_prediction" ? alpha * m + s * x : (x - alpha * m) / s;
      }
    }
    return out;
  }

  private firstOrder(i: number, sample: Float32Array, z: Float32Array | undefined): Float32Array {
    const t = alphaSigmaOf(this.sigmas[i + 1]);
    const s = alphaSigmaOf(this.sigmas[i]);
    const h = f32(lambdaOf(this.sigmas[i + 1]) - lambdaOf(this.sigmas[i]));
    const m0 = this.history[this.history.length - 1];
    const out = new Float32Array(sample.length);
    switch (this.config.algorithm_type) {
      case "dpmsolver++": {
        const a = f32(t.sigma / s.sigma);
        const b = f32(t.alpha * f32(f32(Math.exp(-h)) - 1));
        for (let k = 0; k < out.length; k++) out[k] = a * sample[k] - b * m0[k];
        break;
      }
      case "dpmsolver": {
        const a = f32(t.alpha / s.alpha);
        const b = f32(t.sigma * f32(f32(Math.exp(h)) - 1));
        for (let k = 0; k < out.length; k++) out[k] = a * sample[k] - b * m0[k];
        break;
      }
      case "sde-dpmsolver++": {
        const { eta, sNoise } = this.knobs;
        const eTot = f32(Math.exp(f32(-(1 + eta) * h)));
        const a = f32(f32(t.sigma / s.sigma) * sdeDecay(eta, h));
        const b = f32(t.alpha * f32(1 - eTot));
        const n = f32(f32(t.sigma * sdeNoiseShare(eta, h)) * sNoise);
        for (let k = 0; k < out.length; k++) out[k] = a * sample[k] + b * m0[k] + n * z![k];
        break;
      }
      case "sde-dpmsolver": {
        const a = f32(t.alpha / s.alpha);
        const b = f32(2 * f32(t.sigma * f32(f32(Math.exp(h)) - 1)));
        const n = f32(t.sigma * f32(Math.sqrt(f32(f32(Math.exp(f32(2 * h))) - 1))));
        for (let k = 0; k < out.length; k++) out[k] = a * sample[k] - b * m0[k] + n * z![k];
        break;
      }
    }
    return out;
  }

  private secondOrder(i: number, sample: Float32Array, z: Float32Array | undefined): Float32Array {
    const c = this.config;
    const t = alphaSigmaOf(this.sigmas[i + 1]);
    const s0 = alphaSigmaOf(this.sigmas[i]);
    const lt = lambdaOf(this.sigmas[i + 1]);
    const l0 = lambdaOf(this.sigmas[i]);
    const l1 = lambdaOf(this.sigmas[i - 1]);
    const h = f32(lt - l0);
    const h0 = f32(l0 - l1);
    const invR0 = f32(1 / f32(h0 / h));
    const m0 = this.history[this.history.length - 1];
    const m1 = this.history[this.history.length - 2];
    const expm = f32(f32(Math.exp(-h)) - 1);
    const expp = f32(f32(Math.exp(h)) - 1);
    // x_t = a * sample + b * D0 + d * D1 (+ n * noise), with D0 = m0 and D1 = (m0 - m1) / r0.
    let a: number, b: number, d: number;
    let n = 0;
    switch (c.algorithm_type) {
      case "dpmsolver++": {
        a = f32(t.sigma / s0.sigma);
        const base = f32(t.alpha * expm);
        b = -base;
        d = c.solver_type === "midpoint" ? -f32(0.5 * base) : f32(t.alpha * f32(f32(expm / h) + 1));
        break;
      }
      case "dpmsolver": {
        a = f32(t.alpha / s0.alpha);
        const base = f32(t.sigma * expp);
        b = -base;
        d = c.solver_type === "midpoint" ? -f32(0.5 * base) : -f32(t.sigma * f32(f32(expp / h) - 1));
        break;
      }
      case "sde-dpmsolver++": {
        const { eta, sNoise } = this.knobs;
        const hEta = f32(-(1 + eta) * h);
        const eTot = f32(Math.exp(hEta));
        a = f32(f32(t.sigma / s0.sigma) * sdeDecay(eta, h));
        const base = f32(t.alpha * f32(1 - eTot));
        b = base;
        d = c.solver_type === "midpoint" ? f32(0.5 * base) : f32(t.alpha * f32(f32(f32(1 - eTot) / hEta) + 1));
        n = f32(f32(t.sigma * sdeNoiseShare(eta, h)) * sNoise);
        break;
      }
      case "sde-dpmsolver": {
        a = f32(t.alpha / s0.alpha);
        b = -f32(2 * f32(t.sigma * expp));
        d = c.solver_type === "midpoint" ? -f32(t.sigma * expp) : -f32(2 * f32(t.sigma * f32(f32(expp / h) - 1)));
        n = f32(t.sigma * f32(Math.sqrt(f32(f32(Math.exp(f32(2 * h))) - 1))));
        break;
      }
    }
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) {
      const d1 = invR0 * (m0[k] - m1[k]);
      out[k] = a * sample[k] + b * m0[k] + d * d1 + (z ? n * z[k] : 0);
    }
    return out;
  }

  private thirdOrder(i: number, sample: Float32Array): Float32Array {
    const c = this.config;
    const t = alphaSigmaOf(this.sigmas[i + 1]);
    const s0 = alphaSigmaOf(this.sigmas[i]);
    const lt = lambdaOf(this.sigmas[i + 1]);
    const l0 = lambdaOf(this.sigmas[i]);
    const l1 = lambdaOf(this.sigmas[i - 1]);
    const l2 = lambdaOf(this.sigmas[i - 2]);
    const h = f32(lt - l0);
    const r0 = f32(f32(l0 - l1) / h);
    const r1 = f32(f32(l1 - l2) / h);
    const [m2, m1, m0] = this.history.slice(-3);
    const invR0 = f32(1 / r0);
    const invR1 = f32(1 / r1);
    const w = f32(r0 / f32(r0 + r1));
    const inv01 = f32(1 / f32(r0 + r1));
    let a: number, b0: number, b1: number, b2: number;
    if (c.algorithm_type === "dpmsolver++") {
      const em = f32(f32(Math.exp(-h)) - 1);
      a = f32(t.sigma / s0.sigma);
      b0 = -f32(t.alpha * em);
      b1 = f32(t.alpha * f32(f32(em / h) + 1));
      b2 = -f32(t.alpha * f32(f32(f32(f32(em + h)) / f32(h * h)) - 0.5));
    } else {
      const ep = f32(f32(Math.exp(h)) - 1);
      a = f32(t.alpha / s0.alpha);
      b0 = -f32(t.sigma * ep);
      b1 = -f32(t.sigma * f32(f32(ep / h) - 1));
      b2 = -f32(t.sigma * f32(f32(f32(f32(ep - h)) / f32(h * h)) - 0.5));
    }
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) {
      const d10 = invR0 * (m0[k] - m1[k]);
      const d11 = invR1 * (m1[k] - m2[k]);
      const d1 = d10 + w * (d10 - d11);
      const d2 = inv01 * (d10 - d11);
      out[k] = a * sample[k] + b0 * m0[k] + b1 * d1 + b2 * d2;
    }
    return out;
  }
}

/**
 * e^{-eta h}, the SDE step's decay of the sample beyond sigma_next / sigma, in float32. eta 0 is 1 even on the
 * step to sigma 0 (h infinite), where the reference's eta 1 gives 0 and the sigma ratio 0 anyway.
 */
function sdeDecay(eta: number, h: number): number {
  return eta === 0 ? 1 : f32(Math.exp(-eta * h));
}

/** sqrt(1 - e^{-2 eta h}), the share of sigma_next that is fresh noise, in float32; none for eta 0. */
function sdeNoiseShare(eta: number, h: number): number {
  return eta === 0 ? 0 : f32(Math.sqrt(f32(1 - f32(Math.exp(f32(-2 * eta * h))))));
}
