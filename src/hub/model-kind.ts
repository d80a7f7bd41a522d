import type { ModelFamily } from "../configs/pipeline.js";

/**
 * What a model is to diffuse: a whole checkpoint (single file or diffusers folder) or something used with one.
 * "vae" covers full VAEs and tiny preview decoders (TAESD); "tokenizer" the vocabularies single files lack.
 */
export type ModelKind = "checkpoint" | "lora" | "embedding" | "controlnet" | "vae" | "safety-checker" | "tokenizer";

/** The family a model belongs to; "any" for what serves every family, "unknown" where nothing tells. */
export type ModelFamilyLabel = ModelFamily | "any" | "unknown";
