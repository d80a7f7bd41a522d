/**
 * The options beyond the basic settings (schedule type, variation seed, hires fix, inpainting) as the API fields
 * they map to, A1111's names, and back from a past job: one place that knows which go with which kind of job, so
 * sending and "Use these settings" cannot disagree.
 */
import type { ImageRef, JobCreateRequest, JobParams, JobStatus, JobType } from "./api-client.js";
import type { FormValues } from "./params-form.js";

/** What the server uses for a field a job left out (the defaults documented in src/server/api-types.ts). */
export const SERVER_DEFAULTS = {
  scheduler: "Automatic",
  hr_scale: 2,
  hr_upscaler: "Latent",
  hr_second_pass_steps: 0,
  hr_denoising_strength: 0.75,
  mask_blur: 0,
  inpainting_fill: "original",
  inpaint_full_res_padding: 32,
} as const;

/** A seed box's text for the API: a number while that is exact, the decimal string beyond 2^53 - 1. */
export function requestSeed(text: string): number | string {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}

/** The request fields of the options, for a job of this type: each only where it applies and is switched on. */
export function optionFields(v: FormValues, type: JobType): Partial<JobCreateRequest> {
  const out: Partial<JobCreateRequest> = { scheduler: v.scheduler };
  if (v.subseed_strength > 0) {
    out.subseed = requestSeed(v.subseed);
    out.subseed_strength = v.subseed_strength;
  }
  if (v.seed_resize_from_w > 0 && v.seed_resize_from_h > 0) {
    out.seed_resize_from_w = v.seed_resize_from_w;
    out.seed_resize_from_h = v.seed_resize_from_h;
  }
  if (type === "txt2img" && v.enable_hr) {
    Object.assign(out, {
      enable_hr: true,
      hr_upscaler: v.hr_upscaler,
      hr_scale: v.hr_scale,
      // 0 is "use the scale", as in A1111; left out rather than sent.
      ...(v.hr_resize_x > 0 ? { hr_resize_x: v.hr_resize_x } : {}),
      ...(v.hr_resize_y > 0 ? { hr_resize_y: v.hr_resize_y } : {}),
      hr_second_pass_steps: v.hr_second_pass_steps,
      // A txt2img job's denoising strength is its second pass's (A1111's field for both).
      denoising_strength: v.hr_denoising_strength,
      ...(v.hr_sampler_name ? { hr_sampler_name: v.hr_sampler_name } : {}),
      ...(v.hr_scheduler ? { hr_scheduler: v.hr_scheduler } : {}),
      ...(v.hr_prompt ? { hr_prompt: v.hr_prompt } : {}),
      ...(v.hr_negative_prompt ? { hr_negative_prompt: v.hr_negative_prompt } : {}),
    } satisfies Partial<JobCreateRequest>);
  }
  if (type === "inpaint") {
    Object.assign(out, {
      mask_blur: v.mask_blur,
      inpainting_mask_invert: v.inpainting_mask_invert,
      inpainting_fill: v.inpainting_fill as JobCreateRequest["inpainting_fill"],
      inpaint_full_res: v.inpaint_full_res,
      inpaint_full_res_padding: v.inpaint_full_res_padding,
    } satisfies Partial<JobCreateRequest>);
  }
  return out;
}

/**
 * The form's values for the options of a past job's image: what it used, and for what it left out what the server
 * used then (so a job without a hires fix switches it off, one without a variation sets the strength to 0). The
 * inpainting options come from inpainting jobs only; other jobs leave them as they are.
 */
export function optionValues(job: JobStatus, image: ImageRef | undefined): Partial<FormValues> {
  const p: JobParams = job.params;
  const hires = p.type === "txt2img" && p.enable_hr === true;
  const out: Partial<FormValues> = {
    scheduler: p.scheduler ?? SERVER_DEFAULTS.scheduler,
    subseed_strength: p.subseed_strength ?? 0,
    seed_resize_from_w: Math.max(0, p.seed_resize_from_w ?? 0),
    seed_resize_from_h: Math.max(0, p.seed_resize_from_h ?? 0),
    enable_hr: hires,
  };
  if (p.subseed !== undefined && p.subseed !== -1) out.subseed = imageSubseed(p.subseed, job, image);
  if (hires)
    Object.assign(out, {
      hr_upscaler: p.hr_upscaler ?? SERVER_DEFAULTS.hr_upscaler,
      hr_scale: p.hr_scale ?? SERVER_DEFAULTS.hr_scale,
      hr_resize_x: p.hr_resize_x ?? 0,
      hr_resize_y: p.hr_resize_y ?? 0,
      hr_second_pass_steps: p.hr_second_pass_steps ?? SERVER_DEFAULTS.hr_second_pass_steps,
      hr_denoising_strength: p.denoising_strength ?? SERVER_DEFAULTS.hr_denoising_strength,
      hr_sampler_name: p.hr_sampler_name ?? "",
      hr_scheduler: p.hr_scheduler ?? "",
      hr_prompt: p.hr_prompt ?? "",
      hr_negative_prompt: p.hr_negative_prompt ?? "",
    } satisfies Partial<FormValues>);
  if (p.type === "inpaint")
    Object.assign(out, {
      mask_blur: p.mask_blur ?? p.mask_blur_x ?? p.mask_blur_y ?? SERVER_DEFAULTS.mask_blur,
      inpainting_mask_invert: p.inpainting_mask_invert ?? false,
      inpainting_fill: p.inpainting_fill ?? SERVER_DEFAULTS.inpainting_fill,
      inpaint_full_res: p.inpaint_full_res ?? false,
      inpaint_full_res_padding: p.inpaint_full_res_padding ?? SERVER_DEFAULTS.inpaint_full_res_padding,
    } satisfies Partial<FormValues>);
  return out;
}

/**
 * The variation seed of one image of a job: image j of a batch takes the job's subseed + j (the seed stays the
 * same for all), so the image's own is what reproduces it. In BigInt: seeds run past 2^53.
 */
function imageSubseed(subseed: number | string, job: JobStatus, image: ImageRef | undefined): string {
  const index = image
    ? Math.max(
        0,
        job.images.findIndex((i) => i.id === image.id),
      )
    : 0;
  return (BigInt(subseed) + BigInt(index)).toString();
}
