/**
 * What the exponential-integrator multistep solvers (DPM-Solver(++) and UniPC) share: their n+1-way timestep
 * spacing, a sigma per step that they convert to VP coefficients (alpha_t, sigma_t) and log-SNR lambda, unscaled
 * model inputs, and noising by alpha_t x + sigma_t noise.
 */
import { RunState, type ScheduleChoice, type SigmaSchedule } from "./run-state.js";
import { typedSchedule } from "./sigma-scheduler.js";
import { findTimestepIndex } from "./step-index.js";
import { f32, npLinspace, roundHalfEven } from "./numerics.js";
import type { BetaConfig } from "./betas.js";
import type { TimestepSpacing } from "./scheduler.js";
import { alphaSigmaOf, interpSigmas, karrasSigmas, logSigmas, sigmaToT, trainSigmas } from "./sigmas.js";
import { multistepTimesteps } from "./spacing.js";

export interface MultistepScheduleOptions {
  spacing: TimestepSpacing;
  numTrain: number;
  stepsOffset: number;
  karras: boolean;
  /** DPM-Solver's use_lu_lambdas: steps evenly spaced in log-SNR (Lu et al.'s schedule). */
  luLambdas?: boolean;
  finalSigmasType: "zero" | "sigma_min";
  /** End of the usable training range after lambda_min_clipped (DPM-Solver); the full range otherwise. */
  lastTimestep?: number;
  /** UniPC ends a Karras schedule at its own last sigma for final_sigmas_type "sigma_min"; DPM at the table's. */
  karrasFinalIsScheduleMin?: boolean;
  /** A schedule type's sigmas instead of the spacing's (and Karras's); its own final sigma ends the schedule. */
  scheduleType?: ScheduleChoice;
}

export function buildMultistepSchedule(
  alphasCumprod: Float32Array,
  n: number,
  o: MultistepScheduleOptions,
): SigmaSchedule {
  if (o.scheduleType)
    return typedSchedule(alphasCumprod, n, o.scheduleType, (s, logs) => roundHalfEven(sigmaToT(s, logs)));
  let timesteps = multistepTimesteps(o.spacing, n, o.numTrain, o.stepsOffset, o.lastTimestep ?? o.numTrain);
  const table = trainSigmas(alphasCumprod);
  const logs = logSigmas(table);
  let sigmas: Float64Array;
  if (o.karras) {
    // Karras over the whole training range (not the spaced one): every spacing gives the same schedule.
    sigmas = karrasSigmas(table[0], table[table.length - 1], n);
    timesteps = sigmas.map((s) => roundHalfEven(sigmaToT(s, logs)));
  } else if (o.luLambdas) {
    // Evenly spaced in log sigma (the reference calls these lambdas), from the noisiest training level down.
    const lmin = logs[0];
    const lmax = logs[logs.length - 1];
    sigmas = npLinspace(0, 1, n).map((r) => Math.exp(lmax + r * (lmin - lmax)));
    timesteps = sigmas.map((s) => roundHalfEven(sigmaToT(s, logs)));
  } else {
    sigmas = interpSigmas(timesteps, table);
  }
  let last = 0;
  if (o.finalSigmasType === "sigma_min")
    last = o.karras && o.karrasFinalIsScheduleMin ? sigmas[sigmas.length - 1] : table[0];
  const withLast = new Float64Array(sigmas.length + 1);
  withLast.set(sigmas.map(f32));
  withLast[sigmas.length] = f32(last);
  return { timesteps, sigmas: withLast };
}

/** The log-SNR lambda = log(alpha_t) - log(sigma_t) of a sigma, in float32 as the reference computes it. */
export function lambdaOf(sigma: number): number {
  const { alpha, sigma: s } = alphaSigmaOf(sigma);
  return f32(f32(Math.log(alpha)) - f32(Math.log(s)));
}

/** The config keys the multistep solvers share. */
export interface MultistepConfig extends BetaConfig {
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
  use_karras_sigmas: boolean;
  final_sigmas_type: "zero" | "sigma_min";
}

export abstract class MultistepScheduler<C extends MultistepConfig> extends RunState<C> {
  readonly order = 1;
  readonly initNoiseSigma = 1.0;
  protected readonly scheduleUnit = "steps";

  /** Starts a run of `numInferenceSteps` on the config's schedule; `options` adds what only some solvers set. */
  protected startRun(numInferenceSteps: number, options: Partial<MultistepScheduleOptions> = {}): void {
    const c = this.config;
    const schedule = buildMultistepSchedule(this.alphasCumprod, numInferenceSteps, {
      spacing: c.timestep_spacing,
      numTrain: c.num_train_timesteps,
      stepsOffset: c.steps_offset,
      karras: c.use_karras_sigmas,
      finalSigmasType: c.final_sigmas_type,
      scheduleType: this.scheduleChoice,
      ...options,
    });
    this.resetRun(schedule, schedule.timesteps.length);
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const { alpha, sigma } = alphaSigmaOf(this.noiseSigma(timestep));
    const out = new Float32Array(original.length);
    for (let i = 0; i < out.length; i++) out[i] = alpha * original[i] + sigma * noise[i];
    return out;
  }

  /**
   * Where `timestep` sits in the schedule: the second occurrence when repeated (Karras schedules repeat small
   * timesteps), and, as in the reference, the last step for a timestep not in the schedule.
   */
  protected indexForTimestep(timestep: number): number {
    return findTimestepIndex(this.timesteps, timestep) ?? this.timesteps.length - 1;
  }
}
