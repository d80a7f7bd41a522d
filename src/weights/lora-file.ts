import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { basename } from "node:path";
import type { ModelFamily } from "../configs/pipeline.js";
import { CheckpointError } from "../errors.js";
import { familyName, familyOfContextWidth } from "./detect.js";
import { moduleDeltas, type ShapeOf, type TensorDelta } from "./lora-delta.js";
import { mapLoraKeys, type LoraTargets } from "./lora-keymap.js";
import { SafetensorsFile } from "./safetensors.js";
import { openTensorFile, type TensorFile, tensorFileFromBytes } from "./tensor-file.js";

/** The extensions of LoRA files: A1111's name for one is its file name without it. */
const LORA_EXTENSION = /\.(safetensors|pt|ckpt)$/i;

/** A LoRA as a caller hands it over: a .safetensors (or kohya .pt) path, or the file's bytes with a name for messages. */
export type LoraSource = string | { readonly bytes: Uint8Array; readonly name: string };

/** A LoRA (or LyCORIS) file read for one model: what it changes, and how it is named and hashed. */
export interface LoraFile {
  /** The file name without .safetensors / .pt (A1111's name for it), or the name given with the bytes. */
  readonly name: string;
  /** The path, or the name given with the bytes. */
  readonly origin: string;
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * sha256 of the tensor data (everything after the header), the "addnet" hash A1111 gives LoRA files, so that
   * editing the metadata does not change it; A1111 writes its first 12 hex digits (or the file's own
   * sshs_model_hash) as "Lora hashes".
   */
  readonly sha256: string;
  readonly shortHash: string;
  /** Each tensor's change at multiplier 1. */
  readonly deltas: readonly TensorDelta[];
  /** Keys that name nothing in the model (reported, not applied). */
  readonly unmatched: readonly string[];
}

/** The model a LoRA is read for: its family and its tensors. */
export interface LoraModel {
  readonly family: ModelFamily;
  readonly targets: LoraTargets;
  readonly shapeOf: ShapeOf;
}

/**
 * Reads a LoRA for a model (.safetensors, or a torch.save .pt read as data by the restricted pickle reader). Refused
 * with a CheckpointError naming the file: a pickle that asks for anything but tensors (UnsafePickleError), truncated or malformed, made for another model
 * family, with a module whose shapes do not fit the model, or with no key that names anything in the model.
 */
export function readLora(source: LoraSource, model: LoraModel): LoraFile {
  // kohya's scripts save .pt LoRAs too: read through the restricted pickle reader, which executes nothing.
  const file = typeof source === "string" ? openTensorFile(source) : tensorFileFromBytes(source.bytes, source.name);
  try {
    const origin = typeof source === "string" ? source : source.name;
    const keys = file.keys();
    const map = mapLoraKeys(keys, model.targets);
    const made = loraFamily(file, keys);
    if (made && made.family !== model.family) {
      throw new CheckpointError(
        `${origin}: a LoRA for ${familyName(made.family)} (${made.evidence}), but the model is ${familyName(model.family)}; use a LoRA made for ${familyName(model.family)}`,
      );
    }
    if (map.modules.length === 0) {
      throw new CheckpointError(
        `${origin}: none of its ${keys.length} keys names a module of this ${familyName(model.family)} model (e.g. ${keys
          .slice(0, 3)
          .map((k) => `"${k}"`)
          .join(", ")}); it is not a LoRA, or one for another model`,
      );
    }
    const deltas = map.modules.flatMap((m) => moduleDeltas(file, m, model.shapeOf));
    const sha256 = dataHash(source, file);
    const shortHash = (file.metadata["sshs_model_hash"] || sha256).slice(0, 12);
    const name = typeof source === "string" ? basename(source).replace(LORA_EXTENSION, "") : source.name;
    return { name, origin, metadata: file.metadata, sha256, shortHash, deltas, unmatched: map.unmatched };
  } finally {
    file.close();
  }
}

/**
 * The family a LoRA was made for, when it says: kohya's metadata (ss_base_model_version, ss_v2), the modelspec
 * architecture, a second text encoder's keys (SDXL), or the text width its cross-attention reads.
 */
function loraFamily(file: TensorFile, keys: readonly string[]): { family: ModelFamily; evidence: string } | undefined {
  const m = file.metadata;
  const version = m["ss_base_model_version"] ?? "";
  if (version.startsWith("sdxl")) return { family: "sdxl", evidence: `ss_base_model_version ${version}` };
  if (version.startsWith("sd_v2") || m["ss_v2"] === "True")
    return { family: "sd2", evidence: version ? `ss_base_model_version ${version}` : "ss_v2 True" };
  if (version.startsWith("sd_v1")) return { family: "sd1", evidence: `ss_base_model_version ${version}` };
  const arch = m["modelspec.architecture"] ?? "";
  if (arch.startsWith("stable-diffusion-xl")) return { family: "sdxl", evidence: `modelspec.architecture ${arch}` };
  if (arch.startsWith("stable-diffusion-v2")) return { family: "sd2", evidence: `modelspec.architecture ${arch}` };
  if (arch.startsWith("stable-diffusion-v1")) return { family: "sd1", evidence: `modelspec.architecture ${arch}` };
  const second = keys.find((k) => k.startsWith("lora_te2_") || k.startsWith("text_encoder_2."));
  if (second) return { family: "sdxl", evidence: `a second text encoder's key "${second}"` };
  // The down factor of a cross-attention key or value projection reads the text: its input width is the family's.
  const crossAttention = keys.find((k) => /attn2[._]to_[kv][._](lora[._]down|lora_A)/.test(k));
  if (crossAttention) {
    const width = file.info(crossAttention).shape[1];
    const family = width === undefined ? undefined : familyOfContextWidth(width);
    if (family) return { family, evidence: `cross-attention reads ${width}-wide text ("${crossAttention}")` };
  }
  return undefined;
}

/**
 * sha256 of a safetensors file's data section (A1111's addnet hash), read in chunks; of a torch.save file, the whole
 * file, as A1111 hashes every LoRA that is not .safetensors.
 */
function dataHash(source: LoraSource, file: TensorFile): string {
  const hash = createHash("sha256");
  const dataStart = file instanceof SafetensorsFile ? file.dataStart : 0;
  if (typeof source !== "string") return hash.update(source.bytes.subarray(dataStart)).digest("hex");
  const fd = openSync(source, "r");
  try {
    const buf = Buffer.alloc(4 << 20);
    for (let at = dataStart; ; ) {
      const n = readSync(fd, buf, 0, buf.length, at);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      at += n;
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}
