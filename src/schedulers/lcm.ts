/**
 * LCM (Luo et al. 2023): multistep consistency sampling for latent consistency models (and LCM-LoRA). Each
 * call maps the sample straight to a denoised estimate through the consistency boundary condition, then
 * re-noises it to the next timestep with fresh noise (none after the last). Timesteps come from the distilled
 * model's `original_inference_steps` grid; `timestep_spacing` is not used. A1111's "LCM"; the reference's
 * LCMScheduler.
 */
import { InputError } from "../errors.js";
import type { BetaConfig } from "./betas.js";
import { THRESHOLDING_OFF, resolveConfig, type RawSchedulerConfig } from "./config.js";
import { f32, npLinspace } from "./numerics.js";
import type { NoiseSource, PredictionType, TimestepSpacing } from "./scheduler.js";
import { checkSteps } from "./spacing.js";
import { alphaAt, clipSample, vpEstimates } from "./vp.js";
import { VpScheduler } from "./vp-scheduler.js";

export interface LCMConfig extends BetaConfig {
  original_inference_steps: number;
  clip_sample: boolean;
  clip_sample_range: number;
  set_alpha_to_one: boolean;
  steps_offset: number;
  prediction_type: PredictionType;
  thresholding: boolean;
  dynamic_thresholding_ratio: number;
  sample_max_value: number;
  timestep_spacing: TimestepSpacing;
  timestep_scaling: number;
  rescale_betas_zero_snr: boolean;
}

export class LCMScheduler extends VpScheduler<LCMConfig> {
  static readonly defaults: Readonly<LCMConfig> = Object.freeze({
    num_train_timesteps: 1000,
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    trained_betas: null,
    original_inference_steps: 50,
    clip_sample: false,
    clip_sample_range: 1.0,
    set_alpha_to_one: true,
    steps_offset: 0,
    prediction_type: "epsilon",
    ...THRESHOLDING_OFF,
    timestep_spacing: "leading",
    timestep_scaling: 10.0,
    rescale_betas_zero_snr: false,
  });

  static fromConfig(config: RawSchedulerConfig, overrides: Partial<LCMConfig> = {}): LCMScheduler {
    return new LCMScheduler(resolveConfig(LCMScheduler.defaults, config, overrides));
  }

  /** The denoised estimate of the latest step (LCM's own preview of the result). */
  denoised: Float32Array | undefined;
  private readonly finalAlphaCumprod: number;
  private stepIndex: number | undefined;
  private beginIndex: number | undefined;

  constructor(config: Partial<LCMConfig> = {}) {
    super(LCMScheduler.defaults, config, {
      name: "LCMScheduler",
      betaSchedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
      // LCM walks its distillation grid; timestep_spacing is kept for config compatibility only.
      unread: ["timestep_spacing"],
    });
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  /**
   * `strength` < 1 (img2img) keeps only the first `strength` of the distillation grid, so the steps spread over
   * the part of the schedule that img2img actually runs.
   */
  override setTimesteps(numInferenceSteps: number, strength = 1.0): void {
    const c = this.config;
    checkSteps(numInferenceSteps, c.num_train_timesteps);
    const original = c.original_inference_steps;
    if (original > c.num_train_timesteps) {
      throw new InputError(
        `original_inference_steps (${original}) cannot exceed num_train_timesteps (${c.num_train_timesteps}): fix scheduler_config.json`,
      );
    }
    const k = Math.floor(c.num_train_timesteps / original);
    // The timesteps the model was distilled on: k-1, 2k-1, ..., walked from the noisy end.
    const grid = Array.from({ length: Math.floor(original * strength) }, (_, i) => (i + 1) * k - 1).reverse();
    if (Math.floor(grid.length / numInferenceSteps) < 1) {
      throw new InputError(
        `LCM can take at most ${grid.length} steps here (original_inference_steps ${original}${strength < 1 ? ` at strength ${strength}` : ""}), got ${numInferenceSteps}: use fewer steps`,
      );
    }
    const picks = npLinspace(0, grid.length, numInferenceSteps, false);
    this.timesteps = Float64Array.from(picks, (p) => grid[Math.floor(p)]);
    this.numInferenceSteps = numInferenceSteps;
    this.stepIndex = undefined;
    this.beginIndex = undefined;
    this.denoised = undefined;
  }

  override setBeginIndex(index: number): void {
    super.setBeginIndex(index);
    this.beginIndex = index;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array {
    if (this.timesteps.length === 0) throw new InputError("call setTimesteps before stepping the scheduler");
    const c = this.config;
    const i = (this.stepIndex ??= this.beginIndex ?? this.indexForTimestep(timestep));
    const last = i === this.numInferenceSteps - 1;
    if (!last && !noise)
      throw new InputError("LCM re-noises between steps: pass a NoiseSource (the run's seeded generator) to step()");
    const prevTimestep = i + 1 < this.timesteps.length ? this.timesteps[i + 1] : timestep;
    const abar = alphaAt(this.alphasCumprod, timestep);
    const abarPrev = prevTimestep >= 0 ? this.alphasCumprod[prevTimestep] : this.finalAlphaCumprod;

    // Consistency-model boundary condition: c_skip -> 1 and c_out -> 0 as t -> 0.
    const scaled = f32(timestep * c.timestep_scaling);
    const s2 = f32(f32(scaled * scaled) + f32(0.25));
    const cSkip = f32(f32(0.25) / s2);
    const cOut = f32(scaled / f32(Math.sqrt(s2)));

    const { x0 } = vpEstimates(c.prediction_type, modelOutput, sample, abar);
    if (c.clip_sample) clipSample(x0, c.clip_sample_range);
    const denoised = new Float32Array(sample.length);
    for (let k = 0; k < denoised.length; k++) denoised[k] = cOut * x0[k] + cSkip * sample[k];
    this.denoised = denoised;
    this.stepIndex = i + 1;
    if (last) return denoised.slice();

    const z = noise!.randn([sample.length]);
    const a = f32(Math.sqrt(abarPrev));
    const b = f32(Math.sqrt(f32(1 - abarPrev)));
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) out[k] = a * denoised[k] + b * z[k];
    return out;
  }

  private indexForTimestep(timestep: number): number {
    const hits: number[] = [];
    this.timesteps.forEach((t, i) => {
      if (t === timestep) hits.push(i);
    });
    if (hits.length === 0)
      throw new InputError(`timestep ${timestep} is not in this scheduler's schedule: pass one of scheduler.timesteps`);
    return hits.length > 1 ? hits[1] : hits[0];
  }
}
