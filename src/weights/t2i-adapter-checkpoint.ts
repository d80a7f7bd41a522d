import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { CheckpointError, UnsupportedModelError } from "../errors.js";
import { t2iAdapterConfigFromDiffusers, type T2IAdapterConfig } from "../configs/t2i-adapter.js";
import { readJson } from "./checkpoint.js";
import { T2I_ADAPTER_KEY, t2iAdapterConfigFromShapes, t2iAdapterNames } from "./detect-t2i-adapter.js";
import { RenamedWeights, type TensorRef } from "./ldm-keymap.js";
import { SafetensorsFile } from "./safetensors.js";

/**
 * Opening a T2I-Adapter, whatever its layout, as weights named from the adapter root (conv_in, body.N...) plus its
 * config: a diffusers folder (config.json of class T2IAdapter + diffusion_pytorch_model.safetensors), or a single
 * .safetensors file in diffusers' names or TencentARC's original ones (the config then read from the shapes). Only
 * headers are read here; models/open-t2i-adapter.ts checks every tensor.
 */
export interface T2IAdapterCheckpoint {
  readonly path: string;
  readonly layout: "diffusers" | "single-file";
  readonly config: T2IAdapterConfig;
  readonly weights: RenamedWeights;
  /** Every file read (weights first, then the config), for the cache key. */
  readonly files: readonly string[];
  close(): void;
}

const FOLDER_LAYOUT = "a diffusers T2I-Adapter folder holds config.json and diffusion_pytorch_model.safetensors";

/** Whether a file's tensor names are a T2I-Adapter's (either layout). */
export function isT2IAdapterKeys(keys: readonly string[]): boolean {
  return keys.some((k) => T2I_ADAPTER_KEY.test(k));
}

export function openT2IAdapterFiles(path: string): T2IAdapterCheckpoint {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new CheckpointError(
      `${path}: cannot open the T2I-Adapter (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`,
    );
  }
  return isDir ? openFolder(path) : openSingleFile(path);
}

function openFolder(dir: string): T2IAdapterCheckpoint {
  const configPath = join(dir, "config.json");
  const json = readJson(configPath, FOLDER_LAYOUT);
  if (json._class_name !== undefined && json._class_name !== "T2IAdapter")
    throw new UnsupportedModelError(
      `${configPath}: _class_name ${JSON.stringify(json._class_name)} is not a T2I-Adapter (T2IAdapter)`,
    );
  const config = t2iAdapterConfigFromDiffusers(json, configPath);
  const weightsFile = WEIGHT_FILES.map((n) => join(dir, n)).find((p) => existsSync(p));
  if (!weightsFile) throw new CheckpointError(`${dir}: no ${WEIGHT_FILES.join(" or ")}; ${FOLDER_LAYOUT}`);
  const file = SafetensorsFile.open(weightsFile);
  try {
    return { ...adapterWeights(file), path: dir, layout: "diffusers", config, files: [weightsFile, configPath] };
  } catch (e) {
    file.close();
    throw e;
  }
}

const WEIGHT_FILES = ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"];

function openSingleFile(path: string): T2IAdapterCheckpoint {
  const file = SafetensorsFile.open(path);
  try {
    const opened = adapterWeights(file);
    const shapes = new Map(opened.weights.keys().map((k) => [k, opened.weights.shape(k)] as const));
    const config = t2iAdapterConfigFromShapes(shapes, path);
    return { ...opened, path, layout: "single-file", config, files: [path] };
  } catch (e) {
    file.close();
    throw e;
  }
}

/** The file's tensors under names relative to the adapter root, whichever of the two layouts it uses. */
function adapterWeights(file: SafetensorsFile): { weights: RenamedWeights; close(): void } {
  const keys = file.keys();
  if (!isT2IAdapterKeys(keys))
    throw new CheckpointError(
      `${file.path}: not a T2I-Adapter (no body.N.block1 or adapter.body.N.resnets.M.block1 tensors)`,
    );
  const table = new Map<string, TensorRef>();
  for (const [name, stored] of t2iAdapterNames(keys, file.path))
    table.set(name, { file, stored, shape: file.info(stored).shape });
  return { weights: new RenamedWeights(file.path, table), close: () => file.close() };
}

/**
 * Whether a control model path is a T2I-Adapter rather than a ControlNet (both go where A1111's ControlNet extension
 * takes its models): a folder whose config.json is of class T2IAdapter, or a .safetensors file with an adapter's
 * tensor names (headers only). Anything else, unreadable paths included, is left to the ControlNet opener to judge.
 */
export function isT2IAdapterPath(path: string): boolean {
  try {
    if (statSync(path).isDirectory()) {
      const config = join(path, "config.json");
      return existsSync(config) && readJson(config, "the control model's config")._class_name === "T2IAdapter";
    }
    const file = SafetensorsFile.open(path);
    try {
      return isT2IAdapterKeys(file.keys());
    } finally {
      file.close();
    }
  } catch {
    return false;
  }
}
