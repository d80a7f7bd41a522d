import { existsSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../errors.js";
import { openCheckpoint } from "../models/open-checkpoint.js";
import { MAX_SIDE_FILE_BYTES, readJsonText } from "../regular-file.js";
import { parseSchedulerConfigJson, STABLE_DIFFUSION_SCHEDULER_CONFIG, type RawSchedulerConfig } from "../schedulers/index.js";
import { ClipTokenizer } from "../tokenizer/clip-tokenizer.js";
import type { Checkpoint } from "../weights/checkpoint.js";
import { readGenerationConfig } from "./generation-config.js";
import { Networks, type NetworkOptions } from "./networks.js";
import { Safeguards, type SafeguardOptions } from "./safeguards.js";
import { SdConditioner } from "./sd-conditioner.js";
import { StableDiffusionPipeline } from "./stable-diffusion.js";

export interface LoadOptions extends NetworkOptions, SafeguardOptions {
  /** A diffusers folder with config.json files for a single-file checkpoint of non-standard size. */
  config?: string;
  /** A tokenizer folder (vocab.json + merges.txt) or OpenAI's bpe_simple_vocab_16e6.txt.gz. */
  tokenizer?: string;
}

const TOKENIZER_HELP =
  "a single-file checkpoint carries no tokenizer: pass --tokenizer PATH (a folder with vocab.json and merges.txt, " +
  "e.g. the tokenizer/ folder of any SD1.5 diffusers model, or OpenAI's bpe_simple_vocab_16e6.txt.gz from the CLIP repository)";

/**
 * Loads a checkpoint (single file or diffusers folder) for generation, with what sits beside it: tokenizer,
 * scheduler config, generation config, safety checker. The networks are built or opened on first use.
 */
export async function loadPipeline(path: string, opts: LoadOptions = {}): Promise<StableDiffusionPipeline> {
  if (!existsSync(path)) throw new InputError(`model not found: ${path}; pass --model with a .safetensors file or a diffusers folder`);
  const checkpoint = openCheckpoint(path, { configDir: opts.config });
  try {
    const tokenizerPath = opts.tokenizer ?? findTokenizer(checkpoint, opts.config);
    if (!tokenizerPath) throw new InputError(`${path}: ${TOKENIZER_HELP}`);
    const tokenizer = await ClipTokenizer.load(tokenizerPath);
    const schedulerConfig = readSchedulerConfig(checkpoint, opts.config);
    const safeguards = await Safeguards.load(path, opts);
    const generation = readGenerationConfig(configRoots(checkpoint, opts.config));
    const networks = await Networks.open(checkpoint, opts);
    const conditioner = new SdConditioner(networks, tokenizer, checkpoint.config.textEncoder, checkpoint.textEncoder);
    return new StableDiffusionPipeline({ checkpoint, networks, tokenizer, conditioner, schedulerConfig, safeguards, generation });
  } catch (e) {
    checkpoint.close();
    throw e;
  }
}

/** Where a model's side files live: the diffusers folder itself, and the --config folder of a single file. */
function configRoots(ckpt: Checkpoint, configDir?: string): string[] {
  return [ckpt.layout === "diffusers" ? ckpt.path : undefined, configDir].filter((r): r is string => !!r);
}

function findTokenizer(ckpt: Checkpoint, configDir?: string): string | undefined {
  return configRoots(ckpt, configDir).map((r) => join(r, "tokenizer")).find((t) => existsSync(join(t, "vocab.json")));
}

/** The model's own scheduler_config.json: samplers inherit its schedule (spacing, offset, betas). */
function readSchedulerConfig(ckpt: Checkpoint, configDir?: string): RawSchedulerConfig {
  const file = configRoots(ckpt, configDir).map((r) => join(r, "scheduler", "scheduler_config.json")).find((f) => existsSync(f));
  if (file) return parseSchedulerConfigJson(readJsonText(file, InputError, { hint: "restore the file from the model's repository", maxBytes: MAX_SIDE_FILE_BYTES }), file);
  // The published SD schedule, for single files without a config folder.
  return { ...STABLE_DIFFUSION_SCHEDULER_CONFIG, prediction_type: ckpt.config.predictionType };
}
