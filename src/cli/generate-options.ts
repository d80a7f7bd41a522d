import type { Command } from "commander";
import { Option } from "commander";
import {
  type GenerateParams,
  type HiresParams,
  InputError,
  type LoadOptions,
  listScheduleTypes,
  parsePrecision,
  parseSeed,
  type Precision,
  type PredictionType,
  RANDOM_SEED,
  randomSeed,
} from "../index.js";
import { signerConfigFromEnv } from "../responsible/provenance/index.js";
import { adapterFolderOptions, loraOption } from "./adapter-options.js";
import { addControlOptions, controlModelPath, controlUnits, type ControlOptions } from "./control-options.js";
import { terminalLicensePrompt } from "./license-prompt.js";
import { modelOption } from "./model-option.js";
import { addCheckpointOptions } from "./model-options.js";
import { PRECISION_HELP } from "./precision-option.js";
import { collect } from "./repeatable.js";
import { safetyPolicyOption } from "./safety-options.js";
import { samplerSummary } from "./samplers.js";

/**
 * The options of a generation, shared by the commands that generate (`generate`, `grid`): how the model is loaded,
 * the parameters of the request, and the safeguards. Each command adds its own output options.
 */

export interface GenerateOptions extends ControlOptions {
  model?: string;
  config?: string;
  tokenizer?: string;
  tokenizer2?: string;
  prediction?: string;
  refiner?: string;
  refinerConfig?: string;
  refinerSwitchAt?: string;
  negativePrompt?: string;
  /** The short name --negative, kept for scripts written before --negative-prompt. */
  negative?: string;
  prompt2?: string;
  negative2?: string;
  steps?: string;
  cfg?: string;
  seed?: string;
  subseed?: string;
  subseedStrength?: string;
  seedResizeFrom?: string;
  hires?: string;
  hiresResize?: string;
  hiresSteps?: string;
  hiresUpscaler?: string;
  modelsDir: string[];
  hiresDenoise?: string;
  hiresPrompt?: string;
  hiresNegative?: string;
  hiresSampler?: string;
  hiresSchedule?: string;
  sampler?: string;
  schedule?: string;
  eta?: string;
  sNoise?: string;
  sChurn?: string;
  sTmin?: string;
  sTmax?: string;
  ensd?: string;
  width?: string;
  height?: string;
  init?: string;
  strength?: string;
  mask?: string;
  maskBlur?: string;
  inpaintFill?: string;
  inpaintFullRes?: string | boolean;
  invertMask?: boolean;
  batchSize?: string;
  batchCount?: string;
  clipSkip?: string;
  threads?: string;
  precision?: string;
  out?: string;
  outdir?: string;
  json?: boolean;
  progress: boolean;
  watermark: boolean;
  safetyCheck: boolean;
  safetyChecker?: string;
  safetyPolicy?: string;
  provenance: boolean;
  c2paKey?: string;
  c2paCert?: string;
  policy?: string;
  acceptLicense?: boolean;
  lora: string[];
  loraDir?: string;
  embeddingsDir?: string;
  vae?: string;
  previewVae?: string;
  preview?: string;
}

/** Parses a numeric option strictly: "20" is 20, "20x" or "" is an error naming the flag. */
export function num(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n))
    throw new InputError(`${flag} ${JSON.stringify(value)} is not a number`);
  return n;
}

/** --eta, --s-noise, --s-churn, --s-tmin, --s-tmax and --ensd as the library's knobs, those given. */
function samplerKnobOptions(o: GenerateOptions): Partial<GenerateParams> {
  const knobs: Partial<GenerateParams> = {
    eta: num("--eta", o.eta),
    sNoise: num("--s-noise", o.sNoise),
    sChurn: num("--s-churn", o.sChurn),
    sTmin: num("--s-tmin", o.sTmin),
    sTmax: num("--s-tmax", o.sTmax),
    etaNoiseSeedDelta: num("--ensd", o.ensd),
  };
  return Object.fromEntries(Object.entries(knobs).filter(([, v]) => v !== undefined));
}

/** A `WxH` option (`--seed-resize-from 512x768`), as two numbers; an error naming the flag otherwise. */
export function sizeOption(flag: string, value: string | undefined): { width: number; height: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(\d+)\s*[xX]\s*(\d+)\s*$/.exec(value);
  if (!m)
    throw new InputError(`${flag} ${JSON.stringify(value)} is not a size: write WIDTHxHEIGHT in pixels, e.g. 512x768`);
  return { width: Number(m[1]), height: Number(m[2]) };
}

/** The hires fix from its options: --hires SCALE or --hires-resize WxH turn it on; the others need one of them. */
function hiresOption(o: GenerateOptions): HiresParams | undefined {
  const resize = sizeOption("--hires-resize", o.hiresResize);
  if (o.hires === undefined && resize === undefined) {
    const stray = (
      [
        ["--hires-steps", o.hiresSteps],
        ["--hires-upscaler", o.hiresUpscaler],
        ["--hires-denoise", o.hiresDenoise],
        ["--hires-prompt", o.hiresPrompt],
        ["--hires-negative", o.hiresNegative],
        ["--hires-sampler", o.hiresSampler],
        ["--hires-schedule", o.hiresSchedule],
      ] as const
    ).find(([, v]) => v !== undefined);
    if (stray)
      throw new InputError(`${stray[0]} needs --hires SCALE (or --hires-resize WxH): the hires fix it configures`);
    return undefined;
  }
  return {
    ...(o.hires !== undefined ? { scale: num("--hires", o.hires) } : {}),
    ...(resize ? { resizeX: resize.width, resizeY: resize.height } : {}),
    ...(o.hiresSteps !== undefined ? { steps: num("--hires-steps", o.hiresSteps) } : {}),
    ...(o.hiresUpscaler !== undefined ? { upscaler: o.hiresUpscaler } : {}),
    ...(o.hiresDenoise !== undefined ? { denoisingStrength: num("--hires-denoise", o.hiresDenoise) } : {}),
    ...(o.hiresPrompt !== undefined ? { prompt: o.hiresPrompt } : {}),
    ...(o.hiresNegative !== undefined ? { negativePrompt: o.hiresNegative } : {}),
    ...(o.hiresSampler !== undefined ? { sampler: o.hiresSampler } : {}),
    ...(o.hiresSchedule !== undefined ? { schedule: o.hiresSchedule } : {}),
  };
}

/** The mask options; an error naming the flag when one is given without --mask. */
function inpaintOptions(o: GenerateOptions): Partial<GenerateParams> {
  const given = [
    ["--mask-blur", o.maskBlur],
    ["--inpaint-fill", o.inpaintFill],
    ["--inpaint-full-res", o.inpaintFullRes],
    ["--invert-mask", o.invertMask],
  ] as const;
  const stray = given.find(([, v]) => v !== undefined);
  if (o.mask === undefined) {
    if (stray) throw new InputError(`${stray[0]} needs --mask: the mask of the region to inpaint`);
    return {};
  }
  const fill = o.inpaintFill?.trim();
  return {
    maskBlur: num("--mask-blur", o.maskBlur),
    // A1111's numbers 0 to 3 work too; the pipeline names the valid modes for anything else.
    inpaintingFill: fill !== undefined && /^[0-3]$/.test(fill) ? (Number(fill) as 0 | 1 | 2 | 3) : (fill as never),
    inpaintFullRes: o.inpaintFullRes !== undefined,
    inpaintFullResPadding:
      typeof o.inpaintFullRes === "string" ? num("--inpaint-full-res", o.inpaintFullRes) : undefined,
    invertMask: o.invertMask,
  };
}

/** `--prediction v|epsilon` (also the diffusers spellings v_prediction, v-prediction, eps). */
function predictionOption(value: string | undefined): PredictionType | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  if (v === "v" || v === "v_prediction" || v === "v-prediction") return "v_prediction";
  if (v === "epsilon" || v === "eps") return "epsilon";
  throw new InputError(
    `--prediction ${JSON.stringify(value)} is not a prediction type: use v (v-prediction, SD2 768-v and v-pred fine-tunes) or epsilon`,
  );
}

/** Adds the generation options to a command (its prompt argument and output options are its own). */
export function addGenerationOptions(command: Command): Command {
  addCheckpointOptions(command)
    .option(
      "--prediction <type>",
      "what the model predicts, over its config and detection: v (v-prediction) or epsilon",
    )
    .option("-n, --negative-prompt <text>", "negative prompt: what the image should not have")
    .addOption(new Option("--negative <text>", "the same as --negative-prompt").hideHelp())
    .option("--prompt-2 <text>", "SDXL: the prompt of the second text encoder (default: the prompt)")
    .option(
      "--negative-2 <text>",
      "SDXL: the negative prompt of the second text encoder (default: the negative prompt)",
    )
    .option(
      "--refiner <path>",
      "a checkpoint that takes over the end of the schedule (A1111's refiner, e.g. the SDXL refiner)",
    )
    .option(
      "--refiner-config <dir>",
      "diffusers folder with config.json files for a single-file refiner of non-standard size",
    )
    .option("--refiner-switch-at <f>", "fraction of the schedule after which the refiner takes over (default 0.8)")
    .option("--steps <n>", "denoising steps (default: the model's generation_config.json, 4 for LCM, else 20)")
    .option(
      "--cfg <x>",
      "classifier-free guidance scale (1 or less disables guidance; default: the model's generation_config.json, else 7)",
    )
    .option(
      "--seed <s>",
      "seed from 0 to 18446744073709551615, as PyTorch takes it (-1 or absent: random; always printed)",
    )
    .option(
      "--subseed <s>",
      "variation seed (A1111's): the noise is interpolated from the seed's towards this one's by --subseed-strength (-1 or absent: random)",
    )
    .option(
      "--subseed-strength <f>",
      "variation strength from 0 (the seed alone, default) to 1 (the variation seed alone); images then share the seed and count up the variation seed",
    )
    .option(
      "--seed-resize-from <WxH>",
      "draw the seed's noise for this size and paste it centred, so a composition found at one size carries over to another",
    )
    .option(
      "--hires <scale>",
      "hires fix (A1111's): generate at the size, upscale by this factor, then repaint at the larger size",
    )
    .option("--hires-resize <WxH>", "hires fix to this size instead of a factor (the centre is cropped to it)")
    .option("--hires-steps <n>", "steps of the hires pass (default: as many as --steps)")
    .option(
      "--hires-upscaler <name>",
      'the hires upscaler: "Latent" (default), "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent (nearest)", "Latent (nearest-exact)", "Lanczos", "Nearest", or an ESRGAN / Real-ESRGAN model by file name (as diffuse upscale --list shows them)',
    )
    .option(
      "--models-dir <dir>",
      'an A1111 or ComfyUI installation whose upscaler models --hires-upscaler may name (repeatable; also "modelsDirs" in $DIFFUSE_HOME/config.json, DIFFUSE_HOME/upscalers and tools installed in the usual places)',
      collect,
      [] as string[],
    )
    .option("--hires-denoise <f>", "how much the hires pass repaints, above 0 to 1 (default 0.75)")
    .option("--hires-prompt <text>", "the hires pass's prompt (default: the prompt)")
    .option("--hires-negative <text>", "the hires pass's negative prompt (default: the negative prompt)")
    .option("--hires-sampler <name>", "the hires pass's sampler (default: --sampler)")
    .option("--hires-schedule <name>", "the hires pass's schedule type (default: --schedule)")
    .option(
      "--sampler <name>",
      `sampler, by name or A1111 label (default: the model's, else euler-a; \`diffuse samplers\` lists them): ${samplerSummary()}`,
    )
    .option(
      "--schedule <name>",
      `schedule type (A1111's "Schedule type") for the k-diffusion style samplers: ${listScheduleTypes()
        .map((t) => t.label)
        .join(", ")} (default: Automatic, the sampler's own)`,
    )
    .option(
      "--eta <x>",
      "eta (A1111's) of the ancestral and SDE samplers, the share of fresh noise per step (default 1; 0: none), and of DDIM (default 0)",
    )
    .option(
      "--s-noise <x>",
      "s_noise (A1111's): scale of the fresh noise of the ancestral and SDE samplers (default 1)",
    )
    .option(
      "--s-churn <x>",
      "s_churn (A1111's): Karras et al.'s churn of Euler, Heun and DPM2 (default 0: off); other samplers ignore it",
    )
    .option("--s-tmin <x>", "s_tmin (A1111's): the lowest sigma the churn acts at (default 0)")
    .option("--s-tmax <x>", "s_tmax (A1111's): the highest sigma the churn acts at (default 0: no bound)")
    .option(
      "--ensd <n>",
      "eta noise seed delta (A1111's ENSD, e.g. 31337): the sampler's noise is seeded seed + n, the initial noise keeps the seed (default 0: off)",
    )
    .option("-W, --width <w>", "width in pixels, a multiple of 8 (default: the model's size)")
    .option("-H, --height <h>", "height in pixels, a multiple of 8 (default: the model's size)")
    .option("--init <image>", "init image (sketch or photo) for image-to-image")
    .option("--strength <f>", "image-to-image denoising strength in (0, 1], with --init (default 0.75)")
    .option("--mask <image>", "inpainting mask, white = repaint (another size than --init is stretched to it)")
    .option("--mask-blur <px>", "blur the mask's edge (Gaussian, standard deviation in pixels, 0 to 64; A1111's is 4)")
    .option(
      "--inpaint-fill <mode>",
      "what the masked region starts from: fill (its surroundings' colours), original (default), latent noise, latent nothing",
    )
    .option(
      "--inpaint-full-res [padding]",
      "inpaint only the masked region (plus padding pixels, default 32) at the generation size and paste it back (A1111's Only masked)",
    )
    .option("--invert-mask", "repaint what the mask keeps (black) and keep what it paints")
    .option("--batch-size <n>", "images per batch", "1")
    .option("--batch-count <n>", "number of batches", "1")
    .option(
      "--clip-skip <n>",
      "use the text encoder's n-th layer from the end (SD1; SD2 and SDXL always use their penultimate, as in A1111)",
      "1",
    )
    .option("--threads <n>", "CPU threads, 1 or more (default: all cores)")
    .option("--precision <p>", PRECISION_HELP, "fp32")
    .option(
      "--lora <name:weight>",
      "merge a LoRA, as <lora:NAME:WEIGHT> in the prompt does (NAME in the LoRA folder, or a .safetensors path; repeatable)",
      collect,
      [] as string[],
    )
    .option(
      "--lora-dir <dir>",
      "where <lora:NAME:W> finds NAME.safetensors (default: $DIFFUSE_HOME/loras, ~/.diffuse/loras)",
    )
    .option(
      "--embeddings-dir <dir>",
      "textual-inversion embeddings, named in prompts by file name (default: $DIFFUSE_HOME/embeddings)",
    )
    .option("--no-progress", "no progress bar")
    .option("--safety-checker <path>", "a safety_checker folder (default: the model folder's own, if any)")
    .option("--safety-policy <policy>", "what to do with a flagged image: block (black), blur or flag", "block")
    .option("--no-safety-check", "do not run the safety checker (recorded in the image's metadata)")
    .option("--no-watermark", "do not embed the invisible watermarks (recorded in the image's metadata)")
    .option("--no-provenance", "do not attach C2PA content credentials (recorded in the image's metadata)")
    .option(
      "--c2pa-key <pem>",
      "private key to sign content credentials with (default: a local self-signed key); also DIFFUSE_C2PA_KEY",
    )
    .option("--c2pa-cert <pem>", "certificate chain for --c2pa-key; also DIFFUSE_C2PA_CERT")
    .option(
      "--policy <rules.json>",
      "prompt policy rules: matching prompts are refused before any compute; also DIFFUSE_PROMPT_POLICY",
    )
    .option(
      "--vae <path>",
      "a VAE instead of the model's own (A1111's SD VAE): a .safetensors file (vae-ft-mse-840000, sdxl-vae-fp16-fix; original or diffusers layout) or a diffusers VAE folder; or a TAESD that decodes the final images (fast, a little softer): a path or a store name (taesd, taesdxl)",
    )
    .option(
      "--preview-vae <taesd>",
      "a TAESD that draws --preview while the VAE decodes the final images (path or store name)",
    );
  return addControlOptions(command);
}

/** What the options ask for, parsed and cross-checked before anything loads. */
export interface GenerationRequest {
  params: GenerateParams;
  /** The seed (a random one drawn for -1 or none), settled here so that output names are known up front. */
  seed: bigint;
  threads?: number;
  precision: Precision;
  prediction?: PredictionType;
}

export function generationRequest(prompt: string, o: GenerateOptions): GenerationRequest {
  // The seed is settled here rather than in the pipeline so every output name is known, and checked, before
  // any compute; the pipeline numbers a batch's images seed, seed + 1, ... as A1111 does.
  const seedOption = o.seed === undefined ? undefined : parseSeed(o.seed, "--seed");
  const seed = seedOption === undefined || seedOption === RANDOM_SEED ? randomSeed() : seedOption;
  const subseedStrength = num("--subseed-strength", o.subseedStrength);
  const subseedOption = o.subseed === undefined ? undefined : parseSeed(o.subseed, "--subseed");
  const subseed =
    subseedStrength !== undefined && subseedStrength > 0 && (subseedOption ?? RANDOM_SEED) === RANDOM_SEED
      ? randomSeed()
      : subseedOption;
  const resizeFrom = sizeOption("--seed-resize-from", o.seedResizeFrom);
  const hires = hiresOption(o);
  const params: GenerateParams = {
    prompt,
    negativePrompt: o.negativePrompt ?? o.negative,
    prompt2: o.prompt2,
    negativePrompt2: o.negative2,
    refinerSwitchAt: num("--refiner-switch-at", o.refinerSwitchAt),
    steps: num("--steps", o.steps),
    cfgScale: num("--cfg", o.cfg),
    seed,
    ...(subseed !== undefined ? { subseed } : {}),
    ...(subseedStrength !== undefined ? { subseedStrength } : {}),
    ...(resizeFrom ? { seedResizeFromW: resizeFrom.width, seedResizeFromH: resizeFrom.height } : {}),
    ...(hires ? { hires } : {}),
    sampler: o.sampler,
    schedule: o.schedule,
    ...samplerKnobOptions(o),
    width: num("--width", o.width),
    height: num("--height", o.height),
    batchSize: num("--batch-size", o.batchSize),
    batchCount: num("--batch-count", o.batchCount),
    denoisingStrength: o.init === undefined ? undefined : num("--strength", o.strength),
    initImage: o.init,
    mask: o.mask,
    ...inpaintOptions(o),
    clipSkip: num("--clip-skip", o.clipSkip),
    loras: loraOption(o.lora),
    controlnet: controlUnits(o),
  };
  if (o.mask !== undefined && o.init === undefined) throw new InputError("--mask needs --init: the image to inpaint");
  if (o.strength !== undefined && o.init === undefined)
    throw new InputError(
      "--strength needs --init: it says how much of the init image is repainted; give --init IMAGE, or leave --strength out",
    );
  if (o.negativePrompt !== undefined && o.negative !== undefined)
    throw new InputError("--negative is the old name of --negative-prompt: give the negative prompt once");
  const threads = threadsOption(o.threads);
  const precision = parsePrecision(o.precision ?? "fp32", "--precision");
  if (o.refinerSwitchAt !== undefined && o.refiner === undefined)
    throw new InputError("--refiner-switch-at needs --refiner: the checkpoint to hand over to");
  if (o.refinerConfig !== undefined && o.refiner === undefined)
    throw new InputError("--refiner-config needs --refiner: the single-file refiner it describes");
  const prediction = predictionOption(o.prediction);
  return { params, seed, threads, precision, prediction };
}

/** The request's ControlNet models resolved (store names and A1111 titles to paths). */
export async function resolveControlModels(params: GenerateParams): Promise<void> {
  if (params.controlnet)
    params.controlnet = await Promise.all(
      params.controlnet.map(async (u) => ({ ...u, model: await controlModelPath(u.model, modelOption) })),
    );
}

/** How to load the pipeline the options describe, its safeguards included. */
export async function pipelineLoadOptions(
  o: GenerateOptions,
  request: Pick<GenerationRequest, "threads" | "precision" | "prediction">,
  log: (s: string) => void,
): Promise<LoadOptions & { worker?: false }> {
  const { threads, precision, prediction } = request;
  const signer = {
    ...signerConfigFromEnv(),
    ...(o.c2paKey ? { keyPath: o.c2paKey } : {}),
    ...(o.c2paCert ? { certPath: o.c2paCert } : {}),
  };
  return {
    config: o.config,
    tokenizer: o.tokenizer,
    tokenizer2: o.tokenizer2,
    acceptLicense: o.acceptLicense,
    confirmLicense: terminalLicensePrompt(),
    prediction,
    refiner: o.refiner === undefined ? undefined : { model: await modelOption(o.refiner), config: o.refinerConfig },
    vae: o.vae === undefined ? undefined : await modelOption(o.vae),
    previewDecoder: o.previewVae === undefined ? undefined : await modelOption(o.previewVae),
    threads,
    precision,
    onStatus: log,
    safetyChecker: o.safetyCheck ? o.safetyChecker : false,
    safetyPolicy: safetyPolicyOption(o.safetyPolicy),
    watermark: o.watermark,
    provenance: o.provenance ? signer : false,
    promptPolicy: o.policy ?? (process.env.DIFFUSE_PROMPT_POLICY || undefined),
    ...adapterFolderOptions(o),
    upscalerSearch: { modelsDirs: o.modelsDir },
  };
}

/** `--threads N`: a whole number of at least 1 (0 would silently mean "all cores" to onnxruntime). */
export function threadsOption(value: string | undefined): number | undefined {
  const n = num("--threads", value);
  if (n === undefined || (Number.isInteger(n) && n >= 1)) return n;
  throw new InputError(
    `--threads ${value} is not a thread count: give a whole number of threads from 1 up (leave it out for all cores)`,
  );
}
