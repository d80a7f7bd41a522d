import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { MODEL_INDEX_FILE, readPipelineFlags } from "../../src/pipeline/model-index.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

function folderWith(text?: string): string {
  const dir = mkdtempSync(join(tmpdir(), "model-index-"));
  if (text !== undefined) writeFileSync(join(dir, MODEL_INDEX_FILE), text);
  return dir;
}

describe("model_index.json's pipeline flags", () => {
  it.skipIf(!HAVE_REFERENCE)(
    "reads force_zeros_for_empty_prompt from the model folder (true for sdxl-tiny, as for SDXL base)",
    () => {
      expect(readPipelineFlags([ref("models/sdxl-tiny")])).toEqual({ forceZerosForEmptyPrompt: true });
    },
  );

  it("false where the folder says so (the SDXL refiner's); true without the key or the file, as diffusers' SDXL pipelines default", () => {
    expect(readPipelineFlags([folderWith('{"force_zeros_for_empty_prompt": false}')]).forceZerosForEmptyPrompt).toBe(
      false,
    );
    expect(readPipelineFlags([folderWith("{}")]).forceZerosForEmptyPrompt).toBe(true);
    expect(readPipelineFlags([folderWith()]).forceZerosForEmptyPrompt).toBe(true);
  });

  it("names the file and the key for a value that is not a boolean", () => {
    const bad = folderWith('{"force_zeros_for_empty_prompt": "yes"}');
    expect(() => readPipelineFlags([bad])).toThrow(InputError);
    expect(() => readPipelineFlags([bad])).toThrow(
      /model_index\.json: force_zeros_for_empty_prompt "yes" is invalid: expected true or false/,
    );
  });
});
