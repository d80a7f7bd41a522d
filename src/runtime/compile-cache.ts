import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { InternalError } from "../errors.js";
import type { Graph } from "../onnx/graph.js";
import { serializeGraph } from "../onnx/serialize.js";
import { installFolder, makeBuildFolder, retireFolder, sweepAbandoned } from "./atomic-folder.js";
import { sampledDigest, sha256 } from "./file-digest.js";

/**
 * A folder of built graphs, one entry per key (the caller hashes the checkpoint, the component and the build
 * options into it), so a second load skips building and weight conversion.
 *
 * An entry is `<key>/model.onnx` + `<key>/weights.bin` + `<key>/manifest.json`. It is built in a private folder
 * and renamed into place (atomic-folder.ts: several processes may build the same entry at once, and a valid
 * entry is never replaced under a process that reads it), and the manifest holds sizes and digests that are
 * checked before use: a half-written or corrupted entry is detected and rebuilt, never handed to the runtime.
 */
export interface CacheManifest {
  version: number;
  key: string;
  /** Unique to one build of the entry, so a process can remove the entry it found broken and not a newer one. */
  id?: string;
  modelBytes: number;
  modelSha256: string;
  weightsBytes: number;
  /** Sampled digest of weights.bin (file-digest.ts): catches truncation and most corruption without reading GBs. */
  weightsSample: string;
  createdAt: string;
}

const FORMAT_VERSION = 1;
const MODEL = "model.onnx";
const WEIGHTS = "weights.bin";
const MANIFEST = "manifest.json";

export function defaultCacheDir(): string {
  return process.env.DIFFUSE_CACHE ?? join(homedir(), ".cache", "diffuse", "compiled");
}

/** A valid entry: its model path, and the identity of this build of it (for `evict`). */
export interface CacheEntry {
  path: string;
  id: string;
}

export type CacheLookup = (CacheEntry & { hit: true }) | { path: string; hit: false; reason: string };

export class CompileCache {
  constructor(readonly dir: string = defaultCacheDir()) {}

  entryDir(key: string): string {
    if (!/^[0-9a-z_.-]+$/i.test(key)) throw new Error(`invalid cache key ${key}`);
    return join(this.dir, key);
  }

  /** The model path of a valid entry, or why there is none. */
  lookup(key: string): CacheLookup {
    const dir = this.entryDir(key);
    const path = join(dir, MODEL);
    if (!existsSync(join(dir, MANIFEST))) return { path, hit: false, reason: "not built yet" };
    const checked = inspect(dir, key);
    return "problem" in checked ? { path, hit: false, reason: checked.problem } : { path, hit: true, id: checked.id };
  }

  /** The entry, built first when missing or broken (and replacing a broken one). */
  getOrBuild(key: string, build: () => Graph, onEvent?: (e: { key: string; hit: boolean; reason?: string }) => void): CacheEntry {
    const found = this.lookup(key);
    if (found.hit) {
      onEvent?.({ key, hit: true });
      return { path: found.path, id: found.id };
    }
    onEvent?.({ key, hit: false, reason: found.reason });
    return this.writeEntry(key, build());
  }

  /** Builds an entry and returns its model path (see `writeEntry`). */
  write(key: string, graph: Graph): string {
    return this.writeEntry(key, graph).path;
  }

  /**
   * Builds an entry in a private folder and renames it into place. When another process has put a valid entry
   * there meanwhile, that one is kept (and returned) and this build is discarded.
   */
  writeEntry(key: string, graph: Graph): CacheEntry {
    const dir = this.entryDir(key);
    mkdirSync(this.dir, { recursive: true });
    sweepAbandoned(this.dir);
    const tmp = makeBuildFolder(dir);
    try {
      const model = serializeGraph(graph, { externalData: { path: join(tmp, WEIGHTS), location: WEIGHTS } });
      writeFileSync(join(tmp, MODEL), model);
      const manifest: CacheManifest = {
        version: FORMAT_VERSION,
        key,
        id: randomBytes(8).toString("hex"),
        modelBytes: model.length,
        modelSha256: sha256(model),
        weightsBytes: statSync(join(tmp, WEIGHTS)).size,
        weightsSample: sampledDigest(join(tmp, WEIGHTS)),
        createdAt: new Date().toISOString(),
      };
      writeFileSync(join(tmp, MANIFEST), JSON.stringify(manifest, null, 1));
      installFolder(tmp, dir, (d) => !("problem" in inspect(d, key)));
    } finally {
      rmSync(tmp, { recursive: true, force: true }); // nothing left once installed
    }
    // What is in place now is valid and stays as it is: this build, or one another process finished first.
    const placed = inspect(dir, key);
    if ("problem" in placed) throw new InternalError(`cache entry ${dir} was removed while being opened (${placed.problem}); run again`);
    return { path: join(dir, MODEL), id: placed.id };
  }

  /**
   * Removes an entry that passed validation but that the runtime refused, if it is still the build `id`: an
   * entry another process has rebuilt since is left alone.
   */
  evict(key: string, id: string): void {
    retireFolder(this.entryDir(key), (d) => {
      const m = readManifest(d);
      return m !== undefined && entryId(m) === id;
    });
  }
}

function readManifest(dir: string): CacheManifest | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, MANIFEST), "utf8")) as CacheManifest;
  } catch {
    return undefined;
  }
}

/** Entries written before ids existed are told apart by their creation time. */
function entryId(m: CacheManifest): string {
  return m.id ?? m.createdAt;
}

function inspect(dir: string, key: string): { id: string } | { problem: string } {
  const m = readManifest(dir);
  if (!m) return { problem: "manifest unreadable" };
  if (m.version !== FORMAT_VERSION || m.key !== key) return { problem: "manifest from another version" };
  const model = join(dir, MODEL);
  const weights = join(dir, WEIGHTS);
  try {
    if (statSync(model).size !== m.modelBytes || statSync(weights).size !== m.weightsBytes) return { problem: "file sizes differ from the manifest (half-written or truncated)" };
    if (sha256(readFileSync(model)) !== m.modelSha256) return { problem: "graph file corrupted" };
    if (sampledDigest(weights) !== m.weightsSample) return { problem: "weights file corrupted" };
  } catch {
    return { problem: "files missing" };
  }
  return { id: entryId(m) };
}
