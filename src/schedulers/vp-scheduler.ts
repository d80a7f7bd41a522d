/**
 * What the DDPM-family samplers (DDIM, DDPM, PNDM, LCM) share around their math: integer training timesteps,
 * unscaled model inputs, noising by the forward process, and stepping by timestep value (so a part-way start
 * needs no bookkeeping beyond checking the index).
 */
import { InputError } from "../errors.js";
import type { BetaConfig } from "./betas.js";
import { setUpScheduler, type SchedulerRules } from "./config.js";
import type { NoiseSource, Scheduler, TimestepSpacing } from "./scheduler.js";
import { spacedTimesteps } from "./spacing.js";
import { checkBeginIndex, vpAddNoise } from "./vp.js";

/** The config keys the VP samplers share. */
export interface VpConfig extends BetaConfig {
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
}

export abstract class VpScheduler<C extends VpConfig> implements Scheduler {
  readonly order = 1;
  readonly initNoiseSigma = 1.0;
  readonly config: Readonly<C>;
  readonly alphasCumprod: Float32Array;
  timesteps: Float64Array = new Float64Array(0);
  numInferenceSteps = 0;

  constructor(defaults: Readonly<C>, partial: Readonly<Partial<C>>, rules: SchedulerRules) {
    const setUp = setUpScheduler(defaults, partial, rules);
    this.config = setUp.config;
    this.alphasCumprod = setUp.alphasCumprod;
  }

  abstract step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array;

  /** The spaced integer grid, noisiest first (DDIM and DDPM run it as is). */
  setTimesteps(numInferenceSteps: number): void {
    this.timesteps = this.spacedGrid(numInferenceSteps);
    this.numInferenceSteps = numInferenceSteps;
  }

  setBeginIndex(index: number): void {
    checkBeginIndex(index, this.timesteps.length);
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return vpAddNoise(this.alphasCumprod, original, noise, timestep);
  }

  protected spacedGrid(numInferenceSteps: number): Float64Array {
    const c = this.config;
    return spacedTimesteps(c.timestep_spacing, numInferenceSteps, c.num_train_timesteps, c.steps_offset, "round");
  }

  protected requireSchedule(): void {
    if (this.numInferenceSteps === 0) throw new InputError("call setTimesteps before stepping the scheduler");
  }
}
