/**
 * Request bodies of the AUTOMATIC1111-compatible routes. Every field is optional and nullable, as in A1111's
 * pydantic models; unknown fields pass through (they are accepted, ignored and echoed back in `parameters`).
 */
import { z } from "zod";
import { MAX_SIDE, PngSafeText, SeedRequest } from "./api-types.js";

const int = (min: number, max: number) => z.number().int().min(min).max(max).nullish();
const num = (min: number, max: number) => z.number().min(min).max(max).nullish();

export const A1111Txt2Img = z.looseObject({
  prompt: PngSafeText(20_000).nullish(),
  negative_prompt: PngSafeText(20_000).nullish(),
  /** Not A1111's (it has no second prompt): SDXL's prompts for the second text encoder, as on our API. */
  prompt_2: PngSafeText(20_000).nullish(),
  negative_prompt_2: PngSafeText(20_000).nullish(),
  /** A1111's refiner: a checkpoint title, file name, name or hash ("None" or empty: no refiner). */
  refiner_checkpoint: z.string().max(1000).nullish(),
  refiner_switch_at: num(0, 1),
  styles: z.array(z.string()).nullish(),
  /** 0 to 2^64 - 1 as a number (kept exact by the body parser) or a string, as A1111 takes it; -1 = random. */
  seed: SeedRequest.nullish(),
  /** The variation seed (-1: random) and its strength; seed resize (-1 or 0: off). */
  subseed: SeedRequest.nullish(),
  subseed_strength: num(0, 1),
  seed_resize_from_h: int(-1, MAX_SIDE),
  seed_resize_from_w: int(-1, MAX_SIDE),
  /** The hires fix (txt2img). */
  enable_hr: z.boolean().nullish(),
  hr_scale: z.number().gt(0).max(16).nullish(),
  hr_resize_x: int(0, MAX_SIDE),
  hr_resize_y: int(0, MAX_SIDE),
  hr_upscaler: z.string().max(200).nullish(),
  hr_second_pass_steps: int(0, 150),
  hr_prompt: PngSafeText(20_000).nullish(),
  hr_negative_prompt: PngSafeText(20_000).nullish(),
  hr_sampler_name: z.string().max(100).nullish(),
  hr_scheduler: z.string().max(100).nullish(),
  sampler_name: z.string().max(100).nullish(),
  sampler_index: z.string().max(100).nullish(),
  scheduler: z.string().max(100).nullish(),
  batch_size: int(1, 8),
  n_iter: int(1, 16),
  steps: int(1, 150),
  cfg_scale: num(0, 30),
  /** A1111 floors sizes to the latent grid (multiples of 8); so do we. */
  width: int(8, MAX_SIDE),
  height: int(8, MAX_SIDE),
  denoising_strength: num(0, 1),
  /** The sampler knobs (a1111-sampler-knobs.ts): eta, s_noise, and the churn, refused above 0 where it would act. */
  eta: num(0, 100),
  s_noise: num(0, 100),
  s_churn: num(0, 100),
  s_tmin: z.number().min(0).nullish(),
  s_tmax: z.number().min(0).nullish(),
  override_settings: z.record(z.string(), z.unknown()).nullish(),
  send_images: z.boolean().nullish(),
  save_images: z.boolean().nullish(),
  /** A selectable script: "x/y/z plot" (a1111-xyz.ts), its arguments positional as its run() takes them. */
  script_name: z.string().max(200).nullish(),
  script_args: z.array(z.unknown()).max(100).nullish(),
  /** Scripts that run on every generation; of these, A1111's ControlNet extension's (a1111-controlnet.ts). */
  alwayson_scripts: z.record(z.string(), z.unknown()).nullish(),
});
export type A1111Txt2Img = z.infer<typeof A1111Txt2Img>;

export const A1111Img2Img = A1111Txt2Img.extend({
  init_images: z.array(z.string()).min(1, "needs one image (base64 PNG or JPEG)").nullish(),
  mask: z.string().nullish(),
  mask_blur: num(0, 64),
  mask_blur_x: num(0, 64),
  mask_blur_y: num(0, 64),
  inpainting_fill: int(0, 3),
  inpainting_mask_invert: int(0, 1),
  /** A bool in A1111's model, which also takes 0 and 1. */
  inpaint_full_res: z.union([z.boolean(), int(0, 1)]).nullish(),
  inpaint_full_res_padding: int(0, 256),
  resize_mode: int(0, 3),
  include_init_images: z.boolean().nullish(),
});
export type A1111Img2Img = z.infer<typeof A1111Img2Img>;

export const A1111PngInfo = z.looseObject({ image: z.string().min(1, "needs a base64 PNG") });

export const A1111ProgressQuery = z.object({
  skip_current_image: z
    .enum(["true", "false", "1", "0", "True", "False"])
    .optional()
    .transform((v) => v === "true" || v === "1" || v === "True"),
});

/** Defaults of A1111's txt2img request model, echoed in `parameters` under whatever the client sent. */
export const TXT2IMG_DEFAULTS: Readonly<Record<string, unknown>> = {
  prompt: "",
  negative_prompt: "",
  styles: null,
  seed: -1,
  subseed: -1,
  subseed_strength: 0,
  seed_resize_from_h: -1,
  seed_resize_from_w: -1,
  sampler_name: null,
  scheduler: null,
  batch_size: 1,
  n_iter: 1,
  steps: 50,
  cfg_scale: 7.0,
  width: 512,
  height: 512,
  restore_faces: null,
  tiling: null,
  do_not_save_samples: false,
  do_not_save_grid: false,
  eta: null,
  denoising_strength: null,
  override_settings: null,
  override_settings_restore_afterwards: true,
  disable_extra_networks: false,
  comments: null,
  enable_hr: false,
  firstphase_width: 0,
  firstphase_height: 0,
  hr_scale: 2.0,
  hr_upscaler: null,
  hr_second_pass_steps: 0,
  hr_resize_x: 0,
  hr_resize_y: 0,
  hr_checkpoint_name: null,
  hr_sampler_name: null,
  hr_scheduler: null,
  hr_prompt: "",
  hr_negative_prompt: "",
  sampler_index: "Euler",
  script_name: null,
  script_args: [],
  send_images: true,
  save_images: false,
  alwayson_scripts: {},
  infotext: null,
  refiner_checkpoint: null,
  refiner_switch_at: null,
};

export const IMG2IMG_DEFAULTS: Readonly<Record<string, unknown>> = {
  ...TXT2IMG_DEFAULTS,
  init_images: null,
  resize_mode: 0,
  image_cfg_scale: null,
  mask: null,
  mask_blur_x: 4,
  mask_blur_y: 4,
  mask_blur: null,
  mask_round: true,
  inpainting_fill: 0,
  inpaint_full_res: true,
  inpaint_full_res_padding: 0,
  inpainting_mask_invert: 0,
  initial_noise_multiplier: null,
  latent_mask: null,
  denoising_strength: 0.75,
  include_init_images: false,
};
