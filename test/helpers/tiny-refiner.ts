import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomWeights } from "../../bench/random-weights.js";
import { unetConfigFromDiffusers } from "../../src/configs/unet.js";
import { unetParamShapes } from "../../src/models/param-shapes.js";
import { DIFFUSERS_FOLDERS, WEIGHT_STEMS } from "../../src/weights/checkpoint.js";
import { fileWeightSource } from "../../src/weights/file-source.js";
import { LDM_PARTS } from "../../src/weights/ldm-keymap.js";
import { ldmStoredTensors, storedTensorData } from "../../src/weights/ldm-keymap-reverse.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { f32Bytes, writeSafetensors } from "../weights/safetensors-writer.js";
import { copyModelFolder } from "./fixture-copies.js";
import { ref } from "./fixtures.js";

/**
 * A tiny SDXL refiner as a diffusers folder, made from sdxl-tiny (the fixtures have no refiner): sdxl-tiny's VAE,
 * bigG text encoder (as text_encoder_2/, the refiner's only one), tokenizer_2/ and scheduler, and a UNet of
 * sdxl-tiny's architecture conditioned as a refiner is (cross-attention on the bigG states alone: 40 wide; 5
 * time ids with the aesthetic score: 24 + 5 x 8 = 64) with seeded random weights. No reference exists for it;
 * tests check what the pipeline does with it, not its images.
 */
export function tinyRefinerFolder(): string {
  const dir = copyModelFolder("sdxl-tiny", ["vae", "text_encoder_2", "tokenizer_2", "scheduler"]);
  const base = ref("models/sdxl-tiny");
  const index = JSON.parse(readFileSync(join(base, "model_index.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(
    join(dir, "model_index.json"),
    JSON.stringify({
      ...index,
      _class_name: "StableDiffusionXLImg2ImgPipeline",
      text_encoder: [null, null],
      tokenizer: [null, null],
      requires_aesthetics_score: true,
      force_zeros_for_empty_prompt: false,
    }),
  );
  const unetJson = {
    ...(JSON.parse(readFileSync(join(base, "unet", "config.json"), "utf8")) as Record<string, unknown>),
    cross_attention_dim: 40,
    projection_class_embeddings_input_dim: 64,
  };
  mkdirSync(join(dir, "unet"));
  writeFileSync(join(dir, "unet", "config.json"), JSON.stringify(unetJson));
  const shapes = unetParamShapes(unetConfigFromDiffusers(unetJson));
  const weights = randomWeights(shapes, 7);
  writeSafetensors(
    join(dir, "unet", "diffusion_pytorch_model.safetensors"),
    [...shapes].map(([name, shape]) => ({ name, dtype: "F32" as const, shape, data: f32Bytes(weights.float32(name)) })),
  );
  return dir;
}

/**
 * The tiny refiner of `folder` (tinyRefinerFolder) as one file in the original layout, as sd_xl_refiner_1.0.safetensors
 * is published; like every tiny single file it needs its folder as config (non-standard sizes).
 */
export function tinyRefinerSingleFile(folder: string, path: string): string {
  const tensors = LDM_PARTS["sdxl-refiner"].flatMap((part) => {
    const sub = DIFFUSERS_FOLDERS["sdxl-refiner"][part.component]!;
    const file = SafetensorsFile.open(join(folder, sub, `${WEIGHT_STEMS[sub]}.safetensors`));
    const source = fileWeightSource(file);
    const shapes = new Map(file.keys().map((k) => [k, file.info(k).shape] as const));
    const stored = ldmStoredTensors(part, shapes).map((t) => ({
      name: t.stored,
      dtype: "F32" as const,
      shape: t.shape,
      data: f32Bytes(storedTensorData(t, source)),
    }));
    file.close();
    return stored;
  });
  return writeSafetensors(path, tensors);
}
