import type {
  ControlNetUnit,
  GenerateParams,
  HiresParams,
  InpaintOptions,
  ResolvedControlUnit,
  ResolvedHires,
  ResolvedParams,
} from "../pipeline/params.js";
import { resolveSamplerKnobs } from "../pipeline/sampler-knobs.js";
import { randomSeed, seedToJson } from "../random/seed.js";
import { findScheduleType } from "../schedulers/index.js";
import type { ControlNetUnitParams, GenerationParams, JobParams, JobType, JsonSeed } from "./api-types.js";
import { controlNetPath } from "./controlnet-models.js";
import { findVae } from "./vae-files.js";
import type { Uploads } from "./store.js";

/**
 * A seed fixed at acceptance: the job's record then says which image it will make, and a job re-run after a
 * crash makes the same one.
 */
export function resolveSeed(seed: JsonSeed | undefined): JsonSeed {
  // Validated already (SeedRequest): -1 is the only value below 0.
  if (seed !== undefined && seed !== -1) return seed;
  return seedToJson(randomSeed());
}

/** A mask's options, recorded with an inpaint job only. */
const INPAINT_KEYS = [
  "mask_blur",
  "mask_blur_x",
  "mask_blur_y",
  "inpainting_mask_invert",
  "inpainting_fill",
  "inpaint_full_res",
  "inpaint_full_res_padding",
] as const;

/** What a job records at acceptance: the request's generation fields, the seed fixed, the uploads summarised. */
export function jobParamsOf(type: JobType, p: GenerationParams, uploads: Uploads): JobParams {
  const out: JobParams = {
    type,
    prompt: p.prompt,
    seed: resolveSeed(p.seed),
    // A random variation seed is fixed at acceptance too, when a variation is asked for.
    ...(p.subseed_strength ? { subseed: resolveSeed(p.subseed) } : {}),
    has_init_image: uploads.initImage !== undefined,
    has_mask: uploads.mask !== undefined,
  };
  const optional = [
    "negative_prompt",
    "prompt_2",
    "negative_prompt_2",
    "steps",
    "cfg_scale",
    "sampler_name",
    "scheduler",
    "width",
    "height",
    "batch_size",
    "n_iter",
    "denoising_strength",
    "clip_skip",
    "refiner_switch_at",
    "controlnet",
    "subseed_strength",
    "seed_resize_from_w",
    "seed_resize_from_h",
    "enable_hr",
    "hr_scale",
    "hr_resize_x",
    "hr_resize_y",
    "hr_upscaler",
    "hr_second_pass_steps",
    "hr_prompt",
    "hr_negative_prompt",
    "hr_sampler_name",
    "hr_scheduler",
    "sd_vae",
    "eta",
    "s_noise",
    "s_churn",
    "s_tmin",
    "s_tmax",
    "eta_noise_seed_delta",
    ...(uploads.mask !== undefined ? INPAINT_KEYS : []),
  ] as const;
  for (const key of optional) if (p[key] !== undefined) (out as Record<string, unknown>)[key] = p[key];
  return out;
}

/**
 * The engine's parameters for a stored job. Its ControlNets, recorded by title, are found in `controlnetDirs` (the
 * server's); without them the title stands as the model (enough to check the parameters). Its VAE, recorded by name,
 * is found in `vaeDirs`; without them it is left out (it changes no parameter).
 */
export function generateParamsOf(
  p: JobParams,
  uploads: Uploads,
  controlnetDirs?: readonly string[],
  vaeDirs?: readonly string[],
): GenerateParams {
  return {
    prompt: p.prompt,
    negativePrompt: p.negative_prompt,
    prompt2: p.prompt_2,
    negativePrompt2: p.negative_prompt_2,
    steps: p.steps,
    cfgScale: p.cfg_scale,
    seed: p.seed,
    sampler: p.sampler_name,
    schedule: p.scheduler,
    width: p.width,
    height: p.height,
    batchSize: p.batch_size,
    batchCount: p.n_iter,
    clipSkip: p.clip_skip,
    refinerSwitchAt: p.refiner_switch_at,
    ...(p.subseed !== undefined ? { subseed: p.subseed } : {}),
    ...(p.subseed_strength !== undefined ? { subseedStrength: p.subseed_strength } : {}),
    ...(p.seed_resize_from_w !== undefined ? { seedResizeFromW: p.seed_resize_from_w } : {}),
    ...(p.seed_resize_from_h !== undefined ? { seedResizeFromH: p.seed_resize_from_h } : {}),
    ...samplerKnobsOf(p),
    ...(p.enable_hr ? { hires: hiresOf(p) } : {}),
    denoisingStrength: uploads.initImage === undefined ? undefined : p.denoising_strength,
    initImage: uploads.initImage,
    mask: uploads.mask,
    ...(uploads.mask !== undefined ? inpaintOptionsOf(p) : {}),
    ...(p.sd_vae !== undefined && vaeDirs ? vaeOf(p.sd_vae, vaeDirs) : {}),
    ...(p.controlnet?.length
      ? { controlnet: p.controlnet.map((u, i) => controlUnitOf(u, uploads.controlImages?.[i], controlnetDirs)) }
      : {}),
  };
}

/**
 * The job's sampler knobs checked at acceptance, so an ENSD past the last seed is refused before the job is queued.
 * Throws the library's InputError, whose message names the field.
 */
export function checkSamplerKnobs(p: JobParams): void {
  const images = BigInt((p.batch_size ?? 1) * (p.n_iter ?? 1) - 1);
  resolveSamplerKnobs(samplerKnobsOf(p), BigInt(p.seed) + (p.subseed_strength ? 0n : images));
}

/** A1111's sampler knobs (eta, s_noise, s_churn, s_tmin, s_tmax, ENSD) under the library's names, those given. */
function samplerKnobsOf(p: JobParams): Partial<GenerateParams> {
  const knobs: Partial<GenerateParams> = {
    eta: p.eta,
    sNoise: p.s_noise,
    sChurn: p.s_churn,
    sTmin: p.s_tmin,
    sTmax: p.s_tmax,
    etaNoiseSeedDelta: p.eta_noise_seed_delta,
  };
  return Object.fromEntries(Object.entries(knobs).filter(([, v]) => v !== undefined));
}

/** A1111's hr_* fields as the library's hires fix; the job's denoising_strength is the second pass's. */
function hiresOf(p: JobParams): HiresParams {
  const hires: HiresParams = {
    scale: p.hr_scale,
    resizeX: p.hr_resize_x,
    resizeY: p.hr_resize_y,
    upscaler: p.hr_upscaler,
    steps: p.hr_second_pass_steps,
    denoisingStrength: p.denoising_strength,
    prompt: p.hr_prompt,
    negativePrompt: p.hr_negative_prompt,
    sampler: p.hr_sampler_name,
    schedule: p.hr_scheduler,
  };
  return Object.fromEntries(Object.entries(hires).filter(([, v]) => v !== undefined)) as HiresParams;
}

/** The VAE a job names, found in the server's VAE folders; one gone since acceptance fails the job naming it. */
function vaeOf(name: string, dirs: readonly string[]): Pick<GenerateParams, "vae"> {
  const { found, vae } = findVae(dirs, name);
  if (!found) return { vae: name };
  return vae === undefined ? {} : { vae };
}

function inpaintOptionsOf(p: JobParams): Partial<GenerateParams> {
  return {
    maskBlur: p.mask_blur,
    maskBlurX: p.mask_blur_x,
    maskBlurY: p.mask_blur_y,
    invertMask: p.inpainting_mask_invert,
    inpaintingFill: p.inpainting_fill,
    inpaintFullRes: p.inpaint_full_res,
    inpaintFullResPadding: p.inpaint_full_res_padding,
  };
}

function controlUnitOf(
  u: ControlNetUnitParams,
  image: Uint8Array | undefined,
  dirs: readonly string[] | undefined,
): ControlNetUnit {
  // A missing image (never stored so) is left to the pipeline's check, which names the unit. The stored unit's
  // A1111 names map one by one onto the library's (a spread would carry them over unchecked).
  const unit: ControlNetUnit = {
    image: image as Uint8Array,
    model: dirs ? controlNetPath(dirs, u.model) : u.model,
    module: u.module,
    weight: u.weight,
    guidanceStart: u.guidance_start,
    guidanceEnd: u.guidance_end,
    resizeMode: u.resize_mode,
    thresholdA: u.threshold_a,
    thresholdB: u.threshold_b,
  };
  return Object.fromEntries(Object.entries(unit).filter(([, v]) => v !== undefined)) as ControlNetUnit;
}

/** A unit as it ran: what was asked, every default filled. */
function usedControlUnit(asked: ControlNetUnitParams, used: ResolvedControlUnit): ControlNetUnitParams {
  return {
    ...asked,
    module: used.module,
    weight: used.weight,
    guidance_start: used.guidanceStart,
    guidance_end: used.guidanceEnd,
    resize_mode: used.resizeMode,
    ...(used.thresholdA !== undefined ? { threshold_a: used.thresholdA } : {}),
    ...(used.thresholdB !== undefined ? { threshold_b: used.thresholdB } : {}),
  };
}

/** The hires fix as it ran, in the API's fields (A1111's). */
function completedHires(h: ResolvedHires, used: ResolvedParams): Partial<JobParams> {
  return {
    enable_hr: true,
    ...(h.scale !== undefined ? { hr_scale: h.scale } : { hr_resize_x: h.resizeX, hr_resize_y: h.resizeY }),
    hr_upscaler: h.upscaler,
    hr_second_pass_steps: h.steps,
    denoising_strength: h.denoisingStrength,
    ...(h.prompt !== used.prompt ? { hr_prompt: h.prompt } : {}),
    ...(h.negativePrompt !== used.negativePrompt ? { hr_negative_prompt: h.negativePrompt } : {}),
    ...(h.sampler !== used.sampler ? { hr_sampler_name: h.sampler } : {}),
    ...(h.schedule !== used.schedule ? { hr_scheduler: findScheduleType(h.schedule)?.label ?? h.schedule } : {}),
  };
}

/** After a run, the record shows every value used (defaults filled), so "use these settings" reproduces it. */
export function completedJobParams(p: JobParams, used: ResolvedParams): JobParams {
  return {
    ...p,
    negative_prompt: used.negativePrompt,
    steps: used.steps,
    cfg_scale: used.cfgScale,
    seed: seedToJson(used.seed),
    sampler_name: used.sampler,
    ...(used.schedule !== "automatic" ? { scheduler: findScheduleType(used.schedule)?.label ?? used.schedule } : {}),
    width: used.width,
    height: used.height,
    batch_size: used.batchSize,
    n_iter: used.batchCount,
    clip_skip: used.clipSkip,
    ...(used.prompt2 !== undefined ? { prompt_2: used.prompt2 } : {}),
    ...(used.negativePrompt2 !== undefined ? { negative_prompt_2: used.negativePrompt2 } : {}),
    ...(used.refinerSwitchAt !== undefined ? { refiner_switch_at: used.refinerSwitchAt } : {}),
    ...(p.has_init_image ? { denoising_strength: used.denoisingStrength } : {}),
    ...(used.subseed !== undefined
      ? { subseed: seedToJson(used.subseed), subseed_strength: used.subseedStrength }
      : {}),
    ...(used.eta !== undefined ? { eta: used.eta } : {}),
    ...(used.sNoise !== undefined ? { s_noise: used.sNoise } : {}),
    ...(used.etaNoiseSeedDelta !== undefined ? { eta_noise_seed_delta: used.etaNoiseSeedDelta } : {}),
    ...(used.sChurn !== undefined ? { s_churn: used.sChurn } : {}),
    ...(used.hires ? completedHires(used.hires, used) : {}),
    ...(used.inpaint ? usedInpaintParams(used.inpaint) : {}),
    ...(p.controlnet && used.controlnet
      ? { controlnet: p.controlnet.map((u, i) => (used.controlnet![i] ? usedControlUnit(u, used.controlnet![i]!) : u)) }
      : {}),
  };
}

/** The mask options as they ran (one blur per axis, the fill by name, the padding only for "only masked"). */
function usedInpaintParams(o: InpaintOptions): Partial<JobParams> {
  return {
    ...(o.blurX === o.blurY ? { mask_blur: o.blurX } : { mask_blur_x: o.blurX, mask_blur_y: o.blurY }),
    inpainting_mask_invert: o.invert,
    inpainting_fill: o.fill,
    inpaint_full_res: o.fullResPadding !== undefined,
    ...(o.fullResPadding !== undefined ? { inpaint_full_res_padding: o.fullResPadding } : {}),
  };
}
