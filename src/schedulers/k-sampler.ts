/**
 * What the samplers that exist only in k-diffusion and AUTOMATIC1111 share (DPM2, DPM2 a, DPM++ 2S a,
 * DPM++ 3M SDE, Restart; no diffusers class to port). Each walks the sigmas of a schedule type, A1111's default
 * for that sampler when the type is "Automatic" (Karras for most, Exponential for DPM++ 3M SDE), optionally
 * without the next-to-last sigma as A1111 runs DPM2 and DPM++ 3M SDE. The sampler's loop is k-diffusion's, but
 * the pipeline drives it one model call at a time, so every call is planned when the schedule is set: `timesteps`
 * and `sigmas` then list each call's noise level, and a sampler's own file holds only its plan and its math.
 */
import { InputError } from "../errors.js";
import type { BetaConfig } from "./betas.js";
import { LDM_LINEAR_BETAS, type RawSchedulerConfig, resolveConfig } from "./config.js";
import { checkedNoiseKnobs } from "./noise-knobs.js";
import type { ScheduleChoice } from "./run-state.js";
import type { ScheduleType } from "./schedule-types.js";
import { scheduleSigmas } from "./schedule-types.js";
import type { NoiseSource, PredictionType, TimestepSpacing } from "./scheduler.js";
import { SigmaScheduler, divideBy, inputScale } from "./sigma-scheduler.js";
import { logSigmas, sigmaToT, trainSigmas } from "./sigmas.js";

export interface KSamplerConfig extends BetaConfig {
  prediction_type: PredictionType;
  /** Kept so a model's scheduler_config.json loads; the schedule type decides the sigmas, not the spacing. */
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
  /** k-diffusion's eta: the share of each step that is fresh noise (ancestral and SDE samplers; A1111's 1). */
  eta: number;
  /** k-diffusion's s_noise: the scale of the fresh noise (A1111's default 1). */
  s_noise: number;
}

/** The defaults every k-diffusion-only sampler starts from: latent diffusion's betas and A1111's eta and s_noise. */
export const K_SAMPLER_DEFAULTS: Readonly<KSamplerConfig> = Object.freeze({
  ...LDM_LINEAR_BETAS,
  prediction_type: "epsilon",
  timestep_spacing: "linspace",
  steps_offset: 0,
  eta: 1,
  s_noise: 1,
});

/** One model call of a run: the noise level the model is evaluated at, and the step of the walk it belongs to. */
export interface PlannedCall {
  readonly sigma: number;
  readonly step: number;
  /** 0 for the call that starts a step, 1 for a second-order stage. */
  readonly stage: number;
}

/** What A1111 says of a k-diffusion sampler besides its function: its label and its sampler options. */
export interface KSamplerTraits {
  /** A1111's label, for messages. */
  readonly label: string;
  /** The schedule type "Automatic" means for it (A1111's `scheduler` option). */
  readonly defaultSchedule: ScheduleType;
  /** A1111's discard_next_to_last_sigma: plan n + 1 steps and drop the penultimate sigma. */
  readonly discardsPenultimate: boolean;
}

export abstract class KSampler<Call extends PlannedCall = PlannedCall> extends SigmaScheduler<KSamplerConfig> {
  /** The sampler configured from a model's scheduler_config.json object (its betas and prediction type). */
  static fromConfig<T>(
    this: new (
      config: Partial<KSamplerConfig>,
    ) => T,
    config: RawSchedulerConfig,
    overrides: Partial<KSamplerConfig> = {},
  ): T {
    return new this(resolveConfig(K_SAMPLER_DEFAULTS, config, overrides));
  }

  protected readonly traits: KSamplerTraits;
  /** k-diffusion's `sigmas` for this run: the noise levels walked, ending in 0. */
  protected walk: Float64Array = new Float64Array(0);
  protected calls: readonly Call[] = [];

  constructor(partial: Readonly<Partial<KSamplerConfig>>, traits: KSamplerTraits) {
    super(K_SAMPLER_DEFAULTS, partial, {
      name: traits.label,
      betaSchedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
      predictions: ["epsilon", "v_prediction", "sample"],
    });
    this.traits = traits;
    checkedNoiseKnobs(traits.label, { eta: this.config.eta, sNoise: this.config.s_noise });
  }

  /** The walk starts at its first sigma, as k-diffusion scales the initial noise by sigmas[0]. */
  override get initNoiseSigma(): number {
    return this.walk.length > 0 ? this.walk[0] : 0;
  }

  /** "Automatic" is this sampler's default type, as A1111 resolves it. */
  override useScheduleType(choice: ScheduleChoice): void {
    this.scheduleChoice = choice.type === "automatic" ? { ...choice, type: this.traits.defaultSchedule } : choice;
  }

  /** The calls the walk takes, in order; `walk` is set when this runs. */
  protected abstract planCalls(walk: Float64Array): Call[];
  /** Forgets the previous run's per-step state. */
  protected abstract clearRunState(): void;
  /** One model call's update: the sample passed to the next call (or the result, after the last). */
  protected abstract advance(
    call: Call,
    denoised: Float64Array,
    sample: Float32Array,
    noise?: NoiseSource,
  ): Float32Array;

  setTimesteps(numInferenceSteps: number): void {
    const choice = this.scheduleChoice ?? { type: this.traits.defaultSchedule, sdxl: false };
    const table = trainSigmas(this.alphasCumprod);
    const discard = this.traits.discardsPenultimate;
    let walk = scheduleSigmas(choice.type, numInferenceSteps + (discard ? 1 : 0), { sigmas: table, sdxl: choice.sdxl });
    if (discard) walk = Float64Array.from([...walk.subarray(0, -2), walk[walk.length - 1]]);
    this.walk = walk;
    this.calls = this.planCalls(walk);
    const logs = logSigmas(table);
    const sigmas = Float64Array.from([...this.calls.map((c) => c.sigma), walk[walk.length - 1]]);
    const timesteps = Float64Array.from(this.calls, (c) => sigmaToT(c.sigma, logs));
    this.resetRun({ timesteps, sigmas }, numInferenceSteps);
    this.clearRunState();
  }

  /** A run can only start where a step starts: a second stage needs its first stage's state. */
  override setBeginIndex(index: number): void {
    super.setBeginIndex(index);
    const call = this.calls[index];
    if (call.stage !== 0) {
      this.beginIndex = undefined;
      throw new InputError(
        `${this.traits.label}: begin index ${index} is the second model call of step ${call.step}; ` +
          `start at the first call of a step (index ${index - 1})`,
      );
    }
  }

  /** The call the run makes at `index`: the planned one, unless the sampler moved it (DPM2's churn). */
  protected callAt(index: number): Call {
    return this.calls[index];
  }

  override scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    return divideBy(sample, inputScale(this.callAt(this.currentIndex(timestep)).sigma));
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array {
    const index = this.currentIndex(timestep);
    const call = this.callAt(index);
    const denoised = this.denoisedAt(modelOutput, sample, call.sigma);
    const out = this.advance(call, denoised, sample, noise);
    this.stepIndex = index + 1;
    return out;
  }

  /** A standard normal draw the size of `sample`, scaled by s_noise; an InputError without a noise source. */
  protected drawNoise(noise: NoiseSource | undefined, sample: Float32Array): Float32Array {
    if (!noise) {
      throw new InputError(
        `${this.traits.label} adds fresh noise during sampling: pass a NoiseSource (the run's seeded generator) to step()`,
      );
    }
    const z = noise.randn([sample.length]);
    const scale = this.config.s_noise;
    if (scale !== 1) for (let k = 0; k < z.length; k++) z[k] *= scale;
    return z;
  }
}

/**
 * k-diffusion's ancestral split of a move from sigmaFrom to sigmaTo: go down to sigma_down deterministically,
 * then add fresh noise of std sigma_up, so the marginal lands on sigmaTo (down^2 + up^2 = to^2). eta scales the
 * noise share; eta 0 is the deterministic move. In double (Euler a's float32 copy matches diffusers instead).
 */
export function ancestralStep(sigmaFrom: number, sigmaTo: number, eta: number): { down: number; up: number } {
  if (eta === 0) return { down: sigmaTo, up: 0 };
  const up = Math.min(sigmaTo, eta * Math.sqrt((sigmaTo ** 2 * (sigmaFrom ** 2 - sigmaTo ** 2)) / sigmaFrom ** 2));
  return { down: Math.sqrt(sigmaTo ** 2 - up ** 2), up };
}

/** The geometric mean of two sigmas: the midpoint in log sigma, where the DPM-Solver-2 samplers take stage two. */
export function logMidpoint(a: number, b: number): number {
  return Math.exp(0.5 * (Math.log(a) + Math.log(b)));
}

/** A call of a two-stage step: `target` is where the step ends deterministically, `mid` its second-stage sigma. */
export interface TwoStageCall extends PlannedCall {
  readonly target: number;
  /** Undefined when the step is a single Euler call (its target is 0). */
  readonly mid: number | undefined;
}

/**
 * The calls of a DPM-Solver-2 style walk: each step evaluates at sigma_i and, unless its deterministic target is
 * 0, again at the log-midpoint between sigma_i and that target.
 */
export function twoStagePlan(walk: Float64Array, target: (i: number) => number): TwoStageCall[] {
  const calls: TwoStageCall[] = [];
  for (let i = 0; i + 1 < walk.length; i++) {
    const to = target(i);
    const mid = to === 0 ? undefined : logMidpoint(walk[i], to);
    calls.push({ sigma: walk[i], step: i, stage: 0, target: to, mid });
    if (mid !== undefined) calls.push({ sigma: mid, step: i, stage: 1, target: to, mid });
  }
  return calls;
}
