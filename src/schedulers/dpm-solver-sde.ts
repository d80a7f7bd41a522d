/**
 * DPM-Solver++ SDE (k-diffusion's sample_dpmpp_sde, Lu et al. 2022 with ancestral noise): a two-stage stochastic
 * step. The first call goes from sigma_i to the geometric midpoint sqrt(sigma_i * sigma_{i+1}), the second
 * re-does the whole step with the model output from the midpoint, each stage splitting its move into a
 * deterministic part and fresh noise like Euler ancestral. The last step, to sigma = 0, is a plain Euler step.
 * n steps take 2n - 1 model calls; the second call of each step is conditioned on the midpoint's timestep.
 * With use_karras_sigmas it is A1111's "DPM++ SDE Karras"; the reference's DPMSolverSDEScheduler.
 *
 * Noise. The reference draws the stage noises from a Brownian tree (torchsde) seeded independently of the
 * pipeline's generator, so its samples cannot be reproduced bit for bit by any port, and it seeds it at random
 * unless `noise_sampler_seed` is set. What matters is the Brownian structure: the second stage's noise covers
 * the interval [sigma_{i+1}, sigma_i], which contains the first stage's [sigma_mid, sigma_i], so the two are
 * correlated. We build exactly that from the NoiseSource: the first stage uses a fresh draw z1 as the
 * normalised increment over [sigma_mid, sigma_i]; the second draws z2 for [sigma_{i+1}, sigma_mid] and uses
 * (sqrt(sigma_i - sigma_mid) z1 + sqrt(sigma_mid - sigma_{i+1}) z2) / sqrt(sigma_i - sigma_{i+1}), the
 * normalised Brownian increment over the whole step. That has the reference's distribution (same marginals and
 * correlations); a seeded generator makes it reproducible, two draws per step, none on the final Euler step.
 * `noise_sampler_seed` is accepted and ignored. k-diffusion's eta scales each stage's sigma_up (0: no noise, the
 * stages end at their targets) and s_noise the noise, as A1111 passes them; both 1 by default.
 */
import { InputError } from "../errors.js";
import type { BetaConfig } from "./betas.js";
import { LDM_LINEAR_BETAS, SIGMA_SCHEDULE_FLAGS, resolveConfig, type RawSchedulerConfig } from "./config.js";
import { checkedNoiseKnobs, type NoiseKnobs } from "./noise-knobs.js";
import { f32 } from "./numerics.js";
import type { NoiseSource, PredictionType, TimestepSpacing } from "./scheduler.js";
import { SigmaScheduler, divideBy, inputScale, interleaveForTwoStages } from "./sigma-scheduler.js";
import { logSigmas, sigmaToT, trainSigmas } from "./sigmas.js";

export interface DPMSolverSDEConfig extends BetaConfig {
  prediction_type: PredictionType;
  use_karras_sigmas: boolean;
  use_exponential_sigmas: boolean;
  use_beta_sigmas: boolean;
  noise_sampler_seed: number | null;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
}

export class DPMSolverSDEScheduler extends SigmaScheduler<DPMSolverSDEConfig> {
  static readonly defaults: Readonly<DPMSolverSDEConfig> = Object.freeze({
    ...LDM_LINEAR_BETAS,
    prediction_type: "epsilon",
    ...SIGMA_SCHEDULE_FLAGS,
    noise_sampler_seed: null,
    timestep_spacing: "linspace",
    steps_offset: 0,
  });

  static fromConfig(
    config: RawSchedulerConfig,
    overrides: Partial<DPMSolverSDEConfig> = {},
    knobs: Partial<NoiseKnobs> = {},
  ): DPMSolverSDEScheduler {
    return new DPMSolverSDEScheduler(resolveConfig(DPMSolverSDEScheduler.defaults, config, overrides), knobs);
  }

  readonly order = 2;
  readonly knobs: NoiseKnobs;
  /** First-stage state for the second call: the step's starting sample, midpoint sigma and first noise draw. */
  private firstStage: { sample: Float32Array; midSigma: number; z1: Float32Array } | undefined;

  constructor(config: Partial<DPMSolverSDEConfig> = {}, knobs: Partial<NoiseKnobs> = {}) {
    super(DPMSolverSDEScheduler.defaults, config, {
      name: "DPMSolverSDEScheduler",
      betaSchedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
    });
    this.knobs = checkedNoiseKnobs("DPM++ SDE", knobs);
  }

  get inFirstStage(): boolean {
    return this.firstStage === undefined;
  }

  setTimesteps(numInferenceSteps: number): void {
    const perStep = this.buildSchedule(numInferenceSteps, { linspacePrecision: "float64" });
    const schedule = interleaveForTwoStages(perStep);
    // The second call of step k is conditioned on the timestep of its midpoint sigma.
    const logs = logSigmas(trainSigmas(this.alphasCumprod));
    const n = perStep.timesteps.length;
    for (let k = 0; k + 1 < n; k++) {
      const t0 = -Math.log(perStep.sigmas[k]);
      const t1 = -Math.log(perStep.sigmas[k + 1]);
      schedule.timesteps[2 * k + 1] = sigmaToT(Math.exp(-(t0 + (t1 - t0) * 0.5)), logs);
    }
    this.resetRun(schedule, numInferenceSteps);
    this.firstStage = undefined;
  }

  override scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const i = this.currentIndex(timestep);
    return divideBy(sample, inputScale(this.firstStage ? this.firstStage.midSigma : this.sigmas[i]));
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array {
    const i = this.currentIndex(timestep);
    const pending = this.firstStage;
    const sigma = pending ? this.sigmas[i - 1] : this.sigmas[i];
    const sigmaNext = pending ? this.sigmas[i] : this.sigmas[i + 1];
    if (sigmaNext !== 0 && !noise) {
      throw new InputError(
        "DPM++ SDE adds fresh noise every step: pass a NoiseSource (the run's seeded generator) to step()",
      );
    }
    this.stepIndex = i + 1;

    if (sigmaNext === 0) {
      // Final step: Euler to sigma = 0, no noise.
      const x0 = this.denoisedAt(modelOutput, sample, sigma);
      const out = new Float32Array(sample.length);
      const dt = f32(0 - sigma);
      for (let k = 0; k < out.length; k++) out[k] = sample[k] + ((sample[k] - x0[k]) / sigma) * dt;
      return out;
    }

    // Times t = -log(sigma); the midpoint in t is the geometric mean in sigma.
    const t = f32(-f32(Math.log(sigma)));
    const tNextFull = f32(-f32(Math.log(sigmaNext)));
    const tMid = f32(t + f32(f32(tNextFull - t) * 0.5));
    const midSigma = f32(Math.exp(-tMid));
    const x0 = this.denoisedAt(modelOutput, sample, pending ? midSigma : sigma);
    const tTarget = pending ? tNextFull : tMid;
    const start = pending ? pending.sample : sample;

    const sigmaFrom = f32(Math.exp(-t));
    const sigmaTo = f32(Math.exp(-tTarget));
    const from2 = f32(sigmaFrom * sigmaFrom);
    const to2 = f32(sigmaTo * sigmaTo);
    // k-diffusion's get_ancestral_step with eta (eta 1: the reference's arithmetic as it is).
    const { eta, sNoise } = this.knobs;
    const full = f32(Math.sqrt(f32(f32(to2 * f32(from2 - to2)) / from2)));
    const up = eta === 0 ? 0 : Math.min(sigmaTo, eta === 1 ? full : f32(eta * full));
    const down = eta === 0 ? sigmaTo : f32(Math.sqrt(f32(to2 - f32(up * up))));
    const tAncestral = f32(-f32(Math.log(down)));
    const xCoeff = f32(f32(Math.exp(-tAncestral)) / f32(Math.exp(-t)));
    const x0Coeff = f32(Math.expm1(f32(t - tAncestral)));

    const z = noise!.randn([sample.length]);
    let w = z;
    if (pending) {
      // Brownian increment over the whole step: the first stage's increment plus a fresh one.
      const a = Math.sqrt(sigma - pending.midSigma);
      const b = Math.sqrt(pending.midSigma - sigmaNext);
      const norm = Math.sqrt(sigma - sigmaNext);
      w = Float32Array.from(z, (v, k) => (a * pending.z1[k] + b * v) / norm);
    }
    const out = new Float32Array(sample.length);
    const noiseScale = up * sNoise;
    for (let k = 0; k < out.length; k++) out[k] = xCoeff * start[k] - x0Coeff * x0[k] + w[k] * noiseScale;
    this.firstStage = pending ? undefined : { sample, midSigma: sigmaTo, z1: z };
    return out;
  }
}
