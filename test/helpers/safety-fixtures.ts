import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { f32Bytes, writeSafetensors, type RawTensor } from "../weights/safetensors-writer.js";
import { ref } from "./fixtures.js";

/** The tiny random-weight safety checker of the reference fixtures (a CLIP vision tower of 3 layers, width 32). */
export const TINY_CHECKER = ref("models/safety-tiny/safety_checker");

/** Tensors of the tiny checker to replace, by name (every other tensor is copied as it is). */
export type CheckerOverrides = Partial<
  Record<
    "concept_embeds" | "concept_embeds_weights" | "special_care_embeds" | "special_care_embeds_weights",
    Float32Array
  >
>;

/**
 * Writes a copy of the tiny safety checker (config.json, model.safetensors and the feature extractor beside it, as
 * a diffusers model folder lays them out) into `dir` with some tensors replaced; returns its safety_checker folder.
 * The checker flags an image when cos(image, concept) > threshold for any concept, so the thresholds decide:
 * -2 flags every image (a cosine is at least -1), 2 flags none.
 */
export function writeTinyChecker(dir: string, overrides: CheckerOverrides): string {
  const out = join(dir, "safety_checker");
  mkdirSync(out, { recursive: true });
  mkdirSync(join(dir, "feature_extractor"), { recursive: true });
  copyFileSync(join(TINY_CHECKER, "config.json"), join(out, "config.json"));
  copyFileSync(
    join(TINY_CHECKER, "..", "feature_extractor", "preprocessor_config.json"),
    join(dir, "feature_extractor", "preprocessor_config.json"),
  );
  const file = SafetensorsFile.open(join(TINY_CHECKER, "model.safetensors"));
  try {
    const tensors: RawTensor[] = file.keys().map((name) => {
      const info = file.info(name);
      const replaced = overrides[name as keyof CheckerOverrides];
      if (replaced && replaced.length !== info.shape.reduce((a, b) => a * b, 1))
        throw new Error(`override ${name}: ${replaced.length} values for shape [${info.shape.join(",")}]`);
      return { name, dtype: info.dtype, shape: info.shape, data: replaced ? f32Bytes(replaced) : file.bytes(name) };
    });
    writeSafetensors(join(out, "model.safetensors"), tensors, { format: "pt" });
  } finally {
    file.close();
  }
  return out;
}

/** The tiny checker with every concept threshold at `threshold` and no special-care concept that can fire. */
export function writeThresholdChecker(dir: string, threshold: number): string {
  return writeTinyChecker(dir, {
    concept_embeds_weights: new Float32Array(17).fill(threshold),
    special_care_embeds_weights: new Float32Array(3).fill(2),
  });
}

/** A checker that flags every image. */
export const flagsEverything = (dir: string): string => writeThresholdChecker(dir, -2);
/** A checker that flags no image. */
export const flagsNothing = (dir: string): string => writeThresholdChecker(dir, 2);
