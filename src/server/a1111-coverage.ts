/**
 * How much of AUTOMATIC1111's API (`/sdapi/v1`) this server provides, route by route and request field by field:
 * the one source of docs/a1111-api.md's tables (scripts/a1111-api-doc.ts writes them) and of the /sdapi/v1 part of
 * the OpenAPI document (openapi.ts). Tests hold it to the code: every route the server registers under /sdapi/v1
 * is listed here as provided and every route listed as not provided is absent; every field of the request schemas
 * (a1111-schema.ts) and of A1111's request defaults has a row; and the committed document equals what this gives.
 */
import type { z } from "zod";
import { A1111Img2Img, A1111PngInfo, A1111Txt2Img, IMG2IMG_DEFAULTS, TXT2IMG_DEFAULTS } from "./a1111-schema.js";
import { PromptStyleList } from "./prompt-styles.js";

/**
 * supported: as A1111; partly: some of what A1111 does; differs: works, not quite as A1111 (the note says how);
 * ignored: accepted and echoed, without effect; ours: not A1111's; not provided: absent (404).
 */
export type Coverage = "supported" | "partly" | "differs" | "ignored" | "ours" | "not provided";

export interface A1111Route {
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly status: Coverage;
  readonly note: string;
  /** The request body as the server validates it (for the OpenAPI document). */
  readonly body?: z.ZodType;
  /** A1111's name of the response model (modules/api/models.py), for the OpenAPI document. */
  readonly response?: string;
}

export const A1111_ROUTES: readonly A1111Route[] = [
  {
    method: "POST",
    path: "/sdapi/v1/txt2img",
    status: "supported",
    note: "see the request fields below; the request stays open until its job (queued with ours) is finished",
    body: A1111Txt2Img,
    response: "TextToImageResponse",
  },
  {
    method: "POST",
    path: "/sdapi/v1/img2img",
    status: "supported",
    note: "img2img and inpainting (with `mask`); see the request fields below",
    body: A1111Img2Img,
    response: "ImageToImageResponse",
  },
  {
    method: "GET",
    path: "/sdapi/v1/progress",
    status: "supported",
    note: "`state` also carries `queued`, the number of jobs waiting; `skip_current_image` leaves `current_image` out",
    response: "ProgressResponse",
  },
  {
    method: "POST",
    path: "/sdapi/v1/interrupt",
    status: "differs",
    note: "cancels the running job at its next step; answers with `images: []` where A1111 returns the partial images",
  },
  {
    method: "POST",
    path: "/sdapi/v1/skip",
    status: "differs",
    note: "ends the current image's sampling after its current step and goes on with the next (`n_iter`); the image is decoded from the latents as they stand (A1111 decodes its last denoised prediction); 409 with `--queue`",
  },
  {
    method: "GET",
    path: "/sdapi/v1/options",
    status: "partly",
    note: "every key stored in the data folder is read back; `sd_model_checkpoint`, `CLIP_stop_at_last_layers`, `eta_noise_seed_delta`, `eta_ancestral`, `eta_ddim` and `s_noise` / `s_churn` / `s_tmin` / `s_tmax` take effect (see options below)",
    response: "Options",
  },
  {
    method: "POST",
    path: "/sdapi/v1/options",
    status: "partly",
    note: "any key is stored; `sd_model_checkpoint` switches the served model once it has loaded (400 naming the known ones for an unknown one)",
  },
  {
    method: "GET",
    path: "/sdapi/v1/cmd-flags",
    status: "partly",
    note: "the flags this server has, under A1111's names (`api`, `listen`, `port`, `ckpt`, `data_dir`, `lora_dir`, `embeddings_dir`, `controlnet_dir`, `api_server_stop`, ...), plus `token_required` and `queue`; never a secret",
    response: "FlagsModel",
  },
  {
    method: "GET",
    path: "/sdapi/v1/sd-models",
    status: "supported",
    note: 'every checkpoint the model store knows and the served model\'s refiner (`title` "name [hash]", `model_name`, `hash`, `sha256`, `filename`, `config: null`)',
    response: "SDModelItem[]",
  },
  {
    method: "POST",
    path: "/sdapi/v1/refresh-checkpoints",
    status: "supported",
    note: "scans the model store again (files added or removed since), answers `null`",
  },
  {
    method: "POST",
    path: "/sdapi/v1/unload-checkpoint",
    status: "supported",
    note: "releases the served model's pipeline and memory between jobs (answers `{}` once done); the next job, or reload-checkpoint, loads it again; 409 with `--queue`",
  },
  {
    method: "POST",
    path: "/sdapi/v1/reload-checkpoint",
    status: "supported",
    note: "loads the served model; answers `{}` once it is loaded",
  },
  {
    method: "GET",
    path: "/sdapi/v1/samplers",
    status: "supported",
    note: "A1111 labels, with A1111's aliases (`k_euler_a`, `k_dpmpp_2m`, ...) and our short names as `aliases`",
    response: "SamplerItem[]",
  },
  {
    method: "GET",
    path: "/sdapi/v1/schedulers",
    status: "supported",
    note: "the schedule types of A1111 1.9+ with A1111's `SchedulerItem` fields",
    response: "SchedulerItem[]",
  },
  {
    method: "GET",
    path: "/sdapi/v1/upscalers",
    status: "supported",
    note: "None, Lanczos, Nearest and every ESRGAN / Real-ESRGAN file in the upscaler folders",
    response: "UpscalerItem[]",
  },
  {
    method: "POST",
    path: "/sdapi/v1/png-info",
    status: "supported",
    note: "PNG text chunks, or the EXIF UserComment of a JPEG or WebP",
    body: A1111PngInfo,
    response: "PNGInfoResponse",
  },
  {
    method: "GET",
    path: "/sdapi/v1/loras",
    status: "supported",
    note: "`[{name, alias, path, metadata}]` for the `.safetensors` and `.pt` / `.ckpt` files of `serve --lora-dir` (subfolders too; `alias` is `ss_output_name`, JSON metadata values parsed; a torch.save LoRA has none and is read as data, never unpickled)",
  },
  {
    method: "POST",
    path: "/sdapi/v1/refresh-loras",
    status: "supported",
    note: "rescans the LoRA folder, answers `null`",
  },
  {
    method: "GET",
    path: "/sdapi/v1/embeddings",
    status: "supported",
    note: "`{loaded, skipped}` by trigger word, each `{step, sd_checkpoint, sd_checkpoint_name, shape, vectors}` (the first three `null`: safetensors files carry none); `skipped` holds embeddings made for other text encoders",
    response: "EmbeddingsResponse",
  },
  {
    method: "POST",
    path: "/sdapi/v1/refresh-embeddings",
    status: "supported",
    note: "reads the embeddings folder again, answers `null`",
  },
  {
    method: "GET",
    path: "/sdapi/v1/hypernetworks",
    status: "supported",
    note: "answers `[]`: hypernetworks are not applied here",
    response: "HypernetworkItem[]",
  },
  {
    method: "GET",
    path: "/sdapi/v1/face-restorers",
    status: "supported",
    note: "answers `[]`: no face restorers",
    response: "FaceRestorerItem[]",
  },
  {
    method: "GET",
    path: "/sdapi/v1/prompt-styles",
    status: "supported",
    note: "`[{name, prompt, negative_prompt}]` from `styles.csv` in the data folder, A1111's format (copy one over)",
    response: "PromptStyleItem[]",
  },
  {
    method: "POST",
    path: "/sdapi/v1/prompt-styles",
    status: "ours",
    note: "replaces the saved styles with the list sent (`[{name, prompt, negative_prompt}]`), written to `styles.csv` as A1111 writes it; answers `null`",
    body: PromptStyleList,
  },
  {
    method: "GET",
    path: "/sdapi/v1/memory",
    status: "supported",
    note: "`ram` as A1111 computes it (`used`: this process's resident size, `total`: the machine's memory, `free`: the difference); `cuda: {error: \"unavailable\"}` (the networks run on the CPU); plus `system` (the machine's free memory)",
    response: "MemoryResponse",
  },
  {
    method: "GET",
    path: "/sdapi/v1/scripts",
    status: "partly",
    note: '`{txt2img: ["x/y/z plot", "controlnet"], img2img: [...the same]}`: of A1111\'s selectable scripts the X/Y/Z plot (no prompt matrix, no prompts from file); the ControlNet extension\'s always-on script',
    response: "ScriptsList",
  },
  {
    method: "GET",
    path: "/sdapi/v1/script-info",
    status: "partly",
    note: "the X/Y/Z plot (its 18 `args` as its run() takes them, the axis types' `choices` the page's axis options) and the ControlNet script (`is_alwayson: true`; `args` is empty: units go in `args` as objects), for txt2img and img2img",
    response: "ScriptInfo[]",
  },
  {
    method: "POST",
    path: "/sdapi/v1/refresh-vae",
    status: "supported",
    note: "answers `null`",
  },
  {
    method: "POST",
    path: "/sdapi/v1/server-stop",
    status: "differs",
    note: '403 unless the server was started with `--api-server-stop` (A1111 then has the route, else 404); with it, answers "Stopping." and stops as on SIGTERM (a running job goes back to the queue)',
  },
  {
    method: "POST",
    path: "/sdapi/v1/server-kill",
    status: "differs",
    note: "as server-stop (A1111 exits at once; here the server stops as on SIGTERM), answering `null`",
  },
  {
    method: "POST",
    path: "/sdapi/v1/server-restart",
    status: "differs",
    note: "403 unless `--api-server-stop`; then 501, as A1111 answers when it cannot restart itself: use a supervisor",
  },
  {
    method: "POST",
    path: "/sdapi/v1/extra-single-image",
    status: "partly",
    note: "upscaling (two upscalers, visibility, crop); face restoration refused; runs in the server, one at a time",
  },
  {
    method: "POST",
    path: "/sdapi/v1/extra-batch-images",
    status: "partly",
    note: "as extra-single-image, at most 32 images",
  },
  { method: "GET", path: "/sdapi/v1/latent-upscale-modes", status: "supported", note: "A1111's six latent modes" },
  {
    method: "GET",
    path: "/sdapi/v1/realesrgan-models",
    status: "not provided",
    note: "the Real-ESRGAN files are listed by /sdapi/v1/upscalers",
  },
  {
    method: "GET",
    path: "/sdapi/v1/sd-vae",
    status: "supported",
    note: "the VAEs in A1111's models/VAE and ComfyUI's models/vae under the model roots, as `[{model_name, filename}]`",
  },
  { method: "POST", path: "/sdapi/v1/interrogate", status: "not provided", note: "no CLIP or DeepDanbooru captioner" },
  { method: "POST", path: "/sdapi/v1/create/embedding", status: "not provided", note: "no training" },
  { method: "POST", path: "/sdapi/v1/create/hypernetwork", status: "not provided", note: "no training" },
  { method: "POST", path: "/sdapi/v1/train/embedding", status: "not provided", note: "no training" },
  { method: "POST", path: "/sdapi/v1/train/hypernetwork", status: "not provided", note: "no training" },
  {
    method: "GET",
    path: "/sdapi/v1/extensions",
    status: "not provided",
    note: "no extensions (ControlNet's routes are built in)",
  },
];

/** One row of the request-field table: a group of fields that behave alike. */
export interface A1111FieldRow {
  readonly fields: readonly string[];
  readonly status: Coverage;
  readonly note: string;
  /** Only img2img takes these. */
  readonly img2img?: boolean;
}

/** txt2img and img2img request fields. Fields the schema validates without a row here fail the coverage test. */
export const A1111_FIELDS: readonly A1111FieldRow[] = [
  {
    fields: ["prompt"],
    status: "supported",
    note: "`(word:1.2)` weighting and `BREAK` as in A1111; `<lora:NAME:W>` and `<lora:NAME:W_te:W_unet>` (also `te=`/`unet=`, and `<lyco:...>`) merge NAME.safetensors of `serve --lora-dir` (LoRA, LoCon, LoHa, LoKr; kohya, diffusers and PEFT files) and are cut out of the text; an unknown name is a 422 naming the closest; embeddings of `--embeddings-dir` are used by file name; `Lora hashes` and `TI hashes` in the infotext as A1111 writes them; a NUL character is a 422",
  },
  {
    fields: ["negative_prompt"],
    status: "supported",
    note: "LoRA tags and embeddings as in `prompt` (negative embeddings such as EasyNegative go here); a NUL character is a 422",
  },
  {
    fields: ["prompt_2", "negative_prompt_2"],
    status: "ours",
    note: "SDXL: the prompts of the second text encoder (OpenCLIP bigG), default the prompt / negative prompt; other families ignore them; not written in the infotext (A1111 has no such field)",
  },
  {
    fields: ["styles"],
    status: "differs",
    note: 'names of saved styles (`GET /sdapi/v1/prompt-styles`), applied in order as A1111 does (a style\'s `{prompt}` takes the prompt, else it is appended after ", "), to both prompts; listed in `info.styles`; an unknown name is a 422 listing the saved ones (A1111 skips it)',
  },
  {
    fields: ["refiner_checkpoint", "refiner_switch_at"],
    status: "supported",
    note: 'the refiner the server was started with (`serve --refiner PATH`), named by title, file name, name or hash (`None` or empty: no refiner); any other name is a 404 "Could not find checkpoint"; it takes over once (999 - t) / 1000 reaches `refiner_switch_at` (A1111\'s rule), default 0.8 (A1111 switches at the first step when it is missing); `Refiner: name [hash], Refiner switch at: x` in the infotext and `extra_generation_params` when it ran',
  },
  {
    fields: ["seed"],
    status: "supported",
    note: "0 to 18446744073709551615 (2^64 - 1) as PyTorch takes it, as a JSON integer or a decimal string; `-1` = random (below 2^32 - 2, as A1111); image j takes seed + j; the seeds used are in `info`, and the first in `parameters`",
  },
  {
    fields: ["sampler_name"],
    status: "supported",
    note: "A1111 labels (`Euler a`, `DPM++ 2M Karras`, ...), A1111's aliases (`k_euler_a`, `k_dpmpp_2m_ka`, ...) or our names (`euler-a`), in any case as A1111's samplers map matches them; unknown = 404",
  },
  {
    fields: ["sampler_index"],
    status: "supported",
    note: "the old name of `sampler_name`, used when that is absent (default: the model's recommendation, e.g. `LCM` for an LCM model, else `Euler`, as A1111)",
  },
  {
    fields: ["scheduler"],
    status: "differs",
    note: "every schedule type, by label or name, for the k-diffusion style samplers, with k-diffusion's / A1111's sigma formulas; `Schedule type` in the infotext. `DPM++ 2M` + `Karras` (and the other pairs we have as samplers) runs our `DPM++ 2M Karras` (diffusers' Karras schedule); an unknown type, or one for DDIM/PLMS/UniPC/LCM/DDPM, is a 422 (A1111 falls back to Automatic)",
  },
  {
    fields: ["steps"],
    status: "supported",
    note: "default: the model's recommendation (its `generation_config.json`, 4 for LCM), else 50, as A1111",
  },
  { fields: ["cfg_scale"], status: "supported", note: "default: the model's recommendation, else 7" },
  {
    fields: ["width", "height"],
    status: "differs",
    note: "floored to a multiple of 8 as A1111's latent grid; default: the model's native size (512 for SD 1.x as A1111, 1024 for SDXL, 64 for the tiny test models)",
  },
  { fields: ["batch_size"], status: "supported", note: "up to 8, within the work budget" },
  { fields: ["n_iter"], status: "supported", note: "up to 16, within the work budget" },
  {
    fields: ["denoising_strength"],
    status: "supported",
    note: "img2img: default 0.75; txt2img: ignored (it only drives hires fix there)",
  },
  {
    fields: ["override_settings"],
    status: "partly",
    note: "`sd_model_checkpoint` (a known checkpoint, else 404: the job runs on it, loaded for it, and the served model stays), `sd_vae` (Automatic, None or a name from `sd-vae`), `CLIP_stop_at_last_layers` (clip skip), `eta_noise_seed_delta` (ENSD: the sampler's noise seeded seed + delta once the initial noise is drawn, as A1111's ImageRNG; infotext `ENSD`), `eta_ancestral`, `eta_ddim`, `s_noise`, `s_churn`, `s_tmin` and `s_tmax` (see those fields) apply; other keys are ignored",
  },
  {
    fields: ["override_settings_restore_afterwards"],
    status: "supported",
    note: "`false` with `override_settings.sd_model_checkpoint` switches the served model to it",
  },
  { fields: ["send_images"], status: "supported", note: "`false` answers with `images: []`" },
  { fields: ["save_images"], status: "ignored", note: "every job is kept in the history anyway" },
  {
    fields: ["alwayson_scripts"],
    status: "partly",
    note: "`controlnet`: the ControlNet extension's units (see ControlNet below); other scripts are ignored",
  },
  {
    fields: ["init_images"],
    status: "supported",
    img2img: true,
    note: "base64 PNG/JPEG/WebP, bare or as a data URL; only the first is used (as A1111 does per batch)",
  },
  {
    fields: ["mask"],
    status: "supported",
    img2img: true,
    note: "white = repaint, black = keep; another size than the init image's is stretched to it, as A1111 does",
  },
  {
    fields: ["mask_blur", "mask_blur_x", "mask_blur_y"],
    status: "supported",
    img2img: true,
    note: "OpenCV's Gaussian at the mask's own size with A1111's kernel size, per axis; `mask_blur` sets both (default 4)",
  },
  {
    fields: ["inpainting_mask_invert"],
    status: "supported",
    img2img: true,
    note: "`1` swaps what is repainted and kept",
  },
  {
    fields: ["inpainting_fill"],
    status: "supported",
    img2img: true,
    note: "`0` fill (the default, as A1111), `1` original, `2` latent noise, `3` latent nothing",
  },
  {
    fields: ["resize_mode"],
    status: "partly",
    img2img: true,
    note: 'only "just resize" (`0`): the init image is stretched to `width` x `height`; other modes behave as `0`',
  },
  {
    fields: ["include_init_images"],
    status: "supported",
    img2img: true,
    note: "`false` (default) echoes `init_images` and `mask` as `null` in `parameters`",
  },
  {
    fields: ["inpaint_full_res", "inpaint_full_res_padding"],
    status: "supported",
    img2img: true,
    note: "default `true` and `0` as A1111's API: the masked region plus padding is inpainted at `width` x `height` and pasted back",
  },
  {
    fields: ["mask_round", "initial_noise_multiplier", "latent_mask", "image_cfg_scale"],
    status: "ignored",
    img2img: true,
    note: "",
  },
  {
    fields: ["subseed", "subseed_strength", "seed_resize_from_h", "seed_resize_from_w"],
    status: "supported",
    note: "A1111's slerp of the two noises; `-1` draws a random subseed; seeds up to 2^64-1",
  },
  {
    fields: ["restore_faces", "tiling", "s_min_uncond"],
    status: "ignored",
    note: "",
  },
  {
    fields: ["eta"],
    status: "supported",
    note: "k-diffusion's eta for Euler a, DPM2 a, DPM++ 2S a, DPM++ SDE, DPM++ 2M SDE and DPM++ 3M SDE (default 1, the setting `eta_ancestral`; 0: no fresh noise) and DDIM's (default 0, `eta_ddim`); `null`: that setting from `override_settings` or `options`; other samplers ignore it, as A1111; infotext `Eta` / `Eta DDIM` when not the default",
  },
  {
    fields: ["s_noise"],
    status: "differs",
    note: "scales the fresh noise of the samplers A1111 gives it (those of `eta` but DDIM, and the churn of Euler, Heun and DPM2; default 1; infotext `Sigma noise`); `override_settings.s_noise` wins as in A1111 1.6+, which takes only its setting and ignores this field",
  },
  {
    fields: ["s_churn", "s_tmin", "s_tmax"],
    status: "differs",
    note: "Karras et al.'s churn of Euler, Heun and DPM2 as k-diffusion's (`s_tmax` 0: no bound; infotext `Sigma churn`, `Sigma tmin`, `Sigma tmax`); other samplers ignore them, as A1111; `override_settings` wins as in A1111 1.6+, which takes only its settings and ignores these fields",
  },
  {
    fields: [
      "enable_hr",
      "hr_scale",
      "hr_upscaler",
      "hr_second_pass_steps",
      "hr_resize_x",
      "hr_resize_y",
      "hr_sampler_name",
      "hr_scheduler",
      "hr_prompt",
      "hr_negative_prompt",
    ],
    status: "supported",
    note: "A1111's target sizes and second-pass step count; latent and pixel upscalers; not with a refiner, ControlNet or init image",
  },
  {
    fields: ["hr_checkpoint_name"],
    status: "differs",
    note: 'only "Use same checkpoint" (or absent): another checkpoint for the second pass is refused',
  },
  {
    fields: ["firstphase_width", "firstphase_height"],
    status: "ignored",
    note: "A1111's pre-1.0 hires fields",
  },
  {
    fields: [
      "do_not_save_samples",
      "do_not_save_grid",
      "disable_extra_networks",
      "comments",
      "force_task_id",
      "infotext",
    ],
    status: "ignored",
    note: "",
  },
  {
    fields: ["script_name", "script_args"],
    status: "partly",
    note: '`"x/y/z plot"` with A1111 1.10\'s 18 positional args (axis types as indices into its txt2img / img2img axis options; values text or dropdown lists with csv_mode; draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds, vary_seeds_x/y/z, margin_size). Axes: Nothing, Seed, Var. seed, Var. strength, Steps, Hires steps, CFG Scale, Prompt S/R, Prompt order, Sampler, Hires sampler, Checkpoint name, Sigma Churn, Sigma min, Sigma max, Sigma noise, Schedule type, Eta, Clip skip, Denoising, Hires upscaler, VAE, Refiner switch at, Size; the others (schedule sigmas and rho, styles, face restore, token merging, ...) are refused with a 422 naming them. Each cell runs as a job; a failed cell fails the request (A1111 leaves it blank), an interrupt ends the plot with the cells done. The work budget counts every cell. Other script names: 422',
  },
];

/** The request fields the coverage rows must account for: those validated and those A1111's models define. */
export function a1111RequestFields(): string[] {
  return [
    ...new Set([
      ...Object.keys(A1111Img2Img.shape),
      ...Object.keys(TXT2IMG_DEFAULTS),
      ...Object.keys(IMG2IMG_DEFAULTS),
    ]),
  ];
}
