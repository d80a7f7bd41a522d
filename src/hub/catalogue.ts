import type { LicenseFields } from "./licenses.js";
import type { ModelFamilyLabel, ModelKind } from "./model-kind.js";

/** A short name for a model on the Hub: where it is, what of it to fetch, what it is and under which licence. */
export interface CatalogueEntry {
  readonly name: string;
  readonly description: string;
  readonly repo: string;
  /** A branch, tag or commit; default "main". */
  readonly revision?: string;
  readonly kind: ModelKind;
  readonly family: ModelFamilyLabel;
  /** The files to fetch, relative to the repository; absent: the files the model needs (file-selection.ts). */
  readonly files?: readonly string[];
  /** The model inside the downloaded snapshot: a subfolder or a file; absent: the snapshot folder itself. */
  readonly path?: string;
  /** The licence the repository states (the Hub's own information decides when it can be read). */
  readonly license: LicenseFields;
}

const OPENRAIL_M: LicenseFields = { license: "creativeml-openrail-m" };
const OPENRAIL_PP: LicenseFields = { license: "openrail++" };
const STABILITY_COMMUNITY: LicenseFields = {
  license: "other",
  licenseName: "sai-nc-community",
  licenseLink: "LICENSE.md",
};
const MIT: LicenseFields = { license: "mit" };

/** The files of a Hugging Face CLIP tokenizer folder that diffuse reads (vocab.json and merges.txt make the BPE). */
const tokenizerFiles = (folder: string): string[] =>
  ["vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"].map((f) =>
    folder ? `${folder}/${f}` : f,
  );

/**
 * The catalogue. The pipelines are diffusers repositories: what is fetched of them is chosen by file-selection.ts
 * (fp16 safetensors where the repository has them). The tokenizers are the ones diffusers' from_single_file loads
 * for a single file: OpenAI's CLIP ViT-L/14 repository for SD 1.x and SDXL's first encoder, the tokenizer folders of
 * the SD 2.1 and SDXL base repositories for the OpenCLIP encoders (their files name "!" as the pad token, as
 * open_clip pads).
 */
export const CATALOGUE: readonly CatalogueEntry[] = [
  {
    name: "sd-1.5",
    description: "Stable Diffusion 1.5 (512 px)",
    repo: "stable-diffusion-v1-5/stable-diffusion-v1-5",
    kind: "checkpoint",
    family: "sd1",
    license: OPENRAIL_M,
  },
  {
    name: "sd-2.1",
    description: "Stable Diffusion 2.1 (768 px, v-prediction)",
    repo: "stabilityai/stable-diffusion-2-1",
    kind: "checkpoint",
    family: "sd2",
    license: OPENRAIL_PP,
  },
  {
    name: "sdxl",
    description: "Stable Diffusion XL base 1.0 (1024 px)",
    repo: "stabilityai/stable-diffusion-xl-base-1.0",
    kind: "checkpoint",
    family: "sdxl",
    license: OPENRAIL_PP,
  },
  {
    name: "sdxl-refiner",
    description: "Stable Diffusion XL refiner 1.0 (the end of an SDXL schedule)",
    repo: "stabilityai/stable-diffusion-xl-refiner-1.0",
    kind: "checkpoint",
    family: "sdxl-refiner",
    license: OPENRAIL_PP,
  },
  {
    name: "sd-turbo",
    description: "SD-Turbo: SD 2.1 distilled for 1-4 steps (512 px)",
    repo: "stabilityai/sd-turbo",
    kind: "checkpoint",
    family: "sd2",
    license: STABILITY_COMMUNITY,
  },
  {
    name: "sdxl-turbo",
    description: "SDXL-Turbo: SDXL distilled for 1-4 steps (512 px)",
    repo: "stabilityai/sdxl-turbo",
    kind: "checkpoint",
    family: "sdxl",
    license: STABILITY_COMMUNITY,
  },
  {
    name: "lcm-lora-sd15",
    description: "LCM-LoRA for SD 1.5: 4-8 step generation with any SD 1.5 model",
    repo: "latent-consistency/lcm-lora-sdv1-5",
    kind: "lora",
    family: "sd1",
    files: ["pytorch_lora_weights.safetensors"],
    path: "pytorch_lora_weights.safetensors",
    license: OPENRAIL_PP,
  },
  {
    name: "lcm-lora-sdxl",
    description: "LCM-LoRA for SDXL: 4-8 step generation with any SDXL model",
    repo: "latent-consistency/lcm-lora-sdxl",
    kind: "lora",
    family: "sdxl",
    files: ["pytorch_lora_weights.safetensors"],
    path: "pytorch_lora_weights.safetensors",
    license: OPENRAIL_PP,
  },
  {
    name: "controlnet-scribble-sd15",
    description: "ControlNet 1.1 scribble for SD 1.5: follows a sketch",
    repo: "lllyasviel/control_v11p_sd15_scribble",
    kind: "controlnet",
    family: "sd1",
    license: { license: "openrail" },
  },
  {
    name: "taesd",
    description: "Tiny autoencoder for SD 1.x/2.x latents (fast previews)",
    repo: "madebyollin/taesd",
    kind: "vae",
    family: "sd1",
    files: ["config.json", "diffusion_pytorch_model.safetensors"],
    license: MIT,
  },
  {
    name: "taesdxl",
    description: "Tiny autoencoder for SDXL latents (fast previews)",
    repo: "madebyollin/taesdxl",
    kind: "vae",
    family: "sdxl",
    files: ["config.json", "diffusion_pytorch_model.safetensors"],
    license: MIT,
  },
  {
    name: "safety-checker",
    description: "The Stable Diffusion safety checker (CLIP ViT-L/14 image classifier) with its image preprocessing",
    repo: "stable-diffusion-v1-5/stable-diffusion-v1-5",
    kind: "safety-checker",
    family: "any",
    files: [
      "safety_checker/config.json",
      "safety_checker/model.fp16.safetensors",
      "feature_extractor/preprocessor_config.json",
    ],
    path: "safety_checker",
    license: OPENRAIL_M,
  },
  {
    name: "clip-l-tokenizer",
    description: "CLIP ViT-L/14 tokenizer: SD 1.x single files and SDXL's first text encoder",
    repo: "openai/clip-vit-large-patch14",
    kind: "tokenizer",
    family: "sd1",
    files: tokenizerFiles(""),
    // The Hub repository names no licence; OpenAI released CLIP (code and weights) under MIT.
    license: { license: "mit", licenseLink: "https://github.com/openai/CLIP/blob/main/LICENSE" },
  },
  {
    name: "openclip-h-tokenizer",
    description: 'OpenCLIP ViT-H/14 tokenizer (pads with "!"): SD 2.x single files',
    repo: "stabilityai/stable-diffusion-2-1",
    kind: "tokenizer",
    family: "sd2",
    files: tokenizerFiles("tokenizer"),
    path: "tokenizer",
    license: OPENRAIL_PP,
  },
  {
    name: "openclip-bigg-tokenizer",
    description:
      'OpenCLIP ViT-bigG/14 tokenizer (pads with "!"): SDXL\'s second text encoder, SDXL refiner single files',
    repo: "stabilityai/stable-diffusion-xl-base-1.0",
    kind: "tokenizer",
    family: "sdxl",
    files: tokenizerFiles("tokenizer_2"),
    path: "tokenizer_2",
    license: OPENRAIL_PP,
  },
];

/** The entry of a short name (case does not matter), if there is one. */
export function catalogueEntry(name: string): CatalogueEntry | undefined {
  const n = name.trim().toLowerCase();
  return CATALOGUE.find((e) => e.name === n);
}

/** Entries fetched from a repository (a repository can serve several: a pipeline and its tokenizer folder). */
export function catalogueEntriesOf(repo: string): CatalogueEntry[] {
  return CATALOGUE.filter((e) => e.repo.toLowerCase() === repo.toLowerCase());
}
