/**
 * UniPC (Zhao et al. 2023): a multistep predictor (UniP) plus a corrector (UniC) that refines each new sample
 * with the model output evaluated at it, at no extra model calls. A1111's "UniPC"; the reference's
 * UniPCMultistepScheduler (bh1/bh2 variants, data or noise prediction).
 *
 * Scalar coefficients are computed in float32 like the reference (log-SNR differences and expm1 of them); the
 * small linear systems for orders above 2 are solved in float64.
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
import { f32 } from "./numerics.js";
import type { PredictionType, TimestepSpacing } from "./scheduler.js";
import { alphaSigmaOf } from "./sigmas.js";

export interface UniPCMultistepConfig extends BetaConfig {
  solver_order: number;
  prediction_type: PredictionType;
  thresholding: boolean;
  dynamic_thresholding_ratio: number;
  sample_max_value: number;
  predict_x0: boolean;
  solver_type: "bh1" | "bh2";
  lower_order_final: boolean;
  disable_corrector: number[];
  solver_p: unknown;
  use_karras_sigmas: boolean;
  use_exponential_sigmas: boolean;
  use_beta_sigmas: boolean;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
  final_sigmas_type: "zero" | "sigma_min";
  rescale_betas_zero_snr: boolean;
}

export class UniPCMultistepScheduler extends MultistepScheduler<UniPCMultistepConfig> {
  static readonly defaults: Readonly<UniPCMultistepConfig> = Object.freeze({
    ...LINEAR_BETAS,
    solver_order: 2,
    prediction_type: "epsilon",
    ...THRESHOLDING_OFF,
    predict_x0: true,
    solver_type: "bh2",
    lower_order_final: true,
    disable_corrector: [],
    solver_p: null,
    ...SIGMA_SCHEDULE_FLAGS,
    timestep_spacing: "linspace",
    steps_offset: 0,
    final_sigmas_type: "zero",
    rescale_betas_zero_snr: false,
  });

  static fromConfig(
    config: RawSchedulerConfig,
    overrides: Partial<UniPCMultistepConfig> = {},
  ): UniPCMultistepScheduler {
    return new UniPCMultistepScheduler(resolveConfig(UniPCMultistepScheduler.defaults, config, overrides));
  }

  /** Converted outputs (x0 or noise) of the last solver_order steps, oldest first. */
  private history: Float32Array[] = [];
  private lowerOrderNums = 0;
  /** The sample the last predictor started from, which the next corrector revisits. */
  private lastSample: Float32Array | undefined;
  private thisOrder = 1;

  constructor(config: Partial<UniPCMultistepConfig> = {}) {
    const name = "UniPCMultistepScheduler";
    const rules = {
      name,
      betaSchedules: ["linear", "scaled_linear", "squaredcos_cap_v2"] as const,
      nudgeZeroSnr: true,
    };
    super(UniPCMultistepScheduler.defaults, config, rules, (c) => {
      // Configs written for DPM-Solver load into this class with the reference's substitution.
      if (["midpoint", "heun", "logrho"].includes(c.solver_type)) c.solver_type = "bh2";
    });
    const c = this.config;
    checkOneOf("solver_type", c.solver_type, ["bh1", "bh2"]);
    if (!Number.isInteger(c.solver_order) || c.solver_order < 1)
      unsupported(name, "solver_order", c.solver_order, "a positive integer solver_order (2 or 3 are usual)");
    if (c.solver_p != null) unsupported(name, "solver_p", c.solver_p, "solver_p null (UniPC's own predictor)");
    if (!Array.isArray(c.disable_corrector))
      unsupported(name, "disable_corrector", c.disable_corrector, "disable_corrector to a list of step indices");
  }

  setTimesteps(numInferenceSteps: number): void {
    this.startRun(numInferenceSteps, { karrasFinalIsScheduleMin: true });
    this.history = [];
    this.lowerOrderNums = 0;
    this.lastSample = undefined;
    this.thisOrder = 1;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    const c = this.config;
    const i = this.currentIndex(timestep);
    const useCorrector = i > 0 && !c.disable_corrector.includes(i - 1) && this.lastSample !== undefined;
    const converted = this.convertModelOutput(modelOutput, sample, this.sigmas[i]);
    let x = sample;
    if (useCorrector) x = this.correct(i, converted, this.lastSample!, sample, this.thisOrder);

    this.history.push(converted);
    if (this.history.length > c.solver_order) this.history.shift();
    const order = c.lower_order_final ? Math.min(c.solver_order, this.timesteps.length - i) : c.solver_order;
    // Warm-up: the order can only grow as fast as the history does.
    this.thisOrder = Math.min(order, this.lowerOrderNums + 1);
    this.lastSample = x;
    const out = this.predict(i, x, this.thisOrder);
    if (this.lowerOrderNums < c.solver_order) this.lowerOrderNums++;
    this.stepIndex = i + 1;
    return out;
  }

  private convertModelOutput(modelOutput: Float32Array, sample: Float32Array, sigma: number): Float32Array {
    const { alpha, sigma: s } = alphaSigmaOf(sigma);
    const prediction = this.config.prediction_type;
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) {
      const m = modelOutput[i];
      const x = sample[i];
      if (this.config.predict_x0) {
        out[i] = prediction === "epsilon" ? (x - s * m) / alpha : prediction === "v_prediction" ? alpha * x - s * m : m;
      } else {
        out[i] = prediction === "epsilon" ? m : prediction === "v_prediction" ? alpha * m + s * x : (x - alpha * m) / s;
      }
    }
    return out;
  }

  /** UniP: from the sample at sigmas[i] to sigmas[i + 1] using the history (whose last entry is step i's). */
  private predict(i: number, x: Float32Array, order: number): Float32Array {
    const m0 = this.history[this.history.length - 1];
    const co = this.coefficients(this.sigmas[i + 1], this.sigmas[i], (k) => this.sigmas[i - k], order);
    const diffs = this.differences(m0, order, co.rks);
    let rhos: number[] = [];
    if (diffs.length > 0)
      rhos =
        order === 2
          ? [0.5]
          : solve(
              co.R.slice(0, -1).map((row) => row.slice(0, -1)),
              co.b.slice(0, -1),
            );
    const out = new Float32Array(x.length);
    for (let k = 0; k < out.length; k++) {
      let res = 0;
      for (let j = 0; j < diffs.length; j++) res += rhos[j] * diffs[j][k];
      out[k] = co.xCoeff * x[k] - co.m0Coeff * m0[k] - co.resCoeff * res;
    }
    return out;
  }

  /**
   * UniC: redoes the previous step (from `lastSample` at sigmas[i - 1] to sigmas[i]) with the model output just
   * evaluated at its result, `thisOutput`; the history still ends with step i - 1's output.
   */
  private correct(
    i: number,
    thisOutput: Float32Array,
    lastSample: Float32Array,
    thisSample: Float32Array,
    order: number,
  ): Float32Array {
    const m0 = this.history[this.history.length - 1];
    const co = this.coefficients(this.sigmas[i], this.sigmas[i - 1], (k) => this.sigmas[i - 1 - k], order);
    const diffs = this.differences(m0, order, co.rks);
    const rhos = order === 1 ? [0.5] : solve(co.R, co.b);
    const last = rhos[rhos.length - 1];
    const out = new Float32Array(thisSample.length);
    for (let k = 0; k < out.length; k++) {
      let res = 0;
      for (let j = 0; j < diffs.length; j++) res += rhos[j] * diffs[j][k];
      res += last * (thisOutput[k] - m0[k]);
      out[k] = co.xCoeff * lastSample[k] - co.m0Coeff * m0[k] - co.resCoeff * res;
    }
    return out;
  }

  /** (m_k - m0) / r_k for the k = 1..order-1 older outputs. */
  private differences(m0: Float32Array, order: number, rks: number[]): Float64Array[] {
    const out: Float64Array[] = [];
    for (let k = 1; k < order; k++) {
      const mk = this.history[this.history.length - 1 - k];
      const rk = rks[k - 1];
      out.push(Float64Array.from(mk, (v, j) => (v - m0[j]) / rk));
    }
    return out;
  }

  /**
   * The shared B(h) machinery of both updates, going from sigma `s0` to `t`, with `older(k)` the sigma k steps
   * before s0: the ratios r_k, the Vandermonde-like system R rho = b, and the scalar factors of the update
   * x_t = xCoeff x - m0Coeff m0 - resCoeff sum(rho_k D_k).
   */
  private coefficients(sigmaT: number, sigmaS0: number, older: (k: number) => number, order: number) {
    const dataPrediction = this.config.predict_x0;
    const t = alphaSigmaOf(sigmaT);
    const s0 = alphaSigmaOf(sigmaS0);
    const lambdaS0 = lambdaOf(sigmaS0);
    const h = f32(lambdaOf(sigmaT) - lambdaS0);
    const rks: number[] = [];
    for (let k = 1; k < order; k++) rks.push(f32(f32(lambdaOf(older(k)) - lambdaS0) / h));
    rks.push(1.0);
    const hh = dataPrediction ? -h : h;
    const hPhi1 = f32(Math.expm1(hh));
    let hPhiK = f32(f32(hPhi1 / hh) - 1);
    let factorial = 1;
    const Bh = this.config.solver_type === "bh1" ? hh : f32(Math.expm1(hh));
    const R: number[][] = [];
    const b: number[] = [];
    for (let j = 1; j <= order; j++) {
      R.push(rks.map((r) => (j === 1 ? 1 : j === 2 ? r : f32(r ** (j - 1)))));
      b.push(f32(f32(hPhiK * factorial) / Bh));
      factorial *= j + 1;
      hPhiK = f32(f32(hPhiK / hh) - f32(1 / factorial));
    }
    const xCoeff = dataPrediction ? f32(t.sigma / s0.sigma) : f32(t.alpha / s0.alpha);
    const scale = dataPrediction ? t.alpha : t.sigma;
    return { rks, R, b, xCoeff, m0Coeff: f32(scale * hPhi1), resCoeff: f32(scale * Bh) };
  }
}

/** Solves the small dense system A x = y by Gaussian elimination with partial pivoting, in float64. */
function solve(A: number[][], y: number[]): number[] {
  const n = y.length;
  const M = A.map((row, i) => [...row, y[i]]);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(M[r][col]) > Math.abs(M[pivot][col])) pivot = r;
    if (M[pivot][col] === 0)
      throw new InputError(
        "UniPC: singular order conditions (repeated sigmas in the schedule); use fewer steps or solver_order 2",
      );
    [M[col], M[pivot]] = [M[pivot], M[col]];
    for (let r = col + 1; r < n; r++) {
      const f = M[r][col] / M[col][col];
      for (let k = col; k <= n; k++) M[r][k] -= f * M[col][k];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let acc = M[r][n];
    for (let k = r + 1; k < n; k++) acc -= M[r][k] * x[k];
    x[r] = acc / M[r][r];
  }
  return x;
}
