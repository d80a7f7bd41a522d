/**
 * The request and response bodies of our HTTP API (`/api/v1/*`), as zod schemas with their inferred types.
 * Shared by the server (validation) and the web page (typed fetches), so this file imports zod and pure modules
 * without Node imports only (random/seed.ts): it must bundle for a browser.
 *
 * Field names follow AUTOMATIC1111's where the concept is the same (prompt, cfg_scale, sampler_name, ...),
 * so settings copied between our API, the A1111 surface and infotexts need no renaming.
 */
import { z } from "zod";
import { parseSeed, seedToJson } from "../random/seed.js";

/** Job and image ids are UUIDs; the pattern doubles as the guard that keeps path parameters inside the data folder. */
export const ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const Id = z.string().regex(ID_PATTERN, "must be an id as returned by the API (a lowercase UUID)");

/**
 * A seed in a request: 0 to 2^64 - 1 with PyTorch's semantics, or -1 for a random one. JSON.parse rounds numbers
 * beyond 2^53 - 1 (18446744073709551615 becomes ...616), so such a seed is sent as a decimal string; a number
 * that has lost digits is refused, and the body parser (json-body.ts) keeps a top-level `seed` integer literal
 * exact (as a bigint) so clients that write big integers (Python's json) need not change. Becomes a JsonSeed.
 */
export const SeedRequest = z
  .union([z.number(), z.bigint(), z.string()])
  .meta({
    description:
      "0 to 18446744073709551615 (2^64 - 1), or -1 for a random seed; past 2^53 - 1 best sent as a decimal string",
  })
  .transform((value, ctx) => {
    try {
      return seedToJson(parseSeed(value, ""));
    } catch (e) {
      ctx.addIssue({ code: "custom", message: (e as Error).message });
      return z.NEVER;
    }
  });

/** A seed in a response: a number up to 2^53 - 1, a decimal string beyond (a number would lose digits). */
export const JsonSeed = z
  .union([z.number().int().min(0), z.string().regex(/^\d+$/)])
  .meta({ description: "a number up to 2^53 - 1, the decimal string beyond (up to 18446744073709551615)" });
export type JsonSeed = z.infer<typeof JsonSeed>;

/**
 * An image upload: base64 of a PNG or JPEG, bare or as a data URL (`data:image/png;base64,...`), which is what a
 * canvas's `toDataURL()` gives.
 */
export const ImageUpload = z
  .string()
  .min(1, "must not be empty")
  .regex(
    /^(data:image\/[a-z+.-]+;base64,)?[A-Za-z0-9+/=\s_-]+$/,
    "must be base64 of a PNG or JPEG, bare or as a data URL (data:image/png;base64,...)",
  );

export const JobType = z.enum(["txt2img", "img2img", "inpaint"]);
export type JobType = z.infer<typeof JobType>;

/** The largest width or height a request may ask for (uploads are bounded from it too, in server/uploads.ts). */
export const MAX_SIDE = 2048;

const multipleOf8 = (name: string) =>
  z
    .number()
    .int()
    .min(8)
    .max(MAX_SIDE)
    .refine((v) => v % 8 === 0, { message: `${name} must be a multiple of 8 (the VAE works on 8x8 pixel blocks)` });

/**
 * Text that is written into each image's PNG text (the infotext in its `parameters` chunk). PNG text cannot hold
 * a NUL character, and writing the image refuses one (src/image/png-text.ts); everything else it holds (as
 * Latin-1 tEXt, or UTF-8 iTXt). Refused here, at submission, instead of after the job has run every step.
 */
export const PngSafeText = (maxLength: number) =>
  z
    .string()
    .max(maxLength)
    .refine((s) => !s.includes("\0"), {
      message: "contains a NUL character (U+0000), which the image's PNG text (its infotext) cannot hold; remove it",
    });

/**
 * One ControlNet unit of a job, as a job's status echoes it (its control image is kept with the job's uploads, not
 * repeated). Named as A1111's ControlNet extension names a unit's fields.
 */
export const ControlNetUnitParams = z.object({
  /** A ControlNet the server serves, as GET /controlnet/model_list lists it: its title "name [hash]", or its name. */
  model: z.string().min(1).max(1000),
  /** The preprocessor: "none" (the image is a ready control map; default), "scribble", "canny", ... (GET /controlnet/module_list). */
  module: z.string().max(100).optional(),
  /** The conditioning scale (default 1). */
  weight: z.number().min(0).max(2).optional(),
  /** The fraction of the steps after which the ControlNet starts (default 0) and after which it stops (default 1). */
  guidance_start: z.number().min(0).max(1).optional(),
  guidance_end: z.number().min(0).max(1).optional(),
  /** How the image meets the generation size (default "Crop and Resize"; 0, 1, 2 name the same modes). */
  resize_mode: z
    .union([z.enum(["Just Resize", "Crop and Resize", "Resize and Fill"]), z.literal(0), z.literal(1), z.literal(2)])
    .optional(),
  /** The preprocessor's parameters (scribble: the ink threshold; canny: low and high thresholds); -1 or absent: its default. */
  threshold_a: z.number().optional(),
  threshold_b: z.number().optional(),
});
export type ControlNetUnitParams = z.infer<typeof ControlNetUnitParams>;

/** A ControlNet unit in a create request: its parameters and its control image (a sketch, a photo, or a ready map). */
export const ControlNetUnitRequest = ControlNetUnitParams.extend({ image: ImageUpload });
export type ControlNetUnitRequest = z.infer<typeof ControlNetUnitRequest>;

/** The parameters of a generation, shared by a create request and the `params` echoed in a job's status. */
export const GenerationParams = z.object({
  prompt: PngSafeText(20_000),
  negative_prompt: PngSafeText(20_000).optional(),
  /** SDXL: the prompt of the second text encoder (OpenCLIP bigG); absent: the prompt. Other families ignore it. */
  prompt_2: PngSafeText(20_000).optional(),
  /** SDXL: the second text encoder's negative prompt; absent: the negative prompt. */
  negative_prompt_2: PngSafeText(20_000).optional(),
  steps: z.number().int().min(1).max(150).optional(),
  cfg_scale: z.number().min(0).max(30).optional(),
  /**
   * 0 to 2^64 - 1 (a string above 2^53 - 1); -1 or absent: a random seed, fixed when the job is accepted (a
   * re-queued job keeps it). Image j of the job uses seed + j.
   */
  seed: SeedRequest.optional(),
  /**
   * A1111's variation seed (same range as seed; -1 or absent: random, fixed at acceptance) and its strength, 0 (no
   * variation, the default) to 1. With a strength above 0 every image takes the seed and image j subseed + j.
   */
  subseed: SeedRequest.optional(),
  subseed_strength: z.number().min(0).max(1).optional(),
  /** A1111's "resize seed from": the seed's noise drawn for this size and pasted centred (both above 0, else off). */
  seed_resize_from_w: z.number().int().min(-1).max(MAX_SIDE).optional(),
  seed_resize_from_h: z.number().int().min(-1).max(MAX_SIDE).optional(),
  /**
   * A1111's hires fix (txt2img): generate at width x height, upscale by hr_scale (default 2) or to hr_resize_x /
   * hr_resize_y with hr_upscaler ("Latent" by default, "Latent (bicubic)", "Lanczos", ...; GET
   * /sdapi/v1/latent-upscale-modes), then repaint with denoising_strength (default 0.75) for hr_second_pass_steps
   * (0: as many as steps), with its own prompts and sampler when given.
   */
  enable_hr: z.boolean().optional(),
  hr_scale: z.number().gt(0).max(16).optional(),
  hr_resize_x: z.number().int().min(0).max(MAX_SIDE).optional(),
  hr_resize_y: z.number().int().min(0).max(MAX_SIDE).optional(),
  hr_upscaler: z.string().max(200).optional(),
  hr_second_pass_steps: z.number().int().min(0).max(150).optional(),
  hr_prompt: PngSafeText(20_000).optional(),
  hr_negative_prompt: PngSafeText(20_000).optional(),
  hr_sampler_name: z.string().max(100).optional(),
  hr_scheduler: z.string().max(100).optional(),
  /** Our sampler name (`euler-a`) or A1111's label (`Euler a`); see GET /api/v1/samplers. */
  sampler_name: z.string().max(100).optional(),
  /**
   * A1111's schedule type for the k-diffusion style samplers ("Karras", "Exponential", "SGM Uniform", ...; see
   * GET /sdapi/v1/schedulers); absent or "Automatic": the sampler's own.
   */
  scheduler: z.string().max(100).optional(),
  /**
   * A1111's sampler knobs. eta: the share of fresh noise per step of the ancestral and SDE samplers (default 1; 0:
   * none) and DDIM's eta (default 0); s_noise: the scale of that noise (default 1). s_churn, s_tmin, s_tmax: the
   * churn of Euler, Heun and DPM2 (default 0: off; s_tmax 0: no upper bound); other samplers ignore them.
   * eta_noise_seed_delta (A1111's ENSD setting, e.g. 31337): the sampler's noise comes from seed + delta.
   */
  eta: z.number().min(0).max(100).optional(),
  s_noise: z.number().min(0).max(100).optional(),
  s_churn: z.number().min(0).max(100).optional(),
  s_tmin: z.number().min(0).optional(),
  s_tmax: z.number().min(0).optional(),
  eta_noise_seed_delta: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  /** Absent: the model's native size. */
  width: multipleOf8("width").optional(),
  height: multipleOf8("height").optional(),
  batch_size: z.number().int().min(1).max(8).optional(),
  n_iter: z.number().int().min(1).max(16).optional(),
  /** img2img and inpaint: how much of the init image to repaint, 0..1. */
  denoising_strength: z.number().min(0).max(1).optional(),
  clip_skip: z.number().int().min(1).max(12).optional(),
  /**
   * With a server started with --refiner: the fraction of the schedule after which the refiner takes over
   * (default 0.8; 1 = never). A 400 on a server without one.
   */
  refiner_switch_at: z.number().min(0).max(1).optional(),
  /** ControlNet units guiding the generation (with a server that serves ControlNets: GET /controlnet/model_list). */
  controlnet: z.array(ControlNetUnitParams).optional(),
  /** inpaint: the mask's Gaussian blur in pixels (standard deviation), both axes or one; default 0. */
  mask_blur: z.number().min(0).max(64).optional(),
  mask_blur_x: z.number().min(0).max(64).optional(),
  mask_blur_y: z.number().min(0).max(64).optional(),
  /** inpaint: repaint what the mask keeps (black) and keep what it paints. */
  inpainting_mask_invert: z.boolean().optional(),
  /** inpaint: what the masked region starts from (A1111's inpainting_fill 0 to 3, by name); default "original". */
  inpainting_fill: z.enum(["fill", "original", "latent noise", "latent nothing"]).optional(),
  /**
   * inpaint: work on the masked region only, at the job's size, and paste it back into the init image (which keeps
   * its size); inpaint_full_res_padding pixels around it (default 32).
   */
  inpaint_full_res: z.boolean().optional(),
  inpaint_full_res_padding: z.number().int().min(0).max(256).optional(),
  /**
   * A VAE instead of the model's (a model_name from GET /sdapi/v1/sd-vae, A1111's sd_vae); "None": the checkpoint's
   * own; absent or "Automatic": the served model's.
   */
  sd_vae: z.string().max(1000).optional(),
});
export type GenerationParams = z.infer<typeof GenerationParams>;

/** POST /api/v1/jobs */
export const JobCreateRequest = GenerationParams.extend({
  type: JobType.default("txt2img"),
  /**
   * The model to run it on (a name, title or short hash from GET /api/v1/models); absent: the served model. Another
   * model is loaded for the job, and closed once no job needs it.
   */
  model: z.string().min(1).max(1000).optional(),
  /** img2img and inpaint: the starting image (e.g. the sketch canvas). */
  init_image: ImageUpload.optional(),
  /** inpaint: white = repaint, black = keep; another size than the init image's is stretched to it. */
  mask: ImageUpload.optional(),
  /** ControlNet units, each with its control image (base64 PNG/JPEG or a data URL, bounded as init_image). */
  controlnet: z.array(ControlNetUnitRequest).optional(),
}).superRefine((v, ctx) => {
  if ((v.type === "img2img" || v.type === "inpaint") && v.init_image === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["init_image"],
      message: `a ${v.type} job needs init_image (base64 PNG/JPEG or a data URL)`,
    });
  }
  if (v.type === "inpaint" && v.mask === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["mask"],
      message: "an inpaint job needs mask (white = repaint, black = keep)",
    });
  }
  if (v.type === "txt2img" && (v.init_image !== undefined || v.mask !== undefined)) {
    ctx.addIssue({
      code: "custom",
      path: ["type"],
      message: "txt2img takes no init_image or mask: use type img2img or inpaint",
    });
  }
});
/** What a client sends (defaults optional). */
export type JobCreateRequest = z.input<typeof JobCreateRequest>;
/** What the server works with after validation. */
export type JobCreateParsed = z.output<typeof JobCreateRequest>;

/** 202 answer to POST /api/v1/jobs. */
export const JobCreated = z.object({
  id: Id,
  state: z.literal("queued"),
  /** 0 = next to run. */
  position: z.number().int().min(0),
  /** Where to follow it: the status URL and the server-sent events URL. */
  url: z.string(),
  events_url: z.string(),
});
export type JobCreated = z.infer<typeof JobCreated>;

export const JobState = z.enum(["queued", "running", "done", "failed", "cancelled"]);
export type JobState = z.infer<typeof JobState>;

export const Progress = z.object({ step: z.number().int().min(0), steps: z.number().int().min(0) });
export type Progress = z.infer<typeof Progress>;

export const ImageRef = z.object({
  id: Id,
  /** GET this for the PNG (infotext in its `parameters` text chunk). */
  url: z.string(),
  seed: JsonSeed,
  /** AUTOMATIC1111's parameters text, as in the PNG. */
  infotext: z.string(),
});
export type ImageRef = z.infer<typeof ImageRef>;

/** The params a job echoes: what was asked plus the resolved seed; uploads are summarised, not repeated. */
export const JobParams = GenerationParams.extend({
  type: JobType,
  seed: JsonSeed,
  has_init_image: z.boolean(),
  has_mask: z.boolean(),
});
export type JobParams = z.infer<typeof JobParams>;

/** GET /api/v1/jobs/:id, and each entry of the history. */
export const JobStatus = z.object({
  id: Id,
  state: JobState,
  /** Place in the queue while queued (0 = next); null otherwise. */
  position: z.number().int().min(0).nullable(),
  /** Step within the current image batch while running; the last step when done; null before it starts. */
  progress: Progress.nullable(),
  /** ISO 8601 timestamps. */
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  /** The model that runs (or ran) it. */
  model: z.string(),
  params: JobParams,
  images: z.array(ImageRef),
  /** Why it failed or was cancelled; null otherwise. */
  error: z.string().nullable(),
});
export type JobStatus = z.infer<typeof JobStatus>;

/** GET /api/v1/jobs?limit= : newest first. */
export const JobListQuery = z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) });
export const JobList = z.object({ jobs: z.array(JobStatus) });
export type JobList = z.infer<typeof JobList>;

export const ModelInfo = z.object({
  name: z.string(),
  /** Short hash as in infotexts (`Model hash: ...`). */
  hash: z.string(),
  /** The native image size, for a size picker's default. */
  default_size: z.number().int(),
  /** The guidance a request without cfg_scale gets: the model's recommendation (generation_config.json, LCM's 8.5), else 7. */
  default_cfg_scale: z.number(),
  /** Steps and sampler a request without them gets: the model's recommendation, else 20 and euler-a. */
  default_steps: z.number().int(),
  default_sampler: z.string(),
  /** Prompts that suit the model (its folder's prompt_examples.json), for placeholders; null when it has none. */
  prompt_examples: z.object({ prompts: z.array(z.string()), negative_prompt: z.string().nullable() }).nullable(),
  /** sd1, sd2, sdxl or sdxl-refiner: SDXL takes prompt_2 / negative_prompt_2. */
  family: z.string(),
  /** The refiner requests may hand over to (refiner_switch_at), when the server has one. */
  refiner: z.object({ name: z.string(), hash: z.string() }).nullable(),
  loaded: z.boolean(),
});
export type ModelInfo = z.infer<typeof ModelInfo>;
/** Where a model stands: loaded, loading, failed to load (see `error`), or not loaded. */
export const ModelState = z.enum(["loaded", "loading", "failed", "unloaded"]);
export type ModelState = z.infer<typeof ModelState>;

/** A checkpoint the server can serve: what the model store lists (`diffuse models`), and the model it was started with. */
export const AvailableModel = z.object({
  /** What `model` (a job's, or PUT /api/v1/models/served) takes; titles, short hashes and aliases are accepted too. */
  name: z.string(),
  /** AUTOMATIC1111's title, "name [hash]" (as /sdapi/v1/sd-models lists it); null while the hash is unknown. */
  title: z.string().nullable(),
  hash: z.string().nullable(),
  /** sd1, sd2, sdxl, ... as the store detected it; "unknown" for a model outside the store that has not loaded. */
  family: z.string(),
  /** store, hf-cache, a1111, comfyui, invokeai, folder; "given" for the model the server was started with. */
  source: z.string(),
  /** New jobs go to it (during a switch: the model being loaded). */
  served: z.boolean(),
  state: ModelState,
  /** Why its last load failed; null otherwise. */
  error: z.string().nullable(),
});
export type AvailableModel = z.infer<typeof AvailableModel>;

/** GET /api/v1/models, and the 202 answer to PUT /api/v1/models/served. */
export const ModelList = z.object({
  /** The served model with its defaults; with ?wait=false (and in the answer to a switch) empty while it loads. */
  models: z.array(ModelInfo),
  /** The name of the served model. */
  served: z.string(),
  /** Every checkpoint the server can serve, the served one first. */
  available: z.array(AvailableModel),
});
export type ModelList = z.infer<typeof ModelList>;

/** GET /api/v1/models query: `wait=false` answers at once, while a model loads. */
export const ModelListQuery = z.object({ wait: z.enum(["true", "false"]).default("true") });

/** PUT /api/v1/models/served: which model new jobs go to. */
export const ServedModelRequest = z.object({
  /** A name, title "name [hash]", short hash or alias as GET /api/v1/models lists it. */
  name: z.string().min(1).max(1000),
});
export type ServedModelRequest = z.infer<typeof ServedModelRequest>;

export const SamplerInfo = z.object({
  name: z.string(),
  /** AUTOMATIC1111's display name; also accepted as sampler_name. */
  label: z.string(),
  stochastic: z.boolean(),
  calls_per_step: z.number().int(),
  /** The schedule types it takes, by A1111's label ("Automatic" first); GET /sdapi/v1/schedulers describes them. */
  schedule_types: z.array(z.string()),
});
export type SamplerInfo = z.infer<typeof SamplerInfo>;
/** GET /api/v1/samplers */
export const SamplerList = z.object({ samplers: z.array(SamplerInfo), default: z.string() });
export type SamplerList = z.infer<typeof SamplerList>;

/** Every 4xx/5xx body. For validation errors `field` names the first bad field and `issues` lists all. */
export const ApiError = z.object({
  error: z.string(),
  message: z.string(),
  field: z.string().optional(),
  issues: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
});
export type ApiError = z.infer<typeof ApiError>;

/**
 * Server-sent events on GET /api/v1/jobs/:id/events. The SSE `event:` name is the key; `data:` is the JSON
 * payload. A stream opened on a finished job gets its final event at once; every stream ends after done, error
 * or cancelled. `running` is sent once when the job leaves the queue.
 */
export const SseEvents = {
  queued: z.object({ position: z.number().int().min(0) }),
  running: z.object({ started_at: z.string() }),
  step: z.object({
    step: z.number().int(),
    steps: z.number().int(),
    /** 0-based index of the image batch (n_iter) and how many there are. */
    batch: z.number().int(),
    batches: z.number().int(),
    /**
     * data:image/png;base64,... of a cheap decode of the current latents; absent when previews are throttled or
     * withheld. With a safety checker, a preview is shown only as the checker and policy of the final images allow.
     */
    preview: z.string().optional(),
    /** "safety": this step's preview was withheld because the safety checker flagged this job (policy "block"). */
    preview_withheld: z.literal("safety").optional(),
  }),
  done: z.object({ images: z.array(ImageRef) }),
  error: z.object({ message: z.string() }),
  cancelled: z.object({ message: z.string() }),
} as const;
export type SseEventName = keyof typeof SseEvents;
export type SseEventPayload<E extends SseEventName> = z.infer<(typeof SseEvents)[E]>;
/** One event as a tagged union, for `switch (e.event)`. */
export type SseEvent = { [E in SseEventName]: { event: E; data: SseEventPayload<E> } }[SseEventName];
/** Events after which the server closes the stream. */
export const FINAL_EVENTS: readonly SseEventName[] = ["done", "error", "cancelled"];
