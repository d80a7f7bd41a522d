/**
 * The training noise schedule every scheduler starts from: betas and their cumulative product of (1 - beta),
 * reproduced in float32 as the reference builds them, since every sigma and coefficient derives from them.
 */
import { InputError } from "../errors.js";
import { f32, torchCumprodF32, torchLinspaceF32 } from "./numerics.js";

export type BetaSchedule = "linear" | "scaled_linear" | "squaredcos_cap_v2" | "exp" | "sigmoid";

/** The scheduler_config.json keys that define the training schedule. */
export interface BetaConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: BetaSchedule;
  trained_betas: readonly number[] | null;
}

export interface TrainingSchedule {
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
}

/**
 * Betas and alphas_cumprod for a config. `allowed` is the set of beta_schedule values the calling scheduler
 * accepts in the reference (they differ a little between classes); `rescaleZeroSnr` applies
 * rescale_betas_zero_snr (Lin et al. 2023, algorithm 1).
 */
export function trainingSchedule(
  config: BetaConfig,
  allowed: readonly BetaSchedule[],
  rescaleZeroSnr = false,
): TrainingSchedule {
  let betas = makeBetas(config, allowed);
  if (rescaleZeroSnr) betas = rescaleZeroTerminalSnr(betas);
  const alphas = betas.map((b) => f32(1 - b));
  return { betas, alphasCumprod: torchCumprodF32(alphas) };
}

function makeBetas(config: BetaConfig, allowed: readonly BetaSchedule[]): Float32Array {
  const n = config.num_train_timesteps;
  if (!Number.isInteger(n) || n < 2) {
    throw new InputError(`num_train_timesteps must be an integer >= 2, got ${n}: check scheduler_config.json`);
  }
  if (config.trained_betas != null) {
    if (config.trained_betas.length !== n) {
      throw new InputError(
        `trained_betas has ${config.trained_betas.length} entries but num_train_timesteps is ${n}: make them agree in scheduler_config.json`,
      );
    }
    return Float32Array.from(config.trained_betas);
  }
  const schedule = config.beta_schedule;
  if (!allowed.includes(schedule)) {
    throw new InputError(
      `beta_schedule "${schedule}" is not supported by this scheduler: use one of ${allowed.join(", ")}`,
    );
  }
  switch (schedule) {
    case "linear":
      return torchLinspaceF32(config.beta_start, config.beta_end, n);
    case "scaled_linear":
      // Latent diffusion's schedule: linear in sqrt(beta), squared in float32.
      return torchLinspaceF32(Math.sqrt(config.beta_start), Math.sqrt(config.beta_end), n).map((x) => f32(x * x));
    case "squaredcos_cap_v2":
      return betasForAlphaBar(n, (t) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2);
    case "exp":
      return betasForAlphaBar(n, (t) => Math.exp(t * -12.0));
    case "sigmoid": {
      const range = f32(config.beta_end - config.beta_start);
      const start = f32(config.beta_start);
      return torchLinspaceF32(-6, 6, n).map((x) => f32(f32(f32(1 / (1 + Math.exp(-x))) * range) + start));
    }
    default:
      throw new InputError(`unknown beta_schedule "${String(schedule)}": use one of ${allowed.join(", ")}`);
  }
}

/** Betas that discretise a continuous alpha_bar(t), t in [0, 1], capped at 0.999 to keep the last step finite. */
function betasForAlphaBar(n: number, alphaBar: (t: number) => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), 0.999);
  return out;
}

/** Shifts and rescales sqrt(alphas_cumprod) so the last timestep has zero SNR, in float32 like the reference. */
function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const n = betas.length;
  const sqrtBar = torchCumprodF32(betas.map((b) => f32(1 - b))).map((a) => f32(Math.sqrt(a)));
  const first = sqrtBar[0];
  const last = sqrtBar[n - 1];
  const scale = f32(first / f32(first - last));
  const bar = sqrtBar.map((s) => {
    const shifted = f32(f32(s - last) * scale);
    return f32(shifted * shifted);
  });
  const out = new Float32Array(n);
  out[0] = f32(1 - bar[0]);
  for (let i = 1; i < n; i++) out[i] = f32(1 - f32(bar[i] / bar[i - 1]));
  return out;
}
