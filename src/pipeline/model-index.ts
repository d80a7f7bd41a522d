import { existsSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../errors.js";
import { MAX_SIDE_FILE_BYTES, readJsonFile } from "../regular-file.js";

/** The pipeline-level flags of a diffusers model_index.json that change how prompts are encoded. */
export interface PipelineFlags {
  /**
   * force_zeros_for_empty_prompt: SDXL conditions an empty negative prompt with zeros. diffusers' SDXL pipelines
   * default to true (the base model's folder says true, the refiner's false); true without a model_index.json,
   * which is also what A1111 does for every SDXL checkpoint.
   */
  forceZerosForEmptyPrompt: boolean;
}

export const MODEL_INDEX_FILE = "model_index.json";

/** Reads the flags from the first of `roots` that has a model_index.json; the defaults without one. */
export function readPipelineFlags(roots: readonly string[]): PipelineFlags {
  const file = roots.map((r) => join(r, MODEL_INDEX_FILE)).find((f) => existsSync(f));
  const raw = file
    ? readJsonFile(file, InputError, {
        hint: "restore the file from the model's repository",
        maxBytes: MAX_SIDE_FILE_BYTES,
      })
    : undefined;
  const value = (raw as Record<string, unknown> | undefined)?.["force_zeros_for_empty_prompt"];
  if (value !== undefined && typeof value !== "boolean") {
    throw new InputError(
      `${file}: force_zeros_for_empty_prompt ${JSON.stringify(value)} is invalid: expected true or false`,
    );
  }
  return { forceZerosForEmptyPrompt: value ?? true };
}
