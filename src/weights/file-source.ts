import type { SafetensorsFile } from "./safetensors.js";
import type { WeightSource } from "./weight-source.js";

/** A WeightSource over one safetensors file whose keys are already diffusers names (a diffusers folder's file). */
export function fileWeightSource(file: SafetensorsFile): WeightSource {
  return {
    origin: file.path,
    keys: () => file.keys(),
    has: (name) => file.has(name),
    shape: (name) => file.info(name).shape,
    dtype: (name) => file.info(name).dtype,
    float32: (name, into) => file.float32(name, into),
  };
}
