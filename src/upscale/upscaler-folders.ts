import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { parseExtraModelPaths } from "../hub/comfy-extra-paths.js";
import { diffuseHome } from "../hub/diffuse-home.js";
import { modelsDirsFromConfig } from "../hub/store-config.js";
import { foundToolFolders, toolLayout } from "../hub/tool-folders.js";

/**
 * Where upscaler models are found, under the same model roots `diffuse models` searches (--models-dir, "modelsDirs"
 * in DIFFUSE_HOME/config.json, the usual installations under the home folder): A1111's models/ESRGAN and
 * models/RealESRGAN, ComfyUI's models/upscale_models (and the upscale_models of its extra_model_paths.yaml), and
 * diffuse's own DIFFUSE_HOME/upscalers. A folder given that is none of these tools is searched for those subfolders,
 * or used itself when it is one of them by name.
 */
export interface UpscalerFile {
  /** A1111's name: the file name without its extension. */
  readonly name: string;
  readonly path: string;
  /** A1111's scaler family: "ESRGAN_4x" for ESRGAN and ComfyUI folders, "RealESRGAN" for models/RealESRGAN. */
  readonly family: string;
}

export interface UpscalerSearch {
  readonly modelsDirs?: readonly string[];
  /** Also the config's modelsDirs and installations under the home folder (default true). */
  readonly searchDefaults?: boolean;
  readonly userHome?: string;
  /** diffuse's own folder (default: DIFFUSE_HOME of `env`, else the platform's data folder). */
  readonly home?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** The extensions A1111 lists in its ESRGAN folders. */
const MODEL_FILE = /\.(pth|pt|safetensors)$/i;
const FOLDER_NAMES: Readonly<Record<string, string>> = {
  ESRGAN: "ESRGAN_4x",
  RealESRGAN: "RealESRGAN",
  upscale_models: "ESRGAN_4x",
  upscalers: "ESRGAN_4x",
};

export function upscalerFolders(search: UpscalerSearch = {}): { dir: string; family: string }[] {
  const home = search.home ?? diffuseHome(search.env);
  const roots = [...(search.modelsDirs ?? [])];
  if (search.searchDefaults !== false) roots.push(...modelsDirsFromConfig(home), ...foundToolFolders(search.userHome));
  const folders: { dir: string; family: string }[] = [{ dir: join(home, "upscalers"), family: "ESRGAN_4x" }];
  for (const root of roots) {
    const layout = toolLayout(root);
    const at = layout.root;
    if (layout.tool === "a1111") {
      folders.push({ dir: join(at, "models", "ESRGAN"), family: "ESRGAN_4x" });
      folders.push({ dir: join(at, "models", "RealESRGAN"), family: "RealESRGAN" });
    } else if (layout.tool === "comfyui") {
      folders.push({ dir: join(at, "models", "upscale_models"), family: "ESRGAN_4x" });
      const yaml = join(at, "extra_model_paths.yaml");
      if (existsSync(yaml))
        for (const section of parseExtraModelPaths(readFileSync(yaml, "utf8"), yaml))
          for (const d of section.folders.upscale_models ?? []) folders.push({ dir: d, family: "ESRGAN_4x" });
    } else {
      const given = resolve(root);
      const own = FOLDER_NAMES[basename(given)];
      if (own) folders.push({ dir: given, family: own });
      for (const [sub, family] of Object.entries(FOLDER_NAMES)) folders.push({ dir: join(given, sub), family });
      for (const [sub, family] of Object.entries(FOLDER_NAMES))
        folders.push({ dir: join(given, "models", sub), family });
    }
  }
  const seen = new Set<string>();
  return folders.filter((f) => isDir(f.dir) && !seen.has(resolve(f.dir)) && seen.add(resolve(f.dir)));
}

/** The model files of those folders (top level, as A1111 lists them), sorted by name; the first of a name wins. */
export function findUpscalerFiles(search: UpscalerSearch = {}): UpscalerFile[] {
  const out: UpscalerFile[] = [];
  const names = new Set<string>();
  for (const { dir, family } of upscalerFolders(search)) {
    let entries: string[];
    try {
      entries = readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const file of entries) {
      const path = join(dir, file);
      if (!MODEL_FILE.test(file) || !isFile(path)) continue;
      const name = file.replace(MODEL_FILE, "");
      if (names.has(name)) continue;
      names.add(name);
      out.push({ name, path, family });
    }
  }
  return out;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
