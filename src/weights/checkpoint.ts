import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { CheckpointError, UnsupportedModelError } from "../errors.js";
import { MAX_SIDE_FILE_BYTES, readJsonFile } from "../regular-file.js";
import type { PipelineConfig, PredictionType } from "../configs/pipeline.js";
import { textEncoderConfigFromTransformers } from "../configs/text-encoder.js";
import { unetConfigFromDiffusers } from "../configs/unet.js";
import { vaeConfigFromDiffusers } from "../configs/vae.js";
import { detectDiffusersFamily, detectLdmCheckpoint, inpaintingFromInChannels, refuseUnsupportedFamily } from "./detect.js";
import { isDiffusersBuffer, ldmComponentWeights, RenamedWeights, type Component, type TensorRef } from "./ldm-keymap.js";
import { SafetensorsFile, type Dtype } from "./safetensors.js";
import type { WeightSource } from "./weight-source.js";

/**
 * Opening a Stable Diffusion checkpoint's files, whatever their layout, as three diffusers-named weight sources
 * plus the pipeline config (from the folder's config files, or detected from the shapes). Only headers are read;
 * tensor data is read later, one tensor at a time, by whoever builds the networks. Checking every tensor against
 * the architecture needs the network builders, one layer up: models/open-checkpoint.ts does both.
 */

export interface OpenOptions {
  /**
   * A diffusers folder whose unet/, vae/ and text_encoder/ config.json describe a single-file checkpoint, used
   * instead of detection (like diffusers' `from_single_file(config=...)`): needed when the sizes are not SD1's,
   * because head counts and norm groups cannot be read from the weights.
   */
  configDir?: string;
  /** For diffusers folders holding both precisions: read `*.fp16.safetensors` first. Default: full precision first. */
  variant?: "fp16";
}

export interface ComponentInfo {
  parameters: number;
  tensors: number;
  /** The stored dtype of most of the component's elements (F16 for most single files). */
  dtype: Dtype;
}

export interface Checkpoint {
  readonly path: string;
  readonly layout: "single-file" | "diffusers";
  readonly config: PipelineConfig;
  /** The UNet takes 9 channels: latents, mask and masked-image latents. */
  readonly inpainting: boolean;
  readonly unet: WeightSource;
  readonly vae: WeightSource;
  readonly textEncoder: WeightSource;
  readonly components: Readonly<Record<Component, ComponentInfo>>;
  /** Every file read (weights first, then configs), for a cache key or hash. */
  readonly files: readonly string[];
  /** What to tell the user when the tensors do not match the config (which of the two to suspect). */
  readonly mismatchHint: string;
  close(): void;
}

type Json = Record<string, unknown>;

/** diffusers' folder names and weight file stems per component. */
const DIFFUSERS_COMPONENTS: Readonly<Record<Component, { dir: string; stem: string }>> = {
  unet: { dir: "unet", stem: "diffusion_pytorch_model" },
  vae: { dir: "vae", stem: "diffusion_pytorch_model" },
  textEncoder: { dir: "text_encoder", stem: "model" },
};

const COMPONENTS: readonly Component[] = ["unet", "vae", "textEncoder"];
const FOLDER_LAYOUT = "a diffusers Stable Diffusion folder holds model_index.json, unet/, vae/, text_encoder/, tokenizer/ and scheduler/";

/** Opens a single-file `.safetensors` checkpoint (original layout) or a diffusers folder. */
export function openCheckpointFiles(path: string, opts: OpenOptions = {}): Checkpoint {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new CheckpointError(`${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`);
  }
  return isDir ? openDiffusersFolder(path, opts) : openSingleFile(path, opts);
}

function openSingleFile(path: string, opts: OpenOptions): Checkpoint {
  const file = SafetensorsFile.open(path);
  try {
    const shapes = new Map([...file.tensors].map(([k, t]) => [k, t.shape] as const));
    const detected = detectLdmCheckpoint(shapes, path);
    const configFiles: string[] = [];
    let config = detected.config;
    if (opts.configDir !== undefined) {
      const given = readFolderConfigs(opts.configDir, configFiles);
      config = { ...given.config, family: detected.family };
    } else if (!detected.standardSizes) {
      const c = detected.config;
      throw new UnsupportedModelError(
        `${path}: an SD1-style checkpoint with non-standard sizes (UNet channels [${c.unet.blockOutChannels}], ` +
          `context ${c.unet.crossAttentionDim}, VAE channels [${c.vae.blockOutChannels}], text width ${c.textEncoder.hiddenSize}); ` +
          `attention head counts and norm groups cannot be read from weights, so pass a config folder ` +
          `(configDir / --config: a diffusers folder with unet/, vae/ and text_encoder/ config.json files for this model)`,
      );
    }
    const sources = {
      unet: ldmComponentWeights(file, "unet"),
      vae: ldmComponentWeights(file, "vae"),
      textEncoder: ldmComponentWeights(file, "textEncoder"),
    };
    const hint = opts.configDir !== undefined
      ? `the config folder ${opts.configDir} does not describe this checkpoint`
      : "the checkpoint is incomplete or not a plain SD1.x model";
    return makeCheckpoint(path, "single-file", config, inpaintingFromInChannels(config.unet.inChannels, path), sources, [path, ...configFiles], [file], hint);
  } catch (e) {
    file.close();
    throw e;
  }
}

function openDiffusersFolder(dir: string, opts: OpenOptions): Checkpoint {
  if (existsSync(join(dir, "unet", "model.onnx"))) {
    throw new UnsupportedModelError(`${dir}: an ONNX export folder (unet/model.onnx); open the checkpoint it came from (single file or diffusers folder) instead`);
  }
  const configFiles: string[] = [];
  const { config, family } = readFolderConfigs(dir, configFiles);
  refuseUnsupportedFamily(family, dir);
  const inpainting = inpaintingFromInChannels(config.unet.inChannels, dir);
  const opened: SafetensorsFile[] = [];
  try {
    const weightFiles: string[] = [];
    const sources = {} as Record<Component, RenamedWeights>;
    for (const c of COMPONENTS) {
      const w = openDiffusersComponent(join(dir, DIFFUSERS_COMPONENTS[c].dir), c, opts.variant);
      opened.push(...w.files);
      weightFiles.push(...w.files.map((f) => f.path));
      sources[c] = w.weights;
    }
    return makeCheckpoint(dir, "diffusers", config, inpainting, sources, [...weightFiles, ...configFiles], opened, `the weights in ${dir} do not match its config.json files`);
  } catch (e) {
    for (const f of opened) f.close();
    throw e;
  }
}

function readJson(path: string, what: string): Json {
  if (!existsSync(path)) throw new CheckpointError(`${path}: missing (${what})`);
  // Not a FIFO or a device (which would hang or never end), not nested past the bound, not gigabytes.
  const json = readJsonFile(path, CheckpointError, { hint: "restore the file from the model's repository", maxBytes: MAX_SIDE_FILE_BYTES });
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new CheckpointError(`${path}: expected a JSON object`);
  return json as Json;
}

/** The pipeline config of a diffusers folder (or of a config folder given for a single file). */
function readFolderConfigs(dir: string, read: string[]): { config: PipelineConfig; family: ReturnType<typeof detectDiffusersFamily> } {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CheckpointError(`${dir}: not a folder; ${FOLDER_LAYOUT}`);
  const indexPath = join(dir, "model_index.json");
  const index = existsSync(indexPath) ? readJson(indexPath, "model_index.json") : undefined;
  if (index) read.push(indexPath);
  const component = (c: Component): Json => {
    const sub = join(dir, DIFFUSERS_COMPONENTS[c].dir);
    if (!existsSync(sub)) throw new CheckpointError(`${dir}: no ${DIFFUSERS_COMPONENTS[c].dir}/ folder; ${FOLDER_LAYOUT}`);
    const p = join(sub, "config.json");
    const json = readJson(p, `the ${DIFFUSERS_COMPONENTS[c].dir} config; ${FOLDER_LAYOUT}`);
    read.push(p);
    return json;
  };
  const unet = component("unet"), vae = component("vae"), text = component("textEncoder");
  const family = detectDiffusersFamily(index, unet, text);
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
      unet: unetConfigFromDiffusers(unet),
      vae: vaeConfigFromDiffusers(vae),
      textEncoder: textEncoderConfigFromTransformers(text),
    },
  };
}

/** A diffusers component folder's weights: one file or an index of shards, full precision or fp16 variant. */
export function openDiffusersComponent(dir: string, component: Component, variant?: "fp16"): { weights: RenamedWeights; files: SafetensorsFile[] } {
  const stem = DIFFUSERS_COMPONENTS[component].stem;
  if (!existsSync(dir)) throw new CheckpointError(`${dir}: missing; ${FOLDER_LAYOUT}`);
  const plain = [`${stem}.safetensors`, `${stem}.safetensors.index.json`];
  const half = [`${stem}.fp16.safetensors`, `${stem}.safetensors.index.fp16.json`, `${stem}.fp16.safetensors.index.json`];
  const candidates = variant === "fp16" ? [...half, ...plain] : [...plain, ...half];
  const found = candidates.find((n) => existsSync(join(dir, n)));
  if (!found) {
    const pickle = [`${stem}.bin`, `${stem}.fp16.bin`, `${stem}.ckpt`].find((n) => existsSync(join(dir, n)));
    // The reader explains why pickles are refused and how to convert them.
    if (pickle) SafetensorsFile.open(join(dir, pickle));
    throw new CheckpointError(`${dir}: no ${stem}.safetensors (nor an fp16 variant or a sharded index); ${FOLDER_LAYOUT}`);
  }
  const files: SafetensorsFile[] = [];
  try {
    const table = new Map<string, TensorRef>();
    const add = (file: SafetensorsFile, names: Iterable<string>) => {
      for (const name of names) {
        if (isDiffusersBuffer(component, name)) continue;
        if (!file.has(name)) throw new CheckpointError(`${file.path}: no tensor "${name}", which the shard index places in this file`);
        if (table.has(name)) throw new CheckpointError(`${file.path}: tensor "${name}" also appears in ${table.get(name)!.file.path}`);
        table.set(name, { file, stored: name, shape: file.info(name).shape });
      }
    };
    if (found.endsWith(".json")) {
      const indexPath = join(dir, found);
      const weightMap = readJson(indexPath, "shard index").weight_map;
      if (weightMap === null || typeof weightMap !== "object") throw new CheckpointError(`${indexPath}: no weight_map object`);
      const byFile = new Map<string, string[]>();
      for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
        if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\")) throw new CheckpointError(`${indexPath}: bad shard name for "${name}"`);
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
  let dtype: Dtype = "F32", most = -1;
  for (const [d, n] of byDtype) if (n > most) [dtype, most] = [d, n];
  return { parameters, tensors: keys.length, dtype };
}

function makeCheckpoint(
  path: string,
  layout: Checkpoint["layout"],
  config: PipelineConfig,
  inpainting: boolean,
  sources: Record<Component, WeightSource>,
  files: string[],
  opened: SafetensorsFile[],
  mismatchHint: string,
): Checkpoint {
  return {
    path,
    layout,
    config,
    inpainting,
    unet: sources.unet,
    vae: sources.vae,
    textEncoder: sources.textEncoder,
    components: {
      unet: componentInfo(sources.unet),
      vae: componentInfo(sources.vae),
      textEncoder: componentInfo(sources.textEncoder),
    },
    files,
    mismatchHint,
    close: () => {
      for (const f of opened) f.close();
    },
  };
}

