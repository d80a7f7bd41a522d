/**
 * PNDM (Liu et al. 2022): pseudo linear multistep on the DDIM transfer. With skip_prk_steps (as every SD config
 * sets it) it is PLMS, A1111's "PLMS": a second model call at the first timestep bootstraps the multistep
 * history, so n steps take n + 1 model calls. Without skip_prk_steps the history is bootstrapped with
 * pseudo Runge-Kutta steps instead (4 calls per step for the first 3 steps). The reference's PNDMScheduler.
 */
import { InputError } from "../errors.js";
import type { BetaConfig } from "./betas.js";
import { LINEAR_BETAS, resolveConfig, type RawSchedulerConfig } from "./config.js";
import { f32 } from "./numerics.js";
import type { PredictionType, TimestepSpacing } from "./scheduler.js";
import { alphaAt } from "./vp.js";
import { VpScheduler } from "./vp-scheduler.js";

export interface PNDMConfig extends BetaConfig {
  skip_prk_steps: boolean;
  set_alpha_to_one: boolean;
  prediction_type: PredictionType;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
}

/** Runge-Kutta bootstrap length in steps (the reference's pndm_order). */
const PNDM_ORDER = 4;

export class PNDMScheduler extends VpScheduler<PNDMConfig> {
  static readonly defaults: Readonly<PNDMConfig> = Object.freeze({
    ...LINEAR_BETAS,
    skip_prk_steps: false,
    set_alpha_to_one: false,
    prediction_type: "epsilon",
    timestep_spacing: "leading",
    steps_offset: 0,
  });

  static fromConfig(config: RawSchedulerConfig, overrides: Partial<PNDMConfig> = {}): PNDMScheduler {
    return new PNDMScheduler(resolveConfig(PNDMScheduler.defaults, config, overrides));
  }

  private readonly finalAlphaCumprod: number;
  private prkTimesteps: Float64Array = new Float64Array(0);
  /** Model calls taken this run. */
  private counter = 0;
  /** Past (converted) model outputs, oldest first; at most four are used. */
  private ets: Float64Array[] = [];
  /** The sample at the start of the current multi-call step (PLMS bootstrap, Runge-Kutta stages). */
  private curSample: Float32Array | undefined;
  /** Running Runge-Kutta combination of the stage outputs. */
  private curModelOutput: Float64Array | undefined;

  constructor(config: Partial<PNDMConfig> = {}) {
    super(PNDMScheduler.defaults, config, {
      name: "PNDMScheduler",
      betaSchedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
      predictions: ["epsilon", "v_prediction"],
    });
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  override setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    // The same grid as DDIM, ascending.
    const grid = this.spacedGrid(numInferenceSteps).reverse();
    const n = grid.length;
    let plms: number[];
    if (c.skip_prk_steps) {
      // The second-to-last grid point is visited twice: PLMS's bootstrap call.
      plms = [...grid.subarray(0, n - 1), ...grid.subarray(Math.max(n - 2, 0), n - 1), grid[n - 1]].reverse();
      this.prkTimesteps = new Float64Array(0);
    } else {
      if (n < PNDM_ORDER) {
        throw new InputError(
          `PNDM's Runge-Kutta warm-up needs at least ${PNDM_ORDER} steps, got ${n}: use more steps or set skip_prk_steps`,
        );
      }
      // The four noisiest grid points, each followed by its half-stride midpoint; every entry but the last
      // midpoint is visited twice, trimmed to 12 calls (4 per Runge-Kutta step), walked downwards.
      const half = Math.floor(Math.floor(c.num_train_timesteps / numInferenceSteps) / 2);
      const pairs = [...grid.subarray(n - PNDM_ORDER)].flatMap((t) => [t, t + half]);
      this.prkTimesteps = Float64Array.from(
        pairs
          .slice(0, -1)
          .flatMap((t) => [t, t])
          .slice(1, -1)
          .reverse(),
      );
      plms = [...grid.subarray(0, Math.max(n - 3, 0))].reverse();
    }
    this.timesteps = Float64Array.from([...this.prkTimesteps, ...plms]);
    this.numInferenceSteps = numInferenceSteps;
    this.counter = 0;
    this.ets = [];
    this.curSample = undefined;
    this.curModelOutput = undefined;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    this.requireSchedule();
    return this.counter < this.prkTimesteps.length && !this.config.skip_prk_steps
      ? this.stepPrk(modelOutput, timestep, sample)
      : this.stepPlms(modelOutput, timestep, sample);
  }

  /** One stage of the pseudo fourth-order Runge-Kutta bootstrap. */
  private stepPrk(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    const stride = Math.floor(this.config.num_train_timesteps / this.numInferenceSteps);
    const diffToPrev = this.counter % 2 ? 0 : Math.floor(stride / 2);
    const prevTimestep = timestep - diffToPrev;
    const stepStart = this.prkTimesteps[Math.floor(this.counter / 4) * 4];
    const mo = Float64Array.from(modelOutput);
    let eps: Float64Array = mo;
    const stage = this.counter % 4;
    if (stage === 0) {
      this.curModelOutput = mo.map((v) => v / 6);
      this.ets.push(mo);
      this.curSample = sample;
    } else if (stage === 1 || stage === 2) {
      const acc = this.curModelOutput!;
      for (let i = 0; i < acc.length; i++) acc[i] += mo[i] / 3;
    } else {
      const acc = this.curModelOutput!;
      eps = acc.map((v, i) => v + mo[i] / 6);
      this.curModelOutput = undefined;
    }
    const out = this.prevSample(this.curSample ?? sample, stepStart, prevTimestep, eps);
    this.counter++;
    return out;
  }

  /** One pseudo linear multistep step (Adams-Bashforth weights on the model outputs). */
  private stepPlms(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    if (!this.config.skip_prk_steps && this.ets.length < 3) {
      throw new InputError(
        "PNDM without skip_prk_steps must run its Runge-Kutta steps first: step through scheduler.timesteps in order",
      );
    }
    const stride = Math.floor(this.config.num_train_timesteps / this.numInferenceSteps);
    let t = timestep;
    let prevTimestep = timestep - stride;
    const mo = Float64Array.from(modelOutput);
    if (this.counter !== 1) {
      this.ets = this.ets.slice(-3);
      this.ets.push(mo);
    } else {
      // The bootstrap call re-evaluates at the first step's start, then averages with the first output.
      prevTimestep = timestep;
      t = timestep + stride;
    }
    const e = this.ets;
    const n = e.length;
    let eps: Float64Array;
    let x = sample;
    if (n === 1 && this.counter === 0) {
      eps = mo;
      this.curSample = sample;
    } else if (n === 1 && this.counter === 1) {
      eps = mo.map((v, i) => (v + e[0][i]) / 2);
      x = this.curSample!;
      this.curSample = undefined;
    } else if (n === 2) {
      eps = e[1].map((v, i) => (3 * v - e[0][i]) / 2);
    } else if (n === 3) {
      eps = e[2].map((v, i) => (23 * v - 16 * e[1][i] + 5 * e[0][i]) / 12);
    } else {
      const w = f32(1 / 24);
      eps = e[3].map((v, i) => w * (55 * v - 59 * e[2][i] + 37 * e[1][i] - 9 * e[0][i]));
    }
    const out = this.prevSample(x, t, prevTimestep, eps);
    this.counter++;
    return out;
  }

  /** The DDIM-style transfer from x_t to x_{t_prev} with noise estimate `eps` (formula 9 of the PNDM paper). */
  private prevSample(
    sample: Float32Array,
    timestep: number,
    prevTimestep: number,
    modelOutput: Float64Array,
  ): Float32Array {
    const abar = alphaAt(this.alphasCumprod, timestep);
    const abarPrev = prevTimestep >= 0 ? this.alphasCumprod[prevTimestep] : this.finalAlphaCumprod;
    const beta = f32(1 - abar);
    const betaPrev = f32(1 - abarPrev);
    let eps = modelOutput;
    if (this.config.prediction_type === "v_prediction") {
      const a = f32(Math.sqrt(abar));
      const b = f32(Math.sqrt(beta));
      eps = modelOutput.map((v, i) => a * v + b * sample[i]);
    }
    const sampleCoeff = f32(Math.sqrt(f32(abarPrev / abar)));
    const denom = f32(f32(abar * f32(Math.sqrt(betaPrev))) + f32(Math.sqrt(f32(f32(abar * beta) * abarPrev))));
    const diff = f32(abarPrev - abar);
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) out[i] = sampleCoeff * sample[i] - (diff * eps[i]) / denom;
    return out;
  }
}
