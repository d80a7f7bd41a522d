import { availableParallelism } from "node:os";
import { randomUUID } from "node:crypto";
import { resolve } from "node:path";
import type { PipelineConfig } from "../configs/pipeline.js";
import { InputError } from "../errors.js";
import { decodeImage, type ImageSource, type Mask, type RgbImage } from "../image/codec.js";
import { encodeImage } from "../image/encode-image.js";
import { imageToUnitTensor } from "../image/tensor.js";
import { intrablockShapes, residualShapes } from "../models/unet-blocks.js";
import type { ImageFormat } from "../image/output-format.js";
import { randomSeed } from "../random/seed.js";
import { createScheduler, type RawSchedulerConfig, type Scheduler } from "../schedulers/index.js";
import type { Session } from "../runtime/session.js";
import type { ClipTokenizer } from "../tokenizer/clip-tokenizer.js";
import type { Checkpoint } from "../weights/checkpoint.js";
import { shortHash } from "../weights/hash.js";
import { isT2IAdapterPath } from "../weights/t2i-adapter-checkpoint.js";
import { AdapterFolder, defaultAdapterFolders } from "./adapter-folder.js";
import { AdapterGuidance, type AdapterUnitRun } from "./adapter-guidance.js";
import { BatchNoise, batchSeeds } from "./batch-noise.js";
import { hiresTimesteps, upscaleFirstPass } from "./hires-pass.js";
import { findHiresUpscaler, type NamedUpscalers, upscalersOf } from "./hires-upscalers.js";
import { samplerKnobInfotext, samplerNoise } from "./sampler-knobs.js";
import { hiresInfotext, variationInfotext } from "./seed-infotext.js";
import { initialNoise, type Variation } from "./variation-noise.js";
import { ControlGuidance, type ControlUnitRun } from "./control-guidance.js";
import { controlNetInfotext } from "./control-infotext.js";
import { controlMap } from "./control-maps.js";
import { ControlNetModel } from "./controlnet-model.js";
import type { TaesdModel } from "./taesd-model.js";
import { denoise } from "./denoise.js";
import type { GenerationConfig } from "./generation-config.js";
import { prepareInpaintArea } from "./inpaint-area.js";
import { inpaintInfotext } from "./inpaint-infotext.js";
import { fillMaskedLatents, inpaintChannels, latentKeepMask, type InpaintChannels } from "./inpainting.js";
import type { PromptExamples } from "./prompt-examples.js";
import { latentShape, latentSpace, type LatentSpace } from "./latent-space.js";
import { DEFAULT_ATTENTION, UNET_VARIANTS, type NetworkOptions, type Networks, type UNetVariant } from "./networks.js";
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
import { decodeWorkingBytes, fp32WeightBytes, releasesFinishedNetworks, type StageMemory } from "./stage-memory.js";
import {
  checkMemory,
  estimateGeneration,
  type GenerationEstimate,
  modelProfile,
  type ModelProfile,
} from "./generation-estimate.js";
import { T2IAdapterModel } from "./t2i-adapter-model.js";
import type { Conditioner, ConditioningRequest, PromptConditions } from "./unet-condition.js";
import { VaeCodec } from "./vae-codec.js";
import { VaeModel } from "./vae-model.js";

export interface GeneratedImage {
  image: RgbImage;
  /** Exact: a seed may be anywhere from 0 to 2^64 - 1 (seedToJson writes it for JSON). */
  seed: bigint;
  /** The image's variation seed, when the generation had a variation strength above 0. */
  subseed?: bigint;
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
  /** Which networks stay loaded once a generation is done with them (stage-memory.ts; default "auto"). */
  stageMemory?: StageMemory;
  /**
   * Pixel upscalers the hires fix may use by name besides the built-in ones ("Lanczos", "Nearest"), e.g. learned
   * ones (ESRGAN): each takes RGB bytes and returns them at the asked size. Closed with the pipeline.
   */
  upscalers?: NamedUpscalers;
  /** A VAE that encodes and decodes instead of the checkpoint's own (`--vae PATH`, A1111's sd_vae). */
  vae?: VaeModel;
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
  /** The codec of the loaded VAE (the checkpoint's, or LoadOptions.vae). */
  private readonly codec: VaeCodec;
  private readonly networkOptions: NetworkOptions;
  private readonly fastDecoder: TaesdModel | undefined;
  /** The VAE used instead of the checkpoint's, if any. */
  readonly vae: VaeModel | undefined;
  private readonly previewDecoder: TaesdModel | undefined;
  private readonly upscalers: NamedUpscalers;
  /** VAEs loaded for requests (GenerateParams.vae), by path; kept until close. */
  private readonly vaes = new Map<string, Promise<VaeModel>>();
  /** Control models (ControlNets and T2I-Adapters) loaded for requests, by path and config folder; kept until close. */
  private readonly controlModels = new Map<string, Promise<ControlModel>>();
  /**
   * Generations in progress, from their LoRAs' merge to their last image: a network is released between stages only
   * when no other generation may be using it.
   */
  private running = 0;
  private readonly stageMemory: StageMemory;
  private profileMemo: ModelProfile | undefined;
  /** The fp32 bytes of every network's weights (the model's and its refiner's), counted on first need. */
  private weightBytes: number | undefined;

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
    this.vae = parts.vae;
    this.codec = this.codecWith(this.vae);
    this.modelName = modelDisplayName(this.checkpoint.path);
    this.loraFolder = parts.loraFolder ?? new AdapterFolder(defaultAdapterFolders().loras, "LoRA");
    this.embeddings = parts.embeddings;
    this.loras = new Loras(this.checkpoint, this.networks);
    this.networkOptions = parts.networkOptions ?? {};
    this.stageMemory = parts.stageMemory ?? "auto";
    this.upscalers = parts.upscalers ?? upscalersOf();
  }

  /**
   * A control unit's model by path, loaded once and kept with the pipeline: a T2I-Adapter (a diffusers folder of
   * class T2IAdapter, or a file with an adapter's tensors, weights/t2i-adapter-checkpoint.ts), else a ControlNet (a
   * .safetensors file or a diffusers folder; `config`: its config folder for a single file of non-standard size).
   * A ControlNet that does not fit this model is an InputError here; an adapter is checked at the generation's size.
   */
  controlModel(path: string, config?: string): Promise<ControlModel> {
    const key = `${path}\0${config ?? ""}`;
    let cm = this.controlModels.get(key);
    if (!cm) {
      cm = (async () => {
        if (isT2IAdapterPath(path)) return T2IAdapterModel.open(path, this.networkOptions);
        const model = await ControlNetModel.open(path, { ...this.networkOptions, config });
        try {
          model.checkFits(this.config.unet, this.checkpoint.path);
          return model;
        } catch (e) {
          await model.close();
          throw e;
        }
      })();
      this.controlModels.set(key, cm);
      cm.catch(() => this.controlModels.delete(key));
    }
    return cm;
  }

  /**
   * The VAE a generation asks for (GenerateParams.vae): undefined, the loaded one; null, the checkpoint's own; a path,
   * that VAE, opened once and kept with the pipeline; an InputError when it does not fit this model.
   */
  vaeFor(path: string | null | undefined): Promise<VaeModel | undefined> {
    if (path === undefined) return Promise.resolve(this.vae);
    if (path === null) return Promise.resolve(undefined);
    if (this.vae && resolve(path) === resolve(this.vae.file.path)) return Promise.resolve(this.vae);
    let vae = this.vaes.get(path);
    if (!vae) {
      vae = VaeModel.open(path, this.config, this.networkOptions);
      this.vaes.set(path, vae);
      vae.catch(() => this.vaes.delete(path));
    }
    return vae;
  }

  /** Encoding and decoding through a VAE (undefined: the checkpoint's own); a TAESD given to decode still decodes. */
  private codecWith(vae: VaeModel | undefined): VaeCodec {
    const fast = this.fastDecoder;
    return new VaeCodec(
      vae ?? this.networks,
      this.space,
      fast && ((latents, shape, index) => fast.decode(latents, shape, index)),
    );
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
      this.generation.cfgScale ?? (this.guidanceEmbedding !== undefined ? LCM_DEFAULTS.cfgScale : DEFAULT_CFG_SCALE)
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

  /** What the memory and time of this model's generations depend on (generation-estimate.ts), worked out once. */
  get profile(): ModelProfile {
    if (!this.profileMemo) {
      const profile = modelProfile(this.checkpoint, {
        attention: this.networkOptions.attention ?? DEFAULT_ATTENTION,
        refiner: this.refiner?.checkpoint,
        factor: this.space.factor,
      });
      // A TAESD decoding the final images holds 64 channels at full resolution, not the VAE's.
      this.profileMemo = this.fastDecoder ? { ...profile, decoderChannels: 64 } : profile;
    }
    return this.profileMemo;
  }

  /**
   * The peak memory and the compute time a generation would take (generation-estimate.ts), its parameters resolved
   * as generate resolves them; nothing runs.
   */
  estimate(params: GenerateParams): GenerationEstimate {
    const p = this.resolve(params);
    return estimateGeneration(this.profile, p, this.estimateOptions(p));
  }

  /**
   * The estimate against a memory limit (machineMemoryLimit() for this machine): `refusal` says why the generation
   * does not fit and what size would (generation-estimate.ts checkMemory), absent when it fits.
   */
  checkMemory(params: GenerateParams, limit: number): { estimate: GenerationEstimate; refusal?: string } {
    const p = this.resolve(params);
    return checkMemory(this.profile, p, this.estimateOptions(p), limit);
  }

  private estimateOptions(p: ResolvedParams): { threads: number; textEncodersReleased: boolean } {
    return {
      threads: this.networkOptions.threads ?? availableParallelism(),
      textEncodersReleased: this.releasesFinished(p.hires?.width ?? p.width, p.hires?.height ?? p.height),
    };
  }

  /** A request with the model's defaults filled in, as a generation runs it. */
  private resolve(params: GenerateParams): ResolvedParams {
    return resolveParams(params, {
      size: this.defaultSize,
      cfgScale: this.defaultCfgScale,
      steps: this.defaultSteps,
      sampler: this.defaultSampler,
      refinerSwitchAt: this.refiner ? DEFAULT_REFINER_SWITCH_AT : undefined,
      randomSeed,
      // Listing model folders is for the hires fix only.
      upscalers: params.hires === undefined ? [] : this.upscalers.names(),
    });
  }

  async generate(params: GenerateParams): Promise<GenerateResult> {
    const p = this.resolve(params);
    this.safeguards.checkPrompt(p.prompt, p.negativePrompt);
    const jobId = params.jobId ?? randomUUID();
    // Fail on a bad sampler name, schedule or strength before any compute.
    const probe = this.createScheduler(p);
    probe.setTimesteps(p.steps);
    if (p.hires) this.createScheduler(p, p.hires).setTimesteps(1);
    // <lora:...> tags are cut out of every prompt (the infotext keeps them, as A1111's does); the LoRAs they name
    // and the caller's are read now, so that a wrong name or file fails before any compute. LoRAs named in the
    // hires prompts apply to the whole generation (A1111 applies them to its second pass only).
    const prompts = [
      p.prompt,
      p.negativePrompt,
      p.prompt2,
      p.negativePrompt2,
      p.hires?.prompt,
      p.hires?.negativePrompt,
    ];
    const tagged = loraTags(prompts.map((t) => t ?? ""));
    const [prompt, negativePrompt, prompt2, negativePrompt2, hiresPrompt, hiresNegativePrompt] = tagged.texts.map(
      (t, i) => (prompts[i] === undefined ? undefined : t),
    );
    const wanted = wantedLoras(tagged.loras, params.loras ?? [], this.loraFolder);
    const usedEmbeddings = this.embeddings?.used(tagged.texts, this.tokenizer) ?? [];
    this.running++;
    let applied: Awaited<ReturnType<Loras["apply"]>> | undefined;
    try {
      applied = await this.loras.apply(wanted);
      return await this.generateWith(
        params,
        p,
        jobId,
        probe,
        { prompt: prompt!, negativePrompt: negativePrompt!, prompt2, negativePrompt2 },
        { prompt: hiresPrompt ?? "", negativePrompt: hiresNegativePrompt ?? "" },
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
        this.releasesFinished(p.width, p.height),
      );
    } finally {
      applied?.release();
      this.running--;
    }
  }

  /**
   * An image composed from this pipeline's images (an X/Y/Z plot's grid) in an output format, carrying `infotext`
   * (A1111 gives a grid its first cell's), watermarked and signed as the generated images are; `parameters` and
   * `seed` are those of the image whose infotext it carries, for its content credentials. The safety checker does
   * not run again: the images were checked, and a flagged one is already what the policy made of it. Returns the
   * bytes and the infotext they carry (the image's own watermark note in place of the cell's).
   */
  async encodeComposed(
    image: RgbImage,
    infotext: string,
    parameters: ResolvedParams,
    seed: bigint,
    format: ImageFormat,
  ): Promise<{ bytes: Buffer; infotext: string }> {
    const model: ModelIdentity = { name: this.modelName, hash: this.modelHash };
    return this.safeguards.composed(image, infotext, await provenanceInfo(parameters, seed, model, []), format);
  }

  /** Whether this generation lets go of its text encoders and VAE decoder once done with them (StageMemory). */
  private releasesFinished(width: number, height: number): boolean {
    this.weightBytes ??= [this.checkpoint, this.refiner?.checkpoint].reduce(
      (n, c) => n + (c ? fp32WeightBytes([c.unet, c.vae, c.textEncoder, c.textEncoder2]) : 0),
      0,
    );
    return releasesFinishedNetworks(this.stageMemory, {
      weightBytes: this.weightBytes,
      decodeBytes: this.fastDecoder ? 0 : decodeWorkingBytes(width, height),
    });
  }

  /** Releases networks this generation is done with, unless another generation is running (it may be using them). */
  private async releaseFinished(names: readonly ("text_encoder" | "text_encoder_2" | "vae_decoder")[]): Promise<void> {
    if (this.running !== 1) return;
    await this.networks.release(...names);
    await this.refiner?.networks.release(...names);
  }

  /** A generation once its LoRAs are merged: `texts` are its prompts without extra-network tags. */
  private async generateWith(
    params: GenerateParams,
    p: ResolvedParams,
    jobId: string,
    probe: Scheduler,
    texts: Pick<ConditioningRequest, "prompt" | "negativePrompt" | "prompt2" | "negativePrompt2">,
    hiresTexts: Pick<ConditioningRequest, "prompt" | "negativePrompt">,
    adapterInfotext: Record<string, string>,
    warnings: string[],
    releaseFinished: boolean,
  ): Promise<GenerateResult> {
    const start = performance.now();
    const vae = await this.vaeFor(params.vae);
    const codec = vae === this.vae ? this.codec : this.codecWith(vae);
    const initName = p.initImage === undefined ? undefined : sourceName(p.initImage, "the init image");
    const area =
      p.mask === undefined
        ? undefined
        : await prepareInpaintArea(p.initImage!, p.mask, p.inpaint!, p.width, p.height, {
            init: initName,
            mask: sourceName(p.mask, "the mask"),
          });
    const init =
      area?.image ??
      (p.initImage === undefined
        ? undefined
        : await decodeImage(p.initImage, { name: initName, width: p.width, height: p.height }));
    const mask = area?.mask;
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
    if (p.hires && this.refiner)
      throw new InputError("the hires fix with a refiner is not supported: leave out the refiner or the hires fix");
    if (p.hires && p.controlnet)
      throw new InputError(
        "the hires fix with ControlNets is not supported yet: leave out the hires fix or the ControlNet units",
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
    // The second pass's conditions: its own prompts, and the size it works at (SDXL's time ids depend on it).
    const hiresConditions =
      p.hires &&
      withGuidance(
        await this.conditioner.encode({
          ...request,
          prompt: hiresTexts.prompt,
          negativePrompt: hiresTexts.negativePrompt,
          ...(hiresTexts.prompt === texts.prompt ? {} : { prompt2: undefined }),
          ...(hiresTexts.negativePrompt === texts.negativePrompt ? {} : { negativePrompt2: undefined }),
          width: p.hires.width,
          height: p.hires.height,
        }),
        p.cfgScale,
        this.guidanceEmbedding,
      );
    // Every text this generation encodes is encoded now (the hires pass's too): the encoders may go.
    if (releaseFinished) await this.releaseFinished(["text_encoder", "text_encoder_2"]);
    const model: ModelIdentity = { name: this.modelName, hash: this.modelHash };
    const images: GeneratedImage[] = [];
    const taesd = this.previewDecoder;
    const previews = new StepPreviews(this.safeguards, {
      share: this.safeguards.previewCheckShare,
      decode: taesd && ((x, shape) => taesd.decode(x, shape)),
    });
    const controlFields = control ? controlNetInfotext(p.controlnet!, control.titles, p.width, p.height) : {};
    const hiresFields = hiresInfotext(p);
    // Progress counts both passes' model calls, as A1111's does.
    const firstCalls = init ? probe.timesteps.length - startIndex(probe, p) : probe.timesteps.length;
    const hiresCalls = p.hires ? this.hiresProbe(p).length : 0;
    const inpaintFields = p.inpaint ? inpaintInfotext(p.inpaint, area?.region !== undefined) : {};
    try {
      for (let b = 0; b < p.batchCount; b++) {
        const { seeds, subseeds } = generationSeeds(p, b);
        const variation = variationOf(p, subseeds, this.space.factor);
        const report =
          (offset: number, shape: readonly [number, number, number, number]) =>
          (step: number, _: number, x: Float32Array) => {
            const total = firstCalls + hiresCalls;
            params.onStep?.({
              step: offset + step,
              steps: total,
              batch: b,
              batches: p.batchCount,
              elapsed: (performance.now() - start) / 1000,
              latents: x,
              preview: previews.forStep(x, shape, { batch: b, step: offset + step, last: offset + step === total }),
            });
          };
        const shape = latentShape(this.space, seeds.length, p.width, p.height);
        const stop = { signal: params.signal, skip: params.skipBatch && (() => params.skipBatch!(b)) };
        const first = await this.denoiseBatch(
          codec,
          p,
          seeds,
          variation,
          conditions,
          refinerConditions,
          init,
          mask,
          control,
          stop,
          report(0, shape),
        );
        const refined = first.refined;
        let latents = first.latents;
        const [width, height] = p.hires ? [p.hires.width, p.hires.height] : [p.width, p.height];
        if (p.hires) {
          const upShape = latentShape(this.space, seeds.length, width, height);
          latents = await this.hiresPass(
            p,
            seeds,
            variation,
            latents,
            shape,
            hiresConditions!,
            codec,
            stop,
            report(firstCalls, upShape),
          );
        }
        const generated = await codec.decode(latents, seeds.length, width, height);
        const decoded = area ? await Promise.all(generated.map((g) => area.paste(g))) : generated;
        const safe = await this.safeguards.process(decoded, jobId);
        previews.judged(b, safe.flagged.includes(true));
        safe.images.forEach((image, j) => {
          const seed = seeds[j]!;
          const subseed = subseeds?.[j];
          const notes = safe.notes[j]!;
          const refinerFields = refined ? refinerInfotext(this.refiner!.identity, p.refinerSwitchAt!) : {};
          const infotext = imageInfotext(p, seed, model, {
            ...variationInfotext(p, subseed),
            ...samplerKnobInfotext(p, p.hires ? [p.sampler, p.hires.sampler] : [p.sampler]),
            ...hiresFields,
            ...inpaintFields,
            ...controlFields,
            ...refinerFields,
            ...adapterInfotext,
            ...vae?.infotext,
            ...notes.infotext,
            ...this.safeguards.staticInfotext,
          });
          const encode = async (format: ImageFormat) =>
            this.safeguards.finish(
              await encodeImage(image, format, infotext),
              await provenanceInfo(p, seed, model, notes.off),
            );
          images.push({
            image,
            seed,
            ...(subseed !== undefined ? { subseed } : {}),
            infotext,
            encode,
            png: () => encode("png"),
          });
        });
      }
    } finally {
      previews.end();
      // Also after a failure or a cancellation: the next generation reopens its text encoders either way.
      if (releaseFinished) await this.releaseFinished(["vae_decoder"]);
    }
    return { images, controlMaps: control?.maps ?? [], parameters: p, info: images[0]!.infotext, warnings };
  }

  /** Each unit's control model (loaded once, checked against the model) and control map, before any compute. */
  private async prepareControl(
    units: readonly ResolvedControlUnit[],
    width: number,
    height: number,
  ): Promise<PreparedControl> {
    const models = await Promise.all(units.map((u) => this.controlModel(u.model, u.config)));
    for (const m of models)
      if (m instanceof T2IAdapterModel) m.checkFits(this.config.unet, this.checkpoint.path, width, height);
    const maps = await Promise.all(units.map((u, i) => controlMap(u, width, height, i)));
    return { units, models, maps, titles: models.map((m) => m.title) };
  }

  /** The classifier-free guidance the loop applies: LCM's is in its conditions (withGuidance), so none there. */
  private loopCfgScale(p: ResolvedParams): number {
    return this.guidanceEmbedding === undefined ? p.cfgScale : 1;
  }

  /** One batch (batchSize images, one generator each): its starting latents, then the loop. */
  /**
   * A pass's scheduler: its sampler with its schedule type (Align Your Steps has an SDXL table), and the
   * generation's eta, s_noise and churn (A1111 gives the hires fix's second pass the same). `pass`: the first pass's.
   */
  private createScheduler(p: ResolvedParams, pass: Pick<ResolvedParams, "sampler" | "schedule"> = p): Scheduler {
    return createScheduler(pass.sampler, this.schedulerConfig, {
      schedule: pass.schedule,
      sdxl: this.checkpoint.config.family === "sdxl",
      ...(p.eta !== undefined ? { eta: p.eta } : {}),
      ...(p.sNoise !== undefined ? { sNoise: p.sNoise } : {}),
      ...(p.sChurn !== undefined ? { sChurn: p.sChurn, sTmin: p.sTmin ?? 0, sTmax: p.sTmax ?? 0 } : {}),
    });
  }

  private async denoiseBatch(
    codec: VaeCodec,
    p: ResolvedParams,
    seeds: bigint[],
    variation: Variation | undefined,
    conditions: PromptConditions,
    refinerConditions: PromptConditions | undefined,
    init: RgbImage | undefined,
    mask: Mask | undefined,
    control: PreparedControl | undefined,
    stop: { signal: AbortSignal | undefined; skip: (() => boolean) | undefined },
    onStep: (step: number, steps: number, latents: Float32Array) => void,
  ): Promise<{ latents: Float32Array; refined: boolean }> {
    const noise = new BatchNoise(seeds);
    const scheduler = this.createScheduler(p);
    scheduler.setTimesteps(p.steps);
    const shape = latentShape(this.space, seeds.length, p.width, p.height);
    const s = await this.start(codec, p, scheduler, noise, variation, shape, init, mask);
    const trainSteps = Number(this.schedulerConfig["num_train_timesteps"] ?? 1000);
    const at =
      this.refiner && refinerConditions ? refinerStart(s.timesteps, p.refinerSwitchAt!, trainSteps) : undefined;
    const latents = await denoise({
      unet: await this.unet(control),
      control: control && (await this.controlGuidance(control, shape)),
      scheduler,
      timesteps: s.timesteps,
      latents: s.latents,
      shape,
      // The sampler's noise: with ENSD, from seeds + delta once the initial noise is drawn (A1111's ImageRNG).
      noise: samplerNoise(noise, p.etaNoiseSeedDelta),
      cfgScale: this.loopCfgScale(p),
      conditions,
      handOver:
        at === undefined
          ? undefined
          : { at, unet: await this.refiner!.networks.get("unet"), conditions: refinerConditions! },
      inpaint: s.inpaint,
      blend: s.blend,
      signal: stop.signal,
      skip: stop.skip,
      onStep,
    });
    return { latents, refined: at !== undefined };
  }

  /** The second pass's timesteps, to count them before the run. */
  private hiresProbe(p: ResolvedParams): number[] {
    const h = p.hires!;
    return hiresTimesteps(this.createScheduler(p, h), h.steps || p.steps, h.denoisingStrength);
  }

  /**
   * The hires fix's second pass on a batch's first-pass latents: upscaled (hires-pass.ts), noised to the start of
   * the second schedule with fresh noise from each image's seed at the new size (A1111 makes a new ImageRNG, the
   * variation included), then denoised with the second pass's sampler and prompts. Returns the final latents.
   * A skip (A1111's state.skipped, checked in either pass's sampler loop) ends this pass too; one asked before it
   * starts runs none of it, and the upscaled latents are decoded as they are, as A1111's sampler returns them.
   */
  private async hiresPass(
    p: ResolvedParams,
    seeds: bigint[],
    variation: Variation | undefined,
    latents: Float32Array,
    lowShape: readonly [number, number, number, number],
    conditions: PromptConditions,
    codec: VaeCodec,
    stop: { signal: AbortSignal | undefined; skip: (() => boolean) | undefined },
    onStep: (step: number, steps: number, latents: Float32Array) => void,
  ): Promise<Float32Array> {
    const h = p.hires!;
    const { signal } = stop;
    const upscaler = findHiresUpscaler(h.upscaler, this.upscalers);
    const upscaled = await upscaleFirstPass(latents, lowShape, h, upscaler, codec, seeds, signal);
    if (stop.skip?.()) return upscaled;
    const shape = latentShape(this.space, seeds.length, h.width, h.height);
    const scheduler = this.createScheduler(p, h);
    const timesteps = hiresTimesteps(scheduler, h.steps || p.steps, h.denoisingStrength);
    const noise = new BatchNoise(seeds);
    const start = scheduler.addNoise(upscaled, initialNoise(noise, shape, variation), timesteps[0]!);
    // An inpainting checkpoint repaints everything in both passes (A1111's txt2img conditioning at the new size).
    const inpaint = this.checkpoint.inpainting
      ? await inpaintChannels(codec, undefined, undefined, h.width, h.height, seeds.length)
      : undefined;
    return denoise({
      unet: await this.unet(undefined),
      scheduler,
      timesteps,
      latents: start,
      shape,
      // The sampler's noise: with ENSD, from seeds + delta once the initial noise is drawn (A1111's ImageRNG).
      noise: samplerNoise(noise, p.etaNoiseSeedDelta),
      cfgScale: this.loopCfgScale(p),
      conditions,
      inpaint,
      signal,
      skip: stop.skip,
      onStep,
    });
  }

  /**
   * The UNet a generation runs: the plain one, or the variant that takes the residuals of its control units
   * (ControlNets, T2I-Adapters or both). Only one is kept loaded while nothing else runs (each holds the UNet's
   * weights), so alternating requests cost a reload, not memory.
   */
  private async unet(control: PreparedControl | undefined): Promise<Session> {
    const wanted = unetVariant(control);
    for (const other of Object.keys(UNET_VARIANTS) as UNetVariant[])
      if (other !== wanted && this.running === 1 && this.networks.has(other)) await this.networks.release(other);
    return this.networks.get(wanted);
  }

  private async controlGuidance(
    control: PreparedControl,
    shape: readonly [number, number, number, number],
  ): Promise<ControlGuidance> {
    const controlNets: ControlUnitRun[] = [];
    const adapters: AdapterUnitRun[] = [];
    for (const [i, u] of control.units.entries()) {
      const model = control.models[i]!;
      if (model instanceof T2IAdapterModel) {
        // Once per generation: the features times the unit's weight (A1111's weight, diffusers' conditioning scale).
        const features = await model.features(control.maps[i]!);
        adapters.push({
          features: features.map((f) => f.data.map((v) => v * u.weight)),
          start: u.guidanceStart,
          end: u.guidanceEnd,
        });
        continue;
      }
      const cond = imageToUnitTensor(control.maps[i]!);
      const hint = await model.hint(cond.data, cond.shape);
      controlNets.push({
        session: await model.session(),
        hint: hint.data,
        hintDims: hint.dims,
        scale: u.weight,
        start: u.guidanceStart,
        end: u.guidanceEnd,
      });
    }
    const adapterGuidance = adapters.length
      ? new AdapterGuidance(adapters, intrablockShapes(this.config.unet, shape[2], shape[3]))
      : undefined;
    return new ControlGuidance(
      await this.networks.get(unetVariant(control)),
      controlNets,
      residualShapes(this.config.unet, shape[2], shape[3]),
      adapterGuidance,
    );
  }

  /**
   * Text-to-image starts from noise at the first sigma. Image-to-image encodes the init image (a posterior
   * sample from each image's generator), skips the first (1 - strength) of the schedule and noises to the first
   * kept timestep. An inpainting checkpoint also gets its mask channels (and at strength 1 starts from noise,
   * as diffusers does); an ordinary checkpoint given a mask blends the known region back after every step.
   */
  private async start(
    codec: VaeCodec,
    p: ResolvedParams,
    scheduler: Scheduler,
    noise: BatchNoise,
    variation: Variation | undefined,
    shape: readonly [number, number, number, number],
    init: RgbImage | undefined,
    mask: Mask | undefined,
  ): Promise<Start> {
    const B = shape[0];
    const inpaintModel = this.checkpoint.inpainting;
    const inpaint = inpaintModel ? await inpaintChannels(codec, init, mask, p.width, p.height, B) : undefined;
    const timesteps = Array.from(scheduler.timesteps);
    if (!init || (inpaintModel && p.denoisingStrength === 1)) {
      const first = initialNoise(noise, shape, variation);
      return { latents: first.map((v) => v * scheduler.initNoiseSigma), timesteps, inpaint };
    }
    const encoded = await codec.encode(init, noise, B);
    const latentFill = mask && p.inpaint ? p.inpaint.fill : "original";
    // A1111 draws the latent noise fill from fresh generators of the images' seeds: the initial noise's draw.
    const original =
      latentFill === "latent noise" || latentFill === "latent nothing"
        ? fillMaskedLatents(
            encoded,
            latentKeepMask(mask!, this.space, B, shape[2], shape[3]),
            latentFill,
            new BatchNoise(noise.seeds).randn(shape),
          )
        : encoded;
    const begin = startIndex(scheduler, p);
    scheduler.setBeginIndex(begin);
    const kept = timesteps.slice(begin);
    const addedNoise = initialNoise(noise, shape, variation);
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
    await this.vae?.close();
    for (const v of this.vaes.values()) await (await v.catch(() => undefined))?.close();
    this.vaes.clear();
    for (const cm of this.controlModels.values()) await (await cm.catch(() => undefined))?.close();
    this.controlModels.clear();
    if (this.refiner) {
      await this.refiner.networks.release();
      this.refiner.checkpoint.close();
    }
    await this.upscalers.close?.();
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

/** What a control unit's model is: a ControlNet, run at every step, or a T2I-Adapter, run once per generation. */
export type ControlModel = ControlNetModel | T2IAdapterModel;

/** A generation's control units with their models and control maps. */
interface PreparedControl {
  units: readonly ResolvedControlUnit[];
  models: ControlModel[];
  maps: RgbImage[];
  titles: string[];
}

/**
 * The seeds of batch `batch`: without a variation image j of the generation takes seed + j; with one (strength
 * above 0) every image takes the seed and image j the variation seed subseed + j, as A1111's process_images.
 */
function generationSeeds(p: ResolvedParams, batch: number): { seeds: bigint[]; subseeds?: bigint[] } {
  if (p.subseed === undefined) return { seeds: batchSeeds(p.seed, p.batchSize, batch) };
  return { seeds: Array(p.batchSize).fill(p.seed), subseeds: batchSeeds(p.subseed, p.batchSize, batch) };
}

/** The variation of a batch's initial noise, when the request has one (a strength above 0, or a seed resize). */
function variationOf(p: ResolvedParams, subseeds: bigint[] | undefined, factor: number): Variation | undefined {
  if (subseeds === undefined && !p.seedResizeFrom) return undefined;
  return {
    subseeds: subseeds ?? [],
    strength: subseeds === undefined ? 0 : p.subseedStrength!,
    // A1111 divides by 8 (its latent factor), flooring.
    ...(p.seedResizeFrom
      ? {
          resizeFrom: {
            width: Math.floor(p.seedResizeFrom.width / factor),
            height: Math.floor(p.seedResizeFrom.height / factor),
          },
        }
      : {}),
  };
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

/** The UNet variant that takes the residuals of a generation's control units (the plain UNet without any). */
function unetVariant(control: PreparedControl | undefined): UNetVariant {
  const adapters = control?.models.some((m) => m instanceof T2IAdapterModel) ?? false;
  const controlNets = control?.models.some((m) => m instanceof ControlNetModel) ?? false;
  return controlNets ? (adapters ? "unet_control_adapter" : "unet_control") : adapters ? "unet_adapter" : "unet";
}
