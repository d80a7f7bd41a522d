import { existsSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../errors.js";
import { MAX_SIDE_FILE_BYTES, readJsonFile } from "../regular-file.js";

/**
 * A model's own recommended generation settings: `generation_config.json` beside `model_index.json` (the name
 * transformers uses for the same idea). Community model cards say "use CFG 3-5" in prose; this makes it the
 * default, so a prompt without --cfg gets the guidance the model was tuned for. Settings the user passes win.
 */
export interface GenerationConfig {
  /** Classifier-free guidance scale (diffusers' name for A1111's cfg_scale). */
  guidanceScale?: number;
}

export const GENERATION_CONFIG_FILE = "generation_config.json";

export function readGenerationConfig(roots: readonly string[]): GenerationConfig {
  const file = roots.map((r) => join(r, GENERATION_CONFIG_FILE)).find((f) => existsSync(f));
  if (!file) return {};
  const raw = readJsonFile(file, InputError, { hint: "fix it or delete it", maxBytes: MAX_SIDE_FILE_BYTES });
  const g = (raw as { guidance_scale?: unknown } | null)?.guidance_scale;
  if (g === undefined) return {};
  if (typeof g !== "number" || !Number.isFinite(g) || g < 0 || g > 100) {
    throw new InputError(`${file}: guidance_scale ${JSON.stringify(g)} is invalid: expected a number from 0 to 100`);
  }
  return { guidanceScale: g };
}
