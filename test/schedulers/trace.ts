/**
 * Replays a reference scheduler trace (goldens/schedulers/traces/<name>): the same fixed model outputs fed
 * through our scheduler, compared after every call. Our sample is carried from step to step, so errors would
 * accumulate rather than be reset by the reference's values.
 */
import { readFileSync } from "node:fs";
import { expect } from "vitest";
import { parseSchedulerConfigJson, type RawSchedulerConfig } from "../../src/schedulers/config.js";
import type { NoiseSource, Scheduler } from "../../src/schedulers/scheduler.js";
import { golden, ref, relErr } from "../helpers/fixtures.js";

export const TOLERANCE = 1e-6;

export interface Trace {
  name: string;
  config: RawSchedulerConfig;
  steps: number;
  calls: number;
  order: number;
  initNoiseSigma: number;
  noiseDrawnAtStep: boolean[];
  /** A tensor by name (int64 tensors converted to numbers). */
  get(name: string): Float64Array | Float32Array;
  has(name: string): boolean;
  /** Entry `i` of a tensor stacked along its first axis. */
  slice(name: string, i: number): Float32Array;
}

export function loadTrace(name: string): Trace {
  const meta = parseSchedulerConfigJson(
    readFileSync(ref("goldens/schedulers/traces", `${name}.json`), "utf8"),
  ) as Record<string, any>;
  const g = golden("goldens/schedulers/traces", `${name}.safetensors`);
  const tensors = meta.tensors as Record<string, { shape: number[]; dtype: string }>;
  const get = (t: string): Float64Array | Float32Array =>
    tensors[t]!.dtype === "int64" ? Float64Array.from(g.ints(t), Number) : g.get(t);
  return {
    name,
    config: meta.config as RawSchedulerConfig,
    steps: meta.num_inference_steps as number,
    calls: meta.num_model_calls as number,
    order: meta.order as number,
    initNoiseSigma: meta.init_noise_sigma as number,
    noiseDrawnAtStep: meta.noise_drawn_at_step as boolean[],
    get,
    has: (t) => t in tensors,
    slice(t, i) {
      const shape = tensors[t]!.shape;
      const n = shape.slice(1).reduce((a, b) => a * b, 1);
      return g.get(t).slice(i * n, (i + 1) * n);
    },
  };
}

/** Hands out the trace's recorded step noises in order, standing in for the seeded torch generator. */
export class RecordedNoise implements NoiseSource {
  draws = 0;
  private next = 0;
  constructor(private readonly noises: Float32Array[]) {}
  randn(shape: readonly number[]): Float32Array {
    const n = shape.reduce((a, b) => a * b, 1);
    const noise = this.noises[this.next++];
    if (!noise) throw new Error(`scheduler drew noise ${this.next} times; the trace recorded ${this.noises.length}`);
    expect(noise.length).toBe(n);
    this.draws++;
    return noise;
  }
}

/** The recorded noises of the steps that drew one (noise_drawn_at_step), in order. */
export function recordedNoise(trace: Trace): RecordedNoise {
  const noises: Float32Array[] = [];
  trace.noiseDrawnAtStep.forEach((drawn, i) => {
    if (drawn) noises.push(trace.slice("step_noises", i));
  });
  return new RecordedNoise(noises);
}

export function expectClose(
  ours: ArrayLike<number>,
  reference: ArrayLike<number>,
  what: string,
  tol = TOLERANCE,
): void {
  const err = relErr(ours, reference);
  expect(err, `${what}: relative error ${err.toExponential(2)}`).toBeLessThan(tol);
}

/**
 * Timesteps equal, up to one float32 ulp at t~1000 (6.1e-5) for fractional ones: the reference maps Karras
 * sigmas back to timesteps through numpy's float32 log, whose last bit can differ from ours.
 */
export function expectTimesteps(ours: ArrayLike<number>, reference: ArrayLike<number>, what: string): void {
  expect(ours.length, `${what}: number of timesteps`).toBe(reference.length);
  for (let i = 0; i < reference.length; i++) {
    expect(
      Math.abs(ours[i]! - reference[i]!),
      `${what}: timestep ${i} is ${ours[i]}, reference ${reference[i]}`,
    ).toBeLessThanOrEqual(1e-4);
  }
}

/** Replays the whole trace through `make(config)` and checks every recorded tensor. */
export function replayTrace(
  trace: Trace,
  make: (config: RawSchedulerConfig) => Scheduler & { sigmas?: ArrayLike<number> },
): void {
  const s = make(trace.config);
  s.setTimesteps(trace.steps);
  expect(s.order).toBe(trace.order);
  expectTimesteps(s.timesteps, trace.get("timesteps"), `${trace.name} timesteps`);
  if (trace.has("sigmas")) expectClose(s.sigmas!, trace.get("sigmas"), `${trace.name} sigmas`);
  expect(Math.abs(s.initNoiseSigma - trace.initNoiseSigma)).toBeLessThanOrEqual(trace.initNoiseSigma * 1e-7);

  const unscaled = trace.get("x_unscaled");
  let x: Float32Array = Float32Array.from(unscaled, (v) => v * s.initNoiseSigma);
  expectClose(x, trace.get("x_init"), `${trace.name} x_init`);
  const noise = trace.has("step_noises") ? recordedNoise(trace) : undefined;
  expect(s.timesteps.length).toBe(trace.calls);
  s.timesteps.forEach((t, i) => {
    expectClose(s.scaleModelInput(x, t), trace.slice("scaled_model_inputs", i), `${trace.name} scaled input ${i}`);
    x = s.step(trace.slice("model_outputs", i), t, x, noise);
    expectClose(x, trace.slice("prev_samples", i), `${trace.name} prev_sample ${i}`);
  });
  if (noise) expect(noise.draws).toBe(trace.noiseDrawnAtStep.filter(Boolean).length);

  const addNoiseTimesteps = trace.get("add_noise_timesteps");
  addNoiseTimesteps.forEach((t, j) => {
    const fresh = make(trace.config);
    fresh.setTimesteps(trace.steps);
    const out = fresh.addNoise(trace.slice("add_noise_x0", 0), trace.slice("add_noise_noise", 0), t);
    expectClose(out, trace.slice("add_noise_out", j), `${trace.name} add_noise at t=${t}`);
  });
}

/**
 * Starts the trace's run part-way, as img2img does: setBeginIndex(start), the sample the reference had reached,
 * then the remaining calls. Only for schedulers whose steps carry no history.
 */
export function resumeTrace(
  trace: Trace,
  make: (config: RawSchedulerConfig) => Scheduler & { sigmas?: ArrayLike<number> },
  start: number,
): void {
  const s = make(trace.config);
  s.setTimesteps(trace.steps);
  s.setBeginIndex(start);
  // addNoise before the first step noises to the begin index's level (img2img's initial latents).
  const x0 = trace.slice("add_noise_x0", 0);
  const n = trace.slice("add_noise_noise", 0);
  const noised = s.addNoise(x0, n, s.timesteps[start]!);
  const fresh = make(trace.config);
  fresh.setTimesteps(trace.steps);
  expectClose(noised, fresh.addNoise(x0, n, s.timesteps[start]!), `${trace.name} addNoise at begin index ${start}`);
  let x: Float32Array = trace.slice("prev_samples", start - 1);
  for (let i = start; i < s.timesteps.length; i++) {
    const t = s.timesteps[i]!;
    expectClose(
      s.scaleModelInput(x, t),
      trace.slice("scaled_model_inputs", i),
      `${trace.name} resumed scaled input ${i}`,
    );
    x = s.step(trace.slice("model_outputs", i), t, x);
    expectClose(x, trace.slice("prev_samples", i), `${trace.name} resumed prev_sample ${i}`);
  }
}
