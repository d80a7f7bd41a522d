import { existsSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../errors.js";
import { MAX_SIDE_FILE_BYTES, readJsonFile } from "../regular-file.js";
import { findSampler, listSamplers } from "../schedulers/index.js";

/**
 * A model's own recommended generation settings: `generation_config.json` beside `model_index.json` (the name
 * transformers uses for the same idea). Community model cards say "use CFG 3-5" or "4 steps, Euler, CFG 1" in
 * prose; this makes it the default, so a prompt without --cfg, --steps or --sampler gets what the model was tuned
 * for (a Turbo or Lightning model: `{"num_inference_steps": 4, "guidance_scale": 0, "sampler_name": "euler"}`).
 * Settings the user passes win. Keys, all optional:
 * - `guidance_scale`: classifier-free guidance (diffusers' name for A1111's cfg_scale), 0 to 100;
 * - `num_inference_steps`: steps (diffusers' name), 1 to 1000;
 * - `sampler_name`: a sampler as the CLI and APIs take it (ours, "euler-a", or A1111's, "Euler a").
 */
export interface GenerationConfig {
  /** `guidance_scale`, the CFG scale. */
  cfgScale?: number;
  steps?: number;
  /** Our sampler name (findSampler's), whichever of the accepted spellings the file used. */
  sampler?: string;
}

export const GENERATION_CONFIG_FILE = "generation_config.json";

export function readGenerationConfig(roots: readonly string[]): GenerationConfig {
  const file = roots.map((r) => join(r, GENERATION_CONFIG_FILE)).find((f) => existsSync(f));
  if (!file) return {};
  const raw = (readJsonFile(file, InputError, { hint: "fix it or delete it", maxBytes: MAX_SIDE_FILE_BYTES }) ??
    {}) as Record<string, unknown>;
  const out: GenerationConfig = {};
  const g = raw["guidance_scale"];
  if (g !== undefined) {
    if (typeof g !== "number" || !Number.isFinite(g) || g < 0 || g > 100) {
      throw new InputError(`${file}: guidance_scale ${JSON.stringify(g)} is invalid: expected a number from 0 to 100`);
    }
    out.cfgScale = g;
  }
  const steps = raw["num_inference_steps"];
  if (steps !== undefined) {
    if (typeof steps !== "number" || !Number.isInteger(steps) || steps < 1 || steps > 1000) {
      throw new InputError(
        `${file}: num_inference_steps ${JSON.stringify(steps)} is invalid: expected an integer from 1 to 1000`,
      );
    }
    out.steps = steps;
  }
  const sampler = raw["sampler_name"];
  if (sampler !== undefined) {
    const found = typeof sampler === "string" ? findSampler(sampler) : undefined;
    if (!found)
      throw new InputError(
        `${file}: sampler_name ${JSON.stringify(sampler)} is not a sampler diffuse has: use one of ${listSamplers()
          .map((s) => s.name)
          .join(", ")} (or its A1111 name, e.g. "Euler a")`,
      );
    out.sampler = found.name;
  }
  return out;
}
