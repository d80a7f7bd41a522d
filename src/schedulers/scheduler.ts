/**
 * The one interface every sampler implements. It follows the reference's scheduler protocol so that a pipeline
 * written against it reads like the reference's denoising loop:
 *
 * ```ts
 * s.setTimesteps(steps);
 * let x = noise.map((v) => v * s.initNoiseSigma);
 * for (const t of s.timesteps) x = s.step(unet(s.scaleModelInput(x, t), t), t, x, generator);
 * ```
 *
 * Tensors are flat Float32Arrays in the caller's layout (NCHW latents); schedulers only do elementwise math, so
 * the layout never matters to them. Every method returns a new array and leaves its inputs untouched.
 */

/** Draws standard normal samples. A generator that reproduces torch.randn for a seed implements it. */
export interface NoiseSource {
  /**
   * `shape.reduce(*)` samples from N(0, 1), in order. Schedulers ask for `[sample.length]`: torch's CPU `randn`
   * depends only on the element count, so the values equal those of the reference's shaped draw.
   */
  randn(shape: readonly number[]): Float32Array;
}

export interface Scheduler {
  /** Model calls per solver step (2 for Heun and DPM++ SDE); img2img skips `order * startStep` timesteps. */
  readonly order: number;
  /** The standard deviation to scale unit noise by before the first step. */
  readonly initNoiseSigma: number;
  /** One entry per model call, in calling order. Empty until setTimesteps. */
  readonly timesteps: Float64Array;
  /** The number of solver steps asked of setTimesteps (timesteps.length can differ: PNDM, Heun). */
  readonly numInferenceSteps: number;

  /** Builds the schedule for `numInferenceSteps` steps and resets all per-run state. */
  setTimesteps(numInferenceSteps: number): void;
  /**
   * Starts the run at timesteps[index] instead of looking the first timestep up (img2img and inpainting, where
   * the first timestep may occur twice in the schedule). Call after setTimesteps.
   */
  setBeginIndex(index: number): void;
  /** The model's input for this timestep (sigma-space samplers divide by sqrt(sigma^2 + 1); others return `sample`). */
  scaleModelInput(sample: Float32Array, timestep: number): Float32Array;
  /** Advances one model call: the sample for the next timestep. Ancestral and SDE samplers draw from `noise`. */
  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array;
  /**
   * Karras et al.'s churn (churn.ts), on the samplers that have it (Euler, Heun, DPM2): called by the denoising loop
   * before every model call, it gives the sample the model sees (raised to sigma_hat with fresh noise on a step's
   * first call, when churn is on) and the timestep to call the model at; scaleModelInput and step then work at
   * sigma_hat. Absent: no churn.
   */
  churn?(sample: Float32Array, timestep: number, noise?: NoiseSource): { sample: Float32Array; timestep: number };
  /** Noises a clean sample to the level of `timestep` (one of `timesteps`), as at the start of img2img. */
  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array;
}

/** What the model predicts: the noise (SD1/SD2-base/SDXL), the velocity (SD2 768-v), or the clean sample. */
export type PredictionType = "epsilon" | "v_prediction" | "sample";

/** How inference timesteps are spread over the training range (table 2 of Lin et al. 2023). */
export type TimestepSpacing = "leading" | "linspace" | "trailing";
