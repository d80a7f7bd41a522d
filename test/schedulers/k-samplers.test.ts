/**
 * The k-diffusion-only samplers (DPM2, DPM2 a, DPM++ 2S a, DPM++ 3M SDE, Restart) against an independent replay of
 * k-diffusion's step formulas (sample_dpm_2, sample_dpm_2_ancestral, sample_dpmpp_2s_ancestral,
 * sample_dpmpp_3m_sde) and of A1111's restart_sampler: the plain loops below, in float64 over number arrays,
 * written from those formulas and sharing no code with the samplers. Both are driven by the same analytic
 * denoiser and the same fixed noise draws. Our run sees only what the pipeline gives it: it recovers sigma from
 * each call's timestep, and carries float32 samples from call to call.
 */
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { trainingSchedule } from "../../src/schedulers/betas.js";
import {
  createScheduler,
  DPM2AncestralScheduler,
  DPM2Scheduler,
  DPMPP2SAncestralScheduler,
  DPMPP3MSDEScheduler,
  RestartScheduler,
  STABLE_DIFFUSION_SCHEDULER_CONFIG as SD,
} from "../../src/schedulers/index.js";
import type { RawSchedulerConfig } from "../../src/schedulers/config.js";
import { scheduleSigmas } from "../../src/schedulers/schedule-types.js";
import type { NoiseSource, Scheduler } from "../../src/schedulers/scheduler.js";
import { trainSigmas } from "../../src/schedulers/sigmas.js";
import { SeededNormal, sigmaOfTimestep } from "./models.js";

const N = 48;
/** SD's training schedule, from which both runs take their sigmas. */
const ALPHAS = trainingSchedule(
  {
    num_train_timesteps: 1000,
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    trained_betas: null,
  },
  ["scaled_linear"],
).alphasCumprod;
const TABLE = trainSigmas(ALPHAS);

/** The exact denoiser of i.i.d. N(mu_k, 0.5^2) data: (x sd^2 + mu sigma^2) / (sd^2 + sigma^2), per element. */
const MU = Array.from({ length: N }, (_, k) => Math.sin(k * 0.7) * 0.8);
function model(x: readonly number[], sigma: number): number[] {
  const v = 0.25;
  return x.map((xi, k) => (xi * v + MU[k]! * sigma * sigma) / (v + sigma * sigma));
}

/** Fixed noise draws, handed out in order, counting them. */
class ListNoise implements NoiseSource {
  draws = 0;
  constructor(private readonly list: Float32Array[]) {}
  randn(shape: readonly number[]): Float32Array {
    expect(shape.reduce((a, b) => a * b, 1)).toBe(N);
    return Float32Array.from(this.list[this.draws++]!);
  }
}
const NOISES = Array.from({ length: 200 }, (_, i) => new SeededNormal(100 + i).randn([N]));
const XT = new SeededNormal(7).randn([N]);

/** Our sampler in the pipeline's loop: an x0-predicting model evaluated at the sigma of each call's timestep. */
function runOurs(s: Scheduler, steps: number, noise: NoiseSource): { x: Float32Array; calls: number } {
  s.setTimesteps(steps);
  let x: Float32Array = XT.map((v) => v * s.initNoiseSigma);
  let calls = 0;
  for (const t of s.timesteps) {
    const sigma = sigmaOfTimestep(ALPHAS, t);
    calls++;
    x = s.step(Float32Array.from(model(Array.from(x), sigma)), t, x, noise);
  }
  return { x, calls };
}

// ---- The reference: k-diffusion's loops, transcribed from its formulas, in float64. ----

/** A1111's sigmas for a sampler: the schedule type's, with the next-to-last dropped where the sampler says. */
function refSigmas(type: "karras" | "exponential", steps: number, discard: boolean): number[] {
  const s = Array.from(scheduleSigmas(type, steps + (discard ? 1 : 0), { sigmas: TABLE, sdxl: false }));
  return discard ? [...s.slice(0, -2), s[s.length - 1]!] : s;
}

function getAncestralStep(from: number, to: number, eta: number): [number, number] {
  if (!eta) return [to, 0];
  const up = Math.min(to, eta * ((to ** 2 * (from ** 2 - to ** 2)) / from ** 2) ** 0.5);
  return [(to ** 2 - up ** 2) ** 0.5, up];
}

const add = (a: number[], b: number[], s = 1) => a.map((v, k) => v + s * b[k]!);
const scale = (a: number[], s: number) => a.map((v) => v * s);
const toD = (x: number[], sigma: number, den: number[]) => x.map((v, k) => (v - den[k]!) / sigma);
const logLerpHalf = (a: number, b: number) => Math.exp(Math.log(a) + 0.5 * (Math.log(b) - Math.log(a)));

interface Ref {
  x: number[];
  calls: number;
  draws: number;
}

function refDpm2(sigmas: number[]): Ref {
  let x = scale(Array.from(XT), sigmas[0]!);
  let calls = 0;
  for (let i = 0; i + 1 < sigmas.length; i++) {
    const d = toD(x, sigmas[i]!, model(x, sigmas[i]!));
    calls++;
    if (sigmas[i + 1] === 0) x = add(x, d, sigmas[i + 1]! - sigmas[i]!);
    else {
      const mid = logLerpHalf(sigmas[i]!, sigmas[i + 1]!);
      const x2 = add(x, d, mid - sigmas[i]!);
      const d2 = toD(x2, mid, model(x2, mid));
      calls++;
      x = add(x, d2, sigmas[i + 1]! - sigmas[i]!);
    }
  }
  return { x, calls, draws: 0 };
}

function refDpm2Ancestral(sigmas: number[], eta: number): Ref {
  let x = scale(Array.from(XT), sigmas[0]!);
  let calls = 0;
  let draws = 0;
  for (let i = 0; i + 1 < sigmas.length; i++) {
    const den = model(x, sigmas[i]!);
    calls++;
    const [down, up] = getAncestralStep(sigmas[i]!, sigmas[i + 1]!, eta);
    const d = toD(x, sigmas[i]!, den);
    if (down === 0) x = add(x, d, down - sigmas[i]!);
    else {
      const mid = logLerpHalf(sigmas[i]!, down);
      const x2 = add(x, d, mid - sigmas[i]!);
      const d2 = toD(x2, mid, model(x2, mid));
      calls++;
      x = add(x, d2, down - sigmas[i]!);
      x = add(x, Array.from(NOISES[draws++]!), up);
    }
  }
  return { x, calls, draws };
}

function refDpmpp2sAncestral(sigmas: number[], eta: number): Ref {
  const sigmaFn = (t: number) => Math.exp(-t);
  const tFn = (s: number) => -Math.log(s);
  let x = scale(Array.from(XT), sigmas[0]!);
  let calls = 0;
  let draws = 0;
  for (let i = 0; i + 1 < sigmas.length; i++) {
    const den = model(x, sigmas[i]!);
    calls++;
    const [down, up] = getAncestralStep(sigmas[i]!, sigmas[i + 1]!, eta);
    if (down === 0) x = add(x, toD(x, sigmas[i]!, den), down - sigmas[i]!);
    else {
      const t = tFn(sigmas[i]!);
      const tNext = tFn(down);
      const h = tNext - t;
      const s = t + 0.5 * h;
      const x2 = x.map((v, k) => (sigmaFn(s) / sigmaFn(t)) * v - Math.expm1(-h * 0.5) * den[k]!);
      const den2 = model(x2, sigmaFn(s));
      calls++;
      x = x.map((v, k) => (sigmaFn(tNext) / sigmaFn(t)) * v - Math.expm1(-h) * den2[k]!);
    }
    if (sigmas[i + 1]! > 0) x = add(x, Array.from(NOISES[draws++]!), up);
  }
  return { x, calls, draws };
}

function refDpmpp3mSde(sigmas: number[], eta: number): Ref {
  let x = scale(Array.from(XT), sigmas[0]!);
  let calls = 0;
  let draws = 0;
  let den1: number[] | undefined;
  let den2: number[] | undefined;
  let h1: number | undefined;
  let h2: number | undefined;
  let h = 0;
  for (let i = 0; i + 1 < sigmas.length; i++) {
    const den = model(x, sigmas[i]!);
    calls++;
    if (sigmas[i + 1] === 0) x = den;
    else {
      const t = -Math.log(sigmas[i]!);
      const s = -Math.log(sigmas[i + 1]!);
      h = s - t;
      const hEta = h * (eta + 1);
      x = x.map((v, k) => Math.exp(-hEta) * v + -Math.expm1(-hEta) * den[k]!);
      const phi2 = Math.expm1(-hEta) / hEta + 1;
      if (h2 !== undefined) {
        const r0 = h1! / h;
        const r1 = h2 / h;
        const phi3 = phi2 / hEta - 0.5;
        x = x.map((v, k) => {
          const d10 = (den[k]! - den1![k]!) / r0;
          const d11 = (den1![k]! - den2![k]!) / r1;
          const d1 = d10 + ((d10 - d11) * r0) / (r0 + r1);
          const d2 = (d10 - d11) / (r0 + r1);
          return v + phi2 * d1 - phi3 * d2;
        });
      } else if (h1 !== undefined) {
        const r = h1 / h;
        x = x.map((v, k) => v + phi2 * ((den[k]! - den1![k]!) / r));
      }
      if (eta) {
        const std = sigmas[i + 1]! * Math.sqrt(-Math.expm1(-2 * h * eta));
        x = add(x, Array.from(NOISES[draws++]!), std);
      }
    }
    den2 = den1;
    den1 = den;
    h2 = h1;
    h1 = h;
  }
  return { x, calls, draws };
}

/** k-diffusion's get_sigmas_karras without the appended zero, in float64. */
function karras(n: number, sigmaMin: number, sigmaMax: number): number[] {
  const rho = 7;
  return Array.from({ length: n }, (_, i) => {
    const ramp = n === 1 ? 0 : i / (n - 1);
    return (sigmaMax ** (1 / rho) + ramp * (sigmaMin ** (1 / rho) - sigmaMax ** (1 / rho))) ** rho;
  });
}

function argminDistance(values: number[], target: number): number {
  let best = 0;
  values.forEach((v, i) => {
    if (Math.abs(v - target) < Math.abs(values[best]! - target)) best = i;
  });
  return best;
}

/** A1111's restart_sampler with its automatic restart list. */
function refRestart(input: number[]): Ref {
  let sigmas = input;
  const steps = sigmas.length - 1;
  let restartList = new Map<number, [number, number, number]>();
  if (steps >= 20) {
    let restartSteps = 9;
    let restartTimes = 1;
    if (steps >= 36) {
      restartSteps = Math.floor(steps / 4);
      restartTimes = 2;
    }
    sigmas = [...karras(steps - restartSteps * restartTimes, sigmas[sigmas.length - 2]!, sigmas[0]!), 0];
    restartList = new Map([[argminDistance(sigmas, 0.1), [restartSteps + 1, restartTimes, 2]]]);
  }
  const stepList: [number, number][] = [];
  for (let i = 0; i + 1 < sigmas.length; i++) {
    stepList.push([sigmas[i]!, sigmas[i + 1]!]);
    const entry = restartList.get(i + 1);
    if (entry) {
      let [restartSteps, restartTimes, restartMax] = entry;
      const minIdx = i + 1;
      const maxIdx = argminDistance(sigmas, restartMax);
      if (maxIdx < minIdx) {
        const sigmaRestart = karras(restartSteps, sigmas[minIdx]!, sigmas[maxIdx]!);
        while (restartTimes > 0) {
          restartTimes--;
          for (let j = 0; j + 1 < sigmaRestart.length; j++) stepList.push([sigmaRestart[j]!, sigmaRestart[j + 1]!]);
        }
      }
    }
  }
  let x = scale(Array.from(XT), input[0]!);
  let calls = 0;
  let draws = 0;
  let last: number | undefined;
  for (const [oldSigma, newSigma] of stepList) {
    if (last !== undefined && last < oldSigma)
      x = add(x, Array.from(NOISES[draws++]!), Math.sqrt(oldSigma ** 2 - last ** 2));
    const d = toD(x, oldSigma, model(x, oldSigma));
    calls++;
    const dt = newSigma - oldSigma;
    if (newSigma === 0) x = add(x, d, dt);
    else {
      const x2 = add(x, d, dt);
      const d2 = toD(x2, newSigma, model(x2, newSigma));
      calls++;
      x = add(
        x,
        d.map((v, k) => (v + d2[k]!) / 2),
        dt,
      );
    }
    last = newSigma;
  }
  return { x, calls, draws };
}

// ---- The comparisons. ----

/** Largest difference, relative to the reference's largest value. */
function relMax(ours: Float32Array, ref: number[]): number {
  let diff = 0;
  let size = 0;
  ref.forEach((v, k) => {
    diff = Math.max(diff, Math.abs(ours[k]! - v));
    size = Math.max(size, Math.abs(v));
  });
  return diff / size;
}

const X0_CONFIG: RawSchedulerConfig = { ...SD, prediction_type: "sample" };

const CASES: {
  label: string;
  make: (overrides?: Record<string, unknown>) => Scheduler;
  ref: (steps: number, eta: number) => Ref;
  steps: number[];
}[] = [
  {
    label: "DPM2",
    make: (o) => DPM2Scheduler.fromConfig(X0_CONFIG, o),
    ref: (n) => refDpm2(refSigmas("karras", n, true)),
    steps: [1, 4, 20],
  },
  {
    label: "DPM2 a",
    make: (o) => DPM2AncestralScheduler.fromConfig(X0_CONFIG, o),
    ref: (n, eta) => refDpm2Ancestral(refSigmas("karras", n, true), eta),
    steps: [1, 4, 20],
  },
  {
    label: "DPM++ 2S a",
    make: (o) => DPMPP2SAncestralScheduler.fromConfig(X0_CONFIG, o),
    ref: (n, eta) => refDpmpp2sAncestral(refSigmas("karras", n, false), eta),
    steps: [1, 4, 20],
  },
  {
    label: "DPM++ 3M SDE",
    make: (o) => DPMPP3MSDEScheduler.fromConfig(X0_CONFIG, o),
    ref: (n, eta) => refDpmpp3mSde(refSigmas("exponential", n, true), eta),
    steps: [1, 4, 20, 40],
  },
  {
    label: "Restart",
    make: (o) => RestartScheduler.fromConfig(X0_CONFIG, o),
    ref: (n) => refRestart(refSigmas("karras", n, false)),
    steps: [1, 4, 20, 40],
  },
];

describe("k-diffusion samplers replay k-diffusion's step formulas on a fixed denoiser and fixed noise", () => {
  for (const c of CASES) {
    for (const steps of c.steps) {
      it(`${c.label}, ${steps} steps: same trajectory end within 1e-6, same model calls and noise draws`, () => {
        const noise = new ListNoise(NOISES);
        const ours = runOurs(c.make(), steps, noise);
        const ref = c.ref(steps, 1);
        expect(ours.calls).toBe(ref.calls);
        expect(noise.draws).toBe(ref.draws);
        expect(relMax(ours.x, ref.x)).toBeLessThan(1e-6);
      });
    }
  }

  it("DPM2 a and DPM++ 2S a with eta 0.5 match the reference's eta 0.5", () => {
    for (const c of CASES.filter((x) => x.label === "DPM2 a" || x.label === "DPM++ 2S a")) {
      const ours = runOurs(c.make({ eta: 0.5 }), 8, new ListNoise(NOISES));
      expect(relMax(ours.x, c.ref(8, 0.5).x), c.label).toBeLessThan(1e-6);
    }
  });

  it("DPM++ 3M SDE with eta 0 is the deterministic DPM++ 3M: the reference's, and no noise drawn", () => {
    const noise = new ListNoise(NOISES);
    const ours = runOurs(DPMPP3MSDEScheduler.fromConfig(X0_CONFIG, { eta: 0 }), 12, noise);
    expect(noise.draws).toBe(0);
    expect(relMax(ours.x, refDpmpp3mSde(refSigmas("exponential", 12, true), 0).x)).toBeLessThan(1e-6);
  });
});

describe("k-diffusion samplers: properties", () => {
  it("DPM2 a with eta 0 is DPM2, whatever the noise", () => {
    const plain = runOurs(DPM2Scheduler.fromConfig(X0_CONFIG), 10, new ListNoise(NOISES)).x;
    const ancestral = runOurs(DPM2AncestralScheduler.fromConfig(X0_CONFIG, { eta: 0 }), 10, new SeededNormal(3)).x;
    expect(Array.from(ancestral)).toEqual(Array.from(plain));
  });

  it("the ancestral and SDE samplers are deterministic given their noise draws, and follow them", () => {
    for (const c of CASES.filter((x) => x.label !== "DPM2")) {
      const a = runOurs(c.make(), 24, new ListNoise(NOISES)).x;
      const b = runOurs(c.make(), 24, new ListNoise(NOISES)).x;
      const other = runOurs(c.make(), 24, new ListNoise(NOISES.slice(50))).x;
      expect(Array.from(a), c.label).toEqual(Array.from(b));
      expect(Array.from(a), c.label).not.toEqual(Array.from(other));
    }
  });

  it("walks A1111's default schedule type for Automatic and the one asked for otherwise", () => {
    const dpm2 = createScheduler("DPM2", SD) as DPM2Scheduler;
    dpm2.setTimesteps(6);
    // First-stage calls sit on the Karras sigmas of 7 steps without the next-to-last (the final 0 is not a call).
    const firstStages = Array.from(dpm2.sigmas).filter((_, i) => i % 2 === 0);
    expect(firstStages).toEqual(refSigmas("karras", 6, true).slice(0, -1));
    const expo = createScheduler("DPM2", SD, { schedule: "Exponential" }) as DPM2Scheduler;
    expo.setTimesteps(6);
    expect(Array.from(expo.sigmas).filter((_, i) => i % 2 === 0)).toEqual(
      refSigmas("exponential", 6, true).slice(0, -1),
    );
    const sde = createScheduler("DPM++ 3M SDE", SD) as DPMPP3MSDEScheduler;
    sde.setTimesteps(6);
    expect(Array.from(sde.sigmas)).toEqual(refSigmas("exponential", 6, true));
    const named = createScheduler("DPM++ 2S a Karras", SD) as DPMPP2SAncestralScheduler;
    expect(named).toBeInstanceOf(DPMPP2SAncestralScheduler);
  });

  it("starts from the walk's first sigma and takes 2n - 1 calls for the two-stage samplers", () => {
    for (const name of ["DPM2", "DPM2 a", "DPM++ 2S a", "Restart"]) {
      for (const steps of [1, 5, 20, 40]) {
        const s = createScheduler(name, SD);
        s.setTimesteps(steps);
        expect(s.timesteps.length, `${name} x${steps}`).toBe(2 * steps - 1);
        expect(s.initNoiseSigma).toBeCloseTo(TABLE[TABLE.length - 1]!, 4);
      }
    }
  });

  it("refuses to add noise without a noise source, saying to pass the seeded generator", () => {
    const s = DPM2AncestralScheduler.fromConfig(SD);
    s.setTimesteps(4);
    const x = new Float32Array(N);
    const first = s.step(x, s.timesteps[0]!, x);
    expect(() => s.step(first, s.timesteps[1]!, first)).toThrow(/pass a NoiseSource/);
  });

  it("starts part-way only at a step's first call, and says which index to use instead", () => {
    const s = DPM2Scheduler.fromConfig(SD);
    s.setTimesteps(6);
    expect(() => s.setBeginIndex(3)).toThrow(/second model call of step 1.*index 2/);
    s.setBeginIndex(4);
    let x = s.addNoise(new Float32Array(N), Float32Array.from(XT), s.timesteps[4]!);
    for (const t of s.timesteps.slice(4)) x = s.step(Float32Array.from(model(Array.from(x), 1)), t, x);
    expect(x.every(Number.isFinite)).toBe(true);
  });

  it("refuses a negative or non-finite eta or s_noise, naming the key", () => {
    expect(() => DPM2AncestralScheduler.fromConfig(SD, { eta: -1 })).toThrow(InputError);
    expect(() => RestartScheduler.fromConfig(SD, { s_noise: Number.NaN })).toThrow(/s_noise/);
  });
});
