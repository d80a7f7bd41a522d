/**
 * The per-run bookkeeping every schedule-table sampler shares (the sigma-space samplers and the multistep
 * exponential integrators): the schedule of one run, where the run stands in it, and an optional part-way
 * start. A sampler's own file then holds only its math.
 */
import type { BetaConfig } from "./betas.js";
import { setUpScheduler, type SchedulerRules } from "./config.js";
import type { ScheduleType } from "./schedule-types.js";
import { checkBeginIndex, resolveStepIndex } from "./step-index.js";
import type { NoiseSource, Scheduler } from "./scheduler.js";

/** A schedule type chosen for a run (A1111's "Schedule type"), and what it needs of the model. */
export interface ScheduleChoice {
  readonly type: ScheduleType;
  /** Align Your Steps has its own table for SDXL. */
  readonly sdxl: boolean;
}

/** The schedule of one run: `timesteps[i]` is conditioned on while at `sigmas[i]`; sigmas has one more entry. */
export interface SigmaSchedule {
  timesteps: Float64Array;
  /** float32 values (the reference stores sigmas as a float32 tensor), as doubles. */
  sigmas: Float64Array;
}

export abstract class RunState<C extends BetaConfig> implements Scheduler {
  abstract readonly order: number;
  abstract readonly initNoiseSigma: number;
  timesteps: Float64Array = new Float64Array(0);
  numInferenceSteps = 0;
  /** The schedule's noise levels, one per model call plus the final one; float32 values. */
  sigmas: Float64Array = new Float64Array(0);
  protected stepIndex: number | undefined;
  protected beginIndex: number | undefined;
  readonly config: Readonly<C>;
  readonly alphasCumprod: Float32Array;
  /** A schedule type replacing the config's own sigma spacing; undefined (or "automatic") keeps it. */
  protected scheduleChoice: ScheduleChoice | undefined;

  /**
   * `partial` over the class's `defaults`, checked by `rules`; `adjust` applies the reference's substitutions for
   * configs written for a sibling class before the subclass checks its own keys.
   */
  constructor(
    defaults: Readonly<C>,
    partial: Readonly<Partial<C>>,
    rules: SchedulerRules,
    adjust?: (config: C) => void,
  ) {
    const setUp = setUpScheduler(defaults, partial, rules);
    const config = { ...setUp.config };
    adjust?.(config);
    this.config = config;
    this.alphasCumprod = setUp.alphasCumprod;
  }

  /** What one entry of `timesteps` is, for the begin-index error ("steps", "model calls"). */
  protected abstract readonly scheduleUnit: string;

  abstract setTimesteps(numInferenceSteps: number): void;
  abstract scaleModelInput(sample: Float32Array, timestep: number): Float32Array;
  abstract step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array;
  abstract addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array;
  /** Where `timestep` sits in the schedule when a run has no begin index. */
  protected abstract indexForTimestep(timestep: number): number;

  /**
   * Walks the noise levels of schedule type `choice` (Karras, Exponential, ...) from the next setTimesteps on,
   * as A1111's k-diffusion samplers do, instead of the config's spacing; "automatic" restores the config's.
   */
  useScheduleType(choice: ScheduleChoice): void {
    this.scheduleChoice = choice.type === "automatic" ? undefined : choice;
  }

  setBeginIndex(index: number): void {
    checkBeginIndex(index, this.timesteps.length, this.scheduleUnit);
    this.beginIndex = index;
  }

  /** Installs a new schedule and clears per-run state; subclasses call it from setTimesteps. */
  protected resetRun(schedule: SigmaSchedule, numInferenceSteps: number): void {
    this.timesteps = schedule.timesteps;
    this.sigmas = schedule.sigmas;
    this.numInferenceSteps = numInferenceSteps;
    this.stepIndex = undefined;
    this.beginIndex = undefined;
  }

  /** The step index, found on the first call of a run from the begin index or the timestep. */
  protected currentIndex(timestep: number): number {
    this.stepIndex = resolveStepIndex(this.stepIndex, this.beginIndex, this.timesteps.length, () =>
      this.indexForTimestep(timestep),
    );
    return this.stepIndex;
  }

  /** The sigma to noise a clean sample to for `timestep`: the run's start when one was set, else the timestep's. */
  protected noiseSigma(timestep: number): number {
    const index = this.beginIndex === undefined ? this.indexForTimestep(timestep) : (this.stepIndex ?? this.beginIndex);
    return this.sigmas[index];
  }
}
