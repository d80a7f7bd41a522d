/**
 * DPM2 a: k-diffusion's sample_dpm_2_ancestral. Each step splits the move from sigma_i to sigma_{i+1} into a
 * deterministic part, down to sigma_down, and fresh noise of std sigma_up (the ancestral split, scaled by eta);
 * the deterministic part is a DPM2 step (Euler half-step to the log-midpoint of sigma_i and sigma_down, then the
 * whole step with the midpoint's slope), after which the noise is added. A step whose sigma_down is 0 (the
 * last) is a plain Euler step without noise. With eta 0 it is DPM2. A1111's "DPM2 a": Karras schedule by
 * default, the next-to-last sigma discarded, eta 1, one noise draw per two-stage step.
 */
import { DPM2Scheduler } from "./dpm2.js";
import {
  type KSamplerConfig,
  type KSamplerTraits,
  type TwoStageCall,
  ancestralStep,
  twoStagePlan,
} from "./k-sampler.js";
import type { NoiseSource } from "./scheduler.js";

export class DPM2AncestralScheduler extends DPM2Scheduler {
  static override readonly traits: KSamplerTraits = { ...DPM2Scheduler.traits, label: "DPM2 a" };

  constructor(config: Partial<KSamplerConfig> = {}) {
    super(config, DPM2AncestralScheduler.traits);
  }

  /** The deterministic part of each step ends at sigma_down. */
  protected override planCalls(walk: Float64Array): TwoStageCall[] {
    return twoStagePlan(walk, (i) => ancestralStep(walk[i], walk[i + 1], this.config.eta).down);
  }

  /** DPM2's update towards sigma_down, then the step's fresh noise after its second stage. */
  protected override advance(
    call: TwoStageCall,
    denoised: Float64Array,
    x: Float32Array,
    noise?: NoiseSource,
  ): Float32Array {
    const out = super.advance(call, denoised, x);
    if (call.stage === 0) return out;
    const { up } = ancestralStep(this.walk[call.step], this.walk[call.step + 1], this.config.eta);
    const z = this.drawNoise(noise, x);
    for (let k = 0; k < out.length; k++) out[k] += z[k] * up;
    return out;
  }
}
