import { existsSync } from "node:fs";
import { join } from "node:path";
import { TEXT_CONDITIONING, timeIdCount, type PredictionType } from "../configs/pipeline.js";
import { HubError, InputError, UnsupportedModelError } from "../errors.js";
import type { LicenseNotice } from "../hub/licenses.js";
import type { StoreOptions } from "../hub/store-settings.js";
import { openCheckpoint } from "../models/open-checkpoint.js";
import { MAX_SIDE_FILE_BYTES, readJsonText } from "../regular-file.js";
import {
  parseSchedulerConfigJson,
  STABLE_DIFFUSION_SCHEDULER_CONFIG,
  type RawSchedulerConfig,
} from "../schedulers/index.js";
import { ClipTokenizer } from "../tokenizer/clip-tokenizer.js";
import type { UpscalerSearch } from "../upscale/upscaler-folders.js";
import type { Checkpoint } from "../weights/checkpoint.js";
import { shortHash } from "../weights/hash.js";
import { AdapterFolder, defaultAdapterFolders } from "./adapter-folder.js";
import type { PixelUpscaler } from "./hires-upscalers.js";
import { learnedUpscalers } from "./learned-upscalers.js";
import { readGenerationConfig, type GenerationConfig } from "./generation-config.js";
import { readPromptExamples, type PromptExamples } from "./prompt-examples.js";
import { latentSpace } from "./latent-space.js";
import { readPipelineFlags } from "./model-index.js";
import { calibrationRuns, type CalibrationParts } from "./int8-calibration.js";
import { Networks, type NetworkOptions } from "./networks.js";
import { modelDisplayName } from "./output-metadata.js";
import type { Refiner } from "./refiner.js";
import { Safeguards, type SafeguardOptions } from "./safeguards.js";
import { SdConditioner } from "./sd-conditioner.js";
import { SdxlConditioner, type SdxlEncoder } from "./sdxl-conditioner.js";
import { StableDiffusionPipeline } from "./stable-diffusion.js";
import type { StageMemory } from "./stage-memory.js";
import { embeddingEncoders, TextualInversions, type EmbeddingRequest } from "./textual-inversions.js";
import { TaesdModel } from "./taesd-model.js";
import { VaeModel } from "./vae-model.js";
import { isFullVae } from "../weights/vae-file.js";
import type { Conditioner } from "./unet-condition.js";

export interface LoadOptions extends NetworkOptions, SafeguardOptions {
  /** A diffusers folder with config.json files (and tokenizer folders) for a single-file checkpoint. */
  config?: string;
  /** The first text encoder's tokenizer: a folder (vocab.json + merges.txt) or OpenAI's bpe_simple_vocab_16e6.txt.gz. */
  tokenizer?: string;
  /** SDXL base's second text encoder's tokenizer (diffusers' tokenizer_2/), in the same forms. */
  tokenizer2?: string;
  /**
   * Where the model store is, for the tokenizers a single file lacks when none is given: they are read from the
   * Hugging Face cache, fetched once when absent (default: the environment's HF_HUB_CACHE, DIFFUSE_HOME...).
   */
  store?: StoreOptions;
  /** Accept the licence of a tokenizer the store fetches (`--accept-license`); otherwise it must have been accepted before. */
  acceptLicense?: boolean;
  /** Asks the user to accept such a licence (the CLI at a terminal); not for a worker thread. */
  confirmLicense?: (license: LicenseNotice, what: string) => Promise<boolean>;
  /** The prediction type, over the model folder's scheduler config and single-file detection (`--prediction`). */
  prediction?: PredictionType;
  /**
   * A second checkpoint that takes over the last part of every generation's schedule (A1111's refiner; see
   * GenerateParams.refinerSwitchAt). It must share the model's latent space (an SDXL refiner for SDXL).
   */
  refiner?: RefinerLoadOptions;
  /** Where `<lora:NAME:W>` finds NAME.safetensors (with subfolders; default: defaultAdapterFolders().loras). */
  loraDir?: string;
  /** Which networks stay loaded once a generation is done with them (stage-memory.ts; default "auto"). */
  stageMemory?: StageMemory;
  /**
   * Textual-inversion embeddings prompts may name, by file name as in A1111 (with subfolders; default:
   * defaultAdapterFolders().embeddings). Read again when the folder changes.
   */
  embeddingsDir?: string;
  /** Embeddings given directly, before those of the folder: paths or bytes, each with an optional trigger word. */
  embeddings?: EmbeddingRequest[];
  /**
   * A VAE used instead of the checkpoint's own, as A1111's sd_vae: a VAE .safetensors file (the original layout, as
   * vae-ft-mse-840000 and sdxl_vae ship, or diffusers' names) or a diffusers VAE folder (or a model folder's vae/), of
   * the model's latent space. Or a TAESD / TAESDXL (a diffusers AutoencoderTiny folder, or madebyollin's
   * taesd_decoder.safetensors or its folder) that decodes the final images instead of the VAE: much faster, somewhat
   * softer; it draws the previews too.
   */
  vae?: string;
  /** A TAESD that draws the step previews (the image as it forms) while the VAE decodes the final images. */
  previewDecoder?: string;
  /** Pixel upscalers the hires fix may name besides the built-in ones (PipelineParts.upscalers). */
  upscalers?: Readonly<Record<string, PixelUpscaler>>;
  /**
   * Where the hires fix finds ESRGAN / Real-ESRGAN model files to name by file name, as /sdapi/v1/upscalers and
   * `diffuse upscale` do: A1111's models/ESRGAN and models/RealESRGAN, ComfyUI's models/upscale_models,
   * DIFFUSE_HOME/upscalers, under `modelsDirs` (and the usual roots unless `searchDefaults` is false). Without it,
   * no model files are searched.
   */
  upscalerSearch?: UpscalerSearch;
}

export interface RefinerLoadOptions {
  /** A .safetensors checkpoint or a diffusers folder. */
  model: string;
  /** Its config folder, for a single file of non-standard size. */
  config?: string;
  /**
   * Its text encoder's tokenizer. Without one, a single-file SDXL refiner borrows the base model's bigG tokenizer
   * (the same encoder, so the same vocabulary and padding).
   */
  tokenizer?: string;
}

/** The pieces of one loaded checkpoint that generation needs besides the safeguards. */
interface ModelParts {
  checkpoint: Checkpoint;
  networks: Networks;
  /** One per text encoder, keyed by the encoder's diffusers folder (text_encoder, text_encoder_2). */
  tokenizers: Map<string, ClipTokenizer>;
  conditioner: Conditioner;
  schedulerConfig: RawSchedulerConfig;
  generation: GenerationConfig;
  promptExamples?: PromptExamples;
}

interface ModelOptions extends NetworkOptions, Pick<LoadOptions, "store" | "acceptLicense" | "confirmLicense"> {
  config?: string;
  /** How a user passes `config`, for the message asking for it (the refiner's differs from the model's). */
  configOption?: string;
  tokenizers: readonly (string | undefined)[];
  prediction?: PredictionType;
  /** Tokenizers to use, by encoder folder, for encoders whose own cannot be found (a refiner borrows the base's). */
  borrowed?: ReadonlyMap<string, ClipTokenizer>;
}

const TOKENIZER_HELP =
  "or pass --tokenizer PATH (a folder with vocab.json and merges.txt, e.g. the tokenizer/ folder of any SD1.5 diffusers model, " +
  "or OpenAI's bpe_simple_vocab_16e6.txt.gz from the CLIP repository), or --config with the model's diffusers folder";
const TOKENIZER_2_HELP =
  "or pass --tokenizer-2 PATH for its OpenCLIP bigG encoder (the tokenizer_2/ folder of an SDXL diffusers model, or OpenAI's " +
  "bpe_simple_vocab_16e6.txt.gz), or --config with an SDXL diffusers folder holding tokenizer/ and tokenizer_2/";

/**
 * Loads a checkpoint (single file or diffusers folder) for generation, with what sits beside it: tokenizers,
 * scheduler config, generation config, pipeline flags, safety checker, and a refiner when asked for. The
 * networks are built or opened on first use.
 */
export async function loadPipeline(path: string, opts: LoadOptions = {}): Promise<StableDiffusionPipeline> {
  const model = await openModel(path, { ...opts, tokenizers: [opts.tokenizer, opts.tokenizer2] });
  let refiner: ModelParts | undefined;
  let fastDecoder: TaesdModel | undefined, previewDecoder: TaesdModel | undefined, vae: VaeModel | undefined;
  try {
    if (opts.refiner) refiner = await openRefiner(opts.refiner, opts, model);
    const space = latentSpace(model.checkpoint.config);
    if (opts.vae !== undefined && isFullVae(opts.vae))
      vae = await VaeModel.open(opts.vae, model.checkpoint.config, opts);
    else if (opts.vae !== undefined) fastDecoder = await TaesdModel.open(opts.vae, space, opts);
    previewDecoder =
      opts.previewDecoder === undefined ? undefined : await TaesdModel.open(opts.previewDecoder, space, opts);
    const safeguards = await Safeguards.load(path, opts);
    const folders = defaultAdapterFolders();
    const embeddingsFolder = new AdapterFolder(opts.embeddingsDir ?? folders.embeddings, "embedding");
    const embeddings = (parts: ModelParts) =>
      new TextualInversions(embeddingEncoders(parts.checkpoint), opts.embeddings ?? [], embeddingsFolder);
    return new StableDiffusionPipeline({
      ...model,
      tokenizer: [...model.tokenizers.values()][0]!,
      safeguards,
      refiner: refiner && { ...asRefiner(refiner), embeddings: embeddings(refiner) },
      loraFolder: new AdapterFolder(opts.loraDir ?? folders.loras, "LoRA"),
      embeddings: embeddings(model),
      networkOptions: opts,
      stageMemory: opts.stageMemory,
      fastDecoder,
      previewDecoder,
      upscalers: learnedUpscalers(opts.upscalers, opts.upscalerSearch, opts.threads),
      vae,
    });
  } catch (e) {
    await vae?.close();
    await fastDecoder?.close();
    await previewDecoder?.close();
    refiner?.checkpoint.close();
    model.checkpoint.close();
    throw e;
  }
}

async function openModel(path: string, opts: ModelOptions): Promise<ModelParts> {
  if (!existsSync(path))
    throw new InputError(`model not found: ${path}; pass --model with a .safetensors file or a diffusers folder`);
  const checkpoint = openCheckpoint(path, {
    configDir: opts.config,
    configOption: opts.configOption,
    prediction: opts.prediction,
  });
  try {
    const roots = configRoots(checkpoint, opts.config);
    const tokenizers = new Map<string, ClipTokenizer>();
    for (const [i, folder] of checkpoint.textEncoderFolders.entries()) {
      tokenizers.set(
        folder,
        await loadTokenizer(checkpoint, folder, opts.tokenizers[i], roots, opts.borrowed?.get(folder), opts),
      );
    }
    const schedulerConfig = readSchedulerConfig(checkpoint, roots, opts.prediction);
    const generation = readGenerationConfig(roots);
    const promptExamples = readPromptExamples(roots);
    // int8 networks are calibrated on first use by running this model's own conditioner and UNet (int8-calibration.ts).
    let parts: CalibrationParts | undefined;
    const networks = await Networks.open(checkpoint, { ...opts, calibrate: calibrationRuns(() => parts!) });
    const conditioner = conditionerFor(checkpoint, networks, tokenizers, roots);
    parts = { checkpoint, conditioner, schedulerConfig, unet: () => networks.get("unet") };
    return {
      checkpoint,
      networks,
      tokenizers,
      conditioner,
      schedulerConfig,
      generation,
      ...(promptExamples ? { promptExamples } : {}),
    };
  } catch (e) {
    checkpoint.close();
    throw e;
  }
}

/** The refiner: a checkpoint of the same latent space, loaded like the model (its tokenizer borrowed if need be). */
async function openRefiner(r: RefinerLoadOptions, opts: LoadOptions, base: ModelParts): Promise<ModelParts> {
  const refiner = await openModel(r.model, {
    ...opts,
    config: r.config,
    configOption: "refiner.config / --refiner-config",
    tokenizers: [r.tokenizer],
    prediction: undefined,
    borrowed: base.tokenizers,
  });
  const [a, b] = [latentSpace(base.checkpoint.config), latentSpace(refiner.checkpoint.config)];
  if (a.channels !== b.channels || a.factor !== b.factor || a.scalingFactor !== b.scalingFactor) {
    refiner.checkpoint.close();
    throw new InputError(
      `the refiner ${r.model} works in another latent space (${b.channels} channels, 1/${b.factor} size, scaling ${b.scalingFactor}) than the model ` +
        `(${a.channels}, 1/${a.factor}, ${a.scalingFactor}): use a refiner of the model's family (an SDXL refiner for SDXL)`,
    );
  }
  if (
    (base.checkpoint.config.unet.timeCondProjDim === null) !==
    (refiner.checkpoint.config.unet.timeCondProjDim === null)
  ) {
    refiner.checkpoint.close();
    throw new InputError(
      `the refiner ${r.model} ${refiner.checkpoint.config.unet.timeCondProjDim === null ? "is not" : "is"} an LCM and the model ${base.checkpoint.config.unet.timeCondProjDim === null ? "is not" : "is"}: ` +
        "the two take guidance differently (an LCM embeds it, the others run a classifier-free pass), so pair LCMs with LCMs",
    );
  }
  if (refiner.checkpoint.inpainting) {
    refiner.checkpoint.close();
    throw new InputError(
      `the refiner ${r.model} is an inpainting checkpoint: a refiner takes over plain denoising, so use an ordinary one`,
    );
  }
  return refiner;
}

function asRefiner(m: ModelParts): Refiner {
  return {
    checkpoint: m.checkpoint,
    networks: m.networks,
    conditioner: m.conditioner,
    identity: { name: modelDisplayName(m.checkpoint.path), hash: shortHash(m.networks.sha256) },
  };
}

/**
 * The family's conditioning stage, as TEXT_CONDITIONING describes it: SD1/SD2 condition on one encoder's last
 * state, SDXL base and refiner on penultimate states with pooled embeds and time ids.
 */
function conditionerFor(
  ckpt: Checkpoint,
  networks: Networks,
  tokenizers: ReadonlyMap<string, ClipTokenizer>,
  roots: readonly string[],
): Conditioner {
  const { config } = ckpt;
  const family = config.family;
  const tokenizer = (i: number) => tokenizers.get(ckpt.textEncoderFolders[i]!)!;
  if (family === "sd1" || family === "sd2") {
    return new SdConditioner(networks, tokenizer(0), config.textEncoder, ckpt.textEncoder, {
      clipSkip: family === "sd1",
    });
  }
  const ids = TEXT_CONDITIONING[family].timeIds;
  if (timeIdCount(config) !== ids.length) {
    throw new UnsupportedModelError(
      `${ckpt.path}: the UNet takes ${timeIdCount(config)} time ids (projection_class_embeddings_input_dim ${config.unet.projectionClassEmbeddingsInputDim}), ` +
        `but an ${family} model conditions on ${ids.length} (${ids.join(", ")}); ${ckpt.mismatchHint}`,
    );
  }
  const encoders: SdxlEncoder[] = ckpt.textEncoderFolders.map((_, i) => ({
    network: i === 0 ? "text_encoder" : "text_encoder_2",
    tokenizer: tokenizer(i),
    config: i === 0 ? config.textEncoder : config.textEncoder2!,
    weights: i === 0 ? ckpt.textEncoder : ckpt.textEncoder2!,
    // diffusers feeds prompt_2 to the second encoder; the refiner's only encoder reads the prompt.
    prompts: i === 0 ? "first" : "second",
  }));
  return new SdxlConditioner(networks, encoders, {
    family,
    forceZerosForEmptyPrompt: readPipelineFlags(roots).forceZerosForEmptyPrompt,
  });
}

/** Where a model's side files live: the diffusers folder itself, and the --config folder of a single file. */
function configRoots(ckpt: Checkpoint, configDir?: string): string[] {
  return [ckpt.layout === "diffusers" ? ckpt.path : undefined, configDir].filter((r): r is string => !!r);
}

/**
 * The tokenizer of the text encoder in diffusers folder `encoderFolder`: the path given, else the matching
 * tokenizer folder (tokenizer/, tokenizer_2/) of the model or its config folder, else a borrowed one, else the
 * store's for that encoder (fetched once). OpenCLIP encoders (SD2's, SDXL's bigG) pad with "!" (id 0) when the
 * files name no pad token, as open_clip does.
 */
async function loadTokenizer(
  ckpt: Checkpoint,
  encoderFolder: string,
  given: string | undefined,
  roots: readonly string[],
  borrowed: ClipTokenizer | undefined,
  opts: ModelOptions,
): Promise<ClipTokenizer> {
  const openClip = ckpt.config.family === "sd2" || encoderFolder === "text_encoder_2";
  const options = openClip ? { defaultPadToken: "!" } : {};
  if (given !== undefined) return ClipTokenizer.load(given, options);
  const folder = encoderFolder.replace("text_encoder", "tokenizer");
  const found = roots.map((r) => join(r, folder)).find((t) => existsSync(join(t, "vocab.json")));
  if (found) return ClipTokenizer.load(found, options);
  if (borrowed) return borrowed;
  // Loaded only here, where a tokenizer must come from the store: the Hub client is not needed otherwise.
  const { storeTokenizer, tokenizerEntryFor } = await import("../hub/tokenizer-store.js");
  const entry = tokenizerEntryFor(ckpt.config.family, encoderFolder);
  let stored: string;
  try {
    stored = await storeTokenizer(entry, {
      ...opts.store,
      acceptLicense: opts.acceptLicense,
      confirmLicense: opts.confirmLicense,
      onStatus: opts.onStatus,
    });
  } catch (e) {
    if (!(e instanceof HubError)) throw e;
    const second = ckpt.textEncoderFolders.indexOf(encoderFolder) === 1;
    throw new InputError(
      `${ckpt.path}: a single-file checkpoint carries no tokenizer, and the store's (${entry.name}) is not available: ${e.message}; ` +
        (second ? TOKENIZER_2_HELP : TOKENIZER_HELP),
    );
  }
  return ClipTokenizer.load(stored, options);
}

/**
 * The model's own scheduler_config.json: samplers inherit its schedule (spacing, offset, betas), with the
 * prediction type the checkpoint was opened with when `prediction` overrides it.
 */
function readSchedulerConfig(
  ckpt: Checkpoint,
  roots: readonly string[],
  prediction: PredictionType | undefined,
): RawSchedulerConfig {
  const file = roots.map((r) => join(r, "scheduler", "scheduler_config.json")).find((f) => existsSync(f));
  if (file) {
    const config = parseSchedulerConfigJson(
      readJsonText(file, InputError, {
        hint: "restore the file from the model's repository",
        maxBytes: MAX_SIDE_FILE_BYTES,
      }),
      file,
    );
    return prediction ? { ...config, prediction_type: prediction } : config;
  }
  // The published SD schedule (SDXL's is the same), for single files without a config folder.
  return { ...STABLE_DIFFUSION_SCHEDULER_CONFIG, prediction_type: ckpt.config.predictionType };
}
