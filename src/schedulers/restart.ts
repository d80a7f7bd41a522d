/**
 * Restart: Xu et al. (2023), "Restart Sampling for Improving Generative Processes", as A1111 runs it
 * (modules/sd_samplers_extra.py). The deterministic part is Heun's method (Karras et al. 2022, algorithm 1:
 * two model calls per step, Euler on the step to 0). For 20 steps or more, the main walk is re-spaced as a
 * Karras schedule of n - K * R steps between the schedule's ends, and once it reaches the sigma nearest 0.1 it
 * restarts R times: noise is added to climb back to the sigma nearest 2 (x += sqrt(s_hi^2 - s_lo^2) z), and a
 * Karras walk of K steps descends again to 0.1. K = 9, R = 1 from 20 steps; K = n / 4 (floored), R = 2 from 36.
 * So n steps always take 2n - 1 model calls. Below 20 steps it is Heun on the Karras schedule (A1111's default
 * for Restart). One noise draw per restart.
 */
import { KSampler, type KSamplerConfig, type KSamplerTraits, type PlannedCall } from "./k-sampler.js";
import { f32 } from "./numerics.js";
import type { NoiseSource } from "./scheduler.js";
import { karrasSigmas } from "./sigmas.js";

/** A call of a Heun step from `from` to `to`; `restartTo`, on a step's last call, is the sigma to climb back to. */
interface RestartCall extends PlannedCall {
  readonly from: number;
  readonly to: number;
  readonly last: boolean;
  readonly restartTo: number | undefined;
}

/** The sigmas restarts climb from and back to (A1111's automatic restart_list: the schedule's nearest to each). */
const RESTART_FROM = 0.1;
const RESTART_TO = 2;

export class RestartScheduler extends KSampler<RestartCall> {
  static readonly traits: KSamplerTraits = { label: "Restart", defaultSchedule: "karras", discardsPenultimate: false };
  readonly order = 2;
  /** The first stage's sample and slope, for the Heun correction. */
  private firstStage: { sample: Float32Array; slope: Float64Array } | undefined;

  constructor(config: Partial<KSamplerConfig> = {}) {
    super(config, RestartScheduler.traits);
  }

  protected planCalls(walk: Float64Array): RestartCall[] {
    const pairs = restartPairs(walk);
    const calls: RestartCall[] = [];
    pairs.forEach(([from, to], step) => {
      const following = pairs[step + 1];
      const restartTo = following && following[0] > to ? following[0] : undefined;
      if (to === 0) {
        calls.push({ sigma: from, step, stage: 0, from, to, last: true, restartTo });
        return;
      }
      calls.push({ sigma: from, step, stage: 0, from, to, last: false, restartTo: undefined });
      calls.push({ sigma: to, step, stage: 1, from, to, last: true, restartTo });
    });
    return calls;
  }

  protected clearRunState(): void {
    this.firstStage = undefined;
  }

  protected advance(call: RestartCall, denoised: Float64Array, x: Float32Array, noise?: NoiseSource): Float32Array {
    const out = new Float32Array(x.length);
    const dt = call.to - call.from;
    if (call.stage === 0) {
      const slope = Float64Array.from(x, (v, k) => (v - denoised[k]) / call.from);
      for (let k = 0; k < out.length; k++) out[k] = x[k] + slope[k] * dt;
      this.firstStage = call.last ? undefined : { sample: x, slope };
    } else {
      const { sample, slope } = this.firstStage!;
      for (let k = 0; k < out.length; k++) out[k] = sample[k] + ((slope[k] + (x[k] - denoised[k]) / call.to) / 2) * dt;
      this.firstStage = undefined;
    }
    if (call.restartTo !== undefined) {
      // Restart: climb back from call.to to restartTo with fresh noise before the next step's model call.
      const std = Math.sqrt(call.restartTo ** 2 - call.to ** 2);
      const z = this.drawNoise(noise, x);
      for (let k = 0; k < out.length; k++) out[k] += z[k] * std;
    }
    return out;
  }
}

/**
 * The (from, to) sigma pairs Restart walks for the schedule `walk` (ending in 0): the walk itself below 20 steps;
 * from 20 on, a Karras walk with fewer steps and, after its sigma nearest 0.1, the restart segments.
 */
function restartPairs(walk: Float64Array): [number, number][] {
  const steps = walk.length - 1;
  let sigmas = walk;
  let restart: { steps: number; times: number } | undefined;
  if (steps >= 20) {
    restart = steps >= 36 ? { steps: Math.floor(steps / 4), times: 2 } : { steps: 9, times: 1 };
    const main = karrasSigmas(walk[walk.length - 2], walk[0], steps - restart.steps * restart.times);
    sigmas = Float64Array.from([...main.map(f32), 0]);
  }
  const pairs: [number, number][] = [];
  const at = restart ? nearest(sigmas, RESTART_FROM) : -1;
  const top = nearest(sigmas, RESTART_TO);
  for (let i = 0; i + 1 < sigmas.length; i++) {
    pairs.push([sigmas[i], sigmas[i + 1]]);
    if (restart && i + 1 === at && top < at) {
      // A Karras walk of K + 1 levels from the sigma nearest 2 down to the one nearest 0.1, K steps.
      const segment = Array.from(karrasSigmas(sigmas[at], sigmas[top], restart.steps + 1), f32);
      for (let r = 0; r < restart.times; r++) {
        for (let j = 0; j + 1 < segment.length; j++) pairs.push([segment[j], segment[j + 1]]);
      }
    }
  }
  return pairs;
}

/** The index of the sigma closest to `target` (the first on a tie, as torch.argmin). */
function nearest(sigmas: Float64Array, target: number): number {
  let best = 0;
  for (let i = 1; i < sigmas.length; i++) if (Math.abs(sigmas[i] - target) < Math.abs(sigmas[best] - target)) best = i;
  return best;
}
