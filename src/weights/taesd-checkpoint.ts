import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { CheckpointError, UnsupportedModelError } from "../errors.js";
import { TAESD_DEFAULTS, taesdConfigFromDiffusers, type TaesdConfig } from "../configs/taesd.js";
import { readJson } from "./checkpoint.js";
import { RenamedWeights, type TensorRef } from "./ldm-keymap.js";
import { SafetensorsFile } from "./safetensors.js";

/**
 * Opening a TAESD / TAESDXL (diffusers' AutoencoderTiny) as diffusers-named weights plus its config, from either
 * layout: a diffusers folder (config.json + diffusion_pytorch_model.safetensors), or madebyollin's files
 * (taesd_decoder.safetensors and taesd_encoder.safetensors, or the taesdxl_ ones; a folder holding them, or the
 * decoder file alone). madebyollin's keys are the indices of its Sequentials: the encoder's equal diffusers'
 * `encoder.layers.N`; the decoder's start with a parameter-free Clamp, so its `N` is diffusers' `decoder.layers.(N-1)`.
 */
export interface TaesdCheckpoint {
  readonly path: string;
  readonly layout: "diffusers" | "madebyollin";
  readonly config: TaesdConfig;
  readonly weights: RenamedWeights;
  /** Whether the encoder's weights are present (a lone decoder file makes previews and decodes only). */
  readonly hasEncoder: boolean;
  /** Every file read, for the cache key. */
  readonly files: readonly string[];
  close(): void;
}

const LAYOUTS =
  "a TAESD is a diffusers AutoencoderTiny folder (config.json + diffusion_pytorch_model.safetensors) or madebyollin's taesd_decoder.safetensors (+ taesd_encoder.safetensors)";

export function openTaesdFiles(path: string): TaesdCheckpoint {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new CheckpointError(
      `${path}: cannot open the TAESD (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`,
    );
  }
  if (isDir && existsSync(join(path, "config.json"))) return openDiffusers(path);
  if (isDir) {
    const names = readdirSync(path);
    const decoder = names.find((n) => /_decoder\.safetensors$/.test(n));
    if (!decoder) throw new CheckpointError(`${path}: no config.json and no *_decoder.safetensors; ${LAYOUTS}`);
    const encoder = names.find((n) => n === decoder.replace(/_decoder\.safetensors$/, "_encoder.safetensors"));
    return openMadebyollin(path, join(path, decoder), encoder === undefined ? undefined : join(path, encoder));
  }
  const file = SafetensorsFile.open(path);
  const keys = file.keys();
  file.close();
  if (keys.some((k) => k.startsWith("decoder.layers."))) return openDiffusersFile(path);
  return openMadebyollin(path, path, undefined);
}

function openDiffusers(dir: string): TaesdCheckpoint {
  const configPath = join(dir, "config.json");
  const json = readJson(configPath, LAYOUTS);
  if (json._class_name !== undefined && json._class_name !== "AutoencoderTiny") {
    throw new UnsupportedModelError(
      `${configPath}: _class_name ${JSON.stringify(json._class_name)} is not a TAESD (AutoencoderTiny)`,
    );
  }
  const weightsPath = join(dir, "diffusion_pytorch_model.safetensors");
  if (!existsSync(weightsPath)) throw new CheckpointError(`${dir}: no diffusion_pytorch_model.safetensors; ${LAYOUTS}`);
  const t = openDiffusersFile(weightsPath);
  return { ...t, path: dir, config: taesdConfigFromDiffusers(json, configPath), files: [weightsPath, configPath] };
}

function openDiffusersFile(path: string): TaesdCheckpoint {
  const file = SafetensorsFile.open(path);
  const table = new Map<string, TensorRef>(file.keys().map((k) => [k, { file, stored: k, shape: file.info(k).shape }]));
  const weights = new RenamedWeights(path, table);
  try {
    return {
      path,
      layout: "diffusers",
      config: configFromShapes(table, path),
      weights,
      hasEncoder: table.has("encoder.layers.0.weight"),
      files: [path],
      close: () => file.close(),
    };
  } catch (e) {
    file.close();
    throw e;
  }
}

/** A file without config: the published layout, with the widths its first convs show. */
function configFromShapes(table: ReadonlyMap<string, TensorRef>, origin: string): TaesdConfig {
  const first = table.get("decoder.layers.0.weight")?.shape;
  if (first?.length !== 4)
    throw new CheckpointError(
      `${origin}: no decoder first conv ("1.weight" in madebyollin's file, "decoder.layers.0.weight" in diffusers'); ${LAYOUTS}`,
    );
  const encoderFirst = table.get("encoder.layers.0.weight")?.shape;
  return {
    ...TAESD_DEFAULTS,
    latentChannels: first[1]!,
    decoderChannels: TAESD_DEFAULTS.decoderBlocks.map(() => first[0]!),
    encoderChannels: TAESD_DEFAULTS.encoderBlocks.map(() => encoderFirst?.[0] ?? first[0]!),
  };
}

function openMadebyollin(path: string, decoderPath: string, encoderPath: string | undefined): TaesdCheckpoint {
  const opened: SafetensorsFile[] = [];
  try {
    const table = new Map<string, TensorRef>();
    const add = (p: string, prefix: string, shift: number) => {
      const file = SafetensorsFile.open(p);
      opened.push(file);
      for (const k of file.keys()) {
        const m = /^(\d+)\.(.+)$/.exec(k);
        if (!m)
          throw new CheckpointError(
            `${p}: "${k}" is not a key of madebyollin's TAESD (layer index, then the parameter); ${LAYOUTS}`,
          );
        table.set(`${prefix}${Number(m[1]) + shift}.${m[2]}`, { file, stored: k, shape: file.info(k).shape });
      }
    };
    add(decoderPath, "decoder.layers.", -1);
    if (encoderPath) add(encoderPath, "encoder.layers.", 0);
    const weights = new RenamedWeights(decoderPath, table);
    const config = configFromShapes(table, decoderPath);
    return {
      path,
      layout: "madebyollin",
      config,
      weights,
      hasEncoder: encoderPath !== undefined,
      files: [decoderPath, ...(encoderPath ? [encoderPath] : [])],
      close: () => opened.forEach((f) => f.close()),
    };
  } catch (e) {
    opened.forEach((f) => f.close());
    throw e;
  }
}
