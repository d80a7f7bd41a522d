import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { InputError } from "../errors.js";
import { decodeImage, decodeMask, screenImage, type ImageSource, type Mask, type RgbImage } from "../image/codec.js";
import { encodeImage } from "../image/encode-image.js";
import { buildInfotext } from "../image/infotext.js";
import type { ImageFormat } from "../image/output-format.js";
import { MAX_SIDE_FILE_BYTES, readJsonText } from "../regular-file.js";
import { imageToTensor, tensorToImages } from "../image/tensor.js";
import { UNET_IO } from "../models/unet.js";
import { VAE_IO } from "../models/vae.js";
import { createScheduler, findSampler, parseSchedulerConfigJson, STABLE_DIFFUSION_SCHEDULER_CONFIG, type RawSchedulerConfig, type Scheduler } from "../schedulers/index.js";
import { ClipTokenizer } from "../tokenizer/clip-tokenizer.js";
import type { ProvenanceInfo } from "../responsible/provenance/index.js";
import { type Checkpoint } from "../weights/checkpoint.js";
import { openCheckpoint } from "../models/open-checkpoint.js";
import { shortHash } from "../weights/hash.js";
import { randomSeed } from "../random/seed.js";
import { BatchNoise, batchSeeds } from "./batch-noise.js";
import { encodePrompts, type TextEncoderHandle } from "./conditioning.js";
import { Networks, type NetworkOptions } from "./networks.js";
import { readGenerationConfig, type GenerationConfig } from "./generation-config.js";
import { DEFAULT_CFG_SCALE, resolveParams, type GenerateParams, type ResolvedParams } from "./params.js";
import { Safeguards, type SafeguardNotes, type SafeguardOptions } from "./safeguards.js";
import { StepPreviews } from "./step-previews.js";

export interface LoadOptions extends NetworkOptions, SafeguardOptions {
  /** A diffusers folder with config.json files for a single-file checkpoint of non-standard size. */
  config?: string;
  /** A tokenizer folder (vocab.json + merges.txt) or OpenAI's bpe_simple_vocab_16e6.txt.gz. */
  tokenizer?: string;
}

export interface GeneratedImage {
  image: RgbImage;
  /** Exact: a seed may be anywhere from 0 to 2^64 - 1 (seedToJson writes it for JSON). */
  seed: bigint;
  /** AUTOMATIC1111's parameters text for this image. */
  infotext: string;
  /** The image as PNG with the infotext in its `parameters` chunk, signed unless provenance is off. */
  png(): Promise<Buffer>;
  /**
   * The image in any output format, with the infotext where A1111 keeps it (PNG text chunk, or the EXIF
   * UserComment of a JPEG or WebP), then signed unless provenance is off: an InputError for a format that
   * cannot carry content credentials (WebP), so check `canCarryCredentials` before generating.
   */
  encode(format: ImageFormat): Promise<Buffer>;
}

export interface GenerateResult {
  images: GeneratedImage[];
  /** The parameters actually used (random seed resolved, defaults filled). */
  parameters: ResolvedParams;
  /** The infotext of the first image. */
  info: string;
}

/** Thrown when a generation is cancelled through its AbortSignal. */
export class GenerationAborted extends Error {
  constructor() {
    super("generation cancelled");
    this.name = "GenerationAborted";
  }
}

const TOKENIZER_HELP =
  "a single-file checkpoint carries no tokenizer: pass --tokenizer PATH (a folder with vocab.json and merges.txt, " +
  "e.g. the tokenizer/ folder of any SD1.5 diffusers model, or OpenAI's bpe_simple_vocab_16e6.txt.gz from the CLIP repository)";

/** Loads a checkpoint (single file or diffusers folder) for generation. */
export async function loadPipeline(path: string, opts: LoadOptions = {}): Promise<StableDiffusionPipeline> {
  if (!existsSync(path)) throw new InputError(`model not found: ${path}; pass --model with a .safetensors file or a diffusers folder`);
  const checkpoint = openCheckpoint(path, { configDir: opts.config });
  try {
    const tokenizerPath = opts.tokenizer ?? findTokenizer(checkpoint, opts.config);
    if (!tokenizerPath) throw new InputError(`${path}: ${TOKENIZER_HELP}`);
    const tokenizer = await ClipTokenizer.load(tokenizerPath);
    const schedulerConfig = readSchedulerConfig(checkpoint, opts.config);
    const safeguards = await Safeguards.load(path, opts);
    const generation = readGenerationConfig(configRoots(checkpoint, opts.config));
    const networks = await Networks.open(checkpoint, opts);
    return new StableDiffusionPipeline(checkpoint, networks, tokenizer, schedulerConfig, safeguards, generation);
  } catch (e) {
    checkpoint.close();
    throw e;
  }
}

/** Where a model's side files live: the diffusers folder itself, and the --config folder of a single file. */
function configRoots(ckpt: Checkpoint, configDir?: string): string[] {
  return [ckpt.layout === "diffusers" ? ckpt.path : undefined, configDir].filter((r): r is string => !!r);
}

function findTokenizer(ckpt: Checkpoint, configDir?: string): string | undefined {
  return configRoots(ckpt, configDir).map((r) => join(r, "tokenizer")).find((t) => existsSync(join(t, "vocab.json")));
}

/** The model's own scheduler_config.json: samplers inherit its schedule (spacing, offset, betas). */
function readSchedulerConfig(ckpt: Checkpoint, configDir?: string): RawSchedulerConfig {
  const file = configRoots(ckpt, configDir).map((r) => join(r, "scheduler", "scheduler_config.json")).find((f) => existsSync(f));
  if (file) return parseSchedulerConfigJson(readJsonText(file, InputError, { hint: "restore the file from the model's repository", maxBytes: MAX_SIDE_FILE_BYTES }), file);
  // The published SD schedule, for single files without a config folder.
  return { ...STABLE_DIFFUSION_SCHEDULER_CONFIG, prediction_type: ckpt.config.predictionType };
}

export class StableDiffusionPipeline {
  readonly modelName: string;

  constructor(
    readonly checkpoint: Checkpoint,
    readonly networks: Networks,
    readonly tokenizer: ClipTokenizer,
    readonly schedulerConfig: RawSchedulerConfig,
    readonly safeguards: Safeguards,
    readonly generation: GenerationConfig = {},
  ) {
    this.modelName = basename(checkpoint.path).replace(/\.safetensors$/i, "") || basename(dirname(checkpoint.path));
  }

  get modelHash(): string {
    return shortHash(this.networks.sha256);
  }

  /** The image size the model was trained at (512 for SD1.5). */
  get defaultSize(): number {
    return this.checkpoint.config.unet.sampleSize * 8;
  }

  /** The guidance used when a request names none: the model's recommendation, else SD1.x's usual 7. */
  get defaultCfgScale(): number {
    return this.generation.guidanceScale ?? DEFAULT_CFG_SCALE;
  }

  async generate(params: GenerateParams): Promise<GenerateResult> {
    const p = resolveParams(params, { size: this.defaultSize, cfgScale: this.defaultCfgScale, randomSeed });
    this.safeguards.checkPrompt(p.prompt, p.negativePrompt);
    const jobId = params.job_id ?? randomUUID();
    // Fail on a bad sampler name or schedule before any compute.
    const probe = createScheduler(p.sampler, this.schedulerConfig);
    probe.setTimesteps(p.steps);
    const start = performance.now();
    const init = p.initImage === undefined ? undefined : await decodeImage(p.initImage, { name: sourceName(p.initImage, "the init image"), width: p.width, height: p.height });
    const mask = p.mask === undefined ? undefined : await this.loadMask(p);
    if (init && startIndex(probe, p) >= probe.timesteps.length) {
      throw new InputError(`denoising strength ${p.denoisingStrength} with ${p.steps} steps leaves no step to run: raise the strength or the steps`);
    }

    const te = await this.textEncoder();
    const [uncond, cond] = await encodePrompts(te, [p.negativePrompt, p.prompt], p.clipSkip);
    const images: GeneratedImage[] = [];
    const previews = new StepPreviews(this.safeguards, { share: this.safeguards.previewCheckShare });
    try {
      for (let b = 0; b < p.batchCount; b++) {
        const seeds = batchSeeds(p.seed, p.batchSize, b);
        const latents = await this.denoise(p, seeds, cond!, uncond!, init, mask, (step, steps, x, shape) =>
          params.onStep?.({
            step, steps, batch: b, batches: p.batchCount, elapsed: (performance.now() - start) / 1000, latents: x,
            preview: previews.forStep(x, shape, { batch: b, step, last: step === steps }),
          }), params.signal);
        const decoded = await this.decode(latents, p);
        const safe = await this.safeguards.process(decoded, jobId);
        previews.judged(b, safe.flagged.includes(true));
        safe.images.forEach((image, j) => {
          const seed = seeds[j]!;
          const notes = safe.notes[j]!;
          const infotext = this.infotext(p, seed, notes);
          const encode = async (format: ImageFormat) => this.safeguards.finish(await encodeImage(image, format, infotext), await this.provenanceInfo(p, seed, notes));
          images.push({ image, seed, infotext, encode, png: () => encode("png") });
        });
      }
    } finally {
      previews.end();
    }
    return { images, parameters: p, info: images[0]!.infotext };
  }

  /** Built on first use and kept: the final layer norm's weights are read from the checkpoint once. */
  private textEncoderHandle: Promise<TextEncoderHandle> | undefined;

  private textEncoder(): Promise<TextEncoderHandle> {
    if (this.textEncoderHandle) return this.textEncoderHandle;
    this.textEncoderHandle = (async () => {
      const c = this.checkpoint.config.textEncoder;
      const w = this.checkpoint.textEncoder;
      return {
        session: await this.networks.get("text_encoder"),
        tokenizer: this.tokenizer,
        hiddenSize: c.hiddenSize,
        layers: c.numHiddenLayers,
        finalLayerNorm: { weight: w.float32("text_model.final_layer_norm.weight"), bias: w.float32("text_model.final_layer_norm.bias"), eps: c.layerNormEps },
      };
    })();
    // A failed load is not remembered: the next generation tries again.
    this.textEncoderHandle.catch(() => (this.textEncoderHandle = undefined));
    return this.textEncoderHandle;
  }

  private async loadMask(p: ResolvedParams): Promise<Mask> {
    // The init image's size from its header: it is decoded (at the generation size) elsewhere.
    const probe = await screenImage(p.initImage!, { name: sourceName(p.initImage!, "the init image") });
    const m = await decodeMask(p.mask!, { name: sourceName(p.mask!, "the mask") });
    if (m.width !== probe.width || m.height !== probe.height) {
      throw new InputError(`the mask is ${m.width}x${m.height} but the init image is ${probe.width}x${probe.height}: draw the mask at the image's size`);
    }
    return decodeMask(p.mask!, { name: sourceName(p.mask!, "the mask"), width: p.width, height: p.height });
  }

  /** The denoising loop for one batch; returns latents [B, 4, h, w] (unscaled). */
  private async denoise(
    p: ResolvedParams,
    seeds: bigint[],
    cond: { data: Float32Array; tokens: number; hidden: number },
    uncond: { data: Float32Array; tokens: number; hidden: number },
    init: RgbImage | undefined,
    mask: Mask | undefined,
    onStep: (step: number, steps: number, latents: Float32Array, shape: readonly [number, number, number, number]) => void,
    signal?: AbortSignal,
  ): Promise<Float32Array> {
    const B = seeds.length;
    const lc = 4;
    const [h, w] = [p.height / 8, p.width / 8];
    const shape = [B, lc, h, w] as const;
    const per = lc * h * w;
    const noise = new BatchNoise(seeds);
    const scheduler = createScheduler(p.sampler, this.schedulerConfig);
    scheduler.setTimesteps(p.steps);
    const unet = await this.networks.get("unet");
    const vaeScale = this.checkpoint.config.vae.scalingFactor;

    let latents: Float32Array;
    let timesteps = Array.from(scheduler.timesteps);
    let original: Float32Array | undefined;
    let keep: Float32Array | undefined;
    let addedNoise: Float32Array | undefined;
    const inpaintModel = this.checkpoint.inpainting;
    // 9-channel inpainting checkpoints see the mask and the masked image's latents beside the noisy latents.
    const conditioning = inpaintModel ? await this.inpaintConditioning(init, mask, p, B) : undefined;
    if (init && !(inpaintModel && p.denoisingStrength === 1)) {
      // img2img: encode, sample the posterior with the image's generator, noise to the first kept timestep.
      original = await this.encodeImage(init, noise, B, vaeScale);
      const start = startIndex(scheduler, p);
      timesteps = timesteps.slice(start);
      scheduler.setBeginIndex(start);
      addedNoise = noise.randn([B, lc, h, w]);
      latents = scheduler.addNoise(original, addedNoise, timesteps[0]!);
      // Ordinary checkpoints inpaint by blending the known region back after every step (legacy inpainting).
      if (mask && !inpaintModel) keep = latentKeepMask(mask, B, h, w);
    } else {
      latents = noise.randn([B, lc, h, w]).map((v) => v * scheduler.initNoiseSigma);
    }

    const guided = p.cfgScale !== 1;
    const tokens = cond.tokens;
    const context = new Float32Array((guided ? 2 : 1) * B * tokens * cond.hidden);
    for (let j = 0; j < B; j++) {
      if (guided) context.set(uncond.data, j * uncond.data.length);
      context.set(cond.data, ((guided ? B : 0) + j) * cond.data.length);
    }

    for (let i = 0; i < timesteps.length; i++) {
      if (signal?.aborted) throw new GenerationAborted();
      const t = timesteps[i]!;
      let x = scheduler.scaleModelInput(latents, t);
      if (conditioning) x = concatChannels([x, conditioning.mask, conditioning.maskedLatents], [lc, 1, lc], B, h * w);
      const input = guided ? concat(x, x) : x;
      const out = await unet.run({
        [UNET_IO.sample]: { data: input, dims: [(guided ? 2 : 1) * B, conditioning ? 2 * lc + 1 : lc, h, w] },
        [UNET_IO.timestep]: { data: Float32Array.of(t), dims: [1] },
        [UNET_IO.encoderHiddenStates]: { data: context, dims: [(guided ? 2 : 1) * B, tokens, cond.hidden] },
      });
      const pred = out[UNET_IO.out]!.data;
      let eps: Float32Array;
      if (guided) {
        eps = new Float32Array(B * per);
        const n = B * per;
        for (let k = 0; k < n; k++) eps[k] = pred[k]! + p.cfgScale * (pred[n + k]! - pred[k]!);
      } else {
        eps = pred;
      }
      latents = scheduler.step(eps, t, latents, noise);
      if (keep && original && addedNoise) {
        // Legacy inpainting: outside the mask, put back the original at the noise level of the next timestep.
        const next = timesteps[i + 1];
        const known = next === undefined ? original : scheduler.addNoise(original, addedNoise, next);
        for (let k = 0; k < latents.length; k++) latents[k] = keep[k]! * known[k]! + (1 - keep[k]!) * latents[k]!;
      }
      onStep(i + 1, timesteps.length, latents, shape);
    }
    if (signal?.aborted) throw new GenerationAborted();
    return latents;
  }

  /**
   * The extra UNet inputs of an inpainting checkpoint: the binarized mask at latent size and the latents of the
   * image with the masked region blanked (0 in [-1, 1], mid grey). Without an init image, everything is
   * repainted from a blank image, which is how such checkpoints do text-to-image.
   */
  private async inpaintConditioning(init: RgbImage | undefined, mask: Mask | undefined, p: ResolvedParams, B: number): Promise<{ mask: Float32Array; maskedLatents: Float32Array }> {
    const [h, w] = [p.height / 8, p.width / 8];
    const pixels = p.width * p.height;
    const repaint = new Uint8Array(pixels).fill(1);
    if (init && mask) for (let i = 0; i < pixels; i++) repaint[i] = mask.data[i]! >= 0.5 ? 1 : 0;
    else if (init) repaint.fill(0);
    const image = init ? imageToTensor(init).data : new Float32Array(3 * pixels);
    for (let c = 0; c < 3; c++) for (let i = 0; i < pixels; i++) if (repaint[i]) image[c * pixels + i] = 0;
    const enc = await this.networks.get("vae_encoder");
    const out = await enc.run({ [VAE_IO.image]: { data: image, dims: [1, 3, p.height, p.width] } });
    const scale = this.checkpoint.config.vae.scalingFactor;
    const latents = out[VAE_IO.mean]!.data.map((v) => v * scale);
    // Nearest-neighbour downsampling of the binary mask, as the reference interpolates it to latent size.
    const small = new Float32Array(h * w);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) small[y * w + x] = repaint[y * 8 * p.width + x * 8]!;
    const repeat = (a: Float32Array) => {
      const r = new Float32Array(B * a.length);
      for (let b = 0; b < B; b++) r.set(a, b * a.length);
      return r;
    };
    return { mask: repeat(small), maskedLatents: repeat(latents) };
  }

  /** init image -> scaled latents for each image of the batch (one posterior sample per image generator). */
  private async encodeImage(init: RgbImage, noise: BatchNoise, B: number, scale: number): Promise<Float32Array> {
    const enc = await this.networks.get("vae_encoder");
    const t = imageToTensor(init);
    const out = await enc.run({ [VAE_IO.image]: { data: t.data, dims: t.shape } });
    const mean = out[VAE_IO.mean]!.data;
    const logvar = out[VAE_IO.logvar]!.data;
    const dims = out[VAE_IO.mean]!.dims;
    const eps = noise.randn([B, ...dims.slice(1)]);
    const latents = new Float32Array(B * mean.length);
    for (let j = 0; j < B; j++) {
      for (let k = 0; k < mean.length; k++) {
        const std = Math.fround(Math.exp(Math.fround(0.5 * logvar[k]!)));
        latents[j * mean.length + k] = Math.fround(Math.fround(mean[k]! + Math.fround(std * eps[j * mean.length + k]!)) * scale);
      }
    }
    return latents;
  }

  private async decode(latents: Float32Array, p: ResolvedParams): Promise<RgbImage[]> {
    const dec = await this.networks.get("vae_decoder");
    const scale = this.checkpoint.config.vae.scalingFactor;
    const B = latents.length / (4 * (p.height / 8) * (p.width / 8));
    const images: RgbImage[] = [];
    // One image at a time: the decoder's activations at 512 px are large, and batching gains nothing on a CPU.
    const per = latents.length / B;
    for (let j = 0; j < B; j++) {
      const z = latents.subarray(j * per, (j + 1) * per).map((v) => v / scale);
      const out = await dec.run({ [VAE_IO.latent]: { data: z, dims: [1, 4, p.height / 8, p.width / 8] } });
      images.push(...tensorToImages(out[VAE_IO.decoded]!.data, [1, 3, p.height, p.width]));
    }
    return images;
  }

  private async provenanceInfo(p: ResolvedParams, seed: bigint, notes: SafeguardNotes): Promise<ProvenanceInfo> {
    const init = p.initImage === undefined ? undefined : typeof p.initImage === "string" ? await readFile(p.initImage) : p.initImage;
    return {
      model: `${this.modelName} [${this.modelHash}]`,
      sampler: findSampler(p.sampler)?.label ?? p.sampler,
      prompt: p.prompt,
      negativePrompt: p.negativePrompt,
      seed,
      steps: p.steps,
      cfgScale: p.cfgScale,
      denoisingStrength: init ? p.denoisingStrength : undefined,
      ingredient: init,
      ingredientTitle: typeof p.initImage === "string" ? basename(p.initImage) : undefined,
      safeguardsOff: notes.off,
    };
  }

  private infotext(p: ResolvedParams, seed: bigint, notes: SafeguardNotes): string {
    return buildInfotext({
      prompt: p.prompt,
      negativePrompt: p.negativePrompt,
      steps: p.steps,
      sampler: findSampler(p.sampler)?.label ?? p.sampler,
      cfgScale: p.cfgScale,
      seed,
      width: p.width,
      height: p.height,
      modelHash: this.modelHash,
      model: this.modelName,
      denoisingStrength: p.initImage === undefined ? undefined : p.denoisingStrength,
      clipSkip: p.clipSkip > 1 ? p.clipSkip : undefined,
      rng: "CPU",
      extra: { ...notes.infotext, ...this.safeguards.staticInfotext },
    });
  }

  async close(): Promise<void> {
    await this.networks.release();
    await this.safeguards.release();
    this.checkpoint.close();
  }
}

/** diffusers' img2img start: skip the first (1 - strength) of the schedule, in model calls. */
function startIndex(s: Scheduler, p: ResolvedParams): number {
  const initSteps = Math.min(Math.floor(p.steps * p.denoisingStrength), p.steps);
  return Math.max(p.steps - initSteps, 0) * s.order;
}

/** The mask at latent size as "keep" weights (1 = keep the original), repeated over channels and batch. */
function latentKeepMask(mask: Mask, B: number, h: number, w: number): Float32Array {
  const out = new Float32Array(B * 4 * h * w);
  const sy = mask.height / h;
  const sx = mask.width / w;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // Average the 8x8 pixel block: a soft edge where the mask crosses a latent cell.
      let sum = 0, n = 0;
      for (let yy = Math.floor(y * sy); yy < Math.floor((y + 1) * sy); yy++) {
        for (let xx = Math.floor(x * sx); xx < Math.floor((x + 1) * sx); xx++) {
          sum += mask.data[yy * mask.width + xx]!;
          n++;
        }
      }
      const keepValue = 1 - (n ? sum / n : 0);
      for (let b = 0; b < B * 4; b++) out[b * h * w + y * w + x] = keepValue;
    }
  }
  return out;
}

/** Paths name themselves in error messages; uploaded bytes are called by their role. */
function sourceName(source: ImageSource, role: string): string | undefined {
  return typeof source === "string" ? undefined : role;
}

/** Concatenates [B, c_i, hw] tensors along channels, image by image. */
function concatChannels(parts: Float32Array[], channels: number[], B: number, hw: number): Float32Array {
  const total = channels.reduce((a, b) => a + b, 0);
  const out = new Float32Array(B * total * hw);
  for (let b = 0; b < B; b++) {
    let offset = b * total * hw;
    parts.forEach((part, i) => {
      const n = channels[i]! * hw;
      out.set(part.subarray(b * n, (b + 1) * n), offset);
      offset += n;
    });
  }
  return out;
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
