import { createHash } from "node:crypto";
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, homedir } from "node:os";
import { dirname, join } from "node:path";
import ort from "onnxruntime-node";
import type { Graph } from "../onnx/graph.js";
import { serializeGraph } from "../onnx/serialize.js";
import { Session, type SessionOptions } from "./session.js";

/**
 * A folder of built graphs, one entry per key (the caller hashes the checkpoint, the component and the build
 * options into it), so a second load skips building and weight conversion.
 *
 * An entry is `<key>/model.onnx` + `<key>/weights.bin` + `<key>/manifest.json`. It is written in a temporary
 * folder and renamed into place, and the manifest holds sizes and digests that are checked before use: a
 * half-written or corrupted entry is detected and rebuilt, never handed to the runtime.
 */
export interface CacheManifest {
  version: number;
  key: string;
  modelBytes: number;
  modelSha256: string;
  weightsBytes: number;
  /** sha256 over sampled blocks of weights.bin: catches truncation and most corruption without reading GBs. */
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

export type CacheLookup = { path: string; hit: true } | { path: string; hit: false; reason: string };

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
    const problem = validate(dir, key);
    return problem ? { path, hit: false, reason: problem } : { path, hit: true };
  }

  /** Returns the path of the entry's model.onnx, building (and replacing a broken entry) when needed. */
  getOrBuild(key: string, build: () => Graph, onEvent?: (e: { key: string; hit: boolean; reason?: string }) => void): string {
    const found = this.lookup(key);
    if (found.hit) {
      onEvent?.({ key, hit: true });
      return found.path;
    }
    onEvent?.({ key, hit: false, reason: found.reason });
    return this.write(key, build());
  }

  /** Builds an entry atomically: everything goes to a temporary folder that is renamed at the end. */
  write(key: string, graph: Graph): string {
    const dir = this.entryDir(key);
    mkdirSync(this.dir, { recursive: true });
    const tmp = join(this.dir, `.${key}.${process.pid}.${Date.now()}.tmp`);
    mkdirSync(tmp, { recursive: true });
    try {
      const model = serializeGraph(graph, { externalData: { path: join(tmp, WEIGHTS), location: WEIGHTS } });
      writeFileSync(join(tmp, MODEL), model);
      const manifest: CacheManifest = {
        version: FORMAT_VERSION,
        key,
        modelBytes: model.length,
        modelSha256: sha256(model),
        weightsBytes: statSync(join(tmp, WEIGHTS)).size,
        weightsSample: sampleDigest(join(tmp, WEIGHTS)),
        createdAt: new Date().toISOString(),
      };
      writeFileSync(join(tmp, MANIFEST), JSON.stringify(manifest, null, 1));
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    return join(dir, MODEL);
  }

  /** Removes an entry (for example after the runtime refused to load it). */
  evict(key: string): void {
    rmSync(this.entryDir(key), { recursive: true, force: true });
  }
}

function validate(dir: string, key: string): string | undefined {
  let m: CacheManifest;
  try {
    m = JSON.parse(readFileSync(join(dir, MANIFEST), "utf8")) as CacheManifest;
  } catch {
    return "manifest unreadable";
  }
  if (m.version !== FORMAT_VERSION || m.key !== key) return "manifest from another version";
  const model = join(dir, MODEL);
  const weights = join(dir, WEIGHTS);
  if (!existsSync(model) || !existsSync(weights)) return "files missing";
  if (statSync(model).size !== m.modelBytes || statSync(weights).size !== m.weightsBytes) return "file sizes differ from the manifest (half-written or truncated)";
  if (sha256(readFileSync(model)) !== m.modelSha256) return "graph file corrupted";
  if (sampleDigest(weights) !== m.weightsSample) return "weights file corrupted";
  return undefined;
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** sha256 of 64 evenly spaced 64 KiB blocks (the whole file when it is smaller than that). */
function sampleDigest(path: string): string {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const hash = createHash("sha256");
    const block = Buffer.alloc(64 * 1024);
    const blocks = 64;
    if (size <= block.length * blocks) {
      hash.update(readFileSync(path));
    } else {
      for (let i = 0; i < blocks; i++) {
        const pos = Math.floor(((size - block.length) * i) / (blocks - 1));
        const n = readSync(fd, block, 0, block.length, pos);
        hash.update(block.subarray(0, n));
      }
    }
    hash.update(String(size));
    return hash.digest("hex");
  } finally {
    closeSync(fd);
  }
}

const OPTIMIZED_MODEL = "model.opt.onnx";
const OPTIMIZED_WEIGHTS = "weights.opt.bin";
const OPTIMIZED_MARKER = "optimized.json";

/**
 * Opens a cache entry's graph. The first time, onnxruntime's fully optimized graph (with its CPU-specific
 * layout transforms) is saved beside the entry; later loads open that one with optimizations off, which takes
 * about 1 s instead of about 7 s for the SD1.5 UNet (same outputs, same speed). The saved files count only once
 * their marker is written, and only on the same CPU model and onnxruntime version; anything else rebuilds them.
 */
export async function openCachedSession(modelPath: string, opts: SessionOptions = {}): Promise<Session> {
  if ((opts.optimization ?? "all") !== "all") return Session.create(modelPath, opts);
  const dir = dirname(modelPath);
  const marker = join(dir, OPTIMIZED_MARKER);
  const fingerprint = { onnxruntime: ort.env.versions.node ?? "", cpu: cpus()[0]?.model ?? "" };
  const optimized = join(dir, OPTIMIZED_MODEL);
  const weights = join(dir, OPTIMIZED_WEIGHTS);
  if (existsSync(marker)) {
    try {
      const m = JSON.parse(readFileSync(marker, "utf8"));
      if (m.onnxruntime === fingerprint.onnxruntime && m.cpu === fingerprint.cpu && statSync(optimized).size === m.modelBytes && statSync(weights).size === m.weightsBytes) {
        return await Session.create(optimized, { ...opts, optimization: "disabled" });
      }
    } catch {
      // Unreadable marker, missing files or a graph the runtime refuses: rebuild the optimized copy below.
    }
    rmSync(marker, { force: true });
  }
  const session = await Session.create(modelPath, { ...opts, saveOptimized: { modelPath: optimized, weightsFile: OPTIMIZED_WEIGHTS } });
  if (existsSync(optimized) && existsSync(weights)) {
    const tmp = `${marker}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ ...fingerprint, modelBytes: statSync(optimized).size, weightsBytes: statSync(weights).size }));
    renameSync(tmp, marker);
  }
  return session;
}
