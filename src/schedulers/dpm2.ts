/**
 * DPM2: k-diffusion's sample_dpm_2, DPM-Solver-2 (Lu et al. 2022) written as in Karras et al. (2022)
 * algorithm 2, without churn (A1111's s_churn 0). Each step takes the slope d_i = (x - D(x, sigma_i)) / sigma_i,
 * an Euler half-step to the log-midpoint sigma_mid = sqrt(sigma_i sigma_{i+1}), and then the whole step from x
 * with the slope found there; the last step, to sigma = 0, is a plain Euler step. n steps take 2n - 1 model
 * calls. A1111's "DPM2": Karras schedule by default, and the next-to-last sigma discarded.
 */
import { KSampler, type KSamplerConfig, type KSamplerTraits, type TwoStageCall, twoStagePlan } from "./k-sampler.js";

export class DPM2Scheduler extends KSampler<TwoStageCall> {
  static readonly traits: KSamplerTraits = { label: "DPM2", defaultSchedule: "karras", discardsPenultimate: true };
  readonly order = 2;
  /** The step's starting sample, kept for the second stage. */
  protected start: Float32Array | undefined;

  constructor(config: Partial<KSamplerConfig> = {}, traits = DPM2Scheduler.traits) {
    super(config, traits);
  }

  protected planCalls(walk: Float64Array): TwoStageCall[] {
    return twoStagePlan(walk, (i) => walk[i + 1]);
  }

  protected clearRunState(): void {
    this.start = undefined;
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
    const dt = call.target - this.walk[call.step];
    for (let k = 0; k < out.length; k++) out[k] = start[k] + ((x[k] - denoised[k]) / call.sigma) * dt;
    this.start = undefined;
    return out;
  }
}
