import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { readJson } from "../weights/checkpoint.js";
import { controlNetTitle } from "../weights/controlnet-checkpoint.js";
import { detectWeightsKind, type WeightsKind } from "../weights/detect-kind.js";
import { SafetensorsFile } from "../weights/safetensors.js";

/** A control model (ControlNet or T2I-Adapter) the server can use: A1111's extension title ("name [hash]") and where it is. */
export interface ListedControlNet {
  readonly title: string;
  readonly path: string;
}

/**
 * The ControlNets in the given folders (`serve --controlnet-dir`), as A1111's ControlNet extension lists its models
 * folder: each .safetensors file whose tensors are a ControlNet's or a T2I-Adapter's (the extension keeps both
 * there), and each diffusers folder of either (config.json of class ControlNetModel or T2IAdapter), sorted by name.
 * Files are recognised from their headers only.
 */
export function listControlNets(dirs: readonly string[]): ListedControlNet[] {
  const found: ListedControlNet[] = [];
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const listed = statSync(path).isDirectory() ? folderControlNet(path) : fileControlNet(path);
      if (listed) found.push(listed);
    }
  }
  return found;
}

/** What the extension's models folder holds: ControlNets and T2I-Adapters, as files and as diffusers folders. */
const CONTROL_KINDS: ReadonlySet<WeightsKind> = new Set(["controlnet", "t2i-adapter"]);
const CONTROL_CLASSES: ReadonlySet<string> = new Set(["ControlNetModel", "T2IAdapter"]);

function fileControlNet(path: string): ListedControlNet | undefined {
  if (!path.endsWith(".safetensors")) return undefined;
  try {
    const file = SafetensorsFile.open(path);
    try {
      const shapes = new Map([...file.tensors].map(([k, t]) => [k, t.shape] as const));
      return CONTROL_KINDS.has(detectWeightsKind(shapes).kind)
        ? { title: controlNetTitle(path, path), path }
        : undefined;
    } finally {
      file.close();
    }
  } catch {
    return undefined; // not a readable safetensors file: not listed, as the extension skips what it cannot load
  }
}

function folderControlNet(dir: string): ListedControlNet | undefined {
  const weights = join(dir, "diffusion_pytorch_model.safetensors");
  if (!existsSync(join(dir, "config.json")) || !existsSync(weights)) return undefined;
  try {
    return CONTROL_CLASSES.has(String(readJson(join(dir, "config.json"), "config")["_class_name"]))
      ? { title: controlNetTitle(dir, weights), path: dir }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The ControlNet a request names, matched as the extension matches: its exact title, or its name without the hash
 * (any case); undefined when none is.
 */
export function findControlNet(list: readonly ListedControlNet[], requested: string): ListedControlNet | undefined {
  const v = requested.trim();
  const bare = (t: string) => t.replace(/\s*\[[0-9a-f]+\]$/i, "").toLowerCase();
  return list.find((c) => c.title === v) ?? list.find((c) => bare(c.title) === bare(v));
}

/**
 * The path of the ControlNet a job names by title (as accepted, see control-units.ts) in the given folders; the name
 * itself when it is no longer there, so the job fails with the pipeline's "not found" naming it.
 */
export function controlNetPath(dirs: readonly string[], title: string): string {
  return findControlNet(listControlNets(dirs), title)?.path ?? title;
}
