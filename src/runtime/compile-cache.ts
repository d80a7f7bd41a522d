import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { InternalError } from "../errors.js";
import type { Graph } from "../onnx/graph.js";
import { writeGraph, type ExternalSegment } from "../onnx/serialize.js";
import { installFolder, makeBuildFolder, retireFolder, sweepAbandoned } from "./atomic-folder.js";
import { compactEncoder } from "./compact-weights.js";
import { openCompactGraph } from "./expanded-weights.js";
import type { LiveWeights } from "./live-weights.js";
import { externalTensors } from "./external-tensors.js";
import { sampledDigest, sha256 } from "./file-digest.js";
import { Session, type SessionOptions } from "./session.js";
import type { WeightPatches } from "./weight-patch.js";

/**
 * A folder of built graphs, one entry per key (the caller hashes the checkpoint, the component and what shaped the
 * graph into it), so a second load skips building and weight conversion.
 *
 * An entry is `<key>/model.onnx` + its weights + `<key>/manifest.json`. The weights are kept compact
 * (compact-weights.ts: fp16 or bf16 where that is exact, so an fp16 checkpoint's entry is about its own size) in
 * `weights.half`, and rebuilt as the fp32 file the graph references when the entry is opened
 * (expanded-weights.ts); an entry whose weights are all fp32 keeps that file, `weights.bin`, and is opened in
 * place. It is built in a private folder and renamed into place (atomic-folder.ts: several processes may build the
 * same entry at once, and a valid entry is never replaced under a process that reads it), and the manifest holds
 * sizes and digests that are checked before use: a half-written or corrupted entry is detected and rebuilt, never
 * handed to the runtime. Entries of older formats, and the entries a new one `replaces`, are deleted when it is
 * built.
 */
export interface CacheManifest {
  version: number;
  key: string;
  /** Unique to one build of the entry, so a process can remove the entry it found broken and not a newer one. */
  id: string;
  modelBytes: number;
  modelSha256: string;
  /** WEIGHTS (the fp32 file the graph reads) or COMPACT. */
  weightsFile: string;
  weightsBytes: number;
  /** Sampled digest of the weights file (file-digest.ts): catches truncation and most corruption without reading GBs. */
  weightsSample: string;
  /** For COMPACT weights: the size of the fp32 file and where each tensor goes in it. */
  expand?: { bytes: number; segments: ExternalSegment[]; sha256: string };
  createdAt: string;
}

/** 2: compact weights, the layout in the graph, no optimized copy. */
export const FORMAT_VERSION = 2;
const MODEL = "model.onnx";
const WEIGHTS = "weights.bin";
const COMPACT = "weights.half";
const MANIFEST = "manifest.json";
/** Where compact entries are rebuilt when /dev/shm has no room. */
const SCRATCH = ".scratch";

export function defaultCacheDir(): string {
  return process.env.DIFFUSE_CACHE ?? join(homedir(), ".cache", "diffuse", "compiled");
}

/** A valid entry: its model path, the identity of this build of it (for `evict`), and how to open it. */
export interface CacheEntry {
  key: string;
  /** model.onnx; onnxruntime opens it as it is only when its weights are not compact: `open` opens any entry. */
  path: string;
  id: string;
  manifest: CacheManifest;
}

export type CacheLookup = (CacheEntry & { hit: true }) | { path: string; hit: false; reason: string };

export interface CacheOptions {
  /** "compact" (default): weights in their smallest exact form; "fp32": as the graph reads them (more disk, no rebuild at open). */
  storage?: "compact" | "fp32";
}

export class CompileCache {
  constructor(
    readonly dir: string = defaultCacheDir(),
    private readonly options: CacheOptions = {},
  ) {}

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
    return "problem" in checked
      ? { path, hit: false, reason: checked.problem }
      : { key, path, hit: true, id: checked.manifest.id, manifest: checked.manifest };
  }

  /**
   * The entry, built first when missing or broken (and replacing a broken one). Building it also deletes the
   * entries whose keys start with `replaces` (older builds of the same network, say), unless they are of a newer format.
   */
  getOrBuild(
    key: string,
    build: () => Graph,
    onEvent?: (e: { key: string; hit: boolean; reason?: string }) => void,
    replaces?: string,
  ): CacheEntry {
    const found = this.lookup(key);
    if (found.hit) {
      onEvent?.({ key, hit: true });
      return { key, path: found.path, id: found.id, manifest: found.manifest };
    }
    onEvent?.({ key, hit: false, reason: found.reason });
    const entry = this.writeEntry(key, build());
    this.removeStale(key, replaces);
    return entry;
  }

  /**
   * Builds an entry with its weights as the graph reads them (fp32) and returns its model path, which onnxruntime
   * opens as it is (see `writeEntry`).
   */
  write(key: string, graph: Graph): string {
    return this.writeEntry(key, graph, "fp32").path;
  }

  /**
   * Builds an entry in a private folder and renames it into place. When another process has put a valid entry
   * there meanwhile, that one is kept (and returned) and this build is discarded.
   */
  writeEntry(key: string, graph: Graph, storage: CacheOptions["storage"] = this.options.storage): CacheEntry {
    const dir = this.entryDir(key);
    mkdirSync(this.dir, { recursive: true });
    sweepAbandoned(this.dir);
    const tmp = makeBuildFolder(dir);
    try {
      const compact = (storage ?? "compact") === "compact";
      const stored = join(tmp, compact ? COMPACT : WEIGHTS);
      const written = writeGraph(graph, {
        externalData: { path: stored, location: WEIGHTS, encode: compact ? compactEncoder() : undefined },
      });
      // Offsets are aligned alike in both files: when nothing was kept smaller, the file is the graph's own.
      const plain = written.segments.every(
        (s) => s.storedOffset === s.offset && (s.format === "raw" || s.format === "f32"),
      );
      if (compact && plain) renameSync(stored, join(tmp, WEIGHTS));
      const weightsFile = compact && !plain ? COMPACT : WEIGHTS;
      writeFileSync(join(tmp, MODEL), written.model);
      const manifest: CacheManifest = {
        version: FORMAT_VERSION,
        key,
        id: randomBytes(8).toString("hex"),
        modelBytes: written.model.length,
        modelSha256: sha256(written.model),
        weightsFile,
        weightsBytes: statSync(join(tmp, weightsFile)).size,
        weightsSample: sampledDigest(join(tmp, weightsFile)),
        expand:
          weightsFile === COMPACT
            ? { bytes: written.externalBytes, segments: written.segments, sha256: segmentsDigest(written.segments) }
            : undefined,
        createdAt: new Date().toISOString(),
      };
      writeFileSync(join(tmp, MANIFEST), JSON.stringify(manifest));
      installFolder(tmp, dir, (d) => !("problem" in inspect(d, key)));
    } finally {
      rmSync(tmp, { recursive: true, force: true }); // nothing left once installed
    }
    // What is in place now is valid and stays as it is: this build, or one another process finished first.
    const placed = inspect(dir, key);
    if ("problem" in placed)
      throw new InternalError(`cache entry ${dir} was removed while being opened (${placed.problem}); run again`);
    return { key, path: join(dir, MODEL), id: placed.manifest.id, manifest: placed.manifest };
  }

  /**
   * An onnxruntime session on the entry's graph, its fp32 weights rebuilt first when they are kept compact or when
   * `patches` change some of them (weight-patch.ts: LoRAs). The entry itself is never changed.
   */
  async open(entry: CacheEntry, opts: SessionOptions = {}, patches?: WeightPatches): Promise<Session> {
    return (await this.openLive(entry, opts, patches)).session;
  }

  /**
   * `open`, with the LiveWeights that change the session's weights in place when they were rebuilt into a private
   * file (undefined when the session maps the entry's own fp32 file, which is never written).
   */
  async openLive(
    entry: CacheEntry,
    opts: SessionOptions = {},
    patches?: WeightPatches,
  ): Promise<{ session: Session; weights?: LiveWeights }> {
    const m = entry.manifest;
    const patched = patches !== undefined && patches.size > 0;
    if (!m.expand && !patched) return { session: await Session.create(entry.path, opts) };
    const dir = dirname(entry.path);
    const scratch = join(this.dir, SCRATCH);
    if (m.expand) {
      return openCompactGraph(
        {
          modelPath: entry.path,
          location: WEIGHTS,
          storedPath: join(dir, m.weightsFile),
          bytes: m.expand.bytes,
          segments: m.expand.segments,
        },
        entry.key,
        scratch,
        opts,
        patches,
      );
    }
    // fp32 weights, read as they are stored: one plain segment per tensor.
    const segments = [...externalTensors(entry.path).values()].map((t) => ({
      offset: t.offset,
      length: t.length,
      storedOffset: t.offset,
      storedLength: t.length,
      format: "raw",
    }));
    return openCompactGraph(
      { modelPath: entry.path, location: WEIGHTS, storedPath: join(dir, WEIGHTS), bytes: m.weightsBytes, segments },
      entry.key,
      scratch,
      opts,
      patches,
    );
  }

  /**
   * Removes an entry that passed validation but that the runtime refused, if it is still the build `id`: an
   * entry another process has rebuilt since is left alone.
   */
  evict(key: string, id: string): void {
    retireFolder(this.entryDir(key), (d) => readManifest(d)?.id === id);
  }

  /**
   * Deletes, best effort, the entries this version will never look up again: those of an older format (whatever
   * their key) and those whose key starts with `replaces`. A process still reading one keeps its open files (and
   * on Windows, where the folder cannot be moved then, it stays for a later build to delete).
   */
  private removeStale(key: string, replaces: string | undefined): void {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (name === key || name.startsWith(".")) continue;
      const stale = (d: string): boolean => {
        const m = readManifest(d);
        if (!m) return false; // not an entry we can tell anything about
        const version = typeof m.version === "number" ? m.version : 0;
        return (
          version < FORMAT_VERSION ||
          (replaces !== undefined && name.startsWith(replaces) && version === FORMAT_VERSION)
        );
      };
      try {
        if (statSync(join(this.dir, name)).isDirectory() && stale(join(this.dir, name)))
          retireFolder(join(this.dir, name), stale);
      } catch {
        // another process is at it, or the folder cannot be moved now: a later build tries again
      }
    }
  }
}

function readManifest(dir: string): CacheManifest | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, MANIFEST), "utf8")) as CacheManifest;
  } catch {
    return undefined;
  }
}

function segmentsDigest(segments: readonly ExternalSegment[]): string {
  return sha256(Buffer.from(JSON.stringify(segments)));
}

function inspect(dir: string, key: string): { manifest: CacheManifest } | { problem: string } {
  const m = readManifest(dir);
  if (!m) return { problem: "manifest unreadable" };
  if (m.version !== FORMAT_VERSION || m.key !== key || typeof m.id !== "string")
    return { problem: "manifest from another version" };
  if (m.weightsFile !== WEIGHTS && m.weightsFile !== COMPACT)
    return { problem: "manifest names an unknown weights file" };
  if ((m.weightsFile === COMPACT) !== (m.expand !== undefined)) return { problem: "manifest inconsistent" };
  if (m.expand && (!Array.isArray(m.expand.segments) || segmentsDigest(m.expand.segments) !== m.expand.sha256))
    return { problem: "manifest corrupted" };
  const model = join(dir, MODEL);
  const weights = join(dir, m.weightsFile);
  try {
    if (statSync(model).size !== m.modelBytes || statSync(weights).size !== m.weightsBytes)
      return { problem: "file sizes differ from the manifest (half-written or truncated)" };
    if (sha256(readFileSync(model)) !== m.modelSha256) return { problem: "graph file corrupted" };
    if (sampledDigest(weights) !== m.weightsSample) return { problem: "weights file corrupted" };
  } catch {
    return { problem: "files missing" };
  }
  return { manifest: m };
}
