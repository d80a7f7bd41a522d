import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { CheckpointError, UnsupportedModelError } from "../errors.js";
import { MAX_SIDE_FILE_BYTES, readJsonFile } from "../regular-file.js";
import type { ModelFamily, PipelineConfig, PredictionType } from "../configs/pipeline.js";
import { textEncoderConfigFromTransformers, type TextEncoderConfig } from "../configs/text-encoder.js";
import { unetConfigFromDiffusers } from "../configs/unet.js";
import { vaeConfigFromDiffusers } from "../configs/vae.js";
import {
  detectDiffusersFamily,
  detectLdmCheckpoint,
  familyName,
  inpaintingFromInChannels,
  predictionDefaults,
  sd2PredictionFromProbe,
  sd2PredictionProbe,
  unusedTextTensor,
  type FamilyEvidence,
} from "./detect.js";
import {
  isDiffusersBuffer,
  ldmComponentWeights,
  RenamedWeights,
  type Component,
  type LdmPart,
  type TensorRef,
} from "./ldm-keymap.js";
import { SafetensorsFile, type Dtype } from "./safetensors.js";
import { modelTensors } from "./state-dict.js";
import { openTensorFile } from "./tensor-file.js";
import type { WeightSource } from "./weight-source.js";

/**
 * Opening a Stable Diffusion checkpoint's files, whatever their layout, as diffusers-named weight sources (UNet,
 * VAE, one or two text encoders) plus the pipeline config (from the folder's config files, or detected from the
 * shapes). Only headers are read; tensor data is read later, one tensor at a time, by whoever builds the networks
 * (SD2's prediction type is the one exception: one small tensor, see detect.ts). Checking every tensor against the
 * architecture needs the network builders, one layer up: models/open-checkpoint.ts does both.
 */

export interface OpenOptions {
  /**
   * A diffusers folder whose config.json files describe a single-file checkpoint, used instead of detection (like
   * diffusers' `from_single_file(config=...)`): needed when the sizes are not the family's published ones, because
   * head counts and norm groups cannot be read from the weights.
   */
  configDir?: string;
  /**
   * How the caller's user passes configDir, for the message that asks for it (default `configDir / --config`, the
   * model's; a refiner's is its own).
   */
  configOption?: string;
  /** For diffusers folders holding both precisions: read `*.fp16.safetensors` first. Default: full precision first. */
  variant?: "fp16";
  /**
   * The prediction type, over the model folder's scheduler config and single-file detection (the CLI's
   * `--prediction v|epsilon`). For a detected SD2 single file it also sets the default size (v: 768 px, epsilon: 512).
   */
  prediction?: PredictionType;
}

export interface ComponentInfo {
  parameters: number;
  tensors: number;
  /** The stored dtype of most of the component's elements (F16 for most single files). */
  dtype: Dtype;
}

export interface CheckpointComponents {
  readonly unet: ComponentInfo;
  readonly vae: ComponentInfo;
  readonly textEncoder: ComponentInfo;
  readonly textEncoder2?: ComponentInfo;
}

export interface Checkpoint {
  readonly path: string;
  readonly layout: "single-file" | "diffusers";
  readonly config: PipelineConfig;
  /** The UNet takes 9 channels: latents, mask and masked-image latents. */
  readonly inpainting: boolean;
  readonly unet: WeightSource;
  readonly vae: WeightSource;
  /** The first (or only) text encoder, described by config.textEncoder (see PipelineConfig). */
  readonly textEncoder: WeightSource;
  /** SDXL base's second text encoder (OpenCLIP bigG with projection), described by config.textEncoder2. */
  readonly textEncoder2?: WeightSource;
  /**
   * The diffusers folder names of textEncoder and textEncoder2, in that order: ["text_encoder"] (SD1, SD2),
   * ["text_encoder", "text_encoder_2"] (SDXL), ["text_encoder_2"] (SDXL refiner). Each encoder's tokenizer is the
   * folder of the same suffix (tokenizer/, tokenizer_2/).
   */
  readonly textEncoderFolders: readonly string[];
  readonly components: CheckpointComponents;
  /** Every file read (weights first, then configs), for a cache key or hash. */
  readonly files: readonly string[];
  /** What to tell the user when the tensors do not match the config (which of the two to suspect). */
  readonly mismatchHint: string;
  close(): void;
}

type Json = Record<string, unknown>;

/** diffusers' folder names and weight file stems of the components. */
export const WEIGHT_STEMS: Readonly<Record<string, string>> = {
  unet: "diffusion_pytorch_model",
  vae: "diffusion_pytorch_model",
  text_encoder: "model",
  text_encoder_2: "model",
};

/** Which diffusers folder holds each component, per family. */
export const DIFFUSERS_FOLDERS: Readonly<Record<ModelFamily, Readonly<Partial<Record<Component, string>>>>> = {
  sd1: { unet: "unet", vae: "vae", textEncoder: "text_encoder" },
  sd2: { unet: "unet", vae: "vae", textEncoder: "text_encoder" },
  sdxl: { unet: "unet", vae: "vae", textEncoder: "text_encoder", textEncoder2: "text_encoder_2" },
  "sdxl-refiner": { unet: "unet", vae: "vae", textEncoder: "text_encoder_2" },
};

const COMPONENTS: readonly Component[] = ["unet", "vae", "textEncoder", "textEncoder2"];
const FOLDER_LAYOUT =
  "a diffusers Stable Diffusion folder holds model_index.json, unet/, vae/, text_encoder/ (and text_encoder_2/ for SDXL), tokenizer/ and scheduler/";

/** Opens a single-file checkpoint (original layout: `.safetensors`, or a `.ckpt` torch.save file) or a diffusers folder. */
export function openCheckpointFiles(path: string, opts: OpenOptions = {}): Checkpoint {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new CheckpointError(
      `${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`,
    );
  }
  return isDir ? openDiffusersFolder(path, opts) : openSingleFile(path, opts);
}

function openSingleFile(path: string, opts: OpenOptions): Checkpoint {
  // A .ckpt (torch.save) file is read through the restricted pickle reader, which executes nothing.
  const file = modelTensors(openTensorFile(path));
  try {
    const shapes = new Map(file.keys().map((k) => [k, file.info(k).shape] as const));
    const detected = detectLdmCheckpoint(shapes, path);
    const configFiles: string[] = [];
    let config: PipelineConfig;
    if (opts.configDir !== undefined) {
      const given = readFolderConfigs(opts.configDir, configFiles);
      if (given.family.family !== detected.family) {
        throw new CheckpointError(
          `${path}: the file is a ${familyName(detected.family)} checkpoint (${detected.evidence}) but the config folder ${opts.configDir} ` +
            `describes a ${familyName(given.family.family)} model (${given.family.evidence}); pass the config folder of this model`,
        );
      }
      config = opts.prediction ? { ...given.config, predictionType: opts.prediction } : given.config;
    } else if (!detected.standardSizes) {
      const c = detected.config;
      throw new UnsupportedModelError(
        `${path}: a ${familyName(detected.family)} checkpoint with non-standard sizes (UNet channels [${c.unet.blockOutChannels}], ` +
          `context ${c.unet.crossAttentionDim}, VAE channels [${c.vae.blockOutChannels}], text width ${[
            c.textEncoder,
            c.textEncoder2,
          ]
            .filter(Boolean)
            .map((t) => t!.hiddenSize)
            .join(" + ")}); ` +
          `attention head counts and norm groups cannot be read from weights, so pass a config folder ` +
          `(${opts.configOption ?? "configDir / --config"}: a diffusers folder with unet/, vae/ and text encoder config.json files for this model)`,
      );
    } else {
      config = detected.config;
    }
    const sources = new Map<Component, RenamedWeights>();
    for (const part of detected.parts)
      sources.set(part.component, usedWeights(ldmComponentWeights(file, part), part, config));
    if (opts.configDir === undefined)
      config = predictionDefaults(
        config,
        opts.prediction ?? singleFilePrediction(config, sources.get("unet")!, shapes),
      );
    const hint =
      opts.configDir !== undefined
        ? `the config folder ${opts.configDir} does not describe this checkpoint`
        : `the checkpoint is incomplete or not a plain ${familyName(detected.family)} model`;
    return makeCheckpoint(
      path,
      "single-file",
      config,
      inpaintingFromInChannels(config.unet.inChannels, path),
      sources,
      textFolders(config.family),
      [path, ...configFiles],
      [file],
      hint,
    );
  } catch (e) {
    file.close();
    throw e;
  }
}

/** What a single file says about itself without a config folder: everything but the sizes its weights cannot show. */
export interface SingleFileSurvey {
  readonly path: string;
  readonly family: ModelFamily;
  readonly inpainting: boolean;
  /** The widths are the family's published ones: the file opens without a config folder. */
  readonly standardSizes: boolean;
  readonly components: CheckpointComponents;
  /** The diffusers folder names of the text encoders, as Checkpoint.textEncoderFolders. */
  readonly textEncoderFolders: readonly string[];
}

/**
 * Reads a single-file checkpoint's header (or a .ckpt's pickle, as data) for its family and each component's
 * parameters and dtype, which need no config folder even where the sizes are not the family's published ones (a
 * config folder is needed to build the networks, not to count their parameters).
 */
export function surveySingleFile(path: string): SingleFileSurvey {
  const file = modelTensors(openTensorFile(path));
  try {
    const shapes = new Map(file.keys().map((k) => [k, file.info(k).shape] as const));
    const detected = detectLdmCheckpoint(shapes, path);
    const info = new Map<Component, ComponentInfo>();
    for (const part of detected.parts)
      info.set(part.component, componentInfo(usedWeights(ldmComponentWeights(file, part), part, detected.config)));
    const text2 = info.get("textEncoder2");
    return {
      path,
      family: detected.family,
      inpainting: detected.inpainting,
      standardSizes: detected.standardSizes,
      components: {
        unet: info.get("unet")!,
        vae: info.get("vae")!,
        textEncoder: info.get("textEncoder")!,
        ...(text2 ? { textEncoder2: text2 } : {}),
      },
      textEncoderFolders: textFolders(detected.family),
    };
  } finally {
    file.close();
  }
}

/**
 * The prediction type of a single file without a config. SD1 and SDXL checkpoints are epsilon models, except SDXL
 * fine-tunes that mark themselves v-prediction with a `v_pred` key (ComfyUI's rule, supported_models.py SDXL.model_type).
 * For SD2 the tools differ: diffusers' from_single_file assumes v-prediction unless a .ckpt says global_step 875000
 * (so every SD2 .safetensors file is v, 512-base included); A1111 runs the UNet on a probe input
 * (sd_models_config.py, is_using_v_parameterization_for_sd2); ComfyUI reads the spread of one norm bias. We take
 * ComfyUI's rule: it reads 1280 numbers instead of running an 866M-parameter UNet, and tells 768-v from 512-base
 * apart where diffusers' rule cannot. `prediction` (--prediction) decides over all of these.
 */
function singleFilePrediction(
  config: PipelineConfig,
  unet: WeightSource,
  stored: ReadonlyMap<string, unknown>,
): PredictionType {
  if (config.family === "sdxl" || config.family === "sdxl-refiner")
    return stored.has("v_pred") ? "v_prediction" : "epsilon";
  if (config.family !== "sd2") return "epsilon";
  const probe = sd2PredictionProbe(config.unet);
  return probe && unet.has(probe) ? sd2PredictionFromProbe(unet.float32(probe)) : "epsilon";
}

/**
 * The tensors the pipeline uses. OpenCLIP towers are stored whole: SD2 files carry a text_projection and a last
 * block that SD2 never runs (its text encoder stops one block short, see detect.ts); both are left out when the
 * config has no projection and one layer fewer than stored, as diffusers' from_single_file does.
 */
function usedWeights(source: RenamedWeights, part: LdmPart, config: PipelineConfig): RenamedWeights {
  if (part.layout !== "open-clip") return source;
  const text: TextEncoderConfig = part.component === "textEncoder2" ? config.textEncoder2! : config.textEncoder;
  return source.without(unusedTextTensor(config.family, text, source.keys()));
}

function textFolders(family: ModelFamily): string[] {
  const f = DIFFUSERS_FOLDERS[family];
  return [f.textEncoder!, ...(f.textEncoder2 ? [f.textEncoder2] : [])];
}

function openDiffusersFolder(dir: string, opts: OpenOptions): Checkpoint {
  if (existsSync(join(dir, "unet", "model.onnx"))) {
    throw new UnsupportedModelError(
      `${dir}: an ONNX export folder (unet/model.onnx); open the checkpoint it came from (single file or diffusers folder) instead`,
    );
  }
  const configFiles: string[] = [];
  const read = readFolderConfigs(dir, configFiles);
  const config = opts.prediction ? { ...read.config, predictionType: opts.prediction } : read.config;
  const inpainting = inpaintingFromInChannels(config.unet.inChannels, dir);
  const opened: SafetensorsFile[] = [];
  try {
    const weightFiles: string[] = [];
    const sources = new Map<Component, RenamedWeights>();
    for (const c of COMPONENTS) {
      const folder = DIFFUSERS_FOLDERS[config.family][c];
      if (!folder) continue;
      const w = openDiffusersComponent(join(dir, folder), c, opts.variant);
      opened.push(...w.files);
      weightFiles.push(...w.files.map((f) => f.path));
      sources.set(c, w.weights);
    }
    return makeCheckpoint(
      dir,
      "diffusers",
      config,
      inpainting,
      sources,
      textFolders(config.family),
      [...weightFiles, ...configFiles],
      opened,
      `the weights in ${dir} do not match its config.json files`,
    );
  } catch (e) {
    for (const f of opened) f.close();
    throw e;
  }
}

/** A config file as a JSON object, read with the bounds every side file gets. */
export function readJson(path: string, what: string): Json {
  if (!existsSync(path)) throw new CheckpointError(`${path}: missing (${what})`);
  // Not a FIFO or a device (which would hang or never end), not nested past the bound, not gigabytes.
  const json = readJsonFile(path, CheckpointError, {
    hint: "restore the file from the model's repository",
    maxBytes: MAX_SIDE_FILE_BYTES,
  });
  if (json === null || typeof json !== "object" || Array.isArray(json))
    throw new CheckpointError(`${path}: expected a JSON object`);
  return json as Json;
}

/** The pipeline config of a diffusers folder (or of a config folder given for a single file). */
function readFolderConfigs(dir: string, read: string[]): { config: PipelineConfig; family: FamilyEvidence } {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new CheckpointError(`${dir}: not a folder; ${FOLDER_LAYOUT}`);
  const indexPath = join(dir, "model_index.json");
  const index = existsSync(indexPath) ? readJson(indexPath, "model_index.json") : undefined;
  if (index) read.push(indexPath);
  const component = (folder: string): Json => {
    const sub = join(dir, folder);
    if (!existsSync(sub)) throw new CheckpointError(`${dir}: no ${folder}/ folder; ${FOLDER_LAYOUT}`);
    const p = join(sub, "config.json");
    const json = readJson(p, `the ${folder} config; ${FOLDER_LAYOUT}`);
    read.push(p);
    return json;
  };
  const unet = component("unet"),
    vae = component("vae");
  const firstText = existsSync(join(dir, "text_encoder")) ? component("text_encoder") : undefined;
  const family = detectDiffusersFamily(index, unet, firstText);
  const folders = DIFFUSERS_FOLDERS[family.family];
  const text = (folder: string): TextEncoderConfig => {
    // model_index.json names each encoder's class; CLIPTextModelWithProjection has the text_projection.
    const entry = index?.[folder];
    const cls = Array.isArray(entry) ? String(entry[1]) : undefined;
    const json = folder === "text_encoder" && firstText ? firstText : component(folder);
    return textEncoderConfigFromTransformers(json, {
      withProjection: cls === undefined ? undefined : cls === "CLIPTextModelWithProjection",
      origin: join(dir, folder, "config.json"),
    });
  };
  const schedulerPath = join(dir, "scheduler", "scheduler_config.json");
  let predictionType: PredictionType = "epsilon";
  if (existsSync(schedulerPath)) {
    const p = readJson(schedulerPath, "scheduler config").prediction_type;
    if (p === "v_prediction") predictionType = "v_prediction";
    read.push(schedulerPath);
  }
  return {
    family,
    config: {
      family: family.family,
      predictionType,
      unet: unetConfigFromDiffusers(unet, join(dir, "unet", "config.json")),
      vae: vaeConfigFromDiffusers(vae),
      textEncoder: text(folders.textEncoder!),
      ...(folders.textEncoder2 ? { textEncoder2: text(folders.textEncoder2) } : {}),
    },
  };
}

/** A diffusers component folder's weights: one file or an index of shards, full precision or fp16 variant. */
export function openDiffusersComponent(
  dir: string,
  component: Component,
  variant?: "fp16",
  layoutHelp = FOLDER_LAYOUT,
): { weights: RenamedWeights; files: SafetensorsFile[] } {
  const stem =
    component === "textEncoder" || component === "textEncoder2" ? WEIGHT_STEMS.text_encoder! : WEIGHT_STEMS.unet!;
  if (!existsSync(dir)) throw new CheckpointError(`${dir}: missing; ${layoutHelp}`);
  const plain = [`${stem}.safetensors`, `${stem}.safetensors.index.json`];
  const half = [
    `${stem}.fp16.safetensors`,
    `${stem}.safetensors.index.fp16.json`,
    `${stem}.fp16.safetensors.index.json`,
  ];
  const candidates = variant === "fp16" ? [...half, ...plain] : [...plain, ...half];
  const found = candidates.find((n) => existsSync(join(dir, n)));
  if (!found) {
    const pickle = [`${stem}.bin`, `${stem}.fp16.bin`, `${stem}.ckpt`].find((n) => existsSync(join(dir, n)));
    // The reader explains why pickles are refused and how to convert them.
    if (pickle) SafetensorsFile.open(join(dir, pickle));
    throw new CheckpointError(`${dir}: no ${stem}.safetensors (nor an fp16 variant or a sharded index); ${layoutHelp}`);
  }
  const files: SafetensorsFile[] = [];
  try {
    const table = new Map<string, TensorRef>();
    const add = (file: SafetensorsFile, names: Iterable<string>) => {
      for (const name of names) {
        if (isDiffusersBuffer(component, name)) continue;
        if (!file.has(name))
          throw new CheckpointError(`${file.path}: no tensor "${name}", which the shard index places in this file`);
        if (table.has(name))
          throw new CheckpointError(`${file.path}: tensor "${name}" also appears in ${table.get(name)!.file.path}`);
        table.set(name, { file, stored: name, shape: file.info(name).shape });
      }
    };
    if (found.endsWith(".json")) {
      const indexPath = join(dir, found);
      const weightMap = readJson(indexPath, "shard index").weight_map;
      if (weightMap === null || typeof weightMap !== "object")
        throw new CheckpointError(`${indexPath}: no weight_map object`);
      const byFile = new Map<string, string[]>();
      for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
        if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\"))
          throw new CheckpointError(`${indexPath}: bad shard name for "${name}"`);
        byFile.set(shard, [...(byFile.get(shard) ?? []), name]);
      }
      for (const [shard, names] of byFile) {
        const f = SafetensorsFile.open(join(dir, shard));
        files.push(f);
        add(f, names);
      }
    } else {
      const f = SafetensorsFile.open(join(dir, found));
      files.push(f);
      add(f, f.keys());
    }
    return { weights: new RenamedWeights(files.length === 1 ? files[0]!.path : dir, table), files };
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
}

/** Parameter count, tensor count and the dominant stored dtype of a weight source (headers only). */
export function componentInfo(w: WeightSource): ComponentInfo {
  const byDtype = new Map<Dtype, number>();
  let parameters = 0;
  const keys = w.keys();
  for (const k of keys) {
    const n = w.shape(k).reduce((a, b) => a * b, 1);
    parameters += n;
    byDtype.set(w.dtype(k), (byDtype.get(w.dtype(k)) ?? 0) + n);
  }
  let dtype: Dtype = "F32",
    most = -1;
  for (const [d, n] of byDtype) if (n > most) [dtype, most] = [d, n];
  return { parameters, tensors: keys.length, dtype };
}

function makeCheckpoint(
  path: string,
  layout: Checkpoint["layout"],
  config: PipelineConfig,
  inpainting: boolean,
  sources: ReadonlyMap<Component, WeightSource>,
  textEncoderFolders: readonly string[],
  files: string[],
  opened: ReadonlyArray<{ close(): void }>,
  mismatchHint: string,
): Checkpoint {
  const get = (c: Component) => {
    const w = sources.get(c);
    if (!w) throw new CheckpointError(`${path}: no ${c} weights; ${FOLDER_LAYOUT}`);
    return w;
  };
  const textEncoder2 = sources.get("textEncoder2");
  return {
    path,
    layout,
    config,
    inpainting,
    unet: get("unet"),
    vae: get("vae"),
    textEncoder: get("textEncoder"),
    ...(textEncoder2 ? { textEncoder2 } : {}),
    textEncoderFolders,
    components: {
      unet: componentInfo(get("unet")),
      vae: componentInfo(get("vae")),
      textEncoder: componentInfo(get("textEncoder")),
      ...(textEncoder2 ? { textEncoder2: componentInfo(textEncoder2) } : {}),
    },
    files,
    mismatchHint,
    close: () => {
      for (const f of opened) f.close();
    },
  };
}
