/**
 * Schedule types: A1111's (1.9+) separate choice of where a sigma-space sampler puts its noise levels, as
 * k-diffusion's get_sigmas_* functions and A1111's sd_schedulers.py compute them from the model's training
 * sigmas. Each returns the sequence the sampler walks, its final entry included (0 for every type but
 * KL Optimal, which ends at the smallest training sigma). Values are float32, computed in float32 where the
 * reference computes on float32 tensors and in double where it uses Python floats or numpy.
 */
import { InputError } from "../errors.js";
import { betaQuantile } from "./beta-distribution.js";
import { f32, npLinspace, torchLinspaceF32 } from "./numerics.js";

export type ScheduleType =
  | "automatic"
  | "uniform"
  | "karras"
  | "exponential"
  | "polyexponential"
  | "sgm_uniform"
  | "kl_optimal"
  | "align_your_steps"
  | "simple"
  | "normal"
  | "ddim"
  | "beta";

export interface ScheduleTypeInfo {
  /** A1111's internal name (`scheduler` in its API accepts it as well as the label). */
  readonly name: ScheduleType;
  /** A1111's display name, as the infotext's "Schedule type" writes it. */
  readonly label: string;
  readonly aliases: readonly string[];
}

const TYPES: readonly ScheduleTypeInfo[] = [
  { name: "automatic", label: "Automatic", aliases: [] },
  { name: "uniform", label: "Uniform", aliases: [] },
  { name: "karras", label: "Karras", aliases: [] },
  { name: "exponential", label: "Exponential", aliases: [] },
  { name: "polyexponential", label: "Polyexponential", aliases: [] },
  { name: "sgm_uniform", label: "SGM Uniform", aliases: ["SGMUniform"] },
  { name: "kl_optimal", label: "KL Optimal", aliases: [] },
  { name: "align_your_steps", label: "Align Your Steps", aliases: [] },
  { name: "simple", label: "Simple", aliases: [] },
  { name: "normal", label: "Normal", aliases: [] },
  { name: "ddim", label: "DDIM", aliases: [] },
  { name: "beta", label: "Beta", aliases: [] },
];

/** Every schedule type, in A1111's menu order. */
export function listScheduleTypes(): ScheduleTypeInfo[] {
  return [...TYPES];
}

/** Spellings compare without case, spaces, dashes or underscores: "SGM Uniform", "sgm_uniform", "sgm-uniform". */
function key(name: string): string {
  return name.toLowerCase().replace(/[\s_-]+/g, "");
}

/** The schedule type a name (A1111's label, its internal name or an alias) means; undefined when unknown. */
export function findScheduleType(name: string): ScheduleTypeInfo | undefined {
  const k = key(name);
  return TYPES.find((t) => key(t.name) === k || key(t.label) === k || t.aliases.some((a) => key(a) === k));
}

/** findScheduleType, or an InputError that lists the valid names. */
export function requireScheduleType(name: string): ScheduleTypeInfo {
  const found = findScheduleType(name);
  if (found) return found;
  throw new InputError(
    `unknown schedule type ${JSON.stringify(name)}: use one of ${TYPES.map((t) => `"${t.label}"`).join(", ")}`,
  );
}

/** What a schedule needs of the model besides the step count. */
export interface ScheduleModel {
  /** The training sigmas, float32, ascending (sqrt((1 - abar) / abar) per training timestep). */
  readonly sigmas: Float32Array;
  /** Align Your Steps has one table for SDXL and one for everything else (SD 1.5's). */
  readonly sdxl: boolean;
}

/** The Beta schedule's distribution: A1111's defaults (beta_dist_alpha, beta_dist_beta). */
const BETA_ALPHA = 0.6;
const BETA_BETA = 0.6;

/** NVIDIA's Align Your Steps 10-step sigmas (research.nvidia.com/labs/toronto-ai/AlignYourSteps), noisiest first. */
const AYS_SD15 = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029];
const AYS_SDXL = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.38, 0.234, 0.113, 0.029];

/**
 * The sigmas of schedule `type` for `n` steps, noisiest first, the final one included. "automatic" has none of
 * its own (the sampler's schedule applies) and is refused here. The DDIM type takes every
 * floor(1000 / n)-th training sigma, which for some n gives one step more than asked, as in A1111.
 */
export function scheduleSigmas(type: ScheduleType, n: number, model: ScheduleModel): Float64Array {
  if (!Number.isInteger(n) || n < 1) throw new InputError(`steps must be a positive integer, got ${n}`);
  const table = model.sigmas;
  const logs = table.map((s) => f32(Math.log(s)));
  const sigmaMin = table[0];
  const sigmaMax = table[table.length - 1];
  const withZero = (values: ArrayLike<number>): Float64Array => {
    const out = new Float64Array(values.length + 1);
    for (let i = 0; i < values.length; i++) out[i] = f32(values[i]);
    return out;
  };
  switch (type) {
    case "uniform":
      // k-diffusion's DiscreteSchedule.get_sigmas: evenly spaced over the training timesteps, log-interpolated.
      return withZero(Array.from(torchLinspaceF32(table.length - 1, 0, n), (t) => tToSigma(t, logs)));
    case "karras": {
      const rho = 7;
      const minInv = sigmaMin ** (1 / rho);
      const maxInv = sigmaMax ** (1 / rho);
      const span = f32(minInv - maxInv);
      return withZero(Array.from(torchLinspaceF32(0, 1, n), (r) => f32(f32(f32(maxInv) + f32(r * span)) ** rho)));
    }
    case "exponential":
      return withZero(Array.from(torchLinspaceF32(Math.log(sigmaMax), Math.log(sigmaMin), n), (l) => f32(Math.exp(l))));
    case "polyexponential": {
      // rho = 1 (A1111's default for this type), so the ramp is used as is.
      const logMin = f32(Math.log(sigmaMin));
      const span = f32(Math.log(sigmaMax) - Math.log(sigmaMin));
      return withZero(Array.from(torchLinspaceF32(1, 0, n), (r) => f32(Math.exp(f32(f32(r * span) + logMin)))));
    }
    case "sgm_uniform":
    case "normal": {
      // Evenly spaced in (fractional) timestep between the ends' timesteps; SGM leaves out the last point.
      const start = sigmaToT(sigmaMax, logs);
      const end = sigmaToT(sigmaMin, logs);
      const ts =
        type === "sgm_uniform" ? torchLinspaceF32(start, end, n + 1).subarray(0, n) : torchLinspaceF32(start, end, n);
      return withZero(Array.from(ts, (t) => tToSigma(t, logs)));
    }
    case "kl_optimal": {
      const alphaMin = f32(Math.atan(sigmaMin));
      const alphaMax = f32(Math.atan(sigmaMax));
      return Float64Array.from({ length: n + 1 }, (_, i) => {
        const r = f32(i / n);
        return f32(Math.tan(f32(f32(r * alphaMin) + f32(f32(1 - r) * alphaMax))));
      });
    }
    case "align_your_steps": {
      const steps = model.sdxl ? AYS_SDXL : AYS_SD15;
      if (n === steps.length) return withZero(steps);
      // Log-linear interpolation of the 10-step table to n points (NVIDIA's recipe), in double as numpy.
      const xs = npLinspace(0, 1, steps.length);
      const ys = [...steps].reverse().map(Math.log);
      const interpolated = Array.from(npLinspace(0, 1, n), (x) => Math.exp(interp(x, xs, ys)));
      return withZero(interpolated.reverse());
    }
    case "simple": {
      const stride = table.length / n;
      return withZero(Array.from({ length: n }, (_, x) => table[table.length - 1 - Math.trunc(x * stride)]));
    }
    case "ddim": {
      const stride = Math.max(Math.floor(table.length / n), 1);
      const picked: number[] = [];
      for (let x = 1; x < table.length; x += stride) picked.push(table[x]);
      return withZero(picked.reverse());
    }
    case "beta": {
      const span = sigmaMax - sigmaMin;
      return withZero(
        Array.from(npLinspace(0, 1, n), (p) => sigmaMin + betaQuantile(1 - p, BETA_ALPHA, BETA_BETA) * span),
      );
    }
    case "automatic":
      throw new InputError('schedule type "Automatic" has no sigmas of its own: the sampler\'s own schedule applies');
  }
}

/** k-diffusion's t_to_sigma in float32: log sigma interpolated linearly between the two training steps around t. */
function tToSigma(t: number, logs: Float32Array): number {
  const low = Math.floor(t);
  const high = Math.ceil(t);
  const w = f32(t - low);
  return f32(Math.exp(f32(f32(f32(1 - w) * logs[low]) + f32(w * logs[high]))));
}

/** k-diffusion's sigma_to_t in float32: the fractional timestep of a sigma, by the same log interpolation. */
function sigmaToT(sigma: number, logs: Float32Array): number {
  const logSigma = f32(Math.log(f32(sigma)));
  let low = 0;
  for (let i = 0; i < logs.length; i++) if (logSigma - logs[i] >= 0) low = i;
  low = Math.min(low, logs.length - 2);
  const w = Math.min(Math.max(f32(f32(logs[low] - logSigma) / f32(logs[low] - logs[low + 1])), 0), 1);
  return f32(f32(f32(1 - w) * low) + f32(w * (low + 1)));
}

/** numpy.interp for increasing xs. */
function interp(x: number, xs: ArrayLike<number>, ys: ArrayLike<number>): number {
  if (x <= xs[0]) return ys[0];
  const last = xs.length - 1;
  if (x >= xs[last]) return ys[last];
  let i = 0;
  while (xs[i + 1] < x) i++;
  const w = (x - xs[i]) / (xs[i + 1] - xs[i]);
  return ys[i] + w * (ys[i + 1] - ys[i]);
}
