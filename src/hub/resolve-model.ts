import { existsSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { InputError } from "../errors.js";
import { catalogueEntry } from "./catalogue.js";
import { RepoCache } from "./hub-cache.js";
import { listModels, type ListedModel, type ListOptions } from "./list-models.js";
import type { ModelKind } from "./model-kind.js";
import { parseModelRef } from "./model-ref.js";
import { storeSettings } from "./store-settings.js";

export interface ResolveOptions extends ListOptions {
  /** The kind of model wanted (default: a checkpoint). */
  kind?: ModelKind;
}

/**
 * The file or folder a `--model` value names: a path as it is; a catalogue name or a Hugging Face repository
 * (`OWNER/REPO[@REVISION][:FILE]`) in the cache; else a name `diffuse models` lists (A1111's "name" or
 * "name [hash]", a short hash). Nothing is downloaded: a name not yet pulled gets an error saying how to pull it.
 */
export async function resolveModelPath(name: string, opts: ResolveOptions = {}): Promise<string> {
  if (existsSync(name)) return name;
  if (isAbsolute(name) || /^\.{1,2}[\\/]/.test(name)) {
    throw new InputError(
      `model not found: ${name}; pass --model with a .safetensors file, a diffusers folder, or a name \`diffuse models\` lists`,
    );
  }
  const settings = storeSettings(opts);
  const entry = catalogueEntry(name);
  if (entry) {
    const snapshot = new RepoCache(settings.cacheDir, entry.repo).snapshotOf(entry.revision ?? "main");
    const path = snapshot && (entry.path ? join(snapshot, entry.path) : snapshot);
    if (path && existsSync(path)) return path;
    throw new InputError(`"${entry.name}" (${entry.repo}) has not been downloaded: run \`diffuse pull ${entry.name}\``);
  }
  const cached = cachedRepoPath(name, settings.cacheDir);
  if (cached) return cached;
  const kind = opts.kind ?? "checkpoint";
  const wantsHash = /^[0-9a-f]{10}$/i.test(name) || /\[[0-9a-f]{10}\]$/i.test(name);
  const models = (await listModels({ ...opts, hashes: wantsHash && opts.hashes !== false })).filter(
    (m) => m.kind === kind,
  );
  const matches = match(models, name);
  if (matches.length === 1) return matches[0]!.path;
  if (matches.length > 1) {
    throw new InputError(
      `"${name}" names ${matches.length} models (${matches.map((m) => `${m.path} from ${m.source}`).join("; ")}): pass the path of the one you mean`,
    );
  }
  throw new InputError(
    `no model "${name}": it is not a file or folder, a catalogue name (diffuse pull --list), a repository in the Hugging Face cache ` +
      `(${settings.cacheDir}; diffuse pull OWNER/REPO fetches one), nor a ${kind} that \`diffuse models\` lists`,
  );
}

/** A repository reference whose snapshot is in the cache (no network: this is resolution, not a pull). */
function cachedRepoPath(name: string, cacheDir: string): string | undefined {
  if (!/^[\w.-]+\/[\w.-]+([@:].*)?$/.test(name)) return undefined;
  let ref;
  try {
    ref = parseModelRef(name);
  } catch {
    return undefined;
  }
  const snapshot = new RepoCache(cacheDir, ref.repo).snapshotOf(ref.revision);
  const path = snapshot && (ref.file ? join(snapshot, ref.file) : snapshot);
  return path && existsSync(path) ? path : undefined;
}

/** Exact names first, then names without regard to case, then the short hash. */
function match(models: readonly ListedModel[], name: string): ListedModel[] {
  const names = (m: ListedModel) => [m.name, ...m.aliases];
  const exact = models.filter((m) => names(m).includes(name));
  if (exact.length) return exact;
  const lower = name.toLowerCase();
  const folded = models.filter((m) => names(m).some((n) => n.toLowerCase() === lower));
  if (folded.length) return folded;
  return models.filter((m) => m.hash !== undefined && m.hash === lower);
}
