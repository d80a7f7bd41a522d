import { existsSync } from "node:fs";
import { join } from "node:path";
import type { ModelFamily } from "../configs/pipeline.js";
import { catalogueEntry, type CatalogueEntry } from "./catalogue.js";
import { RepoCache } from "./hub-cache.js";
import { pull, type PullOptions } from "./pull.js";
import { storeSettings } from "./store-settings.js";

/**
 * Tokenizers for checkpoints that carry none (single files): the vocabulary is the text encoder's, so one per
 * encoder kind serves every checkpoint of a family. They come from the store, fetched once (with the licence
 * step of their repository) and read from the Hugging Face cache afterwards, without the network.
 */

export type TokenizerOptions = Pick<
  PullOptions,
  "cacheDir" | "home" | "endpoint" | "token" | "offline" | "acceptLicense" | "confirmLicense" | "onStatus" | "signal"
>;

/**
 * The catalogue entry of the tokenizer a text encoder takes: CLIP ViT-L's for SD 1.x and SDXL's first encoder,
 * OpenCLIP ViT-H's for SD 2.x, OpenCLIP bigG's for SDXL's second encoder (the refiner's only one).
 */
export function tokenizerEntryFor(family: ModelFamily, encoderFolder: string): CatalogueEntry {
  const name =
    family === "sd2"
      ? "openclip-h-tokenizer"
      : encoderFolder === "text_encoder_2"
        ? "openclip-bigg-tokenizer"
        : "clip-l-tokenizer";
  return catalogueEntry(name)!;
}

/** The folder of a tokenizer in the store, fetched first if it is not there yet. */
export async function storeTokenizer(entry: CatalogueEntry, opts: TokenizerOptions = {}): Promise<string> {
  const settings = storeSettings(opts);
  const snapshot = new RepoCache(settings.cacheDir, entry.repo).snapshotOf(entry.revision ?? "main");
  const folder = snapshot && (entry.path ? join(snapshot, entry.path) : snapshot);
  if (folder && existsSync(join(folder, "vocab.json")) && existsSync(join(folder, "merges.txt"))) return folder;
  opts.onStatus?.(`fetching the ${entry.name} tokenizer from ${entry.repo} (once; kept in ${settings.cacheDir})`);
  return (await pull(entry.name, opts)).path;
}
