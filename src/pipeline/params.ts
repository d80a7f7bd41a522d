import { InputError } from "../errors.js";
import { MAX_IMAGE_SIDE, type ImageSource } from "../image/codec.js";
import { MAX_SEED, parseSeed, RANDOM_SEED, type SeedInput } from "../random/seed.js";
import { findPreprocessor } from "../control/preprocessors.js";
import type { ScheduleType } from "../schedulers/index.js";
import { resolveHires } from "./hires-params.js";
import { checkedInteger, checkedNumber } from "./param-checks.js";
import { samplerAndSchedule } from "./sampler-choice.js";
import { resolveSamplerKnobs, type SamplerKnobs } from "./sampler-knobs.js";
import type { ThresholdSpec } from "../control/preprocessor.js";

/** Progress of one generation, emitted after every model call. */
export interface StepEvent {
  /** 1-based step within the current batch. */
  step: number;
  steps: number;
  /** 0-based batch index (of batchCount) and how many there are. */
  batch: number;
  batches: number;
  /** Seconds since the generation started. */
  elapsed: number;
  /**
   * The current latents [batch, 4, h, w] (unscaled), e.g. to compare runs step by step. Raw data: unlike
   * `preview`, nothing here went through the safety checker.
   */
  latents: Float32Array;
  /**
   * A cheap RGB approximation of the current latents (image size, the first image of the batch), made and
   * encoded as PNG on demand, once per step however often it is asked for. With a safety checker, it is
   * shown only as the checker and policy of the final images allow (see StepPreview).
   */
  preview: () => Promise<StepPreview>;
}

/**
 * What the safety checker made of a step's preview, under the policy of the final images:
 * - "unchecked": the pipeline has no safety checker (none found, or turned off);
 * - "passed": the checker ran on this preview and did not flag it (nor anything earlier in the generation);
 * - "blocked": withheld (`png` is undefined), policy "block";
 * - "blurred": blurred, policy "blur";
 * - "flagged": shown unaltered and marked, policy "flag".
 * Once a preview or a final image of a generation is flagged, every later preview of it counts as flagged.
 */
export type PreviewSafety = "unchecked" | "passed" | "blocked" | "blurred" | "flagged";

export interface StepPreview {
  /** The preview as PNG; undefined when the safety policy withholds it. */
  png: Buffer | undefined;
  safety: PreviewSafety;
  /**
   * The step whose latents it shows: the event's own, or an earlier one when the safety checker's share of the
   * time was spent (see SafeguardOptions.previewCheckShare).
   */
  step: number;
}

/**
 * A LoRA (or LyCORIS file) to merge for one generation, besides those the prompts name with `<lora:NAME:W>`: by
 * name in the LoRA folder (LoadOptions.loraDir), as a .safetensors path, or as the file's bytes (with a name for
 * messages and the infotext). `weight` is the multiplier of both the text encoders and the UNet (default 1);
 * `textEncoderWeight` and `unetWeight` set them apart, as A1111's `<lora:NAME:TE:UNET>`.
 */
export interface LoraRequest {
  name?: string;
  path?: string;
  bytes?: Uint8Array;
  weight?: number;
  textEncoderWeight?: number;
  unetWeight?: number;
}

/**
 * Generation parameters, in the library's camelCase names (those of ResolvedParams). The HTTP APIs (ours and the
 * AUTOMATIC1111-compatible `/sdapi/v1`) keep A1111's snake_case names on the wire and map them onto these in
 * src/server/job-params.ts.
 */
export interface GenerateParams extends SamplerKnobs {
  prompt: string;
  negativePrompt?: string;
  /** SDXL: the prompt of the second text encoder (OpenCLIP bigG), as diffusers' prompt_2; absent: the prompt. */
  prompt2?: string;
  /** SDXL: the second encoder's negative prompt (diffusers' negative_prompt_2); absent: the negative prompt. */
  negativePrompt2?: string;
  steps?: number;
  /** Classifier-free guidance scale (A1111's cfg_scale); 1 disables guidance. */
  cfgScale?: number;
  /**
   * 0 to 2^64 - 1, with PyTorch's semantics (`torch.Generator().manual_seed(seed)`); -1 or absent: a random seed
   * (reported in the result). Above 2^53 - 1 a number is no longer exact: pass a bigint or a decimal string.
   * Image j of a batch (counting across batchCount) uses seed + j, as in AUTOMATIC1111.
   */
  seed?: SeedInput;
  /**
   * A1111's variation seed: the initial noise is spherically interpolated from the seed's towards this seed's by
   * `subseedStrength`. -1 or absent: a random one (used only with a strength above 0). With a strength above 0,
   * every image of the generation takes the same seed and image j the variation seed subseed + j, as in A1111.
   */
  subseed?: SeedInput;
  /** 0 (default: no variation) to 1 (the subseed's noise alone). */
  subseedStrength?: number;
  /**
   * A1111's "resize seed from": the seed's noise is drawn for an image of this width and height (pixels; both
   * above 0, else off) and pasted centred into the noise of the actual size, so a composition found at one size
   * carries over to another.
   */
  seedResizeFromW?: number;
  seedResizeFromH?: number;
  /** A1111's hires fix (txt2img only): generate, upscale, then repaint at the larger size. */
  hires?: HiresParams;
  /** The sampler's name (A1111's sampler_name), e.g. "Euler a", "DPM++ 2M". */
  sampler?: string;
  /**
   * The schedule type (A1111 1.9+'s `scheduler`): "Automatic" (the sampler's own, the default), "Uniform", "Karras",
   * "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM"
   * or "Beta", for the k-diffusion style samplers (Euler, Euler a, LMS, Heun, DPM++ 2M, DPM++ 2M SDE, DPM++ SDE).
   */
  schedule?: string;
  width?: number;
  height?: number;
  /** Images per batch (A1111's batch_size) and how many batches run one after the other (A1111's n_iter). */
  batchSize?: number;
  batchCount?: number;
  /** img2img: how much of the init image to repaint, in (0, 1]. */
  denoisingStrength?: number;
  /** img2img: the init image (a sketch or a photo; A1111's init_images[0]). */
  initImage?: ImageSource;
  /** inpainting: white = repaint, black = keep; another size than the init image's is stretched to it. */
  mask?: ImageSource;
  /**
   * inpainting: the Gaussian blur of the mask's edge, its standard deviation in pixels of the mask (A1111's
   * mask_blur, 0 to 64, default 0); `maskBlurX` and `maskBlurY` set one axis (A1111's mask_blur_x / _y).
   */
  maskBlur?: number;
  maskBlurX?: number;
  maskBlurY?: number;
  /** inpainting: repaint what the mask keeps and keep what it paints (A1111's inpainting_mask_invert). */
  invertMask?: boolean;
  /**
   * inpainting: what the masked region starts from (A1111's inpainting_fill, also as its numbers 0 to 3): "fill"
   * (the surrounding colours, blurred in), "original" (the init image; the default), "latent noise" or
   * "latent nothing" (zero latents).
   */
  inpaintingFill?: InpaintingFill | 0 | 1 | 2 | 3;
  /**
   * inpainting: work on the masked region only (A1111's inpaint_full_res, "Only masked"): its bounding box grown by
   * `inpaintFullResPadding` pixels (default 32) to the generation's aspect ratio is inpainted at the generation size,
   * then scaled back and pasted into the init image, which keeps its own size.
   */
  inpaintFullRes?: boolean;
  inpaintFullResPadding?: number;
  /**
   * 1 = the text encoder's last layer; 2 = the penultimate (what many anime models want). SD1 only: as in A1111,
   * SD2 and SDXL always condition on their penultimate layer.
   */
  clipSkip?: number;
  /**
   * With a refiner loaded (LoadOptions.refiner): the fraction of the schedule after which it takes over, as
   * A1111's refiner_switch_at (default 0.8; 1 = never). An error without a refiner.
   */
  refinerSwitchAt?: number;
  /**
   * A VAE for this generation instead of the loaded one (LoadOptions.vae): a VAE file or folder as that option takes
   * (a TAESD excepted), opened once and kept with the pipeline; null: the checkpoint's own.
   */
  vae?: string | null;
  /** LoRAs to merge besides those the prompts name (`<lora:NAME:W>` in a prompt needs nothing here). */
  loras?: LoraRequest[];
  /**
   * ControlNets guiding the generation, each with its control image (several sum their residuals, as diffusers'
   * MultiControlNetModel does), as A1111's ControlNet extension's units.
   */
  controlnet?: ControlNetUnit[];
  /** Identifies the job in the robust watermark's payload (the server passes its job id; random otherwise). */
  jobId?: string;
  onStep?: (e: StepEvent) => void;
  signal?: AbortSignal;
  /**
   * Asked after each step but a batch's last: true ends that batch's denoising there (A1111's skip), and its images
   * are decoded from the latents as they stand; the next batch runs in full. With the hires fix it ends whichever
   * pass is running, and a batch skipped in its first pass runs none of the second (its upscaled latents decoded).
   */
  skipBatch?: (batch: number) => boolean;
}

/**
 * AUTOMATIC1111's hires fix, as its txt2img does it: the first pass runs at width x height, its result is upscaled
 * (in latent space, or decoded, upscaled as pixels and encoded again), then a second pass repaints it at the larger
 * size from `denoisingStrength` of the way up the noise schedule.
 */
export interface HiresParams {
  /** The factor of the first pass's size (A1111's hr_scale, default 2); unused when resizeX or resizeY is set. */
  scale?: number;
  /**
   * A size to reach instead (hr_resize_x / hr_resize_y, pixels; 0 or absent: unset). One alone keeps the aspect
   * ratio; both: the image is upscaled to cover that size and its centre cropped to it, as A1111 does.
   */
  resizeX?: number;
  resizeY?: number;
  /**
   * "Latent" (default), "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent
   * (nearest)", "Latent (nearest-exact)", "Lanczos", "Nearest", or an upscaler the pipeline was given by name
   * (PipelineParts.upscalers).
   */
  upscaler?: string;
  /** Steps of the second pass (hr_second_pass_steps); 0 or absent: as many as the first pass. */
  steps?: number;
  /** How much of the upscaled image the second pass repaints, above 0 to 1 (default 0.75, A1111's). */
  denoisingStrength?: number;
  /** The second pass's prompts (hr_prompt, hr_negative_prompt); empty or absent: the first pass's. */
  prompt?: string;
  negativePrompt?: string;
  /** The second pass's sampler and schedule type (hr_sampler_name, hr_scheduler); absent: the first pass's. */
  sampler?: string;
  schedule?: string;
}

/** The hires fix with every default filled and the sizes worked out as A1111's calculate_target_resolution. */
export interface ResolvedHires {
  upscaler: string;
  /** As asked: the scale when no resize was given (written as "Hires upscale"), else the resize ("Hires resize"). */
  scale?: number;
  resizeX?: number;
  resizeY?: number;
  /** The size the first pass is upscaled to, then the final size after cropping to the resize (multiples of 8). */
  upscaleWidth: number;
  upscaleHeight: number;
  width: number;
  height: number;
  /** As asked: 0 = the first pass's count. */
  steps: number;
  denoisingStrength: number;
  /** Filled with the first pass's when not given. */
  prompt: string;
  negativePrompt: string;
  sampler: string;
  schedule: ScheduleType;
}

/** What the masked region starts from: A1111's inpainting_fill, whose numbers 0 to 3 are this order. */
export type InpaintingFill = "fill" | "original" | "latent noise" | "latent nothing";
export const INPAINTING_FILLS: readonly InpaintingFill[] = ["fill", "original", "latent noise", "latent nothing"];

/** An inpainting's mask options, resolved. */
export interface InpaintOptions {
  /** The mask blur's standard deviation along rows and along columns (0: none). */
  blurX: number;
  blurY: number;
  invert: boolean;
  fill: InpaintingFill;
  /** Present for "only masked": the padding around the masked region, in pixels of the init image. */
  fullResPadding?: number;
}

/** The padding of "only masked" when none is given: A1111's default in its page. */
export const DEFAULT_FULL_RES_PADDING = 32;
/** A1111's limits: its sliders go to 64 for the blur and 256 for the padding. */
export const MAX_MASK_BLUR = 64;
export const MAX_FULL_RES_PADDING = 256;

/** How a control image meets the generation size, with the names of A1111's ControlNet extension. */
export type ControlResizeMode = "Just Resize" | "Crop and Resize" | "Resize and Fill";
const RESIZE_MODES: readonly ControlResizeMode[] = ["Just Resize", "Crop and Resize", "Resize and Fill"];

/** One ControlNet unit of a request (A1111's ControlNet extension unit, in camelCase). */
export interface ControlNetUnit {
  /** The control image: a user's sketch or photo for a preprocessor, or a ready control map (module "none"). */
  image: ImageSource;
  /** The ControlNet: a .safetensors file (lllyasviel's layout or diffusers names) or a diffusers ControlNet folder. */
  model: string;
  /** A folder with the ControlNet's config.json, for a single file of non-standard size (`--control-config`). */
  config?: string;
  /** The preprocessor (control/preprocessors.ts): "none" (default), "scribble", "canny", ... */
  module?: string;
  /** The conditioning scale, 0 to 2 (default 1). */
  weight?: number;
  /** The fraction of the model calls after which the ControlNet starts (default 0) and after which it stops (default 1). */
  guidanceStart?: number;
  guidanceEnd?: number;
  /** How the image meets the generation size (default "Crop and Resize", as A1111's; 0, 1, 2 name the same modes). */
  resizeMode?: ControlResizeMode | 0 | 1 | 2;
  /** The preprocessor's parameters (canny: low and high thresholds; scribble: the ink threshold); -1 or absent: its default. */
  thresholdA?: number;
  thresholdB?: number;
}

/** A ControlNet unit with every default filled and every value checked. */
export interface ResolvedControlUnit {
  image: ImageSource;
  model: string;
  config?: string;
  /** The preprocessor's canonical name. */
  module: string;
  weight: number;
  guidanceStart: number;
  guidanceEnd: number;
  resizeMode: ControlResizeMode;
  /** Only the thresholds the module reads are present. */
  thresholdA?: number;
  thresholdB?: number;
}

/** More units than any use needs would only multiply the cost of every step. */
export const MAX_CONTROL_UNITS = 8;

/** With the sampler knobs that change the generation (eta as asked, the others when not their defaults). */
export interface ResolvedParams extends SamplerKnobs {
  prompt: string;
  negativePrompt: string;
  /** Given only when the request named one. */
  prompt2?: string;
  negativePrompt2?: string;
  steps: number;
  cfgScale: number;
  /**
   * The first image's seed, exact (a random one drawn); image j of the generation uses seed + j (without a
   * variation; with one, every image uses the seed and image j the variation seed subseed + j).
   */
  seed: bigint;
  /** The first image's variation seed (a random one drawn) and its strength, present when the strength is above 0. */
  subseed?: bigint;
  subseedStrength?: number;
  /** The size (pixels) the seed's noise is drawn at, when resized. */
  seedResizeFrom?: { width: number; height: number };
  /** The hires fix, when asked for. */
  hires?: ResolvedHires;
  sampler: string;
  /** The schedule type the sampler walks; "automatic": its own. */
  schedule: ScheduleType;
  width: number;
  height: number;
  batchSize: number;
  batchCount: number;
  denoisingStrength: number;
  initImage?: ImageSource;
  mask?: ImageSource;
  /** Present with a mask: how it is prepared and used. */
  inpaint?: InpaintOptions;
  clipSkip: number;
  /** Present when the generation may hand over to a refiner. */
  refinerSwitchAt?: number;
  /** The ControlNet units, when the request has any. */
  controlnet?: ResolvedControlUnit[];
}

/** What a model recommends or needs where a request says nothing; the pipeline's own defaults otherwise. */
export interface ModelDefaults {
  size: number;
  cfgScale?: number;
  steps?: number;
  sampler?: string;
  /** The refiner's switch point when the model has a refiner; undefined without one. */
  refinerSwitchAt?: number;
  randomSeed: () => bigint;
  /** The pixel upscalers the pipeline has besides the built-in ones, for the hires fix's upscaler names. */
  upscalers?: readonly string[];
}

/** Steps when neither the request nor the model says. */
export const DEFAULT_STEPS = 20;

export const DEFAULT_SAMPLER = "euler-a";
/** For models that do not recommend their own (generation_config.json): what SD1.x is used at. */
export const DEFAULT_CFG_SCALE = 7;

const integer = checkedInteger;
const number = checkedNumber;

/** The nearest valid size for a value in range but off the 8 px grid; the model's native size for one out of range. */
function sizeExample(value: number | undefined, native: number): number {
  if (value === undefined || !Number.isFinite(value) || value < 8 || value > MAX_IMAGE_SIDE) return native;
  return Math.min(MAX_IMAGE_SIDE, Math.max(8, Math.round(value / 8) * 8));
}

/** Checks every parameter up front, so bad input fails before any compute, with a message naming the fix. */
export function resolveParams(p: GenerateParams, defaults: ModelDefaults): ResolvedParams {
  if (typeof p.prompt !== "string") throw new InputError("prompt must be a string");
  // Every output carries the prompts in its metadata, and PNG text (and A1111's readers) cannot hold a NUL:
  // refused here, before any compute, rather than when the finished image is written.
  const texts = [
    ["prompt", p.prompt],
    ["negative prompt", p.negativePrompt ?? ""],
    ["second prompt", p.prompt2 ?? ""],
    ["second negative prompt", p.negativePrompt2 ?? ""],
  ] as const;
  for (const [name, text] of texts) {
    if (typeof text !== "string") throw new InputError(`the ${name} must be a string`);
    if (text.includes("\0"))
      throw new InputError(
        `the ${name} contains a NUL character (U+0000), which the image's metadata cannot hold; remove it`,
      );
  }
  if (p.refinerSwitchAt !== undefined && defaults.refinerSwitchAt === undefined) {
    throw new InputError(
      "a refiner switch point (refinerSwitchAt, A1111's refiner_switch_at) needs a refiner: load one " +
        "(--refiner PATH, LoadOptions.refiner) or leave the switch point out",
    );
  }
  const size = (name: string, v: number | undefined) =>
    integer(
      name,
      v ?? defaults.size,
      8,
      MAX_IMAGE_SIDE,
      `${name} must be a multiple of 8 between 8 and ${MAX_IMAGE_SIDE} (the VAE works on 8x8 pixel blocks), e.g. ${sizeExample(v, defaults.size)}`,
    );
  const width = size("width", p.width);
  const height = size("height", p.height);
  if (width % 8 !== 0)
    throw new InputError(
      `width ${width} is not a multiple of 8: use ${Math.round(width / 8) * 8} (the VAE works on 8x8 pixel blocks)`,
    );
  if (height % 8 !== 0)
    throw new InputError(
      `height ${height} is not a multiple of 8: use ${Math.round(height / 8) * 8} (the VAE works on 8x8 pixel blocks)`,
    );
  const asked = parseSeed(p.seed ?? RANDOM_SEED);
  const seed = asked === RANDOM_SEED ? defaults.randomSeed() : asked;
  const batchSize = integer("batch size", p.batchSize ?? 1, 1, 64, "use an integer from 1 to 64");
  const batchCount = integer("batch count", p.batchCount ?? 1, 1, 1000, "use an integer from 1 to 1000");
  const subseedStrength = number(
    "variation seed strength",
    p.subseedStrength ?? 0,
    0,
    1,
    "use a number from 0 (the seed alone) to 1 (the variation seed alone)",
  );
  const askedSubseed = subseedStrength > 0 ? parseSeed(p.subseed ?? RANDOM_SEED, "variation seed") : undefined;
  const subseed = askedSubseed === RANDOM_SEED ? defaults.randomSeed() : askedSubseed;
  // With a variation every image takes the seed itself and the variation seeds count up instead (A1111).
  checkSeedsFit(seed, subseed === undefined ? batchSize * batchCount : 1);
  if (subseed !== undefined) checkSeedsFit(subseed, batchSize * batchCount, "variation seed");
  const seedResizeFrom = resolveSeedResize(p.seedResizeFromW, p.seedResizeFromH);
  const init = p.initImage;
  if (p.mask !== undefined && init === undefined)
    throw new InputError("a mask needs an init image: pass the image to inpaint with --init (initImage)");
  const switchAt = p.refinerSwitchAt ?? defaults.refinerSwitchAt;
  const asSampler = p.sampler ?? defaults.sampler ?? DEFAULT_SAMPLER;
  const { sampler, schedule } = samplerAndSchedule(asSampler, p.schedule);
  if (p.hires !== undefined && init !== undefined)
    throw new InputError(
      "the hires fix is for text-to-image: leave out hires with an init image (upscale the image and run img2img instead)",
    );
  const hires =
    p.hires === undefined
      ? undefined
      : resolveHires(
          p.hires,
          {
            width,
            height,
            prompt: p.prompt,
            negativePrompt: p.negativePrompt ?? "",
            sampler: asSampler,
            schedule: p.schedule,
          },
          defaults.upscalers,
        );
  // The last image's seed: ENSD's seed + delta must still be a seed.
  const lastSeed = subseed === undefined ? seed + BigInt(batchSize * batchCount - 1) : seed;
  const knobs = resolveSamplerKnobs(p, lastSeed);
  return {
    prompt: p.prompt,
    negativePrompt: p.negativePrompt ?? "",
    ...(p.prompt2 !== undefined ? { prompt2: p.prompt2 } : {}),
    ...(p.negativePrompt2 !== undefined ? { negativePrompt2: p.negativePrompt2 } : {}),
    steps: integer(
      "steps",
      p.steps ?? defaults.steps ?? DEFAULT_STEPS,
      1,
      1000,
      "use an integer from 1 to 1000 (20-30 is typical)",
    ),
    cfgScale: number(
      "cfg scale",
      p.cfgScale ?? defaults.cfgScale ?? DEFAULT_CFG_SCALE,
      0,
      100,
      "use a number from 0 to 100 (7 is typical; 1 disables guidance)",
    ),
    seed,
    ...(subseed !== undefined ? { subseed, subseedStrength } : {}),
    ...(seedResizeFrom ? { seedResizeFrom } : {}),
    sampler,
    schedule,
    ...knobs,
    width,
    height,
    batchSize,
    batchCount,
    denoisingStrength:
      init === undefined
        ? 1
        : number(
            "denoising strength",
            p.denoisingStrength ?? 0.75,
            0,
            1,
            "use a number from 0 to 1 (how much of the init image to repaint)",
          ),
    initImage: init,
    mask: p.mask,
    ...(p.mask !== undefined ? { inpaint: resolveInpaint(p) } : {}),
    clipSkip: integer("clip skip", p.clipSkip ?? 1, 1, 12, "use an integer from 1 to 12 (1 = last layer)"),
    ...(hires ? { hires } : {}),
    ...(p.controlnet !== undefined && p.controlnet.length > 0 ? { controlnet: resolveControlUnits(p.controlnet) } : {}),
    ...(switchAt !== undefined
      ? {
          refinerSwitchAt: number(
            "refiner switch at",
            switchAt,
            0,
            1,
            "use a number from 0 to 1 (the fraction of the schedule the model runs before the refiner; 0.8 is usual)",
          ),
        }
      : {}),
  };
}

/** The mask options, checked, with the defaults of the library (those of diffusers: no blur, the original). */
function resolveInpaint(p: GenerateParams): InpaintOptions {
  const blurHint = `use a number from 0 to ${MAX_MASK_BLUR} (pixels of standard deviation; A1111's default is 4)`;
  const blur = p.maskBlur === undefined ? 0 : number("mask blur", p.maskBlur, 0, MAX_MASK_BLUR, blurHint);
  const blurX = p.maskBlurX === undefined ? blur : number("mask blur x", p.maskBlurX, 0, MAX_MASK_BLUR, blurHint);
  const blurY = p.maskBlurY === undefined ? blur : number("mask blur y", p.maskBlurY, 0, MAX_MASK_BLUR, blurHint);
  const asked = p.inpaintingFill ?? "original";
  const fill =
    typeof asked === "number"
      ? INPAINTING_FILLS[asked]
      : INPAINTING_FILLS.find((f) => f === String(asked).toLowerCase());
  if (fill === undefined)
    throw new InputError(
      `inpainting fill ${JSON.stringify(asked)} is unknown: use ${INPAINTING_FILLS.map((f) => JSON.stringify(f)).join(", ")} (or 0 to 3)`,
    );
  if (p.invertMask !== undefined && typeof p.invertMask !== "boolean")
    throw new InputError(`invert mask ${JSON.stringify(p.invertMask)} must be true or false`);
  const padding =
    p.inpaintFullResPadding === undefined
      ? DEFAULT_FULL_RES_PADDING
      : integer(
          "inpaint full res padding",
          p.inpaintFullResPadding,
          0,
          MAX_FULL_RES_PADDING,
          `use an integer from 0 to ${MAX_FULL_RES_PADDING} (pixels around the masked region)`,
        );
  return {
    blurX,
    blurY,
    invert: p.invertMask ?? false,
    fill,
    ...(p.inpaintFullRes ? { fullResPadding: padding } : {}),
  };
}

/** Each ControlNet unit checked, with A1111's defaults. */
function resolveControlUnits(units: readonly ControlNetUnit[]): ResolvedControlUnit[] {
  if (!Array.isArray(units)) throw new InputError("controlnet must be a list of units");
  if (units.length > MAX_CONTROL_UNITS)
    throw new InputError(`${units.length} ControlNet units: use at most ${MAX_CONTROL_UNITS}`);
  return units.map((u, i) => {
    const name = `ControlNet unit ${i}`;
    if (u === null || typeof u !== "object") throw new InputError(`${name} must be an object with image and model`);
    if (
      u.image === undefined ||
      u.image === null ||
      (typeof u.image !== "string" && !(u.image instanceof Uint8Array))
    ) {
      throw new InputError(`${name} has no control image: give image (a path or the image's bytes)`);
    }
    if (typeof u.model !== "string" || u.model.trim() === "")
      throw new InputError(
        `${name} has no model: give the path of a ControlNet (.safetensors file or diffusers folder)`,
      );
    const pre = findPreprocessor(u.module ?? "none");
    const weight = number(
      `${name} weight`,
      u.weight ?? 1,
      0,
      2,
      "use a number from 0 to 2 (the conditioning scale; 1 is usual)",
    );
    const guidanceStart = number(
      `${name} guidance start`,
      u.guidanceStart ?? 0,
      0,
      1,
      "use a fraction of the steps from 0 to 1",
    );
    const guidanceEnd = number(
      `${name} guidance end`,
      u.guidanceEnd ?? 1,
      0,
      1,
      "use a fraction of the steps from 0 to 1",
    );
    if (guidanceStart > guidanceEnd)
      throw new InputError(
        `${name}: guidance start ${guidanceStart} is after guidance end ${guidanceEnd}; the ControlNet would never run`,
      );
    const mode = u.resizeMode ?? "Crop and Resize";
    const resizeMode =
      typeof mode === "number"
        ? RESIZE_MODES[mode]
        : RESIZE_MODES.find((m) => m.toLowerCase() === String(mode).toLowerCase());
    if (!resizeMode)
      throw new InputError(
        `${name} resize mode ${JSON.stringify(mode)} is unknown: use ${RESIZE_MODES.map((m) => JSON.stringify(m)).join(", ")} (or 0, 1, 2)`,
      );
    const threshold = (value: number | undefined, spec: ThresholdSpec | undefined, which: string) => {
      if (!spec) return undefined;
      if (value === undefined || value === -1) return spec.default;
      return number(
        `${name} ${which} (${spec.label})`,
        value,
        spec.min,
        spec.max,
        `use a number from ${spec.min} to ${spec.max} (default ${spec.default})`,
      );
    };
    const thresholdA = threshold(u.thresholdA, pre.thresholdA, "thresholdA");
    const thresholdB = threshold(u.thresholdB, pre.thresholdB, "thresholdB");
    return {
      image: u.image,
      model: u.model,
      ...(u.config !== undefined ? { config: u.config } : {}),
      module: pre.name,
      weight,
      guidanceStart,
      guidanceEnd,
      resizeMode,
      ...(thresholdA !== undefined ? { thresholdA } : {}),
      ...(thresholdB !== undefined ? { thresholdB } : {}),
    };
  });
}

/**
 * Image j takes seed + j. PyTorch has no seed past 2^64 - 1 (manual_seed raises an overflow, so A1111 fails at
 * that image), so a generation that would need one is refused before any compute rather than wrapped to 0.
 */
function checkSeedsFit(seed: bigint, images: number, what = "seed"): void {
  const last = seed + BigInt(images - 1);
  if (last <= MAX_SEED) return;
  throw new InputError(
    `${what} ${seed} with ${images} images needs seeds up to ${last} (image j takes ${what} + j), past the largest seed ${MAX_SEED}: use a ${what} up to ${MAX_SEED - BigInt(images - 1)}`,
  );
}

/**
 * A1111's seed_resize_from_w/h: on when both are above 0 (its API sends -1 or 0 for off). The noise is drawn at
 * the latent size of that many pixels, so each must cover at least one latent cell.
 */
function resolveSeedResize(
  w: number | undefined,
  h: number | undefined,
): { width: number; height: number } | undefined {
  if (w === undefined || h === undefined || w <= 0 || h <= 0) {
    for (const [name, v] of [
      ["seed resize from width", w],
      ["seed resize from height", h],
    ] as const)
      if (v !== undefined && !(typeof v === "number" && Number.isFinite(v)))
        throw new InputError(`${name} ${JSON.stringify(v)} is invalid: use a number of pixels (0 or -1: off)`);
    return undefined;
  }
  const hint = `use an integer from 8 to ${MAX_IMAGE_SIDE} pixels (0 or -1: off)`;
  return {
    width: integer("seed resize from width", w, 8, MAX_IMAGE_SIDE, hint),
    height: integer("seed resize from height", h, 8, MAX_IMAGE_SIDE, hint),
  };
}
