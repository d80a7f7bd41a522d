/**
 * The sampler registry: our short names and AUTOMATIC1111's display names, each mapped to a scheduler class and
 * the config overrides that make it that sampler (as one swaps samplers on a loaded pipeline with
 * `Class.from_config(pipe.scheduler.config, **overrides)`).
 */
import { InputError } from "../errors.js";
import { type RawSchedulerConfig, resolveConfig } from "./config.js";
import { DDIMScheduler } from "./ddim.js";
import { DDPMScheduler } from "./ddpm.js";
import { DPMSolverMultistepScheduler } from "./dpm-solver-multistep.js";
import { DPMSolverSDEScheduler } from "./dpm-solver-sde.js";
import { DPM2AncestralScheduler } from "./dpm2-ancestral.js";
import { DPM2Scheduler } from "./dpm2.js";
import { DPMPP2SAncestralScheduler } from "./dpmpp-2s-ancestral.js";
import { DPMPP3MSDEScheduler } from "./dpmpp-3m-sde.js";
import { EulerAncestralDiscreteScheduler } from "./euler-ancestral.js";
import { EulerDiscreteScheduler } from "./euler.js";
import { HeunDiscreteScheduler } from "./heun.js";
import { K_SAMPLER_DEFAULTS, type KSamplerConfig, type KSamplerTraits } from "./k-sampler.js";
import { LCMScheduler } from "./lcm.js";
import { LMSDiscreteScheduler } from "./lms.js";
import type { ChurnKnobs } from "./churn.js";
import type { NoiseKnobs } from "./noise-knobs.js";
import { PNDMScheduler } from "./pndm.js";
import { RestartScheduler } from "./restart.js";
import { RunState } from "./run-state.js";
import {
  findScheduleType,
  listScheduleTypes,
  requireScheduleType,
  type ScheduleType,
  type ScheduleTypeInfo,
} from "./schedule-types.js";
import type { Scheduler } from "./scheduler.js";
import { UniPCMultistepScheduler } from "./unipc.js";

export type { NoiseSource, PredictionType, Scheduler, TimestepSpacing } from "./scheduler.js";
export { parseSchedulerConfigJson, type RawSchedulerConfig } from "./config.js";
export { findScheduleType, listScheduleTypes, requireScheduleType, type ScheduleType, type ScheduleTypeInfo };
export {
  DDIMScheduler,
  DDPMScheduler,
  DPM2AncestralScheduler,
  DPM2Scheduler,
  DPMPP2SAncestralScheduler,
  DPMPP3MSDEScheduler,
  DPMSolverMultistepScheduler,
  DPMSolverSDEScheduler,
  EulerAncestralDiscreteScheduler,
  EulerDiscreteScheduler,
  HeunDiscreteScheduler,
  LCMScheduler,
  LMSDiscreteScheduler,
  PNDMScheduler,
  RestartScheduler,
  UniPCMultistepScheduler,
};

/**
 * The scheduler config of the Stable Diffusion 1.x/2.x checkpoints (their scheduler_config.json), for
 * single-file checkpoints that carry none. SD2 768-v models need prediction_type "v_prediction" on top.
 */
export const STABLE_DIFFUSION_SCHEDULER_CONFIG: RawSchedulerConfig = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  trained_betas: null,
  prediction_type: "epsilon",
  clip_sample: false,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  timestep_spacing: "leading",
});

export interface SamplerInfo {
  /** Our name, as the CLI and API take it. */
  readonly name: string;
  /** AUTOMATIC1111's display name (also accepted). */
  readonly label: string;
  /** Whether it draws fresh noise during sampling (results then depend on the generator beyond the start). */
  readonly stochastic: boolean;
  /** Model calls per step: Heun and DPM++ SDE cost twice as much per step. */
  readonly callsPerStep: number;
  /** The schedule type "Automatic" walks, where A1111 names one for the sampler (its `scheduler` option). */
  readonly defaultSchedule?: ScheduleType;
  /**
   * Where A1111 passes the sampler an eta (its function has one): eta's default there, 1 for the ancestral and SDE
   * samplers (A1111's eta_ancestral), 0 for DDIM (eta_ddim). Absent: eta has no effect on it, as in A1111.
   */
  readonly defaultEta?: number;
  /** A1111 passes it s_noise (its sampler_extra_params), which scales the noise it draws. */
  readonly takesSNoise?: boolean;
  /**
   * A1111 passes it s_churn, s_tmin and s_tmax (Karras et al.'s churn: Euler, Heun, DPM2); s_noise then scales the
   * churn's noise. Others ignore them, as in A1111.
   */
  readonly churns?: boolean;
}

interface Entry extends SamplerInfo {
  create(config: RawSchedulerConfig, knobs: NoiseKnobs, churn: Partial<ChurnKnobs>): Scheduler;
}

/** What an ancestral or SDE sampler's entry says of its noise: eta (default 1) and s_noise, as A1111 passes them. */
const NOISY = { defaultEta: 1, takesSNoise: true } as const;

/** The entry of a k-diffusion-only sampler: its label and default schedule type are what its class says of it. */
function kDiffusionEntry(
  name: string,
  sampler: {
    readonly traits: KSamplerTraits;
    fromConfig(config: RawSchedulerConfig, overrides?: Partial<KSamplerConfig>): Scheduler;
  },
  stochastic: boolean,
  callsPerStep: number,
  noise: Pick<SamplerInfo, "defaultEta" | "takesSNoise" | "churns"> = {},
): Entry {
  const { label, defaultSchedule } = sampler.traits;
  return {
    name,
    label,
    stochastic,
    callsPerStep,
    defaultSchedule,
    ...noise,
    create: (c, k) =>
      sampler.fromConfig(c, {
        ...(noise.defaultEta !== undefined ? { eta: k.eta } : {}),
        ...(noise.takesSNoise ? { s_noise: k.sNoise } : {}),
      }),
  };
}

const SAMPLERS: readonly Entry[] = [
  {
    name: "euler",
    label: "Euler",
    stochastic: false,
    callsPerStep: 1,
    churns: true,
    create: (c, _, churn) => EulerDiscreteScheduler.fromConfig(c, { use_karras_sigmas: false }, churn),
  },
  {
    name: "euler-a",
    label: "Euler a",
    stochastic: true,
    callsPerStep: 1,
    ...NOISY,
    create: (c, k) => EulerAncestralDiscreteScheduler.fromConfig(c, {}, k),
  },
  {
    name: "lms",
    label: "LMS",
    stochastic: false,
    callsPerStep: 1,
    create: (c) => LMSDiscreteScheduler.fromConfig(c, { use_karras_sigmas: false }),
  },
  {
    name: "lms-karras",
    label: "LMS Karras",
    stochastic: false,
    callsPerStep: 1,
    create: (c) => LMSDiscreteScheduler.fromConfig(c, { use_karras_sigmas: true }),
  },
  {
    name: "heun",
    label: "Heun",
    stochastic: false,
    callsPerStep: 2,
    churns: true,
    create: (c, _, churn) => HeunDiscreteScheduler.fromConfig(c, { use_karras_sigmas: false }, churn),
  },
  {
    name: "dpm++2m",
    label: "DPM++ 2M",
    stochastic: false,
    callsPerStep: 1,
    create: (c) =>
      DPMSolverMultistepScheduler.fromConfig(c, {
        algorithm_type: "dpmsolver++",
        solver_order: 2,
        use_karras_sigmas: false,
      }),
  },
  {
    name: "dpm++2m-karras",
    label: "DPM++ 2M Karras",
    stochastic: false,
    callsPerStep: 1,
    create: (c) =>
      DPMSolverMultistepScheduler.fromConfig(c, {
        algorithm_type: "dpmsolver++",
        solver_order: 2,
        use_karras_sigmas: true,
      }),
  },
  {
    name: "dpm++2m-sde",
    label: "DPM++ 2M SDE",
    stochastic: true,
    callsPerStep: 1,
    ...NOISY,
    create: (c, k) =>
      DPMSolverMultistepScheduler.fromConfig(
        c,
        { algorithm_type: "sde-dpmsolver++", solver_order: 2, use_karras_sigmas: false },
        k,
      ),
  },
  {
    name: "dpm++2m-sde-karras",
    label: "DPM++ 2M SDE Karras",
    stochastic: true,
    callsPerStep: 1,
    ...NOISY,
    create: (c, k) =>
      DPMSolverMultistepScheduler.fromConfig(
        c,
        { algorithm_type: "sde-dpmsolver++", solver_order: 2, use_karras_sigmas: true },
        k,
      ),
  },
  {
    name: "dpm++sde",
    label: "DPM++ SDE",
    stochastic: true,
    callsPerStep: 2,
    ...NOISY,
    create: (c, k) => DPMSolverSDEScheduler.fromConfig(c, { use_karras_sigmas: false }, k),
  },
  {
    name: "dpm++sde-karras",
    label: "DPM++ SDE Karras",
    stochastic: true,
    callsPerStep: 2,
    ...NOISY,
    create: (c, k) => DPMSolverSDEScheduler.fromConfig(c, { use_karras_sigmas: true }, k),
  },
  // k-diffusion's samplers that diffusers lacks; "Automatic" is A1111's default schedule type for each.
  {
    ...kDiffusionEntry("dpm2", DPM2Scheduler, false, 2, { churns: true }),
    create: (c, _, churn) => new DPM2Scheduler(resolveConfig(K_SAMPLER_DEFAULTS, c, {}), DPM2Scheduler.traits, churn),
  },
  kDiffusionEntry("dpm2-a", DPM2AncestralScheduler, true, 2, NOISY),
  kDiffusionEntry("dpm++2s-a", DPMPP2SAncestralScheduler, true, 2, NOISY),
  kDiffusionEntry("dpm++3m-sde", DPMPP3MSDEScheduler, true, 1, NOISY),
  kDiffusionEntry("restart", RestartScheduler, true, 2),
  {
    name: "ddim",
    label: "DDIM",
    stochastic: false,
    callsPerStep: 1,
    // A1111's eta_ddim: 0, the deterministic DDIM, unless a request's eta says otherwise.
    defaultEta: 0,
    create: (c, k) => DDIMScheduler.fromConfig(c, {}, { eta: k.eta }),
  },
  // PLMS is PNDM without its Runge-Kutta warm-up, which is how every SD config sets it.
  {
    name: "pndm",
    label: "PLMS",
    stochastic: false,
    callsPerStep: 1,
    create: (c) => PNDMScheduler.fromConfig(c, { skip_prk_steps: true }),
  },
  {
    name: "unipc",
    label: "UniPC",
    stochastic: false,
    callsPerStep: 1,
    create: (c) => UniPCMultistepScheduler.fromConfig(c, { use_karras_sigmas: false }),
  },
  { name: "lcm", label: "LCM", stochastic: true, callsPerStep: 1, create: (c) => LCMScheduler.fromConfig(c) },
  { name: "ddpm", label: "DDPM", stochastic: true, callsPerStep: 1, create: (c) => DDPMScheduler.fromConfig(c) },
];

/** What createScheduler needs besides the sampler's name and the model's scheduler config. */
export interface SchedulerOptions {
  /** A schedule type (A1111's "Schedule type": "Karras", "exponential", ...); absent or "Automatic": the sampler's own. */
  schedule?: string;
  /** The model is SDXL (Align Your Steps has a table of its own for it). */
  sdxl?: boolean;
  /**
   * A1111's eta and s_noise, for the samplers A1111 passes them to (SamplerInfo.defaultEta, takesSNoise); absent:
   * the sampler's defaults. Others ignore them, as A1111 does.
   */
  eta?: number;
  sNoise?: number;
  /** A1111's s_churn, s_tmin, s_tmax for the samplers with churn (SamplerInfo.churns); others ignore them. */
  sChurn?: number;
  sTmin?: number;
  sTmax?: number;
}

/** Every sampler createScheduler accepts, in menu order. */
export function listSamplers(): SamplerInfo[] {
  return SAMPLERS.map(samplerInfo);
}

/** An entry without its factory (and without a default schedule type it does not have). */
function samplerInfo({ create: _, defaultSchedule, ...info }: Entry): SamplerInfo {
  return defaultSchedule === undefined ? info : { ...info, defaultSchedule };
}

/** Looks a sampler up by our name or A1111's label, ignoring case; undefined when unknown. */
export function findSampler(name: string): SamplerInfo | undefined {
  const entry = lookup(name);
  return entry && samplerInfo(entry);
}

/** The samplers that take a schedule type: k-diffusion's (sigma-space and exponential-integrator) ones. */
const SCHEDULABLE = new Set([
  "euler",
  "euler-a",
  "lms",
  "lms-karras",
  "heun",
  "dpm++2m",
  "dpm++2m-karras",
  "dpm++2m-sde",
  "dpm++2m-sde-karras",
  "dpm++sde",
  "dpm++sde-karras",
  "dpm2",
  "dpm2-a",
  "dpm++2s-a",
  "dpm++3m-sde",
  "restart",
]);

/**
 * The schedule types a sampler takes (our name or A1111's label), in A1111's menu order: all of them for the
 * k-diffusion style samplers, only "Automatic" for one that walks its own timestep grid. Throws an InputError
 * for an unknown sampler.
 */
export function scheduleTypesFor(sampler: string): ScheduleTypeInfo[] {
  const types = listScheduleTypes();
  return SCHEDULABLE.has(requireEntry(sampler).name) ? types : types.filter((t) => t.name === "automatic");
}

/**
 * A sampler name and a schedule type as A1111 1.9+ reads them: a name that is not a sampler but ends in a
 * schedule type ("Euler Karras", "DPM++ 2M SGM Uniform") is that sampler with that schedule; an explicit
 * schedule other than "Automatic" wins over the name's. Throws an InputError for an unknown sampler or
 * schedule, or a schedule type for a sampler that has its own timestep grid (DDIM, PLMS, UniPC, LCM, DDPM).
 */
export function resolveSamplerSchedule(
  sampler: string,
  schedule?: string,
): { sampler: SamplerInfo; schedule: ScheduleTypeInfo } {
  let entry = lookup(sampler);
  let fromName: ScheduleTypeInfo | undefined;
  if (!entry) {
    for (const type of listScheduleTypes()) {
      const suffix = [type.label, ...type.aliases].find((s) =>
        sampler.trim().toLowerCase().endsWith(` ${s.toLowerCase()}`),
      );
      const base = suffix && lookup(sampler.trim().slice(0, -(suffix.length + 1)));
      if (base) {
        entry = base;
        fromName = type;
        break;
      }
    }
  }
  entry ??= requireEntry(sampler);
  const explicit = schedule === undefined ? undefined : requireScheduleType(schedule);
  const chosen = explicit && explicit.name !== "automatic" ? explicit : (fromName ?? requireScheduleType("automatic"));
  if (chosen.name !== "automatic" && !SCHEDULABLE.has(entry.name)) {
    const takers = SAMPLERS.filter((s) => SCHEDULABLE.has(s.name)).map((s) => s.label);
    throw new InputError(
      `sampler "${entry.label}" walks its own timestep grid and takes no schedule type ("${chosen.label}" given): ` +
        `use schedule type "Automatic", or one of the samplers ${takers.map((l) => `"${l}"`).join(", ")}`,
    );
  }
  return {
    sampler: samplerInfo(entry),
    schedule: chosen,
  };
}

/** AUTOMATIC1111's display name for a sampler name we accept ("dpm++2m-karras" -> "DPM++ 2M Karras"), for infotext. */
export function samplerDisplayName(name: string): string {
  return requireEntry(name).label;
}

/**
 * A scheduler for `name` (ours, e.g. "dpm++2m-karras", or A1111's, e.g. "DPM++ 2M Karras"; case-insensitive),
 * configured from the model's scheduler_config.json object. Unknown names throw an InputError listing them all.
 */
export function createScheduler(
  name: string,
  config: RawSchedulerConfig = STABLE_DIFFUSION_SCHEDULER_CONFIG,
  options: SchedulerOptions = {},
): Scheduler {
  const { sampler, schedule } = resolveSamplerSchedule(name, options.schedule);
  const entry = requireEntry(sampler.name);
  const knobs: NoiseKnobs = {
    eta: entry.defaultEta === undefined ? 1 : (options.eta ?? entry.defaultEta),
    sNoise: entry.takesSNoise ? (options.sNoise ?? 1) : 1,
  };
  const churn: Partial<ChurnKnobs> = entry.churns
    ? {
        ...(options.sChurn !== undefined ? { sChurn: options.sChurn } : {}),
        ...(options.sTmin !== undefined ? { sTmin: options.sTmin } : {}),
        ...(options.sTmax !== undefined ? { sTmax: options.sTmax } : {}),
        ...(options.sNoise !== undefined ? { sNoise: options.sNoise } : {}),
      }
    : {};
  const scheduler = entry.create(config, knobs, churn);
  if (schedule.name !== "automatic") {
    // Every schedulable sampler's scheduler is a RunState; anything else is a registry mistake, not user input.
    if (!(scheduler instanceof RunState))
      throw new Error(`${sampler.label} is listed as taking schedule types but its scheduler cannot`);
    scheduler.useScheduleType({ type: schedule.name, sdxl: options.sdxl ?? false });
  }
  return scheduler;
}

function requireEntry(name: string): Entry {
  const entry = lookup(name);
  if (entry) return entry;
  throw new InputError(
    `unknown sampler "${name}": use one of ${SAMPLERS.map((s) => s.name).join(", ")} ` +
      `(or the AUTOMATIC1111 names ${SAMPLERS.map((s) => `"${s.label}"`).join(", ")})`,
  );
}

function lookup(name: string): Entry | undefined {
  const key = name.trim().toLowerCase();
  return SAMPLERS.find((s) => s.name === key || s.label.toLowerCase() === key);
}
