import { existsSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { CheckpointError } from "../errors.js";
import { vaeConfigFromDiffusers, type VaeConfig } from "../configs/vae.js";
import { openDiffusersComponent, readJson } from "./checkpoint.js";
import { ldmComponentWeights, RenamedWeights, type TensorRef } from "./ldm-keymap.js";
import { SafetensorsFile } from "./safetensors.js";

/**
 * A VAE (AutoencoderKL) on its own, to decode (and encode) instead of a checkpoint's own, as A1111's `sd_vae` and
 * ComfyUI's VAELoader use them: a single .safetensors file in the original layout (`encoder.down.*`, `decoder.up.*`,
 * `quant_conv`, as vae-ft-mse-840000 and sdxl_vae ship), or in diffusers' names (a
 * diffusion_pytorch_model.safetensors), or a diffusers folder (config.json beside it, or a model folder's `vae/`).
 */
export interface VaeFile {
  /** The path given. */
  readonly path: string;
  /** The name A1111 shows and writes in the infotext: the file's name (a folder's: the folder's). */
  readonly name: string;
  readonly layout: "original" | "diffusers";
  readonly weights: RenamedWeights;
  /** From its config.json; a single file has none (the model's config describes it). */
  readonly config?: VaeConfig;
  /** The latent channels its decoder takes, read from its first conv. */
  readonly latentChannels: number;
  /** Every file read, for the hash and the cache key. */
  readonly files: readonly string[];
  close(): void;
}

const LAYOUTS =
  "a VAE is a .safetensors file with encoder.* and decoder.* tensors (the original layout, as vae-ft-mse-840000, or diffusers' names), or a diffusers folder (config.json + diffusion_pytorch_model.safetensors, or a model folder's vae/)";

/** Whether a path holds a full VAE rather than a TAESD (which has no `decoder.conv_in`, or says AutoencoderTiny). */
export function isFullVae(path: string): boolean {
  let dir: string | undefined;
  try {
    dir = statSync(path).isDirectory() ? path : undefined;
  } catch {
    return false;
  }
  if (dir !== undefined) {
    if (existsSync(join(dir, "vae"))) return true;
    const config = join(dir, "config.json");
    if (existsSync(config)) return readJson(config, LAYOUTS)._class_name !== "AutoencoderTiny";
    return existsSync(join(dir, "diffusion_pytorch_model.safetensors"));
  }
  const file = SafetensorsFile.open(path);
  try {
    return file.keys().some((k) => /(^|\.)decoder\.conv_in\.weight$/.test(k));
  } finally {
    file.close();
  }
}

export function openVaeFile(path: string): VaeFile {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new CheckpointError(
      `${path}: cannot open the VAE (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`,
    );
  }
  if (isDir) return openFolder(existsSync(join(path, "vae")) ? join(path, "vae") : path, path);
  const file = SafetensorsFile.open(path);
  try {
    const keys = file.keys();
    // Diffusers' names have down_blocks / up_blocks; the original layout down.N / up.N (under first_stage_model.
    // when cut from a whole checkpoint).
    const diffusers = keys.some((k) => /^(encoder\.down_blocks|decoder\.up_blocks)\./.test(k));
    const weights = diffusers
      ? new RenamedWeights(path, tableOf(file))
      : ldmComponentWeights(file, {
          component: "vae",
          prefix: keys.some((k) => k.startsWith("first_stage_model.")) ? "first_stage_model." : "",
          layout: "vae",
        });
    return make(path, basename(path), diffusers ? "diffusers" : "original", weights, undefined, [path], [file]);
  } catch (e) {
    file.close();
    throw e;
  }
}

function openFolder(dir: string, given: string): VaeFile {
  const configPath = join(dir, "config.json");
  const json = existsSync(configPath) ? readJson(configPath, LAYOUTS) : undefined;
  if (json?._class_name !== undefined && json._class_name !== "AutoencoderKL")
    throw new CheckpointError(
      `${configPath}: _class_name ${JSON.stringify(json._class_name)} is not a VAE (AutoencoderKL); ${LAYOUTS}`,
    );
  const { weights, files } = openDiffusersComponent(dir, "vae", undefined, LAYOUTS);
  try {
    const read = [...files.map((f) => f.path), ...(json ? [configPath] : [])];
    return make(given, basename(given), "diffusers", weights, json && vaeConfigFromDiffusers(json), read, files);
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
}

function tableOf(file: SafetensorsFile): Map<string, TensorRef> {
  return new Map(file.keys().map((k) => [k, { file, stored: k, shape: file.info(k).shape }]));
}

function make(
  path: string,
  name: string,
  layout: VaeFile["layout"],
  weights: RenamedWeights,
  config: VaeConfig | undefined,
  files: string[],
  opened: SafetensorsFile[],
): VaeFile {
  const convIn = weights.has("decoder.conv_in.weight") ? weights.shape("decoder.conv_in.weight") : undefined;
  if (convIn?.length !== 4) throw new CheckpointError(`${path}: no decoder.conv_in.weight, so not a VAE; ${LAYOUTS}`);
  return {
    path,
    name,
    layout,
    weights,
    ...(config ? { config } : {}),
    latentChannels: convIn[1]!,
    files,
    close: () => {
      for (const f of opened) f.close();
    },
  };
}
