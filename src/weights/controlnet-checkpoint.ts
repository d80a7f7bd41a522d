import { statSync } from "node:fs";
import { basename, join } from "node:path";
import { CheckpointError, UnsupportedModelError } from "../errors.js";
import { controlNetConfigFromDiffusers, type ControlNetConfig } from "../configs/controlnet.js";
import type { ModelFamily } from "../configs/pipeline.js";
import { openDiffusersComponent, readJson } from "./checkpoint.js";
import { controlNetConfigFromShapes } from "./detect-controlnet.js";
import { legacyShortHash } from "./hash.js";
import { controlNetPart, ldmComponentWeights, RenamedWeights, type TensorRef } from "./ldm-keymap.js";
import { SafetensorsFile } from "./safetensors.js";

/**
 * Opening a ControlNet, whatever its layout, as a diffusers-named weight source plus its config: a diffusers folder
 * (config.json + diffusion_pytorch_model.safetensors), a single file in lllyasviel's layout (`control_model.*`, or the
 * same names without the prefix as ControlNet 1.1 files have them), or a single file with diffusers names (as the
 * SDXL ControlNets are published). Only headers are read here; models/open-controlnet.ts checks every tensor.
 */
export interface ControlNetCheckpoint {
  readonly path: string;
  readonly layout: "diffusers" | "single-file";
  readonly config: ControlNetConfig;
  /** The family whose UNet it guides, when its widths tell (undefined for a config of non-standard widths). */
  readonly family: ModelFamily | undefined;
  readonly weights: RenamedWeights;
  /** Every file read (weights first, then the config), for the cache key. */
  readonly files: readonly string[];
  /** What to suspect when the tensors do not match the config. */
  readonly mismatchHint: string;
  close(): void;
}

export interface ControlNetOpenOptions {
  /**
   * A folder with the ControlNet's config.json (or that file itself), used instead of detection for a single file:
   * needed when its sizes are not a family's published ones (head counts cannot be read from weights).
   */
  configDir?: string;
}

const FOLDER_LAYOUT = "a diffusers ControlNet folder holds config.json and diffusion_pytorch_model.safetensors";

export function openControlNetFiles(path: string, opts: ControlNetOpenOptions = {}): ControlNetCheckpoint {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new CheckpointError(
      `${path}: cannot open the ControlNet (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`,
    );
  }
  return isDir ? openFolder(path) : openSingleFile(path, opts);
}

function openFolder(dir: string): ControlNetCheckpoint {
  const configPath = join(dir, "config.json");
  const config = controlNetConfigFromDiffusers(
    checkedConfig(readJson(configPath, FOLDER_LAYOUT), configPath),
    configPath,
  );
  const { weights, files } = openDiffusersComponent(dir, "controlnet", undefined, FOLDER_LAYOUT);
  return make(
    dir,
    "diffusers",
    config,
    familyOf(config),
    weights,
    [...files.map((f) => f.path), configPath],
    files,
    `the weights in ${dir} do not match its config.json`,
  );
}

function openSingleFile(path: string, opts: ControlNetOpenOptions): ControlNetCheckpoint {
  const file = SafetensorsFile.open(path);
  try {
    const keys = file.keys();
    const weights = controlNetWeights(file, keys);
    const shapes = new Map(weights.keys().map((k) => [k, weights.shape(k)] as const));
    if (opts.configDir !== undefined) {
      const configPath = configFile(opts.configDir);
      const config = controlNetConfigFromDiffusers(
        checkedConfig(readJson(configPath, "the ControlNet's config"), configPath),
        configPath,
      );
      return make(
        path,
        "single-file",
        config,
        familyOf(config),
        weights,
        [path, configPath],
        [file],
        `the config ${configPath} does not describe this ControlNet`,
      );
    }
    const detected = controlNetConfigFromShapes(shapes, path);
    if (!detected.standardSizes) {
      const c = detected.config;
      throw new UnsupportedModelError(
        `${path}: a ControlNet of non-standard sizes (channels [${c.blockOutChannels}], context ${c.crossAttentionDim}); attention head counts cannot be read ` +
          `from weights, so pass its config (--control-config: a folder with the ControlNet's diffusers config.json)`,
      );
    }
    return make(
      path,
      "single-file",
      detected.config,
      detected.family,
      weights,
      [path],
      [file],
      "the file is incomplete or not a plain ControlNet",
    );
  } catch (e) {
    file.close();
    throw e;
  }
}

/** The file's tensors under diffusers names, whichever naming it uses. */
function controlNetWeights(file: SafetensorsFile, keys: readonly string[]): RenamedWeights {
  if (keys.some((k) => k.startsWith("controlnet_cond_embedding."))) {
    const table = new Map<string, TensorRef>(keys.map((k) => [k, { file, stored: k, shape: file.info(k).shape }]));
    return new RenamedWeights(file.path, table);
  }
  if (keys.some((k) => k.startsWith("control_model.") || k.startsWith("input_hint_block."))) {
    return ldmComponentWeights(file, controlNetPart(keys));
  }
  const hint = keys.some((k) => k.startsWith("model.diffusion_model."))
    ? "it is a Stable Diffusion checkpoint: pass it as the model (--model) instead"
    : "";
  throw new CheckpointError(
    `${file.path}: not a ControlNet (no control_model.*, input_hint_block.* or controlnet_cond_embedding.* tensors)${hint ? `; ${hint}` : ""}`,
  );
}

/** diffusers' ControlNetModel config, or a clear refusal of other classes saved in the same form. */
function checkedConfig(json: Record<string, unknown>, path: string): Record<string, unknown> {
  const cls = json._class_name;
  if (cls !== undefined && cls !== "ControlNetModel") {
    throw new UnsupportedModelError(
      `${path}: _class_name ${JSON.stringify(cls)} is not a ControlNet (ControlNetModel); pass a ControlNet's folder`,
    );
  }
  return json;
}

function configFile(dirOrFile: string): string {
  let isDir = false;
  try {
    isDir = statSync(dirOrFile).isDirectory();
  } catch (e) {
    throw new CheckpointError(
      `${dirOrFile}: cannot open the ControlNet config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`,
    );
  }
  return isDir ? join(dirOrFile, "config.json") : dirOrFile;
}

function familyOf(c: ControlNetConfig): ModelFamily | undefined {
  if (c.additionEmbedType === "text_time") return "sdxl";
  return c.crossAttentionDim === 768 ? "sd1" : c.crossAttentionDim === 1024 ? "sd2" : undefined;
}

function make(
  path: string,
  layout: ControlNetCheckpoint["layout"],
  config: ControlNetConfig,
  family: ModelFamily | undefined,
  weights: RenamedWeights,
  files: string[],
  opened: SafetensorsFile[],
  mismatchHint: string,
): ControlNetCheckpoint {
  return { path, layout, config, family, weights, files, mismatchHint, close: () => opened.forEach((f) => f.close()) };
}

/**
 * A ControlNet's title as A1111's ControlNet extension lists it: the file name without its extension (a folder's
 * name), then A1111's old short hash of its weights file in brackets: "control_v11p_sd15_scribble [d4ba51ff]".
 * `weightsFile`: the file itself, or a folder's diffusion_pytorch_model.safetensors.
 */
export function controlNetTitle(path: string, weightsFile: string): string {
  return `${basename(path).replace(/\.(safetensors|pth|ckpt|bin)$/i, "")} [${legacyShortHash(weightsFile)}]`;
}
