import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { basename, join, relative, sep } from "node:path";
import { defaultCacheDir } from "../runtime/compile-cache.js";
import { HashMemo } from "../runtime/hash-memo.js";
import { openCheckpointFiles } from "../weights/checkpoint.js";
import { checkpointSha256 } from "../weights/checkpoint-hash.js";
import { detectWeightsKind } from "../weights/detect-kind.js";
import { sha256File, shortHash } from "../weights/hash.js";
import { modelTensors } from "../weights/state-dict.js";
import { openTensorFile, type TensorFile } from "../weights/tensor-file.js";
import { catalogueEntriesOf, type CatalogueEntry } from "./catalogue.js";
import { RepoCache } from "./hub-cache.js";
import { describeLicense, type LicenseNotice } from "./licenses.js";
import type { ModelFamilyLabel, ModelKind } from "./model-kind.js";
import { PullRecords } from "./pull-records.js";
import { licenseFromModelCard } from "./repo-license.js";
import { storeSettings, type StoreOptions, type StoreSettings } from "./store-settings.js";
import { modelsDirsFromConfig } from "./store-config.js";
import { foundToolFolders, toolLayout, type ModelFolder, type Tool } from "./tool-folders.js";

/** Where a model was found: pulled by diffuse, in the Hugging Face cache (diffusers' downloads), or another tool's folders. */
export type ModelSource = "store" | "hf-cache" | Tool;

export interface ListedModel {
  /** What `--model` accepts: a catalogue name, a repository id, `OWNER/REPO:FILE`, or a tool's model name (A1111's). */
  readonly name: string;
  /** Other names that find it (the repository id of a catalogue model, A1111's "name [hash]" title). */
  readonly aliases: readonly string[];
  readonly kind: ModelKind;
  readonly family: ModelFamilyLabel;
  /** The file or folder. */
  readonly path: string;
  readonly size: number;
  /** sha256 of a single file; of a diffusers folder, the project's folder identity (checkpoint-hash.ts). */
  readonly sha256?: string;
  /** AUTOMATIC1111's short hash: the sha256's first 10 hex digits. */
  readonly hash?: string;
  readonly license?: Pick<LicenseNotice, "id" | "name" | "url">;
  readonly source: ModelSource;
  /** The cache, or the tool's installation folder, it was found in. */
  readonly location: string;
  readonly repo?: string;
  /** Why it cannot be used as it is (an incomplete folder), when it cannot. */
  readonly problem?: string;
}

export interface ListOptions extends StoreOptions {
  /** Other tools' installations or model folders (`--models-dir`). */
  modelsDirs?: readonly string[];
  /** Also the folders named in DIFFUSE_HOME/config.json and tools installed in their usual places (default true). */
  searchDefaults?: boolean;
  /** The folder searched for usual installations (default: the home folder). */
  userHome?: string;
  /** Compute hashes (default true). Each file is hashed once: hashes are kept by path, size and modification time. */
  hashes?: boolean;
  /** The folder of that hash memo (default: the compile cache's, which generation shares). */
  hashCacheDir?: string;
  onStatus?: (message: string) => void;
}

/** Every model diffuse can use, from the store, the Hugging Face cache and other tools' folders. */
export async function listModels(opts: ListOptions = {}): Promise<ListedModel[]> {
  const settings = storeSettings(opts);
  const hasher =
    opts.hashes === false
      ? undefined
      : new Hasher(new HashMemo(join(opts.hashCacheDir ?? defaultCacheDir(), "hashes.json")), opts.onStatus);
  const found: Omit<ListedModel, "sha256" | "hash">[] = [...cacheModels(settings)];
  const dirs = [...(opts.modelsDirs ?? [])];
  if (opts.searchDefaults !== false)
    dirs.push(...modelsDirsFromConfig(settings.home), ...foundToolFolders(opts.userHome));
  const seen = new Set(found.map((m) => realOrSame(m.path)));
  for (const dir of dirs) {
    const layout = toolLayout(dir);
    for (const folder of layout.folders) {
      for (const m of folderModels(folder, layout.tool, layout.root)) {
        const real = realOrSame(m.path);
        if (seen.has(real)) continue;
        seen.add(real);
        found.push(m);
      }
    }
  }
  const out: ListedModel[] = [];
  for (const m of found) {
    const sha256 = hasher && !m.problem ? await hasher.identity(m) : undefined;
    out.push({
      ...m,
      ...(sha256
        ? { sha256, hash: shortHash(sha256), aliases: [...m.aliases, `${m.name} [${shortHash(sha256)}]`] }
        : {}),
    });
  }
  return out;
}

type Found = Omit<ListedModel, "sha256" | "hash">;

/** The Hugging Face cache: each repository's snapshots that a ref points to (every snapshot when none does). */
function* cacheModels(settings: StoreSettings): Generator<Found> {
  const records = new PullRecords(settings.home);
  for (const repo of RepoCache.repos(settings.cacheDir)) {
    const cache = new RepoCache(settings.cacheDir, repo);
    const record = records.get(repo);
    const source: ModelSource = record ? "store" : "hf-cache";
    for (const snapshot of currentSnapshots(cache)) {
      const entries = catalogueEntriesOf(repo);
      const license =
        record?.license ??
        cardLicense(snapshot, repo, settings) ??
        (entries[0] && describeLicense(entries[0].license, repo, settings.endpoint));
      const common = {
        source,
        location: settings.cacheDir,
        repo,
        ...(license ? { license: { id: license.id, name: license.name, url: license.url } } : {}),
      };
      const claimed = new Set<string>();
      for (const e of entries) {
        const path = e.path ? join(snapshot, e.path) : snapshot;
        if (!existsSync(path) || !entryPresent(e, snapshot, path)) continue;
        claimed.add(path);
        yield {
          ...common,
          ...describePath(path, e.kind, e.family),
          name: e.name,
          aliases: e.path ? [`${repo}:${e.path}`] : [repo],
        };
      }
      if (!claimed.has(snapshot)) {
        if (existsSync(join(snapshot, "model_index.json")) || existsSync(join(snapshot, "config.json"))) {
          yield { ...common, ...describePath(snapshot), name: repo, aliases: [] };
          continue;
        }
        for (const file of safetensorsUnder(snapshot, 1)) {
          if (claimed.has(file)) continue;
          yield {
            ...common,
            ...describePath(file),
            name: `${repo}:${relative(snapshot, file).split(sep).join("/")}`,
            aliases: [],
          };
        }
      }
    }
  }
}

function currentSnapshots(cache: RepoCache): string[] {
  const refs = join(cache.folder, "refs");
  const commits = new Set<string>();
  const walk = (dir: string) => {
    for (const e of safeReaddir(dir)) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else {
        const c = cache.commitOf(relative(refs, p).split(sep).join("/"));
        if (c) commits.add(c);
      }
    }
  };
  walk(refs);
  const all = safeReaddir(join(cache.folder, "snapshots"));
  const chosen = commits.size ? [...commits] : all;
  return chosen.map((c) => cache.snapshot(c)).filter((d) => existsSync(d));
}

/** Whether what a catalogue entry fetches is all in the snapshot (a repository can hold one entry's files and not another's). */
function entryPresent(e: CatalogueEntry, snapshot: string, path: string): boolean {
  if (e.files) return e.files.every((f) => existsSync(join(snapshot, ...f.split("/"))));
  return existsSync(join(path, "model_index.json")) || existsSync(join(path, "config.json"));
}

function cardLicense(snapshot: string, repo: string, settings: StoreSettings): LicenseNotice | undefined {
  const readme = join(snapshot, "README.md");
  if (!existsSync(readme)) return undefined;
  const fields = licenseFromModelCard(readFileSync(readme, "utf8").slice(0, 64 * 1024));
  return fields.license || fields.licenseName ? describeLicense(fields, repo, settings.endpoint) : undefined;
}

/**
 * The single files other tools keep models in: .safetensors, and the torch.save files A1111 also lists (.ckpt
 * checkpoints, kohya's .pt LoRAs), whose tensors are read as data by the restricted pickle reader.
 */
const MODEL_FILE = /\.(safetensors|ckpt|pt)$/i;

/** Other tools' folders: their model files and diffusers folders, the kind read from the weights. */
function* folderModels(folder: ModelFolder, tool: Tool, root: string): Generator<Found> {
  const common = { source: tool as ModelSource, location: root, aliases: [] as string[] };
  const walk = function* (dir: string, depth: number): Generator<Found> {
    for (const name of safeReaddir(dir).sort()) {
      if (name.startsWith(".")) continue;
      const p = join(dir, name);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      const rel = relative(folder.dir, p).split(sep).join("/");
      if (st.isDirectory()) {
        if (existsSync(join(p, "model_index.json")))
          yield { ...common, ...describePath(p, folder.kind, folder.family), name: rel };
        else if (existsSync(join(p, "config.json")) && safetensorsUnder(p, 0).length)
          yield { ...common, ...describePath(p, folder.kind, folder.family), name: rel };
        else if (depth < 4) yield* walk(p, depth + 1);
      } else if (MODEL_FILE.test(name)) {
        // A1111 names a model by its path under the folder without the extension (the <lora:NAME:w> name too).
        const m = {
          ...common,
          ...describePath(p, folder.kind, folder.family),
          name: rel.replace(MODEL_FILE, ""),
        };
        if (m.kind !== undefined) yield m;
      }
    }
  };
  yield* walk(folder.dir, 0);
}

type Description = Pick<ListedModel, "kind" | "family" | "path" | "size" | "problem"> & {
  license?: ListedModel["license"];
};

/** What a file or folder is, from its contents (the folder's kind and family as fallbacks). */
function describePath(path: string, kind?: ModelKind, family?: ModelFamilyLabel): Description {
  const st = statSync(path);
  if (!st.isDirectory()) return describeFile(path, st.size, kind, family);
  const size = folderSize(path);
  if (existsSync(join(path, "model_index.json"))) {
    try {
      const ckpt = openCheckpointFiles(path);
      ckpt.close();
      return { kind: "checkpoint", family: ckpt.config.family, path, size };
    } catch (e) {
      return { kind: kind ?? "checkpoint", family: family ?? "unknown", path, size, problem: (e as Error).message };
    }
  }
  if (kind === "tokenizer" || kind === "safety-checker") return { kind, family: family ?? "any", path, size };
  const cls = configClass(join(path, "config.json"));
  const byClass: ModelKind | undefined = /ControlNet|T2IAdapter/i.test(cls)
    ? "controlnet"
    : /Autoencoder/i.test(cls)
      ? "vae"
      : undefined;
  return { kind: byClass ?? kind ?? "checkpoint", family: family ?? "unknown", path, size };
}

function describeFile(path: string, size: number, kind?: ModelKind, family?: ModelFamilyLabel): Description {
  let file: TensorFile | undefined;
  try {
    file = modelTensors(openTensorFile(path));
    const shapes = new Map(file.keys().map((k) => [k, file!.info(k).shape] as const));
    const d = detectWeightsKind(shapes, file.metadata);
    const detected: ModelKind | undefined =
      d.kind === "checkpoint" ||
      d.kind === "lora" ||
      d.kind === "embedding" ||
      d.kind === "controlnet" ||
      d.kind === "vae"
        ? d.kind
        : undefined;
    const license = file.metadata["modelspec.license"];
    return {
      kind: detected ?? kind ?? "checkpoint",
      family: d.family ?? family ?? "unknown",
      path,
      size,
      ...(license ? { license: { id: license, name: license, url: "" } } : {}),
      ...(detected ? {} : { problem: `not a model diffuse recognises (${d.evidence ?? "no known tensor names"})` }),
    };
  } catch (e) {
    return { kind: kind ?? "checkpoint", family: family ?? "unknown", path, size, problem: (e as Error).message };
  } finally {
    file?.close();
  }
}

function configClass(file: string): string {
  try {
    const json = JSON.parse(readFileSync(file, "utf8")) as { _class_name?: unknown };
    return typeof json._class_name === "string" ? json._class_name : "";
  } catch {
    return "";
  }
}

function folderSize(dir: string): number {
  let total = 0;
  for (const e of safeReaddir(dir)) {
    const p = join(dir, e);
    try {
      const st = statSync(p);
      total += st.isDirectory() ? folderSize(p) : st.size;
    } catch {
      // a dangling link: nothing to count
    }
  }
  return total;
}

function safetensorsUnder(dir: string, depth: number): string[] {
  return safeReaddir(dir).flatMap((e) => {
    const p = join(dir, e);
    if (/\.safetensors$/i.test(e)) return [p];
    return depth > 0 && isDirectory(p) ? safetensorsUnder(p, depth - 1) : [];
  });
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function realOrSame(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/**
 * Model identities, each file hashed once. A file in the Hugging Face cache whose blob is named by a sha256 (an LFS
 * file, checked when diffuse downloaded it) needs no hashing at all.
 */
class Hasher {
  constructor(
    private readonly memo: HashMemo,
    private readonly onStatus?: (message: string) => void,
  ) {}

  readonly file = async (path: string): Promise<string> => {
    const blob = blobSha256(path);
    if (blob) return blob;
    return this.memo.hash(path, (abs) => {
      if (statSync(abs).size > 256 * 2 ** 20) this.onStatus?.(`hashing ${abs} (once per file)`);
      return sha256File(abs);
    });
  };

  async identity(m: Found): Promise<string | undefined> {
    if (m.kind === "tokenizer" || m.kind === "safety-checker") return undefined;
    if (!statSync(m.path).isDirectory()) return this.file(m.path);
    if (!existsSync(join(m.path, "model_index.json"))) return undefined;
    const ckpt = openCheckpointFiles(m.path);
    try {
      return await checkpointSha256(ckpt, this.file);
    } finally {
      ckpt.close();
    }
  }
}

/** The sha256 a Hugging Face cache link's blob name is, when the link leads to one. */
function blobSha256(path: string): string | undefined {
  try {
    const target = readlinkSync(path);
    const name = basename(target);
    return /^[0-9a-f]{64}$/.test(name) && basename(join(path, "..", target, "..")) === "blobs" ? name : undefined;
  } catch {
    return undefined;
  }
}
