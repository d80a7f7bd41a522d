import type { Command } from "commander";
import { defaultModelPath } from "../default-model.js";
import { InputError } from "../errors.js";
import type { LoadOptions } from "../pipeline/load-pipeline.js";
import { signerConfigFromEnv } from "../responsible/provenance/index.js";
import { safetyPolicyOption } from "./safety-options.js";

/** The flags that say which model a process loads and how it generates: `serve` (embedded) and `worker`. */
export interface ModelFlags {
  model?: string;
  refiner?: string;
  refinerConfig?: string;
  threads?: string;
  watermark: boolean;
  safetyCheck: boolean;
  safetyChecker?: string;
  safetyPolicy?: string;
  provenance: boolean;
}

/** Their names as commander keys them, to tell the ones given on the command line. */
export const GENERATION_FLAGS = ["refiner", "refinerConfig", "threads", "watermark", "safetyCheck", "safetyChecker", "safetyPolicy", "provenance"] as const;

export function addModelOptions(command: Command): Command {
  return command
    .option("-m, --model <path>", "a .safetensors checkpoint or a diffusers folder (default: the embedded tiny model)")
    .option("--refiner <path>", "a checkpoint requests may hand the end of the schedule over to (A1111's refiner_checkpoint; our refiner_switch_at)")
    .option("--refiner-config <dir>", "diffusers folder with config.json files for a single-file refiner of non-standard size")
    .option("--threads <n>", "CPU threads for generation (default: all cores)")
    .option("--safety-checker <path>", "a safety_checker folder (default: the model folder's own, if any)")
    .option("--safety-policy <policy>", "what to do with a flagged image: block (black), blur or flag", "block")
    .option("--no-safety-check", "do not run the safety checker (recorded in each image's metadata)")
    .option("--no-watermark", "do not embed the invisible watermarks (recorded in each image's metadata)")
    .option("--no-provenance", "do not attach C2PA content credentials (recorded in each image's metadata)");
}

export function modelPathOf(o: ModelFlags): string {
  return o.model ?? defaultModelPath();
}

export function loadOptionsOf(o: ModelFlags, onStatus: (line: string) => void): LoadOptions {
  if (o.refinerConfig !== undefined && o.refiner === undefined) throw new InputError("--refiner-config needs --refiner: the single-file refiner it describes");
  return {
    threads: integer("--threads", o.threads),
    refiner: o.refiner === undefined ? undefined : { model: o.refiner, config: o.refinerConfig },
    onStatus,
    safetyChecker: o.safetyCheck ? o.safetyChecker : false,
    safetyPolicy: safetyPolicyOption(o.safetyPolicy),
    watermark: o.watermark,
    provenance: o.provenance ? signerConfigFromEnv() : false,
  };
}

export function integer(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n)) throw new InputError(`${flag} ${JSON.stringify(value)} is not a whole number`);
  return n;
}
