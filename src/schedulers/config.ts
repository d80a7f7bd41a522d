/**
 * Reading scheduler_config.json objects: the reference's `Class.from_config(config, **overrides)` semantics.
 *
 * A config written for one scheduler class is routinely loaded into another (a user swapping samplers on an SD
 * pipeline), so keys the target does not know are ignored, and keys the writer listed in `_use_default_values`
 * (it never set them) fall back to the target's own defaults rather than the writer's.
 */
import { InputError } from "../errors.js";
import { trainingSchedule, type BetaConfig, type BetaSchedule } from "./betas.js";

/** A scheduler_config.json object as parsed, before validation. */
export type RawSchedulerConfig = Readonly<Record<string, unknown>>;

/**
 * `defaults` overlaid with the known keys of `config`, then with `overrides`. A value whose JSON type differs
 * from the default's (a string where a number belongs) is an InputError naming the key; `null` for a key whose
 * default is not null means "use the default", as the reference's Optional arguments do.
 */
export function resolveConfig<T extends object>(
  defaults: Readonly<T>,
  config: RawSchedulerConfig = {},
  overrides?: Readonly<Partial<T>>,
): T {
  const usedDefaults = new Set(
    Array.isArray(config._use_default_values) ? (config._use_default_values as unknown[]) : [],
  );
  const known: Readonly<Record<string, unknown>> = defaults;
  const out: Record<string, unknown> = { ...known };
  for (const source of [config, (overrides ?? {}) as RawSchedulerConfig]) {
    for (const [key, value] of Object.entries(source)) {
      if (key.startsWith("_") || !(key in known) || value === undefined) continue;
      if (source === config && usedDefaults.has(key)) continue;
      out[key] = checkValue(key, value, known[key]);
    }
  }
  return out as T;
}

function checkValue(key: string, value: unknown, fallback: unknown): unknown {
  if (value === null) return fallback;
  if (fallback === null) return value; // Optional in the reference: any JSON value, checked where it is used.
  const want = Array.isArray(fallback) ? "array" : typeof fallback;
  const got = Array.isArray(value) ? "array" : typeof value;
  if (want !== got) {
    throw new InputError(
      `scheduler config "${key}" should be a ${want}, got ${JSON.stringify(value)}: fix it in scheduler_config.json or the override`,
    );
  }
  return value;
}

/** Throws an InputError unless `value` is one of `allowed`. */
export function checkOneOf<T extends string>(key: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value === "string" && (allowed as readonly string[]).includes(value)) return value as T;
  throw new InputError(
    `scheduler config "${key}" is ${JSON.stringify(value)}; supported values are ${allowed.map((a) => `"${a}"`).join(", ")}`,
  );
}

/** Throws an InputError for a config option this port does not implement, saying what to set instead. */
export function unsupported(scheduler: string, key: string, value: unknown, instead: string): never {
  throw new InputError(`${scheduler}: ${key}=${JSON.stringify(value)} is not supported here; set ${instead}`);
}

/** DDPM's linear training betas: the training-schedule defaults of most of the reference's classes. */
export const LINEAR_BETAS: Readonly<BetaConfig> = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null,
});

/** Latent diffusion's beta range with linear spacing: the defaults of the k-diffusion ports (Heun, DPM++ SDE). */
export const LDM_LINEAR_BETAS: Readonly<BetaConfig> = Object.freeze({
  ...LINEAR_BETAS,
  beta_start: 0.00085,
  beta_end: 0.012,
});

/** The reference's alternative sigma schedules, all off by default (use_exponential/beta_sigmas are refused here). */
export const SIGMA_SCHEDULE_FLAGS = Object.freeze({
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
});

/** Dynamic thresholding, off by default; it is for pixel-space models, so it is refused when on. */
export const THRESHOLDING_OFF = Object.freeze({
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
});

/** What a scheduler class accepts beyond its config's JSON types. */
export interface SchedulerRules {
  /** The reference's class name, for messages. */
  name: string;
  betaSchedules: readonly BetaSchedule[];
  /** Prediction types the class implements (all three unless said). */
  predictions?: readonly string[];
  /** With rescale_betas_zero_snr, set the last alphas_cumprod to fp16's smallest subnormal as the sigma-space classes do. */
  nudgeZeroSnr?: boolean;
  /** Config keys the class keeps for compatibility but never reads, so they are not checked. */
  unread?: readonly string[];
}

/**
 * The constructor work every scheduler class shares: `defaults` overlaid with `partial`, the common keys checked
 * (each only where the class has it), and the training alphas_cumprod built. The class checks its own keys.
 */
export function setUpScheduler<T extends BetaConfig>(
  defaults: Readonly<T>,
  partial: Readonly<Partial<T>>,
  rules: SchedulerRules,
): { config: T; alphasCumprod: Float32Array } {
  const config = resolveConfig(defaults, {}, partial);
  const c = config as unknown as Readonly<Record<string, unknown>>;
  const has = (key: string): boolean => key in c && !(rules.unread ?? []).includes(key);
  if (has("timestep_spacing")) checkOneOf("timestep_spacing", c.timestep_spacing, ["leading", "linspace", "trailing"]);
  if (has("prediction_type"))
    checkOneOf("prediction_type", c.prediction_type, rules.predictions ?? ["epsilon", "v_prediction", "sample"]);
  if (has("final_sigmas_type")) checkOneOf("final_sigmas_type", c.final_sigmas_type, ["zero", "sigma_min"]);
  if (c.thresholding === true)
    unsupported(
      rules.name,
      "thresholding",
      true,
      "thresholding false (dynamic thresholding is for pixel-space models)",
    );
  for (const key of ["use_exponential_sigmas", "use_beta_sigmas"]) {
    if (c[key] === true) unsupported(rules.name, key, true, "use_karras_sigmas or the default schedule");
  }
  const rescale = c.rescale_betas_zero_snr === true;
  const alphasCumprod = trainingSchedule(config, rules.betaSchedules, rescale).alphasCumprod;
  // Zero terminal SNR would make the first sigma infinite; the reference nudges it to fp16's smallest subnormal.
  if (rescale && rules.nudgeZeroSnr) alphasCumprod[alphasCumprod.length - 1] = 2 ** -24;
  return { config, alphasCumprod };
}

/**
 * JSON.parse for scheduler_config.json files, which Python writes with bare `NaN`, `Infinity` and `-Infinity`
 * (DPMSolverMultistepScheduler's `lambda_min_clipped` defaults to -inf). `source` names the file in errors.
 */
export function parseSchedulerConfigJson(text: string, source = "scheduler_config.json"): RawSchedulerConfig {
  const marker = "\u0000pyfloat:";
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === "\\") out += text[++i] ?? "";
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    const word = /^(-?Infinity|NaN)/.exec(text.slice(i, i + 9));
    if (!inString && word) {
      out += JSON.stringify(marker + word[1]);
      i += word[1].length - 1;
      continue;
    }
    out += c;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(out, (_key, v: unknown) =>
      typeof v === "string" && v.startsWith(marker) ? Number(v.slice(marker.length)) : v,
    );
  } catch (e) {
    throw new InputError(
      `${source} is not valid JSON (${(e as Error).message}): re-download the model's scheduler folder`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new InputError(`${source} must hold a JSON object: re-download the model's scheduler folder`);
  }
  return parsed as RawSchedulerConfig;
}
