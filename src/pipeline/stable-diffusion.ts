import { randomUUID } from "node:crypto";
import type { PipelineConfig } from "../configs/pipeline.js";
import { InputError } from "../errors.js";
import { decodeImage, decodeMask, screenImage, type ImageSource, type Mask, type RgbImage } from "../image/codec.js";
import { encodeImage } from "../image/encode-image.js";
import { imageToUnitTensor } from "../image/tensor.js";
import { residualShapes } from "../models/unet-blocks.js";
import type { ImageFormat } from "../image/output-format.js";
import { randomSeed } from "../random/seed.js";
import { createScheduler, type RawSchedulerConfig, type Scheduler } from "../schedulers/index.js";
import type { Session } from "../runtime/session.js";
import type { ClipTokenizer } from "../tokenizer/clip-tokenizer.js";
import type { Checkpoint } from "../weights/checkpoint.js";
import { shortHash } from "../weights/hash.js";
import { AdapterFolder, defaultAdapterFolders } from "./adapter-folder.js";
import { BatchNoise, batchSeeds } from "./batch-noise.js";
import { ControlGuidance } from "./control-guidance.js";
import { controlNetInfotext } from "./control-infotext.js";
import { controlMap } from "./control-maps.js";
import { ControlNetModel } from "./controlnet-model.js";
import type { TaesdModel } from "./taesd-model.js";
import { denoise } from "./denoise.js";
import type { GenerationConfig } from "./generation-config.js";
import type { PromptExamples } from "./prompt-examples.js";
import { inpaintChannels, latentKeepMask, type InpaintChannels } from "./inpainting.js";
import { latentShape, latentSpace, type LatentSpace } from "./latent-space.js";
import type { NetworkOptions, Networks } from "./networks.js";
import { lcmConditions } from "./guidance-embedding.js";
import { loraTags } from "./lora-tags.js";
import { Loras, wantedLoras } from "./loras.js";
import { imageInfotext, modelDisplayName, provenanceInfo, type ModelIdentity } from "./output-metadata.js";
import {
  DEFAULT_CFG_SCALE,
  DEFAULT_SAMPLER,
  DEFAULT_STEPS,
  resolveParams,
  type GenerateParams,
  type ResolvedControlUnit,
  type ResolvedParams,
} from "./params.js";
import { DEFAULT_REFINER_SWITCH_AT, refinerInfotext, refinerStart, type Refiner } from "./refiner.js";
import type { Safeguards } from "./safeguards.js";
import type { TextualInversions } from "./textual-inversions.js";
import { StepPreviews } from "./step-previews.js";
import type { Conditioner, ConditioningRequest, PromptConditions } from "./unet-condition.js";
import { VaeCodec } from "./vae-codec.js";

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
  /** The control map of each ControlNet unit, as the ControlNets saw it (after resizing and preprocessing). */
  controlMaps: RgbImage[];
  /** The parameters actually used (random seed resolved, defaults filled). */
  parameters: ResolvedParams;
  /** The infotext of the first image. */
  info: string;
  /** What was not used as asked, one line each (keys of a LoRA that name nothing in the model). */
  warnings: string[];
}

/** The parts of a loaded model (load-pipeline.ts assembles them). */
export interface PipelineParts {
  checkpoint: Checkpoint;
  networks: Networks;
  tokenizer: ClipTokenizer;
  /** The family's conditioning stage. */
  conditioner: Conditioner;
  schedulerConfig: RawSchedulerConfig;
  safeguards: Safeguards;
  generation?: GenerationConfig;
  /** Prompts that suit the model (its folder's prompt_examples.json), for a page's placeholders. */
  promptExamples?: PromptExamples;
  /** A second model that takes over the end of the schedule (A1111's refiner). */
  refiner?: Refiner;
  /** Where `<lora:NAME:W>` names are looked up (default: defaultAdapterFolders().loras). */
  loraFolder?: AdapterFolder;
  /** The textual-inversion embeddings prompts may use (default: none). */
  embeddings?: TextualInversions;
  /** How ControlNets named by requests are loaded (cache folder, threads); the checkpoint's own options. */
  networkOptions?: NetworkOptions;
  /** A TAESD that draws the step previews (the image as it forms) instead of the linear approximation. */
  previewDecoder?: TaesdModel;
  /** A TAESD that decodes the final images instead of the VAE (`--vae taesd`); it draws the previews too. */
  fastDecoder?: TaesdModel;
}

/** One batch's starting point: the latents to denoise from and the timesteps left to run. */
interface Start {
  latents: Float32Array;
  timesteps: number[];
  inpaint?: InpaintChannels;
  blend?: { keep: Float32Array; original: Float32Array; addedNoise: Float32Array };
}

/**
 * Stable Diffusion, whatever the family: the family's conditioning stage encodes the prompts, one denoising loop
 * (denoise.ts) runs the UNet with the scheduler, the VAE codec decodes, then the safeguards and the metadata.
 * Text-to-image, image-to-image and inpainting (with an inpainting checkpoint or by blending) share the loop.
 */
export class StableDiffusionPipeline {
  readonly modelName: string;
  readonly checkpoint: Checkpoint;
  readonly networks: Networks;
  readonly tokenizer: ClipTokenizer;
  readonly schedulerConfig: RawSchedulerConfig;
  readonly safeguards: Safeguards;
  readonly generation: GenerationConfig;
  readonly promptExamples: PromptExamples | undefined;
  readonly refiner: Refiner | undefined;
  readonly loraFolder: AdapterFolder;
  readonly embeddings: TextualInversions | undefined;
  private readonly conditioner: Conditioner;
  private readonly loras: Loras;
  private readonly space: LatentSpace;
  private readonly codec: VaeCodec;
  private readonly networkOptions: NetworkOptions;
  private readonly fastDecoder: TaesdModel | undefined;
  private readonly previewDecoder: TaesdModel | undefined;
  /** ControlNets loaded for requests, by path and config folder; kept until close. */
  private readonly controlNets = new Map<string, Promise<ControlNetModel>>();
  /** Generations in progress (the UNet variant not in use is released only when none is). */
  private running = 0;

  constructor(parts: PipelineParts) {
    this.checkpoint = parts.checkpoint;
    this.networks = parts.networks;
    this.tokenizer = parts.tokenizer;
    this.conditioner = parts.conditioner;
    this.schedulerConfig = parts.schedulerConfig;
    this.safeguards = parts.safeguards;
    this.generation = parts.generation ?? {};
    this.promptExamples = parts.promptExamples;
    this.refiner = parts.refiner;
    this.space = latentSpace(this.config);
    this.fastDecoder = parts.fastDecoder;
    this.previewDecoder = parts.previewDecoder ?? parts.fastDecoder;
    const fast = this.fastDecoder;
    this.codec = new VaeCodec(
      this.networks,
      this.space,
      fast && ((latents, shape, index) => fast.decode(latents, shape, index)),
    );
    this.modelName = modelDisplayName(this.checkpoint.path);
    this.loraFolder = parts.loraFolder ?? new AdapterFolder(defaultAdapterFolders().loras, "LoRA");
    this.embeddings = parts.embeddings;
    this.loras = new Loras(this.checkpoint, this.networks);
    this.networkOptions = parts.networkOptions ?? {};
  }

  /**
   * A ControlNet by path (a .safetensors file or a diffusers folder; `config`: its config folder for a single file of
   * non-standard size), loaded once and kept with the pipeline; an InputError when it does not fit this model.
   */
  controlNet(path: string, config?: string): Promise<ControlNetModel> {
    const key = `${path}\0${config ?? ""}`;
    let cn = this.controlNets.get(key);
    if (!cn) {
      cn = (async () => {
        const model = await ControlNetModel.open(path, { ...this.networkOptions, config });
        try {
          model.checkFits(this.config.unet, this.checkpoint.path);
          return model;
        } catch (e) {
          await model.close();
          throw e;
        }
      })();
      this.controlNets.set(key, cn);
      cn.catch(() => this.controlNets.delete(key));
    }
    return cn;
  }

  get config(): PipelineConfig {
    return this.checkpoint.config;
  }

  get modelHash(): string {
    return shortHash(this.networks.sha256);
  }

  /** The image size the model was trained at (512 for SD1.5). */
  get defaultSize(): number {
    return this.config.unet.sampleSize * this.space.factor;
  }

  /** The width of an LCM UNet's guidance embedding (time_cond_proj_dim); undefined for every other UNet. */
  private get guidanceEmbedding(): number | undefined {
    return this.config.unet.timeCondProjDim ?? undefined;
  }

  /**
   * The guidance used when a request names none: the model's generation_config.json, else LCM's 8.5 for an LCM
   * UNet (diffusers' LatentConsistencyModelPipeline default), else SD1.x's usual 7.
   */
  get defaultCfgScale(): number {
    return (
      this.generation.guidanceScale ??
      (this.guidanceEmbedding !== undefined ? LCM_DEFAULTS.cfgScale : DEFAULT_CFG_SCALE)
    );
  }

  /**
   * The steps the model recommends (generation_config.json's num_inference_steps; LCM's 4 for an LCM UNet or
   * scheduler), undefined when it recommends none.
   */
  get recommendedSteps(): number | undefined {
    return this.generation.steps ?? (this.lcm ? LCM_DEFAULTS.steps : undefined);
  }

  /** The sampler the model recommends (generation_config.json's sampler_name; "lcm" for LCM), undefined when none. */
  get recommendedSampler(): string | undefined {
    return this.generation.sampler ?? (this.lcm ? LCM_DEFAULTS.sampler : undefined);
  }

  get defaultSteps(): number {
    return this.recommendedSteps ?? DEFAULT_STEPS;
  }

  get defaultSampler(): string {
    return this.recommendedSampler ?? DEFAULT_SAMPLER;
  }

  /** An LCM: its UNet takes the guidance embedding, or its own scheduler config is LCM's. */
  private get lcm(): boolean {
    return this.guidanceEmbedding !== undefined || this.schedulerConfig["_class_name"] === "LCMScheduler";
  }

  async generate(params: GenerateParams): Promise<GenerateResult> {
    const p = resolveParams(params, {
      size: this.defaultSize,
      cfgScale: this.defaultCfgScale,
      steps: this.defaultSteps,
      sampler: this.defaultSampler,
      refinerSwitchAt: this.refiner ? DEFAULT_REFINER_SWITCH_AT : undefined,
      randomSeed,
    });
    this.safeguards.checkPrompt(p.prompt, p.negativePrompt);
    const jobId = params.job_id ?? randomUUID();
    // Fail on a bad sampler name, schedule or strength before any compute.
    const probe = this.createScheduler(p);
    probe.setTimesteps(p.steps);
    // <lora:...> tags are cut out of every prompt (the infotext keeps them, as A1111's does); the LoRAs they name
    // and the caller's are read now, so that a wrong name or file fails before any compute.
    const prompts = [p.prompt, p.negativePrompt, p.prompt2, p.negativePrompt2];
    const tagged = loraTags(prompts.map((t) => t ?? ""));
    const [prompt, negativePrompt, prompt2, negativePrompt2] = tagged.texts.map((t, i) =>
      prompts[i] === undefined ? undefined : t,
    );
    const wanted = wantedLoras(tagged.loras, params.loras ?? [], this.loraFolder);
    const usedEmbeddings = this.embeddings?.used(tagged.texts, this.tokenizer) ?? [];
    const applied = await this.loras.apply(wanted);
    try {
      return await this.generateWith(
        params,
        p,
        jobId,
        probe,
        { prompt: prompt!, negativePrompt: negativePrompt!, prompt2, negativePrompt2 },
        {
          ...(applied.hashes ? { "Lora hashes": applied.hashes } : {}),
          ...(usedEmbeddings.length > 0
            ? {
                "TI hashes": usedEmbeddings
                  .map((e) => `${e.name.replace(/[:,]/g, "")}: ${e.sha256.slice(0, 12)}`)
                  .join(", "),
              }
            : {}),
        },
        [...applied.warnings],
      );
    } finally {
      applied.release();
    }
  }

  /** A generation once its LoRAs are merged: `texts` are its prompts without extra-network tags. */
  private async generateWith(
    params: GenerateParams,
    p: ResolvedParams,
    jobId: string,
    probe: Scheduler,
    texts: Pick<ConditioningRequest, "prompt" | "negativePrompt" | "prompt2" | "negativePrompt2">,
    adapterInfotext: Record<string, string>,
    warnings: string[],
  ): Promise<GenerateResult> {
    const start = performance.now();
    const init =
      p.initImage === undefined
        ? undefined
        : await decodeImage(p.initImage, {
            name: sourceName(p.initImage, "the init image"),
            width: p.width,
            height: p.height,
          });
    const mask = p.mask === undefined ? undefined : await this.loadMask(p);
    if (init && startIndex(probe, p) >= probe.timesteps.length) {
      throw new InputError(
        `denoising strength ${p.denoisingStrength} with ${p.steps} steps leaves no step to run: raise the strength or the steps`,
      );
    }

    if (this.refiner && mask)
      throw new InputError("inpainting with a refiner is not supported: leave out the refiner or the mask");
    if (this.refiner && p.controlnet)
      throw new InputError(
        "ControlNets with a refiner are not supported (the refiner's UNet takes no residuals): leave out the refiner or the ControlNet units",
      );
    const control = p.controlnet ? await this.prepareControl(p.controlnet, p.width, p.height) : undefined;
    const request: ConditioningRequest = {
      ...texts,
      guided: this.loopCfgScale(p) > 1,
      clipSkip: p.clipSkip,
      width: p.width,
      height: p.height,
      embeddings: this.embeddings,
    };
    const conditions = withGuidance(await this.conditioner.encode(request), p.cfgScale, this.guidanceEmbedding);
    const refinerRequest = { ...request, embeddings: this.refiner?.embeddings };
    const refinerConditions =
      this.refiner &&
      withGuidance(
        await this.refiner.conditioner.encode(refinerRequest),
        p.cfgScale,
        this.refiner.checkpoint.config.unet.timeCondProjDim ?? undefined,
      );
    const model: ModelIdentity = { name: this.modelName, hash: this.modelHash };
    const images: GeneratedImage[] = [];
    const taesd = this.previewDecoder;
    const previews = new StepPreviews(this.safeguards, {
      share: this.safeguards.previewCheckShare,
      decode: taesd && ((x, shape) => taesd.decode(x, shape)),
    });
    const controlFields = control ? controlNetInfotext(p.controlnet!, control.titles, p.width, p.height) : {};
    this.running++;
    try {
      for (let b = 0; b < p.batchCount; b++) {
        const seeds = batchSeeds(p.seed, p.batchSize, b);
        const shape = latentShape(this.space, seeds.length, p.width, p.height);
        const { latents, refined } = await this.denoiseBatch(
          p,
          seeds,
          conditions,
          refinerConditions,
          init,
          mask,
          control,
          params.signal,
          (step, steps, x) =>
            params.onStep?.({
              step,
              steps,
              batch: b,
              batches: p.batchCount,
              elapsed: (performance.now() - start) / 1000,
              latents: x,
              preview: previews.forStep(x, shape, { batch: b, step, last: step === steps }),
            }),
        );
        const decoded = await this.codec.decode(latents, seeds.length, p.width, p.height);
        const safe = await this.safeguards.process(decoded, jobId);
        previews.judged(b, safe.flagged.includes(true));
        safe.images.forEach((image, j) => {
          const seed = seeds[j]!;
          const notes = safe.notes[j]!;
          const refinerFields = refined ? refinerInfotext(this.refiner!.identity, p.refinerSwitchAt!) : {};
          const infotext = imageInfotext(p, seed, model, {
            ...controlFields,
            ...refinerFields,
            ...adapterInfotext,
            ...notes.infotext,
            ...this.safeguards.staticInfotext,
          });
          const encode = async (format: ImageFormat) =>
            this.safeguards.finish(
              await encodeImage(image, format, infotext),
              await provenanceInfo(p, seed, model, notes.off),
            );
          images.push({ image, seed, infotext, encode, png: () => encode("png") });
        });
      }
    } finally {
      this.running--;
      previews.end();
    }
    return { images, controlMaps: control?.maps ?? [], parameters: p, info: images[0]!.infotext, warnings };
  }

  /** Each unit's ControlNet (loaded once) and control map, before any compute of the generation. */
  private async prepareControl(
    units: readonly ResolvedControlUnit[],
    width: number,
    height: number,
  ): Promise<PreparedControl> {
    const models = await Promise.all(units.map((u) => this.controlNet(u.model, u.config)));
    const maps = await Promise.all(units.map((u, i) => controlMap(u, width, height, i)));
    return { units, models, maps, titles: models.map((m) => m.title) };
  }

  private async loadMask(p: ResolvedParams): Promise<Mask> {
    // The init image's size from its header: it is decoded (at the generation size) elsewhere.
    const probe = await screenImage(p.initImage!, { name: sourceName(p.initImage!, "the init image") });
    const m = await decodeMask(p.mask!, { name: sourceName(p.mask!, "the mask") });
    if (m.width !== probe.width || m.height !== probe.height) {
      throw new InputError(
        `the mask is ${m.width}x${m.height} but the init image is ${probe.width}x${probe.height}: draw the mask at the image's size`,
      );
    }
    return decodeMask(p.mask!, { name: sourceName(p.mask!, "the mask"), width: p.width, height: p.height });
  }

  /** The classifier-free guidance the loop applies: LCM's is in its conditions (withGuidance), so none there. */
  private loopCfgScale(p: ResolvedParams): number {
    return this.guidanceEmbedding === undefined ? p.cfgScale : 1;
  }

  /** One batch (batch_size images, one generator each): its starting latents, then the loop. */
  /** The run's scheduler: the sampler with its schedule type (Align Your Steps has an SDXL table). */
  private createScheduler(p: ResolvedParams): Scheduler {
    return createScheduler(p.sampler, this.schedulerConfig, {
      schedule: p.schedule,
      sdxl: this.checkpoint.config.family === "sdxl",
    });
  }

  private async denoiseBatch(
    p: ResolvedParams,
    seeds: bigint[],
    conditions: PromptConditions,
    refinerConditions: PromptConditions | undefined,
    init: RgbImage | undefined,
    mask: Mask | undefined,
    control: PreparedControl | undefined,
    signal: AbortSignal | undefined,
    onStep: (step: number, steps: number, latents: Float32Array) => void,
  ): Promise<{ latents: Float32Array; refined: boolean }> {
    const noise = new BatchNoise(seeds);
    const scheduler = this.createScheduler(p);
    scheduler.setTimesteps(p.steps);
    const shape = latentShape(this.space, seeds.length, p.width, p.height);
    const s = await this.start(p, scheduler, noise, shape, init, mask);
    const trainSteps = Number(this.schedulerConfig["num_train_timesteps"] ?? 1000);
    const at =
      this.refiner && refinerConditions ? refinerStart(s.timesteps, p.refinerSwitchAt!, trainSteps) : undefined;
    const latents = await denoise({
      unet: await this.unet(control !== undefined),
      control: control && (await this.controlGuidance(control, shape)),
      scheduler,
      timesteps: s.timesteps,
      latents: s.latents,
      shape,
      noise,
      cfgScale: this.loopCfgScale(p),
      conditions,
      handOver:
        at === undefined
          ? undefined
          : { at, unet: await this.refiner!.networks.get("unet"), conditions: refinerConditions! },
      inpaint: s.inpaint,
      blend: s.blend,
      signal,
      onStep,
    });
    return { latents, refined: at !== undefined };
  }

  /**
   * The UNet a generation runs: the plain one, or the variant that takes ControlNet residuals. Only one is kept
   * loaded while nothing else runs (each holds the UNet's weights), so alternating requests cost a reload, not memory.
   */
  private async unet(controlled: boolean): Promise<Session> {
    const [wanted, other] = controlled ? (["unet_control", "unet"] as const) : (["unet", "unet_control"] as const);
    if (this.running === 1 && this.networks.has(other)) await this.networks.release(other);
    return this.networks.get(wanted);
  }

  private async controlGuidance(
    control: PreparedControl,
    shape: readonly [number, number, number, number],
  ): Promise<ControlGuidance> {
    const runs = await Promise.all(
      control.units.map(async (u, i) => {
        const cond = imageToUnitTensor(control.maps[i]!);
        const hint = await control.models[i]!.hint(cond.data, cond.shape);
        return {
          session: await control.models[i]!.session(),
          hint: hint.data,
          hintDims: hint.dims,
          scale: u.weight,
          start: u.guidanceStart,
          end: u.guidanceEnd,
        };
      }),
    );
    return new ControlGuidance(
      await this.networks.get("unet_control"),
      runs,
      residualShapes(this.config.unet, shape[2], shape[3]),
    );
  }

  /**
   * Text-to-image starts from noise at the first sigma. Image-to-image encodes the init image (a posterior
   * sample from each image's generator), skips the first (1 - strength) of the schedule and noises to the first
   * kept timestep. An inpainting checkpoint also gets its mask channels (and at strength 1 starts from noise,
   * as diffusers does); an ordinary checkpoint given a mask blends the known region back after every step.
   */
  private async start(
    p: ResolvedParams,
    scheduler: Scheduler,
    noise: BatchNoise,
    shape: readonly [number, number, number, number],
    init: RgbImage | undefined,
    mask: Mask | undefined,
  ): Promise<Start> {
    const B = shape[0];
    const inpaintModel = this.checkpoint.inpainting;
    const inpaint = inpaintModel ? await inpaintChannels(this.codec, init, mask, p.width, p.height, B) : undefined;
    const timesteps = Array.from(scheduler.timesteps);
    if (!init || (inpaintModel && p.denoisingStrength === 1)) {
      return { latents: noise.randn(shape).map((v) => v * scheduler.initNoiseSigma), timesteps, inpaint };
    }
    const original = await this.codec.encode(init, noise, B);
    const begin = startIndex(scheduler, p);
    scheduler.setBeginIndex(begin);
    const kept = timesteps.slice(begin);
    const addedNoise = noise.randn(shape);
    const latents = scheduler.addNoise(original, addedNoise, kept[0]!);
    const blend =
      mask && !inpaintModel
        ? { keep: latentKeepMask(mask, this.space, B, shape[2], shape[3]), original, addedNoise }
        : undefined;
    return { latents, timesteps: kept, inpaint, blend };
  }

  async close(): Promise<void> {
    await this.previewDecoder?.close();
    if (this.fastDecoder !== this.previewDecoder) await this.fastDecoder?.close();
    for (const cn of this.controlNets.values()) await (await cn.catch(() => undefined))?.close();
    this.controlNets.clear();
    if (this.refiner) {
      await this.refiner.networks.release();
      this.refiner.checkpoint.close();
    }
    await this.networks.release();
    await this.safeguards.release();
    this.checkpoint.close();
  }
}

/**
 * What diffusers' LatentConsistencyModelPipeline runs by default: 4 steps at guidance 8.5 with its LCMScheduler
 * (an LCM UNet's guidance is embedded, so 8.5 costs no second pass).
 */
const LCM_DEFAULTS = { steps: 4, cfgScale: 8.5, sampler: "lcm" } as const;

/**
 * The conditions as the UNet takes guidance: an LCM UNet (guidance embedding of width `dim`) gets the scale's
 * embedding and no classifier-free batch; every other UNet the prompts' conditions as they are.
 */
function withGuidance(c: PromptConditions, cfgScale: number, dim: number | undefined): PromptConditions {
  return dim === undefined ? c : lcmConditions(c, cfgScale, dim);
}

/** A generation's ControlNet units with their models and control maps. */
interface PreparedControl {
  units: readonly ResolvedControlUnit[];
  models: ControlNetModel[];
  maps: RgbImage[];
  titles: string[];
}

/** diffusers' img2img start: skip the first (1 - strength) of the schedule, in model calls. */
function startIndex(s: Scheduler, p: ResolvedParams): number {
  const initSteps = Math.min(Math.floor(p.steps * p.denoisingStrength), p.steps);
  return Math.max(p.steps - initSteps, 0) * s.order;
}

/** Paths name themselves in error messages; uploaded bytes are called by their role. */
function sourceName(source: ImageSource, role: string): string | undefined {
  return typeof source === "string" ? undefined : role;
}
