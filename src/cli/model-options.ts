import type { Command } from "commander";
import { defaultModelPath, InputError, type LoadOptions } from "../index.js";
import { signerConfigFromEnv } from "../responsible/provenance/index.js";
import { adapterFolderOptions } from "./adapter-options.js";
import { modelOption } from "./model-option.js";
import { safetyPolicyOption } from "./safety-options.js";
import { PRECISION_HELP } from "./precision-option.js";
import { parsePrecision } from "../index.js";

/** The flags that say which model a process loads and how it generates: `serve` (embedded) and `worker`. */
export interface ModelFlags {
  model?: string;
  config?: string;
  tokenizer?: string;
  tokenizer2?: string;
  acceptLicense?: boolean;
  refiner?: string;
  refinerConfig?: string;
  threads?: string;
  precision?: string;
  watermark: boolean;
  safetyCheck: boolean;
  safetyChecker?: string;
  safetyPolicy?: string;
  provenance: boolean;
  loraDir?: string;
  embeddingsDir?: string;
  previewVae?: string;
}

/** Their names as commander keys them, to tell the ones given on the command line. */
export const GENERATION_FLAGS = [
  "config",
  "tokenizer",
  "tokenizer2",
  "acceptLicense",
  "refiner",
  "refinerConfig",
  "threads",
  "watermark",
  "safetyCheck",
  "safetyChecker",
  "safetyPolicy",
  "provenance",
  "previewVae",
] as const;

/**
 * The options that name the checkpoint and what a single file needs beside it (config folder, tokenizers, the
 * licence of a fetched tokenizer): the same for every command that loads a model.
 */
export function addCheckpointOptions(command: Command): Command {
  return command
    .option(
      "-m, --model <path|name>",
      "a .safetensors or .ckpt checkpoint, a diffusers folder, or a name diffuse models lists (sd-1.5, OWNER/REPO, an A1111 model name) (default: the embedded tiny model)",
    )
    .option(
      "--config <dir>",
      "diffusers folder with config.json files for a single-file checkpoint of non-standard size",
    )
    .option(
      "--tokenizer <path>",
      "tokenizer folder (vocab.json + merges.txt) or bpe_simple_vocab_16e6.txt.gz (default for a single file: the store's, fetched once)",
    )
    .option(
      "--tokenizer-2 <path>",
      "SDXL: the second (OpenCLIP bigG) encoder's tokenizer, for a single file without --config (default: the store's)",
    )
    .option(
      "--accept-license",
      "accept the licence of a tokenizer the store fetches for a single-file model, without asking",
    );
}

export function addModelOptions(command: Command): Command {
  return addCheckpointOptions(command)
    .option(
      "--refiner <path>",
      "a checkpoint requests may hand the end of the schedule over to (A1111's refiner_checkpoint; our refiner_switch_at)",
    )
    .option(
      "--refiner-config <dir>",
      "diffusers folder with config.json files for a single-file refiner of non-standard size",
    )
    .option("--threads <n>", "CPU threads for generation (default: all cores)")
    .option("--precision <p>", PRECISION_HELP, "fp32")
    .option("--safety-checker <path>", "a safety_checker folder (default: the model folder's own, if any)")
    .option("--safety-policy <policy>", "what to do with a flagged image: block (black), blur or flag", "block")
    .option("--no-safety-check", "do not run the safety checker (recorded in each image's metadata)")
    .option("--no-watermark", "do not embed the invisible watermarks (recorded in each image's metadata)")
    .option("--no-provenance", "do not attach C2PA content credentials (recorded in each image's metadata)")
    .option(
      "--lora-dir <dir>",
      "where <lora:NAME:W> finds NAME.safetensors; listed by /sdapi/v1/loras (default: loras/ under $DIFFUSE_HOME)",
    )
    .option(
      "--embeddings-dir <dir>",
      "textual-inversion embeddings, named in prompts by file name; listed by /sdapi/v1/embeddings (default: embeddings/ under $DIFFUSE_HOME)",
    )
    .option(
      "--preview-vae <taesd>",
      "a TAESD that draws the live previews (the page's and our API's step previews, A1111's progress current_image) while the VAE decodes the final images: a path or a store name (taesd, taesdxl)",
    );
}

/** The model to load: --model as a path or a name the store resolves, else the embedded one. */
export async function modelPathOf(o: ModelFlags): Promise<string> {
  return o.model === undefined ? defaultModelPath() : modelOption(o.model);
}

export async function loadOptionsOf(o: ModelFlags, onStatus: (line: string) => void): Promise<LoadOptions> {
  if (o.refinerConfig !== undefined && o.refiner === undefined)
    throw new InputError("--refiner-config needs --refiner: the single-file refiner it describes");
  return {
    config: o.config,
    tokenizer: o.tokenizer,
    tokenizer2: o.tokenizer2,
    // A single file's tokenizers come from the store; the worker thread cannot ask at the terminal, so the
    // licence is accepted here or beforehand (diffuse pull, --accept-license).
    acceptLicense: o.acceptLicense,
    threads: integer("--threads", o.threads),
    precision: parsePrecision(o.precision ?? "fp32", "--precision"),
    refiner: o.refiner === undefined ? undefined : { model: await modelOption(o.refiner), config: o.refinerConfig },
    ...adapterFolderOptions(o),
    previewDecoder: o.previewVae === undefined ? undefined : await modelOption(o.previewVae),
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
  if (value.trim() === "" || !Number.isInteger(n))
    throw new InputError(`${flag} ${JSON.stringify(value)} is not a whole number`);
  return n;
}
