import { readFileSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../errors.js";

/**
 * DIFFUSE_HOME/config.json: settings that outlive one command. `modelsDirs` lists other tools' installations or
 * model folders (as --models-dir does), searched by `diffuse models` and by `--model NAME`:
 *   { "modelsDirs": ["/home/me/stable-diffusion-webui", "/data/ComfyUI"] }
 */
export function storeConfigFile(home: string): string {
  return join(home, "config.json");
}

export function modelsDirsFromConfig(home: string): string[] {
  const file = storeConfigFile(home);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return []; // no config file: nothing configured
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(
      `${file} is not valid JSON (${(e as Error).message}); fix it, e.g. {"modelsDirs": ["/path/to/stable-diffusion-webui"]}`,
    );
  }
  const dirs = (json as { modelsDirs?: unknown } | null)?.modelsDirs;
  if (dirs === undefined) return [];
  if (!Array.isArray(dirs) || dirs.some((d) => typeof d !== "string" || !d)) {
    throw new InputError(`${file}: "modelsDirs" must be a list of folder paths, e.g. ["/path/to/ComfyUI"]`);
  }
  return dirs as string[];
}
