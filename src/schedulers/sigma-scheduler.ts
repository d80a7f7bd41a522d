/**
 * What the sigma-space samplers (Euler, Euler ancestral, LMS, Heun, DPM++ SDE) share: a descending sigma
 * schedule ending in 0, model inputs scaled by 1/sqrt(sigma^2 + 1), a step index found from the first timestep,
 * and noising by x + sigma * noise.
 */
import { InputError } from "../errors.js";
import { RunState, type ScheduleChoice, type SigmaSchedule } from "./run-state.js";
import { scheduleSigmas } from "./schedule-types.js";
import { findTimestepIndex } from "./step-index.js";
import { f32 } from "./numerics.js";
import type { BetaConfig } from "./betas.js";
import type { PredictionType, TimestepSpacing } from "./scheduler.js";
import { karrasSigmas, interpSigmas, logSigmas, sigmaToT, trainSigmas } from "./sigmas.js";
import { spacedTimesteps } from "./spacing.js";

export type { SigmaSchedule } from "./run-state.js";

export interface SigmaScheduleOptions {
  spacing: TimestepSpacing;
  numTrain: number;
  stepsOffset: number;
  karras: boolean;
  /** Karras end points from the config (EulerDiscrete's sigma_min / sigma_max), else the spaced schedule's. */
  sigmaMin?: number | null;
  sigmaMax?: number | null;
  /** The last sigma: 0 (denoise fully) or the smallest training sigma. */
  finalSigma?: number;
  /** Precision of fractional linspace timesteps: the reference's class decides (float32 unless said). */
  linspacePrecision?: "float32" | "float64";
  /** A schedule type's sigmas instead of the spacing's (and Karras's); its own final sigma ends the schedule. */
  scheduleType?: ScheduleChoice;
}

/** Builds the schedule the Euler-family samplers share, from a training alphas_cumprod table. */
export function buildSigmaSchedule(alphasCumprod: Float32Array, n: number, o: SigmaScheduleOptions): SigmaSchedule {
  if (o.scheduleType) return typedSchedule(alphasCumprod, n, o.scheduleType, (s, logs) => sigmaToT(s, logs));
  let timesteps = spacedTimesteps(o.spacing, n, o.numTrain, o.stepsOffset, o.linspacePrecision ?? "float32");
  const table = trainSigmas(alphasCumprod);
  let sigmas = interpSigmas(timesteps, table);
  if (o.karras) {
    const logs = logSigmas(table);
    sigmas = karrasSigmas(o.sigmaMin ?? sigmas[sigmas.length - 1], o.sigmaMax ?? sigmas[0], n);
    timesteps = sigmas.map((s) => sigmaToT(s, logs));
  }
  const withLast = new Float64Array(sigmas.length + 1);
  withLast.set(sigmas.map(f32));
  withLast[sigmas.length] = f32(o.finalSigma ?? 0);
  return { timesteps, sigmas: withLast };
}

/**
 * The schedule of a schedule type: its sigmas (final one included), each step conditioned on the timestep
 * `toT` maps its sigma to (fractional for the sigma samplers, as k-diffusion's sigma_to_t; rounded for the
 * multistep solvers, which take integer timesteps).
 */
export function typedSchedule(
  alphasCumprod: Float32Array,
  n: number,
  choice: ScheduleChoice,
  toT: (sigma: number, logTable: Float32Array) => number,
): SigmaSchedule {
  const table = trainSigmas(alphasCumprod);
  const sigmas = scheduleSigmas(choice.type, n, { sigmas: table, sdxl: choice.sdxl });
  const logs = logSigmas(table);
  return { timesteps: Float64Array.from(sigmas.subarray(0, sigmas.length - 1), (s) => toT(s, logs)), sigmas };
}

/**
 * Repeats every entry of a per-step schedule but the first (timesteps) or but the first and last (sigmas), so
 * each model call of a two-stage solver has its own entry.
 */
export function interleaveForTwoStages(schedule: SigmaSchedule): SigmaSchedule {
  const { timesteps, sigmas } = schedule;
  const t = [timesteps[0], ...[...timesteps.subarray(1)].flatMap((v) => [v, v])];
  const s = [
    sigmas[0],
    ...[...sigmas.subarray(1, sigmas.length - 1)].flatMap((v) => [v, v]),
    sigmas[sigmas.length - 1],
  ];
  return { timesteps: Float64Array.from(t), sigmas: Float64Array.from(s) };
}

/** The config keys the sigma-space samplers share. */
export interface SigmaSamplerConfig extends BetaConfig {
  prediction_type: PredictionType;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
  use_karras_sigmas?: boolean;
}

export abstract class SigmaScheduler<C extends SigmaSamplerConfig> extends RunState<C> {
  protected readonly scheduleUnit = "model calls";

  /**
   * Leading spacing never reaches pure noise, so its initial latents are scaled as for x_T of a VP model; a
   * schedule type starts from its first sigma, as k-diffusion's samplers do.
   */
  get initNoiseSigma(): number {
    let max = 0;
    for (const s of this.sigmas) max = Math.max(max, s);
    return this.config.timestep_spacing === "leading" && this.scheduleChoice === undefined
      ? f32(Math.sqrt(f32(f32(max * max) + 1)))
      : max;
  }

  /** The per-step schedule from the config; `options` adds what only some samplers set. */
  protected buildSchedule(numInferenceSteps: number, options: Partial<SigmaScheduleOptions> = {}): SigmaSchedule {
    const c = this.config;
    return buildSigmaSchedule(this.alphasCumprod, numInferenceSteps, {
      spacing: c.timestep_spacing,
      numTrain: c.num_train_timesteps,
      stepsOffset: c.steps_offset,
      karras: c.use_karras_sigmas ?? false,
      scheduleType: this.scheduleChoice,
      ...options,
    });
  }

  /** The model's clean-sample estimate at noise level `sigma`. */
  protected denoisedAt(modelOutput: Float32Array, sample: Float32Array, sigma: number): Float64Array {
    return denoisedFromOutput(this.config.prediction_type, modelOutput, sample, sigma);
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const sigma = this.sigmas[this.currentIndex(timestep)];
    return divideBy(sample, inputScale(sigma));
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const sigma = this.noiseSigma(timestep);
    const out = new Float32Array(original.length);
    for (let i = 0; i < out.length; i++) out[i] = original[i] + noise[i] * sigma;
    return out;
  }

  /**
   * Where `timestep` sits in the schedule. When it occurs twice the second is taken, so a run that starts
   * part-way (img2img without setBeginIndex) does not skip a sigma.
   */
  protected indexForTimestep(timestep: number): number {
    const index = findTimestepIndex(this.timesteps, timestep);
    if (index === undefined)
      throw new InputError(`timestep ${timestep} is not in this scheduler's schedule: pass one of scheduler.timesteps`);
    return index;
  }
}

/** sqrt(sigma^2 + 1) in float32: the std of x_t for unit-variance data, which the model expects removed. */
export function inputScale(sigma: number): number {
  return f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
}

/** x / d elementwise; a float32 quotient rounded from a double one is the float32 quotient itself. */
export function divideBy(x: Float32Array, d: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] / d;
  return out;
}

/**
 * The denoised estimate x0 from the model output at noise level `sigma` (k-diffusion's c_skip/c_out for the
 * three parametrisations). Computed in float64.
 */
export function denoisedFromOutput(
  prediction: string,
  modelOutput: Float32Array,
  sample: Float32Array,
  sigma: number,
): Float64Array {
  const out = new Float64Array(sample.length);
  switch (prediction) {
    case "epsilon":
      for (let i = 0; i < out.length; i++) out[i] = sample[i] - sigma * modelOutput[i];
      return out;
    case "v_prediction": {
      const s2 = f32(f32(sigma * sigma) + 1);
      const cOut = f32(-sigma / f32(Math.sqrt(s2)));
      for (let i = 0; i < out.length; i++) out[i] = modelOutput[i] * cOut + sample[i] / s2;
      return out;
    }
    case "sample":
      for (let i = 0; i < out.length; i++) out[i] = modelOutput[i];
      return out;
    default:
      throw new InputError(
        `prediction_type "${prediction}" is not supported: use "epsilon", "v_prediction" or "sample"`,
      );
  }
}
