/**
 * DPM++ 2S a: k-diffusion's sample_dpmpp_2s_ancestral, the single-step second-order DPM-Solver++(2S) of Lu et al.
 * (2022, algorithm 1 with r = 1/2) with ancestral noise. In t = -log sigma, each step goes from sigma_i towards
 * sigma_down (the ancestral split's deterministic target) with h = t_down - t_i: a first-order data-prediction
 * step to the midpoint s = t_i + h/2 (sigma_s = sqrt(sigma_i sigma_down)), x_s = (sigma_s / sigma_i) x -
 * expm1(-h/2) D(x, sigma_i), then the whole step with the midpoint's estimate, (sigma_down / sigma_i) x -
 * expm1(-h) D(x_s, sigma_s); fresh noise of std sigma_up is added unless the step ends at 0. A step whose
 * sigma_down is 0 is a plain Euler step. A1111's "DPM++ 2S a": Karras schedule by default, eta 1.
 */
import {
  KSampler,
  type KSamplerConfig,
  type KSamplerTraits,
  type TwoStageCall,
  ancestralStep,
  twoStagePlan,
} from "./k-sampler.js";
import type { NoiseSource } from "./scheduler.js";

export class DPMPP2SAncestralScheduler extends KSampler<TwoStageCall> {
  static readonly traits: KSamplerTraits = {
    label: "DPM++ 2S a",
    defaultSchedule: "karras",
    discardsPenultimate: false,
  };
  readonly order = 2;
  private start: Float32Array | undefined;

  constructor(config: Partial<KSamplerConfig> = {}) {
    super(config, DPMPP2SAncestralScheduler.traits);
  }

  protected planCalls(walk: Float64Array): TwoStageCall[] {
    return twoStagePlan(walk, (i) => ancestralStep(walk[i], walk[i + 1], this.config.eta).down);
  }

  protected clearRunState(): void {
    this.start = undefined;
  }

  protected advance(call: TwoStageCall, denoised: Float64Array, x: Float32Array, noise?: NoiseSource): Float32Array {
    const out = new Float32Array(x.length);
    if (call.stage === 0 && call.mid !== undefined) {
      // First stage: to the midpoint, in the data-prediction form of the exponential integrator.
      const h = Math.log(call.sigma / call.target);
      const xCoeff = call.mid / call.sigma;
      const dCoeff = -Math.expm1(-h / 2);
      for (let k = 0; k < out.length; k++) out[k] = xCoeff * x[k] + dCoeff * denoised[k];
      this.start = x;
      return out;
    }
    const sigma = this.walk[call.step];
    const next = this.walk[call.step + 1];
    if (call.stage === 0) {
      // sigma_down is 0: Euler to it (the denoised estimate itself), noise still added if the step ends above 0.
      for (let k = 0; k < out.length; k++) out[k] = x[k] + ((x[k] - denoised[k]) / sigma) * (call.target - sigma);
    } else {
      const start = this.start!;
      const h = Math.log(sigma / call.target);
      const xCoeff = call.target / sigma;
      const dCoeff = -Math.expm1(-h);
      for (let k = 0; k < out.length; k++) out[k] = xCoeff * start[k] + dCoeff * denoised[k];
      this.start = undefined;
    }
    if (next > 0) {
      const { up } = ancestralStep(sigma, next, this.config.eta);
      const z = this.drawNoise(noise, x);
      for (let k = 0; k < out.length; k++) out[k] += z[k] * up;
    }
    return out;
  }
}
