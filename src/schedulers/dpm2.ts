/**
 * DPM2: k-diffusion's sample_dpm_2, DPM-Solver-2 (Lu et al. 2022) written as in Karras et al. (2022)
 * algorithm 2, without churn (A1111's s_churn 0). Each step takes the slope d_i = (x - D(x, sigma_i)) / sigma_i,
 * an Euler half-step to the log-midpoint sigma_mid = sqrt(sigma_i sigma_{i+1}), and then the whole step from x
 * with the slope found there; the last step, to sigma = 0, is a plain Euler step. n steps take 2n - 1 model
 * calls. A1111's "DPM2": Karras schedule by default, and the next-to-last sigma discarded. With churn knobs (A1111's
 * s_churn, s_tmin, s_tmax, s_noise) a step starts from the churned sigma_hat and its midpoint is that of sigma_hat
 * and sigma_{i+1}, as k-diffusion's sample_dpm_2.
 */
import { type ChurnKnobs, checkedChurnKnobs, churnSample } from "./churn.js";
import {
  KSampler,
  type KSamplerConfig,
  type KSamplerTraits,
  type TwoStageCall,
  logMidpoint,
  twoStagePlan,
} from "./k-sampler.js";
import type { NoiseSource } from "./scheduler.js";
import { logSigmas, sigmaToT, trainSigmas } from "./sigmas.js";

export class DPM2Scheduler extends KSampler<TwoStageCall> {
  static readonly traits: KSamplerTraits = { label: "DPM2", defaultSchedule: "karras", discardsPenultimate: true };
  readonly order = 2;
  /** The step's starting sample, kept for the second stage. */
  protected start: Float32Array | undefined;
  readonly churnKnobs: ChurnKnobs;
  /** The current step's sigma_hat and midpoint, when churn raised it. */
  private raised: { step: number; sigma: number; mid: number | undefined } | undefined;
  /** The step the run's churn started at. */
  private churnStart: number | undefined;

  constructor(config: Partial<KSamplerConfig> = {}, traits = DPM2Scheduler.traits, churn: Partial<ChurnKnobs> = {}) {
    super(config, traits);
    this.churnKnobs = checkedChurnKnobs(traits.label, churn);
  }

  churn(sample: Float32Array, timestep: number, noise?: NoiseSource): { sample: Float32Array; timestep: number } {
    if (this.churnKnobs.sChurn === 0) return { sample, timestep };
    const call = this.calls[this.currentIndex(timestep)];
    const toT = (sigma: number) => sigmaToT(sigma, logSigmas(trainSigmas(this.alphasCumprod)));
    const r = this.raised?.step === call.step ? this.raised : undefined;
    if (call.stage === 1) return { sample, timestep: r?.mid !== undefined ? toT(r.mid) : timestep };
    this.churnStart ??= call.step;
    const steps = this.walk.length - 1 - this.churnStart;
    const out = churnSample(this.churnKnobs, this.traits.label, call.sigma, steps, sample, noise);
    if (out.sigmaHat === call.sigma) {
      this.raised = undefined;
      return { sample: out.sample, timestep };
    }
    const mid = call.mid === undefined ? undefined : logMidpoint(out.sigmaHat, call.target);
    this.raised = { step: call.step, sigma: out.sigmaHat, mid };
    return { sample: out.sample, timestep: toT(out.sigmaHat) };
  }

  /** A churned step's calls: the first at sigma_hat, the second at the midpoint of sigma_hat and the target. */
  protected override callAt(index: number): TwoStageCall {
    const call = this.calls[index];
    const r = this.raised;
    if (r?.step !== call.step) return call;
    return { ...call, sigma: call.stage === 0 ? r.sigma : r.mid!, mid: r.mid };
  }

  /** Where step `step` starts: its sigma, or sigma_hat when churn raised it. */
  private stepStart(step: number): number {
    return this.raised?.step === step ? this.raised.sigma : this.walk[step];
  }

  protected planCalls(walk: Float64Array): TwoStageCall[] {
    return twoStagePlan(walk, (i) => walk[i + 1]);
  }

  protected clearRunState(): void {
    this.start = undefined;
    this.raised = undefined;
    this.churnStart = undefined;
  }

  protected advance(call: TwoStageCall, denoised: Float64Array, x: Float32Array): Float32Array {
    const out = new Float32Array(x.length);
    if (call.stage === 0) {
      const sigma = call.sigma;
      // Euler to the target (0) when there is no midpoint, else Euler to the midpoint.
      const dt = (call.mid ?? call.target) - sigma;
      for (let k = 0; k < out.length; k++) out[k] = x[k] + ((x[k] - denoised[k]) / sigma) * dt;
      this.start = call.mid === undefined ? undefined : x;
      return out;
    }
    const start = this.start!;
    const dt = call.target - this.stepStart(call.step);
    for (let k = 0; k < out.length; k++) out[k] = start[k] + ((x[k] - denoised[k]) / call.sigma) * dt;
    this.start = undefined;
    return out;
  }
}
