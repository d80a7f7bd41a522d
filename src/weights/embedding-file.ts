import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { CheckpointError } from "../errors.js";
import { openTensorFile, TORCH_EXTENSIONS, tensorFileFromBytes } from "./tensor-file.js";

/**
 * Which text encoder a textual-inversion vector set is for: "single" for SD1/SD2 files (one tensor), "clip_l" and
 * "clip_g" for SDXL files (A1111's names for the vectors of SDXL's CLIP ViT-L and OpenCLIP bigG encoders).
 */
export type EmbeddingPart = "single" | "clip_l" | "clip_g";

export interface EmbeddingVectors {
  /** [count, width], row-major. */
  readonly data: Float32Array;
  readonly count: number;
  readonly width: number;
}

/** A textual-inversion embedding file. */
export interface EmbeddingFile {
  /** The trigger word: the file name without .safetensors, as in A1111 (or the name given). */
  readonly name: string;
  /** The path, or the name given with the bytes. */
  readonly origin: string;
  /** sha256 of the whole file; A1111 writes its first 12 hex digits as "TI hashes". */
  readonly sha256: string;
  readonly parts: ReadonlyMap<EmbeddingPart, EmbeddingVectors>;
  /** Vectors per encoder (every part has as many). */
  readonly vectors: number;
  /** A1111's "shape": the width of the vectors (summed over an SDXL file's two parts). */
  readonly shape: number;
  readonly metadata: Readonly<Record<string, string>>;
}

export type EmbeddingSource = string | { readonly bytes: Uint8Array; readonly name: string };

/** Embeddings are a few KB; a file far bigger is not one. */
const MAX_EMBEDDING_BYTES = 64 * 2 ** 20;

/**
 * Reads an embedding in the forms A1111 and diffusers write: one tensor (A1111's `emb_params`, or diffusers'
 * `{token: vectors}`), [count, width] or a single [width] vector, or SDXL's `clip_l` + `clip_g` pair; from
 * .safetensors, or from torch.save files (.pt, .bin) through the restricted pickle reader, where A1111's layout
 * keeps the vectors under `string_to_param.*` beside plain values (name, step, checkpoint).
 */
export function readEmbedding(source: EmbeddingSource, name?: string): EmbeddingFile {
  const origin = typeof source === "string" ? source : source.name;
  const file = typeof source === "string" ? openTensorFile(source) : tensorFileFromBytes(source.bytes, source.name);
  try {
    if (file.size > MAX_EMBEDDING_BYTES)
      throw new CheckpointError(
        `${origin}: ${file.size} bytes is far more than a textual-inversion embedding holds (a few KB); it is another kind of file`,
      );
    const all = file.keys();
    // A1111's .pt: the vectors are string_to_param's one entry ("*"); its other tensors (none in practice) aside.
    const a1111 = all.filter((k) => k.startsWith("string_to_param."));
    const keys = a1111.length === 1 ? a1111 : all;
    const parts = new Map<EmbeddingPart, EmbeddingVectors>();
    const vectors = (key: string): EmbeddingVectors => {
      const shape = file.info(key).shape;
      if (shape.length === 0 || shape.length > 2 || shape.some((d) => d === 0)) {
        throw new CheckpointError(
          `${origin}: tensor "${key}" has shape [${shape.join(",")}]; an embedding holds vectors as [count, width] or [width]`,
        );
      }
      const [count, width] = shape.length === 1 ? [1, shape[0]!] : [shape[0]!, shape[1]!];
      return { data: file.float32(key), count, width };
    };
    if (keys.includes("clip_l") && keys.includes("clip_g")) {
      parts.set("clip_l", vectors("clip_l"));
      parts.set("clip_g", vectors("clip_g"));
      if (parts.get("clip_l")!.count !== parts.get("clip_g")!.count) {
        throw new CheckpointError(
          `${origin}: clip_l has ${parts.get("clip_l")!.count} vectors and clip_g ${parts.get("clip_g")!.count}; an SDXL embedding has as many for both encoders`,
        );
      }
    } else if (keys.length === 1) {
      parts.set("single", vectors(keys[0]!));
    } else {
      throw new CheckpointError(
        `${origin}: ${keys.length} tensors (${keys.slice(0, 4).join(", ")}); an embedding file holds one (A1111's emb_params, or diffusers' token) or SDXL's clip_l and clip_g`,
      );
    }
    const bytes = typeof source === "string" ? readFileSync(source) : source.bytes;
    const list = [...parts.values()];
    return {
      name:
        name ??
        (typeof source === "string"
          ? basename(source)
              .replace(/\.safetensors$/i, "")
              .replace(TORCH_EXTENSIONS, "")
          : source.name),
      origin,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      parts,
      vectors: list[0]!.count,
      shape: list.reduce((n, v) => n + v.width, 0),
      metadata: file.metadata,
    };
  } finally {
    file.close();
  }
}
