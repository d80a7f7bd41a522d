/**
 * Translation between AUTOMATIC1111's request/response conventions and our jobs: defaults as A1111 has them,
 * its sampler + scheduler pair, its mask options, its `info` JSON and its png-info dictionary.
 */
import { splitInfotext } from "../image/infotext.js";
import { stringifyExact } from "../json-exact.js";
import { InputError } from "../errors.js";
import { findSampler, requireScheduleType, resolveSamplerSchedule } from "../schedulers/index.js";
import type { GenerationParams, JobParams, JobType } from "./api-types.js";
import type { A1111Img2Img, A1111Txt2Img } from "./a1111-schema.js";
import { checkSamplerKnobs, jobParamsOf } from "./job-params.js";
import { a1111SamplerKnobs } from "./a1111-sampler-knobs.js";
import type { CheckpointDescription, ModelDescription } from "../worker/model-host.js";
import type { ImageRecord, JobRecord, Uploads } from "./store.js";
import { a1111ControlRequest } from "./a1111-controlnet.js";
import { unaliasA1111Sampler } from "./a1111-sampler-aliases.js";
import { acceptControlUnits } from "./control-units.js";
import { checkUploads, readImageUpload } from "./uploads.js";

/** A1111's defaults where they differ from ours: its API runs 50 Euler steps unless told otherwise. */
const A1111_STEPS = 50;
const A1111_SAMPLER = "Euler";
const A1111_MASK_BLUR = 4;

/** An A1111-style failure: `{error, detail, body, errors}` with a status, as its API answers. */
export class A1111Error extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "A1111Error";
  }
}

/**
 * A1111 names samplers and (since 1.9) their schedules separately. "DPM++ 2M" + scheduler "Karras" is our
 * "DPM++ 2M Karras" (diffusers' schedule, as before); any other pair ("Euler" + "Karras", "DPM++ 2M" +
 * "Exponential") is the sampler with that schedule type. The old combined names and ours work too. Without a
 * sampler: the model's recommendation, else A1111's Euler. An unknown sampler is A1111's 404; an unknown
 * schedule type, or one for a sampler with its own timestep grid, a 422 that lists what is valid.
 */
export function resolveA1111Sampler(
  req: A1111Txt2Img,
  modelDefault?: string,
): { sampler_name: string; scheduler?: string } {
  const asked = req.sampler_name || req.sampler_index || modelDefault || A1111_SAMPLER;
  const name = unaliasA1111Sampler(asked);
  const base = findSampler(name);
  const schedule = req.scheduler?.trim() || undefined;
  if (base && schedule && schedule.toLowerCase() !== "automatic") {
    // The name already carries this schedule ("DPM++ 2M Karras" + "Karras"), or we have the pair as a sampler.
    if (base.label.toLowerCase().endsWith(` ${schedule.toLowerCase()}`)) return { sampler_name: base.label };
    const combined = findSampler(`${base.label} ${schedule}`);
    if (combined) return { sampler_name: combined.label };
  }
  try {
    if (schedule !== undefined) requireScheduleType(schedule);
  } catch (e) {
    throw new A1111Error(422, `scheduler: ${(e as Error).message} (see GET /sdapi/v1/schedulers)`);
  }
  let resolved: ReturnType<typeof resolveSamplerSchedule>;
  try {
    resolved = resolveSamplerSchedule(name, schedule);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    if (!base)
      throw new A1111Error(
        404,
        `Sampler not found: "${asked}"${name !== asked ? ` (${name})` : ""}; see GET /sdapi/v1/samplers for the names this server has`,
      );
    throw new A1111Error(422, `scheduler: ${e.message}`);
  }
  return {
    sampler_name: base?.label ?? resolved.sampler.label,
    ...(resolved.schedule.name !== "automatic" ? { scheduler: resolved.schedule.label } : {}),
  };
}

/** Floors a size to the latent grid as A1111's latent shape does; undefined keeps the model's size. */
function gridSize(v: number | null | undefined): number | undefined {
  return v === null || v === undefined ? undefined : Math.max(8, Math.floor(v / 8) * 8);
}

export interface A1111Defaults {
  /** CLIP_stop_at_last_layers from /sdapi/v1/options. */
  clipSkip: number;
  /** The job's model (override_settings' checkpoint, resolved by the caller, or the served one). */
  model: ModelDescription;
  /** The served ControlNets' folders (serve --controlnet-dir). */
  controlnetDirs: readonly string[];
  /** sd_vae (override_settings', else the option), checked; undefined: Automatic. */
  sdVae?: string;
  /** The options stored with POST /sdapi/v1/options (A1111's settings: eta_noise_seed_delta, eta_ancestral, ...). */
  options?: Readonly<Record<string, unknown>>;
}

/** The job for an A1111 txt2img or img2img request. */
export async function a1111Job(
  req: A1111Txt2Img | A1111Img2Img,
  img2img: boolean,
  defaults: A1111Defaults,
): Promise<{ type: JobType; params: JobParams; uploads: Uploads; detectMaps: boolean[] }> {
  const overrides = req.override_settings ?? {};
  const clipSkipOverride = overrides["CLIP_stop_at_last_layers"];
  const clipSkip =
    typeof clipSkipOverride === "number" && Number.isInteger(clipSkipOverride) ? clipSkipOverride : defaults.clipSkip;
  const i2i = img2img ? (req as A1111Img2Img) : undefined;
  if (img2img && !i2i?.init_images?.length)
    throw new A1111Error(404, "Init image not found: img2img needs init_images (a list of base64 images)");
  const uploads: Uploads = {};
  if (i2i?.init_images?.length) uploads.initImage = await readImageUpload(i2i.init_images[0]!, "init_images.0");
  if (i2i?.mask) uploads.mask = await readImageUpload(i2i.mask, "mask");
  const control = a1111ControlRequest(req.alwayson_scripts, i2i?.init_images?.[0]);
  const accepted = await acceptControlUnits(
    control.units,
    defaults.controlnetDirs,
    (i) => control.fields[i] ?? `alwayson_scripts.controlnet.args.${i}`,
  );
  if (accepted.images.length) uploads.controlImages = accepted.images;
  await checkUploads(uploads, {
    initImage: "init_images.0",
    mask: "mask",
    controlImage: (i) => `${control.fields[i]}.input_image`,
  });
  const type: JobType = uploads.mask ? "inpaint" : uploads.initImage ? "img2img" : "txt2img";
  // A1111's img2img has no hires fix: enable_hr is ignored there, as its img2img processing ignores it.
  const hires = !img2img && req.enable_hr === true;
  const m = defaults.model;
  const sampler = resolveA1111Sampler(req, m.recommendedSampler);
  const knobs = a1111SamplerKnobs(req, sampler.sampler_name, defaults.options ?? {});
  const params = jobParamsOf(
    type,
    {
      prompt: req.prompt ?? "",
      negative_prompt: req.negative_prompt ?? "",
      ...(req.prompt_2 != null ? { prompt_2: req.prompt_2 } : {}),
      ...(req.negative_prompt_2 != null ? { negative_prompt_2: req.negative_prompt_2 } : {}),
      // A model's own recommendation (generation_config.json, LCM) over A1111's 50 Euler steps, as for cfg_scale.
      steps: req.steps ?? m.recommendedSteps ?? A1111_STEPS,
      cfg_scale: req.cfg_scale ?? m.defaultCfgScale,
      seed: req.seed ?? -1,
      ...sampler,
      ...knobs,
      width: gridSize(req.width) ?? defaults.model.defaultSize,
      height: gridSize(req.height) ?? defaults.model.defaultSize,
      batch_size: req.batch_size ?? 1,
      n_iter: req.n_iter ?? 1,
      denoising_strength: img2img
        ? (req.denoising_strength ?? 0.75)
        : hires
          ? (req.denoising_strength ?? undefined)
          : undefined,
      ...variationParams(req),
      ...(hires ? hiresParams(req) : {}),
      clip_skip: Math.min(12, Math.max(1, clipSkip)),
      ...refinerParams(req, m),
      ...(accepted.units.length ? { controlnet: accepted.units } : {}),
      ...(i2i && uploads.mask ? a1111InpaintParams(i2i) : {}),
      ...(defaults.sdVae !== undefined ? { sd_vae: defaults.sdVae } : {}),
    },
    uploads,
  );
  try {
    checkSamplerKnobs(params);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    throw new A1111Error(422, e.message);
  }
  return { type, params, uploads, detectMaps: control.detectMaps };
}

/** A1111's subseed / subseed_strength / seed_resize_from_*, as sent (nulls dropped; -1 seeds resolved at acceptance). */
function variationParams(req: A1111Txt2Img): Partial<GenerationParams> {
  return {
    ...(req.subseed_strength ? { subseed_strength: req.subseed_strength, subseed: req.subseed ?? -1 } : {}),
    ...(req.seed_resize_from_w != null ? { seed_resize_from_w: req.seed_resize_from_w } : {}),
    ...(req.seed_resize_from_h != null ? { seed_resize_from_h: req.seed_resize_from_h } : {}),
  };
}

/**
 * A1111's hires fix fields. Its "Use same sampler" / "Use same scheduler" / empty prompts mean the first pass's,
 * as do nulls; hr_checkpoint_name is not supported (one checkpoint per job).
 */
function hiresParams(req: A1111Txt2Img): Partial<GenerationParams> {
  const same = (v: string | null | undefined, word: string) =>
    v == null || v === "" || v.toLowerCase() === `use same ${word}` ? undefined : v;
  const checkpoint = (req as Record<string, unknown>)["hr_checkpoint_name"];
  if (typeof checkpoint === "string" && checkpoint !== "" && checkpoint !== "Use same checkpoint")
    throw new A1111Error(
      422,
      `hr_checkpoint_name: another checkpoint for the hires pass is not supported; send "Use same checkpoint" or leave it out`,
    );
  const out: Partial<GenerationParams> = {
    enable_hr: true,
    ...(req.hr_scale != null ? { hr_scale: req.hr_scale } : {}),
    ...(req.hr_resize_x != null ? { hr_resize_x: req.hr_resize_x } : {}),
    ...(req.hr_resize_y != null ? { hr_resize_y: req.hr_resize_y } : {}),
    ...(req.hr_upscaler != null ? { hr_upscaler: req.hr_upscaler } : {}),
    ...(req.hr_second_pass_steps != null ? { hr_second_pass_steps: req.hr_second_pass_steps } : {}),
    ...(req.hr_prompt ? { hr_prompt: req.hr_prompt } : {}),
    ...(req.hr_negative_prompt ? { hr_negative_prompt: req.hr_negative_prompt } : {}),
  };
  const sampler = same(req.hr_sampler_name, "sampler");
  const scheduler = same(req.hr_scheduler, "scheduler");
  if (sampler !== undefined) out.hr_sampler_name = sampler;
  if (scheduler !== undefined) out.hr_scheduler = scheduler;
  return out;
}

/**
 * A1111's refiner_checkpoint / refiner_switch_at: the checkpoint must be the refiner this server was started with
 * (serve --refiner), else 404 as A1111's "Could not find checkpoint"; without one, a server that has a refiner does
 * not use it (switch point 1: the refiner never takes over). A1111 hands over at the very first step when
 * refiner_switch_at is missing; here it means the usual 0.8.
 */
function refinerParams(req: A1111Txt2Img, m: ModelDescription): { refiner_switch_at?: number } {
  const name = req.refiner_checkpoint?.trim();
  if (!name || name.toLowerCase() === "none") return m.refiner ? { refiner_switch_at: 1 } : {};
  if (!m.refiner || !matchesModel(name, m.refiner)) {
    const have = m.refiner
      ? `this server's refiner is ${a1111Title(m.refiner)}`
      : "this server has no refiner (start it with --refiner PATH)";
    throw new A1111Error(404, `Could not find checkpoint with name ${name}: ${have}`);
  }
  return req.refiner_switch_at == null ? {} : { refiner_switch_at: req.refiner_switch_at };
}

/**
 * A1111's mask options with its API's defaults: a blur of 4 on both axes (mask_blur, when given, sets both), the
 * masked content filled from its surroundings (inpainting_fill 0), only the masked region worked on
 * (inpaint_full_res) with no padding.
 */
function a1111InpaintParams(req: A1111Img2Img): Partial<GenerationParams> {
  return {
    mask_blur_x: req.mask_blur ?? req.mask_blur_x ?? A1111_MASK_BLUR,
    mask_blur_y: req.mask_blur ?? req.mask_blur_y ?? A1111_MASK_BLUR,
    inpainting_mask_invert: req.inpainting_mask_invert === 1,
    inpainting_fill: INPAINTING_FILL_NAMES[req.inpainting_fill ?? 0],
    inpaint_full_res: req.inpaint_full_res == null ? true : Boolean(req.inpaint_full_res),
    inpaint_full_res_padding: req.inpaint_full_res_padding ?? 0,
  };
}

/** inpainting_fill's numbers, in A1111's order. */
const INPAINTING_FILL_NAMES = ["fill", "original", "latent noise", "latent nothing"] as const;

export function a1111Title(m: CheckpointDescription): string {
  return `${a1111FileName(m)} [${m.hash}]`;
}

/**
 * The title's name part: the model's name, with the extension when it is a file (A1111's "name.safetensors"); a
 * folder, or a Hugging Face snapshot (named by its repository, not its commit), by its name alone.
 */
function a1111FileName(m: Pick<CheckpointDescription, "name" | "path">): string {
  const ext = /\.safetensors$/i.exec(m.path)?.[0];
  return ext && !m.name.toLowerCase().endsWith(ext.toLowerCase()) ? `${m.name}${ext}` : m.name;
}

/** A1111 accepts a checkpoint by title, file name, name or hash. */
export function matchesModel(value: string, m: CheckpointDescription): boolean {
  const v = value.trim();
  const names = [a1111FileName(m), m.path.split(/[\\/]/).pop() ?? m.name, m.name];
  return [a1111Title(m), ...names, m.hash, m.sha256].includes(v) || names.includes(v.replace(/\s*\[[0-9a-f]+\]$/i, ""));
}

/** `parameters`: A1111's defaults overlaid with exactly what the client sent, unknown fields included. */
export function echoParameters(
  body: unknown,
  defaults: Readonly<Record<string, unknown>>,
  img2img: boolean,
): Record<string, unknown> {
  const sent = (body ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = { ...defaults, ...sent };
  // A1111 blanks the uploads unless include_init_images: echoing megabytes back helps no one.
  if (img2img && sent["include_init_images"] !== true) {
    out["init_images"] = null;
    out["mask"] = null;
  }
  return out;
}

/**
 * The values a job ran with, under A1111's request names, laid over `parameters` (echoParameters): the size, steps,
 * CFG scale, seed, sampler and batch that defaults filled in as well as those sent. The sampler keeps the name the
 * client chose, as A1111's label (an alias such as "k_euler_a" resolved), so it still pairs with the `scheduler`
 * sent; a job that never ran (cancelled while queued) echoes what it was accepted with.
 */
export function usedParameters(p: JobParams, sent: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ["steps", "cfg_scale", "width", "height", "batch_size", "n_iter"] as const)
    if (p[key] !== undefined) out[key] = p[key];
  // An exact JSON integer however large, as A1111 writes seeds (our records keep those past 2^53 as strings).
  out["seed"] = typeof p.seed === "string" ? BigInt(p.seed) : p.seed;
  if (p.has_init_image && p.denoising_strength !== undefined) out["denoising_strength"] = p.denoising_strength;
  const named = [sent["sampler_name"], sent["sampler_index"]].find((v) => typeof v === "string" && v.trim() !== "");
  if (typeof named === "string") out["sampler_name"] = findSampler(unaliasA1111Sampler(named))?.label ?? named;
  else if (p.sampler_name !== undefined) out["sampler_name"] = findSampler(p.sampler_name)?.label ?? p.sampler_name;
  if (p.scheduler !== undefined && (sent["scheduler"] === undefined || sent["scheduler"] === null))
    out["scheduler"] = p.scheduler;
  return out;
}

/** The `info` JSON string of a finished job, with the keys A1111's Processed.js() writes. */
export function a1111Info(
  job: JobRecord,
  images: ImageRecord[],
  model: ModelDescription,
  styles: readonly string[] = [],
): string {
  return stringifyExact(a1111InfoFields(job, images, model, styles));
}

/** The fields of `info` (seeds as exact bigints), for callers that add to them (the X/Y/Z plot). */
export function a1111InfoFields(
  job: JobRecord,
  images: ImageRecord[],
  model: ModelDescription,
  styles: readonly string[] = [],
): Record<string, unknown> {
  const p = job.params;
  // Seeds as exact JSON integers, as A1111 writes them: its clients (Python) read them exactly.
  const seeds = images.map((i) => i.seed);
  const count = Math.max(images.length, 1);
  // With a variation, image j's variation seed is subseed + j (A1111's all_subseeds); exact, as the seeds.
  const subseeds =
    p.subseed_strength && p.subseed !== undefined
      ? Array.from({ length: count }, (_, j) => BigInt(p.subseed!) + BigInt(j))
      : [];
  const sampler = p.sampler_name === undefined ? A1111_SAMPLER : (findSampler(p.sampler_name)?.label ?? p.sampler_name);
  const info = {
    prompt: p.prompt,
    all_prompts: Array(count).fill(p.prompt),
    negative_prompt: p.negative_prompt ?? "",
    all_negative_prompts: Array(count).fill(p.negative_prompt ?? ""),
    seed: seeds[0] ?? BigInt(p.seed),
    all_seeds: seeds.length ? seeds : [BigInt(p.seed)],
    subseed: subseeds[0] ?? -1,
    all_subseeds: subseeds.length ? subseeds : Array(count).fill(-1),
    subseed_strength: p.subseed_strength ?? 0,
    width: p.width,
    height: p.height,
    sampler_name: sampler,
    cfg_scale: p.cfg_scale,
    steps: p.steps,
    batch_size: p.batch_size ?? 1,
    restore_faces: false,
    face_restoration_model: null,
    sd_model_name: model.name,
    sd_model_hash: model.hash,
    // The VAE chosen instead of the checkpoint's, as its infotext names it.
    sd_vae_name: infotextField(images[0]?.infotext, "VAE") ?? null,
    sd_vae_hash: infotextField(images[0]?.infotext, "VAE hash") ?? null,
    seed_resize_from_w: p.seed_resize_from_w ?? -1,
    seed_resize_from_h: p.seed_resize_from_h ?? -1,
    denoising_strength: p.has_init_image || p.enable_hr ? (p.denoising_strength ?? 0.75) : 0,
    extra_generation_params: extraGenerationParams(images[0]?.infotext),
    index_of_first_image: 0,
    infotexts: images.map((i) => i.infotext),
    styles,
    job_timestamp: a1111Timestamp(job.startedAt ?? job.createdAt),
    clip_skip: p.clip_skip ?? 1,
    is_using_inpainting_conditioning: false,
    version: "diffuse",
  };
  return info;
}

function infotextField(infotext: string | undefined, key: string): string | undefined {
  return infotext ? splitInfotext(infotext).params[key] : undefined;
}

/** The fields A1111 keeps in extra_generation_params that we write: the refiner's, when it ran. */
function extraGenerationParams(infotext: string | undefined): Record<string, string | number> {
  if (!infotext) return {};
  const { params } = splitInfotext(infotext);
  const out: Record<string, string | number> = {};
  if (params["Refiner"] !== undefined) out["Refiner"] = params["Refiner"];
  if (params["Refiner switch at"] !== undefined) out["Refiner switch at"] = Number(params["Refiner switch at"]);
  // What A1111's Lora extension, embeddings and ControlNet extension add to p.extra_generation_params.
  for (const key of ["Lora hashes", "TI hashes"]) if (params[key] !== undefined) out[key] = params[key];
  // The hires fix's, as A1111's txt2img puts them there (numbers as numbers).
  for (const key of ["Hires upscale", "Hires steps", "Denoising strength"])
    if (params[key] !== undefined && params["Hires upscaler"] !== undefined) out[key] = Number(params[key]);
  for (const key of ["Hires resize", "Hires upscaler", "Hires prompt", "Hires negative prompt", "Hires sampler"])
    if (params[key] !== undefined) out[key] = params[key];
  // What A1111's sampler adds when its knobs are not the defaults (ENSD is a main field, not one of these).
  for (const key of ["Eta", "Eta DDIM", "Sigma noise"]) if (params[key] !== undefined) out[key] = Number(params[key]);
  // What A1111's inpainting adds.
  for (const key of ["Mask blur", "Masked area padding"]) if (params[key] !== undefined) out[key] = Number(params[key]);
  for (const key of ["Mask mode", "Masked content", "Inpaint area"])
    if (params[key] !== undefined) out[key] = params[key];
  for (const [key, value] of Object.entries(params)) if (/^ControlNet \d+$/.test(key)) out[key] = value;
  return out;
}

/** A1111's job timestamps: local time as YYYYMMDDhhmmss. */
export function a1111Timestamp(iso: string): string {
  const d = new Date(iso);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}${two(d.getMonth() + 1)}${two(d.getDate())}${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}`;
}

/**
 * png-info's `parameters`: what A1111's infotext parser gives a client. Values stay strings, "Size" becomes
 * "Size-1" and "Size-2", and the prompt lines come as "Prompt" and "Negative prompt".
 */
export function a1111ParsedParameters(infotext: string): Record<string, string> {
  if (infotext.trim() === "") return {};
  const { prompt, negativePrompt, params } = splitInfotext(infotext);
  const out: Record<string, string> = { Prompt: prompt, "Negative prompt": negativePrompt };
  for (const [key, value] of Object.entries(params)) {
    const size = /^(\d+)x(\d+)$/.exec(value);
    if (size) {
      out[`${key}-1`] = size[1]!;
      out[`${key}-2`] = size[2]!;
    } else {
      out[key] = value;
    }
  }
  out["Clip skip"] ??= "1";
  return out;
}
