import { readdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import type { ListOptions } from "../hub/list-models.js";
import { storeSettings } from "../hub/store-settings.js";
import { modelsDirsFromConfig } from "../hub/store-config.js";
import { foundToolFolders, toolLayout } from "../hub/tool-folders.js";
import { isFullVae } from "../weights/vae-file.js";
import type { ServerContext } from "./context.js";
import { HttpError } from "./http-errors.js";

/** A VAE clients may choose (A1111's sd_vae): its name as A1111 lists it (the file's name) and where it is. */
export interface ListedVae {
  readonly model_name: string;
  readonly filename: string;
}

/** sd_vae's two values that name no file: the served model's VAE, and the checkpoint's own. */
export const SD_VAE_AUTOMATIC = "Automatic";
export const SD_VAE_NONE = "None";

/**
 * The VAE folders under the model roots the server searches (serve --models-dir, DIFFUSE_HOME's config, tools
 * installed in their usual places): A1111's models/VAE and ComfyUI's models/vae (with its extra_model_paths.yaml);
 * not their folders of tiny preview decoders, which are no sd_vae.
 */
export function vaeFolders(models: ListOptions | undefined): string[] {
  if (!models) return [];
  const roots = [...(models.modelsDirs ?? [])];
  if (models.searchDefaults !== false)
    roots.push(...modelsDirsFromConfig(storeSettings(models).home), ...foundToolFolders(models.userHome));
  const dirs = new Set<string>();
  for (const root of roots) {
    const layout = toolLayout(root);
    if (layout.tool !== "a1111" && layout.tool !== "comfyui") continue;
    for (const f of layout.folders) if (f.kind === "vae" && !/(VAE-approx|vae_approx)$/.test(f.dir)) dirs.add(f.dir);
  }
  return [...dirs];
}

/** The VAEs in those folders and their subfolders (.safetensors files and diffusers VAE folders), sorted by name. */
export function listVaes(dirs: readonly string[]): ListedVae[] {
  const found: ListedVae[] = [];
  const visit = (dir: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      let isDir: boolean;
      try {
        isDir = statSync(path).isDirectory();
      } catch {
        continue;
      }
      if (!isDir && !name.endsWith(".safetensors")) continue;
      if (fullVae(path)) found.push({ model_name: basename(path), filename: path });
      else if (isDir && depth < MAX_DEPTH) visit(path, depth + 1);
    }
  };
  for (const dir of dirs) visit(dir, 0);
  return found.sort((a, b) => a.model_name.localeCompare(b.model_name));
}

const MAX_DEPTH = 4;

function fullVae(path: string): boolean {
  try {
    return isFullVae(path);
  } catch {
    return false; // unreadable or not a model: not listed, as A1111 lists only what it could load
  }
}

/**
 * The VAE a job's sd_vae names: undefined for Automatic (the served model's VAE), null for None (the checkpoint's own),
 * the path of the listed VAE of that name (or, as A1111 also takes it, its name without the extension); undefined
 * `found` when none is listed so.
 */
export function findVae(dirs: readonly string[], value: string): { found: boolean; vae?: string | null } {
  const v = value.trim();
  if (v === "" || v.toLowerCase() === SD_VAE_AUTOMATIC.toLowerCase()) return { found: true };
  if (v.toLowerCase() === SD_VAE_NONE.toLowerCase()) return { found: true, vae: null };
  const listed = listVaes(dirs);
  const hit =
    listed.find((l) => l.model_name === v) ?? listed.find((l) => l.model_name.replace(/\.safetensors$/i, "") === v);
  return hit ? { found: true, vae: hit.filename } : { found: false };
}

/** Our API's sd_vae: 400 naming the field when it names no listed VAE. */
export function checkSdVae(ctx: ServerContext, value: string | undefined): void {
  if (value === undefined || findVae(vaeFolders(ctx.config.models), value).found) return;
  throw new HttpError(
    400,
    "invalid_request",
    `sd_vae "${value}" is not a VAE this server has: use "Automatic", "None" or a model_name from GET /sdapi/v1/sd-vae`,
    "sd_vae",
  );
}
