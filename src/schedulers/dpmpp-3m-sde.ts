/**
 * DPM++ 3M SDE: k-diffusion's sample_dpmpp_3m_sde, the third-order multistep DPM-Solver++ (Lu et al. 2022) for
 * the SDE with noise share eta (Gonzalez et al. 2023's SEEDS form). In t = -log sigma with h = t_{i+1} - t_i and
 * h_eta = (1 + eta) h, a step is x' = e^{-h_eta} x + (1 - e^{-h_eta}) D_i, corrected with the differences of the
 * last three denoised estimates (a first difference once one earlier estimate exists, a second difference once
 * two do, each weighted by the phi functions of h_eta), plus fresh noise of std sigma_{i+1}
 * sqrt(1 - e^{-2 eta h}). The step to sigma = 0 returns the denoised estimate. One model call per step.
 * A1111's "DPM++ 3M SDE": Exponential schedule by default, the next-to-last sigma discarded, eta 1.
 *
 * Noise. k-diffusion (and A1111) draw it from a Brownian tree seeded apart from the pipeline's generator, so no
 * port reproduces those samples bit for bit. The steps' intervals [sigma_{i+1}, sigma_i] are disjoint, so the
 * tree's normalised increments are independent standard normals: one fresh draw per step from the run's
 * generator has exactly their distribution and keeps the run reproducible by seed.
 */
import { KSampler, type KSamplerConfig, type KSamplerTraits, type PlannedCall } from "./k-sampler.js";
import type { NoiseSource } from "./scheduler.js";

export class DPMPP3MSDEScheduler extends KSampler {
  static readonly traits: KSamplerTraits = {
    label: "DPM++ 3M SDE",
    defaultSchedule: "exponential",
    discardsPenultimate: true,
  };
  readonly order = 1;
  /** The previous steps' denoised estimates and step sizes in t, newest first. */
  private history: { denoised: Float64Array; h: number }[] = [];

  constructor(config: Partial<KSamplerConfig> = {}) {
    super(config, DPMPP3MSDEScheduler.traits);
  }

  protected planCalls(walk: Float64Array): PlannedCall[] {
    return Array.from({ length: walk.length - 1 }, (_, i) => ({ sigma: walk[i], step: i, stage: 0 }));
  }

  protected clearRunState(): void {
    this.history = [];
  }

  protected advance(call: PlannedCall, denoised: Float64Array, x: Float32Array, noise?: NoiseSource): Float32Array {
    const sigma = call.sigma;
    const next = this.walk[call.step + 1];
    if (next === 0) {
      this.history = [];
      return Float32Array.from(denoised);
    }
    const eta = this.config.eta;
    const h = Math.log(sigma / next);
    const hEta = h * (eta + 1);
    const xCoeff = Math.exp(-hEta);
    const dCoeff = -Math.expm1(-hEta);
    const phi2 = Math.expm1(-hEta) / hEta + 1;
    const phi3 = phi2 / hEta - 0.5;
    const [prev, prev2] = this.history;
    const out = new Float64Array(x.length);
    for (let k = 0; k < out.length; k++) out[k] = xCoeff * x[k] + dCoeff * denoised[k];
    if (prev && prev2) {
      // Second order in the history: first and second divided differences of the denoised estimates.
      const r0 = prev.h / h;
      const r1 = prev2.h / h;
      for (let k = 0; k < out.length; k++) {
        const d10 = (denoised[k] - prev.denoised[k]) / r0;
        const d11 = (prev.denoised[k] - prev2.denoised[k]) / r1;
        const d1 = d10 + ((d10 - d11) * r0) / (r0 + r1);
        const d2 = (d10 - d11) / (r0 + r1);
        out[k] += phi2 * d1 - phi3 * d2;
      }
    } else if (prev) {
      const r = prev.h / h;
      for (let k = 0; k < out.length; k++) out[k] += (phi2 * (denoised[k] - prev.denoised[k])) / r;
    }
    if (eta > 0) {
      const std = next * Math.sqrt(-Math.expm1(-2 * h * eta));
      const z = this.drawNoise(noise, x);
      for (let k = 0; k < out.length; k++) out[k] += z[k] * std;
    }
    this.history = [{ denoised, h }, ...this.history.slice(0, 1)];
    return Float32Array.from(out);
  }
}
