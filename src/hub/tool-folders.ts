import { existsSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { basename, join, resolve } from "node:path";
import type { ModelFamily } from "../configs/pipeline.js";
import { parseExtraModelPaths } from "./comfy-extra-paths.js";
import type { ModelKind } from "./model-kind.js";

/**
 * Where other tools keep models, so that diffuse uses them in place:
 *  - AUTOMATIC1111 and Forge: models/Stable-diffusion, models/Lora (and LyCORIS), embeddings/, models/ControlNet,
 *    models/VAE;
 *  - ComfyUI: models/checkpoints, loras, embeddings, controlnet, vae, diffusers, and the folders its
 *    extra_model_paths.yaml adds;
 *  - InvokeAI: models/<base>/<type>/ (sd-1/main, sdxl/lora, ...), the base naming the family.
 * A folder that is none of these is searched as it is, each file's kind read from its weights.
 */

export type Tool = "a1111" | "comfyui" | "invokeai" | "folder";

export interface ModelFolder {
  readonly dir: string;
  /** The kind the tool files there; the weights decide where they say otherwise. */
  readonly kind?: ModelKind;
  readonly family?: ModelFamily;
}

export interface ToolLayout {
  readonly tool: Tool;
  /** The folder given (or found): the tool's installation, or the folder itself. */
  readonly root: string;
  readonly folders: readonly ModelFolder[];
}

const A1111: ReadonlyArray<readonly [string, ModelKind]> = [
  ["models/Stable-diffusion", "checkpoint"],
  ["models/Lora", "lora"],
  ["models/LyCORIS", "lora"],
  ["embeddings", "embedding"],
  ["models/ControlNet", "controlnet"],
  ["extensions/sd-webui-controlnet/models", "controlnet"],
  ["models/VAE", "vae"],
  ["models/VAE-approx", "vae"],
];

const COMFY: Readonly<Record<string, ModelKind>> = {
  checkpoints: "checkpoint",
  diffusers: "checkpoint",
  loras: "lora",
  embeddings: "embedding",
  controlnet: "controlnet",
  t2i_adapter: "controlnet",
  vae: "vae",
  vae_approx: "vae",
};

const INVOKE_BASES: Readonly<Record<string, ModelFamily | undefined>> = {
  "sd-1": "sd1",
  "sd-2": "sd2",
  sdxl: "sdxl",
  "sdxl-refiner": "sdxl-refiner",
  any: undefined,
};
const INVOKE_TYPES: Readonly<Record<string, ModelKind>> = {
  main: "checkpoint",
  lora: "lora",
  embedding: "embedding",
  controlnet: "controlnet",
  vae: "vae",
};

/** The layout of a folder given with --models-dir (a tool's installation, or its models/ folder). */
export function toolLayout(dir: string): ToolLayout {
  const given = resolve(dir);
  // A tool's models/ folder given instead of the installation: the tool's layout is one level up.
  const root = basename(given) === "models" && !isDir(join(given, "models")) ? resolve(given, "..") : given;
  if (isDir(join(root, "models", "Stable-diffusion"))) {
    return {
      tool: "a1111",
      root,
      folders: A1111.map(([sub, kind]) => ({ dir: join(root, sub), kind })).filter((f) => isDir(f.dir)),
    };
  }
  if (isDir(join(root, "models", "checkpoints")) || existsSync(join(root, "extra_model_paths.yaml"))) {
    return { tool: "comfyui", root, folders: comfyFolders(root) };
  }
  const invoke = Object.keys(INVOKE_BASES).filter((b) => isDir(join(root, "models", b)));
  if (invoke.length || existsSync(join(root, "invokeai.yaml"))) {
    const folders: ModelFolder[] = [];
    for (const base of invoke) {
      for (const [type, kind] of Object.entries(INVOKE_TYPES)) {
        const d = join(root, "models", base, type);
        if (isDir(d)) folders.push({ dir: d, kind, ...(INVOKE_BASES[base] ? { family: INVOKE_BASES[base] } : {}) });
      }
    }
    return { tool: "invokeai", root, folders };
  }
  return { tool: "folder", root: given, folders: [{ dir: given }] };
}

function comfyFolders(root: string): ModelFolder[] {
  const folders: ModelFolder[] = Object.entries(COMFY).map(([sub, kind]) => ({ dir: join(root, "models", sub), kind }));
  const yaml = join(root, "extra_model_paths.yaml");
  if (existsSync(yaml)) {
    for (const section of parseExtraModelPaths(readFileSync(yaml, "utf8"), yaml)) {
      for (const [key, dirs] of Object.entries(section.folders)) {
        const kind = COMFY[key];
        if (kind) for (const d of dirs) folders.push({ dir: d, kind });
      }
    }
  }
  return folders.filter((f) => isDir(f.dir));
}

/** Installations in their usual places under the home folder, used without being named. */
export function foundToolFolders(home: string = homedir()): string[] {
  const candidates = ["stable-diffusion-webui", "stable-diffusion-webui-forge", "ComfyUI", "invokeai"].map((n) =>
    join(home, n),
  );
  return candidates.filter((d) => toolLayout(d).tool !== "folder");
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
