import { HubError } from "../errors.js";

/**
 * Which files of a repository a model needs. Model repositories hold the same weights several times over
 * (PyTorch pickles, a single-file checkpoint beside the diffusers folders, ONNX, Flax, OpenVINO exports, fp32 and
 * fp16 variants): diffuse reads safetensors only, and of a diffusers repository takes the fp16 variant where there
 * is one (the same numbers as diffuse keeps them, at half the download), the configs and the tokenizer files.
 */

export interface SelectionRequest {
  /** One file (`OWNER/REPO:FILE`). */
  readonly file?: string;
  /** An explicit list (a catalogue entry's). */
  readonly files?: readonly string[];
  /**
   * The component folders a pipeline's model_index.json names (componentsOf); other folders of the repository
   * (a second VAE, exporters' folders) are left out. Absent: every folder.
   */
  readonly components?: readonly string[];
}

/** Weight files diffuse never reads; each has a safetensors twin in repositories that diffuse can use. */
const NEVER =
  /\.(bin|ckpt|pt|pth|onnx|onnx_data|msgpack|h5|pb|tflite|mlmodel|mlpackage|xml|gguf)$|(^|\/)(flax_model|tf_model)\.|(^|\/)(onnx|openvino|coreml)[^/]*\//i;
/** Side files a model folder needs: configs, tokenizer vocabularies and merges, shard indexes. */
const SIDE_FILE = /(^|\/)([^/]+\.json|merges\.txt)$/i;
const WEIGHTS = /\.safetensors$/i;
/** `stem[.variant][-00001-of-00002].safetensors` and `stem.safetensors.index[.variant].json` (both spellings diffusers uses). */
const VARIANT = /^(?<stem>[^/.]+)(?:\.(?<variant>[^/.-]+))?(?:-\d{5}-of-\d{5})?\.safetensors$/;
const INDEX = /^(?<stem>[^/.]+)(?:\.(?<v1>[^/.]+))?\.safetensors\.index(?:\.(?<v2>[^/.]+))?\.json$/;

export function selectFiles(
  repo: string,
  revision: string,
  available: readonly string[],
  want: SelectionRequest,
): string[] {
  const have = new Set(available);
  if (want.file !== undefined) {
    if (!have.has(want.file)) throw new HubError(`${repo}@${revision} has no file ${want.file}; ${listing(available)}`);
    return [want.file];
  }
  if (want.files) {
    const missing = want.files.filter((f) => !have.has(f));
    if (missing.length)
      throw new HubError(
        `${repo}@${revision} has no ${missing.join(", ")}: the repository changed; pull it as ${repo}:FILE instead`,
      );
    return [...want.files];
  }
  if (have.has("model_index.json")) return pipelineFiles(available, want.components);
  if (have.has("config.json")) {
    const picked = folderFiles(available.filter((f) => !f.includes("/")));
    if (picked.some((f) => WEIGHTS.test(f))) return picked;
  }
  const singles = available.filter((f) => WEIGHTS.test(f) && !NEVER.test(f));
  if (singles.length === 1) return singles;
  if (singles.length === 0) {
    throw new HubError(
      `${repo}@${revision} has no .safetensors weights (diffuse does not read pickled .bin/.ckpt files); ${listing(available)}`,
    );
  }
  throw new HubError(`${repo}@${revision} holds several models (${singles.join(", ")}): pull one as ${repo}:FILE`);
}

/** A diffusers pipeline: model_index.json and each component folder's needed files; root-level single files are duplicates. */
function pipelineFiles(available: readonly string[], components: readonly string[] | undefined): string[] {
  const byFolder = new Map<string, string[]>();
  for (const f of available) {
    const slash = f.indexOf("/");
    const folder = slash < 0 ? "" : f.slice(0, slash);
    if (f.slice(slash + 1).includes("/")) continue; // deeper: exporters' extras (onnx/, openvino/), not diffusers components
    byFolder.set(folder, [...(byFolder.get(folder) ?? []), f]);
  }
  const root = (byFolder.get("") ?? []).filter((f) => SIDE_FILE.test(f));
  byFolder.delete("");
  if (components) for (const folder of [...byFolder.keys()]) if (!components.includes(folder)) byFolder.delete(folder);
  return [...root, ...[...byFolder.values()].flatMap(folderFiles)];
}

/**
 * The component folders of a pipeline: model_index.json's keys whose value names a library and a class
 * (`"unet": ["diffusers", "UNet2DConditionModel"]`); `[null, null]` marks a component the pipeline goes without.
 */
export function componentsOf(modelIndex: unknown): string[] {
  if (!modelIndex || typeof modelIndex !== "object" || Array.isArray(modelIndex)) return [];
  return Object.entries(modelIndex as Record<string, unknown>)
    .filter(
      ([k, v]) =>
        !k.startsWith("_") &&
        Array.isArray(v) &&
        v.length === 2 &&
        typeof v[0] === "string" &&
        typeof v[1] === "string",
    )
    .map(([k]) => k);
}

/** One folder's side files and, of its weights, the fp16 variant when it has one, else the plain files. */
function folderFiles(files: readonly string[]): string[] {
  const usable = files.filter((f) => !NEVER.test(f));
  const weights = usable.filter((f) => WEIGHTS.test(f) || INDEX.test(base(f)));
  const side = usable.filter((f) => SIDE_FILE.test(f) && !INDEX.test(base(f)));
  const variantOf = (f: string): string => {
    const m = VARIANT.exec(base(f)) ?? INDEX.exec(base(f));
    return m?.groups?.variant ?? m?.groups?.v1 ?? m?.groups?.v2 ?? "";
  };
  const variants = new Set(weights.map(variantOf));
  const chosen = variants.has("fp16") ? "fp16" : variants.has("") ? "" : undefined;
  return [...side, ...weights.filter((f) => chosen !== undefined && variantOf(f) === chosen)];
}

function base(f: string): string {
  return f.slice(f.lastIndexOf("/") + 1);
}

function listing(available: readonly string[]): string {
  const models = available.filter((f) => WEIGHTS.test(f));
  return models.length
    ? `its .safetensors files: ${models.slice(0, 12).join(", ")}${models.length > 12 ? ", ..." : ""}`
    : "it has no .safetensors files";
}
